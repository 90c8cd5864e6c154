#include <string.h>
#include "mqtt.h"
#include "esp_at.h"
#include "hw.h"

static uint8_t txbuf[MQTT_TX_CHUNK];
static size_t txn;
static uint32_t last_tx;

void tx_reset(void) { txn = 0; }
uint32_t tx_last_ms(void) { return last_tx; }

int tx_flush(void)
{
    if (txn == 0) return 0;
    int r = at_send(txbuf, txn);
    txn = 0;
    if (r != AT_SEND_OK) return -1;
    last_tx = millis();
    return 0;
}

int tx_put(const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        size_t n = sizeof txbuf - txn;
        if (n > len) n = len;
        memcpy(txbuf + txn, p, n);
        txn += n;
        p += n;
        len -= n;
        if (txn == sizeof txbuf && tx_flush() != 0) return -1;
    }
    return 0;
}

static int put_u8(uint8_t b) { return tx_put(&b, 1); }
static int put_u16(uint16_t v) { uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v }; return tx_put(b, 2); }
static int put_str(const char *s)
{
    size_t n = strlen(s);
    return put_u16((uint16_t)n) | tx_put(s, n);
}

static size_t varint_len(uint32_t v) { return v < 128u ? 1u : v < 16384u ? 2u : v < 2097152u ? 3u : 4u; }

static int put_fixed(uint8_t first, uint32_t remaining)
{
    uint8_t b[5];
    size_t n = 0;
    b[n++] = first;
    do {
        uint8_t d = remaining % 128u;
        remaining /= 128u;
        if (remaining) d |= 0x80u;
        b[n++] = d;
    } while (remaining);
    return tx_put(b, n);
}

int mqtt_connect_send(const char *client_id, uint16_t keepalive_s)
{
    static const uint8_t proto[] = { 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02 }; /* level 4, clean session */
    uint32_t rem = sizeof proto + 2u + 2u + (uint32_t)strlen(client_id);
    int r = put_fixed(MQTT_CONNECT << 4, rem) | tx_put(proto, sizeof proto) | put_u16(keepalive_s) | put_str(client_id);
    return r | tx_flush();
}

int mqtt_subscribe_send(uint16_t id, const char *f1, const char *f2)
{
    uint32_t rem = 2u + 2u + (uint32_t)strlen(f1) + 1u + 2u + (uint32_t)strlen(f2) + 1u;
    int r = put_fixed((MQTT_SUBSCRIBE << 4) | 0x02u, rem) | put_u16(id) | put_str(f1) | put_u8(1) | put_str(f2) | put_u8(1);
    return r | tx_flush();
}

int mqtt_ping_send(void) { return put_fixed(MQTT_PINGREQ << 4, 0) | tx_flush(); }

int mqtt_disconnect_send(void) { return put_fixed(MQTT_DISCONNECT << 4, 0) | tx_flush(); }

int mqtt_puback_send(uint16_t id) { return put_fixed(MQTT_PUBACK << 4, 2) | put_u16(id) | tx_flush(); }

uint32_t mqtt_publish_size(const char *topic, uint32_t payload_len)
{
    uint32_t rem = 2u + (uint32_t)strlen(topic) + 2u + payload_len;
    return 1u + (uint32_t)varint_len(rem) + rem;
}

int mqtt_publish_begin_flags(const char *topic, uint16_t id, int dup, int retain, uint32_t payload_len)
{
    uint32_t rem = 2u + (uint32_t)strlen(topic) + 2u + payload_len;
    uint8_t first = (uint8_t)((MQTT_PUBLISH << 4) | 0x02u | (dup ? 0x08u : 0u) | (retain ? 0x01u : 0u));
    return put_fixed(first, rem) | put_str(topic) | put_u16(id);
}

int mqtt_publish_begin_qos0(const char *topic, uint32_t payload_len)
{
    uint32_t rem = 2u + (uint32_t)strlen(topic) + payload_len;
    return put_fixed(MQTT_PUBLISH << 4, rem) | put_str(topic);
}

int mqtt_publish_begin(const char *topic, uint16_t id, int dup, uint32_t payload_len)
{
    return mqtt_publish_begin_flags(topic, id, dup, 0, payload_len);
}

/* ---- receive framing ---- */

static uint8_t rxbuf[MQTT_RX_MAX + 1u];
static enum { RX_TYPE, RX_LEN, RX_BODY } rx_state;
static uint8_t rx_first;
static uint32_t rx_rem, rx_got, rx_mult;

void mqtt_rx_reset(void) { rx_state = RX_TYPE; }

int mqtt_next(mqtt_pkt_t *p)
{
    int c;
    for (;;) {
        if (rx_state == RX_BODY && rx_got == rx_rem) break;
        if ((c = net_getc()) < 0) return 0;
        switch (rx_state) {
        case RX_TYPE:
            rx_first = (uint8_t)c;
            rx_rem = 0;
            rx_mult = 1;
            rx_state = RX_LEN;
            break;
        case RX_LEN:
            rx_rem += (uint32_t)(c & 0x7F) * rx_mult;
            rx_mult *= 128u;
            if (!(c & 0x80)) { rx_state = RX_BODY; rx_got = 0; }
            else if (rx_mult > 128u * 128u * 128u) { rx_state = RX_TYPE; return -1; }
            break;
        case RX_BODY:
            if (rx_got < MQTT_RX_MAX) rxbuf[rx_got] = (uint8_t)c;
            rx_got++;
            break;
        }
    }
    rx_state = RX_TYPE;
    memset(p, 0, sizeof *p);
    p->type = rx_first >> 4;
    p->flags = rx_first & 0x0Fu;
    if (rx_rem > MQTT_RX_MAX) { p->type = 0; return 1; }   /* too big: skipped */
    p->body = rxbuf;
    p->len = rx_rem;
    if ((p->type == MQTT_PUBACK || p->type == MQTT_SUBACK) && rx_rem >= 2u) {
        p->id = (uint16_t)(rxbuf[0] << 8 | rxbuf[1]);
        p->payload = rxbuf + 2;
        p->payload_len = rx_rem - 2u;
    } else if (p->type == MQTT_PUBLISH && rx_rem >= 2u) {
        uint32_t tl = (uint32_t)(rxbuf[0] << 8 | rxbuf[1]);
        uint32_t off = 2u + tl;
        unsigned qos = (p->flags >> 1) & 3u;
        if (qos) {
            if (off + 2u > rx_rem) return -1;
            p->id = (uint16_t)(rxbuf[off] << 8 | rxbuf[off + 1u]);
            off += 2u;
        }
        if (off > rx_rem) return -1;
        /* NUL-terminate the topic in place: shift it down over the length bytes */
        memmove(rxbuf, rxbuf + 2, tl);
        rxbuf[tl] = '\0';
        p->topic = (const char *)rxbuf;
        p->payload = rxbuf + off;
        p->payload_len = rx_rem - off;
    }
    return 1;
}
