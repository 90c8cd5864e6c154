/* banner.c: the smallest STM32F4 image that proves a load worked.
 *
 * It copies .data from flash (its load address) to RAM, prints BANNER on
 * USART2 (netduinoplus2 serial1, the Nucleo's ST-LINK VCP), then echoes every
 * received byte, sleeping in WFI in between: the USART2 RXNE interrupt is
 * enabled in the NVIC but masked by PRIMASK, so it only wakes the core.
 * No clock set-up, no TX interrupts: what QEMU 7.2 models.
 */
#include <stdint.h>

#define USART2_SR (*(volatile uint32_t *)0x40004400u)
#define USART2_DR (*(volatile uint32_t *)0x40004404u)
#define USART2_CR1 (*(volatile uint32_t *)0x4000440Cu)
#define NVIC_ISER1 (*(volatile uint32_t *)0xE000E104u)
#define NVIC_ICPR1 (*(volatile uint32_t *)0xE000E284u)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_UE (1u << 13)
#define CR1_RXNEIE (1u << 5)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)
#define USART2_IRQ_BIT (1u << (38 - 32))

extern uint32_t _stack_top, _sidata, _sdata, _edata;
void reset_handler(void);

__attribute__((section(".vectors"), used))
const void *vectors[] = { &_stack_top, (void *)reset_handler };

/* Read back by the tests at 0x20000000: proves .data came from its LMA. */
volatile uint32_t marker = 0x600DF00Du;

static void put(char c) {
	while (!(USART2_SR & SR_TXE)) {
	}
	USART2_DR = (uint32_t)c;
}

void reset_handler(void) {
	for (uint32_t *s = &_sidata, *d = &_sdata; d < &_edata;) *d++ = *s++;
	USART2_CR1 = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
	for (const char *s = BANNER "\r\n"; *s; s++) put(*s);
	__asm volatile("cpsid i");
	NVIC_ISER1 = USART2_IRQ_BIT;
	for (;;) {
		__asm volatile("wfi");
		NVIC_ICPR1 = USART2_IRQ_BIT;
		while (USART2_SR & SR_RXNE) put((char)USART2_DR);
	}
}
