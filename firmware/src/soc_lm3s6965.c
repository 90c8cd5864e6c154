/* qemu-lm3s6965evb: TI Stellaris LM3S6965 (Cortex-M3) as QEMU's lm3s6965evb machine models it.
 * UART0 (0x4000C000, IRQ 5, PA0/PA1) = console, UART1 (0x4000D000, IRQ 6, PD2/PD3) = transport:
 * ARM PrimeCell PL011 UARTs (Luminary variant). FIFOs off, so the receive interrupt (RXIM) fires for
 * every byte; TX polled on FR.TXFF. No clock set-up: the part stays on its reset clock, which QEMU
 * derives from RCC.SYSDIV alone (200 MHz / (15 + 1) = 12.5 MHz, hw/arm/stellaris.c), so SysTick
 * counts 12500 processor clocks per ms. Peripheral clocks, pin muxing and the baud divisor are
 * programmed as on the real chip (datasheet DS-LM3S6965 sections 6, 9, 12); QEMU ignores them. */
#include "cortexm.h"
#include "board.h"
#include "hw.h"
#include "soc.h"

const char board_profile[] = "qemu-lm3s6965evb";

#define CORE_HZ        12500000u


#define SYSCTL_RCGC1   REG32(0x400FE104u)
#define SYSCTL_RCGC2   REG32(0x400FE108u)
#define GPIOA_BASE     0x40004000u
#define GPIOD_BASE     0x40007000u
#define GPIO_AFSEL(b)  REG32((b) + 0x420u)
#define GPIO_DEN(b)    REG32((b) + 0x51Cu)

#define UART0_BASE     0x4000C000u
#define UART1_BASE     0x4000D000u
#define UART_DR(b)     REG32((b) + 0x000u)
#define UART_RSR(b)    REG32((b) + 0x004u)
#define UART_FR(b)     REG32((b) + 0x018u)
#define UART_IBRD(b)   REG32((b) + 0x024u)
#define UART_FBRD(b)   REG32((b) + 0x028u)
#define UART_LCRH(b)   REG32((b) + 0x02Cu)
#define UART_CTL(b)    REG32((b) + 0x030u)
#define UART_IM(b)     REG32((b) + 0x038u)
#define UART_MIS(b)    REG32((b) + 0x040u)
#define UART_ICR(b)    REG32((b) + 0x044u)
#define UART_FR_BUSY   (1u << 3)
#define UART_FR_RXFE   (1u << 4)
#define UART_FR_TXFF   (1u << 5)
#define UART_LCRH_WLEN8 (3u << 5)
#define UART_CTL_EN    (1u << 0)
#define UART_CTL_TXE   (1u << 8)
#define UART_CTL_RXE   (1u << 9)
#define UART_IM_RX     (1u << 4)
#define UART_IM_RT     (1u << 6)
#define UART0_IRQn     5u
#define UART1_IRQn     6u

static const uint32_t uart_base[2] = { UART0_BASE, UART1_BASE };

static void rx_isr(int port)
{
    uint32_t base = uart_base[port];
    while (!(UART_FR(base) & UART_FR_RXFE)) {
        uint32_t d = UART_DR(base);
        if (!(d & 0xF00u)) hw_rx_byte(port, (uint8_t)d);   /* bits 8-11: FE PE BE OE */
        else UART_RSR(base) = 0;                            /* clear the error flags */
    }
    UART_ICR(base) = UART_IM_RX | UART_IM_RT;
}

static void UART0_IRQHandler(void) { rx_isr(UART_CONSOLE); }
static void UART1_IRQHandler(void) { rx_isr(UART_TRANSPORT); }

__attribute__((section(".isr_vector"), used))
void (*const vectors[16 + 48])(void) = {
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
    [16 + UART0_IRQn] = UART0_IRQHandler,
    [16 + UART1_IRQn] = UART1_IRQHandler,
};

static void uart_setup(uint32_t base)
{
    UART_CTL(base) = 0;
    /* 115200 baud at 12.5 MHz: BRD = 12.5e6 / (16 * 115200) = 6.782 -> IBRD 6, FBRD round(0.782 * 64) = 50.
     * LCRH is written after the divisors: that write latches them. */
    UART_IBRD(base) = CORE_HZ / (16u * 115200u);
    UART_FBRD(base) = ((CORE_HZ % (16u * 115200u)) * 64u + 8u * 115200u) / (16u * 115200u);
    UART_LCRH(base) = UART_LCRH_WLEN8;           /* 8N1, FIFOs off */
    UART_ICR(base) = 0x7FFu;
    UART_IM(base) = UART_IM_RX | UART_IM_RT;
    UART_CTL(base) = UART_CTL_EN | UART_CTL_TXE | UART_CTL_RXE;
}

void soc_init(void)
{
    SYSCTL_RCGC1 |= (1u << 0) | (1u << 1);       /* UART0, UART1 */
    SYSCTL_RCGC2 |= (1u << 0) | (1u << 3);       /* GPIOA, GPIOD */
    __asm volatile ("nop; nop; nop");            /* a few clocks before touching the peripherals */
    GPIO_AFSEL(GPIOA_BASE) |= 0x03u;             /* PA0 U0Rx, PA1 U0Tx */
    GPIO_DEN(GPIOA_BASE) |= 0x03u;
    GPIO_AFSEL(GPIOD_BASE) |= 0x0Cu;             /* PD2 U1Rx, PD3 U1Tx */
    GPIO_DEN(GPIOD_BASE) |= 0x0Cu;
    uart_setup(UART0_BASE);
    uart_setup(UART1_BASE);
    nvic_enable(UART0_IRQn);
    nvic_enable(UART1_IRQn);
}

uint32_t soc_systick_reload(void) { return CORE_HZ / 1000u - 1u; }

void soc_uart_putc(int port, uint8_t b)
{
    uint32_t base = uart_base[port];
    while (UART_FR(base) & UART_FR_TXFF) { }
    UART_DR(base) = b;
}

void soc_uart_flush(int port)
{
    uint32_t base = uart_base[port];
    for (uint32_t n = 0; n < 2000000u && (UART_FR(base) & UART_FR_BUSY); n++) { }
}
