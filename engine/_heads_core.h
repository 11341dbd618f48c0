/* The fast-path models' arithmetic as plain C, shared by engine/_heads.c (its Python entry
 * points) and engine/_fastpath.c (the native Decide, which calls it without Python objects in
 * between): one definition, so both give the same floats. Static functions; include after
 * Python.h. */
#ifndef MODELROUTE_HEADS_CORE_H
#define MODELROUTE_HEADS_CORE_H

#include <math.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define HEADS_MAX_K 64

/* z[c] += v * row[c] for c < k, each in double: two lanes at a time where SSE2 is there (every
 * x86-64), with the same per-element multiply then add as the scalar loop, so the same doubles. */
static inline void axpy_row(double *z, const float *row, double v, Py_ssize_t k) {
    Py_ssize_t c = 0;
#ifdef __SSE2__
    __m128d vv = _mm_set1_pd(v);
    for (; c + 4 <= k; c += 4) {
        __m128 r4 = _mm_loadu_ps(row + c);
        __m128d lo = _mm_cvtps_pd(r4), hi = _mm_cvtps_pd(_mm_movehl_ps(r4, r4));
        _mm_storeu_pd(z + c, _mm_add_pd(_mm_loadu_pd(z + c), _mm_mul_pd(vv, lo)));
        _mm_storeu_pd(z + c + 2, _mm_add_pd(_mm_loadu_pd(z + c + 2), _mm_mul_pd(vv, hi)));
    }
#endif
    for (; c < k; c++) z[c] += v * row[c];
}

/* The fused linear graph: out[c] = float32(bias[c] + sum_i val[i] * table[idx[i] & mask][c] +
 * sum_j dense[j] * table[base + j][c]), summed in double; `table` is [rows, k]. -1 (nothing
 * written) when the sizes do not fit: k outside 1..HEADS_MAX_K, mask or the dense rows outside
 * the table. */
static int linear_logits_core(const float *table, Py_ssize_t rows, Py_ssize_t k, Py_ssize_t mask,
                              Py_ssize_t base, const float *bias, const int64_t *idx,
                              const float *val, Py_ssize_t n, const float *dense, Py_ssize_t nd,
                              double *out) {
    double z[HEADS_MAX_K];
    if (k <= 0 || k > HEADS_MAX_K || mask < 0 || mask >= rows || base < 0 || base + nd > rows)
        return -1;
    for (Py_ssize_t c = 0; c < k; c++) z[c] = 0.0;
    /* The rows are scattered over a table of megabytes: ask for all of them first, so their
     * cache misses overlap instead of coming one after the other. */
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *row = (const char *)(table + (Py_ssize_t)(idx[i] & mask) * k);
        __builtin_prefetch(row);
        __builtin_prefetch(row + (Py_ssize_t)(k * sizeof(float)) - 1);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        axpy_row(z, table + (Py_ssize_t)(idx[i] & mask) * k, (double)val[i], k);
    for (Py_ssize_t j = 0; j < nd; j++) axpy_row(z, table + (base + j) * k, (double)dense[j], k);
    for (Py_ssize_t c = 0; c < k; c++) out[c] = (double)(float)(z[c] + bias[c]);
    return 0;
}

/* e[a:b] = the softmax (softmax true) or the element-wise sigmoid of z[a:b], as
 * engine.onnx_group._activate computes it in Python (same libm exp, same order). */
static void activate_slice(const double *z, Py_ssize_t a, Py_ssize_t b, int softmax, double *e) {
    if (softmax) {
        double top = z[a], total = 0.0;
        for (Py_ssize_t i = a + 1; i < b; i++)
            if (z[i] > top) top = z[i];
        for (Py_ssize_t i = a; i < b; i++) {
            e[i] = exp(z[i] - top);
            total += e[i];
        }
        for (Py_ssize_t i = a; i < b; i++) e[i] = e[i] / total;
    } else {
        for (Py_ssize_t i = a; i < b; i++) e[i] = z[i] > -700.0 ? 1.0 / (1.0 + exp(-z[i])) : 0.0;
    }
}

/* A model's learned success probability at route score r and difficulty level
 * (LearnedRouter.score; c = 0 for a link on the route score alone). */
static inline double link_p(double a, double b, double c, double r, double level) {
    return 1.0 / (1.0 + exp(-(a + b * r + c * level)));
}

/* The difficulty's log-odds, clipped as engine.router.route.difficulty_level computes it. */
#define LEVEL_CLIP 1e-4
static inline double level_of(double d) {
    double x = d < LEVEL_CLIP ? LEVEL_CLIP : (d > 1.0 - LEVEL_CLIP ? 1.0 - LEVEL_CLIP : d);
    return log(x / (1.0 - x));
}

#endif
