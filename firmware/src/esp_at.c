#include <string.h>
#include "esp_at.h"
#include "fmt.h"
#include "hw.h"
#include "store.h"

#define STREAM_SIZE 4096u

net_stats_t g_net;

static char lbuf[256];
static size_t llen;
static uint32_t ipd_left, ipd_len;
static int awaiting_prompt, prompt_seen;
static int final_result;
static const char *cap_prefix;
static char *cap_out;
static size_t cap_size;
static int ev_closed, ev_ready;
static int mode;                        /* AT_MODE_* */
static int ipd_keep;                    /* the data being read belongs to our link: store and count it */
static uint32_t recv_pending;           /* passive: bytes the module holds for link 0 */
static uint32_t recv_notices;           /* passive: +IPD,0,<len> notices seen */

static uint8_t stream[STREAM_SIZE];
static uint32_t s_head, s_tail;
static int s_overflow;

static void stream_put(uint8_t b)
{
    if (s_head - s_tail >= STREAM_SIZE) { s_overflow = 1; return; }
    stream[s_head++ % STREAM_SIZE] = b;
}

int net_getc(void) { return s_head == s_tail ? -1 : stream[s_tail++ % STREAM_SIZE]; }
size_t net_available(void) { return s_head - s_tail; }
/* link_up: a CONNECT was seen on this boot and no CLOSED since. */
static int link_up;

void net_reset(void) { s_tail = s_head; s_overflow = 0; recv_pending = 0; }
int net_take_overflow(void) { int v = s_overflow; s_overflow = 0; return v; }
int at_take_closed(void) { int v = ev_closed; ev_closed = 0; return v; }
int at_take_ready(void) { int v = ev_ready; ev_ready = 0; return v; }

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

void at_set_mode(int m) { mode = m; }
int at_mux(void) { return mode == AT_MODE_MULTI || mode == AT_MODE_PASSIVE; }

static uint32_t dec(const char *s, const char **end)
{
    uint32_t n = 0;
    while (*s >= '0' && *s <= '9') n = n * 10u + (uint32_t)(*s++ - '0');
    if (end) *end = s;
    return n;
}

/* "<digits>" up to the end of s, at least one. */
static int all_digits(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
    }
    return 1;
}

/* Starts reading len data bytes into the stream (keep) or past it. */
static void data_begin(uint32_t len, int keep)
{
    ipd_left = ipd_len = len;
    ipd_keep = keep;
}

static void handle_line(void)
{
    while (llen && lbuf[llen - 1u] == '\r') llen--;
    lbuf[llen] = '\0';
    if (llen == 0) return;
    const char *l = lbuf;
    if (strcmp(l, "OK") == 0) final_result = AT_OK;
    else if (strcmp(l, "ERROR") == 0) final_result = AT_ERROR;
    else if (strcmp(l, "FAIL") == 0) final_result = AT_FAIL;
    else if (strcmp(l, "SEND OK") == 0) final_result = AT_SEND_OK;
    else if (strcmp(l, "SEND FAIL") == 0) final_result = AT_SEND_FAIL;
    else if (starts(l, "busy ")) final_result = AT_BUSY;
    else if (strcmp(l, "ready") == 0) ev_ready = 1;
    else if (mode == AT_MODE_MQTT && strcmp(l, "+MQTTPUB:OK") == 0) final_result = AT_SEND_OK;
    else if (mode == AT_MODE_MQTT && strcmp(l, "+MQTTPUB:FAIL") == 0) final_result = AT_SEND_FAIL;
    else if (mode == AT_MODE_MQTT && starts(l, "+MQTTCONNECTED:0,")) link_up = 1;
    else if (mode == AT_MODE_MQTT && strcmp(l, "+MQTTDISCONNECTED:0") == 0) { ev_closed = 1; link_up = 0; }
    else if (at_mux() && strcmp(l, "0,CLOSED") == 0) { ev_closed = 1; link_up = 0; }
    else if (at_mux() && strcmp(l, "0,CONNECT") == 0) link_up = 1;
    else if (mode == AT_MODE_PASSIVE && starts(l, "+IPD,0,") && all_digits(l + 7)) {
        recv_pending = dec(l + 7, NULL);        /* everything the module holds for link 0 */
        recv_notices++;
    }
    else if (!at_mux() && (strcmp(l, "CLOSED") == 0 || (llen > 7 && strcmp(l + llen - 7u, ",CLOSED") == 0))) { ev_closed = 1; link_up = 0; }
    else if (!at_mux() && strcmp(l, "CONNECT") == 0) link_up = 1;
    else if (cap_prefix && cap_out && starts(l, cap_prefix)) {
        size_t n = strlen(l + strlen(cap_prefix));
        if (n >= cap_size) n = cap_size - 1u;
        memcpy(cap_out, l + strlen(cap_prefix), n);
        cap_out[n] = '\0';
        cap_out = NULL;                 /* first match only */
    }
    /* anything else (echo, WIFI ..., other links' URCs, Recv n bytes) is ignored */
}

/* +MQTTSUBRECV:0,"<topic>",<len>, is complete in lbuf (without its last comma): re-frame the
 * message as an MQTT PUBLISH (QoS 0) in the stream, then read its len data bytes after it. */
static int mqtt_subrecv_header(void)
{
    static const char pfx[] = "+MQTTSUBRECV:0,\"";
    if (llen < sizeof pfx || memcmp(lbuf, pfx, sizeof pfx - 1u) != 0) return 0;
    lbuf[llen] = '\0';
    char *q = strrchr(lbuf, '"');
    if (q == NULL || q < lbuf + sizeof pfx - 1u || q[1] != ',' || !all_digits(q + 2)) return 0;
    const char *topic = lbuf + sizeof pfx - 1u;
    uint32_t tlen = (uint32_t)(q - topic);
    uint32_t len = dec(q + 2, NULL);
    if (link_up) {
        uint32_t rem = 2u + tlen + len;
        stream_put(0x30);                                   /* PUBLISH, QoS 0 */
        do {
            uint8_t d = (uint8_t)(rem % 128u);
            rem /= 128u;
            if (rem) d |= 0x80u;
            stream_put(d);
        } while (rem);
        stream_put((uint8_t)(tlen >> 8));
        stream_put((uint8_t)tlen);
        for (uint32_t i = 0; i < tlen; i++) stream_put((uint8_t)topic[i]);
    }
    data_begin(len, link_up);
    return 1;
}

void at_poll(void)
{
    int c;
    while ((c = uart_getc(UART_TRANSPORT)) >= 0) {
        if (ipd_left) {
            /* Data of a link this boot did not open (the module kept it across an MCU reset) or of
             * another link is neither ours to parse nor ours to count. */
            if (ipd_keep) stream_put((uint8_t)c);
            if (--ipd_left == 0 && ipd_keep) {
                g_net.bytes_in += ipd_len;
                g_net.packets_in++;
            }
            continue;
        }
        if (c == '\n') {
            handle_line();
            llen = 0;
        } else if (c == '>' && llen == 0 && awaiting_prompt) {
            prompt_seen = 1;
            awaiting_prompt = 0;
        } else if (c == ':' && llen >= 5 && memcmp(lbuf, "+IPD,", 5) == 0) {
            /* single: +IPD,<len>[,"ip",port]:  multi: +IPD,<id>,<len>[,"ip",port]: */
            lbuf[llen] = '\0';
            const char *p = lbuf + 5;
            int ours = link_up;
            if (at_mux()) {
                ours = ours && p[0] == '0' && p[1] == ',';
                dec(p, &p);
                if (*p == ',') p++;
            }
            uint32_t n = dec(p, NULL);
            llen = 0;
            data_begin(n, ours);
        } else if (c == ',' && mode == AT_MODE_PASSIVE && llen > 13 && memcmp(lbuf, "+CIPRECVDATA:", 13) == 0 &&
                   (lbuf[llen] = '\0', all_digits(lbuf + 13))) {
            uint32_t n = dec(lbuf + 13, NULL);              /* +CIPRECVDATA:<n>,<data> */
            llen = 0;
            data_begin(n, link_up);
        } else if (c == ',' && mode == AT_MODE_MQTT && mqtt_subrecv_header()) {
            llen = 0;
        } else if (llen < sizeof lbuf - 1u) {
            lbuf[llen++] = (char)c;
        }
    }
}

static int wait_final(uint32_t timeout_ms)
{
    uint32_t deadline = millis() + timeout_ms;
    for (;;) {
        pump();
        if (final_result != AT_NONE) return final_result;
        if (time_reached(millis(), deadline)) return AT_TIMEOUT;
        hw_idle();
    }
}

static void send_line(const char *cmd)
{
    uart_puts(UART_TRANSPORT, cmd);
    uart_write(UART_TRANSPORT, "\r\n", 2);
}

int at_query(const char *cmd, const char *prefix, char *out, size_t size, uint32_t timeout_ms)
{
    pump();                              /* settle anything already received */
    final_result = AT_NONE;
    cap_prefix = prefix;
    cap_out = out;
    cap_size = size;
    if (out && size) out[0] = '\0';
    send_line(cmd);
    int r = wait_final(timeout_ms);
    cap_prefix = NULL;
    cap_out = NULL;
    return r;
}

int at_cmd(const char *cmd, uint32_t timeout_ms) { return at_query(cmd, NULL, NULL, 0, timeout_ms); }

int at_prompt_begin(const char *cmd)
{
    pump();
    final_result = AT_NONE;
    prompt_seen = 0;
    awaiting_prompt = 1;
    send_line(cmd);
    uint32_t deadline = millis() + 2000u;
    for (;;) {
        pump();
        if (prompt_seen) break;
        if (final_result == AT_ERROR || final_result == AT_FAIL || final_result == AT_BUSY) {
            awaiting_prompt = 0;
            return final_result;
        }
        if (time_reached(millis(), deadline)) {
            awaiting_prompt = 0;
            return AT_TIMEOUT;
        }
        hw_idle();
    }
    final_result = AT_NONE;
    return AT_OK;
}

int at_prompt_end(size_t counted, uint32_t timeout_ms)
{
    for (;;) {
        int r = wait_final(timeout_ms);
        if (r == AT_SEND_OK) {
            g_net.bytes_out += counted;
            g_net.packets_out++;
            return r;
        }
        if (r == AT_OK) { final_result = AT_NONE; continue; }   /* stray OK: keep waiting */
        return r;
    }
}

int at_send(const void *data, size_t len)
{
    char cmd[28];
    if (len == 0 || len > 8192u) return AT_ERROR;
    if (at_mux()) fmt_sn(cmd, sizeof cmd, "AT+CIPSEND=0,%u", (unsigned)len);
    else fmt_sn(cmd, sizeof cmd, "AT+CIPSEND=%u", (unsigned)len);
    int r = at_prompt_begin(cmd);
    if (r != AT_OK) return r;
    uart_write(UART_TRANSPORT, data, len);
    return at_prompt_end(len, 10000u);
}

int at_service(void)
{
    if (mode != AT_MODE_PASSIVE) return 0;
    while (recv_pending && link_up) {
        uint32_t room = STREAM_SIZE - (s_head - s_tail);
        uint32_t n = recv_pending < 2048u ? recv_pending : 2048u;
        if (n > room) n = room;
        if (n == 0) return 0;                               /* the MQTT parser must drain first */
        char cmd[32];
        fmt_sn(cmd, sizeof cmd, "AT+CIPRECVDATA=0,%lu", (unsigned long)n);
        uint32_t seen = recv_notices;
        uint64_t before = g_net.bytes_in;
        int r = at_cmd(cmd, 5000);
        uint32_t got = (uint32_t)(g_net.bytes_in - before);
        if (r != AT_OK) {
            recv_pending = 0;                               /* nothing buffered (or link gone) */
            return r == AT_ERROR ? 0 : -1;
        }
        /* A notice during the read already says what is left; else subtract what was read. */
        if (recv_notices == seen) recv_pending = recv_pending > got ? recv_pending - got : 0;
        if (got == 0) recv_pending = 0;
    }
    return 0;
}

size_t at_escape(char *out, size_t size, const char *in)
{
    size_t n = 0;
    for (; *in && n + 2u < size; in++) {
        if (*in == ',' || *in == '"' || *in == '\\') out[n++] = '\\';
        out[n++] = *in;
    }
    out[n] = '\0';
    return n;
}
