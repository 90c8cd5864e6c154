/* Persistent state in .noinit RAM: committed configuration, faults, the listen list, the boot
 * counter and the last report ids, guarded by a magic and a CRC-32. It survives a system reset
 * (QEMU system_reset, NVIC_SystemReset, a real board's reset pin) and is lost on power-cycle. */
#ifndef DDAGENT_STORE_H
#define DDAGENT_STORE_H
#include <stddef.h>
#include <stdint.h>

enum { FMT_JSON = 0, FMT_CBOR = 1 };
enum { KEYS_LONG = 0, KEYS_SHORT = 1 };
/* ESP-AT dialect the agent speaks (firmware/README.md "ESP-AT dialects"). */
/* AT_MODE_SSL is single-link with a TLS link (AT+CIPSTART="SSL"): the module holds the device
 * certificate and does the TLS; the firmware's traffic and counters are as in single mode. */
enum { AT_MODE_SINGLE = 0, AT_MODE_MULTI = 1, AT_MODE_PASSIVE = 2, AT_MODE_MQTT = 3, AT_MODE_SSL = 4, AT_MODES = 5 };

#define LISTEN_MAX 8

typedef struct {
    char thing_name[65];
    char mqtt_endpoint[65];
    char wifi_ssid[33];
    char wifi_credential[65];
    uint32_t mqtt_port;
    uint32_t report_period_ms;
    uint8_t report_format;
    uint8_t report_keys;
    uint8_t at_mode;            /* AT_MODE_*; in the former padding, so old blocks read as single */
} config_t;

/* Faults: each a distinct misbehaviour for the harness to catch (firmware/README.md). */
enum fault {
    F_CAMELCASE, F_NO_HEADER, F_BAD_VERSION, F_RID_TICKS, F_RID_REPEAT, F_NS_CUMULATIVE,
    F_NS_INFLATE, F_PERIOD_SKEW, F_BURST, F_CMET_BARE, F_NO_SUBSCRIBE, F_NO_RECONNECT,
    F_WRONG_THING, F_OVERSIZE, F_TRUNCATE, F_PORT_ZERO, F_RETAIN, F_LATE_FIRST, F_TC_STALE,
    F_PORTS_MISSING, F_RETRY_STORM, F_DD_EXTRA_OUT, F_DD_LISTEN, F_DD_BAD_TOPIC, F_COUNT
};
extern const char *const fault_names[F_COUNT];
extern const char *const at_mode_names[AT_MODES];

typedef struct {
    uint32_t magic;
    uint32_t layout;
    uint32_t boot_count;
    uint32_t faults;
    config_t conf;              /* committed ("NVM") configuration */
    uint16_t tcp[LISTEN_MAX];
    uint16_t udp[LISTEN_MAX];
    uint8_t n_tcp, n_udp;
    uint8_t have_rid;
    uint8_t module_mode;        /* the AT_MODE_* last set up on the module (it outlives an MCU reset) */
    uint64_t last_rid;          /* id of the previous report (rid-repeat) */
    uint64_t max_rid;           /* largest epoch id sent: ids stay strictly increasing */
    uint32_t crc;
} persist_t;

extern persist_t g_persist;     /* in .noinit */
extern config_t g_staged;       /* what `conf set` edits; `conf commit` copies it to g_persist */
extern config_t g_conf;         /* active configuration, read once at boot */

/* Validates the .noinit block (defaults when invalid) and counts this boot. Returns 1 if the
 * block was valid (state carried over), 0 if it was initialised. */
int store_boot(void);
void store_save(void);          /* recompute the CRC after changing g_persist */
static inline int fault_on(enum fault f) { return (g_persist.faults >> f) & 1u; }

/* Configuration keys for the CLI. */
#define CONF_KEYS 9
extern const char *const conf_key_names[CONF_KEYS];
int conf_key_index(const char *name);                       /* -1 if unknown */
void conf_format(const config_t *c, int key, char *out, size_t size); /* key="v" or key=n */
int conf_set(config_t *c, int key, const char *value);       /* 0 ok, -1 invalid */

#endif
