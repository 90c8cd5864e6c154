/* ESP-AT v2 client over the transport UART (shared/docs/esp-at.md, esp-at-dialects.md). One
 * command at a time; URCs (+IPD, CLOSED, ready, WIFI ..., +MQTTSUBRECV ...) are recognised in every
 * state. Received bytes go to a stream the MQTT client reads: +IPD data (single and multi link),
 * +CIPRECVDATA data (passive receive), or, in module-MQTT mode, each +MQTTSUBRECV re-framed as an
 * MQTT 3.1.1 QoS 0 PUBLISH so the agent handles every dialect's messages the same way. */
#ifndef DDAGENT_ESP_AT_H
#define DDAGENT_ESP_AT_H
#include <stddef.h>
#include <stdint.h>

enum at_result { AT_NONE = 0, AT_OK, AT_ERROR, AT_FAIL, AT_SEND_OK, AT_SEND_FAIL, AT_BUSY, AT_TIMEOUT };

/* What crossed the link, counted exactly like the harness's module emulation (firmware/README.md):
 * bytes_out = payload bytes of CIPSENDs answered SEND OK (module MQTT: topic + payload bytes of
 * MQTTPUBRAWs answered +MQTTPUB:OK), packets_out = those commands; bytes_in = data bytes of +IPD messages (passive:
 * of +CIPRECVDATA replies; module MQTT: <len> of +MQTTSUBRECV), packets_in = those messages.
 * Since boot. */
typedef struct {
    uint64_t bytes_out, packets_out, bytes_in, packets_in;
} net_stats_t;
extern net_stats_t g_net;

/* Selects the dialect the parser and the socket commands follow (AT_MODE_* of store.h). */
void at_set_mode(int mode);
int at_mux(void);              /* multi-link framing (multi and passive) */

/* Parses pending transport bytes. Called from pump(). */
void at_poll(void);

/* Passive receive: reads what the module announced with +IPD,0,<len> (AT+CIPRECVDATA) while the
 * stream has room. Issues commands, so only call it where no command is running. 0, or -1 when a
 * read failed. No-op in the other modes. */
int at_service(void);

/* Sends "<cmd>\r\n" and waits for the final result code. */
int at_cmd(const char *cmd, uint32_t timeout_ms);

/* Like at_cmd, and copies the first line starting with prefix (without it) into out. */
int at_query(const char *cmd, const char *prefix, char *out, size_t size, uint32_t timeout_ms);

/* AT+CIPSEND=<len> (multi link: AT+CIPSEND=0,<len>), waits for '>', writes the payload, waits for
 * SEND OK. Returns AT_SEND_OK on success; counts the bytes into g_net only then. len 1..8192. */
int at_send(const void *data, size_t len);

/* A command answered by the '>' prompt (AT+MQTTPUBRAW): at_prompt_begin sends it and waits for '>'
 * (AT_OK) or a final result; the caller then writes the payload with uart_write and calls
 * at_prompt_end, which waits for the final result (SEND OK / +MQTTPUB:OK = AT_SEND_OK) and on
 * success counts `counted` bytes (CIPSEND: the payload; MQTTPUBRAW: topic + payload) and one
 * packet into g_net. */
int at_prompt_begin(const char *cmd);
int at_prompt_end(size_t counted, uint32_t timeout_ms);

/* Events since the last call (each read clears it). */
int at_take_closed(void);      /* CLOSED (link 0) or +MQTTDISCONNECTED: the connection went down */
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
