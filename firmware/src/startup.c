/* Reset handler, stack painting and fault handling, the same on every Cortex-M3/M4 SoC. The
 * vector table that points here is the SoC's (soc_*.c): its IRQ numbers differ per chip. */
#include <stdint.h>
#include "cortexm.h"
#include "sysinfo.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);
void fault_report(uint32_t pc, uint32_t cfsr);

#define STACK_PAINT 0xA5A5A5A5u

__attribute__((naked)) void HardFault_Handler(void)
{
    __asm volatile (
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "ldr r0, [r0, #24]\n\t"     /* stacked PC */
        "b hardfault_c\n\t");
}

__attribute__((used, noreturn)) void hardfault_c(uint32_t pc)
{
    fault_report(pc, SCB_CFSR);
    system_reset();
}

void Default_Handler(void)
{
    fault_report(0, 0xFFFFFFFFu);
    system_reset();
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; ) *dst++ = 0;
    /* Paint the free RAM between .bss and the live stack (minus a margin for this frame). */
    uint32_t sp;
    __asm volatile ("mov %0, sp" : "=r"(sp));
    for (dst = &_ebss; (uint32_t)(uintptr_t)dst < sp - 64u; ) *dst++ = STACK_PAINT;
    main();
    system_reset();
}

void system_reset(void)
{
    __asm volatile ("dsb" ::: "memory");
    SCB_AIRCR = 0x05FA0004u;        /* VECTKEY | SYSRESETREQ */
    __asm volatile ("dsb" ::: "memory");
    for (;;) { }
}

/* Deepest stack word ever written: the first non-paint word above .bss. */
static uint32_t stack_low_water(void)
{
    const uint32_t *p = &_ebss;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)(uintptr_t)p;
}

uint32_t sys_stack_high_water(void)
{
    return (uint32_t)(uintptr_t)&_estack - stack_low_water();
}

uint32_t sys_free_heap(void)
{
    return stack_low_water() - (uint32_t)(uintptr_t)&_ebss;
}
