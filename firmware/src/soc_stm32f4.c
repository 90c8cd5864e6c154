/* STM32F4 (F405 under QEMU, F407 under Renode, F446 on the Nucleo): "v1" USART (SR/DR/BRR/CR1),
 * USART2 = console, USART1 = transport. RX by RXNEIE (the only USART interrupt QEMU 7.2 raises);
 * TX polled on TXE because QEMU 7.2 never raises TXE/TC interrupts and Renode's TX is
 * instantaneous. Clocks and pins are the board file's (board_<profile>.c). The vector table covers
 * the F446's 97 IRQs (a superset of the F405/F407). */
#include "board.h"
#include "hw.h"
#include "soc.h"
#include "stm32.h"

static const uint32_t uart_base[2] = { USART2_BASE, USART1_BASE };

static void rx_isr(int port)
{
    uint32_t base = uart_base[port];
    uint32_t sr = USART_SR(base);
    if (sr & (USART_SR_RXNE | USART_SR_ORE | USART_SR_FE | USART_SR_NE | USART_SR_PE)) {
        uint8_t b = (uint8_t)USART_DR(base);    /* SR then DR read clears the error flags too */
        if (sr & USART_SR_RXNE) hw_rx_byte(port, b);
    }
}

static void USART2_IRQHandler(void) { rx_isr(UART_CONSOLE); }
static void USART1_IRQHandler(void) { rx_isr(UART_TRANSPORT); }

__attribute__((section(".isr_vector"), used))
void (*const vectors[16 + 97])(void) = {
    [0]  = (void (*)(void))&_estack,
    [1]  = Reset_Handler,
    [2]  = Default_Handler,        /* NMI */
    [3]  = HardFault_Handler,
    [4]  = HardFault_Handler,      /* MemManage */
    [5]  = HardFault_Handler,      /* BusFault */
    [6]  = HardFault_Handler,      /* UsageFault */
    [11] = Default_Handler,        /* SVC */
    [12] = Default_Handler,        /* DebugMon */
    [14] = Default_Handler,        /* PendSV */
    [15] = SysTick_Handler,
    [16 + USART1_IRQn] = USART1_IRQHandler,
    [16 + USART2_IRQn] = USART2_IRQHandler,
};

static void uart_setup(int port)
{
    uint32_t base = uart_base[port];
    USART_CR1(base) = 0;
    USART_CR2(base) = 0;
    USART_CR3(base) = 0;
    USART_BRR(base) = board_uart_brr(base);
    USART_CR1(base) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
}

void soc_init(void)
{
    board_init();
    uart_setup(UART_CONSOLE);
    uart_setup(UART_TRANSPORT);
    nvic_enable(USART1_IRQn);
    nvic_enable(USART2_IRQn);
}

uint32_t soc_systick_reload(void) { return board_systick_reload(); }

void soc_uart_putc(int port, uint8_t b)
{
    uint32_t base = uart_base[port];
    while (!(USART_SR(base) & USART_SR_TXE)) { }
    USART_DR(base) = b;
}

void soc_uart_flush(int port)
{
    uint32_t base = uart_base[port];
    for (uint32_t n = 0; n < 2000000u && !(USART_SR(base) & USART_SR_TC); n++) { }
}
