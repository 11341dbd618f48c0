/* The policy's per-model loop (engine.policy._candidates) in C: every configured model's expected
 * cost, predicted quality, score and eligibility, as Candidate tuples, in model order.
 *
 * candidates(cls, rows, logits, quality, allowed, params) -> (list[Candidate], list[int], int)
 *   cls:     the Candidate NamedTuple class (model, cost, quality, score, eligible, reason)
 *   rows:    tuple of engine.policy_tables.ModelRow tuples; used fields: name 0, ref 1,
 *            router_key 2, input_price 3, output_price 4, context_window 5,
 *            max_output_tokens 6, ttft_ms 7
 *   logits:  tuple of floats, each model's ability prior for the task in logit space
 *   quality: dict router_key -> learned success probability (models without one use the prior)
 *   allowed: set of model names the tier and the request allow
 *   params:  (tokens, cap, sla_ms, max_cost, weight, sensitivity, shift, reserve, prefill_ms)
 * The second list holds the indexes of excluded models whose reason is not "not allowed": the
 * caller writes those reasons (they quote numbers). The int is the number of eligible models. Arithmetic is the Python loop's, operation for
 * operation, so both give the same floats.
 *
 * finish(...) (below) does the rest of a plan without a cascade: the choice, the chain of Hops
 * and the reason; see its comment.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h>

#include "_policy_core.h"

static PyObject *NOT_ALLOWED, *EMPTY;

static int row_long(PyObject *row, Py_ssize_t i, long long *out) {
    *out = PyLong_AsLongLong(PyTuple_GET_ITEM(row, i));
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int row_double(PyObject *row, Py_ssize_t i, double *out) {
    *out = PyFloat_AsDouble(PyTuple_GET_ITEM(row, i));
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* A ModelRow tuple's numbers (it must hold at least `min_fields` fields). */
static int prow_of(PyObject *row, Py_ssize_t min_fields, prow_t *r) {
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < min_fields) {
        PyErr_SetString(PyExc_TypeError, "rows must hold ModelRow tuples");
        return -1;
    }
    return row_double(row, 3, &r->in_price) < 0 || row_double(row, 4, &r->out_price) < 0
                   || row_long(row, 5, &r->window) < 0 || row_long(row, 6, &r->max_out) < 0
                   || row_long(row, 7, &r->ttft) < 0
               ? -1
               : 0;
}

static PyObject *make_candidate(PyTypeObject *cls, PyObject *ref, double cost, double q,
                                double score, int eligible, PyObject *reason) {
    PyObject *c = cls->tp_alloc(cls, 6);
    if (c == NULL) return NULL;
    PyObject *items[6] = {Py_NewRef(ref), PyFloat_FromDouble(cost), PyFloat_FromDouble(q),
                          PyFloat_FromDouble(score), Py_NewRef(eligible ? Py_True : Py_False),
                          Py_NewRef(reason)};
    for (int k = 0; k < 6; k++) {
        if (items[k] == NULL) {
            for (int j = 0; j < 6; j++) Py_XDECREF(items[j]);
            Py_DECREF(c);
            return NULL;
        }
    }
    for (int k = 0; k < 6; k++) PyTuple_SET_ITEM(c, k, items[k]);
    return c;
}

static PyObject *candidates(PyObject *self, PyObject *args) {
    PyTypeObject *cls;
    PyObject *rows, *logits, *quality, *allowed;
    long long tokens, cap, reserve;
    double sla_ms, max_cost, weight, sensitivity, shift, prefill_ms;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O(LLdddddLd)", &PyType_Type, &cls, &PyTuple_Type, &rows,
                          &PyTuple_Type, &logits, &PyDict_Type, &quality, &allowed, &tokens,
                          &cap, &sla_ms, &max_cost, &weight, &sensitivity, &shift, &reserve,
                          &prefill_ms))
        return NULL;
    if (!PyType_IsSubtype(cls, &PyTuple_Type) || !PyAnySet_Check(allowed)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple subclass and allowed a set");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(rows);
    if (PyTuple_GET_SIZE(logits) != n) {
        PyErr_SetString(PyExc_ValueError, "logits must match rows");
        return NULL;
    }
    PyObject *out = PyList_New(n), *pending = PyList_New(0);
    Py_ssize_t n_eligible = 0;
    if (out == NULL || pending == NULL) goto fail;
    cand_params p = {tokens, cap, reserve, sla_ms, max_cost, weight, sensitivity, shift, prefill_ms};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyTuple_GET_ITEM(rows, i);
        prow_t r;
        if (prow_of(row, 8, &r) < 0) goto fail;
        double logit = PyFloat_AsDouble(PyTuple_GET_ITEM(logits, i)), learned_q;
        if (logit == -1.0 && PyErr_Occurred()) goto fail;
        PyObject *learned = PyDict_GetItemWithError(quality, PyTuple_GET_ITEM(row, 2));
        if (learned != NULL) {
            learned_q = PyFloat_AsDouble(learned);
            if (learned_q == -1.0 && PyErr_Occurred()) goto fail;
        } else if (PyErr_Occurred()) {
            goto fail;
        }
        int is_allowed = PySet_Contains(allowed, PyTuple_GET_ITEM(row, 0));
        if (is_allowed < 0) goto fail;
        cand_t c;
        candidate_core(&r, logit, learned != NULL ? &learned_q : NULL, is_allowed, &p, &c);
        PyObject *reason = c.eligible || !is_allowed ? (c.eligible ? EMPTY : NOT_ALLOWED) : EMPTY;
        n_eligible += c.eligible;
        PyObject *cand = make_candidate(cls, PyTuple_GET_ITEM(row, 1), c.cost, c.q, c.score,
                                        c.eligible, reason);
        if (cand == NULL) goto fail;
        PyList_SET_ITEM(out, i, cand);
        if (!c.eligible && is_allowed) {
            PyObject *idx = PyLong_FromSsize_t(i);
            if (idx == NULL || PyList_Append(pending, idx) < 0) {
                Py_XDECREF(idx);
                goto fail;
            }
            Py_DECREF(idx);
        }
    }
    return Py_BuildValue("(NNn)", out, pending, n_eligible);
fail:
    Py_XDECREF(out);
    Py_XDECREF(pending);
    return NULL;
}

/* ---- build: a frozen slots dataclass without its generated __init__ ---- */

enum { BUILD_CLASSES = 8, BUILD_FIELDS = 32 };
static struct {
    PyTypeObject *cls;
    Py_ssize_t n;
    PyObject *descr[BUILD_FIELDS];
} built[BUILD_CLASSES];

/* The member descriptors of `cls`'s dataclass fields, in field order (cached per class). */
static int build_slot(PyTypeObject *cls) {
    for (int k = 0; k < BUILD_CLASSES; k++)
        if (built[k].cls == cls) return k;
    int k = 0;
    while (k < BUILD_CLASSES && built[k].cls != NULL) k++;
    if (k == BUILD_CLASSES) {
        PyErr_SetString(PyExc_RuntimeError, "build: too many classes");
        return -1;
    }
    PyObject *fields = PyObject_GetAttrString((PyObject *)cls, "__dataclass_fields__");
    if (fields == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "build: not a dataclass");
        return -1;
    }
    if (!PyDict_Check(fields) || PyDict_GET_SIZE(fields) > BUILD_FIELDS) {
        Py_DECREF(fields);
        PyErr_SetString(PyExc_TypeError, "build: not a dataclass with few enough fields");
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0, n = 0;
    while (PyDict_Next(fields, &pos, &key, &value)) {
        PyObject *d = PyObject_GetAttr((PyObject *)cls, key);
        if (d == NULL || Py_TYPE(d)->tp_descr_set == NULL || !PyObject_TypeCheck(d, &PyMemberDescr_Type)) {
            Py_XDECREF(d);
            Py_DECREF(fields);
            for (Py_ssize_t j = 0; j < n; j++) Py_CLEAR(built[k].descr[j]);
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "build: fields must be slots");
            return -1;
        }
        built[k].descr[n++] = d;
    }
    Py_DECREF(fields);
    built[k].n = n;
    built[k].cls = (PyTypeObject *)Py_NewRef(cls);
    return k;
}

/* A new `cls` whose fields (slot k of build_slot) are set to values[0..n-1]; NULL values
 * (a failed allocation by the caller) fail the whole object. */
static PyObject *build_from(PyTypeObject *cls, int k, PyObject **values) {
    PyObject *obj = cls->tp_alloc(cls, 0);
    if (obj == NULL) return NULL;
    for (Py_ssize_t i = 0; i < built[k].n; i++) {
        PyObject *d = built[k].descr[i];
        if (values[i] == NULL || Py_TYPE(d)->tp_descr_set(d, obj, values[i]) < 0) {
            if (!PyErr_Occurred()) PyErr_NoMemory();
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}

/* ---- finish: choice, chain, hops and reason (engine.policy._finish_python without a cascade) ---- */

static PyObject *NAME_ATTR; /* interned "name" */
enum { HOP_FIELDS = 8 }; /* index, model, on_error, max_output_tokens, estimated_cost_usd,
                           * context_window, typical_ttft_ms, supports_continuation */

/* engine.policy._hops for one row (hop_core), as a Hop object. */
static PyObject *hop_for(PyTypeObject *hop, int slot, Py_ssize_t index, PyObject *row,
                         PyObject *actions, const hop_params *p) {
    prow_t r;
    if (prow_of(row, 10, &r) < 0) return NULL;
    long long out;
    double cost;
    hop_core(&r, p, &out, &cost);
    PyObject *v[HOP_FIELDS] = {PyLong_FromSsize_t(index), Py_NewRef(PyTuple_GET_ITEM(row, 1)),
                               Py_NewRef(actions), PyLong_FromLongLong(out),
                               PyFloat_FromDouble(cost), PyLong_FromLongLong(r.window),
                               PyLong_FromLongLong(r.ttft), Py_NewRef(PyTuple_GET_ITEM(row, 9))};
    PyObject *h = build_from(hop, slot, v);
    for (int k = 0; k < HOP_FIELDS; k++) Py_XDECREF(v[k]);
    return h;
}

/* A float field of a Candidate (an error, if any, is checked by the caller at the end). */
static double cand_d(PyObject *c, Py_ssize_t i) {
    PyObject *o = PyTuple_GET_ITEM(c, i);
    return PyFloat_CheckExact(o) ? PyFloat_AS_DOUBLE(o) : PyFloat_AsDouble(o);
}

/* The UTF-8 text of a candidate's model name (a new reference in *keep), or NULL. */
static const char *cand_name(PyObject *c, PyObject **keep, Py_ssize_t *len) {
    *keep = PyObject_GetAttr(PyTuple_GET_ITEM(c, 0), NAME_ATTR);
    if (*keep == NULL) return NULL;
    if (!PyUnicode_Check(*keep)) {
        PyErr_SetString(PyExc_TypeError, "finish: a model name is not a str");
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(*keep, len);
}

static text_t text_of(const char *p, Py_ssize_t n) {
    text_t t = {p, n};
    return t;
}

/* engine.policy._reason (reason_write) for Candidate objects, decoded once. */
static PyObject *reason_text(PyObject *label, double conf, double diff, long long tokens,
                             PyObject *tier, PyObject *chosen, PyObject *runner, int sla_note,
                             long long sla_ms, Py_ssize_t hops) {
    PyObject *k1 = NULL, *k2 = NULL, *out = NULL;
    Py_ssize_t n_lab, n_tier, n1, n2 = 0;
    const char *lab = PyUnicode_AsUTF8AndSize(label, &n_lab);
    const char *tr = lab ? PyUnicode_AsUTF8AndSize(tier, &n_tier) : NULL;
    const char *c1 = tr ? cand_name(chosen, &k1, &n1) : NULL;
    const char *c2 = c1 && runner ? cand_name(runner, &k2, &n2) : NULL;
    if (c1 == NULL || (runner != NULL && c2 == NULL)) goto done;
    cand_t ch = {cand_d(chosen, 1), cand_d(chosen, 2), 0.0, 1, 1}, ru = ch;
    if (runner != NULL) ru = (cand_t){cand_d(runner, 1), cand_d(runner, 2), 0.0, 1, 1};
    if (PyErr_Occurred()) goto done;
    char stack[4096];
    size_t cap = reason_cap(text_of(lab, n_lab), text_of(tr, n_tier), text_of(c1, n1), text_of(c2, n2));
    char *buf = cap <= sizeof stack ? stack : PyMem_Malloc(cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t at = reason_write(buf, text_of(lab, n_lab), conf, diff, tokens, text_of(tr, n_tier),
                             text_of(c1, n1), &ch, text_of(c2, n2), runner ? &ru : NULL, sla_note,
                             sla_ms, hops);
    out = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)at, "strict");
    if (buf != stack) PyMem_Free(buf);
done:
    Py_XDECREF(k1);
    Py_XDECREF(k2);
    return out;
}

/* format_fixed(x, digits) -> str: fmt_fixed, for the test that holds it equal to "%.<d>f". */
static PyObject *format_fixed(PyObject *self, PyObject *args) {
    double x;
    int digits;
    if (!PyArg_ParseTuple(args, "di", &x, &digits)) return NULL;
    if (digits < 0 || digits > 8) {
        PyErr_SetString(PyExc_ValueError, "format_fixed: digits must be in 0..8");
        return NULL;
    }
    char buf[FMT_FIXED_MAX];
    size_t n = fmt_fixed(buf, x, digits);
    return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
}

/* finish(hop_cls, cands, rows, declared, max_hops, (tokens, wanted, max_cost, expected, reserve),
 *        actions, (label, confidence, difficulty, tier, sla_ms, sla_excluded))
 *   -> (chosen index, tuple of Hops, reason)
 * cands: the Candidate list of ``candidates`` (reasons filled in), at least one eligible;
 * declared: indexes into rows of the tier's fallback order. The chosen candidate is the first
 * eligible one with the best score; the chain is it, then the declared models that are
 * eligible, then the other eligible ones by score (stable), at most max_hops. */
/* finish's inputs checked and read: the candidates' values into c, the declared indexes into
 * decl (*n_declared of them); returns the Hop class's build slot, or -1 with an error set. */
static int finish_inputs(PyTypeObject *hop, PyObject *cands, PyObject *rows, PyObject *declared,
                         Py_ssize_t max_hops, cand_t *c, Py_ssize_t *decl, Py_ssize_t *n_declared) {
    Py_ssize_t n = PyList_GET_SIZE(cands);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ci = PyList_GET_ITEM(cands, i);
        if (!PyTuple_Check(ci) || PyTuple_GET_SIZE(ci) < 6 || !PyUnicode_Check(PyTuple_GET_ITEM(ci, 5))) {
            PyErr_SetString(PyExc_TypeError, "finish: cands must hold Candidate tuples");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(rows); i++) {
        PyObject *r = PyTuple_GET_ITEM(rows, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) < 10) {
            PyErr_SetString(PyExc_TypeError, "finish: rows must hold ModelRow tuples");
            return -1;
        }
    }
    int slot = n == PyTuple_GET_SIZE(rows) && n <= POLICY_MAX_MODELS && max_hops >= 1
                   ? build_slot(hop)
                   : -1;
    if (slot >= 0 && built[slot].n != HOP_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "finish: Hop must have 8 fields");
        return -1;
    }
    if (slot < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "finish: bad arguments");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ci = PyList_GET_ITEM(cands, i);
        c[i] = (cand_t){cand_d(ci, 1), cand_d(ci, 2), cand_d(ci, 3), PyTuple_GET_ITEM(ci, 4) == Py_True, 1};
    }
    *n_declared = PyTuple_GET_SIZE(declared);
    if (PyErr_Occurred()) return -1;
    if (*n_declared > POLICY_MAX_MODELS) *n_declared = POLICY_MAX_MODELS;
    for (Py_ssize_t k = 0; k < *n_declared; k++) {
        decl[k] = PyLong_AsSsize_t(PyTuple_GET_ITEM(declared, k));
        if (decl[k] == -1 && PyErr_Occurred()) return -1;
    }
    return slot;
}

/* The chain's Hop objects. */
static PyObject *hops_of(PyTypeObject *hop, int slot, PyObject *rows, const Py_ssize_t *chain,
                         Py_ssize_t len, PyObject *actions, const hop_params *p) {
    PyObject *hops = PyTuple_New(len);
    if (hops == NULL) return NULL;
    for (Py_ssize_t k = 0; k < len; k++) {
        PyObject *h = hop_for(hop, slot, k, PyTuple_GET_ITEM(rows, chain[k]), actions, p);
        if (h == NULL) {
            Py_DECREF(hops);
            return NULL;
        }
        PyTuple_SET_ITEM(hops, k, h);
    }
    return hops;
}

static PyObject *finish(PyObject *self, PyObject *args) {
    PyTypeObject *hop;
    PyObject *cands, *rows, *declared, *actions, *label, *tier;
    Py_ssize_t max_hops;
    hop_params p;
    double conf, diff;
    long long sla_ms;
    int sla_excluded;
    if (!PyArg_ParseTuple(args, "O!O!O!O!n(LLdLL)O!(UddULp)", &PyType_Type, &hop, &PyList_Type,
                          &cands, &PyTuple_Type, &rows, &PyTuple_Type, &declared, &max_hops,
                          &p.tokens, &p.wanted, &p.max_cost, &p.expected, &p.reserve,
                          &PyTuple_Type, &actions, &label, &conf, &diff, &tier, &sla_ms,
                          &sla_excluded))
        return NULL;
    cand_t c[POLICY_MAX_MODELS];
    Py_ssize_t n_declared, decl[POLICY_MAX_MODELS], chosen, runner, chain[POLICY_MAX_MODELS];
    int slot = finish_inputs(hop, cands, rows, declared, max_hops, c, decl, &n_declared);
    if (slot < 0) return NULL;
    const char *err = NULL;
    Py_ssize_t len = chain_core(c, PyList_GET_SIZE(cands), decl, n_declared, max_hops, &chosen,
                                &runner, chain, &err);
    if (len < 0) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    PyObject *hops = hops_of(hop, slot, rows, chain, len, actions, &p);
    if (hops == NULL) return NULL;
    PyObject *ch = PyList_GET_ITEM(cands, chosen);
    int sla_note = sla_excluded && PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(ch, 5)) == 0;
    PyObject *reason = reason_text(label, conf, diff, p.tokens, tier, ch,
                                   runner >= 0 ? PyList_GET_ITEM(cands, runner) : NULL, sla_note,
                                   sla_ms, len);
    if (reason == NULL) {
        Py_DECREF(hops);
        return NULL;
    }
    return Py_BuildValue("(nNN)", chosen, hops, reason);
}

/* build(cls, values) -> cls instance with its dataclass fields set to `values`, in field order:
 * what cls(*values) gives for a slots dataclass without __post_init__, for a fraction of the
 * cost of a frozen dataclass's __init__ (one object.__setattr__ call per field). */
static PyObject *build(PyObject *self, PyObject *args) {
    PyTypeObject *cls;
    PyObject *values;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyTuple_Type, &values)) return NULL;
    int k = build_slot(cls);
    if (k < 0) return NULL;
    if (PyTuple_GET_SIZE(values) != built[k].n) {
        PyErr_Format(PyExc_TypeError, "build: %s takes %zd values, got %zd", cls->tp_name,
                     built[k].n, PyTuple_GET_SIZE(values));
        return NULL;
    }
    return build_from(cls, k, &PyTuple_GET_ITEM(values, 0));
}

static PyMethodDef methods[] = {
    {"build", build, METH_VARARGS, "A slots dataclass from its field values, in field order."},
    {"finish", finish, METH_VARARGS, "Choice, chain and reason of a plan without a cascade."},
    {"candidates", candidates, METH_VARARGS, "Every model's Candidate for one decision."},
    {"format_fixed", format_fixed, METH_VARARGS, "x as '%.<digits>f' writes it (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._policy", NULL, -1, methods};

PyMODINIT_FUNC PyInit__policy(void) {
    NOT_ALLOWED = PyUnicode_InternFromString("not allowed for this tier or request");
    EMPTY = PyUnicode_InternFromString("");
    NAME_ATTR = PyUnicode_InternFromString("name");
    if (NOT_ALLOWED == NULL || EMPTY == NULL || NAME_ATTR == NULL) return NULL;
    return PyModule_Create(&module);
}
