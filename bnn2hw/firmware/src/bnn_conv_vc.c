/* SPDX-License-Identifier: MIT */
/* bnn_conv_vc.c -- binary conv2d on column-sliced counts (method and layout: bnn_conv_vc.h). */
#include "bnn_conv_vc.h"

int bnn_conv_vc_ok(const bnn_conv_vc_t *L)
{
    const bnn_conv_params_t *p = &L->p;
    if (L->npos < 1u || p->kh < 1u || p->kw < 1u || p->kh > 16u || p->cin < 1u || p->cout < 1u ||
        p->stride_w < 1u || p->stride_h < 1u) {
        return 0;
    }
    if ((p->cout % 32u) * L->npos > 32u || (p->cout % 32u == 0u && L->npos != 1u)) {
        return 0;
    }
    if (BNN_CONV_VC_KWE(L) > 16u || p->kh * BNN_CONV_VC_KWE(L) > BNN_CONV_VC_TAPS || p->kh * p->kw > 32u) {
        return 0;
    }
    if (!L->table_complete && L->ctap == NULL) {
        return 0; /* the class builds read ctap */
    }
    return bnn_conv_vc_nt(L) <= BNN_VC_MAX_PLANES;
}

/* Padded kernel rows of output row oy (bit ky: input row oy stride_h - pad_h + ky outside the map). */
static uint32_t vc_vkey(const bnn_conv_params_t *p, uint32_t oy)
{
    const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
    uint32_t k = 0;
    for (uint32_t ky = 0; ky < p->kh; ++ky) {
        const int32_t y = y0 + (int32_t)ky;
        if (y < 0 || y >= (int32_t)p->in_h) {
            k |= 1u << ky;
        }
    }
    return k;
}

/* Padded extended columns of the step at ox (bits 0..kwe-1: window column x0 + k' outside the
 * map): vc_row's hkey. */
static uint32_t vc_hkey(const bnn_conv_params_t *p, uint32_t ox, uint32_t kwe)
{
    const int32_t x0 = (int32_t)(ox * p->stride_w) - (int32_t)p->pad_w;
    const uint32_t xs = x0 < 0 ? 0u : (uint32_t)x0;
    const int32_t xe_ = x0 + (int32_t)kwe;
    const uint32_t xe = xe_ > (int32_t)p->in_w ? p->in_w : (xe_ < (int32_t)xs ? xs : (uint32_t)xe_);
    return ((1u << kwe) - 1u) & ~(((1u << (xe - xs)) - 1u) << (uint32_t)((int32_t)xs - x0));
}

static int in_table(const bnn_conv_vc_t *L, uint32_t key)
{
    const uint32_t pstride = 1u + BNN_CONV_VC_GROUPS(L) * 4u * bnn_conv_vc_nt(L);
    for (uint32_t c = 0; c < L->nclass; ++c) {
        if (L->classes[c * pstride] == key) {
            return 1;
        }
    }
    return 0;
}

/*
 * The distinct keys of a call: per group run (the full groups, one position a step; the tail
 * group when column-sliced, npos a step) every output row meets every step, so the keys are the
 * product of the rows' and the steps' patterns.  As oy grows the padded rows above shrink and
 * those below grow, so equal patterns are consecutive (the same for the columns): comparing with
 * the previous one lists each once; the interior rows and steps (pattern 0) between the first and
 * the last are skipped, so a call's check costs O(border) steps, not O(out_h + out_w).  missing
 * (not NULL): counts the keys not in L->classes.
 */
static uint32_t class_keys(const bnn_conv_vc_t *L, uint32_t *keys, uint32_t cap, uint32_t *missing)
{
    const bnn_conv_params_t *p = &L->p;
    const uint32_t ct = p->cout % 32u;
    uint32_t n = 0;
    for (uint32_t tail = 0; tail < 2u; ++tail) {
        if (tail ? (ct == 0u || L->tail_rows != NULL) : BNN_CONV_VC_FULL(L) == 0u) {
            continue;
        }
        const uint32_t np = tail ? L->npos : 1u, kwe = tail ? BNN_CONV_VC_KWE(L) : p->kw;
        /* interior rows ya .. yb (window inside the map) and interior steps xa .. xb (multiples
         * of np); yb, xb as signed: below the first when there are none */
        const uint32_t ya = (p->pad_h + p->stride_h - 1u) / p->stride_h;
        const int32_t yb = ((int32_t)(p->in_h + p->pad_h) - (int32_t)p->kh) < 0 ? -1 :
                           ((int32_t)(p->in_h + p->pad_h) - (int32_t)p->kh) / (int32_t)p->stride_h;
        const uint32_t xa = ((p->pad_w + p->stride_w - 1u) / p->stride_w + np - 1u) / np * np;
        const int32_t xr = (int32_t)(p->in_w + p->pad_w) - (int32_t)kwe;
        const int32_t xb = xr < 0 ? -1 : xr / (int32_t)p->stride_w / (int32_t)np * (int32_t)np;
        uint32_t vprev = 0;
        for (uint32_t oy = 0; oy < p->out_h; ++oy) {
            if (oy > ya && (int32_t)oy < yb) {
                oy = (uint32_t)yb; /* rows ya + 1 .. yb - 1: pattern 0, as ya's */
            }
            const uint32_t vk = vc_vkey(p, oy);
            if (oy != 0u && vk == vprev) {
                continue;
            }
            vprev = vk;
            uint32_t hprev = 0;
            for (uint32_t ox = 0; ox < p->out_w; ox += np) {
                if (ox > xa && (int32_t)ox < xb) {
                    ox = (uint32_t)xb; /* steps between xa and xb: pattern 0, as xa's */
                }
                const uint32_t hk = vc_hkey(p, ox, kwe);
                if (ox != 0u && hk == hprev) {
                    continue;
                }
                hprev = hk;
                const uint32_t key = (tail << 31) | (vk << 16) | hk;
                if (keys != NULL && n < cap) {
                    keys[n] = key;
                }
                if (missing != NULL && !in_table(L, key)) {
                    ++*missing;
                }
                ++n;
            }
        }
    }
    return n;
}

uint32_t bnn_conv_vc_class_keys(const bnn_conv_vc_t *L, uint32_t *keys, uint32_t cap)
{
    return class_keys(L, keys, cap, NULL);
}

int bnn_conv_vc_table_covers(const bnn_conv_vc_t *L)
{
    uint32_t missing = 0;
    class_keys(L, NULL, 0u, &missing);
    return missing == 0u;
}

/* Weight bit of channel o at tap (ky, kx), input channel c, read from the columns (its lane at
 * position j = 0 of a tail step; the columns of j > 0 are checked by the fast path's tests). */
static uint32_t col_bit(const bnn_conv_vc_t *L, uint32_t o, uint32_t ky, uint32_t kx, uint32_t c)
{
    const uint32_t cin = L->p.cin, kh = L->p.kh, kw = L->p.kw, gf = BNN_CONV_VC_FULL(L);
    if (o < 32u * gf) {
        return (L->cols[((o / 32u * kh + ky) * kw + kx) * cin + c] >> (o % 32u)) & 1u;
    }
    const bnn_word_t *tail = L->cols + gf * kh * kw * cin;
    return (tail[(ky * BNN_CONV_VC_KWE(L) + kx) * cin + c] >> (o - 32u * gf)) & 1u;
}

void bnn_conv_vc_bits_ref(const bnn_conv_vc_t *L, const bnn_word_t *in, bnn_word_t *out)
{
    const bnn_conv_params_t *p = &L->p;
    const uint32_t cw = BNN_WORDS(p->cin), ow = BNN_WORDS(p->cout);
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            bnn_word_t *dst = out + (oy * p->out_w + ox) * ow;
            for (uint32_t k = 0; k < ow; ++k) {
                dst[k] = 0;
            }
            for (uint32_t o = 0; o < p->cout; ++o) {
                int64_t acc = 0;
                for (uint32_t ky = 0; ky < p->kh; ++ky) {
                    const int32_t y = (int32_t)(oy * p->stride_h + ky) - (int32_t)p->pad_h;
                    for (uint32_t kx = 0; kx < p->kw; ++kx) {
                        const int32_t x = (int32_t)(ox * p->stride_w + kx) - (int32_t)p->pad_w;
                        const int inside = y >= 0 && y < (int32_t)p->in_h && x >= 0 && x < (int32_t)p->in_w;
                        if (!inside && !L->pad_minus1) {
                            continue; /* zero padding: the tap contributes 0 */
                        }
                        for (uint32_t c = 0; c < p->cin; ++c) {
                            const uint32_t a = inside ? (uint32_t)bnn_get_bit(in + ((uint32_t)y * p->in_w + (uint32_t)x) * cw, c)
                                                      : 0u; /* -1 padding: the activation -1 */
                            acc += a == col_bit(L, o, ky, kx, c) ? 1 : -1;
                        }
                    }
                }
                bnn_put_bit(dst, o, acc >= L->thr[o]);
            }
        }
    }
}

/* floor(a / 2) for any sign. */
static int32_t floor_half(int32_t a)
{
    return a >= 0 ? a / 2 : -((1 - a) / 2);
}

static int32_t clamp32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* 32 x 32 bit transpose (Hacker's Delight 7-3): a[31 - l] bit 31 - b <- a[31 - b] bit 31 - l,
 * i.e. with a[31 - l] = v_l on entry, a[31 - b] bit l = bit b of v_l on exit. */
static void transpose32(uint32_t *a)
{
    uint32_t m = 0x0000FFFFu;
    for (uint32_t j = 16u; j != 0u; j >>= 1, m ^= m << j) {
        for (uint32_t k = 0; k < 32u; k = (k + j + 1u) & ~j) {
            const uint32_t t = (a[k] ^ (a[k + j] >> j)) & m;
            a[k] ^= t;
            a[k + j] ^= t << j;
        }
    }
}

/*
 * The compare planes (nt each: S1 even, S1 odd, S0 even, S0 odd; method in bnn_conv_vc.h) of
 * the border class `key` (bits 0..15: padded extended columns kx', bits 16..30: padded kernel
 * rows ky, bit 31: the tail group), for every full group (Gf entries) or for the tail group
 * (one).  Lanes outside the layer get 2^nq: their compare is never true (masked anyway).
 * int32 throughout: thr is clamped to [-(K + 1), K + 1] first (|acc| <= K, so the compare does
 * not change) and nt <= BNN_VC_MAX_PLANES bounds K below 2^23.
 */
void bnn__conv_vc_class_planes(const bnn_conv_vc_t *L, const int32_t *chan, uint32_t key, uint32_t nt,
                               bnn_word_t *planes)
{
    const bnn_conv_params_t *p = &L->p;
    const uint32_t kk = p->kh * p->kw, gf = BNN_CONV_VC_FULL(L), tail = key >> 31;
    const uint32_t ng = tail ? 1u : gf, cpl = tail ? p->cout % 32u : 32u, np = tail ? L->npos : 1u;
    const int32_t top = (int32_t)1 << (nt - 1u), w = (int32_t)bnn__conv_vc_w(L);
    const int32_t cin = (int32_t)p->cin;
    uint32_t padm[32u]; /* bit t: tap t of position j is in the padding (kk <= 32) */
    int32_t npad[32u];
    for (uint32_t j = 0; j < np; ++j) {
        padm[j] = 0u;
        for (uint32_t t = 0; t < kk; ++t) {
            const uint32_t ky = t / p->kw, kxe = t % p->kw + j * p->stride_w;
            if ((((key >> 16) & 0x7FFFu) >> ky) & 1u || (key >> kxe) & 1u) {
                padm[j] |= 1u << t;
            }
        }
        npad[j] = (int32_t)bnn_popcount32(padm[j]);
    }
    for (uint32_t g = 0; g < ng; ++g) {
        uint32_t a1[32], a0[32]; /* lane values of the even sets, then (transposed) their planes */
        bnn_word_t inc1 = 0, inc0 = 0; /* lanes whose odd value is the even one + 1 (T even) */
        for (uint32_t lane = 0; lane < 32u; ++lane) {
            const uint32_t j = lane / cpl, o = (tail ? 32u * gf : 32u * g) + lane % cpl;
            int32_t v1 = top, v0 = top;
            if (j < np) {
                const int16_t *ct = L->ctap + o * kk;
                int32_t A = chan[2u * o], call = chan[2u * o + 1u], cpad = 0;
                for (uint32_t m = padm[j]; m; m &= m - 1u) {
                    cpad += ct[(uint32_t)__builtin_ctz(m)];
                }
                if (!L->pad_minus1) {
                    A += npad[j] * cin - 2 * cpad; /* zero padding correction */
                }
                /* S0: the padded taps' columns are not counted (their pixels are not listed): the
                 * threshold takes their 2 C_pad instead */
                const int32_t t1 = -floor_half(-A), t0 = floor_half(4 * call - A) + 1 - 2 * cpad;
                /* ceil((T + e) / 2) + W: e = 0 here; e = 1 adds 1 where T is even */
                v1 = clamp32(-floor_half(-t1) + w, 0, top);
                v0 = clamp32(-floor_half(-t0) + w, 0, top);
                inc1 |= (bnn_word_t)((t1 & 1) == 0) << lane;
                inc0 |= (bnn_word_t)((t0 & 1) == 0) << lane;
            }
            a1[31u - lane] = (uint32_t)v1;
            a0[31u - lane] = (uint32_t)v0;
        }
        transpose32(a1);
        transpose32(a0);
        /* sets: S1 even, S1 odd, S0 even, S0 odd; an odd set = the even one + inc, bit-sliced (a
         * clamped 0 becomes 1: still always met, Q' >= 1; a clamped 2^nq becomes 2^nq + 1: still
         * never, within nq + 1 planes) */
        bnn_word_t *dst = planes + g * 4u * nt;
        for (uint32_t k = 0; k < 2u; ++k) {
            const uint32_t *a = k ? a0 : a1;
            bnn_word_t c = k ? inc0 : inc1;
            bnn_word_t *ev = dst + 2u * k * nt, *od = ev + nt;
            for (uint32_t b = 0; b < nt; ++b) {
                const bnn_word_t x = a[31u - b];
                ev[b] = x;
                od[b] = x ^ c;
                c &= x;
            }
        }
    }
}

/* Bit r = (Q'_r >= U_r): Q' over nq planes, U over nq + 1 (a borrow chain of Q' - U). */
BNN_INLINE bnn_word_t ge_planes(const bnn_word_t *q, const bnn_word_t *u, uint32_t nq)
{
    bnn_word_t borrow = 0;
    uint32_t j = 0;
    if (nq & 1u) {
        const bnn_word_t a = q[0], t = u[0];
        borrow = t & ~a;
        j = 1u;
    }
    for (; j < nq; j += 2u) { /* two planes a pass */
        const bnn_word_t a0 = q[j], t0 = u[j], a1 = q[j + 1u], t1 = u[j + 1u];
        borrow = (t0 & ~a0) | (borrow & ~(a0 ^ t0));
        borrow = (t1 & ~a1) | (borrow & ~(a1 ^ t1));
    }
    return ~(u[nq] | borrow);
}

/*
 * Row lists of input row `src` (in_w pixels of cw words): the set channels of every pixel as
 * entries x cin + c, pixel after pixel from the front of list (list[pre1[x] ..] are pixel x's),
 * and the clear ones from the back (pixel x's at list[L - pre0[x + 1] .. L - pre0[x]), L = in_w cin),
 * so the pixels [xa, xb) of a window row are one run of either set.  pre1 / pre0: in_w + 1
 * prefix counts each.
 */
static void row_lists(const bnn_word_t *src, uint32_t in_w, uint32_t cin, uint32_t *list, uint32_t *pre1,
                      uint32_t *pre0)
{
    const uint32_t cw = BNN_WORDS(cin);
    const bnn_word_t tail = bnn_tail_mask(cin);
    uint32_t *s1 = list, *s0 = list + in_w * cin;
    pre1[0] = pre0[0] = 0u;
    for (uint32_t x = 0; x < in_w; ++x, src += cw) {
        for (uint32_t k = 0; k < cw; ++k) {
            const bnn_word_t m = k + 1u < cw ? ~(bnn_word_t)0u : tail;
            uint32_t v = src[k] & m, z = ~src[k] & m;
            const uint32_t base = x * cin + 32u * k;
#if BNN_THUMB2_ASM
            /* bit-reversed once (RBIT), then CLZ finds the next set bit from the bottom: clz,
             * add, store, clear (lsr + bic), branch per entry */
            uint32_t rv, rz;
            __asm__("rbit %0, %1" : "=r"(rv) : "r"(v));
            __asm__("rbit %0, %1" : "=r"(rz) : "r"(z));
            while (rv) {
                const uint32_t i = (uint32_t)__builtin_clz(rv);
                *s1++ = base + i;
                rv &= ~(0x80000000u >> i);
            }
            while (rz) {
                const uint32_t i = (uint32_t)__builtin_clz(rz);
                *--s0 = base + i;
                rz &= ~(0x80000000u >> i);
            }
#else
            while (v) {
                *s1++ = base + (uint32_t)__builtin_ctz(v);
                v &= v - 1u;
            }
            while (z) {
                *--s0 = base + (uint32_t)__builtin_ctz(z);
                z &= z - 1u;
            }
#endif
        }
        pre1[x + 1u] = (uint32_t)(s1 - list);
        pre0[x + 1u] = (uint32_t)(list + in_w * cin - s0);
    }
}

/* The state of one call shared by its two step loops (full groups, tail group). */
typedef struct bnn__conv_vc_state {
    const bnn_conv_vc_t *L;
    bnn__conv_vc_build_fn build; /* NULL: the table is complete (checked), no cache */
    uint32_t *cache;
    uint32_t ncls, nq, nt, pstride, w;
    uint32_t last_key;        /* the class of the previous step (most steps repeat it) */
    const uint32_t *last_ent;
    const uint32_t *rowd[16]; /* the kh input rows' lists (row_lists: list, pre1, pre0) of this
                               * output row, NULL: a padding row */
    uint32_t vkey;            /* padded kernel rows of this output row */
    uint32_t *cat;            /* a step's list tails, kh KWe min(cin, 15) words */
    int32_t *chan;            /* per channel: A of an interior position, C (class_planes) */
} vc_state_t;

/* The class entry (key, planes) of key, computed on first use (the spare slot when full). */
static const uint32_t *class_entry(vc_state_t *s, uint32_t key)
{
    const bnn_conv_vc_t *L = s->L;
    for (uint32_t c = 0; c < L->nclass; ++c) { /* the generated table (flash) */
        if (L->classes[c * s->pstride] == key) {
            return L->classes + c * s->pstride;
        }
    }
    if (s->build == NULL) {
        return L->classes; /* unreachable: bnn__conv_vc_bits checked that the table covers the call */
    }
    for (uint32_t c = 0; c < s->ncls; ++c) {
        if (s->cache[c * s->pstride] == key) {
            return s->cache + c * s->pstride;
        }
    }
    uint32_t *ent = s->cache + (s->ncls < BNN_CONV_VC_CLASSES ? s->ncls++ : BNN_CONV_VC_CLASSES) * s->pstride;
    ent[0] = key;
    s->build(s->L, s->chan, key, s->nt, ent + 1);
    return ent;
}

/*
 * A run's last (< 16) list entries appended to cat with the column offset off added, four at a
 * time: up to 3 entries past the run are copied too (reads stay in the row's ring slot: its
 * prefix counts follow the list) and are overwritten by the next run's tail or the padding, or
 * lie past the counted blocks (cat has 16 kh + 4 words).
 */
BNN_INLINE void copy_tail4(uint32_t *dst, const uint32_t *src, uint32_t n, uint32_t off)
{
    for (uint32_t k = 0; k < n; k += 4u, src += 4, dst += 4) {
        const uint32_t e0 = src[0], e1 = src[1], e2 = src[2], e3 = src[3];
        dst[0] = e0 + off;
        dst[1] = e1 + off;
        dst[2] = e2 + off;
        dst[3] = e3 + off;
    }
}

/*
 * The interior steps [ox0, ox1) of one output row, the common case spelled out: kh = 3 with all
 * three window rows in the image, one group (ng = 1), every window column inside the image,
 * np whole positions a step and cpl >= nq (the start values packed in one word).  The same
 * arithmetic as vc_row with few live values: the three rows' prefix counts read once, each run
 * counted as soon as it is known (the start values first), the tails gathered in cat.
 */
BNN_INLINE void vc_row3(vc_state_t *s, uint32_t oy, const bnn_word_t *cols, uint32_t zrel, uint32_t np,
                        uint32_t cpl, uint32_t tail, uint32_t k0, uint32_t ox0, uint32_t ox1, bnn_word_t *out)
{
    const bnn_conv_params_t *p = &s->L->p;
    const uint32_t cin = p->cin, kw = p->kw, sw = p->stride_w, kwe = kw + (np - 1u) * sw;
    const uint32_t nl = p->in_w * cin, ow = BNN_WORDS(p->cout), nq = s->nq, nt = s->nt;
    const uint32_t span = kwe * cin; /* a window row's channels */
    const bnn_word_t lane_mask = cpl >= 32u ? 0xFFFFFFFFu : (1u << cpl) - 1u;
    const uint32_t *const rl[3] = {s->rowd[0], s->rowd[1], s->rowd[2]};
    const uint32_t key = (tail << 31) | (s->vkey << 16);
    if (key != s->last_key || s->last_ent == NULL) {
        s->last_ent = class_entry(s, key);
        s->last_key = key;
    }
    const uint32_t *ent = s->last_ent;
    uint32_t *cat = s->cat;
    bnn_word_t q[BNN_VC_MAX_PLANES];
    for (uint32_t ox = ox0; ox < ox1; ox += np) {
        const uint32_t x0 = ox * sw - p->pad_w, x1 = x0 + kwe;
        uint32_t a[3], m[3];
        for (uint32_t r = 0; r < 3u; ++r) {
            a[r] = rl[r][nl + x0];
            m[r] = rl[r][nl + x1] - a[r];
        }
        const uint32_t tot1 = m[0] + m[1] + m[2];
        const int use_s1 = 2u * tot1 <= 3u * span;
        /* start values W - h_j packed at bit j cpl, parity of N1 per position */
        uint32_t v = 0u, e = 0u, o = 0u;
        for (uint32_t j = 0; j < np; ++j) {
            uint32_t n1 = tot1;
            if (np > 1u) {
                const uint32_t xa = nl + x0 + j * sw, xb = xa + kw;
                n1 = rl[0][xb] - rl[0][xa] + rl[1][xb] - rl[1][xa] + rl[2][xb] - rl[2][xa];
            }
            const uint32_t h = use_s1 ? n1 >> 1 : 0u - ((n1 + 1u) >> 1); /* floor(B / 2) */
            v |= (s->w - h) << (j * cpl);
            e |= 1u << (j * cpl);
            o |= (n1 & 1u) << (j * cpl);
        }
        q[1] = q[2] = q[3] = 0u;
        for (uint32_t b = 0; b < nq; ++b) {
            q[b] = ((v >> b) & e) * lane_mask;
        }
        const bnn_word_t odd = o * lane_mask;
        /* the three runs: whole blocks counted in place, tails to cat (4 at a time, as vc_row) */
        uint32_t ncat = 0;
        for (uint32_t r = 0; r < 3u; ++r) {
            const uint32_t *idx;
            uint32_t mm;
            if (use_s1) {
                idx = rl[r] + a[r];
                mm = m[r];
            } else { /* S0 from the back: pre0[x] = x cin - pre1[x] */
                const uint32_t p0e = x1 * cin - (a[r] + m[r]);
                idx = rl[r] + nl - p0e;
                mm = span - m[r];
            }
            const int32_t soff = (int32_t)(r * span) - (int32_t)(x0 * cin); /* >= -(entries' x) cin */
            const uint32_t off = (uint32_t)soff;
            const uint32_t whole = mm & ~15u;
            if (whole) {
                bnn_vc_count16((const bnn_word_t *)((uintptr_t)cols + (uintptr_t)(intptr_t)soff * sizeof(bnn_word_t)),
                               idx, idx + whole, q);
            }
            copy_tail4(cat + ncat, idx + whole, mm - whole, off);
            ncat += mm - whole;
        }
        if (ncat) {
            while (ncat & 15u) {
                cat[ncat++] = zrel;
            }
            bnn_vc_count16(cols, cat, cat + ncat, q);
        }
        const bnn_word_t *ue = ent + 1 + (use_s1 ? 0u : 2u) * nt, *uo = ue + nt;
        bnn_word_t bits;
        if (odd == 0u) {
            bits = ge_planes(q, ue, nq);
        } else if (odd == ~(bnn_word_t)0u) {
            bits = ge_planes(q, uo, nq);
        } else {
            bnn_word_t u[BNN_VC_MAX_PLANES];
            for (uint32_t b = 0; b < nt; ++b) {
                u[b] = ue[b] ^ ((ue[b] ^ uo[b]) & odd);
            }
            bits = ge_planes(q, u, nq);
        }
        if (!use_s1) {
            bits = ~bits;
        }
        bnn_word_t *dst = out + (oy * p->out_w + ox) * ow + k0;
        for (uint32_t j = 0; j < np; ++j, dst += ow) {
            *dst = (bits >> (j * cpl)) & lane_mask;
        }
    }
}

/*
 * One output row oy, positions stepping by np (1: the ng full groups at cols; np > 1 or tail:
 * the tail group at cols), lanes of cpl channels per position, output word k0 of a position.
 * Per step: the window's S1 / S0 totals and each position's N1 from the rows' prefix counts
 * (tot0 = the window's listed channels - tot1), the count's start values W - h_j (one word
 * packing every position's value, then per plane a shift, a mask and a multiply by the lane
 * mask when cpl >= nq), the runs counted by bnn_vc_count16 directly (every run a whole number
 * of blocks of 16), the compare.
 */
BNN_INLINE void vc_row(vc_state_t *s, uint32_t oy, const bnn_word_t *cols, uint32_t zrel, uint32_t ng, uint32_t np,
                       uint32_t cpl, uint32_t tail, uint32_t k0, bnn_word_t *out)
{
    const bnn_conv_vc_t *L = s->L;
    const bnn_conv_params_t *p = &L->p;
    const uint32_t cin = p->cin, kh = p->kh, kw = p->kw, in_w = p->in_w, sw = p->stride_w;
    const uint32_t kwe = kw + (np - 1u) * sw, ow = BNN_WORDS(p->cout), nl = in_w * cin;
    const uint32_t gstride = kh * kwe * cin, nq = s->nq, nt = s->nt;
    const bnn_word_t lane_mask = cpl >= 32u ? 0xFFFFFFFFu : (1u << cpl) - 1u;
    bnn_vc_seg_t seg[16u + 1u];
    bnn_word_t q[BNN_VC_MAX_PLANES];
    uint32_t n1[32];
    /* the image rows of this output row's window: their lists, prefix counts and column offsets */
    const uint32_t *rlist[16], *rpre1[16];
    int32_t roff[16];
    uint32_t nr = 0;
    for (uint32_t ky = 0; ky < kh; ++ky) {
        if (s->rowd[ky] != NULL) {
            rlist[nr] = s->rowd[ky];
            rpre1[nr] = s->rowd[ky] + nl;
            roff[nr] = (int32_t)(ky * kwe * cin);
            ++nr;
        }
    }
    /* the interior steps (ox from ia to ib) on vc_row3 when this row qualifies */
    uint32_t ia = p->out_w, ib = p->out_w;
    if (kh == 3u && nr == 3u && ng == 1u && cpl >= nq) {
        ia = (p->pad_w + sw - 1u) / sw;                       /* first ox with x0 >= 0 */
        ia = (ia + np - 1u) / np * np;                        /* a step start */
        /* steps whose np positions exist and whose window ends inside the image */
        for (ib = ia; ib + np <= p->out_w && ib * sw + kwe <= in_w + p->pad_w; ib += np) {
        }
        if (ib == ia) {
            ia = ib = p->out_w;
        }
    }
    for (uint32_t ox = 0; ox < p->out_w; ox += np) {
        if (ox == ia) {
            vc_row3(s, oy, cols, zrel, np, cpl, tail, k0, ia, ib, out);
            ox = ib - np;
            continue;
        }
        const int32_t x0 = (int32_t)(ox * sw) - (int32_t)p->pad_w;
        /* the window's columns inside the image [xs, xe), the border class */
        const uint32_t xs = x0 < 0 ? 0u : (uint32_t)x0;
        const int32_t xe_ = x0 + (int32_t)kwe;
        const uint32_t xe = xe_ > (int32_t)in_w ? in_w : (xe_ < (int32_t)xs ? xs : (uint32_t)xe_);
        const uint32_t hkey = ((1u << kwe) - 1u) & ~(((1u << (xe - xs)) - 1u) << (uint32_t)((int32_t)xs - x0));
        const uint32_t npos = ox + np <= p->out_w ? np : p->out_w - ox;
        uint32_t tot1 = 0;
        for (uint32_t r = 0; r < nr; ++r) {
            tot1 += rpre1[r][xe] - rpre1[r][xs];
        }
        const uint32_t tot0 = nr * (xe - xs) * cin - tot1;
        if (np == 1u) {
            n1[0] = tot1; /* the window is the position's kw columns */
        } else {
            for (uint32_t j = 0; j < npos; ++j) { /* N1 of each position: its kw columns */
                const int32_t a = x0 + (int32_t)(j * sw), b = a + (int32_t)kw;
                const uint32_t ca = a < 0 ? 0u : ((uint32_t)a > in_w ? in_w : (uint32_t)a);
                const uint32_t cb = b < 0 ? 0u : ((uint32_t)b > in_w ? in_w : (uint32_t)b);
                uint32_t n = 0;
                for (uint32_t r = 0; r < nr; ++r) {
                    n += rpre1[r][cb] - rpre1[r][ca];
                }
                n1[j] = n;
            }
        }
        const int use_s1 = tot1 <= tot0;
        const uint32_t key = (tail << 31) | (s->vkey << 16) | hkey;
        if (key != s->last_key || s->last_ent == NULL) {
            s->last_ent = class_entry(s, key);
            s->last_key = key;
        }
        const uint32_t *ent = s->last_ent;
        /* the segments: one run per window row (entries x cin + c; base = the row's columns
         * shifted by x0 cin, as an address: the run indexes it from x = xs >= x0 on), its whole
         * 16-column blocks in place, its last < 16 entries appended to `cat` with the shift added
         * (relative to the group's columns), cat last */
        uint32_t ns = 0, ncat = 0;
        uint32_t *cat = s->cat;
        if (xe != xs) {
            for (uint32_t r = 0; r < nr; ++r) {
                const uint32_t *pre1 = rpre1[r];
                uint32_t m;
                const uint32_t *idx;
                if (use_s1) {
                    idx = rlist[r] + pre1[xs];
                    m = pre1[xe] - pre1[xs];
                } else { /* S0 from the back: pre0[x] = x cin - pre1[x] */
                    const uint32_t p0s = xs * cin - pre1[xs], p0e = xe * cin - pre1[xe];
                    idx = rlist[r] + nl - p0e;
                    m = p0e - p0s;
                }
                const int32_t off = roff[r] - x0 * (int32_t)cin; /* >= -(entries' x) cin */
                const uint32_t whole = m & ~15u;
                if (whole) {
                    seg[ns].base = (const bnn_word_t *)((uintptr_t)cols + (uintptr_t)(intptr_t)off * sizeof(bnn_word_t));
                    seg[ns].idx = idx;
                    seg[ns].m = whole;
                    ++ns;
                }
                copy_tail4(cat + ncat, idx + whole, m - whole, (uint32_t)off); /* the tail */
                ncat += m - whole;
            }
        }
        /* cat padded to whole blocks of 16 with the zero column (the word after the columns,
         * index zrel - g gstride from group g's columns): no column is counted one at a time */
        const uint32_t npad = (16u - (ncat & 15u)) & 15u;
        for (uint32_t k = 0; k < npad; ++k) {
            cat[ncat + k] = zrel;
        }
        if (ncat) {
            ncat += npad;
            seg[ns].base = cols;
            seg[ns].idx = cat;
            seg[ns].m = ncat;
            ++ns;
        }
        /* the count's start W - h_j per lane block and the parity mask (method: bnn_conv_vc.h) */
        bnn_word_t init[BNN_VC_MAX_PLANES], odd;
        init[1] = init[2] = init[3] = 0u; /* planes nq .. 3 (bnn_vc_count16 keeps 4 in registers) */
        if (cpl >= nq) {
            /* every value W - h_j < 2^nq <= 2^cpl: packed at bit j cpl of one word, plane b is
             * ((V >> b) & E) times the lane mask (E: bit j cpl of each position) */
            uint32_t v = 0u, e = 0u, o = 0u;
            for (uint32_t j = 0; j < npos; ++j) {
                const uint32_t h = use_s1 ? n1[j] >> 1 : 0u - ((n1[j] + 1u) >> 1); /* floor(B / 2) */
                v |= (s->w - h) << (j * cpl);
                e |= 1u << (j * cpl);
                o |= (n1[j] & 1u) << (j * cpl);
            }
            for (uint32_t b = 0; b < nq; ++b) {
                init[b] = ((v >> b) & e) * lane_mask;
            }
            odd = o * lane_mask;
        } else {
            odd = 0u;
            for (uint32_t b = 0; b < nq; ++b) {
                init[b] = 0u;
            }
            for (uint32_t j = 0; j < npos; ++j) {
                const uint32_t h = use_s1 ? n1[j] >> 1 : 0u - ((n1[j] + 1u) >> 1);
                const uint32_t v = s->w - h, blk = lane_mask << (j * cpl);
                for (uint32_t b = 0; b < nq; ++b) {
                    init[b] |= (bnn_word_t)(0u - ((v >> b) & 1u)) & blk;
                }
                odd |= (bnn_word_t)(0u - (n1[j] & 1u)) & blk;
            }
        }
        const uint32_t mode = use_s1 ? 0u : 2u;
        for (uint32_t g = 0; g < ng; ++g) {
            if (ng > 1u) {
                for (uint32_t b = 0; b < nq || b < 4u; ++b) { /* bnn_vc_count16 adds into q (room for 4 planes) */
                    q[b] = init[b];
                }
            }
            if (g) {
                for (uint32_t k = 0; k < ns; ++k) {
                    seg[k].base += gstride;
                }
                for (uint32_t k = ncat - npad; k < ncat; ++k) {
                    cat[k] -= gstride;
                }
            }
            bnn_word_t *qq = ng > 1u ? q : init; /* one group: count in place */
            for (uint32_t k = 0; k < ns; ++k) { /* every run is whole blocks of 16 */
                bnn_vc_count16(seg[k].base, seg[k].idx, seg[k].idx + seg[k].m, qq);
            }
            const bnn_word_t *ue = ent + 1 + (g * 4u + mode) * nt, *uo = ue + nt;
            bnn_word_t bits;
            if (odd == 0u) {
                bits = ge_planes(qq, ue, nq);
            } else if (odd == ~(bnn_word_t)0u || np == 1u) {
                bits = ge_planes(qq, uo, nq);
            } else { /* lane blocks of both parities: the planes mixed per lane */
                bnn_word_t u[BNN_VC_MAX_PLANES];
                for (uint32_t b = 0; b < nt; ++b) {
                    u[b] = (ue[b] & ~odd) | (uo[b] & odd);
                }
                bits = ge_planes(qq, u, nq);
            }
            if (!use_s1) {
                bits = ~bits;
            }
            for (uint32_t j = 0; j < npos; ++j) {
                out[(oy * p->out_w + ox + j) * ow + k0 + g] = (bits >> (j * cpl)) & lane_mask;
            }
        }
    }
}

/* The tail group's rows (vc_row with np positions of cpl lanes, not inlined: one copy, linked only
 * when a layer has a column-sliced tail: bnn_conv_vc_bits passes it). */
void bnn__conv_vc_row_tail(vc_state_t *s, uint32_t oy, const bnn_word_t *cols, uint32_t zrel, uint32_t np,
                           uint32_t cpl, uint32_t k0, bnn_word_t *out)
{
    vc_row(s, oy, cols, zrel, 1u, np, cpl, 1u, k0, out);
}

/*
 * The ct tail channels straight from their rows (L->tail_rows, bnn_conv_bits' format: per channel
 * kh kw taps of cw words), a word popcount per tap: acc = K' - 2 popcount(patch ^ w), K' = the
 * taps in the image times cin at zero padding (a padded tap contributes 0), the full K at -1
 * padding (a padded tap's zero bits are the activation -1: popcount(w)).  Bits to word gf of each
 * position.  For ct cw <= 2 (cout 33 at cin 33: one channel, two words a tap) this is cheaper
 * than the row kernel, whose per-position patch packing is shared by ct channels only.
 */
static void tail_direct(const bnn_conv_vc_t *L, const bnn_word_t *in, bnn_word_t *out)
{
    const bnn_conv_params_t *p = &L->p;
    const uint32_t cin = p->cin, cw = BNN_WORDS(cin), kh = p->kh, kw = p->kw, kk = kh * kw;
    const uint32_t ow = BNN_WORDS(p->cout), gf = BNN_CONV_VC_FULL(L), ct = p->cout % 32u;
    const bnn_word_t last = bnn_tail_mask(cin);
    /* -1 padding: a padded tap adds popcount(w) of its weights (wpop, per channel and tap) */
    uint32_t wpop[2u * 32u], wtot[2] = {0u, 0u};
    for (uint32_t o = 0; o < ct; ++o) {
        const bnn_word_t *w = L->tail_rows + o * kk * cw;
        for (uint32_t t = 0; t < kk; ++t, w += cw) {
            wpop[o * kk + t] = bnn_popcount32_swar(w[cw - 1u] & last) + (cw > 1u ? bnn_popcount32_swar(w[0]) : 0u);
            wtot[o] += wpop[o * kk + t];
        }
    }
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
        const uint32_t kya = y0 < 0 ? (uint32_t)-y0 : 0u;
        const int32_t yb = (int32_t)p->in_h - y0;
        const uint32_t kyb = yb < (int32_t)kh ? (yb < (int32_t)kya ? kya : (uint32_t)yb) : kh;
        for (uint32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = (int32_t)(ox * p->stride_w) - (int32_t)p->pad_w;
            const uint32_t kxa = x0 < 0 ? (uint32_t)-x0 : 0u;
            const int32_t xb = (int32_t)p->in_w - x0;
            const uint32_t kxb = xb < (int32_t)kw ? (xb < (int32_t)kxa ? kxa : (uint32_t)xb) : kw;
            const uint32_t inside = (kyb - kya) * (kxb - kxa);
            bnn_word_t bits = 0;
            for (uint32_t o = 0; o < ct; ++o) {
                const bnn_word_t *w = L->tail_rows + o * kk * cw;
                uint32_t pop = 0, win = 0; /* mismatches, and the inside taps' popcount(w) */
                for (uint32_t ky = kya; ky < kyb; ++ky) {
                    const bnn_word_t *px = in + (((uint32_t)(y0 + (int32_t)ky)) * p->in_w +
                                                 (uint32_t)(x0 + (int32_t)kxa)) * cw;
                    const bnn_word_t *wt = w + (ky * kw + kxa) * cw;
                    const uint32_t *wp = wpop + o * kk + ky * kw;
                    for (uint32_t kx = kxa; kx < kxb; ++kx, px += cw, wt += cw) {
                        if (cw == 1u) {
                            pop += bnn_popcount32_swar((px[0] ^ wt[0]) & last);
                        } else if (last == 1u) { /* cin = 33: the second word's one channel */
                            pop += bnn_popcount32_swar(px[0] ^ wt[0]) + ((px[1] ^ wt[1]) & 1u);
                        } else {
                            pop += bnn_popcount32_swar(px[0] ^ wt[0]) + bnn_popcount32_swar((px[1] ^ wt[1]) & last);
                        }
                        win += wp[kx];
                    }
                }
                int32_t acc;
                if (L->pad_minus1) {
                    acc = (int32_t)(kk * cin) - 2 * (int32_t)(pop + wtot[o] - win);
                } else {
                    acc = (int32_t)(inside * cin) - 2 * (int32_t)pop;
                }
                bits |= (bnn_word_t)(acc >= L->thr[32u * gf + o]) << o;
            }
            out[(oy * p->out_w + ox) * ow + gf] = bits;
        }
    }
}

void bnn__conv_vc_bits(const bnn_conv_vc_t *L, const bnn_word_t *in, uint32_t *work, bnn_word_t *out,
                       bnn__conv_vc_tail_fn tail_fn, bnn__conv_vc_build_fn build)
{
    const bnn_conv_params_t *p = &L->p;
    const uint32_t cin = p->cin, cw = BNN_WORDS(cin), kh = p->kh, in_w = p->in_w;
    const uint32_t rowsz = in_w * cin + 2u * (in_w + 1u); /* a ring slot: row_lists' list, pre1, pre0 */
    const uint32_t gf = BNN_CONV_VC_FULL(L), ct = p->cout % 32u;
    const uint32_t full = gf * kh * p->kw * cin;                           /* words of the full groups */
    const uint32_t zero = full + (ct ? kh * BNN_CONV_VC_KWE(L) * cin : 0u); /* the zero column */
    if ((L->table_complete ? !bnn_conv_vc_table_covers(L) : (L->ctap == NULL || build == NULL)) ||
        (ct != 0u && L->tail_rows == NULL && tail_fn == NULL)) {
        /* a table claimed complete is not (the work memory has no cache), no ctap or builder to
         * build classes with, or no tail step loop: the reference, which needs no work memory */
        bnn_conv_vc_bits_ref(L, in, out);
        return;
    }
    vc_state_t s;
    s.L = L;
    s.build = L->table_complete ? NULL : build;
    s.nq = bnn_conv_vc_nq(L);
    s.nt = bnn_conv_vc_nt(L);
    s.pstride = 1u + BNN_CONV_VC_GROUPS(L) * 4u * s.nt;
    s.w = bnn__conv_vc_w(L);
    s.ncls = 0;
    s.last_key = 0;
    s.last_ent = NULL;
    /* work layout (bnn_conv_vc_work_words): ring of kh rows of row lists, row tags, cat, then
     * without a complete table the class cache and per channel A, C */
    uint32_t *ring = work;
    uint32_t *tag = ring + kh * rowsz;
    s.cat = tag + kh;
    s.cache = NULL;
    s.chan = NULL;
    if (s.build != NULL) {
        s.cache = s.cat + 16u * kh + 4u;
        s.chan = (int32_t *)(s.cache + (BNN_CONV_VC_CLASSES + 1u) * s.pstride);
        const uint32_t kk = kh * p->kw;
        const int32_t K = (int32_t)(kk * cin);
        for (uint32_t o = 0; o < p->cout; ++o) { /* thr clamped: |acc| <= K, the compare is unchanged */
            int32_t call = 0;
            for (uint32_t t = 0; t < kk; ++t) {
                call += L->ctap[o * kk + t];
            }
            s.chan[2u * o] = clamp32(L->thr[o], -(K + 1), K + 1) - K + 2 * call;
            s.chan[2u * o + 1u] = call;
        }
    }
    for (uint32_t k = 0; k < kh; ++k) {
        tag[k] = 0xFFFFFFFFu;
    }
    const int tail_vc = ct != 0u && L->tail_rows == NULL;
    if (ct != 0u && !tail_vc) {
        /* the tail channels from their rows: bnn_conv_vc_bits ran the row kernel (ct cw > 2) and
         * spread its words; ct cw <= 2 is counted here, straight to word gf of each position */
        if (ct * cw <= 2u) {
            tail_direct(L, in, out);
        }
        if (gf == 0u) {
            return;
        }
    }
    for (uint32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_h;
        s.vkey = 0;
        for (uint32_t ky = 0; ky < kh; ++ky) {
            const int32_t y = y0 + (int32_t)ky;
            if (y < 0 || y >= (int32_t)p->in_h) {
                s.vkey |= 1u << ky;
                s.rowd[ky] = NULL;
                continue;
            }
            const uint32_t slot = (uint32_t)y % kh;
            uint32_t *rs = ring + slot * rowsz;
            if (tag[slot] != (uint32_t)y) { /* the row's lists, built once */
                row_lists(in + (uint32_t)y * in_w * cw, in_w, cin, rs, rs + in_w * cin, rs + in_w * cin + in_w + 1u);
                tag[slot] = (uint32_t)y;
            }
            s.rowd[ky] = rs;
        }
        /* one vc_row for the full groups (one position a step, constant geometry) and one for
         * the tail (any lanes and positions): code size, about 9 KB on Cortex-M4 */
        if (gf) {
            vc_row(&s, oy, L->cols, zero, gf, 1u, 32u, 0u, 0u, out);
        }
        if (tail_vc && tail_fn != NULL) { /* tail_fn: bnn__conv_vc_row_tail (bnn_conv_vc_bits) */
            tail_fn(&s, oy, L->cols + full, zero - full, L->npos, ct, gf, out);
        }
    }
}
