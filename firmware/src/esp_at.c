#include <string.h>
#include "esp_at.h"
#include "fmt.h"
#include "hw.h"

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

void net_reset(void) { s_tail = s_head; s_overflow = 0; }
int net_take_overflow(void) { int v = s_overflow; s_overflow = 0; return v; }
int at_take_closed(void) { int v = ev_closed; ev_closed = 0; return v; }
int at_take_ready(void) { int v = ev_ready; ev_ready = 0; return v; }

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

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
    else if (strcmp(l, "CLOSED") == 0 || (llen > 7 && strcmp(l + llen - 7u, ",CLOSED") == 0)) { ev_closed = 1; link_up = 0; }
    else if (strcmp(l, "CONNECT") == 0) link_up = 1;
    else if (cap_prefix && cap_out && starts(l, cap_prefix)) {
        size_t n = strlen(l + strlen(cap_prefix));
        if (n >= cap_size) n = cap_size - 1u;
        memcpy(cap_out, l + strlen(cap_prefix), n);
        cap_out[n] = '\0';
        cap_out = NULL;                 /* first match only */
    }
    /* anything else (echo, WIFI ..., CONNECT, Recv n bytes) is ignored */
}

void at_poll(void)
{
    int c;
    while ((c = uart_getc(UART_TRANSPORT)) >= 0) {
        if (ipd_left) {
            /* Data of a link this boot did not open (the module kept it across an MCU reset)
             * is neither ours to parse nor ours to count. */
            if (link_up) stream_put((uint8_t)c);
            if (--ipd_left == 0 && link_up) {
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
            uint32_t n = 0;
            for (size_t i = 5; i < llen && lbuf[i] >= '0' && lbuf[i] <= '9'; i++) n = n * 10u + (uint32_t)(lbuf[i] - '0');
            ipd_left = ipd_len = n;
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

int at_send(const void *data, size_t len)
{
    char cmd[24];
    if (len == 0 || len > 8192u) return AT_ERROR;
    pump();
    fmt_sn(cmd, sizeof cmd, "AT+CIPSEND=%u", (unsigned)len);
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
    uart_write(UART_TRANSPORT, data, len);
    for (;;) {
        int r = wait_final(10000u);
        if (r == AT_SEND_OK) {
            g_net.bytes_out += len;
            g_net.packets_out++;
            return r;
        }
        if (r == AT_OK) { final_result = AT_NONE; continue; }   /* stray OK: keep waiting */
        return r;
    }
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
