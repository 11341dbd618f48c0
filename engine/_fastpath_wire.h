/* The wire side of engine._fastpath (included by engine/_fastpath.c only): a plain
 * DecideRequest read from its bytes into spans of the buffer, without building any object. */
#ifndef MODELROUTE_FASTPATH_WIRE_H
#define MODELROUTE_FASTPATH_WIRE_H

#define MAX_MESSAGES 256
#define MAX_OV_ALLOWED 64 /* more allowed_models in the overrides: the Python path */

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} span_t;

typedef struct {
    span_t request_id, tenant, tier;
    int has_ov, has_ov_sla, has_ov_cost; /* the Overrides message, and its optional fields */
    uint64_t ov_sla;
    double ov_cost;
    Py_ssize_t n_ov_allowed;
    span_t content[MAX_MESSAGES];
    int role[MAX_MESSAGES];
    unsigned char ascii[MAX_MESSAGES]; /* 0: the content holds UTF-8 beyond ASCII */
    span_t ov_allowed[MAX_OV_ALLOWED];
    Py_ssize_t n_messages, n_metadata;
    int64_t task_hint;
    int has_max_out;
    uint64_t max_out;
} req_t;

/* ---- the wire: only what a plain DecideRequest holds; 0 = not the common case ---- */

static int rd_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (int i = 0; i < 10 && p < end; i++) {
        uint8_t b = *p++;
        if (i == 9 && b > 1) return 0;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *v = r;
            return 1;
        }
    }
    return 0;
}

static int rd_span(const uint8_t **pp, const uint8_t *end, span_t *s) {
    uint64_t n;
    if (!rd_varint(pp, end, &n) || n > (uint64_t)(end - *pp)) return 0;
    s->p = *pp;
    s->n = (Py_ssize_t)n;
    *pp += n;
    return 1;
}

static int is_ascii(span_t s) {
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (s.p[i] & 0x80) return 0;
    return 1;
}

/* Well-formed UTF-8 as Python's strict decoder (and protobuf's string check) takes it: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(span_t s) {
    const uint8_t *p = s.p, *end = s.p + s.n;
    while (p < end) {
        uint8_t b = *p++;
        if (b < 0x80) continue;
        int more;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the first continuation byte */
        if (b >= 0xC2 && b <= 0xDF) more = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            more = 2;
            if (b == 0xE0) lo = 0xA0;      /* overlong */
            else if (b == 0xED) hi = 0x9F; /* surrogates */
        } else if (b >= 0xF0 && b <= 0xF4) {
            more = 3;
            if (b == 0xF0) lo = 0x90;      /* overlong */
            else if (b == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else {
            return 0;
        }
        if (end - p < more || p[0] < lo || p[0] > hi) return 0;
        for (int k = 1; k < more; k++)
            if ((p[k] & 0xC0) != 0x80) return 0;
        p += more;
    }
    return 1;
}

/* The next field's number and wire type; 0 at the end or on a bad tag. */
static int rd_tag(const uint8_t **pp, const uint8_t *end, uint32_t *field, int *wt) {
    uint64_t tag;
    if (*pp >= end || !rd_varint(pp, end, &tag) || tag > UINT32_MAX || (tag >> 3) == 0) return 0;
    *field = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    return 1;
}

static int skip_field(const uint8_t **pp, const uint8_t *end, int wt) {
    uint64_t v;
    span_t s;
    switch (wt) {
    case 0: return rd_varint(pp, end, &v);
    case 1: if (end - *pp < 8) return 0; *pp += 8; return 1;
    case 2: return rd_span(pp, end, &s);
    case 5: if (end - *pp < 4) return 0; *pp += 4; return 1;
    default: return 0; /* groups: not the common case */
    }
}

/* A ChatMessage (role 1, content 2, name 3); a metadata entry (key 1, value 2) when role is NULL.
 * The content may be any well-formed UTF-8 (`*ascii` says whether it is plain ASCII); the other
 * strings must be ASCII. The last occurrence of a field wins, as in protobuf. */
static int parse_sub(span_t in, int *role, span_t *content, unsigned char *ascii) {
    const uint8_t *p = in.p, *end = in.p + in.n;
    uint32_t f;
    int wt;
    while (p < end) {
        if (!rd_tag(&p, end, &f, &wt)) return 0;
        if (role != NULL && f == 1) {
            uint64_t v;
            if (wt != 0 || !rd_varint(&p, end, &v)) return 0;
            *role = (int32_t)(uint32_t)v;
        } else if (role != NULL && f == 2) {
            span_t s;
            if (wt != 2 || !rd_span(&p, end, &s)) return 0;
            *ascii = (unsigned char)is_ascii(s);
            if (!*ascii && !utf8_valid(s)) return 0;
            *content = s;
        } else if (f <= 3 && (role != NULL || f <= 2)) {
            span_t s;
            if (wt != 2 || !rd_span(&p, end, &s) || !is_ascii(s)) return 0;
        } else if (!skip_field(&p, end, wt)) {
            return 0;
        }
    }
    return 1;
}

/* An Overrides message (latency_sla_ms 1, max_cost_usd 2, allowed_models 3, ASCII names). */
static int parse_overrides(span_t in, req_t *r) {
    const uint8_t *p = in.p, *end = in.p + in.n;
    uint32_t f;
    int wt;
    while (p < end) {
        if (!rd_tag(&p, end, &f, &wt)) return 0;
        if (f == 1) {
            if (wt != 0 || !rd_varint(&p, end, &r->ov_sla)) return 0;
            r->ov_sla = (uint32_t)r->ov_sla; /* a uint32 field keeps the low 32 bits */
            r->has_ov_sla = 1;
        } else if (f == 2) {
            if (wt != 1 || end - p < 8) return 0;
            memcpy(&r->ov_cost, p, 8);
            p += 8;
            r->has_ov_cost = 1;
        } else if (f == 3) {
            span_t s;
            if (wt != 2 || !rd_span(&p, end, &s) || !is_ascii(s) || r->n_ov_allowed == MAX_OV_ALLOWED)
                return 0;
            r->ov_allowed[r->n_ov_allowed++] = s;
        } else if (!skip_field(&p, end, wt)) {
            return 0;
        }
    }
    return 1;
}

static int parse_request(const uint8_t *p, Py_ssize_t n, req_t *r) {
    const uint8_t *end = p + n;
    uint32_t f;
    int wt;
    memset(r, 0, offsetof(req_t, content));
    r->n_messages = r->n_metadata = 0;
    r->task_hint = 0;
    r->has_max_out = 0;
    while (p < end) {
        if (!rd_tag(&p, end, &f, &wt)) return 0;
        span_t s;
        uint64_t v;
        switch (f) {
        case 1: case 2: case 3:
            if (wt != 2 || !rd_span(&p, end, &s) || !is_ascii(s)) return 0;
            *(f == 1 ? &r->request_id : f == 2 ? &r->tenant : &r->tier) = s;
            break;
        case 4:
            if (wt != 2 || !rd_span(&p, end, &s) || r->n_messages == MAX_MESSAGES) return 0;
            r->role[r->n_messages] = 0;
            r->content[r->n_messages] = (span_t){(const uint8_t *)"", 0};
            r->ascii[r->n_messages] = 1;
            if (!parse_sub(s, &r->role[r->n_messages], &r->content[r->n_messages],
                           &r->ascii[r->n_messages]))
                return 0;
            r->n_messages++;
            break;
        case 5: case 6:
            if (wt != 0 || !rd_varint(&p, end, &v)) return 0;
            if (f == 5) r->task_hint = (int32_t)(uint32_t)v;
            else { r->max_out = (uint32_t)v; r->has_max_out = 1; }
            break;
        case 7: /* overrides; a second one would merge into the first: the Python path */
            if (wt != 2 || r->has_ov || !rd_span(&p, end, &s) || !parse_overrides(s, r)) return 0;
            r->has_ov = 1;
            break;
        case 8:
            if (wt != 2 || !rd_span(&p, end, &s) || !parse_sub(s, NULL, NULL, NULL)) return 0;
            r->n_metadata++;
            break;
        default:
            if (!skip_field(&p, end, wt)) return 0;
        }
    }
    return 1;
}

#endif
