/*
 * The fast-path models' arithmetic after featurizing, in C: the fused linear graph of
 * engine.onnx_group (linear_logits), its heads' softmax / sigmoid (activate) and the learned
 * router's per-model links to the route score (links). Each is held equal to its Python or
 * onnxruntime definition by tests/unit/test_onnx_group.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_heads_core.h"

/* linear_logits(table, k, mask, dense_base, bias, indices, values, dense) -> list[float]
 *
 * The fused linear graph of engine.onnx_group evaluated directly:
 *   z = bias + sum_i values[i] * table[indices[i] & mask] + sum_j dense[j] * table[dense_base + j]
 * with `table` a C-contiguous float32 [rows, k] buffer, `bias` float32 [k], `indices` int64,
 * `values` and `dense` float32. Sums run in double and are rounded to float32 at the end, as the
 * graph's output is. Rows outside the table are an error (never read). */
static PyObject *linear_logits(PyObject *self, PyObject *args) {
    Py_buffer tb, bb, ib, vb, db;
    Py_ssize_t k, mask, base;
    if (!PyArg_ParseTuple(args, "y*nnny*y*y*y*", &tb, &k, &mask, &base, &bb, &ib, &vb, &db))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t rows = k > 0 ? tb.len / (Py_ssize_t)(k * sizeof(float)) : 0;
    Py_ssize_t n = ib.len / (Py_ssize_t)sizeof(int64_t);
    Py_ssize_t nd = db.len / (Py_ssize_t)sizeof(float);
    double z[HEADS_MAX_K];
    if (bb.len != k * (Py_ssize_t)sizeof(float) || vb.len != n * (Py_ssize_t)sizeof(float)
        || linear_logits_core(tb.buf, rows, k, mask, base, bb.buf, ib.buf, vb.buf, n, db.buf, nd,
                              z) < 0) {
        PyErr_SetString(PyExc_ValueError, "linear_logits: buffer sizes do not match");
        goto done;
    }
    out = PyList_New(k);
    if (out == NULL) goto done;
    for (Py_ssize_t c = 0; c < k; c++) {
        PyObject *f = PyFloat_FromDouble(z[c]);
        if (f == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, c, f);
    }
done:
    PyBuffer_Release(&tb);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&db);
    return out;
}

/* activate(z, spec) -> tuple of lists: for each (start, end, softmax) of `spec`, the softmax
 * (softmax true) or the element-wise sigmoid of z[start:end] (activate_slice). */
static PyObject *activate(PyObject *self, PyObject *args) {
    PyObject *zl, *spec;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &zl, &PyTuple_Type, &spec)) return NULL;
    Py_ssize_t nz = PyList_GET_SIZE(zl), ns = PyTuple_GET_SIZE(spec);
    double z[HEADS_MAX_K], e[HEADS_MAX_K];
    if (nz > HEADS_MAX_K) {
        PyErr_SetString(PyExc_ValueError, "activate: at most 64 logits");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nz; i++) {
        z[i] = PyFloat_AsDouble(PyList_GET_ITEM(zl, i));
        if (z[i] == -1.0 && PyErr_Occurred()) return NULL;
    }
    PyObject *out = PyTuple_New(ns);
    if (out == NULL) return NULL;
    for (Py_ssize_t k = 0; k < ns; k++) {
        Py_ssize_t a, b;
        int softmax;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, k), "nnp", &a, &b, &softmax)) goto fail;
        if (a < 0 || b > nz || a >= b) {
            PyErr_SetString(PyExc_ValueError, "activate: slice out of range");
            goto fail;
        }
        PyObject *probs = PyList_New(b - a);
        if (probs == NULL) goto fail;
        PyTuple_SET_ITEM(out, k, probs);
        activate_slice(z, a, b, softmax, e);
        for (Py_ssize_t i = a; i < b; i++) {
            PyObject *f = PyFloat_FromDouble(e[i]);
            if (f == NULL) goto fail;
            PyList_SET_ITEM(probs, i - a, f);
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* links(r, a, b[, c, level]) -> list: 1 / (1 + exp(-(a[i] + b[i] * r + c[i] * level))) per
 * model (link_p; c = 0 when not given), as engine.router.learned.LearnedRouter.score computes
 * it in Python. c and level come together. */
static PyObject *links(PyObject *self, PyObject *args) {
    double r, level = 0.0;
    PyObject *as, *bs, *cs = NULL;
    if (PyTuple_GET_SIZE(args) == 4) {
        PyErr_SetString(PyExc_TypeError, "links: c needs the level");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "dO!O!|O!d", &r, &PyTuple_Type, &as, &PyTuple_Type, &bs,
                          &PyTuple_Type, &cs, &level))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(as);
    if (PyTuple_GET_SIZE(bs) != n || (cs != NULL && PyTuple_GET_SIZE(cs) != n)) {
        PyErr_SetString(PyExc_ValueError, "links: a, b and c differ in length");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        double a = PyFloat_AsDouble(PyTuple_GET_ITEM(as, i));
        double b = PyFloat_AsDouble(PyTuple_GET_ITEM(bs, i));
        double c = cs == NULL ? 0.0 : PyFloat_AsDouble(PyTuple_GET_ITEM(cs, i));
        if (PyErr_Occurred()) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *f = PyFloat_FromDouble(link_p(a, b, c, r, level));
        if (f == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, f);
    }
    return out;
}
static PyMethodDef methods[] = {
    {"linear_logits", linear_logits, METH_VARARGS,
     "linear_logits(table, k, mask, dense_base, bias, indices, values, dense) -> k logits"},
    {"activate", activate, METH_VARARGS,
     "activate(z, ((start, end, softmax), ...)) -> per slice, its softmax or sigmoid"},
    {"links", links, METH_VARARGS,
     "links(r, a, b[, c, level]) -> sigmoid(a + b * r + c * level) per model"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._heads", NULL, -1, methods};

PyMODINIT_FUNC PyInit__heads(void) { return PyModule_Create(&module); }
