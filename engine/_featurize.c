/*
 * Hashed unigram and bigram counts for engine.features, in C.
 *
 * The input is the clipped, lower-cased prompt as UTF-8 bytes. Tokens are maximal runs of [a-z],
 * of [0-9] and of non-ASCII bytes, and every other non-space byte alone (spaces are " \t\n\r\f\v").
 * A unigram hashes to crc32(token); a bigram continues the crc32 of the previous token over the
 * current one. Hashes are masked to `bits` bits and counted. The result is two bytes objects:
 * the distinct buckets (int64, in order of first appearance, unigrams before bigrams) and their
 * counts (float32).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_featurize_core.h"

static PyObject *hashed_counts(PyObject *self, PyObject *args) {
    Py_buffer buf;
    unsigned int bits;
    uint64_t bmask;
    if (!PyArg_ParseTuple(args, "y*I", &buf, &bits)) return NULL;
    int64_t *out_idx = NULL;
    float *out_cnt = NULL;
    Py_ssize_t nout = 0;
    PyObject *result = NULL;
    if (bits_mask(bits, &bmask) == 0 &&
        hash_counts((const unsigned char *)buf.buf, buf.len, bmask, &out_idx, &out_cnt, &nout) == 0) {
        PyObject *idx = PyBytes_FromStringAndSize((const char *)out_idx, sizeof(int64_t) * nout);
        PyObject *cnt = PyBytes_FromStringAndSize((const char *)out_cnt, sizeof(float) * nout);
        if (idx && cnt) result = PyTuple_Pack(2, idx, cnt);
        Py_XDECREF(idx);
        Py_XDECREF(cnt);
    }
    PyMem_Free(out_idx);
    PyMem_Free(out_cnt);
    PyBuffer_Release(&buf);
    return result;
}

static PyObject *sample_stats(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    stats_t st;
    stats_of((const unsigned char *)buf.buf, buf.len, &st);
    PyBuffer_Release(&buf);
    return Py_BuildValue("(nnnnnnnnn)", st.digits, st.upper, st.punct, st.high, st.code, st.maths,
                         st.frac, st.dollars, st.qmarks);
}

/* (indices, values, dense) bytes of features_core's result. */
static PyObject *feats_bytes(const feats_t *f) {
    PyObject *bi = PyBytes_FromStringAndSize((const char *)f->idx, sizeof(int64_t) * f->n);
    PyObject *bv = PyBytes_FromStringAndSize((const char *)f->val, sizeof(float) * f->n);
    PyObject *bd = PyBytes_FromStringAndSize((const char *)f->dense, sizeof f->dense);
    PyObject *result = bi && bv && bd ? PyTuple_Pack(3, bi, bv, bd) : NULL;
    Py_XDECREF(bi);
    Py_XDECREF(bv);
    Py_XDECREF(bd);
    return result;
}

/* features(lower, sample, bits, n_chars, n_spaces, n_lines) -> (indices, values, dense) bytes:
 * features_core (engine.features.featurize after the clipping). */
static PyObject *features(PyObject *self, PyObject *args) {
    Py_buffer low, raw;
    unsigned int bits;
    Py_ssize_t n_chars, n_spaces, n_lines;
    if (!PyArg_ParseTuple(args, "y*y*Innn", &low, &raw, &bits, &n_chars, &n_spaces, &n_lines))
        return NULL;
    feats_t f;
    PyObject *result = NULL;
    if (features_core(low.buf, low.len, raw.buf, raw.len, bits, n_chars, n_spaces, n_lines, NULL, &f)
        == 0) {
        result = feats_bytes(&f);
        feats_free(&f);
    }
    PyBuffer_Release(&low);
    PyBuffer_Release(&raw);
    return result;
}

/* features_ascii(text, bits, head, tail) -> (indices, values, dense) bytes, or None when `text`
 * is not pure ASCII: engine.features.featurize for ASCII text in one call (features_ascii_core);
 * the result is that of ``features`` on the Python-made inputs. */
static PyObject *features_ascii(PyObject *self, PyObject *args) {
    PyObject *text;
    unsigned int bits;
    Py_ssize_t head, tail;
    if (!PyArg_ParseTuple(args, "UInn", &text, &bits, &head, &tail)) return NULL;
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE;
    if (head < 1 || tail < 1) {
        PyErr_SetString(PyExc_ValueError, "features_ascii: head and tail must be >= 1");
        return NULL;
    }
    feats_t f;
    if (features_ascii_core(PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text), bits, head,
                            tail, &f) < 0)
        return NULL;
    PyObject *result = feats_bytes(&f);
    feats_free(&f);
    return result;
}

static PyMethodDef methods[] = {
    {"hashed_counts", hashed_counts, METH_VARARGS,
     "hashed_counts(data: bytes, bits: int) -> (int64 bucket bytes, float32 count bytes)"},
    {"features_ascii", features_ascii, METH_VARARGS,
     "features_ascii(text, bits, head, tail) -> (indices, values, dense) bytes, or None"},
    {"features", features, METH_VARARGS,
     "features(lower, sample, bits, n_chars, n_spaces, n_lines) -> (indices, values, dense) bytes"},
    {"sample_stats", sample_stats, METH_VARARGS,
     "sample_stats(data: bytes) -> (digits, upper, punct, non_ascii, code_markers, math_hits, "
     "frac, dollars, question_marks)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._featurize", NULL, -1, methods};

PyMODINIT_FUNC PyInit__featurize(void) {
    featurize_init();
    return PyModule_Create(&module);
}
