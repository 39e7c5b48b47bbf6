/* SPDX-License-Identifier: MIT */
/* bnn_stream.c -- fixed-point residual stream kernels (conventions: bnn_stream.h). Portable C. */
#include "bnn_stream.h"

#include <string.h>

/* Unrolling hint for the per-channel loops (GCC 8+; a no-op elsewhere). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define BNN__PRAGMA(x) _Pragma(#x)
#define BNN__UNROLL(n) BNN__PRAGMA(GCC unroll n)
#else
#define BNN__UNROLL(n)
#endif

#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h>
#define BNN__SAT(v, BITS, LO, HI) __ssat((v), (BITS)) /* SSAT: one instruction */
#else
#define BNN__SAT(v, BITS, LO, HI) ((v) < (LO) ? (LO) : ((v) > (HI) ? (HI) : (v)))
#endif

/* The fast paths rely on >> of a negative int32 being an arithmetic shift (floor): true of
 * GCC, Clang and Arm Compiler (implementation-defined in C99); checked at compile time. */
typedef char bnn__arithmetic_shift_check[((-1) >> 1) == -1 ? 1 : -1];
typedef char bnn__arithmetic_shift_check64[((INT64_C(-1)) >> 1) == -1 ? 1 : -1];

/* floor(v / 2^shift) for any sign (an arithmetic shift, without relying on the
 * implementation-defined >> of negative values); |v| < 2^63 so -v cannot overflow. */
BNN_INLINE int64_t floor_shift(int64_t v, uint32_t shift)
{
    return v >= 0 ? (v >> shift) : -((-v + ((INT64_C(1) << shift) - 1)) >> shift);
}

BNN_INLINE int32_t clamp64(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : (int32_t)v);
}

/* The parameters read once into locals: stores through int8_t * may alias *p, so without
 * this the compiler reloads every field per element. */
#define REQUANT_LOOP(TI, TO)                                                          \
    do {                                                                              \
        const TI *src = (const TI *)in;                                               \
        TO *dst = (TO *)out;                                                          \
        const uint32_t nch = p->channels;                                             \
        const int32_t *mult = p->mult, lo = p->lo, hi = p->hi;                        \
        const int64_t *bias = p->bias;                                                \
        const uint8_t *shift = p->shift;                                              \
        for (uint32_t pos = 0; pos < positions; ++pos) {                              \
            for (uint32_t c = 0; c < nch; ++c) {                                      \
                const int64_t v = (int64_t)*src++ * mult[c] + bias[c];                \
                *dst++ = (TO)clamp64(floor_shift(v, shift[c]), lo, hi);               \
            }                                                                         \
        }                                                                             \
    } while (0)

#define REQUANT_OUT(TI)                                                               \
    do {                                                                              \
        if (p->out_bytes == 1u) {                                                     \
            REQUANT_LOOP(TI, int8_t);                                                 \
        } else if (p->out_bytes == 2u) {                                              \
            REQUANT_LOOP(TI, int16_t);                                                \
        } else {                                                                      \
            REQUANT_LOOP(TI, int32_t);                                                \
        }                                                                             \
    } while (0)

void bnn_requant(const bnn_requant_params_t *p, uint32_t positions, const void *in, uint32_t in_bytes,
                 void *out)
{
    /* Elementwise in index order: out may alias in when out_bytes <= in_bytes. */
    if (in_bytes == 1u) {
        REQUANT_OUT(int8_t);
    } else if (in_bytes == 2u) {
        REQUANT_OUT(int16_t);
    } else {
        REQUANT_OUT(int32_t);
    }
}

/* ---- the fused epilogue: requant -> [+ skip, saturate] -> [store] -> [threshold -> bits] ----
 *
 * Plan (once per call, epi_plan): the int32 form of the requant and the thresholds, per channel
 * in one table walked with one pointer (bnn__chan_t: m, b, d, c):
 *   shift   S = max shift[c]; m = mult[c] 2^(S - shift[c]), b = bias[c] 2^(S - shift[c]), so
 *           floor((x mult[c] + bias[c]) / 2^shift[c]) = floor((x m + b) / 2^S) = (x m + b) >> S.
 *           Exact in int32 when |x| <= bound (the caller's accumulator bound) and
 *           bound |m| + |b| < 2^31 for every channel, S <= 30 (checked).
 *   wide    else (a large accumulator range against a fine multiplier, e.g. a uint8 first layer:
 *           bound 255 K) the shift is 32: m = mult[c] 2^(32 - shift[c]), b = bias[c]
 *           2^(32 - shift[c]) (int64), r = (x m + b) >> 32, one SMLAL and the high word, exact
 *           when every shift[c] <= 32, |m| < 2^31, |b| < 2^62 and bound < 2^30 (so
 *           |x m + b| < 2^63); int8_t streams with the full -128..127 ranges only (a hardtanh
 *           range takes the int64 reference loop, like everything that fits neither form).
 *   threshold on the compared value v (the sum when there is an add, else r) whose saturated
 *           value lies in [L, H]:  dir +1: bit = sat(v) >= T;  dir -1: bit = sat(v) <= T.
 *           T <= L (dir +1) or T >= H (dir -1): always 1 -> d = 0, c = 0;
 *           T > H (dir +1) or T < L (dir -1): never -> d = 0, c = -1;
 *           else dir +1: d = 1, c = -T; dir -1: d = -1, c = T; and bit = (v d + c >= 0), i.e. the
 *           sign bit of ~(v d + c) = v (-d) + (-c - 1), the form the table keeps.
 *           For T strictly inside the range, sat(v) >= T <=> v >= T (and the same for <=), so an
 *           unstored sum is compared without saturating it.  The bit is shifted in from the top
 *           (word >> 1 | bit << 31), 32 channels per word.
 *   storage the fast path takes int8_t or int16_t streams (every operand the same storage,
 *           every range inside it; then |v d + c| < 2^17); "full" when the ranges are the
 *           storage's own (-128..127, -32768..32767): saturation is a compare with constants
 *           (SSAT on cores with the DSP extension).
 */
#ifndef BNN_STREAM_FAST_CH
#define BNN_STREAM_FAST_CH 64u
#endif

typedef struct {
    int32_t m, b, d, c;
} bnn__chan_t;

typedef struct { /* the wide form: r = (x m + b) >> 32 */
    int64_t b;
    int32_t m, d, c, pad;
} bnn__wchan_t;

typedef struct {
    uint32_t sh, bytes;
    int full, wide;
    int32_t rlo, rhi, alo, ahi;
    union {
        bnn__chan_t n[BNN_STREAM_FAST_CH];
        bnn__wchan_t w[BNN_STREAM_FAST_CH];
    } tab;
} epi_plan_t;

/* The int32 table (m, b) at shift s (see above); 0 if some channel does not fit. */
static int plan_narrow(const bnn_requant_params_t *rq, uint32_t s, int64_t bound, int64_t pop_k, epi_plan_t *pl)
{
    if (s > 30u) {
        return 0;
    }
    for (uint32_t c = 0; c < rq->channels; ++c) {
        const int64_t scale = INT64_C(1) << (s - rq->shift[c]);
        if (rq->bias[c] >= (INT64_C(1) << 31) || rq->bias[c] <= -(INT64_C(1) << 31)) {
            return 0;
        }
        int64_t m = (int64_t)rq->mult[c] * scale, b = rq->bias[c] * scale; /* < 2^61 */
        if (pop_k > 0) { /* the input is x = (K - acc) / 2 in [0, K]: acc m + b = x (-2 m) + (b + K m) */
            if (m >= (INT64_C(1) << 31) || m <= -(INT64_C(1) << 31) || b >= (INT64_C(1) << 31) ||
                b <= -(INT64_C(1) << 31)) {
                return 0;
            }
            b += pop_k * m;
            m *= -2;
        }
        const int64_t am = m < 0 ? -m : m, ab = b < 0 ? -b : b;
        if (am >= (INT64_C(1) << 31) || ab >= (INT64_C(1) << 31) || bound * am + ab >= (INT64_C(1) << 31)) {
            return 0;
        }
        pl->tab.n[c].m = (int32_t)m;
        pl->tab.n[c].b = (int32_t)b;
    }
    pl->sh = s;
    pl->wide = 0;
    return 1;
}

/* The wide table (shift 32, int64 bias, accumulators only); 0 if some channel does not fit. */
static int plan_wide(const bnn_requant_params_t *rq, int64_t bound, epi_plan_t *pl)
{
    if (bound >= (INT64_C(1) << 30)) {
        return 0;
    }
    for (uint32_t c = 0; c < rq->channels; ++c) {
        const uint32_t sh = rq->shift[c];
        const int64_t bias = rq->bias[c], ab = bias < 0 ? -bias : bias;
        if (sh > 32u || ab >= (INT64_C(1) << (30u + sh < 62u ? 30u + sh : 62u))) {
            return 0; /* |bias| 2^(32 - sh) < 2^62 */
        }
        const int64_t m = (int64_t)rq->mult[c] * (INT64_C(1) << (32u - sh));
        if (m >= (INT64_C(1) << 31) || m <= -(INT64_C(1) << 31)) {
            return 0;
        }
        pl->tab.w[c].m = (int32_t)m;
        pl->tab.w[c].b = bias * (INT64_C(1) << (32u - sh));
        pl->tab.w[c].pad = 0;
    }
    pl->sh = 32u;
    pl->wide = 1;
    return 1;
}

static int epi_plan(const bnn_stream_epilogue_t *e, int64_t bound, int64_t pop_k, epi_plan_t *pl)
{
    const bnn_requant_params_t *rq = e->rq;
    const uint32_t n = rq->channels;
    uint32_t bytes = e->out_bytes ? e->out_bytes : e->skip_bytes;
    if (n == 0u || n > BNN_STREAM_FAST_CH || (e->out_bytes && e->skip_bytes && e->out_bytes != e->skip_bytes)) {
        return 0;
    }
    if (bytes == 0u) { /* threshold only: the narrowest storage holding r */
        bytes = rq->lo >= -128 && rq->hi <= 127 ? 1u : 2u;
    }
    if (bytes > 2u) {
        return 0;
    }
    const int32_t tlo = bytes == 1u ? -128 : -32768, thi = bytes == 1u ? 127 : 32767;
    const int add = e->skip_bytes != 0u;
    if (rq->lo < tlo || rq->hi > thi || rq->lo > rq->hi ||
        (add && (e->add_lo < tlo || e->add_hi > thi || e->add_lo > e->add_hi))) {
        return 0;
    }
    uint32_t s = 0;
    for (uint32_t c = 0; c < n; ++c) {
        s = rq->shift[c] > s ? rq->shift[c] : s;
    }
    if (!plan_narrow(rq, s, bound, pop_k, pl) && (pop_k > 0 || bytes != 1u || !plan_wide(rq, bound, pl))) {
        return 0;
    }
    const int32_t vlo = add ? e->add_lo : rq->lo, vhi = add ? e->add_hi : rq->hi;
    for (uint32_t c = 0; c < n; ++c) {
        int32_t d = 0, cc = 0; /* bit = (v d + cc >= 0); the table keeps -d, -cc - 1: */
        if (e->thr) {
            const int32_t thr = e->thr[c];
            if (e->dir[c] > 0) {
                if (thr > vhi) {
                    cc = -1;
                } else if (thr > vlo) {
                    d = 1;
                    cc = -thr;
                }
            } else {
                if (thr < vlo) {
                    cc = -1;
                } else if (thr < vhi) {
                    d = -1;
                    cc = thr;
                }
            }
        }
        /* v (-d) + (-cc - 1) = ~(v d + cc): its sign bit is the output bit */
        if (pl->wide) {
            pl->tab.w[c].d = -d;
            pl->tab.w[c].c = -cc - 1;
        } else {
            pl->tab.n[c].d = -d;
            pl->tab.n[c].c = -cc - 1;
        }
    }
    pl->bytes = bytes;
    pl->rlo = rq->lo;
    pl->rhi = rq->hi;
    pl->alo = e->add_lo;
    pl->ahi = e->add_hi;
    pl->full = rq->lo == tlo && rq->hi == thi && (!add || (e->add_lo == tlo && e->add_hi == thi));
    return 1;
}

/* One row (npos positions x nch channels) of the fast path for storage T.  full, add, store,
 * thr are compile-time constants at every call (the specializations below), so each
 * combination compiles to its own straight loop. */
#define BNN__EPI_ROWS(NAME, T, TBITS, TLO, THI, CHAN, TAB, REQ)                                                    \
    BNN_INLINE void NAME(const epi_plan_t *pl, uint32_t npos, uint32_t nch, const int32_t *acc, const T *s,  \
                         T *o, bnn_word_t *bits, const int full, const int add, const int store, const int thr) \
    {                                                                                                      \
        const uint32_t sh = pl->sh;                                                                        \
        const int32_t rlo = pl->rlo, rhi = pl->rhi, alo = pl->alo, ahi = pl->ahi;                          \
        (void)sh;                                                                                          \
        for (uint32_t pos = 0; pos < npos; ++pos) {                                                        \
            const CHAN *t = pl->tab.TAB;                                                                   \
            for (uint32_t c0 = 0; c0 < nch; c0 += 32u) {                                                   \
                const uint32_t cnt = nch - c0 < 32u ? nch - c0 : 32u;                                      \
                uint32_t word = 0;                                                                         \
                BNN__UNROLL(2)                                                                             \
                for (const CHAN *end = t + cnt; t != end; ++t) {                                           \
                    int32_t v = REQ(*acc++, t);                                                            \
                    v = full ? BNN__SAT(v, TBITS, TLO, THI) : (v < rlo ? rlo : (v > rhi ? rhi : v));                \
                    if (add) {                                                                             \
                        v += *s++;                                                                         \
                        if (store) {                                                                       \
                            v = full ? BNN__SAT(v, TBITS, TLO, THI) : (v < alo ? alo : (v > ahi ? ahi : v)); \
                        }                                                                                  \
                    }                                                                                      \
                    if (store) {                                                                           \
                        *o++ = (T)v;                                                                       \
                    }                                                                                      \
                    if (thr) {                                                                             \
                        const int32_t nd = v * t->d + t->c; /* ~(the value whose sign is the bit) */       \
                        word = (word >> 1) | ((uint32_t)nd & 0x80000000u);                                 \
                    }                                                                                      \
                }                                                                                          \
                if (thr) {                                                                                 \
                    *bits++ = word >> (32u - cnt);                                                         \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }

#define BNN__REQ_N(a, t) (((a) * (t)->m + (t)->b) >> sh)                          /* MLA, ASR */
#define BNN__REQ_W(a, t) ((int32_t)(((int64_t)(a) * (t)->m + (t)->b) >> 32)) /* SMLAL, high word */
BNN__EPI_ROWS(epi_rows_s8, int8_t, 8, -128, 127, bnn__chan_t, n, BNN__REQ_N)
BNN__EPI_ROWS(epi_rows_s16, int16_t, 16, -32768, 32767, bnn__chan_t, n, BNN__REQ_N)
BNN__EPI_ROWS(epi_rows_w8, int8_t, 8, -128, 127, bnn__wchan_t, w, BNN__REQ_W)

/* The specializations: storage x full x (add, store, thr). */
#define BNN__EPI_SPEC(T, SUF, ROWS, FULL, ADD, STORE, THR)                                                 \
    static void epi_##SUF##_##FULL##ADD##STORE##THR(const epi_plan_t *pl, uint32_t npos, uint32_t nch,       \
                                                     const int32_t *acc, const void *s, void *o, bnn_word_t *bits) \
    {                                                                                                      \
        ROWS(pl, npos, nch, acc, (const T *)s, (T *)o, bits, FULL, ADD, STORE, THR);                       \
    }
#define BNN__EPI_COMBOS(T, SUF, ROWS, FULL)                                                                \
    BNN__EPI_SPEC(T, SUF, ROWS, FULL, 0, 1, 0)                                                             \
    BNN__EPI_SPEC(T, SUF, ROWS, FULL, 0, 1, 1)                                                             \
    BNN__EPI_SPEC(T, SUF, ROWS, FULL, 0, 0, 1)                                                             \
    BNN__EPI_SPEC(T, SUF, ROWS, FULL, 1, 1, 0)                                                             \
    BNN__EPI_SPEC(T, SUF, ROWS, FULL, 1, 1, 1)                                                             \
    BNN__EPI_SPEC(T, SUF, ROWS, FULL, 1, 0, 1)
BNN__EPI_COMBOS(int8_t, s8, epi_rows_s8, 1)
BNN__EPI_COMBOS(int8_t, s8, epi_rows_s8, 0)
BNN__EPI_COMBOS(int16_t, s16, epi_rows_s16, 1)
BNN__EPI_COMBOS(int16_t, s16, epi_rows_s16, 0)
BNN__EPI_COMBOS(int8_t, w8, epi_rows_w8, 1) /* the wide form: full int8 ranges only (flash) */

typedef void (*epi_fn)(const epi_plan_t *, uint32_t, uint32_t, const int32_t *, const void *, void *, bnn_word_t *);

#define BNN__EPI_TABLE(SUF, FULL)                                                                          \
    {NULL, epi_##SUF##_##FULL##001, epi_##SUF##_##FULL##010, epi_##SUF##_##FULL##011, NULL,               \
     epi_##SUF##_##FULL##101, epi_##SUF##_##FULL##110, epi_##SUF##_##FULL##111}


/*
 * Thumb-2 assembly rows for the common case (int8_t streams with the full -128..127 ranges, an
 * even channel count, up to 32 with a threshold: one output word per position), both table
 * forms; the C
 * specializations above for everything else.  Per channel: one LDM of the record (m, b, d, c;
 * wide: b lo, b hi, m, d, c, pad), the accumulator load, MLA + ASR (wide: SMLAL, the high word),
 * SSAT, then [LDRSB + ADD (+ SSAT when stored)], [STRB], [MLA, AND, ORR into the word]; two
 * channels per loop pass.  Registers: r0 the argument block, r1 acc, r2 skip, r3 out, r4 the
 * record pointer, r5 its end, r6 the shift (wide: b lo), r7 the word, r8-r11 record words,
 * r12 the value, lr (wide) the pad word.
 */
#if BNN_THUMB2_ASM
typedef struct {
    const void *tab;     /* [r0, #0]  */
    uint32_t tab_bytes;  /* [r0, #4]  nch records */
    uint32_t sh;         /* [r0, #8]  */
    uint32_t rsh;        /* [r0, #12] 32 - nch */
    const int32_t *acc;  /* [r0, #16] */
    const void *skip;    /* [r0, #20] */
    void *out;           /* [r0, #24] */
    bnn_word_t *bits;    /* [r0, #28] advanced per position */
    uint32_t npos;       /* [r0, #32] counted down, >= 1 */
} epi_t2_args_t;

#define BNN__EPI_T2_CH(W, ADD, STORE, THR)                                                    \
    ".if " #W "\n\t"                                                                          \
    "ldm r4!, {r6, r8, r9, r10, r11, lr}\n\t" /* b lo, b hi, m, d, c, pad */                 \
    "ldr r12, [r1], #4\n\t"                                                                   \
    "smlal r6, r8, r12, r9\n\t"                                                               \
    "ssat r12, #8, r8\n\t"                                                                    \
    ".else\n\t"                                                                               \
    "ldm r4!, {r8, r9, r10, r11}\n\t" /* m, b, d, c */                                       \
    "ldr r12, [r1], #4\n\t"                                                                   \
    "mla r12, r12, r8, r9\n\t"                                                                \
    "asr r12, r12, r6\n\t"                                                                    \
    "ssat r12, #8, r12\n\t"                                                                   \
    ".endif\n\t"                                                                              \
    ".if " #ADD "\n\t"                                                                        \
    "ldrsb r9, [r2], #1\n\t"                                                                  \
    "add r12, r12, r9\n\t"                                                                    \
    ".if " #STORE "\n\t"                                                                      \
    "ssat r12, #8, r12\n\t"                                                                   \
    ".endif\n\t"                                                                              \
    ".endif\n\t"                                                                              \
    ".if " #STORE "\n\t"                                                                      \
    "strb r12, [r3], #1\n\t"                                                                  \
    ".endif\n\t"                                                                              \
    ".if " #THR "\n\t"                                                                        \
    "mla r12, r12, r10, r11\n\t"                                                              \
    "and r12, r12, #0x80000000\n\t"                                                           \
    "orr r7, r12, r7, lsr #1\n\t"                                                             \
    ".endif\n\t"

#define BNN__EPI_T2(W, ADD, STORE, THR)                                                        \
    __attribute__((naked, noinline)) static void epi_t2_##W##ADD##STORE##THR(                 \
        epi_t2_args_t *g __attribute__((unused)))                                             \
    {                                                                                         \
        __asm__ volatile("push {r4-r11, lr}\n\t"                                              \
                         "ldrd r1, r2, [r0, #16]\n\t"                                         \
                         "ldr r3, [r0, #24]\n\t"                                              \
                         "ldr r6, [r0, #8]\n\t"                                               \
                         "1:\n\t"                                                             \
                         "ldrd r4, r5, [r0]\n\t"                                              \
                         "add r5, r5, r4\n\t"                                                 \
                         "mov r7, #0\n\t"                                                     \
                         "2:\n\t" BNN__EPI_T2_CH(W, ADD, STORE, THR)                          \
                             BNN__EPI_T2_CH(W, ADD, STORE, THR) "cmp r4, r5\n\t"              \
                         "bne 2b\n\t"                                                         \
                         ".if " #THR "\n\t"                                                   \
                         "ldr r8, [r0, #12]\n\t"                                              \
                         "lsr r7, r7, r8\n\t"                                                 \
                         "ldr r8, [r0, #28]\n\t"                                              \
                         "str r7, [r8], #4\n\t"                                               \
                         "str r8, [r0, #28]\n\t"                                              \
                         ".endif\n\t"                                                         \
                         "ldr r8, [r0, #32]\n\t"                                              \
                         "subs r8, r8, #1\n\t"                                                \
                         "str r8, [r0, #32]\n\t"                                              \
                         "bne 1b\n\t"                                                         \
                         "pop {r4-r11, pc}\n\t");                                             \
    }                                                                                         \
    static void epi_a_##W##ADD##STORE##THR(const epi_plan_t *pl, uint32_t npos, uint32_t nch,  \
                                           const int32_t *acc, const void *s, void *o,        \
                                           bnn_word_t *bits)                                  \
    {                                                                                         \
        epi_t2_args_t g = {W ? (const void *)pl->tab.w : (const void *)pl->tab.n,             \
                           nch * (W ? (uint32_t)sizeof(bnn__wchan_t) : (uint32_t)sizeof(bnn__chan_t)), \
                           pl->sh, nch <= 32u ? 32u - nch : 0u, acc, s, o, bits, npos};   \
        if (npos != 0u) {                                                                     \
            epi_t2_##W##ADD##STORE##THR(&g);                                                  \
        }                                                                                     \
    }
#define BNN__EPI_T2_COMBOS(W)                                                                  \
    BNN__EPI_T2(W, 0, 1, 0)                                                                    \
    BNN__EPI_T2(W, 0, 1, 1)                                                                    \
    BNN__EPI_T2(W, 0, 0, 1)                                                                    \
    BNN__EPI_T2(W, 1, 1, 0)                                                                    \
    BNN__EPI_T2(W, 1, 1, 1)                                                                    \
    BNN__EPI_T2(W, 1, 0, 1)
BNN__EPI_T2_COMBOS(0)
BNN__EPI_T2_COMBOS(1)
#define BNN__EPI_T2_TABLE(W)                                                                   \
    {NULL, epi_a_##W##001, epi_a_##W##010, epi_a_##W##011, NULL, epi_a_##W##101, epi_a_##W##110, epi_a_##W##111}
#endif

/* The specialization for a plan and flags (index add * 4 + store * 2 + thr), NULL if none. */
static epi_fn epi_pick(const epi_plan_t *pl, uint32_t nch, int add, int store, int thr)
{
#if BNN_THUMB2_ASM
    /* a threshold packs one word per position (nch <= 32); without one any even count fits */
    if (pl->bytes == 1u && pl->full && nch % 2u == 0u && nch != 0u && (nch <= 32u || !thr)) {
        static const epi_fn a0[] = BNN__EPI_T2_TABLE(0), a1[] = BNN__EPI_T2_TABLE(1);
        return (pl->wide ? a1 : a0)[add * 4 + store * 2 + thr];
    }
#else
    (void)nch;
#endif
    static const epi_fn s8f[] = BNN__EPI_TABLE(s8, 1), s8r[] = BNN__EPI_TABLE(s8, 0);
    static const epi_fn s16f[] = BNN__EPI_TABLE(s16, 1), s16r[] = BNN__EPI_TABLE(s16, 0);
    static const epi_fn w8f[] = BNN__EPI_TABLE(w8, 1);
    if (pl->wide && !pl->full) {
        return NULL;
    }
    const epi_fn *tab = pl->wide ? w8f
                                 : pl->bytes == 1u ? (pl->full ? s8f : s8r) : (pl->full ? s16f : s16r);
    return tab[add * 4 + store * 2 + thr];
}

/* The reference of the epilogue: int64 per element, any storage and range (also the path for
 * more than BNN_STREAM_FAST_CH channels or tables that do not fit int32). */
static void epi_generic(const bnn_stream_epilogue_t *e, uint32_t npos, const int32_t *acc, const void *skip,
                        void *out, bnn_word_t *bits)
{
    const bnn_requant_params_t *rq = e->rq;
    const uint32_t nch = rq->channels;
    uint32_t i = 0;
    for (uint32_t pos = 0; pos < npos; ++pos) {
        for (uint32_t c0 = 0; c0 < nch; c0 += 32u) {
            const uint32_t cnt = nch - c0 < 32u ? nch - c0 : 32u;
            bnn_word_t word = 0;
            for (uint32_t j = 0; j < cnt; ++j, ++i) {
                const uint32_t c = c0 + j;
                int32_t v = clamp64(floor_shift((int64_t)acc[i] * rq->mult[c] + rq->bias[c], rq->shift[c]), rq->lo,
                                    rq->hi);
                if (e->skip_bytes) {
                    v = clamp64((int64_t)v + bnn_stream_get(skip, e->skip_bytes, i), e->add_lo, e->add_hi);
                }
                if (e->out_bytes) {
                    bnn_stream_put(out, e->out_bytes, i, v);
                }
                if (e->thr) {
                    word |= (bnn_word_t)(e->dir[c] > 0 ? v >= e->thr[c] : v <= e->thr[c]) << j;
                }
            }
            if (e->thr) {
                *bits++ = word;
            }
        }
    }
}

/* positions x channels rows of one plan: the fast specialization or the reference. */
static void epi_apply(const bnn_stream_epilogue_t *e, const epi_plan_t *pl, epi_fn fn, uint32_t npos,
                      const int32_t *acc, const void *skip, void *out, bnn_word_t *bits)
{
    if (fn) {
        fn(pl, npos, e->rq->channels, acc, skip, out, bits);
    } else {
        epi_generic(e, npos, acc, skip, out, bits);
    }
}

/* pop_k > 0: the rows hold popcounts x with acc = pop_k - 2 x (folded into the table; the
 * specialization reads x); 0: accumulators.  NULL: the int64 reference on accumulators. */
static epi_fn epi_prepare(const bnn_stream_epilogue_t *e, int64_t bound, int64_t pop_k, epi_plan_t *pl)
{
    if (!epi_plan(e, bound, pop_k, pl)) {
        return NULL;
    }
    return epi_pick(pl, e->rq->channels, e->skip_bytes != 0u, e->out_bytes != 0u, e->thr != NULL);
}

void bnn_stream_epilogue(const bnn_stream_epilogue_t *e, uint32_t positions, const int32_t *acc, uint32_t bound,
                         const void *skip, void *out, bnn_word_t *bits)
{
    epi_plan_t pl;
    const epi_fn fn = epi_prepare(e, bound, 0, &pl);
    epi_apply(e, &pl, fn, positions, acc, skip, out, bits);
}

void bnn_stream_add(const bnn_add_params_t *p, const void *a, const void *b, void *out)
{
    /* Elementwise and in index order: out may alias a or b when out_bytes <= their bytes
     * (element i is written after elements 0..i of the inputs were read). */
    if (p->a_bytes == 1u && p->b_bytes == 1u && p->out_bytes == 1u) { /* the 8-bit stream */
        const int8_t *x = (const int8_t *)a, *y = (const int8_t *)b;
        int8_t *z = (int8_t *)out;
        const uint32_t n = p->n;
        const int32_t lo = p->lo, hi = p->hi; /* locals: stores through int8_t * alias *p */
        uint32_t i = 0;
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
        if (lo == -128 && hi == 127) { /* full int8 range: QADD8, four saturating adds at once;
                                        * 4 bytes read before 4 are written, so aliasing holds */
            for (; i + 4u <= n; i += 4u) {
                uint32_t u, v, r;
                memcpy(&u, x + i, 4u);
                memcpy(&v, y + i, 4u);
                __asm__("qadd8 %0, %1, %2" : "=r"(r) : "r"(u), "r"(v));
                memcpy(z + i, &r, 4u);
            }
        }
#endif
        for (; i < n; ++i) {
            const int32_t v = (int32_t)x[i] + y[i];
            z[i] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
        }
        return;
    }
    for (uint32_t i = 0; i < p->n; ++i) {
        const int64_t v = (int64_t)bnn_stream_get(a, p->a_bytes, i) + bnn_stream_get(b, p->b_bytes, i);
        bnn_stream_put(out, p->out_bytes, i, clamp64(v, p->lo, p->hi));
    }
}

/* The window sum of an int8_t stream, channels c0 .. c0 + 3 of output (oy, ox): four sums.
 * With the DSP extension, SXTAB16 adds bytes 0/2 and (rotated) 1/3 of a word to two
 * halfword lanes each: exact while k^2 * 128 <= 32768 (the caller checks k <= 16). */
static void window4_s8(const int8_t *in, uint32_t row_stride, uint32_t c, uint32_t k, int32_t *s4)
{
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
    uint32_t even = 0, odd = 0;
    for (uint32_t ky = 0; ky < k; ++ky, in += row_stride) {
        const int8_t *q = in;
        for (uint32_t kx = 0; kx < k; ++kx, q += c) {
            uint32_t w4;
            memcpy(&w4, q, 4u);
            __asm__("sxtab16 %0, %0, %1" : "+r"(even) : "r"(w4));
            __asm__("sxtab16 %0, %0, %1, ror #8" : "+r"(odd) : "r"(w4));
        }
    }
    s4[0] = (int16_t)(even & 0xffffu);
    s4[1] = (int16_t)(odd & 0xffffu);
    s4[2] = (int16_t)(even >> 16);
    s4[3] = (int16_t)(odd >> 16);
#else
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (uint32_t ky = 0; ky < k; ++ky, in += row_stride) {
        const int8_t *q = in;
        for (uint32_t kx = 0; kx < k; ++kx, q += c) {
            a0 += q[0];
            a1 += q[1];
            a2 += q[2];
            a3 += q[3];
        }
    }
    s4[0] = a0;
    s4[1] = a1;
    s4[2] = a2;
    s4[3] = a3;
#endif
}

void bnn_avgpool_sum(const bnn_avgpool_params_t *p, const void *in, void *out)
{
    uint32_t o = 0;
    if (p->in_bytes == 1u && p->c % 4u == 0u && p->k <= 16u) { /* the 8-bit stream: 4 channels at once */
        const int8_t *src = (const int8_t *)in;
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            for (uint32_t ox = 0; ox < p->out_w; ++ox) {
                const int8_t *win = src + ((oy * p->stride) * p->in_w + ox * p->stride) * p->c;
                for (uint32_t c = 0; c < p->c; c += 4u, o += 4u) {
                    int32_t s4[4];
                    window4_s8(win + c, p->in_w * p->c, p->c, p->k, s4);
                    for (uint32_t j = 0; j < 4u; ++j) {
                        bnn_stream_put(out, p->out_bytes, o + j, s4[j]);
                    }
                }
            }
        }
        return;
    }
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            for (uint32_t c = 0; c < p->c; ++c, ++o) {
                int32_t s = 0; /* validate() proves the window sum fits 32 bits */
                for (uint32_t ky = 0; ky < p->k; ++ky) {
                    const uint32_t row = (oy * p->stride + ky) * p->in_w + ox * p->stride;
                    for (uint32_t kx = 0; kx < p->k; ++kx) {
                        s += bnn_stream_get(in, p->in_bytes, (row + kx) * p->c + c);
                    }
                }
                bnn_stream_put(out, p->out_bytes, o, s);
            }
        }
    }
}

/*
 * The 8-bit stream (v in [-128, 127]) with at most BNN_THRESHOLD_FAST_CH channels: per channel
 * a mask m (0 for dir +1, -1 for dir -1) and a threshold t' clamped to [-128, 128] such that
 *   bit = (v ^ m) >= t'   (dir +1: v >= t; dir -1: v <= t <=> -v - 1 >= -t - 1, and v ^ -1 = -v - 1),
 * so the bit is the inverted sign of (v ^ m) - t' (no overflow: both are small), shifted in
 * from the top (bits >> 1 | bit << 31; the final >> (32 - cnt) leaves 0 padding bits).
 * Clamping keeps every comparison: v >= t is always true for t <= -128 and never for t >= 128.
 */
#ifndef BNN_THRESHOLD_FAST_CH
#define BNN_THRESHOLD_FAST_CH 64u
#endif

static void threshold_s8(uint32_t positions, uint32_t nch, const int8_t *in, const int32_t *thr, const int8_t *dir,
                         bnn_word_t *out)
{
    int32_t mask[BNN_THRESHOLD_FAST_CH], tt[BNN_THRESHOLD_FAST_CH];
    for (uint32_t c = 0; c < nch; ++c) {
        int32_t t = thr[c] < -129 ? -129 : (thr[c] > 128 ? 128 : thr[c]);
        if (dir[c] > 0) {
            mask[c] = 0;
            tt[c] = t < -128 ? -128 : t;
        } else {
            mask[c] = -1;
            tt[c] = t > 127 ? -128 : -t - 1; /* t >= 127: always 1 */
        }
    }
    for (uint32_t pos = 0; pos < positions; ++pos) {
        for (uint32_t c0 = 0; c0 < nch; c0 += 32u) {
            const uint32_t cnt = nch - c0 < 32u ? nch - c0 : 32u;
            uint32_t bits = 0;
            for (uint32_t j = c0; j < c0 + cnt; ++j) {
                const int32_t d = ((int32_t)*in++ ^ mask[j]) - tt[j];
                bits = (bits >> 1) | (~(uint32_t)d & 0x80000000u);
            }
            *out++ = bits >> (32u - cnt);
        }
    }
}

void bnn_stream_threshold(const bnn_stream_threshold_params_t *p, const void *in, const int32_t *thr,
                          const int8_t *dir, bnn_word_t *out)
{
    const uint32_t positions = p->positions, nch = p->channels, in_bytes = p->in_bytes;
    if (in_bytes == 1u && nch <= BNN_THRESHOLD_FAST_CH) {
        threshold_s8(positions, nch, (const int8_t *)in, thr, dir, out);
        return;
    }
    uint32_t i = 0;
    for (uint32_t pos = 0; pos < positions; ++pos) {
        for (uint32_t c0 = 0; c0 < nch; c0 += 32u) { /* one output word per 32 channels */
            const uint32_t cnt = nch - c0 < 32u ? nch - c0 : 32u;
            bnn_word_t bits = 0;
            for (uint32_t j = 0; j < cnt; ++j) {
                const int32_t v = bnn_stream_get(in, in_bytes, i + j), t = thr[c0 + j];
                bits |= (bnn_word_t)(dir[c0 + j] > 0 ? v >= t : v <= t) << j;
            }
            i += cnt;
            *out++ = bits;
        }
    }
}

void bnn_dense_stream_s8(const bnn_stream_dense_params_t *p, const void *in, const int8_t *w, int32_t *acc)
{
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s = 0; /* codegen.check_accumulators proves |acc| < 2^31 */
        for (uint32_t i = 0; i < p->n_in; ++i) {
            s += bnn_stream_get(in, p->in_bytes, i) * (int32_t)*w++;
        }
        acc[o] = s;
    }
}

void bnn_dense_stream_bin(const bnn_stream_dense_params_t *p, const void *in, const bnn_word_t *w,
                          int32_t *acc)
{
    const uint32_t nw = BNN_WORDS(p->n_in);
    for (uint32_t o = 0; o < p->n_out; ++o) {
        int32_t s = 0;
        for (uint32_t i = 0; i < p->n_in; ++i) {
            const int32_t q = bnn_stream_get(in, p->in_bytes, i);
            s += ((w[i / 32u] >> (i % 32u)) & 1u) ? q : -q;
        }
        acc[o] = s;
        w += nw;
    }
}

/* ---- binary conv, one output row at a time ---------------------------------------------- */

/* The int32 accumulators of output row oy (out_w * cout).  Packed bits input: the patch +
 * popcount-mode row kernel of bnn_conv.c (bnn_conv_acc_rows), which takes -1 padding
 * directly (a padded tap is a zero bit, acc = K - 2 popcount).  uint8 input: the zero-padding
 * kernel on the input rows the row's windows touch (the sub-problem has out_h = 1, in_h = the
 * rows inside the image and pad_h = the rows above it). */
static void conv_row(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w, uint32_t oy,
                     const bnn_conv_u8_rows_t *u8r, int32_t *row)
{
    const bnn_conv_params_t *c = &p->conv;
    if (!p->in_u8) {
        bnn_conv_acc_rows(c, (const bnn_word_t *)in, w, oy, oy + 1u, (int)p->pad_minus1, row);
        return;
    }
    if (u8r != NULL) { /* the masks expanded once per call (bnn__conv_u8_rows_prepare) */
        bnn__conv_u8_row(c, (const uint8_t *)in, u8r, oy, row);
        return;
    }
    const int32_t y0 = (int32_t)(oy * c->stride_h) - (int32_t)c->pad_h;
    const int32_t top = y0 < 0 ? 0 : y0;
    const int32_t bottom = y0 + (int32_t)c->kh < (int32_t)c->in_h ? y0 + (int32_t)c->kh : (int32_t)c->in_h;
    bnn_conv_params_t r = *c;
    r.in_h = (uint32_t)(bottom - top);
    r.pad_h = (uint32_t)(top - y0);
    r.out_h = 1u;
    bnn_conv_u8_acc(&r, (const uint8_t *)in + (uint32_t)top * c->in_w * c->cin, w, row);
}

/* The accumulator bound of a conv: |acc| <= K = kh kw cin (bits input), 255 K (uint8). */
static int64_t conv_bound(const bnn_conv_rows_params_t *p)
{
    const int64_t k = (int64_t)p->conv.kh * p->conv.kw * p->conv.cin;
    return p->in_u8 ? 255 * k : k;
}

void bnn_conv_stream(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                     const bnn_stream_epilogue_t *e, const void *skip, int32_t *row, void *out, bnn_word_t *bits)
{
    const bnn_conv_params_t *c = &p->conv;
    const uint32_t n = c->out_w * c->cout, nw = c->out_w * BNN_WORDS(c->cout);
    epi_plan_t pl;
    /* Packed bits input at -1 padding or without padding: acc = K - 2 popcount everywhere, so the
     * rows stay popcounts and the table takes the K - 2 x (no pass over the row); else accumulators */
    const int64_t k = (int64_t)c->kh * c->kw * c->cin;
    const int pop = !p->in_u8 && (p->pad_minus1 || (c->pad_h == 0u && c->pad_w == 0u));
    epi_fn fn = pop ? epi_prepare(e, k, k, &pl) : NULL;
    const int use_pop = fn != NULL;
    if (!use_pop) {
        fn = epi_prepare(e, conv_bound(p), 0, &pl);
    }
    bnn_conv_u8_rows_t u8r;
    const int u8 = p->in_u8 && bnn__conv_u8_rows_prepare(c, w, &u8r);
    for (uint32_t oy = 0; oy < c->out_h; ++oy) {
        if (use_pop) {
            bnn_conv_pop_rows(c, (const bnn_word_t *)in, w, oy, oy + 1u, p->pad_minus1, row);
        } else {
            conv_row(p, in, w, oy, u8 ? &u8r : NULL, row);
        }
        const size_t off = (size_t)oy * n;
        epi_apply(e, &pl, fn, c->out_w, row, skip ? (const uint8_t *)skip + off * e->skip_bytes : NULL,
                  out ? (uint8_t *)out + off * e->out_bytes : NULL, bits ? bits + (size_t)oy * nw : NULL);
    }
}

void bnn_conv_requant(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                      const bnn_requant_params_t *rq, int32_t *row, void *out)
{
    const bnn_stream_epilogue_t e = {rq, 0u, 0, 0, rq->out_bytes, NULL, NULL};
    bnn_conv_stream(p, in, w, &e, NULL, row, out, NULL);
}

/* Thresholds clamped to [-K, K + 1] (same bits for |acc| <= K), so thr - 1 - acc cannot
 * overflow; bit = its sign, shifted in from the top, 32 channels per word. */
void bnn_conv_threshold_rows(const bnn_conv_rows_params_t *p, const void *in, const bnn_word_t *w,
                             const int32_t *thr, int32_t *row, bnn_word_t *out)
{
    const uint32_t cout = p->conv.cout;
    const int64_t k = conv_bound(p);
    bnn_conv_u8_rows_t u8r;
    const bnn_conv_u8_rows_t *u8 = p->in_u8 && bnn__conv_u8_rows_prepare(&p->conv, w, &u8r) ? &u8r : NULL;
    if (cout > BNN_STREAM_FAST_CH || k >= (INT64_C(1) << 30)) {
        for (uint32_t oy = 0; oy < p->conv.out_h; ++oy) {
            conv_row(p, in, w, oy, u8, row);
            for (uint32_t ox = 0; ox < p->conv.out_w; ++ox) {
                for (uint32_t o0 = 0; o0 < cout; o0 += 32u) {
                    const uint32_t cnt = cout - o0 < 32u ? cout - o0 : 32u;
                    bnn_word_t bits = 0;
                    for (uint32_t j = 0; j < cnt; ++j) {
                        bits |= (bnn_word_t)(row[ox * cout + o0 + j] >= thr[o0 + j]) << j;
                    }
                    *out++ = bits;
                }
            }
        }
        return;
    }
    int32_t t[BNN_STREAM_FAST_CH]; /* thr - 1: acc >= thr <=> (thr - 1) - acc < 0, its sign bit */
    for (uint32_t o = 0; o < cout; ++o) {
        t[o] = (thr[o] < -k ? (int32_t)-k : (thr[o] > k + 1 ? (int32_t)(k + 1) : thr[o])) - 1;
    }
    /* bit of channel o = sign of t[o] - acc; four channels per step; full words of 32, then the
     * last partial word (its loop bounds are the same at every position) */
#define THR_BIT(j) (word = (word >> 1) | ((uint32_t)(tp[j] - r[j]) & 0x80000000u))
    const uint32_t nfull = cout / 32u, rem = cout % 32u, rem4 = rem & ~3u;
    for (uint32_t oy = 0; oy < p->conv.out_h; ++oy) {
        conv_row(p, in, w, oy, u8, row);
        const int32_t *r = row;
        for (uint32_t ox = 0; ox < p->conv.out_w; ++ox) {
            const int32_t *tp = t;
            for (uint32_t k2 = 0; k2 < nfull; ++k2) {
                uint32_t word = 0;
                for (uint32_t j = 0; j < 32u; j += 4u, tp += 4, r += 4) {
                    THR_BIT(0);
                    THR_BIT(1);
                    THR_BIT(2);
                    THR_BIT(3);
                }
                *out++ = word;
            }
            if (rem) {
                uint32_t word = 0, j = 0;
                for (; j < rem4; j += 4u, tp += 4, r += 4) {
                    THR_BIT(0);
                    THR_BIT(1);
                    THR_BIT(2);
                    THR_BIT(3);
                }
                for (; j < rem; ++j, ++tp, ++r) {
                    THR_BIT(0);
                }
                *out++ = word >> (32u - rem);
            }
        }
    }
#undef THR_BIT
}
