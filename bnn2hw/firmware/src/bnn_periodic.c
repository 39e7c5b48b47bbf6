/* SPDX-License-Identifier: MIT */
/* bnn_periodic.c -- fixed-point sin(w0 x): LUT, Taylor (eq. 10), linear (eq. 11). */
#include "bnn_periodic.h"

#define Q29_ONE ((int64_t)1 << 29)
#define Q29_INV6 ((int64_t)89478485)    /* round(2^29 / 6)  */
#define Q29_INV20 ((int64_t)26843546)   /* round(2^29 / 20) */
#define Q32_TWO_PI ((int64_t)3373259426) /* round(2 pi 2^29): radians Q29 per turn / 2^32 */

/* floor(v / 2^s) without relying on the implementation-defined >> of negative values */
static int64_t asr64(int64_t v, uint32_t s)
{
    return v >= 0 ? (int64_t)((uint64_t)v >> s) : -(int64_t)((uint64_t)(-(v + 1)) >> s) - 1;
}

static uint32_t phase_of(const bnn_periodic_params_t *p, int32_t x)
{
    uint64_t prod = (uint64_t)((int64_t)x * (int64_t)p->phase_mul);
    return (uint32_t)(prod >> p->phase_shift); /* low 32 bits: same for logical/arithmetic */
}

static int32_t round_shift(int64_t v, uint32_t s)
{
    return (int32_t)(s ? asr64(v + ((int64_t)1 << (s - 1u)), s) : v);
}

void bnn_periodic_lut(const bnn_periodic_params_t *p, const int32_t *x, int32_t *y, size_t n)
{
    const uint32_t drop = 32u - p->table_bits;
    const uint32_t half = (uint32_t)1u << (drop - 1u);
    const uint32_t mask = ((uint32_t)1u << p->table_bits) - 1u;
    for (size_t i = 0; i < n; ++i) {
        y[i] = p->table[((phase_of(p, x[i]) + half) >> drop) & mask];
    }
}

void bnn_periodic_taylor(const bnn_periodic_params_t *p, const int32_t *x, int32_t *y, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        uint32_t ph = phase_of(p, x[i]);
        /* signed turns * 2^32 in [-2^31, 2^31) */
        int64_t t = ph < 0x80000000u ? (int64_t)ph : (int64_t)ph - ((int64_t)1 << 32);
        if (t > ((int64_t)1 << 30)) {
            t = ((int64_t)1 << 31) - t; /* sin(pi - a) = sin(a) */
        } else if (t < -((int64_t)1 << 30)) {
            t = -((int64_t)1 << 31) - t;
        }
        int64_t r = asr64(t * Q32_TWO_PI, 32); /* radians, Q29, |r| <= pi/2 */
        int64_t r2 = asr64(r * r, 29);
        int64_t u = Q29_ONE - asr64(r2 * Q29_INV20, 29); /* 1 - r^2/20 */
        u = asr64(u * r2, 29);                            /* r^2 (1 - r^2/20) */
        u = Q29_ONE - asr64(u * Q29_INV6, 29);            /* 1 - r^2/6 + r^4/120 */
        y[i] = round_shift(asr64(r * u, 29), 29u - p->out_frac);
    }
}

void bnn_periodic_linear(const bnn_periodic_params_t *p, const int32_t *x, int32_t *y, size_t n)
{
    const int64_t one = (int64_t)1 << p->out_frac;
    for (size_t i = 0; i < n; ++i) {
        int64_t v = asr64((int64_t)p->lin_a * (int64_t)x[i], p->lin_n);
        y[i] = (int32_t)(v > one ? one : (v < -one ? -one : v));
    }
}
