/* The wire writer shared by engine/_wire.c (a Decision object to bytes) and engine/_fastpath.c
 * (the native Decide, which writes its decision without building the object): a growable
 * buffer, varints, tagged fields, the candidates block and the chain of hops. Field numbers
 * follow proto/modelroute/v1 (engine.wire_encode documents the layout). Static functions: each
 * extension that includes it has its own copy, and calls wire_core_init() once.
 */
#ifndef MODELROUTE_WIRE_CORE_H
#define MODELROUTE_WIRE_CORE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire writer assumes a little-endian machine"
#endif

static PyObject *W_model, *W_on_error, *W_hop_nums[3], *W_index, *W_max_output_tokens,
    *W_estimated_cost_usd;

static int wire_core_init(void) {
    const char *names[8] = {"model", "on_error", "context_window", "typical_ttft_ms",
                            "supports_continuation", "index", "max_output_tokens",
                            "estimated_cost_usd"};
    PyObject **slots[8] = {&W_model, &W_on_error, &W_hop_nums[0], &W_hop_nums[1],
                           &W_hop_nums[2], &W_index, &W_max_output_tokens, &W_estimated_cost_usd};
    for (int i = 0; i < 8; i++)
        if ((*slots[i] = PyUnicode_InternFromString(names[i])) == NULL) return -1;
    return 0;
}

/* A growable buffer; it may start on the caller's stack (owned 0): the first growth moves it to
 * the heap (owned 1), which the caller then frees. */
typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    int owned;
} wbuf;

static int reserve(wbuf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap * 2;
    if (cap < b->len + extra) cap = b->len + extra;
    char *p = b->owned ? PyMem_Realloc(b->buf, (size_t)cap) : PyMem_Malloc((size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (!b->owned) memcpy(p, b->buf, (size_t)b->len);
    b->buf = p;
    b->cap = cap;
    b->owned = 1;
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

/* Append every candidate's field to `b`: 1 done, 0 a model not in `refs`, -1 error. */
static int encode_all(wbuf *b, PyObject *cands, PyObject *refs, PyObject *fields) {
    PyObject *seq = PySequence_Fast(cands, "candidates must be a sequence");
    if (seq == NULL) return -1;
    int rc = -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) != 6) {
            PyErr_SetString(PyExc_TypeError, "each candidate must be a 6-field Candidate");
            goto done;
        }
        Py_ssize_t j = find_ref(refs, PyTuple_GET_ITEM(c, 0), i);
        if (j < 0) {
            rc = 0;
            goto done;
        }
        PyObject *field = PyTuple_GET_ITEM(fields, j);
        if (!PyBytes_Check(field)) {
            PyErr_SetString(PyExc_TypeError, "fields must hold bytes");
            goto done;
        }
        if (encode_one(b, c, field) < 0) goto done;
    }
    rc = 1;
done:
    Py_DECREF(seq);
    return rc;
}

static int put_tag_bytes(wbuf *b, unsigned char tag, const char *p, Py_ssize_t n) {
    if (reserve(b, 1 + varint_len((uint64_t)n) + n) < 0) return -1;
    b->buf[b->len++] = (char)tag;
    put_varint(b, (uint64_t)n);
    put(b, p, n);
    return 0;
}

/* An unsigned varint field (omitted when zero). */
static int put_uint(wbuf *b, unsigned char tag, unsigned long long n) {
    if (n == 0) return 0;
    if (reserve(b, 11) < 0) return -1;
    b->buf[b->len++] = (char)tag;
    put_varint(b, n);
    return 0;
}

/* A double (8 bytes) or, with `single`, a float (4 bytes) field, written even when zero. */
static int put_double(wbuf *b, unsigned char tag, double x, int single) {
    if (reserve(b, 9) < 0) return -1;
    b->buf[b->len++] = (char)tag;
    if (single) {
        float f = to_f32(x);
        put(b, &f, 4);
    } else {
        put(b, &x, 8);
    }
    return 0;
}

/* An unsigned varint field from an int (or IntEnum) value (omitted when zero). */
static int uint_value(wbuf *b, unsigned char tag, PyObject *v) {
    PyObject *i = PyNumber_Index(v);
    if (i == NULL) return -1;
    unsigned long long n = PyLong_AsUnsignedLongLong(i);
    Py_DECREF(i);
    if (n == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    return put_uint(b, tag, n);
}

static int double_value(wbuf *b, unsigned char tag, PyObject *v, int single) {
    double x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred()) return -1;
    return put_double(b, tag, x, single);
}

/* Write `sub` as a length-delimited field of `b`, then reset `sub`. */
static int submessage(wbuf *b, unsigned char tag, wbuf *sub) {
    int rc = put_tag_bytes(b, tag, sub->buf, sub->len);
    sub->len = 0;
    return rc;
}

static int uint_field(wbuf *b, unsigned char tag, PyObject *obj, PyObject *name) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) return -1;
    int rc = uint_value(b, tag, v);
    Py_DECREF(v);
    return rc;
}

static int double_field(wbuf *b, unsigned char tag, PyObject *obj, PyObject *name, int single) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) return -1;
    int rc = double_value(b, tag, v, single);
    Py_DECREF(v);
    return rc;
}

/* The static bytes of hop h from `statics` (see encode_decision), borrowed; NULL without an
 * error set when there is no matching entry. */
static PyObject *hop_static(PyObject *statics, PyObject *h) {
    PyObject *m = PyObject_GetAttr(h, W_model), *on_error = NULL, *key = NULL, *found = NULL;
    if (m == NULL) return NULL;
    key = PyLong_FromVoidPtr(m);
    PyObject *e = key != NULL ? PyDict_GetItemWithError(statics, key) : NULL;
    if (e == NULL || !PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 6
        || PyTuple_GET_ITEM(e, 0) != m || !PyBytes_Check(PyTuple_GET_ITEM(e, 5)))
        goto out;
    on_error = PyObject_GetAttr(h, W_on_error);
    if (on_error == NULL || PyTuple_GET_ITEM(e, 1) != on_error) goto out;
    for (int i = 0; i < 3; i++) {
        PyObject *v = PyObject_GetAttr(h, W_hop_nums[i]);
        int same = v != NULL ? PyObject_RichCompareBool(v, PyTuple_GET_ITEM(e, 2 + i), Py_EQ) : -1;
        Py_XDECREF(v);
        if (same != 1) goto out;
    }
    found = PyTuple_GET_ITEM(e, 5);
out:
    Py_XDECREF(on_error);
    Py_XDECREF(key);
    Py_DECREF(m);
    return found;
}

/* The chain (a tuple of Hops), one Hop field each: 1 when written, 0 when a hop has no entry
 * in `statics`, -1 on error. */
static int chain_tuple_msgs(wbuf *b, wbuf *sub, PyObject *chain, PyObject *statics) {
    int rc = -1;
    if (!PyTuple_Check(chain)) {
        PyErr_SetString(PyExc_TypeError, "chain must be a tuple");
        goto out;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(chain); i++) {
        PyObject *h = PyTuple_GET_ITEM(chain, i), *st = hop_static(statics, h);
        if (st == NULL) {
            rc = PyErr_Occurred() ? -1 : 0;
            goto out;
        }
        if (uint_field(sub, 0x08, h, W_index) < 0) goto out;
        if (reserve(sub, PyBytes_GET_SIZE(st)) < 0) goto out;
        put(sub, PyBytes_AS_STRING(st), PyBytes_GET_SIZE(st));
        if (uint_field(sub, 0x20, h, W_max_output_tokens) < 0
            || double_field(sub, 0x29, h, W_estimated_cost_usd, 0) < 0
            || submessage(b, 0x3A, sub) < 0)
            goto out;
    }
    rc = 1;
out:
    return rc;
}

#endif
