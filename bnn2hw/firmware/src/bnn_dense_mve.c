/* SPDX-License-Identifier: MIT */
/*
 * bnn_dense_mve.c -- binary dense rows with Helium (M-profile Vector Extension, Cortex-M55):
 * the same contract as the Thumb-2 row kernels (bnn_bits.h, bnn__dbt2_*), used by
 * bnn_dense_bits / bnn_dense_acc / bnn_conv_bits when BNN_MVE is set.
 *
 * MVE has no vector popcount, so per 128-bit vector the same SWAR as the scalar kernel runs
 * on 16 byte lanes at once (no carry can cross a byte lane, so no masks are needed for the
 * byte stage):
 *   three vectors x, y, z (already x ^ w): x2 = x - ((x >> 1) & 0x55) + (z & 0x55),
 *   y2 = y - ((y >> 1) & 0x55) + ((z >> 1) & 0x55)          2-bit fields <= 3
 *   s  = (x2 & 0x33) + ((x2 >> 2) & 0x33) + (y2 & 0x33) + ((y2 >> 2) & 0x33)   nibbles <= 12
 *   A += vaddv(s) = L + 16 H,  B += vaddv(s >> 4) = H,  popcount = L + H = A - 15 B.
 * Then two plain vectors (nibbles <= 8), and the last 1-7 words take one or two
 * tail-predicated vectors (inactive lanes load as 0, and 0 ^ 0 adds nothing), so any row
 * length runs without a scalar tail.
 */
#include "bnn_bits.h"

#if BNN_MVE
#include <arm_mve.h>

BNN_INLINE uint32_t xor_popcount_mve(const bnn_word_t *a, const bnn_word_t *w, uint32_t n)
{
    const uint8x16_t m55 = vdupq_n_u8(0x55u);
    const uint8x16_t m33 = vdupq_n_u8(0x33u);
    uint32_t sum = 0u; /* L + 16 H */
    uint32_t hi = 0u;  /* H */
    for (; n >= 12u; n -= 12u, a += 12, w += 12) {
        uint8x16_t x = vreinterpretq_u8_u32(veorq_u32(vld1q_u32(a), vld1q_u32(w)));
        uint8x16_t y = vreinterpretq_u8_u32(veorq_u32(vld1q_u32(a + 4), vld1q_u32(w + 4)));
        uint8x16_t z = vreinterpretq_u8_u32(veorq_u32(vld1q_u32(a + 8), vld1q_u32(w + 8)));
        x = vaddq_u8(vsubq_u8(x, vandq_u8(vshrq_n_u8(x, 1), m55)), vandq_u8(z, m55));
        y = vaddq_u8(vsubq_u8(y, vandq_u8(vshrq_n_u8(y, 1), m55)), vandq_u8(vshrq_n_u8(z, 1), m55));
        uint8x16_t s = vaddq_u8(vaddq_u8(vandq_u8(x, m33), vandq_u8(vshrq_n_u8(x, 2), m33)),
                                vaddq_u8(vandq_u8(y, m33), vandq_u8(vshrq_n_u8(y, 2), m33)));
        sum = vaddvaq_u8(sum, s);
        hi = vaddvaq_u8(hi, vshrq_n_u8(s, 4));
    }
    if (n >= 8u) { /* two vectors: nibbles <= 8 */
        uint8x16_t x = vreinterpretq_u8_u32(veorq_u32(vld1q_u32(a), vld1q_u32(w)));
        uint8x16_t y = vreinterpretq_u8_u32(veorq_u32(vld1q_u32(a + 4), vld1q_u32(w + 4)));
        x = vsubq_u8(x, vandq_u8(vshrq_n_u8(x, 1), m55));
        y = vsubq_u8(y, vandq_u8(vshrq_n_u8(y, 1), m55));
        uint8x16_t s = vaddq_u8(vaddq_u8(vandq_u8(x, m33), vandq_u8(vshrq_n_u8(x, 2), m33)),
                                vaddq_u8(vandq_u8(y, m33), vandq_u8(vshrq_n_u8(y, 2), m33)));
        sum = vaddvaq_u8(sum, s);
        hi = vaddvaq_u8(hi, vshrq_n_u8(s, 4));
        n -= 8u;
        a += 8;
        w += 8;
    }
    if (n > 0u) { /* 1..7 words: one or two tail-predicated vectors */
        const mve_pred16_t p0 = vctp32q(n);
        uint8x16_t x = vreinterpretq_u8_u32(veorq_u32(vldrwq_z_u32(a, p0), vldrwq_z_u32(w, p0)));
        x = vsubq_u8(x, vandq_u8(vshrq_n_u8(x, 1), m55));
        uint8x16_t s = vaddq_u8(vandq_u8(x, m33), vandq_u8(vshrq_n_u8(x, 2), m33));
        if (n > 4u) {
            const mve_pred16_t p1 = vctp32q(n - 4u);
            uint8x16_t y = vreinterpretq_u8_u32(veorq_u32(vldrwq_z_u32(a + 4, p1), vldrwq_z_u32(w + 4, p1)));
            y = vsubq_u8(y, vandq_u8(vshrq_n_u8(y, 1), m55));
            s = vaddq_u8(s, vaddq_u8(vandq_u8(y, m33), vandq_u8(vshrq_n_u8(y, 2), m33)));
        }
        sum = vaddvaq_u8(sum, s);
        hi = vaddvaq_u8(hi, vshrq_n_u8(s, 4));
    }
    return sum - 15u * hi;
}

uint32_t bnn__dbt_mve(const bnn_word_t *in, const bnn_word_t *w, const int32_t *max_mismatch, uint32_t nw_cnt)
{
    const uint32_t nw = nw_cnt >> 5;
    const uint32_t cnt = (nw_cnt & 31u) + 1u;
    uint32_t bits = 0u;
    for (uint32_t j = 0; j < cnt; ++j, w += nw) {
        const uint32_t d = xor_popcount_mve(in, w, nw) + (uint32_t)~max_mismatch[j]; /* p - M - 1 */
        bits = (bits >> 1) | (d & 0x80000000u);
    }
    return bits;
}

uint32_t bnn__dbt_mve_pop(const bnn_word_t *in, const bnn_word_t *w, const int32_t *out, uint32_t nw_cnt)
{
    const uint32_t nw = nw_cnt >> 5;
    const uint32_t cnt = (nw_cnt & 31u) + 1u;
    uint32_t *pc = (uint32_t *)(uintptr_t)out; /* popcount mode: the third argument is the output */
    for (uint32_t j = 0; j < cnt; ++j, w += nw) {
        pc[j] = xor_popcount_mve(in, w, nw);
    }
    return 0u;
}
#else
typedef int bnn_dense_mve_unused; /* ISO C: a translation unit is not empty */
#endif
