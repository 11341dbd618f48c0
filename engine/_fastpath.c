/* engine._fastpath: the common Decide in one native call, raw DecideRequest bytes in, serialized
 * Decision bytes out.
 *
 * FastPath(spec).decide(raw) -> bytes | None
 *
 * It does what the servicer's Python path does (engine.wire_decode.decide_input,
 * engine.validate.validate_request, engine.signals.fused.FusedSignals.read, engine.policy.plan,
 * engine.service.Engine._decide and engine.wire_encode.DecisionEncoder.encode), calling the same
 * C kernels (engine._featurize, engine._heads, engine._tokens, engine._policy, engine._wire)
 * through their Python entry points, with the Python glue between them spelled in C, operation
 * for operation, so both give the same floats. `spec` is the dict engine/fastpath.py builds.
 *
 * It answers only the common case and returns None for anything else, and the caller then takes
 * the Python path, which raises the field-naming errors: bytes that are not a plain request (a
 * group, a wrong wire type for a known field, a truncated field), a message content that is not
 * well-formed UTF-8, any other string with a non-ASCII byte, overrides, an unknown or unset role
 * or task hint, anything validation rejects, a tier with a cascade or the slow-path router, more
 * than MAX_MESSAGES messages, or no eligible model. Message contents beyond ASCII are decided
 * here too: their text is decoded and clipped, lower-cased and encoded as the Python path does.
 * Held equal to the Python path by tests/unit/test_fastpath.py.
 */
#define PY_SSIZE_T_CLEAN
#define _POSIX_C_SOURCE 200809L
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sys/random.h>
#include <time.h>

#include "_fastpath_wire.h"
#include "_wire_core.h"

#define ROLE_USER 2
#define N_ROLES 4
#define N_TASKS 9

/* ---- the FastPath object: the spec's values, read once ---- */

enum {
    O_FEATURES, O_LOGITS, O_ACTIVATE, O_LINKS, O_CLASS_DOT, O_CANDIDATES, O_FINISH, O_BUILD,
    O_ENCODE, O_ENCODER, O_TABLE, O_K, O_MASK, O_BASE, O_BIAS, O_SPEC, O_BITS,
    O_HEAD, O_TAIL, O_CLASS_TASK, O_TASKS, O_LINK_NAMES, O_LINK_A, O_LINK_B, O_COEF, O_TIERS,
    O_TENANT_TIER, O_DEFAULT_TIER, O_ROWS, O_ACTIONS, O_VERSION, O_HASH, O_CANDIDATE, O_HOP,
    O_SIGNALS, O_DECISION, O_BUDGET, O_FEATURES_UTF8, N_OBJ
};
static const char *OBJ_NAMES[N_OBJ] = {
    "features_ascii", "linear_logits", "activate", "links", "class_dot", "candidates", "finish",
    "build", "encode_decision", "encoder", "table", "k", "mask", "base", "bias",
    "spec", "hash_bits", "head_chars", "tail_chars", "class_task", "tasks", "link_names",
    "link_a", "link_b", "coef", "tiers", "tenant_tier", "default_tier", "rows", "actions",
    "version", "content_hash", "Candidate", "Hop", "Signals", "Decision", "Budget",
    "features"};
enum {
    L_TASK_SLOT, L_DIFF_SLOT, L_LENGTH_OFFSET, L_PER_CONV, L_PER_MSG, L_SAMPLE_BYTES,
    L_SAMPLE_CHUNKS, L_MAX_PROMPT_CHARS, L_ENFORCE_TENANTS, L_MAX_OUT_LIMIT, L_MAX_ID_CHARS,
    L_MAX_METADATA, L_RESERVE, N_LONG
};
static const char *LONG_NAMES[N_LONG] = {
    "task_slot", "difficulty_slot", "length_offset", "per_conversation_tokens",
    "per_message_tokens", "sample_bytes", "sample_chunks", "max_prompt_chars", "enforce_tenants",
    "max_output_tokens_limit", "max_id_chars", "max_metadata_entries", "min_output_reserve"};
enum { D_LENGTH_WEIGHT, D_LENGTH_MEAN, D_LENGTH_STD, D_PREFILL_TPS, D_SLOPE, N_DOUBLE };
static const char *DOUBLE_NAMES[N_DOUBLE] = {
    "length_weight", "length_mean", "length_std", "prefill_tokens_per_s", "slope"};

typedef struct {
    PyObject_HEAD
    PyObject *o[N_OBJ];
    long long l[N_LONG];
    double d[N_DOUBLE];
} FastPath;

static PyObject *S_CONTEXT_WINDOW, *S_MAX_OUTPUT_TOKENS, *S_MODEL, *S_REFS, *S_TABLE, *S_HOPS,
    *S_ENCODE, *S_EMPTY, *S_LOWER, *S_NEWLINE;

static int fp_init(FastPath *self, PyObject *args, PyObject *Py_UNUSED(kw)) {
    PyObject *spec;
    if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &spec)) return -1;
    for (int i = 0; i < N_OBJ + N_LONG + N_DOUBLE; i++) {
        const char *name = i < N_OBJ ? OBJ_NAMES[i]
                           : i < N_OBJ + N_LONG ? LONG_NAMES[i - N_OBJ]
                                                : DOUBLE_NAMES[i - N_OBJ - N_LONG];
        PyObject *v = PyDict_GetItemString(spec, name);
        if (v == NULL) {
            PyErr_Format(PyExc_KeyError, "FastPath spec: missing %s", name);
            return -1;
        }
        if (i < N_OBJ) {
            Py_XSETREF(self->o[i], Py_NewRef(v));
        } else if (i < N_OBJ + N_LONG) {
            self->l[i - N_OBJ] = PyLong_AsLongLong(v);
        } else {
            self->d[i - N_OBJ - N_LONG] = PyFloat_AsDouble(v);
        }
        if (PyErr_Occurred()) return -1;
    }
    if (!PyTuple_Check(self->o[O_TASKS]) || PyTuple_GET_SIZE(self->o[O_TASKS]) != N_TASKS + 1
        || !PyDict_Check(self->o[O_TIERS]) || !PyDict_Check(self->o[O_TENANT_TIER])
        || !PyTuple_Check(self->o[O_CLASS_TASK]) || !PyTuple_Check(self->o[O_LINK_NAMES])) {
        PyErr_SetString(PyExc_TypeError, "FastPath spec: bad tasks, tiers or tables");
        return -1;
    }
    return 0;
}

static void fp_dealloc(FastPath *self) {
    for (int i = 0; i < N_OBJ; i++) Py_CLEAR(self->o[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ascii_str(span_t s) {
    PyObject *u = PyUnicode_New(s.n, 127);
    if (u != NULL) memcpy(PyUnicode_1BYTE_DATA(u), s.p, (size_t)s.n);
    return u;
}

static PyObject *call(PyObject *f, PyObject *const *args, size_t n) {
    return PyObject_Vectorcall(f, args, n, NULL);
}

/* A tuple subclass instance (a NamedTuple) holding `items` (new references, stolen). */
static PyObject *named_tuple(PyObject *cls, PyObject **items, Py_ssize_t n) {
    PyObject *t = NULL;
    for (Py_ssize_t k = 0; k < n; k++)
        if (items[k] == NULL) goto fail;
    t = ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, n);
    if (t == NULL) goto fail;
    for (Py_ssize_t k = 0; k < n; k++) PyTuple_SET_ITEM(t, k, items[k]);
    return t;
fail:
    for (Py_ssize_t k = 0; k < n; k++) Py_XDECREF(items[k]);
    return NULL;
}

/* ---- validation (engine.validate) and the tier (Config.tier_for) ---- */

static int is_py_space(uint8_t c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }

static int all_space(span_t s) {
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (!is_py_space(s.p[i])) return 0;
    return 1;
}

/* str.isspace() of well-formed UTF-8 beyond ASCII: 1, 0, or -1 with an error set. Any ASCII byte
 * that is not a space settles it without decoding. */
static int utf8_all_space(span_t s) {
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (s.p[i] < 0x80 && !is_py_space(s.p[i])) return 0;
    PyObject *u = PyUnicode_DecodeUTF8((const char *)s.p, s.n, "strict");
    if (u == NULL) return -1;
    int kind = PyUnicode_KIND(u), out = 1;
    const void *data = PyUnicode_DATA(u);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(u) && out; i++)
        out = Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i));
    Py_DECREF(u);
    return out;
}

/* len(str) of well-formed UTF-8: the bytes that start a character. */
static Py_ssize_t utf8_chars(span_t s) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < s.n; i++) n += (s.p[i] & 0xC0) != 0x80;
    return n;
}

/* The request's tier tuple (borrowed), or NULL: with an error set on failure, without one when
 * the Python path must decide (it rejects the request, or the tier is not a fast one). */
static PyObject *check(FastPath *self, const req_t *r, PyObject *tenant) {
    Py_ssize_t total = 0;
    if (r->n_messages == 0) return NULL;
    for (Py_ssize_t i = 0; i < r->n_messages; i++) {
        if (r->role[i] < 1 || r->role[i] > N_ROLES) return NULL;
        if (r->ascii[i]) {
            if (all_space(r->content[i])) return NULL;
            total += r->content[i].n;
        } else {
            if (utf8_all_space(r->content[i]) != 0) return NULL;
            total += utf8_chars(r->content[i]);
        }
    }
    if (total > self->l[L_MAX_PROMPT_CHARS] || r->request_id.n > self->l[L_MAX_ID_CHARS]
        || (r->has_max_out && (r->max_out == 0 || (long long)r->max_out > self->l[L_MAX_OUT_LIMIT]))
        || r->n_metadata > self->l[L_MAX_METADATA] || r->task_hint < 0 || r->task_hint > N_TASKS)
        return NULL;
    PyObject *tenants = self->o[O_TENANT_TIER], *name;
    if (self->l[L_ENFORCE_TENANTS]
        && (r->tenant.n == 0 || PyDict_GetItemWithError(tenants, tenant) == NULL))
        return NULL;
    if (r->tier.n) {
        PyObject *given = ascii_str(r->tier);
        if (given == NULL) return NULL;
        PyObject *t = PyDict_GetItemWithError(self->o[O_TIERS], given);
        Py_DECREF(given);
        if (t == NULL) return NULL;
        return PyObject_IsTrue(PyTuple_GET_ITEM(t, 10)) ? t : NULL;
    }
    name = PyDict_GetItemWithError(tenants, tenant);
    if (name == NULL && PyErr_Occurred()) return NULL;
    PyObject *t = PyDict_GetItemWithError(self->o[O_TIERS], name ? name : self->o[O_DEFAULT_TIER]);
    if (t == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "FastPath: a tenant's tier is unknown");
        return NULL;
    }
    return PyObject_IsTrue(PyTuple_GET_ITEM(t, 10)) ? t : NULL;
}

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

/* ---- the plan (engine.policy.plan without a cascade) ---- */

typedef struct {
    PyObject *list;  /* list of Candidate, as engine._policy.finish takes them */
    PyObject *chain; /* tuple of Hop */
    PyObject *reason;
    long long max_input, head_output; /* the budget's numbers the plan sets (the rest: tier's) */
} plan_t;

static void plan_clear(plan_t *p) {
    Py_CLEAR(p->list);
    Py_CLEAR(p->chain);
    Py_CLEAR(p->reason);
}

/* engine.policy._Ctx.exclusion for an allowed model, into buf; 1 when it is the SLA's. */
static int exclusion(FastPath *self, PyObject *row, double cost, long long tokens, long long sla,
                     double max_cost, char *buf, size_t cap) {
    long long window = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 5));
    double ttft = (double)PyLong_AsLongLong(PyTuple_GET_ITEM(row, 7));
    double in_price = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 3));
    double out_price = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 4));
    long long reserve = self->l[L_RESERVE];
    buf[0] = 0;
    if (tokens + reserve > window) {
        snprintf(buf, cap, "prompt of %lld tokens does not fit the context window of %lld", tokens, window);
    } else if (ttft + 1000.0 * (double)tokens / self->d[D_PREFILL_TPS] > (double)sla) {
        snprintf(buf, cap, "typical time to first token exceeds the %lld ms SLA", sla);
        return 1;
    } else if (((double)tokens * in_price + (double)reserve * out_price) / 1e6 > max_cost) {
        snprintf(buf, cap, "prompt alone costs more than the $%g budget", max_cost);
    } else if (cost > max_cost) {
        snprintf(buf, cap, "expected cost $%.4f exceeds the $%g budget", cost, max_cost);
    }
    return 0;
}

/* Every model's candidate, the excluded ones with their reasons; 0 = no model is eligible. */
static int plan_candidates(FastPath *self, PyObject *tier, const sig_t *sig, long long wanted,
                           plan_t *p, int *sla_excluded) {
    PyObject *t = sig->task, *rows = self->o[O_ROWS];
    long long sla = PyLong_AsLongLong(PyTuple_GET_ITEM(tier, 3));
    long long expected = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 5));
    double max_cost = PyFloat_AsDouble(PyTuple_GET_ITEM(tier, 4));
    double weight = PyFloat_AsDouble(PyTuple_GET_ITEM(tier, 5)) / max_cost;
    double d = PyFloat_AS_DOUBLE(sig->difficulty), x = d > 0.0 ? d : 0.0;
    x = x < 1.0 ? x : 1.0;
    double shift = self->d[D_SLOPE] * (x - 0.5) / 0.5;
    PyObject *params = Py_BuildValue(
        "(LLdddddLd)", sig->tokens, expected < wanted ? expected : wanted, (double)sla, max_cost,
        weight, PyFloat_AsDouble(PyTuple_GET_ITEM(t, 6)), shift, self->l[L_RESERVE],
        1000.0 * (double)sig->tokens / self->d[D_PREFILL_TPS]);
    if (params == NULL) return -1;
    PyObject *ca[6] = {self->o[O_CANDIDATE], rows, PyTuple_GET_ITEM(t, 7), sig->quality,
                       PyTuple_GET_ITEM(tier, 1), params};
    PyObject *res = call(self->o[O_CANDIDATES], ca, 6);
    Py_DECREF(params);
    if (res == NULL) return -1;
    PyObject *out = PyTuple_GET_ITEM(res, 0), *pending = PyTuple_GET_ITEM(res, 1);
    Py_ssize_t n_eligible = PyLong_AsSsize_t(PyTuple_GET_ITEM(res, 2));
    int ok = -1;
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(pending); j++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(pending, j));
        PyObject *c = PyList_GET_ITEM(out, i);
        char buf[256];
        *sla_excluded |= exclusion(self, PyTuple_GET_ITEM(rows, i), PyFloat_AsDouble(PyTuple_GET_ITEM(c, 1)),
                                   sig->tokens, sla, max_cost, buf, sizeof buf);
        if (PyErr_Occurred()) goto done;
        PyObject *items[6];
        for (int k = 0; k < 5; k++) items[k] = Py_NewRef(PyTuple_GET_ITEM(c, k));
        items[5] = PyUnicode_FromString(buf);
        PyObject *nc = named_tuple(self->o[O_CANDIDATE], items, 6);
        if (nc == NULL) goto done;
        PyList_SetItem(out, i, nc);
    }
    ok = n_eligible > 0;
    if (ok) p->list = Py_NewRef(out);
done:
    Py_DECREF(res);
    return ok;
}

static long long attr_long(PyObject *o, PyObject *name) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL) return -1;
    long long out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return out;
}

static int make_plan(FastPath *self, PyObject *tier, const sig_t *sig, const req_t *r, plan_t *p) {
    long long wanted = r->has_max_out ? (long long)r->max_out : PyLong_AsLongLong(PyTuple_GET_ITEM(tier, 6));
    int sla_excluded = 0;
    int ok = plan_candidates(self, tier, sig, wanted, p, &sla_excluded);
    if (ok <= 0) return ok;
    PyObject *t = sig->task, *list = p->list;
    PyObject *costs = Py_BuildValue("(LLdLL)", sig->tokens, wanted, PyFloat_AsDouble(PyTuple_GET_ITEM(tier, 4)),
                                    PyLong_AsLongLong(PyTuple_GET_ITEM(t, 5)), self->l[L_RESERVE]);
    PyObject *why = Py_BuildValue("(OddOOO)", PyTuple_GET_ITEM(t, 1), PyFloat_AsDouble(sig->confidence),
                                  PyFloat_AS_DOUBLE(sig->difficulty), PyTuple_GET_ITEM(tier, 0),
                                  PyTuple_GET_ITEM(tier, 3), sla_excluded ? Py_True : Py_False);
    PyObject *res = NULL;
    if (list != NULL && costs != NULL && why != NULL) {
        PyObject *fa[8] = {self->o[O_HOP], list, self->o[O_ROWS], PyTuple_GET_ITEM(tier, 2),
                           PyTuple_GET_ITEM(tier, 7), costs, self->o[O_ACTIONS], why};
        res = call(self->o[O_FINISH], fa, 8);
    }
    Py_XDECREF(costs);
    Py_XDECREF(why);
    if (res == NULL) return -1;
    p->chain = Py_NewRef(PyTuple_GET_ITEM(res, 1));
    p->reason = Py_NewRef(PyTuple_GET_ITEM(res, 2));
    Py_DECREF(res);
    long long widest = -1, head_out = -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(p->chain); i++) {
        long long w = attr_long(PyTuple_GET_ITEM(p->chain, i), S_CONTEXT_WINDOW);
        if (w == -1 && PyErr_Occurred()) return -1;
        widest = w > widest ? w : widest;
    }
    if (PyTuple_GET_SIZE(p->chain) == 0) return 0;
    head_out = attr_long(PyTuple_GET_ITEM(p->chain, 0), S_MAX_OUTPUT_TOKENS);
    if (head_out == -1 && PyErr_Occurred()) return -1;
    p->max_input = widest - self->l[L_RESERVE];
    p->head_output = head_out;
    return 1;
}

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

static PyObject *decide_request(FastPath *self, const req_t *r) {
    long long t0 = now_ns();
    sig_t sig = {0};
    plan_t p = {0};
    PyObject *out = NULL, *tier;
    PyObject *tenant = r->tenant.n ? ascii_str(r->tenant) : Py_NewRef(S_EMPTY);
    if (tenant == NULL) return NULL;
    int ok = (tier = check(self, r, tenant)) != NULL;
    if (ok) ok = read_signals(self, r, &sig);
    if (ok > 0) ok = make_plan(self, tier, &sig, r, &p);
    if (ok > 0) out = encode(self, r, tier, tenant, &sig, &p, t0);
    Py_DECREF(tenant);
    sig_clear(&sig);
    plan_clear(&p);
    if (out == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return out;
}

static PyObject *fp_decide(FastPath *self, PyObject *raw) {
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "decide: raw must be bytes");
        return NULL;
    }
    if (self->o[O_ROWS] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "decide: FastPath not initialised");
        return NULL;
    }
    /* ~6 KB, off the stack; per call, as the kernels may release the GIL on long prompts */
    req_t *r = PyMem_RawMalloc(sizeof(req_t));
    if (r == NULL) return PyErr_NoMemory();
    PyObject *out;
    if (parse_request((const uint8_t *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), r))
        out = decide_request(self, r);
    else
        out = Py_NewRef(Py_None);
    PyMem_RawFree(r);
    return out;
}

static PyMethodDef fp_methods[] = {
    {"decide", (PyCFunction)fp_decide, METH_O,
     "decide(raw) -> bytes | None: the serialized Decision of a DecideRequest, or None when the "
     "Python path must decide."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "engine._fastpath.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FastPath(spec): the common Decide in one native call (see engine/fastpath.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fp_init,
    .tp_dealloc = (destructor)fp_dealloc,
    .tp_methods = fp_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._fastpath", NULL, -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastpath(void) {
    S_CONTEXT_WINDOW = PyUnicode_InternFromString("context_window");
    S_MAX_OUTPUT_TOKENS = PyUnicode_InternFromString("max_output_tokens");
    S_MODEL = PyUnicode_InternFromString("model");
    S_REFS = PyUnicode_InternFromString("_refs");
    S_TABLE = PyUnicode_InternFromString("_table");
    S_HOPS = PyUnicode_InternFromString("_hops");
    S_ENCODE = PyUnicode_InternFromString("encode");
    S_EMPTY = PyUnicode_InternFromString("");
    S_LOWER = PyUnicode_InternFromString("lower");
    S_NEWLINE = PyUnicode_InternFromString("\n");
    if (!S_CONTEXT_WINDOW || !S_MAX_OUTPUT_TOKENS || !S_MODEL || !S_REFS || !S_TABLE || !S_HOPS
        || !S_ENCODE || !S_EMPTY || !S_LOWER || !S_NEWLINE || PyType_Ready(&FastPathType) < 0)
        return NULL;
    if (wire_core_init() < 0) return NULL;
    if (pthread_atfork(NULL, NULL, rng_forked) != 0) {
        PyErr_SetString(PyExc_OSError, "engine._fastpath: pthread_atfork failed");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddObjectRef(m, "FastPath", (PyObject *)&FastPathType) < 0) Py_CLEAR(m);
    return m;
}
