/* SysTick, UART rings and idle. RX is interrupt driven (RXNEIE, the only USART interrupt QEMU 7.2
 * raises); TX is polled on TXE because QEMU 7.2 never raises TXE/TC interrupts and Renode's TX is
 * instantaneous. The transport ring holds a full 2920-byte +IPD burst plus slack. */
#include <string.h>
#include "hw.h"
#include "board.h"
#include "stm32.h"

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
static const uint32_t uart_base[2] = { USART2_BASE, USART1_BASE };

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

static void rx_isr(int port)
{
    uint32_t base = uart_base[port];
    uint32_t sr = USART_SR(base);
    if (sr & (USART_SR_RXNE | USART_SR_ORE | USART_SR_FE | USART_SR_NE | USART_SR_PE)) {
        uint8_t b = (uint8_t)USART_DR(base);    /* SR then DR read clears the error flags too */
        if (sr & USART_SR_RXNE) {
            struct ring *r = &rings[port];
            uint32_t h = r->head;
            if (h - r->tail <= r->mask) {
                r->buf[h & r->mask] = b;
                r->head = h + 1u;
            } else {
                r->dropped++;
            }
        }
    }
}

void USART2_IRQHandler(void) { rx_isr(UART_CONSOLE); }
void USART1_IRQHandler(void) { rx_isr(UART_TRANSPORT); }

static void uart_setup(int port)
{
    uint32_t base = uart_base[port];
    USART_CR1(base) = 0;
    USART_CR2(base) = 0;
    USART_CR3(base) = 0;
    USART_BRR(base) = board_uart_brr(base);
    USART_CR1(base) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
}

void hw_init(void)
{
    board_init();
    SYST_RVR = board_systick_reload();
    SYST_CVR = 0;
    SYST_CSR = 7u;                       /* CLKSOURCE = processor, TICKINT, ENABLE */
    uart_setup(UART_CONSOLE);
    uart_setup(UART_TRANSPORT);
    nvic_enable(USART1_IRQn);
    nvic_enable(USART2_IRQn);
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
    uint32_t base = uart_base[port];
    const uint8_t *p = data;
    while (len--) {
        while (!(USART_SR(base) & USART_SR_TXE)) { }
        USART_DR(base) = *p++;
    }
}

void uart_puts(int port, const char *s) { uart_write(port, s, strlen(s)); }

void uart_flush(int port)
{
    uint32_t base = uart_base[port];
    for (uint32_t n = 0; n < 2000000u && !(USART_SR(base) & USART_SR_TC); n++) { }
}

void hw_idle(void)
{
    irq_disable();
    if (!uart_rx_pending(UART_CONSOLE) && !uart_rx_pending(UART_TRANSPORT)) cpu_wfi();
    irq_enable();
}
