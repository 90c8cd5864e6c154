/* Millisecond tick, idle and the two UARTs (RXNE interrupt into ring buffers, polled TX). */
#ifndef DDAGENT_HW_H
#define DDAGENT_HW_H
#include <stddef.h>
#include <stdint.h>

enum { UART_CONSOLE = 0, UART_TRANSPORT = 1 };

void hw_init(void);

/* Milliseconds since boot (32-bit wraps after 49 days; compare with differences). */
uint32_t millis(void);
uint64_t millis64(void);
/* True once now >= deadline (wrap-safe for deadlines within 24 days). */
static inline int time_reached(uint32_t now, uint32_t deadline) { return (int32_t)(now - deadline) >= 0; }

/* Sleep in WFI until an interrupt (SysTick or UART RX) unless received bytes are waiting. */
void hw_idle(void);

int uart_getc(int port);              /* -1 when the ring is empty */
int uart_rx_pending(int port);
void uart_write(int port, const void *data, size_t len);
void uart_puts(int port, const char *s);
void uart_flush(int port);            /* wait for TC: the last byte has left the shifter */
uint32_t uart_rx_dropped(int port);   /* bytes lost to a full ring */

#endif
