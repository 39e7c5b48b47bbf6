/* SPDX-License-Identifier: MIT */
/*
 * bnn_vcols.c -- column-sliced binary popcounts (bnn_vcols.h).  The _ref functions are the
 * plain definitions every fast variant is tested against.
 */
#include "bnn_vcols.h"

uint32_t bnn_vc_select_ref(const bnn_word_t *x, uint32_t k, uint32_t *idx, uint32_t *n1)
{
    uint32_t ones = 0;
    for (uint32_t i = 0; i < k; ++i) {
        ones += (x[i / 32u] >> (i % 32u)) & 1u;
    }
    *n1 = ones;
    const uint32_t want = ones <= k - ones ? 1u : 0u; /* S1 when it is not the larger set */
    uint32_t m = 0;
    for (uint32_t i = 0; i < k; ++i) {
        if (((x[i / 32u] >> (i % 32u)) & 1u) == want) {
            idx[m++] = i;
        }
    }
    return m;
}

void bnn_vc_count_ref(const bnn_vc_seg_t *seg, uint32_t nseg, bnn_word_t *q, uint32_t nq)
{
    for (uint32_t r = 0; r < 32u; ++r) {
        uint32_t cnt = 0;
        for (uint32_t j = 0; j < nq; ++j) {
            cnt |= ((q[j] >> r) & 1u) << j;
        }
        for (uint32_t s = 0; s < nseg; ++s) {
            for (uint32_t k = 0; k < seg[s].m; ++k) {
                cnt += (seg[s].base[seg[s].idx[k]] >> r) & 1u;
            }
        }
        for (uint32_t j = 0; j < nq; ++j) {
            q[j] = (q[j] & ~(1u << r)) | (((cnt >> j) & 1u) << r);
        }
    }
}

bnn_word_t bnn_vc_ge_ref(const bnn_word_t *q, uint32_t nq, const bnn_word_t *t, uint32_t nt, int32_t bias)
{
    bnn_word_t out = 0;
    for (uint32_t r = 0; r < 32u; ++r) {
        int64_t qv = 0, tv = 0;
        for (uint32_t j = 0; j < nq; ++j) {
            qv |= (int64_t)((q[j] >> r) & 1u) << j;
        }
        for (uint32_t j = 0; j < nt; ++j) {
            tv |= (int64_t)((t[j] >> r) & 1u) << j;
        }
        if ((t[nt - 1u] >> r) & 1u) {
            tv -= (int64_t)1 << nt; /* sign plane set: two's complement over nt planes */
        }
        if (2 * qv >= tv + bias) {
            out |= 1u << r;
        }
    }
    return out;
}

/* Portable entry points until the fast variants land: the reference definitions. */
uint32_t(bnn_vc_select)(const bnn_word_t *x, uint32_t k, uint32_t *idx, uint32_t *n1)
{
    return bnn_vc_select_ref(x, k, idx, n1);
}

void(bnn_vc_count)(const bnn_vc_seg_t *seg, uint32_t nseg, bnn_word_t *q, uint32_t nq)
{
    bnn_vc_count_ref(seg, nseg, q, nq);
}

bnn_word_t(bnn_vc_ge)(const bnn_word_t *q, uint32_t nq, const bnn_word_t *t, uint32_t nt, int32_t bias)
{
    return bnn_vc_ge_ref(q, nq, t, nt, bias);
}
