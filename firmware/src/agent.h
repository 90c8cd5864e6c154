/* The Device Defender agent: module bring-up, SNTP, the MQTT session with reconnects, and the
 * periodic report. Runs forever as the main loop; console input is serviced in every wait. */
#ifndef DDAGENT_AGENT_H
#define DDAGENT_AGENT_H
#include <stdint.h>

#define DDAGENT_VERSION "0.1.0"

__attribute__((noreturn)) void agent_run(void);

typedef struct {
    int mqtt_up;
    uint32_t reports, accepted, rejected;
} agent_status_t;
void agent_status(agent_status_t *s);

#endif
