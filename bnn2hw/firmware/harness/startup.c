/* SPDX-License-Identifier: MIT */
/*
 * startup.c -- bare-metal Cortex-M startup for the QEMU harness: vector table, reset
 * handler (copy .data, zero .bss through volatile pointers so -O2 cannot turn the loops
 * into memcpy/memset calls, enable the FPU through CPACR on hard-float builds), then
 * main(); main's return value becomes QEMU's exit status via SYS_EXIT_EXTENDED.
 * Faults exit with status 100 + exception number.
 */
#include "bnn_harness.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);

void bnn_reset_handler(void) __attribute__((noreturn));
void bnn_fault_handler(void) __attribute__((noreturn));

void bnn_reset_handler(void)
{
#if defined(__ARM_FP)
    /* CPACR: full access to CP10 and CP11 before any floating-point instruction. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    volatile uint32_t *src = &__data_load;
    volatile uint32_t *dst = &__data_start;
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (volatile uint32_t *p = &__bss_start; p < &__bss_end; ++p) {
        *p = 0;
    }
    bnn_sh_exit(main());
}

void bnn_fault_handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    bnn_sh_puts("bnn harness: fault\n");
    bnn_sh_exit(100 + (int)(ipsr & 0x1ffu));
}

typedef void (*bnn_vector_t)(void);

__attribute__((section(".vectors"), used)) const bnn_vector_t bnn_vectors[16] = {
    (bnn_vector_t)(uintptr_t)&__stack_top, /* initial SP */
    bnn_reset_handler,                      /* reset */
    bnn_fault_handler,                      /* NMI */
    bnn_fault_handler,                      /* HardFault */
    bnn_fault_handler,                      /* MemManage */
    bnn_fault_handler,                      /* BusFault */
    bnn_fault_handler,                      /* UsageFault */
    bnn_fault_handler,                      /* SecureFault (v8-M) */
    0,
    0,
    0,
    bnn_fault_handler, /* SVCall */
    bnn_fault_handler, /* DebugMonitor */
    0,
    bnn_fault_handler, /* PendSV */
    bnn_fault_handler, /* SysTick */
};
