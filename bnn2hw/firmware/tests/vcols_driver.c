/* SPDX-License-Identifier: MIT */
/*
 * vcols_driver.c -- runs a batch of column-sliced kernel cases (bnn_vcols.h, bnn_dense_vbits) for
 * tests/test_vcols.py: the _ref and fast variant of each, one image per core.  File format and
 * I/O as kernel_driver.c (case.bin in, out.bin out).  Kinds:
 *   1 select:  k, x[W(k)]                        -> ref: n1, m, idx[k/2]; fast: n1, m, idx[k/2]
 *   2 count:   nq, nseg, ncols, cols[ncols], per segment: offset, m, idx[m]  (q starts at given
 *              planes q0[nq]) -> ref q[nq], fast q[nq] + the OR of planes nq .. 3 (must be 0) + the word past them (0x5A5A5A5A)
 *   3 ge:      n, nq, nt, then per case: bias, q[nq], t[nt]  -> ref word, fast word (per case)
 *   4 dense:   k, n_out, nq, nv, off, x, wc, tv  -> ref out[W(n_out)], fast out[W(n_out)], idx guard
 *   5 ge_const: n, nq, then per case: c, q[nq]   -> ref word, fast word (per case)
 *   6 groups:  nv, nq, stride, ngroups, npcol, flip, cols[stride ngroups], v[nv ngroups], m (a multiple
 *              of 16), idx[m], n, c[n]  -> per c: ref out[ngroups], fast out[ngroups]
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bnn_dense.h"
#include "bnn_vcols.h"

#ifndef VC_MAX_K /* largest K of a select / dense case (the index scratch below) */
#define VC_MAX_K 4096u
#endif
static uint32_t idx[BNN_DENSE_VIDX_WORDS(VC_MAX_K) + 1u];

#include "driver_io.h"

static int run_case(void)
{
    uint32_t kind = u32();
    if (kind == 1u) {
        const uint32_t k = u32();
        const bnn_word_t *x = take(W(k));
        if (bad) return 3;
        if (k > VC_MAX_K) return 3;
        for (int v = 0; v < 2; ++v) {
            uint32_t *o = put(2u + k / 2u);
            uint32_t n1 = 0;
            for (uint32_t i = 0; i < k / 2u; ++i) idx[i] = 0xFFFFFFFFu;
            const uint32_t m = v ? bnn_vc_select(x, k, idx, &n1) : bnn_vc_select_ref(x, k, idx, &n1);
            o[0] = n1;
            o[1] = m;
            memcpy(o + 2, idx, 4u * (k / 2u));
        }
    } else if (kind == 2u) {
        const uint32_t nq = u32(), nseg = u32(), ncols = u32();
        const bnn_word_t *q0 = take(nq);
        const bnn_word_t *cols = take(ncols);
        bnn_vc_seg_t seg[16];
        if (bad || nseg > 16u || nq > BNN_VC_MAX_PLANES) return 3;
        for (uint32_t s = 0; s < nseg; ++s) {
            const uint32_t off = u32();
            seg[s].m = u32();
            seg[s].idx = take(seg[s].m);
            seg[s].base = cols + off;
        }
        if (bad) return 3;
        for (int v = 0; v < 2; ++v) {
            bnn_word_t q[BNN_VC_MAX_PLANES + 4];
            for (uint32_t j = 0; j < BNN_VC_MAX_PLANES + 4u; ++j) q[j] = 0x5A5A5A5Au;
            const uint32_t room = nq > 4u ? nq : 4u;
            for (uint32_t j = 0; j < room; ++j) q[j] = j < nq ? q0[j] : 0u;
            if (v) bnn_vc_count(seg, nseg, q, nq); else bnn_vc_count_ref(seg, nseg, q, nq);
            uint32_t *o = put(nq + 2u);
            memcpy(o, q, 4u * nq);
            o[nq] = 0;
            for (uint32_t j = nq; j < room; ++j) o[nq] |= q[j]; /* planes nq .. 3 stay 0 */
            o[nq + 1u] = q[room];                                /* past the room: untouched */
        }
    } else if (kind == 3u) {
        const uint32_t n = u32(), nq = u32(), nt = u32();
        uint32_t *o = put(2u * n);
        for (uint32_t c = 0; c < n && !bad; ++c) {
            const int32_t bias = (int32_t)u32();
            const bnn_word_t *q = take(nq);
            const bnn_word_t *t = take(nt);
            if (bad) return 3;
            o[2u * c] = bnn_vc_ge_ref(q, nq, t, nt, bias);
            o[2u * c + 1u] = bnn_vc_ge(q, nq, t, nt, bias);
        }
    } else if (kind == 4u) {
        const uint32_t k = u32(), n_out = u32(), nq = u32(), nv = u32(), off = u32();
        const bnn_dense_vparams_t p = BNN_DENSE_VPARAMS(k, n_out, nq, nv, off);
        const uint32_t groups = W(p.n_out);
        const bnn_word_t *x = take(W(p.n_in));
        const bnn_word_t *wc = take((size_t)groups * (p.n_in + 3u));
        const bnn_word_t *tp = take((size_t)2u * groups * p.nv);
        if (bad || p.n_in > VC_MAX_K) return 3;
        const uint32_t room = BNN_DENSE_VIDX_WORDS(p.n_in);
        idx[room] = 0x5A5A5A5Au;
        bnn_dense_vbits_ref(&p, x, wc, tp, put(groups));
        bnn_dense_vbits(&p, x, wc, tp, idx, put(groups));
        *(uint32_t *)put(1) = idx[room]; /* the scratch past its stated size: untouched */
    } else if (kind == 5u) {
        const uint32_t n = u32(), nq = u32();
        uint32_t *o = put(2u * n);
        for (uint32_t c = 0; c < n && !bad; ++c) {
            const uint32_t cst = u32();
            const bnn_word_t *q = take(nq);
            if (bad) return 3;
            o[2u * c] = bnn_vc_ge_const_ref(q, nq, cst);
            o[2u * c + 1u] = bnn_vc_ge_const(q, nq, cst);
        }
    } else if (kind == 6u) {
        const uint32_t nv = u32(), nq = u32(), stride = u32(), ngroups = u32(), npcol = u32(), flip = u32();
        const bnn_word_t *cols = take((size_t)stride * ngroups);
        const bnn_word_t *v = take((size_t)nv * ngroups);
        const uint32_t m = u32();
        const uint32_t *ix = take(m);
        const uint32_t n = u32();
        if (bad || nv < 4u || nv > BNN_VC_MAX_PLANES || nq > BNN_VC_MAX_PLANES || (m & 15u) != 0u || ngroups == 0u)
            return 3;
        const bnn_vc_group_job_t job0 = {ix, ix + m, 0u, BNN_VC_SHAPE(nq, nv, ngroups, stride), ~flip, npcol};
        bnn_vc_group_job_t job = job0;
        uint32_t *o = put(2u * n * ngroups);
        for (uint32_t c = 0; c < n && !bad; ++c) {
            job.c = u32();
            if (bad) return 3;
            bnn_vc_groups_ref(cols, &job, v, o + 2u * c * ngroups);
            bnn_vc_groups(cols, &job, v, o + (2u * c + 1u) * ngroups);
        }
    } else {
        return 3;
    }
    return bad ? 3 : 0;
}
