/* The candidates block of a serialized modelroute.v1.Signals, written in one pass.
 *
 * encode_candidates(cands, refs, fields) -> bytes | None
 *   cands:  sequence of modelroute.domain.Candidate tuples
 *           (model, estimated_cost_usd, predicted_quality, score, eligible, excluded_reason)
 *   refs:   tuple of ModelRef objects; fields: tuple of bytes, fields[j] is the serialized
 *           `model = 1` field (tag, length, ModelRef) of refs[j]
 * Returns the concatenated `candidates = 8` fields, or None when a candidate's model is not in
 * `refs` (matched by identity) so the caller can rebuild its table. Layout per candidate:
 *   0x42 len | model field | 0x11 double cost | 0x1d float quality | 0x25 float score |
 *   0x28 eligible | [0x32 len reason]
 * Numbers are written even when zero (a proto3 parser reads them as the same message).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "engine._wire assumes a little-endian machine"
#endif

typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
} wbuf;

static int reserve(wbuf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap * 2;
    if (cap < b->len + extra) cap = b->len + extra;
    char *p = PyMem_Realloc(b->buf, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->buf = p;
    b->cap = cap;
    return 0;
}

static Py_ssize_t varint_len(uint64_t n) {
    Py_ssize_t k = 1;
    while (n > 0x7F) {
        n >>= 7;
        k++;
    }
    return k;
}

static void put_varint(wbuf *b, uint64_t n) {
    while (n > 0x7F) {
        b->buf[b->len++] = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    b->buf[b->len++] = (char)n;
}

static void put(wbuf *b, const void *src, Py_ssize_t n) {
    memcpy(b->buf + b->len, src, (size_t)n);
    b->len += n;
}

static float to_f32(double x) {
    if (isnan(x)) return (float)x;
    if (x > FLT_MAX) return INFINITY;
    if (x < -FLT_MAX) return -INFINITY;
    return (float)x;
}

static int encode_one(wbuf *b, PyObject *c, PyObject *field) {
    double cost = PyFloat_AsDouble(PyTuple_GET_ITEM(c, 1));
    double q = PyFloat_AsDouble(PyTuple_GET_ITEM(c, 2));
    double score = PyFloat_AsDouble(PyTuple_GET_ITEM(c, 3));
    if (PyErr_Occurred()) return -1;
    int eligible = PyObject_IsTrue(PyTuple_GET_ITEM(c, 4));
    if (eligible < 0) return -1;
    PyObject *reason = PyTuple_GET_ITEM(c, 5);
    Py_ssize_t rlen = 0;
    const char *rbuf = NULL;
    if (!PyUnicode_Check(reason)) {
        PyErr_SetString(PyExc_TypeError, "excluded_reason must be a str");
        return -1;
    }
    rbuf = PyUnicode_AsUTF8AndSize(reason, &rlen);
    if (rbuf == NULL) return -1;
    Py_ssize_t flen = PyBytes_GET_SIZE(field);
    Py_ssize_t body = flen + 9 + 5 + 5 + 2;
    if (rlen > 0) body += 1 + varint_len((uint64_t)rlen) + rlen;
    if (reserve(b, 1 + varint_len((uint64_t)body) + body) < 0) return -1;
    b->buf[b->len++] = 0x42;
    put_varint(b, (uint64_t)body);
    put(b, PyBytes_AS_STRING(field), flen);
    float qf = to_f32(q), sf = to_f32(score);
    b->buf[b->len++] = 0x11;
    put(b, &cost, 8);
    b->buf[b->len++] = 0x1D;
    put(b, &qf, 4);
    b->buf[b->len++] = 0x25;
    put(b, &sf, 4);
    b->buf[b->len++] = 0x28;
    b->buf[b->len++] = (char)(eligible ? 1 : 0);
    if (rlen > 0) {
        b->buf[b->len++] = 0x32;
        put_varint(b, (uint64_t)rlen);
        put(b, rbuf, rlen);
    }
    return 0;
}

static Py_ssize_t find_ref(PyObject *refs, PyObject *model, Py_ssize_t hint) {
    Py_ssize_t n = PyTuple_GET_SIZE(refs);
    if (hint < n && PyTuple_GET_ITEM(refs, hint) == model) return hint;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (PyTuple_GET_ITEM(refs, j) == model) return j;
    }
    return -1;
}

static PyObject *encode_candidates(PyObject *self, PyObject *args) {
    PyObject *cands, *refs, *fields;
    if (!PyArg_ParseTuple(args, "OO!O!", &cands, &PyTuple_Type, &refs, &PyTuple_Type, &fields))
        return NULL;
    if (PyTuple_GET_SIZE(refs) != PyTuple_GET_SIZE(fields)) {
        PyErr_SetString(PyExc_ValueError, "refs and fields differ in length");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(cands, "candidates must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    wbuf b = {PyMem_Malloc(1024), 0, 1024};
    if (b.buf == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) != 6) {
            PyErr_SetString(PyExc_TypeError, "each candidate must be a 6-field Candidate");
            goto done;
        }
        Py_ssize_t j = find_ref(refs, PyTuple_GET_ITEM(c, 0), i);
        if (j < 0) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        PyObject *field = PyTuple_GET_ITEM(fields, j);
        if (!PyBytes_Check(field)) {
            PyErr_SetString(PyExc_TypeError, "fields must hold bytes");
            goto done;
        }
        if (encode_one(&b, c, field) < 0) goto done;
    }
    result = PyBytes_FromStringAndSize(b.buf, b.len);
done:
    PyMem_Free(b.buf);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_candidates", encode_candidates, METH_VARARGS,
     "The serialized `candidates` fields of a Signals message, or None for an unknown model."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._wire", NULL, -1, methods};

PyMODINIT_FUNC PyInit__wire(void) { return PyModule_Create(&module); }
