/* SPDX-License-Identifier: MIT */
/*
 * bnn_conv.h -- binary 2-D convolution on packed channels (convention: bnn_bits.h).
 *
 * Layout HWC.  cw = BNN_WORDS(cin), ow = BNN_WORDS(cout).
 *   input   in[(y * in_w + x) * cw + k]                          (packed bits over cin)
 *   weights w[((o * kh + ky) * kw + kx) * cw + k]                (packed bits over cin)
 *   output  out[(oy * out_w + ox) * ow + k]                      (packed bits over cout)
 * Input tap of output (oy, ox), kernel (ky, kx): y = oy*stride_h - pad_h + ky,
 * x = ox*stride_w - pad_w + kx.  Zero padding of the +-1 data: a tap outside the image
 * contributes 0 (not +-1), so
 *   acc = sum over valid taps of (cin - 2 popcount(in_tap xor w_tap)),
 * and K = (number of valid taps) * cin depends on the output position.  That is why the
 * threshold is in the accumulator domain: bit = (acc >= thr[o]).
 * out_h/out_w are given by the caller (normally (in + 2 pad - k) / stride + 1).
 *
 * bnn_conv_u8_*: first layer, uint8 HWC input in[(y * in_w + x) * cin + c], same binary
 *   weight layout; acc = sum over valid taps and channels of x * s (s = +-1 weight).  The
 *   optimized variants compare a byte patch with per-channel 0x00 / 0xFF byte masks:
 *   acc = 255 n+ - sum |x - m| (USADA8, 4 MACs per instruction) or 2 sum (x & m) - sum x
 *   (portable), for kh kw cin <= 256 (bnn_conv.c).
 * bnn_conv_*_acc: int32 accumulators acc[(oy * out_w + ox) * cout + o] instead of bits
 *   (feed bnn_threshold() for per-channel directions).
 */
#ifndef BNN_CONV_H
#define BNN_CONV_H

#include "bnn_bits.h"

typedef struct {
    uint32_t in_h, in_w, cin;
    uint32_t out_h, out_w, cout;
    uint32_t kh, kw;
    uint32_t stride_h, stride_w;
    uint32_t pad_h, pad_w;
} bnn_conv_params_t;

void bnn_conv_bits_ref(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       const int32_t *thr, bnn_word_t *out);
void(bnn_conv_bits)(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                    const int32_t *thr, bnn_word_t *out);

/*
 * bnn_conv_bits runs the conv as a dense layer over gathered patches with the dense row
 * kernel (bnn_conv.c); 3x3 convs with 16 input channels on cores with USADA8 (not Helium) run
 * bnn_conv.c's conv16_rows_bits instead (two weight rows share the patch's half-filled fifth
 * word, BNN_CONV16_PAIRS; 576 B more stack).  On Thumb-2 the row-kernel variants (bits over the patch words,
 * popcounts over cw words for the padding correction) are picked here, inline, so that
 * generated code (constant params) links only those.
 */
#if BNN_MULTI_ASM
typedef bnn__dbt2_fn bnn_conv_rows_fn;
#define BNN__CONV_ROWS_FN(p) bnn__dbt2_pick(bnn__conv_row_words(p), 0u)
#define BNN__CONV_POP_FN(p) bnn__dbt2_pick(BNN_WORDS((p)->cin), 1u)
#define BNN__CONV_PROWS_FN(p) bnn__dbt2_pick(bnn__conv_row_words(p), 1u)
#elif BNN_M0_ASM
typedef uint32_t (*bnn_conv_rows_fn)(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
#define BNN__CONV_ROWS_FN(p) ((void)(p), bnn__dbt_m0)
#define BNN__CONV_POP_FN(p) ((bnn_conv_rows_fn)0)
#define BNN__CONV_PROWS_FN(p) ((bnn_conv_rows_fn)0)
#else
typedef void *bnn_conv_rows_fn;
#define BNN__CONV_ROWS_FN(p) ((void)(p), (bnn_conv_rows_fn)0)
#define BNN__CONV_POP_FN(p) ((bnn_conv_rows_fn)0)
#define BNN__CONV_PROWS_FN(p) ((bnn_conv_rows_fn)0)
#endif
/* Words per weight row as the conv kernel runs it: taps packed back to back (tap t at bit
 * t cin, ceil(kh kw cin / 32) words) whenever cin % 32 != 0, that saves words and the chunk's
 * 32 packed rows fit BNN_CONV_DENSE_WORDS words (a stack buffer in bnn_conv.c, 4 bytes a word:
 * the default 640 = 2.5 KB covers 3x3 convs up to cin 65, peak conv stack about 6.4 KB; on
 * ARMv6-M (Cortex-M0/M0+, 16 KB RAM parts) and Helium 160 = 640 B, i.e. 3x3 up to cin 17, about 4 KB);
 * else one padded word group per tap. */
#ifndef BNN_CONV_DENSE_WORDS
#if defined(__ARM_ARCH_6M__) || BNN_MVE /* Helium packs only cin < 32 (below) */
#define BNN_CONV_DENSE_WORDS 160u
#else
#define BNN_CONV_DENSE_WORDS 640u
#endif
#endif
BNN_INLINE uint32_t bnn__conv_row_words(const bnn_conv_params_t *p)
{
    const uint32_t taps = p->kh * p->kw;
    const uint32_t nd = BNN_WORDS(taps * p->cin);
    const uint32_t n = taps * BNN_WORDS(p->cin);
#if BNN_MVE
    /* Helium: the rows-in-lanes kernel is cheaper than packing multi-word taps per position
     * (measured, mcu_kernels_m55.md: 12x12x48 0.091 padded vs 0.125 dense), so only cin < 32 packs
     * here; cin >= 32 convs run bnn_conv.c's column images of row-dense taps when they fit */
    if (p->cin > 32u) {
        return n;
    }
#endif
    return p->cin % 32u != 0u && 32u * nd <= BNN_CONV_DENSE_WORDS && nd < n ? nd : n;
}
void bnn__conv_bits_rows(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                         const int32_t *thr, int pad_minus1, bnn_word_t *out, bnn_conv_rows_fn fn,
                         bnn_conv_rows_fn pfn);
#define bnn_conv_bits(p, in, w, thr, out) \
    bnn__conv_bits_rows(p, in, w, thr, 0, out, BNN__CONV_ROWS_FN(p), BNN__CONV_POP_FN(p))
/*
 * bnn_conv_bits_m1: the same with -1 padding (a tap outside the image is the activation -1 on
 * every channel, FINN's FMPadding of a binary stream): the gathered patch holds zero bits there,
 * which is that activation, so acc = K - 2 popcount with the full K = kh kw cin at every position
 * and the threshold runs inside the row kernel (no correction, no accumulator row).
 * bnn_conv_bits_m1_ref: its reference loop nest.
 */
#define bnn_conv_bits_m1(p, in, w, thr, out) \
    bnn__conv_bits_rows(p, in, w, thr, 1, out, BNN__CONV_ROWS_FN(p), (bnn_conv_rows_fn)0)
/*
 * bnn_conv_bits_mve_prep (Helium only, BNN_MVE): bnn_conv_bits / _m1 with the weight-side work of
 * bnn_conv.c's column-image conv done at code generation (bnn2hw/mcu/conv_mve_prep.py, issue 11):
 *   w     cout weight rows of nw = kh ceil(kw cin / 32) words in the row-dense layout (the kw taps
 *         of a kernel row back to back; cin % 32 == 0: the padded layout itself);
 *   m     the popcount bounds M (bit = popcount <= M) of every window class: table
 *         (ycls[oy] nx + xcls[ox]), entry o at m[table cpad + o] (cpad = cout rounded up to 4);
 *         M = clamp(floor((K_v - thr) / 2) + sum of the +1 weights of the padded taps, -1, 32 nw);
 *   raw_w, thr  the plain weights and thresholds: when the shape does not fit this build's
 *         buffers (BNN_CONV_MVE_COL_WORDS) the call runs bnn_conv_bits / _m1 on them.
 */
typedef struct {
    uint32_t pad_minus1, nx, cpad;
    const bnn_word_t *w;
    const int32_t *m;
    const uint8_t *xcls, *ycls;
    const bnn_word_t *raw_w;
    const int32_t *thr;
} bnn_conv_mve_prep_t;
void bnn__conv_bits_mve_prep(const bnn_conv_params_t *p, const bnn_conv_mve_prep_t *q, const bnn_word_t *in,
                             bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn);
#define bnn_conv_bits_mve_prep(p, q, in, out) \
    bnn__conv_bits_mve_prep(p, q, in, out, BNN__CONV_ROWS_FN(p), BNN__CONV_POP_FN(p))
/*
 * bnn_conv_bits_prep (every core but Helium, issue 11): bnn_conv_bits / _m1 with the weight side of
 * bnn__conv_bits_rows done at code generation (bnn2hw/mcu/conv_m4_prep.py), so that a call runs
 * only the patches and the row kernels (no per-call packing of weight rows, no pair records, no
 * tap counts, no threshold clamps, no border-correction cache):
 *   nw    words per prepared weight row: bnn__conv_row_words(p) of the build the data was made for
 *         (taps packed back to back when that packs, else the padded layout);
 *   pairs 1: 3x3 convs with cin 16 as conv16_rows_bits' pair records (bnn_conv.c, BNN_CONV16_PAIRS:
 *         Thumb-2 cores with USADA8), 3x3 convs with cin 24 as rows of 7 words with the seventh
 *         tail-spread (bnn_conv24_tail, BNN_CONV24_ROWS: the same cores), the M entries of
 *         both stored as ~M = -M - 1; 0: rows of nw words;
 *   w     the prepared rows: cout rows of nw words, or per 32-channel chunk ceil(cnt / 2) records of
 *         9 words (chunk c0 at w + 9 c0 / 2; an odd count's last record pairs its row with itself);
 *   m     popcount bounds M (bit = popcount(patch ^ row) <= M) per window class: entry o of the
 *         class (ycls[oy], xcls[ox]) at m[(ycls[oy] nx + xcls[ox]) cpad + o],
 *         M = clamp(floor((K_v + 2 corr - thr) / 2), -1, 32 nw) (K_v the valid taps' inputs, corr
 *         the +1 weights of the padded taps; -1 padding or no padding: one class, K_v = kh kw cin);
 *   raw_w, thr  the plain weights and thresholds: when nw / pairs do not match this build (another
 *         BNN_CONV_DENSE_WORDS, no USADA8, a Helium build) the call runs bnn_conv_bits / _m1 on them.
 * Invariant: the table of each position equals the M bnn__conv_bits_rows computes for its window,
 * so the bits are those of bnn_conv_bits_ref / bnn_conv_bits_m1_ref.
 */
typedef struct {
    uint32_t pad_minus1, nx, cpad, nw, pairs;
    const bnn_word_t *w;
    const int32_t *m;
    const uint8_t *xcls, *ycls;
    const bnn_word_t *raw_w;
    const int32_t *thr;
} bnn_conv_prep_t;
void bnn__conv_bits_prep(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, const bnn_word_t *in,
                         bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn);
#define bnn_conv_bits_prep(p, q, in, out) \
    bnn__conv_bits_prep(p, q, in, out, BNN__CONV_ROWS_FN(p), BNN__CONV_POP_FN(p))
/*
 * bnn_conv_bits_few (issue 11): bnn_conv_bits_prep on the same prepared data for 3x3 convs with cin <= 32,
 * the output in tiles of <= BNN_CONV_FEW_POS positions: per tile the patches packed by full-window packs
 * (in place where the windows lie inside the input, else from a small zero-bordered copy: no per-position
 * window logic), then per chunk the tile's positions on the row kernel with their class's M row (3x3x16
 * pair records and 3x3x24 tail-spread rows: one assembly loop over the tile with the patch in registers;
 * bnn_conv.c, 1.75 KB of stack at most, no static memory).  The code generator (bnn2hw/mcu/conv_m4_prep.py: use_few) calls it where it
 * measured faster; other kernel sizes, cin > 32 and data made for another build run bnn_conv_bits_prep.
 * Same bits as bnn_conv_bits_ref / bnn_conv_bits_m1_ref.
 */
#ifndef BNN_CONV_FEW_POS
#define BNN_CONV_FEW_POS 16u
#endif
void bnn__conv_bits_few(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, const bnn_word_t *in,
                        bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn);
#define bnn_conv_bits_few(p, q, in, out) \
    bnn__conv_bits_few(p, q, in, out, BNN__CONV_ROWS_FN(p), BNN__CONV_POP_FN(p))
/*
 * bnn_conv_bits_tile (issue 11): a 3x3 conv of at most BNN_CONV_FEW_POS output positions (as one tile of
 * bnn_conv_bits_few; any cin, its patches within BNN_CONV_TILE_WORDS words), with the work that depends only on
 * the layer's geometry done at generation time (bnn2hw/mcu/conv_tile.py): t->patches, a function
 * the code generator writes for the layer, packs every position's patch in q's layout straight from
 * the input words (padded taps are the constant 0, so there is no bordered copy and no window test),
 * and t->mp lists each position's M row.  The rows then run as in bnn_conv_bits_few (cin 16 / 24: one
 * assembly loop over all positions per 32-channel chunk; other counts the row kernel per position).  The
 * packer is about 17 bytes of code per patch word on the Cortex-M4.  A build whose prepared layout differs from q's
 * (prep_matches), a Helium build or t->npos != out_h out_w runs bnn_conv_bits_prep instead.
 * Same bits as bnn_conv_bits_ref / bnn_conv_bits_m1_ref.
 */
#ifndef BNN_CONV_TILE_WORDS
#define BNN_CONV_TILE_WORDS 288u /* the general path's patch buffer (1,152 B of stack; conv_tile.TILE_WORDS) */
#endif
typedef struct {
    void (*patches)(const bnn_word_t *in, bnn_word_t *x); /* t->npos patches of q->nw words into x */
    const int32_t *const *mp;                             /* per position: q->m + its class's row */
    uint32_t npos;                                        /* output positions, out_h out_w */
} bnn_conv_tile_t;
void bnn__conv_bits_tile(const bnn_conv_params_t *p, const bnn_conv_prep_t *q, const bnn_conv_tile_t *t,
                         const bnn_word_t *in, bnn_word_t *out, bnn_conv_rows_fn fn, bnn_conv_rows_fn pfn);
#define bnn_conv_bits_tile(p, q, t, in, out) \
    bnn__conv_bits_tile(p, q, t, in, out, BNN__CONV_ROWS_FN(p), BNN__CONV_POP_FN(p))
/* The 16 bits of h (h < 2^16) at the even bit positions (the 3x3x16 pair records' tail word). */
BNN_INLINE uint32_t bnn_conv16_spread(uint32_t h)
{
    h = (h | h << 8) & 0x00FF00FFu;
    h = (h | h << 4) & 0x0F0F0F0Fu;
    h = (h | h << 2) & 0x33333333u;
    return (h | h << 1) & 0x55555555u;
}
/* A 3x3x16 patch's fifth word (tap 8's 16 bits) as the pair records take it: each bit twice. */
BNN_INLINE uint32_t bnn_conv16_tail(uint32_t h)
{
    return bnn_conv16_spread(h) * 3u;
}
/* A 3x3x24 patch's seventh word (tap 8's 24 bits) tail-spread for the BNN_CONV24_ROWS rows (bnn_conv.c):
 * bits 3, 7 of the low six nibbles moved to the top two nibbles' free bits, so bit 3 of every
 * nibble is 0.  Bits 3, 7, 11, 15, 19, 23 go to bits 24, 28, 25, 29, 26, 30 (conv_m4_prep.py
 * tail_spread).  One multiply moves all six: h (2^21 + 2^14 + 2^7) puts each of h's bits 3 + 4 i at
 * three places, all 18 of them distinct (no carries), and only the six above land in 0x77000000. */
BNN_INLINE uint32_t bnn_conv24_tail(uint32_t t)
{
    return (t & 0x77777777u) | (((t & 0x88888888u) * 0x00204080u) & 0x77000000u);
}
void bnn_conv_bits_m1_ref(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                          const int32_t *thr, bnn_word_t *out);
void(bnn_conv_bits_m1)(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w,
                       const int32_t *thr, bnn_word_t *out);
void bnn_conv_acc_ref(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, int32_t *acc);
/*
 * bnn_conv_acc_rows(p, in, w, oy0, oy1, pad_minus1, acc): the int32 accumulators of output rows
 * [oy0, oy1), acc[((oy - oy0) * out_w + ox) * cout + o], by the patch + dense row kernel in
 * popcount mode (bnn_conv.c).  pad_minus1 = 0: zero padding (as bnn_conv_acc_ref);
 * pad_minus1 != 0: a padded tap is the activation -1 (FINN's FMPadding of a binary stream),
 * acc = K - 2 popcount with the full K.  bnn_conv_acc = all rows, zero padding.
 * bnn_conv_pop_rows: the same rows as the popcounts themselves, pop = (K - acc) / 2 with
 * K = kh kw cin, for -1 padding or a conv without padding only (there acc = K - 2 pop at every
 * position; the consumer folds K - 2 x into its own arithmetic, bnn_stream.c).
 */
void bnn__conv_acc_rows(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, uint32_t oy0,
                        uint32_t oy1, int mode, int32_t *acc, bnn_conv_rows_fn pfn);
#define bnn_conv_acc_rows(p, in, w, oy0, oy1, pad_minus1, acc) \
    bnn__conv_acc_rows(p, in, w, oy0, oy1, (pad_minus1) ? 1 : 0, acc, BNN__CONV_PROWS_FN(p))
#define bnn_conv_pop_rows(p, in, w, oy0, oy1, pad_minus1, pop) \
    bnn__conv_acc_rows(p, in, w, oy0, oy1, (pad_minus1) ? 3 : 2, pop, BNN__CONV_PROWS_FN(p))
void(bnn_conv_acc)(const bnn_conv_params_t *p, const bnn_word_t *in, const bnn_word_t *w, int32_t *acc);
#define bnn_conv_acc(p, in, w, acc) bnn_conv_acc_rows(p, in, w, 0u, (p)->out_h, 0, acc)

void bnn_conv_u8_bits_ref(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w,
                          const int32_t *thr, bnn_word_t *out);
void bnn_conv_u8_bits(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w,
                      const int32_t *thr, bnn_word_t *out);
void bnn_conv_u8_acc_ref(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, int32_t *acc);
/*
 * The uint8 conv's accumulators one output row at a time with the channel masks expanded once
 * per call (bnn_conv.c): bnn__conv_u8_rows_prepare returns 1 when the shape takes this path
 * (cores with USADA8, kh kw cin <= 28, cout <= BNN_CONV_U8_ROW_CH), else 0 and the caller runs
 * bnn_conv_u8_acc; bnn__conv_u8_row then writes row oy, acc[ox * cout + o], of the whole conv
 * (zero padding included).  bnn_conv_u8_acc uses the pair when it applies.
 */
#if defined(__ARM_FEATURE_SIMD32) && BNN_THUMB2_ASM
#define BNN_CONV_U8_ROW_CH 32u
#else
#define BNN_CONV_U8_ROW_CH 1u /* the path is off: a token record */
#endif
typedef struct {
    uint32_t nb;                              /* patch words, <= 7 */
    uint32_t rec[8u * BNN_CONV_U8_ROW_CH];    /* per channel: 7 byte masks, then 255 n+ */
} bnn_conv_u8_rows_t;
int bnn__conv_u8_rows_prepare(const bnn_conv_params_t *p, const bnn_word_t *w, bnn_conv_u8_rows_t *r);
void bnn__conv_u8_row(const bnn_conv_params_t *p, const uint8_t *in, const bnn_conv_u8_rows_t *r, uint32_t oy,
                      int32_t *row);
void bnn_conv_u8_acc(const bnn_conv_params_t *p, const uint8_t *in, const bnn_word_t *w, int32_t *acc);

/* The column-sliced conv (bnn_conv_vc.h includes this header; its guard stops the cycle). */
#include "bnn_conv_vc.h"

#endif /* BNN_CONV_H */
