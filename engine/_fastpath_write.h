/* The native Decide's output: ids, the Decision's bytes, and the Decision object for the
 * encoder's Python path.
 * A part of engine/_fastpath.c, included by it once (after the FastPath object's definition). */
#ifndef MODELROUTE_FASTPATH_WRITE_H
#define MODELROUTE_FASTPATH_WRITE_H

/* ---- the decision (engine.service.Engine._decide) and its bytes (DecisionEncoder.encode) ---- */

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Ids only need to be unique, not secret (as engine.service._new_id): 128 bits of xoshiro256**
 * seeded from the OS, seeded again in a forked child; the GIL guards the state. */
static uint64_t rng_state[4];
static int rng_ready = 0;

static void rng_forked(void) { rng_ready = 0; }

static int rng_seed(void) {
    uint8_t *p = (uint8_t *)rng_state;
    size_t got = 0;
    while (got < sizeof rng_state) {
        ssize_t n = getrandom(p + got, sizeof rng_state - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        got += (size_t)n;
    }
    if (!(rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3])) rng_state[0] = 1;
    rng_ready = 1;
    return 0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void) {
    uint64_t *s = rng_state, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* A random 128-bit id in 32 lower-case hex digits. */
static PyObject *new_id(FastPath *Py_UNUSED(self)) {
    if (!rng_ready && rng_seed() < 0) return NULL;
    static const char hex[] = "0123456789abcdef";
    PyObject *out = PyUnicode_New(32, 127);
    if (out == NULL) return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
    for (int half = 0; half < 2; half++) {
        uint64_t v = rng_next();
        for (int i = 15; i >= 0; i--, v >>= 4) d[half * 16 + i] = (Py_UCS1)hex[v & 15];
    }
    return out;
}

static PyObject *build(FastPath *self, PyObject *cls, PyObject **items, Py_ssize_t n) {
    PyObject *values = PyTuple_New(n), *out = NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (items[k] == NULL || values == NULL) {
            for (Py_ssize_t j = k; j < n; j++) Py_XDECREF(items[j]);
            Py_XDECREF(values);
            return NULL;
        }
        PyTuple_SET_ITEM(values, k, items[k]);
    }
    PyObject *args[2] = {cls, values};
    out = call(self->o[O_BUILD], args, 2);
    Py_DECREF(values);
    return out;
}

/* The Decision object (engine.service.Engine._decide), for the encoder's Python path. */
static PyObject *decision(FastPath *self, const req_t *r, PyObject *tier, PyObject *tenant,
                          const sig_t *sig, const plan_t *p, long long elapsed_us) {
    PyObject *tier_name = PyTuple_GET_ITEM(tier, 0);
    PyObject *si[9] = {Py_NewRef(PyTuple_GET_ITEM(sig->task, 0)), Py_NewRef(sig->confidence),
                       Py_NewRef(sig->difficulty), PyLong_FromLongLong(sig->tokens), Py_NewRef(tier_name),
                       Py_NewRef(tenant), Py_NewRef(PyTuple_GET_ITEM(tier, 3)), PyList_AsTuple(p->list),
                       Py_NewRef(r->task_hint ? Py_True : Py_False)};
    PyObject *signals = build(self, self->o[O_SIGNALS], si, 9);
    if (signals == NULL) return NULL;
    PyObject *bi[5] = {PyLong_FromLongLong(p->max_input), PyLong_FromLongLong(p->head_output),
                       Py_NewRef(PyTuple_GET_ITEM(tier, 4)), Py_NewRef(PyTuple_GET_ITEM(tier, 3)),
                       Py_NewRef(PyTuple_GET_ITEM(tier, 8))};
    PyObject *model = PyObject_GetAttr(PyTuple_GET_ITEM(p->chain, 0), S_MODEL);
    PyObject *di[14] = {new_id(self), r->request_id.n ? ascii_str(r->request_id) : new_id(self),
                        Py_NewRef(self->o[O_VERSION]), Py_NewRef(self->o[O_HASH]), model,
                        named_tuple(self->o[O_BUDGET], bi, 5), Py_NewRef(p->chain), signals,
                        Py_NewRef(p->reason), PyLong_FromLongLong(elapsed_us),
                        Py_NewRef(PyTuple_GET_ITEM(tier, 9)), Py_NewRef(tenant), Py_NewRef(tier_name),
                        Py_NewRef(Py_None)};
    return build(self, self->o[O_DECISION], di, 14);
}

/* 32 hex digits of a new id at out. */
static int id_hex(char out[32]) {
    if (!rng_ready && rng_seed() < 0) return -1;
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; half++) {
        uint64_t v = rng_next();
        for (int i = 15; i >= 0; i--, v >>= 4) out[half * 16 + i] = hex[v & 15];
    }
    return 0;
}

static int str_obj(wbuf *b, unsigned char tag, PyObject *s) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (p == NULL) return -1;
    return n ? put_tag_bytes(b, tag, p, n) : 0;
}

/* The serialized Decision written straight from the plan (what DecisionEncoder.encode writes of
 * the object `decision` would build), with the encoder's tables. 1 written to *out; 0 when the
 * tables lack one of its models or a number is out of the wire's range (the caller then builds
 * the object and encodes it through the encoder, which adds the models or raises); -1 error. */
static int write_decision(FastPath *self, wbuf *b, wbuf *sub, const req_t *r, PyObject *tier,
                          PyObject *tenant, const sig_t *sig, const plan_t *p,
                          long long elapsed_us, PyObject **out) {
    PyObject *enc = self->o[O_ENCODER], *refs = PyObject_GetAttr(enc, S_REFS);
    PyObject *table = PyObject_GetAttr(enc, S_TABLE), *hops = PyObject_GetAttr(enc, S_HOPS);
    PyObject *model = PyObject_GetAttr(PyTuple_GET_ITEM(p->chain, 0), S_MODEL);
    PyObject *key = model ? PyLong_FromVoidPtr(model) : NULL;
    int rc = -1;
    if (key == NULL || refs == NULL || table == NULL || hops == NULL) goto done;
    rc = 0;
    PyObject *hit = PyDict_Check(refs) ? PyDict_GetItemWithError(refs, key) : NULL;
    if (hit == NULL || !PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 2 || PyTuple_GET_ITEM(hit, 0) != model
        || !PyBytes_Check(PyTuple_GET_ITEM(hit, 1)) || !PyTuple_Check(table) || PyTuple_GET_SIZE(table) != 2
        || !PyDict_Check(hops) || p->max_input < 0 || p->head_output < 0)
        goto done;
    PyObject *body = PyTuple_GET_ITEM(hit, 1);
    PyObject *tier_name = PyTuple_GET_ITEM(tier, 0), *sla = PyTuple_GET_ITEM(tier, 3);
    double max_cost = PyFloat_AsDouble(PyTuple_GET_ITEM(tier, 4));
    long long total = PyLong_AsLongLong(PyTuple_GET_ITEM(tier, 8)), sla_ms = PyLong_AsLongLong(sla);
    long long task = PyLong_AsLongLong(PyTuple_GET_ITEM(sig->task, 0));
    long long mode = PyLong_AsLongLong(PyTuple_GET_ITEM(tier, 9));
    if (PyErr_Occurred()) goto fail;
    if (total < 0 || sla_ms < 0 || task < 0 || mode < 0) goto done;
    char id[32];
    if (id_hex(id) < 0 || put_tag_bytes(b, 0x0A, id, 32) < 0) goto fail;
    if (r->request_id.n) {
        if (put_tag_bytes(b, 0x12, (const char *)r->request_id.p, r->request_id.n) < 0) goto fail;
    } else if (id_hex(id) < 0 || put_tag_bytes(b, 0x12, id, 32) < 0) {
        goto fail;
    }
    if (str_obj(b, 0x1A, self->o[O_VERSION]) < 0 || str_obj(b, 0x22, self->o[O_HASH]) < 0
        || put_tag_bytes(b, 0x2A, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body)) < 0
        || put_uint(sub, 0x08, (unsigned long long)p->max_input) < 0
        || put_uint(sub, 0x10, (unsigned long long)p->head_output) < 0
        || put_double(sub, 0x19, max_cost, 0) < 0 || put_uint(sub, 0x20, (unsigned long long)sla_ms) < 0
        || put_uint(sub, 0x28, (unsigned long long)total) < 0 || submessage(b, 0x32, sub) < 0)
        goto fail;
    int found = chain_tuple_msgs(b, sub, p->chain, hops);
    if (found <= 0) goto found;
    if (put_uint(sub, 0x08, (unsigned long long)task) < 0
        || put_double(sub, 0x15, PyFloat_AS_DOUBLE(sig->confidence), 1) < 0
        || put_double(sub, 0x1D, PyFloat_AS_DOUBLE(sig->difficulty), 1) < 0
        || put_uint(sub, 0x20, (unsigned long long)sig->tokens) < 0 || str_obj(sub, 0x2A, tier_name) < 0
        || str_obj(sub, 0x32, tenant) < 0 || put_uint(sub, 0x38, (unsigned long long)sla_ms) < 0)
        goto fail;
    found = encode_all(sub, p->list, PyTuple_GET_ITEM(table, 0), PyTuple_GET_ITEM(table, 1));
    if (found <= 0) goto found;
    if (put_uint(sub, 0x48, r->task_hint ? 1 : 0) < 0 || submessage(b, 0x42, sub) < 0
        || str_obj(b, 0x4A, p->reason) < 0 || put_uint(b, 0x50, (unsigned long long)elapsed_us) < 0
        || put_uint(b, 0x58, (unsigned long long)mode) < 0 || str_obj(b, 0x62, tenant) < 0
        || str_obj(b, 0x6A, tier_name) < 0)
        goto fail;
    *out = PyBytes_FromStringAndSize(b->buf, b->len);
    rc = *out == NULL ? -1 : 1;
    goto done;
found:
    rc = found; /* 0: a model the tables lack; -1: an error */
    goto done;
fail:
    rc = -1;
done:
    Py_XDECREF(refs);
    Py_XDECREF(table);
    Py_XDECREF(hops);
    Py_XDECREF(model);
    Py_XDECREF(key);
    if (rc == 0 && PyErr_Occurred()) rc = -1;
    return rc;
}

/* The Decision's bytes: written directly, or through the encoder's Python path when its tables
 * lack a model of this decision (the first decisions naming it). */
static PyObject *encode(FastPath *self, const req_t *r, PyObject *tier, PyObject *tenant,
                        const sig_t *sig, const plan_t *p, long long t0) {
    long long elapsed_us = (now_ns() - t0) / 1000;
    char stack_b[4096], stack_sub[4096];
    wbuf b = {stack_b, 0, sizeof stack_b, 0}, sub = {stack_sub, 0, sizeof stack_sub, 0};
    PyObject *out = NULL;
    int rc = write_decision(self, &b, &sub, r, tier, tenant, sig, p, elapsed_us, &out);
    if (b.owned) PyMem_Free(b.buf);
    if (sub.owned) PyMem_Free(sub.buf);
    if (rc != 0) return out;
    PyObject *d = decision(self, r, tier, tenant, sig, p, elapsed_us);
    if (d == NULL) return NULL;
    out = PyObject_CallMethodOneArg(self->o[O_ENCODER], S_ENCODE, d);
    Py_DECREF(d);
    return out;
}

#endif
