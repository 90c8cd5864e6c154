/* qemu-netduinoplus2: QEMU 7.2 models no RCC or GPIO (reads 0, writes ignored) and runs SysTick from
 * a fixed 168 MHz core clock, so there is no clock set-up; BRR is stored but ignored. */
#include "board.h"
#include "stm32.h"

const char board_profile[] = "qemu-netduinoplus2";

void board_init(void) { }

uint32_t board_systick_reload(void) { return 168000u - 1u; }

uint32_t board_uart_brr(uint32_t uart_base)
{
    (void)uart_base;
    return (84000000u + 57600u) / 115200u; /* as if APB2 84 MHz; QEMU ignores BRR */
}
