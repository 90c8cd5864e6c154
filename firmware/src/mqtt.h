/* MQTT 3.1.1 packet codec over the ESP-AT link: outgoing packets are written through a chunk
 * buffer that is flushed with AT+CIPSEND, so a PUBLISH larger than RAM can be streamed once its
 * remaining length is known; incoming bytes from +IPD are framed into packets. */
#ifndef DDAGENT_MQTT_H
#define DDAGENT_MQTT_H
#include <stddef.h>
#include <stdint.h>

enum {
    MQTT_CONNECT = 1, MQTT_CONNACK = 2, MQTT_PUBLISH = 3, MQTT_PUBACK = 4, MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9, MQTT_PINGREQ = 12, MQTT_PINGRESP = 13, MQTT_DISCONNECT = 14
};

#define MQTT_RX_MAX 2048u   /* larger incoming packets are skipped */
#define MQTT_TX_CHUNK 2048u /* bytes per AT+CIPSEND */

/* Output: append bytes; full chunks go out at once. tx_flush sends the rest. Both return 0 or -1
 * (the link failed; the MQTT stream is then broken). */
int tx_put(const void *data, size_t len);
int tx_flush(void);
void tx_reset(void);
uint32_t tx_last_ms(void);       /* when the last chunk got SEND OK (keep-alive) */

int mqtt_connect_send(const char *client_id, uint16_t keepalive_s);
int mqtt_subscribe_send(uint16_t id, const char *f1, const char *f2);   /* both QoS 1 */
int mqtt_ping_send(void);
int mqtt_puback_send(uint16_t id);
int mqtt_disconnect_send(void);
/* Writes the fixed header, topic and packet id of a QoS 1 PUBLISH with payload_len bytes to
 * follow; the caller then tx_put()s exactly payload_len bytes and calls tx_flush(). */
/* retain sets the RETAIN flag (only the `retain` fault does: AWS refuses it on $aws topics). */
int mqtt_publish_begin_flags(const char *topic, uint16_t id, int dup, int retain, uint32_t payload_len);
int mqtt_publish_begin(const char *topic, uint16_t id, int dup, uint32_t payload_len);
/* The header of a QoS 0 PUBLISH (no packet id) with payload_len bytes to follow. */
int mqtt_publish_begin_qos0(const char *topic, uint32_t payload_len);
uint32_t mqtt_publish_size(const char *topic, uint32_t payload_len); /* whole packet */

typedef struct {
    uint8_t type, flags;
    uint16_t id;            /* PUBACK/SUBACK/PUBLISH(QoS>0) packet id */
    const char *topic;      /* PUBLISH: NUL-terminated inside the rx buffer */
    const uint8_t *payload; /* PUBLISH payload, or the body after the id for SUBACK */
    size_t payload_len;
    const uint8_t *body;    /* raw variable header + payload */
    size_t len;
} mqtt_pkt_t;

void mqtt_rx_reset(void);
/* Frames the next complete packet from the receive stream. 1 = *p valid (until the next call),
 * 0 = need more bytes, -1 = malformed stream. */
int mqtt_next(mqtt_pkt_t *p);

#endif
