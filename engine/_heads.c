/*
 * The fast-path models' arithmetic after featurizing, in C: the fused linear graph of
 * engine.onnx_group (linear_logits), its heads' softmax / sigmoid (activate) and the learned
 * router's per-model links to the route score (links). Each is held equal to its Python or
 * onnxruntime definition by tests/unit/test_onnx_group.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* z[c] += v * row[c] for c < k, each in double: two lanes at a time where SSE2 is there (every
 * x86-64), with the same per-element multiply then add as the scalar loop, so the same doubles. */
static inline void axpy_row(double *z, const float *row, double v, Py_ssize_t k) {
    Py_ssize_t c = 0;
#ifdef __SSE2__
    __m128d vv = _mm_set1_pd(v);
    for (; c + 4 <= k; c += 4) {
        __m128 r4 = _mm_loadu_ps(row + c);
        __m128d lo = _mm_cvtps_pd(r4), hi = _mm_cvtps_pd(_mm_movehl_ps(r4, r4));
        _mm_storeu_pd(z + c, _mm_add_pd(_mm_loadu_pd(z + c), _mm_mul_pd(vv, lo)));
        _mm_storeu_pd(z + c + 2, _mm_add_pd(_mm_loadu_pd(z + c + 2), _mm_mul_pd(vv, hi)));
    }
#endif
    for (; c < k; c++) z[c] += v * row[c];
}

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
    const float *table = (const float *)tb.buf;
    const float *bias = (const float *)bb.buf;
    const int64_t *idx = (const int64_t *)ib.buf;
    const float *val = (const float *)vb.buf;
    const float *dense = (const float *)db.buf;
    Py_ssize_t rows = k > 0 ? tb.len / (Py_ssize_t)(k * sizeof(float)) : 0;
    Py_ssize_t n = ib.len / (Py_ssize_t)sizeof(int64_t);
    Py_ssize_t nd = db.len / (Py_ssize_t)sizeof(float);
    double z[64];
    if (k <= 0 || k > 64 || bb.len != k * (Py_ssize_t)sizeof(float) ||
        vb.len != n * (Py_ssize_t)sizeof(float) || mask < 0 || mask >= rows || base < 0 ||
        base + nd > rows) {
        PyErr_SetString(PyExc_ValueError, "linear_logits: buffer sizes do not match");
        goto done;
    }
    for (Py_ssize_t c = 0; c < k; c++) z[c] = 0.0;
    /* The rows are scattered over a table of megabytes: ask for all of them first, so their
     * cache misses overlap instead of coming one after the other. */
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *row = (const char *)(table + (Py_ssize_t)(idx[i] & mask) * k);
        __builtin_prefetch(row);
        __builtin_prefetch(row + (Py_ssize_t)(k * sizeof(float)) - 1);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        axpy_row(z, table + (Py_ssize_t)(idx[i] & mask) * k, (double)val[i], k);
    for (Py_ssize_t j = 0; j < nd; j++) axpy_row(z, table + (base + j) * k, (double)dense[j], k);
    out = PyList_New(k);
    if (out == NULL) goto done;
    for (Py_ssize_t c = 0; c < k; c++) {
        PyObject *f = PyFloat_FromDouble((double)(float)(z[c] + bias[c]));
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
 * (softmax true) or the element-wise sigmoid of z[start:end], computed as
 * engine.onnx_group._activate does in Python (same libm exp, same order of operations). */
static PyObject *activate(PyObject *self, PyObject *args) {
    PyObject *zl, *spec;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &zl, &PyTuple_Type, &spec)) return NULL;
    Py_ssize_t nz = PyList_GET_SIZE(zl), ns = PyTuple_GET_SIZE(spec);
    double z[64], e[64];
    if (nz > 64) {
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
        if (softmax) {
            double top = z[a], total = 0.0;
            for (Py_ssize_t i = a + 1; i < b; i++)
                if (z[i] > top) top = z[i];
            for (Py_ssize_t i = a; i < b; i++) {
                e[i] = exp(z[i] - top);
                total += e[i];
            }
            for (Py_ssize_t i = a; i < b; i++) e[i] = e[i] / total;
        } else {
            for (Py_ssize_t i = a; i < b; i++) e[i] = z[i] > -700.0 ? 1.0 / (1.0 + exp(-z[i])) : 0.0;
        }
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

/* links(r, a, b) -> list: 1 / (1 + exp(-(a[i] + b[i] * r))) per model, as
 * engine.router.learned.LearnedRouter.score computes it in Python. */
static PyObject *links(PyObject *self, PyObject *args) {
    double r;
    PyObject *as, *bs;
    if (!PyArg_ParseTuple(args, "dO!O!", &r, &PyTuple_Type, &as, &PyTuple_Type, &bs)) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(as);
    if (PyTuple_GET_SIZE(bs) != n) {
        PyErr_SetString(PyExc_ValueError, "links: a and b differ in length");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        double a = PyFloat_AsDouble(PyTuple_GET_ITEM(as, i));
        double b = PyFloat_AsDouble(PyTuple_GET_ITEM(bs, i));
        if (PyErr_Occurred()) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *f = PyFloat_FromDouble(1.0 / (1.0 + exp(-(a + b * r))));
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
    {"links", links, METH_VARARGS, "links(r, a, b) -> sigmoid(a + b * r) per model"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._heads", NULL, -1, methods};

PyMODINIT_FUNC PyInit__heads(void) { return PyModule_Create(&module); }
