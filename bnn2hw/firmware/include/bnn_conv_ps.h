/* SPDX-License-Identifier: MIT */
/*
 * bnn_conv_ps.h -- position-sliced binary conv2d + threshold (issue 11): the same contract as
 * bnn_conv_bits (zero padding) and bnn_conv_bits_m1 (-1 padding), bnn_conv.h: packed HWC bits
 * in and out, bit = (acc >= thr[o]).  Built for 16 / 24 output channels, where the column-sliced
 * kernel (bnn_conv_vc.h, channels in the lanes) leaves lanes empty.
 *
 * Lanes.  The 32 lanes of a word are 32 consecutive "flattened" output positions
 * n = oy Wl + ox (Wl = out_w + (kw - 1) / stride_w: each output row plus the few columns a tap
 * reaches past it; lanes with ox >= out_w are computed and dropped).  For tap (ky, kx) and input
 * channel c, the lane vector X[t cin + c] (t = ky kw + kx) holds the input bit the tap reads at
 * each lane: a 32-bit funnel shift of a channel "phase stream", the padded input plane of
 * channel c subsampled at phase (ky % stride_h, kx % stride_w) with row pitch Wl (bit r Wl + q =
 * padded input (stride_h r + py, stride_w q + px)), at bit 32 j + (ky / stride_h) Wl + kx / stride_w
 * for output word j.  Padded taps read 0 bits.  The phase streams are built once per call
 * (32x32 bit transposes of the packed input), the X vectors once per output word: both are
 * shared by every output channel.
 *
 * Counting (method, bnn2hw/mcu/conv_ps.py).  With x the tap bits (0 at padded taps), w the
 * weight bits (1 = +1), W1 the +1 weights of channel o, K = kh kw cin, Ctot = sum_i x_i (per lane,
 * every channel) and C1 = sum over S1 = {i: w_i = 1} of x_i,
 *     acc_all = sum_i (2 x_i - 1)(2 w_i - 1) = 4 C1 - 2 Ctot - 2 W1 + K
 * is the accumulator at -1 padding (or without padding); at zero padding a lane of window class
 * kappa (its padded taps Pi) has acc = acc_all + gpad, gpad = sum_{t in Pi} (2 W1_t - cin).  So
 *     bit = (2 C1 - Ctot >= theta),  theta = ceil((thr + 2 W1 - K - gpad) / 2),
 * and with C0 = Ctot - C1 (the sum over S0 = {i: w_i = 0}): bit = not (2 C0 - Ctot >= 1 - theta).
 * The generator lists per channel the shorter of S1 / S0 (<= K / 2 indices: half the work of an
 * XNOR over all K), padded to a multiple of 8 with the index K (a zero vector).  Per output word
 * and channel the list's vectors are summed bit-sliced (Harley-Seal carry-save adders, Thumb-2
 * assembly with byte indices: 1 LDRB + 1 LDR + 75/16 ALU per vector for 32 lanes), starting from
 * floor(NC / 2), NC = 2^m - 1 - Ctot (2^m > K; Ctot's planes are counted once per word and shared by
 * every channel), so the count Y gives F = 2 C + NC = 2 Y + e (e = NC's plane 0: a shift, no add),
 * and the output bit is (F >= v) xor neg with v = the generator's
 * clamp(theta + 2^m - 1 or 1 - theta + 2^m - 1, 0, 2^(m+1) - 1) per window class (conv_ps.py
 * compare_values; zero padding: one per distinct (row window, column window) pair, as
 * conv_mve_prep.window_classes; else one).  F < 2^(m+1) - 1, so v = 2^(m+1) - 1 is "never".
 *
 * Generated data (flash, bnn2hw/mcu/conv_ps.py prepare):
 *   idx8 / idx16  the lists, channel after channel (len[o] entries each): word indices into the
 *                 per-word vector buffer (t cin + c, or K: zero); uint8 when K < 256, else uint16
 *   len           cout list lengths (multiples of 8)
 *   neg           bit o of word o / 32: channel o lists S0 (its bit is inverted)
 *   v             compare values v[cls cout + o], cls = ycls[oy] nx + xcls[ox]
 *   raw_w, thr    the plain weights and thresholds: a shape outside the preconditions
 *                 (bnn_conv_ps_ok) runs bnn_conv_bits / _m1 on them.
 * Per output word the commonest window class is compared as a whole word (ps_ge: borrow chain over
 * the m + 1 planes of F, 5 instructions a plane); the lanes of the other classes (the border columns
 * inside a row-crossing word), when at most 4, one by one from their count bits (LSRS / ADC, 3
 * instructions a plane), else every class as a whole word.  -1 padding or no padding: one class.
 *
 * Work memory (caller's, static, bnn_conv_ps_work_words): the phase streams (stride_h stride_w cin x
 * SW words: the input's bits once more, plus row padding), the vector buffer (K + 1 words), the
 * per-word class masks and the output words before their transpose.  32x32x16 pad 1: 3,524 B;
 * 32x32x24 pad 1: 5,028 B; 16x16x24 stride 2 pad 1: 3,300 B.
 * Code (Cortex-M4, -O2, --gc-sections): about 7 KB (bnn_conv_ps_bits 4 KB, the spelled-out 32x32
 * transpose 1.8 KB, the assembly counts 0.7 KB), linked only when a layer runs the kernel.
 * Speed (Cortex-M4 instructions per binary MAC, benchmarks/bench_conv_grid_m4.py ps): 0.21 - 0.27 at
 * 24 channels on 32x32 and 16x16 maps, 0.27 (pad 0) / 0.30 (pad 1) at 32x32x16; above the row
 * kernels on small maps and at stride 2 with 16 channels (the per-call input transposes and the
 * per-word work are shared by only 16 channels there).  Preconditions: bnn_conv_ps_ok; m >= 4.
 */
#ifndef BNN_CONV_PS_H
#define BNN_CONV_PS_H

#include "bnn_conv.h"

/* The position-sliced conv runs where the code generator's count model (bnn2hw/mcu/conv_ps.py
 * ps_estimate, Cortex-M4) was made for it: the cores of the column-sliced conv (BNN_CONV_VCOLS,
 * bnn_conv_vc.h: M3, M4, M7, M33 and the host with the multi popcount).  Generated code carries
 * the other kernels' call in the #else branch (Cortex-M0, Helium).  -DBNN_CONV_PS=0 turns it off. */
#ifndef BNN_CONV_PS
#define BNN_CONV_PS BNN_CONV_VCOLS
#endif

/* Most count planes (list sums up to 2^16) and compare planes. */
#define BNN_CONV_PS_PLANES 18u

typedef struct {
    bnn_conv_params_t p;
    uint32_t pad_minus1; /* 1: a padded tap is the activation -1 (bnn_conv_bits_m1's contract) */
    uint32_t nx;         /* column window classes (1 without zero padding) */
    uint32_t m;          /* planes of Ctot: 2^m > K */
    const uint8_t *idx8;
    const uint16_t *idx16;
    const uint16_t *len;
    const uint32_t *neg;
    const int32_t *v;
    const uint8_t *xcls, *ycls;
    const bnn_word_t *raw_w;
    const int32_t *thr;
} bnn_conv_ps_t;

/* Lane pitch Wl, phase-stream words SW, output words (of 32 flattened positions). */
BNN_INLINE uint32_t bnn__conv_ps_wl(const bnn_conv_params_t *p)
{
    return p->out_w + (p->kw - 1u) / p->stride_w;
}
BNN_INLINE uint32_t bnn__conv_ps_nwords(const bnn_conv_params_t *p)
{
    return ((p->out_h - 1u) * bnn__conv_ps_wl(p) + p->out_w + 31u) / 32u;
}
BNN_INLINE uint32_t bnn__conv_ps_sw(const bnn_conv_params_t *p)
{
    const uint32_t offmax = (p->kh - 1u) / p->stride_h * bnn__conv_ps_wl(p) + (p->kw - 1u) / p->stride_w;
    return (32u * bnn__conv_ps_nwords(p) + offmax) / 32u + 2u;
}
/* Words of work memory: stride_h stride_w cin phase streams of SW words, the vector buffer
 * (K + 1), 64 words of class masks, 32 output words per 32 channels, a 32-word transpose block.
 * bnn2hw/mcu/conv_ps.py work_words is the same sum. */
BNN_INLINE uint32_t bnn_conv_ps_work_words(const bnn_conv_params_t *p)
{
    return p->stride_h * p->stride_w * p->cin * bnn__conv_ps_sw(p) + p->kh * p->kw * p->cin + 1u + 64u +
           32u * BNN_WORDS(p->cout) + 32u;
}

/* 1 when L meets the preconditions (out_h, out_w >= 1, K < 65535, its list type present, 4 <= m,
 * the count within BNN_CONV_PS_PLANES planes), else 0 (bnn_conv_ps_bits then runs bnn_conv_bits). */
BNN_INLINE int bnn_conv_ps_ok(const bnn_conv_ps_t *L)
{
    const bnn_conv_params_t *p = &L->p;
    const uint32_t k = p->kh * p->kw * p->cin;
    if (p->out_h == 0u || p->out_w == 0u || p->kh == 0u || p->kw == 0u || p->cin == 0u || p->cout == 0u ||
        p->stride_h == 0u || p->stride_w == 0u || k >= 65535u || L->m < 4u || L->m + 1u > BNN_CONV_PS_PLANES ||
        (1u << L->m) <= k) {
        return 0;
    }
    return k < 256u ? L->idx8 != NULL : L->idx16 != NULL;
}

/* The kernel proper (bnn_conv_ps.c): L must meet bnn_conv_ps_ok.  Internal: call bnn_conv_ps_bits. */
void bnn__conv_ps_bits(const bnn_conv_ps_t *L, const bnn_word_t *in, uint32_t *work, bnn_word_t *out);

/* The conv, packed bits out (out[(oy out_w + ox) ow + k]); work: bnn_conv_ps_work_words words.
 * Inline so that the caller's constant L (generated code) folds the precondition check and links
 * no fallback (a non-constant L links bnn_conv_bits' row-kernel variants). */
BNN_INLINE void bnn_conv_ps_bits(const bnn_conv_ps_t *L, const bnn_word_t *in, uint32_t *work, bnn_word_t *out)
{
    if (!bnn_conv_ps_ok(L)) {
        if (L->pad_minus1) {
            bnn_conv_bits_m1(&L->p, in, L->raw_w, L->thr, out);
        } else {
            bnn_conv_bits(&L->p, in, L->raw_w, L->thr, out);
        }
        return;
    }
    bnn__conv_ps_bits(L, in, work, out);
}

/* Reference: the same prepared data, one position and channel at a time, scalar sums (no
 * streams, no bit slicing); the oracle of the fast path beside bnn_conv_bits_ref. */
void bnn_conv_ps_bits_ref(const bnn_conv_ps_t *L, const bnn_word_t *in, bnn_word_t *out);

#endif /* BNN_CONV_PS_H */
