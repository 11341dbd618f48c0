/*
 * The token estimator's byte-class counts (engine.signals.tokens), in C: class_counts gives the
 * 25 counts, class_dot their linear sum with the fitted coefficients in one call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_tokens_core.h"

static PyObject *class_counts(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    double f[25];
    class_counts_into((const unsigned char *)buf.buf, buf.len, f);
    PyBuffer_Release(&buf);
    PyObject *out = PyList_New(25);
    if (!out) return NULL;
    for (int k = 0; k < 25; k++) {
        PyObject *x = PyFloat_FromDouble(f[k]);
        if (!x) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, k, x);
    }
    return out;
}

/* class_dot(sample, coef, scale) -> float: sum over k of coef[k] * (count_k * scale), then
 * + coef[25] * 1.0 (the bias), summed left to right as engine.signals.tokens does in Python. */
static PyObject *class_dot(PyObject *self, PyObject *args) {
    Py_buffer buf;
    PyObject *coef;
    double scale;
    if (!PyArg_ParseTuple(args, "y*O!d", &buf, &PyTuple_Type, &coef, &scale)) return NULL;
    if (PyTuple_GET_SIZE(coef) != 26) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "class_dot: coef must hold 26 floats");
        return NULL;
    }
    double c[TOK_FEATURES + 1];
    for (int k = 0; k < TOK_FEATURES + 1; k++) {
        c[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(coef, k));
        if (c[k] == -1.0 && PyErr_Occurred()) {
            PyBuffer_Release(&buf);
            return NULL;
        }
    }
    double total = class_dot_core((const unsigned char *)buf.buf, buf.len, c, scale);
    PyBuffer_Release(&buf);
    return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"class_dot", class_dot, METH_VARARGS,
     "class_dot(data: bytes, coef: tuple, scale: float) -> the token estimator's linear sum"},
    {"class_counts", class_counts, METH_VARARGS,
     "class_counts(data: bytes) -> 25 character-class counts of the token estimator"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._tokens", NULL, -1, methods};

PyMODINIT_FUNC PyInit__tokens(void) {
    tok_init();
    return PyModule_Create(&module);
}
