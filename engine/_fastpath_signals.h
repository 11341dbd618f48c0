/* The native Decide's signals: tokens, features, the fused heads, the route and its links.
 * A part of engine/_fastpath.c, included by it once (after the FastPath object's definition). */
#ifndef MODELROUTE_FASTPATH_SIGNALS_H
#define MODELROUTE_FASTPATH_SIGNALS_H

/* ---- the signals (engine.signals.fused.FusedSignals.read) ---- */

typedef struct {
    PyObject *task;       /* the tasks tuple's row (borrowed) */
    PyObject *confidence; /* new references from here on */
    PyObject *difficulty;
    PyObject *quality;
    long long tokens;
} sig_t;

static void sig_clear(sig_t *s) {
    Py_CLEAR(s->confidence);
    Py_CLEAR(s->difficulty);
    Py_CLEAR(s->quality);
}

/* engine.signals.tokens.count_text_tokens of a text, from its UTF-8 bytes (what that function
 * encodes the text to); -1 on error. */
static long long text_tokens(FastPath *self, span_t s) {
    Py_ssize_t cap = (Py_ssize_t)self->l[L_SAMPLE_BYTES], chunks = (Py_ssize_t)self->l[L_SAMPLE_CHUNKS];
    PyObject *sample, *scale;
    if (s.n <= cap) {
        sample = PyBytes_FromStringAndSize((const char *)s.p, s.n);
        scale = PyFloat_FromDouble(1.0);
    } else {
        Py_ssize_t size = cap / chunks;
        double step = (double)(s.n - size) / (double)(chunks - 1);
        sample = PyBytes_FromStringAndSize(NULL, size * chunks);
        if (sample != NULL)
            for (Py_ssize_t i = 0; i < chunks; i++)
                memcpy(PyBytes_AS_STRING(sample) + i * size, s.p + (Py_ssize_t)((double)i * step),
                       (size_t)size);
        scale = PyFloat_FromDouble((double)s.n / (double)(size * chunks));
    }
    long long out = -1;
    if (sample != NULL && scale != NULL) {
        PyObject *args[3] = {sample, self->o[O_COEF], scale};
        PyObject *x = call(self->o[O_CLASS_DOT], args, 3);
        if (x != NULL) {
            double v = PyFloat_AsDouble(x);
            Py_DECREF(x);
            if (!(v == -1.0 && PyErr_Occurred())) {
                if (!isfinite(v) || fabs(v) > 1e15) PyErr_SetString(PyExc_ValueError, "token estimate out of range");
                else out = (long long)nearbyint(v) > 1 ? (long long)nearbyint(v) : 1;
            }
        }
    }
    Py_XDECREF(sample);
    Py_XDECREF(scale);
    return out;
}

/* The task, confidence, difficulty and quality from the prompt's features; 0 = Python path. */
static int read_heads(FastPath *self, const req_t *r, PyObject *feats, sig_t *sig) {
    PyObject *dense = PyTuple_GET_ITEM(feats, 2);
    Py_ssize_t off = (Py_ssize_t)self->l[L_LENGTH_OFFSET];
    if (!PyBytes_Check(dense) || off < 0 || PyBytes_GET_SIZE(dense) < off + 4) return 0;
    float length;
    memcpy(&length, PyBytes_AS_STRING(dense) + off, sizeof length);
    PyObject *la[8] = {self->o[O_TABLE], self->o[O_K], self->o[O_MASK], self->o[O_BASE],
                       self->o[O_BIAS], PyTuple_GET_ITEM(feats, 0), PyTuple_GET_ITEM(feats, 1),
                       dense};
    PyObject *z = call(self->o[O_LOGITS], la, 8), *probs = NULL, *route = NULL, *linked = NULL;
    int ok = -1;
    if (z == NULL) return -1;
    PyObject *aa[2] = {z, self->o[O_SPEC]};
    probs = call(self->o[O_ACTIVATE], aa, 2);
    if (probs == NULL || !PyTuple_Check(probs) || PyTuple_GET_SIZE(probs) <= self->l[L_TASK_SLOT]
        || PyTuple_GET_SIZE(probs) <= self->l[L_DIFF_SLOT])
        goto done;
    if (r->task_hint) {
        sig->task = PyTuple_GET_ITEM(self->o[O_TASKS], r->task_hint);
        sig->confidence = PyFloat_FromDouble(1.0);
    } else {
        PyObject *scores = PyTuple_GET_ITEM(probs, self->l[L_TASK_SLOT]);
        Py_ssize_t best = 0, n = PyList_GET_SIZE(scores);
        if (n == 0 || n > PyTuple_GET_SIZE(self->o[O_CLASS_TASK])) goto done;
        for (Py_ssize_t i = 1; i < n; i++)
            if (PyFloat_AS_DOUBLE(PyList_GET_ITEM(scores, i)) > PyFloat_AS_DOUBLE(PyList_GET_ITEM(scores, best)))
                best = i;
        long long value = PyLong_AsLongLong(PyTuple_GET_ITEM(self->o[O_CLASS_TASK], best));
        if (value < 1 || value > N_TASKS) goto done;
        sig->task = PyTuple_GET_ITEM(self->o[O_TASKS], value);
        sig->confidence = Py_NewRef(PyList_GET_ITEM(scores, best));
    }
    PyObject *t = sig->task;
    Py_ssize_t slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 2));
    PyObject *diffs = PyTuple_GET_ITEM(probs, self->l[L_DIFF_SLOT]);
    if (slot < 0 || slot >= PyList_GET_SIZE(diffs)) goto done;
    sig->difficulty = Py_NewRef(PyList_GET_ITEM(diffs, slot));
    double d = PyFloat_AS_DOUBLE(sig->difficulty), mean = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 3));
    double std = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 4)), ls = self->d[D_LENGTH_STD];
    route = PyFloat_FromDouble((d - mean) / (std == 0.0 ? 1.0 : std)
                               + self->d[D_LENGTH_WEIGHT] * ((double)length - self->d[D_LENGTH_MEAN])
                                     / (ls == 0.0 ? 1.0 : ls));
    if (route == NULL) goto done;
    PyObject *ka[3] = {route, self->o[O_LINK_A], self->o[O_LINK_B]};
    linked = call(self->o[O_LINKS], ka, 3);
    PyObject *names = self->o[O_LINK_NAMES];
    if (linked == NULL || (sig->quality = PyDict_New()) == NULL) goto done;
    if (PyList_GET_SIZE(linked) != PyTuple_GET_SIZE(names)) {
        PyErr_SetString(PyExc_ValueError, "FastPath: links do not match the link names");
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++)
        if (PyDict_SetItem(sig->quality, PyTuple_GET_ITEM(names, i), PyList_GET_ITEM(linked, i)) < 0)
            goto done;
    ok = 1;
done:
    if (ok == -1 && !PyErr_Occurred()) ok = 0;
    Py_DECREF(z);
    Py_XDECREF(probs);
    Py_XDECREF(route);
    Py_XDECREF(linked);
    return ok;
}

static Py_ssize_t count_byte(span_t s, uint8_t b) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < s.n; i++) n += s.p[i] == b;
    return n;
}

/* engine.features.featurize of a text beyond ASCII (its general path): clip to the head and tail
 * characters, lower-case, encode, and engine._featurize.features. */
static PyObject *features_utf8(FastPath *self, span_t s) {
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s.p, s.n, "strict");
    if (text == NULL) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), head = PyLong_AsSsize_t(self->o[O_HEAD]);
    Py_ssize_t tail = PyLong_AsSsize_t(self->o[O_TAIL]);
    PyObject *clipped = NULL, *lower = NULL, *lower_b = NULL, *sample_b = NULL, *out = NULL;
    if (PyErr_Occurred()) goto done;
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
    PyObject *counts[3] = {PyLong_FromSsize_t(n), PyLong_FromSsize_t(count_byte(s, ' ')),
                           PyLong_FromSsize_t(count_byte(s, '\n'))};
    if (counts[0] && counts[1] && counts[2]) {
        PyObject *fa[6] = {lower_b, sample_b, self->o[O_BITS], counts[0], counts[1], counts[2]};
        out = call(self->o[O_FEATURES_UTF8], fa, 6);
    }
    for (int k = 0; k < 3; k++) Py_XDECREF(counts[k]);
done:
    Py_DECREF(text);
    Py_XDECREF(clipped);
    Py_XDECREF(lower);
    Py_XDECREF(lower_b);
    Py_XDECREF(sample_b);
    return out;
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
    PyObject *feats;
    if (r->ascii[prompt]) {
        PyObject *text = ascii_str(r->content[prompt]);
        if (text == NULL) return -1;
        PyObject *fa[4] = {text, self->o[O_BITS], self->o[O_HEAD], self->o[O_TAIL]};
        feats = call(self->o[O_FEATURES], fa, 4);
        Py_DECREF(text);
    } else {
        feats = features_utf8(self, r->content[prompt]);
    }
    if (feats == NULL) return -1;
    int ok = PyTuple_Check(feats) && PyTuple_GET_SIZE(feats) == 3 ? read_heads(self, r, feats, sig) : 0;
    Py_DECREF(feats);
    return ok;
}

#endif
