/* SPDX-License-Identifier: MIT */
/* bnn_dense.c -- binary fully-connected layer: reference and optimized variants. */
#include "bnn_dense.h"

static int32_t dense_dot_ref(const bnn_word_t *in, const bnn_word_t *row, uint32_t n_in)
{
    int32_t acc = 0;
    for (uint32_t i = 0; i < n_in; ++i) {
        acc += bnn_get_bit(in, i) == bnn_get_bit(row, i) ? 1 : -1;
    }
    return acc;
}

void bnn_dense_bits_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                        const int32_t *max_mismatch, bnn_word_t *out)
{
    uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t k = 0; k < BNN_WORDS(p->n_out); ++k) {
        out[k] = 0;
    }
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t acc = dense_dot_ref(in, w + o * nw, p->n_in);
        int32_t mism = ((int32_t)p->n_in - acc) / 2; /* exact: K - acc = 2p */
        bnn_put_bit(out, o, mism <= max_mismatch[o]);
    }
}

void bnn_dense_acc_ref(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       int32_t *acc)
{
    uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        acc[o] = dense_dot_ref(in, w + o * nw, p->n_in);
    }
}

/*
 * Optimized: one xor-popcount per row with the compile-time strategy.  The threshold
 * test is branch-free: (p - M - 1) is negative exactly when p <= M, so its sign bit is
 * the output bit.  Bits are shifted in from the top, (word >> 1) | sign, so after 32
 * rows row j of the word sits at bit j; a partial last word is shifted down at the end
 * and its padding bits are 0.
 */
void(bnn_dense_bits)(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                     const int32_t *max_mismatch, bnn_word_t *out)
{
#if BNN_MULTI_ASM
    bnn__dense_bits_t2(p, in, w, max_mismatch, out); /* any row length, bnn_bits.c */
#elif BNN_M0_ASM
    bnn__dense_bits_m0(p, in, w, max_mismatch, out);
#else
    const uint32_t nw = BNN_WORDS(p->n_in);
    const uint32_t n_out = p->n_out;
    uint32_t o = 0;
    while (o < n_out) {
        uint32_t bits = 0;
        uint32_t left = n_out - o;
        uint32_t cnt = left < 32u ? left : 32u;
        for (uint32_t j = 0; j < cnt; ++j) {
            uint32_t pc = bnn_xor_popcount_adv(in, &w, nw);
            uint32_t d = pc + (uint32_t)(~max_mismatch[o + j]); /* p - M - 1 (mod 2^32) */
            bits = (bits >> 1) | (d & 0x80000000u);
        }
        o += cnt;
        *out++ = bits >> (32u - cnt);
    }
#endif
}

void(bnn_dense_acc)(const bnn_dense_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                    int32_t *acc)
{
#if BNN_MULTI_ASM
    bnn__dense_acc_t2(p, in, w, acc);
#elif BNN_M0_ASM
    bnn__dense_acc_m0(p, in, w, acc);
#else
    const uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        acc[o] = (int32_t)p->n_in - 2 * (int32_t)bnn_xor_popcount_adv(in, &w, nw);
    }
#endif
}

/* ---------------------------------------------------------------- column-sliced layer */

/* Plain definition from the stored layout: C_r and p_r counted bit by bit, T1_r = 2 (off - V_r) +
 * 1 - NP_r decoded from the T1 set, M_r = C_r - T1_r, bit = (p_r <= M_r). */
void bnn_dense_vbits_ref(const bnn_dense_vparams_t *p, const bnn_word_t *in, const bnn_word_t *wc,
                         const bnn_word_t *tv, bnn_word_t *out)
{
    const uint32_t k = p->n_in, nv = p->nv;
    for (uint32_t o = 0; o < p->n_out; o += 32u) {
        const bnn_word_t *col = wc + (o / 32u) * (k + 3u);
        const bnn_word_t *v1 = tv + (o / 32u) * nv; /* the T1 set */
        bnn_word_t bits = 0;
        for (uint32_t r = 0; r < 32u && o + r < p->n_out; ++r) {
            int32_t c = 0, mism = 0, v = 0;
            for (uint32_t i = 0; i < k; ++i) {
                const uint32_t wb = (col[i] >> r) & 1u;
                c += (int32_t)wb;
                mism += (int32_t)(wb ^ (uint32_t)bnn_get_bit(in, i));
            }
            for (uint32_t j = 0; j < nv; ++j) {
                v |= (int32_t)((v1[j] >> r) & 1u) << j;
            }
            const int32_t t1 = 2 * ((int32_t)p->off - v) + 1 - (int32_t)((col[k + 1u] >> r) & 1u);
            bits |= (bnn_word_t)(mism <= c - t1) << r; /* p_r <= M_r */
        }
        out[o / 32u] = bits;
    }
}

/* One index list per call, reused by every group of 32 outputs; per group (bnn_vc_groups): start
 * values (+ the NP column when bias is even), count, compare with one constant. */
void(bnn_dense_vbits)(const bnn_dense_vparams_t *p, const bnn_word_t *in, const bnn_word_t *wc,
                      const bnn_word_t *tv, uint32_t *idx, bnn_word_t *out)
{
    const uint32_t k = p->n_in;
    uint32_t n1;
    uint32_t m = bnn_vc_select(in, k, idx, &n1);
    const int s1 = n1 <= k - n1;
    const uint32_t bias = s1 ? n1 : k - n1;
    bnn_vc_group_job_t job;
    job.npcol = BNN_VC_NO_COL;
    if ((bias & 1u) == 0u) { /* bias even: count NP too, */
        const uint32_t np = s1 ? k + 1u : k + 2u;
        if (m & 15u) {
            idx[m++] = np; /* listed where it takes the place of a zero column, */
        } else {
            job.npcol = np; /* else added to the start values (a whole block of 16 saved) */
        }
    }
    const uint32_t mp = (m + 15u) & ~15u;
    for (uint32_t j = m; j < mp; ++j) {
        idx[j] = k; /* the zero column of every group */
    }
    job.idx = idx;
    job.end = idx + mp;
    job.c = p->off + bias / 2u + 1u;
    job.shape = p->shape;
    job.nflip = s1 ? ~(bnn_word_t)0u : 0u;
    const uint32_t groups = p->shape.ngroups;
    bnn_vc_groups(wc, &job, tv + (s1 ? 0u : groups * p->nv), out);
    const uint32_t left = p->n_out & 31u;
    if (left) {
        out[groups - 1u] &= ((bnn_word_t)1u << left) - 1u; /* rows past n_out: 0 */
    }
}
