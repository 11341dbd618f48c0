/* The native Decide's signals: tokens, features, the fused heads, the route and its links
 * (engine.signals.fused.FusedSignals.read), through the plain-C cores of engine._tokens,
 * engine._featurize and engine._heads: the definitions their Python entry points run, without
 * Python objects in between. A part of engine/_fastpath.c, included by it once (after the
 * FastPath object's definition). */
#ifndef MODELROUTE_FASTPATH_SIGNALS_H
#define MODELROUTE_FASTPATH_SIGNALS_H

typedef struct {
    const task_c *task;
    double confidence, difficulty;
    long long tokens;
    double link_q[FP_MAX_LINKS]; /* each link's learned success probability */
} sig_t;

/* engine.signals.tokens.count_text_tokens of a text, from its UTF-8 bytes (what that function
 * encodes the text to): the whole text, or SAMPLE_CHUNKS evenly spaced slices of it scaled up;
 * -1 on error. */
static long long text_tokens(FastPath *self, span_t s) {
    Py_ssize_t cap = (Py_ssize_t)self->l[L_SAMPLE_BYTES], chunks = (Py_ssize_t)self->l[L_SAMPLE_CHUNKS];
    double v;
    if (s.n <= cap) {
        v = class_dot_core(s.p, s.n, self->coef, 1.0);
    } else {
        Py_ssize_t size = cap / chunks;
        double step = (double)(s.n - size) / (double)(chunks - 1);
        unsigned char *sample = PyMem_Malloc((size_t)(size * chunks) + 1);
        if (sample == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < chunks; i++)
            memcpy(sample + i * size, s.p + (Py_ssize_t)((double)i * step), (size_t)size);
        v = class_dot_core(sample, size * chunks, self->coef, (double)s.n / (double)(size * chunks));
        PyMem_Free(sample);
    }
    if (!isfinite(v) || fabs(v) > 1e15) {
        PyErr_SetString(PyExc_ValueError, "token estimate out of range");
        return -1;
    }
    return (long long)nearbyint(v) > 1 ? (long long)nearbyint(v) : 1;
}

static Py_ssize_t count_byte(span_t s, uint8_t b) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < s.n; i++) n += s.p[i] == b;
    return n;
}

/* engine.features.featurize of a text beyond ASCII (its general path): clip to the head and tail
 * characters, lower-case and encode in Python's terms, then the featurizer's core. */
static int features_utf8(FastPath *self, span_t s, feats_t *out) {
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s.p, s.n, "strict");
    if (text == NULL) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), head = self->head, tail = self->tail;
    PyObject *clipped = NULL, *lower = NULL, *lower_b = NULL, *sample_b = NULL;
    int rc = -1;
    if (n <= head + tail) {
        clipped = Py_NewRef(text);
    } else {
        PyObject *a = PyUnicode_Substring(text, 0, head), *b = PyUnicode_Substring(text, n - tail, n);
        PyObject *ab = a != NULL ? PyUnicode_Concat(a, S_NEWLINE) : NULL;
        if (ab != NULL && b != NULL) clipped = PyUnicode_Concat(ab, b);
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(ab);
        if (clipped == NULL) goto done;
    }
    if ((lower = PyObject_CallMethodNoArgs(clipped, S_LOWER)) == NULL
        || (lower_b = PyUnicode_AsUTF8String(lower)) == NULL
        || (sample_b = PyUnicode_AsUTF8String(clipped)) == NULL)
        goto done;
    rc = features_core((const unsigned char *)PyBytes_AS_STRING(lower_b), PyBytes_GET_SIZE(lower_b),
                       (const unsigned char *)PyBytes_AS_STRING(sample_b), PyBytes_GET_SIZE(sample_b),
                       self->bits, n, count_byte(s, ' '), count_byte(s, '\n'), NULL, out);
done:
    Py_DECREF(text);
    Py_XDECREF(clipped);
    Py_XDECREF(lower);
    Py_XDECREF(lower_b);
    Py_XDECREF(sample_b);
    return rc;
}

/* The task, confidence, difficulty and the links' probabilities from the prompt's features;
 * 0 = Python path. */
static int read_heads(FastPath *self, const req_t *r, const feats_t *f, sig_t *sig) {
    double z[HEADS_MAX_K], e[HEADS_MAX_K];
    if (linear_logits_core(self->table_view.buf, self->rows, self->k, self->mask, self->base,
                           self->bias_view.buf, f->idx, f->val, f->n, f->dense, N_DENSE, z) < 0) {
        PyErr_SetString(PyExc_ValueError, "linear_logits: buffer sizes do not match");
        return -1;
    }
    for (Py_ssize_t j = 0; j < self->n_spec; j++)
        activate_slice(z, self->spec_a[j], self->spec_b[j], self->spec_soft[j], e);
    Py_ssize_t ta = self->spec_a[self->l[L_TASK_SLOT]], tn = self->spec_b[self->l[L_TASK_SLOT]] - ta;
    if (r->task_hint) {
        sig->task = &self->tasks[r->task_hint];
        sig->confidence = 1.0;
    } else {
        Py_ssize_t best = 0;
        if (tn == 0 || tn > self->n_class) return 0;
        for (Py_ssize_t i = 1; i < tn; i++)
            if (e[ta + i] > e[ta + best]) best = i;
        long long value = self->class_task[best];
        if (value < 1 || value > N_TASKS) return 0;
        sig->task = &self->tasks[value];
        sig->confidence = e[ta + best];
    }
    const task_c *t = sig->task;
    Py_ssize_t da = self->spec_a[self->l[L_DIFF_SLOT]], dn = self->spec_b[self->l[L_DIFF_SLOT]] - da;
    if (t->slot < 0 || t->slot >= dn) return 0;
    double d = e[da + t->slot], ls = self->d[D_LENGTH_STD];
    float length;
    memcpy(&length, (const char *)f->dense + self->l[L_LENGTH_OFFSET], sizeof length);
    sig->difficulty = d;
    double zl = ((double)length - self->d[D_LENGTH_MEAN]) / (ls == 0.0 ? 1.0 : ls);
    zl = zl < t->lo ? t->lo : (zl > t->hi ? t->hi : zl); /* as min(max(zl, lo), hi) */
    double route = t->dw * (d - t->mean) / (t->std == 0.0 ? 1.0 : t->std) + t->lw * zl + t->off;
    double level = level_of(d);
    for (Py_ssize_t i = 0; i < self->n_links; i++)
        sig->link_q[i] = link_p(self->link_a[i], self->link_b[i], self->link_c[i], route, level);
    return 1;
}

static int read_signals(FastPath *self, const req_t *r, sig_t *sig) {
    sig->tokens = self->l[L_PER_CONV];
    Py_ssize_t prompt = r->n_messages - 1;
    for (Py_ssize_t i = r->n_messages - 1; i >= 0; i--)
        if (r->role[i] == ROLE_USER) {
            prompt = i;
            break;
        }
    for (Py_ssize_t i = 0; i < r->n_messages; i++) {
        long long n = text_tokens(self, r->content[i]);
        if (n < 0) return -1;
        sig->tokens += self->l[L_PER_MSG] + n;
    }
    feats_t f;
    span_t s = r->content[prompt];
    int rc = r->ascii[prompt] ? features_ascii_core(s.p, s.n, self->bits, self->head, self->tail, &f)
                              : features_utf8(self, s, &f);
    if (rc < 0) return -1;
    int ok = read_heads(self, r, &f, sig);
    feats_free(&f);
    return ok;
}

#endif
