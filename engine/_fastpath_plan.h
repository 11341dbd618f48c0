/* The native Decide's plan (engine.policy.plan without a cascade), through the policy's plain-C
 * core (engine/_policy_core.h): every model's candidate, the excluded ones' reasons, the choice,
 * the chain of hops with their numbers, the budget and the reason, all as C values.
 * A part of engine/_fastpath.c, included by it once (after the FastPath object's definition). */
#ifndef MODELROUTE_FASTPATH_PLAN_H
#define MODELROUTE_FASTPATH_PLAN_H

#define EXCLUSION_CAP 160 /* an exclusion reason's bytes, with its NUL */

typedef struct {
    cand_t c[FP_MAX_MODELS];
    char excl[FP_MAX_MODELS][EXCLUSION_CAP]; /* each candidate's exclusion reason, "" if none */
    Py_ssize_t chain[POLICY_MAX_MODELS], len, chosen, runner;
    long long hop_out[FP_MAX_MODELS];
    double hop_cost[FP_MAX_MODELS];
    long long max_input, head_output; /* the budget's numbers the plan sets (the rest: tier's) */
    char reason_stack[2048];
    char *reason; /* reason_stack, or PyMem when longer */
    size_t reason_len;
} plan_t;

static void plan_clear(plan_t *p) {
    if (p->reason != NULL && p->reason != p->reason_stack) PyMem_Free(p->reason);
    p->reason = NULL;
}

/* The tier's numbers a plan reads (engine.policy_tables.TierRow, as engine/fastpath.py lays
 * them out). */
typedef struct {
    text_t name;
    const unsigned char *allowed; /* one byte per model row: allowed by the tier (and request) */
    unsigned char narrowed[FP_MAX_MODELS]; /* the tier's allowed models the request allows */
    long long sla_ms, default_out, max_hops, total_ms, mode;
    double max_cost, cost_weight;
    PyObject *declared; /* tuple of row indexes */
} tier_c;

static int tier_of(PyObject *t, Py_ssize_t n_rows, tier_c *out) {
    PyObject *mask = PyTuple_GET_ITEM(t, 1);
    out->name.p = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(t, 0), &out->name.n);
    out->sla_ms = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 3));
    out->max_cost = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 4));
    out->cost_weight = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 5));
    out->default_out = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 6));
    out->max_hops = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 7));
    out->total_ms = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 8));
    out->mode = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 9));
    out->declared = PyTuple_GET_ITEM(t, 2);
    if (out->name.p == NULL || PyErr_Occurred()) return -1;
    if (!PyBytes_Check(mask) || PyBytes_GET_SIZE(mask) != n_rows || !PyTuple_Check(out->declared)) {
        PyErr_SetString(PyExc_TypeError, "FastPath: a tier's allowed mask or fallbacks are malformed");
        return -1;
    }
    out->allowed = (const unsigned char *)PyBytes_AS_STRING(mask);
    return 0;
}

/* Whether the models ``allowed`` that the router links are the pair's alone (PairFooting.applies):
 * such a decision takes the pair's links, which only the Python path holds. */
static int weighs_the_pair(const FastPath *self, const unsigned char *allowed) {
    int pair = 0, other = 0;
    if (self->footing == NULL) return 0;
    for (Py_ssize_t i = 0; i < self->n_models; i++) {
        if (!allowed[i]) continue;
        pair |= self->footing[i] == 1;
        other |= self->footing[i] == 2;
    }
    return pair && !other;
}

/* The request's overrides narrow the tier (engine.policy._Ctx): the lower SLA and cost cap, and
 * only the tier's models the request names. 1, or 0 (the Python path) when a name is no model
 * or the narrowed models weigh the pair alone. */
static int narrow_tier(FastPath *self, const req_t *r, tier_c *tier) {
    if (r->has_ov_sla && (long long)r->ov_sla < tier->sla_ms) tier->sla_ms = (long long)r->ov_sla;
    if (r->has_ov_cost && r->ov_cost < tier->max_cost) tier->max_cost = r->ov_cost;
    if (r->n_ov_allowed == 0) return 1;
    memset(tier->narrowed, 0, sizeof tier->narrowed);
    for (Py_ssize_t j = 0; j < r->n_ov_allowed; j++) {
        span_t s = r->ov_allowed[j];
        Py_ssize_t i = 0;
        while (i < self->n_models
               && (self->models[i].key.n != s.n || memcmp(self->models[i].key.p, s.p, (size_t)s.n) != 0))
            i++;
        if (i == self->n_models) return 0; /* an unknown model: the Python path names it */
        tier->narrowed[i] = tier->allowed[i];
    }
    tier->allowed = tier->narrowed;
    return !weighs_the_pair(self, tier->allowed);
}

/* Every model's candidate, and the reasons of the allowed ones that are not eligible; 0 = no
 * model is eligible (the Python path relaxes the SLA). */
static int plan_candidates(FastPath *self, const tier_c *tier, const sig_t *sig, long long wanted,
                           plan_t *p, int *sla_excluded) {
    const task_c *t = sig->task;
    double x = sig->difficulty > 0.0 ? sig->difficulty : 0.0;
    x = x < 1.0 ? x : 1.0;
    cand_params cp = {sig->tokens, t->expected < wanted ? t->expected : wanted, self->l[L_RESERVE],
                      (double)tier->sla_ms, tier->max_cost, tier->cost_weight / tier->max_cost,
                      t->sensitivity, self->d[D_SLOPE] * (x - 0.5) / 0.5,
                      1000.0 * (double)sig->tokens / self->d[D_PREFILL_TPS]};
    int n_eligible = 0;
    for (Py_ssize_t i = 0; i < self->n_models; i++) {
        const row_c *row = &self->models[i];
        const double *learned = row->link >= 0 ? &sig->link_q[row->link] : NULL;
        cand_t *c = &p->c[i];
        candidate_core(&row->r, t->prior[i], learned, tier->allowed[i], &cp, c);
        n_eligible += c->eligible;
        p->excl[i][0] = 0;
        if (c->allowed && !c->eligible)
            *sla_excluded |= exclusion_core(&row->r, c->cost, sig->tokens, tier->sla_ms, tier->max_cost,
                                            self->l[L_RESERVE], self->d[D_PREFILL_TPS], p->excl[i],
                                            EXCLUSION_CAP);
    }
    return n_eligible > 0;
}

/* The plan: 1 made, 0 = the Python path decides, -1 error. */
static int make_plan(FastPath *self, const tier_c *tier, const sig_t *sig, const req_t *r, plan_t *p) {
    long long wanted = r->has_max_out ? (long long)r->max_out : tier->default_out;
    int sla_excluded = 0;
    if (plan_candidates(self, tier, sig, wanted, p, &sla_excluded) == 0) return 0;
    Py_ssize_t n_declared = PyTuple_GET_SIZE(tier->declared), declared[POLICY_MAX_MODELS];
    if (n_declared > POLICY_MAX_MODELS) return 0;
    for (Py_ssize_t k = 0; k < n_declared; k++)
        if ((declared[k] = PyLong_AsSsize_t(PyTuple_GET_ITEM(tier->declared, k))) == -1 && PyErr_Occurred())
            return -1;
    const char *err = NULL;
    p->len = chain_core(p->c, self->n_models, declared, n_declared, (Py_ssize_t)tier->max_hops,
                        &p->chosen, &p->runner, p->chain, &err);
    if (p->len < 0) {
        PyErr_SetString(PyExc_ValueError, err);
        return -1;
    }
    hop_params hp = {sig->tokens, wanted, sig->task->expected, self->l[L_RESERVE], tier->max_cost};
    long long widest = -1;
    for (Py_ssize_t k = 0; k < p->len; k++) {
        const row_c *row = &self->models[p->chain[k]];
        hop_core(&row->r, &hp, &p->hop_out[k], &p->hop_cost[k]);
        widest = row->r.window > widest ? row->r.window : widest;
    }
    p->max_input = widest - self->l[L_RESERVE];
    p->head_output = p->hop_out[0];
    const row_c *chosen = &self->models[p->chosen];
    const row_c *runner = p->runner >= 0 ? &self->models[p->runner] : NULL;
    text_t none = {"", 0};
    size_t cap = reason_cap(sig->task->label, tier->name, chosen->name, runner ? runner->name : none);
    p->reason = cap <= sizeof p->reason_stack ? p->reason_stack : PyMem_Malloc(cap);
    if (p->reason == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int sla_note = sla_excluded && p->excl[p->chosen][0] == 0;
    p->reason_len = reason_write(p->reason, sig->task->label, sig->confidence, sig->difficulty,
                                 sig->tokens, tier->name, chosen->name, &p->c[p->chosen],
                                 runner ? runner->name : none, runner ? &p->c[p->runner] : NULL,
                                 sla_note, tier->sla_ms, p->len);
    return 1;
}

#endif
