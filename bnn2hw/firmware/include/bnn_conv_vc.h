/* SPDX-License-Identifier: MIT */
/*
 * bnn_conv_vc.h -- binary conv2d on column-sliced counts (bnn_vcols.h): same contract as
 * bnn_conv_bits (zero padding) and bnn_conv_bits_m1 (-1 padding), bnn_conv.h, packed HWC
 * bits in and out, bit = (acc >= thr[o]).
 *
 * Groups and lanes.  A group is one word of 32 lanes.  The first Gf = cout / 32 groups hold
 * channels 32 g .. 32 g + 31 of one output position (lane r = channel 32 g + r).  The tail
 * group (ct = cout % 32 channels, if any) holds P output positions (P = L->npos, ct P <= 32;
 * 16 channels: P = 2, 8: 4, 1 (cout 33, 65): up to 7 at stride 2): lane j ct + r = channel
 * 32 Gf + r at output position (oy, ox + j) of a step.  A step of P positions reads the
 * extended window of kh x KWe taps, KWe = kw + (P - 1) stride_w, input columns
 * ox stride_w - pad_w + kx' (kx' < KWe); the full groups step one position at a time (KWe = kw).
 *
 * Columns (flash, generated; bnn2hw/mcu/conv_vcols.py), tap-major: full group g, tap
 * t = ky kw + kx, channel c: cols[(g kh kw + t) cin + c], bit r = weight (1 = +1) of channel
 * 32 g + r at (ky, kx); then the tail group at cols + Gf kh kw cin: extended tap
 * t = ky KWe + kx', cols[t cin + c] bit j ct + r = weight of channel 32 Gf + r at
 * (ky, kx' - j stride_w), 0 where that tap does not exist.
 * One zero word follows the columns (the padding column of a step's list tails).
 * ctap[o kh kw + ky kw + kx] = C_ot, the +1 weights of channel o at tap (ky, kx) (the padding
 * correction and the S0 / S1 algebra below).
 *
 * Method (bnn_vcols.h).  Per input pixel the index lists of its set channels S1 and of its
 * clear channels S0 are built once (n1 = |S1|; a pixel in the padding is all zero bits: S1
 * empty, S0 every channel).  Per step the counter Q of all lanes is bnn_vc_count over the
 * kh KWe taps, base = that tap's columns, idx = the pixel's S1 list, or its S0 list when the
 * S0 lists of the window are shorter in total (at most half the window's columns for ANY
 * input).  With K = kh kw cin, N1 = sum of n1 over the position's taps, C = sum_t C_ot and the
 * padded pixels taken as zero bits (the -1 activation), P = popcount(patch ^ w) is
 *     S1: P = N1 + C - 2 Q1,     S0: P = 2 Q0 + N1 - C,
 * and acc_m1 = K - 2 P.  Zero padding: acc = acc_m1 - sum_{padded t} (cin - 2 C_ot), so the
 * threshold becomes thr' = thr + that sum (per border class; -1 padding: thr' = thr).  With
 * A = thr' - K + 2 C:
 *     acc >= thr  <=>  S1: 2 Q1 >= T1 + N1,   T1 = ceil(A / 2)
 *                      S0: not (2 Q0 >= T0 - N1),   T0 = floor((4 C - A) / 2) + 1.
 * Both are 2 Q >= T + B with B = N1 or -N1, the same B in every lane of a position.  With
 * B = 2 h + e (e = N1 mod 2): 2 Q >= T + B <=> Q - h >= Te = ceil((T + e) / 2).  So the count
 * starts at W - h (W = floor(K / 2) + 1 keeps it positive; per lane block when P > 1) instead
 * of 0 (bnn_vc_count adds into q), and the compare is Q' = Q + W - h >= Te + W, a plain
 * borrow chain against planes precomputed per border class, group, mode and parity e (values
 * clamped to [0, 2^nq]: outside, the compare is constant), no per-position bias.  The planes
 * are computed once per call for every border class the call meets (key: padded kernel rows,
 * padded extended columns, full or tail group), or read from the layer's flash table
 * (L->classes, generated) when it has one.
 *
 * Work memory (caller's, no malloc; bnn_conv_vc_work_words): a ring of kh input rows of
 * pixel lists (in_w (cin + 1) words a row), the padding pixel, a step's list tails, and, unless
 * the flash table is complete (L->table_complete), the class cache (BNN_CONV_VC_CLASSES + 1
 * entries) and two int32 per output channel (the per-channel terms class_planes starts from).
 * Table complete: the generator's claim that L->classes holds every class key a call meets
 * (conv_vcols.class_keys, the same keys as bnn_conv_vc_class_keys here); each call checks it
 * first (bnn_conv_vc_table_covers, O(out_h + out_w) plus a lookup per key) and, if it is false,
 * runs bnn_conv_vc_bits_ref (exact, no work memory) instead of overrunning the smaller work
 * buffer.  Then ctap may be NULL (only the class builds read it).
 * Stack (Cortex-M4, -O2, -fstack-usage): bnn__conv_vc_bits 1,232 B (+ the table check 112 B
 * before the steps), + bnn__conv_vc_row_tail 1,224 B (the tail group's rows), + class_entry 40 B
 * + bnn__conv_vc_class_planes 640 B + transpose32 20 B (classes built per call), or +
 * bnn_vc_count16 40 B: under 3.2 KB; a tail on the row kernel (tail_rows, ct cw > 2) runs
 * bnn_conv_bits (bnn_conv.h, about 6.4 KB) before, not inside, bnn__conv_vc_bits.
 * Code (Cortex-M4, -O2, --gc-sections): bnn__conv_vc_bits 4.8 KB (the full groups' step loop
 * with its interior steps spelled out for 3x3 kernels, tail_direct) + the table check and the
 * reference 1.2 KB + bnn_vcols.c's count 0.4 KB; + bnn__conv_vc_row_tail 3.4 KB only when a layer
 * has a column-sliced tail, + the class builder 1.1 KB only when a layer has no complete table,
 * + the row kernel's variant only when a tail runs on it (bnn_conv_vc_bits passes or calls these
 * from the caller's constant L, so an image links only what its layers use).
 * Speed (Cortex-M4 instructions per binary MAC, benchmarks/bench_mcu_kernels.py --conv-only):
 * 0.09 - 0.21 at 32 .. 256 channels, 0.27 at 16x16x32 stride 2, 0.30 at 9x9x33 stride 2; 16
 * channels 0.37 (stride 1) / 0.65 (stride 2: the input's lists cost ~6 instructions per bit and
 * each bit meets only 9 x 16 / 4 MACs), where the row kernels are faster.
 * Preconditions (bnn_conv_vc_ok): P >= 1, ct P <= 32 (P = 1 when ct = 0), KWe <= 16, kh <= 16, kh kw <= 32, kh KWe <=
 * BNN_CONV_VC_TAPS, and the counts within BNN_VC_MAX_PLANES planes.
 */
#ifndef BNN_CONV_VC_H
#define BNN_CONV_VC_H

#include "bnn_conv.h"
#include "bnn_vcols.h"

/* The column-sliced conv is compiled in on the cores where the code generator's count model
 * (bnn2hw/mcu/conv_vcols.py) was made for it: as BNN_DENSE_VCOLS (bnn_dense.h), ARMv7-M /
 * ARMv8-M mainline without Helium (M3, M4, M7, M33) and the host with the multi popcount.
 * -DBNN_CONV_VCOLS=0 keeps the row kernels (generated code carries both formats). */
#ifndef BNN_CONV_VCOLS
#if BNN_POPCOUNT == BNN_POPCOUNT_MULTI && ((BNN_THUMB2_ASM && !BNN_MVE) || !defined(__arm__))
#define BNN_CONV_VCOLS 1
#else
#define BNN_CONV_VCOLS 0
#endif
#endif

/* Border classes cached per call (3x3 pad 1: 9 at P = 1; more are recomputed on the fly). */
#define BNN_CONV_VC_CLASSES 16u
/* Most extended taps kh KWe of a step (stack: 16 bytes a tap, 1 KB). */
#define BNN_CONV_VC_TAPS 64u

typedef struct {
    bnn_conv_params_t p;
    uint32_t pad_minus1; /* 1: a padded tap is the activation -1 (bnn_conv_bits_m1's contract) */
    uint32_t npos;       /* P: output positions of the tail group (1 when cout % 32 == 0) */
    const bnn_word_t *cols;
    const int32_t *thr;    /* cout */
    const int16_t *ctap;   /* cout x kh kw */
    /* Optional (0 / NULL: built per call): the class entries precomputed at generation time
     * (bnn2hw/mcu/conv_vcols.py class_table), nclass x (1 + BNN_CONV_VC_GROUPS 4 nt) words, each
     * exactly what class_planes (bnn_conv_vc.c) would build for its key: the key, then per group
     * the planes S1 even, S1 odd, S0 even, S0 odd.  A key missing from it is built in the work
     * memory as without a table. */
    uint32_t nclass;
    const uint32_t *classes;
    /* Optional (NULL: the tail group runs column-sliced): the ct = cout % 32 tail channels' weights
     * in bnn_conv_bits' row format (channels 32 Gf .. cout - 1 of the layer's rows): the tail
     * then runs on the row kernel (bnn_conv_bits / bnn_conv_bits_m1, thresholds thr + 32 Gf).  A
     * few tail channels (cout 33: one) fill few lanes of a column-sliced word, so there the row
     * kernel is cheaper (the generator's choice: conv_vcols.tail_on_rows). */
    const bnn_word_t *tail_rows;
    /* 1: classes holds every class key a call meets (checked per call, see Work memory above):
     * the work memory has no class cache and the class builder is not linked from a call with
     * constant L (generated code); 0 (default, also when the member is left out): a key missing
     * from the table is built in the work memory's cache. */
    uint32_t table_complete;
} bnn_conv_vc_t;

/* KWe of the tail group (>= kw, the full groups' window width) */
#define BNN_CONV_VC_KWE(L) ((L)->p.kw + ((L)->npos - 1u) * (L)->p.stride_w)
/* Gf, and the plane groups a class entry holds (Gf full groups, or the tail's one) */
#define BNN_CONV_VC_FULL(L) ((L)->p.cout / 32u)
#define BNN_CONV_VC_GROUPS(L) (BNN_CONV_VC_FULL(L) > 1u ? BNN_CONV_VC_FULL(L) : 1u)
BNN_INLINE uint32_t bnn__conv_vc_bitlen(uint32_t v)
{
    uint32_t n = 0;
    while (v) {
        ++n;
        v >>= 1;
    }
    return n;
}
/* K = kh kw cin and W = floor(K / 2) + 1, the count's start offset (method above). */
BNN_INLINE uint32_t bnn__conv_vc_w(const bnn_conv_vc_t *L)
{
    return L->p.kh * L->p.kw * L->p.cin / 2u + 1u;
}
/* nq: planes of a step's count Q' = Q + W - h <= Qmax + K + 2 (Qmax = kh KWe cin / 2: the smaller
 * set of the window); nt = nq + 1: planes of a compare threshold (values 0 .. 2^nq). */
BNN_INLINE uint32_t bnn_conv_vc_nq(const bnn_conv_vc_t *L)
{
    return bnn__conv_vc_bitlen(L->p.kh * BNN_CONV_VC_KWE(L) * L->p.cin / 2u + L->p.kh * L->p.kw * L->p.cin + 2u);
}
BNN_INLINE uint32_t bnn_conv_vc_nt(const bnn_conv_vc_t *L)
{
    return bnn_conv_vc_nq(L) + 1u;
}
/* Words of work memory for layer L: the ring of kh rows of pixel lists, the padding pixel, the
 * ring's row tags, a step's list tails (the < 16 last indices of every window row, copied 4 at
 * a time: + 4); without a complete table also BNN_CONV_VC_CLASSES + 1 class entries (key, then
 * per group the four threshold plane sets: S1 / S0 x N1 even / odd) and two int32 per output
 * channel.  bnn2hw/mcu/conv_vcols.py work_words is the same sum. */
BNN_INLINE uint32_t bnn_conv_vc_work_words(const bnn_conv_vc_t *L)
{
    const uint32_t rows = L->p.kh * (L->p.in_w * L->p.cin + 2u * (L->p.in_w + 1u)) + L->p.kh + 16u * L->p.kh + 4u;
    if (L->table_complete) {
        return rows;
    }
    return rows + (BNN_CONV_VC_CLASSES + 1u) * (1u + BNN_CONV_VC_GROUPS(L) * 4u * bnn_conv_vc_nt(L)) + 2u * L->p.cout;
}

/* 1 when layer L meets the preconditions above, else 0 (the caller then runs bnn_conv_bits);
 * without a complete table ctap must not be NULL. */
int bnn_conv_vc_ok(const bnn_conv_vc_t *L);

/* The distinct class keys a bnn_conv_vc_bits call on L meets (bits 0..15: padded extended
 * columns, 16..30: padded kernel rows, 31: the tail group; per group run, padded-row patterns x
 * padded-column patterns), the first `cap` of them in keys (NULL: none); returns how many. */
uint32_t bnn_conv_vc_class_keys(const bnn_conv_vc_t *L, uint32_t *keys, uint32_t cap);
/* 1 when every key bnn_conv_vc_class_keys lists is in L->classes. */
int bnn_conv_vc_table_covers(const bnn_conv_vc_t *L);

/* The kernel's parts that a layer may not need, passed by the inline bnn_conv_vc_bits below as
 * constants when L is (generated code), so --gc-sections drops what no layer uses: the tail
 * group's column-sliced rows (cout % 32 != 0, tail not on rows) and the class builder (no
 * complete table).  Internal: call bnn_conv_vc_bits. */
struct bnn__conv_vc_state;
typedef void (*bnn__conv_vc_tail_fn)(struct bnn__conv_vc_state *s, uint32_t oy, const bnn_word_t *cols,
                                     uint32_t zrel, uint32_t np, uint32_t cpl, uint32_t k0, bnn_word_t *out);
typedef void (*bnn__conv_vc_build_fn)(const bnn_conv_vc_t *L, const int32_t *chan, uint32_t key, uint32_t nt,
                                      bnn_word_t *planes);
void bnn__conv_vc_row_tail(struct bnn__conv_vc_state *s, uint32_t oy, const bnn_word_t *cols, uint32_t zrel,
                           uint32_t np, uint32_t cpl, uint32_t k0, bnn_word_t *out);
void bnn__conv_vc_class_planes(const bnn_conv_vc_t *L, const int32_t *chan, uint32_t key, uint32_t nt,
                               bnn_word_t *planes);
void bnn__conv_vc_bits(const bnn_conv_vc_t *L, const bnn_word_t *in, uint32_t *work, bnn_word_t *out,
                       bnn__conv_vc_tail_fn tail, bnn__conv_vc_build_fn build);

/* The conv, packed bits out (out[(oy out_w + ox) ow + k]); work: bnn_conv_vc_work_words(L) words.
 * Inline so that the caller's constant L picks the parts linked: a tail on the row kernel
 * (tail_rows, ct cw > 2) runs bnn_conv_bits / _m1 here, where its row-kernel variant is a
 * constant too (bnn_conv.h), one word per position at the front of out, then spread to word Gf
 * of each position, last position first (position n's word lands at n ow + Gf >= n: no word is
 * overwritten before it is read); bnn__conv_vc_bits writes the other words. */
BNN_INLINE void bnn_conv_vc_bits(const bnn_conv_vc_t *L, const bnn_word_t *in, uint32_t *work, bnn_word_t *out)
{
    const uint32_t ct = L->p.cout % 32u, gf = BNN_CONV_VC_FULL(L);
    if (ct != 0u && L->tail_rows != NULL && ct * BNN_WORDS(L->p.cin) > 2u) {
        const uint32_t npx = L->p.out_h * L->p.out_w, ow = BNN_WORDS(L->p.cout);
        bnn_conv_params_t tp = L->p;
        tp.cout = ct;
        if (L->pad_minus1) {
            bnn_conv_bits_m1(&tp, in, L->tail_rows, L->thr + 32u * gf, out);
        } else {
            bnn_conv_bits(&tp, in, L->tail_rows, L->thr + 32u * gf, out);
        }
        if (gf != 0u) {
            for (uint32_t n = npx; n-- > 0u;) {
                out[n * ow + gf] = out[n];
            }
        }
    }
    bnn__conv_vc_bits(L, in, work, out, ct != 0u && L->tail_rows == NULL ? bnn__conv_vc_row_tail : 0,
                      L->table_complete ? 0 : bnn__conv_vc_class_planes);
}
/* Reference: the accumulator of every lane from the columns bit by bit, no lists, no planes. */
void bnn_conv_vc_bits_ref(const bnn_conv_vc_t *L, const bnn_word_t *in, bnn_word_t *out);

#endif /* BNN_CONV_VC_H */
