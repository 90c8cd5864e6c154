/* ddagent: reference AWS IoT Device Defender agent, bare metal on STM32F4 with an ESP-AT module. */
#include "agent.h"
#include "board.h"
#include "console.h"
#include "esp_at.h"
#include "hw.h"
#include "store.h"

void pump(void)
{
    con_poll();
    at_poll();
}

void pump_for(uint32_t ms)
{
    uint32_t deadline = millis() + ms;
    for (;;) {
        pump();
        if (time_reached(millis(), deadline)) return;
        hw_idle();
    }
}

/* Called from the fault handlers just before they reset the chip. */
void fault_report(uint32_t pc, uint32_t cfsr)
{
    log_msg("crash", "fault pc=0x%lx cfsr=0x%lx", (unsigned long)pc, (unsigned long)cfsr);
    uart_flush(UART_CONSOLE);
}

int main(void)
{
    hw_init();
    int restored = store_boot();
    log_msg("boot", "ddagent %s profile=%s boot=%lu", DDAGENT_VERSION, board_profile,
            (unsigned long)g_persist.boot_count);
    log_msg("store", "%s", restored ? "state restored from noinit RAM" : "defaults (noinit RAM was invalid)");
    con_start();
    agent_run();
}
