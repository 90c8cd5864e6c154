/* Board profile seam: each profile (qemu-netduinoplus2, renode-stm32f4disc, nucleo-f446re) has its
 * own board_<profile>.c chosen by the Makefile, so clock and pin quirks stay out of the agent. */
#ifndef DDAGENT_BOARD_H
#define DDAGENT_BOARD_H
#include <stdint.h>

/* Profile name as printed in the boot marker. */
extern const char board_profile[];

/* Sets up clocks and pins for USART1 (transport) and USART2 (console). */
void board_init(void);

/* SysTick reload value for a 1 ms tick (CLKSOURCE = processor clock). */
uint32_t board_systick_reload(void);

/* BRR value for 115200 baud on the given USART. */
uint32_t board_uart_brr(uint32_t uart_base);

#endif
