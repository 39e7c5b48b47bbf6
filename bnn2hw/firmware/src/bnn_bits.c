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
 * One 8-word chunk: in r0 (not advanced), weights r1 (advanced by 32 bytes), r12 = 0.
 * Leaves the byte counts (each byte <= 64) in r5; clobbers r4-r11.
 * Words 0-2 and 3-5: carry-save adder -> ones o, twos t; 2-bit stage x - ((x&0xAA..)>>1);
 * weighted 4-bit stage o_lo + o_hi/4 + 2 t_lo + 2 t_hi/4 (nibbles <= 12); byte stage.
 * Words 6-7: plain SWAR to nibbles <= 8, byte stage.
 */
#define BNN_CHUNK8                                                                        \
    "ldm r0, {r4-r7}\n\t"                                                                 \
    "ldm r1!, {r8-r11}\n\t"                                                               \
    "eor r4, r4, r8\n\t"                                                                  \
    "eor r5, r5, r9\n\t"                                                                  \
    "eor r6, r6, r10\n\t"                                                                 \
    "eor r7, r7, r11\n\t"                                                                 \
    "eor r8, r4, r5\n\t"                                                                  \
    "and r4, r4, r5\n\t"                                                                  \
    "eor r5, r8, r6\n\t"                                                                  \
    "and r8, r8, r6\n\t"                                                                  \
    "orr r4, r4, r8\n\t"                                                                  \
    "and r8, r5, #0xAAAAAAAA\n\t"                                                         \
    "sub r5, r5, r8, lsr #1\n\t"                                                          \
    "and r8, r4, #0xAAAAAAAA\n\t"                                                         \
    "sub r4, r4, r8, lsr #1\n\t"                                                          \
    "and r8, r5, #0xCCCCCCCC\n\t"                                                         \
    "and r5, r5, #0x33333333\n\t"                                                         \
    "add r5, r5, r8, lsr #2\n\t"                                                          \
    "and r8, r4, #0xCCCCCCCC\n\t"                                                         \
    "and r4, r4, #0x33333333\n\t"                                                         \
    "add r5, r5, r4, lsl #1\n\t"                                                          \
    "add r5, r5, r8, lsr #1\n\t"                                                          \
    "and r8, r5, #0xF0F0F0F0\n\t"                                                         \
    "and r5, r5, #0x0F0F0F0F\n\t"                                                         \
    "add r5, r5, r8, lsr #4\n\t"                                                          \
    "ldm r1!, {r8-r11}\n\t"                                                               \
    "ldrd r4, r6, [r0, #16]\n\t"                                                          \
    "eor r8, r8, r4\n\t"                                                                  \
    "eor r9, r9, r6\n\t"                                                                  \
    "ldrd r4, r6, [r0, #24]\n\t"                                                          \
    "eor r10, r10, r4\n\t"                                                                \
    "eor r11, r11, r6\n\t"                                                                \
    "eor r4, r7, r8\n\t"                                                                  \
    "and r7, r7, r8\n\t"                                                                  \
    "eor r8, r4, r9\n\t"                                                                  \
    "and r4, r4, r9\n\t"                                                                  \
    "orr r7, r7, r4\n\t"                                                                  \
    "and r4, r8, #0xAAAAAAAA\n\t"                                                         \
    "sub r8, r8, r4, lsr #1\n\t"                                                          \
    "and r4, r7, #0xAAAAAAAA\n\t"                                                         \
    "sub r7, r7, r4, lsr #1\n\t"                                                          \
    "and r4, r8, #0xCCCCCCCC\n\t"                                                         \
    "and r8, r8, #0x33333333\n\t"                                                         \
    "add r8, r8, r4, lsr #2\n\t"                                                          \
    "and r4, r7, #0xCCCCCCCC\n\t"                                                         \
    "and r7, r7, #0x33333333\n\t"                                                         \
    "add r8, r8, r7, lsl #1\n\t"                                                          \
    "add r8, r8, r4, lsr #1\n\t"                                                          \
    "and r4, r8, #0xF0F0F0F0\n\t"                                                         \
    "and r8, r8, #0x0F0F0F0F\n\t"                                                         \
    "add r8, r8, r4, lsr #4\n\t"                                                          \
    "add r5, r5, r8\n\t"                                                                  \
    "and r4, r10, #0xAAAAAAAA\n\t"                                                        \
    "sub r10, r10, r4, lsr #1\n\t"                                                        \
    "and r4, r11, #0xAAAAAAAA\n\t"                                                        \
    "sub r11, r11, r4, lsr #1\n\t"                                                        \
    "and r4, r10, #0xCCCCCCCC\n\t"                                                        \
    "and r10, r10, #0x33333333\n\t"                                                       \
    "add r10, r10, r4, lsr #2\n\t"                                                        \
    "and r4, r11, #0xCCCCCCCC\n\t"                                                        \
    "and r11, r11, #0x33333333\n\t"                                                       \
    "add r10, r10, r11\n\t"                                                               \
    "add r10, r10, r4, lsr #2\n\t"                                                        \
    "and r4, r10, #0xF0F0F0F0\n\t"                                                        \
    "and r10, r10, #0x0F0F0F0F\n\t"                                                       \
    "add r5, r5, r10\n\t"                                                                 \
    "add r5, r5, r4, lsr #4\n\t"

#if BNN_HAVE_USADA8
/* r4 = r4 + sum of the bytes of r5 */
#define BNN_HSUM_R5_INTO_R4 "usada8 r4, r5, r12, r4\n\t"
#else
/* bytes <= 64: pairwise byte sums (<= 128), keep bytes 0 and 2, fold the halves
 * (sum <= 256, 9 bits) */
#define BNN_HSUM_R5_INTO_R4                                                               \
    "add r5, r5, r5, lsr #8\n\t"                                                          \
    "and r5, r5, #0x00FF00FF\n\t"                                                         \
    "add r5, r5, r5, lsr #16\n\t"                                                         \
    "ubfx r5, r5, #0, #9\n\t"                                                             \
    "add r4, r4, r5\n\t"
#endif

__attribute__((naked)) uint32_t bnn__xor_popcount_chunks_t2(const bnn_word_t *a BNN_UNUSED,
                                                            const bnn_word_t *w BNN_UNUSED,
                                                            uint32_t n BNN_UNUSED)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "mov r12, #0\n\t"
                     "mov lr, #0\n\t"
                     "1:\n\t" BNN_CHUNK8 "mov r4, lr\n\t" BNN_HSUM_R5_INTO_R4 "mov lr, r4\n\t"
                     "add r0, r0, #32\n\t"
                     "subs r2, r2, #1\n\t"
                     "bne 1b\n\t"
                     "mov r0, lr\n\t"
                     "pop {r4-r11, pc}\n\t");
}

__attribute__((naked)) uint32_t bnn__dense_bits_k8_t2(const bnn_word_t *in BNN_UNUSED,
                                                      const bnn_word_t *w BNN_UNUSED,
                                                      const int32_t *max_mismatch BNN_UNUSED,
                                                      uint32_t sentinel BNN_UNUSED)
{
    /* per row: r4 = ~M = -M-1; r4 += p; the sign of p - M - 1 is the output bit (p <= M);
     * lsls moves it to C, rrxs shifts it in at bit 31 and the old bit 0 (sentinel) to C. */
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "mov r12, #0\n\t"
                     "1:\n\t" BNN_CHUNK8 "ldr r4, [r2], #4\n\t"
                     "mvn r4, r4\n\t" BNN_HSUM_R5_INTO_R4 "lsls r4, r4, #1\n\t"
                     "rrxs r3, r3\n\t"
                     "bcc 1b\n\t"
                     "mov r0, r3\n\t"
                     "pop {r4-r11, pc}\n\t");
}
#endif
