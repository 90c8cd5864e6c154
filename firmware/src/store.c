#include <string.h>
#include "store.h"
#include "fmt.h"

#define STORE_MAGIC  0x44444147u   /* "DDAG" */
#define STORE_LAYOUT (0x0100u | (uint32_t)sizeof(persist_t) << 16)

__attribute__((section(".noinit"))) persist_t g_persist;
config_t g_staged;
config_t g_conf;

const char *const fault_names[F_COUNT] = {
    "camelcase", "no-header", "bad-version", "rid-ticks", "rid-repeat", "ns-cumulative",
    "ns-inflate", "period-skew", "burst", "cmet-bare", "no-subscribe", "no-reconnect",
    "wrong-thing", "oversize", "truncate", "port-zero", "retain", "late-first", "tc-stale",
    "ports-missing", "retry-storm", "dd-extra-out", "dd-listen", "dd-bad-topic",
};

const char *const at_mode_names[AT_MODES] = { "single", "multi", "passive", "mqtt", "ssl" };

const char *const conf_key_names[CONF_KEYS] = {
    "thing_name", "mqtt_endpoint", "mqtt_port", "wifi_ssid", "wifi_credential",
    "report_period_ms", "report_format", "report_keys", "at_mode",
};

static uint32_t crc32(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t persist_crc(void) { return crc32(&g_persist, offsetof(persist_t, crc)); }

static void defaults(config_t *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->thing_name, "ddagent-1");
    strcpy(c->mqtt_endpoint, "broker.ddhil");
    strcpy(c->wifi_ssid, "ddhil");
    strcpy(c->wifi_credential, "ddhil-pass");
    c->mqtt_port = 1883;
    c->report_period_ms = 300000;
    c->report_format = FMT_JSON;
    c->report_keys = KEYS_LONG;
}

int store_boot(void)
{
    int valid = g_persist.magic == STORE_MAGIC && g_persist.layout == STORE_LAYOUT &&
                g_persist.crc == persist_crc();
    if (!valid) {
        memset(&g_persist, 0, sizeof g_persist);
        g_persist.magic = STORE_MAGIC;
        g_persist.layout = STORE_LAYOUT;
        defaults(&g_persist.conf);
    }
    g_persist.boot_count++;
    store_save();
    g_conf = g_persist.conf;
    g_staged = g_persist.conf;
    return valid;
}

void store_save(void) { g_persist.crc = persist_crc(); }

int conf_key_index(const char *name)
{
    for (int i = 0; i < CONF_KEYS; i++) {
        if (strcmp(name, conf_key_names[i]) == 0) return i;
    }
    return -1;
}

static char *str_field(config_t *c, int key, size_t *cap)
{
    switch (key) {
    case 0: *cap = sizeof c->thing_name; return c->thing_name;
    case 1: *cap = sizeof c->mqtt_endpoint; return c->mqtt_endpoint;
    case 3: *cap = sizeof c->wifi_ssid; return c->wifi_ssid;
    case 4: *cap = sizeof c->wifi_credential; return c->wifi_credential;
    default: *cap = 0; return NULL;
    }
}

void conf_format(const config_t *c, int key, char *out, size_t size)
{
    size_t cap;
    const char *s = str_field((config_t *)c, key, &cap);
    if (s) {
        fmt_sn(out, size, "%s=\"%s\"", conf_key_names[key], s);
    } else if (key == 2) {
        fmt_sn(out, size, "%s=%lu", conf_key_names[key], (unsigned long)c->mqtt_port);
    } else if (key == 5) {
        fmt_sn(out, size, "%s=%lu", conf_key_names[key], (unsigned long)c->report_period_ms);
    } else if (key == 6) {
        fmt_sn(out, size, "%s=\"%s\"", conf_key_names[key], c->report_format == FMT_CBOR ? "cbor" : "json");
    } else if (key == 7) {
        fmt_sn(out, size, "%s=\"%s\"", conf_key_names[key], c->report_keys == KEYS_SHORT ? "short" : "long");
    } else {
        fmt_sn(out, size, "%s=\"%s\"", conf_key_names[key], c->at_mode < AT_MODES ? at_mode_names[c->at_mode] : "?");
    }
}

/* Thing names follow the AWS registry rule [a-zA-Z0-9:_-]; other strings take printable ASCII
 * without quotes and backslashes, which the console could not show unambiguously. */
static int valid_string(int key, const char *v, size_t cap)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap) return 0;
    for (const char *p = v; *p; p++) {
        char ch = *p;
        if (key == 0) {
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == ':' || ch == '_' || ch == '-')) return 0;
        } else if (ch <= ' ' || ch > '~' || ch == '"' || ch == '\\') {
            return 0;
        }
    }
    return 1;
}

int conf_set(config_t *c, int key, const char *value)
{
    size_t cap;
    char *s = str_field(c, key, &cap);
    uint64_t n;
    if (s) {
        if (!valid_string(key, value, cap)) return -1;
        strcpy(s, value);
        return 0;
    }
    switch (key) {
    case 2:
        if (parse_u64(value, &n) || n < 1 || n > 65535) return -1;
        c->mqtt_port = (uint32_t)n;
        return 0;
    case 5:
        if (parse_u64(value, &n) || n < 1000 || n > 86400000u) return -1;
        c->report_period_ms = (uint32_t)n;
        return 0;
    case 6:
        if (strcmp(value, "json") == 0) c->report_format = FMT_JSON;
        else if (strcmp(value, "cbor") == 0) c->report_format = FMT_CBOR;
        else return -1;
        return 0;
    case 7:
        if (strcmp(value, "long") == 0) c->report_keys = KEYS_LONG;
        else if (strcmp(value, "short") == 0) c->report_keys = KEYS_SHORT;
        else return -1;
        return 0;
    case 8:
        for (uint8_t m = 0; m < AT_MODES; m++) {
            if (strcmp(value, at_mode_names[m]) == 0) {
                c->at_mode = m;
                return 0;
            }
        }
        return -1;
    default:
        return -1;
    }
}
