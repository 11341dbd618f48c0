/* The native Decide's plan: every model's candidate and the chain (engine.policy.plan).
 * A part of engine/_fastpath.c, included by it once (after the FastPath object's definition). */
#ifndef MODELROUTE_FASTPATH_PLAN_H
#define MODELROUTE_FASTPATH_PLAN_H

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

#endif
