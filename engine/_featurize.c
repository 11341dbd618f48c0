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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_from(uint32_t value, const unsigned char *p, Py_ssize_t n) {
    uint32_t c = value ^ 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

enum { SPACE = 0, LETTER = 1, DIGIT = 2, HIGH = 3, OTHER = 4 };

static int byte_class(unsigned char b) {
    if (b >= 'a' && b <= 'z') return LETTER;
    if (b >= '0' && b <= '9') return DIGIT;
    if (b >= 0x80) return HIGH;
    if (b == ' ' || (b >= 0x09 && b <= 0x0D)) return SPACE;
    return OTHER;
}

/* Open-addressing table from bucket to its slot in the output arrays. */
typedef struct {
    int64_t *keys;
    Py_ssize_t *slot;
    Py_ssize_t mask;
} table_t;

static Py_ssize_t table_find(table_t *t, int64_t key) {
    Py_ssize_t i = (Py_ssize_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 20) & t->mask;
    while (t->keys[i] != -1 && t->keys[i] != key) i = (i + 1) & t->mask;
    return i;
}

static PyObject *hashed_counts(PyObject *self, PyObject *args) {
    Py_buffer buf;
    unsigned int bits;
    if (!PyArg_ParseTuple(args, "y*I", &buf, &bits)) return NULL;
    if (bits < 1 || bits > 32) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "bits must be in 1..32");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)buf.buf;
    Py_ssize_t n = buf.len;
    uint64_t bmask = (bits == 32) ? 0xFFFFFFFFull : ((1ull << bits) - 1);
    Py_ssize_t cap = 2 * n + 2, size = 8;
    while (size < 2 * cap) size <<= 1;
    Py_ssize_t *starts = PyMem_Malloc(sizeof(Py_ssize_t) * (n + 1));
    Py_ssize_t *lens = PyMem_Malloc(sizeof(Py_ssize_t) * (n + 1));
    uint32_t *uni = PyMem_Malloc(sizeof(uint32_t) * (n + 1));
    int64_t *out_idx = PyMem_Malloc(sizeof(int64_t) * cap);
    float *out_cnt = PyMem_Malloc(sizeof(float) * cap);
    table_t t = {PyMem_Malloc(sizeof(int64_t) * size), PyMem_Malloc(sizeof(Py_ssize_t) * size), size - 1};
    PyObject *result = NULL;
    if (!starts || !lens || !uni || !out_idx || !out_cnt || !t.keys || !t.slot) {
        PyErr_NoMemory();
        goto done;
    }
    memset(t.keys, 0xFF, sizeof(int64_t) * size);
    Py_ssize_t ntok = 0, i = 0;
    Py_BEGIN_ALLOW_THREADS
    while (i < n) {
        int c = byte_class(s[i]);
        if (c == SPACE) { i++; continue; }
        Py_ssize_t j = i + 1;
        if (c != OTHER)
            while (j < n && byte_class(s[j]) == c) j++;
        starts[ntok] = i;
        lens[ntok] = j - i;
        ntok++;
        i = j;
    }
    Py_END_ALLOW_THREADS
    Py_ssize_t nout = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (Py_ssize_t k = pass; k < ntok; k++) {
            uint32_t h;
            if (pass == 0) {
                h = crc32_from(0, s + starts[k], lens[k]);
                uni[k] = h;
            } else {
                h = crc32_from(uni[k - 1], s + starts[k], lens[k]);
            }
            int64_t key = (int64_t)(h & bmask);
            Py_ssize_t at = table_find(&t, key);
            if (t.keys[at] == -1) {
                t.keys[at] = key;
                t.slot[at] = nout;
                out_idx[nout] = key;
                out_cnt[nout] = 1.0f;
                nout++;
            } else {
                out_cnt[t.slot[at]] += 1.0f;
            }
        }
    }
    PyObject *idx = PyBytes_FromStringAndSize((const char *)out_idx, sizeof(int64_t) * nout);
    PyObject *cnt = PyBytes_FromStringAndSize((const char *)out_cnt, sizeof(float) * nout);
    if (idx && cnt) result = PyTuple_Pack(2, idx, cnt);
    Py_XDECREF(idx);
    Py_XDECREF(cnt);
done:
    PyMem_Free(starts);
    PyMem_Free(lens);
    PyMem_Free(uni);
    PyMem_Free(out_idx);
    PyMem_Free(out_cnt);
    PyMem_Free(t.keys);
    PyMem_Free(t.slot);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"hashed_counts", hashed_counts, METH_VARARGS,
     "hashed_counts(data: bytes, bits: int) -> (int64 bucket bytes, float32 count bytes)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._featurize", NULL, -1, methods};

PyMODINIT_FUNC PyInit__featurize(void) {
    crc_init();
    return PyModule_Create(&module);
}
