/* Cortex-M core registers and intrinsics shared by every SoC (SysTick, NVIC, SCB), and the
 * start-up handlers each SoC's vector table points at (startup.c). No CMSIS. */
#ifndef DDAGENT_CORTEXM_H
#define DDAGENT_CORTEXM_H
#include <stdint.h>

#define REG32(a) (*(volatile uint32_t *)(uintptr_t)(a))

#define SYST_CSR      REG32(0xE000E010u)
#define SYST_RVR      REG32(0xE000E014u)
#define SYST_CVR      REG32(0xE000E018u)
#define NVIC_ISER(n)  REG32(0xE000E100u + 4u * (n))
#define NVIC_IPR8(n)  (*(volatile uint8_t *)(uintptr_t)(0xE000E400u + (n)))
#define SCB_VTOR      REG32(0xE000ED08u)
#define SCB_AIRCR     REG32(0xE000ED0Cu)
#define SCB_CFSR      REG32(0xE000ED28u)
#define SCB_CPACR     REG32(0xE000ED88u)

static inline void irq_disable(void) { __asm volatile ("cpsid i" ::: "memory"); }
static inline void irq_enable(void)  { __asm volatile ("cpsie i" ::: "memory"); }
static inline void cpu_wfi(void)     { __asm volatile ("dsb\n\twfi" ::: "memory"); }
static inline void nvic_enable(uint32_t irq) { NVIC_ISER(irq / 32u) = 1u << (irq % 32u); }

__attribute__((noreturn)) void system_reset(void);

/* startup.c: the entries of every vector table. */
extern uint32_t _estack;
void Reset_Handler(void);
void HardFault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);     /* hw.c */

#endif
