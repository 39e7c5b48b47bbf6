/* SPDX-License-Identifier: MIT */
/*
 * bnn_dense_mve.c -- binary dense rows with Helium (M-profile Vector Extension, Cortex-M55):
 * the same contract as the Thumb-2 row kernels (bnn_bits.h, bnn__dbt2_*), used by
 * bnn_dense_bits / bnn_dense_acc / bnn_conv_bits for every row when BNN_MVE is set
 * (bnn__dbt2_pick; -DBNN_NO_MVE keeps the Thumb-2 rows).
 *
 * MVE has no vector popcount (no VCNT), but it has byte gathers: VLDRB.U8 Qd, [Rn, Qm] loads
 * 16 bytes Rn[Qm[i]] at once, so a 256-entry byte table turns 16 byte lanes of x into their
 * 16 popcounts in one instruction.  Per 128-bit vector (4 words) of one row the work is
 *   VLDRW w, VEOR, VLDRB gather (popcounts), VADDVA.U8 (accumulate into a scalar)
 * four instructions for 128 binary MACs, and the input vector is loaded once per group of
 * four rows (rows j..j+3 share it): 18 instructions per vector pass of four rows, LETP
 * included (inline assembly below: GCC 12 emits neither DLSTP/LETP nor this register use).
 *
 * Row lengths that are not a multiple of 4 words need no scalar tail: the loop is a
 * tail-predicated low-overhead loop (DLSTP.32 / LETP; the last pass predicates the lanes past
 * nw off, inactive lanes are neither loaded nor summed).  Rows are taken four at a time, then
 * one by one (cnt <= 32 rows per call).  A row's count stays below 2^32 (nw < 2^27 words), so
 * the scalar accumulators cannot overflow.
 *
 * Measured (benchmarks/bench_mcu_helium.py, results/mcu_helium.md; QEMU instruction counts):
 * 0.072 instructions per binary MAC on the 256-256-256-10 MLP, 0.044 at 1024 (the scalar
 * Thumb-2 rows: 0.293 and 0.261), and cheaper than the scalar rows at every row length down to
 * one word, so bnn__dbt2_pick (bnn_bits.h) uses these rows for every layer on the M55.
 *
 * Cost note: the instruction counts are exact (QEMU); in cycles a byte gather is slower than a
 * contiguous load on the Cortex-M55 (gathers access memory element by element), so the cycle
 * gain is smaller than the instruction gain (no cycle model of the M55 exists in bnn2hw).
 */
#include "bnn_bits.h"

#if BNN_MVE

/* popcount of every byte value (the table the gathers index) */
#define BNN__P2(n) n, n + 1, n + 1, n + 2
#define BNN__P4(n) BNN__P2(n), BNN__P2(n + 1), BNN__P2(n + 1), BNN__P2(n + 2)
#define BNN__P6(n) BNN__P4(n), BNN__P4(n + 1), BNN__P4(n + 1), BNN__P4(n + 2)
static const uint8_t bnn__mve_pop8[256] __attribute__((aligned(16))) = {BNN__P6(0), BNN__P6(1), BNN__P6(1),
                                                                       BNN__P6(2)};

/*
 * The 4-row core: w (in/out) points at row 0 of a group of four rows of nw words; on exit it
 * points at the next group (w + 4 nw) and s_r += popcount(in ^ w_r).  The row pointers are made
 * here (not in C, where GCC keeps 4 nw, 8 nw, 12 nw in spilled registers; 12 operands, so it
 * also builds at -O0, where r7 is the frame pointer), then the vectors
 * run in a tail-predicated low-overhead loop (DLSTP.32 / LETP: LR counts words, the last pass
 * predicates the lanes past nw off, so any nw >= 1 runs without a scalar tail).  Per pass 18
 * instructions: VLDRW in, 4 x (VLDRW w_r, VEOR, VLDRB gather, VADDVA.U8), LETP.  VADDVA
 * encodes only even accumulator registers, hence the fixed r4, r6, r8, r10.
 */
#define BNN__MVE_ROW4_ASM                                                                                     \
    "add %[w1], %[w], %[n], lsl #2\n\t"                                                                       \
    "add %[w2], %[w1], %[n], lsl #2\n\t"                                                                      \
    "add %[w3], %[w2], %[n], lsl #2\n\t"                                                                      \
    "mov %[pi], %[in]\n\t"                                                                                    \
    "dlstp.32 lr, %[n]\n"                                                                                     \
    "1:\n\t"                                                                                                  \
    "vldrw.u32 q0, [%[pi]], #16\n\t"                                                                          \
    "vldrw.u32 q1, [%[w]], #16\n\t"                                                                           \
    "vldrw.u32 q2, [%[w1]], #16\n\t"                                                                          \
    "veor q1, q1, q0\n\t"                                                                                     \
    "vldrw.u32 q3, [%[w2]], #16\n\t"                                                                          \
    "veor q2, q2, q0\n\t"                                                                                     \
    "vldrw.u32 q4, [%[w3]], #16\n\t"                                                                          \
    "veor q3, q3, q0\n\t"                                                                                     \
    "vldrb.u8 q5, [%[tab], q1]\n\t"                                                                           \
    "veor q4, q4, q0\n\t"                                                                                     \
    "vldrb.u8 q6, [%[tab], q2]\n\t"                                                                           \
    "vaddva.u8 %[s0], q5\n\t"                                                                                 \
    "vldrb.u8 q7, [%[tab], q3]\n\t"                                                                           \
    "vaddva.u8 %[s1], q6\n\t"                                                                                 \
    "vldrb.u8 q5, [%[tab], q4]\n\t"                                                                           \
    "vaddva.u8 %[s2], q7\n\t"                                                                                 \
    "vaddva.u8 %[s3], q5\n\t"                                                                                 \
    "letp lr, 1b\n\t"                                                                                         \
    "add %[w1], %[n], #3\n\t" /* w3 went 16 ceil(nw / 4) bytes on: back, then nw words on */                 \
    "bic %[w1], %[w1], #3\n\t"                                                                                \
    "sub %[w], %[w3], %[w1], lsl #2\n\t"                                                                      \
    "add %[w], %[w], %[n], lsl #2\n"

/* One row (w in/out, advanced by nw): 5 instructions per pass (VLDRW in, VLDRW w, VEOR,
 * VLDRB gather, VADDVA) + LETP. */
#define BNN__MVE_ROW1_ASM                                                                                     \
    "mov %[w0], %[w]\n\t"                                                                                     \
    "add %[w], %[w], %[n], lsl #2\n\t"                                                                        \
    "mov %[pi], %[in]\n\t"                                                                                    \
    "dlstp.32 lr, %[n]\n"                                                                                     \
    "1:\n\t"                                                                                                  \
    "vldrw.u32 q0, [%[pi]], #16\n\t"                                                                          \
    "vldrw.u32 q1, [%[w0]], #16\n\t"                                                                          \
    "veor q1, q1, q0\n\t"                                                                                     \
    "vldrb.u8 q2, [%[tab], q1]\n\t"                                                                           \
    "vaddva.u8 %[s0], q2\n\t"                                                                                 \
    "letp lr, 1b\n"

#define BNN__MVE_CLOBBERS "lr", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", \
                          "d11", "d12", "d13", "d14", "d15"

/* s0..s3 += popcount(in ^ w_r) for the 4 rows w_r = w + r nw; w advances by 4 nw. */
#define BNN__MVE_ROWS4(in, w, nw, s0, s1, s2, s3)                                                            \
    do {                                                                                                      \
        const bnn_word_t *pi_, *w1_, *w2_, *w3_;                                                              \
        __asm__ volatile(BNN__MVE_ROW4_ASM                                                                    \
                         : [w] "+r"(w), [pi] "=&r"(pi_), [w1] "=&r"(w1_), [w2] "=&r"(w2_), [w3] "=&r"(w3_),   \
                           [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3)                         \
                         : [in] "r"(in), [n] "r"(nw), [tab] "r"(bnn__mve_pop8)                                \
                         : BNN__MVE_CLOBBERS);                                                                \
    } while (0)

/* s0 += popcount(in ^ w) of one row; w advances by nw. */
#define BNN__MVE_ROW1(in, w, nw, s0)                                                                          \
    do {                                                                                                      \
        const bnn_word_t *pi_, *w0_;                                                                          \
        __asm__ volatile(BNN__MVE_ROW1_ASM                                                                    \
                         : [w] "+r"(w), [pi] "=&r"(pi_), [w0] "=&r"(w0_), [s0] "+r"(s0)                       \
                         : [in] "r"(in), [n] "r"(nw), [tab] "r"(bnn__mve_pop8)                                \
                         : BNN__MVE_CLOBBERS);                                                                \
    } while (0)

/*
 * Bits mode: each accumulator starts at ~M_j = -M_j - 1, so it ends as p_j - M_j - 1, negative
 * iff p_j <= M_j; its sign bit is the output bit, shifted in at bit 31.  Rows four at a time
 * (sharing the input vectors), then the last 1..3 one by one.
 */
uint32_t bnn__dbt_mve(const bnn_word_t *in, const bnn_word_t *w, const int32_t *max_mismatch, uint32_t nw_cnt)
{
    const uint32_t nw = nw_cnt >> 5;
    const uint32_t cnt = (nw_cnt & 31u) + 1u;
    const int32_t *mm = max_mismatch, *mm4 = max_mismatch + (cnt & ~3u);
    uint32_t bits = 0u;
    for (; mm != mm4; mm += 4) {
        register uint32_t s0 __asm__("r4") = (uint32_t)~mm[0];
        register uint32_t s1 __asm__("r6") = (uint32_t)~mm[1];
        register uint32_t s2 __asm__("r8") = (uint32_t)~mm[2];
        register uint32_t s3 __asm__("r10") = (uint32_t)~mm[3];
        BNN__MVE_ROWS4(in, w, nw, s0, s1, s2, s3);
        bits = (bits >> 1) | (s0 & 0x80000000u);
        bits = (bits >> 1) | (s1 & 0x80000000u);
        bits = (bits >> 1) | (s2 & 0x80000000u);
        bits = (bits >> 1) | (s3 & 0x80000000u);
    }
    for (const int32_t *end = max_mismatch + cnt; mm != end; ++mm) {
        register uint32_t s0 __asm__("r4") = (uint32_t)~mm[0];
        BNN__MVE_ROW1(in, w, nw, s0);
        bits = (bits >> 1) | (s0 & 0x80000000u);
    }
    return bits;
}

/* Popcount mode: p[j] = popcount(in ^ w_j), the third argument is the output.  A group's four
 * counts leave r4, r6, r8, r10 with one STM (ascending registers, so the order is p[0..3]). */
uint32_t bnn__dbt_mve_pop(const bnn_word_t *in, const bnn_word_t *w, const int32_t *out, uint32_t nw_cnt)
{
    const uint32_t nw = nw_cnt >> 5;
    const uint32_t cnt = (nw_cnt & 31u) + 1u;
    uint32_t *p = (uint32_t *)(uintptr_t)out, *p4 = p + (cnt & ~3u), *end = p + cnt;
    while (p != p4) {
        register uint32_t s0 __asm__("r4") = 0u;
        register uint32_t s1 __asm__("r6") = 0u;
        register uint32_t s2 __asm__("r8") = 0u;
        register uint32_t s3 __asm__("r10") = 0u;
        BNN__MVE_ROWS4(in, w, nw, s0, s1, s2, s3);
        __asm__ volatile("stmia %[p]!, {%[s0], %[s1], %[s2], %[s3]}"
                         : [p] "+r"(p)
                         : [s0] "r"(s0), [s1] "r"(s1), [s2] "r"(s2), [s3] "r"(s3)
                         : "memory");
    }
    for (; p != end; ++p) {
        register uint32_t s0 __asm__("r4") = 0u;
        BNN__MVE_ROW1(in, w, nw, s0);
        *p = s0;
    }
    return 0u;
}
#else
typedef int bnn_dense_mve_unused; /* ISO C: a translation unit is not empty */
#endif
