/* SPDX-License-Identifier: MIT */
/*
 * bnn_pool.h -- binary max-pool on packed HWC bits (convention: bnn_bits.h).
 * max over +-1 values is +1 iff any value is +1, i.e. the OR of the bits (bit 1 = +1).
 * in[(y * in_w + x) * cw + k], out[(oy * out_w + ox) * cw + k], cw = BNN_WORDS(c);
 * window rows oy*stride_h .. +kh-1, cols ox*stride_w .. +kw-1, no padding (the caller
 * gives out_h/out_w, normally (in - k) / stride + 1).  Padding bits stay 0 (OR of zeros).
 */
#ifndef BNN_POOL_H
#define BNN_POOL_H

#include "bnn_bits.h"

typedef struct {
    uint32_t in_h, in_w, c;
    uint32_t out_h, out_w;
    uint32_t kh, kw;
    uint32_t stride_h, stride_w;
} bnn_pool_params_t;

void bnn_maxpool_ref(const bnn_pool_params_t *p, const bnn_word_t *in, bnn_word_t *out);
void bnn_maxpool(const bnn_pool_params_t *p, const bnn_word_t *in, bnn_word_t *out);

#endif /* BNN_POOL_H */
