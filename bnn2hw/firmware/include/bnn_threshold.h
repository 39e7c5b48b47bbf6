/* SPDX-License-Identifier: MIT */
/*
 * bnn_threshold.h -- int32 accumulators -> packed bits with per-channel threshold and
 * direction (convention: bnn_bits.h).
 * acc[pos * channels + c]; out[pos * BNN_WORDS(channels) + k], padding bits 0.
 * dir[c] = +1: bit = (acc >= thr[c]);  dir[c] = -1: bit = (acc <= thr[c])
 * (a negative folded BatchNorm/alpha scale flips the comparison; ties give +1 either way).
 */
#ifndef BNN_THRESHOLD_H
#define BNN_THRESHOLD_H

#include "bnn_bits.h"

typedef struct {
    uint32_t positions;
    uint32_t channels;
} bnn_threshold_params_t;

void bnn_threshold_ref(const bnn_threshold_params_t *p, const int32_t *acc, const int32_t *thr,
                       const int8_t *dir, bnn_word_t *out);
void bnn_threshold(const bnn_threshold_params_t *p, const int32_t *acc, const int32_t *thr,
                   const int8_t *dir, bnn_word_t *out);

#endif /* BNN_THRESHOLD_H */
