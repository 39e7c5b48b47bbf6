/* SPDX-License-Identifier: MIT */
/* bnn_conv.c -- binary conv2d (packed HWC): reference and optimized variants. */
#include "bnn_conv.h"

/* Input coordinate of a tap, or -1 when it falls into the zero padding. */
static int32_t tap(uint32_t o, uint32_t stride, uint32_t pad, uint32_t k, uint32_t n)
{
    int32_t v = (int32_t)(o * stride + k) - (int32_t)pad;
    return (v >= 0 && v < (int32_t)n) ? v : -1;
}

static int32_t conv_acc_ref_one(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                uint32_t oy, uint32_t ox, uint32_t o)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    int32_t acc = 0;
    for (uint32_t ky = 0; ky < p->kh; ++ky) {
        int32_t y = tap(oy, p->stride_h, p->pad_h, ky, p->in_h);
        for (uint32_t kx = 0; kx < p->kw; ++kx) {
            int32_t x = tap(ox, p->stride_w, p->pad_w, kx, p->in_w);
            if (y < 0 || x < 0) {
                continue; /* zero padding: contributes 0 */
            }
            const bnn_word_t *a = in + ((uint32_t)y * p->in_w + (uint32_t)x) * cw;
            const bnn_word_t *b = w + ((o * p->kh + ky) * p->kw + kx) * cw;
            for (uint32_t c = 0; c < p->cin; ++c) {
                acc += bnn_get_bit(a, c) == bnn_get_bit(b, c) ? 1 : -1;
            }
        }
    }
    return acc;
}

void bnn_conv_acc_ref(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, int32_t *acc)
{
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            for (uint32_t o = 0; o < p->cout; ++o) {
                *acc++ = conv_acc_ref_one(p, in, w, oy, ox, o);
            }
        }
    }
}

void bnn_conv_bits_ref(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       const int32_t *thr, bnn_word_t *out)
{
    const uint32_t ow = BNN_WORDS(p->cout);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            bnn_word_t *dst = out + (oy * p->out_w + ox) * ow;
            for (uint32_t k = 0; k < ow; ++k) {
                dst[k] = 0;
            }
            for (uint32_t o = 0; o < p->cout; ++o) {
                bnn_put_bit(dst, o, conv_acc_ref_one(p, in, w, oy, ox, o) >= thr[o]);
            }
        }
    }
}

/*
 * Optimized.  Per output position the valid tap window [ky0, ky1) x [kx0, kx1) is found
 * once.
 *
 * Interior positions (window = the whole kernel, K = kh * kw * cin): the kh * kw * cw
 * input words of the receptive field are copied once into a contiguous patch, in the
 * order of a weight row.  Every output channel is then one dense-style xor-popcount of
 * patch against its contiguous weight row (bnn_xor_popcount_adv: 8-word Thumb-2
 * assembly chunks / portable multi-word SWAR, see bnn_bits.h), acc = K - 2 p.  The patch
 * lives on the stack (BNN_CONV_PATCH_WORDS words, default 128 = 512 bytes; larger
 * receptive fields use the border path everywhere).
 *
 * Border positions (window clipped by the zero padding): per output channel the
 * popcounts of the valid kernel rows are summed (the taps of a row are contiguous in
 * both the input and the weights) and acc = n_valid * cin - 2 p.
 *
 * Output bits are shifted in from the top, (bits >> 1) | bit << 31, so after cnt <= 32
 * channels channel j of the word sits at bit 32 - cnt + j; the final >> (32 - cnt)
 * leaves 0 in the padding bits.
 */
#ifndef BNN_CONV_PATCH_WORDS
#define BNN_CONV_PATCH_WORDS 128u
#endif

typedef struct {
    uint32_t ky0, ky1, kx0, kx1;
    int32_t y0, x0;
} window_t;

static window_t window(const bnn_conv_params_t *p, uint32_t oy, uint32_t ox)
{
    window_t win;
    int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
    int32_t x0 = (int32_t)(ox * p->stride_w) - (int32_t)p->pad_w;
    win.y0 = y0;
    win.x0 = x0;
    win.ky0 = y0 < 0 ? (uint32_t)(-y0) : 0u;
    win.kx0 = x0 < 0 ? (uint32_t)(-x0) : 0u;
    win.ky1 = p->kh;
    win.kx1 = p->kw;
    if (y0 + (int32_t)p->kh > (int32_t)p->in_h) {
        int32_t v = (int32_t)p->in_h - y0;
        win.ky1 = v > 0 ? (uint32_t)v : 0u;
    }
    if (x0 + (int32_t)p->kw > (int32_t)p->in_w) {
        int32_t v = (int32_t)p->in_w - x0;
        win.kx1 = v > 0 ? (uint32_t)v : 0u;
    }
    if (win.ky1 < win.ky0) {
        win.ky1 = win.ky0;
    }
    if (win.kx1 < win.kx0) {
        win.kx1 = win.kx0;
    }
    return win;
}

/* The window covers the whole kernel (no tap in the padding). */
static int window_full(const bnn_conv_params_t *p, const window_t *win)
{
    return win->ky0 == 0u && win->kx0 == 0u && win->ky1 == p->kh && win->kx1 == p->kw;
}

static int32_t conv_acc_one(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *wo,
                            const window_t *win)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    uint32_t pc = 0;
    for (uint32_t ky = win->ky0; ky < win->ky1; ++ky) {
        const bnn_word_t *a = in + ((uint32_t)(win->y0 + (int32_t)ky) * p->in_w +
                                    (uint32_t)(win->x0 + (int32_t)win->kx0)) * cw;
        const bnn_word_t *b = wo + (ky * p->kw + win->kx0) * cw;
        pc += bnn_xor_popcount(a, b, (win->kx1 - win->kx0) * cw); /* taps of a row are contiguous */
    }
    int32_t n_valid = (int32_t)((win->ky1 - win->ky0) * (win->kx1 - win->kx0));
    return n_valid * (int32_t)p->cin - 2 * (int32_t)pc;
}

/* Copies the receptive field of a full window (kh rows of kw * cw words) into patch. */
static void gather_bits(const bnn_conv_params_t *p, const bnn_word_t *in, const window_t *win,
                        bnn_word_t *patch)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    const uint32_t rw = p->kw * cw;
    const uint32_t step = p->in_w * cw;
    const bnn_word_t *src = in + ((uint32_t)win->y0 * p->in_w + (uint32_t)win->x0) * cw;
    for (uint32_t ky = 0; ky < p->kh; ++ky) {
        for (uint32_t i = 0; i < rw; ++i) {
            patch[i] = src[i];
        }
        patch += rw;
        src += step;
    }
}

/* All output channels of one interior position: n = kh * kw * cw patch words, k = kh * kw * cin. */
static bnn_word_t *patch_bits(const bnn_word_t *patch, uint32_t n, int32_t k, const bnn_word_t *w,
                              const int32_t *thr, uint32_t cout, bnn_word_t *out)
{
    uint32_t o = 0;
    while (o < cout) {
        uint32_t left = cout - o;
        uint32_t cnt = left < 32u ? left : 32u;
        uint32_t bits = 0;
        for (uint32_t j = 0; j < cnt; ++j) {
            int32_t a = k - 2 * (int32_t)bnn_xor_popcount_adv(patch, &w, n);
            bits = (bits >> 1) | ((uint32_t)(a >= thr[j]) << 31);
        }
        thr += cnt;
        o += cnt;
        *out++ = bits >> (32u - cnt);
    }
    return out;
}

/* Generic path (receptive fields over BNN_CONV_PATCH_WORDS words or BNN_CONV_MAX_TAPS taps). */
static void conv_bits_generic(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                              const int32_t *thr, bnn_word_t *out)
{
    const uint32_t n = p->kh * p->kw * BNN_WORDS(p->cin);
    const int32_t k = (int32_t)(p->kh * p->kw * p->cin);
    bnn_word_t patch[BNN_CONV_PATCH_WORDS];
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
            if (n <= BNN_CONV_PATCH_WORDS && window_full(p, &win)) {
                gather_bits(p, in, &win, patch);
                out = patch_bits(patch, n, k, w, thr, p->cout, out);
                continue;
            }
            bnn_word_t bits = 0;
            uint32_t o;
            for (o = 0; o < p->cout; ++o) {
                int32_t a = conv_acc_one(p, in, w + o * n, &win);
                bits |= (bnn_word_t)(a >= thr[o]) << (o % 32u);
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

/*
 * The conv as a dense layer over patches (bnn_conv_bits).
 *
 * For every output position the receptive field is gathered into a contiguous patch in
 * weight-row order, taps in the zero padding as zero bits.  The cout weight rows are then
 * rows of a dense layer over the patch, and one call of the dense row kernel (Thumb-2
 * assembly, bnn_bits.c; portable C elsewhere) produces up to 32 output bits at once, with
 * popcount-domain thresholds M (bnn_bits.h).
 *
 * Patch layout: n = kh * kw * cw words, one padded word group per tap, as the weights are
 * stored.  When cin is small (cin % 32 != 0 and the tap bits packed back to back fit
 * BNN_CONV_DENSE_WORDS words for a 32-channel chunk, e.g. cin <= 16 for 3x3) the taps are
 * packed densely instead, bit t * cin + c, into nd = ceil(kh kw cin / 32) words, and so are
 * the chunk's weight rows (once per chunk, on the stack): cin = 16 runs on 5 words per row
 * instead of 9.  bnn__conv_row_words() gives the row length either way.
 *
 * Padding correction (per position, no border loop): a padded tap holds 0 bits, so it adds
 * popcount(0 ^ w_t) = c_t (the number of +1 weights of tap t) to p, while it should
 * contribute nothing.  With p_full the patch popcount, P the padded taps of this position,
 * corr = sum_{t in P} c_t and K_v = (kh kw - |P|) cin valid inputs:
 *     acc = K_v - 2 (p_full - corr) >= thr  <=>  p_full <= floor((K_v + 2 corr - thr) / 2)
 * (clamped to [-1, 32 nw]).  Interior positions (P empty) share one M per channel computed
 * once per 32-channel chunk; border positions take M from a small cache, one slot per border
 * class (top / bottom x left / right, checked against the set P), filled from the tap counts c_t, which
 * are computed once per chunk (only when the conv has padding).
 * Loop order: 32-channel chunks outside, positions inside (the patch is gathered once per
 * position and chunk).
 */
#ifndef BNN_CONV_MAX_TAPS
#define BNN_CONV_MAX_TAPS 9u
#endif
#define BNN_CONV_CACHE 9u

static int32_t clamp_mm(int64_t v, uint32_t n)
{
    int64_t m = v >= 0 ? v / 2 : -1; /* floor(v / 2) for v >= 0; any v < 0 means "never" */
    return m > (int64_t)(32u * n) ? (int32_t)(32u * n) : (int32_t)m;
}

/* Bit mask of the taps of the window that fall into the padding (bit ky * kw + kx). */
static uint32_t padded_taps(const bnn_conv_params_t *p, const window_t *win)
{
    const uint32_t cols = ((1u << win->kx1) - 1u) & ~((1u << win->kx0) - 1u); /* valid kx */
    uint32_t valid = 0;
    for (uint32_t ky = win->ky0; ky < win->ky1; ++ky) {
        valid |= cols << (ky * p->kw);
    }
    return ~valid & ((1u << (p->kh * p->kw)) - 1u);
}

/* Gathers the window into patch: dense (cin bits per tap, back to back, nw words) or one
 * word group per tap (the valid taps of a kernel row are contiguous in the input); padded
 * taps give zero bits. */
static void gather_patch(const bnn_conv_params_t *p, const bnn_word_t *in, const window_t *win, int dense,
                         uint32_t nw, bnn_word_t *patch)
{
    /* the geometry in locals: the stores into patch (uint32) could alias *p and *win */
    const uint32_t cin = p->cin, cw = BNN_WORDS(cin), kw = p->kw, in_w = p->in_w;
    const uint32_t ky0 = win->ky0, ky1 = win->ky1, kx0 = win->kx0, kx1 = win->kx1;
    const int32_t y0 = win->y0, x0 = win->x0;
    for (uint32_t i = 0; i < nw; ++i) {
        patch[i] = 0u;
    }
    for (uint32_t ky = ky0; ky < ky1; ++ky) {
        const bnn_word_t *src = in + ((uint32_t)(y0 + (int32_t)ky) * in_w + (uint32_t)(x0 + (int32_t)kx0)) * cw;
        if (!dense) {
            bnn_word_t *dst = patch + (ky * kw + kx0) * cw;
            const uint32_t len = (kx1 - kx0) * cw;
            for (uint32_t i = 0; i < len; ++i) {
                dst[i] = src[i];
            }
            continue;
        }
        uint32_t off = (ky * kw + kx0) * cin; /* bit offset of the tap, stepped by cin */
        for (uint32_t kx = kx0; kx < kx1; ++kx, ++src, off += cin) {
            const uint32_t b = off % 32u;
            bnn_word_t *dst = patch + off / 32u;
            const bnn_word_t v = src[0];
            dst[0] |= v << b;
            if (b + cin > 32u) {
                dst[1] |= v >> (32u - b);
            }
        }
    }
}

/* cnt <= 32 rows of n words against patch, popcount thresholds mm: the packed bits. */
static uint32_t rows_bits(const bnn_word_t *patch, const bnn_word_t *w, const int32_t *mm, uint32_t n,
                          uint32_t cnt, bnn_conv_rows_fn fn)
{
#if BNN_MULTI_ASM || BNN_M0_ASM
    return fn(patch, w, mm, (n << 5) | (cnt - 1u)) >> (32u - cnt);
#else
    (void)fn;
    uint32_t bits = 0;
    for (uint32_t j = 0; j < cnt; ++j) {
        uint32_t d = bnn_xor_popcount_adv(patch, &w, n) + (uint32_t)(~mm[j]); /* p - M - 1 */
        bits = (bits >> 1) | (d & 0x80000000u);
    }
    return bits >> (32u - cnt);
#endif
}

/* pc[r] = popcount(x ^ w_r) for rows rows of n words (w_r = w + r n). */
static void rows_popcounts(const bnn_word_t *x, const bnn_word_t *w, uint32_t n, uint32_t rows, uint32_t *pc,
                           bnn_conv_rows_fn pfn)
{
#if BNN_MULTI_ASM
    for (uint32_t r = 0; r < rows; r += 32u) {
        const uint32_t cnt = rows - r < 32u ? rows - r : 32u;
        (void)pfn(x, w + r * n, (const int32_t *)(pc + r), (n << 5) | (cnt - 1u));
    }
#else
    (void)pfn;
    for (uint32_t r = 0; r < rows; ++r) {
        pc[r] = bnn_xor_popcount_adv(x, &w, n);
    }
#endif
}

/* Repack `rows` weight rows of `n` words, one word per tap (cin <= 32 channels in its low bits),
 * into rows of `nw` words with the taps' cin bits back to back (the "dense" patch layout). */
static void pack_dense_rows(const bnn_word_t *wc, uint32_t rows, uint32_t n, uint32_t nw, uint32_t taps,
                            uint32_t cin, bnn_word_t *wdense)
{
    for (uint32_t i = 0; i < rows * nw; ++i) {
        wdense[i] = 0u;
    }
    for (uint32_t j = 0; j < rows; ++j) {
        for (uint32_t t = 0; t < taps; ++t) {
            const bnn_word_t v = wc[j * n + t];
            const uint32_t off = t * cin;
            wdense[j * nw + off / 32u] |= v << (off % 32u);
            if (off % 32u + cin > 32u) {
                wdense[j * nw + off / 32u + 1u] |= v >> (32u - off % 32u);
            }
        }
    }
}

void bnn__conv_bits_rows(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                         const int32_t *thr, bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    const uint32_t taps = p->kh * p->kw;
    const uint32_t n = taps * cw;
    const uint32_t nw = bnn__conv_row_words(p);
    const int dense = nw != n;
    const uint32_t ow = BNN_WORDS(p->cout);
    const int has_pad = p->pad_h != 0u || p->pad_w != 0u;
    if (n > BNN_CONV_PATCH_WORDS || taps > BNN_CONV_MAX_TAPS || n == 0u) {
        conv_bits_generic(p, in, w, thr, out);
        return;
    }
    bnn_word_t patch[BNN_CONV_PATCH_WORDS];
    bnn_word_t wdense[BNN_CONV_DENSE_WORDS];
    int32_t m_full[32];
    int32_t m_cache[BNN_CONV_CACHE][32];
    uint32_t cache_key[BNN_CONV_CACHE];
    uint32_t tap_ones[32u * BNN_CONV_MAX_TAPS]; /* [j * taps + t] */
    for (uint32_t c0 = 0; c0 < p->cout; c0 += 32u) {
        const uint32_t left = p->cout - c0;
        const uint32_t cnt = left < 32u ? left : 32u;
        const bnn_word_t *wc = w + c0 * n;
        for (uint32_t j = 0; j < cnt; ++j) {
            m_full[j] = clamp_mm((int64_t)taps * p->cin - thr[c0 + j], nw);
        }
        for (uint32_t e = 0; e < BNN_CONV_CACHE; ++e) {
            cache_key[e] = 0u; /* 0 = empty: a border key has at least one padded tap */
        }
        if (has_pad) { /* c_t: +1 weights per tap = popcount(0 ^ w_t), the cnt * taps tap
                        * word groups as rows of cw words against a zero patch */
            for (uint32_t i = 0; i < cw; ++i) {
                patch[i] = 0u;
            }
            rows_popcounts(patch, wc, cw, cnt * taps, tap_ones, pfn);
        }
        if (dense) { /* the chunk's weight rows, taps packed back to back (cw == 1 here) */
            pack_dense_rows(wc, cnt, n, nw, taps, p->cin, wdense);
        }
        const bnn_word_t *rows = dense ? wdense : wc;
        bnn_word_t *dst = out + c0 / 32u;
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            for (uint32_t ox = 0; ox < p->out_w; ++ox, dst += ow) {
                window_t win = window(p, oy, ox);
                const int32_t *mm = m_full;
                if (window_full(p, &win)) {
                    if (dense) {
                        gather_patch(p, in, &win, 1, nw, patch);
                    } else {
                        gather_bits(p, in, &win, patch);
                    }
                } else {
                    gather_patch(p, in, &win, dense, nw, patch);
                    const uint32_t padded = padded_taps(p, &win);
                    /* border class: clipped at the top / bottom, left / right */
                    const uint32_t slot = 3u * (win.ky0 != 0u ? 1u : win.ky1 != p->kh ? 2u : 0u) +
                                          (win.kx0 != 0u ? 1u : win.kx1 != p->kw ? 2u : 0u);
                    if (cache_key[slot] != padded) {
                        const int64_t kv = (int64_t)((win.ky1 - win.ky0) * (win.kx1 - win.kx0) * p->cin);
                        uint32_t list[BNN_CONV_MAX_TAPS]; /* the padded taps */
                        uint32_t np = 0;
                        for (uint32_t t = 0; t < taps; ++t) {
                            if ((padded >> t) & 1u) {
                                list[np++] = t;
                            }
                        }
                        for (uint32_t j = 0; j < cnt; ++j) {
                            uint32_t corr = 0; /* <= taps * cin */
                            for (uint32_t i = 0; i < np; ++i) {
                                corr += tap_ones[j * taps + list[i]];
                            }
                            m_cache[slot][j] = clamp_mm(kv + 2 * (int64_t)corr - thr[c0 + j], nw);
                        }
                        cache_key[slot] = padded;
                    }
                    mm = m_cache[slot];
                }
                *dst = rows_bits(patch, rows, mm, nw, cnt, fn);
            }
        }
    }
}

/*
 * Accumulators of output rows [oy0, oy1) with the same patch + dense-row-kernel scheme, the
 * row kernel in popcount mode (p[j] = popcount(patch ^ w_j), bnn__dbt2_<R><C>1 / portable).
 * The patch holds zero bits at padded taps, so p counts c_t (the +1 weights of tap t) at
 * every padded tap t:
 *   zero padding (pad_minus1 == 0): a padded tap must contribute 0, so with K_v valid inputs
 *     and corr = sum_{t padded} c_t,  acc = K_v - 2 (p - corr) = (K_v + 2 corr) - 2 p;
 *     the offset K_v + 2 corr per channel is K at interior positions and comes from a cache
 *     (one slot per border class, keyed by the padded-tap set, filled from the popcounts of the
 *     padded taps' weight words only) at border positions.
 *   -1 padding (pad_minus1 != 0): a padded tap is the activation -1, i.e. bit 0, which is
 *     exactly what the patch holds: acc = K - 2 p everywhere, no correction.
 * Output acc[((oy - oy0) * out_w + ox) * cout + o].  Receptive fields over
 * BNN_CONV_PATCH_WORDS words or BNN_CONV_MAX_TAPS taps use the window loops instead.
 */
static void conv_acc_rows_generic(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                  uint32_t oy0, uint32_t oy1, int pad_minus1, int32_t *acc)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    const uint32_t n = p->kh * p->kw * cw;
    for (uint32_t oy = oy0; oy < oy1; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
            for (uint32_t o = 0; o < p->cout; ++o) {
                int32_t a = conv_acc_one(p, in, w + o * n, &win);
                if (pad_minus1) { /* each padded tap t adds -sum_c w = cin - 2 c_t */
                    for (uint32_t t = 0; t < p->kh * p->kw; ++t) {
                        const uint32_t ky = t / p->kw, kx = t % p->kw;
                        if (ky >= win.ky0 && ky < win.ky1 && kx >= win.kx0 && kx < win.kx1) {
                            continue;
                        }
                        const bnn_word_t *wt = w + o * n + t * cw;
                        uint32_t ones = 0;
                        for (uint32_t i = 0; i < cw; ++i) {
                            ones += bnn_popcount32(wt[i]);
                        }
                        a += (int32_t)p->cin - 2 * (int32_t)ones;
                    }
                }
                *acc++ = a;
            }
        }
    }
}

void bnn__conv_acc_rows(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, uint32_t oy0,
                        uint32_t oy1, int pad_minus1, int32_t *acc, bnn_conv_rows_fn pfn)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    const uint32_t taps = p->kh * p->kw;
    const uint32_t n = taps * cw;
    const uint32_t nw = bnn__conv_row_words(p);
    const int dense = nw != n;
    const int correct = !pad_minus1 && (p->pad_h != 0u || p->pad_w != 0u);
    const int32_t k = (int32_t)(taps * p->cin);
    if (n > BNN_CONV_PATCH_WORDS || taps > BNN_CONV_MAX_TAPS || n == 0u) {
        conv_acc_rows_generic(p, in, w, oy0, oy1, pad_minus1, acc);
        return;
    }
    bnn_word_t patch[BNN_CONV_PATCH_WORDS];
    bnn_word_t wdense[BNN_CONV_DENSE_WORDS];
    int32_t off_cache[BNN_CONV_CACHE][32]; /* K_v + 2 corr per channel of the chunk */
    uint32_t cache_key[BNN_CONV_CACHE];
    /* Without the dense repacking nor a correction the whole cout is one chunk (the row
     * kernel then runs 32 rows per call over one gathered patch). */
    const uint32_t chunk = (dense || correct) ? 32u : p->cout;
    for (uint32_t c0 = 0; c0 < p->cout; c0 += chunk) {
        const uint32_t left = p->cout - c0;
        const uint32_t cnt = left < chunk ? left : chunk;
        const bnn_word_t *wc = w + c0 * n;
        for (uint32_t e = 0; e < BNN_CONV_CACHE; ++e) {
            cache_key[e] = 0u; /* 0 = empty: a border key has at least one padded tap */
        }
        if (dense) { /* the chunk's weight rows, taps packed back to back (cw == 1 here) */
            pack_dense_rows(wc, cnt, n, nw, taps, p->cin, wdense);
        }
        const bnn_word_t *rows = dense ? wdense : wc;
        int32_t *dst = acc + c0;
        for (uint32_t oy = oy0; oy < oy1; ++oy) {
            for (uint32_t ox = 0; ox < p->out_w; ++ox, dst += p->cout) {
                window_t win = window(p, oy, ox);
                const int32_t *offs = NULL; /* NULL: K for every channel */
                if (window_full(p, &win)) {
                    if (dense) {
                        gather_patch(p, in, &win, 1, nw, patch);
                    } else {
                        gather_bits(p, in, &win, patch);
                    }
                } else {
                    gather_patch(p, in, &win, dense, nw, patch);
                    if (correct) {
                        const uint32_t padded = padded_taps(p, &win);
                        const uint32_t slot = 3u * (win.ky0 != 0u ? 1u : win.ky1 != p->kh ? 2u : 0u) +
                                              (win.kx0 != 0u ? 1u : win.kx1 != p->kw ? 2u : 0u);
                        if (cache_key[slot] != padded) {
                            const int32_t kv = (int32_t)((win.ky1 - win.ky0) * (win.kx1 - win.kx0) * p->cin);
                            for (uint32_t j = 0; j < cnt; ++j) { /* c_t of the padded taps only */
                                uint32_t corr = 0; /* <= taps * cin */
                                for (uint32_t m = padded, t = 0; m != 0u; m >>= 1, ++t) {
                                    if (m & 1u) {
                                        const bnn_word_t *wt = wc + j * n + t * cw;
                                        for (uint32_t i = 0; i < cw; ++i) {
                                            corr += bnn_popcount32(wt[i]);
                                        }
                                    }
                                }
                                off_cache[slot][j] = kv + 2 * (int32_t)corr;
                            }
                            cache_key[slot] = padded;
                        }
                        offs = off_cache[slot];
                    }
                }
                /* popcounts straight into the accumulators, then acc = offset - 2 p */
                rows_popcounts(patch, rows, nw, cnt, (uint32_t *)dst, pfn);
                if (offs == NULL) {
                    for (uint32_t j = 0; j < cnt; ++j) {
                        dst[j] = k - 2 * dst[j];
                    }
                } else {
                    for (uint32_t j = 0; j < cnt; ++j) {
                        dst[j] = offs[j] - 2 * dst[j];
                    }
                }
            }
        }
    }
}

void(bnn_conv_acc)(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, int32_t *acc)
{
    bnn_conv_acc(p, in, w, acc); /* the inline dispatcher of bnn_conv.h */
}

void(bnn_conv_bits)(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                    const int32_t *thr, bnn_word_t *out)
{
    bnn_conv_bits(p, in, w, thr, out); /* the inline dispatcher of bnn_conv.h */
}

/* ---- first layer: uint8 HWC input ---- */

static int32_t conv_u8_ref_one(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w,
                               uint32_t oy, uint32_t ox, uint32_t o)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    int32_t acc = 0;
    for (uint32_t ky = 0; ky < p->kh; ++ky) {
        int32_t y = tap(oy, p->stride_h, p->pad_h, ky, p->in_h);
        for (uint32_t kx = 0; kx < p->kw; ++kx) {
            int32_t x = tap(ox, p->stride_w, p->pad_w, kx, p->in_w);
            if (y < 0 || x < 0) {
                continue;
            }
            const uint8_t *a = in + ((uint32_t)y * p->in_w + (uint32_t)x) * p->cin;
            const bnn_word_t *b = w + ((o * p->kh + ky) * p->kw + kx) * cw;
            for (uint32_t c = 0; c < p->cin; ++c) {
                acc += bnn_get_bit(b, c) ? (int32_t)a[c] : -(int32_t)a[c];
            }
        }
    }
    return acc;
}

void bnn_conv_u8_acc_ref(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, int32_t *acc)
{
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            for (uint32_t o = 0; o < p->cout; ++o) {
                *acc++ = conv_u8_ref_one(p, in, w, oy, ox, o);
            }
        }
    }
}

void bnn_conv_u8_bits_ref(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w,
                          const int32_t *thr, bnn_word_t *out)
{
    const uint32_t ow = BNN_WORDS(p->cout);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            bnn_word_t *dst = out + (oy * p->out_w + ox) * ow;
            for (uint32_t k = 0; k < ow; ++k) {
                dst[k] = 0;
            }
            for (uint32_t o = 0; o < p->cout; ++o) {
                bnn_put_bit(dst, o, conv_u8_ref_one(p, in, w, oy, ox, o) >= thr[o]);
            }
        }
    }
}

/*
 * Optimized: acc = 2 * sum_{bit=1} x - sum x over the valid window; the window total is
 * computed once per position and shared by all output channels.
 *
 * Interior positions: the receptive field is copied once into a contiguous patch in
 * weight-row order (the total is summed on the way).  cin == 1 (grayscale): one uint32
 * per tap, and since a tap's weight word is 0 or 1 (padding bits are 0, bnn_bits.h)
 * the masked sum is sum x_t * w_t, one multiply-accumulate per tap.  Other cin: bytes,
 * the weight word is shifted along.  Border positions use the window loops.
 */
static int32_t conv_u8_one(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *wo,
                           const window_t *win, int32_t total)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    uint32_t s = 0;
    for (uint32_t ky = win->ky0; ky < win->ky1; ++ky) {
        for (uint32_t kx = win->kx0; kx < win->kx1; ++kx) {
            const uint8_t *a = in + ((uint32_t)(win->y0 + (int32_t)ky) * p->in_w +
                                     (uint32_t)(win->x0 + (int32_t)kx)) * p->cin;
            const bnn_word_t *b = wo + (ky * p->kw + kx) * cw;
            for (uint32_t c = 0; c < p->cin; ++c) {
                s += a[c] & (0u - ((b[c / 32u] >> (c % 32u)) & 1u));
            }
        }
    }
    return 2 * (int32_t)s - total;
}

static int32_t window_total(const bnn_conv_params_t *p, const uint8_t *in, const window_t *win)
{
    int32_t t = 0;
    for (uint32_t ky = win->ky0; ky < win->ky1; ++ky) {
        for (uint32_t kx = win->kx0; kx < win->kx1; ++kx) {
            const uint8_t *a = in + ((uint32_t)(win->y0 + (int32_t)ky) * p->in_w +
                                     (uint32_t)(win->x0 + (int32_t)kx)) * p->cin;
            for (uint32_t c = 0; c < p->cin; ++c) {
                t += a[c];
            }
        }
    }
    return t;
}

typedef union {
    uint32_t x32[BNN_CONV_PATCH_WORDS]; /* cin == 1: one tap per word */
    uint8_t x8[4u * BNN_CONV_PATCH_WORDS];
} patch_u8_t;

/* Interior fast path usable for these parameters. */
static int u8_patch_fits(const bnn_conv_params_t *p)
{
    uint32_t taps = p->kh * p->kw;
    return p->cin == 1u ? taps <= BNN_CONV_PATCH_WORDS : taps * p->cin <= 4u * BNN_CONV_PATCH_WORDS;
}

/* Copies a full window into the patch; returns the window total. */
static int32_t gather_u8(const bnn_conv_params_t *p, const uint8_t *in, const window_t *win, patch_u8_t *patch)
{
    const uint32_t rb = p->kw * p->cin;
    const uint32_t step = p->in_w * p->cin;
    const uint8_t *src = in + ((uint32_t)win->y0 * p->in_w + (uint32_t)win->x0) * p->cin;
    uint32_t t = 0;
    uint32_t j = 0;
    for (uint32_t ky = 0; ky < p->kh; ++ky) {
        if (p->cin == 1u) {
            for (uint32_t i = 0; i < rb; ++i) {
                uint32_t v = src[i];
                patch->x32[j++] = v;
                t += v;
            }
        } else {
            for (uint32_t i = 0; i < rb; ++i) {
                uint32_t v = src[i];
                patch->x8[j++] = (uint8_t)v;
                t += v;
            }
        }
        src += step;
    }
    return (int32_t)t;
}

/* sum_t x[t] * w[t] over taps (cin == 1: weight words are 0 or 1). */
BNN_INLINE uint32_t dot_c1(const uint32_t *x, const bnn_word_t *w, uint32_t taps)
{
    if (taps == 9u) { /* 3x3 kernels, unrolled */
        return x[0] * w[0] + x[1] * w[1] + x[2] * w[2] + x[3] * w[3] + x[4] * w[4] + x[5] * w[5] +
               x[6] * w[6] + x[7] * w[7] + x[8] * w[8];
    }
    uint32_t s = 0;
    uint32_t t = 0;
    for (; t + 3u < taps; t += 4u) {
        s += x[t] * w[t] + x[t + 1u] * w[t + 1u] + x[t + 2u] * w[t + 2u] + x[t + 3u] * w[t + 3u];
    }
    for (; t < taps; ++t) {
        s += x[t] * w[t];
    }
    return s;
}

/* Masked sum of one output channel over an interior patch, cin > 1 (bytes). */
static uint32_t dot_bytes(const uint8_t *x, const bnn_word_t *w, uint32_t taps, uint32_t cin)
{
    uint32_t s = 0;
    for (uint32_t t = 0; t < taps; ++t) {
        for (uint32_t left = cin; left > 0u;) {
            uint32_t word = *w++;
            uint32_t cnt = left < 32u ? left : 32u;
            left -= cnt;
            do {
                s += (uint32_t)*x++ * (word & 1u);
                word >>= 1;
            } while (--cnt);
        }
    }
    return s;
}

/* All output channels of one interior position; bits (out != NULL) or accumulators. */
static void patch_u8(const bnn_conv_params_t *p, const patch_u8_t *patch, int32_t total, const bnn_word_t *w,
                     const int32_t *thr, bnn_word_t *out, int32_t *acc)
{
    const uint32_t taps = p->kh * p->kw;
    const uint32_t cout = p->cout;
    if (p->cin == 1u && out != NULL) {
        uint32_t o = 0;
        while (o < cout) {
            uint32_t left = cout - o;
            uint32_t cnt = left < 32u ? left : 32u;
            uint32_t bits = 0;
            for (uint32_t j = 0; j < cnt; ++j) {
                int32_t a = 2 * (int32_t)dot_c1(patch->x32, w, taps) - total;
                w += taps;
                bits = (bits >> 1) | ((uint32_t)(a >= thr[j]) << 31);
            }
            thr += cnt;
            o += cnt;
            *out++ = bits >> (32u - cnt);
        }
        return;
    }
    const uint32_t wstride = taps * BNN_WORDS(p->cin);
    bnn_word_t bits = 0;
    for (uint32_t o = 0; o < cout; ++o) {
        uint32_t s = p->cin == 1u ? dot_c1(patch->x32, w, taps) : dot_bytes(patch->x8, w, taps, p->cin);
        int32_t a = 2 * (int32_t)s - total;
        w += wstride;
        if (out == NULL) {
            *acc++ = a;
            continue;
        }
        bits |= (bnn_word_t)(a >= thr[o]) << (o % 32u);
        if (o % 32u == 31u || o + 1u == cout) {
            *out++ = bits;
            bits = 0;
        }
    }
}

/*
 * uint8 x binary accumulators as an int16 dot product (cin > 1, e.g. the RGB stem): for every
 * output position the receptive field is gathered into an int16 patch in weight-row order
 * (tap-major, then channel), a tap in the zero padding as 0, so border and interior positions
 * run the same loop; the weights of a chunk of output channels are expanded once per call to
 * int16 +-1 (bit 1 = +1, bnn_bits.h) in the same order.  K = kh kw cin is rounded up to an
 * even K2 with a zero pair element, and acc = sum_i x_i s_i over K2 / 2 pairs: SMLAD (two 16 x
 * 16 multiplies and the add in one instruction) with the DSP extension, portable int16 MACs
 * elsewhere, two output channels per pass over the patch.  |acc| <= 255 K, so no intermediate
 * overflows.  Stack: weights BNN_CONV_U8_WBUF int16 (default 512 = 1 KiB), patch 256 int16;
 * chunks of BNN_CONV_U8_WBUF / K2 channels (the patch is regathered per chunk).  K2 > 256:
 * the bit-mask loops below.
 */
#ifndef BNN_CONV_U8_WBUF
#define BNN_CONV_U8_WBUF 512u
#endif
#define BNN_CONV_U8_PATCH 256u

typedef union {
    uint32_t pair[BNN_CONV_U8_WBUF / 2u]; /* read as pairs (SMLAD) */
    int16_t h[BNN_CONV_U8_WBUF];
} i16buf_t;

typedef union {
    uint32_t pair[BNN_CONV_U8_PATCH / 2u];
    int16_t h[BNN_CONV_U8_PATCH];
} i16patch_t;

/* s[0], s[1] = the dots of the patch with weight rows off and off + k2 (k2 = 2 pairs): the
 * patch pair is loaded once for two output channels. */
BNN_INLINE void dot_pairs2(const i16patch_t *x, const i16buf_t *w, uint32_t off, uint32_t pairs, int32_t *s)
{
    int32_t s0 = 0, s1 = 0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    const uint32_t *a = x->pair, *b0 = w->pair + off / 2u, *b1 = b0 + pairs;
    for (uint32_t i = 0; i < pairs; ++i) {
        const uint32_t v = a[i];
        __asm__("smlad %0, %1, %2, %3" : "=r"(s0) : "r"(v), "r"(b0[i]), "r"(s0));
        __asm__("smlad %0, %1, %2, %3" : "=r"(s1) : "r"(v), "r"(b1[i]), "r"(s1));
    }
#else
    const int16_t *a = x->h, *b0 = w->h + off, *b1 = b0 + 2u * pairs;
    for (uint32_t i = 0; i < 2u * pairs; ++i) {
        const int32_t v = a[i];
        s0 += v * b0[i];
        s1 += v * b1[i];
    }
#endif
    s[0] = s0;
    s[1] = s1;
}

BNN_INLINE int32_t dot_pairs(const i16patch_t *x, const i16buf_t *w, uint32_t off, uint32_t pairs)
{
    int32_t s = 0;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    const uint32_t *a = x->pair, *b = w->pair + off / 2u;
    for (uint32_t i = 0; i < pairs; ++i) {
        __asm__("smlad %0, %1, %2, %3" : "=r"(s) : "r"(a[i]), "r"(b[i]), "r"(s));
    }
#else
    const int16_t *a = x->h, *b = w->h + off;
    for (uint32_t i = 0; i < 2u * pairs; ++i) {
        s += (int32_t)a[i] * b[i];
    }
#endif
    return s;
}

static int conv_u8_acc_i16(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, int32_t *acc)
{
    const uint32_t taps = p->kh * p->kw;
    const uint32_t cw = BNN_WORDS(p->cin);
    const uint32_t k2 = (taps * p->cin + 1u) & ~1u;
    if (k2 == 0u || k2 > BNN_CONV_U8_PATCH) {
        return 0;
    }
    const uint32_t chunk = BNN_CONV_U8_WBUF / k2;
    i16buf_t wb;
    i16patch_t patch;
    for (uint32_t c0 = 0; c0 < p->cout; c0 += chunk) {
        const uint32_t cnt = p->cout - c0 < chunk ? p->cout - c0 : chunk;
        for (uint32_t j = 0; j < cnt; ++j) { /* +-1 weights, weight-row order, a zero pad element */
            const bnn_word_t *wo = w + (c0 + j) * taps * cw;
            int16_t *dst = wb.h + j * k2;
            for (uint32_t t = 0; t < taps; ++t) {
                for (uint32_t c = 0; c < p->cin; ++c) {
                    *dst++ = (int16_t)(((wo[t * cw + c / 32u] >> (c % 32u)) & 1u) ? 1 : -1);
                }
            }
            if (k2 != taps * p->cin) {
                *dst = 0;
            }
        }
        patch.h[k2 - 1u] = 0;
        int32_t *dst = acc + c0;
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            for (uint32_t ox = 0; ox < p->out_w; ++ox, dst += p->cout) {
                int16_t *x = patch.h;
                for (uint32_t ky = 0; ky < p->kh; ++ky) {
                    const int32_t y = tap(oy, p->stride_h, p->pad_h, ky, p->in_h);
                    for (uint32_t kx = 0; kx < p->kw; ++kx) {
                        const int32_t xx = tap(ox, p->stride_w, p->pad_w, kx, p->in_w);
                        if (y < 0 || xx < 0) {
                            for (uint32_t c = 0; c < p->cin; ++c) {
                                *x++ = 0;
                            }
                            continue;
                        }
                        const uint8_t *src = in + ((uint32_t)y * p->in_w + (uint32_t)xx) * p->cin;
                        for (uint32_t c = 0; c < p->cin; ++c) {
                            *x++ = (int16_t)src[c];
                        }
                    }
                }
                uint32_t j = 0;
                for (; j + 1u < cnt; j += 2u) {
                    dot_pairs2(&patch, &wb, j * k2, k2 / 2u, dst + j);
                }
                if (j < cnt) {
                    dst[j] = dot_pairs(&patch, &wb, j * k2, k2 / 2u);
                }
            }
        }
    }
    return 1;
}

void bnn_conv_u8_acc(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, int32_t *acc)
{
    if (p->cin > 1u && conv_u8_acc_i16(p, in, w, acc)) {
        return;
    }
    const uint32_t taps = p->kh * p->kw;
    const uint32_t wstride = taps * BNN_WORDS(p->cin);
    const int fits = u8_patch_fits(p);
    patch_u8_t patch;
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
            if (fits && window_full(p, &win)) {
                int32_t total = gather_u8(p, in, &win, &patch);
                patch_u8(p, &patch, total, w, NULL, NULL, acc);
                acc += p->cout;
                continue;
            }
            int32_t total = window_total(p, in, &win);
            for (uint32_t o = 0; o < p->cout; ++o) {
                *acc++ = conv_u8_one(p, in, w + o * wstride, &win, total);
            }
        }
    }
}

void bnn_conv_u8_bits(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w,
                      const int32_t *thr, bnn_word_t *out)
{
    const uint32_t taps = p->kh * p->kw;
    const uint32_t wstride = taps * BNN_WORDS(p->cin);
    const uint32_t ow = BNN_WORDS(p->cout);
    const int fits = u8_patch_fits(p);
    patch_u8_t patch;
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
            if (fits && window_full(p, &win)) {
                int32_t total = gather_u8(p, in, &win, &patch);
                patch_u8(p, &patch, total, w, thr, out, NULL);
                out += ow;
                continue;
            }
            int32_t total = window_total(p, in, &win);
            bnn_word_t bits = 0;
            uint32_t o;
            for (o = 0; o < p->cout; ++o) {
                int32_t a = conv_u8_one(p, in, w + o * wstride, &win, total);
                bits |= (bnn_word_t)(a >= thr[o]) << (o % 32u);
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
