/* SPDX-License-Identifier: MIT */
/* bnn_conv.c -- binary conv2d (packed HWC): reference and optimized variants. */
#include "bnn_conv.h"

#include <string.h>

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

/* The accumulator with -1 padding: a tap outside the image is the activation -1 on every channel,
 * contributing +1 where the weight is -1 and -1 where it is +1. */
static int32_t conv_acc_m1_ref_one(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                   uint32_t oy, uint32_t ox, uint32_t o)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    int32_t acc = conv_acc_ref_one(p, in, w, oy, ox, o);
    for (uint32_t ky = 0; ky < p->kh; ++ky) {
        const int32_t y = tap(oy, p->stride_h, p->pad_h, ky, p->in_h);
        for (uint32_t kx = 0; kx < p->kw; ++kx) {
            if (y >= 0 && tap(ox, p->stride_w, p->pad_w, kx, p->in_w) >= 0) {
                continue;
            }
            const bnn_word_t *b = w + ((o * p->kh + ky) * p->kw + kx) * cw;
            for (uint32_t c = 0; c < p->cin; ++c) {
                acc += bnn_get_bit(b, c) ? -1 : 1;
            }
        }
    }
    return acc;
}

typedef int32_t (*conv_acc_one_fn)(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                                   uint32_t oy, uint32_t ox, uint32_t o);

/* Output bits acc >= thr[o] of every position, acc from one of the reference accumulators. */
static void conv_bits_ref_with(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                               const int32_t *thr, bnn_word_t *out, conv_acc_one_fn acc_one)
{
    const uint32_t ow = BNN_WORDS(p->cout);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            bnn_word_t *dst = out + (oy * p->out_w + ox) * ow;
            for (uint32_t k = 0; k < ow; ++k) {
                dst[k] = 0;
            }
            for (uint32_t o = 0; o < p->cout; ++o) {
                bnn_put_bit(dst, o, acc_one(p, in, w, oy, ox, o) >= thr[o]);
            }
        }
    }
}

void bnn_conv_bits_m1_ref(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                          const int32_t *thr, bnn_word_t *out)
{
    conv_bits_ref_with(p, in, w, thr, out, conv_acc_m1_ref_one);
}

void bnn_conv_bits_ref(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       const int32_t *thr, bnn_word_t *out)
{
    conv_bits_ref_with(p, in, w, thr, out, conv_acc_ref_one);
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

/* conv_acc_one plus the taps of the window in the padding as the activation -1: each adds
 * cin - 2 c_t (c_t = the +1 weights of tap t). */
static int32_t conv_acc_m1_one(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *wo,
                               const window_t *win)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    int32_t a = conv_acc_one(p, in, wo, win);
    for (uint32_t t = 0; t < p->kh * p->kw; ++t) {
        const uint32_t ky = t / p->kw, kx = t % p->kw;
        if (ky >= win->ky0 && ky < win->ky1 && kx >= win->kx0 && kx < win->kx1) {
            continue;
        }
        uint32_t ones = 0;
        for (uint32_t i = 0; i < cw; ++i) {
            ones += bnn_popcount32(wo[t * cw + i]);
        }
        a += (int32_t)p->cin - 2 * (int32_t)ones;
    }
    return a;
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
                              const int32_t *thr, int pad_minus1, bnn_word_t *out)
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
                int32_t a = pad_minus1 ? conv_acc_m1_one(p, in, w + o * n, &win) : conv_acc_one(p, in, w + o * n, &win);
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
 * position and chunk).  Positions of a row whose window lies inside the image (the interior,
 * interior_cols) take no window computation, no clearing and no correction: their patch is
 * copied or packed straight from kh input rows (pack_taps; 3x3 with 16 channels, the usual
 * first binary stack, is two taps per word, written out).
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

/*
 * The dense layout: the low cin bits (cin < 32) of kh rows of kw tap words (row r at src + r step)
 * back to back, tap t = ky kw + kx at bit t cin, into ceil(kh kw cin / 32) words, the last word's
 * high bits 0 (tap words have zero padding bits, bnn_bits.h).  Used for the weight rows (step = kw)
 * and for full-window patches (step = in_w); 3x3 with 16 channels (two taps per word) is spelled
 * out, 3x3 with 24 channels takes its own word order (pack_taps_3x3x24), other shapes run the
 * bit-stream loop.
 */
BNN_INLINE void pack_taps_3x3x16(const bnn_word_t *src, uint32_t step, bnn_word_t *dst)
{
    const bnn_word_t *r1 = src + step, *r2 = r1 + step;
    dst[0] = src[0] | src[1] << 16;
    dst[1] = src[2] | r1[0] << 16;
    dst[2] = r1[1] | r1[2] << 16;
    dst[3] = r2[0] | r2[1] << 16;
    dst[4] = r2[2];
}

/* 3x3 with 24 channels (216 bits, 7 words; issue 11): not the bit stream but groups of four taps
 * a, b, c, d in three words, a | d << 24, b | (d >> 8) << 24, c | (d >> 16) << 24 (taps 0-3 and
 * 4-7), then tap 8 alone: a few instructions per tap instead of the stream loop's ~25.  Any fixed
 * bit order is exact (popcount(patch ^ row) does not depend on it) as long as weight rows and
 * patches share it: both go through pack_taps (and bnn2hw/mcu/conv_m4_prep.py writes it). */
BNN_INLINE void pack_taps_3x3x24(const bnn_word_t *src, uint32_t step, bnn_word_t *dst)
{
    const bnn_word_t *r1 = src + step, *r2 = r1 + step;
    const uint32_t d = r1[0], h = r2[1];
    dst[0] = src[0] | d << 24;
    dst[1] = src[1] | (d >> 8) << 24;
    dst[2] = src[2] | (d >> 16) << 24;
    dst[3] = r1[1] | h << 24;
    dst[4] = r1[2] | (h >> 8) << 24;
    dst[5] = r2[0] | (h >> 16) << 24;
    dst[6] = r2[2];
}

static void pack_taps(const bnn_word_t *src, uint32_t step, uint32_t kh, uint32_t kw, uint32_t cin,
                      bnn_word_t *dst)
{
    if (cin == 16u && kh == 3u && kw == 3u) {
        pack_taps_3x3x16(src, step, dst);
        return;
    }
    if (cin == 24u && kh == 3u && kw == 3u) {
        pack_taps_3x3x24(src, step, dst);
        return;
    }
    /* Tap words: cw = ceil(cin / 32) per tap, cw - 1 full words then the last one with
     * cin - 32 (cw - 1) valid bits (cin < 32: one word of cin bits).  Each tap word is appended
     * to the bit stream with its valid bit count; word boundaries of the stream fall anywhere. */
    const uint32_t cw = BNN_WORDS(cin), tail = cin - 32u * (cw - 1u);
    uint32_t cur = 0, b = 0; /* the word being filled, its next free bit (0..31) */
    for (uint32_t ky = 0; ky < kh; ++ky, src += step) {
        const bnn_word_t *tap = src;
        for (uint32_t kx = 0; kx < kw; ++kx) {
            /* the tap's cw - 1 full words leave b unchanged: one output word each */
            if (b == 0u) { /* aligned (cur == 0): copied */
                for (uint32_t i = 1; i < cw; ++i) {
                    *dst++ = *tap++;
                }
            } else {
                for (uint32_t i = 1; i < cw; ++i) {
                    const uint32_t v = *tap++;
                    *dst++ = cur | v << b;
                    cur = v >> (32u - b);
                }
            }
            const uint32_t v = *tap++; /* the last word: tail valid bits, 1..32 */
            cur |= v << b; /* b < 32: defined */
            b += tail;
            if (b >= 32u) { /* word full: the rest of v starts the next one */
                *dst++ = cur;
                b -= 32u;
                cur = b != 0u ? v >> (tail - b) : 0u; /* tail - b in 1..31 when b != 0 */
            }
        }
    }
    if (b != 0u) {
        *dst = cur;
    }
}

/*
 * The nibble counts of two 2-bit-count words x, y (fields <= 3, so <= 12 a nibble), shared by the
 * 3x3x16 pair records and the 3x3x24 rows: a nibble a + 4 b of x + y (a, b the sums of the low /
 * high fields) less 3 b.  The sums carry across nibbles (and out of the word) on the way; the
 * result (< 2^32) is exact modulo 2^32 because only additions, subtractions and a multiply touch
 * the carries.  NIB2_SUM (Thumb-2 + DSP) does it in 6 operations: 2 b a nibble as UHADD8 of the
 * two CC.. parts (the halving in each byte's 9-bit sum, so the top nibble's b <= 6 loses nothing),
 * then x + y - 2 b - b, where the plain nibble steps ((x & 33..) + ((x & CC..) >> 2) for each word,
 * then the sum) take 7.
 */
BNN_INLINE uint32_t nib2_sum(uint32_t x, uint32_t y)
{
    return x + y - 3u * (((x >> 2) & 0x33333333u) + ((y >> 2) & 0x33333333u));
}
/* Nibble counts (<= 12) of three mismatch words: x, y as 2-bit counts, z's even bits added to x's
 * fields and its odd bits to y's (fields <= 3), then nib2_sum (the portable twin of the 3x3x16 /
 * 3x3x24 assembly groups). */
BNN_INLINE uint32_t nib_group3(uint32_t x, uint32_t y, uint32_t z)
{
    x = x - ((x & 0xAAAAAAAAu) >> 1) + (z & 0x55555555u);
    y = y - ((y & 0xAAAAAAAAu) >> 1) + ((z & 0xAAAAAAAAu) >> 1);
    return nib2_sum(x, y);
}
/* NIB2_SUM(X, Y, SCR): X = nib2_sum(X, Y) for asm operands X, Y, SCR (register names or %[...]
 * operands); Y and SCR clobbered. */
#define NIB2_SUM(X, Y, SCR)                                                                \
    "and " SCR ", " X ", #0xCCCCCCCC\n\t"                                                  \
    "add " X ", " X ", " Y "\n\t"                                                          \
    "and " Y ", " Y ", #0xCCCCCCCC\n\t"                                                    \
    "uhadd8 " SCR ", " SCR ", " Y "\n\t"                                                   \
    "sub " X ", " X ", " SCR "\n\t"                                                        \
    "sub " X ", " X ", " SCR ", lsr #1\n\t"

/* The job of the few-position assembly loops (conv16_few_asm, conv24_few_asm): per position its patch
 * (held in registers for all of the position's rows), its ~M row and one output word per 32-channel chunk. */
typedef struct {
    const bnn_word_t *x;       /* the first position's patch; the job's cursor (advanced) */
    const int32_t *const *mp;  /* the positions' ~M rows (cursor) */
    bnn_word_t *out;           /* the first position's output word (cursor) */
    const bnn_word_t *x_end;   /* x + (patch words) n */
    const bnn_word_t *w;       /* the rows, or the pair records of cnt = 2P rows */
    uint32_t sentinel;         /* 1 << (cnt - 1) */
    uint32_t shift;            /* 32 - cnt */
    uint32_t ow_bytes;         /* output words per position x 4 */
} few_job_t;
/* The position loop of those naked functions (the job in r0 on entry, then its copy at [sp]; the cursors
 * x, mp, out advanced in place at [job + 0..8]).  FEW_ASM_ENTRY(PATCH): the position's ~M row in r2, its
 * patch in the registers PATCH, the rows in r1 and the sentinel in r3, then the row loop (label 1).
 * FEW_ASM_NEXT(PW_BYTES): stores the position's bits (r3 >> shift), steps the cursors by one position
 * (PW_BYTES: its patch's bytes) and loops back to label 2 until x_end.  FEW_ASM_ACC(ACC, S, SCR): ACC += the
 * byte sums of the nibble-count word S (USADA8: |lo + 16 hi - 15 hi| = lo + hi per byte; SCR scratch). */
#define FEW_ASM_ENTRY(PATCH)                                                               \
    "push {r0, r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"                                  \
    "mov r12, r0\n\t"                                                                      \
    "ldm r12, {r0, r1}\n\t" /* x, mp */                                                    \
    "2:\n\t"                /* r12 job, r0 x, r1 mp */                                     \
    "ldr r2, [r1]\n\t"      /* this position's ~M row */                                   \
    "ldm r0, {" PATCH "}\n\t"                                                              \
    "ldrd r1, r3, [r12, #16]\n\t" /* rows, sentinel */                                     \
    "1:\n\t"
#define FEW_ASM_NEXT(PW_BYTES)                                                             \
    "ldr r12, [sp]\n\t"                                                                    \
    "ldm r12, {r0, r1, r2, r4}\n\t" /* x, mp, out, x_end */                                \
    "ldrd r5, r6, [r12, #24]\n\t"   /* shift, ow bytes */                                  \
    "lsrs r3, r3, r5\n\t"                                                                  \
    "str r3, [r2]\n\t"                                                                     \
    "add r2, r2, r6\n\t"                                                                   \
    "adds r0, r0, #" PW_BYTES "\n\t"                                                       \
    "adds r1, r1, #4\n\t"                                                                  \
    "stm r12, {r0, r1, r2}\n\t"                                                            \
    "cmp r0, r4\n\t"                                                                       \
    "bne 2b\n\t" /* with r12 = job, r0 = x, r1 = mp */                                     \
    "pop {r0, r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t"
#define FEW_ASM_ACC(ACC, S, SCR)                                                           \
    "and " SCR ", " S ", #0xF0F0F0F0\n\t"                                                  \
    "sub " SCR ", " SCR ", " SCR ", lsr #4\n\t"                                            \
    "usada8 " ACC ", " S ", " SCR ", " ACC "\n\t"

/*
 * 3x3 convs with 16 input channels (issue 11): a patch is 144 bits, four full words and a
 * half-filled fifth (the bottom-right tap).  The generic row kernel spends a whole SWAR word
 * on each row's 16-bit fifth word; here two weight rows share it instead.  A pair record of
 * rows A, B holds 9 words: A's four full words, B's four, then c = spread(A5) | spread(B5) << 1
 * (spread: the 16 bits of a half-word moved to the even bit positions 0, 2, .., 30), and the
 * patch's fifth word becomes spread(p5) * 3 (each bit twice), so one XOR gives A's tail
 * mismatches on the even bits and B's on the odd bits.  Per pair: a 3-word SWAR group for each
 * row (x - ((x & AA) >> 1) 2-bit counts, the third word's even / odd bits added, nibbles,
 * USADA8 accumulation as bnn__dbt2 in bnn_bits.c), then the fourth words' 2-bit counts take the
 * even (A) / odd (B) bits of c (fields <= 3), one nibble step and one accumulation each:
 * 9 words and 63 ALU operations per two rows instead of 10 words and 74 (each group's nibble step
 * is nib2_sum's 6 operations).
 * Invariant: an odd count's last record pairs row cnt - 1 with itself (B's result unused).
 * BNN_CONV16_PAIRS (default: Thumb-2 cores with USADA8, not Helium) enables it; on other
 * targets it can be forced on (-DBNN_CONV16_PAIRS=1, the host tests do) with a portable
 * byte sum in place of USADA8.
 */
#ifndef BNN_CONV16_PAIRS
#define BNN_CONV16_PAIRS (BNN_MULTI_ASM && BNN_HAVE_USADA8 && !BNN_MVE)
#endif
#if BNN_CONV16_PAIRS
#define CONV16_PAIR_WORDS 9u
#if BNN_HAVE_USADA8
#include <arm_acle.h>
/* acc + sum over bytes of the nibble word s (each byte lo + 16 hi, lo, hi <= 15):
 * |lo + 16 hi - 15 hi| = lo + hi, see bnn_bits.c */
BNN_INLINE uint32_t conv16_acc(uint32_t acc, uint32_t s)
{
    const uint32_t t = s & 0xF0F0F0F0u;
    return __usada8(s, t - (t >> 4), acc);
}
#else
BNN_INLINE uint32_t conv16_acc(uint32_t acc, uint32_t s)
{
    return acc + bnn__hsum_bytes(bnn__bytes(s));
}
#endif

/* Pair record layout: A0 A1 A2, B0 B1 B2, A3, B3, c. */
#if BNN_HAVE_USADA8
/* The two accumulators of one pair record (advancing *w) against the patch x (x[4] spread
 * and doubled), Thumb-2 + DSP: GCC turns (v & 0xAA..) >> 1 into a shift and a mask, one
 * instruction more than `and` + `sub ..., lsr #1`, so the body is spelled out (bnn_bits.c's
 * group, then the shared tail word). */
#define CONV16_GROUP(ACC)                                                                  \
    "eor %[t3], %[t3], %[t0]\n\t"                                                         \
    "eor %[t4], %[t4], %[t1]\n\t"                                                         \
    "and %[t6], %[t3], #0xAAAAAAAA\n\t"                                                   \
    "eor %[t5], %[t5], %[t2]\n\t"                                                         \
    "sub %[t3], %[t3], %[t6], lsr #1\n\t"                                                 \
    "and %[t6], %[t4], #0xAAAAAAAA\n\t"                                                   \
    "sub %[t4], %[t4], %[t6], lsr #1\n\t"                                                 \
    "and %[t6], %[t5], #0x55555555\n\t"                                                   \
    "and %[t5], %[t5], #0xAAAAAAAA\n\t"                                                   \
    "add %[t3], %[t3], %[t6]\n\t"                                                         \
    "add %[t4], %[t4], %[t5], lsr #1\n\t" NIB2_SUM("%[t3]", "%[t4]", "%[t6]") CONV16_ACC(ACC, "t3")
#define CONV16_ACC(ACC, S)                                                                 \
    "and %[t6], %[" S "], #0xF0F0F0F0\n\t"                                                \
    "sub %[t6], %[t6], %[t6], lsr #4\n\t"                                                 \
    "usada8 %[" ACC "], %[" S "], %[t6], %[" ACC "]\n\t"
BNN_INLINE void conv16_pair(const bnn_word_t *x, const bnn_word_t **w, uint32_t *a, uint32_t *b)
{
    /* fixed registers: LDM fills its list in ascending register order (r7 left to a frame pointer) */
    register uint32_t t0 __asm__("r4"), t1 __asm__("r5"), t2 __asm__("r6");
    register uint32_t t3 __asm__("r8"), t4 __asm__("r9"), t5 __asm__("r10"), t6 __asm__("r12");
    const bnn_word_t *wp = *w;
    uint32_t ra = *a, rb = *b;
    __asm__("ldm %[x], {%[t0], %[t1], %[t2]}\n\t"
            "ldm %[w]!, {%[t3], %[t4], %[t5]}\n\t" CONV16_GROUP("a")
            "ldm %[w]!, {%[t3], %[t4], %[t5]}\n\t" CONV16_GROUP("b")
            "ldrd %[t0], %[t1], [%[x], #12]\n\t"
            "ldm %[w]!, {%[t2], %[t3], %[t4]}\n\t"
            "eor %[t2], %[t2], %[t0]\n\t"
            "eor %[t3], %[t3], %[t0]\n\t"
            "eor %[t4], %[t4], %[t1]\n\t"
            "and %[t6], %[t2], #0xAAAAAAAA\n\t"
            "sub %[t2], %[t2], %[t6], lsr #1\n\t"
            "and %[t6], %[t3], #0xAAAAAAAA\n\t"
            "sub %[t3], %[t3], %[t6], lsr #1\n\t"
            "and %[t6], %[t4], #0x55555555\n\t"
            "and %[t4], %[t4], #0xAAAAAAAA\n\t"
            "add %[t2], %[t2], %[t6]\n\t"
            "add %[t3], %[t3], %[t4], lsr #1\n\t"
            "and %[t6], %[t2], #0xCCCCCCCC\n\t"
            "and %[t5], %[t3], #0xCCCCCCCC\n\t"
            "and %[t2], %[t2], #0x33333333\n\t"
            "and %[t3], %[t3], #0x33333333\n\t"
            "add %[t2], %[t2], %[t6], lsr #2\n\t"
            "add %[t3], %[t3], %[t5], lsr #2\n\t" CONV16_ACC("a", "t2") CONV16_ACC("b", "t3")
            : [w] "+r"(wp), [a] "+r"(ra), [b] "+r"(rb), [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2),
              [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5), [t6] "=&r"(t6)
            : [x] "r"(x)
            : "memory");
    *w = wp;
    *a = ra;
    *b = rb;
}
#undef CONV16_GROUP
#undef CONV16_ACC
#else
/* Portable twin of the Thumb-2 conv16_pair: same records, same accumulators. */
BNN_INLINE void conv16_pair(const bnn_word_t *x, const bnn_word_t **w, uint32_t *a, uint32_t *b)
{
    const bnn_word_t *r = *w;
    const uint32_t c = r[8] ^ x[4];
    *a = conv16_acc(*a, nib_group3(r[0] ^ x[0], r[1] ^ x[1], r[2] ^ x[2]));
    *b = conv16_acc(*b, nib_group3(r[3] ^ x[0], r[4] ^ x[1], r[5] ^ x[2]));
    *a = conv16_acc(*a, bnn__nib4(bnn__nib2(r[6] ^ x[3]) + (c & 0x55555555u)));
    *b = conv16_acc(*b, bnn__nib4(bnn__nib2(r[7] ^ x[3]) + ((c >> 1) & 0x55555555u)));
    *w = r + CONV16_PAIR_WORDS;
}
#endif

/* Weight rows (cnt <= 32, 5 packed words each at rows + j * 5) as pair records at dst
 * ((cnt + 1) / 2 records of CONV16_PAIR_WORDS words). */
static void conv16_pack_pairs(const bnn_word_t *rows, uint32_t cnt, bnn_word_t *dst)
{
    for (uint32_t j = 0; j < cnt; j += 2u, dst += CONV16_PAIR_WORDS) {
        const bnn_word_t *a = rows + 5u * j, *b = j + 1u < cnt ? a + 5u : a;
        for (uint32_t i = 0; i < 3u; ++i) {
            dst[i] = a[i];
            dst[3u + i] = b[i];
        }
        dst[6] = a[3];
        dst[7] = b[3];
        dst[8] = bnn_conv16_spread(a[4]) | bnn_conv16_spread(b[4]) << 1;
    }
}

/* bits of cnt rows (pair records w) against the 5-word patch x (its fifth word already spread and
 * doubled: spread(x4) * 3), nm[j] = ~M_j = -M_j - 1 (max
 * mismatches M): bit j set when popcount(patch ^ row j) <= M_j, i.e. when p - M - 1 < 0; the
 * rows_bits contract.  Two pairs a loop pass; an odd count's last record runs as a pair too
 * (B = A), its second bit dropped. */
BNN_INLINE uint32_t conv16_pairs_bits(const bnn_word_t *x, const bnn_word_t *w, const int32_t *nm, uint32_t cnt)
{
    uint32_t bits = 0;
    uint32_t j = 0;
    for (; j + 3u < cnt; j += 4u) {
        uint32_t a = (uint32_t)nm[j], b = (uint32_t)nm[j + 1u];
        uint32_t c = (uint32_t)nm[j + 2u], d = (uint32_t)nm[j + 3u];
        conv16_pair(x, &w, &a, &b);
        conv16_pair(x, &w, &c, &d);
        bits = (bits >> 1) | (a & 0x80000000u);
        bits = (bits >> 1) | (b & 0x80000000u);
        bits = (bits >> 1) | (c & 0x80000000u);
        bits = (bits >> 1) | (d & 0x80000000u);
    }
    if (j + 1u < cnt) {
        uint32_t a = (uint32_t)nm[j], b = (uint32_t)nm[j + 1u];
        conv16_pair(x, &w, &a, &b);
        bits = (bits >> 1) | (a & 0x80000000u);
        bits = (bits >> 1) | (b & 0x80000000u);
        j += 2u;
    }
    if (j < cnt) {
        uint32_t a = (uint32_t)nm[j], b = a;
        conv16_pair(x, &w, &a, &b);
        bits = (bits >> 1) | (a & 0x80000000u);
    }
    return bits >> (32u - cnt);
}

/* conv16_pairs_bits on a patch whose fifth word is still plain (rewritten in place here). */
static uint32_t conv16_rows_bits(bnn_word_t *x, const bnn_word_t *w, const int32_t *nm, uint32_t cnt)
{
    x[4] = bnn_conv16_tail(x[4]); /* the patch's fifth word in place, each bit twice */
    return conv16_pairs_bits(x, w, nm, cnt);
}
#endif

/* Gathers the window into patch: one word group per tap (the valid taps of a kernel row are
 * contiguous in the input) or dense (the taps' words first into a tap array, zero for padded
 * taps, then packed as a full window); padded taps give zero bits. */
static void gather_patch(const bnn_conv_params_t *p, const bnn_word_t *in, const window_t *win, int dense,
                         uint32_t nw, bnn_word_t *patch)
{
    /* the geometry in locals: the stores into patch (uint32) could alias *p and *win */
    const uint32_t cin = p->cin, cw = BNN_WORDS(cin), kh = p->kh, kw = p->kw, in_w = p->in_w;
    const uint32_t ky0 = win->ky0, ky1 = win->ky1, kx0 = win->kx0, kx1 = win->kx1;
    const int32_t y0 = win->y0, x0 = win->x0;
    if (dense) { /* kh kw cw <= BNN_CONV_PATCH_WORDS: the window in tap-word order, then packed */
        bnn_word_t t[BNN_CONV_PATCH_WORDS];
        for (uint32_t i = 0; i < kh * kw * cw; ++i) {
            t[i] = 0u;
        }
        for (uint32_t ky = ky0; ky < ky1; ++ky) {
            const bnn_word_t *src = in + ((uint32_t)(y0 + (int32_t)ky) * in_w + (uint32_t)(x0 + (int32_t)kx0)) * cw;
            bnn_word_t *tt = t + (ky * kw + kx0) * cw;
            for (uint32_t i = 0; i < (kx1 - kx0) * cw; ++i) {
                tt[i] = src[i];
            }
        }
        pack_taps(t, kw * cw, kh, kw, cin, patch);
        return;
    }
    for (uint32_t i = 0; i < nw; ++i) {
        patch[i] = 0u;
    }
    for (uint32_t ky = ky0; ky < ky1; ++ky) {
        const bnn_word_t *src = in + ((uint32_t)(y0 + (int32_t)ky) * in_w + (uint32_t)(x0 + (int32_t)kx0)) * cw;
        bnn_word_t *dst = patch + (ky * kw + kx0) * cw;
        const uint32_t len = (kx1 - kx0) * cw;
        for (uint32_t i = 0; i < len; ++i) {
            dst[i] = src[i];
        }
    }
}

/* The tap words of a 3x3 window at one word per tap (cin <= 32) whose top-left input pixel is
 * (y0, x0), taps outside the image 0: t[ky 3 + kx] (a border position's patch without the window
 * bounds, the zero fill and the copy loops of gather_patch). */
BNN_INLINE void gather_3x3_1w(const bnn_word_t *in, uint32_t in_h, uint32_t in_w, int32_t y0, int32_t x0,
                              bnn_word_t *t)
{
    const uint32_t c0 = (uint32_t)x0 < in_w, c1 = (uint32_t)(x0 + 1) < in_w, c2 = (uint32_t)(x0 + 2) < in_w;
    for (uint32_t ky = 0; ky < 3u; ++ky, t += 3) {
        const int32_t y = y0 + (int32_t)ky;
        if ((uint32_t)y >= in_h) {
            t[0] = t[1] = t[2] = 0u;
            continue;
        }
        const int32_t b = (int32_t)((uint32_t)y * in_w) + x0; /* only the valid taps are read */
        t[0] = c0 ? in[b] : 0u;
        t[1] = c1 ? in[b + 1] : 0u;
        t[2] = c2 ? in[b + 2] : 0u;
    }
}

/* The patch of a border position (3x3, cin <= 32) in the kernel's layout: tap words, then packed
 * as a full window (pack_taps; cin = 32: the tap words are the patch). */
static void __attribute__((noinline)) gather_border_3x3_1w(const bnn_word_t *in, uint32_t in_h, uint32_t in_w,
                                                           uint32_t cin, int32_t y0, int32_t x0, int dense,
                                                           bnn_word_t *patch)
{
    if (!dense) {
        gather_3x3_1w(in, in_h, in_w, y0, x0, patch);
        return;
    }
    bnn_word_t t[9];
    gather_3x3_1w(in, in_h, in_w, y0, x0, t);
    if (cin == 16u) {
        pack_taps_3x3x16(t, 3u, patch);
    } else if (cin == 24u) {
        pack_taps_3x3x24(t, 3u, patch);
    } else {
        pack_taps(t, 3u, 3u, 3u, cin, patch);
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

/* Copies kh rows of rw words (row r at src + r step) back to back: a full window, one word group
 * per tap, in weight-row order. */
static void copy_window(const bnn_word_t *src, uint32_t step, uint32_t kh, uint32_t rw, bnn_word_t *dst)
{
    for (uint32_t ky = 0; ky < kh; ++ky, src += step, dst += rw) {
        for (uint32_t i = 0; i < rw; ++i) {
            dst[i] = src[i];
        }
    }
}

/*
 * The interior: output positions whose window lies wholly inside the image, rows with
 * 0 <= oy sh - ph and oy sh - ph + kh <= in_h, columns [lo, hi).  There no window is computed
 * and nothing is cleared: the top-left tap's address steps by stride_w cw words along the row
 * and the patch is copied or packed straight from the kh input rows.
 */
typedef struct {
    uint32_t lo, hi;
} span_t;

static span_t interior_cols(const bnn_conv_params_t *p)
{
    span_t s = {0u, 0u};
    if (p->stride_w == 0u) { /* degenerate: no interior run, every position takes the window path */
        return s;
    }
    s.lo = (p->pad_w + p->stride_w - 1u) / p->stride_w;
    s.hi = p->in_w + p->pad_w >= p->kw ? (p->in_w + p->pad_w - p->kw) / p->stride_w + 1u : 0u;
    if (s.hi > p->out_w) {
        s.hi = p->out_w;
    }
    if (s.lo > s.hi) {
        s.lo = s.hi;
    }
    return s;
}

/* Row oy is interior; then *src = its first interior position's top-left input word. */
BNN_INLINE int interior_row(const bnn_conv_params_t *p, const bnn_word_t *in, uint32_t oy, span_t cols,
                           const bnn_word_t **src)
{
    const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
    if (y0 < 0 || y0 + (int32_t)p->kh > (int32_t)p->in_h || cols.lo == cols.hi) {
        return 0;
    }
    *src = in + ((uint32_t)y0 * p->in_w + cols.lo * p->stride_w - p->pad_w) * BNN_WORDS(p->cin);
    return 1;
}

/* Border class slot of a clipped window: clipped at the top / bottom x left / right. */
static uint32_t border_slot(const bnn_conv_params_t *p, const window_t *win)
{
    return 3u * (win->ky0 != 0u ? 1u : win->ky1 != p->kh ? 2u : 0u) +
           (win->kx0 != 0u ? 1u : win->kx1 != p->kw ? 2u : 0u);
}

#if BNN_MVE
#include <arm_mve.h>
/*
 * Helium (Cortex-M55) binary conv: column images of row-dense taps (issue 11).
 *
 * The generic scheme below gathers a patch per position and 32-channel chunk in the padded
 * layout (one word group per tap): at cin = 40 a 3x3 patch is 18 words for 11.25 words of data,
 * and the border-correction tables are refilled per chunk.  Here, instead:
 *
 * Layout (row-dense): the kw taps of one kernel row are packed back to back, tap kx at bit
 * kx cin of the row segment, into rwd = ceil(kw cin / 32) words; a patch (and a weight row) is kh
 * such segments, nw = kh rwd words (3x3 cin 40: 12 words, cin 33: 12, cin 65: 21; cin % 32 == 0:
 * rwd = kw cw, the padded layout itself, nothing is packed).  Unlike the fully dense layout
 * (tap t at bit t cin) every segment starts on a word, so the segments of a position can be
 * built independently and shared between positions:
 *
 * Column image: for one output column ox, col[r] = the row segment of input row y = r - pad_h at
 * the columns x0 .. x0 + kw - 1 (x0 = ox stride_w - pad_w; taps outside the image and rows
 * outside it are zero bits), r = 0 .. (out_h - 1) stride_h + kh - 1.  The patch of (oy, ox) is
 * then the kh nw contiguous words at col + oy stride_h rwd: no gather per position at all, each
 * row segment is packed once per column (not once per position and chunk).
 *
 * Channels: in groups of <= BNN_CONV_MVE_GROUP (the packed weight rows of a group must fit
 * BNN_CONV_MVE_W_WORDS); per position one row-kernel call per 32 channels (bnn__dbt_mve: rows in
 * vector lanes for nw <= 31, bnn_dense_mve.c).
 *
 * Zero padding: the patch holds zero bits at padded taps, which add c_t (the +1 weights of tap t)
 * to the popcount p, so as in the generic path (acc = K_v - 2 (p - corr) >= thr)
 *     p <= M = clamp(floor((K_v - thr) / 2) + corr, -1, 32 nw),  corr = sum_{t padded} c_t
 * (floor((K_v + 2 corr - thr) / 2) = floor((K_v - thr) / 2) + corr exactly).  c_{j,t} are counted
 * once per group (the row kernel in popcount mode against a zero patch); the M tables are kept
 * for 3 window rows classes (top-clipped, full, bottom-clipped) and recomputed only when a
 * column's valid taps [kx0, kx1) change or a class meets another clipping (4 channels per vector:
 * saturating K_v - thr, shift, the gathered c_t of the padded taps, clamp).  -1 padding: zero bits
 * are the activation -1, M is the full-window value everywhere.
 *
 * Stack: about 9.8 KB for this frame (column image 2 KB, packed weights 4 KB, c_t 2.3 KB, M tables;
 * the caller's patch-path frame, 3.9 KB, comes on top): shapes over the buffers take the patch path,
 * BNN_CONV_MVE_COL_WORDS / _W_WORDS / _GROUP (a multiple of 32) shrink them.
 *
 * Measured (benchmarks/bench_mcu_conv_m55.py, results/mcu_kernels_m55.md, QEMU instructions per
 * binary MAC, before = the patch path): 7x7x40 s1 p1 0.140 -> 0.081, 9x9x33 s2 p1 0.224 -> 0.127,
 * 12x12x48 0.092 -> 0.066, 4x4x256 p1 0.061 -> 0.048, 8x8x64 p1 0.073 -> 0.057.  On small maps the
 * per-call work is a large share: 9x9x33 s2 p1 (25 positions) spends 17.1K instructions in the row
 * kernels and 14K around them: packing weight rows and column images (4.1K), tap counts (1.7K),
 * 9 M tables (3.2K), the loops (4.6K).  Generated code (bnn2hw emit-c) therefore calls
 * bnn_conv_bits_mve_prep (below) with the packed rows and the M tables made at code generation:
 * 9x9x33 s2 p1 0.094, 7x7x40 0.067, 4x4x256 p1 0.040 (the `Helium, prepared weights` column).
 */
#ifndef BNN_CONV_MVE_COL_WORDS
#define BNN_CONV_MVE_COL_WORDS 512u /* column image: ((out_h - 1) stride_h + kh) rwd words, 2 KB */
#endif
#ifndef BNN_CONV_MVE_W_WORDS
#define BNN_CONV_MVE_W_WORDS 1024u /* a group's packed weight rows (cin % 32 != 0), 4 KB */
#endif
#ifndef BNN_CONV_MVE_GROUP
#define BNN_CONV_MVE_GROUP 64u /* channels per group (a multiple of 32): c_t and M tables on the stack */
#endif

/* A row segment in the row-dense layout: the kw taps (cw words each, tap kx at src + kx cw, the
 * last word of a tap holds tail = cin - 32 (cw - 1) valid bits, zeros above): first the kw (cw - 1)
 * full words, then the kw tail words as a bit stream (tail bits each), rwd = kw (cw - 1) +
 * ceil(kw tail / 32) = ceil(kw cin / 32) words.  Any fixed order of the bits is exact (popcount of
 * x ^ w does not depend on it), as long as patches and weight rows share it; this one packs with
 * a few instructions per tap (3x3 cin 40: 3 copies, 3 shifts). */
static void mve_segment(const bnn_word_t *src, uint32_t kw, uint32_t cw, uint32_t tail, bnn_word_t *dst)
{
    const uint32_t full = cw - 1u;
    if (tail == 32u) { /* cin % 32 == 0: the padded layout */
        for (uint32_t i = 0; i < kw * cw; ++i) {
            dst[i] = src[i];
        }
        return;
    }
    for (uint32_t kx = 0; kx < kw; ++kx) {
        for (uint32_t i = 0; i < full; ++i) {
            *dst++ = src[kx * cw + i];
        }
    }
    uint32_t cur = 0u, b = 0u; /* the word being filled, its next free bit */
    for (uint32_t kx = 0; kx < kw; ++kx) {
        const uint32_t v = src[kx * cw + full];
        cur |= v << b; /* b < 32 */
        b += tail;
        if (b >= 32u) {
            *dst++ = cur;
            b -= 32u;
            cur = b != 0u ? v >> (tail - b) : 0u; /* tail - b in 1..31 when b != 0 */
        }
    }
    if (b != 0u) {
        *dst = cur;
    }
}

/* mve_segment for kw = 3, cw = 2 (cin 33..63) spelled out: the 3 full words, then the tails
 * (tail = cin - 32 bits each, tails3: 3 tail <= 32, else 2 tail < 32 (tail 11..15) or 16..31). */
BNN_INLINE void mve_segment3x2(const bnn_word_t *s, uint32_t tail, uint32_t mode, bnn_word_t *d)
{
    const uint32_t a = s[1], b = s[3], c = s[5], w0 = a | b << tail;
    d[0] = s[0];
    d[1] = s[2];
    d[2] = s[4];
    if (mode == 0u) { /* tail <= 10: one word */
        d[3] = w0 | c << (2u * tail);
    } else if (mode == 1u) { /* 11..15: c crosses into word 1 */
        d[3] = w0 | c << (2u * tail);
        d[4] = c >> (32u - 2u * tail);
    } else { /* 16..31: b crosses (or ends word 0 at 16), c starts in word 1 at o = 2 tail - 32 */
        const uint32_t o = 2u * tail - 32u; /* 0..30 */
        d[3] = w0;
        d[4] = b >> (32u - tail) | c << o;
        if (o + tail > 32u) { /* 22..31: c crosses into word 2 (o >= 12) */
            d[5] = c >> (32u - o);
        }
    }
}

/* count segments: segment i from src + i sstep to dst + i rwd (weight rows, column images). */
static void __attribute__((noinline)) mve_segments(const bnn_word_t *src, uint32_t sstep, uint32_t count, uint32_t kw,
                                                   uint32_t cw, uint32_t tail, bnn_word_t *dst, uint32_t rwd)
{
    if (kw == 3u && cw == 2u && tail != 32u) { /* 3x3 kernels at cin 33..63, the mode fixed per loop */
        const uint32_t mode = 3u * tail <= 32u ? 0u : 2u * tail < 32u ? 1u : 2u;
        if (mode == 0u) {
            for (uint32_t i = 0; i < count; ++i, src += sstep, dst += rwd) {
                mve_segment3x2(src, tail, 0u, dst);
            }
        } else if (mode == 1u) {
            for (uint32_t i = 0; i < count; ++i, src += sstep, dst += rwd) {
                mve_segment3x2(src, tail, 1u, dst);
            }
        } else {
            for (uint32_t i = 0; i < count; ++i, src += sstep, dst += rwd) {
                mve_segment3x2(src, tail, 2u, dst);
            }
        }
        return;
    }
    for (uint32_t i = 0; i < count; ++i, src += sstep, dst += rwd) {
        mve_segment(src, kw, cw, tail, dst);
    }
}

/* mve_segment of a clipped row: taps kx0 <= kx < kx1 at src + (kx - kx0) cw, the others zero. */
static void __attribute__((noinline)) mve_segment_clipped(const bnn_word_t *src, uint32_t kw, uint32_t cw, uint32_t tail, uint32_t kx0,
                                uint32_t kx1, bnn_word_t *dst)
{
    bnn_word_t t[BNN_CONV_PATCH_WORDS]; /* kw cw <= kh kw cw <= BNN_CONV_PATCH_WORDS (caller) */
    for (uint32_t i = 0; i < kw * cw; ++i) {
        t[i] = 0u;
    }
    for (uint32_t i = 0; i < (kx1 - kx0) * cw; ++i) {
        t[kx0 * cw + i] = src[i];
    }
    mve_segments(t, 0u, 1u, kw, cw, tail, dst, 0u);
}

/* The column image of the column whose window starts at input column x0 (valid taps [kx0, kx1)):
 * rows r < rlo and r >= rhi (y = r - pad_h outside the image) are zero, the others are the row
 * segments of input row r - pad_h (rows = (out_h - 1) stride_h + kh, rwd words each). */
static void mve_column(const bnn_conv_params_t *p, const bnn_word_t *in, int32_t x0, uint32_t kx0, uint32_t kx1,
                       uint32_t rows, bnn_word_t *col)
{
    const uint32_t cin = p->cin, cw = BNN_WORDS(cin), kw = p->kw, ph = p->pad_h, in_h = p->in_h, in_w = p->in_w;
    const uint32_t rwd = BNN_WORDS(kw * cin), tail = cin - 32u * (cw - 1u);
    const uint32_t rlo = ph < rows ? ph : rows, rhi = ph + in_h < rows ? ph + in_h : rows;
    for (uint32_t i = 0; i < rlo * rwd; ++i) {
        col[i] = 0u;
    }
    for (uint32_t i = (rhi > rlo ? rhi : rlo) * rwd; i < rows * rwd; ++i) {
        col[i] = 0u;
    }
    if (rhi > rlo) {
        const bnn_word_t *src = in + ((rlo - ph) * in_w + (uint32_t)(x0 + (int32_t)kx0)) * cw;
        if (kx0 == 0u && kx1 == kw) {
            mve_segments(src, in_w * cw, rhi - rlo, kw, cw, tail, col + rlo * rwd, rwd);
        } else {
            for (uint32_t r = rlo; r < rhi; ++r, src += in_w * cw) {
                mve_segment_clipped(src, kw, cw, tail, kx0, kx1, col + r * rwd);
            }
        }
    }
}

/* m[j] = clamp(floor((kv - t[j]) / 2) + sum_{t in padded} pc[j taps + t], -1, hi) for j < ceil(gn / 4) 4
 * (whole vectors: t and m hold BNN_CONV_MVE_GROUP entries, t is clamped to [-2^29, 2^29] and 0 past gn,
 * pc's entries past gn are read but their lanes are never used). */
static void __attribute__((noinline)) mve_thresholds(const int32_t *t, const uint32_t *pc, uint32_t gn, uint32_t taps,
                                                     uint32_t padded, int32_t kv, int32_t hi, int32_t *m)
{
    const uint32_t *tap[BNN_CONV_MAX_TAPS]; /* c_t of channel 0 of each padded tap */
    uint32_t np = 0;
    for (uint32_t i = 0; i < taps; ++i) {
        if ((padded >> i) & 1u) {
            tap[np++] = pc + i;
        }
    }
    uint32x4_t offs = vmulq_n_u32(vidupq_n_u32(0u, 1), 4u * taps); /* channel j + l: + 4 l taps bytes */
    const uint32_t step = 16u * taps;
    const int32x4_t lo = vdupq_n_s32(-1), top = vdupq_n_s32(hi), k = vdupq_n_s32(kv);
    for (uint32_t j = 0; j < gn; j += 4u, offs = vaddq_n_u32(offs, step)) {
        int32x4_t a = vshrq_n_s32(vsubq_s32(k, vld1q_s32(t + j)), 1); /* |kv - t| < 2^31 */
        for (uint32_t i = 0; i < np; ++i) {
            a = vaddq_s32(a, vreinterpretq_s32_u32(vldrwq_gather_offset_u32(tap[i], offs)));
        }
        vst1q_s32(m + j, vminq_s32(vmaxq_s32(a, lo), top));
    }
}

/* The conv by column images (above); 0 when the shape does not fit the buffers (the caller then
 * runs the patch path). */
static int __attribute__((noinline)) conv_bits_mve(const bnn_conv_params_t *p, const bnn_word_t *in,
                                                    const bnn_word_t *w, const int32_t *thr, int pad_minus1,
                                                    bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn)
{
    const uint32_t cin = p->cin, cw = BNN_WORDS(cin), kh = p->kh, kw = p->kw, taps = kh * kw;
    const uint32_t in_h = p->in_h, in_w = p->in_w, sh = p->stride_h, sw = p->stride_w;
    const uint32_t ph = p->pad_h, pw = p->pad_w, out_h = p->out_h, out_w = p->out_w, cout = p->cout;
    const uint32_t rwd = BNN_WORDS(kw * cin), nw = kh * rwd, n = taps * cw, ow = BNN_WORDS(cout);
    const uint32_t tail = cin - 32u * (cw - 1u);
    const int packed = cin % 32u != 0u;
    if (cin < 32u || out_h == 0u || out_w == 0u || cout == 0u || sh == 0u || sw == 0u || taps > BNN_CONV_MAX_TAPS ||
        n > BNN_CONV_PATCH_WORDS || ((out_h - 1u) * sh + kh) * rwd > BNN_CONV_MVE_COL_WORDS ||
        (packed && 32u * nw > BNN_CONV_MVE_W_WORDS)) {
        return 0;
    }
    const uint32_t rows = (out_h - 1u) * sh + kh;
    const int has_pad = !pad_minus1 && (ph != 0u || pw != 0u);
    uint32_t gmax = BNN_CONV_MVE_GROUP;
    if (packed && BNN_CONV_MVE_W_WORDS / nw / 32u * 32u < gmax) {
        gmax = BNN_CONV_MVE_W_WORDS / nw / 32u * 32u; /* >= 32 (checked above) */
    }
    bnn_word_t col[BNN_CONV_MVE_COL_WORDS];
    bnn_word_t wpk[BNN_CONV_MVE_W_WORDS];
    uint32_t pc[BNN_CONV_MVE_GROUP * BNN_CONV_MAX_TAPS]; /* c_t of channel j at [j taps + t] */
    int32_t mt[3][BNN_CONV_MVE_GROUP];                   /* M per window rows class */
    int32_t tg[BNN_CONV_MVE_GROUP];                      /* the group's thresholds, clamped */
    uint32_t key[3];
    for (uint32_t g0 = 0; g0 < cout; g0 += gmax) {
        const uint32_t gn = cout - g0 < gmax ? cout - g0 : gmax;
        const bnn_word_t *wg = w + g0 * n, *wrows = wg;
        if (packed) { /* the group's weight rows, row-dense */
            mve_segments(wg, kw * cw, gn * kh, kw, cw, tail, wpk, rwd);
            wrows = wpk;
        }
        for (uint32_t j = 0; j < ((gn + 3u) & ~3u); ++j) { /* whole vectors; |t| <= 2^29: any thr beyond
                                                             * gives the same bits (K < 2^16) */
            const int32_t t = j < gn ? thr[g0 + j] : 0;
            tg[j] = t < -(1 << 29) ? -(1 << 29) : t > (1 << 29) ? (1 << 29) : t;
        }
        if (has_pad) { /* c_t: the gn taps tap word groups against a zero patch */
            for (uint32_t i = 0; i < cw; ++i) {
                col[i] = 0u;
            }
            rows_popcounts(col, wg, cw, gn * taps, pc, pfn);
        }
        uint32_t xkey = ~0u;
        for (uint32_t ox = 0; ox < out_w; ++ox) {
            const int32_t x0 = (int32_t)(ox * sw) - (int32_t)pw;
            const uint32_t kx0 = x0 < 0 ? (uint32_t)(-x0) < kw ? (uint32_t)(-x0) : kw : 0u;
            const int32_t right = (int32_t)in_w - x0; /* taps kx < right are inside */
            uint32_t kx1 = right <= 0 ? 0u : (uint32_t)right < kw ? (uint32_t)right : kw;
            kx1 = kx1 < kx0 ? kx0 : kx1;
            if ((kx0 | kx1 << 8) != xkey) { /* other valid taps: the M tables are stale */
                xkey = kx0 | kx1 << 8;
                key[0] = key[1] = key[2] = ~0u;
            }
            mve_column(p, in, x0, kx0, kx1, rows, col);
            for (uint32_t oy = 0; oy < out_h; ++oy) {
                const int32_t y0 = (int32_t)(oy * sh) - (int32_t)ph;
                const uint32_t ky0 = y0 < 0 ? (uint32_t)(-y0) < kh ? (uint32_t)(-y0) : kh : 0u;
                const int32_t below = (int32_t)in_h - y0;
                uint32_t ky1 = below <= 0 ? 0u : (uint32_t)below < kh ? (uint32_t)below : kh;
                ky1 = ky1 < ky0 ? ky0 : ky1;
                const uint32_t slot = ky0 != 0u ? 0u : ky1 != kh ? 2u : 1u;
                const uint32_t yk = ky0 | ky1 << 8;
                if (key[slot] != yk) {
                    uint32_t padded = 0u, nv = 0u;
                    if (has_pad) {
                        const uint32_t cols = ((1u << kx1) - 1u) & ~((1u << kx0) - 1u);
                        uint32_t valid = 0u;
                        for (uint32_t ky = ky0; ky < ky1; ++ky) {
                            valid |= cols << (ky * kw);
                        }
                        padded = ~valid & ((1u << taps) - 1u);
                        nv = (ky1 - ky0) * (kx1 - kx0);
                    } else {
                        nv = taps;
                    }
                    mve_thresholds(tg, pc, gn, taps, padded, (int32_t)(nv * cin), (int32_t)(32u * nw),
                                   mt[slot]);
                    key[slot] = yk;
                }
                const bnn_word_t *patch = col + oy * sh * rwd;
                bnn_word_t *dst = out + (oy * out_w + ox) * ow + g0 / 32u;
                for (uint32_t c = 0; c < gn; c += 32u) {
                    const uint32_t cnt = gn - c < 32u ? gn - c : 32u;
                    *dst++ = rows_bits(patch, wrows + c * nw, mt[slot] + c, nw, cnt, fn);
                }
            }
        }
    }
    return 1;
}

/* bnn_conv_bits_mve_prep (bnn_conv.h): conv_bits_mve with the weight rows, tap counts and M tables
 * from code generation (bnn2hw/mcu/conv_mve_prep.py): per call only the column images and the row
 * kernels run (no groups: the whole cout per position, the column image built once per column). */
void bnn__conv_bits_mve_prep(const bnn_conv_params_t *p, const bnn_conv_mve_prep_t *q, const bnn_word_t *in,
                             bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn)
{
    const uint32_t cin = p->cin, kh = p->kh, kw = p->kw, sh = p->stride_h, sw = p->stride_w;
    const uint32_t out_h = p->out_h, out_w = p->out_w, cout = p->cout, pw = p->pad_w;
    const uint32_t rwd = BNN_WORDS(kw * cin), nw = kh * rwd, ow = BNN_WORDS(cout);
    const uint32_t rows = out_h == 0u ? 0u : (out_h - 1u) * sh + kh;
    if (cin < 32u || kw * BNN_WORDS(cin) > BNN_CONV_PATCH_WORDS || rows * rwd > BNN_CONV_MVE_COL_WORDS) {
        bnn__conv_bits_rows(p, in, q->raw_w, q->thr, (int)q->pad_minus1, out, fn, q->pad_minus1 ? 0 : pfn);
        return;
    }
    bnn_word_t col[BNN_CONV_MVE_COL_WORDS];
    for (uint32_t ox = 0; ox < out_w; ++ox) {
        const int32_t x0 = (int32_t)(ox * sw) - (int32_t)pw;
        const uint32_t kx0 = x0 < 0 ? (uint32_t)(-x0) < kw ? (uint32_t)(-x0) : kw : 0u;
        const int32_t right = (int32_t)p->in_w - x0; /* taps kx < right are inside */
        uint32_t kx1 = right <= 0 ? 0u : (uint32_t)right < kw ? (uint32_t)right : kw;
        kx1 = kx1 < kx0 ? kx0 : kx1;
        mve_column(p, in, x0, kx0, kx1, rows, col);
        const int32_t *mx = q->m + q->xcls[ox] * q->cpad;
        for (uint32_t oy = 0; oy < out_h; ++oy) {
            const bnn_word_t *patch = col + oy * sh * rwd;
            const int32_t *mm = mx + q->ycls[oy] * q->nx * q->cpad;
            bnn_word_t *dst = out + (oy * out_w + ox) * ow;
            for (uint32_t c = 0; c < cout; c += 32u) {
                const uint32_t cnt = cout - c < 32u ? cout - c : 32u;
                *dst++ = rows_bits(patch, q->w + c * nw, mm + c, nw, cnt, fn);
            }
        }
    }
}
#endif

void bnn__conv_bits_rows(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                         const int32_t *thr, int pad_minus1, bnn_word_t *out, bnn_conv_rows_fn fn,
                         bnn_conv_rows_fn pfn)
{
    const uint32_t cw = BNN_WORDS(p->cin);
    const uint32_t taps = p->kh * p->kw;
    const uint32_t n = taps * cw;
    const uint32_t nw = bnn__conv_row_words(p);
    const int dense = nw != n;
    const int d16 = dense && p->cin == 16u && p->kh == 3u && p->kw == 3u; /* two taps a word, spelled out */
    const int d24 = dense && p->cin == 24u && p->kh == 3u && p->kw == 3u; /* pack_taps_3x3x24 */
    const int g3 = p->kh == 3u && p->kw == 3u && cw == 1u; /* border patches: gather_border_3x3_1w */
#if BNN_CONV16_PAIRS
#define CONV16_MM(m) (d16 ? ~(m) : (m)) /* conv16_rows_bits takes ~M = -M - 1 */
#else
#define CONV16_MM(m) (m)
#endif
    const uint32_t ow = BNN_WORDS(p->cout);
    /* -1 padding: a padded tap's zero bits in the patch are the activation -1, K is the full
     * kh kw cin everywhere, so every position takes m_full (no correction) */
    const int has_pad = !pad_minus1 && (p->pad_h != 0u || p->pad_w != 0u);
    const span_t cols = interior_cols(p);
    const uint32_t rw = p->kw * cw, step = p->in_w * cw, xstep = p->stride_w * cw;
    if (n > BNN_CONV_PATCH_WORDS || taps > BNN_CONV_MAX_TAPS || n == 0u) {
        conv_bits_generic(p, in, w, thr, pad_minus1, out);
        return;
    }
#if BNN_MVE
    if (conv_bits_mve(p, in, w, thr, pad_minus1, out, fn, pfn)) {
        return;
    }
#endif
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
            m_full[j] = CONV16_MM(clamp_mm((int64_t)taps * p->cin - thr[c0 + j], nw));
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
        if (dense) { /* the chunk's weight rows, taps packed back to back (wdense: 32 nw words) */
            for (uint32_t j = 0; j < cnt; ++j) {
                pack_taps(wc + j * n, rw, p->kh, p->kw, p->cin, wdense + j * nw);
            }
        }
#if BNN_CONV16_PAIRS
        bnn_word_t wpairs[16u * CONV16_PAIR_WORDS];
        if (d16) { /* 3x3x16: the rows as pair records (conv16_rows_bits) */
            conv16_pack_pairs(wdense, cnt, wpairs);
        }
#define ROWS_BITS(x, mm) (d16 ? conv16_rows_bits(x, wpairs, mm, cnt) : rows_bits(x, rows, mm, nw, cnt, fn))
#else
#define ROWS_BITS(x, mm) rows_bits(x, rows, mm, nw, cnt, fn)
#endif
        const bnn_word_t *rows = dense ? wdense : wc;
        bnn_word_t *dst = out + c0 / 32u;
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            uint32_t ox = 0;
            const bnn_word_t *src = in;
            const int inner = interior_row(p, in, oy, cols, &src);
            while (ox < p->out_w) {
                if (inner && ox == cols.lo) { /* the interior run of the row, one loop per patch layout */
#define INTERIOR_RUN(GATHER, MM)                                        \
    for (; ox < cols.hi; ++ox, dst += ow, src += xstep) {               \
        GATHER;                                                         \
        *dst = ROWS_BITS(patch, MM);                                    \
    }
                    if (d16) {
                        INTERIOR_RUN(pack_taps_3x3x16(src, step, patch), m_full)
                    } else if (d24) {
                        INTERIOR_RUN(pack_taps_3x3x24(src, step, patch), m_full)
                    } else if (dense) {
                        INTERIOR_RUN(pack_taps(src, step, p->kh, p->kw, p->cin, patch), m_full)
                    } else {
                        INTERIOR_RUN(copy_window(src, step, p->kh, rw, patch), m_full)
                    }
                    continue;
                }
                window_t win = window(p, oy, ox);
                const int32_t *mm = m_full;
                if (g3) {
                    gather_border_3x3_1w(in, p->in_h, p->in_w, p->cin, win.y0, win.x0, dense, patch);
                } else {
                    gather_patch(p, in, &win, dense, nw, patch);
                }
                if (has_pad && !window_full(p, &win)) {
                    const uint32_t padded = padded_taps(p, &win);
                    const uint32_t slot = border_slot(p, &win);
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
                            m_cache[slot][j] = CONV16_MM(clamp_mm(kv + 2 * (int64_t)corr - thr[c0 + j], nw));
                        }
                        cache_key[slot] = padded;
                    }
                    mm = m_cache[slot];
                }
                *dst = ROWS_BITS(patch, mm);
                dst += ow;
                ++ox;
            }
        }
    }
#undef ROWS_BITS
#undef CONV16_MM
}

/* ==== 3x3x24 rows with the patch in registers (issue 11; bnn_conv_bits_prep / _few) ====
 *
 * 3x3 convs with 24 input channels: a patch is 216 bits, pack_taps_3x3x24's seven words (six full,
 * the seventh tap 8's 24 bits).  The generic row kernel runs them as 7-word rows (~62 instructions
 * per row, 0.289 per MAC).  Here the seventh word is stored "tail-spread" (bnn_conv24_tail: 3 of the
 * 4 bits of each nibble, bit 3 of every nibble 0) in the weight rows (conv_m4_prep.py at generation
 * time) and in the patch (once per position), which makes its mismatch count a nibble-count word
 * (fields <= 3) in 4 operations, added to the nibble counts of words 0-2 (fields <= 12) before
 * their byte sum: per row
 *   words 0-2  3 EOR, 2-bit counts of words 0 and 1 (AND + SUB each), word 2's even / odd bits
 *              added to them (fields <= 3), the two words' nibble counts summed (nib2_sum,
 *              6 operations)                                                       17 ALU
 *   word 6     EOR, v - ((v & EE..) >> 1) - ((v & CC..) >> 2), added                 6 ALU
 *   words 3-5  as words 0-2                                                        17 ALU
 *   two byte sums into the ~M accumulator (AND, SUB, USADA8; bnn_bits.c)            6 ALU
 * = 46 ALU, + 5 loads (records, ~M) + 2 (the row's bit) + 1 branch = 54 instructions per
 * 216-MAC row (0.250 per MAC) in conv24_few_asm, the patch's seven words held in r4-r10 for all
 * rows of a position.  Any fixed bit order is exact as long as rows and patches share it.
 * BNN_CONV24_ROWS (default: Thumb-2 cores with the assembly row kernels, not Helium) makes
 * bnn_conv_bits_prep / _few expect such data (bnn_conv_prep_t.pairs = 1 for cin 24, ~M tables): the
 * assembly loop where the core has USADA8 (M4, M7, M33), the generic row kernel on the Cortex-M3
 * (conv24_positions); the host tests force it on (-DBNN_CONV24_ROWS=1: the portable twin
 * conv24_rows_bits).  Elsewhere (M0: 9-word rows; Helium) the data is "made for another build" and
 * the entries run the plain path.
 */
#ifndef BNN_CONV24_ROWS
#define BNN_CONV24_ROWS (BNN_MULTI_ASM && !BNN_MVE)
#endif
#define CONV24_ROW_WORDS 7u

/* The seventh word's tail spread: bnn_conv24_tail (bnn_conv.h; generated patch packers call it too). */

#if BNN_CONV24_ROWS
#if BNN_HAVE_USADA8
#include <arm_acle.h>
#endif
/* acc + the byte sums of the nibble-count words s1 (fields <= 15) and s2 (<= 12): two USADA8 steps
 * (|lo + 16 hi - 15 hi| = lo + hi per byte, bnn_bits.c), else the bytes of both (<= 54) summed once. */
BNN_INLINE uint32_t conv24_acc2(uint32_t acc, uint32_t s1, uint32_t s2)
{
#if BNN_HAVE_USADA8
    const uint32_t t1 = s1 & 0xF0F0F0F0u, t2 = s2 & 0xF0F0F0F0u;
    return __usada8(s2, t2 - (t2 >> 4), __usada8(s1, t1 - (t1 >> 4), acc));
#else
    return acc + bnn__hsum_bytes(bnn__bytes(s1) + bnn__bytes(s2));
#endif
}

/* Portable twin of conv24_few_asm for one position: the bits of cnt (1..32) rows w (7 words each,
 * tail spread) against the patch x (tail spread), nm[j] = ~M_j: bit j = popcount(x ^ row j) <= M_j
 * (the rows_bits contract). */
BNN_INLINE uint32_t conv24_rows_bits(const bnn_word_t *x, const bnn_word_t *w, const int32_t *nm, uint32_t cnt)
{
    uint32_t bits = 0;
    for (uint32_t j = 0; j < cnt; ++j, w += CONV24_ROW_WORDS) {
        const uint32_t t = w[6] ^ x[6]; /* bit 3 of each nibble 0 */
        const uint32_t n1 = nib_group3(w[0] ^ x[0], w[1] ^ x[1], w[2] ^ x[2]) +
                            (t - ((t & 0xEEEEEEEEu) >> 1) - ((t & 0xCCCCCCCCu) >> 2)); /* fields <= 15 */
        const uint32_t acc = conv24_acc2((uint32_t)nm[j], n1, nib_group3(w[3] ^ x[3], w[4] ^ x[4], w[5] ^ x[5]));
        bits = (bits >> 1) | (acc & 0x80000000u);
    }
    return bits >> (32u - cnt);
}

#if BNN_HAVE_USADA8 && BNN_MULTI_ASM
/*
 * conv24_few_asm(job): for every position i < n, the bits of cnt = 1..32 rows (job->w, 7 words each)
 * against the position's patch (job->x + 7 i) with the ~M row job->mp[i] (+ c0, folded in by the
 * caller), stored as out[i ow] = bits >> (32 - cnt), row j at bit j: conv24_rows_bits with the patch
 * in registers and the row loop ended by a sentinel bit (1 << (cnt - 1), shifted out by the cnt-th
 * RRXS), as conv16_few_asm.  Per row 54 instructions (block comment above); per position 15 more.
 * Registers in the row loop: r0 accumulator (~M, then + the counts; scratch before the ~M load),
 * r1 rows, r2 ~M row, r3 bits, r4-r10 patch words 0-6, r11 / r12 / lr row words and scratch.
 * The job shape is few_job_t's (one output word per position and 32-channel chunk).
 */
/* CONV24_2BIT: the mismatch words X, Y as 2-bit counts in place (fields <= 2; SCR scratch).
 * NIB2_SUM (shared with the 3x3x16 records): X = nib2_sum(X, Y).  CONV24_ACC: r0 += the byte sums
 * of the nibble-count word S (USADA8). */
#define CONV24_2BIT(X, Y, SCR)                                                             \
    "and " SCR ", " X ", #0xAAAAAAAA\n\t"                                                  \
    "sub " X ", " X ", " SCR ", lsr #1\n\t"                                                \
    "and " SCR ", " Y ", #0xAAAAAAAA\n\t"                                                  \
    "sub " Y ", " Y ", " SCR ", lsr #1\n\t"
#define CONV24_ACC(S, SCR) FEW_ASM_ACC("r0", S, SCR)
/* job: r0 on entry (FEW_ASM_ENTRY / FEW_ASM_NEXT) */
__attribute__((naked, noinline)) static void conv24_few_asm(few_job_t *job __attribute__((unused)))
{
    __asm__(FEW_ASM_ENTRY("r4, r5, r6, r7, r8, r9, r10")
            "ldm r1!, {r11, r12, lr}\n\t"           /* words 0-2 (r1: the row + 12) */
            "eor r11, r11, r4\n\t"
            "eor r12, r12, r5\n\t"
            "eor lr, lr, r6\n\t" CONV24_2BIT("r11", "r12", "r0")
            "and r0, lr, #0x55555555\n\t"           /* word 2: even bits to word 0, odd to word 1 */
            "and lr, lr, #0xAAAAAAAA\n\t"
            "add r11, r11, r0\n\t"
            "add r12, r12, lr, lsr #1\n\t" NIB2_SUM("r11", "r12", "lr")
            "ldr r12, [r1, #12]\n\t"                /* word 6, tail-spread */
            "eor r12, r12, r10\n\t"
            "and r0, r12, #0xCCCCCCCC\n\t"
            "and lr, r12, #0xEEEEEEEE\n\t"
            "sub r12, r12, lr, lsr #1\n\t"
            "sub r12, r12, r0, lsr #2\n\t"          /* its nibble counts, <= 3 */
            "add r11, r11, r12\n\t"                 /* <= 15 */
            "ldr r0, [r2], #4\n\t"                  /* ~M */
            CONV24_ACC("r11", "r12")
            "ldrd r11, r12, [r1], #8\n\t"           /* words 3, 4 (r1: the row + 20) */
            "eor r11, r11, r7\n\t"
            "eor r12, r12, r8\n\t" CONV24_2BIT("r11", "r12", "lr")
            "ldr lr, [r1], #8\n\t"                  /* word 5 (r1: the next row) */
            "eor lr, lr, r9\n\t"
            "add r11, r11, lr\n\t"                  /* + (lr & 55..) without a scratch register: */
            "and lr, lr, #0xAAAAAAAA\n\t"           /* + lr - (lr & AA..) */
            "sub r11, r11, lr\n\t"
            "add r12, r12, lr, lsr #1\n\t" NIB2_SUM("r11", "r12", "lr") CONV24_ACC("r11", "lr")
            "lsls r12, r0, #1\n\t"                  /* the row's bit: the accumulator's sign */
            "rrxs r3, r3\n\t"
            "bcc 1b\n\t"
            FEW_ASM_NEXT("28"));
}
#undef CONV24_2BIT
#undef CONV24_ACC
#endif

/* cnt (1..32) rows against npos patches of 7 words (tail spread), position i's ~M row at mp[i] + c0:
 * one output word per position (out + i ow).  fn: the build's generic row kernel (rows_bits), which
 * the Cortex-M3 runs on the same rows (any common bit order is exact) with M = ~(~M) converted once
 * per run of positions of one class: 8x8x24 stride 1 pad 0 0.355 per MAC there (the portable twin:
 * 0.412; the plain 7-word rows before this layout: 0.346). */
static void __attribute__((noinline)) conv24_positions(const bnn_word_t *x, const bnn_word_t *rows,
                                                       const int32_t *const *mp, uint32_t c0, uint32_t npos,
                                                       uint32_t cnt, bnn_word_t *out, uint32_t ow,
                                                       bnn_conv_rows_fn fn)
{
#if BNN_HAVE_USADA8 && BNN_MULTI_ASM
    (void)fn;
    const int32_t *mc[BNN_CONV_FEW_POS]; /* the chunk's ~M rows (chunks after the first) */
    for (uint32_t i = 0; c0 != 0u && i < npos; ++i) {
        mc[i] = mp[i] + c0;
    }
    few_job_t job = {x, c0 != 0u ? mc : mp, out, x + CONV24_ROW_WORDS * npos, rows, 1u << (cnt - 1u),
                       32u - cnt, 4u * ow};
    conv24_few_asm(&job);
#elif BNN_MULTI_ASM
    int32_t m[32]; /* M of the class row `last` (neighbouring positions mostly share their class) */
    const int32_t *last = 0;
    for (uint32_t i = 0; i < npos; ++i, x += CONV24_ROW_WORDS, out += ow) {
        const int32_t *nm = mp[i] + c0;
        if (nm != last) {
            for (uint32_t j = 0; j < cnt; ++j) {
                m[j] = ~nm[j];
            }
            last = nm;
        }
        *out = rows_bits(x, rows, m, CONV24_ROW_WORDS, cnt, fn);
    }
#else
    (void)fn;
    for (uint32_t i = 0; i < npos; ++i, x += CONV24_ROW_WORDS, out += ow) {
        *out = conv24_rows_bits(x, rows, mp[i] + c0, cnt);
    }
#endif
}

/* The patches of positions [ox, end) of one output row (top-left input row y0, interior columns cols,
 * src = the top-left tap of column cols.lo when inner) at x, 7 words each with the seventh spread,
 * their ~M rows (my: the row's class tables) at mp.  Interior positions are packed straight from the
 * input, the others gathered with zero bits at the padded taps (as bnn__conv_bits_prep). */
static void conv24_gather(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, const bnn_word_t *in,
                          const int32_t *my, int32_t y0, int inner, span_t cols, const bnn_word_t *src,
                          uint32_t ox, uint32_t end, bnn_word_t *x, const int32_t **mp)
{
    const uint32_t cpad = q->cpad, step = p->in_w, xstep = p->stride_w;
    while (ox < end) {
        if (inner && ox >= cols.lo && ox < cols.hi) { /* the interior run: one class, no bounds */
            const int32_t *mi = my + q->xcls[ox] * cpad;
            const uint32_t stop = cols.hi < end ? cols.hi : end;
            for (const bnn_word_t *s = src + (ox - cols.lo) * xstep; ox < stop;
                 ++ox, s += xstep, x += CONV24_ROW_WORDS) {
                pack_taps_3x3x24(s, step, x);
                x[6] = bnn_conv24_tail(x[6]);
                *mp++ = mi;
            }
            continue;
        }
        gather_border_3x3_1w(in, p->in_h, p->in_w, 24u, y0, (int32_t)(ox * p->stride_w) - (int32_t)p->pad_w, 1, x);
        x[6] = bnn_conv24_tail(x[6]);
        *mp++ = my + q->xcls[ox] * cpad;
        x += CONV24_ROW_WORDS;
        ++ox;
    }
}

/* bnn_conv_bits_prep on 3x3x24 data with tail-spread rows and ~M tables: per output row, blocks of up
 * to BNN_CONV_FEW_POS positions gathered (conv24_gather), then conv24_positions per 32-channel
 * chunk. */
static void __attribute__((noinline)) conv24_prep(const bnn_conv_params_t *p, const bnn_conv_prep_t *q,
                                                  const bnn_word_t *in, bnn_word_t *out, bnn_conv_rows_fn fn)
{
    const uint32_t ow = BNN_WORDS(p->cout), out_w = p->out_w, cpad = q->cpad, nx = q->nx;
    const span_t cols = interior_cols(p);
    bnn_word_t patch[BNN_CONV_FEW_POS * CONV24_ROW_WORDS];
    const int32_t *mp[BNN_CONV_FEW_POS];
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t *my = q->m + q->ycls[oy] * nx * cpad;
        const bnn_word_t *src = in;
        const int inner = interior_row(p, in, oy, cols, &src); /* src: column cols.lo */
        const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
        for (uint32_t ox0 = 0; ox0 < out_w; ox0 += BNN_CONV_FEW_POS) {
            const uint32_t n = out_w - ox0 < BNN_CONV_FEW_POS ? out_w - ox0 : BNN_CONV_FEW_POS;
            conv24_gather(p, q, in, my, y0, inner, cols, src, ox0, ox0 + n, patch, mp);
            bnn_word_t *dst = out + (oy * out_w + ox0) * ow;
            for (uint32_t c0 = 0; c0 < p->cout; c0 += 32u) {
                const uint32_t left = p->cout - c0;
                conv24_positions(patch, q->w + c0 * CONV24_ROW_WORDS, mp, c0, n, left < 32u ? left : 32u,
                                 dst + c0 / 32u, ow, fn);
            }
        }
    }
}
#endif
/* ==== end of the 3x3x24 rows ==== */

/*
 * bnn_conv_bits_prep (bnn_conv.h): bnn__conv_bits_rows with the weight side from code generation
 * (bnn2hw/mcu/conv_m4_prep.py): the chunk's rows are used in place (dense rows or pair records) and
 * every position reads its M table by window class, so a call is the position loops only.  Border
 * positions gather their patch as bnn__conv_bits_rows does (zero bits at padded taps).
 */
void bnn__conv_bits_prep(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, const bnn_word_t *in,
                         bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn)
{
    const uint32_t cw = BNN_WORDS(p->cin), taps = p->kh * p->kw, n = taps * cw;
    const uint32_t nw = bnn__conv_row_words(p);
    const int dense = nw != n;
    const int d16 = dense && p->cin == 16u && p->kh == 3u && p->kw == 3u;
    const int d24 = dense && p->cin == 24u && p->kh == 3u && p->kw == 3u; /* pack_taps_3x3x24 */
#if BNN_CONV16_PAIRS && !BNN_MVE
    const uint32_t pairs = d16 ? 1u : 0u;
#else
    const uint32_t pairs = 0u;
#endif
    const uint32_t rec24 = d24 && BNN_CONV24_ROWS ? 1u : 0u; /* 3x3x24 tail-spread rows, ~M */
    if (BNN_MVE || n > BNN_CONV_PATCH_WORDS || taps > BNN_CONV_MAX_TAPS || n == 0u || q->nw != nw ||
        q->pairs != (pairs | rec24)) { /* data made for another build: the plain path */
        bnn__conv_bits_rows(p, in, q->raw_w, q->thr, (int)q->pad_minus1, out, fn, q->pad_minus1 ? 0 : pfn);
        return;
    }
#if BNN_CONV24_ROWS
    if (rec24) {
        conv24_prep(p, q, in, out, fn);
        return;
    }
#endif
    const uint32_t ow = BNN_WORDS(p->cout), out_w = p->out_w, cpad = q->cpad, nx = q->nx;
    const int g3 = p->kh == 3u && p->kw == 3u && cw == 1u; /* border patches: gather_border_3x3_1w */
    const span_t cols = interior_cols(p);
    const uint32_t rw = p->kw * cw, step = p->in_w * cw, xstep = p->stride_w * cw;
    bnn_word_t patch[BNN_CONV_PATCH_WORDS];
    for (uint32_t c0 = 0; c0 < p->cout; c0 += 32u) {
        const uint32_t left = p->cout - c0;
        const uint32_t cnt = left < 32u ? left : 32u;
#if BNN_CONV16_PAIRS && !BNN_MVE
        const bnn_word_t *rows = q->w + (pairs ? 9u * c0 / 2u : c0 * nw);
#define PREP_ROWS_BITS(x, mm) (pairs ? conv16_rows_bits(x, rows, mm, cnt) : rows_bits(x, rows, mm, nw, cnt, fn))
#define ROWS_BITS PREP_ROWS_BITS
#else
        const bnn_word_t *rows = q->w + c0 * nw;
#define PREP_ROWS_BITS(x, mm) rows_bits(x, rows, mm, nw, cnt, fn)
#define ROWS_BITS PREP_ROWS_BITS
#endif
        bnn_word_t *dst = out + c0 / 32u;
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t *my = q->m + q->ycls[oy] * nx * cpad + c0;
            uint32_t ox = 0;
            const bnn_word_t *src = in;
            const int inner = interior_row(p, in, oy, cols, &src);
            while (ox < out_w) {
                if (inner && ox == cols.lo) { /* the interior run of the row: one window class */
                    const int32_t *mm = my + q->xcls[ox] * cpad;
                    if (d16) {
                        INTERIOR_RUN(pack_taps_3x3x16(src, step, patch), mm)
                    } else if (d24) {
                        INTERIOR_RUN(pack_taps_3x3x24(src, step, patch), mm)
                    } else if (dense) {
                        INTERIOR_RUN(pack_taps(src, step, p->kh, p->kw, p->cin, patch), mm)
                    } else {
                        INTERIOR_RUN(copy_window(src, step, p->kh, rw, patch), mm)
                    }
                    continue;
                }
                if (g3) {
                    gather_border_3x3_1w(in, p->in_h, p->in_w, p->cin, (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h,
                                         (int32_t)(ox * p->stride_w) - (int32_t)p->pad_w, dense, patch);
                } else {
                    const window_t win = window(p, oy, ox);
                    gather_patch(p, in, &win, dense, nw, patch);
                }
                *dst = PREP_ROWS_BITS(patch, my + q->xcls[ox] * cpad);
                dst += ow;
                ++ox;
            }
        }
#undef PREP_ROWS_BITS
#undef ROWS_BITS
    }
#undef INTERIOR_RUN
}

/*
 * bnn_conv_bits_few (bnn_conv.h): bnn_conv_bits_prep for 3x3 convs with cin <= 32 (one word per tap)
 * on the same prepared data, the output in tiles of at most BNN_CONV_FEW_POS positions.  The prepared
 * entry spends more on each position than the row kernel's own work needs (4x4x16 stride 2 pad 0, one
 * position: 380 of 1,051 Cortex-M4 instructions outside the pair kernel; 32x32x16 stride 2 pad 1:
 * ~150 per position): the window logic, the border gather (a call and nine bounds checks per tap
 * row), the class lookup and the row kernel's prologue, per position and per chunk.  Here, per tile:
 *   1. its patches by one full-window pack per position (no border case), read in place where the
 *      windows lie inside the input; elsewhere from a zero-bordered copy (a tap outside the input is
 *      a zero word there, which is what the prepared M tables expect of a padded tap: zero bits, the
 *      correction of zero padding folded into M, -1 padding's activation is bit 0): a conv that is
 *      one tile (out_h out_w <= BNN_CONV_FEW_POS) copies all its windows' rows once (yr x xc words,
 *      yr = (out_h - 1) stride_h + 3, xc = (out_w - 1) stride_w + 3, at most BNN_CONV_FEW_IMG);
 *      tiles of whole output rows (out_w <= BNN_CONV_FEW_POS: BNN_CONV_FEW_POS / out_w rows, fewer
 *      when their copy would pass BNN_CONV_FEW_IMG) copy their rectangle when some window leaves the
 *      input; runs of <= BNN_CONV_FEW_POS positions of a wider row (fewer at strides over 3, so that
 *      3 x ((n - 1) stride_w + 3) <= BNN_CONV_FEW_IMG) read the interior columns in place and copy
 *      only their ends (one window: gather_3x3_1w), or all of it in the first / last rows at padding;
 *      3x3x16 patches get their fifth word spread for the pair records, 3x3x24 ones their seventh
 *      tail-spread (bnn_conv24_tail);
 *   2. each position's M row (its window class);
 *   3. per 32-channel chunk, the row kernel on all the tile's positions (few_kernels, the pluggable
 *      step: 3x3x16 pair records in one assembly call over all positions, conv16_few_asm: the patch
 *      in registers, 72 instructions per record; 3x3x24 tail-spread rows likewise, conv24_positions:
 *      54 per row; other layouts bnn__conv_bits_rows' row kernel per position).
 * Invariant: every patch equals the one bnn__conv_bits_prep gathers for that position (zero bits
 * at the taps outside the input), with the same rows and M, so the bits are those of
 * bnn_conv_bits_ref / bnn_conv_bits_m1_ref.  Anything else (another kernel size, cin > 32, data made
 * for another build) runs bnn__conv_bits_prep.  Stack: (BNN_CONV_FEW_POS (9 + 2) + BNN_CONV_FEW_IMG)
 * words in few_one_tile / few_tiles (one or the other), peak 1.7 KB by default on the Cortex-M4
 * (-fstack-usage: entry 64 B, few_tiles 1,392, few_tile 96, few_pairs 160, conv16_few_asm 40: 1,752 B;
 * the one-tile path 1,632 B); no static memory; code: bnn_conv.o 23,280 B of text (Cortex-M4, -O2).
 * Measured (Cortex-M4, issue 11 grid, benchmarks/bench_conv_grid_m4.py, kernel "few"): 0.6% to 15%
 * fewer instructions than bnn_conv_bits_prep on every shape with <= 16 positions and <= 32 channels,
 * 7% to 11% fewer on every larger 3x3x16 shape (32x32 stride 2 pad 1: 0.320 -> 0.297 per binary MAC),
 * 0.1% to 2% fewer at 3x3x32; 1% more at 3x3x24 over 16 positions (conv_m4_prep.use_few).  With 72
 * instructions a record (NIB2_SUM) every 3x3x16 grid shape takes 2.2% to 2.5% fewer on both entries
 * (`bench_conv_grid_m4.py prep,few OUT.json "c == 16"`: 32x32 stride 2 pad 1 few 0.297 -> 0.290,
 * 4x4 stride 2 pad 0 0.419 -> 0.408 per binary MAC).
 */
#ifndef BNN_CONV_FEW_IMG
#define BNN_CONV_FEW_IMG 160u
#endif
#if BNN_CONV_FEW_IMG < 9u
#error "BNN_CONV_FEW_IMG: at least one 3x3 window (9 words)"
#endif

/* The prepared data was made for this build's row layout (else the caller runs the plain path). */
BNN_INLINE int prep_matches(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, uint32_t *pairs_out)
{
    const uint32_t nw = bnn__conv_row_words(p);
    const int dense = nw != p->kh * p->kw * BNN_WORDS(p->cin);
    const uint32_t d16 = dense && p->cin == 16u && p->kh == 3u && p->kw == 3u;
#if BNN_CONV16_PAIRS && !BNN_MVE
    uint32_t pairs = d16;
#else
    uint32_t pairs = 0u;
    (void)d16;
#endif
#if BNN_CONV24_ROWS
    pairs |= dense && p->cin == 24u && p->kh == 3u && p->kw == 3u; /* 3x3x24 tail-spread rows, ~M */
#endif
    *pairs_out = pairs;
    return q->nw == nw && q->pairs == pairs;
}

/* Rows [y0, y0 + yr) x columns [x0, x0 + xc) of the input (cw = 1; y0, x0 may be negative) into img
 * (yr x xc words), zero outside the input: all zeroed, then the input's rectangle copied (measured
 * cheaper on the small images here than zeroing only the border row by row). */
static void few_image(const bnn_conv_params_t *p, const bnn_word_t *in, int32_t y0, int32_t x0, uint32_t yr,
                      uint32_t xc, bnn_word_t *img)
{
    const int32_t in_h = (int32_t)p->in_h, in_w = (int32_t)p->in_w;
    const uint32_t nz = yr * xc;
    uint32_t i = 0;
    for (; i + 4u <= nz; i += 4u) { /* four words a step */
        img[i] = img[i + 1u] = img[i + 2u] = img[i + 3u] = 0u;
    }
    for (; i < nz; ++i) {
        img[i] = 0u;
    }
    /* the input's rectangle in the image: rows [ya, yb), columns [xa, xb) */
    const int32_t ya = y0 < 0 ? -y0 : 0, xa = x0 < 0 ? -x0 : 0;
    const int32_t yb = in_h - y0 < (int32_t)yr ? in_h - y0 : (int32_t)yr;
    const int32_t xb = in_w - x0 < (int32_t)xc ? in_w - x0 : (int32_t)xc;
    if (ya >= yb || xa >= xb) {
        return;
    }
    const uint32_t n = (uint32_t)(xb - xa);
    const bnn_word_t *s = in + (y0 + ya) * in_w + (x0 + xa);
    for (bnn_word_t *d = img + (uint32_t)ya * xc + (uint32_t)xa, *e = img + (uint32_t)yb * xc; d < e;
         d += xc, s += in_w) {
        uint32_t k = 0;
        for (; k + 4u <= n; k += 4u) { /* four words a step */
            d[k] = s[k];
            d[k + 1u] = s[k + 1u];
            d[k + 2u] = s[k + 2u];
            d[k + 3u] = s[k + 3u];
        }
        for (; k < n; ++k) {
            d[k] = s[k];
        }
    }
}

#if BNN_CONV16_PAIRS && BNN_HAVE_USADA8 && BNN_MULTI_ASM
/*
 * conv16_few_asm(job): for every position i < n, the bits of an even number 2P <= 32 of pair-record
 * rows (job->w) against the position's spread patch (job->x + 5 i, x[4] = spread(p4) * 3) with the
 * ~M row job->mp[i] (+ c0, folded in by the caller), stored as out[i ow] = bits >> (32 - 2P): row j
 * at bit j (conv16_pairs_bits' contract; an odd count's last record is the caller's).  conv16_pair's
 * arithmetic with the five patch words held in registers for all records of a position (r4-r8;
 * conv16_pairs_bits reloads them per record), the record loop ended by a sentinel bit instead of a
 * counter (bnn__dbt2's LSLS / RRXS, bnn_bits.c): sentinel = 1 << (2P - 1), row j's bit lands at
 * bit 32 - 2P + j.  Per record: LDRD (~M_A, ~M_B) + 3 LDM + 63 ALU + 4 (bits) + 1 branch = 72
 * instructions (objdump; 74 before the groups took NIB2_SUM); per position 14 more (the job's cursors live in memory: all 14 registers are the
 * record loop's).
 * Registers in the record loop: r0 / lr accumulators A / B, r1 records, r2 ~M pairs, r3 bits,
 * r4-r8 patch, r9-r11 record words, r12 scratch.
 */
#define FEW16_GROUP(ACC)                                                                   \
    "eor r9, r9, r4\n\t"                                                                   \
    "eor r10, r10, r5\n\t"                                                                 \
    "and r12, r9, #0xAAAAAAAA\n\t"                                                         \
    "eor r11, r11, r6\n\t"                                                                 \
    "sub r9, r9, r12, lsr #1\n\t"                                                          \
    "and r12, r10, #0xAAAAAAAA\n\t"                                                        \
    "sub r10, r10, r12, lsr #1\n\t"                                                        \
    "and r12, r11, #0x55555555\n\t"                                                        \
    "and r11, r11, #0xAAAAAAAA\n\t"                                                        \
    "add r9, r9, r12\n\t"                                                                  \
    "add r10, r10, r11, lsr #1\n\t" NIB2_SUM("r9", "r10", "r12") FEW16_ACC(ACC, "r9")
#define FEW16_ACC(ACC, S) FEW_ASM_ACC(ACC, S, "r12")
/* job: r0 on entry (FEW_ASM_ENTRY / FEW_ASM_NEXT) */
__attribute__((naked, noinline)) static void conv16_few_asm(few_job_t *job __attribute__((unused)))
{
    __asm__(FEW_ASM_ENTRY("r4, r5, r6, r7, r8")
            "ldrd r0, lr, [r2], #8\n\t"
            "ldm r1!, {r9, r10, r11}\n\t" FEW16_GROUP("r0")
            "ldm r1!, {r9, r10, r11}\n\t" FEW16_GROUP("lr")
            "ldm r1!, {r9, r10, r11}\n\t"
            "eor r9, r9, r7\n\t"
            "eor r10, r10, r7\n\t"
            "eor r11, r11, r8\n\t"
            "and r12, r9, #0xAAAAAAAA\n\t"
            "sub r9, r9, r12, lsr #1\n\t"
            "and r12, r10, #0xAAAAAAAA\n\t"
            "sub r10, r10, r12, lsr #1\n\t"
            "and r12, r11, #0x55555555\n\t"
            "and r11, r11, #0xAAAAAAAA\n\t"
            "add r9, r9, r12\n\t"
            "add r10, r10, r11, lsr #1\n\t"
            "and r12, r9, #0xCCCCCCCC\n\t"
            "and r11, r10, #0xCCCCCCCC\n\t"
            "and r9, r9, #0x33333333\n\t"
            "and r10, r10, #0x33333333\n\t"
            "add r9, r9, r12, lsr #2\n\t"
            "add r10, r10, r11, lsr #2\n\t" FEW16_ACC("r0", "r9") FEW16_ACC("lr", "r10")
            "lsls r12, r0, #1\n\t"
            "rrxs r3, r3\n\t"
            "lsls r12, lr, #1\n\t"
            "rrxs r3, r3\n\t"
            "bcc 1b\n\t"
            FEW_ASM_NEXT("20"));
}
#undef FEW16_GROUP
#undef FEW16_ACC
#endif

#if BNN_CONV16_PAIRS
/* The pair-record rows (cnt <= 32) against npos spread patches of 5 words, position i's ~M row at
 * mp[i] + c0: one output word per position (out + i ow).  An odd cnt's last record pairs row cnt - 1 with
 * itself; the caller passes cnt + 1 instead where the ~M rows hold an entry past row cnt - 1
 * (conv_m4_prep.prepare pads an odd cout's with 0, a bit that never fires), so the assembly loop runs
 * that record whole, its second bit 0. */
static void __attribute__((noinline)) few_pairs(const bnn_word_t *x, const bnn_word_t *rows, const int32_t *const *mp,
                                                uint32_t c0, uint32_t npos, uint32_t cnt, bnn_word_t *out, uint32_t ow)
{
#if BNN_HAVE_USADA8 && BNN_MULTI_ASM
    const uint32_t even = cnt & ~1u;
    if (even != 0u) {
        const int32_t *mc[BNN_CONV_FEW_POS]; /* the chunk's ~M rows (chunks after the first) */
        for (uint32_t i = 0; c0 != 0u && i < npos; ++i) {
            mc[i] = mp[i] + c0;
        }
        few_job_t job = {x, c0 != 0u ? mc : mp, out, x + 5u * npos, rows, 1u << (even - 1u), 32u - even, 4u * ow};
        conv16_few_asm(&job);
    }
    if (even < cnt) { /* the last record pairs row cnt - 1 with itself */
        const bnn_word_t *wl = rows + CONV16_PAIR_WORDS * (even / 2u);
        for (uint32_t i = 0; i < npos; ++i, x += 5, out += ow) {
            const bnn_word_t *w = wl;
            uint32_t a = (uint32_t)mp[i][c0 + even], b = a;
            conv16_pair(x, &w, &a, &b);
            *out = (even != 0u ? *out : 0u) | (a >> 31) << even;
        }
    }
#else
    for (uint32_t i = 0; i < npos; ++i, x += 5, out += ow) {
        *out = conv16_pairs_bits(x, rows, mp[i] + c0, cnt);
    }
#endif
}
#endif

/* The same with rows of nw words on the row kernel. */
static void __attribute__((noinline)) few_rows(const bnn_word_t *x, const bnn_word_t *rows, const int32_t *const *mp,
                                               uint32_t c0, uint32_t npos, uint32_t nw, uint32_t cnt, bnn_word_t *out,
                                               uint32_t ow, bnn_conv_rows_fn fn)
{
    for (uint32_t i = 0; i < npos; ++i, x += nw, out += ow) {
        *out = rows_bits(x, rows, mp[i] + c0, nw, cnt, fn);
    }
}

/* The patches of oh x ow positions (top-left tap of row oy at base + oy rstep, steps of sw words
 * along it; kernel rows step words apart) packed in position order: 3x3x16 (pairs: the fifth word
 * spread and doubled for the pair records), 3x3x24, any other cin <= 32 (nw words each). */
static void __attribute__((noinline)) few_gather16(const bnn_word_t *base, uint32_t step, uint32_t sw, uint32_t rstep,
                                                   uint32_t oh, uint32_t ow, uint32_t pairs, bnn_word_t *x)
{
    for (uint32_t oy = 0; oy < oh; ++oy, base += rstep) {
        const bnn_word_t *src = base;
        for (uint32_t ox = 0; ox < ow; ++ox, src += sw, x += 5) {
            pack_taps_3x3x16(src, step, x);
#if BNN_CONV16_PAIRS
            if (pairs) {
                x[4] = bnn_conv16_tail(x[4]); /* once per position, not per chunk */
            }
#else
            (void)pairs;
#endif
        }
    }
}

static void __attribute__((noinline)) few_gather24(const bnn_word_t *base, uint32_t step, uint32_t sw, uint32_t rstep,
                                                   uint32_t oh, uint32_t ow, uint32_t pairs, bnn_word_t *x)
{
    for (uint32_t oy = 0; oy < oh; ++oy, base += rstep) {
        const bnn_word_t *src = base;
        for (uint32_t ox = 0; ox < ow; ++ox, src += sw, x += 7) {
            pack_taps_3x3x24(src, step, x);
            if (pairs) { /* conv24_positions' tail-spread seventh word */
                x[6] = bnn_conv24_tail(x[6]);
            }
        }
    }
}

static void __attribute__((noinline)) few_gather(const bnn_word_t *base, uint32_t step, uint32_t sw, uint32_t rstep,
                                                 uint32_t oh, uint32_t ow, uint32_t cin, uint32_t nw, bnn_word_t *x)
{
    for (uint32_t oy = 0; oy < oh; ++oy, base += rstep) {
        const bnn_word_t *src = base;
        for (uint32_t ox = 0; ox < ow; ++ox, src += sw, x += nw) {
            if (nw != 9u) {
                pack_taps(src, step, 3u, 3u, cin, x);
            } else {
                copy_window(src, step, 3u, 3u, x);
            }
        }
    }
}

/* The patches of th x tw positions (nw words each, position order) from the window of the first at
 * base (kernel rows step words apart, output rows rstep words apart): one gather per patch layout.
 * Returns the word after the last patch. */
BNN_INLINE bnn_word_t *few_gather_any(const bnn_conv_params_t *p, uint32_t nw, uint32_t pairs, const bnn_word_t *base,
                                      uint32_t step, uint32_t rstep, uint32_t th, uint32_t tw, bnn_word_t *x)
{
    const uint32_t cin = p->cin, sw = p->stride_w;
    const int dense = nw != 9u;
    if (cin == 16u && dense) {
        few_gather16(base, step, sw, rstep, th, tw, pairs, x);
    } else if (cin == 24u && dense) {
        few_gather24(base, step, sw, rstep, th, tw, pairs, x);
    } else {
        few_gather(base, step, sw, rstep, th, tw, cin, nw, x);
    }
    return x + nw * th * tw;
}

/* Each of the th x tw positions' M row (its window class), position order.  opaque (a constant at each
 * call, GCC only): the row's first class and the class stride in bytes as opaque registers, else GCC
 * refactors my + x cbytes as m + 4 (y nx + x) cpad, two instructions per position more (Cortex-M4: 5 a
 * position with one MLA instead of 7; measured 32x32x16 stride 1 pad 1: 694,707 -> 692,728); not on the
 * one-tile path, where the plain loop measured cheaper (4x4x16 stride 2 pad 0: 961 against 973). */
BNN_INLINE void few_mrows(const bnn_conv_prep_t *q, uint32_t oy0, uint32_t ox0, uint32_t th, uint32_t tw,
                          const int32_t **m, int opaque)
{
    const uint32_t cpad = q->cpad, nx = q->nx;
#if defined(__GNUC__)
    if (opaque) {
        uint32_t cbytes = cpad * (uint32_t)sizeof(int32_t);
        const uint8_t *xc = q->xcls + ox0, *xe = xc + tw;
        __asm__("" : "+r"(cbytes));
        for (uint32_t oy = oy0; oy < oy0 + th; ++oy) {
            const uint8_t *my = (const uint8_t *)(q->m + q->ycls[oy] * nx * cpad); /* the row's first class */
            __asm__("" : "+r"(my));
            for (const uint8_t *c = xc; c < xe; ++c) {
                *m++ = (const int32_t *)(const void *)(my + *c * cbytes);
            }
        }
        return;
    }
#else
    (void)opaque;
#endif
    for (uint32_t oy = oy0; oy < oy0 + th; ++oy) {
        const int32_t *my = q->m + q->ycls[oy] * nx * cpad;
        for (uint32_t ox = ox0; ox < ox0 + tw; ++ox) {
            *m++ = my + q->xcls[ox] * cpad;
        }
    }
}

/* Per 32-channel chunk, the tile's kernel on its npos patches (few_pairs / conv24_positions / few_rows):
 * the per-tile step; every kernel with the same job (patches x rows) plugs in here. */
BNN_INLINE void few_kernels(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, uint32_t pairs,
                            const bnn_word_t *patch, const int32_t *const *mp, uint32_t npos, bnn_word_t *out,
                            bnn_conv_rows_fn fn)
{
    const uint32_t ow = BNN_WORDS(p->cout), nw = q->nw;
#if BNN_CONV24_ROWS
    const uint32_t cin = p->cin;
#endif
    for (uint32_t c0 = 0; c0 < p->cout; c0 += 32u) {
        const uint32_t left = p->cout - c0;
        const uint32_t cnt = left < 32u ? left : 32u;
#if BNN_CONV24_ROWS
        if (pairs && cin == 24u) {
            conv24_positions(patch, q->w + c0 * CONV24_ROW_WORDS, mp, c0, npos, cnt, out + c0 / 32u, ow, fn);
            continue;
        }
#endif
#if BNN_CONV16_PAIRS
        if (pairs) {
            /* (an odd cnt rounded up where the ~M rows are padded: few_pairs) */
            few_pairs(patch, q->w + 9u * c0 / 2u, mp, c0, npos, c0 + cnt < q->cpad ? cnt + (cnt & 1u) : cnt,
                      out + c0 / 32u, ow);
            continue;
        }
#else
        (void)pairs;
#endif
        few_rows(patch, q->w + c0 * nw, mp, c0, npos, nw, cnt, out + c0 / 32u, ow, fn);
    }
}

/* What every tile of one bnn_conv_bits_few call shares. */
typedef struct {
    const bnn_conv_params_t *p;
    const bnn_conv_prep_t *q;
    const bnn_word_t *in;
    uint32_t pairs;
    span_t cols;          /* the output columns whose windows lie inside the input horizontally */
    bnn_word_t *img;      /* BNN_CONV_FEW_IMG words: bordered copies of windows that leave the input */
    bnn_word_t *patch;    /* BNN_CONV_FEW_POS x 9 words: a tile's patches */
    const int32_t **mp;   /* BNN_CONV_FEW_POS: a tile's M rows */
    bnn_conv_rows_fn fn;
} few_layer_t;

/* The patches of output row oy (its windows' top row y0), columns [ox0, ox1), from a zero-bordered
 * copy of their 3 input rows (3 x ((ox1 - ox0 - 1) stride_w + 3) words; one position: gather_3x3_1w)
 * into x; returns the word after the last patch. */
static bnn_word_t *few_bordered(const few_layer_t *L, int32_t y0, uint32_t ox0, uint32_t ox1, bnn_word_t *x)
{
    const bnn_conv_params_t *p = L->p;
    const uint32_t xc = (ox1 - ox0 - 1u) * p->stride_w + 3u;
    const int32_t x0 = (int32_t)(ox0 * p->stride_w) - (int32_t)p->pad_w;
    if (xc == 3u) { /* one window (a row's first or last position at padding 1): its 9 tap words */
        gather_3x3_1w(L->in, p->in_h, p->in_w, y0, x0, L->img);
    } else {
        few_image(p, L->in, y0, x0, 3u, xc, L->img);
    }
    return few_gather_any(p, L->q->nw, L->pairs, L->img, xc, 0u, 1u, ox1 - ox0, x);
}

/* The patches of output row oy, columns [ox0, ox1), into x: the columns whose windows lie inside the
 * input (L->cols) read in place when the row's windows lie inside vertically, the others (or the
 * whole run) through few_bordered.  Returns the word after the last patch. */
static bnn_word_t *few_row_patches(const few_layer_t *L, uint32_t oy, uint32_t ox0, uint32_t ox1, bnn_word_t *x)
{
    const bnn_conv_params_t *p = L->p;
    const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
    const uint32_t a = L->cols.lo > ox0 ? L->cols.lo : ox0, b = L->cols.hi < ox1 ? L->cols.hi : ox1;
    if (y0 < 0 || (uint32_t)y0 + 3u > p->in_h || a >= b) {
        return few_bordered(L, y0, ox0, ox1, x);
    }
    if (a > ox0) {
        x = few_bordered(L, y0, ox0, a, x);
    }
    const bnn_word_t *src = L->in + (uint32_t)y0 * p->in_w + (a * p->stride_w - p->pad_w);
    x = few_gather_any(p, L->q->nw, L->pairs, src, p->in_w, 0u, 1u, b - a, x);
    if (ox1 > b) {
        x = few_bordered(L, y0, b, ox1, x);
    }
    return x;
}

/* One tile of a conv with more than one: th x tw output positions from (oy0, ox0) on (th == 1 or
 * tw == out_w, so their output words are consecutive from out; th tw <= BNN_CONV_FEW_POS).  The
 * patches: a tile whose windows lie inside the input, in place; a tile of whole rows, from one
 * zero-bordered copy of its windows' rectangle (((th - 1) stride_h + 3) x ((tw - 1) stride_w + 3)
 * words, within BNN_CONV_FEW_IMG by the caller's th); a row run, per few_row_patches. */
static void __attribute__((noinline)) few_tile(const few_layer_t *L, uint32_t oy0, uint32_t ox0, uint32_t th,
                                               uint32_t tw, bnn_word_t *out)
{
    const bnn_conv_params_t *p = L->p;
    bnn_word_t *patch = L->patch;
    const int32_t **mp = L->mp;
    few_mrows(L->q, oy0, ox0, th, tw, mp, 1);
    const uint32_t sh = p->stride_h, yr = (th - 1u) * sh + 3u, xc = (tw - 1u) * p->stride_w + 3u;
    const int32_t y0 = (int32_t)(oy0 * sh) - (int32_t)p->pad_h;
    const int32_t x0 = (int32_t)(ox0 * p->stride_w) - (int32_t)p->pad_w;
    if (y0 >= 0 && x0 >= 0 && (uint32_t)y0 + yr <= p->in_h && (uint32_t)x0 + xc <= p->in_w) {
        few_gather_any(p, L->q->nw, L->pairs, L->in + (uint32_t)y0 * p->in_w + (uint32_t)x0, p->in_w,
                       sh * p->in_w, th, tw, patch);
    } else if (th > 1u) {
        few_image(p, L->in, y0, x0, yr, xc, L->img);
        few_gather_any(p, L->q->nw, L->pairs, L->img, xc, sh * xc, th, tw, patch);
    } else {
        few_row_patches(L, oy0, ox0, ox0 + tw, patch);
    }
    few_kernels(p, L->q, L->pairs, patch, mp, th * tw, out, L->fn);
}

/* bnn__conv_bits_few on a conv of one tile (out_h out_w <= BNN_CONV_FEW_POS positions, its bordered
 * image within BNN_CONV_FEW_IMG words): the patches from the input, or from one zero-bordered image
 * of all windows when img_needed.  Its own frame (and few_tiles' the other path's), so the entry's
 * checks run without the buffers' register pressure: measured per function in a QEMU exec trace
 * (Cortex-M4), 4x4x16 stride 2 pad 0: entry 184 -> 64 + few_one_tile 112 instructions; 4x4x24
 * stride 2 pad 0: 188 -> 66 + 116.  The M rows' plain loop (few_mrows opaque 0) measured cheaper
 * here up to 8 positions and 2% dearer at 16 (4x4x16 stride 1 pad 1: 269 against 254). */
static void __attribute__((noinline)) few_one_tile(const bnn_conv_params_t *p, const bnn_conv_prep_t *q,
                                                   const bnn_word_t *in, bnn_word_t *out, bnn_conv_rows_fn fn,
                                                   uint32_t pairs, int img_needed)
{
    const uint32_t oh = p->out_h, owd = p->out_w, sh = p->stride_h;
    bnn_word_t img[BNN_CONV_FEW_IMG];
    bnn_word_t patch[BNN_CONV_FEW_POS * 9u];
    const int32_t *mp[BNN_CONV_FEW_POS];
    const bnn_word_t *base = in;
    uint32_t step = p->in_w;
    if (img_needed) {
        const uint32_t yr = (oh - 1u) * sh + 3u, xr = (owd - 1u) * p->stride_w + 3u;
        few_image(p, in, -(int32_t)p->pad_h, -(int32_t)p->pad_w, yr, xr, img);
        base = img;
        step = xr;
    }
    few_mrows(q, 0u, 0u, oh, owd, mp, 0);
    few_gather_any(p, q->nw, pairs, base, step, sh * step, oh, owd, patch);
    few_kernels(p, q, pairs, patch, mp, oh * owd, out, fn);
}

/* bnn__conv_bits_few's tiles of a conv larger than one tile (see there). */
static void __attribute__((noinline)) few_tiles(const bnn_conv_params_t *p, const bnn_conv_prep_t *q,
                                                const bnn_word_t *in, bnn_word_t *out, bnn_conv_rows_fn fn,
                                                uint32_t pairs, int img_needed)
{
    const uint32_t oh = p->out_h, owd = p->out_w, sh = p->stride_h, sw = p->stride_w;
    bnn_word_t img[BNN_CONV_FEW_IMG];
    bnn_word_t patch[BNN_CONV_FEW_POS * 9u];
    const int32_t *mp[BNN_CONV_FEW_POS];
    /* tiles of tw columns (the whole output row when it has <= BNN_CONV_FEW_POS positions, else
     * BNN_CONV_FEW_POS and the rest) x th rows (BNN_CONV_FEW_POS / out_w whole rows, else 1), their
     * bordered copies (few_tile) within BNN_CONV_FEW_IMG words */
    uint32_t tw = owd < BNN_CONV_FEW_POS ? owd : BNN_CONV_FEW_POS;
    if ((tw - 1u) * sw + 3u > BNN_CONV_FEW_IMG / 3u) {
        tw = (BNN_CONV_FEW_IMG / 3u - 3u) / sw + 1u;
    }
    uint32_t th = tw == owd ? BNN_CONV_FEW_POS / tw : 1u;
    if (th > oh) {
        th = oh;
    }
    const uint32_t xc = (tw - 1u) * sw + 3u;
    if (img_needed && (th - 1u) * sh + 3u > BNN_CONV_FEW_IMG / xc) {
        th = (BNN_CONV_FEW_IMG / xc - 3u) / sh + 1u;
    }
    const few_layer_t L = {p, q, in, pairs, interior_cols(p), img, patch, mp, fn};
    const uint32_t ow = BNN_WORDS(p->cout);
    for (uint32_t oy = 0; oy < oh; oy += th) {
        const uint32_t rows = oh - oy < th ? oh - oy : th;
        for (uint32_t ox = 0; ox < owd; ox += tw) {
            const uint32_t cols = owd - ox < tw ? owd - ox : tw;
            few_tile(&L, oy, ox, rows, cols, out + (oy * owd + ox) * ow);
        }
    }
}

void bnn__conv_bits_few(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, const bnn_word_t *in,
                        bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn)
{
    const uint32_t oh = p->out_h, owd = p->out_w, cin = p->cin, sh = p->stride_h, sw = p->stride_w;
    uint32_t pairs = 0;
    /* (stride 0 needs no case: every window of a row or column is the same, rstep / sw = 0) */
    if (BNN_MVE || p->kh != 3u || p->kw != 3u || cin == 0u || cin > 32u || oh * owd == 0u ||
        !prep_matches(p, q, &pairs)) {
        bnn__conv_bits_prep(p, q, in, out, fn, pfn);
        return;
    }
    const uint32_t yr = (oh - 1u) * sh + 3u, xr = (owd - 1u) * sw + 3u;
    const int img_needed = p->pad_h != 0u || p->pad_w != 0u || yr > p->in_h || xr > p->in_w;
    if (oh * owd <= BNN_CONV_FEW_POS && (!img_needed || yr * xr <= BNN_CONV_FEW_IMG)) {
        few_one_tile(p, q, in, out, fn, pairs, img_needed);
        return;
    }
    few_tiles(p, q, in, out, fn, pairs, img_needed);
}

/* The prepared layout this build runs 3x3 rows of cin input channels in, for cin 16, 24 and 32 (else 0:
 * prep_matches decides): nw | pairs << 4, prep_matches' rule with the row length folded at compile time
 * (3x3x16 rows are 5 words and 3x3x24 rows 7 when BNN_CONV_DENSE_WORDS holds 32 of them, as
 * bnn__conv_row_words packs, else 9 like 3x3x32).  prep_matches itself takes 39 instructions on the
 * Cortex-M4, 6% of a one-position 3x3x16 layer. */
BNN_INLINE uint32_t tile_layout(uint32_t cin)
{
    if (cin == 16u) {
        return 32u * 5u <= BNN_CONV_DENSE_WORDS ? 5u | (uint32_t)(BNN_CONV16_PAIRS && !BNN_MVE) << 4 : 9u;
    }
    if (cin == 24u) {
        return 32u * 7u <= BNN_CONV_DENSE_WORDS ? 7u | (uint32_t)BNN_CONV24_ROWS << 4 : 9u;
    }
    return cin == 32u ? 9u : 0u;
}

/* bnn_conv_bits_tile's chunks on the general path (few_kernels), out of the entry's frame. */
static void __attribute__((noinline)) tile_chunks(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, uint32_t pairs,
                                                  const bnn_word_t *patch, const bnn_conv_tile_t *t, bnn_word_t *out,
                                                  bnn_conv_rows_fn fn)
{
    few_kernels(p, q, pairs, patch, t->mp, t->npos, out, fn);
}

/* bnn_conv_bits_tile for cin other than 16, 24 and 32 (prep_matches decides the layout; the row kernel per
 * position, patches of up to BNN_CONV_TILE_WORDS words in all) and every fallback, out of the entry's frame. */
static void __attribute__((noinline)) tile_other(const bnn_conv_params_t *p, const bnn_conv_prep_t *q,
                                                 const bnn_conv_tile_t *t, const bnn_word_t *in, bnn_word_t *out,
                                                 bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn)
{
    const uint32_t npos = t->npos;
    uint32_t pairs = 0;
    if (BNN_MVE || npos - 1u >= BNN_CONV_FEW_POS || npos != p->out_h * p->out_w || p->kh != 3u || p->kw != 3u ||
        !prep_matches(p, q, &pairs) || npos * q->nw > BNN_CONV_TILE_WORDS) {
        /* (bnn_conv_bits_few would run bnn_conv_bits_prep here too, as its layout check is the same;
         * calling it directly keeps few's tiles out of a build whose layers are all one-tile) */
        bnn__conv_bits_prep(p, q, in, out, fn, pfn);
        return;
    }
    bnn_word_t patch[BNN_CONV_TILE_WORDS];
    t->patches(in, patch);
    few_kernels(p, q, pairs, patch, t->mp, npos, out, fn);
}

/* bnn_conv_bits_tile (bnn_conv.h): the patches from the generated t->patches, the M rows from t->mp,
 * then bnn_conv_bits_few's per-chunk step; a layer of one 32-channel chunk (cout <= 32) with pair records
 * or 3x3x24 rows goes straight into the assembly loop.  What it saves against
 * bnn_conv_bits_few's one-tile path is the per-call work (QEMU per-function counts, Cortex-M4,
 * benchmarks/bench_conv_grid_m4.py's data): the entry's geometry checks, the bordered image
 * (few_image: 198 instructions on 4x4x16 stride 2 pad 1), the M-row loop and the generic gathers'
 * loops: 4x4x16 stride 2 pad 0 (one position) 884 -> 688 instructions a call, 8x8x16 stride 2 pad 1
 * 10,898 -> 9,882, 4x4x24 stride 2 pad 0 1,604 -> 1,417 (benchmarks/bench_conv_grid_m4.py few,tile).  Data
 * made for another build (the layout check fails) runs bnn_conv_bits_prep, as bnn_conv_bits_few would. */
void bnn__conv_bits_tile(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, const bnn_conv_tile_t *t,
                         const bnn_word_t *in, bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn)
{
    const uint32_t npos = t->npos, cin = p->cin, cout = p->cout, layout = tile_layout(cin);
    const uint32_t pairs = layout >> 4;
    /* (t->patches packs 3x3 windows of p's geometry: the code generator writes t for p) */
    if (BNN_MVE || layout == 0u || npos - 1u >= BNN_CONV_FEW_POS || npos != p->out_h * p->out_w ||
        q->nw != (layout & 15u) || q->pairs != pairs) {
        tile_other(p, q, t, in, out, fn, pfn);
        return;
    }
    bnn_word_t patch[BNN_CONV_FEW_POS * 9u];
    t->patches(in, patch);
    (void)cout; /* (the assembly paths' only) */
#if BNN_HAVE_USADA8 && BNN_MULTI_ASM && BNN_CONV16_PAIRS
    /* one chunk of whole records (an odd cout's padded ~M rows: few_pairs) */
    const uint32_t rows2 = cout + (cout & 1u);
    if (layout == (5u | 1u << 4) && cout - 1u < 32u && rows2 <= q->cpad) {
        few_job_t job = {patch, t->mp, out, patch + 5u * npos, q->w, 1u << (rows2 - 1u), 32u - rows2, 4u};
        conv16_few_asm(&job);
        return;
    }
#endif
#if BNN_HAVE_USADA8 && BNN_MULTI_ASM && BNN_CONV24_ROWS
    if (layout == (7u | 1u << 4) && cout - 1u < 32u) { /* one chunk */
        few_job_t job = {patch, t->mp, out, patch + CONV24_ROW_WORDS * npos, q->w, 1u << (cout - 1u), 32u - cout,
                         4u};
        conv24_few_asm(&job);
        return;
    }
#endif
    tile_chunks(p, q, pairs, patch, t, out, fn);
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
                *acc++ = pad_minus1 ? conv_acc_m1_one(p, in, w + o * n, &win) : conv_acc_one(p, in, w + o * n, &win);
            }
        }
    }
}

/* Index of the lowest set bit of m != 0. */
BNN_INLINE uint32_t lowest_bit(uint32_t m)
{
#if defined(__GNUC__)
    return (uint32_t)__builtin_ctz(m);
#else
    uint32_t i = 0;
    while (!((m >> i) & 1u)) {
        ++i;
    }
    return i;
#endif
}

/* The padding correction of a clipped window at zero padding: offs[j] = K_v + 2 corr_j for the
 * chunk's cnt channels (rows of n words from wc), from a cache with one slot per border class
 * keyed by the padded-tap set (popcounts of the padded taps' weight words only). */
static const int32_t *border_offsets(const bnn_conv_params_t *p, const window_t *win, const bnn_word_t *wc,
                                     uint32_t cnt, uint32_t *cache_key, int32_t (*off_cache)[32])
{
    const uint32_t cw = BNN_WORDS(p->cin), n = p->kh * p->kw * cw;
    const uint32_t padded = padded_taps(p, win);
    const uint32_t slot = border_slot(p, win);
    if (cache_key[slot] != padded) {
        const int32_t kv = (int32_t)((win->ky1 - win->ky0) * (win->kx1 - win->kx0) * p->cin);
        int32_t *off = off_cache[slot];
        for (uint32_t j = 0; j < cnt; ++j) {
            off[j] = kv;
        }
        for (uint32_t m = padded; m != 0u; m &= m - 1u) { /* the padded taps, lowest first: + 2 c_t */
            const bnn_word_t *wt = wc + lowest_bit(m) * cw;
            if (cw == 1u) {
                for (uint32_t j = 0; j < cnt; ++j, wt += n) {
                    off[j] += 2 * (int32_t)bnn_popcount32(*wt);
                }
                continue;
            }
            for (uint32_t j = 0; j < cnt; ++j, wt += n) {
                uint32_t ones = 0; /* c_t <= cin */
                for (uint32_t i = 0; i < cw; ++i) {
                    ones += bnn_popcount32(wt[i]);
                }
                off[j] += 2 * (int32_t)ones;
            }
        }
        cache_key[slot] = padded;
    }
    return off_cache[slot];
}

/* a[j] = k - 2 a[j], j < cnt: the popcounts the row kernel stored become accumulators (Thumb-2:
 * LDM / four SUBs with a shifted operand / STM per four). */
BNN_INLINE void pop_to_acc(int32_t *a, uint32_t cnt, int32_t k)
{
    uint32_t j = 0;
#if BNN_THUMB2_ASM
    if (cnt >= 4u) {
        int32_t *const end = a + (cnt & ~3u);
        __asm__ volatile("1:\n\t"
                         "ldm %0, {r4, r5, r6, r8}\n\t"
                         "sub r4, %2, r4, lsl #1\n\t"
                         "sub r5, %2, r5, lsl #1\n\t"
                         "sub r6, %2, r6, lsl #1\n\t"
                         "sub r8, %2, r8, lsl #1\n\t"
                         "stm %0!, {r4, r5, r6, r8}\n\t"
                         "cmp %0, %1\n\t"
                         "bne 1b\n\t"
                         : "+r"(a)
                         : "r"(end), "r"(k)
                         : "r4", "r5", "r6", "r8", "cc", "memory");
        cnt &= 3u;
    }
#else
    for (; j + 4u <= cnt; j += 4u) {
        const int32_t a0 = a[j], a1 = a[j + 1u], a2 = a[j + 2u], a3 = a[j + 3u];
        a[j] = k - 2 * a0;
        a[j + 1u] = k - 2 * a1;
        a[j + 2u] = k - 2 * a2;
        a[j + 3u] = k - 2 * a3;
    }
#endif
    for (; j < cnt; ++j) {
        a[j] = k - 2 * a[j];
    }
}

/*
 * The interior run of one output row in popcount mode: n_pos positions from the top-left input
 * word src (stepping xstep words), each patch gathered (kh rows of rw words copied, or packed
 * dense), the cnt weight rows of nw words popcounted into dst (stepping cout), acc = k - 2 p.
 * A function of its own so the loop keeps its state in registers.
 */
typedef struct {
    const bnn_word_t *rows;
    uint32_t nw, cnt, cout, kh, kw, cin, rw, step, xstep;
    int dense, raw; /* raw: leave the popcounts (no pop_to_acc) */
    int32_t k;
    bnn_conv_rows_fn pfn;
} acc_run_t;

__attribute__((noinline)) static void interior_acc(const acc_run_t *r, const bnn_word_t *src, uint32_t n_pos,
                                                   bnn_word_t *patch, int32_t *dst)
{
    const bnn_word_t *const rows = r->rows;
    const uint32_t nw = r->nw, cnt = r->cnt, cout = r->cout, step = r->step, xstep = r->xstep;
    const int32_t k = r->k;
    const bnn_conv_rows_fn pfn = r->pfn;
    const int d16 = r->dense && r->cin == 16u && r->kh == 3u && r->kw == 3u;
    const int d24 = r->dense && r->cin == 24u && r->kh == 3u && r->kw == 3u;
    for (; n_pos > 0u; --n_pos, src += xstep, dst += cout) {
        if (d16) {
            pack_taps_3x3x16(src, step, patch);
        } else if (d24) {
            pack_taps_3x3x24(src, step, patch);
        } else if (r->dense) {
            pack_taps(src, step, r->kh, r->kw, r->cin, patch);
        } else {
            copy_window(src, step, r->kh, r->rw, patch);
        }
#if BNN_MULTI_ASM
        if (cnt <= 32u) { /* one call of the row kernel */
            (void)pfn(patch, rows, (const int32_t *)dst, (nw << 5) | (cnt - 1u));
        } else {
            rows_popcounts(patch, rows, nw, cnt, (uint32_t *)dst, pfn);
        }
#else
        rows_popcounts(patch, rows, nw, cnt, (uint32_t *)dst, pfn);
#endif
        if (!r->raw) {
            pop_to_acc(dst, cnt, k);
        }
    }
}

void bnn__conv_acc_rows(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, uint32_t oy0,
                        uint32_t oy1, int mode, int32_t *acc, bnn_conv_rows_fn pfn)
{
    const int pad_minus1 = mode & 1, raw = (mode & 2) != 0;
    const uint32_t cw = BNN_WORDS(p->cin);
    const uint32_t taps = p->kh * p->kw;
    const uint32_t n = taps * cw;
    const uint32_t nw = bnn__conv_row_words(p);
    const int dense = nw != n;
    const int correct = !pad_minus1 && (p->pad_h != 0u || p->pad_w != 0u);
    const int32_t k = (int32_t)(taps * p->cin);
    if (n > BNN_CONV_PATCH_WORDS || taps > BNN_CONV_MAX_TAPS || n == 0u) {
        conv_acc_rows_generic(p, in, w, oy0, oy1, pad_minus1, acc);
        if (raw) { /* acc = K - 2 p at every position (no correction in this mode) */
            for (uint32_t i = 0; i < (oy1 - oy0) * p->out_w * p->cout; ++i) {
                acc[i] = (k - acc[i]) / 2;
            }
        }
        return;
    }
    const span_t cols = interior_cols(p);
    const uint32_t kh = p->kh, kw = p->kw, cin = p->cin, cout = p->cout, out_w = p->out_w;
    const uint32_t rw = kw * cw, step = p->in_w * cw, xstep = p->stride_w * cw;
    bnn_word_t patch[BNN_CONV_PATCH_WORDS];
    bnn_word_t wdense[BNN_CONV_DENSE_WORDS];
    int32_t off_cache[BNN_CONV_CACHE][32]; /* K_v + 2 corr per channel of the chunk */
    uint32_t cache_key[BNN_CONV_CACHE];
    /* Without the dense repacking nor a correction the whole cout is one chunk (the row
     * kernel then runs 32 rows per call over one gathered patch). */
    const uint32_t chunk = (dense || correct) ? 32u : cout;
    for (uint32_t c0 = 0; c0 < cout; c0 += chunk) {
        const uint32_t left = cout - c0;
        const uint32_t cnt = left < chunk ? left : chunk;
        const bnn_word_t *wc = w + c0 * n;
        for (uint32_t e = 0; e < BNN_CONV_CACHE; ++e) {
            cache_key[e] = 0u; /* 0 = empty: a border key has at least one padded tap */
        }
        if (dense) { /* the chunk's weight rows, taps packed back to back (wdense: 32 nw words) */
            for (uint32_t j = 0; j < cnt; ++j) {
                if (cin == 16u && kh == 3u && kw == 3u) {
                    pack_taps_3x3x16(wc + j * n, 3u, wdense + j * nw);
                } else {
                    pack_taps(wc + j * n, rw, kh, kw, cin, wdense + j * nw);
                }
            }
        }
        const bnn_word_t *rows = dense ? wdense : wc;
        int32_t *dst = acc + c0;
        for (uint32_t oy = oy0; oy < oy1; ++oy) {
            uint32_t ox = 0;
            const bnn_word_t *src = in;
            const int inner = interior_row(p, in, oy, cols, &src);
            while (ox < out_w) {
                if (inner && ox == cols.lo) { /* the interior run of the row: acc = K - 2 p */
                    const acc_run_t run = {rows, nw, cnt, cout, kh, kw, cin, rw, step, xstep, dense, raw, k, pfn};
                    interior_acc(&run, src, cols.hi - ox, patch, dst);
                    dst += (cols.hi - ox) * cout;
                    ox = cols.hi;
                    continue;
                }
                /* a clipped window (or no interior run): padded taps as zero bits */
                window_t win = window(p, oy, ox);
                gather_patch(p, in, &win, dense, nw, patch);
                rows_popcounts(patch, rows, nw, cnt, (uint32_t *)dst, pfn);
                if (correct && !window_full(p, &win)) {
                    const int32_t *offs = border_offsets(p, &win, wc, cnt, cache_key, off_cache);
                    for (uint32_t j = 0; j < cnt; ++j) {
                        dst[j] = offs[j] - 2 * dst[j];
                    }
                } else if (!raw) {
                    pop_to_acc(dst, cnt, k);
                }
                dst += cout;
                ++ox;
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

void(bnn_conv_bits_m1)(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       const int32_t *thr, bnn_word_t *out)
{
    bnn_conv_bits_m1(p, in, w, thr, out); /* the inline dispatcher of bnn_conv.h */
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
 * Optimized uint8 x binary (bnn_conv_u8_acc / bnn_conv_u8_bits).  Per output channel the
 * K = kh kw cin weights s_i = +-1 become byte masks m_i = 0xFF (s_i = +1) or 0x00 (s_i = -1) in
 * patch order (tap-major, then channel), nb = ceil(K / 4) words, the round-up bytes 0x00; per
 * output position the receptive field is gathered once into a byte patch x in the same order
 * (taps in the zero padding and the round-up bytes 0) and shared by all output channels:
 *
 *   DSP (USADA8, sum of absolute byte differences, one instruction per 4 MACs):
 *     |x_i - m_i| = 255 - x_i where s_i = +1 and x_i where s_i = -1, so
 *     S = sum_i |x_i - m_i| = 255 n+ - acc,  acc = 255 n+ - S,
 *     n+ = the number of +1 weights.  A tap in the zero padding has x_i = 0, |0 - m_i| = m_i,
 *     which 255 n+ counts too: it contributes exactly 0.  No window total is needed.
 *   portable: acc = 2 sum_i (x_i & m_i) - sum_i x_i, byte sums in 16-bit lanes (each lane
 *     <= 2 * 255 nb < 2^16 for nb <= 64 words).
 *
 * |acc| <= 255 K < 2^16.  The masks are expanded once per call and chunk of channels
 * (BNN_CONV_U8_MASK_WORDS words on the stack): the K weight bits are packed into a bit stream,
 * every nibble becomes a mask word ((nib * 0x00204081) & 0x01010101) * 255.  The patch has
 * BNN_CONV_U8_PATCH_WORDS words (K <= 256 bytes, e.g. 3x3 up to 28 channels; 128 bytes on
 * Cortex-M0, whose boards have 16 KiB of RAM); larger K runs the window loops below
 * (conv_u8_one).
 */
#if defined(__ARM_ARCH_6M__) /* Cortex-M0/M0+: 16 KiB RAM boards, a frame of about 0.5 KiB */
#define BNN_CONV_U8_SMALL_FRAME 1
#else
#define BNN_CONV_U8_SMALL_FRAME 0
#endif
#ifndef BNN_CONV_U8_PATCH_WORDS
#define BNN_CONV_U8_PATCH_WORDS (BNN_CONV_U8_SMALL_FRAME ? 32u : 64u)
#endif
#ifndef BNN_CONV_U8_MASK_WORDS
#define BNN_CONV_U8_MASK_WORDS (BNN_CONV_U8_SMALL_FRAME ? 64u : 256u)
#endif
/* at most this many channels per pass over the positions */
#define BNN_CONV_U8_CHUNK (BNN_CONV_U8_SMALL_FRAME ? 32u : 64u)
/* The masks and patches are read as words whose byte j is memory byte j: little-endian only (every
 * Cortex-M build here and the hosts); a big-endian build runs the window loops. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#define BNN_CONV_LITTLE_ENDIAN 0
#else
#define BNN_CONV_LITTLE_ENDIAN 1
#endif

/* Window loops (K over the patch): acc = 2 sum_{w=+1} x - sum x over the valid taps. */
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
    uint32_t w[BNN_CONV_U8_PATCH_WORDS + 1u]; /* a spare word: the interior copy's last store */
    uint8_t b[4u * BNN_CONV_U8_PATCH_WORDS + 4u];
} u8patch_t;

/* Record of one output channel in the mask buffer: nb mask words, then (DSP) base = 255 n+ at
 * word nb; even length so the dot loop loads it in pairs (LDRD). */
BNN_INLINE uint32_t u8_record(uint32_t nb)
{
    return BNN_HAVE_USADA8 ? (nb + 2u) & ~1u : nb;
}

/* The masks from a bit stream of the K weight bits (any cin). */
static void u8_masks_stream(const bnn_word_t *wo, uint32_t taps, uint32_t cin, uint32_t nb, uint32_t *m)
{
    const uint32_t cw = BNN_WORDS(cin);
    uint32_t stream[BNN_CONV_U8_PATCH_WORDS / 8u + 1u]; /* K <= 4 PATCH_WORDS bits, a spare slot */
    uint32_t *dst = stream;
    uint32_t cur = 0, b = 0; /* the word being filled, its next free bit */
    for (uint32_t i = 0; i < taps * cw; ++i) {
        const uint32_t v = wo[i]; /* padding bits 0 (bnn_bits.h) */
        const uint32_t len = cw == 1u ? cin : (i + 1u) % cw != 0u ? 32u : cin - 32u * (cw - 1u);
        cur |= v << b;
        b += len;
        if (b >= 32u) {
            *dst++ = cur;
            b -= 32u;
            cur = b != 0u ? v >> (len - b) : 0u;
        }
    }
    *dst = cur; /* the partial last word (or the spare slot) */
    uint32_t i = 0;
    for (const uint32_t *sp = stream; i < nb; ++sp) {
        uint32_t sw = *sp;
        for (uint32_t q = 0; q < 8u && i < nb; ++q, ++i, sw >>= 4) {
            m[i] = (((sw & 15u) * 0x00204081u) & 0x01010101u) * 255u; /* bit j -> byte j = 0xFF */
        }
    }
}

/* Channel o's record from its weights wo (taps x cw words): the masks (tap-major, then channel;
 * bytes past K 0), then the base (DSP). */
static void u8_masks(const bnn_word_t *wo, uint32_t taps, uint32_t cin, uint32_t nb, uint32_t *m)
{
    if (cin <= 4u) {
        /* A tap's cin bits spread to bytes in one go, stored (4 bytes, unaligned) at byte t cin:
         * the bytes past cin are 0 (padding bits 0) and the next tap overwrites them; the last
         * tap's reach past 4 nb lands in the base slot / next record, written later (the
         * buffer has a spare word). */
        uint8_t *mb = (uint8_t *)m;
        m[nb - 1u] = 0u;
        for (uint32_t t = 0; t < taps; ++t, mb += cin) {
            const uint32_t spread = (((wo[t] & 15u) * 0x00204081u) & 0x01010101u) * 255u;
            memcpy(mb, &spread, 4u);
        }
    } else {
        u8_masks_stream(wo, taps, cin, nb, m);
    }
#if BNN_HAVE_USADA8
    uint32_t base = 0; /* the mask bytes' sum: 255 n+ */
    for (uint32_t i = 0; i < nb; ++i) {
        __asm__("usada8 %0, %1, %2, %3" : "=r"(base) : "r"(m[i]), "r"(0u), "r"(base));
    }
    m[nb] = base;
    if (nb + 1u < u8_record(nb)) {
        m[nb + 1u] = 0u;
    }
#endif
}

/* Copies len bytes (word moves, unaligned where the core allows it, then bytes). */
BNN_INLINE void copy_bytes(uint8_t *d, const uint8_t *s, uint32_t len)
{
    uint32_t i = 0;
    for (; i + 4u <= len; i += 4u) {
        uint32_t v;
        memcpy(&v, s + i, 4u);
        memcpy(d + i, &v, 4u);
    }
    for (; i < len; ++i) {
        d[i] = s[i];
    }
}

/* Gathers a clipped window into the byte patch: clears the nb words, copies the valid rows. */
static void u8_gather(const bnn_conv_params_t *p, const uint8_t *in, const window_t *win, uint32_t nb,
                      u8patch_t *x)
{
    const uint32_t cin = p->cin, rb = p->kw * cin, step = p->in_w * cin;
    for (uint32_t i = 0; i < nb; ++i) {
        x->w[i] = 0u;
    }
    if (win->ky1 == win->ky0 || win->kx1 == win->kx0) {
        return;
    }
    const uint32_t len = (win->kx1 - win->kx0) * cin;
    const uint8_t *src = in + ((uint32_t)(win->y0 + (int32_t)win->ky0) * p->in_w +
                               (uint32_t)(win->x0 + (int32_t)win->kx0)) * cin;
    uint8_t *dst = x->b + win->ky0 * rb + win->kx0 * cin;
    for (uint32_t ky = win->ky0; ky < win->ky1; ++ky, src += step, dst += rb) {
        copy_bytes(dst, src, len);
    }
}

/* One patch word's contribution to the masked sum s (see above). */
BNN_INLINE uint32_t u8_step(uint32_t s, uint32_t x, uint32_t m)
{
#if BNN_HAVE_USADA8
    __asm__("usada8 %0, %1, %2, %3" : "=r"(s) : "r"(x), "r"(m), "r"(s));
    return s;
#else
    const uint32_t v = x & m;
    return s + (v & 0x00ff00ffu) + ((v >> 8) & 0x00ff00ffu);
#endif
}

#if BNN_HAVE_USADA8
/* *a, *b = the next two words of *pm (one LDRD, post-incremented). */
BNN_INLINE void u8_ld2(const uint32_t **pm, uint32_t *a, uint32_t *b)
{
    __asm__("ldrd %0, %1, [%2], #8" : "=&r"(*a), "=&r"(*b), "+r"(*pm) : "m"(*(const uint32_t(*)[2]) * pm));
}

/*
 * a[j] = base_j - sum_i |x_i - m_ji| for the cnt channels of a chunk at one position; records of
 * u8_record(nb) words.  Patches of up to 8 words are held in registers across the channels and
 * the record is loaded in pairs (nb a constant in the copies u8_dots picks, so the tests fold).
 */
#define U8_LOAD(i) const uint32_t x##i = nb > i##u ? x[i] : 0u;
#define U8_PAIR(i, e, o)                                                                  \
    if (nb + 1u > 2u * i##u) { /* the pair holds a mask or the base */                   \
        u8_ld2(&mp, &q0, &q1);                                                            \
        if (2u * i##u < nb) {                                                             \
            s = u8_step(s, x##e, q0);                                                     \
        } else {                                                                          \
            bs = q0;                                                                      \
        }                                                                                 \
        if (2u * i##u + 1u < nb) {                                                        \
            s = u8_step(s, x##o, q1);                                                     \
        } else if (2u * i##u + 1u == nb) {                                                \
            bs = q1;                                                                      \
        }                                                                                 \
    }
BNN_INLINE void u8_dots_n(const uint32_t *x, const uint32_t *m, uint32_t nb, uint32_t cnt, int32_t total,
                          int32_t *a)
{
    U8_LOAD(0) U8_LOAD(1) U8_LOAD(2) U8_LOAD(3) U8_LOAD(4) U8_LOAD(5) U8_LOAD(6) U8_LOAD(7)
    const uint32_t x8 = 0u, x9 = 0u; /* never read: word 8 of a record is at most the base */
    const uint32_t *mp = m;
    (void)total;
    for (uint32_t j = 0; j < cnt; ++j) {
        uint32_t s = 0, q0, q1, bs = 0;
        U8_PAIR(0, 0, 1) U8_PAIR(1, 2, 3) U8_PAIR(2, 4, 5) U8_PAIR(3, 6, 7) U8_PAIR(4, 8, 9)
        a[j] = (int32_t)bs - (int32_t)s;
    }
}
#undef U8_LOAD
#undef U8_PAIR
#else
/* a[j] = 2 sum_i (x_i & m_ji) - total for the cnt channels of a chunk at one position; patches
 * of up to 8 words held in registers across the channels (nb a constant in the copies). */
#define U8_LOAD(i) const uint32_t x##i = nb > i##u ? x[i] : 0u;
#define U8_STEP(i)                                                                        \
    if (nb > i##u) {                                                                      \
        s = u8_step(s, x##i, m[i]);                                                       \
    }
BNN_INLINE void u8_dots_n(const uint32_t *x, const uint32_t *m, uint32_t nb, uint32_t cnt, int32_t total,
                          int32_t *a)
{
    U8_LOAD(0) U8_LOAD(1) U8_LOAD(2) U8_LOAD(3) U8_LOAD(4) U8_LOAD(5) U8_LOAD(6) U8_LOAD(7)
    for (uint32_t j = 0; j < cnt; ++j, m += nb) {
        uint32_t s = 0;
        U8_STEP(0) U8_STEP(1) U8_STEP(2) U8_STEP(3) U8_STEP(4) U8_STEP(5) U8_STEP(6) U8_STEP(7)
        a[j] = 2 * (int32_t)((s & 0xffffu) + (s >> 16)) - total;
    }
}
#undef U8_LOAD
#undef U8_STEP
#endif

static void u8_dots(const uint32_t *x, const uint32_t *m, uint32_t nb, uint32_t cnt, int32_t total, int32_t *a)
{
    switch (nb) {
    case 1u: u8_dots_n(x, m, 1u, cnt, total, a); return;
    case 2u: u8_dots_n(x, m, 2u, cnt, total, a); return;
    case 3u: u8_dots_n(x, m, 3u, cnt, total, a); return;
    case 4u: u8_dots_n(x, m, 4u, cnt, total, a); return;
    case 5u: u8_dots_n(x, m, 5u, cnt, total, a); return;
    case 6u: u8_dots_n(x, m, 6u, cnt, total, a); return;
    case 7u: u8_dots_n(x, m, 7u, cnt, total, a); return;
    case 8u: u8_dots_n(x, m, 8u, cnt, total, a); return;
    default: break;
    }
    const uint32_t rec = u8_record(nb);
    for (uint32_t j = 0; j < cnt; ++j, m += rec) {
        uint32_t s = 0;
        for (uint32_t i = 0; i < nb; ++i) {
            s = u8_step(s, x[i], m[i]);
        }
#if BNN_HAVE_USADA8
        a[j] = (int32_t)m[nb] - (int32_t)s;
#else
        a[j] = 2 * (int32_t)((s & 0xffffu) + (s >> 16)) - total;
#endif
    }
}

/* Sum of the patch's bytes (the portable formula's window total). */
static int32_t u8_total(const uint32_t *x, uint32_t nb)
{
    uint32_t s = 0;
    for (uint32_t i = 0; i < nb; ++i) {
        s += (x[i] & 0x00ff00ffu) + ((x[i] >> 8) & 0x00ff00ffu);
    }
    return (int32_t)((s & 0xffffu) + (s >> 16));
}

/*
 * The masked-sum kernel: accumulators (acc != NULL, acc[pos * cout + o]) or bits (out, thr).
 * Interior positions (interior_cols, as for the binary conv) copy kh rows of kw cin bytes
 * straight from the input; clipped windows clear the patch and copy their valid part.
 * Returns 0 (nothing written) when K does not fit the patch.
 */
static int conv_u8_masked(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, const int32_t *thr,
                          bnn_word_t *out, int32_t *acc)
{
    const uint32_t taps = p->kh * p->kw, k = taps * p->cin, nb = (k + 3u) / 4u, rec = u8_record(nb);
    const uint32_t cout = p->cout, ow = BNN_WORDS(cout), n = taps * BNN_WORDS(p->cin);
    if (nb == 0u || nb > BNN_CONV_U8_PATCH_WORDS || !BNN_CONV_LITTLE_ENDIAN) {
        return 0;
    }
    uint32_t chunk = BNN_CONV_U8_MASK_WORDS / rec; /* >= 3 */
    if (chunk > BNN_CONV_U8_CHUNK) {
        chunk = BNN_CONV_U8_CHUNK;
    }
    const span_t cols = interior_cols(p);
    const uint32_t rb = p->kw * p->cin, step = p->in_w * p->cin, xstep = p->stride_w * p->cin;
    const uint32_t rwords = (rb + 3u) / 4u, last_row = (p->kh - 1u) * step, in_len = p->in_h * step;
    uint32_t masks[BNN_CONV_U8_MASK_WORDS + 1u]; /* a spare word: u8_masks' last store */
    int32_t a[BNN_CONV_U8_CHUNK]; /* bits mode: the chunk's accumulators at one position */
    u8patch_t x;
    for (uint32_t i = k / 4u; i < nb; ++i) {
        x.w[i] = 0u; /* the round-up bytes stay 0: full windows write bytes [0, K) only */
    }
    if (out != NULL) {
        for (uint32_t i = 0; i < p->out_h * p->out_w * ow; ++i) {
            out[i] = 0u;
        }
    }
    for (uint32_t c0 = 0; c0 < cout; c0 += chunk) {
        const uint32_t cnt = cout - c0 < chunk ? cout - c0 : chunk;
        for (uint32_t j = 0; j < cnt; ++j) {
            u8_masks(w + (c0 + j) * n, taps, p->cin, nb, masks + j * rec);
        }
        uint32_t pos = 0;
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
            const int inner = y0 >= 0 && y0 + (int32_t)p->kh <= (int32_t)p->in_h && cols.lo < cols.hi;
            const uint8_t *src = inner ? in + ((uint32_t)y0 * p->in_w + cols.lo * p->stride_w - p->pad_w) * p->cin
                                       : in;
            for (uint32_t ox = 0; ox < p->out_w; ++ox, ++pos) {
                if (inner && ox >= cols.lo && ox < cols.hi) {
                    const uint8_t *r = src;
                    if ((uint32_t)(src - in) + last_row + 4u * rwords <= in_len) {
                        /* whole words per row (a row's last word reads up to 3 bytes past it,
                         * still inside the input; its extra bytes land on the next row's, which
                         * are written next, or past K, cleared after) */
                        uint8_t *d = x.b;
                        for (uint32_t ky = 0; ky < p->kh; ++ky, r += step, d += rb) {
                            for (uint32_t i = 0; i < rwords; ++i) {
                                uint32_t v;
                                memcpy(&v, r + 4u * i, 4u);
                                memcpy(d + 4u * i, &v, 4u);
                            }
                        }
                        for (uint32_t i = k; i < 4u * nb; ++i) {
                            x.b[i] = 0u;
                        }
                    } else {
                        for (uint32_t ky = 0; ky < p->kh; ++ky, r += step) {
                            copy_bytes(x.b + ky * rb, r, rb);
                        }
                    }
                    src += xstep;
                } else {
                    const window_t win = window(p, oy, ox);
                    u8_gather(p, in, &win, nb, &x);
                }
                const int32_t total = BNN_HAVE_USADA8 ? 0 : u8_total(x.w, nb);
                int32_t *dst = acc != NULL ? acc + pos * cout + c0 : a;
                u8_dots(x.w, masks, nb, cnt, total, dst);
                if (out == NULL) {
                    continue;
                }
                bnn_word_t *o = out + pos * ow;
                for (uint32_t j = 0; j < cnt; ++j) {
                    const uint32_t c = c0 + j;
                    o[c / 32u] |= (bnn_word_t)(a[j] >= thr[c]) << (c % 32u);
                }
            }
        }
    }
    return 1;
}

/*
 * The uint8 conv one output row at a time with the masks expanded once per call
 * (bnn__conv_u8_rows_prepare / bnn__conv_u8_row, bnn_conv.h), for K = kh kw cin <= 28 (nb <= 7
 * patch words: 3x3 RGB and smaller) and cout <= BNN_CONV_U8_ROW_CH on cores with USADA8.
 *
 * Channel record (8 words): the nb masks of u8_masks, zero up to word 6, then base = 255 n+.  A
 * patch of 7 words (bytes past K zero) against a record gives acc = base - sum_i |x_i - m_i|
 * (the masked-sum identity above; zero words add |0 - 0| = 0).  Per output position the patch
 * is built once and u8_dots7 runs every channel with the patch held in seven registers: per
 * channel two LDM of the record, seven USADA8, one SUB, one STR (12 instructions for 27 MACs,
 * two channels per loop pass).
 *
 * Interior positions of a 3x3 conv on 3 channels build the patch straight from the three
 * 9-byte input rows r0, r1, r2 with unaligned word loads (all inside the rows):
 *   x0 = r0[0..4)  x1 = r0[4..8)  x2 = r0[8] | r1[0..3) << 8  x3 = r1[3..7)
 *   x4 = r1[7..9) | r2[0..2) << 16  x5 = r2[2..6)  x6 = r2[5..9) >> 8 (byte 27 = 0)
 * every other position (clipped windows, other shapes) gathers through u8_gather.
 */
#if BNN_HAVE_USADA8 && BNN_CONV_LITTLE_ENDIAN
#define BNN_CONV_U8_ROWS_FAST 1
/* out[j] = rec_j[7] - sum_{i < 7} |x_i - rec_j[i]| for j < cnt (cnt >= 1). r4-r10: the patch,
 * r11: the sum, r0/r2/r12/lr: four record words, r1: the records, r3: out, [sp]: end. */
__attribute__((naked, noinline)) static void u8_dots7(const uint32_t *x __attribute__((unused)),
                                                     const uint32_t *rec __attribute__((unused)),
                                                     uint32_t cnt __attribute__((unused)),
                                                     int32_t *out __attribute__((unused)))
{
#define BNN__U8_CHANNEL                                                                                 \
    "ldm r1!, {r0, r2, r12, lr}\n\t"                                                                    \
    "usad8 r11, r4, r0\n\t"                                                                             \
    "usada8 r11, r5, r2, r11\n\t"                                                                       \
    "usada8 r11, r6, r12, r11\n\t"                                                                      \
    "usada8 r11, r7, lr, r11\n\t"                                                                       \
    "ldm r1!, {r0, r2, r12, lr}\n\t"                                                                    \
    "usada8 r11, r8, r0, r11\n\t"                                                                       \
    "usada8 r11, r9, r2, r11\n\t"                                                                       \
    "usada8 r11, r10, r12, r11\n\t"                                                                     \
    "sub r11, lr, r11\n\t"                                                                              \
    "str r11, [r3], #4\n\t"
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldm r0, {r4-r10}\n\t"
                     "add r0, r1, r2, lsl #5\n\t" /* end of the records */
                     "push {r0}\n\t"
                     "tst r2, #1\n\t"
                     "beq 1f\n\t"
                     BNN__U8_CHANNEL /* an odd count: one channel first */
                     "1:\n\t"
                     "ldr r0, [sp]\n\t"
                     "cmp r1, r0\n\t"
                     "beq 3f\n\t"
                     "2:\n\t"
                     BNN__U8_CHANNEL
                     BNN__U8_CHANNEL
                     "ldr r0, [sp]\n\t"
                     "cmp r1, r0\n\t"
                     "bne 2b\n\t"
                     "3:\n\t"
                     "add sp, sp, #4\n\t"
                     "pop {r4-r11, pc}\n\t");
#undef BNN__U8_CHANNEL
}

BNN_INLINE uint32_t ld32(const uint8_t *s)
{
    uint32_t v;
    memcpy(&v, s, 4u);
    return v;
}

BNN_INLINE uint32_t ld16(const uint8_t *s)
{
    uint16_t v;
    memcpy(&v, s, 2u);
    return v;
}

/* The 7-word patch of a full 3x3 window on 3 channels, rows 9 bytes at r0, r0 + step, r0 + 2 step. */
BNN_INLINE void patch_3x3x3(const uint8_t *r0, uint32_t step, uint32_t *x)
{
    const uint8_t *r1 = r0 + step, *r2 = r1 + step;
    x[0] = ld32(r0);
    x[1] = ld32(r0 + 4);
    x[2] = (uint32_t)r0[8] | ld32(r1) << 8;
    x[3] = ld32(r1 + 3);
    x[4] = ld16(r1 + 7) | ld32(r2) << 16;
    x[5] = ld32(r2 + 2);
    x[6] = ld32(r2 + 5) >> 8;
}
#else
#define BNN_CONV_U8_ROWS_FAST 0
#endif

int bnn__conv_u8_rows_prepare(const bnn_conv_params_t *p, const bnn_word_t *w, bnn_conv_u8_rows_t *r)
{
#if BNN_CONV_U8_ROWS_FAST
    const uint32_t taps = p->kh * p->kw, k = taps * p->cin, nb = (k + 3u) / 4u, n = taps * BNN_WORDS(p->cin);
    if (nb == 0u || nb > 7u || p->cout == 0u || p->cout > BNN_CONV_U8_ROW_CH) {
        return 0;
    }
    for (uint32_t j = 0; j < p->cout; ++j) {
        uint32_t m[10]; /* nb masks, the base, a pad word, u8_masks' spare */
        uint32_t *rec = r->rec + 8u * j;
        u8_masks(w + j * n, taps, p->cin, nb, m);
        for (uint32_t i = 0; i < 7u; ++i) {
            rec[i] = i < nb ? m[i] : 0u;
        }
        rec[7] = m[nb];
    }
    r->nb = nb;
    return 1;
#else
    (void)p;
    (void)w;
    (void)r;
    return 0;
#endif
}

void bnn__conv_u8_row(const bnn_conv_params_t *p, const uint8_t *in, const bnn_conv_u8_rows_t *r, uint32_t oy,
                      int32_t *row)
{
#if BNN_CONV_U8_ROWS_FAST
    const uint32_t cout = p->cout, nb = r->nb, step = p->in_w * p->cin;
    const span_t cols = interior_cols(p);
    const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
    const int rgb = p->cin == 3u && p->kh == 3u && p->kw == 3u;
    const int inner = rgb && y0 >= 0 && y0 + 3 <= (int32_t)p->in_h && cols.lo < cols.hi;
    u8patch_t x;
    uint32_t ox = 0;
    for (; ox < p->out_w; ++ox, row += cout) {
        if (inner && ox == cols.lo) { /* the interior run of the row */
            const uint8_t *src = in + ((uint32_t)y0 * p->in_w + ox * p->stride_w - p->pad_w) * 3u;
            const uint32_t xstep = p->stride_w * 3u;
            for (; ox < cols.hi; ++ox, row += cout, src += xstep) {
                patch_3x3x3(src, step, x.w);
                u8_dots7(x.w, r->rec, cout, row);
            }
            if (ox == p->out_w) {
                break;
            }
        }
        const window_t win = window(p, oy, ox);
        u8_gather(p, in, &win, nb, &x);
        for (uint32_t i = nb; i < 7u; ++i) {
            x.w[i] = 0u;
        }
        u8_dots7(x.w, r->rec, cout, row);
    }
#else
    (void)p;
    (void)in;
    (void)r;
    (void)oy;
    (void)row;
#endif
}

void bnn_conv_u8_acc(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, int32_t *acc)
{
    bnn_conv_u8_rows_t r;
    if (bnn__conv_u8_rows_prepare(p, w, &r)) {
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            bnn__conv_u8_row(p, in, &r, oy, acc + (size_t)oy * p->out_w * p->cout);
        }
        return;
    }
    if (conv_u8_masked(p, in, w, NULL, NULL, acc)) {
        return;
    }
    const uint32_t wstride = p->kh * p->kw * BNN_WORDS(p->cin);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            const window_t win = window(p, oy, ox);
            const int32_t total = window_total(p, in, &win);
            for (uint32_t o = 0; o < p->cout; ++o) {
                *acc++ = conv_u8_one(p, in, w + o * wstride, &win, total);
            }
        }
    }
}

void bnn_conv_u8_bits(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w,
                      const int32_t *thr, bnn_word_t *out)
{
    if (conv_u8_masked(p, in, w, thr, out, NULL)) {
        return;
    }
    const uint32_t wstride = p->kh * p->kw * BNN_WORDS(p->cin);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            const window_t win = window(p, oy, ox);
            const int32_t total = window_total(p, in, &win);
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
