/* SysTick, UART rings and idle: the SoC-independent half of the hardware layer (soc.h has the
 * rest). RX is interrupt driven into ring buffers (the only UART interrupt every emulator raises
 * reliably); TX is polled. The transport ring holds a full 2920-byte +IPD burst plus slack. */
#include <string.h>
#include "hw.h"
#include "cortexm.h"
#include "soc.h"

#define CON_RING  512u
#define NET_RING  8192u

struct ring {
    volatile uint32_t head, tail, dropped;
    uint32_t mask;
    volatile uint8_t *buf;
};

static volatile uint8_t con_buf[CON_RING];
static volatile uint8_t net_buf[NET_RING];
static struct ring rings[2] = {
    { 0, 0, 0, CON_RING - 1u, con_buf },
    { 0, 0, 0, NET_RING - 1u, net_buf },
};

static volatile uint32_t ticks_lo;
static volatile uint32_t ticks_hi;

void SysTick_Handler(void)
{
    uint32_t t = ticks_lo + 1u;
    ticks_lo = t;
    if (t == 0) ticks_hi++;
}

uint32_t millis(void) { return ticks_lo; }

uint64_t millis64(void)
{
    uint32_t hi, lo;
    do {
        hi = ticks_hi;
        lo = ticks_lo;
    } while (hi != ticks_hi);
    return ((uint64_t)hi << 32) | lo;
}

void hw_rx_byte(int port, uint8_t b)
{
    struct ring *r = &rings[port];
    uint32_t h = r->head;
    if (h - r->tail <= r->mask) {
        r->buf[h & r->mask] = b;
        r->head = h + 1u;
    } else {
        r->dropped++;
    }
}

void hw_init(void)
{
    soc_init();
    SYST_RVR = soc_systick_reload();
    SYST_CVR = 0;
    SYST_CSR = 7u;                       /* CLKSOURCE = processor, TICKINT, ENABLE */
    irq_enable();
}

int uart_getc(int port)
{
    struct ring *r = &rings[port];
    uint32_t t = r->tail;
    if (t == r->head) return -1;
    uint8_t b = r->buf[t & r->mask];
    r->tail = t + 1u;
    return b;
}

int uart_rx_pending(int port) { return rings[port].head != rings[port].tail; }

uint32_t uart_rx_dropped(int port) { return rings[port].dropped; }

void uart_write(int port, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len--) soc_uart_putc(port, *p++);
}

void uart_puts(int port, const char *s) { uart_write(port, s, strlen(s)); }

void uart_flush(int port) { soc_uart_flush(port); }

void hw_idle(void)
{
    irq_disable();
    if (!uart_rx_pending(UART_CONSOLE) && !uart_rx_pending(UART_TRANSPORT)) cpu_wfi();
    irq_enable();
}
