/* The policy's arithmetic as plain C (engine.policy without a cascade), shared by
 * engine/_policy.c (its Python entry points, which build Candidate and Hop objects around it)
 * and engine/_fastpath.c (the native Decide, which writes the plan's bytes from it): one
 * definition, so both give the same floats and the same text. Each step is the Python loop's of
 * engine/policy.py operation for operation (tests/unit/test_policy_kernel.py). Static functions;
 * include after Python.h.
 */
#ifndef MODELROUTE_POLICY_CORE_H
#define MODELROUTE_POLICY_CORE_H

#include <math.h>
#include <string.h>

#include "_fmt.h"

#define POLICY_MAX_MODELS 256

/* A model row's numbers (engine.policy_tables.ModelRow; prices are USD per 1M tokens). */
typedef struct {
    double in_price, out_price;
    long long window, max_out, ttft;
} prow_t;

/* The decision's numbers every candidate is judged by (engine.policy._candidates). */
typedef struct {
    long long tokens, cap, reserve;
    double sla_ms, max_cost, weight, sensitivity, shift, prefill_ms;
} cand_params;

/* A model's candidate: expected cost, predicted quality, score, eligibility. */
typedef struct {
    double cost, q, score;
    int eligible, allowed;
} cand_t;

/* One model's candidate; `learned` its learned success probability, or NULL for the ability
 * prior (`logit`, moved by the difficulty's shift). */
static void candidate_core(const prow_t *r, double logit, const double *learned, int allowed,
                           const cand_params *p, cand_t *c) {
    long long out_tokens = p->cap < r->max_out ? p->cap : r->max_out;
    long long room = r->window - p->tokens;
    if (room < out_tokens) out_tokens = room > 0 ? room : 0;
    double cost = ((double)p->tokens * r->in_price + (double)out_tokens * r->out_price) / 1e6;
    double q = learned != NULL ? *learned : 1.0 / (1.0 + exp(p->shift - logit));
    int eligible = allowed && p->tokens + p->reserve <= r->window
                   && (double)r->ttft + p->prefill_ms <= p->sla_ms && cost <= p->max_cost
                   && ((double)p->tokens * r->in_price + (double)p->reserve * r->out_price) / 1e6
                          <= p->max_cost;
    c->cost = cost;
    c->q = q;
    c->score = eligible ? p->sensitivity * q - p->weight * cost : 0.0;
    c->eligible = eligible;
    c->allowed = allowed;
}

/* The choice and the chain (engine.policy._chain): the chosen candidate is the first eligible
 * one with the best score, the runner-up the next best (-1: none); the chain is the chosen,
 * then the declared models that are eligible, then the other eligible ones by score (stable),
 * at most max_hops. Returns the chain's length, or -1 with *err set (no eligible candidate, a
 * declared index out of range, too many models). */
static Py_ssize_t chain_core(const cand_t *c, Py_ssize_t n, const Py_ssize_t *declared,
                             Py_ssize_t n_declared, Py_ssize_t max_hops, Py_ssize_t *chosen_p,
                             Py_ssize_t *runner_p, Py_ssize_t chain[POLICY_MAX_MODELS],
                             const char **err) {
    Py_ssize_t order[POLICY_MAX_MODELS], n_el = 0, chosen = -1, runner = -1, len = 0;
    char in_chain[POLICY_MAX_MODELS] = {0};
    if (n > POLICY_MAX_MODELS || max_hops < 1) {
        *err = "finish: bad arguments";
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!c[i].eligible) continue;
        order[n_el++] = i;
        if (chosen < 0 || c[i].score > c[chosen].score) chosen = i;
    }
    if (chosen < 0) {
        *err = "finish: no eligible candidate";
        return -1;
    }
    for (Py_ssize_t k = 0; k < n_el; k++) {
        Py_ssize_t i = order[k];
        if (i != chosen && (runner < 0 || c[i].score > c[runner].score)) runner = i;
    }
    /* stable sort of the eligible by -score (insertion sort: at most a few dozen models) */
    for (Py_ssize_t a = 1; a < n_el; a++) {
        Py_ssize_t v = order[a], b = a;
        double key = -c[v].score;
        while (b > 0 && key < -c[order[b - 1]].score) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = v;
    }
    chain[len++] = chosen;
    in_chain[chosen] = 1;
    for (Py_ssize_t k = 0; k < n_declared && len < max_hops; k++) {
        Py_ssize_t i = declared[k];
        if (i < 0 || i >= n) {
            *err = "finish: declared index out of range";
            return -1;
        }
        if (!in_chain[i] && c[i].eligible) {
            chain[len++] = i;
            in_chain[i] = 1;
        }
    }
    for (Py_ssize_t k = 0; k < n_el && len < max_hops; k++) {
        if (!in_chain[order[k]]) {
            chain[len++] = order[k];
            in_chain[order[k]] = 1;
        }
    }
    *chosen_p = chosen;
    *runner_p = runner;
    return len;
}

typedef struct {
    long long tokens, wanted, expected, reserve;
    double max_cost;
} hop_params;

/* engine.policy._hops for one row: its output cap (the wanted tokens, within the model's maximum,
 * the room left in its context window and what the remaining cost budget buys, never below the
 * reserve when priced) and its expected cost. */
static void hop_core(const prow_t *r, const hop_params *p, long long *out_tokens, double *cost) {
    long long out = p->wanted < r->max_out ? p->wanted : r->max_out;
    long long room = r->window - p->tokens;
    if (room < out) out = room > 0 ? room : 0;
    if (r->out_price > 0) {
        double prompt = ((double)p->tokens * r->in_price + (double)0 * r->out_price) / 1e6;
        long long affordable = (long long)((p->max_cost - prompt) * 1e6 / r->out_price);
        long long capped = out < affordable ? out : affordable;
        out = p->reserve > capped ? p->reserve : capped;
    }
    long long billed = out < p->expected ? out : p->expected;
    *out_tokens = out;
    *cost = ((double)p->tokens * r->in_price + (double)billed * r->out_price) / 1e6;
}

typedef struct {
    const char *p;
    Py_ssize_t n;
} text_t;

/* The most bytes reason_write writes for these texts: the texts, 6 numbers, 3 integers, the
 * fixed words. */
static size_t reason_cap(text_t label, text_t tier, text_t chosen, text_t runner) {
    return (size_t)(label.n + tier.n + chosen.n + runner.n) + 6 * FMT_FIXED_MAX + 3 * 24 + 128;
}

static void put_text(char *buf, size_t *at, const char *s, size_t n) {
    memcpy(buf + *at, s, n);
    *at += n;
}

#define PUT_LIT(buf, at, lit) put_text(buf, at, lit, sizeof(lit) - 1)

static void put_fixed(char *buf, size_t *at, double x, int digits) {
    *at += fmt_fixed(buf + *at, x, digits);
}

/* "M (p=P, $X)": a model's name, its predicted quality as "%.2f" and its cost as "%.4f". */
static void put_model(char *buf, size_t *at, text_t name, const cand_t *c) {
    put_text(buf, at, name.p, (size_t)name.n);
    PUT_LIT(buf, at, " (p=");
    put_fixed(buf, at, c->q, 2);
    PUT_LIT(buf, at, ", $");
    put_fixed(buf, at, c->cost, 4);
    PUT_LIT(buf, at, ")");
}

/* engine.policy._reason, as UTF-8 at buf (reason_cap bytes): "task=L(C) difficulty=D tokens=N
 * tier=T: M (p=P, $X)[ over M2 (p=P2, $X2)][; SLA S ms]; H hop(s)", C, D, P, P2 as "%.2f" and
 * X, X2 as "%.4f". `runner` NULL: none. Returns the bytes written. */
static size_t reason_write(char *buf, text_t label, double conf, double diff, long long tokens,
                           text_t tier, text_t chosen_name, const cand_t *chosen,
                           text_t runner_name, const cand_t *runner, int sla_note,
                           long long sla_ms, Py_ssize_t hops) {
    size_t at = 0;
    PUT_LIT(buf, &at, "task=");
    put_text(buf, &at, label.p, (size_t)label.n);
    PUT_LIT(buf, &at, "(");
    put_fixed(buf, &at, conf, 2);
    PUT_LIT(buf, &at, ") difficulty=");
    put_fixed(buf, &at, diff, 2);
    PUT_LIT(buf, &at, " tokens=");
    at += fmt_ll(buf + at, tokens);
    PUT_LIT(buf, &at, " tier=");
    put_text(buf, &at, tier.p, (size_t)tier.n);
    PUT_LIT(buf, &at, ": ");
    put_model(buf, &at, chosen_name, chosen);
    if (runner != NULL) {
        PUT_LIT(buf, &at, " over ");
        put_model(buf, &at, runner_name, runner);
    }
    if (sla_note) {
        PUT_LIT(buf, &at, "; SLA ");
        at += fmt_ll(buf + at, sla_ms);
        PUT_LIT(buf, &at, " ms");
    }
    PUT_LIT(buf, &at, "; ");
    at += fmt_ll(buf + at, (long long)hops);
    if (hops != 1) PUT_LIT(buf, &at, " hops");
    else PUT_LIT(buf, &at, " hop");
    return at;
}

/* engine.policy._Ctx.exclusion for an allowed model that is not eligible, at buf (cap bytes,
 * NUL-terminated; "" when none of the reasons applies); 1 when it is the SLA's. */
static inline int exclusion_core(const prow_t *r, double cost, long long tokens, long long sla,
                          double max_cost, long long reserve, double prefill_tps, char *buf,
                          size_t cap) {
    buf[0] = 0;
    if (tokens + reserve > r->window) {
        snprintf(buf, cap, "prompt of %lld tokens does not fit the context window of %lld", tokens,
                 r->window);
    } else if ((double)r->ttft + 1000.0 * (double)tokens / prefill_tps > (double)sla) {
        snprintf(buf, cap, "typical time to first token exceeds the %lld ms SLA", sla);
        return 1;
    } else if (((double)tokens * r->in_price + (double)reserve * r->out_price) / 1e6 > max_cost) {
        snprintf(buf, cap, "prompt alone costs more than the $%g budget", max_cost);
    } else if (cost > max_cost) {
        snprintf(buf, cap, "expected cost $%.4f exceeds the $%g budget", cost, max_cost);
    }
    return 0;
}

#endif
