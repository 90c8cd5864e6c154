/* ESP-AT v2 client for a single TCP link over USART1 (shared/docs/esp-at.md). One command at a
 * time; URCs (+IPD, CLOSED, ready, WIFI ...) are recognised in every state; +IPD payload bytes go to
 * a receive stream the MQTT client reads. */
#ifndef DDAGENT_ESP_AT_H
#define DDAGENT_ESP_AT_H
#include <stddef.h>
#include <stdint.h>

enum at_result { AT_NONE = 0, AT_OK, AT_ERROR, AT_FAIL, AT_SEND_OK, AT_SEND_FAIL, AT_BUSY, AT_TIMEOUT };

/* What crossed the link, counted exactly like the harness's module emulation:
 * bytes_out = payload bytes of CIPSENDs answered SEND OK, packets_out = those CIPSENDs,
 * bytes_in = +IPD payload bytes, packets_in = +IPD messages. Since boot. */
typedef struct {
    uint64_t bytes_out, packets_out, bytes_in, packets_in;
} net_stats_t;
extern net_stats_t g_net;

/* Parses pending transport bytes. Called from pump(). */
void at_poll(void);

/* Sends "<cmd>\r\n" and waits for the final result code. */
int at_cmd(const char *cmd, uint32_t timeout_ms);

/* Like at_cmd, and copies the first line starting with prefix (without it) into out. */
int at_query(const char *cmd, const char *prefix, char *out, size_t size, uint32_t timeout_ms);

/* AT+CIPSEND=<len>, waits for '>', writes the payload, waits for SEND OK. Returns AT_SEND_OK on
 * success; counts the bytes into g_net only then. len must be 1..8192. */
int at_send(const void *data, size_t len);

/* Events since the last call (each read clears it). */
int at_take_closed(void);      /* CLOSED: the TCP link went down */
int at_take_ready(void);       /* ready: the module (re)booted */

/* The received TCP stream (+IPD data). */
int net_getc(void);
size_t net_available(void);
void net_reset(void);          /* drop buffered stream bytes (new connection) */
int net_take_overflow(void);   /* 1 if stream bytes were lost since the last call */

/* Escapes a string for a quoted AT parameter (`,` `"` `\` get a backslash). */
size_t at_escape(char *out, size_t size, const char *in);

/* The main loop's pump: console input and transport parsing (main.c). */
void pump(void);
/* Pumps (sleeping in WFI between interrupts) for ms milliseconds. */
void pump_for(uint32_t ms);

#endif
