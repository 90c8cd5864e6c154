#include <string.h>
#include "report.h"
#include "fmt.h"

#define PAD_STRINGS 132u       /* oversize fault: 132 x 1024-byte strings > 128 KiB in either format */
#define PAD_LEN     1024u

enum key {
    K_HEADER, K_RID, K_VERSION, K_METRICS, K_CMET, K_TC, K_EC, K_CS, K_RAD, K_LP, K_TOTAL, K_TP,
    K_UP, K_PORTS, K_PORT, K_NS, K_BI, K_BO, K_PI, K_PO, K_COUNT
};
static const char *const key_long[K_COUNT] = {
    "header", "report_id", "version", "metrics", "custom_metrics", "tcp_connections",
    "established_connections", "connections", "remote_addr", "local_port", "total",
    "listening_tcp_ports", "listening_udp_ports", "ports", "port", "network_stats", "bytes_in",
    "bytes_out", "packets_in", "packets_out",
};
static const char *const key_short[K_COUNT] = {
    "hed", "rid", "v", "met", "cmet", "tc", "ec", "cs", "rad", "lp", "t", "tp", "up", "pts", "pt",
    "ns", "bi", "bo", "pi", "po",
};
static const char *const key_camel[K_COUNT] = {
    "header", "report_id", "version", "metrics", "custom_metrics", "tcpConnections",
    "establishedConnections", "connections", "remoteAddr", "localPort", "total",
    "listeningTcpPorts", "listeningUdpPorts", "ports", "port", "networkStats", "bytesIn",
    "bytesOut", "packetsIn", "packetsOut",
};

typedef struct {
    int (*put)(const void *, size_t);
    uint32_t n;
    int err;
    int cbor;
    int depth;
    uint8_t first[8], is_map[8], indef[8];
    const report_t *r;
} enc_t;

static void raw(enc_t *e, const void *d, size_t len)
{
    e->n += (uint32_t)len;
    if (e->put && !e->err && e->put(d, len) != 0) e->err = 1;
}

static void cbor_head(enc_t *e, uint8_t major, uint64_t v)
{
    uint8_t b[9];
    size_t n;
    if (v < 24u) { b[0] = (uint8_t)(major << 5 | v); n = 1; }
    else if (v <= 0xFFu) { b[0] = (uint8_t)(major << 5 | 24u); b[1] = (uint8_t)v; n = 2; }
    else if (v <= 0xFFFFu) { b[0] = (uint8_t)(major << 5 | 25u); n = 3; }
    else if (v <= 0xFFFFFFFFu) { b[0] = (uint8_t)(major << 5 | 26u); n = 5; }
    else { b[0] = (uint8_t)(major << 5 | 27u); n = 9; }
    for (size_t i = 1; n > 2 && i < n; i++) b[i] = (uint8_t)(v >> (8u * (n - 1u - i)));
    raw(e, b, n);
}

/* JSON: a comma before every array item / map key but the first. */
static void item(enc_t *e)
{
    if (e->cbor || e->depth == 0) return;
    if (!e->first[e->depth]) raw(e, ",", 1);
    e->first[e->depth] = 0;
}

static void value_prelude(enc_t *e)
{
    if (e->depth > 0 && !e->is_map[e->depth]) item(e);
}

static void e_open(enc_t *e, int is_map, int n)
{
    value_prelude(e);
    if (e->cbor) {
        if (n < 0) { uint8_t b = is_map ? 0xBF : 0x9F; raw(e, &b, 1); }
        else cbor_head(e, is_map ? 5 : 4, (uint64_t)n);
    } else {
        raw(e, is_map ? "{" : "[", 1);
    }
    e->depth++;
    e->first[e->depth] = 1;
    e->is_map[e->depth] = (uint8_t)is_map;
    e->indef[e->depth] = n < 0;
}

static void e_close(enc_t *e)
{
    if (e->cbor) {
        if (e->indef[e->depth]) raw(e, "\xff", 1);
    } else {
        raw(e, e->is_map[e->depth] ? "}" : "]", 1);
    }
    e->depth--;
}

static void str(enc_t *e, const char *s, size_t n)
{
    value_prelude(e);
    if (e->cbor) {
        cbor_head(e, 3, n);
        raw(e, s, n);
    } else {
        raw(e, "\"", 1);
        raw(e, s, n);          /* our strings never need JSON escaping (validated at conf set) */
        raw(e, "\"", 1);
    }
}

static void key_str(enc_t *e, const char *k)
{
    item(e);
    if (e->cbor) {
        cbor_head(e, 3, strlen(k));
        raw(e, k, strlen(k));
    } else {
        raw(e, "\"", 1);
        raw(e, k, strlen(k));
        raw(e, "\":", 2);
    }
}

static void key(enc_t *e, enum key k, int in_metrics)
{
    const char *s = key_long[k];
    if (in_metrics && (e->r->faults >> F_CAMELCASE & 1u)) s = key_camel[k];
    else if (e->r->keys == KEYS_SHORT) s = key_short[k];
    key_str(e, s);
}

static void uint_(enc_t *e, uint64_t v)
{
    value_prelude(e);
    if (e->cbor) {
        cbor_head(e, 0, v);
    } else {
        char b[20];
        raw(e, b, fmt_u64(b, v));
    }
}

static void ports(enc_t *e, enum key k, const uint16_t *p, uint8_t n)
{
    key(e, k, 1);
    e_open(e, 1, 2);
    key(e, K_PORTS, 1);
    e_open(e, 0, n);
    for (uint8_t i = 0; i < n; i++) {
        e_open(e, 1, 1);
        key(e, K_PORT, 1);
        uint_(e, p[i]);
        e_close(e);
    }
    e_close(e);
    key(e, K_TOTAL, 1);
    uint_(e, n);
    e_close(e);
}

/* One custom metric: "<name>":[{"<kind>":<value>}] (cmet-bare drops the array around "number"). */
static void cmet_number(enc_t *e, const char *name, uint64_t v)
{
    int bare = e->r->faults >> F_CMET_BARE & 1u;
    key_str(e, name);
    if (!bare) e_open(e, 0, 1);
    e_open(e, 1, 1);
    key_str(e, "number");
    uint_(e, v);
    e_close(e);
    if (!bare) e_close(e);
}

uint32_t report_encode(const report_t *r, int (*put)(const void *, size_t))
{
    enc_t e;
    memset(&e, 0, sizeof e);
    e.put = put;
    e.cbor = r->format == FMT_CBOR;
    e.r = r;
    int oversize = r->faults >> F_OVERSIZE & 1u;

    e_open(&e, 1, -1);                                   /* outer map: indefinite in CBOR */
    if (!(r->faults >> F_NO_HEADER & 1u)) {
        key(&e, K_HEADER, 0);
        e_open(&e, 1, 2);
        key(&e, K_RID, 0);
        uint_(&e, r->rid);
        key(&e, K_VERSION, 0);
        str(&e, r->faults >> F_BAD_VERSION & 1u ? "2.0" : "1.0", 3);
        e_close(&e);
    }

    key(&e, K_METRICS, 0);
    e_open(&e, 1, -1);                                   /* metrics: indefinite in CBOR */
    ports(&e, K_TP, r->tcp, r->n_tcp);
    ports(&e, K_UP, r->udp, r->n_udp);
    key(&e, K_NS, 1);
    e_open(&e, 1, 4);
    key(&e, K_BI, 1); uint_(&e, r->bytes_in);
    key(&e, K_BO, 1); uint_(&e, r->bytes_out);
    key(&e, K_PI, 1); uint_(&e, r->packets_in);
    key(&e, K_PO, 1); uint_(&e, r->packets_out);
    e_close(&e);
    key(&e, K_TC, 1);
    e_open(&e, 1, 1);
    key(&e, K_EC, 1);
    e_open(&e, 1, 2);
    key(&e, K_CS, 1);
    e_open(&e, 0, 1);
    e_open(&e, 1, r->omit_local_port ? 1 : 2);
    key(&e, K_RAD, 1);
    char rad[80];
    size_t radn = fmt_sn(rad, sizeof rad, "%s:%lu", r->remote_host, (unsigned long)r->remote_port);
    str(&e, rad, radn);
    if (!r->omit_local_port) {                           /* optional for AWS */
        key(&e, K_LP, 1);
        uint_(&e, r->local_port);
    }
    e_close(&e);
    e_close(&e);
    key(&e, K_TOTAL, 1);
    uint_(&e, 1);
    e_close(&e);
    e_close(&e);
    e_close(&e);

    key(&e, K_CMET, 0);
    e_open(&e, 1, oversize ? 4 : 3);
    cmet_number(&e, "stack_high_water_mark", r->stack_hwm);
    cmet_number(&e, "free_heap", r->free_heap);
    key_str(&e, "module_counters");
    e_open(&e, 0, 1);
    e_open(&e, 1, 1);
    key_str(&e, "number_list");
    e_open(&e, 0, 3);
    for (int i = 0; i < 3; i++) uint_(&e, r->counters[i]);
    e_close(&e);
    e_close(&e);
    e_close(&e);
    if (oversize) {
        static const char letters[] = "ddhilpaddingxyz";   /* string_list: letters only */
        char pad[64];
        for (size_t i = 0; i < sizeof pad; i++) pad[i] = letters[i % (sizeof letters - 1u)];
        key_str(&e, "padding");
        e_open(&e, 0, 1);
        e_open(&e, 1, 1);
        key_str(&e, "string_list");
        e_open(&e, 0, PAD_STRINGS);
        for (uint32_t s = 0; s < PAD_STRINGS; s++) {
            value_prelude(&e);
            if (e.cbor) cbor_head(&e, 3, PAD_LEN);
            else raw(&e, "\"", 1);
            for (uint32_t k = 0; k < PAD_LEN / sizeof pad; k++) raw(&e, pad, sizeof pad);
            if (!e.cbor) raw(&e, "\"", 1);
        }
        e_close(&e);
        e_close(&e);
        e_close(&e);
    }
    e_close(&e);
    e_close(&e);
    return e.err ? 0 : e.n;
}
