/* The featurizer of engine.features as plain C, shared by engine/_featurize.c (its Python entry
 * points) and engine/_fastpath.c (the native Decide, which calls it without building bytes
 * objects): one definition, so both give the same features. Static functions; include after
 * Python.h and call featurize_init() once. See engine/_featurize.c for what is computed. */
#ifndef MODELROUTE_FEATURIZE_CORE_H
#define MODELROUTE_FEATURIZE_CORE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_gil.h"

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_from(uint32_t value, const unsigned char *p, Py_ssize_t n) {
    uint32_t c = value ^ 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

enum { SPACE = 0, LETTER = 1, DIGIT = 2, HIGH = 3, OTHER = 4 };

static int byte_class_of(unsigned char b) {
    if (b >= 'a' && b <= 'z') return LETTER;
    if (b >= '0' && b <= '9') return DIGIT;
    if (b >= 0x80) return HIGH;
    if (b == ' ' || (b >= 0x09 && b <= 0x0D)) return SPACE;
    return OTHER;
}

static unsigned char BYTE_CLASS[256], LOWER[256]; /* LOWER: A-Z to a-z, as str.lower() on ASCII */
#define byte_class(b) ((int)BYTE_CLASS[(unsigned char)(b)])

/* log1pf of the small whole counts, computed once: the same floats as calling it. */
#define LOG1P_TABLE 256
static float LOG1P[LOG1P_TABLE];

static void tables_init(void) {
    for (int b = 0; b < 256; b++) {
        BYTE_CLASS[b] = (unsigned char)byte_class_of((unsigned char)b);
        LOWER[b] = (unsigned char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
    }
    for (int k = 0; k < LOG1P_TABLE; k++) LOG1P[k] = log1pf((float)k);
}

/* c is a count (a whole number, exact in float32 up to 2^24) */
static float log1p_count(float c) {
    uint32_t k = c < 16777216.0f ? (uint32_t)c : LOG1P_TABLE;
    return k < LOG1P_TABLE && (float)k == c ? LOG1P[k] : log1pf(c);
}

/* Open-addressing table from bucket to its slot in the output arrays. */
typedef struct {
    int64_t *keys;
    Py_ssize_t *slot;
    Py_ssize_t mask;
} table_t;

static Py_ssize_t table_find(table_t *t, int64_t key) {
    Py_ssize_t i = (Py_ssize_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 20) & t->mask;
    while (t->keys[i] != -1 && t->keys[i] != key) i = (i + 1) & t->mask;
    return i;
}

/* Hashed counts of `s` into freshly allocated `*out_idx` / `*out_cnt` (PyMem; the caller frees
 * them, also on error); `*nout` distinct buckets. Returns 0, or -1 with an exception set. */
static int hash_counts(const unsigned char *s, Py_ssize_t n, uint64_t bmask, int64_t **out_idx,
                       float **out_cnt, Py_ssize_t *nout_p) {
    /* one scratch block: token starts and lengths, unigram hashes, then the table */
    size_t tok_bytes = (sizeof(Py_ssize_t) * 2 + sizeof(uint32_t)) * (size_t)(n + 1);
    char *scratch = PyMem_Malloc(tok_bytes);
    Py_ssize_t *starts = (Py_ssize_t *)scratch, *lens = starts + (n + 1);
    uint32_t *uni = (uint32_t *)(lens + (n + 1));
    table_t t = {NULL, NULL, 0};
    int rc = -1;
    *out_idx = NULL;
    *out_cnt = NULL;
    *nout_p = 0;
    if (scratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t ntok = 0, i = 0;
    PyThreadState *_save = release_gil_if_long(n);
    while (i < n) {
        int c = byte_class(s[i]);
        if (c == SPACE) {
            i++;
            continue;
        }
        /* the unigram's crc32 (crc32_from(0, token)) while reading the token */
        uint32_t h = crc_table[(0xFFFFFFFFu ^ s[i]) & 0xFF] ^ (0xFFFFFFFFu >> 8);
        Py_ssize_t j = i + 1;
        if (c != OTHER)
            for (; j < n && byte_class(s[j]) == c; j++) h = crc_table[(h ^ s[j]) & 0xFF] ^ (h >> 8);
        starts[ntok] = i;
        lens[ntok] = j - i;
        uni[ntok] = h ^ 0xFFFFFFFFu;
        ntok++;
        i = j;
    }
    if (_save) PyEval_RestoreThread(_save);
    /* At most one unigram and one bigram bucket per token: size the table from the token count
     * (sizing it from the byte count made every call fault in pages it never used). */
    Py_ssize_t cap = 2 * ntok + 2, size = 8;
    while (size < 2 * cap) size <<= 1;
    int64_t *idx = *out_idx = PyMem_Malloc(sizeof(int64_t) * cap);
    float *cnt = *out_cnt = PyMem_Malloc(sizeof(float) * cap);
    t.keys = PyMem_Malloc((sizeof(int64_t) + sizeof(Py_ssize_t)) * size);
    t.slot = t.keys != NULL ? (Py_ssize_t *)(t.keys + size) : NULL;
    t.mask = size - 1;
    if (!idx || !cnt || !t.keys) {
        PyErr_NoMemory();
        goto done;
    }
    memset(t.keys, 0xFF, sizeof(int64_t) * size);
    Py_ssize_t nout = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (Py_ssize_t k = pass; k < ntok; k++) {
            uint32_t h = pass == 0 ? uni[k] : crc32_from(uni[k - 1], s + starts[k], lens[k]);
            int64_t key = (int64_t)(h & bmask);
            Py_ssize_t at = table_find(&t, key);
            if (t.keys[at] == -1) {
                t.keys[at] = key;
                t.slot[at] = nout;
                idx[nout] = key;
                cnt[nout] = 1.0f;
                nout++;
            } else {
                cnt[t.slot[at]] += 1.0f;
            }
        }
    }
    *nout_p = nout;
    rc = 0;
done:
    PyMem_Free(scratch);
    PyMem_Free(t.keys);
    return rc;
}

static int bits_mask(unsigned int bits, uint64_t *mask) {
    if (bits < 1 || bits > 32) {
        PyErr_SetString(PyExc_ValueError, "bits must be in 1..32");
        return -1;
    }
    *mask = (bits == 32) ? 0xFFFFFFFFull : ((1ull << bits) - 1);
    return 0;
}

/* Byte statistics for the dense features (engine.features.dense_features), in one pass over
 * the bytes plus one for the patterns. Counts of the code markers and of "\\frac" are
 * non-overlapping per pattern, like bytes.count; math hits are the non-overlapping matches of
 * the regex \d ?[-+*\/^=] ?\d found scanning left to right, like re.findall.
 */
enum { N_CODE_MARKERS = 9, N_PATTERNS = 10 }; /* the code markers, then "\\frac" */
static const char *PATTERNS[N_PATTERNS] = {"```", "def ", "class ", "return", ";\n", "{\n",
                                           "#include", "=>", "function", "\\frac"};
static size_t PATTERN_LEN[N_PATTERNS];
static uint16_t PATTERNS_AT[256]; /* bit k: PATTERNS[k] starts with this byte */

static void patterns_init(void) {
    for (int k = 0; k < N_PATTERNS; k++) {
        PATTERN_LEN[k] = strlen(PATTERNS[k]);
        PATTERNS_AT[(unsigned char)PATTERNS[k][0]] |= (uint16_t)(1u << k);
    }
}

/* Each pattern's count in `s`, in one left-to-right pass: a match is counted when it starts at
 * or after the end of that pattern's previous counted match, which is what bytes.count does. */
static void pattern_counts(const unsigned char *s, Py_ssize_t n, Py_ssize_t counts[N_PATTERNS]) {
    Py_ssize_t next[N_PATTERNS] = {0};
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int m = PATTERNS_AT[s[i]];
        while (m) {
            int k = __builtin_ctz(m);
            m &= m - 1;
            Py_ssize_t len = (Py_ssize_t)PATTERN_LEN[k];
            if (i >= next[k] && n - i >= len && memcmp(s + i, PATTERNS[k], (size_t)len) == 0) {
                counts[k]++;
                next[k] = i + len;
            }
        }
    }
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static Py_ssize_t math_hits(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t count = 0, i = 0;
    while (i < n) {
        if (is_digit(s[i])) {
            Py_ssize_t j = i + 1;
            if (j < n && s[j] == ' ') j++;
            if (j < n && strchr("-+*/^=", s[j]) && s[j] != 0) {
                Py_ssize_t k = j + 1;
                if (k < n && s[k] == ' ') k++;
                if (k < n && is_digit(s[k])) {
                    count++;
                    i = k + 1;
                    continue;
                }
            }
        }
        i++;
    }
    return count;
}

typedef struct {
    Py_ssize_t digits, upper, punct, high, code, maths, frac, dollars, qmarks;
} stats_t;

/* Per byte, which of stats_t's counters it adds to (one of digits, upper, high, punct; and
 * qmarks or dollars besides punct). */
enum { S_DIGIT, S_UPPER, S_HIGH, S_PUNCT, S_QMARK, S_DOLLAR, S_NONE, N_STAT_KINDS };
static unsigned char STAT_KIND[256], STAT_EXTRA[256];

static void stats_init(void) {
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        STAT_KIND[b] = (c >= '0' && c <= '9') ? S_DIGIT
                       : (c >= 'A' && c <= 'Z') ? S_UPPER
                       : c >= 128 ? S_HIGH
                       : (c >= 33 && c <= 126 && !(c >= 'a' && c <= 'z')) ? S_PUNCT
                                                                          : S_NONE;
        STAT_EXTRA[b] = c == '?' ? S_QMARK : c == '$' ? S_DOLLAR : S_NONE;
    }
}

/* Stats of `s` whose byte histogram is `hist` (the counters come from it; the patterns and the
 * arithmetic from a pass over `s`). */
static void stats_of_hist(const unsigned char *s, Py_ssize_t n, const Py_ssize_t hist[256], stats_t *st) {
    memset(st, 0, sizeof *st);
    Py_ssize_t kinds[N_STAT_KINDS] = {0};
    for (int b = 0; b < 256; b++) {
        kinds[STAT_KIND[b]] += hist[b];
        kinds[STAT_EXTRA[b]] += hist[b];
    }
    st->digits = kinds[S_DIGIT];
    st->upper = kinds[S_UPPER];
    st->high = kinds[S_HIGH];
    st->punct = kinds[S_PUNCT];
    st->qmarks = kinds[S_QMARK];
    st->dollars = kinds[S_DOLLAR];
    PyThreadState *_save = release_gil_if_long(n);
    Py_ssize_t counts[N_PATTERNS] = {0};
    pattern_counts(s, n, counts);
    for (int k = 0; k < N_CODE_MARKERS; k++) st->code += counts[k];
    st->frac = counts[N_CODE_MARKERS];
    st->maths = math_hits(s, n);
    if (_save) PyEval_RestoreThread(_save);
}

static void stats_of(const unsigned char *s, Py_ssize_t n, stats_t *st) {
    Py_ssize_t hist[256] = {0};
    PyThreadState *_save = release_gil_if_long(n);
    for (Py_ssize_t i = 0; i < n; i++) hist[s[i]]++;
    if (_save) PyEval_RestoreThread(_save);
    stats_of_hist(s, n, hist, st);
}

static Py_ssize_t min_n(Py_ssize_t a, Py_ssize_t b) { return a < b ? a : b; }

/* The dense vector of engine.features.dense_features, in the same order and arithmetic (double,
 * then rounded to float32 as numpy.asarray(..., float32) does). */
#define N_DENSE 11
static void dense_of(const stats_t *st, Py_ssize_t sample_len, Py_ssize_t n_chars,
                     Py_ssize_t n_spaces, Py_ssize_t n_lines, float *out) {
    double n = n_chars ? (double)n_chars : 1.0;
    double m = sample_len ? (double)sample_len : 1.0;
    double words = (double)(n_spaces + n_lines + 1);
    Py_ssize_t maths = st->maths + st->frac + st->dollars / 2;
    out[0] = (float)(log1p(n) / 10.0);
    out[1] = (float)(log1p(words) / 10.0);
    out[2] = (float)(log1p((double)n_lines) / 5.0);
    out[3] = (float)((double)st->digits / m);
    out[4] = (float)((double)st->upper / m);
    out[5] = (float)((double)st->punct / m);
    out[6] = (float)((double)min_n(st->code, 10) / 10.0);
    out[7] = (float)((double)min_n(maths, 10) / 10.0);
    out[8] = (float)((double)min_n(st->qmarks, 5) / 5.0);
    out[9] = (float)((double)st->high / m);
    out[10] = 1.0f;
}

/* Features of one prompt: the distinct hashed buckets (idx, PyMem, n >= 1: an empty sample gives
 * bucket 0 with value 0), their log-scaled, L2-normalized values, and the dense vector. */
typedef struct {
    int64_t *idx;
    float *val;
    Py_ssize_t n;
    float dense[N_DENSE];
} feats_t;

static void feats_free(feats_t *f) {
    PyMem_Free(f->idx);
    PyMem_Free(f->val);
    f->idx = NULL;
    f->val = NULL;
}

/* engine.features.featurize after the clipping: hashed counts of `low` (the clipped sample
 * lower-cased, UTF-8), values log1p(count) scaled to unit L2 norm (float32), and the dense
 * vector from the byte statistics of `raw` (the clipped sample, UTF-8; `raw_hist` its byte
 * histogram when the caller has it, else NULL) and the counts of the whole text. 0, or -1 with
 * an exception set (nothing to free). */
static int features_core(const unsigned char *low, Py_ssize_t low_len, const unsigned char *raw,
                         Py_ssize_t raw_len, unsigned int bits, Py_ssize_t n_chars,
                         Py_ssize_t n_spaces, Py_ssize_t n_lines, const Py_ssize_t *raw_hist,
                         feats_t *out) {
    uint64_t bmask;
    out->idx = NULL;
    out->val = NULL;
    out->n = 0;
    if (bits_mask(bits, &bmask) < 0 || hash_counts(low, low_len, bmask, &out->idx, &out->val, &out->n) < 0) {
        feats_free(out);
        return -1;
    }
    if (out->n == 0) {
        feats_free(out);
        out->idx = PyMem_Malloc(sizeof(int64_t));
        out->val = PyMem_Malloc(sizeof(float));
        if (out->idx == NULL || out->val == NULL) {
            feats_free(out);
            PyErr_NoMemory();
            return -1;
        }
        out->idx[0] = 0;
        out->val[0] = 0.0f;
        out->n = 1;
    } else {
        double sq = 0.0;
        for (Py_ssize_t i = 0; i < out->n; i++) {
            out->val[i] = log1p_count(out->val[i]);
            sq += (double)out->val[i] * (double)out->val[i];
        }
        float norm = (float)sqrt((double)(float)sq);
        for (Py_ssize_t i = 0; i < out->n; i++) out->val[i] = out->val[i] / norm;
    }
    stats_t st;
    if (raw_hist != NULL)
        stats_of_hist(raw, raw_len, raw_hist, &st);
    else
        stats_of(raw, raw_len, &st);
    dense_of(&st, raw_len, n_chars, n_spaces, n_lines, out->dense);
    return 0;
}

/* features_core of an ASCII text `t` (n bytes), clipping (the first `head` and last `tail`
 * characters joined by a newline, when longer than both), lower-casing and counting done here:
 * for ASCII, characters are bytes and str.lower() maps only A-Z. 0, or -1 with an exception. */
static int features_ascii_core(const unsigned char *t, Py_ssize_t n, unsigned int bits,
                               Py_ssize_t head, Py_ssize_t tail, feats_t *out) {
    Py_ssize_t hist[256] = {0}, spaces = 0, lines = 0; /* hist: of the sample */
    Py_ssize_t m = n <= head + tail ? n : head + 1 + tail;
    unsigned char stack_buf[2 * 4096];
    /* the sample is `t` itself when it is not clipped; else a copy, beside its lower case */
    Py_ssize_t need = m == n ? m : 2 * m;
    unsigned char *buf = need <= (Py_ssize_t)sizeof stack_buf ? stack_buf : PyMem_Malloc(need + 1);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const unsigned char *raw;
    unsigned char *low;
    if (m == n) {
        raw = t;
        low = buf;
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            spaces += t[i] == ' ';
            lines += t[i] == '\n';
        }
        unsigned char *copy = buf + m;
        memcpy(copy, t, head);
        copy[head] = '\n';
        memcpy(copy + head + 1, t + n - tail, tail);
        raw = copy;
        low = buf;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        unsigned char c = raw[i];
        low[i] = LOWER[c];
        hist[c]++;
    }
    if (m == n) {
        spaces = hist[' '];
        lines = hist['\n'];
    }
    int rc = features_core(low, m, raw, m, bits, n, spaces, lines, hist, out);
    if (buf != stack_buf) PyMem_Free(buf);
    return rc;
}

static void featurize_init(void) {
    crc_init();
    patterns_init();
    tables_init();
    stats_init();
}

#endif
