/* SPDX-License-Identifier: MIT */
/*
 * kernel_driver.c -- runs a batch of kernel cases for tests/test_firmware_kernels.py, so one
 * firmware image per core (and one QEMU run per batch) covers every size.
 * Reads case.bin: little-endian uint32 words, the number of cases, then per case its length
 * in words and the case (kind, then parameters, then the input arrays, each padded to whole
 * words).  Runs the _ref and the optimized variants and writes out.bin: per case its output
 * length in words, then the outputs (uint32/int32 words, in the order listed per kind).
 * Host: stdio.  Cortex-M (QEMU): semihosting via the harness.  Returns 0 or 2 (I/O), 3 (bad case).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bnn_conv.h"
#include "bnn_dense.h"
#include "bnn_first.h"
#include "bnn_periodic.h"
#include "bnn_pool.h"
#include "bnn_threshold.h"

#include "driver_io.h"

static int run_case(void)
{
    uint32_t kind = u32();
    if (kind == 1u) {
        bnn_dense_params_t p = {u32(), u32()};
        const bnn_word_t *x = take(W(p.n_in));
        const bnn_word_t *w = take((size_t)p.n_out * W(p.n_in));
        const int32_t *mm = (const int32_t *)take(p.n_out);
        if (bad) return 3;
        bnn_dense_bits_ref(&p, x, w, mm, put(W(p.n_out)));
        bnn_dense_bits(&p, x, w, mm, put(W(p.n_out)));
        bnn_dense_acc_ref(&p, x, w, put(p.n_out));
        {
            /* one canary word past the logits: the popcount stores must stop at n_out */
            int32_t *a = (int32_t *)put(p.n_out + 1u);
            a[p.n_out] = (int32_t)0x5A5A5A5Au;
            bnn_dense_acc(&p, x, w, a);
        }
        {
            /* the row kernels by mode (bnn_bits.h, bnn__dbt2_pick), 32 rows per call: popcounts
             * from mode 1 (dedicated, the conv paths and bnn_dense_acc), bits from mode 3 and
             * popcounts from mode 2 (the shared body of BNN_DENSE_SHARED_ROWS), then a canary
             * word past mode 2's outputs; portable equivalents on the other targets */
            const uint32_t nw = W(p.n_in);
            int32_t *pc1 = (int32_t *)put(p.n_out);
            bnn_word_t *b3 = (bnn_word_t *)put(W(p.n_out));
            int32_t *pc2 = (int32_t *)put(p.n_out + 1u);
            pc2[p.n_out] = (int32_t)0x5A5A5A5Au;
#if BNN_MULTI_ASM /* Helium on the M55: bnn__dbt2_pick returns its rows for every mode */
            const bnn__dbt2_fn f1 = bnn__dbt2_pick(nw, 1u), f2 = bnn__dbt2_pick(nw, 2u), f3 = bnn__dbt2_pick(nw, 3u);
            for (uint32_t o = 0; o < p.n_out; o += 32u) {
                const uint32_t cnt = p.n_out - o < 32u ? p.n_out - o : 32u;
                const uint32_t nc = (nw << 5) | (cnt - 1u);
                (void)f1(x, w + (size_t)o * nw, (const int32_t *)(pc1 + o), nc);
                b3[o / 32u] = f3(x, w + (size_t)o * nw, mm + o, nc) >> (32u - cnt);
                (void)f2(x, w + (size_t)o * nw, (const int32_t *)(pc2 + o), nc);
            }
#else
            for (uint32_t o = 0; o < p.n_out; ++o) {
                pc1[o] = pc2[o] = (int32_t)bnn_xor_popcount(x, w + (size_t)o * nw, nw);
            }
            bnn_dense_bits_ref(&p, x, w, mm, b3);
#endif
        }
    } else if (kind == 2u || kind == 3u) {
        bnn_first_params_t p = {u32(), u32()};
        const uint8_t *x = (const uint8_t *)take(BYTES_W(p.n_in));
        const void *w = kind == 2u ? (const void *)take((size_t)p.n_out * W(p.n_in))
                                   : (const void *)take(BYTES_W((size_t)p.n_out * p.n_in));
        const int32_t *thr = (const int32_t *)take(p.n_out);
        if (bad) return 3;
        if (kind == 2u) {
            bnn_first_u8_bin_acc_ref(&p, x, w, put(p.n_out));
            bnn_first_u8_bin_acc(&p, x, w, put(p.n_out));
            bnn_first_u8_bin_bits_ref(&p, x, w, thr, put(W(p.n_out)));
            bnn_first_u8_bin_bits(&p, x, w, thr, put(W(p.n_out)));
        } else {
            bnn_first_u8_s8_acc_ref(&p, x, w, put(p.n_out));
            bnn_first_u8_s8_acc(&p, x, w, put(p.n_out));
            bnn_first_u8_s8_bits_ref(&p, x, w, thr, put(W(p.n_out)));
            bnn_first_u8_s8_bits(&p, x, w, thr, put(W(p.n_out)));
        }
    } else if (kind == 4u) {
        bnn_first_params_t p = {u32(), u32()};
        const bnn_word_t *x = take(W(p.n_in));
        const int8_t *w = (const int8_t *)take(BYTES_W((size_t)p.n_out * p.n_in));
        if (bad) return 3;
        bnn_last_bin_s8_acc_ref(&p, x, w, put(p.n_out));
        bnn_last_bin_s8_acc(&p, x, w, put(p.n_out));
    } else if (kind == 5u || kind == 6u) {
        bnn_conv_params_t p;
        uint32_t v[12];
        for (int i = 0; i < 12; ++i) v[i] = u32();
        p.in_h = v[0]; p.in_w = v[1]; p.cin = v[2]; p.out_h = v[3]; p.out_w = v[4]; p.cout = v[5];
        p.kh = v[6]; p.kw = v[7]; p.stride_h = v[8]; p.stride_w = v[9]; p.pad_h = v[10]; p.pad_w = v[11];
        size_t npos = (size_t)p.out_h * p.out_w;
        const void *x = kind == 5u ? (const void *)take((size_t)p.in_h * p.in_w * W(p.cin))
                                   : (const void *)take(BYTES_W((size_t)p.in_h * p.in_w * p.cin));
        const bnn_word_t *w = take((size_t)p.cout * p.kh * p.kw * W(p.cin));
        const int32_t *thr = (const int32_t *)take(p.cout);
        if (bad) return 3;
        if (kind == 5u) {
            bnn_conv_bits_ref(&p, x, w, thr, put(npos * W(p.cout)));
            bnn_conv_bits(&p, x, w, thr, put(npos * W(p.cout)));
            bnn_conv_acc_ref(&p, x, w, put(npos * p.cout));
            bnn_conv_acc(&p, x, w, put(npos * p.cout));
            bnn_conv_bits_m1_ref(&p, x, w, thr, put(npos * W(p.cout))); /* -1 padding */
            bnn_conv_bits_m1(&p, x, w, thr, put(npos * W(p.cout)));
        } else {
            bnn_conv_u8_bits_ref(&p, x, w, thr, put(npos * W(p.cout)));
            bnn_conv_u8_bits(&p, x, w, thr, put(npos * W(p.cout)));
            bnn_conv_u8_acc_ref(&p, x, w, put(npos * p.cout));
            bnn_conv_u8_acc(&p, x, w, put(npos * p.cout));
        }
    } else if (kind == 7u) {
        bnn_pool_params_t p;
        uint32_t v[9];
        for (int i = 0; i < 9; ++i) v[i] = u32();
        p.in_h = v[0]; p.in_w = v[1]; p.c = v[2]; p.out_h = v[3]; p.out_w = v[4];
        p.kh = v[5]; p.kw = v[6]; p.stride_h = v[7]; p.stride_w = v[8];
        const bnn_word_t *x = take((size_t)p.in_h * p.in_w * W(p.c));
        if (bad) return 3;
        bnn_maxpool_ref(&p, x, put((size_t)p.out_h * p.out_w * W(p.c)));
        bnn_maxpool(&p, x, put((size_t)p.out_h * p.out_w * W(p.c)));
    } else if (kind == 8u) {
        bnn_threshold_params_t p = {u32(), u32()};
        const int32_t *acc = (const int32_t *)take((size_t)p.positions * p.channels);
        const int32_t *thr = (const int32_t *)take(p.channels);
        const int8_t *dir = (const int8_t *)take(BYTES_W(p.channels));
        if (bad) return 3;
        bnn_threshold_ref(&p, acc, thr, dir, put((size_t)p.positions * W(p.channels)));
        bnn_threshold(&p, acc, thr, dir, put((size_t)p.positions * W(p.channels)));
    } else if (kind == 10u) { /* bnn_conv_acc_rows: -1 padding one output row per call and all rows
                                * in one call, then zero padding one row per call */
        bnn_conv_params_t p;
        uint32_t v[12];
        for (int i = 0; i < 12; ++i) v[i] = u32();
        p.in_h = v[0]; p.in_w = v[1]; p.cin = v[2]; p.out_h = v[3]; p.out_w = v[4]; p.cout = v[5];
        p.kh = v[6]; p.kw = v[7]; p.stride_h = v[8]; p.stride_w = v[9]; p.pad_h = v[10]; p.pad_w = v[11];
        const size_t row = (size_t)p.out_w * p.cout;
        const bnn_word_t *x = take((size_t)p.in_h * p.in_w * W(p.cin));
        const bnn_word_t *w = take((size_t)p.cout * p.kh * p.kw * W(p.cin));
        if (bad) return 3;
        int32_t *a = put(p.out_h * row);
        for (uint32_t oy = 0; oy < p.out_h; ++oy) bnn_conv_acc_rows(&p, x, w, oy, oy + 1u, 1, a + oy * row);
        bnn_conv_acc_rows(&p, x, w, 0u, p.out_h, 1, put(p.out_h * row));
        a = put(p.out_h * row);
        for (uint32_t oy = 0; oy < p.out_h; ++oy) bnn_conv_acc_rows(&p, x, w, oy, oy + 1u, 0, a + oy * row);
        a = put(p.out_h * row); /* the popcounts (K - acc) / 2 at -1 padding, one row per call */
        for (uint32_t oy = 0; oy < p.out_h; ++oy) bnn_conv_pop_rows(&p, x, w, oy, oy + 1u, 1, a + oy * row);
    } else if (kind == 9u) {
        bnn_periodic_params_t p;
        p.out_frac = u32();
        p.phase_mul = (int32_t)u32();
        p.phase_shift = u32();
        p.table_bits = u32();
        p.lin_a = (int32_t)u32();
        p.lin_n = u32();
        uint32_t n = u32();
        p.table = (const int32_t *)take((size_t)1u << p.table_bits);
        const int32_t *x = (const int32_t *)take(n);
        if (bad) return 3;
        bnn_periodic_lut(&p, x, put(n), n);
        bnn_periodic_taylor(&p, x, put(n), n);
        bnn_periodic_linear(&p, x, put(n), n);
    } else {
        return 3;
    }
    return bad ? 3 : 0;
}
