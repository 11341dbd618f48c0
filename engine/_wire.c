/* A serialized modelroute.v1.Decision written in one pass from the domain object
 * (engine.wire_encode documents the layout; field numbers follow proto/modelroute/v1).
 *
 * encode_decision(d, refs, fields, hop_statics, model_body) -> bytes | None
 *   d: modelroute.domain.Decision; refs/fields: as below, for the candidates;
 *   hop_statics: a dict id(model) -> (model, on_error, context_window, typical_ttft_ms,
 *   supports_continuation, static bytes), the serialized static part of a hop (model, on_error,
 *   context window, typical TTFT, continuation); an entry serves a hop whose model and on_error
 *   are those very objects and whose three numbers are equal; model_body: the serialized
 *   ModelRef of d.model.
 *   None when a candidate's model is not in refs or a hop has no entry (the caller adds them).
 *
 * Candidates: refs is a tuple of ModelRef objects and fields[j] the serialized `model = 1`
 * field (tag, length, ModelRef) of refs[j]; a candidate's model is matched by identity.
 * Layout per candidate (Signals.candidates = 8):
 *   0x42 len | model field | 0x11 double cost | 0x1d float quality | 0x25 float score |
 *   0x28 eligible | [0x32 len reason]
 * Numbers are written even when zero (a proto3 parser reads them as the same message).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_wire_core.h"

/* ---- the parts read from Python objects ---- */

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
    return put_candidate(b, PyBytes_AS_STRING(field), PyBytes_GET_SIZE(field), cost, q, score,
                         eligible, rbuf, rlen);
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


/* ---- the whole Decision ---- */

static PyObject *S_decision_id, *S_request_id, *S_policy_version, *S_policy_hash, *S_budget,
    *S_chain, *S_signals, *S_reason, *S_decision_time_us, *S_streaming_mode, *S_tenant, *S_tier,
    *S_cascade, *S_task,
    *S_task_confidence, *S_difficulty, *S_input_tokens, *S_latency_sla_ms, *S_candidates,
    *S_task_from_hint, *S_first_hop, *S_escalate_below, *S_verifier;

/* A string field (omitted when empty). */
static int str_field(wbuf *b, unsigned char tag, PyObject *obj, PyObject *name) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) return -1;
    Py_ssize_t n;
    const char *p = PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &n) : NULL;
    int rc = -1;
    if (p == NULL) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%U must be a str", name);
    } else {
        rc = n ? put_tag_bytes(b, tag, p, n) : 0;
    }
    Py_DECREF(v);
    return rc;
}

static int budget_msg(wbuf *b, wbuf *sub, PyObject *d) {
    PyObject *bud = PyObject_GetAttr(d, S_budget);
    if (bud == NULL) return -1;
    int rc = -1;
    if (!PyTuple_Check(bud) || PyTuple_GET_SIZE(bud) != 5) {
        PyErr_SetString(PyExc_TypeError, "budget must be a 5-field Budget");
    } else if (uint_value(sub, 0x08, PyTuple_GET_ITEM(bud, 0)) == 0
               && uint_value(sub, 0x10, PyTuple_GET_ITEM(bud, 1)) == 0
               && double_value(sub, 0x19, PyTuple_GET_ITEM(bud, 2), 0) == 0
               && uint_value(sub, 0x20, PyTuple_GET_ITEM(bud, 3)) == 0
               && uint_value(sub, 0x28, PyTuple_GET_ITEM(bud, 4)) == 0) {
        rc = submessage(b, 0x32, sub);
    }
    Py_DECREF(bud);
    return rc;
}

/* 1 when written, 0 when a hop has no entry in `statics`, -1 on error. */
static int chain_msgs(wbuf *b, wbuf *sub, PyObject *d, PyObject *statics) {
    PyObject *chain = PyObject_GetAttr(d, S_chain);
    if (chain == NULL) return -1;
    int rc = chain_tuple_msgs(b, sub, chain, statics);
    Py_DECREF(chain);
    return rc;
}

static int signals_msg(wbuf *b, wbuf *sub, PyObject *d, PyObject *refs, PyObject *fields) {
    PyObject *s = PyObject_GetAttr(d, S_signals);
    if (s == NULL) return -1;
    int rc = -1;
    PyObject *cands = NULL;
    if (uint_field(sub, 0x08, s, S_task) < 0
        || double_field(sub, 0x15, s, S_task_confidence, 1) < 0
        || double_field(sub, 0x1D, s, S_difficulty, 1) < 0
        || uint_field(sub, 0x20, s, S_input_tokens) < 0 || str_field(sub, 0x2A, s, S_tier) < 0
        || str_field(sub, 0x32, s, S_tenant) < 0
        || uint_field(sub, 0x38, s, S_latency_sla_ms) < 0)
        goto out;
    cands = PyObject_GetAttr(s, S_candidates);
    if (cands == NULL) goto out;
    int found = encode_all(sub, cands, refs, fields);
    if (found <= 0) {
        rc = found; /* 0: unknown model, the caller rebuilds its table */
        goto out;
    }
    if (uint_field(sub, 0x48, s, S_task_from_hint) < 0) goto out;
    rc = submessage(b, 0x42, sub) < 0 ? -1 : 1;
out:
    Py_XDECREF(cands);
    Py_DECREF(s);
    return rc;
}

static int cascade_msg(wbuf *b, wbuf *sub, PyObject *d) {
    PyObject *c = PyObject_GetAttr(d, S_cascade);
    if (c == NULL) return -1;
    int rc = 0;
    if (c != Py_None) {
        rc = -1;
        if (uint_field(sub, 0x08, c, S_first_hop) == 0
            && double_field(sub, 0x15, c, S_escalate_below, 1) == 0
            && str_field(sub, 0x1A, c, S_verifier) == 0)
            rc = submessage(b, 0x72, sub);
    }
    Py_DECREF(c);
    return rc;
}

static PyObject *encode_decision(PyObject *self, PyObject *args) {
    PyObject *d, *refs, *fields, *statics, *model_body;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!", &d, &PyTuple_Type, &refs, &PyTuple_Type, &fields,
                          &PyDict_Type, &statics, &PyBytes_Type, &model_body))
        return NULL;
    if (PyTuple_GET_SIZE(refs) != PyTuple_GET_SIZE(fields)) {
        PyErr_SetString(PyExc_ValueError, "refs and fields differ in length");
        return NULL;
    }
    wbuf b = {PyMem_Malloc(2048), 0, 2048, 1}, sub = {PyMem_Malloc(2048), 0, 2048, 1};
    PyObject *result = NULL;
    if (b.buf == NULL || sub.buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (str_field(&b, 0x0A, d, S_decision_id) < 0 || str_field(&b, 0x12, d, S_request_id) < 0
        || str_field(&b, 0x1A, d, S_policy_version) < 0
        || str_field(&b, 0x22, d, S_policy_hash) < 0
        || put_tag_bytes(&b, 0x2A, PyBytes_AS_STRING(model_body), PyBytes_GET_SIZE(model_body)) < 0
        || budget_msg(&b, &sub, d) < 0)
        goto done;
    int hops = chain_msgs(&b, &sub, d, statics);
    if (hops <= 0) {
        if (hops == 0) result = Py_NewRef(Py_None);
        goto done;
    }
    int sig = signals_msg(&b, &sub, d, refs, fields);
    if (sig <= 0) {
        if (sig == 0) result = Py_NewRef(Py_None);
        goto done;
    }
    if (str_field(&b, 0x4A, d, S_reason) < 0 || uint_field(&b, 0x50, d, S_decision_time_us) < 0
        || uint_field(&b, 0x58, d, S_streaming_mode) < 0 || str_field(&b, 0x62, d, S_tenant) < 0
        || str_field(&b, 0x6A, d, S_tier) < 0 || cascade_msg(&b, &sub, d) < 0)
        goto done;
    result = PyBytes_FromStringAndSize(b.buf, b.len);
done:
    PyMem_Free(b.buf);
    PyMem_Free(sub.buf);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_decision", encode_decision, METH_VARARGS,
     "The serialized Decision, or None when a candidate's model is not in refs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._wire", NULL, -1, methods};

#define INTERN(var, text)                                                                         \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;

PyMODINIT_FUNC PyInit__wire(void) {
    INTERN(S_decision_id, "decision_id");
    INTERN(S_request_id, "request_id");
    INTERN(S_policy_version, "policy_version");
    INTERN(S_policy_hash, "policy_hash");
    INTERN(S_budget, "budget");
    INTERN(S_chain, "chain");
    INTERN(S_signals, "signals");
    INTERN(S_reason, "reason");
    INTERN(S_decision_time_us, "decision_time_us");
    INTERN(S_streaming_mode, "streaming_mode");
    INTERN(S_tenant, "tenant");
    INTERN(S_tier, "tier");
    INTERN(S_cascade, "cascade");
    INTERN(S_task, "task");
    INTERN(S_task_confidence, "task_confidence");
    INTERN(S_difficulty, "difficulty");
    INTERN(S_input_tokens, "input_tokens");
    INTERN(S_latency_sla_ms, "latency_sla_ms");
    INTERN(S_candidates, "candidates");
    INTERN(S_task_from_hint, "task_from_hint");
    INTERN(S_first_hop, "first_hop");
    INTERN(S_escalate_below, "escalate_below");
    INTERN(S_verifier, "verifier");
    if (wire_core_init() < 0) return NULL;
    return PyModule_Create(&module);
}
