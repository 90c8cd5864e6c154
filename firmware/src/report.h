/* Device Defender report encoder (shared/docs/defender-protocol.md section 2): JSON or CBOR, long
 * or short keys, written through a byte sink so the same code counts the length first and then
 * streams the bytes (a report bigger than RAM never exists in memory). */
#ifndef DDAGENT_REPORT_H
#define DDAGENT_REPORT_H
#include <stddef.h>
#include <stdint.h>
#include "store.h"

/* Everything one report says, frozen when it is built so a retransmission is byte-identical. */
typedef struct {
    uint64_t rid;
    uint64_t bytes_in, bytes_out, packets_in, packets_out;
    uint32_t stack_hwm, free_heap;
    uint32_t counters[3];        /* module_counters: cipsend_ok, ipd_count, reconnects */
    uint16_t tcp[LISTEN_MAX], udp[LISTEN_MAX];
    uint8_t n_tcp, n_udp;
    uint8_t format, keys;
    uint16_t local_port;
    uint8_t omit_local_port;     /* module MQTT: the module never tells the local port */
    uint32_t remote_port;
    uint32_t faults;             /* fault bits that shape the payload */
    char remote_host[65];
} report_t;

/* Encodes r; put == NULL only counts. Returns the payload length, or 0 if put failed. */
uint32_t report_encode(const report_t *r, int (*put)(const void *, size_t));

#endif
