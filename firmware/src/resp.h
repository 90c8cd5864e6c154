/* Reads a Defender response (defender-protocol.md section 3) from JSON or CBOR: only the fields
 * the agent acts on. Unknown keys and nesting are skipped. */
#ifndef DDAGENT_RESP_H
#define DDAGENT_RESP_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int has_rid;
    uint64_t rid;
    char status[16];
    char error_code[32];
} resp_t;

/* 0 when the payload is a well-formed map (JSON object or CBOR map), -1 otherwise. */
int resp_parse(const uint8_t *p, size_t len, resp_t *out);

#endif
