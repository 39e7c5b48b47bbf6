/* SPDX-License-Identifier: MIT */
/* bnn_first.c -- 8-bit first/last layers: reference and optimized variants. */
#include "bnn_first.h"

#include <string.h>

void bnn_first_u8_bin_acc_ref(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                              int32_t *acc)
{
    uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s = 0;
        for (uint32_t i = 0; i < p->n_in; ++i) {
            s += bnn_get_bit(w + o * nw, i) ? (int32_t)in[i] : -(int32_t)in[i];
        }
        acc[o] = s;
    }
}

/*
 * Optimized u8 x binary: byte tables of partial sums.
 *
 * acc_o = sum_i x_i s_i = 2 * sum_{bit=1} x_i - sum_i x_i.  The masked sum only depends on the
 * weight row through its bytes, so for every group g of 8 inputs (one byte of a weight word)
 * the 256 possible masked sums T_g[b] = sum_{j: bit j of b} x_{8g+j} are tabulated once per
 * call (<= 8 * 255, so uint16).  A row then costs one table load per weight byte instead of
 * one select per input: 64 inputs x 256 rows is 2,048 loads instead of 16,384 selects.
 *
 * Building T_g: nibble tables L[l] (inputs 0-3) and H[h] (inputs 4-7), then
 * T_g[16h + l] = L[l] + H[h].  Two neighbouring L entries are packed in one uint32 (lanes
 * <= 1020 + 1020, no carry between the 16-bit halves), so each 32-bit add writes two entries.
 * Inputs past n_in are taken as 0, so a set padding bit in a weight word would add nothing.
 *
 * Only the first BNN_FIRST_LUT_INPUTS inputs (a multiple of 32, default 64) use tables; the
 * table lives on the stack (BNN_FIRST_LUT_INPUTS / 8 * 512 bytes: 4 KiB by default, 0 to
 * disable).  Inputs beyond it take the per-input select loop.
 */
#ifndef BNN_FIRST_LUT_INPUTS
#define BNN_FIRST_LUT_INPUTS 64u
#endif
#if (BNN_FIRST_LUT_INPUTS % 32u) != 0
#error "BNN_FIRST_LUT_INPUTS must be a multiple of 32"
#endif
#define BNN_FIRST_LUT_GROUPS (BNN_FIRST_LUT_INPUTS / 8u)

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BNN_PAIR(even, odd) (((uint32_t)(even) << 16) | (uint32_t)(odd))
#else
#define BNN_PAIR(even, odd) ((uint32_t)(even) | ((uint32_t)(odd) << 16))
#endif

typedef union {
    uint32_t pair[BNN_FIRST_LUT_GROUPS > 0u ? BNN_FIRST_LUT_GROUPS * 128u : 1u];
    uint16_t sum[BNN_FIRST_LUT_GROUPS > 0u ? BNN_FIRST_LUT_GROUPS * 256u : 2u];
} bnn_first_lut_t;

/* 16 subset sums of a[0..3] (sums <= 1020): t[l] = sum of a[j] over the set bits j of l. */
BNN_INLINE void nibble_sums(const uint32_t a[4], uint32_t t[16])
{
    t[0] = 0u;
    t[1] = a[0];
    t[2] = a[1];
    t[3] = a[0] + a[1];
    t[4] = a[2];
    t[5] = t[1] + a[2];
    t[6] = t[2] + a[2];
    t[7] = t[3] + a[2];
    for (uint32_t k = 0; k < 8u; ++k) {
        t[8u + k] = t[k] + a[3];
    }
}

/* Store two table entries (a packed pair) at dst[0], dst[1]. */
BNN_INLINE void put_pair(uint16_t *dst, uint32_t v) { memcpy(dst, &v, sizeof v); }

/* Tables T_g for groups g in [0, ngroups) of in[0..n) (inputs past n count as 0). */
static void lut_build(bnn_first_lut_t *lut, const uint8_t *in, uint32_t n, uint32_t ngroups)
{
    for (uint32_t g = 0; g < ngroups; ++g) {
        uint32_t x[8], lo[16], hi[16];
        for (uint32_t j = 0; j < 8u; ++j) {
            x[j] = 8u * g + j < n ? in[8u * g + j] : 0u;
        }
        nibble_sums(x, lo);
        nibble_sums(x + 4, hi);
        const uint32_t p0 = BNN_PAIR(lo[0], lo[1]), p1 = BNN_PAIR(lo[2], lo[3]);
        const uint32_t p2 = BNN_PAIR(lo[4], lo[5]), p3 = BNN_PAIR(lo[6], lo[7]);
        const uint32_t p4 = BNN_PAIR(lo[8], lo[9]), p5 = BNN_PAIR(lo[10], lo[11]);
        const uint32_t p6 = BNN_PAIR(lo[12], lo[13]), p7 = BNN_PAIR(lo[14], lo[15]);
        uint16_t *dst = lut->sum + 256u * g;
        for (uint32_t h = 0; h < 16u; ++h) { /* T_g[16h + l] = L[l] + H[h], two entries per add */
            const uint32_t hh = hi[h] * 0x00010001u;
            put_pair(dst + 0, p0 + hh);
            put_pair(dst + 2, p1 + hh);
            put_pair(dst + 4, p2 + hh);
            put_pair(dst + 6, p3 + hh);
            put_pair(dst + 8, p4 + hh);
            put_pair(dst + 10, p5 + hh);
            put_pair(dst + 12, p6 + hh);
            put_pair(dst + 14, p7 + hh);
            dst += 16;
        }
    }
}

/* sum_{bit=1} x_i over the 32 inputs of weight word m, from the 4 tables at t. */
BNN_INLINE uint32_t lut_word(const uint16_t *t, bnn_word_t m)
{
    return (uint32_t)t[m & 0xffu] + t[256u + ((m >> 8) & 0xffu)] + t[512u + ((m >> 16) & 0xffu)] +
           t[768u + (m >> 24)];
}

/* sum_{bit=1} x_i of one row: tables for the first nlw words, selects for the rest. */
BNN_INLINE uint32_t row_masked_sum(const uint16_t *t, uint32_t nlw, const uint8_t *in, uint32_t n,
                                   const bnn_word_t *row)
{
    uint32_t s = 0;
    uint32_t q = 0;
    for (; q < nlw; ++q) {
        s += lut_word(t, row[q]);
        t += 1024;
    }
    for (uint32_t i = 32u * q; i < n; i += 32u) {
        const bnn_word_t m = row[i / 32u];
        const uint32_t lim = n - i < 32u ? n - i : 32u;
        for (uint32_t b = 0; b < lim; ++b) {
            s += in[i + b] & (0u - ((m >> b) & 1u));
        }
    }
    return s;
}

/* sum_i x_i into *total, tables for the leading words; returns how many words they cover. */
static uint32_t lut_prepare(bnn_first_lut_t *lut, const uint8_t *in, uint32_t n, int32_t *total)
{
    const uint32_t nw = BNN_WORDS(n);
    const uint32_t nlw = nw < BNN_FIRST_LUT_INPUTS / 32u ? nw : BNN_FIRST_LUT_INPUTS / 32u;
    int32_t sum = 0;
    for (uint32_t i = 0; i < n; ++i) {
        sum += in[i];
    }
    *total = sum;
    lut_build(lut, in, n, 4u * nlw);
    return nlw;
}

/* Kept out of line so the table is addressed through one pointer register rather than
 * large stack offsets. */
#if defined(__GNUC__)
#define BNN_NOINLINE __attribute__((noinline))
#else
#define BNN_NOINLINE
#endif

BNN_NOINLINE static void lut_rows_acc(const uint16_t *t, uint32_t nlw, const bnn_first_params_t *p,
                                      const uint8_t *in, const bnn_word_t *w, int32_t total, int32_t *acc)
{
    const uint32_t n = p->n_in, nw = BNN_WORDS(n);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        acc[o] = 2 * (int32_t)row_masked_sum(t, nlw, in, n, w) - total;
        w += nw;
    }
}

void bnn_first_u8_bin_acc(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                          int32_t *acc)
{
    bnn_first_lut_t lut;
    int32_t total;
    const uint32_t nlw = lut_prepare(&lut, in, p->n_in, &total);
    lut_rows_acc(lut.sum, nlw, p, in, w, total, acc);
}

void bnn_first_u8_bin_bits_ref(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                               const int32_t *thr, bnn_word_t *out)
{
    for (uint32_t k = 0; k < BNN_WORDS(p->n_out); ++k) {
        out[k] = 0;
    }
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t a;
        bnn_first_params_t one = {p->n_in, 1u};
        bnn_first_u8_bin_acc_ref(&one, in, w + o * BNN_WORDS(p->n_in), &a);
        bnn_put_bit(out, o, a >= thr[o]);
    }
}

/* Rows one at a time so no n_out-sized scratch is needed; bits are shifted in at bit 31. */
BNN_NOINLINE static void lut_rows_bits(const uint16_t *t, uint32_t nlw, const bnn_first_params_t *p,
                                       const uint8_t *in, const bnn_word_t *w, int32_t total,
                                       const int32_t *thr, bnn_word_t *out)
{
    const uint32_t n = p->n_in, nw = BNN_WORDS(n);
    for (uint32_t o = 0; o < p->n_out; o += 32u) {
        const uint32_t cnt = p->n_out - o < 32u ? p->n_out - o : 32u;
        bnn_word_t bits = 0;
        for (uint32_t j = 0; j < cnt; ++j) {
            const int32_t a = 2 * (int32_t)row_masked_sum(t, nlw, in, n, w) - total;
            w += nw;
            bits = (bits >> 1) | ((bnn_word_t)(a >= *thr++) << 31);
        }
        *out++ = bits >> (32u - cnt); /* row o + j at bit j, padding bits 0 */
    }
}

/* The same for rows of exactly two words, both covered by tables (33..64 inputs). */
BNN_NOINLINE static void lut_rows_bits_2w(const uint16_t *t, uint32_t n_out, const bnn_word_t *w,
                                          int32_t total, const int32_t *thr, bnn_word_t *out)
{
    const uint16_t *t1 = t + 1024;
    for (uint32_t o = 0; o < n_out; o += 32u) {
        const uint32_t cnt = n_out - o < 32u ? n_out - o : 32u;
        bnn_word_t bits = 0;
        for (uint32_t j = 0; j < cnt; ++j) {
            const int32_t a = 2 * (int32_t)(lut_word(t, w[0]) + lut_word(t1, w[1])) - total;
            w += 2;
            bits = (bits >> 1) | ((bnn_word_t)(a >= *thr++) << 31);
        }
        *out++ = bits >> (32u - cnt);
    }
}

void bnn_first_u8_bin_bits(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                           const int32_t *thr, bnn_word_t *out)
{
    bnn_first_lut_t lut;
    int32_t total;
    const uint32_t nlw = lut_prepare(&lut, in, p->n_in, &total);
    if (nlw == 2u && BNN_WORDS(p->n_in) == 2u) {
        lut_rows_bits_2w(lut.sum, p->n_out, w, total, thr, out);
    } else {
        lut_rows_bits(lut.sum, nlw, p, in, w, total, thr, out);
    }
}

void bnn_first_u8_s8_acc_ref(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w,
                             int32_t *acc)
{
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s = 0;
        for (uint32_t i = 0; i < p->n_in; ++i) {
            s += (int32_t)in[i] * (int32_t)w[o * p->n_in + i];
        }
        acc[o] = s;
    }
}

/* 4-way unrolled multiply-accumulate (the compiler maps it to MLA / SMLABB). */
void bnn_first_u8_s8_acc(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w, int32_t *acc)
{
    const uint32_t n = p->n_in;
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        uint32_t i = 0;
        for (; i + 4u <= n; i += 4u) {
            s0 += (int32_t)in[i] * w[i];
            s1 += (int32_t)in[i + 1u] * w[i + 1u];
            s2 += (int32_t)in[i + 2u] * w[i + 2u];
            s3 += (int32_t)in[i + 3u] * w[i + 3u];
        }
        for (; i < n; ++i) {
            s0 += (int32_t)in[i] * w[i];
        }
        acc[o] = s0 + s1 + s2 + s3;
        w += n;
    }
}

void bnn_first_u8_s8_bits_ref(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w,
                              const int32_t *thr, bnn_word_t *out)
{
    for (uint32_t k = 0; k < BNN_WORDS(p->n_out); ++k) {
        out[k] = 0;
    }
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t a;
        bnn_first_params_t one = {p->n_in, 1u};
        bnn_first_u8_s8_acc_ref(&one, in, w + o * p->n_in, &a);
        bnn_put_bit(out, o, a >= thr[o]);
    }
}

void bnn_first_u8_s8_bits(const bnn_first_params_t *p, const uint8_t *in, const int8_t *w,
                          const int32_t *thr, bnn_word_t *out)
{
    bnn_first_params_t one = {p->n_in, 1u};
    bnn_word_t bits = 0;
    uint32_t o;
    for (o = 0; o < p->n_out; ++o) {
        int32_t a;
        bnn_first_u8_s8_acc(&one, in, w + o * p->n_in, &a);
        bits |= (bnn_word_t)(a >= thr[o]) << (o % 32u);
        if (o % 32u == 31u) {
            *out++ = bits;
            bits = 0;
        }
    }
    if (o % 32u) {
        *out = bits;
    }
    
}

void bnn_last_bin_s8_acc_ref(const bnn_first_params_t *p, const bnn_word_t *in, const int8_t *w,
                             int32_t *acc)
{
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s = 0;
        for (uint32_t i = 0; i < p->n_in; ++i) {
            int32_t wi = w[o * p->n_in + i];
            s += bnn_get_bit(in, i) ? wi : -wi;
        }
        acc[o] = s;
    }
}

/* sum s_i w_i = 2 * sum_{bit=1} w_i - sum_i w_i (row sums computed on the fly). */
void bnn_last_bin_s8_acc(const bnn_first_params_t *p, const bnn_word_t *in, const int8_t *w,
                         int32_t *acc)
{
    const uint32_t n = p->n_in;
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t pos = 0, tot = 0;
        for (uint32_t i = 0; i < n; i += 32u) {
            bnn_word_t m = in[i / 32u];
            uint32_t lim = n - i < 32u ? n - i : 32u;
            for (uint32_t b = 0; b < lim; ++b) {
                int32_t wi = w[i + b];
                tot += wi;
                pos += wi & -(int32_t)((m >> b) & 1u);
            }
        }
        acc[o] = 2 * pos - tot;
        w += n;
    }
}
