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

typedef struct {
    uint32_t n_in;  /* K: number of +-1 inputs */
    uint32_t n_out; /* number of outputs (weight rows) */
} bnn_dense_params_t;

void bnn_dense_bits_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                        const int32_t *max_mismatch, bnn_word_t *out);
void bnn_dense_bits(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                    const int32_t *max_mismatch, bnn_word_t *out);

void bnn_dense_acc_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       int32_t *acc);
void bnn_dense_acc(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                   int32_t *acc);

#endif /* BNN_DENSE_H */
