/* SPDX-License-Identifier: MIT */
/*
 * bnn_stream.h -- the fixed-point residual stream (issue 9; IR ops in bnn2hw/ir/graph.py, numpy
 * references of the same names in bnn2hw/ir/ops.py; bit convention: bnn_bits.h).
 *
 * A stream tensor holds integers q (the value is q * 2^-frac) in HWC order, q[pos * C + c].
 * Its storage follows its width in bits, chosen by the code generator so RAM stays small:
 *   bits <= 8: int8_t (1 byte), bits <= 16: int16_t (2 bytes), else int32_t (4 bytes);
 * kernels take the element size in bytes (1, 2 or 4) of each operand.  Accumulators are int32.
 *
 * requant  q = clamp((x * mult[c] + bias[c]) >> shift[c], lo, hi), `>>` = floor (arithmetic shift,
 *          written portably as floor division); x * mult is int32 x int32 -> int64 and
 *          |x * mult + bias| < 2^63 (validate() bounds |mult| < 2^31, |bias| <= 2^62).
 *          The shift is a per-channel table (the IR has one shift per layer today; the generator
 *          broadcasts it), so a per-channel shift needs no change here.
 * add      clamp(a + b, lo, hi) elementwise (a residual connection), in int64.
 * avgpool  window SUM over k x k (no padding, no division: 1/k^2 is folded into the consumer);
 *          an int8_t stream with a multiple of 4 channels and k <= 16 is summed four channels
 *          at a time (SXTAB16 halfword lanes on cores with the DSP extension: k^2 128 <= 2^15).
 * threshold  bit = q >= thr[c] (dir +1) or q <= thr[c] (dir -1), packed per position like the
 *          conv input: out[pos * BNN_WORDS(C) + k], padding bits 0.
 * dense on a stream  acc[o] = sum_i q[i] * w[o][i], int8 weights or packed binary (bit 1 = +1).
 * conv rows  a binary conv (bnn_conv.h) computed one output row at a time into an int32 row
 *          buffer (out_w * cout), then requantized to a stream or thresholded to bits: the full
 *          int32 accumulator tensor is never stored.  Packed bits input runs the patch +
 *          popcount-mode row kernel (bnn_conv_acc_rows, bnn_conv.h).  pad_minus1 makes a padded
 *          tap the activation -1 (FINN's FMPadding of a binary stream): a zero bit of the
 *          gathered patch, so acc = K - 2 popcount with the full K (no correction).
 * conv stream  the same rows through the fused epilogue below (bnn_conv_stream): requant,
 *          residual add, store, next block's threshold in one pass per row (issue 9; the
 *          generator picks it when the graph allows, bnn2hw/mcu/emitters.py).
 */
#ifndef BNN_STREAM_H
#define BNN_STREAM_H

#include "bnn_bits.h"
#include "bnn_conv.h"

typedef struct {
    uint32_t channels;
    const int32_t *mult; /* per channel, |mult| < 2^31 */
    const int64_t *bias; /* per channel, rounding included (+2^(shift-1) for half-up) */
    const uint8_t *shift; /* per channel, 0..62 (the IR's one shift per layer, broadcast) */
    int32_t lo, hi;      /* -2^(bits-1), 2^(bits-1) - 1 */
    uint32_t out_bytes;  /* storage of the result: 1, 2 or 4 */
} bnn_requant_params_t;

typedef struct {
    uint32_t n;                             /* elements */
    uint32_t a_bytes, b_bytes, out_bytes;   /* storage of each operand */
    int32_t lo, hi;                         /* saturation bounds of the sum */
} bnn_add_params_t;

typedef struct {
    uint32_t in_h, in_w, c;
    uint32_t out_h, out_w;
    uint32_t k, stride;
    uint32_t in_bytes, out_bytes;
} bnn_avgpool_params_t;

typedef struct {
    uint32_t positions, channels;
    uint32_t in_bytes;
} bnn_stream_threshold_params_t;

typedef struct {
    uint32_t n_in, n_out;
    uint32_t in_bytes;
} bnn_stream_dense_params_t;

typedef struct {
    bnn_conv_params_t conv;
    uint32_t in_u8;          /* 1: uint8 HWC input (first layer), 0: packed bits */
    uint32_t pad_minus1;     /* 1: a padded tap is the activation -1 (bits input only);
                              * 0: zero padding (a padded tap contributes 0) */
} bnn_conv_rows_params_t;

/* Element i of a stream stored with `bytes` bytes per element. */
BNN_INLINE int32_t bnn_stream_get(const void *p, uint32_t bytes, uint32_t i)
{
    return bytes == 1u ? (int32_t)((const int8_t *)p)[i]
                       : (bytes == 2u ? (int32_t)((const int16_t *)p)[i] : ((const int32_t *)p)[i]);
}

/* Store v (already within the storage's range) as element i. */
BNN_INLINE void bnn_stream_put(void *p, uint32_t bytes, uint32_t i, int32_t v)
{
    if (bytes == 1u) {
        ((int8_t *)p)[i] = (int8_t)v;
    } else if (bytes == 2u) {
        ((int16_t *)p)[i] = (int16_t)v;
    } else {
        ((int32_t *)p)[i] = v;
    }
}

/* positions x channels values (int32 accumulators: in_bytes 4, or a stream) -> stream. */
void bnn_requant(const bnn_requant_params_t *p, uint32_t positions, const void *in, uint32_t in_bytes,
                 void *out);
void bnn_stream_add(const bnn_add_params_t *p, const void *a, const void *b, void *out);
void bnn_avgpool_sum(const bnn_avgpool_params_t *p, const void *in, void *out);
void bnn_stream_threshold(const bnn_stream_threshold_params_t *p, const void *in, const int32_t *thr,
                          const int8_t *dir, bnn_word_t *out);
void bnn_dense_stream_s8(const bnn_stream_dense_params_t *p, const void *in, const int8_t *w, int32_t *acc);
void bnn_dense_stream_bin(const bnn_stream_dense_params_t *p, const void *in, const bnn_word_t *w,
                          int32_t *acc);

/*
 * The fused stream epilogue of an int32 accumulator (one pass per element, issue 9):
 *   r = requant(acc)                                   (rq: per channel mult, bias, shift)
 *   v = clamp(r + skip, add_lo, add_hi)  if skip_bytes != 0 (the residual add), else v = r
 *   out[i] = v                          if out_bytes != 0   (the stream, stored)
 *   bit    = v >= thr[c] (dir +1) / v <= thr[c] (dir -1)  if thr != NULL (the next block's sign),
 *            packed 32 channels per word per position, padding bits 0.
 * skip and out are HWC streams of skip_bytes / out_bytes per element; out may be skip (each
 * element is read before it is written).  int32 arithmetic with a per-channel table when the
 * accumulator bound proves it exact and the streams are int8_t / int16_t with at most
 * BNN_STREAM_FAST_CH (64) channels; the int64 reference loop otherwise (bnn_stream.c).
 */
typedef struct {
    const bnn_requant_params_t *rq;
    uint32_t skip_bytes;     /* 0: no add; else storage of the skip stream */
    int32_t add_lo, add_hi;  /* saturation bounds of the sum */
    uint32_t out_bytes;      /* 0: v is not stored; else its storage */
    const int32_t *thr;      /* NULL: no threshold */
    const int8_t *dir;
} bnn_stream_epilogue_t;

/* positions x rq->channels accumulators, |acc| <= bound. */
void bnn_stream_epilogue(const bnn_stream_epilogue_t *e, uint32_t positions, const int32_t *acc, uint32_t bound,
                         const void *skip, void *out, bnn_word_t *bits);

/* Conv -> epilogue, row by row (row: conv.out_w * conv.cout int32 scratch); skip/out/bits are
 * the whole tensors (NULL when the epilogue does not use them). */
void bnn_conv_stream(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                     const bnn_stream_epilogue_t *e, const void *skip, int32_t *row, void *out, bnn_word_t *bits);

/* Conv -> requant, row by row; row holds conv.out_w * conv.cout int32. */
void bnn_conv_requant(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                      const bnn_requant_params_t *rq, int32_t *row, void *out);
/* Conv -> threshold (acc >= thr[o]; the generator negates rows of negative-direction channels). */
void bnn_conv_threshold_rows(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                             const int32_t *thr, int32_t *row, bnn_word_t *out);

#endif /* BNN_STREAM_H */
