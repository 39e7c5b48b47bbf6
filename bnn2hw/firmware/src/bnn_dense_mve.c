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
 * Rows of nw <= 31 words (every 3x3 conv patch up to 96 channels, dense layers up to 992 inputs)
 * run with the rows in vector lanes instead, 8 rows per group (bnn__mve_lanes*, below): no tail
 * passes, 10 instructions per patch word and 8 rows.  The 16x16x32 stride-2 conv went from 0.108
 * to 0.085 instructions per binary MAC, the 256-256-256-10 MLP from 9,397 to 8,029 instructions
 * (benchmarks/results/mcu_kernels_m55.md).
 *
 * Cost note: the instruction counts are exact (QEMU); in cycles a byte gather is slower than a
 * contiguous load on the Cortex-M55 (gathers access memory element by element), so the cycle
 * gain is smaller than the instruction gain (bnn2hw/mcu/cycles.py: the M55 estimate charges a gather
 * 2 cycles, its upper end one cycle per element).
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
 * Bits mode of the 4-row core (the contract of bnn__dbt_mve for cnt rows of nw words): each
 * accumulator starts at ~M_j = -M_j - 1, so it ends as p_j - M_j - 1, negative iff p_j <= M_j;
 * its sign bit is the output bit, shifted in at bit 31.  Rows four at a time (sharing the input
 * vectors), then the last 1..3 one by one.
 */
static uint32_t rows4_bits(const bnn_word_t *in, const bnn_word_t *w, const int32_t *max_mismatch, uint32_t nw,
                           uint32_t cnt)
{
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

/* Popcount mode of the 4-row core: p[j] = popcount(in ^ w_j), j < cnt.  A group's four counts leave r4, r6, r8, r10 with one STM (ascending registers, so the order is p[0..3]). */
static void rows4_pop(const bnn_word_t *in, const bnn_word_t *w, uint32_t *p, uint32_t nw, uint32_t cnt)
{
    uint32_t *p4 = p + (cnt & ~3u), *end = p + cnt;
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
}

/*
 * Short rows (conv patches): rows in vector lanes.  The 4-row core above sums each row across the
 * lanes of its own vectors, so a row of nw words costs ceil(nw / 4) passes: a 3x3x32 patch (9 words)
 * runs 3 passes with 1 of 4 words live in the last one (0.108 instructions per binary MAC on the
 * 16x16x32 stride-2 conv of benchmarks/results/mcu_kernels.md).  Here lane l of a vector holds word k
 * of row l instead: per word k of the patch, for 8 rows,
 *   VLDRW patch word k broadcast to 4 lanes (vector-base gather, all 4 addresses equal, writeback)
 *   2 x (VLDRW gather of word k of 4 rows (lane addresses w_r + 4k, writeback), VEOR,
 *        VLDRB byte-table gather (popcounts of the 16 bytes), VADD.I8 into a byte accumulator)
 *   LE
 * 10 instructions for 8 x 32 binary MACs and no tail: any nw costs nw passes.  The byte
 * accumulators hold <= 8 nw <= 248 per byte for nw <= BNN__MVE_LANE_MAX_WORDS = 31 (no overflow).
 * Per 4 rows the end of the group folds the 4 bytes of each lane into the row's popcount p_r
 * (odd bytes: VSHR.U16 #8, even bytes: VBIC.I16 #0xff00, VADD.I16: 16-bit halves <= 496; then
 * x * 0x10001 >> 16 adds the two halves, exact because both are < 2^16; rows of <= 7 words: one
 * multiply, x * 0x01010101 >> 24) and, in bits mode, compares it with the popcount threshold M_r (VPT.S32 GE M, p; VADDVAT adds the lane weights 2^(24 + l) of the rows
 * with p_r <= M_r into the output word, which is shifted right by 8 per group first); popcount
 * mode stores the 8 counts.
 * After the group's nw passes every lane address has moved on by 4 nw bytes: the next group's
 * rows start 7 nw words further (VADD.I32 by 28 nw), the patch broadcast goes back by 4 nw.
 */
#define BNN__MVE_LANES_LOOP_ASM                                                                               \
    "vldrw.u32 q1, [%[tbl]]\n\t"            /* {0, 1, 2, 3} */                                               \
    BNN__MVE_LANES_LOOP_TAIL_ASM
#define BNN__MVE_LANES_LOOP_TAIL_ASM                                                                          \
    "vmul.i32 q1, q1, %[nwb]\n\t"           /* row offsets: r 4 nw bytes */                                  \
    "vadd.i32 q1, q1, %[w]\n\t"             /* q1: rows 0..3 */                                              \
    "lsl %[w], %[nwb], #2\n\t"                                                                               \
    "vadd.i32 q2, q1, %[w]\n\t"             /* q2: rows 4..7 */                                              \
    "rsb %[w], %[nwb], %[nwb], lsl #3\n\t"  /* 28 nw bytes: the group step */                                \
    "vdup.32 q0, %[x]\n\t"                  /* q0: the input word, 4 times */                                \
    "2:\n\t"                                                                                                  \
    "vmov.i32 q6, #0\n\t"                                                                                     \
    "vmov.i32 q7, #0\n\t"                                                                                     \
    "dls lr, %[nw]\n"                                                                                         \
    "1:\n\t"                                                                                                  \
    "vldrw.u32 q3, [q0, #4]!\n\t"                                                                             \
    "vldrw.u32 q4, [q1, #4]!\n\t"                                                                             \
    "vldrw.u32 q5, [q2, #4]!\n\t"                                                                             \
    "veor q4, q4, q3\n\t"                                                                                     \
    "veor q5, q5, q3\n\t"                                                                                     \
    "vldrb.u8 q3, [%[tab], q4]\n\t"                                                                           \
    "vadd.i8 q6, q6, q3\n\t"                                                                                  \
    "vldrb.u8 q4, [%[tab], q5]\n\t"                                                                           \
    "vadd.i8 q7, q7, q4\n\t"                                                                                  \
    "le lr, 1b\n\t"

/* the byte sums of each lane to its row's count, nw <= 31 (bytes <= 248): odd bytes + even bytes in
 * 16-bit halves (<= 496), then x * 0x10001 >> 16 adds the halves (k = 0x10001) */
#define BNN__MVE_LANES_FOLD16_ASM                                                                             \
    "vshr.u16 q3, q6, #8\n\t"                                                                                 \
    "vbic.i16 q6, #0xff00\n\t"                                                                                \
    "vadd.i16 q6, q6, q3\n\t"                                                                                 \
    "vmul.i32 q6, q6, %[k]\n\t"                                                                               \
    "vshr.u32 q6, q6, #16\n\t"              /* q6: p of rows 0..3 */                                         \
    "vshr.u16 q3, q7, #8\n\t"                                                                                 \
    "vbic.i16 q7, #0xff00\n\t"                                                                                \
    "vadd.i16 q7, q7, q3\n\t"                                                                                 \
    "vmul.i32 q7, q7, %[k]\n\t"                                                                               \
    "vshr.u32 q7, q7, #16\n\t"              /* q7: p of rows 4..7 */

/* nw <= 7 (bytes <= 56, a lane's 4 bytes sum to <= 224 < 256, no carry between bytes): x * 0x01010101
 * >> 24 adds them (k = 0x01010101) */
#define BNN__MVE_LANES_FOLD8_ASM                                                                              \
    "vmul.i32 q6, q6, %[k]\n\t"                                                                               \
    "vshr.u32 q6, q6, #24\n\t"                                                                                \
    "vmul.i32 q7, q7, %[k]\n\t"                                                                               \
    "vshr.u32 q7, q7, #24\n\t"

#define BNN__MVE_LANES_TAIL_ASM                                                                               \
    "vadd.i32 q1, q1, %[w]\n\t"             /* + 28 nw bytes: the next 8 rows */                             \
    "vadd.i32 q2, q2, %[w]\n\t"                                                                               \
    "vsub.i32 q0, q0, %[nwb]\n\t"           /* the input word 0 again */                                     \
    "subs %[g], %[g], #1\n\t"                                                                                 \
    "bne 2b\n"

/* bits mode: compare with M, add the weights of the rows with p <= M into bits (shifted by 8 first) */
#define BNN__MVE_LANES_BITS_ASM                                                                               \
    "vldrw.u32 q3, [%[m]], #32\n\t"         /* M of rows 0..3 */                                             \
    "vldrw.u32 q4, [%[tbl], #16]\n\t"       /* 2^24 .. 2^27 */                                               \
    "vldrw.u32 q5, [%[m], #-16]\n\t"        /* M of rows 4..7 */                                             \
    "lsr %[bits], %[bits], #8\n\t"                                                                            \
    "vpt.s32 ge, q3, q6\n\t"                                                                                  \
    "vaddvat.u32 %[bits], q4\n\t"                                                                             \
    "vldrw.u32 q4, [%[tbl], #32]\n\t"       /* 2^28 .. 2^31 */                                               \
    "vpt.s32 ge, q5, q7\n\t"                                                                                  \
    "vaddvat.u32 %[bits], q4\n\t"

/* popcount mode: store the 8 counts */
#define BNN__MVE_LANES_POP_ASM                                                                                \
    "vstrw.32 q6, [%[m]], #16\n\t"                                                                            \
    "vstrw.32 q7, [%[m]], #16\n\t"

/* {0, 1, 2, 3}, then the output bit of lane l of the first / second 4 rows of a group */
static const uint32_t bnn__mve_lane_tbl[12] __attribute__((aligned(16))) = {
    0u, 1u, 2u, 3u, 1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

/* The vector-base gathers are pre-indexed ([Qm, #4]!: load from Qm + 4, then Qm += 4), so the lane
 * addresses start one word before the rows and the input. */
#define BNN__MVE_LANES_OPERANDS(x, w, nw, kk)                                                                 \
    [x] "r"((uint32_t)(uintptr_t)(x) - 4u), [nw] "r"(nw), [nwb] "r"(4u * (nw)), [tab] "r"(bnn__mve_pop8),     \
        [tbl] "r"(bnn__mve_lane_tbl), [k] "r"(kk)

/* Bits of g >= 1 groups of 8 rows of 1 <= nw <= BNN__MVE_LANE_MAX_WORDS words (row r at w + r nw)
 * against x, popcount thresholds mm: row r at bit 32 - 8 g + r (the lower bits 0). */
static uint32_t lanes8_bits(const bnn_word_t *x, const bnn_word_t *w, const int32_t *mm, uint32_t nw, uint32_t g)
{
    register uint32_t bits __asm__("r4") = 0u; /* VADDVA encodes only even registers */
    uint32_t wr = (uint32_t)(uintptr_t)w - 4u;
    if (nw <= 7u) {
        __asm__ volatile(BNN__MVE_LANES_LOOP_ASM BNN__MVE_LANES_FOLD8_ASM BNN__MVE_LANES_BITS_ASM
                             BNN__MVE_LANES_TAIL_ASM
                         : [bits] "+r"(bits), [w] "+r"(wr), [m] "+r"(mm), [g] "+r"(g)
                         : BNN__MVE_LANES_OPERANDS(x, w, nw, 0x01010101u)
                         : "cc", BNN__MVE_CLOBBERS);
    } else {
        __asm__ volatile(BNN__MVE_LANES_LOOP_ASM BNN__MVE_LANES_FOLD16_ASM BNN__MVE_LANES_BITS_ASM
                             BNN__MVE_LANES_TAIL_ASM
                         : [bits] "+r"(bits), [w] "+r"(wr), [m] "+r"(mm), [g] "+r"(g)
                         : BNN__MVE_LANES_OPERANDS(x, w, nw, 0x10001u)
                         : "cc", BNN__MVE_CLOBBERS);
    }
    return bits;
}

/* p[r] = popcount(x ^ w_r) of g >= 1 groups of 8 rows of 1 <= nw <= BNN__MVE_LANE_MAX_WORDS words. */
static void lanes8_pop(const bnn_word_t *x, const bnn_word_t *w, uint32_t *p, uint32_t nw, uint32_t g)
{
    uint32_t wr = (uint32_t)(uintptr_t)w - 4u;
    if (nw <= 7u) {
        __asm__ volatile(BNN__MVE_LANES_LOOP_ASM BNN__MVE_LANES_FOLD8_ASM BNN__MVE_LANES_POP_ASM
                             BNN__MVE_LANES_TAIL_ASM
                         : [w] "+r"(wr), [m] "+r"(p), [g] "+r"(g)
                         : BNN__MVE_LANES_OPERANDS(x, w, nw, 0x01010101u)
                         : "cc", BNN__MVE_CLOBBERS);
    } else {
        __asm__ volatile(BNN__MVE_LANES_LOOP_ASM BNN__MVE_LANES_FOLD16_ASM BNN__MVE_LANES_POP_ASM
                             BNN__MVE_LANES_TAIL_ASM
                         : [w] "+r"(wr), [m] "+r"(p), [g] "+r"(g)
                         : BNN__MVE_LANES_OPERANDS(x, w, nw, 0x10001u)
                         : "cc", BNN__MVE_CLOBBERS);
    }
}

/*
 * Groups of 8 rows that take the lanes: the 4-row core runs a row of nw words in ceil(nw / 4)
 * passes of 18 instructions per 4 rows (4.5 per word and row when nw % 4 == 0, more with a
 * partial last vector), the lanes in nw passes of 10 per 8 rows (1.25 per word and row, no tail)
 * and about 25 per group of 8 rows around them.  Measured (QEMU counts, bench_mcu_conv_m55.py,
 * W-W-W-10 MLPs on the M55): the lanes are cheaper at every row length they allow, also at
 * nw % 4 == 0 (W = 256: 8,029 instructions against 9,675 with the 4-row core; W = 512: 26,146
 * against 28,424); the byte accumulators cap nw at BNN__MVE_LANE_MAX_WORDS (longer rows: the
 * 4-row core, whose tail is then at most 3 of >= 32 words).
 */
#define BNN__MVE_LANE_MAX_WORDS 31u
static uint32_t lane_groups(uint32_t nw, uint32_t cnt)
{
    return nw <= BNN__MVE_LANE_MAX_WORDS ? cnt >> 3 : 0u;
}

/*
 * The row kernels of the Helium build (contract of bnn__dbt2_<R><C>0, bnn_bits.h): cnt <= 32
 * rows of nw words; rows in lanes for whole groups of 8 rows where that is cheaper
 * (lane_groups), the 4-row core for the rest.  Bits mode: out bit of row j at 32 - cnt + j.
 */
uint32_t bnn__dbt_mve(const bnn_word_t *in, const bnn_word_t *w, const int32_t *max_mismatch, uint32_t nw_cnt)
{
    const uint32_t nw = nw_cnt >> 5;
    const uint32_t cnt = (nw_cnt & 31u) + 1u;
    const uint32_t g = lane_groups(nw, cnt);
    if (g == 0u) {
        return rows4_bits(in, w, max_mismatch, nw, cnt);
    }
    const uint32_t r8 = 8u * g, rest = cnt - r8;
    uint32_t bits = lanes8_bits(in, w, max_mismatch, nw, g); /* rows 0..r8-1 at bits 32 - r8 + j */
    if (rest != 0u) { /* rows r8.. at bits 32 - rest + j: below them */
        bits = (bits >> rest) | rows4_bits(in, w + r8 * nw, max_mismatch + r8, nw, rest);
    }
    return bits;
}

/* Popcount mode (contract of bnn__dbt2_<R><C>1): p[j] = popcount(in ^ w_j), the third argument
 * is the output. */
uint32_t bnn__dbt_mve_pop(const bnn_word_t *in, const bnn_word_t *w, const int32_t *out, uint32_t nw_cnt)
{
    const uint32_t nw = nw_cnt >> 5;
    const uint32_t cnt = (nw_cnt & 31u) + 1u;
    const uint32_t g = lane_groups(nw, cnt);
    uint32_t *p = (uint32_t *)(uintptr_t)out;
    if (g != 0u) {
        lanes8_pop(in, w, p, nw, g);
    }
    if (cnt != 8u * g) {
        rows4_pop(in, w + 8u * g * nw, p + 8u * g, nw, cnt - 8u * g);
    }
    return 0u;
}

/*
 * Lanes-only row kernels for a known row class (bnn__dbt2_pick with a constant nw, i.e. every
 * dense layer of generated code; issue 11, flash): bits and popcount mode share one body (the
 * popcount entry sets bit 31 of nw_cnt, as the Thumb-2 mode-2 kernels do; nw < 2^26), whole
 * groups of 8 rows in vector lanes with one fold variant, the cnt % 8 rows left one by one
 * (BNN__MVE_ROW1: the row across the lanes, DLSTP/LETP).  Same contract as bnn__dbt_mve /
 * bnn__dbt_mve_pop for 1 <= nw <= 31 (the _l8 pair: nw <= 7 only).  The 4-row core and the other
 * fold are not linked: bnn__dbt_mve + _pop + rows4_bits (1,404 B) -> one 364 B body and an 8 B
 * popcount entry; the 256-256-256-10 MLP's library flash 20,744 -> 19,688 B = 1.0499x its lower
 * bound, 8,110 -> 8,070 instructions (mcu_kernels_m55.md).  Per
 * group one instruction more than lanes8_bits / lanes8_pop (CBZ on the mode); 1..7 rows left run
 * one by one (rows4_* runs 1..3 rows so, 4..7 as one 4-row pass and 0..3 rows).
 */
#define BNN__MVE_LANES_MODE_ASM                                                                               \
    "cbz %[pm], 3f\n\t"                                                                                     \
    BNN__MVE_LANES_POP_ASM                                                                                    \
    "b 4f\n"                                                                                                 \
    "3:\n\t"                                                                                                \
    BNN__MVE_LANES_BITS_ASM                                                                                   \
    "4:\n\t"
/* Rows left (r >= 1 rows from w, M or outputs from m): per row the count s across the lanes
 * (DLSTP/LETP, as BNN__MVE_ROW1), starting at ~M (bits mode, pm = 0: s = p - M - 1, its sign is
 * the bit, shifted in at bit 31 by LSLS + RRX) or 0 (popcount mode: s = p, stored at m). */
#define BNN__MVE_REST_ASM                                                                                     \
    "5:\n\t"                                                                                                \
    "ldr %[s], [%[m]], #4\n\t"                                                                               \
    "mvns %[s], %[s]\n\t"                                                                                   \
    "cbz %[pm], 6f\n\t"                                                                                     \
    "movs %[s], #0\n"                                                                                        \
    "6:\n\t"                                                                                                \
    "mov %[pi], %[in]\n\t"                                                                                  \
    "mov %[w0], %[w]\n\t"                                                                                   \
    "add %[w], %[w], %[n], lsl #2\n\t"                                                                      \
    "dlstp.32 lr, %[n]\n"                                                                                    \
    "1:\n\t"                                                                                                \
    "vldrw.u32 q0, [%[pi]], #16\n\t"                                                                        \
    "vldrw.u32 q1, [%[w0]], #16\n\t"                                                                        \
    "veor q1, q1, q0\n\t"                                                                                   \
    "vldrb.u8 q2, [%[tab], q1]\n\t"                                                                         \
    "vaddva.u8 %[s], q2\n\t"                                                                                \
    "letp lr, 1b\n\t"                                                                                       \
    "cbz %[pm], 7f\n\t"                                                                                     \
    "str %[s], [%[m], #-4]\n"                                                                                \
    "7:\n\t"                                                                                                \
    "lsls %[s], %[s], #1\n\t"                                                                               \
    "rrx %[bits], %[bits]\n\t"                                                                              \
    "subs %[r], %[r], #1\n\t"                                                                               \
    "bne 5b\n"
/* The lanes loop with the row offsets {0, 1, 2, 3} from VIDUP on bits (0 on entry; VIDUP writes 4
 * back, so it is cleared again) and the lane weights at tbl[0..7] (bnn__mve_lane_w): 16 bytes of
 * table less than BNN__MVE_LANES_LOOP_ASM. */
#define BNN__MVE_LANES_LOOP_VIDUP_ASM                                                                         \
    "vidup.u32 q1, %[bits], #1\n\t"                                                                         \
    "movs %[bits], #0\n\t"                                                                                  \
    BNN__MVE_LANES_LOOP_TAIL_ASM
#define BNN__MVE_LANES_MODE_W_ASM                                                                             \
    "cbz %[pm], 3f\n\t"                                                                                     \
    BNN__MVE_LANES_POP_ASM                                                                                    \
    "b 4f\n"                                                                                                 \
    "3:\n\t"                                                                                                \
    "vldrw.u32 q3, [%[m]], #32\n\t"                                                                         \
    "vldrw.u32 q4, [%[tbl]]\n\t"                                                                            \
    "vldrw.u32 q5, [%[m], #-16]\n\t"                                                                        \
    "lsr %[bits], %[bits], #8\n\t"                                                                          \
    "vpt.s32 ge, q3, q6\n\t"                                                                                \
    "vaddvat.u32 %[bits], q4\n\t"                                                                           \
    "vldrw.u32 q4, [%[tbl], #16]\n\t"                                                                       \
    "vpt.s32 ge, q5, q7\n\t"                                                                                \
    "vaddvat.u32 %[bits], q4\n\t"                                                                           \
    "4:\n\t"
/* GCC: the C around the asm compiled for size (measured: 16 B less and 16 instructions fewer on
 * the 256-256-256-10 MLP than -O2's spills); other compilers: their own -O level */
#if defined(__GNUC__) && !defined(__clang__)
#define BNN__MVE_SMALL __attribute__((optimize("Os")))
#else
#define BNN__MVE_SMALL
#endif
static const uint32_t bnn__mve_lane_w[8] __attribute__((aligned(16))) = {
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};
#define BNN__MVE_LANES_ONLY(name, pop_name, fold, kk)                                                         \
    BNN__MVE_SMALL uint32_t name(const bnn_word_t *in, const bnn_word_t *w, const int32_t *mm, uint32_t nw_cnt) \
    {                                                                                                         \
        const uint32_t pm = nw_cnt >> 31, nw = (nw_cnt << 1) >> 6, cnt = (nw_cnt & 31u) + 1u, g = cnt >> 3; \
        register uint32_t bits __asm__("r4") = 0u;                                                           \
        if (g != 0u) {                                                                                        \
            uint32_t wr = (uint32_t)(uintptr_t)w - 4u;                                                        \
            const int32_t *m = mm;                                                                            \
            uint32_t gg = g;                                                                                  \
            const bnn_word_t *x = in; /* the operand names of BNN__MVE_LANES_OPERANDS */                       \
            __asm__ volatile(BNN__MVE_LANES_LOOP_VIDUP_ASM fold BNN__MVE_LANES_MODE_W_ASM                     \
                                 BNN__MVE_LANES_TAIL_ASM                                                      \
                             : [bits] "+r"(bits), [w] "+r"(wr), [m] "+r"(m), [g] "+r"(gg)                    \
                             : [x] "r"((uint32_t)(uintptr_t)x - 4u), [nw] "r"(nw), [nwb] "r"(4u * nw),         \
                               [tab] "r"(bnn__mve_pop8), [tbl] "r"(bnn__mve_lane_w), [k] "r"(kk), [pm] "l"(pm)\
                             : "cc", BNN__MVE_CLOBBERS);                                                      \
        }                                                                                                     \
        /* rows left, one by one (BNN__MVE_REST_ASM) */                                                     \
        const uint32_t rest = cnt - 8u * g;                                                                   \
        if (rest != 0u) {                                                                                     \
            const bnn_word_t *wj = w + 8u * g * nw, *pi_, *w0_;                                               \
            const int32_t *mj = mm + 8u * g;                                                                  \
            uint32_t r = rest;                                                                                \
            register uint32_t s0 __asm__("r6");                                                              \
            __asm__ volatile(BNN__MVE_REST_ASM                                                                \
                             : [bits] "+r"(bits), [w] "+r"(wj), [m] "+r"(mj), [r] "+r"(r), [s] "=&r"(s0),    \
                               [pi] "=&r"(pi_), [w0] "=&r"(w0_)                                               \
                             : [in] "r"(in), [n] "r"(nw), [tab] "r"(bnn__mve_pop8), [pm] "l"(pm)              \
                             : "cc", BNN__MVE_CLOBBERS);                                                      \
        }                                                                                                     \
        return bits;                                                                                          \
    }                                                                                                         \
    uint32_t pop_name(const bnn_word_t *in, const bnn_word_t *w, const int32_t *out, uint32_t nw_cnt)        \
    {                                                                                                         \
        return name(in, w, out, nw_cnt | 0x80000000u);                                                       \
    }
BNN__MVE_LANES_ONLY(bnn__dbt_mve_l16, bnn__dbt_mve_l16_pop, BNN__MVE_LANES_FOLD16_ASM, 0x10001u)
BNN__MVE_LANES_ONLY(bnn__dbt_mve_l8, bnn__dbt_mve_l8_pop, BNN__MVE_LANES_FOLD8_ASM, 0x01010101u)
#else
typedef int bnn_dense_mve_unused; /* ISO C: a translation unit is not empty */
#endif
