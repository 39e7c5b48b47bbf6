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

#ifndef BUF_WORDS
#define BUF_WORDS (1u << 17)
#endif

static uint32_t in_buf[BUF_WORDS];
static uint32_t out_buf[BUF_WORDS];
static size_t in_words, rd, wr;

#if defined(__arm__) && !defined(BNN_HOST)
#include "bnn_harness.h"
static size_t load(void)
{
    int f = bnn_sh_open("case.bin", BNN_OPEN_RB);
    if (f < 0) {
        return 0;
    }
    size_t n = bnn_sh_read(f, in_buf, sizeof in_buf);
    (void)bnn_sh_close(f);
    return n;
}
static int save(void)
{
    int f = bnn_sh_open("out.bin", BNN_OPEN_WB);
    if (f < 0) {
        return -1;
    }
    size_t n = bnn_sh_write(f, out_buf, wr * 4u);
    (void)bnn_sh_close(f);
    return n == wr * 4u ? 0 : -1;
}
#else
#include <stdio.h>
static size_t load(void)
{
    FILE *f = fopen("case.bin", "rb");
    if (!f) {
        return 0;
    }
    size_t n = fread(in_buf, 1, sizeof in_buf, f);
    fclose(f);
    return n;
}
static int save(void)
{
    FILE *f = fopen("out.bin", "wb");
    if (!f) {
        return -1;
    }
    size_t n = fwrite(out_buf, 4, wr, f);
    fclose(f);
    return n == wr ? 0 : -1;
}
#endif

static int bad;

static const uint32_t *take(size_t words)
{
    if (rd + words > in_words) {
        bad = 1;
        return in_buf;
    }
    const uint32_t *p = in_buf + rd;
    rd += words;
    return p;
}

static uint32_t u32(void) { return *take(1); }

static void *put(size_t words)
{
    if (wr + words > BUF_WORDS) {
        bad = 1;
        return out_buf;
    }
    void *p = out_buf + wr;
    for (size_t i = 0; i < words; ++i) {
        out_buf[wr + i] = 0xA5A5A5A5u; /* poison: every output word must be written */
    }
    wr += words;
    return p;
}

#define W(n) BNN_WORDS(n)
#define BYTES_W(n) (((size_t)(n) + 3u) / 4u)

static int run_case(void);

int main(void)
{
    in_words = load() / 4u;
    if (in_words == 0) {
        return 2;
    }
    uint32_t cases = u32();
    for (uint32_t c = 0; c < cases && !bad; ++c) {
        size_t len = u32();
        size_t end = rd + len;
        if (end > in_words || wr + 1u > BUF_WORDS) {
            return 3;
        }
        size_t head = wr++;
        size_t saved = in_words;
        in_words = end; /* a case cannot read past its own words */
        int rc = run_case();
        in_words = saved;
        if (rc != 0 || bad || rd != end) {
            return 3;
        }
        out_buf[head] = (uint32_t)(wr - head - 1u);
    }
    if (bad) {
        return 3;
    }
    return save() == 0 ? 0 : 2;
}

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
        bnn_dense_vparams_t p;
        p.n_in = u32(); p.n_out = u32(); p.nq = u32(); p.nv = u32(); p.off = u32();
        const uint32_t groups = W(p.n_out);
        const bnn_word_t *x = take(W(p.n_in));
        const bnn_word_t *wc = take((size_t)groups * (p.n_in + 3u));
        const bnn_word_t *tp = take((size_t)groups * 2u * p.nv);
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
    } else {
        return 3;
    }
    return bad ? 3 : 0;
}
