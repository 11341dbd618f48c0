/* The policy's per-model loop (engine.policy._candidates) in C: every configured model's expected
 * cost, predicted quality, score and eligibility, as Candidate tuples, in model order.
 *
 * candidates(cls, rows, logits, quality, allowed, params) -> (list[Candidate], list[int])
 *   cls:     the Candidate NamedTuple class (model, cost, quality, score, eligible, reason)
 *   rows:    tuple of engine.policy_tables.ModelRow tuples; used fields: name 0, ref 1,
 *            router_key 2, input_price 3, output_price 4, context_window 5,
 *            max_output_tokens 6, ttft_ms 7
 *   logits:  tuple of floats, each model's ability prior for the task in logit space
 *   quality: dict router_key -> learned success probability (models without one use the prior)
 *   allowed: set of model names the tier and the request allow
 *   params:  (tokens, cap, sla_ms, max_cost, weight, sensitivity, shift, reserve, prefill_ms)
 * The second list holds the indexes of excluded models whose reason is not "not allowed": the
 * caller writes those reasons (they quote numbers). Arithmetic is the Python loop's, operation for
 * operation, so both give the same floats.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

static PyObject *NOT_ALLOWED, *EMPTY;

static int row_long(PyObject *row, Py_ssize_t i, long long *out) {
    *out = PyLong_AsLongLong(PyTuple_GET_ITEM(row, i));
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int row_double(PyObject *row, Py_ssize_t i, double *out) {
    *out = PyFloat_AsDouble(PyTuple_GET_ITEM(row, i));
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
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
    if (out == NULL || pending == NULL) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyTuple_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 8) {
            PyErr_SetString(PyExc_TypeError, "rows must hold ModelRow tuples");
            goto fail;
        }
        double in_price, out_price, logit;
        long long window, max_out, ttft;
        if (row_double(row, 3, &in_price) < 0 || row_double(row, 4, &out_price) < 0
            || row_long(row, 5, &window) < 0 || row_long(row, 6, &max_out) < 0
            || row_long(row, 7, &ttft) < 0)
            goto fail;
        logit = PyFloat_AsDouble(PyTuple_GET_ITEM(logits, i));
        if (logit == -1.0 && PyErr_Occurred()) goto fail;
        long long out_tokens = cap < max_out ? cap : max_out;
        long long room = window - tokens;
        if (room < out_tokens) out_tokens = room > 0 ? room : 0;
        double cost = ((double)tokens * in_price + (double)out_tokens * out_price) / 1e6;
        double q;
        PyObject *learned = PyDict_GetItemWithError(quality, PyTuple_GET_ITEM(row, 2));
        if (learned != NULL) {
            q = PyFloat_AsDouble(learned);
            if (q == -1.0 && PyErr_Occurred()) goto fail;
        } else if (PyErr_Occurred()) {
            goto fail;
        } else {
            q = 1.0 / (1.0 + exp(shift - logit));
        }
        int is_allowed = PySet_Contains(allowed, PyTuple_GET_ITEM(row, 0));
        if (is_allowed < 0) goto fail;
        int eligible = is_allowed && tokens + reserve <= window
                       && (double)ttft + prefill_ms <= sla_ms && cost <= max_cost
                       && ((double)tokens * in_price + (double)reserve * out_price) / 1e6 <= max_cost;
        PyObject *reason = eligible || !is_allowed ? (eligible ? EMPTY : NOT_ALLOWED) : EMPTY;
        double score = eligible ? sensitivity * q - weight * cost : 0.0;
        PyObject *c = make_candidate(cls, PyTuple_GET_ITEM(row, 1), cost, q, score, eligible, reason);
        if (c == NULL) goto fail;
        PyList_SET_ITEM(out, i, c);
        if (!eligible && is_allowed) {
            PyObject *idx = PyLong_FromSsize_t(i);
            if (idx == NULL || PyList_Append(pending, idx) < 0) {
                Py_XDECREF(idx);
                goto fail;
            }
            Py_DECREF(idx);
        }
    }
    PyObject *result = PyTuple_Pack(2, out, pending);
    Py_DECREF(out);
    Py_DECREF(pending);
    return result;
fail:
    Py_XDECREF(out);
    Py_XDECREF(pending);
    return NULL;
}

static PyMethodDef methods[] = {
    {"candidates", candidates, METH_VARARGS, "Every model's Candidate for one decision."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "engine._policy", NULL, -1, methods};

PyMODINIT_FUNC PyInit__policy(void) {
    NOT_ALLOWED = PyUnicode_InternFromString("not allowed for this tier or request");
    EMPTY = PyUnicode_InternFromString("");
    if (NOT_ALLOWED == NULL || EMPTY == NULL) return NULL;
    return PyModule_Create(&module);
}
