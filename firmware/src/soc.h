/* SoC seam under hw.c: each SoC (soc_stm32f4.c, soc_lm3s6965.c, soc_nrf52840.c) brings its UART
 * driver and vector table; hw.c keeps the SoC-independent tick, rings and idle. The Makefile picks
 * one soc_*.c per profile, so there is no #ifdef per chip in the agent. */
#ifndef DDAGENT_SOC_H
#define DDAGENT_SOC_H
#include <stdint.h>

/* Clocks, pins, both UARTs (115200 8N1, RX interrupt on) and their NVIC lines. Interrupts are
 * still globally off when it runs. */
void soc_init(void);

/* SysTick reload for a 1 ms tick with CLKSOURCE = processor clock. */
uint32_t soc_systick_reload(void);

/* Polled transmit of one byte on port (UART_CONSOLE or UART_TRANSPORT). */
void soc_uart_putc(int port, uint8_t b);

/* Waits (bounded) until the last byte has left the shifter. */
void soc_uart_flush(int port);

/* hw.c: called from the SoC's RX interrupt with each received byte. */
void hw_rx_byte(int port, uint8_t b);

#endif
