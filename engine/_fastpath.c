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
 * well-formed UTF-8, any other string with a non-ASCII byte, a second Overrides message or more
 * than 64 allowed models in it, an unknown or unset role or task hint, anything validation
 * rejects, a tier with a cascade or the slow-path router, more than MAX_MESSAGES messages, or no
 * eligible model. Message contents beyond ASCII and per-request overrides are decided here too.
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
#include "_featurize_core.h"
#include "_heads_core.h"
#include "_policy_core.h"
#include "_tokens_core.h"
#include "_wire_core.h"

#define ROLE_USER 2
#define N_ROLES 4
#define N_TASKS 9
#define FP_MAX_MODELS 64 /* more models than this: the Python path decides */
#define FP_MAX_LINKS 64

/* ---- the FastPath object: the spec's values, read once ---- */

enum {
    O_TABLE, O_K, O_MASK, O_BASE, O_BIAS, O_SPEC, O_BITS, O_HEAD, O_TAIL, O_CLASS_TASK, O_TASKS,
    O_LINK_NAMES, O_LINK_A, O_LINK_B, O_LINK_C, O_COEF, O_TIERS, O_TENANT_TIER, O_DEFAULT_TIER,
    O_ROWS, O_ROW_LINKS, O_CAND_FIELDS, O_HOP_STATICS, O_MODEL_BODIES, O_NOT_ALLOWED, O_VERSION, O_HASH,
    O_ROW_FOOTING, N_OBJ
};
static const char *OBJ_NAMES[N_OBJ] = {
    "table", "k", "mask", "base", "bias", "spec", "hash_bits", "head_chars", "tail_chars",
    "class_task", "tasks", "link_names", "link_a", "link_b", "link_c", "coef", "tiers",
    "tenant_tier", "default_tier", "rows", "row_links", "candidate_fields", "hop_statics", "model_bodies",
    "not_allowed", "version", "content_hash", "row_footing"};
enum {
    L_TASK_SLOT, L_DIFF_SLOT, L_LENGTH_OFFSET, L_PER_CONV, L_PER_MSG, L_SAMPLE_BYTES,
    L_SAMPLE_CHUNKS, L_MAX_PROMPT_CHARS, L_ENFORCE_TENANTS, L_MAX_OUT_LIMIT, L_MAX_ID_CHARS,
    L_MAX_METADATA, L_RESERVE, L_MAX_SLA_MS, N_LONG
};
static const char *LONG_NAMES[N_LONG] = {
    "task_slot", "difficulty_slot", "length_offset", "per_conversation_tokens",
    "per_message_tokens", "sample_bytes", "sample_chunks", "max_prompt_chars", "enforce_tenants",
    "max_output_tokens_limit", "max_id_chars", "max_metadata_entries", "min_output_reserve",
    "max_sla_ms"};
enum { D_LENGTH_MEAN, D_LENGTH_STD, D_PREFILL_TPS, D_SLOPE, D_MAX_COST, N_DOUBLE };
static const char *DOUBLE_NAMES[N_DOUBLE] = {
    "length_mean", "length_std", "prefill_tokens_per_s", "slope", "max_cost_usd"};

/* A task's values (engine/fastpath.py: the tasks tuple's rows). */
typedef struct {
    long long value; /* the TaskType */
    text_t label;
    Py_ssize_t slot; /* its difficulty head */
    double mean, std, sensitivity;
    /* its route family's knobs: difficulty and length weights, offset, z(length) range */
    double dw, lw, off, lo, hi;
    long long expected; /* output tokens */
    double prior[FP_MAX_MODELS]; /* each model's ability prior, in logit space */
} task_c;

/* A model row's values, with its serialized parts (held by the spec's tuples). */
typedef struct {
    prow_t r;
    Py_ssize_t link; /* its learned link, or -1 (the prior) */
    text_t name;     /* its ModelRef's name, UTF-8 */
    text_t key;      /* its name in the policy (what overrides' allowed_models name) */
    PyObject *cand_field, *hop_static, *model_body;
} row_c;

typedef struct {
    PyObject_HEAD
    PyObject *o[N_OBJ];
    long long l[N_LONG];
    double d[N_DOUBLE];
    /* the kernels' inputs as C values, read from the spec once */
    Py_buffer table_view, bias_view; /* held while the object lives */
    int views;                       /* how many of the two are held */
    Py_ssize_t rows, k, mask, base, head, tail;
    unsigned int bits;
    Py_ssize_t n_spec, spec_a[HEADS_MAX_K], spec_b[HEADS_MAX_K];
    int spec_soft[HEADS_MAX_K];
    Py_ssize_t n_class;
    long long class_task[HEADS_MAX_K];
    Py_ssize_t n_links;
    double *link_a, *link_b, *link_c; /* PyMem */
    double coef[TOK_FEATURES + 1];
    task_c tasks[N_TASKS + 1]; /* by TaskType value; 0 unused */
    Py_ssize_t n_models;
    row_c models[FP_MAX_MODELS];
    /* per model: 0 no link, 1 a model of the pair, 2 another linked model (engine.service.
     * PairFooting.role); NULL when every decision takes the same links */
    const unsigned char *footing;
    text_t not_allowed;
} FastPath;

static PyObject *S_NAME, *S_EMPTY, *S_LOWER, *S_NEWLINE;

static void release_inputs(FastPath *self) {
    if (self->views > 1) PyBuffer_Release(&self->bias_view);
    if (self->views > 0) PyBuffer_Release(&self->table_view);
    self->views = 0;
    PyMem_Free(self->link_a);
    PyMem_Free(self->link_b);
    PyMem_Free(self->link_c);
    self->link_a = self->link_b = self->link_c = NULL;
}

static int doubles_of(PyObject *tup, Py_ssize_t n, double *out) {
    if (!PyTuple_Check(tup) || PyTuple_GET_SIZE(tup) != n) {
        PyErr_SetString(PyExc_TypeError, "FastPath spec: a tuple of floats has the wrong size");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if ((out[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tup, i))) == -1.0 && PyErr_Occurred()) return -1;
    return 0;
}

static int text_of_str(PyObject *str, text_t *out) {
    if (!PyUnicode_Check(str)) {
        PyErr_SetString(PyExc_TypeError, "FastPath spec: a name is not a str");
        return -1;
    }
    out->p = PyUnicode_AsUTF8AndSize(str, &out->n);
    return out->p == NULL ? -1 : 0;
}

static PyObject *bytes_at(PyObject *tup, Py_ssize_t i) {
    PyObject *b = PyTuple_Check(tup) && i < PyTuple_GET_SIZE(tup) ? PyTuple_GET_ITEM(tup, i) : NULL;
    if (b == NULL || !PyBytes_Check(b)) {
        PyErr_SetString(PyExc_TypeError, "FastPath spec: serialized parts must be bytes, one per model");
        return NULL;
    }
    return b;
}

/* The models' and tasks' values as C values (the objects they point into stay in the spec). */
static int policy_inputs(FastPath *self) {
    PyObject **o = self->o, *rows = o[O_ROWS], *links = o[O_ROW_LINKS];
    self->n_models = PyTuple_Check(rows) ? PyTuple_GET_SIZE(rows) : -1;
    if (self->n_models < 0 || self->n_models > FP_MAX_MODELS || self->n_links > FP_MAX_LINKS
        || !PyTuple_Check(links) || PyTuple_GET_SIZE(links) != self->n_models) {
        PyErr_SetString(PyExc_ValueError, "FastPath spec: too many models or links");
        return -1;
    }
    PyObject *ft = o[O_ROW_FOOTING];
    if (!PyBytes_Check(ft) || (PyBytes_GET_SIZE(ft) != 0 && PyBytes_GET_SIZE(ft) != self->n_models)) {
        PyErr_SetString(PyExc_TypeError, "FastPath spec: row_footing must be bytes, one per model or none");
        return -1;
    }
    self->footing = PyBytes_GET_SIZE(ft) ? (const unsigned char *)PyBytes_AS_STRING(ft) : NULL;
    for (Py_ssize_t i = 0; i < self->n_models; i++) {
        row_c *m = &self->models[i];
        PyObject *row = PyTuple_GET_ITEM(rows, i), *name = NULL;
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 10) {
            PyErr_SetString(PyExc_TypeError, "FastPath spec: rows must hold ModelRow tuples");
            return -1;
        }
        m->r.in_price = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 3));
        m->r.out_price = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 4));
        m->r.window = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 5));
        m->r.max_out = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 6));
        m->r.ttft = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 7));
        m->link = PyLong_AsSsize_t(PyTuple_GET_ITEM(links, i));
        if (PyErr_Occurred()) return -1;
        if (m->link < -1 || m->link >= self->n_links) {
            PyErr_SetString(PyExc_ValueError, "FastPath spec: a row's link is out of range");
            return -1;
        }
        /* the name string lives as long as the row's ModelRef, which the rows tuple holds */
        name = PyObject_GetAttr(PyTuple_GET_ITEM(row, 1), S_NAME);
        int bad = name == NULL || text_of_str(name, &m->name) < 0
                  || text_of_str(PyTuple_GET_ITEM(row, 0), &m->key) < 0;
        Py_XDECREF(name);
        if (bad || (m->cand_field = bytes_at(o[O_CAND_FIELDS], i)) == NULL
            || (m->hop_static = bytes_at(o[O_HOP_STATICS], i)) == NULL
            || (m->model_body = bytes_at(o[O_MODEL_BODIES], i)) == NULL)
            return -1;
    }
    for (Py_ssize_t v = 1; v <= N_TASKS; v++) {
        PyObject *t = PyTuple_GET_ITEM(o[O_TASKS], v);
        task_c *c = &self->tasks[v];
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 13
            || text_of_str(PyTuple_GET_ITEM(t, 1), &c->label) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "FastPath spec: bad task row");
            return -1;
        }
        c->value = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 0));
        c->slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 2));
        c->mean = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 3));
        c->std = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 4));
        c->expected = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 5));
        c->sensitivity = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 6));
        c->dw = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 8));
        c->lw = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 9));
        c->off = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 10));
        c->lo = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 11));
        c->hi = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 12));
        if (PyErr_Occurred() || doubles_of(PyTuple_GET_ITEM(t, 7), self->n_models, c->prior) < 0) return -1;
    }
    return text_of_str(o[O_NOT_ALLOWED], &self->not_allowed);
}

/* The kernels' inputs as C values: the table and bias buffers, the heads' slices, the classes'
 * tasks, the links' coefficients and the token estimator's. */
static int kernel_inputs(FastPath *self) {
    release_inputs(self);
    PyObject **o = self->o;
    if (PyObject_GetBuffer(o[O_TABLE], &self->table_view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    self->views = 1;
    if (PyObject_GetBuffer(o[O_BIAS], &self->bias_view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    self->views = 2;
    self->k = PyLong_AsSsize_t(o[O_K]);
    self->mask = PyLong_AsSsize_t(o[O_MASK]);
    self->base = PyLong_AsSsize_t(o[O_BASE]);
    self->head = PyLong_AsSsize_t(o[O_HEAD]);
    self->tail = PyLong_AsSsize_t(o[O_TAIL]);
    self->bits = (unsigned int)PyLong_AsUnsignedLong(o[O_BITS]);
    if (PyErr_Occurred()) return -1;
    if (self->k <= 0 || self->k > HEADS_MAX_K || self->bias_view.len != self->k * (Py_ssize_t)sizeof(float)
        || self->head < 1 || self->tail < 1) {
        PyErr_SetString(PyExc_ValueError, "FastPath spec: bad kernel sizes");
        return -1;
    }
    self->rows = self->table_view.len / (self->k * (Py_ssize_t)sizeof(float));
    PyObject *spec = o[O_SPEC], *cls = o[O_CLASS_TASK];
    self->n_spec = PyTuple_Check(spec) ? PyTuple_GET_SIZE(spec) : -1;
    self->n_class = PyTuple_GET_SIZE(cls);
    if (self->n_spec < 0 || self->n_spec > HEADS_MAX_K || self->n_class > HEADS_MAX_K
        || self->l[L_TASK_SLOT] < 0 || self->l[L_TASK_SLOT] >= self->n_spec
        || self->l[L_DIFF_SLOT] < 0 || self->l[L_DIFF_SLOT] >= self->n_spec) {
        PyErr_SetString(PyExc_ValueError, "FastPath spec: bad head slices");
        return -1;
    }
    for (Py_ssize_t j = 0; j < self->n_spec; j++) {
        Py_ssize_t a, b;
        int soft;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, j), "nnp", &a, &b, &soft)) return -1;
        if (a < 0 || b > self->k || a >= b) {
            PyErr_SetString(PyExc_ValueError, "FastPath spec: slice out of range");
            return -1;
        }
        self->spec_a[j] = a;
        self->spec_b[j] = b;
        self->spec_soft[j] = soft;
    }
    for (Py_ssize_t i = 0; i < self->n_class; i++)
        if ((self->class_task[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(cls, i))) == -1 && PyErr_Occurred())
            return -1;
    self->n_links = PyTuple_GET_SIZE(o[O_LINK_NAMES]);
    self->link_a = PyMem_Malloc(sizeof(double) * (size_t)(self->n_links + 1));
    self->link_b = PyMem_Malloc(sizeof(double) * (size_t)(self->n_links + 1));
    self->link_c = PyMem_Malloc(sizeof(double) * (size_t)(self->n_links + 1));
    if (self->link_a == NULL || self->link_b == NULL || self->link_c == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (doubles_of(o[O_LINK_A], self->n_links, self->link_a) < 0
        || doubles_of(o[O_LINK_B], self->n_links, self->link_b) < 0
        || doubles_of(o[O_LINK_C], self->n_links, self->link_c) < 0
        || doubles_of(o[O_COEF], TOK_FEATURES + 1, self->coef) < 0)
        return -1;
    return policy_inputs(self);
}

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
    return kernel_inputs(self);
}

static void fp_dealloc(FastPath *self) {
    release_inputs(self);
    for (int i = 0; i < N_OBJ; i++) Py_CLEAR(self->o[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ascii_str(span_t s) {
    PyObject *u = PyUnicode_New(s.n, 127);
    if (u != NULL) memcpy(PyUnicode_1BYTE_DATA(u), s.p, (size_t)s.n);
    return u;
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
    if (r->has_ov_sla && (r->ov_sla == 0 || (long long)r->ov_sla > self->l[L_MAX_SLA_MS])) return NULL;
    if (r->has_ov_cost && !(isfinite(r->ov_cost) && r->ov_cost > 0.0 && r->ov_cost <= self->d[D_MAX_COST]))
        return NULL;
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

#include "_fastpath_signals.h"
#include "_fastpath_plan.h"
#include "_fastpath_write.h"

/* A call's scratch: the request's spans and the plan (off the stack, and per call, as the
 * kernels may release the GIL on long prompts). */
typedef struct {
    req_t r;
    plan_t p;
} scratch_t;

/* The request's Decision bytes, or None for the Python path. */
static PyObject *decide_request(FastPath *self, const req_t *r, plan_t *p) {
    long long t0 = now_ns();
    sig_t sig;
    tier_c tier;
    PyObject *out = NULL, *tier_row;
    PyObject *tenant = r->tenant.n ? ascii_str(r->tenant) : Py_NewRef(S_EMPTY);
    if (tenant == NULL) return NULL;
    p->reason = NULL;
    int ok = (tier_row = check(self, r, tenant)) != NULL;
    if (ok) ok = tier_of(tier_row, self->n_models, &tier) < 0 ? -1 : narrow_tier(self, r, &tier);
    if (ok > 0) ok = read_signals(self, r, &sig);
    if (ok > 0) ok = make_plan(self, &tier, &sig, r, p);
    if (ok > 0) out = encode(self, r, &tier, tenant, &sig, p, t0);
    Py_DECREF(tenant);
    plan_clear(p);
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
    scratch_t *sc = PyMem_RawMalloc(sizeof(scratch_t));
    if (sc == NULL) return PyErr_NoMemory();
    PyObject *out;
    if (parse_request((const uint8_t *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), &sc->r))
        out = decide_request(self, &sc->r, &sc->p);
    else
        out = Py_NewRef(Py_None);
    PyMem_RawFree(sc);
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
    S_NAME = PyUnicode_InternFromString("name");
    S_EMPTY = PyUnicode_InternFromString("");
    S_LOWER = PyUnicode_InternFromString("lower");
    S_NEWLINE = PyUnicode_InternFromString("\n");
    if (!S_NAME || !S_EMPTY || !S_LOWER || !S_NEWLINE || PyType_Ready(&FastPathType) < 0)
        return NULL;
    featurize_init();
    tok_init();
    if (pthread_atfork(NULL, NULL, rng_forked) != 0) {
        PyErr_SetString(PyExc_OSError, "engine._fastpath: pthread_atfork failed");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddObjectRef(m, "FastPath", (PyObject *)&FastPathType) < 0
                      || PyModule_AddIntConstant(m, "MAX_MODELS", FP_MAX_MODELS) < 0
                      || PyModule_AddIntConstant(m, "MAX_LINKS", FP_MAX_LINKS) < 0))
        Py_CLEAR(m);
    return m;
}
