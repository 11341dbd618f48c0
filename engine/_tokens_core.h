/* The token estimator's byte-class counts (engine.signals.tokens) as plain C, shared by
 * engine/_tokens.c (its Python entry points) and engine/_fastpath.c (the native Decide): one
 * definition, so both give the same floats. Static functions; include after Python.h, call
 * tok_init() once. */
#ifndef MODELROUTE_TOKENS_CORE_H
#define MODELROUTE_TOKENS_CORE_H

#include <string.h>

#define TOK_FEATURES 25 /* class counts; the coefficients have one more, the bias */

#include "_gil.h"

/* Character-class counts for the token estimator (engine.signals.tokens), in one pass.
 * Byte classes: letter [A-Za-z], digit, punctuation (printable ASCII, not alphanumeric), space,
 * newline, UTF-8 continuation, UTF-8 lead of 2/3/4 bytes, other (tabs, CR, controls, DEL).
 * For runs of one class, "floor(len / k)" is how many non-overlapping k-long pieces it holds.
 */
enum { C_LETTER, C_DIGIT, C_PUNCT, C_SPACE, C_NL, C_CONT, C_LEAD2, C_LEAD3, C_LEAD4, C_OTHER };

static unsigned char tok_table[256];

static int tok_class_slow(unsigned char b) {
    if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')) return C_LETTER;
    if (b >= '0' && b <= '9') return C_DIGIT;
    if (b >= 33 && b <= 126) return C_PUNCT;
    if (b == ' ') return C_SPACE;
    if (b == '\n') return C_NL;
    if (b >= 0x80 && b < 0xC0) return C_CONT;
    if (b >= 0xC0 && b < 0xE0) return C_LEAD2;
    if (b >= 0xE0 && b < 0xF0) return C_LEAD3;
    if (b >= 0xF0) return C_LEAD4;
    return C_OTHER;
}

/* TOK_UP[b]: b is an upper-case letter. TOK_DIV[len]: len / 3, 5, 7, 9, 12 for short runs. */
#define TOK_DIV_TABLE 256
static unsigned char TOK_UP[256], TOK_DIV[TOK_DIV_TABLE][5];

static void tok_init(void) {
    for (int b = 0; b < 256; b++) {
        tok_table[b] = (unsigned char)tok_class_slow((unsigned char)b);
        TOK_UP[b] = (unsigned char)(b >= 'A' && b <= 'Z');
    }
    for (int len = 0; len < TOK_DIV_TABLE; len++) {
        const int by[5] = {3, 5, 7, 9, 12};
        for (int k = 0; k < 5; k++) TOK_DIV[len][k] = (unsigned char)(len / by[k]);
    }
}

#define tok_class(b) ((int)tok_table[(unsigned char)(b)])

static void class_counts_into(const unsigned char *s, Py_ssize_t n, double f[TOK_FEATURES]) {
    Py_ssize_t count[10] = {0}, runs[10] = {0};
    Py_ssize_t div_l3 = 0, div_l5 = 0, div_l7 = 0, div_l9 = 0, div_l12 = 0, div_d3 = 0, div_p2 = 0;
    Py_ssize_t div_s2 = 0, div_s4 = 0, div_n2 = 0, upper = 0, low_up = 0, up_pairs = 0;
    Py_ssize_t i = 0;
    PyThreadState *_save = release_gil_if_long(n);
    while (i < n) {
        int c = tok_class(s[i]);
        Py_ssize_t j = i + 1;
        unsigned any_up = TOK_UP[s[i]];
        if (c == C_LETTER)
            for (; j < n && tok_class(s[j]) == C_LETTER; j++) any_up |= TOK_UP[s[j]];
        else
            while (j < n && tok_class(s[j]) == c) j++;
        Py_ssize_t len = j - i;
        count[c] += len;
        runs[c] += 1;
        switch (c) {
        case C_LETTER: {
            if (len < TOK_DIV_TABLE) {
                const unsigned char *q = TOK_DIV[len];
                div_l3 += q[0]; div_l5 += q[1]; div_l7 += q[2]; div_l9 += q[3]; div_l12 += q[4];
            } else {
                div_l3 += len / 3; div_l5 += len / 5; div_l7 += len / 7; div_l9 += len / 9; div_l12 += len / 12;
            }
            if (!any_up) break; /* all lower case: no upper-case counts to add */
            Py_ssize_t up_run = 0;
            for (Py_ssize_t k = i; k < j; k++) {
                int is_up = s[k] >= 'A' && s[k] <= 'Z';
                if (is_up) { upper++; up_run++; }
                else { up_pairs += up_run / 2; up_run = 0; }
                if (is_up && k > i && s[k - 1] >= 'a' && s[k - 1] <= 'z') low_up++;
            }
            up_pairs += up_run / 2;
            break;
        }
        case C_DIGIT: div_d3 += len / 3; break;
        case C_PUNCT: div_p2 += len / 2; break;
        case C_SPACE: div_s2 += len / 2; div_s4 += len / 4; break;
        case C_NL: div_n2 += len / 2; break;
        default: break;
        }
        i = j;
    }
    if (_save) PyEval_RestoreThread(_save);
    double v[25] = {
        (double)count[C_LETTER], (double)runs[C_LETTER], (double)div_l3, (double)div_l5,
        (double)div_l7, (double)div_l9, (double)div_l12, (double)upper, (double)low_up,
        (double)up_pairs, (double)count[C_DIGIT], (double)runs[C_DIGIT], (double)div_d3,
        (double)count[C_PUNCT], (double)runs[C_PUNCT], (double)div_p2, (double)count[C_SPACE],
        (double)div_s2, (double)div_s4, (double)count[C_NL], (double)div_n2, (double)count[C_OTHER],
        (double)count[C_LEAD2], (double)count[C_LEAD3], (double)count[C_LEAD4],
    };
    memcpy(f, v, sizeof v);
}

/* sum over k of coef[k] * (count_k * scale), then + coef[25] * 1.0 (the bias), summed left to
 * right as engine.signals.tokens does in Python. */
static double class_dot_core(const unsigned char *s, Py_ssize_t n, const double coef[TOK_FEATURES + 1],
                             double scale) {
    double f[TOK_FEATURES + 1];
    class_counts_into(s, n, f);
    for (int k = 0; k < TOK_FEATURES; k++) f[k] = f[k] * scale;
    f[TOK_FEATURES] = 1.0;
    double total = 0.0;
    for (int k = 0; k < TOK_FEATURES + 1; k++) total += coef[k] * f[k];
    return total;
}

#endif
