/* SPDX-License-Identifier: MIT */
/* bnn_pool.c -- binary max-pool (OR of bits): reference and optimized variants. */
#include "bnn_pool.h"

void bnn_maxpool_ref(const bnn_pool_params_t *p, const bnn_word_t *in, bnn_word_t *out)
{
    const uint32_t cw = BNN_WORDS(p->c);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            bnn_word_t *dst = out + (oy * p->out_w + ox) * cw;
            for (uint32_t k = 0; k < cw; ++k) {
                dst[k] = 0;
            }
            for (uint32_t ch = 0; ch < p->c; ++ch) {
                int any = 0;
                for (uint32_t ky = 0; ky < p->kh; ++ky) {
                    for (uint32_t kx = 0; kx < p->kw; ++kx) {
                        uint32_t y = oy * p->stride_h + ky, x = ox * p->stride_w + kx;
                        any |= bnn_get_bit(in + (y * p->in_w + x) * cw, ch);
                    }
                }
                bnn_put_bit(dst, ch, any);
            }
        }
    }
}

/* Optimized: whole words ORed, 32 channels at a time. */
void bnn_maxpool(const bnn_pool_params_t *p, const bnn_word_t *in, bnn_word_t *out)
{
    const uint32_t cw = BNN_WORDS(p->c);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            const bnn_word_t *base = in + (oy * p->stride_h * p->in_w + ox * p->stride_w) * cw;
            for (uint32_t k = 0; k < cw; ++k) {
                bnn_word_t acc = 0;
                for (uint32_t ky = 0; ky < p->kh; ++ky) {
                    const bnn_word_t *row = base + ky * p->in_w * cw + k;
                    for (uint32_t kx = 0; kx < p->kw; ++kx) {
                        acc |= row[kx * cw];
                    }
                }
                *out++ = acc;
            }
        }
    }
}
