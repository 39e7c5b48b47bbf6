/* SPDX-License-Identifier: MIT */
/* bnn_bits.c -- the byte popcount table used by BNN_POPCOUNT_TABLE (see bnn_bits.h). */
#include "bnn_bits.h"

#define B2(n) n, n + 1, n + 1, n + 2
#define B4(n) B2(n), B2(n + 1), B2(n + 1), B2(n + 2)
#define B6(n) B4(n), B4(n + 1), B4(n + 1), B4(n + 2)

const uint8_t bnn_popcount_table[256] = {B6(0), B6(1), B6(1), B6(2)};

#if BNN_MULTI_ASM
#define BNN_UNUSED __attribute__((unused))

/*
 * bnn__dense_bits_t2: binary dense rows of ANY length nw >= 1 words (see bnn_bits.h).
 *
 * Registers: r0 input (re-read per row), r1 weights (advanced), r2 max_mismatch (advanced),
 * r3 output bits with the sentinel, r4-r9 data, r10 accumulator A, r11 accumulator B
 * (DSP only), r12 = 0, lr = end of the input.  Stack: [sp] input base, [sp+4] tail entry,
 * [sp+8] group-loop entry (code addresses | 1, taken with `ldr pc`).
 *
 * A row is nw % 3 tail words (0, 1 or 2, code t1/t2), then nw / 3 groups of 3 words in a
 * loop unrolled twice (entered at its second half when the group count is odd).
 *
 * Group of 3 words x, y, z (each already x ^ w), all SWAR on 2-bit then 4-bit fields:
 *   x2 = x - ((x & 0xAA..) >> 1)       2-bit counts of x, each <= 2
 *   y2 = y - ((y & 0xAA..) >> 1)       2-bit counts of y, each <= 2
 *   x2 += z & 0x55..;  y2 += (z & 0xAA..) >> 1        each 2-bit field <= 3 (no carry)
 *   s = (x2 & 0x33..) + ((x2 & 0xCC..) >> 2) + (y2 & 0x33..) + ((y2 & 0xCC..) >> 2)
 *                                                       nibbles <= 12 (no carry)
 * 15 ALU ops per 3 words (the carry-save adder + two SWAR stages of the 8-word chunk it
 * replaces took 16).  Accumulation without a byte stage (DSP): every byte of s is lo + 16 hi
 * (<= 204), so A += bytesum(s) = L + 16 H and B += bytesum(s & 0xF0..) = 16 H (USADA8 with a
 * zero operand), and the popcount is p = L + H = A - B + (B >> 4): 3 ops per group.  Without
 * DSP (Cortex-M3): byte stage, MUL by 0x01010101 and the top byte: 5 ops per group.
 *
 * Per row: A starts at ~M = -M-1, so at the end A - B + (B >> 4) = p - M - 1, negative
 * exactly when p <= M: LSLS moves its sign to C, RRXS shifts it in at bit 31 and the old
 * bit 0 out to C; the row loop ends when the sentinel bit falls out (as in bnn_dense.c).
 */
#define BNN_T2_XY2                                                                        \
    "and r7, r4, #0xAAAAAAAA\n\t"                                                         \
    "sub r4, r4, r7, lsr #1\n\t"                                                          \
    "and r8, r5, #0xAAAAAAAA\n\t"                                                         \
    "sub r5, r5, r8, lsr #1\n\t"
#define BNN_T2_NIB                                                                        \
    "and r7, r4, #0xCCCCCCCC\n\t"                                                         \
    "and r4, r4, #0x33333333\n\t"                                                         \
    "add r4, r4, r7, lsr #2\n\t"                                                          \
    "and r8, r5, #0xCCCCCCCC\n\t"                                                         \
    "and r5, r5, #0x33333333\n\t"                                                         \
    "add r4, r4, r5\n\t"                                                                  \
    "add r4, r4, r8, lsr #2\n\t"
#if BNN_HAVE_USADA8
#define BNN_T2_ACC                                                                        \
    "usada8 r10, r4, r12, r10\n\t"                                                        \
    "and r4, r4, #0xF0F0F0F0\n\t"                                                         \
    "usada8 r11, r4, r12, r11\n\t"
#define BNN_T2_ROW_INIT "mov r11, #0\n\t"
#define BNN_T2_ZERO "mov r12, #0\n\t"
/* r7 = p - M - 1 */
#define BNN_T2_FINISH                                                                     \
    "sub r7, r10, r11\n\t"                                                                \
    "add r7, r7, r11, lsr #4\n\t"                                                         \
    "lsls r7, r7, #1\n\t"
#else
#define BNN_T2_ACC                                                                        \
    "and r7, r4, #0xF0F0F0F0\n\t"                                                         \
    "and r4, r4, #0x0F0F0F0F\n\t"                                                         \
    "add r4, r4, r7, lsr #4\n\t"                                                          \
    "mul r4, r4, r12\n\t"                                                                 \
    "add r10, r10, r4, lsr #24\n\t"
#define BNN_T2_ROW_INIT ""
#define BNN_T2_ZERO "mov r12, #0x01010101\n\t"
#define BNN_T2_FINISH "lsls r7, r10, #1\n\t"
#endif
#define BNN_T2_GROUP                                                                      \
    "ldm r0!, {r4, r5, r6}\n\t"                                                           \
    "ldm r1!, {r7, r8, r9}\n\t"                                                           \
    "eor r4, r4, r7\n\t"                                                                  \
    "eor r5, r5, r8\n\t"                                                                  \
    "eor r6, r6, r9\n\t" BNN_T2_XY2 "and r7, r6, #0x55555555\n\t"                         \
    "add r4, r4, r7\n\t"                                                                  \
    "and r8, r6, #0xAAAAAAAA\n\t"                                                         \
    "add r5, r5, r8, lsr #1\n\t" BNN_T2_NIB BNN_T2_ACC

__attribute__((naked)) uint32_t bnn__dense_bits_t2(const bnn_word_t *in BNN_UNUSED, const bnn_word_t *w BNN_UNUSED,
                                                   const int32_t *max_mismatch BNN_UNUSED,
                                                   uint32_t nw_cnt BNN_UNUSED)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "sub sp, sp, #12\n\t"
        "str r0, [sp]\n\t"
        "lsr r4, r3, #5\n\t"          /* nw */
        "and r5, r3, #31\n\t"         /* cnt - 1 */
        "mov r3, #1\n\t"
        "lsl r3, r3, r5\n\t"          /* sentinel */
        "add lr, r0, r4, lsl #2\n\t"  /* input end */
        BNN_T2_ZERO
        "mov r6, #3\n\t"
        "udiv r5, r4, r6\n\t"         /* groups */
        "mls r6, r5, r6, r4\n\t"      /* tail words */
        "adr r7, 5f\n\t"              /* no group: straight to the finish */
        "cbz r5, 11f\n\t"
        "adr r7, 3f\n\t"              /* odd group count: second half of the loop */
        "tst r5, #1\n\t"
        "bne 11f\n\t"
        "adr r7, 2f\n\t"
        "11:\n\t"
        "orr r7, r7, #1\n\t"
        "str r7, [sp, #8]\n\t"
        "mov r8, r7\n\t"
        "cmp r6, #1\n\t"
        "bne 12f\n\t"
        "adr r8, 6f\n\t"
        "orr r8, r8, #1\n\t"
        "12:\n\t"
        "cmp r6, #2\n\t"
        "bne 13f\n\t"
        "adr r8, 7f\n\t"
        "orr r8, r8, #1\n\t"
        "13:\n\t"
        "str r8, [sp, #4]\n\t"
        /* ---- one row ---- */
        "1:\n\t"
        "ldr r10, [r2], #4\n\t"
        "ldr r0, [sp]\n\t"
        "mvn r10, r10\n\t" BNN_T2_ROW_INIT
        "ldr pc, [sp, #4]\n\t"
        "2:\n\t" BNN_T2_GROUP
        "3:\n\t" BNN_T2_GROUP
        "cmp r0, lr\n\t"
        "bne 2b\n\t"
        "5:\n\t" BNN_T2_FINISH
        "rrxs r3, r3\n\t"
        "bcc 1b\n\t"
        "add sp, sp, #12\n\t"
        "mov r0, r3\n\t"
        "pop {r4-r11, pc}\n\t"
        /* ---- tails ---- */
        "6:\n\t" /* one word */
        "ldr r4, [r0], #4\n\t"
        "ldr r7, [r1], #4\n\t"
        "eor r4, r4, r7\n\t"
        "and r7, r4, #0xAAAAAAAA\n\t"
        "sub r4, r4, r7, lsr #1\n\t"
        "and r7, r4, #0xCCCCCCCC\n\t"
        "and r4, r4, #0x33333333\n\t"
        "add r4, r4, r7, lsr #2\n\t" BNN_T2_ACC
        "ldr pc, [sp, #8]\n\t"
        "7:\n\t" /* two words */
        "ldm r0!, {r4, r5}\n\t"
        "ldm r1!, {r7, r8}\n\t"
        "eor r4, r4, r7\n\t"
        "eor r5, r5, r8\n\t" BNN_T2_XY2 BNN_T2_NIB BNN_T2_ACC
        "ldr pc, [sp, #8]\n\t");
}
#endif
