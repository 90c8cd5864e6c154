/* nucleo-f446re: HSI 16 MHz -> PLL (M=16, N=336, P=4, Q=7) = 84 MHz SYSCLK, AHB/1, APB1/2 = 42 MHz,
 * APB2/1 = 84 MHz, flash 2 wait states (RM0390 table 5, 2.7-3.6 V). USART2 on PA2/PA3 (ST-LINK VCP),
 * USART1 on PA9/PA10 (Arduino D8/D2), both AF7. Compiled here, not run on hardware. */
#include "board.h"
#include "stm32.h"

const char board_profile[] = "nucleo-f446re";

#define SYSCLK_HZ 84000000u
#define PCLK1_HZ  42000000u
#define PCLK2_HZ  84000000u

static int wait_bit(volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    for (uint32_t n = 0; n < 1000000u; n++) {
        if ((*reg & mask) == value) return 0;
    }
    return -1;
}

void board_init(void)
{
    RCC_APB1ENR |= 1u << 28;                              /* PWR */
    RCC_CR |= 1u;                                         /* HSION (on after reset anyway) */
    (void)wait_bit(&RCC_CR, 1u << 1, 1u << 1);            /* HSIRDY */
    RCC_CR &= ~(1u << 24);                                /* PLL off before reconfiguring */
    (void)wait_bit(&RCC_CR, 1u << 25, 0u);
    /* PLLM=16, PLLN=336, PLLP=4 (field 01), PLLSRC=HSI (bit 22 = 0), PLLQ=7, PLLR=2 */
    RCC_PLLCFGR = 16u | (336u << 6) | (1u << 16) | (7u << 24) | (2u << 28);
    RCC_CR |= 1u << 24;                                   /* PLLON */
    if (wait_bit(&RCC_CR, 1u << 25, 1u << 25) == 0) {
        FLASH_ACR = (1u << 8) | (1u << 9) | (1u << 10) | 2u;      /* PRFTEN ICEN DCEN, 2 WS */
        (void)wait_bit(&FLASH_ACR, 0xFu, 2u);
        RCC_CFGR = (RCC_CFGR & ~0xFCF0u) | (4u << 10) | (0u << 13); /* HPRE/1, PPRE1/2, PPRE2/1 */
        RCC_CFGR = (RCC_CFGR & ~3u) | 2u;                 /* SW = PLL */
        (void)wait_bit(&RCC_CFGR, 0xCu, 0x8u);
    }
    RCC_AHB1ENR |= 1u << 0;                               /* GPIOA */
    RCC_APB1ENR |= 1u << 17;                              /* USART2 */
    RCC_APB2ENR |= 1u << 4;                               /* USART1 */
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~((3u << 4) | (3u << 6) | (3u << 18) | (3u << 20)))
                           | (2u << 4) | (2u << 6) | (2u << 18) | (2u << 20);
    GPIO_OSPEEDR(GPIOA_BASE) |= (2u << 4) | (2u << 6) | (2u << 18) | (2u << 20);
    GPIO_PUPDR(GPIOA_BASE) = (GPIO_PUPDR(GPIOA_BASE) & ~((3u << 6) | (3u << 20))) | (1u << 6) | (1u << 20); /* RX pull-ups */
    GPIO_AFRL(GPIOA_BASE) = (GPIO_AFRL(GPIOA_BASE) & ~(0xFFu << 8)) | (0x77u << 8);
    GPIO_AFRH(GPIOA_BASE) = (GPIO_AFRH(GPIOA_BASE) & ~(0xFFu << 4)) | (0x77u << 4);
}

uint32_t board_systick_reload(void)
{
    /* If the PLL did not lock the core is still on HSI. */
    return ((RCC_CFGR & 0xCu) == 0x8u ? SYSCLK_HZ : 16000000u) / 1000u - 1u;
}

uint32_t board_uart_brr(uint32_t uart_base)
{
    uint32_t pclk = uart_base == USART1_BASE ? PCLK2_HZ : PCLK1_HZ;
    if ((RCC_CFGR & 0xCu) != 0x8u) pclk = 16000000u;
    return (pclk + 57600u) / 115200u; /* OVER8=0: BRR = round(pclk / baud) */
}
