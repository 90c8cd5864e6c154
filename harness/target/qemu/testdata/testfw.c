/*
 * testfw: a tiny bare-metal image for the qemu driver's tests (netduinoplus2,
 * STM32F405). Console on USART2, transport on USART1 (the reference agent's
 * wiring). Prints "testfw: boot=<n>" and a "> " prompt, echoes input,
 * echoes USART1 back to USART1, and on a line:
 *   crash  -> prints "testfw: hardfault" from a fault that escalates to a
 *             lockup (BKPT without a debugger, again in HardFault)
 *   reset  -> SYSRESETREQ (guest-requested reset)
 * boot=<n> counts boots in .noinit RAM, so a test can see what a reset keeps.
 */
#include <stdint.h>

#define REG(a) (*(volatile uint32_t *)(a))
#define USART1 0x40011000u
#define USART2 0x40004400u
#define SR 0x00u
#define DR 0x04u
#define CR1 0x0Cu
#define RXNE (1u << 5)
#define AIRCR 0xE000ED0Cu

extern uint32_t _estack, _sdata, _edata, _sidata, _sbss, _ebss;
void reset_handler(void);
void hardfault_handler(void);

__attribute__((section(".isr_vector"), used))
const void *const vectors[16] = {
    &_estack, (void *)reset_handler, 0, (void *)hardfault_handler,
};

__attribute__((section(".noinit"))) static uint32_t boot_magic, boot_count;

static void putc_(uint32_t u, char c) { REG(u + DR) = (uint8_t)c; }
static void puts_(uint32_t u, const char *s) { while (*s) putc_(u, *s++); }
static int getc_(uint32_t u) { return (REG(u + SR) & RXNE) ? (int)(REG(u + DR) & 0xffu) : -1; }

static void putnum(uint32_t u, uint32_t n)
{
    char b[11];
    int i = 10;
    b[i] = 0;
    do { b[--i] = (char)('0' + n % 10u); n /= 10u; } while (n);
    puts_(u, &b[i]);
}

static int eq(const char *a, const char *b)
{
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

void hardfault_handler(void)
{
    puts_(USART2, "testfw: hardfault\r\n");
    __asm__ volatile("bkpt 0xAB");
    for (;;) {}
}

int main(void)
{
    REG(USART1 + CR1) = (1u << 13) | (1u << 3) | (1u << 2);
    REG(USART2 + CR1) = (1u << 13) | (1u << 3) | (1u << 2);
    if (boot_magic != 0x7e57f00du) { boot_magic = 0x7e57f00du; boot_count = 0; }
    boot_count++;
    puts_(USART2, "testfw: boot=");
    putnum(USART2, boot_count);
    puts_(USART2, "\r\n> ");
    puts_(USART1, "testfw: transport\r\n");
    char line[64];
    unsigned n = 0;
    for (;;) {
        int c = getc_(USART1);
        if (c >= 0) putc_(USART1, (char)c);
        c = getc_(USART2);
        if (c < 0) continue;
        if (c != '\r' && c != '\n') {
            putc_(USART2, (char)c);
            if (n < sizeof line - 1u) line[n++] = (char)c;
            continue;
        }
        if (n == 0) continue;
        line[n] = 0;
        n = 0;
        puts_(USART2, "\r\n");
        if (eq(line, "crash")) {
            __asm__ volatile("bkpt 0xAB");
        } else if (eq(line, "reset")) {
            puts_(USART2, "testfw: resetting\r\n");
            REG(AIRCR) = 0x05FA0004u;
            for (;;) {}
        } else {
            puts_(USART2, "unknown: ");
            puts_(USART2, line);
            puts_(USART2, "\r\n");
        }
        puts_(USART2, "> ");
    }
}

void reset_handler(void)
{
    uint32_t *s = &_sidata, *d = &_sdata;
    while (d < &_edata) *d++ = *s++;
    for (d = &_sbss; d < &_ebss;) *d++ = 0;
    main();
    for (;;) {}
}
