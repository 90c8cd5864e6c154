/* Device Defender agent main loop. Everything is sequential: a blocking step (an AT command, a
 * wait for CONNACK) pumps the console and the transport parser while it waits, and incoming MQTT
 * packets are only handled here, never from inside a send, so nothing re-enters. */
#include <string.h>
#include "agent.h"
#include "console.h"
#include "esp_at.h"
#include "fmt.h"
#include "hw.h"
#include "mqtt.h"
#include "report.h"
#include "resp.h"
#include "store.h"
#include "sysinfo.h"

#define KEEPALIVE_S        60u
#define PINGRESP_WAIT_MS   10000u
#define PUBACK_WAIT_MS     10000u
#define CONNACK_WAIT_MS    10000u
#define SUBACK_WAIT_MS     10000u
#define BACKOFF_MIN_MS     1000u
#define BACKOFF_MAX_MS     32000u
#define INFLIGHT_MAX       2
#define RECENT_IDS         4

/* ---- state ---- */
static agent_status_t st;
static uint32_t reconnects;
static int stopped;                    /* no-reconnect fault tripped */
static uint32_t backoff_ms = BACKOFF_MIN_MS;
static uint32_t reconnect_at;
static int connected_once;
static uint16_t local_port;
static uint16_t next_pkt_id = 1;
static int ping_pending;
static uint32_t ping_sent;
static int connack_rc = -1;
static int suback_state;               /* 0 waiting, 1 granted, 2 refused */
static uint16_t suback_id;
static uint16_t acks[8];
static unsigned n_acks;

static int have_schedule;
static uint32_t next_report;
static net_stats_t last_snap;          /* g_net at the previous report */

static int sntp_synced;
static uint64_t sntp_epoch_ms;         /* wall clock at sntp_tick */
static uint64_t sntp_tick;

static uint32_t rng_state;

struct inflight {
    int used, retried;
    uint16_t id;
    uint32_t sent;
    report_t r;
};
static struct inflight inflight[INFLIGHT_MAX];
static uint64_t recent[RECENT_IDS];
static unsigned n_recent;

static int bad_due;                    /* dd-bad-topic: a publish outside our tree is due at bad_at */
static uint32_t bad_at;

static char topic_pub[128];
static char topic_acc[128];
static char topic_rej[128];

void agent_status(agent_status_t *s) { *s = st; }

static uint32_t rnd(void)
{
    uint32_t x = rng_state ? rng_state : 0x9E3779B9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

static const char *fmt_name(void) { return g_conf.report_format == FMT_CBOR ? "cbor" : "json"; }
static const char *keys_name(void) { return g_conf.report_keys == KEYS_SHORT ? "short" : "long"; }
static int module_mqtt(void) { return g_conf.at_mode == AT_MODE_MQTT; }

static uint64_t epoch_ms(void)
{
    if (!sntp_synced) return 0;
    return sntp_epoch_ms + (millis64() - sntp_tick);
}

/* ---- module bring-up ---- */

/* Civil date to days since 1970-01-01 (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153u * (m + (m > 2 ? (unsigned)-3 : 9u)) + 2u) / 5u + d - 1u;
    unsigned doe = yoe * 365u + yoe / 4u - yoe / 100u + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned num(const char **p)
{
    unsigned v = 0;
    while (**p == ' ') (*p)++;
    while (**p >= '0' && **p <= '9') v = v * 10u + (unsigned)(*(*p)++ - '0');
    return v;
}

/* "Www Mmm DD hh:mm:ss YYYY", day space- (v2) or zero-padded (1.x). 0 on success. */
static int parse_asctime(const char *s, uint64_t *epoch_s, unsigned *year_out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    while (*s == ' ') s++;
    if (strlen(s) < 20) return -1;
    s += 4;                                            /* weekday + space */
    unsigned m = 0;
    for (unsigned i = 0; i < 12; i++) {
        if (strncmp(s, months + 3u * i, 3) == 0) m = i + 1u;
    }
    if (!m) return -1;
    s += 3;
    unsigned d = num(&s);
    unsigned hh = num(&s);
    if (*s++ != ':') return -1;
    unsigned mm = num(&s);
    if (*s++ != ':') return -1;
    unsigned ss = num(&s);
    unsigned y = num(&s);
    if (d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970) return -1;
    *year_out = y;
    *epoch_s = (uint64_t)days_from_civil(y, m, d) * 86400u + hh * 3600u + mm * 60u + ss;
    return 0;
}

/* Waits for the module: "ready" after its boot, or an answer to AT (it may have booted before
 * us, e.g. after an MCU-only reset). AT is retried every 500 ms for up to 15 s. */
static int module_sync(void)
{
    for (int i = 0; i < 30; i++) {
        int r = at_cmd("AT", 500);
        if (r == AT_OK) {
            log_msg("module", "ready");
            return 0;
        }
        if (r != AT_TIMEOUT) pump_for(500);
    }
    return -1;
}

static int cmd_retry(const char *cmd, uint32_t timeout)
{
    for (int i = 0; i < 3; i++) {
        int r = at_cmd(cmd, timeout);
        if (r == AT_OK) return 0;
        pump_for(500);
    }
    log_msg("module", "command failed: %s", cmd);
    return -1;
}

static int wifi_join(void)
{
    char ssid[80], pwd[140], cmd[240];
    at_escape(ssid, sizeof ssid, g_conf.wifi_ssid);
    at_escape(pwd, sizeof pwd, g_conf.wifi_credential);
    fmt_sn(cmd, sizeof cmd, "AT+CWJAP=\"%s\",\"%s\"", ssid, pwd);
    for (;;) {
        int r = at_cmd(cmd, 20000);
        if (r == AT_OK) {
            log_msg("wifi", "connected");
            return 0;
        }
        log_msg("wifi", "join failed (%d), retry in 5000 ms", r);
        pump_for(5000);
        if (at_take_ready()) return -1;
    }
}

static void sntp_sync(void)
{
    if (sntp_synced) return;
    if (cmd_retry("AT+CIPSNTPCFG=1,0,\"pool.ntp.org\"", 2000)) return;
    uint32_t deadline = millis() + 30000u;
    while (!time_reached(millis(), deadline)) {
        char t[48];
        uint64_t secs;
        unsigned year;
        if (at_query("AT+CIPSNTPTIME?", "+CIPSNTPTIME:", t, sizeof t, 2000) == AT_OK &&
            parse_asctime(t, &secs, &year) == 0 && year >= 2020) {
            sntp_tick = millis64();
            sntp_epoch_ms = secs * 1000u;
            sntp_synced = 1;
            rng_state ^= (uint32_t)secs;
            log_msg("sntp", "time=%llu", (unsigned long long)sntp_epoch_ms);
            return;
        }
        pump_for(500);
    }
    log_msg("sntp", "not synchronised after 30000 ms; report ids fall back to uptime");
}

static int mux_mode(int m) { return m == AT_MODE_MULTI || m == AT_MODE_PASSIVE; }

/* Puts the module into the configured dialect. The module outlives an MCU reset, so what our
 * previous life set (g_persist.module_mode) is undone first. Single mode on a module we never
 * switched sends nothing: the default bring-up is the original one, byte for byte. */
static int dialect_setup(void)
{
    int m = g_conf.at_mode, last = g_persist.module_mode;
    if (m == AT_MODE_SSL) m = AT_MODE_SINGLE;        /* the same module set-up; only CIPSTART differs */
    if (last == AT_MODE_SSL) last = AT_MODE_SINGLE;
    if (m == AT_MODE_SINGLE && last == AT_MODE_SINGLE) return 0;
    if (m == AT_MODE_MQTT || last == AT_MODE_MQTT) (void)at_cmd("AT+MQTTCLEAN=0", 2000); /* ERROR if none */
    if (m != AT_MODE_MQTT && cmd_retry(mux_mode(m) ? "AT+CIPMUX=1" : "AT+CIPMUX=0", 2000)) return -1;
    if (m == AT_MODE_PASSIVE) {                        /* after CIPMUX, as Zephyr's driver does */
        if (cmd_retry("AT+CIPRECVMODE=1", 2000)) return -1;
    } else if (last == AT_MODE_PASSIVE) {
        (void)at_cmd("AT+CIPRECVMODE=0", 2000);
    }
    g_persist.module_mode = (uint8_t)m;
    store_save();
    return 0;
}

static int module_bringup(void)
{
    if (module_sync()) return -1;
    if (cmd_retry("ATE0", 2000) || cmd_retry("AT+CWMODE=1", 2000)) return -1;
    if (wifi_join()) return -1;
    /* A link left open by our previous life (an MCU reset does not reset the module) would make
     * CIPSTART fail: close it (in multi-link mode all of them: AT+CIPCLOSE=5). */
    char state[96];
    if (at_query("AT+CIPSTATE?", "+CIPSTATE:", state, sizeof state, 2000) == AT_OK && state[0]) {
        if (!mux_mode(g_conf.at_mode) && !mux_mode(g_persist.module_mode)) (void)at_cmd("AT+CIPCLOSE", 5000);
        else if (at_cmd("AT+CIPCLOSE=5", 5000) != AT_OK) (void)at_cmd("AT+CIPCLOSE", 5000);
        (void)at_take_closed();
    }
    if (dialect_setup()) return -1;
    sntp_sync();
    return 0;
}

/* ---- MQTT session ---- */

#define LATE_FIRST_EXTRA_MS 5000u

static uint16_t pkt_id(void)
{
    uint16_t id = next_pkt_id++;
    if (next_pkt_id == 0) next_pkt_id = 1;
    return id;
}

static void schedule_reconnect(void)
{
    uint32_t delay = backoff_ms + rnd() % (backoff_ms / 4u + 1u);   /* up to +25 % jitter */
    reconnect_at = millis() + delay;
    log_msg("mqtt", "reconnect in %lu ms", (unsigned long)delay);
    backoff_ms = backoff_ms * 2u > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2u;
}

static void close_connection(void)
{
    if (module_mqtt()) (void)at_cmd("AT+MQTTCLEAN=0", 5000);
    else if (at_mux()) (void)at_cmd("AT+CIPCLOSE=0", 5000);
    else (void)at_cmd("AT+CIPCLOSE", 5000);
}

static void link_down(const char *reason, int close_link)
{
    log_msg("mqtt", "disconnected reason=%s", reason);
    if (close_link) close_connection();
    (void)at_take_closed();
    st.mqtt_up = 0;
    ping_pending = 0;
    n_acks = 0;
    memset(inflight, 0, sizeof inflight);
    if (fault_on(F_NO_RECONNECT)) {
        stopped = 1;
        return;
    }
    schedule_reconnect();
}

static int topic_is(const char *t, const char *want) { return strcmp(t, want) == 0; }

static int recent_has(uint64_t rid)
{
    for (unsigned i = 0; i < n_recent && i < RECENT_IDS; i++) {
        if (recent[i] == rid) return 1;
    }
    return 0;
}

static void handle_response(const mqtt_pkt_t *p, int accepted)
{
    resp_t r;
    if (resp_parse(p->payload, p->payload_len, &r) != 0) {
        log_msg("report", "unreadable response on %s", p->topic);
        return;
    }
    /* AWS may omit reportId on a rejection: attribute it to the last report then. */
    uint64_t rid = r.has_rid ? r.rid : (n_recent ? recent[(n_recent - 1u) % RECENT_IDS] : 0);
    if (r.has_rid && !recent_has(rid)) {
        log_msg("report", "response for unknown id=%llu", (unsigned long long)rid);
        return;
    }
    if (accepted) {
        st.accepted++;
        log_msg("report", "accepted id=%llu", (unsigned long long)rid);
        return;
    }
    st.rejected++;
    log_msg("report", "rejected id=%llu code=%s", (unsigned long long)rid, r.error_code[0] ? r.error_code : "none");
    if (fault_on(F_RETRY_STORM)) {                     /* retries at once instead of backing off */
        next_report = millis();
        log_msg("report", "retrying now");
        return;
    }
    if (strcmp(r.error_code, "Throttled") == 0) {
        uint32_t skip = g_conf.report_period_ms;
        next_report += skip;                           /* skip one period */
        log_msg("report", "throttled backoff=%lu", (unsigned long)skip);
    }
}

static void handle_packet(const mqtt_pkt_t *p)
{
    switch (p->type) {
    case MQTT_CONNACK:
        connack_rc = p->len >= 2 ? p->body[1] : 255;
        break;
    case MQTT_SUBACK:
        if (p->id == suback_id) {
            int ok = p->payload_len >= 2;
            for (size_t i = 0; i < p->payload_len; i++) ok &= p->payload[i] != 0x80;
            suback_state = ok ? 1 : 2;
        }
        break;
    case MQTT_PUBACK:
        for (int i = 0; i < INFLIGHT_MAX; i++) {
            if (inflight[i].used && inflight[i].id == p->id) inflight[i].used = 0;
        }
        break;
    case MQTT_PINGRESP:
        ping_pending = 0;
        break;
    case MQTT_PUBLISH:
        if (((p->flags >> 1) & 3u) && n_acks < sizeof acks / sizeof acks[0]) acks[n_acks++] = p->id;
        if (topic_is(p->topic, topic_acc)) handle_response(p, 1);
        else if (topic_is(p->topic, topic_rej)) handle_response(p, 0);
        else log_msg("mqtt", "ignored publish on %s", p->topic);
        break;
    default:
        break;
    }
}

/* Handles every complete packet in the stream. -1 if the stream is broken. */
static int drain_packets(void)
{
    mqtt_pkt_t p;
    int k;
    while ((k = mqtt_next(&p)) > 0) handle_packet(&p);
    if (k < 0 || net_take_overflow()) return -1;
    return 0;
}

/* Waits until *flag changes from its initial value, handling packets meanwhile. */
static int wait_flag(volatile int *flag, int initial, uint32_t timeout)
{
    uint32_t deadline = millis() + timeout;
    for (;;) {
        pump();
        if (at_service()) return -2;
        if (drain_packets()) return -2;
        if (*flag != initial) return 0;
        if (at_take_closed()) return -3;
        if (time_reached(millis(), deadline)) return -1;
        hw_idle();
    }
}

static void build_topics(void)
{
    fmt_sn(topic_pub, sizeof topic_pub, "$aws/things/%s%s/defender/metrics/%s", g_conf.thing_name,
           fault_on(F_WRONG_THING) ? "-other" : "", fmt_name());
    fmt_sn(topic_acc, sizeof topic_acc, "$aws/things/%s/defender/metrics/%s/accepted", g_conf.thing_name, fmt_name());
    fmt_sn(topic_rej, sizeof topic_rej, "$aws/things/%s/defender/metrics/%s/rejected", g_conf.thing_name, fmt_name());
}

/* +CIPSTATE:<id>,"TCP","<ip>",<rport>,<lport>,<tetype>: the 5th field. */
static uint16_t parse_local_port(const char *s)
{
    for (int field = 0; *s; s++) {
        if (*s == ',' && ++field == 4) {
            const char *p = s + 1;
            return (uint16_t)num(&p);
        }
    }
    return 0;
}

/* After CONNACK 0 (or +MQTTCONNECTED): the state every dialect shares. */
static void session_up(void)
{
    log_msg("mqtt", "connected");
    st.mqtt_up = 1;
    connected_once = 1;
    backoff_ms = BACKOFF_MIN_MS;
}

static void schedule_first_report(void)
{
    if (!have_schedule) {
        next_report = millis();                        /* first report right after subscribe */
        have_schedule = 1;
    }
    if (fault_on(F_LATE_FIRST)) {                      /* first report long after every connect */
        next_report = millis() + 3u * g_conf.report_period_ms + LATE_FIRST_EXTRA_MS;
    }
}

/* Module-MQTT dialect: the module's own client (AT+MQTTUSERCFG, AT+MQTTCONN, AT+MQTTSUB). Clean
 * session, the module's default keep-alive; reconnect=0 so reconnects and their backoff stay ours. */
static int session_connect_module(void)
{
    char host[140], cmd[240];
    if (connected_once) reconnects++;
    log_msg("mqtt", "connecting %s:%lu", g_conf.mqtt_endpoint, (unsigned long)g_conf.mqtt_port);
    at_escape(host, sizeof host, g_conf.mqtt_endpoint);
    (void)at_cmd("AT+MQTTCLEAN=0", 2000);             /* ERROR when there is no session: fine */
    fmt_sn(cmd, sizeof cmd, "AT+MQTTUSERCFG=0,1,\"%s\",\"\",\"\",0,0,\"\"", g_conf.thing_name);
    int r = at_cmd(cmd, 2000);
    if (r == AT_OK) {
        net_reset();
        mqtt_rx_reset();
        (void)at_take_closed();
        fmt_sn(cmd, sizeof cmd, "AT+MQTTCONN=0,\"%s\",%lu,0", host, (unsigned long)g_conf.mqtt_port);
        r = at_cmd(cmd, 30000);
    }
    if (r != AT_OK) {
        log_msg("mqtt", "connect failed (%d)", r);
        return -1;
    }
    (void)at_take_closed();
    local_port = 0;                                    /* the module never tells it */
    build_topics();
    session_up();
    if (!fault_on(F_NO_SUBSCRIBE)) {
        int ok = 1;
        const char *filters[2] = { topic_acc, topic_rej };
        for (int i = 0; i < 2; i++) {
            fmt_sn(cmd, sizeof cmd, "AT+MQTTSUB=0,\"%s\",1", filters[i]);
            r = at_cmd(cmd, SUBACK_WAIT_MS);
            if (at_take_closed()) return -3;
            if (r == AT_TIMEOUT || r == AT_BUSY) return -2;
            ok &= r == AT_OK;
        }
        if (ok) log_msg("mqtt", "subscribed");
        else log_msg("mqtt", "subscribe refused");
    }
    schedule_first_report();
    return 0;
}

static int session_connect(void)
{
    char host[140], cmd[200], state[96];
    if (module_mqtt()) return session_connect_module();
    if (connected_once) reconnects++;
    log_msg("mqtt", "connecting %s:%lu", g_conf.mqtt_endpoint, (unsigned long)g_conf.mqtt_port);
    at_escape(host, sizeof host, g_conf.mqtt_endpoint);
    /* Mutual TLS with the module's stored device certificate and CA (ESP-AT v2 CIPSSLCCONF: auth 3,
     * PKI 0, CA 0), before every SSL link: the module forgets it on its own reset. */
    if (g_conf.at_mode == AT_MODE_SSL && cmd_retry("AT+CIPSSLCCONF=3,0,0", 2000)) return -1;
    fmt_sn(cmd, sizeof cmd, "AT+CIPSTART=%s\"%s\",\"%s\",%lu", at_mux() ? "0," : "",
           g_conf.at_mode == AT_MODE_SSL ? "SSL" : "TCP", host, (unsigned long)g_conf.mqtt_port);
    (void)at_take_closed();
    int r = at_cmd(cmd, 30000);
    if (r != AT_OK) {
        log_msg("mqtt", "connect failed (%d)", r);
        return -1;
    }
    local_port = 0;
    if (at_query("AT+CIPSTATE?", "+CIPSTATE:", state, sizeof state, 2000) == AT_OK) local_port = parse_local_port(state);
    net_reset();
    mqtt_rx_reset();
    tx_reset();
    build_topics();
    connack_rc = -1;
    if (mqtt_connect_send(g_conf.thing_name, KEEPALIVE_S) != 0) return -2;
    int w = wait_flag(&connack_rc, -1, CONNACK_WAIT_MS);
    if (w == -3) return -3;
    if (w != 0) return -2;
    if (connack_rc != 0) {
        log_msg("mqtt", "connack rc=%d", connack_rc);
        return -2;
    }
    session_up();
    if (!fault_on(F_NO_SUBSCRIBE)) {
        suback_state = 0;
        suback_id = pkt_id();
        if (mqtt_subscribe_send(suback_id, topic_acc, topic_rej) != 0) return -2;
        w = wait_flag(&suback_state, 0, SUBACK_WAIT_MS);
        if (w == -3) return -3;
        if (w != 0) return -2;
        if (suback_state == 1) log_msg("mqtt", "subscribed");
        else log_msg("mqtt", "subscribe refused");
    }
    schedule_first_report();
    return 0;
}

/* ---- reports ---- */

#define DD_LISTEN_PORT 2323u

static uint64_t next_rid(void)
{
    if (fault_on(F_RID_TICKS)) return millis64();      /* restarts at every boot */
    if (fault_on(F_RID_REPEAT) && g_persist.have_rid) return g_persist.last_rid;
    uint64_t rid = sntp_synced ? epoch_ms() : millis64();
    if (g_persist.have_rid && rid <= g_persist.max_rid) rid = g_persist.max_rid + 1u;
    return rid;
}

static void build_report(report_t *r)
{
    memset(r, 0, sizeof *r);
    r->rid = next_rid();
    net_stats_t cur = g_net;
    if (fault_on(F_NS_CUMULATIVE)) {
        r->bytes_in = cur.bytes_in;
        r->bytes_out = cur.bytes_out;
        r->packets_in = cur.packets_in;
        r->packets_out = cur.packets_out;
    } else {
        r->bytes_in = cur.bytes_in - last_snap.bytes_in;
        r->bytes_out = cur.bytes_out - last_snap.bytes_out;
        r->packets_in = cur.packets_in - last_snap.packets_in;
        r->packets_out = cur.packets_out - last_snap.packets_out;
    }
    last_snap = cur;
    if (fault_on(F_NS_INFLATE)) r->bytes_out += (r->bytes_out + 9u) / 10u;
    r->stack_hwm = sys_stack_high_water();
    r->free_heap = sys_free_heap();
    r->counters[0] = (uint32_t)cur.packets_out;        /* CIPSENDs answered SEND OK */
    r->counters[1] = (uint32_t)cur.packets_in;         /* +IPD messages */
    r->counters[2] = reconnects;
    memcpy(r->tcp, g_persist.tcp, sizeof r->tcp);
    memcpy(r->udp, g_persist.udp, sizeof r->udp);
    r->n_tcp = g_persist.n_tcp;
    r->n_udp = g_persist.n_udp;
    r->format = g_conf.report_format;
    r->keys = g_conf.report_keys;
    if (fault_on(F_PORT_ZERO)) {                       /* a listening port of 0: out of range */
        if (r->n_tcp == 0) r->n_tcp = 1;
        r->tcp[0] = 0;
    }
    if (fault_on(F_PORTS_MISSING) && r->n_tcp > 0) r->n_tcp--;   /* forgets its last TCP listener */
    if (fault_on(F_DD_LISTEN)) {                       /* an extra listener on 2323 (telnet-alt) */
        int have = 0;
        for (uint8_t i = 0; i < r->n_tcp; i++) have |= r->tcp[i] == DD_LISTEN_PORT;
        if (!have && r->n_tcp < LISTEN_MAX) r->tcp[r->n_tcp++] = DD_LISTEN_PORT;
    }
    r->omit_local_port = module_mqtt();
    r->local_port = local_port;
    if (fault_on(F_TC_STALE)) r->local_port = (uint16_t)(local_port + 1u);  /* not the live link */
    r->remote_port = g_conf.mqtt_port;
    r->faults = g_persist.faults;
    strcpy(r->remote_host, g_conf.mqtt_endpoint);
}

/* The truncate fault cuts the payload short (keeping the MQTT framing valid), so the
 * service sees JSON or CBOR that ends mid-value. */
#define TRUNCATE_BYTES 7u
static uint32_t put_limit, put_done;
static int (*put_sink)(const void *, size_t);
static int tx_put_limited(const void *data, size_t len)
{
    size_t n = put_done >= put_limit ? 0 : (put_limit - put_done < len ? put_limit - put_done : len);
    put_done += (uint32_t)len;
    return n ? put_sink(data, n) : 0;
}

/* Module MQTT: the payload goes straight to the UART after AT+MQTTPUBRAW's prompt. */
static int uart_put(const void *data, size_t len)
{
    uart_write(UART_TRANSPORT, data, len);
    return 0;
}

/* AT+MQTTPUBRAW=0,"<topic>",<len>,<qos>,<retain>: 0 = +MQTTPUB:OK, 1 = +MQTTPUB:FAIL, -1 = the
 * module did not take the command or never answered. The payload comes from encode(). */
static int pubraw(const char *topic, uint32_t len, int qos, int retain, const report_t *r)
{
    char cmd[200];
    fmt_sn(cmd, sizeof cmd, "AT+MQTTPUBRAW=0,\"%s\",%lu,%d,%d", topic, (unsigned long)len, qos, retain);
    if (at_prompt_begin(cmd) != AT_OK) return -1;
    put_sink = uart_put;
    put_limit = len;
    put_done = 0;
    (void)report_encode(r, tx_put_limited);        /* uart_put cannot fail */
    int res = at_prompt_end(strlen(topic) + len, 20000u);   /* counted: topic + payload */
    return res == AT_SEND_OK ? 0 : res == AT_SEND_FAIL ? 1 : -1;
}

static int publish(const report_t *r, uint16_t id, int dup, uint32_t *len_out)
{
    uint32_t len = report_encode(r, NULL);
    uint32_t wire = len;
    if (fault_on(F_TRUNCATE) && len > TRUNCATE_BYTES) wire = len - TRUNCATE_BYTES;
    *len_out = wire;
    if (module_mqtt()) return pubraw(topic_pub, wire, 1, fault_on(F_RETAIN), r);
    if (mqtt_publish_begin_flags(topic_pub, id, dup, fault_on(F_RETAIN), wire) != 0) return -1;
    put_sink = tx_put;
    put_limit = wire;
    put_done = 0;
    if (report_encode(r, tx_put_limited) != len) return -1;
    return tx_flush();
}

/* QoS 0 publish of len filler bytes ({"pad":"xx..."}) to topic, for the DD-D01 faults. 0 or -1. */
static int publish_filler(const char *topic, uint32_t len)
{
    static const char head[] = "{\"pad\":\"", tail[] = "\"}";
    char chunk[64];
    memset(chunk, 'x', sizeof chunk);
    if (len < sizeof head + sizeof tail) len = sizeof head + sizeof tail;
    uint32_t fill = len - (uint32_t)(sizeof head - 1u) - (uint32_t)(sizeof tail - 1u);
    if (module_mqtt()) {
        char cmd[200];
        fmt_sn(cmd, sizeof cmd, "AT+MQTTPUBRAW=0,\"%s\",%lu,0,0", topic, (unsigned long)len);
        if (at_prompt_begin(cmd) != AT_OK) return -1;
        uart_write(UART_TRANSPORT, head, sizeof head - 1u);
        for (uint32_t n = fill; n; ) {
            uint32_t k = n < sizeof chunk ? n : (uint32_t)sizeof chunk;
            uart_write(UART_TRANSPORT, chunk, k);
            n -= k;
        }
        uart_write(UART_TRANSPORT, tail, sizeof tail - 1u);
        int res = at_prompt_end(strlen(topic) + len, 20000u);
        return res == AT_SEND_OK || res == AT_SEND_FAIL ? 0 : -1;
    }
    if (mqtt_publish_begin_qos0(topic, len) != 0 || tx_put(head, sizeof head - 1u) != 0) return -1;
    for (uint32_t n = fill; n; ) {
        uint32_t k = n < sizeof chunk ? n : (uint32_t)sizeof chunk;
        if (tx_put(chunk, k) != 0) return -1;
        n -= k;
    }
    if (tx_put(tail, sizeof tail - 1u) != 0) return -1;
    return tx_flush();
}

/* dd-extra-out: a large extra publish to our own tree after every report. It is really sent, so
 * the next report's network_stats carry it and still agree with the module's counts. */
#define EXTRA_OUT_BYTES 8192u
static int send_extra_out(void)
{
    char topic[128];
    fmt_sn(topic, sizeof topic, "$aws/things/%s/telemetry", g_conf.thing_name);
    if (publish_filler(topic, EXTRA_OUT_BYTES) != 0) return -1;
    log_msg("telemetry", "published bytes=%lu topic=%s", (unsigned long)EXTRA_OUT_BYTES, topic);
    return 0;
}

/* dd-bad-topic: a publish outside $aws/things/<thing>/, which a strict policy refuses (AWS, like
 * the harness's broker, then closes the connection: the agent reconnects as after any drop). */
#define BAD_TOPIC "$aws/things/other-thing/shadow/update"
static int send_bad_topic(void)
{
    log_msg("telemetry", "publishing to %s", BAD_TOPIC);
    return publish_filler(BAD_TOPIC, 64u);
}

static int send_report(void)
{
    struct inflight *slot = &inflight[0];
    for (int i = 0; i < INFLIGHT_MAX; i++) {
        if (!inflight[i].used) { slot = &inflight[i]; break; }
        if (inflight[i].sent - slot->sent > 0x80000000u) slot = &inflight[i];   /* oldest */
    }
    build_topics();
    build_report(&slot->r);
    slot->id = pkt_id();
    slot->retried = 0;
    slot->used = 1;
    slot->sent = millis();
    /* The id is persisted before any byte leaves: a reset while the report is on its way
     * must not let the next boot reuse an id the service has already seen. */
    g_persist.last_rid = slot->r.rid;
    if (!g_persist.have_rid || slot->r.rid > g_persist.max_rid) {
        if (!fault_on(F_RID_TICKS)) g_persist.max_rid = slot->r.rid;
    }
    g_persist.have_rid = 1;
    store_save();
    uint32_t len;
    int pr = publish(&slot->r, slot->id, 0, &len);
    if (module_mqtt()) slot->used = 0;                 /* the module waits for the PUBACK itself */
    if (pr == 1) {
        log_msg("report", "no puback id=%llu", (unsigned long long)slot->r.rid);   /* +MQTTPUB:FAIL */
        return 0;
    }
    if (pr != 0) {
        slot->used = 0;
        return -1;
    }
    st.reports++;
    recent[n_recent++ % RECENT_IDS] = slot->r.rid;
    log_msg("report", "published id=%llu format=%s keys=%s bytes=%lu", (unsigned long long)slot->r.rid,
            fmt_name(), keys_name(), (unsigned long)len);
    return 0;
}

static uint32_t period_ms(void)
{
    uint32_t p = g_conf.report_period_ms;
    return fault_on(F_PERIOD_SKEW) ? p + p / 4u : p;
}

static int service_mqtt_packets(uint32_t now);

/* One pass over a live session. */
static void session_service(void)
{
    uint32_t now = millis();
    if (at_service()) { link_down("error", 1); return; }
    if (drain_packets()) { link_down("error", 1); return; }
    if (at_take_closed()) { link_down("closed", 0); return; }
    if (module_mqtt()) {
        /* PUBACKs, keep-alive and retransmissions are the module's business. */
    } else if (service_mqtt_packets(now)) {
        return;
    }
    if (time_reached(now, next_report)) {
        int n = fault_on(F_BURST) ? 2 : 1;
        for (int i = 0; i < n; i++) {
            if (send_report() != 0) { link_down("error", 1); return; }
        }
        next_report += period_ms();
        if (time_reached(millis(), next_report)) next_report = millis() + period_ms();
        if (fault_on(F_DD_EXTRA_OUT) && send_extra_out() != 0) { link_down("error", 1); return; }
        bad_due = 1;
        bad_at = millis() + period_ms() / 2u;          /* mid-period, after the report's answer */
    }
    if (bad_due && fault_on(F_DD_BAD_TOPIC) && time_reached(millis(), bad_at)) {
        bad_due = 0;
        if (send_bad_topic() != 0) { link_down("error", 1); return; }
    }
}

/* The socket dialects' own MQTT duties: PUBACKs, keep-alive, retransmissions. 1 if the link went
 * down meanwhile. */
static int service_mqtt_packets(uint32_t now)
{
    while (n_acks) {
        if (mqtt_puback_send(acks[--n_acks]) != 0) { link_down("error", 1); return 1; }
    }
    if (ping_pending) {
        if (time_reached(now, ping_sent + PINGRESP_WAIT_MS)) { link_down("keepalive", 1); return 1; }
    } else if (time_reached(now, tx_last_ms() + KEEPALIVE_S * 1000u)) {
        if (mqtt_ping_send() != 0) { link_down("error", 1); return 1; }
        ping_pending = 1;
        ping_sent = millis();
    }
    for (int i = 0; i < INFLIGHT_MAX; i++) {
        struct inflight *f = &inflight[i];
        if (!f->used || !time_reached(now, f->sent + PUBACK_WAIT_MS)) continue;
        if (f->retried) {
            log_msg("report", "no puback id=%llu", (unsigned long long)f->r.rid);
            f->used = 0;
            continue;
        }
        f->retried = 1;
        f->sent = now;
        uint32_t len;
        build_topics();
        if (publish(&f->r, f->id, 1, &len) != 0) { link_down("error", 1); return 1; }
        log_msg("report", "retransmit id=%llu dup=1", (unsigned long long)f->r.rid);
    }
    return 0;
}

void agent_run(void)
{
    rng_state = g_persist.boot_count * 2654435761u ^ millis();
    at_set_mode(g_conf.at_mode);
    for (;;) {
        if (module_bringup() != 0) {
            pump_for(2000);
            continue;
        }
        (void)at_take_ready();
        reconnect_at = millis();
        for (;;) {
            pump();
            if (at_take_ready()) {
                log_msg("module", "rebooted");
                if (st.mqtt_up) link_down("error", 0);
                break;
            }
            if (st.mqtt_up) {
                session_service();
            } else if (!stopped && time_reached(millis(), reconnect_at)) {
                int r = session_connect();
                if (r == -3) link_down("closed", 0);
                else if (r == -2) link_down("error", 1);
                else if (r == -1) schedule_reconnect();
            }
            hw_idle();
        }
    }
}
