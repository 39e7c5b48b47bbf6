/* SPDX-License-Identifier: MIT */
/*
 * bnn_dense_mve.c -- binary dense rows with Helium (M-profile Vector Extension, Cortex-M55):
 * the same contract as the Thumb-2 row kernels (bnn_bits.h, bnn__dbt2_*), used by
 * bnn_dense_bits / bnn_dense_acc / bnn_conv_bits when BNN_MVE is set and the row has at
 * least BNN_MVE_MIN_WORDS words (bnn__dbt2_pick; shorter rows run the Thumb-2 kernels).
 *
 * MVE has no vector popcount (no VCNT), but it has byte gathers: VLDRB.U8 Qd, [Rn, Qm] loads
 * 16 bytes Rn[Qm[i]] at once, so a 256-entry byte table turns 16 byte lanes of x into their
 * 16 popcounts in one instruction.  Per 128-bit vector (4 words) of one row the work is
 *   VLDRW w, VEOR, VLDRB gather (popcounts), VADDVA.U8 (accumulate into a scalar)
 * four instructions for 128 binary MACs, and the input vector is loaded once per group of
 * four rows (rows j..j+3 share it): 17 instructions per vector and four rows.
 *
 * Row lengths that are not a multiple of 4 words end with one tail-predicated vector
 * (VCTP.32: inactive lanes load as 0, 0 ^ 0 = 0 and table[0] = 0, so they add nothing); the
 * whole vectors run in a loop of their own without predication.  Rows are taken four at a
 * time, then two, then one (cnt <= 32 rows per call).  Counts of one row stay below 2^32
 * (nw < 2^27 words), so the scalar accumulators cannot overflow.
 *
 * Cost note: the instruction counts are exact (QEMU); in cycles a byte gather is slower than a
 * contiguous load on the Cortex-M55 (gathers access memory element by element), so the cycle
 * gain is smaller than the instruction gain (no cycle model of the M55 exists in bnn2hw).
 */
#include "bnn_bits.h"

#if BNN_MVE
#include <arm_mve.h>

/* popcount of every byte value (the table the gathers index) */
#define BNN__P2(n) n, n + 1, n + 1, n + 2
#define BNN__P4(n) BNN__P2(n), BNN__P2(n + 1), BNN__P2(n + 1), BNN__P2(n + 2)
#define BNN__P6(n) BNN__P4(n), BNN__P4(n + 1), BNN__P4(n + 1), BNN__P4(n + 2)
static const uint8_t bnn__mve_pop8[256] __attribute__((aligned(16))) = {BNN__P6(0), BNN__P6(1), BNN__P6(1),
                                                                       BNN__P6(2)};

/*
 * The loop over one row's vectors, four rows sharing each input vector (the 4-row core):
 * a tail-predicated low-overhead loop (DLSTP.32 / LETP: LR counts words, the last pass
 * predicates the lanes past nw off, so any nw >= 1 runs without a scalar tail).  Per pass
 * 18 instructions: VLDRW in, 4 x (VLDRW w_r, VEOR, VLDRB gather, VADDVA.U8), LETP.
 * VADDVA encodes only even accumulator registers, hence the fixed r4, r6, r8, r10.
 * Each s_r enters with its initial value and leaves with s_r + popcount(in ^ w_r).
 */
#define BNN__MVE_ROW4_ASM                                                                                     \
    "dlstp.32 lr, %[n]\n"                                                                                     \
    "1:\n\t"                                                                                                  \
    "vldrw.u32 q0, [%[in]], #16\n\t"                                                                          \
    "vldrw.u32 q1, [%[w0]], #16\n\t"                                                                          \
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
    "letp lr, 1b\n"

/* One row: 5 instructions per pass (VLDRW in, VLDRW w, VEOR, VLDRB gather, VADDVA) + LETP. */
#define BNN__MVE_ROW1_ASM                                                                                     \
    "dlstp.32 lr, %[n]\n"                                                                                     \
    "1:\n\t"                                                                                                  \
    "vldrw.u32 q0, [%[in]], #16\n\t"                                                                          \
    "vldrw.u32 q1, [%[w0]], #16\n\t"                                                                          \
    "veor q1, q1, q0\n\t"                                                                                     \
    "vldrb.u8 q2, [%[tab], q1]\n\t"                                                                           \
    "vaddva.u8 %[s0], q2\n\t"                                                                                 \
    "letp lr, 1b\n"

#define BNN__MVE_CLOBBERS "lr", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", \
                          "d11", "d12", "d13", "d14", "d15"

/* s0..s3 += popcount(in ^ w_r) for the 4 rows w_r = w + r nw (the 4-row core in place). */
#define BNN__MVE_ROWS4(in, w, nw, s0, s1, s2, s3)                                                            \
    do {                                                                                                      \
        const bnn_word_t *pi_ = (in), *w0_ = (w), *w1_ = w0_ + (nw), *w2_ = w1_ + (nw), *w3_ = w2_ + (nw);    \
        __asm__ volatile(BNN__MVE_ROW4_ASM                                                                    \
                         : [in] "+r"(pi_), [w0] "+r"(w0_), [w1] "+r"(w1_), [w2] "+r"(w2_), [w3] "+r"(w3_),    \
                           [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3)                         \
                         : [n] "r"(nw), [tab] "r"(bnn__mve_pop8)                                              \
                         : BNN__MVE_CLOBBERS);                                                                \
    } while (0)

/* s0 += popcount(in ^ w) of one row. */
#define BNN__MVE_ROW1(in, w, nw, s0)                                                                          \
    do {                                                                                                      \
        const bnn_word_t *pi_ = (in), *w0_ = (w);                                                             \
        __asm__ volatile(BNN__MVE_ROW1_ASM                                                                    \
                         : [in] "+r"(pi_), [w0] "+r"(w0_), [s0] "+r"(s0)                                      \
                         : [n] "r"(nw), [tab] "r"(bnn__mve_pop8)                                              \
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
    for (; mm != mm4; mm += 4, w += 4u * nw) {
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
    for (const int32_t *end = max_mismatch + cnt; mm != end; ++mm, w += nw) {
        register uint32_t s0 __asm__("r4") = (uint32_t)~mm[0];
        BNN__MVE_ROW1(in, w, nw, s0);
        bits = (bits >> 1) | (s0 & 0x80000000u);
    }
    return bits;
}

/* Popcount mode: p[j] = popcount(in ^ w_j), the third argument is the output. */
uint32_t bnn__dbt_mve_pop(const bnn_word_t *in, const bnn_word_t *w, const int32_t *out, uint32_t nw_cnt)
{
    const uint32_t nw = nw_cnt >> 5;
    const uint32_t cnt = (nw_cnt & 31u) + 1u;
    uint32_t *p = (uint32_t *)(uintptr_t)out, *p4 = p + (cnt & ~3u), *end = p + cnt;
    for (; p != p4; p += 4, w += 4u * nw) {
        register uint32_t s0 __asm__("r4") = 0u;
        register uint32_t s1 __asm__("r6") = 0u;
        register uint32_t s2 __asm__("r8") = 0u;
        register uint32_t s3 __asm__("r10") = 0u;
        BNN__MVE_ROWS4(in, w, nw, s0, s1, s2, s3);
        p[0] = s0;
        p[1] = s1;
        p[2] = s2;
        p[3] = s3;
    }
    for (; p != end; ++p, w += nw) {
        register uint32_t s0 __asm__("r4") = 0u;
        BNN__MVE_ROW1(in, w, nw, s0);
        *p = s0;
    }
    return 0u;
}
#else
typedef int bnn_dense_mve_unused; /* ISO C: a translation unit is not empty */
#endif
