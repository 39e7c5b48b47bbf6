/* SPDX-License-Identifier: MIT */
/* bnn_bits.c -- the byte popcount table used by BNN_POPCOUNT_TABLE (see bnn_bits.h). */
#include "bnn_bits.h"

#define B2(n) n, n + 1, n + 1, n + 2
#define B4(n) B2(n), B2(n + 1), B2(n + 1), B2(n + 2)
#define B6(n) B4(n), B4(n + 1), B4(n + 1), B4(n + 2)

const uint8_t bnn_popcount_table[256] = {B6(0), B6(1), B6(1), B6(2)};

#if BNN_MULTI_ASM || BNN_M0_ASM
#define BNN_UNUSED __attribute__((unused))
#endif

#if BNN_MULTI_ASM
/* The signature every Thumb-2 row kernel variant shares (the DSP and the plain Thumb-2 bodies
 * below): naked, so the asm body owns the frame and returns the result in r0. */
#define BNN_T2_HEAD(R, C, M)                                                                  \
    __attribute__((naked)) uint32_t bnn__dbt2_##R##C##M(const bnn_word_t *in BNN_UNUSED,     \
                                                     const bnn_word_t *w BNN_UNUSED,      \
                                                     const int32_t *mm BNN_UNUSED,        \
                                                     uint32_t nw_cnt BNN_UNUSED)
#endif

#if BNN_MULTI_ASM && BNN_HAVE_USADA8

/*
 * bnn__dbt2_<R><C><M>: binary dense rows of any length nw = 3 g + R words (see bnn_bits.h),
 * one function per tail length R (0, 1, 2), group-count class C (0: g = 0, 1: g = 1,
 * 2: g even >= 2, 3: g odd >= 3) and mode M (0: bits, 1: popcounts), all from one template,
 * so a row runs straight through with no dispatch: tail, (peeled group), loop over pairs of
 * groups.  The inline dispatcher in bnn_dense.h picks the function; with constant layer
 * parameters (generated code) only the one used is referenced, and --gc-sections drops the
 * others.
 *
 * Two rows per pass (cores with the DSP extension): rows A and B (weights w_j and w_{j+1})
 * run side by side, so every input word is loaded once for two weight rows, the loop
 * control and the per-row setup are shared, and each weight row is still read with LDM.
 * An odd row count starts with row 0 twice (A = B = row 0): in bits mode the sentinel sits
 * one place higher and the extra copy lands below the cnt result bits (the caller's
 * `>> (32 - cnt)` drops it); in popcount mode the copy is not stored.
 *
 * Registers: r0 input (re-read per pass from [sp]), r1 weights of row A, r2 weights of row
 * B (advanced), r3 output bits with the sentinel (bits mode) or popcount store pointer
 * (popcount mode), r4-r6 input words, r7-r9 x ^ w, r10 scratch, r11 / r12 accumulators of
 * rows A / B, lr = end of the input (g >= 2) or the max_mismatch pointer (bits mode, g <= 1:
 * no group loop needs the end).  Stack: [sp] input, [sp+4] nw * 4, [sp+8] next max_mismatch
 * pair (bits mode, g >= 2), [sp+12] the popcount flag (M = 3) or the end of the popcount
 * stores (M = 1), [sp+16] / [sp+20] p + 4 / p + cnt (M = 3 with the flag).
 * Per pass of 2 rows and group of 3 words: 3 LDM + 2 x 21 ALU; per pass: 11 instructions
 * in bits mode (M loads, ~M, 2 x LSLS / RRXS, frame reload, row pointers, branch), + 1 stack
 * store of the M pointer when g >= 2.
 *
 * Group of 3 words x, y, z (each already x ^ w), SWAR on 2-bit then 4-bit fields:
 *   x2 = x - ((x & 0xAA..) >> 1)       2-bit counts of x, each <= 2
 *   y2 = y - ((y & 0xAA..) >> 1)       2-bit counts of y, each <= 2
 *   x2 += z & 0x55..;  y2 += (z & 0xAA..) >> 1        each 2-bit field <= 3 (no carry)
 *   s = (x2 & 0x33..) + ((x2 & 0xCC..) >> 2) + (y2 & 0x33..) + ((y2 & 0xCC..) >> 2)
 *                                                       nibbles <= 12 (no carry)
 * 15 ALU ops per 3 words.  Accumulation in one register, 3 ops and no constant register:
 * every byte of s is lo + 16 hi (lo, hi <= 12); t = s & 0xF0.. holds 16 hi per byte and
 * t - (t >> 4) holds 15 hi (no borrow: 16 hi >= hi), so USADA8 acc, s, t - (t >> 4) adds
 * sum |lo + 16 hi - 15 hi| = sum (lo + hi), the popcount of the 3 words.  Tails (1 or 2 words,
 * nibbles <= 4 or <= 8) use the same accumulation.
 *
 * Bits mode: a row's accumulator starts at ~M = -M-1, so it ends at p - M - 1, negative
 * exactly when p <= M: LSLS moves its sign to C, RRXS shifts it in at bit 31 and the old
 * bit 0 out to C; the pass loop ends when the sentinel bit falls out (as in bnn_dense.c).
 */
/* USADA8 accumulation of the nibble word in r7 into ACC; FIRST: the first one of a row in
 * popcount mode (M = 1) starts the sum with USAD8 instead. */
#define BNN_T2_ACC_M(ACC, M, FIRST)                                                       \
    "and r10, r7, #0xF0F0F0F0\n\t"                                                        \
    "sub r10, r10, r10, lsr #4\n\t"                                                       \
    ".if " #M " == 1 && " #FIRST "\n\t"                                                   \
    "usad8 " ACC ", r7, r10\n\t"                                                          \
    ".else\n\t"                                                                           \
    "usada8 " ACC ", r7, r10, " ACC "\n\t"                                                \
    ".endif\n\t"
/* one row's share of a group: weights from W (advanced), input words in r4-r6; the pairs of
 * independent instructions (z halves, nibble halves) can dual-issue on Cortex-M7 */
#define BNN_T2_GROUP(W, ACC, M, FIRST)                                                    \
    "ldm " W "!, {r7, r8, r9}\n\t"                                                        \
    "eor r7, r7, r4\n\t"                                                                  \
    "eor r8, r8, r5\n\t"                                                                  \
    "and r10, r7, #0xAAAAAAAA\n\t"                                                        \
    "eor r9, r9, r6\n\t"                                                                  \
    "sub r7, r7, r10, lsr #1\n\t"                                                         \
    "and r10, r8, #0xAAAAAAAA\n\t"                                                        \
    "sub r8, r8, r10, lsr #1\n\t"                                                         \
    "and r10, r9, #0x55555555\n\t"                                                        \
    "and r9, r9, #0xAAAAAAAA\n\t"                                                         \
    "add r7, r7, r10\n\t"                                                                 \
    "add r8, r8, r9, lsr #1\n\t"                                                          \
    "and r10, r7, #0xCCCCCCCC\n\t"                                                        \
    "and r9, r8, #0xCCCCCCCC\n\t"                                                         \
    "and r7, r7, #0x33333333\n\t"                                                         \
    "and r8, r8, #0x33333333\n\t"                                                         \
    "add r7, r7, r10, lsr #2\n\t"                                                         \
    "add r8, r8, r9, lsr #2\n\t"                                                          \
    "add r7, r7, r8\n\t" BNN_T2_ACC_M(ACC, M, FIRST)
#define BNN_T2_GROUP2(M, FIRST)                                                           \
    "ldm r0!, {r4, r5, r6}\n\t" BNN_T2_GROUP("r1", "r11", M, FIRST) BNN_T2_GROUP("r2", "r12", M, FIRST)
#define BNN_T2_TAIL1_ROW(W, ACC, M)                                                       \
    "ldr r7, [" W "], #4\n\t"                                                             \
    "eor r7, r7, r4\n\t"                                                                  \
    "and r10, r7, #0xAAAAAAAA\n\t"                                                        \
    "sub r7, r7, r10, lsr #1\n\t"                                                         \
    "and r10, r7, #0xCCCCCCCC\n\t"                                                        \
    "and r7, r7, #0x33333333\n\t"                                                         \
    "add r7, r7, r10, lsr #2\n\t" BNN_T2_ACC_M(ACC, M, 1)
#define BNN_T2_TAIL2_ROW(W, ACC, M)                                                       \
    "ldrd r7, r8, [" W "], #8\n\t"                                                        \
    "eor r7, r7, r4\n\t"                                                                  \
    "eor r8, r8, r5\n\t"                                                                  \
    "and r10, r7, #0xAAAAAAAA\n\t"                                                        \
    "and r9, r8, #0xAAAAAAAA\n\t"                                                         \
    "sub r7, r7, r10, lsr #1\n\t"                                                         \
    "sub r8, r8, r9, lsr #1\n\t"                                                          \
    "and r10, r7, #0xCCCCCCCC\n\t"                                                        \
    "and r9, r8, #0xCCCCCCCC\n\t"                                                         \
    "and r7, r7, #0x33333333\n\t"                                                         \
    "and r8, r8, #0x33333333\n\t"                                                         \
    "add r7, r7, r10, lsr #2\n\t"                                                         \
    "add r8, r8, r9, lsr #2\n\t"                                                          \
    "add r7, r7, r8\n\t" BNN_T2_ACC_M(ACC, M, 1)
#define BNN_T2_TAIL1(M) "ldr r4, [r0], #4\n\t" BNN_T2_TAIL1_ROW("r1", "r11", M) BNN_T2_TAIL1_ROW("r2", "r12", M)
#define BNN_T2_TAIL2(M) "ldrd r4, r5, [r0], #8\n\t" BNN_T2_TAIL2_ROW("r1", "r11", M) BNN_T2_TAIL2_ROW("r2", "r12", M)

/*
 * Pass structure.  Bits mode: [sp] input, [sp+4] nw * 4, [sp+8] next max_mismatch pair;
 * a pass starts with LDRD of the pair's M (advancing the pointer) and ~M, ends with two
 * LSLS / RRXS and one LDM {r0, r4, r5} of the stack frame (input, nw * 4, M pointer).
 * Popcount mode: r3 is the store pointer, [sp+12] its end; the first accumulation of a row
 * is a USAD8 (no zeroing), except for R = 0, C = 2 (the loop's first group), which zeroes.
 * M = 3, the bits-mode kernel with the popcount flag (bit 31 of nw_cnt, set by the mode-2
 * wrappers): the prologue fills p[0..cnt) (the max_mismatch argument) with -1, so each
 * accumulator ends at p, and sets the sentinel so that every pass leaves the pass loop; the
 * exit path (one CBZ per call in bits mode) stores the pair in place of its -1s (row A only
 * when the M pointer is past p + 4: not on an odd count's first pass) and re-enters the loop
 * until p + cnt.  M = 0 is the same kernel without the flag (4 instructions less per call,
 * about 70 B less code).
 */
#define BNN_T2_DEFINE(R, C, M)                                                            \
    BNN_T2_HEAD(R, C, M)                                                                  \
    {                                                                                     \
        __asm__ volatile("push {r4-r11, lr}\n\t"                                          \
                         "sub sp, sp, #24\n\t"                                            \
                         "ubfx r4, r3, #5, #26\n\t"                  /* nw */              \
                         "and r7, r3, #31\n\t"                       /* cnt - 1 */         \
                         "lsl r6, r4, #2\n\t"                        /* nw * 4 */          \
                         "strd r0, r6, [sp]\n\t"                                          \
                         ".if " #M " != 1 && " #C " <= 1\n\t"                             \
                         "mov lr, r2\n\t"                                                 \
                         /* no group loop: lr holds the max_mismatch pointer */           \
                         ".else\n\t"                                                      \
                         "add lr, r0, r6\n\t"                                             \
                         ".endif\n\t"                                                     \
                         "mov r5, r2\n\t"                                                 \
                         ".if " #M " == 1\n\t"                                            \
                         "mov r3, r2\n\t"                                                 \
                         "add r8, r2, r7, lsl #2\n\t"                                     \
                         "add r8, r8, #4\n\t"                                             \
                         "str r8, [sp, #12]\n\t"                     /* p + cnt */         \
                         ".else\n\t"                                                      \
                         ".if " #M " == 3\n\t"                                            \
                         "lsrs r4, r3, #31\n\t"                     /* popcount flag */  \
                         "str r4, [sp, #12]\n\t"                                         \
                         "bne 9f\n\t"                               /* fill p with -1 */ \
                         ".endif\n\t"                                                     \
                         "5:\n\t"                                                         \
                         "mov r3, #1\n\t"                                                 \
                         "lsl r3, r3, r7\n\t"                        /* sentinel */       \
                         ".endif\n\t"                                                     \
                         "tst r7, #1\n\t"                                                 \
                         "bne 3f\n\t"                                                     \
                         /* odd count: row 0 twice (A = B = row 0) */                     \
                         "mov r2, r1\n\t"                                                 \
                         ".if " #M " != 1\n\t"                                            \
                         ".if " #C " <= 1\n\t"                                            \
                         "ldr r11, [lr], #4\n\t"                                          \
                         ".else\n\t"                                                      \
                         "ldr r11, [r5], #4\n\t"                                          \
                         "str r5, [sp, #8]\n\t"                                           \
                         ".endif\n\t"                                                     \
                         "mvn r11, r11\n\t"                                               \
                         "mov r12, r11\n\t"                                               \
                         "lsl r3, r3, #1\n\t"                        /* one more shift */ \
                         ".elseif " #R " == 0 && " #C " == 2\n\t"                         \
                         "mov r11, #0\n\t"                                                \
                         "mov r12, #0\n\t"                                                \
                         ".endif\n\t"                                                     \
                         "b 4f\n\t"                                                       \
                         "3:\n\t"                                                         \
                         "add r2, r1, r6\n\t"                                             \
                         "1:\n\t"                                                         \
                         ".if " #M " != 1\n\t"                                            \
                         ".if " #C " <= 1\n\t"                                            \
                         "ldrd r11, r12, [lr], #8\n\t"                                    \
                         ".else\n\t"                                                      \
                         "ldrd r11, r12, [r5], #8\n\t"                                    \
                         "str r5, [sp, #8]\n\t"                                           \
                         ".endif\n\t"                                                     \
                         "mvn r11, r11\n\t"                                               \
                         "mvn r12, r12\n\t"                                               \
                         ".elseif " #R " == 0 && " #C " == 2\n\t"                         \
                         "mov r11, #0\n\t"                                                \
                         "mov r12, #0\n\t"                                                \
                         ".endif\n\t"                                                     \
                         "4:\n\t"                                                         \
                         ".if " #R " == 1\n\t" BNN_T2_TAIL1(M)                            \
                         ".elseif " #R " == 2\n\t" BNN_T2_TAIL2(M)                        \
                         ".endif\n\t"                                                     \
                         ".if " #C " == 1 || " #C " == 3\n\t" BNN_T2_GROUP2(M, (R == 0))  \
                         ".endif\n\t"                                                     \
                         ".if " #C " >= 2\n\t"                                            \
                         "2:\n\t" BNN_T2_GROUP2(M, 0) BNN_T2_GROUP2(M, 0)                 \
                         "cmp r0, lr\n\t"                                                 \
                         "bne 2b\n\t"                                                     \
                         ".endif\n\t"                                                     \
                         ".if " #M " != 1\n\t"                                            \
                         "lsls r10, r11, #1\n\t"                                          \
                         "rrxs r3, r3\n\t"                                                \
                         "lsls r10, r12, #1\n\t"                                          \
                         "rrxs r3, r3\n\t"                                                \
                         "ldm sp, {r0, r4, r5, r6}\n\t"                                   \
                         "mov r1, r2\n\t"                                                 \
                         "add r2, r2, r4\n\t"                                             \
                         "bcc 1b\n\t"                                                     \
                         ".if " #M " == 3\n\t"                                            \
                         "cbz r6, 8f\n\t"                             /* popcount flag clear */\
                         "7:\n\t"                                     /* store p = acc (M = -1); row A unless the odd first pass (M pointer = p + 4) */\
                         "ldrd r6, r8, [sp, #16]\n\t"                 /* p + 4, p + cnt */\
                         ".if " #C " <= 1\n\t"                                            \
                         "cmp lr, r6\n\t"                                                 \
                         "it ne\n\t"                                                      \
                         "strne r11, [lr, #-8]\n\t"                                       \
                         "str r12, [lr, #-4]\n\t"                                         \
                         "movs r3, #2\n\t"                            /* the next pass exits to 7 again */\
                         "cmp lr, r8\n\t"                                                 \
                         ".else\n\t"                                                      \
                         "cmp r5, r6\n\t"                                                 \
                         "it ne\n\t"                                                      \
                         "strne r11, [r5, #-8]\n\t"                                       \
                         "str r12, [r5, #-4]\n\t"                                         \
                         "movs r3, #2\n\t"                            /* the next pass exits to 7 again */\
                         "cmp r5, r8\n\t"                                                 \
                         ".endif\n\t"                                                     \
                         "bne 1b\n\t"                                                     \
                         ".endif\n\t"                                                     \
                         "8:\n\t"                                                         \
                         "mov r0, r3\n\t"                                                 \
                         "add sp, sp, #24\n\t"                                            \
                         "pop {r4-r11, pc}\n\t"                                           \
                         ".if " #M " == 3\n\t"                                            \
                         "9:\n\t"                                     /* p[0..cnt) = -1 */\
                         "adds r4, r2, #4\n\t"                        /* p + 4 */         \
                         "adds r3, r7, #1\n\t"                                            \
                         "add r3, r2, r3, lsl #2\n\t"                 /* p + cnt */       \
                         "strd r4, r3, [sp, #16]\n\t"                                     \
                         "mov r8, #-1\n\t"                                                \
                         "6:\n\t"                                                         \
                         "str r8, [r3, #-4]!\n\t"                                         \
                         "cmp r3, r2\n\t"                                                 \
                         "bhi 6b\n\t"                                                     \
                         "and r7, r7, #1\n\t"                         /* sentinel at bit 1 after the first pass */\
                         "b 5b\n\t"                                                       \
                         ".endif\n\t"                                                     \
                         ".else\n\t"                                                      \
                         "cmp r1, r2\n\t"                            /* row 0 twice? */   \
                         "it ne\n\t"                                                      \
                         "strne r11, [r3], #4\n\t"                                        \
                         "str r12, [r3], #4\n\t"                                          \
                         "ldm sp, {r0, r4, r5, r6}\n\t"                                   \
                         "mov r1, r2\n\t"                                                 \
                         "add r2, r2, r4\n\t"                                             \
                         "cmp r3, r6\n\t"                                                 \
                         "bne 1b\n\t"                                                     \
                         "add sp, sp, #24\n\t"                                            \
                         "pop {r4-r11, pc}\n\t"                                           \
                         ".endif\n\t");                                                   \
    }

#elif BNN_MULTI_ASM

/*
 * bnn__dbt2_<R><C><M> without the DSP extension (Cortex-M3): one row per pass (the contract
 * and variants of the two-row kernel above).  Registers: r0 input (re-read per row from
 * [sp]), r1 weights (advanced), r2 max_mismatch (advanced), r3 output bits with the
 * sentinel, r4-r9 data, r10 accumulator, r12 = 0x01010101, lr = end of the input.  The group
 * of 3 words runs the same SWAR as above to nibbles <= 12, then a byte stage, MUL by
 * 0x01010101 and the top byte: 5 ops per group.  Row end: acc = p - M - 1 (starts at ~M),
 * its sign shifted in at bit 31 by RRXS, the loop ends when the sentinel falls out.
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
#define BNN_T2_ACC                                                                        \
    "and r7, r4, #0xF0F0F0F0\n\t"                                                         \
    "and r4, r4, #0x0F0F0F0F\n\t"                                                         \
    "add r4, r4, r7, lsr #4\n\t"                                                          \
    "mul r4, r4, r12\n\t"                                                                 \
    "add r10, r10, r4, lsr #24\n\t"
#define BNN_T2_GROUP_NOACC                                                                \
    "ldm r0!, {r4, r5, r6}\n\t"                                                           \
    "ldm r1!, {r7, r8, r9}\n\t"                                                           \
    "eor r4, r4, r7\n\t"                                                                  \
    "eor r5, r5, r8\n\t"                                                                  \
    "eor r6, r6, r9\n\t" BNN_T2_XY2 "and r7, r6, #0x55555555\n\t"                         \
    "add r4, r4, r7\n\t"                                                                  \
    "and r8, r6, #0xAAAAAAAA\n\t"                                                         \
    "add r5, r5, r8, lsr #1\n\t" BNN_T2_NIB
#define BNN_T2_TAIL1                                                                      \
    "ldr r4, [r0], #4\n\t"                                                                \
    "ldr r7, [r1], #4\n\t"                                                                \
    "eor r4, r4, r7\n\t"                                                                  \
    "and r7, r4, #0xAAAAAAAA\n\t"                                                         \
    "sub r4, r4, r7, lsr #1\n\t"                                                          \
    "and r7, r4, #0xCCCCCCCC\n\t"                                                         \
    "and r4, r4, #0x33333333\n\t"                                                         \
    "add r4, r4, r7, lsr #2\n\t" BNN_T2_ACC
#define BNN_T2_TAIL2                                                                      \
    "ldm r0!, {r4, r5}\n\t"                                                               \
    "ldm r1!, {r7, r8}\n\t"                                                               \
    "eor r4, r4, r7\n\t"                                                                  \
    "eor r5, r5, r8\n\t" BNN_T2_XY2 BNN_T2_NIB BNN_T2_ACC

#define BNN_T2_DEFINE(R, C, M)                                                            \
    BNN_T2_HEAD(R, C, M)                                                                  \
    {                                                                                     \
        __asm__ volatile("push {r4-r11, lr}\n\t"                                          \
                         "sub sp, sp, #8\n\t"                                             \
                         "str r0, [sp]\n\t"                                               \
                         "lsr r4, r3, #5\n\t"                                             \
                         "and r5, r3, #31\n\t"                                            \
                         "mov r3, #1\n\t"                                                 \
                         "lsl r3, r3, r5\n\t"                                             \
                         "add lr, r0, r4, lsl #2\n\t"                                     \
                         "mov r12, #0x01010101\n\t"                                       \
                         "1:\n\t"                                                         \
                         "ldr r0, [sp]\n\t"                                               \
                         ".if " #M " == 0\n\t"                                            \
                         "ldr r10, [r2], #4\n\t"                                          \
                         "mvn r10, r10\n\t"                                               \
                         ".else\n\t"                                                      \
                         "mov r10, #0\n\t"                                                \
                         ".endif\n\t"                                                     \
                         ".if " #R " == 1\n\t" BNN_T2_TAIL1                               \
                         ".elseif " #R " == 2\n\t" BNN_T2_TAIL2                           \
                         ".endif\n\t"                                                     \
                         ".if " #C " == 1 || " #C " == 3\n\t" BNN_T2_GROUP_NOACC          \
                         BNN_T2_ACC                                                       \
                         ".endif\n\t"                                                     \
                         ".if " #C " >= 2\n\t"                                            \
                         "2:\n\t" BNN_T2_GROUP_NOACC BNN_T2_ACC BNN_T2_GROUP_NOACC        \
                         BNN_T2_ACC                                                       \
                         "cmp r0, lr\n\t"                                                 \
                         "bne 2b\n\t"                                                     \
                         ".endif\n\t"                                                     \
                         ".if " #M " == 1\n\t"                                            \
                         "str r10, [r2], #4\n\t"                                          \
                         ".endif\n\t"                                                     \
                         "lsls r7, r10, #1\n\t"                                           \
                         "rrxs r3, r3\n\t"                                                \
                         "bcc 1b\n\t"                                                     \
                         "add sp, sp, #8\n\t"                                             \
                         "mov r0, r3\n\t"                                                 \
                         "pop {r4-r11, pc}\n\t");                                         \
    }
#endif

#if BNN_MULTI_ASM
BNN_T2_DEFINE(0, 1, 0)
BNN_T2_DEFINE(0, 2, 0)
BNN_T2_DEFINE(0, 3, 0)
BNN_T2_DEFINE(1, 0, 0)
BNN_T2_DEFINE(1, 1, 0)
BNN_T2_DEFINE(1, 2, 0)
BNN_T2_DEFINE(1, 3, 0)
BNN_T2_DEFINE(2, 0, 0)
BNN_T2_DEFINE(2, 1, 0)
BNN_T2_DEFINE(2, 2, 0)
BNN_T2_DEFINE(2, 3, 0)
BNN_T2_DEFINE(0, 1, 1)
BNN_T2_DEFINE(0, 2, 1)
BNN_T2_DEFINE(0, 3, 1)
BNN_T2_DEFINE(1, 0, 1)
BNN_T2_DEFINE(1, 1, 1)
BNN_T2_DEFINE(1, 2, 1)
BNN_T2_DEFINE(1, 3, 1)
BNN_T2_DEFINE(2, 0, 1)
BNN_T2_DEFINE(2, 1, 1)
BNN_T2_DEFINE(2, 2, 1)
BNN_T2_DEFINE(2, 3, 1)
#endif

#if BNN_MULTI_ASM && BNN_HAVE_USADA8
/*
 * bnn__dbt2_<R><C>2: the popcount contract of bnn__dbt2_<R><C>1 served by the bits-mode kernel
 * bnn__dbt2_<R><C>3 (bit 31 of nw_cnt set: p[0..cnt) is filled with -1 and used as the
 * max_mismatch array, so each accumulator ends at p - (-1) - 1 = p, which the pass exit stores
 * back in place).  With BNN_DENSE_SHARED_ROWS (bnn_dense.h) the dense logits use it and the
 * hidden layers mode 3, so a model whose logits rows have a hidden layer's row class links one
 * row kernel instead of two (about 570 B less flash on the 256-wide MLP); costs 4 instructions
 * per bits call and a few per popcount pass.
 */
/* the bits-mode kernel with the popcount flag (M = 3) */
BNN_T2_DEFINE(0, 1, 3)
BNN_T2_DEFINE(0, 2, 3)
BNN_T2_DEFINE(0, 3, 3)
BNN_T2_DEFINE(1, 0, 3)
BNN_T2_DEFINE(1, 1, 3)
BNN_T2_DEFINE(1, 2, 3)
BNN_T2_DEFINE(1, 3, 3)
BNN_T2_DEFINE(2, 0, 3)
BNN_T2_DEFINE(2, 1, 3)
BNN_T2_DEFINE(2, 2, 3)
BNN_T2_DEFINE(2, 3, 3)
#define BNN_T2_POP2(R, C)                                                                 \
    BNN_T2_HEAD(R, C, 2)                                                                  \
    {                                                                                     \
        __asm__ volatile("orr r3, r3, #0x80000000\n\t"                                     \
                         "b.w bnn__dbt2_" #R #C "3\n\t");                                 \
    }
BNN_T2_POP2(0, 1)
BNN_T2_POP2(0, 2)
BNN_T2_POP2(0, 3)
BNN_T2_POP2(1, 0)
BNN_T2_POP2(1, 1)
BNN_T2_POP2(1, 2)
BNN_T2_POP2(1, 3)
BNN_T2_POP2(2, 0)
BNN_T2_POP2(2, 1)
BNN_T2_POP2(2, 2)
BNN_T2_POP2(2, 3)
#endif

#if BNN_M0_ASM
/*
 * bnn__dbt_m0 / bnn__dbt_m0_pop: ARMv6-M (Cortex-M0/M0+) binary dense rows of any length, the
 * contracts of bnn__dbt2_<R><C>0 / bnn__dbt2_<R><C>1 (bnn_bits.h).  Thumb-1 has no shifted
 * operands and 8 low registers.  Per group of 3 words x, y, z (each already x ^ w): 2-bit
 * counts of x and y, the even / odd bits of z added into their spare capacity (fields <= 3),
 * then 4-bit fields added (nibbles <= 12): 28 instructions with the loads, as in the Thumb-2
 * kernel.  A group's nibble word is flushed (byte stage, <= 24 per byte, one MUL by
 * 0x01010101, top byte) at the start of the next group, so the last group's is flushed together
 * with the 1-2 words past the last full group (nw % 3, nibbles <= 8, their bytes <= 16 added
 * before the one MUL: <= 40 per byte).
 * r0 input, r1 weights, r2 pending nibble word, r3 / r4 tail words, r4-r5 scratch, r6 0x55..,
 * r7 0x33..; r8 row total, r9 input base, r10 input end, r11 max_mismatch or popcount pointer,
 * r12 bits with the sentinel, lr end of the full groups; [sp] 0x01010101, [sp+4] 0x0f0f0f0f.
 * Bits mode: the total starts at ~M, so it ends at p - M - 1, whose sign is the output bit,
 * shifted in at bit 31 (LSRS moves the sentinel out into C, ORRS keeps C).
 */
#define BNN_M0_WORD(X)                                                                    \
    "ldm r0!, {" X "}\n\t"                                                                \
    "ldm r1!, {r5}\n\t"                                                                   \
    "eors " X ", r5\n\t"                                                                  \
    "lsrs r5, " X ", #1\n\t"                                                              \
    "ands r5, r6\n\t"                                                                     \
    "subs " X ", " X ", r5\n\t"                                                           \
    "lsrs r5, " X ", #2\n\t"                                                              \
    "ands r5, r7\n\t"                                                                     \
    "ands " X ", r7\n\t"                                                                  \
    "adds " X ", " X ", r5\n\t"
#define BNN_M0_GROUP                                                                      \
    "ldm r0!, {r2, r3, r4}\n\t"                                                           \
    "ldm r1!, {r5}\n\t"                                                                   \
    "eors r2, r5\n\t"                                                                     \
    "ldm r1!, {r5}\n\t"                                                                   \
    "eors r3, r5\n\t"                                                                     \
    "ldm r1!, {r5}\n\t"                                                                   \
    "eors r4, r5\n\t"                                                                     \
    "lsrs r5, r2, #1\n\t"                                                                 \
    "ands r5, r6\n\t"                                                                     \
    "subs r2, r2, r5\n\t"                                                                 \
    "lsrs r5, r3, #1\n\t"                                                                 \
    "ands r5, r6\n\t"                                                                     \
    "subs r3, r3, r5\n\t"                                                                 \
    "movs r5, r6\n\t"                                                                     \
    "ands r5, r4\n\t"                                                                     \
    "adds r2, r2, r5\n\t"                                                                 \
    "lsrs r4, r4, #1\n\t"                                                                 \
    "ands r4, r6\n\t"                                                                     \
    "adds r3, r3, r4\n\t"                                                                 \
    "lsrs r5, r2, #2\n\t"                                                                 \
    "ands r5, r7\n\t"                                                                     \
    "ands r2, r7\n\t"                                                                     \
    "adds r2, r2, r5\n\t"                                                                 \
    "lsrs r5, r3, #2\n\t"                                                                 \
    "ands r5, r7\n\t"                                                                     \
    "ands r3, r7\n\t"                                                                     \
    "adds r2, r2, r3\n\t"                                                                 \
    "adds r2, r2, r5\n\t"
/* r2 (nibbles) -> bytes (r5 = 0x0f0f0f0f) */
#define BNN_M0_BYTES                                                                      \
    "lsrs r4, r2, #4\n\t"                                                                 \
    "ands r4, r5\n\t"                                                                     \
    "ands r2, r5\n\t"                                                                     \
    "adds r2, r2, r4\n\t"
/* sum of the bytes of r2 -> r2 */
#define BNN_M0_HSUM                                                                       \
    "ldr r5, [sp]\n\t"                                                                    \
    "muls r2, r5\n\t"                                                                     \
    "lsrs r2, r2, #24\n\t"

#define BNN_M0_DEFINE(NAME, M)                                                            \
    __attribute__((naked)) uint32_t NAME(const bnn_word_t *in BNN_UNUSED, const bnn_word_t *w BNN_UNUSED, \
                                         const int32_t *mm BNN_UNUSED, uint32_t nw_cnt BNN_UNUSED) \
    {                                                                                     \
        __asm__ volatile(".syntax unified\n\t"                                            \
                         "push {r4-r7, lr}\n\t"                                           \
                         "mov r4, r8\n\t"                                                 \
                         "mov r5, r9\n\t"                                                 \
                         "mov r6, r10\n\t"                                                \
                         "mov r7, r11\n\t"                                                \
                         "push {r4-r7}\n\t"                                               \
                         "sub sp, #8\n\t"                                                 \
                         "ldr r5, =0x01010101\n\t"                                        \
                         "str r5, [sp]\n\t"                                               \
                         "ldr r5, =0x0f0f0f0f\n\t"                                        \
                         "str r5, [sp, #4]\n\t"                                           \
                         "lsrs r4, r3, #5\n\t"       /* nw */                             \
                         "lsls r5, r3, #27\n\t"                                           \
                         "lsrs r5, r5, #27\n\t"      /* cnt - 1 */                        \
                         "movs r6, #1\n\t"                                                \
                         "lsls r6, r5\n\t"                                                \
                         "mov r12, r6\n\t"           /* sentinel */                       \
                         "mov r9, r0\n\t"                                                 \
                         "lsls r5, r4, #2\n\t"                                            \
                         "adds r5, r0, r5\n\t"                                            \
                         "mov r10, r5\n\t"           /* input end */                      \
                         "ldr r5, =43691\n\t"        /* nw / 3 = (nw * 43691) >> 17, nw < 98304 */ \
                         "muls r5, r4\n\t"                                                \
                         "lsrs r5, r5, #17\n\t"                                           \
                         "movs r6, #12\n\t"                                               \
                         "muls r5, r6\n\t"                                                \
                         "adds r5, r0, r5\n\t"                                            \
                         "mov lr, r5\n\t"            /* end of the full groups */         \
                         "mov r11, r2\n\t"                                                \
                         "ldr r6, =0x55555555\n\t"                                        \
                         "ldr r7, =0x33333333\n\t"                                        \
                         "1:\n\t"                                                         \
                         "mov r0, r9\n\t"                                                 \
                         ".if " #M " == 0\n\t"                                            \
                         "mov r4, r11\n\t"                                                \
                         "ldm r4!, {r5}\n\t"                                              \
                         "mov r11, r4\n\t"                                                \
                         "mvns r5, r5\n\t"           /* total starts at ~M */             \
                         ".else\n\t"                                                      \
                         "movs r5, #0\n\t"                                                \
                         ".endif\n\t"                                                     \
                         "mov r8, r5\n\t"                                                 \
                         "cmp r0, lr\n\t"                                                 \
                         "bne 2f\n\t"                                                     \
                         "movs r2, #0\n\t"            /* no full group */               \
                         "b 4f\n\t"                                                       \
                         "2:\n\t" BNN_M0_GROUP                                            \
                         "cmp r0, lr\n\t"                                                 \
                         "beq 4f\n\t"                                                     \
                         "ldr r5, [sp, #4]\n\t" BNN_M0_BYTES BNN_M0_HSUM                   \
                         "add r8, r2\n\t"                                                 \
                         "b 2b\n\t"                                                       \
                         "4:\n\t"                                                         \
                         "cmp r0, r10\n\t"                                                \
                         "beq 5f\n\t" BNN_M0_WORD("r3")                                   \
                         "cmp r0, r10\n\t"                                                \
                         "beq 6f\n\t" BNN_M0_WORD("r4")                                   \
                         "adds r3, r3, r4\n\t"                                            \
                         "6:\n\t"                                                         \
                         "ldr r5, [sp, #4]\n\t"                                           \
                         "lsrs r4, r3, #4\n\t"                                            \
                         "ands r4, r5\n\t"                                                \
                         "ands r3, r5\n\t"                                                \
                         "adds r3, r3, r4\n\t"       /* tail bytes <= 16 */               \
                         BNN_M0_BYTES                                                     \
                         "adds r2, r2, r3\n\t"       /* bytes <= 40 */                    \
                         "7:\n\t" BNN_M0_HSUM                                             \
                         "add r2, r8\n\t"                                                 \
                         ".if " #M " == 0\n\t"                                            \
                         "lsrs r2, r2, #31\n\t"                                           \
                         "lsls r2, r2, #31\n\t"                                           \
                         "mov r4, r12\n\t"                                                \
                         "lsrs r4, r4, #1\n\t"       /* C = the bit shifted out */        \
                         "orrs r4, r2\n\t"                                                \
                         "mov r12, r4\n\t"                                                \
                         ".else\n\t"                                                      \
                         "mov r4, r11\n\t"                                                \
                         "stm r4!, {r2}\n\t"                                              \
                         "mov r11, r4\n\t"                                                \
                         "mov r4, r12\n\t"                                                \
                         "lsrs r4, r4, #1\n\t"                                            \
                         "mov r12, r4\n\t"                                                \
                         ".endif\n\t"                                                     \
                         "bcc 1b\n\t"                                                     \
                         "b 8f\n\t"                                                       \
                         "5:\n\t"                     /* no tail word */                \
                         "ldr r5, [sp, #4]\n\t" BNN_M0_BYTES                               \
                         "b 7b\n\t"                                                       \
                         "8:\n\t"                                                         \
                         "mov r0, r12\n\t"                                                \
                         "add sp, #8\n\t"                                                 \
                         "pop {r4-r7}\n\t"                                                \
                         "mov r8, r4\n\t"                                                 \
                         "mov r9, r5\n\t"                                                 \
                         "mov r10, r6\n\t"                                                \
                         "mov r11, r7\n\t"                                                \
                         "pop {r4-r7, pc}\n\t"                                            \
                         ".ltorg\n\t");                                                   \
    }

BNN_M0_DEFINE(bnn__dbt_m0, 0)
BNN_M0_DEFINE(bnn__dbt_m0_pop, 1)
#endif
