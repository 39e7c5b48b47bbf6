/* SPDX-License-Identifier: MIT */
/*
 * bnn_vcols.h -- column-sliced ("vertical") binary popcounts: 32 output channels side by side
 * in the 32 bits of one word, counted with bit-sliced (carry-save) counters.
 *
 * Why: a row kernel (bnn_bits.h) popcounts each weight row on its own, so every row pays a
 * horizontal reduction, and short rows (a few words) are dominated by it.  Here a group of 32
 * rows is stored by columns, and one pass over the input's columns counts all 32 rows at once;
 * the result stays bit-sliced and the threshold compare is bit-sliced too, so the output word
 * of 32 packed activations falls out directly.
 *
 * Column layout of one group of 32 rows (outputs o0 .. o0 + 31; rows past n_out are 0 bits):
 *   col[i] bit r = weight bit of row o0 + r at input i          (i < K)
 *
 * Counting only half the columns.  For an input x of K bits let S1 = {i : x_i = 1},
 * S0 = {i < K : x_i = 0}, n1 = |S1|, C_r = sum_i w_ri (known at generation time) and
 * Q1_r = sum_{i in S1} w_ri, Q0_r = sum_{i in S0} w_ri = C_r - Q1_r.  Then (bnn_bits.h: p is the
 * mismatch count)
 *   p_r = popcount(x ^ w_r) = n1 + C_r - 2 Q1_r = 2 Q0_r + n1 - C_r,
 * so a layer needs the vertical count over one of S0, S1 only: the smaller one, at most K/2
 * columns for ANY input (bnn_vc_select).
 *
 * Bit-sliced counts.  A count Q_r (r = 0..31) over nq planes: bit r of q[j] = bit j of Q_r.
 * A threshold T_r over nt planes in two's complement: bit r of t[j] = bit j of T_r, t[nt - 1]
 * is the sign plane.
 */
#ifndef BNN_VCOLS_H
#define BNN_VCOLS_H

#include "bnn_bits.h"

/* Most planes a count or threshold may have (counts up to 2^24 - 1). */
#define BNN_VC_MAX_PLANES 24u

/* One run of columns to count: the columns base[idx[k]] for k < m (idx are word indices). */
typedef struct {
    const bnn_word_t *base;
    const uint32_t *idx;
    uint32_t m;
} bnn_vc_seg_t;

/*
 * The index list of the smaller of S1 and S0 of x (K = k bits, padding bits of x ignored):
 * S1 when n1 <= k - n1, else S0.  Writes the chosen set's indices (ascending) to idx and n1 to
 * *n1; returns m = the number of indices.  The caller tells which set it got by the same rule (S1
 * iff *n1 <= k - *n1).  idx needs room for k / 2 + 1 entries: the fast variant may write idx[m]
 * (a scratch value past the list).
 * Fast variant on ARMv7-M / ARMv8-M mainline: the count n1 by SWAR (with USADA8 summing the byte
 * counts where the DSP extension has it), RBIT once per word, then two indices per round of CLZ,
 * clear the bit, add the word's base, one STRD for both: 5 instructions per index + ~3 per word.
 */
uint32_t bnn_vc_select_ref(const bnn_word_t *x, uint32_t k, uint32_t *idx, uint32_t *n1);
uint32_t bnn_vc_select(const bnn_word_t *x, uint32_t k, uint32_t *idx, uint32_t *n1);

/*
 * Adds the columns of the nseg runs into the bit-sliced counts q[0 .. nq - 1] (Q_r += the
 * number of listed columns with bit r set).  q holds the running counts: zero it to start a
 * count, or start from per-lane offsets (bnn_dense_vbits and bnn_conv_vc_bits fold their
 * thresholds in that way).  The caller guarantees every Q_r, start value included, stays below 2^nq (nq <= BNN_VC_MAX_PLANES).  The fast variant relies on that bound: a
 * carry never leaves plane nq - 1, so it reads and writes q[0 .. max(nq, 4) - 1] only (q must
 * have room for 4 planes; the bound keeps planes nq .. 3 zero).  Order of idx is free.
 *
 * Fast variant (Thumb-2, ARMv7-M / ARMv8-M mainline): Harley-Seal over blocks of 16 columns.
 * The planes 1, 2, 4, 8 of the running count live in registers (ones, twos, fours, eights);
 * CSA(h, l, a, b) = (l ^ a ^ b, majority) in 5 ALU ops folds two new columns into a plane and
 * hands its carry word h to the next one; 15 CSAs per 16 columns and the sixteens word
 * rippled into q[4 ..] (stops at the first plane without carry).  Per column: 1/4 LDM (indices),
 * 1 LDR (column), 75/16 ALU, the ripple share.  Columns past the last whole block: a ripple
 * in C.  Stack: 40 bytes.
 */
void bnn_vc_count_ref(const bnn_vc_seg_t *seg, uint32_t nseg, bnn_word_t *q, uint32_t nq);
void bnn_vc_count(const bnn_vc_seg_t *seg, uint32_t nseg, bnn_word_t *q, uint32_t nq);

/* The blocks of bnn_vc_count: adds the columns base[idx[k]] for idx <= idx + k < end, (end - idx)
 * a multiple of 16, into q (room for 4 planes; same bound on Q as bnn_vc_count). */
void bnn_vc_count16(const bnn_word_t *base, const uint32_t *idx, const uint32_t *end, bnn_word_t *q);

/* No column added to the start values (bnn_vc_group_job_t.npcol; column 0 cannot be the added one). */
#define BNN_VC_NO_COL 0u

/*
 * The groups of 32 outputs of a column-sliced dense layer in one call (bnn_dense_vbits): for each
 * group g < ngroups, with columns base_g = base + g * cstride and start values v_g = v + g * nv,
 * the counts start at per-lane values V (nv planes at v_g, ready-made in flash), plus column
 * base_g[npcol] once when npcol != BNN_VC_NO_COL (the parity column of bnn_dense_vbits: added to the
 * start values in registers, ~10 instructions, where listing it would cost a whole block of 16),
 * the listed columns are added (bnn_vc_count16's blocks: end - idx a multiple of 16) and the result
 * is compared with one constant c, the same for every group of the call:
 *   out[g] = ~nflip ^ (the word whose bit r is (V_r + NP_r + #{k : bit r of base_g[idx[k]]} >= c)).
 * Contract: 4 <= nv <= BNN_VC_MAX_PLANES, nv <= max(nq, 4), nq <= BNN_VC_MAX_PLANES and every count,
 * start value and npcol column included, below 2^nq; c any uint32; ngroups >= 1.  The per-layer
 * constants are precomputed (bnn_vc_shape_t, BNN_VC_SHAPE: a static const initializer in generated
 * code) so a call only sets idx, end, c, nflip, npcol.
 * Fast variant (Thumb-2): one assembly routine for all groups, the planes 1, 2, 4, 8 and 16 in
 * registers from the start values' LDM to the compare (no call per group, no store and reload of
 * q; the plane 16 in a register halves the ripple into memory after each block of 16 columns): per
 * group about 4 instructions per start-value plane past 4, 4 per register plane and 8 per memory
 * plane of the compare, ~25 for the group loop.  Stack: 132 bytes.
 * Elsewhere: a loop over the portable bnn__vc_groups_c (start values copied, bnn_vc_count16,
 * bnn_vc_ge_const).
 */
typedef struct {
    uint32_t nz;      /* max(nq, 4): planes counted and compared */
    uint32_t ncopy;   /* nv - 4: start-value planes past the first four */
    uint32_t ngroups; /* groups of 32 outputs, >= 1 */
    uint32_t cbytes;  /* 4 cstride: bytes from one group's columns to the next's */
} bnn_vc_shape_t;

/* bnn_vc_shape_t of nq count planes, nv start-value planes, ngroups groups, cstride words per group's
 * columns (a constant expression for constant arguments). */
#define BNN_VC_SHAPE(nq, nv, ngroups, cstride)                                                              \
    {((nq) > 4u ? (nq) : 4u), (nv) - 4u, (ngroups), 4u * (cstride)}

typedef struct {
    const uint32_t *idx;  /* the listed column indices ... */
    const uint32_t *end;  /* ... up to here (a multiple of 16 of them) */
    uint32_t c;           /* the compare constant */
    bnn_vc_shape_t shape; /* the layer's constants */
    bnn_word_t nflip;     /* ~(the word XORed into every output word) */
    uint32_t npcol;       /* a column index >= 1 added to every group's start values, or BNN_VC_NO_COL */
} bnn_vc_group_job_t;

void bnn_vc_groups_ref(const bnn_word_t *base, const bnn_vc_group_job_t *job, const bnn_word_t *v, bnn_word_t *out);
void bnn_vc_groups(const bnn_word_t *base, const bnn_vc_group_job_t *job, const bnn_word_t *v, bnn_word_t *out);

/*
 * Bit-sliced compare: returns the word whose bit r is (2 Q_r >= T_r + bias), Q_r unsigned over
 * nq planes, T_r signed over nt planes (1 <= nt <= BNN_VC_MAX_PLANES), bias any int32 with
 * |T_r + bias| < 2^30.
 * Fast variant: one pass from plane 0 up: U = T + bias (bias is the same in every lane, so its
 * bit j is a whole word of 0s or 1s: 2 ops per plane) and the borrow of 2 Q - U (4 ops per
 * plane); the answer is NOT the sign of 2 Q - U.  L = max(nq + 2, max(nt, bias planes) + 1)
 * planes.
 */
bnn_word_t bnn_vc_ge_ref(const bnn_word_t *q, uint32_t nq, const bnn_word_t *t, uint32_t nt, int32_t bias);
bnn_word_t bnn_vc_ge(const bnn_word_t *q, uint32_t nq, const bnn_word_t *t, uint32_t nt, int32_t bias);

/*
 * Bit-sliced compare with one constant: the word whose bit r is (Q_r >= c), Q_r unsigned over nq
 * planes (nq <= BNN_VC_MAX_PLANES).  Fast variant: the borrow of Q - c from plane 0 up, one ALU op
 * per plane (c's bit j set: borrow |= ~q[j], else borrow &= ~q[j]); no lane reaches c >= 2^nq.
 * With counts started at per-lane values V_r (bnn_dense_vbits), comparing with one constant
 * replaces a per-lane threshold compare.
 */
bnn_word_t bnn_vc_ge_const_ref(const bnn_word_t *q, uint32_t nq, uint32_t c);
bnn_word_t bnn_vc_ge_const(const bnn_word_t *q, uint32_t nq, uint32_t c);

#if !BNN_THUMB2_ASM
/* Portable bnn_vc_groups (Cortex-M0, host): inlined into its caller (a call per group costs ~13
 * instructions on Cortex-M0); the out-of-line function in bnn_vcols.c calls it too. */
BNN_INLINE void bnn__vc_groups_c(const bnn_word_t *base, const bnn_vc_group_job_t *job, const bnn_word_t *v,
                                 bnn_word_t *out)
{
    const uint32_t nz = job->shape.nz, nv = job->shape.ncopy + 4u, cstride = job->shape.cbytes / 4u;
    const bnn_word_t flip = ~job->nflip;
    const bnn_word_t *const out_end = out + job->shape.ngroups;
    do { /* ngroups >= 1; the groups' start values follow each other */
        bnn_word_t q[BNN_VC_MAX_PLANES];
        uint32_t j = 0;
        for (; j < nv; ++j) {
            q[j] = *v++;
        }
        for (; j < nz; ++j) {
            q[j] = 0;
        }
        if (job->npcol != BNN_VC_NO_COL) { /* the extra column: a ripple into the start values */
            bnn_word_t c = base[job->npcol];
            for (j = 0; c && j < nz; ++j) {
                const bnn_word_t old = q[j];
                q[j] = old ^ c;
                c &= old;
            }
        }
        bnn_vc_count16(base, job->idx, job->end, q);
        *out++ = bnn_vc_ge_const(q, nz, job->c) ^ flip; /* planes nq .. nz - 1 are 0 */
        base += cstride;
    } while (out != out_end);
}
#define bnn_vc_groups(base, job, v, out) bnn__vc_groups_c(base, job, v, out)
#endif

#endif /* BNN_VCOLS_H */
