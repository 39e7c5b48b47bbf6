/* SPDX-License-Identifier: MIT */
/* bnn_dense.c -- binary fully-connected layer: reference and optimized variants. */
#include "bnn_dense.h"

static int32_t dense_dot_ref(const bnn_word_t *in, const bnn_word_t *row, uint32_t n_in)
{
    int32_t acc = 0;
    for (uint32_t i = 0; i < n_in; ++i) {
        acc += bnn_get_bit(in, i) == bnn_get_bit(row, i) ? 1 : -1;
    }
    return acc;
}

void bnn_dense_bits_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                        const int32_t *max_mismatch, bnn_word_t *out)
{
    uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t k = 0; k < BNN_WORDS(p->n_out); ++k) {
        out[k] = 0;
    }
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t acc = dense_dot_ref(in, w + o * nw, p->n_in);
        int32_t mism = ((int32_t)p->n_in - acc) / 2; /* exact: K - acc = 2p */
        bnn_put_bit(out, o, mism <= max_mismatch[o]);
    }
}

void bnn_dense_acc_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       int32_t *acc)
{
    uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        acc[o] = dense_dot_ref(in, w + o * nw, p->n_in);
    }
}

/*
 * Optimized: one xor-popcount per row with the compile-time strategy.  The threshold
 * test is branch-free: (p - M - 1) is negative exactly when p <= M, so its sign bit is
 * the output bit.  Bits are shifted in from the top, (word >> 1) | sign, so after 32
 * rows row j of the word sits at bit j; a partial last word is shifted down at the end
 * and its padding bits are 0.
 */
void(bnn_dense_bits)(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                     const int32_t *max_mismatch, bnn_word_t *out)
{
#if BNN_MULTI_ASM
    bnn__dense_bits_t2(p, in, w, max_mismatch, out); /* any row length, bnn_bits.c */
#elif BNN_M0_ASM
    bnn__dense_bits_m0(p, in, w, max_mismatch, out);
#else
    const uint32_t nw = BNN_WORDS(p->n_in);
    const uint32_t n_out = p->n_out;
    uint32_t o = 0;
    while (o < n_out) {
        uint32_t bits = 0;
        uint32_t left = n_out - o;
        uint32_t cnt = left < 32u ? left : 32u;
        for (uint32_t j = 0; j < cnt; ++j) {
            uint32_t pc = bnn_xor_popcount_adv(in, &w, nw);
            uint32_t d = pc + (uint32_t)(~max_mismatch[o + j]); /* p - M - 1 (mod 2^32) */
            bits = (bits >> 1) | (d & 0x80000000u);
        }
        o += cnt;
        *out++ = bits >> (32u - cnt);
    }
#endif
}

void(bnn_dense_acc)(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                    int32_t *acc)
{
#if BNN_MULTI_ASM
    bnn__dense_acc_t2(p, in, w, acc);
#elif BNN_M0_ASM
    bnn__dense_acc_m0(p, in, w, acc);
#else
    const uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        acc[o] = (int32_t)p->n_in - 2 * (int32_t)bnn_xor_popcount_adv(in, &w, nw);
    }
#endif
}
