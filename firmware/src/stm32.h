/* Register definitions for the STM32F4 parts this firmware runs on (F405 under QEMU, F407 under
 * Renode, F446 on the Nucleo). Only what the agent touches; no CMSIS, no vendor headers. */
#ifndef DDAGENT_STM32_H
#define DDAGENT_STM32_H
#include <stdint.h>
#include "cortexm.h"

/* RCC */
#define RCC_BASE      0x40023800u
#define RCC_CR        REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR   REG32(RCC_BASE + 0x04u)
#define RCC_CFGR      REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR   REG32(RCC_BASE + 0x30u)
#define RCC_APB1ENR   REG32(RCC_BASE + 0x40u)
#define RCC_APB2ENR   REG32(RCC_BASE + 0x44u)
#define RCC_CSR       REG32(RCC_BASE + 0x74u)
#define FLASH_ACR     REG32(0x40023C00u)
#define PWR_CR        REG32(0x40007000u)

/* GPIO */
#define GPIOA_BASE    0x40020000u
#define GPIO_MODER(b)   REG32((b) + 0x00u)
#define GPIO_OSPEEDR(b) REG32((b) + 0x08u)
#define GPIO_PUPDR(b)   REG32((b) + 0x0Cu)
#define GPIO_AFRL(b)    REG32((b) + 0x20u)
#define GPIO_AFRH(b)    REG32((b) + 0x24u)

/* USART (F4 "v1" USART: SR/DR/BRR/CR1) */
#define USART1_BASE   0x40011000u
#define USART2_BASE   0x40004400u
#define USART_SR(b)   REG32((b) + 0x00u)
#define USART_DR(b)   REG32((b) + 0x04u)
#define USART_BRR(b)  REG32((b) + 0x08u)
#define USART_CR1(b)  REG32((b) + 0x0Cu)
#define USART_CR2(b)  REG32((b) + 0x10u)
#define USART_CR3(b)  REG32((b) + 0x14u)
#define USART_SR_PE   (1u << 0)
#define USART_SR_FE   (1u << 1)
#define USART_SR_NE   (1u << 2)
#define USART_SR_ORE  (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TC   (1u << 6)
#define USART_SR_TXE  (1u << 7)
#define USART_CR1_RE     (1u << 2)
#define USART_CR1_TE     (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE     (1u << 13)
#define USART1_IRQn   37u
#define USART2_IRQn   38u

#endif
