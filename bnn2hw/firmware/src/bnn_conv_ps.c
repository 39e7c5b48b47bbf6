/* SPDX-License-Identifier: MIT */
/*
 * bnn_conv_ps.c -- position-sliced binary conv2d + threshold (method and data: bnn_conv_ps.h).
 * A call: the phase streams (ps_streams: 32x32 transposes of the packed input), then per output word
 * of 32 flattened positions the tap vectors (funnel shifts of the streams), Ctot's planes, the
 * lanes' window classes, and per output channel its list's bit-sliced count (ps_count8: Thumb-2
 * assembly) and the compare (ps_ge / ps_lane); the channel words go back to packed channels per
 * position by one more transpose.  The reference, bnn_conv_ps_bits_ref, sums the same lists one
 * position at a time.
 */
#include "bnn_conv_ps.h"

#include <string.h>

/* Lanes of a word compared one by one when they are not of its commonest window class. */
#define PS_LONE 4u

/* 32x32 bit transpose in place: bit c of a[i] <-> bit i of a[c] (Hacker's Delight 7-3, the
 * stages spelled out: ~6 instructions per swapped pair, 80 pairs a stage). */
#define PS_TSWAP(a, k, j, m)                                       \
    do {                                                           \
        const uint32_t t_ = (((a)[k] >> (j)) ^ (a)[(k) + (j)]) & (m); \
        (a)[k] ^= t_ << (j);                                       \
        (a)[(k) + (j)] ^= t_;                                      \
    } while (0)
static void ps_transpose32(uint32_t *a)
{
    PS_TSWAP(a, 0, 16, 0x0000FFFFu);
    PS_TSWAP(a, 1, 16, 0x0000FFFFu);
    PS_TSWAP(a, 2, 16, 0x0000FFFFu);
    PS_TSWAP(a, 3, 16, 0x0000FFFFu);
    PS_TSWAP(a, 4, 16, 0x0000FFFFu);
    PS_TSWAP(a, 5, 16, 0x0000FFFFu);
    PS_TSWAP(a, 6, 16, 0x0000FFFFu);
    PS_TSWAP(a, 7, 16, 0x0000FFFFu);
    PS_TSWAP(a, 8, 16, 0x0000FFFFu);
    PS_TSWAP(a, 9, 16, 0x0000FFFFu);
    PS_TSWAP(a, 10, 16, 0x0000FFFFu);
    PS_TSWAP(a, 11, 16, 0x0000FFFFu);
    PS_TSWAP(a, 12, 16, 0x0000FFFFu);
    PS_TSWAP(a, 13, 16, 0x0000FFFFu);
    PS_TSWAP(a, 14, 16, 0x0000FFFFu);
    PS_TSWAP(a, 15, 16, 0x0000FFFFu);
    PS_TSWAP(a, 0, 8, 0x00FF00FFu);
    PS_TSWAP(a, 1, 8, 0x00FF00FFu);
    PS_TSWAP(a, 2, 8, 0x00FF00FFu);
    PS_TSWAP(a, 3, 8, 0x00FF00FFu);
    PS_TSWAP(a, 4, 8, 0x00FF00FFu);
    PS_TSWAP(a, 5, 8, 0x00FF00FFu);
    PS_TSWAP(a, 6, 8, 0x00FF00FFu);
    PS_TSWAP(a, 7, 8, 0x00FF00FFu);
    PS_TSWAP(a, 16, 8, 0x00FF00FFu);
    PS_TSWAP(a, 17, 8, 0x00FF00FFu);
    PS_TSWAP(a, 18, 8, 0x00FF00FFu);
    PS_TSWAP(a, 19, 8, 0x00FF00FFu);
    PS_TSWAP(a, 20, 8, 0x00FF00FFu);
    PS_TSWAP(a, 21, 8, 0x00FF00FFu);
    PS_TSWAP(a, 22, 8, 0x00FF00FFu);
    PS_TSWAP(a, 23, 8, 0x00FF00FFu);
    PS_TSWAP(a, 0, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 1, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 2, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 3, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 8, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 9, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 10, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 11, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 16, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 17, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 18, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 19, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 24, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 25, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 26, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 27, 4, 0x0F0F0F0Fu);
    PS_TSWAP(a, 0, 2, 0x33333333u);
    PS_TSWAP(a, 1, 2, 0x33333333u);
    PS_TSWAP(a, 4, 2, 0x33333333u);
    PS_TSWAP(a, 5, 2, 0x33333333u);
    PS_TSWAP(a, 8, 2, 0x33333333u);
    PS_TSWAP(a, 9, 2, 0x33333333u);
    PS_TSWAP(a, 12, 2, 0x33333333u);
    PS_TSWAP(a, 13, 2, 0x33333333u);
    PS_TSWAP(a, 16, 2, 0x33333333u);
    PS_TSWAP(a, 17, 2, 0x33333333u);
    PS_TSWAP(a, 20, 2, 0x33333333u);
    PS_TSWAP(a, 21, 2, 0x33333333u);
    PS_TSWAP(a, 24, 2, 0x33333333u);
    PS_TSWAP(a, 25, 2, 0x33333333u);
    PS_TSWAP(a, 28, 2, 0x33333333u);
    PS_TSWAP(a, 29, 2, 0x33333333u);
    PS_TSWAP(a, 0, 1, 0x55555555u);
    PS_TSWAP(a, 2, 1, 0x55555555u);
    PS_TSWAP(a, 4, 1, 0x55555555u);
    PS_TSWAP(a, 6, 1, 0x55555555u);
    PS_TSWAP(a, 8, 1, 0x55555555u);
    PS_TSWAP(a, 10, 1, 0x55555555u);
    PS_TSWAP(a, 12, 1, 0x55555555u);
    PS_TSWAP(a, 14, 1, 0x55555555u);
    PS_TSWAP(a, 16, 1, 0x55555555u);
    PS_TSWAP(a, 18, 1, 0x55555555u);
    PS_TSWAP(a, 20, 1, 0x55555555u);
    PS_TSWAP(a, 22, 1, 0x55555555u);
    PS_TSWAP(a, 24, 1, 0x55555555u);
    PS_TSWAP(a, 26, 1, 0x55555555u);
    PS_TSWAP(a, 28, 1, 0x55555555u);
    PS_TSWAP(a, 30, 1, 0x55555555u);
}
#undef PS_TSWAP

/* Carry-save adder: l <- l ^ a ^ b, h <- majority(l, a, b). */
#define PS_CSA(h, l, a, b)              \
    do {                                \
        const uint32_t u_ = (a) ^ (b);  \
        (h) = ((a) & (b)) | (u_ & (l)); \
        (l) = u_ ^ (l);                 \
    } while (0)

/* Add a one-plane vector c at plane `from` of the counter q (planes >= from, nq in all). */
BNN_INLINE void ps_ripple(uint32_t *q, uint32_t from, uint32_t nq, uint32_t c)
{
    for (uint32_t b = from; b < nq && c != 0u; ++b) {
        const uint32_t t = q[b] & c;
        q[b] ^= c;
        c = t;
    }
}

/* Adds the vectors buf[idx[i]], i < len (a multiple of 8), to the bit-sliced count q[0..nq)
 * (nq >= 4; the caller's start values; no lane may reach 2^nq).  Harley-Seal: 16 vectors -> one
 * "sixteens" word through 15 carry-save adders, rippled into q[4..]. */
#define PS_COUNT_FN(NAME, T)                                                                         \
    static void NAME(const uint32_t *buf, const T *idx, uint32_t len, uint32_t *q, uint32_t nq)      \
    {                                                                                                \
        uint32_t ones = q[0], twos = q[1], fours = q[2], eights = q[3];                              \
        for (; len >= 16u; len -= 16u, idx += 16) {                                                  \
            uint32_t ta, tb, fa, fb, ea, eb, s;                                                      \
            PS_CSA(ta, ones, buf[idx[0]], buf[idx[1]]);                                              \
            PS_CSA(tb, ones, buf[idx[2]], buf[idx[3]]);                                              \
            PS_CSA(fa, twos, ta, tb);                                                                \
            PS_CSA(ta, ones, buf[idx[4]], buf[idx[5]]);                                              \
            PS_CSA(tb, ones, buf[idx[6]], buf[idx[7]]);                                              \
            PS_CSA(fb, twos, ta, tb);                                                                \
            PS_CSA(ea, fours, fa, fb);                                                               \
            PS_CSA(ta, ones, buf[idx[8]], buf[idx[9]]);                                              \
            PS_CSA(tb, ones, buf[idx[10]], buf[idx[11]]);                                            \
            PS_CSA(fa, twos, ta, tb);                                                                \
            PS_CSA(ta, ones, buf[idx[12]], buf[idx[13]]);                                            \
            PS_CSA(tb, ones, buf[idx[14]], buf[idx[15]]);                                            \
            PS_CSA(fb, twos, ta, tb);                                                                \
            PS_CSA(eb, fours, fa, fb);                                                               \
            PS_CSA(s, eights, ea, eb);                                                               \
            ps_ripple(q, 4u, nq, s);                                                                 \
        }                                                                                            \
        if (len != 0u) {                                                                             \
            uint32_t ta, tb, fa, fb, e;                                                              \
            PS_CSA(ta, ones, buf[idx[0]], buf[idx[1]]);                                              \
            PS_CSA(tb, ones, buf[idx[2]], buf[idx[3]]);                                              \
            PS_CSA(fa, twos, ta, tb);                                                                \
            PS_CSA(ta, ones, buf[idx[4]], buf[idx[5]]);                                              \
            PS_CSA(tb, ones, buf[idx[6]], buf[idx[7]]);                                              \
            PS_CSA(fb, twos, ta, tb);                                                                \
            e = (fours & (fa | fb)) | (fa & fb); /* the carry of fours + fa + fb */                  \
            fours ^= fa ^ fb;                                                                        \
            ps_ripple(q, 4u, nq, eights & e);                                                        \
            eights ^= e;                                                                             \
        }                                                                                            \
        q[0] = ones;                                                                                 \
        q[1] = twos;                                                                                 \
        q[2] = fours;                                                                                \
        q[3] = eights;                                                                               \
    }
#if BNN_THUMB2_ASM
/*
 * ps_count8 in Thumb-2 assembly (ARMv7-M / ARMv8-M mainline): bnn_vcols.c's bnn_vc_count16 block
 * (the planes 1, 2, 4, 8 in r4-r7, CSA(h -> a, l, a, b) in 5 ALU ops, the sixteens word rippled
 * into q[4..] only when some lane carries) with byte indices (LDRB, immediate offsets) instead
 * of LDM of word indices: per vector 1 LDRB + 1 LDR + 75/16 ALU.  r0 = buf, r1 = idx, r2 = the
 * end of the whole blocks, [sp] = q + 4.  The last 8 (len % 16) run in C.
 */
/* CSA into plane P: P ^= A ^ B, H = the carry (A & B) | (P & (A ^ B)); A, B and r12 clobbered. */
#define PS_ASM_CSA(H, A, B, P)                                                             \
    "eor r12, " A ", " B "\n\t"                                                     \
    "and " A ", " A ", " B "\n\t"                                                   \
    "and " B ", r12, " P "\n\t"                                                     \
    "eor " P ", " P ", r12\n\t"                                                     \
    "orr " H ", " A ", " B "\n\t"
/* Ripple the carry word C (flags set by the caller's ANDS/ORRS: zero skips it) into q[4..] ([sp]). */
#define PS_ASM_RIPPLE(C)                                                                    \
    "beq 2f\n\t"                                                                      \
    "ldr r12, [sp]\n"                                                                  \
    "4:\n\t"                                                                          \
    "ldr r8, [r12]\n\t"                                                               \
    "eor r9, r8, " C "\n\t"                                                          \
    "ands " C ", " C ", r8\n\t"                                                      \
    "str r9, [r12], #4\n\t"                                                           \
    "bne 4b\n"                                                                         \
    "2:\n\t"
#define PS_QUAD(H, O0, O1, O2, O3)                                                      \
    "ldrb r8, [r1, #" O0 "]\n\t"                                                       \
    "ldrb r9, [r1, #" O1 "]\n\t"                                                       \
    "ldrb r10, [r1, #" O2 "]\n\t"                                                      \
    "ldrb r11, [r1, #" O3 "]\n\t"                                                      \
    "ldr r8, [r0, r8, lsl #2]\n\t"                                                     \
    "ldr r9, [r0, r9, lsl #2]\n\t"                                                     \
    "ldr r10, [r0, r10, lsl #2]\n\t"                                                   \
    "ldr r11, [r0, r11, lsl #2]\n\t"                                                   \
    PS_ASM_CSA("r8", "r8", "r9", "r4")                                                     \
    PS_ASM_CSA("r10", "r10", "r11", "r4")                                                  \
    PS_ASM_CSA(H, "r8", "r10", "r5")

__attribute__((naked)) static void ps_count8_blocks(const uint32_t *buf __attribute__((unused)),
                                                    const uint8_t *idx __attribute__((unused)),
                                                    const uint8_t *end __attribute__((unused)),
                                                    uint32_t *q __attribute__((unused)))
{
    __asm__ volatile(".syntax unified\n\t"
                     "push {r4-r11, lr}\n\t"
                     "ldm r3!, {r4-r7}\n\t"
                     "push {r3}\n\t"
                     "cmp r1, r2\n\t"
                     "beq 3f\n"
                     "1:\n\t"
                     PS_QUAD("lr", "0", "1", "2", "3")
                     PS_QUAD("r8", "4", "5", "6", "7")
                     PS_ASM_CSA("r3", "lr", "r8", "r6")
                     PS_QUAD("lr", "8", "9", "10", "11")
                     PS_QUAD("r8", "12", "13", "14", "15")
                     PS_ASM_CSA("lr", "lr", "r8", "r6")
                     "eor r12, r3, lr\n\t"
                     "and r3, r3, lr\n\t"
                     "and lr, r12, r7\n\t"
                     "eor r7, r7, r12\n\t"
                     "orrs r3, r3, lr\n\t"
                     "add r1, r1, #16\n\t"
                     PS_ASM_RIPPLE("r3")
                     "cmp r1, r2\n\t"
                     "bne 1b\n"
                     "3:\n\t"
                     "pop {r3}\n\t"
                     "stmdb r3, {r4-r7}\n\t"
                     "pop {r4-r11, pc}\n\t");
}
/* A half block: 8 vectors -> one eights word (7 CSAs), added into the plane 8 (r7), its carry rippled
 * into q[4..]. */
__attribute__((naked)) static void ps_count8_half(const uint32_t *buf __attribute__((unused)),
                                                  const uint8_t *idx __attribute__((unused)),
                                                  uint32_t *q __attribute__((unused)))
{
    __asm__ volatile(".syntax unified\n\t"
                     "push {r4-r11, lr}\n\t"
                     "mov r3, r2\n\t"
                     "ldm r3!, {r4-r7}\n\t"
                     "push {r3}\n\t"
                     PS_QUAD("lr", "0", "1", "2", "3")
                     PS_QUAD("r8", "4", "5", "6", "7")
                     PS_ASM_CSA("r3", "lr", "r8", "r6")
                     "ands lr, r7, r3\n\t"
                     "eor r7, r7, r3\n\t"
                     PS_ASM_RIPPLE("lr")
                     "pop {r3}\n\t"
                     "stmdb r3, {r4-r7}\n\t"
                     "pop {r4-r11, pc}\n\t");
}
#undef PS_QUAD
#undef PS_ASM_RIPPLE
#undef PS_ASM_CSA
/* The whole blocks and a last half block in assembly. */
static void ps_count8(const uint32_t *buf, const uint8_t *idx, uint32_t len, uint32_t *q, uint32_t nq)
{
    (void)nq;
    ps_count8_blocks(buf, idx, idx + (len & ~15u), q);
    if (len & 8u) {
        ps_count8_half(buf, idx + (len & ~15u), q);
    }
}
#else
PS_COUNT_FN(ps_count8, uint8_t)
#endif
PS_COUNT_FN(ps_count16, uint16_t)

/* Sequential sum of buf[0..k) (Ctot), same planes convention. */
static void ps_count_all(const uint32_t *buf, uint32_t k, uint32_t *q, uint32_t nq)
{
    uint32_t ones = 0, twos = 0, fours = 0, eights = 0;
    for (uint32_t b = 0; b < nq; ++b) {
        q[b] = 0;
    }
    for (; k >= 16u; k -= 16u, buf += 16) {
        uint32_t ta, tb, fa, fb, ea, eb, s;
        PS_CSA(ta, ones, buf[0], buf[1]);
        PS_CSA(tb, ones, buf[2], buf[3]);
        PS_CSA(fa, twos, ta, tb);
        PS_CSA(ta, ones, buf[4], buf[5]);
        PS_CSA(tb, ones, buf[6], buf[7]);
        PS_CSA(fb, twos, ta, tb);
        PS_CSA(ea, fours, fa, fb);
        PS_CSA(ta, ones, buf[8], buf[9]);
        PS_CSA(tb, ones, buf[10], buf[11]);
        PS_CSA(fa, twos, ta, tb);
        PS_CSA(ta, ones, buf[12], buf[13]);
        PS_CSA(tb, ones, buf[14], buf[15]);
        PS_CSA(fb, twos, ta, tb);
        PS_CSA(eb, fours, fa, fb);
        PS_CSA(s, eights, ea, eb);
        ps_ripple(q, 4u, nq, s);
    }
    for (; k != 0u; --k, ++buf) { /* the last < 16 vectors one at a time */
        uint32_t c = *buf, t;
        t = ones & c, ones ^= c, c = t;
        t = twos & c, twos ^= c, c = t;
        t = fours & c, fours ^= c, c = t;
        t = eights & c, eights ^= c, c = t;
        ps_ripple(q, 4u, nq, c);
    }
    q[0] = ones;
    q[1] = twos;
    q[2] = fours;
    q[3] = eights;
}

/* Lane l of the count planes y[0..n) as a number (bit b = plane b), top plane first. */
BNN_INLINE uint32_t ps_lane(const uint32_t *y, uint32_t n, uint32_t l)
{
    uint32_t f = 0;
#if BNN_THUMB2_ASM
    const uint32_t *p = y + n;
    uint32_t t;
    const uint32_t sh = l + 1u; /* LSRS by l + 1 moves bit l into the carry, ADC shifts it in */
    __asm__ volatile("1:\n\t"
                     "ldr %[t], [%[p], #-4]!\n\t"
                     "lsrs %[t], %[t], %[sh]\n\t"
                     "adc %[f], %[f], %[f]\n\t"
                     "cmp %[p], %[y]\n\t"
                     "bne 1b\n\t"
                     : [f] "+r"(f), [p] "+r"(p), [t] "=&r"(t)
                     : [y] "r"(y), [sh] "r"(sh)
                     : "cc", "memory");
#else
    for (uint32_t b = n; b-- > 0u;) {
        f = f << 1 | ((y[b] >> l) & 1u);
    }
#endif
    return f;
}

/* Lanes where F = 2 Y + e >= c (Y's planes y[0..n), e one plane): the borrow of F - c from plane 0
 * up (c's bit set: borrow |= ~f, else borrow &= ~f); c >= 2^(n+1): none. */
BNN_INLINE uint32_t ps_ge(uint32_t e, const uint32_t *y, uint32_t n, uint32_t c)
{
    if ((c >> (n + 1u)) != 0u) {
        return 0;
    }
    uint32_t borrow = (c & 1u) ? ~e : 0u;
    c >>= 1;
#if BNN_THUMB2_ASM
    const uint32_t *const end = y + n;
    uint32_t t;
    __asm__ volatile("1:\n\t"
                     "ldr %[t], [%[y]], #4\n\t"
                     "lsrs %[c], %[c], #1\n\t"
                     "ite cs\n\t"
                     "orncs %[b], %[b], %[t]\n\t"
                     "biccc %[b], %[b], %[t]\n\t"
                     "cmp %[y], %[end]\n\t"
                     "bne 1b\n\t"
                     : [b] "+r"(borrow), [c] "+r"(c), [y] "+r"(y), [t] "=&r"(t)
                     : [end] "r"(end)
                     : "cc", "memory");
#else
    for (uint32_t b = 0; b < n; ++b, c >>= 1) {
        borrow = (c & 1u) ? (borrow | ~y[b]) : (borrow & ~y[b]);
    }
#endif
    return ~borrow;
}

/* Phase streams of the call: per phase (py, px) and channel c, SW words, bit r Wl + q = input
 * (stride_h r + py - pad_h, stride_w q + px - pad_w) of channel c (0 outside the image).  The runs of
 * pixels of one stream row (every stride_w-th pixel of an input row) are packed 32 to a transpose,
 * several runs to one when the rows are short; seg[] records (slot, length, phase, stream bit) of
 * each run in the block. */
typedef struct {
    uint32_t slot, n, phase, pos;
} ps_seg_t;

static void ps_flush(const bnn_conv_params_t *p, uint32_t *st, uint32_t *blk, uint32_t fill, const ps_seg_t *seg,
                     uint32_t nseg, uint32_t k)
{
    const uint32_t sw = bnn__conv_ps_sw(p), nc = 32u * (k + 1u) <= p->cin ? 32u : p->cin - 32u * k;
    for (uint32_t i = fill; i < 32u; ++i) {
        blk[i] = 0;
    }
    ps_transpose32(blk); /* blk[c] bit i: channel 32 k + c of the pixel in slot i */
    for (uint32_t g = 0; g < nseg; ++g) {
        const uint32_t wi = seg[g].pos / 32u, sh = seg[g].pos % 32u, sl = seg[g].slot;
        const uint32_t mask = seg[g].n == 32u ? ~0u : (1u << seg[g].n) - 1u;
        uint32_t *s = st + (seg[g].phase * p->cin + 32u * k) * sw + wi;
        for (uint32_t c = 0; c < nc; ++c, s += sw) {
            const uint32_t v = (blk[c] >> sl) & mask;
            s[0] |= v << sh;
            if (sh != 0u) {
                s[1] |= v >> (32u - sh);
            }
        }
    }
}

static void ps_streams(const bnn_conv_params_t *p, const bnn_word_t *in, uint32_t *st, uint32_t *blk)
{
    const uint32_t wl = bnn__conv_ps_wl(p), sw = bnn__conv_ps_sw(p), cw = BNN_WORDS(p->cin);
    const uint32_t hl = p->out_h + (p->kh - 1u) / p->stride_h;
    ps_seg_t seg[32];
    memset(st, 0, 4u * p->stride_h * p->stride_w * p->cin * sw);
    for (uint32_t k = 0; k < cw; ++k) {
        uint32_t fill = 0, nseg = 0;
        for (uint32_t y = 0; y < p->in_h; ++y) {
            const uint32_t yp = y + p->pad_h, py = yp % p->stride_h, r = yp / p->stride_h;
            if (r >= hl) {
                continue;
            }
            for (uint32_t px = 0; px < p->stride_w; ++px) {
                /* input columns x with (x + pad_w) % stride_w == px, at stream column q */
                uint32_t x = (px + p->stride_w * (p->pad_w / p->stride_w + 1u) - p->pad_w) % p->stride_w;
                uint32_t q = (x + p->pad_w) / p->stride_w;
                while (x < p->in_w && q < wl) {
                    if (fill == 32u) {
                        ps_flush(p, st, blk, fill, seg, nseg, k);
                        fill = nseg = 0;
                    }
                    ps_seg_t *g = &seg[nseg++];
                    g->slot = fill;
                    g->phase = py * p->stride_w + px;
                    g->pos = r * wl + q;
                    const bnn_word_t *src = in + (y * p->in_w + x) * cw + k;
                    for (g->n = 0; fill < 32u && x < p->in_w && q < wl; ++g->n, ++fill, ++q, x += p->stride_w) {
                        blk[fill] = *src;
                        src += p->stride_w * cw;
                    }
                }
            }
        }
        if (nseg != 0u) {
            ps_flush(p, st, blk, fill, seg, nseg, k);
        }
    }
}

void bnn__conv_ps_bits(const bnn_conv_ps_t *L, const bnn_word_t *in, uint32_t *work, bnn_word_t *out)
{
    const bnn_conv_params_t *p = &L->p;
    const uint32_t cin = p->cin, cout = p->cout, ow = BNN_WORDS(cout), taps = p->kh * p->kw, k = taps * cin;
    const uint32_t wl = bnn__conv_ps_wl(p), sw = bnn__conv_ps_sw(p), nwords = bnn__conv_ps_nwords(p);
    const uint32_t nl = (p->out_h - 1u) * wl + p->out_w, m = L->m;
    uint32_t *st = work;
    uint32_t *buf = st + p->stride_h * p->stride_w * cin * sw;
    uint32_t *cm = buf + k + 1u; /* class masks: (class, lanes) pairs */
    uint32_t *res = cm + 64u;    /* res[o]: output bits of channel o at the word's 32 lanes */
    uint32_t *blk = res + 32u * ow;
    ps_streams(p, in, st, blk);
    buf[k] = 0u;
    for (uint32_t j = 0; j < nwords; ++j) {
        /* the word's tap vectors, shared by every output channel */
        uint32_t *b = buf;
        for (uint32_t ky = 0; ky < p->kh; ++ky) {
            for (uint32_t kx = 0; kx < p->kw; ++kx) {
                const uint32_t ph = (ky % p->stride_h) * p->stride_w + kx % p->stride_w;
                const uint32_t off = 32u * j + ky / p->stride_h * wl + kx / p->stride_w;
                const uint32_t wi = off / 32u, sh = off % 32u;
                const uint32_t *s = st + ph * cin * sw + wi;
                if (sh == 0u) {
                    for (uint32_t c = 0; c < cin; ++c, s += sw) {
                        *b++ = s[0];
                    }
                } else {
                    for (uint32_t c = 0; c < cin; ++c, s += sw) {
                        *b++ = (s[0] >> sh) | (s[1] << (32u - sh));
                    }
                }
            }
        }
        /* NC = 2^m - 1 - Ctot (the complement of Ctot's m planes); F = 2 C + NC = 2 Y + e with
         * Y = C + floor(NC / 2) (the counts start at H = NC's planes 1..m-1) and e = NC's plane 0 */
        uint32_t h[BNN_CONV_PS_PLANES + 2u];
        ps_count_all(buf, k, h, m);
        const uint32_t e = ~h[0];
        for (uint32_t i = 0; i + 1u < m; ++i) {
            h[i] = ~h[i + 1u];
        }
        h[m - 1u] = 0;
        /* the window classes of the word's lanes (lanes past out_w or past the map: none) */
        uint32_t ncm = 0;
        {
            const uint32_t n0 = 32u * j;
            uint32_t oy = n0 / wl, ox = n0 % wl;
            for (uint32_t l = 0; l < 32u && n0 + l < nl; ++l) {
                if (ox < p->out_w) {
                    const uint32_t cls = L->ycls[oy] * L->nx + L->xcls[ox];
                    uint32_t i = 0;
                    while (i < ncm && cm[2u * i] != cls) {
                        ++i;
                    }
                    if (i == ncm) {
                        cm[2u * i] = cls;
                        cm[2u * i + 1u] = 0;
                        ++ncm;
                    }
                    cm[2u * i + 1u] |= 1u << l;
                }
                if (++ox == wl) {
                    ox = 0;
                    ++oy;
                }
            }
        }
        /* the word's commonest class is compared as a whole word; the lanes of the other classes,
         * when they are at most PS_LONE (the border columns of a word inside the map), one by one
         * from their count's bits; else every class as a whole word */
        uint32_t main = 0, lone[PS_LONE], nlone = 0;
        for (uint32_t i = 1; i < ncm; ++i) {
            if (bnn_popcount32(cm[2u * i + 1u]) > bnn_popcount32(cm[2u * main + 1u])) {
                main = i;
            }
        }
        for (uint32_t i = 0; i < ncm && nlone <= PS_LONE; ++i) {
            for (uint32_t msk = i == main ? 0u : cm[2u * i + 1u]; msk != 0u && nlone <= PS_LONE; msk &= msk - 1u) {
                if (nlone < PS_LONE) {
                    lone[nlone] = cm[2u * i] << 8 | (uint32_t)__builtin_ctz(msk); /* class, lane */
                }
                ++nlone;
            }
        }
        const uint32_t whole = nlone > PS_LONE ? ncm : 1u;
        if (nlone > PS_LONE) {
            nlone = 0;
        } else {
            cm[0] = cm[2u * main];
            cm[1] = ~0u;
        }
        /* every output channel: Y = H + its list's sum, compared per class */
        const uint8_t *i8 = L->idx8;
        const uint16_t *i16 = L->idx16;
        for (uint32_t o = 0; o < cout; ++o) {
            const uint32_t len = L->len[o];
            uint32_t q[BNN_CONV_PS_PLANES + 2u];
            for (uint32_t i = 0; i < m; i += 4u) { /* the start values, 4 planes a copy (LDM / STM) */
                memcpy(q + i, h + i, 16u);
            }
            if (k < 256u) {
                ps_count8(buf, i8, len, q, m);
                i8 += len;
            } else {
                ps_count16(buf, i16, len, q, m);
                i16 += len;
            }
            uint32_t r = 0;
            for (uint32_t i = 0; i < whole; ++i) {
                r |= ps_ge(e, q, m, (uint32_t)L->v[cm[2u * i] * cout + o]) & cm[2u * i + 1u];
            }
            for (uint32_t i = 0; i < nlone; ++i) {
                const uint32_t l = lone[i] & 31u;
                const uint32_t f = ps_lane(q, m, l) << 1 | ((e >> l) & 1u);
                const uint32_t bit = f >= (uint32_t)L->v[(lone[i] >> 8) * cout + o];
                r = (r & ~(1u << l)) | (bit << l);
            }
            res[o] = (L->neg[o / 32u] >> (o % 32u)) & 1u ? ~r : r;
        }
        /* back to packed channels per position */
        for (uint32_t g = 0; g < ow; ++g) {
            uint32_t *t = res + 32u * g;
            const uint32_t nch = cout - 32u * g < 32u ? cout - 32u * g : 32u;
            for (uint32_t o = nch; o < 32u; ++o) {
                t[o] = 0;
            }
            ps_transpose32(t); /* t[l] bit o: channel 32 g + o at lane l */
            const uint32_t n0 = 32u * j;
            uint32_t oy = n0 / wl, ox = n0 % wl;
            for (uint32_t l = 0; l < 32u && n0 + l < nl; ++l) {
                if (ox < p->out_w) {
                    out[(oy * p->out_w + ox) * ow + g] = t[l];
                }
                if (++ox == wl) {
                    ox = 0;
                    ++oy;
                }
            }
        }
    }
}

void bnn_conv_ps_bits_ref(const bnn_conv_ps_t *L, const bnn_word_t *in, bnn_word_t *out)
{
    const bnn_conv_params_t *p = &L->p;
    if (!bnn_conv_ps_ok(L)) {
        if (L->pad_minus1) {
            bnn_conv_bits_m1_ref(p, in, L->raw_w, L->thr, out);
        } else {
            bnn_conv_bits_ref(p, in, L->raw_w, L->thr, out);
        }
        return;
    }
    const uint32_t cin = p->cin, cw = BNN_WORDS(cin), ow = BNN_WORDS(p->cout), k = p->kh * p->kw * cin;
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            /* x_i of the window, 0 at padded taps, i = t cin + c */
            uint32_t ctot = 0;
            for (uint32_t i = 0; i < k; ++i) {
                const uint32_t t = i / cin, c = i % cin;
                const int32_t y = (int32_t)(oy * p->stride_h + t / p->kw) - (int32_t)p->pad_h;
                const int32_t x = (int32_t)(ox * p->stride_w + t % p->kw) - (int32_t)p->pad_w;
                if (y >= 0 && x >= 0 && (uint32_t)y < p->in_h && (uint32_t)x < p->in_w) {
                    ctot += (in[((uint32_t)y * p->in_w + (uint32_t)x) * cw + c / 32u] >> (c % 32u)) & 1u;
                }
            }
            const uint32_t cls = L->ycls[oy] * L->nx + L->xcls[ox];
            uint32_t off = 0;
            for (uint32_t o = 0; o < p->cout; ++o) {
                uint32_t sum = 0;
                for (uint32_t e = 0; e < L->len[o]; ++e) {
                    const uint32_t i = k < 256u ? L->idx8[off + e] : L->idx16[off + e];
                    if (i < k) {
                        const uint32_t t = i / cin, c = i % cin;
                        const int32_t y = (int32_t)(oy * p->stride_h + t / p->kw) - (int32_t)p->pad_h;
                        const int32_t x = (int32_t)(ox * p->stride_w + t % p->kw) - (int32_t)p->pad_w;
                        if (y >= 0 && x >= 0 && (uint32_t)y < p->in_h && (uint32_t)x < p->in_w) {
                            sum += (in[((uint32_t)y * p->in_w + (uint32_t)x) * cw + c / 32u] >> (c % 32u)) & 1u;
                        }
                    }
                }
                off += L->len[o];
                const uint32_t f = 2u * sum + ((1u << L->m) - 1u - ctot);
                const uint32_t bit = (f >= (uint32_t)L->v[cls * p->cout + o]) ^ ((L->neg[o / 32u] >> (o % 32u)) & 1u);
                bnn_word_t *wd = &out[(oy * p->out_w + ox) * ow + o / 32u];
                if (o % 32u == 0u) {
                    *wd = 0;
                }
                *wd |= (bnn_word_t)bit << (o % 32u);
            }
        }
    }
}
