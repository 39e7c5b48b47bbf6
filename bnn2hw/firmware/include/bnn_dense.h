/* SPDX-License-Identifier: MIT */
/*
 * bnn_dense.h -- binary fully-connected layer (xnor-popcount), see bnn_bits.h.
 *
 * in:  packed input bits, BNN_WORDS(n_in) words (padding bits 0).
 * w:   packed weight rows, row-major [n_out][BNN_WORDS(n_in)] (padding bits 0).
 * Per output o:  p_o = popcount(in xor w_o),  acc_o = n_in - 2 p_o.
 *
 * bnn_dense_bits*: out bit o = (p_o <= max_mismatch[o])   (== acc_o >= thr_o, with
 *                  max_mismatch = bnn_max_mismatch(n_in, thr)); out has BNN_WORDS(n_out)
 *                  words, padding bits 0.
 * bnn_dense_acc*:  acc[o] = n_in - 2 p_o (int32, for the last layer).
 */
#ifndef BNN_DENSE_H
#define BNN_DENSE_H

#include "bnn_bits.h"
#include "bnn_vcols.h"

typedef struct {
    uint32_t n_in;  /* K: number of +-1 inputs */
    uint32_t n_out; /* number of outputs (weight rows) */
} bnn_dense_params_t;

void bnn_dense_bits_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                        const int32_t *max_mismatch, bnn_word_t *out);
void(bnn_dense_bits)(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                     const int32_t *max_mismatch, bnn_word_t *out);

/* The column-sliced kernels are the default on the cores where they beat the row kernels:
 * ARMv7-M / ARMv8-M mainline without Helium (M3, M4, M7, M33: Thumb-2 assembly), ARMv6-M (M0:
 * portable C, still ~1.5-1.9x fewer instructions than the Thumb-1 row kernels) and the host, with
 * the default (multi) popcount strategy.  Cortex-M55 keeps its Helium row kernels.
 * -DBNN_DENSE_VCOLS=0 keeps the row kernels everywhere. */
#ifndef BNN_DENSE_VCOLS
#if BNN_POPCOUNT == BNN_POPCOUNT_MULTI && ((BNN_THUMB2_ASM && !BNN_MVE) || BNN_M0_ASM || !defined(__arm__))
#define BNN_DENSE_VCOLS 1
#else
#define BNN_DENSE_VCOLS 0
#endif
#endif

/* BNN_DENSE_SHARED_ROWS (define it to 1 before including this header; the code generator does
 * when it saves flash, as (!BNN_DENSE_VCOLS) when only column-sliced hidden layers share the
 * logits' row class: with BNN_DENSE_VCOLS the logits' kernel is the only row kernel linked, and
 * sharing would only cost instructions): the dense layers of this translation unit use the row kernels of modes
 * 3 (bits) and 2 (popcounts), one body for both, instead of modes 0 and 1 (bnn_bits.h). */
#ifndef BNN_DENSE_SHARED_ROWS
#define BNN_DENSE_SHARED_ROWS 0
#endif

#if BNN_MULTI_ASM
/*
 * Thumb-2: bnn_dense_bits is this inline dispatcher (the out-of-line function of the same
 * name in bnn_dense.c calls it too).  In generated code the params struct is a static const
 * with constant fields, so the compiler folds bnn__dbt2_pick() to the one assembly variant
 * the layer needs and the linker (--gc-sections) keeps only that one.
 */
BNN_INLINE void bnn__dense_bits_t2(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                   const int32_t *max_mismatch, bnn_word_t *out)
{
    const uint32_t nw = BNN_WORDS(p->n_in);
    const bnn__dbt2_fn fn = bnn__dbt2_pick(nw, BNN_DENSE_SHARED_ROWS ? 3u : 0u);
    for (uint32_t o = 0; o < p->n_out; o += 32u) {
        const uint32_t left = p->n_out - o;
        const uint32_t cnt = left < 32u ? left : 32u;
        const uint32_t bits = fn(in, w, max_mismatch + o, (nw << 5) | (cnt - 1u));
        w += nw * cnt;
        *out++ = bits >> (32u - cnt);
    }
}
#define bnn_dense_bits(p, in, w, max_mismatch, out) bnn__dense_bits_t2(p, in, w, max_mismatch, out)

/* Integer logits: the popcount contract writes p into acc, then acc = n_in - 2 p in place.
 * With BNN_DENSE_SHARED_ROWS, mode 2 (popcounts through the mode-3 bits kernel the hidden
 * layers use): one row kernel linked instead of two when the logits rows have a hidden
 * layer's row-length class. */
BNN_INLINE void bnn__dense_acc_t2(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                  int32_t *acc)
{
    const uint32_t nw = BNN_WORDS(p->n_in);
    const bnn__dbt2_fn fn = bnn__dbt2_pick(nw, BNN_DENSE_SHARED_ROWS ? 2u : 1u);
    for (uint32_t o = 0; o < p->n_out; o += 32u) {
        const uint32_t left = p->n_out - o;
        const uint32_t cnt = left < 32u ? left : 32u;
        (void)fn(in, w, (const int32_t *)(acc + o), (nw << 5) | (cnt - 1u));
        w += nw * cnt;
    }
    for (uint32_t o = 0; o < p->n_out; ++o) {
        acc[o] = (int32_t)p->n_in - 2 * acc[o];
    }
}
#define bnn_dense_acc(p, in, w, acc) bnn__dense_acc_t2(p, in, w, acc)
#elif BNN_M0_ASM
/* Cortex-M0: the Thumb-1 row kernels (bits for the hidden layers, popcounts for the logits). */
BNN_INLINE void bnn__dense_bits_m0(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                   const int32_t *max_mismatch, bnn_word_t *out)
{
    const uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; o += 32u) {
        const uint32_t left = p->n_out - o;
        const uint32_t cnt = left < 32u ? left : 32u;
        const uint32_t bits = bnn__dbt_m0(in, w, max_mismatch + o, (nw << 5) | (cnt - 1u));
        w += nw * cnt;
        *out++ = bits >> (32u - cnt);
    }
}
#define bnn_dense_bits(p, in, w, max_mismatch, out) bnn__dense_bits_m0(p, in, w, max_mismatch, out)

/* Integer logits: the popcount kernel writes p into acc, then acc = n_in - 2 p in place. */
BNN_INLINE void bnn__dense_acc_m0(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                  int32_t *acc)
{
    const uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; o += 32u) {
        const uint32_t left = p->n_out - o;
        const uint32_t cnt = left < 32u ? left : 32u;
        (void)bnn__dbt_m0_pop(in, w, (const int32_t *)(acc + o), (nw << 5) | (cnt - 1u));
        w += nw * cnt;
    }
    for (uint32_t o = 0; o < p->n_out; ++o) {
        acc[o] = (int32_t)p->n_in - 2 * acc[o];
    }
}
#define bnn_dense_acc(p, in, w, acc) bnn__dense_acc_m0(p, in, w, acc)
#endif

void bnn_dense_acc_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       int32_t *acc);
void(bnn_dense_acc)(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                    int32_t *acc);

/*
 * Column-sliced hidden layer (bnn_vcols.h): bits out like bnn_dense_bits, from weights stored
 * by columns.  Method: p_r = popcount(x ^ w_r) = n1 + C_r - 2 Q1_r = 2 Q0_r + n1 - C_r (n1 ones in
 * x, C_r = +1 weights of row r, Q1 / Q0 = count over the ones / zeros of x; the smaller set is
 * listed, at most K / 2 columns), so with M_r = max mismatch (clamped to [-1, K])
 *   n1 <= K - n1:  p_r <= M_r  <=>  2 Q1_r >= T_r + bias,  T_r = T1_r = C_r - M_r,          bias = n1
 *   otherwise:     p_r <= M_r  <=>  NOT(2 Q0_r >= T_r + bias),  T_r = U0_r = C_r + M_r + 1 - K,
 *                                                                                    bias = K - n1.
 * The per-lane threshold goes into the counts' start value, so the compare is with one constant
 * (bnn_vc_ge_const): write T_r = 2 h_r + par_r (h = floor(T / 2)), V_r = off - h_r >= 0 and
 * NP_r = 1 - par_r.  With X_r = V_r + Q_r (+ NP_r when bias is even):
 *   2 Q_r >= T_r + bias  <=>  X_r >= off + floor(bias / 2) + 1
 * (bias odd: Q >= h + e + 1 for either parity, bias = 2 e + 1; bias even, 2 e: Q >= h + e + par).
 *
 * Stored format, per group g of 32 outputs (o = 32 g + r; rows past n_out are zero rows):
 *   wc[g (K + 3) + i] bit r = weight bit of output o at input i      (i < K)
 *   wc[g (K + 3) + K]       = 0: the zero column the index list is padded with (to 16 entries)
 *   wc[g (K + 3) + K + 1]   = NP of the T1 set,  wc[g (K + 3) + K + 2] = NP of the U0 set
 *   tv[g nv + j]            = plane j of V of the T1 set (unsigned, nv planes)
 *   tv[(G + g) nv + j]      = plane j of V of the U0 set (G groups: all T1 sets first, so one set's
 *                             groups follow each other at a stride of nv words)
 * nq: count planes, every X_r < 2^nq (V_r + K / 2 + 1); nv: start-value planes, 4 <= nv <= max(nq, 4)
 * (bnn_vc_groups' contract); off: the layer's offset (>= every h_r).
 * idx: scratch for BNN_DENSE_VIDX_WORDS(K) indices (the code generator places it in the arena).
 * Stack: at most 240 bytes, independent of the layer (gcc -fstack-usage, -O2: on Thumb-2 this frame +
 * 132 for bnn_vc_groups' assembly; on Cortex-M0 this frame with the count planes of the inlined
 * portable bnn_vc_groups + 56 for bnn_vc_count16's C).
 * Cost on the Cortex-M4 (QEMU, W = 128: 5,630 instructions for 128-128-128-10, 2026-12-01): per group
 * of 32 outputs about 6.6 instructions per counted column (min(n1, K - n1) of them, + the parity
 * column when the bias is even, rounded up to 16; the parity column goes into the start values
 * instead, ~12 instructions, when it would open a block of 16) + about 68 for start values, compare
 * and the group loop (bnn_vc_groups: 4 per register plane and 8 per memory plane of the compare);
 * per call about 5 per listed index + ~4 per input word + ~25 (bnn_vc_select) + ~65 here (index
 * padding, the job).
 */
typedef struct {
    uint32_t n_in;        /* K */
    uint32_t n_out;       /* outputs */
    uint32_t nq;          /* count planes, 1 .. BNN_VC_MAX_PLANES */
    uint32_t nv;          /* start-value planes per set, 4 .. max(nq, 4) */
    uint32_t off;         /* offset of the start values */
    bnn_vc_shape_t shape; /* derived: BNN_DENSE_VPARAMS fills it */
} bnn_dense_vparams_t;

/* The initializer of a bnn_dense_vparams_t (a constant expression for constant arguments). */
#define BNN_DENSE_VPARAMS(k, n_out, nq, nv, off)                                                             \
    {(k), (n_out), (nq), (nv), (off), BNN_VC_SHAPE((nq), (nv), ((n_out) + 31u) / 32u, (k) + 3u)}

#define BNN_DENSE_VIDX_WORDS(k) ((((uint32_t)(k) / 2u) + 16u) & ~15u)


void bnn_dense_vbits_ref(const bnn_dense_vparams_t *p, const bnn_word_t *in, const bnn_word_t *wc,
                         const bnn_word_t *tv, bnn_word_t *out);
void bnn_dense_vbits(const bnn_dense_vparams_t *p, const bnn_word_t *in, const bnn_word_t *wc,
                     const bnn_word_t *tv, uint32_t *idx, bnn_word_t *out);

#endif /* BNN_DENSE_H */
