/* SPDX-License-Identifier: MIT */
/* bnn_stream.c -- fixed-point residual stream kernels (conventions: bnn_stream.h). Portable C. */
#include "bnn_stream.h"

#include <string.h>

/* floor(v / 2^shift) for any sign (an arithmetic shift, without relying on the
 * implementation-defined >> of negative values); |v| < 2^63 so -v cannot overflow. */
BNN_INLINE int64_t floor_shift(int64_t v, uint32_t shift)
{
    return v >= 0 ? (v >> shift) : -((-v + ((INT64_C(1) << shift) - 1)) >> shift);
}

BNN_INLINE int32_t clamp64(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : (int32_t)v);
}

/* The parameters read once into locals: stores through int8_t * may alias *p, so without
 * this the compiler reloads every field per element. */
#define REQUANT_LOOP(TI, TO)                                                          \
    do {                                                                              \
        const TI *src = (const TI *)in;                                               \
        TO *dst = (TO *)out;                                                          \
        const uint32_t nch = p->channels, sh = p->shift;                              \
        const int32_t *mult = p->mult, lo = p->lo, hi = p->hi;                        \
        const int64_t *bias = p->bias;                                                \
        for (uint32_t pos = 0; pos < positions; ++pos) {                              \
            for (uint32_t c = 0; c < nch; ++c) {                                      \
                const int64_t v = (int64_t)*src++ * mult[c] + bias[c];                \
                *dst++ = (TO)clamp64(floor_shift(v, sh), lo, hi);                     \
            }                                                                         \
        }                                                                             \
    } while (0)

#define REQUANT_OUT(TI)                                                               \
    do {                                                                              \
        if (p->out_bytes == 1u) {                                                     \
            REQUANT_LOOP(TI, int8_t);                                                 \
        } else if (p->out_bytes == 2u) {                                              \
            REQUANT_LOOP(TI, int16_t);                                                \
        } else {                                                                      \
            REQUANT_LOOP(TI, int32_t);                                                \
        }                                                                             \
    } while (0)

void bnn_requant(const bnn_requant_params_t *p, uint32_t positions, const void *in, uint32_t in_bytes,
                 void *out)
{
    /* Elementwise in index order: out may alias in when out_bytes <= in_bytes. */
    if (in_bytes == 1u) {
        REQUANT_OUT(int8_t);
    } else if (in_bytes == 2u) {
        REQUANT_OUT(int16_t);
    } else {
        REQUANT_OUT(int32_t);
    }
}

/*
 * int32 requant of accumulators bounded by |x| <= bound (a conv's: K = kh kw cin for bits
 * input, 255 K for uint8).  With b'[c] = bias[c] - lo 2^shift and t = x mult[c] + b'[c]:
 *   floor((x mult + bias) / 2^shift) < lo  <=>  t < 0, and for t >= 0
 *   floor((x mult + bias) / 2^shift) = lo + (t >> shift)   (a shift of a non-negative value),
 * so q = lo + min(t < 0 ? 0 : t >> shift, hi - lo), the same value as the int64 path.  Used
 * when shift <= 30 and bound |mult[c]| + |b'[c]| < 2^31 for every channel (then t fits
 * int32); requant_fast32() checks that and fills b32 (channels <= BNN_REQUANT_FAST_CH).
 */
#ifndef BNN_REQUANT_FAST_CH
#define BNN_REQUANT_FAST_CH 64u
#endif

static int requant_fast32(const bnn_requant_params_t *p, int64_t bound, int32_t *b32)
{
    if (p->channels > BNN_REQUANT_FAST_CH || p->shift > 30u || bound >= (INT64_C(1) << 31)) {
        return 0;
    }
    const int64_t base = (int64_t)p->lo * (INT64_C(1) << p->shift); /* |base| <= 2^61 */
    for (uint32_t c = 0; c < p->channels; ++c) {
        const int64_t b = p->bias[c] - base; /* |bias| <= 2^62: no overflow */
        const int64_t m = p->mult[c] < 0 ? -(int64_t)p->mult[c] : (int64_t)p->mult[c];
        if (b >= (INT64_C(1) << 31) || b <= -(INT64_C(1) << 31) ||
            bound * m + (b < 0 ? -b : b) >= (INT64_C(1) << 31)) {
            return 0;
        }
        b32[c] = (int32_t)b;
    }
    return 1;
}

#define REQUANT32_LOOP(TO)                                                            \
    do {                                                                              \
        TO *dst = (TO *)out;                                                          \
        for (uint32_t pos = 0; pos < positions; ++pos) {                              \
            for (uint32_t c = 0; c < nch; ++c) {                                      \
                const int32_t t = *in++ * mult[c] + b32[c];                           \
                int32_t q = t < 0 ? 0 : (int32_t)((uint32_t)t >> sh);                 \
                *dst++ = (TO)((q > range ? range : q) + lo);                          \
            }                                                                         \
        }                                                                             \
    } while (0)

static void requant32(const bnn_requant_params_t *p, const int32_t *b32, uint32_t positions, const int32_t *in,
                      void *out)
{
    const uint32_t nch = p->channels, sh = p->shift;
    const int32_t *mult = p->mult, lo = p->lo, range = p->hi - p->lo;
    if (p->out_bytes == 1u) {
        REQUANT32_LOOP(int8_t);
    } else if (p->out_bytes == 2u) {
        REQUANT32_LOOP(int16_t);
    } else {
        REQUANT32_LOOP(int32_t);
    }
}

void bnn_stream_add(const bnn_add_params_t *p, const void *a, const void *b, void *out)
{
    /* Elementwise and in index order: out may alias a or b when out_bytes <= their bytes
     * (element i is written after elements 0..i of the inputs were read). */
    if (p->a_bytes == 1u && p->b_bytes == 1u && p->out_bytes == 1u) { /* the 8-bit stream */
        const int8_t *x = (const int8_t *)a, *y = (const int8_t *)b;
        int8_t *z = (int8_t *)out;
        const uint32_t n = p->n;
        const int32_t lo = p->lo, hi = p->hi; /* locals: stores through int8_t * alias *p */
        uint32_t i = 0;
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
        if (lo == -128 && hi == 127) { /* full int8 range: QADD8, four saturating adds at once;
                                        * 4 bytes read before 4 are written, so aliasing holds */
            for (; i + 4u <= n; i += 4u) {
                uint32_t u, v, r;
                memcpy(&u, x + i, 4u);
                memcpy(&v, y + i, 4u);
                __asm__("qadd8 %0, %1, %2" : "=r"(r) : "r"(u), "r"(v));
                memcpy(z + i, &r, 4u);
            }
        }
#endif
        for (; i < n; ++i) {
            const int32_t v = (int32_t)x[i] + y[i];
            z[i] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
        }
        return;
    }
    for (uint32_t i = 0; i < p->n; ++i) {
        const int64_t v = (int64_t)bnn_stream_get(a, p->a_bytes, i) + bnn_stream_get(b, p->b_bytes, i);
        bnn_stream_put(out, p->out_bytes, i, clamp64(v, p->lo, p->hi));
    }
}

void bnn_avgpool_sum(const bnn_avgpool_params_t *p, const void *in, void *out)
{
    uint32_t o = 0;
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            for (uint32_t c = 0; c < p->c; ++c, ++o) {
                int32_t s = 0; /* validate() proves the window sum fits 32 bits */
                for (uint32_t ky = 0; ky < p->k; ++ky) {
                    const uint32_t row = (oy * p->stride + ky) * p->in_w + ox * p->stride;
                    for (uint32_t kx = 0; kx < p->k; ++kx) {
                        s += bnn_stream_get(in, p->in_bytes, (row + kx) * p->c + c);
                    }
                }
                bnn_stream_put(out, p->out_bytes, o, s);
            }
        }
    }
}

/*
 * The 8-bit stream (v in [-128, 127]) with at most BNN_THRESHOLD_FAST_CH channels: per channel
 * a mask m (0 for dir +1, -1 for dir -1) and a threshold t' clamped to [-128, 128] such that
 *   bit = (v ^ m) >= t'   (dir +1: v >= t; dir -1: v <= t <=> -v - 1 >= -t - 1, and v ^ -1 = -v - 1),
 * so the bit is the inverted sign of (v ^ m) - t' (no overflow: both are small), shifted in
 * from the top (bits >> 1 | bit << 31; the final >> (32 - cnt) leaves 0 padding bits).
 * Clamping keeps every comparison: v >= t is always true for t <= -128 and never for t >= 128.
 */
#ifndef BNN_THRESHOLD_FAST_CH
#define BNN_THRESHOLD_FAST_CH 64u
#endif

static void threshold_s8(uint32_t positions, uint32_t nch, const int8_t *in, const int32_t *thr, const int8_t *dir,
                         bnn_word_t *out)
{
    int32_t mask[BNN_THRESHOLD_FAST_CH], tt[BNN_THRESHOLD_FAST_CH];
    for (uint32_t c = 0; c < nch; ++c) {
        int32_t t = thr[c] < -129 ? -129 : (thr[c] > 128 ? 128 : thr[c]);
        if (dir[c] > 0) {
            mask[c] = 0;
            tt[c] = t < -128 ? -128 : t;
        } else {
            mask[c] = -1;
            tt[c] = t > 127 ? -128 : -t - 1; /* t >= 127: always 1 */
        }
    }
    for (uint32_t pos = 0; pos < positions; ++pos) {
        for (uint32_t c0 = 0; c0 < nch; c0 += 32u) {
            const uint32_t cnt = nch - c0 < 32u ? nch - c0 : 32u;
            uint32_t bits = 0;
            for (uint32_t j = c0; j < c0 + cnt; ++j) {
                const int32_t d = ((int32_t)*in++ ^ mask[j]) - tt[j];
                bits = (bits >> 1) | (~(uint32_t)d & 0x80000000u);
            }
            *out++ = bits >> (32u - cnt);
        }
    }
}

void bnn_stream_threshold(const bnn_stream_threshold_params_t *p, const void *in, const int32_t *thr,
                          const int8_t *dir, bnn_word_t *out)
{
    const uint32_t positions = p->positions, nch = p->channels, in_bytes = p->in_bytes;
    if (in_bytes == 1u && nch <= BNN_THRESHOLD_FAST_CH) {
        threshold_s8(positions, nch, (const int8_t *)in, thr, dir, out);
        return;
    }
    uint32_t i = 0;
    for (uint32_t pos = 0; pos < positions; ++pos) {
        for (uint32_t c0 = 0; c0 < nch; c0 += 32u) { /* one output word per 32 channels */
            const uint32_t cnt = nch - c0 < 32u ? nch - c0 : 32u;
            bnn_word_t bits = 0;
            for (uint32_t j = 0; j < cnt; ++j) {
                const int32_t v = bnn_stream_get(in, in_bytes, i + j), t = thr[c0 + j];
                bits |= (bnn_word_t)(dir[c0 + j] > 0 ? v >= t : v <= t) << j;
            }
            i += cnt;
            *out++ = bits;
        }
    }
}

void bnn_dense_stream_s8(const bnn_stream_dense_params_t *p, const void *in, const int8_t *w, int32_t *acc)
{
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s = 0; /* codegen.check_accumulators proves |acc| < 2^31 */
        for (uint32_t i = 0; i < p->n_in; ++i) {
            s += bnn_stream_get(in, p->in_bytes, i) * (int32_t)*w++;
        }
        acc[o] = s;
    }
}

void bnn_dense_stream_bin(const bnn_stream_dense_params_t *p, const void *in, const bnn_word_t *w,
                          int32_t *acc)
{
    const uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s = 0;
        for (uint32_t i = 0; i < p->n_in; ++i) {
            const int32_t q = bnn_stream_get(in, p->in_bytes, i);
            s += ((w[i / 32u] >> (i % 32u)) & 1u) ? q : -q;
        }
        acc[o] = s;
        w += nw;
    }
}

/* ---- binary conv, one output row at a time ---------------------------------------------- */

/* The int32 accumulators of output row oy (out_w * cout).  Packed bits input: the patch +
 * popcount-mode row kernel of bnn_conv.c (bnn_conv_acc_rows), which takes -1 padding
 * directly (a padded tap is a zero bit, acc = K - 2 popcount).  uint8 input: the zero-padding
 * kernel on the input rows the row's windows touch (the sub-problem has out_h = 1, in_h = the
 * rows inside the image and pad_h = the rows above it). */
static void conv_row(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w, uint32_t oy,
                     int32_t *row)
{
    const bnn_conv_params_t *c = &p->conv;
    if (!p->in_u8) {
        bnn_conv_acc_rows(c, (const bnn_word_t *)in, w, oy, oy + 1u, (int)p->pad_minus1, row);
        return;
    }
    const int32_t y0 = (int32_t)(oy * c->stride_h) - (int32_t)c->pad_h;
    const int32_t top = y0 < 0 ? 0 : y0;
    const int32_t bottom = y0 + (int32_t)c->kh < (int32_t)c->in_h ? y0 + (int32_t)c->kh : (int32_t)c->in_h;
    bnn_conv_params_t r = *c;
    r.in_h = (uint32_t)(bottom - top);
    r.pad_h = (uint32_t)(top - y0);
    r.out_h = 1u;
    bnn_conv_u8_acc(&r, (const uint8_t *)in + (uint32_t)top * c->in_w * c->cin, w, row);
}

void bnn_conv_requant(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                      const bnn_requant_params_t *rq, int32_t *row, void *out)
{
    const bnn_conv_params_t *c = &p->conv;
    const uint32_t n = c->out_w * c->cout;
    const int64_t k = (int64_t)c->kh * c->kw * c->cin; /* |acc| <= K (bits), 255 K (uint8) */
    int32_t b32[BNN_REQUANT_FAST_CH];
    const int fast = requant_fast32(rq, p->in_u8 ? 255 * k : k, b32);
    for (uint32_t oy = 0; oy < c->out_h; ++oy) {
        conv_row(p, in, w, oy, row);
        void *dst = (uint8_t *)out + (size_t)oy * n * rq->out_bytes;
        if (fast) {
            requant32(rq, b32, c->out_w, row, dst);
        } else {
            bnn_requant(rq, c->out_w, row, 4u, dst);
        }
    }
}

void bnn_conv_threshold_rows(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                             const int32_t *thr, int32_t *row, bnn_word_t *out)
{
    const uint32_t cout = p->conv.cout;
    for (uint32_t oy = 0; oy < p->conv.out_h; ++oy) {
        conv_row(p, in, w, oy, row);
        for (uint32_t ox = 0; ox < p->conv.out_w; ++ox) {
            bnn_word_t bits = 0;
            uint32_t o;
            for (o = 0; o < cout; ++o) {
                bits |= (bnn_word_t)(row[ox * cout + o] >= thr[o]) << (o % 32u);
                if (o % 32u == 31u) {
                    *out++ = bits;
                    bits = 0;
                }
            }
            if (o % 32u) {
                *out++ = bits;
            }
        }
    }
}
