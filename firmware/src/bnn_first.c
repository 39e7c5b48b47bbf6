/* SPDX-License-Identifier: MIT */
/* bnn_first.c -- 8-bit first/last layers: reference and optimized variants. */
#include "bnn_first.h"

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

/* 2 * sum_{bit=1} x_i - sum_i x_i: the total is computed once, the masked sum per row
 * branch-free (x & -bit). */
void bnn_first_u8_bin_acc(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                          int32_t *acc)
{
    const uint32_t n = p->n_in;
    int32_t total = 0;
    for (uint32_t i = 0; i < n; ++i) {
        total += in[i];
    }
    for (uint32_t o = 0; o < p->n_out; ++o) {
        uint32_t s = 0;
        uint32_t i = 0;
        while (i < n) {
            bnn_word_t m = *w++;
            uint32_t lim = n - i < 32u ? n - i : 32u;
            for (uint32_t b = 0; b < lim; ++b) {
                s += in[i + b] & (0u - ((m >> b) & 1u));
            }
            i += lim;
        }
        acc[o] = 2 * (int32_t)s - total;
    }
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

void bnn_first_u8_bin_bits(const bnn_first_params_t *p, const uint8_t *in, const bnn_word_t *w,
                           const int32_t *thr, bnn_word_t *out)
{
    /* rows one at a time so no n_out-sized scratch is needed */
    const uint32_t nw = BNN_WORDS(p->n_in);
    bnn_first_params_t one = {p->n_in, 1u};
    bnn_word_t bits = 0;
    uint32_t o;
    for (o = 0; o < p->n_out; ++o) {
        int32_t a;
        bnn_first_u8_bin_acc(&one, in, w + o * nw, &a);
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
