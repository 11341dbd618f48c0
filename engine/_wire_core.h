/* The wire writer shared by engine/_wire.c (a Decision object to bytes) and engine/_fastpath.c
 * (the native Decide, which writes its decision from C values): a growable buffer, varints,
 * tagged fields and a candidate's fixed block. Field numbers follow proto/modelroute/v1
 * (engine.wire_encode documents the layout). Static functions; include after Python.h.
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

/* One Candidate field from its values: `field` is the serialized `model = 1` field. */
static int put_candidate(wbuf *b, const char *field, Py_ssize_t flen, double cost, double q,
                         double score, int eligible, const char *rbuf, Py_ssize_t rlen) {
    Py_ssize_t body = flen + 9 + 5 + 5 + 2;
    if (rlen > 0) body += 1 + varint_len((uint64_t)rlen) + rlen;
    if (reserve(b, 1 + varint_len((uint64_t)body) + body) < 0) return -1;
    b->buf[b->len++] = 0x42;
    put_varint(b, (uint64_t)body);
    put(b, field, flen);
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

/* Write `sub` as a length-delimited field of `b`, then reset `sub`. */
static int submessage(wbuf *b, unsigned char tag, wbuf *sub) {
    int rc = put_tag_bytes(b, tag, sub->buf, sub->len);
    sub->len = 0;
    return rc;
}


#endif
