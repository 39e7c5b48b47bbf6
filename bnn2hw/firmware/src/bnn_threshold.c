/* SPDX-License-Identifier: MIT */
/* bnn_threshold.c -- per-channel threshold with direction: reference and optimized. */
#include "bnn_threshold.h"

void bnn_threshold_ref(const bnn_threshold_params_t *p, const int32_t *acc, const int32_t *thr,
                       const int8_t *dir, bnn_word_t *out)
{
    const uint32_t cw = BNN_WORDS(p->channels);
    for (uint32_t pos = 0; pos < p->positions; ++pos) {
        bnn_word_t *dst = out + pos * cw;
        for (uint32_t k = 0; k < cw; ++k) {
            dst[k] = 0;
        }
        for (uint32_t c = 0; c < p->channels; ++c) {
            int32_t a = acc[pos * p->channels + c];
            int b = dir[c] >= 0 ? a >= thr[c] : a <= thr[c];
            bnn_put_bit(dst, c, b);
        }
    }
}

/* Optimized: branch-free.  acc <= thr  <=>  -acc >= -thr, computed in int64 so that
 * INT32_MIN thresholds/accumulators cannot overflow. */
void bnn_threshold(const bnn_threshold_params_t *p, const int32_t *acc, const int32_t *thr,
                   const int8_t *dir, bnn_word_t *out)
{
    for (uint32_t pos = 0; pos < p->positions; ++pos) {
        bnn_word_t bits = 0;
        uint32_t c;
        for (c = 0; c < p->channels; ++c) {
            int64_t s = dir[c] >= 0 ? 1 : -1;
            int64_t d = s * ((int64_t)*acc++ - (int64_t)thr[c]);
            bits |= (bnn_word_t)(d >= 0) << (c % 32u);
            if (c % 32u == 31u) {
                *out++ = bits;
                bits = 0;
            }
        }
        if (c % 32u) {
            *out++ = bits;
        }
    }
}
