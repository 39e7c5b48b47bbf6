/* SPDX-License-Identifier: MIT */
/*
 * bnn_vcols.c -- column-sliced binary popcounts (bnn_vcols.h).  The _ref functions are the
 * plain definitions every fast variant is tested against.
 */
#include "bnn_vcols.h"

#include <stddef.h>

uint32_t bnn_vc_select_ref(const bnn_word_t *x, uint32_t k, uint32_t *idx, uint32_t *n1)
{
    uint32_t ones = 0;
    for (uint32_t i = 0; i < k; ++i) {
        ones += (x[i / 32u] >> (i % 32u)) & 1u;
    }
    *n1 = ones;
    const uint32_t want = ones <= k - ones ? 1u : 0u; /* S1 when it is not the larger set */
    uint32_t m = 0;
    for (uint32_t i = 0; i < k; ++i) {
        if (((x[i / 32u] >> (i % 32u)) & 1u) == want) {
            idx[m++] = i;
        }
    }
    return m;
}

void bnn_vc_count_ref(const bnn_vc_seg_t *seg, uint32_t nseg, bnn_word_t *q, uint32_t nq)
{
    for (uint32_t r = 0; r < 32u; ++r) {
        uint32_t cnt = 0;
        for (uint32_t j = 0; j < nq; ++j) {
            cnt |= ((q[j] >> r) & 1u) << j;
        }
        for (uint32_t s = 0; s < nseg; ++s) {
            for (uint32_t k = 0; k < seg[s].m; ++k) {
                cnt += (seg[s].base[seg[s].idx[k]] >> r) & 1u;
            }
        }
        for (uint32_t j = 0; j < nq; ++j) {
            q[j] = (q[j] & ~(1u << r)) | (((cnt >> j) & 1u) << r);
        }
    }
}

bnn_word_t bnn_vc_ge_ref(const bnn_word_t *q, uint32_t nq, const bnn_word_t *t, uint32_t nt, int32_t bias)
{
    bnn_word_t out = 0;
    for (uint32_t r = 0; r < 32u; ++r) {
        int64_t qv = 0, tv = 0;
        for (uint32_t j = 0; j < nq; ++j) {
            qv |= (int64_t)((q[j] >> r) & 1u) << j;
        }
        for (uint32_t j = 0; j < nt; ++j) {
            tv |= (int64_t)((t[j] >> r) & 1u) << j;
        }
        if ((t[nt - 1u] >> r) & 1u) {
            tv -= (int64_t)1 << nt; /* sign plane set: two's complement over nt planes */
        }
        if (2 * qv >= tv + bias) {
            out |= 1u << r;
        }
    }
    return out;
}

bnn_word_t bnn_vc_ge_const_ref(const bnn_word_t *q, uint32_t nq, uint32_t c)
{
    bnn_word_t out = 0;
    for (uint32_t r = 0; r < 32u; ++r) {
        uint64_t qv = 0;
        for (uint32_t j = 0; j < nq; ++j) {
            qv |= (uint64_t)((q[j] >> r) & 1u) << j;
        }
        out |= (bnn_word_t)(qv >= c) << r;
    }
    return out;
}

void bnn_vc_groups_ref(const bnn_word_t *base, const bnn_vc_group_job_t *job, const bnn_word_t *v, bnn_word_t *out)
{
    const uint32_t nz = job->shape.nz, nv = job->shape.ncopy + 4u;
    for (uint32_t g = 0; g < job->shape.ngroups; ++g) {
        const bnn_word_t *bg = base + g * (job->shape.cbytes / 4u), *vg = v + g * nv;
        bnn_word_t q[BNN_VC_MAX_PLANES];
        for (uint32_t j = 0; j < nz; ++j) {
            q[j] = j < nv ? vg[j] : 0u;
        }
        const bnn_vc_seg_t seg[2] = {{bg, &job->npcol, job->npcol != BNN_VC_NO_COL ? 1u : 0u},
                                     {bg, job->idx, (uint32_t)(job->end - job->idx)}};
        bnn_vc_count_ref(seg, 2u, q, nz);
        out[g] = bnn_vc_ge_const_ref(q, nz, job->c) ^ ~job->nflip;
    }
}

/* ---------------------------------------------------------------- fast variants */

/* ARMv7-M / ARMv8-M mainline: CLZ, RBIT, LDR with a shifted register index (bnn_vc_select's RBIT /
 * CLZ loop and bnn_vc_count16's assembly); elsewhere portable C. */
#if BNN_THUMB2_ASM
#define BNN_VC_T2 1
#else
#define BNN_VC_T2 0
#endif

#if BNN_HAVE_USADA8
/* Adds the set bits of w to n: the bit counts of w's bytes (<= 8 each), summed by USADA8. */
BNN_INLINE uint32_t vc_add_ones(uint32_t n, bnn_word_t w)
{
    w -= (w >> 1) & 0x55555555u;
    w = (w & 0x33333333u) + ((w >> 2) & 0x33333333u);
    w = (w + (w >> 4)) & 0x0F0F0F0Fu;
    __asm__("usada8 %0, %1, %2, %0" : "+r"(n) : "r"(w), "r"(0u));
    return n;
}
#else
#define vc_add_ones(n, w) ((n) + bnn_popcount32_swar(w))
#endif

/* Number of set bits of x[0 .. k-1] (padding bits of the last word ignored). */
static uint32_t vc_ones(const bnn_word_t *x, uint32_t k)
{
    const uint32_t nw = BNN_WORDS(k);
    uint32_t n = 0;
    for (uint32_t j = 0; j + 1u < nw; ++j) {
        n = vc_add_ones(n, x[j]);
    }
    return nw ? vc_add_ones(n, x[nw - 1u] & bnn_tail_mask(k)) : 0u;
}

uint32_t(bnn_vc_select)(const bnn_word_t *x, uint32_t k, uint32_t *idx, uint32_t *n1)
{
    const uint32_t ones = vc_ones(x, k);
    const uint32_t nw = BNN_WORDS(k);
    const bnn_word_t flip = ones <= k - ones ? 0u : ~0u; /* S0: list the zero bits */
    uint32_t *p = idx;
    *n1 = ones;
    for (uint32_t j = 0; j < nw; ++j) {
        bnn_word_t v = x[j] ^ flip;
        if (j + 1u == nw) {
            v &= bnn_tail_mask(k);
        }
        const uint32_t base = 32u * j;
#if BNN_VC_T2
        /* RBIT: bit b of v moves to bit 31 - b, so CLZ gives the lowest index first.  Two indices per
         * round (5 instructions each): the second CLZ of an emptied word is 32, whose mask
         * 0x80000000 >> 32 is 0 (a register LSR by 32), so the round stores base + 32 in the entry
         * past the list and t = 0 tells to step back over it. */
        uint32_t r, c0, c1, t;
        const uint32_t top = 0x80000000u;
        __asm__ volatile("rbit %[r], %[v]\n\t"
                         "cmp %[r], #0\n\t"
                         "beq 2f\n"
                         "1:\n\t"
                         "clz %[c0], %[r]\n\t"
                         "lsr %[t], %[h], %[c0]\n\t"
                         "bic %[r], %[r], %[t]\n\t"
                         "clz %[c1], %[r]\n\t"
                         "lsr %[t], %[h], %[c1]\n\t"
                         "bics %[r], %[r], %[t]\n\t"
                         "add %[c0], %[c0], %[b]\n\t"
                         "add %[c1], %[c1], %[b]\n\t"
                         "strd %[c0], %[c1], [%[p]], #8\n\t"
                         "bne 1b\n\t"
                         "cmp %[t], #0\n\t"
                         "it eq\n\t"
                         "subeq %[p], %[p], #4\n"
                         "2:\n\t"
                         : [r] "=&r"(r), [c0] "=&r"(c0), [c1] "=&r"(c1), [t] "=&r"(t), [p] "+r"(p)
                         : [v] "r"(v), [h] "r"(top), [b] "r"(base)
                         : "cc", "memory");
#elif defined(__arm__)
        /* no CLZ (ARMv6-M): walk the bits up to the highest one, 4 instructions per bit (+1 per listed
         * one): the bit shifted out into the carry flag, the Z flag of the same LSRS ends the walk */
        uint32_t b = base - 1u;
        __asm__ volatile("cmp %[v], #0\n\t"
                         "beq 2f\n"
                         "1:\n\t"
                         "add %[b], #1\n\t" /* ADDS and LSRS (gcc's Thumb-1 inline asm: divided syntax) */
                         "lsr %[v], #1\n\t"
                         "bcc 3f\n\t"
                         "stmia %[p]!, {%[b]}\n"
                         "3:\n\t"
                         "bne 1b\n"
                         "2:\n\t"
                         : [v] "+l"(v), [b] "+l"(b), [p] "+l"(p)
                         :
                         : "cc", "memory");
#else
        while (v) {
            const uint32_t c = (uint32_t)__builtin_ctz(v);
            *p++ = base + c;
            v &= v - 1u;
        }
#endif
    }
    return (uint32_t)(p - idx);
}

#if BNN_VC_T2
/*
 * Harley-Seal over whole blocks of 16 columns (bnn_vcols.h).  Registers: r0 column base, r1 index
 * pointer, r2 end of the indices, r4-r7 the planes ones, twos, fours, eights, r8-r11 four columns
 * (after LDM: their indices), r12 the CSA temporary, lr foursA (the fours carry of the first 8
 * columns of a half), r3 eightsA / the sixteens word.  [sp] = q + 4 planes (where the ripple
 * starts; the block stores r4-r7 below it at the end).
 * CSA(h -> a, l, a, b):  t = a ^ b;  a &= b;  b = t & l;  l ^= t;  a |= b   (5 ALU ops).
 */
#define VC_QUAD(H)                                                                      \
    "ldm r1!, {r8-r11}\n\t"                                                            \
    "ldr r8, [r0, r8, lsl #2]\n\t"                                                     \
    "ldr r9, [r0, r9, lsl #2]\n\t"                                                     \
    "ldr r10, [r0, r10, lsl #2]\n\t"                                                   \
    "ldr r11, [r0, r11, lsl #2]\n\t"                                                   \
    /* twosA (r8) from ones and columns 0, 1 */                                        \
    "eor r12, r8, r9\n\t"                                                              \
    "and r8, r8, r9\n\t"                                                               \
    "and r9, r12, r4\n\t"                                                              \
    "eor r4, r4, r12\n\t"                                                              \
    "orr r8, r8, r9\n\t"                                                               \
    /* twosB (r10) from ones and columns 2, 3 */                                       \
    "eor r12, r10, r11\n\t"                                                            \
    "and r10, r10, r11\n\t"                                                            \
    "and r11, r12, r4\n\t"                                                             \
    "eor r4, r4, r12\n\t"                                                              \
    "orr r10, r10, r11\n\t"                                                            \
    /* a fours word (H) from twos, twosA, twosB */                                     \
    "eor r12, r8, r10\n\t"                                                             \
    "and r8, r8, r10\n\t"                                                              \
    "and r10, r12, r5\n\t"                                                             \
    "eor r5, r5, r12\n\t"                                                              \
    "orr " H ", r8, r10\n\t"

/* One block of 16 columns (r1 advances by 16 indices), ending with the sixteens word rippled into
 * q[4 ..]; RIPPLE_Q4 loads the address of q[4] into r12 (only run when some lane carries). */
#define VC_BLOCK16(RIPPLE_Q4)                                                           \
    VC_QUAD("lr")   /* foursA */                                                       \
    VC_QUAD("r8")   /* foursB */                                                       \
    /* eightsA (r3) from fours, foursA, foursB */                                      \
    "eor r12, lr, r8\n\t"                                                              \
    "and lr, lr, r8\n\t"                                                               \
    "and r8, r12, r6\n\t"                                                              \
    "eor r6, r6, r12\n\t"                                                              \
    "orr r3, lr, r8\n\t"                                                               \
    VC_QUAD("lr")                                                                      \
    VC_QUAD("r8")                                                                      \
    /* eightsB (lr) */                                                                 \
    "eor r12, lr, r8\n\t"                                                              \
    "and lr, lr, r8\n\t"                                                               \
    "and r8, r12, r6\n\t"                                                              \
    "eor r6, r6, r12\n\t"                                                              \
    "orr lr, lr, r8\n\t"                                                               \
    /* sixteens (r3) from eights, eightsA, eightsB; Z set when no lane carries */      \
    "eor r12, r3, lr\n\t"                                                              \
    "and r3, r3, lr\n\t"                                                               \
    "and lr, r12, r7\n\t"                                                              \
    "eor r7, r7, r12\n\t"                                                              \
    "orrs r3, r3, lr\n\t"                                                              \
    "beq 2f\n\t"                                                                       \
    RIPPLE_Q4 "\n"                                                                     \
    /* ripple the sixteens into q[4 ..]: q ^= c, c &= old q, until c == 0 */           \
    "4:\n\t"                                                                           \
    "ldr r8, [r12]\n\t"                                                                \
    "eor r9, r8, r3\n\t"                                                               \
    "ands r3, r3, r8\n\t"                                                              \
    "str r9, [r12], #4\n\t"                                                            \
    "bne 4b\n"                                                                         \
    "2:\n\t"

__attribute__((naked)) void bnn_vc_count16(const bnn_word_t *base __attribute__((unused)),
                                           const uint32_t *idx __attribute__((unused)),
                                           const uint32_t *end __attribute__((unused)),
                                           bnn_word_t *q __attribute__((unused)))
{
    __asm__ volatile(".syntax unified\n\t"
                     "push {r4-r11, lr}\n\t"
                     "ldm r3!, {r4-r7}\n\t" /* the planes 1, 2, 4, 8; r3 = q + 4 */
                     "push {r3}\n\t"
                     "cmp r1, r2\n\t"
                     "beq 3f\n"
                     "1:\n\t"
                     VC_BLOCK16("ldr r12, [sp]")
                     "cmp r1, r2\n\t"
                     "bne 1b\n"
                     "3:\n\t"
                     "pop {r3}\n\t"
                     "stmdb r3, {r4-r7}\n\t"
                     "pop {r4-r11, pc}\n\t");
}

/* VC_BLOCK16 with the plane 16 in r2: the sixteens word added into it, the thirty-twos carry
 * rippled into q[5 ..] from sp + 20 (r3 the pointer; only run when some lane carries). */
#define VC_BLOCK16_P4                                                                   \
    VC_QUAD("lr")                                                                      \
    VC_QUAD("r8")                                                                      \
    "eor r12, lr, r8\n\t"                                                              \
    "and lr, lr, r8\n\t"                                                               \
    "and r8, r12, r6\n\t"                                                              \
    "eor r6, r6, r12\n\t"                                                              \
    "orr r3, lr, r8\n\t"                                                               \
    VC_QUAD("lr")                                                                      \
    VC_QUAD("r8")                                                                      \
    "eor r12, lr, r8\n\t"                                                              \
    "and lr, lr, r8\n\t"                                                               \
    "and r8, r12, r6\n\t"                                                              \
    "eor r6, r6, r12\n\t"                                                              \
    "orr lr, lr, r8\n\t"                                                               \
    /* sixteens (r3) from eights, eightsA, eightsB, then into the plane 16 (r2) */     \
    "eor r12, r3, lr\n\t"                                                              \
    "and r3, r3, lr\n\t"                                                               \
    "and lr, r12, r7\n\t"                                                              \
    "eor r7, r7, r12\n\t"                                                              \
    "orr r3, r3, lr\n\t"                                                               \
    "ands r12, r2, r3\n\t"                                                             \
    "eor r2, r2, r3\n\t"                                                               \
    "beq 2f\n\t"                                                                       \
    "add r3, sp, #20\n"                                                                \
    "4:\n\t"                                                                           \
    "ldr r8, [r3]\n\t"                                                                 \
    "eor r9, r8, r12\n\t"                                                              \
    "ands r12, r12, r8\n\t"                                                            \
    "str r9, [r3], #4\n\t"                                                             \
    "bne 4b\n"                                                                         \
    "2:\n\t"

/*
 * bnn_vc_groups (bnn_vcols.h) in one call for all groups.  Frame: [sp] = job, [sp + 4] = out,
 * [sp + 8] = out + ngroups, [sp + 12] = the next group's start values, [sp + 16] = the list's end,
 * q[j] at sp + 20 + 4 (j - 5) (the planes 5 .. nz - 1 live there; 0 .. 3 in r4-r7 as in
 * bnn_vc_count16 and 4 in r2).  r0 = the group's columns, r1 = job, r10 = its start values at the
 * group's start (the groups' start values follow each other, so r10 after the copy is the next
 * group's).  Per group: LDM of V's planes 0 .. 3 (nv >= 4), plane 4 loaded, planes 5 .. nv - 1
 * copied (q[5 .. nz - 1] are zeroed once per call and then by each group's compare as it reads
 * them, so nv .. nz - 1 start at 0), the npcol column rippled in (planes 0 .. 4 in registers, the
 * carry out of plane 4 through memory), the blocks of 16 columns (VC_BLOCK16_P4), then the
 * compare (borrow of Q - c, plane 0 up): c's bit j shifted into the carry flag, then
 * borrow |= ~q[j] (bit set) or borrow &= ~q[j] (clear): 4 instructions per register plane, 8 per
 * plane in memory; the output word is borrow ^ ~flip.
 */
/* the assembly below reads the job at these offsets (32-bit pointers) */
typedef char bnn__vc_job_layout[(offsetof(bnn_vc_group_job_t, end) == 4u && offsetof(bnn_vc_group_job_t, c) == 8u &&
                                 offsetof(bnn_vc_group_job_t, shape.nz) == 12u &&
                                 offsetof(bnn_vc_group_job_t, shape.ncopy) == 16u &&
                                 offsetof(bnn_vc_group_job_t, shape.ngroups) == 20u &&
                                 offsetof(bnn_vc_group_job_t, shape.cbytes) == 24u &&
                                 offsetof(bnn_vc_group_job_t, nflip) == 28u && offsetof(bnn_vc_group_job_t, npcol) == 32u)
                                    ? 1
                                    : -1];

__attribute__((naked)) void bnn_vc_groups(const bnn_word_t *base __attribute__((unused)),
                                          const bnn_vc_group_job_t *job __attribute__((unused)),
                                          const bnn_word_t *v __attribute__((unused)),
                                          bnn_word_t *out __attribute__((unused)))
{
    __asm__ volatile(".syntax unified\n\t"
                     "push {r4-r11, lr}\n\t"
                     "sub sp, sp, #96\n\t"              /* job, out, out end, v, end, q[5 .. 23] */
                     "ldr r12, [r1, #20]\n\t"           /* ngroups */
                     "str r1, [sp]\n\t"
                     "add r12, r3, r12, lsl #2\n\t"
                     "strd r3, r12, [sp, #4]\n\t"
                     "ldr r12, [r1, #4]\n\t"            /* the list's end */
                     "str r12, [sp, #16]\n\t"
                     "mov r10, r2\n\t"
                     "ldr r3, [r1, #12]\n\t"            /* nz: zero q[5 .. nz - 1] once (the compare */
                     "add r12, sp, #20\n\t"             /* zeroes them after each group) */
                     "movs r8, #0\n\t"
                     "subs r3, r3, #5\n\t"
                     "bls 20f\n"
                     "7:\n\t"
                     "str r8, [r12], #4\n\t"
                     "subs r3, r3, #1\n\t"
                     "bne 7b\n"
                     "20:\n\t"                           /* one group: r0 columns, r1 job, r10 start values */
                     "ldm r10!, {r4-r7}\n\t"            /* V's planes 0 .. 3 */
                     "ldr r3, [r1, #16]\n\t"            /* ncopy = nv - 4 (planes nv .. nz - 1 are 0) */
                     "movs r2, #0\n\t"
                     "cbz r3, 8f\n\t"
                     "ldr r2, [r10], #4\n\t"            /* plane 4 */
                     "subs r3, r3, #1\n\t"
                     "beq 8f\n\t"
                     "add r12, sp, #20\n"               /* &q[5] */
                     "5:\n\t"
                     "ldr r11, [r10], #4\n\t"
                     "str r11, [r12], #4\n\t"
                     "subs r3, r3, #1\n\t"
                     "bne 5b\n"
                     "8:\n\t"
                     "str r10, [sp, #12]\n\t"           /* the next group's start values */
                     "ldr r3, [r1, #32]\n\t"            /* npcol */
                     "ldr r1, [r1]\n\t"                 /* idx */
                     "cbz r3, 13f\n\t"                  /* BNN_VC_NO_COL */
                     "ldr r3, [r0, r3, lsl #2]\n\t"     /* the column, rippled into planes 0 .. 4 */
                     "and r9, r4, r3\n\t"
                     "eor r4, r4, r3\n\t"
                     "and r3, r5, r9\n\t"
                     "eor r5, r5, r9\n\t"
                     "and r9, r6, r3\n\t"
                     "eor r6, r6, r3\n\t"
                     "and r3, r7, r9\n\t"
                     "eor r7, r7, r9\n\t"
                     "ands r12, r2, r3\n\t"
                     "eor r2, r2, r3\n\t"
                     "beq 13f\n\t"
                     "add r3, sp, #20\n\t"             /* and on into q[5 ..]: the blocks' ripple, */
                     "b 4f\n"                           /* which goes on to the list's end test */
                     "13:\n\t"
                     "ldr r3, [sp, #16]\n\t"
                     "cmp r1, r3\n\t"
                     "beq 3f\n"
                     "1:\n\t"
                     VC_BLOCK16_P4
                     "ldr r3, [sp, #16]\n\t"
                     "cmp r1, r3\n\t"
                     "bne 1b\n"
                     "3:\n\t"
                     /* compare with c over nz planes */
                     "ldr lr, [sp]\n\t"
                     "ldrd r1, r11, [lr, #8]\n\t"       /* c, nz */
                     "lsrs r3, r1, r11\n\t"
                     "bne 9f\n\t"                       /* c >= 2^nz: above every count */
                     "lsrs r1, r1, #1\n\t"
                     "ite cs\n\t"
                     "mvncs r3, r4\n\t"                 /* borrow from 0: ~q[0] or 0 */
                     "movcc r3, #0\n\t"
                     "lsrs r1, r1, #1\n\t"
                     "ite cs\n\t"
                     "orncs r3, r3, r5\n\t"
                     "biccc r3, r3, r5\n\t"
                     "lsrs r1, r1, #1\n\t"
                     "ite cs\n\t"
                     "orncs r3, r3, r6\n\t"
                     "biccc r3, r3, r6\n\t"
                     "lsrs r1, r1, #1\n\t"
                     "ite cs\n\t"
                     "orncs r3, r3, r7\n\t"
                     "biccc r3, r3, r7\n\t"
                     "subs r11, r11, #4\n\t"
                     "beq 11f\n\t"
                     "lsrs r1, r1, #1\n\t"            /* plane 4 */
                     "ite cs\n\t"
                     "orncs r3, r3, r2\n\t"
                     "biccc r3, r3, r2\n\t"
                     "subs r11, r11, #1\n\t"
                     "beq 11f\n\t"
                     "add r12, sp, #20\n\t"
                     "movs r9, #0\n"
                     "10:\n\t"
                     "ldr r8, [r12]\n\t"
                     "str r9, [r12], #4\n\t"          /* q[j] = 0 for the next group */
                     "lsrs r1, r1, #1\n\t"
                     "ite cs\n\t"
                     "orncs r3, r3, r8\n\t"
                     "biccc r3, r3, r8\n\t"
                     "subs r11, r11, #1\n\t"
                     "bne 10b\n"
                     "11:\n\t"                           /* r3 = borrow: out = ~borrow ^ flip */
                     "ldrd r8, r9, [lr, #24]\n\t"       /* 4 cstride, ~flip */
                     "eor r3, r3, r9\n\t"
                     "add r0, r0, r8\n\t"
                     "ldm sp, {r1, r8, r9, r10}\n\t"   /* job, out, out end, v */
                     "str r3, [r8], #4\n\t"
                     "str r8, [sp, #4]\n\t"
                     "cmp r8, r9\n\t"
                     "bne 20b\n\t"
                     "add sp, sp, #96\n\t"
                     "pop {r4-r11, pc}\n"
                     "9:\n\t"                            /* every lane borrows: 0 before the flip (c is */
                     "mvn r3, #0\n\t"                   /* the call's: every group comes here, so q[5 ..] */
                     "b 11b\n\t");                      /* need not be zeroed) */
}
#undef VC_BLOCK16_P4
#undef VC_BLOCK16
#undef VC_QUAD
#else
void(bnn_vc_count16)(const bnn_word_t *base, const uint32_t *idx, const uint32_t *end, bnn_word_t *q)
{
    bnn_word_t ones = q[0], twos = q[1], fours = q[2], eights = q[3];
#define VC_CSA(h, l, a, b)                                                                  \
    do {                                                                                    \
        const bnn_word_t t_ = (a) ^ (b);                                                   \
        (h) = ((a) & (b)) | (t_ & (l));                                                    \
        (l) ^= t_;                                                                          \
    } while (0)
    for (; idx != end; idx += 16) {
        bnn_word_t ta, tb, fa, fb, ea, eb, s;
        VC_CSA(ta, ones, base[idx[0]], base[idx[1]]);
        VC_CSA(tb, ones, base[idx[2]], base[idx[3]]);
        VC_CSA(fa, twos, ta, tb);
        VC_CSA(ta, ones, base[idx[4]], base[idx[5]]);
        VC_CSA(tb, ones, base[idx[6]], base[idx[7]]);
        VC_CSA(fb, twos, ta, tb);
        VC_CSA(ea, fours, fa, fb);
        VC_CSA(ta, ones, base[idx[8]], base[idx[9]]);
        VC_CSA(tb, ones, base[idx[10]], base[idx[11]]);
        VC_CSA(fa, twos, ta, tb);
        VC_CSA(ta, ones, base[idx[12]], base[idx[13]]);
        VC_CSA(tb, ones, base[idx[14]], base[idx[15]]);
        VC_CSA(fb, twos, ta, tb);
        VC_CSA(eb, fours, fa, fb);
        VC_CSA(s, eights, ea, eb);
        for (bnn_word_t *p = q + 4; s; ++p) { /* the bound on Q stops the carry by plane nq - 1 */
            const bnn_word_t old = *p;
            *p = old ^ s;
            s &= old;
        }
    }
#undef VC_CSA
    q[0] = ones;
    q[1] = twos;
    q[2] = fours;
    q[3] = eights;
}

void(bnn_vc_groups)(const bnn_word_t *base, const bnn_vc_group_job_t *job, const bnn_word_t *v, bnn_word_t *out)
{
    bnn__vc_groups_c(base, job, v, out);
}
#endif

void(bnn_vc_count)(const bnn_vc_seg_t *seg, uint32_t nseg, bnn_word_t *q, uint32_t nq)
{
    for (uint32_t s = 0; s < nseg; ++s) {
        const bnn_word_t *base = seg[s].base;
        const uint32_t *idx = seg[s].idx;
        const uint32_t whole = seg[s].m & ~15u;
        if (whole) {
            bnn_vc_count16(base, idx, idx + whole, q);
        }
        for (uint32_t k = whole; k < seg[s].m; ++k) { /* the last < 16 columns: ripple each one */
            bnn_word_t c = base[idx[k]];
            for (uint32_t j = 0; c && j < nq; ++j) {
                const bnn_word_t old = q[j];
                q[j] = old ^ c;
                c &= old;
            }
        }
    }
}

bnn_word_t(bnn_vc_ge)(const bnn_word_t *q, uint32_t nq, const bnn_word_t *t, uint32_t nt, int32_t bias)
{
    /* planes of bias as a signed number: the first plane past which it is all sign */
    const uint32_t mag = bias < 0 ? ~(uint32_t)bias : (uint32_t)bias;
    const uint32_t nb = 33u - (uint32_t)__builtin_clz(mag | 1u); /* >= bit length + 1 */
    uint32_t nu = nt > nb ? nt : nb;
    const uint32_t len = (nq + 2u > nu + 1u) ? nq + 2u : nu + 1u;
    bnn_word_t carry = 0, borrow = 0, u = 0;
    for (uint32_t j = 0; j < len; ++j) {
        const bnn_word_t tj = t[j < nt ? j : nt - 1u];
        const bnn_word_t aj = (j >= 1u && j <= nq) ? q[j - 1u] : 0u; /* A = 2 Q */
        if (((uint32_t)bias >> (j < 31u ? j : 31u)) & 1u) {  /* U = T + bias, bias bit j = 1 */
            u = ~(tj ^ carry);
            carry = tj | carry;
        } else {
            u = tj ^ carry;
            carry = tj & carry;
        }
        /* borrow of A - U: (U > A in this plane) or (equal and borrow in) */
        borrow = (u & ~aj) | (borrow & ~(aj ^ u));
    }
    /* 2 Q - U over len + 1 planes: A's top plane is 0 and U's is its sign (= u of the last plane) */
    return ~(u ^ borrow);
}

bnn_word_t(bnn_vc_ge_const)(const bnn_word_t *q, uint32_t nq, uint32_t c)
{
    if (nq < 32u && (c >> nq) != 0u) {
        return 0; /* c >= 2^nq: above every count */
    }
    bnn_word_t borrow = 0; /* lanes where Q (low planes so far) < c (low bits so far) */
    for (uint32_t j = 0; j < nq; ++j, c >>= 1) {
        borrow = (c & 1u) ? (borrow | ~q[j]) : (borrow & ~q[j]);
    }
    return ~borrow;
}
