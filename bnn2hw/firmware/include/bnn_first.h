/* SPDX-License-Identifier: MIT */
/*
 * bnn_first.h -- first / last layers with 8-bit operands (convention: bnn_bits.h).
 *
 * u8 x binary:  in uint8 [n_in], w packed rows [n_out][BNN_WORDS(n_in)] (bit 1 = +1):
 *   acc_o = sum_i x_i * s_i = 2 * sum_{bit=1} x_i - sum_i x_i   (s_i = +-1)
 * u8 x int8:    w int8 row-major [n_out][n_in], values in [-127, 127]: acc_o = sum x_i w_oi
 * bits x int8:  in packed bits (n_in), w int8 [n_out][n_in]: acc_o = sum s_i w_oi
 *   (an 8-bit last layer).
 * *_bits variants: out bit o = (acc_o >= thr[o]), packed, padding bits 0.
 */
#ifndef BNN_FIRST_H
#define BNN_FIRST_H

#include "bnn_bits.h"

typedef struct {
    uint32_t n_in;
    uint32_t n_out;
} bnn_first_params_t;

void bnn_first_u8_bin_acc_ref(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                              int32_t *acc);
void bnn_first_u8_bin_acc(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                          int32_t *acc);
void bnn_first_u8_bin_bits_ref(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                               const int32_t *thr, bnn_word_t *out);
void bnn_first_u8_bin_bits(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                           const int32_t *thr, bnn_word_t *out);

void bnn_first_u8_s8_acc_ref(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w,
                             int32_t *acc);
void bnn_first_u8_s8_acc(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w, int32_t *acc);
void bnn_first_u8_s8_bits_ref(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w,
                              const int32_t *thr, bnn_word_t *out);
void bnn_first_u8_s8_bits(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w,
                          const int32_t *thr, bnn_word_t *out);

void bnn_last_bin_s8_acc_ref(const bnn_first_params_t *p, const bnn_word_t *in, const int8_t *w,
                             int32_t *acc);
void bnn_last_bin_s8_acc(const bnn_first_params_t *p, const bnn_word_t *in, const int8_t *w,
                         int32_t *acc);

#endif /* BNN_FIRST_H */
