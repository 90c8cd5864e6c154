/* renode-stm32f4disc: Renode's STM32F4 RCC answers every ready bit at once but changes neither the
 * CPU speed nor SysTick, which always counts at the NVIC's 72 MHz (shared/renode/stm32f4-facts.md),
 * so the reload is 71999 whatever the clock tree says. The chip stays on the 16 MHz HSI; peripheral
 * clocks and PA2/PA3 + PA9/PA10 AF7 are set as on the real F407 so the image is honest hardware
 * code, and BRR is computed for 16 MHz (Renode ignores it). */
#include "board.h"
#include "stm32.h"

const char board_profile[] = "renode-stm32f4disc";

void board_init(void)
{
    RCC_AHB1ENR |= 1u << 0;          /* GPIOA */
    RCC_APB1ENR |= 1u << 17;         /* USART2 */
    RCC_APB2ENR |= 1u << 4;          /* USART1 */
    /* PA2, PA3, PA9, PA10 alternate function 7 */
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~((3u << 4) | (3u << 6) | (3u << 18) | (3u << 20)))
                           | (2u << 4) | (2u << 6) | (2u << 18) | (2u << 20);
    GPIO_AFRL(GPIOA_BASE) = (GPIO_AFRL(GPIOA_BASE) & ~(0xFFu << 8)) | (0x77u << 8);
    GPIO_AFRH(GPIOA_BASE) = (GPIO_AFRH(GPIOA_BASE) & ~(0xFFu << 4)) | (0x77u << 4);
}

uint32_t board_systick_reload(void) { return 72000u - 1u; }

uint32_t board_uart_brr(uint32_t uart_base)
{
    (void)uart_base;
    return (16000000u + 57600u) / 115200u; /* HSI 16 MHz on both APBs */
}
