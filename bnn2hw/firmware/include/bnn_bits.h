/* SPDX-License-Identifier: MIT */
/*
 * bnn_bits.h -- the one definition of bnn2hw's bit convention and popcount.
 *
 * Packed +-1 vectors
 *   typedef uint32_t bnn_word_t; element i lives in word i/32, bit i%32 (LSB first).
 *   Bit value 1 means +1, bit value 0 means -1.  This is the qonnx BINARY convention;
 *   Larq / Larq Compute Engine use the opposite one (bit 0 = +1), so convert at the edge.
 *   Padding bits past the vector length are 0 in BOTH activations and weights, so a
 *   padding position never shows up in popcount(a ^ w).  Every kernel that writes
 *   packed bits writes 0 into the padding bits of the last word.
 *
 * Binary dot product of K elements a, w in {-1,+1}
 *   a_i * w_i = +1 when the bits agree, -1 when they differ; xor marks disagreements, so
 *   with p = popcount(a xor w):  acc = (K - p) - p = K - 2p.
 *
 * Sign / tie rule
 *   An accumulator exactly equal to its threshold gives +1 (bit 1): bit = (acc >= thr).
 *   (torch.sign(0) = 0 in the BiPer code; Larq and Brevitas map 0 to +1, as we do.)
 *
 * Popcount-domain threshold ("max mismatch")
 *   acc >= T  <=>  K - 2p >= T  <=>  2p <= K - T  <=>  p <= (K - T) / 2,
 *   and since p is an integer this is  p <= floor((K - T) / 2) =: M.
 *   Kernels taking popcount thresholds compute bit = (p <= M).  M = -1 (or any M < 0)
 *   means "never +1", M >= K means "always +1".  Use bnn_max_mismatch() to convert.
 *
 * Negative-direction channels (a negative folded scale) are handled by the code
 * generator, which negates the weight row and the threshold; kernels compare with
 * >= only, except bnn_threshold() which takes a per-channel direction.
 *
 * Popcount strategy, chosen at compile time with -DBNN_POPCOUNT=<n>:
 *   BNN_POPCOUNT_BUILTIN (1)  __builtin_popcount (libgcc call on Cortex-M)
 *   BNN_POPCOUNT_SWAR    (2)  classic per-word SWAR, horizontal sum by multiply
 *   BNN_POPCOUNT_TABLE   (3)  256-entry byte table (bnn_popcount_table in bnn_bits.c)
 *   BNN_POPCOUNT_MULTI   (4)  multi-word: per-word 2-bit/4-bit SWAR stages, nibble
 *                             counts of 3 words added before one byte stage, byte
 *                             counts of a whole chunk added before one horizontal sum
 *                             (USADA8 on cores with the DSP extension, shifts
 *                             otherwise); the binary dense / conv kernels use groups of
 *                             3 words (bnn__group3_nibbles), in Thumb-2 assembly
 *                             (bnn_bits.c: LDM loads, shifted-operand ALU ops, Thumb-2
 *                             replicated immediates) on ARMv7-M / ARMv8-M mainline,
 *                             portable C on ARMv6-M and the host.
 *   Default: MULTI.
 */
#ifndef BNN_BITS_H
#define BNN_BITS_H

#include <stddef.h>
#include <stdint.h>

typedef uint32_t bnn_word_t;

#define BNN_WORD_BITS 32u
/* Number of words holding n packed elements. */
#define BNN_WORDS(n) (((uint32_t)(n) + 31u) / 32u)

#define BNN_POPCOUNT_BUILTIN 1
#define BNN_POPCOUNT_SWAR 2
#define BNN_POPCOUNT_TABLE 3
#define BNN_POPCOUNT_MULTI 4

#ifndef BNN_POPCOUNT
#define BNN_POPCOUNT BNN_POPCOUNT_MULTI
#endif

#if BNN_POPCOUNT < 1 || BNN_POPCOUNT > 4
#error "BNN_POPCOUNT must be 1 (builtin), 2 (swar), 3 (table) or 4 (multi)"
#endif

/* Thumb-2 with shifted operands and modified immediates (ARMv7-M, ARMv8-M mainline). */
#if defined(__arm__) && defined(__ARM_ARCH_ISA_THUMB) && (__ARM_ARCH_ISA_THUMB >= 2) && \
    !defined(BNN_NO_ASM)
#define BNN_THUMB2_ASM 1
#else
#define BNN_THUMB2_ASM 0
#endif

/* USADA8 available (Cortex-M4, M7, M33 with DSP, M55). */
#if defined(__ARM_FEATURE_SIMD32) && BNN_THUMB2_ASM
#define BNN_HAVE_USADA8 1
#else
#define BNN_HAVE_USADA8 0
#endif

#if defined(__GNUC__)
#define BNN_INLINE static inline __attribute__((always_inline))
#else
#define BNN_INLINE static inline
#endif

extern const uint8_t bnn_popcount_table[256];

/* Mask with the low (n % 32) bits set, or all ones when n % 32 == 0. */
BNN_INLINE bnn_word_t bnn_tail_mask(uint32_t n)
{
    uint32_t r = n % 32u;
    return r ? ((bnn_word_t)1u << r) - 1u : ~(bnn_word_t)0u;
}

/* Max mismatch M = floor((K - T) / 2), see the derivation above (clamped to [-1, K]). */
BNN_INLINE int32_t bnn_max_mismatch(int32_t k, int32_t t)
{
    int32_t d = k - t;
    int32_t m = d >= 0 ? d / 2 : -1; /* d < 0: no p >= 0 satisfies p <= d/2 */
    return m > k ? k : m;
}

/* SWAR popcount of one word, shared by several strategies. */
BNN_INLINE uint32_t bnn_popcount32_swar(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (x * 0x01010101u) >> 24;
}

BNN_INLINE uint32_t bnn_popcount32(uint32_t x)
{
#if BNN_POPCOUNT == BNN_POPCOUNT_BUILTIN
    return (uint32_t)__builtin_popcount(x);
#elif BNN_POPCOUNT == BNN_POPCOUNT_TABLE
    return (uint32_t)bnn_popcount_table[x & 0xffu] + bnn_popcount_table[(x >> 8) & 0xffu] +
           bnn_popcount_table[(x >> 16) & 0xffu] + bnn_popcount_table[x >> 24];
#else
    return bnn_popcount32_swar(x);
#endif
}

/* Multi-word helpers (portable C).  nib2(x): 2-bit counts (each field <= 2);
 * nib4(x): 4-bit counts (each nibble <= 4); bytes(s): byte counts of a nibble word. */
BNN_INLINE uint32_t bnn__nib2(uint32_t x) { return x - ((x >> 1) & 0x55555555u); }
BNN_INLINE uint32_t bnn__nib4(uint32_t x) { return (x & 0x33333333u) + ((x >> 2) & 0x33333333u); }
BNN_INLINE uint32_t bnn__bytes(uint32_t s) { return (s & 0x0f0f0f0fu) + ((s >> 4) & 0x0f0f0f0fu); }
BNN_INLINE uint32_t bnn__hsum_bytes(uint32_t b) { return (b * 0x01010101u) >> 24; } /* sum <= 255 */

#if BNN_THUMB2_ASM && BNN_POPCOUNT == BNN_POPCOUNT_MULTI
#define BNN_MULTI_ASM 1
/*
 * Thumb-2 assembly (bnn_bits.c), any row length nw = 3 g + R words, one function per tail
 * length R and group-count class C (0: g = 0, 1: g = 1, 2: g even >= 2, 3: g odd >= 3):
 * bnn__dbt2_<R><C>0(in, w, max_mismatch, nw << 5 | (cnt - 1)), 1 <= cnt <= 32, nw >= 1:
 *   for each row j < cnt (weights w + j * nw, nw words), p_j = popcount(in ^ w_j) and the
 *   bit (p_j <= max_mismatch[j]) is shifted in at bit 31 ((bits >> 1) | bit << 31); returns
 *   the word (row j at bit 32 - cnt + j; the bits below are unspecified, callers shift them
 *   out with >> (32 - cnt)).  max_mismatch must lie in [-1, 32 * nw].
 *   Per row: R tail words, then groups of 3 words: 2-bit counts with the third word's bits
 *   added into their spare capacity, one 4-bit stage, USADA8 accumulation without a byte
 *   stage (derivation in bnn_bits.c); with the DSP extension two rows per pass share every
 *   input load and the loop control.  bnn__dbt2_<R><C>1(in, w, p, ...) stores the popcounts
 *   p[j] instead (same rows; return value unspecified).  bnn__dbt2_<R><C>2 (DSP cores) has the
 *   popcount contract too, through a bits-mode function: it sets bit 31 of nw_cnt (the
 *   popcount flag), and bnn__dbt2_<R><C>3 (bnn__dbt2_<R><C>0 plus the flag) then fills p
 *   with -1, uses it as max_mismatch and
 *   stores each accumulator (p - (-1) - 1 = p) back in place: one function less to link, a few
 *   instructions more per pass.  bnn__dense_bits_t2 (bnn_dense.h)
 *   picks the function.
 */
typedef uint32_t (*bnn__dbt2_fn)(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_010(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_020(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_030(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_100(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_110(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_120(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_130(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_200(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_210(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_220(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_230(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_011(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_021(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_031(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_101(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_111(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_121(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_131(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_201(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_211(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_221(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_231(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
#if BNN_HAVE_USADA8
/* mode 3: the bits contract, with the popcount flag (bit 31 of nw_cnt) that mode 2 sets */
uint32_t bnn__dbt2_013(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_023(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_033(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_103(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_113(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_123(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_133(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_203(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_213(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_223(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_233(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
/* mode 2: the popcount contract through the mode-3 bits kernel (bnn_bits.c, compact) */
uint32_t bnn__dbt2_012(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_022(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_032(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_102(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_112(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_122(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_132(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_202(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_212(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_222(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt2_232(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
#endif

/* Helium (MVE integer, Cortex-M55): the row kernels of bnn_dense_mve.c replace the Thumb-2
 * variants (same contract; -DBNN_NO_MVE keeps the scalar ones). */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(BNN_NO_MVE)
#define BNN_MVE 1
uint32_t bnn__dbt_mve(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt_mve_pop(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
/* the same for nw <= 31 (l16) or nw <= 7 (l8) only: rows in lanes, no 4-row core (flash) */
uint32_t bnn__dbt_mve_l16(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt_mve_l16_pop(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt_mve_l8(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
uint32_t bnn__dbt_mve_l8_pop(const bnn_word_t *, const bnn_word_t *, const int32_t *, uint32_t);
#else
#define BNN_MVE 0
#endif

/* The cases of bnn__dbt2_pick for one mode M: key (nw % 3) * 4 + c -> bnn__dbt2_<R><C><M>
 * (a switch on constants, so a call with constant nw and mode links that one variant only). */
#define BNN__DBT2_CASES(M) \
    case 1u: return bnn__dbt2_01##M; \
    case 2u: return bnn__dbt2_02##M; \
    case 3u: return bnn__dbt2_03##M; \
    case 4u: return bnn__dbt2_10##M; \
    case 5u: return bnn__dbt2_11##M; \
    case 6u: return bnn__dbt2_12##M; \
    case 7u: return bnn__dbt2_13##M; \
    case 8u: return bnn__dbt2_20##M; \
    case 9u: return bnn__dbt2_21##M; \
    case 10u: return bnn__dbt2_22##M; \
    case 11u: return bnn__dbt2_23##M; \
    default: break;

/* The variant for rows of nw >= 1 words: mode 0 (bits), 1 (popcounts), 3 (bits, the body
 * that also serves mode 2) or 2 (popcounts through the mode-3 body: with the hidden layers
 * on mode 3, a model links one row kernel instead of two, at a few instructions per call and
 * per popcount pass; modes 2 / 3 are modes 1 / 0 without the DSP extension); a constant when
 * nw and mode are. */
BNN_INLINE bnn__dbt2_fn bnn__dbt2_pick(uint32_t nw, uint32_t mode)
{
#if BNN_MVE
    /* a constant nw links one lanes-only pair (bnn_dense_mve.c); any nw in the class runs on it */
    if (nw <= 7u) {
        return (mode == 1u || mode == 2u) ? bnn__dbt_mve_l8_pop : bnn__dbt_mve_l8;
    }
    if (nw <= 31u) {
        return (mode == 1u || mode == 2u) ? bnn__dbt_mve_l16_pop : bnn__dbt_mve_l16;
    }
    return (mode == 1u || mode == 2u) ? bnn__dbt_mve_pop : bnn__dbt_mve; /* 0, 3: bits */
#endif
    const uint32_t g = nw / 3u;
    const uint32_t c = g == 0u ? 0u : g == 1u ? 1u : (g & 1u) ? 3u : 2u;
    const uint32_t key = (nw % 3u) * 4u + c; /* bnn__dbt2_<R><C><M>: R = nw % 3, C = c */
#if BNN_HAVE_USADA8
    if (mode == 3u) {
        switch (key) { BNN__DBT2_CASES(3) }
    }
    if (mode == 2u) {
        switch (key) { BNN__DBT2_CASES(2) }
    }
#else
    if (mode >= 2u) {
        mode = mode == 2u ? 1u : 0u; /* one row per pass: no shared variant */
    }
#endif
    if (mode == 1u) {
        switch (key) { BNN__DBT2_CASES(1) }
    }
    switch (key) { BNN__DBT2_CASES(0) }
    return bnn__dbt2_010; /* unreachable: nw >= 1 */
}
#else
#define BNN_MULTI_ASM 0
#define BNN_MVE 0
#endif

/* ARMv6-M (Cortex-M0/M0+) Thumb-1 assembly row kernels (bnn_bits.c), any row length:
 * bnn__dbt_m0 has the contract of bnn__dbt2_<R><C>0 (bits), bnn__dbt_m0_pop that of
 * bnn__dbt2_<R><C>1 (popcounts stored, return value unspecified). */
#if defined(__arm__) && defined(__ARM_ARCH_6M__) && BNN_POPCOUNT == BNN_POPCOUNT_MULTI && !defined(BNN_NO_ASM)
#define BNN_M0_ASM 1
uint32_t bnn__dbt_m0(const bnn_word_t *in, const bnn_word_t *w, const int32_t *max_mismatch, uint32_t nw_cnt);
uint32_t bnn__dbt_m0_pop(const bnn_word_t *in, const bnn_word_t *w, const int32_t *p, uint32_t nw_cnt);
#else
#define BNN_M0_ASM 0
#endif

/*
 * Portable group of 3 words (already xored): nibble counts, each nibble <= 12.
 * 2-bit counts of x and y (<= 2 per field), the even / odd bits of z added into their spare
 * capacity (<= 3 per field), then 4-bit fields.  Same arithmetic as the assembly above.
 */
BNN_INLINE uint32_t bnn__group3_nibbles(uint32_t x, uint32_t y, uint32_t z)
{
    x = x - ((x >> 1) & 0x55555555u) + (z & 0x55555555u);
    y = y - ((y >> 1) & 0x55555555u) + ((z >> 1) & 0x55555555u);
    return (x & 0x33333333u) + ((x >> 2) & 0x33333333u) + (y & 0x33333333u) + ((y >> 2) & 0x33333333u);
}

/* acc + (sum of the four bytes of b); b's bytes may each be up to 255. */
BNN_INLINE uint32_t bnn__acc_bytes(uint32_t acc, uint32_t b)
{
#if BNN_HAVE_USADA8
    uint32_t r;
    __asm__("usada8 %0, %1, %2, %3" : "=r"(r) : "r"(b), "r"(0u), "r"(acc));
    return r;
#else
    b = (b & 0x00ff00ffu) + ((b >> 8) & 0x00ff00ffu);
    return acc + ((b + (b >> 16)) & 0xffffu);
#endif
}

/* Portable byte counts of popcount(a[0..7] ^ w[0..7]) (each byte <= 64). */
BNN_INLINE uint32_t bnn__chunk8_bytes_c(const bnn_word_t *a, const bnn_word_t *w)
{
    uint32_t g0 = bnn__nib4(bnn__nib2(a[0] ^ w[0])) + bnn__nib4(bnn__nib2(a[1] ^ w[1])) +
                  bnn__nib4(bnn__nib2(a[2] ^ w[2]));
    uint32_t g1 = bnn__nib4(bnn__nib2(a[3] ^ w[3])) + bnn__nib4(bnn__nib2(a[4] ^ w[4])) +
                  bnn__nib4(bnn__nib2(a[5] ^ w[5]));
    uint32_t g2 = bnn__nib4(bnn__nib2(a[6] ^ w[6])) + bnn__nib4(bnn__nib2(a[7] ^ w[7]));
    return bnn__bytes(g0) + bnn__bytes(g1) + bnn__bytes(g2);
}

/*
 * popcount(a[0..n) xor w[0..n)) with the selected strategy.  *pw is advanced by n words
 * (so a caller walking weight rows keeps one pointer).  MULTI (portable C: ARMv6-M, host,
 * and the Thumb-2 cores' integer-logit and border paths): 8-word chunks of per-word 2-bit /
 * 4-bit stages, nibble counts of 3 words added before one byte stage, byte counts of a chunk
 * added before one horizontal sum.
 */
BNN_INLINE uint32_t bnn_xor_popcount_adv(const bnn_word_t *a, const bnn_word_t **pw, uint32_t n)
{
    const bnn_word_t *w = *pw;
    uint32_t p = 0;
    uint32_t i = 0;
#if BNN_POPCOUNT == BNN_POPCOUNT_MULTI
    for (; i + 8u <= n; i += 8u) {
        p = bnn__acc_bytes(p, bnn__chunk8_bytes_c(a + i, w));
        w += 8;
    }
    {
        uint32_t bytes = 0;
        for (; i < n; ++i) {
            bytes += bnn__bytes(bnn__nib4(bnn__nib2(a[i] ^ *w++))); /* <= 8 per byte */
        }
        p = bnn__acc_bytes(p, bytes);
    }
#else
    for (; i < n; ++i) {
        p += bnn_popcount32(a[i] ^ *w++);
    }
#endif
    *pw = w;
    return p;
}

BNN_INLINE uint32_t bnn_xor_popcount(const bnn_word_t *a, const bnn_word_t *w, uint32_t n)
{
    return bnn_xor_popcount_adv(a, &w, n);
}

/* Plain, strategy-independent popcount used by the _ref kernels. */
BNN_INLINE uint32_t bnn_popcount32_ref(uint32_t x)
{
    uint32_t c = 0;
    while (x) {
        c += x & 1u;
        x >>= 1;
    }
    return c;
}

BNN_INLINE int bnn_get_bit(const bnn_word_t *v, uint32_t i) { return (int)((v[i / 32u] >> (i % 32u)) & 1u); }

BNN_INLINE void bnn_put_bit(bnn_word_t *v, uint32_t i, int b)
{
    bnn_word_t m = (bnn_word_t)1u << (i % 32u);
    if (b) {
        v[i / 32u] |= m;
    } else {
        v[i / 32u] &= ~m;
    }
}

#endif /* BNN_BITS_H */
