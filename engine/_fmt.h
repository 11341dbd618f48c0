/* Number formatting for the plan's reason text, byte for byte what snprintf's "%.<d>f" and "%lld"
 * write (round half to even on the exact binary value, as glibc does in the default rounding
 * mode), without snprintf's format parsing: the reason is written for every decision.
 * Included by engine/_policy.c; engine._policy.format_fixed exposes fmt_fixed to the test that
 * holds it equal to "%.<d>f" (tests/unit/test_policy_kernel.py).
 */
#ifndef MODELROUTE_FMT_H
#define MODELROUTE_FMT_H

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The most "%.<digits>f" writes for digits <= 8: a sign, 309 digits, the point and 8 more. */
#define FMT_FIXED_MAX 330

/* Writes x as "%.<digits>f" would (digits 0..8) at out, which must hold FMT_FIXED_MAX bytes;
 * returns the number of bytes written, no terminating NUL. */
static size_t fmt_fixed(char *out, double x, int digits) {
    static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    /* below 2^51 the scaled value and the integers next to it are exact doubles */
    if (!isfinite(x) || digits < 0 || digits > 8 || fabs(x) * POW10[digits] >= 2251799813685248.0) {
        char buf[FMT_FIXED_MAX + 1];
        int w = snprintf(buf, sizeof buf, "%.*f", digits, x);
        size_t n = w > 0 ? (size_t)(w < FMT_FIXED_MAX ? w : FMT_FIXED_MAX) : 0;
        memcpy(out, buf, n);
        return n;
    }
    size_t at = 0;
    if (signbit(x)) {
        out[at++] = '-';
        x = -x;
    }
    /* k = x * 10^digits rounded half to even, from the exact product: x * 2s = p + e with p the
     * rounded product and e its exact error (fma), so the exact half of it is compared with the
     * half-integers around the candidate nearbyint(p / 2). p and 2k +- 1 are integers or
     * multiples of ulp(p) below 2^53, so p - (2k + 1) is exact, and when it is not zero it is at
     * least ulp(p) > |e|: its sign decides, and e only when it is zero. */
    double s2 = 2.0 * POW10[digits], p = x * s2, e = fma(x, s2, -p);
    double k = nearbyint(p * 0.5);
    double up = p - (2.0 * k + 1.0), down = p - (2.0 * k - 1.0);
    if (up > 0.0 || (up == 0.0 && e > 0.0) || (up == 0.0 && e == 0.0 && fmod(k, 2.0) != 0.0))
        k += 1.0; /* above k + 1/2, or on it with k odd */
    else if (down < 0.0 || (down == 0.0 && e < 0.0) || (down == 0.0 && e == 0.0 && fmod(k, 2.0) != 0.0))
        k -= 1.0; /* below k - 1/2, or on it with k odd */
    unsigned long long v = (unsigned long long)k;
    char digs[32];
    int n = 0;
    do {
        digs[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n <= digits) digs[n++] = '0'; /* at least one digit before the point */
    for (int i = n - 1; i >= digits; i--) out[at++] = digs[i];
    if (digits > 0) {
        out[at++] = '.';
        for (int i = digits - 1; i >= 0; i--) out[at++] = digs[i];
    }
    return at;
}

/* "%lld" of v at out (which must hold 24 bytes); returns the bytes written. */
static size_t fmt_ll(char *out, long long v) {
    char digs[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        digs[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t at = 0;
    if (v < 0) out[at++] = '-';
    while (n) out[at++] = digs[--n];
    return at;
}

#endif
