#include <string.h>
#include "resp.h"

/* ---------- JSON ---------- */
typedef struct { const uint8_t *p, *end; } cur_t;

static void ws(cur_t *c) { while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n')) c->p++; }

/* Reads a JSON string into out (truncated, escapes kept raw except \" and \\). */
static int jstring(cur_t *c, char *out, size_t size)
{
    size_t n = 0;
    if (c->p >= c->end || *c->p != '"') return -1;
    c->p++;
    while (c->p < c->end && *c->p != '"') {
        uint8_t ch = *c->p++;
        if (ch == '\\') {
            if (c->p >= c->end) return -1;
            ch = *c->p++;
        }
        if (out && n + 1u < size) out[n++] = (char)ch;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    if (out && size) out[n] = '\0';
    return 0;
}

static int jskip(cur_t *c, int depth)
{
    ws(c);
    if (c->p >= c->end || depth > 16) return -1;
    uint8_t ch = *c->p;
    if (ch == '"') return jstring(c, NULL, 0);
    if (ch == '{' || ch == '[') {
        uint8_t close = ch == '{' ? '}' : ']';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) { c->p++; return 0; }
        for (;;) {
            if (ch == '{') {
                ws(c);
                if (jstring(c, NULL, 0)) return -1;
                ws(c);
                if (c->p >= c->end || *c->p++ != ':') return -1;
            }
            if (jskip(c, depth + 1)) return -1;
            ws(c);
            if (c->p >= c->end) return -1;
            if (*c->p == ',') { c->p++; continue; }
            if (*c->p == close) { c->p++; return 0; }
            return -1;
        }
    }
    const uint8_t *start = c->p;
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' &&
           *c->p != '\r' && *c->p != '\n' && *c->p != '\t') c->p++;
    return c->p == start ? -1 : 0;
}

static int jobject(cur_t *c, resp_t *r, int nested)
{
    ws(c);
    if (c->p >= c->end || *c->p != '{') return -1;
    c->p++;
    ws(c);
    if (c->p < c->end && *c->p == '}') { c->p++; return 0; }
    for (;;) {
        char k[24];
        ws(c);
        if (jstring(c, k, sizeof k)) return -1;
        ws(c);
        if (c->p >= c->end || *c->p++ != ':') return -1;
        ws(c);
        if (!nested && strcmp(k, "reportId") == 0 && c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            uint64_t v = 0;
            while (c->p < c->end && *c->p >= '0' && *c->p <= '9') v = v * 10u + (uint64_t)(*c->p++ - '0');
            if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')) {
                if (jskip(c, 1)) return -1;           /* not an integer: ignore */
            } else {
                r->rid = v;
                r->has_rid = 1;
            }
        } else if (!nested && strcmp(k, "status") == 0 && c->p < c->end && *c->p == '"') {
            if (jstring(c, r->status, sizeof r->status)) return -1;
        } else if (nested && strcmp(k, "ErrorCode") == 0 && c->p < c->end && *c->p == '"') {
            if (jstring(c, r->error_code, sizeof r->error_code)) return -1;
        } else if (!nested && strcmp(k, "statusDetails") == 0 && c->p < c->end && *c->p == '{') {
            if (jobject(c, r, 1)) return -1;
        } else if (jskip(c, 1)) {
            return -1;
        }
        ws(c);
        if (c->p >= c->end) return -1;
        if (*c->p == ',') { c->p++; continue; }
        if (*c->p == '}') { c->p++; return 0; }
        return -1;
    }
}

/* ---------- CBOR ---------- */
#define CBOR_INDEF UINT64_MAX

static int chead(cur_t *c, uint8_t *major, uint64_t *arg)
{
    if (c->p >= c->end) return -1;
    uint8_t b = *c->p++;
    *major = b >> 5;
    uint8_t ai = b & 31u;
    if (ai < 24u) { *arg = ai; return 0; }
    if (ai == 31u) { *arg = CBOR_INDEF; return 0; }
    if (ai > 27u) return -1;
    size_t n = (size_t)1 << (ai - 24u);
    if ((size_t)(c->end - c->p) < n) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | *c->p++;
    *arg = v;
    return 0;
}

static int cskip(cur_t *c, int depth);

static int cskip_body(cur_t *c, uint8_t major, uint64_t arg, int depth)
{
    if (depth > 16) return -1;
    switch (major) {
    case 0: case 1: case 7: return 0;        /* ints, simple values and floats: head only */
    case 6: return cskip(c, depth + 1);      /* tag: skip the tagged item */
    case 2: case 3:
        if (arg == CBOR_INDEF) {
            for (;;) {
                if (c->p < c->end && *c->p == 0xFF) { c->p++; return 0; }
                if (cskip(c, depth + 1)) return -1;
            }
        }
        if ((uint64_t)(c->end - c->p) < arg) return -1;
        c->p += arg;
        return 0;
    case 4: case 5: {
        uint64_t items = arg == CBOR_INDEF ? CBOR_INDEF : (major == 5 ? arg * 2u : arg);
        for (uint64_t i = 0; items == CBOR_INDEF || i < items; i++) {
            if (items == CBOR_INDEF && c->p < c->end && *c->p == 0xFF) { c->p++; return 0; }
            if (cskip(c, depth + 1)) return -1;
        }
        return 0;
    }
    default: return -1;
    }
}

static int cskip(cur_t *c, int depth)
{
    uint8_t major;
    uint64_t arg;
    if (chead(c, &major, &arg)) return -1;
    if (major == 7 && arg == CBOR_INDEF) return -1;    /* stray break */
    return cskip_body(c, major, arg, depth);
}

static int ctext(cur_t *c, uint64_t len, char *out, size_t size)
{
    if (len == CBOR_INDEF || (uint64_t)(c->end - c->p) < len) return -1;
    size_t n = len < size ? (size_t)len : size - 1u;
    memcpy(out, c->p, n);
    out[n] = '\0';
    c->p += len;
    return 0;
}

static int cmap(cur_t *c, resp_t *r, int nested)
{
    uint8_t major;
    uint64_t n;
    if (chead(c, &major, &n) || major != 5) return -1;
    for (uint64_t i = 0; n == CBOR_INDEF || i < n; i++) {
        if (n == CBOR_INDEF && c->p < c->end && *c->p == 0xFF) { c->p++; return 0; }
        uint8_t km, vm;
        uint64_t ka, va;
        char k[24];
        if (chead(c, &km, &ka)) return -1;
        if (km != 3) {                        /* non-text key: skip key and value */
            if (cskip_body(c, km, ka, 1) || cskip(c, 1)) return -1;
            continue;
        }
        if (ctext(c, ka, k, sizeof k)) return -1;
        const uint8_t *vstart = c->p;
        if (chead(c, &vm, &va)) return -1;
        if (!nested && strcmp(k, "reportId") == 0 && vm == 0 && va != CBOR_INDEF) {
            r->rid = va;
            r->has_rid = 1;
        } else if (!nested && strcmp(k, "status") == 0 && vm == 3) {
            if (ctext(c, va, r->status, sizeof r->status)) return -1;
        } else if (nested && strcmp(k, "ErrorCode") == 0 && vm == 3) {
            if (ctext(c, va, r->error_code, sizeof r->error_code)) return -1;
        } else if (!nested && strcmp(k, "statusDetails") == 0 && vm == 5) {
            c->p = vstart;
            if (cmap(c, r, 1)) return -1;
        } else if (cskip_body(c, vm, va, 1)) {
            return -1;
        }
    }
    return 0;
}

int resp_parse(const uint8_t *p, size_t len, resp_t *out)
{
    memset(out, 0, sizeof *out);
    cur_t c = { p, p + len };
    ws(&c);
    if (c.p < c.end && *c.p == '{') return jobject(&c, out, 0);
    c.p = p;
    return cmap(&c, out, 0);
}
