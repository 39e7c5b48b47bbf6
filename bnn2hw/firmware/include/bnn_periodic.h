/* SPDX-License-Identifier: MIT */
/*
 * bnn_periodic.h -- fixed-point y = sin(w0 * x) for M-BiPer periodic activations
 * (M-BiPer, SEML 2025: lookup table, Taylor series eq. 10, fixed-point scaling eq. 11).
 * Integer arithmetic only; bnn2hw/mcu/periodic_tables.py computes the parameters and
 * tables and runs the same integer arithmetic in numpy (the reference these are tested
 * against).
 *
 * Input x: int32 in Q(in_frac) (the Q format is folded into phase_mul/phase_shift).
 * Output y: int32 in Q(out_frac), out_frac <= 29.
 * Range reduction: the phase is a 32-bit binary angle (turns * 2^32, mod 2^32):
 *   phase = low 32 bits of ((int64) x * phase_mul) >> phase_shift   (phase_shift <= 32)
 * so whole periods wrap away for free.
 *
 * bnn_periodic_lut:    y = table[round(phase / 2^(32 - table_bits)) mod 2^table_bits],
 *                      table[i] = round(sin(2 pi i / 2^table_bits) * 2^out_frac).
 * bnn_periodic_taylor: fold the phase into [-pi/2, pi/2] (sin(pi - t) = sin t), convert to
 *                      radians r in Q29, y = r - r^3/6 + r^5/120 (eq. 10) evaluated as
 *                      r * (1 - r^2/6 * (1 - r^2/20)) with int64 products and floor shifts.
 * bnn_periodic_linear: eq. 11, y = (lin_a * x) >> lin_n (floor), clamped to +-2^out_frac;
 *                      the approximation sin(w0 x) ~ w0 x near 0 (lin_a ~ w0 2^(lin_n +
 *                      out_frac - in_frac)).  Ignores the phase fields.
 */
#ifndef BNN_PERIODIC_H
#define BNN_PERIODIC_H

#include "bnn_bits.h"

typedef struct {
    int32_t phase_mul;    /* binary-angle scale (see above) */
    uint32_t phase_shift; /* 0..32 */
    uint32_t out_frac;    /* 0..29 */
    const int32_t *table; /* LUT only: 2^table_bits entries over one period */
    uint32_t table_bits;  /* LUT only: 1..16 */
    int32_t lin_a;        /* linear only */
    uint32_t lin_n;       /* linear only: 0..62 */
} bnn_periodic_params_t;

void bnn_periodic_lut(const bnn_periodic_params_t *p, const int32_t *x, int32_t *y, size_t n);
void bnn_periodic_taylor(const bnn_periodic_params_t *p, const int32_t *x, int32_t *y, size_t n);
void bnn_periodic_linear(const bnn_periodic_params_t *p, const int32_t *x, int32_t *y, size_t n);

#endif /* BNN_PERIODIC_H */
