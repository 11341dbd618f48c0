/* The native Decide's output: ids, and the Decision's bytes written from the plan's C values
 * (what engine.wire_encode.DecisionEncoder writes of the Decision object the Python path builds;
 * field numbers as documented there).
 * A part of engine/_fastpath.c, included by it once (after the FastPath object's definition). */
#ifndef MODELROUTE_FASTPATH_WRITE_H
#define MODELROUTE_FASTPATH_WRITE_H

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

/* 32 hex digits of a new random 128-bit id at out. */
static int id_hex(char out[32]) {
    if (!rng_ready && rng_seed() < 0) return -1;
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; half++) {
        uint64_t v = rng_next();
        for (int i = 15; i >= 0; i--, v >>= 4) out[half * 16 + i] = hex[v & 15];
    }
    return 0;
}

static int put_text_field(wbuf *b, unsigned char tag, text_t t) {
    return t.n ? put_tag_bytes(b, tag, t.p, t.n) : 0;
}

static int str_obj(wbuf *b, unsigned char tag, PyObject *s) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (p == NULL) return -1;
    return n ? put_tag_bytes(b, tag, p, n) : 0;
}

static int put_bytes_obj(wbuf *b, PyObject *bytes) {
    if (reserve(b, PyBytes_GET_SIZE(bytes)) < 0) return -1;
    put(b, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
    return 0;
}

/* Budget (6), the chain (7, one Hop each) and Signals (8) with every candidate. */
static int write_plan(FastPath *self, wbuf *b, wbuf *sub, const req_t *r, const tier_c *tier,
                      PyObject *tenant, const sig_t *sig, const plan_t *p) {
    if (put_uint(sub, 0x08, (unsigned long long)p->max_input) < 0
        || put_uint(sub, 0x10, (unsigned long long)p->head_output) < 0
        || put_double(sub, 0x19, tier->max_cost, 0) < 0
        || put_uint(sub, 0x20, (unsigned long long)tier->sla_ms) < 0
        || put_uint(sub, 0x28, (unsigned long long)tier->total_ms) < 0 || submessage(b, 0x32, sub) < 0)
        return -1;
    for (Py_ssize_t k = 0; k < p->len; k++) {
        const row_c *row = &self->models[p->chain[k]];
        if (put_uint(sub, 0x08, (unsigned long long)k) < 0 || put_bytes_obj(sub, row->hop_static) < 0
            || put_uint(sub, 0x20, (unsigned long long)p->hop_out[k]) < 0
            || put_double(sub, 0x29, p->hop_cost[k], 0) < 0 || submessage(b, 0x3A, sub) < 0)
            return -1;
    }
    if (put_uint(sub, 0x08, (unsigned long long)sig->task->value) < 0
        || put_double(sub, 0x15, sig->confidence, 1) < 0 || put_double(sub, 0x1D, sig->difficulty, 1) < 0
        || put_uint(sub, 0x20, (unsigned long long)sig->tokens) < 0 || put_text_field(sub, 0x2A, tier->name) < 0
        || str_obj(sub, 0x32, tenant) < 0 || put_uint(sub, 0x38, (unsigned long long)tier->sla_ms) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < self->n_models; i++) {
        const row_c *row = &self->models[i];
        const cand_t *c = &p->c[i];
        text_t why = c->allowed ? (text_t){p->excl[i], (Py_ssize_t)strlen(p->excl[i])} : self->not_allowed;
        if (put_candidate(sub, PyBytes_AS_STRING(row->cand_field), PyBytes_GET_SIZE(row->cand_field),
                          c->cost, c->q, c->score, c->eligible, why.p, why.n) < 0)
            return -1;
    }
    return put_uint(sub, 0x48, r->task_hint ? 1 : 0) < 0 || submessage(b, 0x42, sub) < 0 ? -1 : 0;
}

/* The whole Decision: ids, policy, model, the plan, the reason and the rest. */
static int write_decision(FastPath *self, wbuf *b, wbuf *sub, const req_t *r, const tier_c *tier,
                          PyObject *tenant, const sig_t *sig, const plan_t *p, long long elapsed_us) {
    char id[32];
    if (id_hex(id) < 0 || put_tag_bytes(b, 0x0A, id, 32) < 0) return -1;
    if (r->request_id.n) {
        if (put_tag_bytes(b, 0x12, (const char *)r->request_id.p, r->request_id.n) < 0) return -1;
    } else if (id_hex(id) < 0 || put_tag_bytes(b, 0x12, id, 32) < 0) {
        return -1;
    }
    PyObject *body = self->models[p->chosen].model_body;
    if (str_obj(b, 0x1A, self->o[O_VERSION]) < 0 || str_obj(b, 0x22, self->o[O_HASH]) < 0
        || put_tag_bytes(b, 0x2A, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body)) < 0
        || write_plan(self, b, sub, r, tier, tenant, sig, p) < 0
        || put_tag_bytes(b, 0x4A, p->reason, (Py_ssize_t)p->reason_len) < 0
        || put_uint(b, 0x50, (unsigned long long)elapsed_us) < 0
        || put_uint(b, 0x58, (unsigned long long)tier->mode) < 0 || str_obj(b, 0x62, tenant) < 0
        || put_text_field(b, 0x6A, tier->name) < 0)
        return -1;
    return 0;
}

/* The Decision's bytes; the decision time runs from t0 to the start of the writing. */
static PyObject *encode(FastPath *self, const req_t *r, const tier_c *tier, PyObject *tenant,
                        const sig_t *sig, const plan_t *p, long long t0) {
    long long elapsed_us = (now_ns() - t0) / 1000;
    char stack_b[4096], stack_sub[4096];
    wbuf b = {stack_b, 0, sizeof stack_b, 0}, sub = {stack_sub, 0, sizeof stack_sub, 0};
    PyObject *out = NULL;
    if (write_decision(self, &b, &sub, r, tier, tenant, sig, p, elapsed_us) == 0)
        out = PyBytes_FromStringAndSize(b.buf, b.len);
    if (b.owned) PyMem_Free(b.buf);
    if (sub.owned) PyMem_Free(sub.buf);
    return out;
}

#endif
