/* renode-nrf52840dk: Nordic nRF52840 (Cortex-M4F, run soft-float) on the nRF52840-DK as Renode's
 * nrf52840dk_nrf52840 platform models it. UARTE0 (0x40002000, IRQ 2; P0.06 TX / P0.08 RX, the
 * DK's J-Link VCOM) = console, UARTE1 (0x40028000, IRQ 40; P1.02 TX / P1.01 RX, Arduino D1/D0) =
 * transport. Both in EasyDMA mode (UARTE1 has no legacy UART registers on the real chip):
 * RX is a one-byte DMA buffer restarted from the ENDRX interrupt, TX one-byte DMA polled on
 * ENDTX. SysTick counts the 64 MHz core clock (the .resc sets `nvic Frequency 64000000`; Renode's
 * NVIC otherwise uses its own default). Register map: nRF52840 Product Specification v1.7, 6.34. */
#include "cortexm.h"
#include "board.h"
#include "hw.h"
#include "soc.h"

const char board_profile[] = "renode-nrf52840dk";

#define CORE_HZ 64000000u

#define UARTE0_BASE 0x40002000u
#define UARTE1_BASE 0x40028000u
#define U_TASKS_STARTRX(b)  REG32((b) + 0x000u)
#define U_TASKS_STARTTX(b)  REG32((b) + 0x008u)
#define U_EVENTS_ENDRX(b)   REG32((b) + 0x110u)
#define U_EVENTS_ENDTX(b)   REG32((b) + 0x120u)
#define U_EVENTS_ERROR(b)   REG32((b) + 0x124u)
#define U_INTENSET(b)       REG32((b) + 0x304u)
#define U_INTENCLR(b)       REG32((b) + 0x308u)
#define U_ERRORSRC(b)       REG32((b) + 0x480u)
#define U_ENABLE(b)         REG32((b) + 0x500u)
#define U_PSEL_RTS(b)       REG32((b) + 0x508u)
#define U_PSEL_TXD(b)       REG32((b) + 0x50Cu)
#define U_PSEL_CTS(b)       REG32((b) + 0x510u)
#define U_PSEL_RXD(b)       REG32((b) + 0x514u)
#define U_BAUDRATE(b)       REG32((b) + 0x524u)
#define U_RXD_PTR(b)        REG32((b) + 0x534u)
#define U_RXD_MAXCNT(b)     REG32((b) + 0x538u)
#define U_RXD_AMOUNT(b)     REG32((b) + 0x53Cu)
#define U_TXD_PTR(b)        REG32((b) + 0x544u)
#define U_TXD_MAXCNT(b)     REG32((b) + 0x548u)
#define U_CONFIG(b)         REG32((b) + 0x56Cu)
#define U_INT_ENDRX   (1u << 4)
#define U_INT_ERROR   (1u << 9)
#define U_ENABLE_UARTE 8u
#define U_BAUD_115200 0x01D60000u
#define PSEL_OFF      0xFFFFFFFFu
#define PSEL(port, pin) (((uint32_t)(port) << 5) | (uint32_t)(pin))
#define UARTE0_IRQn   2u
#define UARTE1_IRQn   40u

static const uint32_t uart_base[2] = { UARTE0_BASE, UARTE1_BASE };
static volatile uint8_t rx_byte[2];
static volatile uint8_t tx_byte[2];
static uint8_t tx_busy[2];        /* a TX DMA was started and its ENDTX not yet consumed */

static void rx_isr(int port)
{
    uint32_t base = uart_base[port];
    if (U_EVENTS_ERROR(base)) {
        U_EVENTS_ERROR(base) = 0;
        U_ERRORSRC(base) = U_ERRORSRC(base);     /* write 1s to clear */
    }
    if (U_EVENTS_ENDRX(base)) {
        U_EVENTS_ENDRX(base) = 0;
        if (U_RXD_AMOUNT(base) == 1u) hw_rx_byte(port, rx_byte[port]);
        U_TASKS_STARTRX(base) = 1u;              /* the next byte into the same buffer */
    }
}

static void UARTE0_IRQHandler(void) { rx_isr(UART_CONSOLE); }
static void UARTE1_IRQHandler(void) { rx_isr(UART_TRANSPORT); }

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
    [16 + UARTE0_IRQn] = UARTE0_IRQHandler,
    [16 + UARTE1_IRQn] = UARTE1_IRQHandler,
};

static void uart_setup(int port, uint32_t tx, uint32_t rx)
{
    uint32_t base = uart_base[port];
    U_ENABLE(base) = 0;
    U_PSEL_TXD(base) = tx;
    U_PSEL_RXD(base) = rx;
    U_PSEL_RTS(base) = PSEL_OFF;
    U_PSEL_CTS(base) = PSEL_OFF;
    U_BAUDRATE(base) = U_BAUD_115200;
    U_CONFIG(base) = 0;                           /* 8N1, no flow control */
    U_ENABLE(base) = U_ENABLE_UARTE;
    U_RXD_PTR(base) = (uint32_t)(uintptr_t)&rx_byte[port];
    U_RXD_MAXCNT(base) = 1u;
    U_TXD_PTR(base) = (uint32_t)(uintptr_t)&tx_byte[port];
    U_TXD_MAXCNT(base) = 1u;
    U_EVENTS_ENDRX(base) = 0;
    U_EVENTS_ENDTX(base) = 0;
    U_INTENSET(base) = U_INT_ENDRX | U_INT_ERROR;
    U_TASKS_STARTRX(base) = 1u;
}

void soc_init(void)
{
    uart_setup(UART_CONSOLE, PSEL(0, 6), PSEL(0, 8));
    uart_setup(UART_TRANSPORT, PSEL(1, 2), PSEL(1, 1));
    nvic_enable(UARTE0_IRQn);
    nvic_enable(UARTE1_IRQn);
}

uint32_t soc_systick_reload(void) { return CORE_HZ / 1000u - 1u; }

static void tx_wait(int port)
{
    uint32_t base = uart_base[port];
    if (!tx_busy[port]) return;
    for (uint32_t n = 0; n < 2000000u && !U_EVENTS_ENDTX(base); n++) { }
    U_EVENTS_ENDTX(base) = 0;
    tx_busy[port] = 0;
}

void soc_uart_putc(int port, uint8_t b)
{
    tx_wait(port);
    tx_byte[port] = b;
    tx_busy[port] = 1;
    U_TASKS_STARTTX(uart_base[port]) = 1u;
}

void soc_uart_flush(int port) { tx_wait(port); }
