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
 * Optimized: per output position the valid tap window [ky0, ky1) x [kx0, kx1) is found
 * once; per output channel the popcounts of the valid taps are summed with the selected
 * popcount strategy and acc = n_valid * cin - 2 p.
 */
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

void bnn_conv_acc(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, int32_t *acc)
{
    const uint32_t wstride = p->kh * p->kw * BNN_WORDS(p->cin);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
            for (uint32_t o = 0; o < p->cout; ++o) {
                *acc++ = conv_acc_one(p, in, w + o * wstride, &win);
            }
        }
    }
}

void bnn_conv_bits(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                   const int32_t *thr, bnn_word_t *out)
{
    const uint32_t wstride = p->kh * p->kw * BNN_WORDS(p->cin);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
            bnn_word_t bits = 0;
            uint32_t o;
            for (o = 0; o < p->cout; ++o) {
                int32_t a = conv_acc_one(p, in, w + o * wstride, &win);
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

/* Optimized: acc = 2 * sum_{bit=1} x - sum x over the valid window; the window total is
 * computed once per position and shared by all output channels. */
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

void bnn_conv_u8_acc(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, int32_t *acc)
{
    const uint32_t wstride = p->kh * p->kw * BNN_WORDS(p->cin);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
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
    const uint32_t wstride = p->kh * p->kw * BNN_WORDS(p->cin);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            window_t win = window(p, oy, ox);
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
