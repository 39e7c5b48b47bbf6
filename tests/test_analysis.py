# SPDX-License-Identifier: MIT
"""BiPer sec. 4.1 quantization error: closed form (eq. 17-18) against Monte Carlo and the
numbers the paper states (max 0.102835 at w0 b = 0.954882, limit 1/2 - 4/pi^2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnn2hw.analysis import (QE_LIMIT, QE_MAX, expected_sin2, format_report, laplace_b,
                             measured_qe, model_quantization_report, optimal_scale,
                             quantization_error)
from bnn2hw.nn.layers import BinaryConv2d, BinaryLinear, binary_layers
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.nn.surrogates import SurrogateConfig

SEED = 2024
N_MC = 1_000_000
# (w0, b) pairs covering x = w0 b below, at and well above the maximum at 0.954882
CASES = [(20.0, 0.01), (20.0, 0.0477441), (1.0, 0.3), (10.0, 0.5), (50.0, 0.2)]


def laplace_samples(b: float, seed: int, n: int = N_MC) -> np.ndarray:
    return np.random.default_rng(seed).laplace(0.0, b, size=n)


@pytest.mark.parametrize("w0,b", CASES)
def test_closed_form_qe_matches_monte_carlo(w0, b):
    """Tolerance: 5 standard errors of the Monte-Carlo mean (computed from the sample itself;
    a correct formula fails this with probability < 1e-6), and the standard error must be
    small (< 2e-4) so the comparison means something."""
    seed = SEED + int(w0 * 1000 + b * 1e6)
    w = laplace_samples(b, seed)
    s = np.sin(w0 * w)
    gamma = optimal_scale(w0, b)
    terms = (s - gamma * np.where(s >= 0, 1.0, -1.0)) ** 2
    mc, se = terms.mean(), terms.std(ddof=1) / np.sqrt(len(terms))
    assert se < 2e-4
    qe = quantization_error(w0, b)
    assert abs(qe - mc) < 5 * se, f"seed {seed}: QE {qe} vs Monte Carlo {mc} +- {se}"
    # the first term of eq. 17 on its own
    s2 = s ** 2
    assert abs(expected_sin2(w0, b) - s2.mean()) < 5 * s2.std(ddof=1) / np.sqrt(len(s2)), \
        f"seed {seed}: E[sin^2]"


@pytest.mark.parametrize("w0,b", CASES)
def test_optimal_scale_is_monte_carlo_mean_abs_sin(w0, b):
    seed = SEED + 1 + int(w0 * 1000 + b * 1e6)
    a = np.abs(np.sin(w0 * laplace_samples(b, seed)))
    se = a.std(ddof=1) / np.sqrt(len(a))
    assert abs(optimal_scale(w0, b) - a.mean()) < 5 * se, f"seed {seed}: gamma vs E|sin|"


@pytest.mark.parametrize("x", [0.05, 0.3, 0.954882, 2.0, 7.5, 40.0])
def test_optimal_scale_equals_eq18_as_printed(x):
    """eq. 18 literally: x (e^{pi/x} + 1) / ((x^2 + 1)(e^{pi/x} - 1)), x = w0 b."""
    e = np.exp(np.pi / x)
    literal = x * (e + 1) / ((x * x + 1) * (e - 1))
    assert optimal_scale(x, 1.0) == pytest.approx(literal, rel=1e-12)
    assert optimal_scale(2 * x, 0.5) == pytest.approx(literal, rel=1e-12)  # depends on w0 b only


def test_optimal_gamma_minimises_eq17():
    for w0, b in CASES:
        g = optimal_scale(w0, b)
        best = quantization_error(w0, b)
        assert quantization_error(w0, b, gamma=g) == pytest.approx(best, abs=1e-15)
        for dg in (-0.05, -1e-3, 1e-3, 0.05):
            worse = quantization_error(w0, b, gamma=g + dg)
            assert worse == pytest.approx(best + dg * dg, abs=1e-12)  # QE is quadratic in gamma
        assert best == pytest.approx(expected_sin2(w0, b) - g * g, abs=1e-15)


def test_maximum_of_qe_is_0_102835_at_x_0_954882():
    x = np.linspace(0.5, 1.5, 1_000_001)  # step 1e-6
    qe = quantization_error(x, 1.0)
    i = int(np.argmax(qe))
    assert abs(qe[i] - 0.102835) < 1e-5, qe[i]
    assert abs(x[i] - 0.954882) < 1e-3, x[i]
    assert QE_MAX == 0.102835
    # and it is the global maximum over a wide range of x
    wide = quantization_error(np.logspace(-3, 4, 200_001), 1.0)
    assert wide.max() <= qe[i] + 1e-12


def test_qe_tends_to_half_minus_4_over_pi_squared():
    assert QE_LIMIT == pytest.approx(0.5 - 4 / np.pi ** 2)
    errors = [abs(quantization_error(w0, 0.05) - QE_LIMIT) for w0 in (1e2, 1e3, 1e4, 1e5)]
    assert errors[-1] < 1e-7
    assert all(a > b for a, b in zip(errors, errors[1:]))  # converging
    assert optimal_scale(1e6, 1.0) == pytest.approx(2 / np.pi, abs=1e-9)
    # beyond the maximum, QE decreases monotonically towards the limit from above
    qe = quantization_error(np.linspace(0.96, 100, 10_000), 1.0)
    assert np.all(np.diff(qe) < 0) and np.all(qe > QE_LIMIT)


def test_qe_rejects_non_positive_x():
    with pytest.raises(ValueError):
        quantization_error(0.0, 1.0)
    with pytest.raises(ValueError):
        optimal_scale(20.0, -0.1)


@pytest.mark.parametrize("b", [0.002, 0.05, 1.3])
def test_laplace_b_recovers_scale(b):
    """MLE of b for La(0, b) is mean|w|; its standard error is b / sqrt(n), so 1% at
    n = 200,000 is 4.5 standard errors."""
    seed = SEED + 7
    n = 200_000
    w = np.random.default_rng(seed).laplace(0.0, b, size=n)
    assert laplace_b(w) == pytest.approx(b, rel=0.01), f"seed {seed}"
    assert laplace_b(torch.tensor(w)) == pytest.approx(laplace_b(w), rel=1e-12)
    shifted = w + 3 * b
    assert laplace_b(shifted, zero_mean=False) == pytest.approx(b, rel=0.01), f"seed {seed}"
    assert laplace_b(shifted) > 3 * b  # the zero-mean fit does not re-centre


def test_laplace_b_definition():
    w = np.array([-3.0, -1.0, 0.0, 2.0, 10.0])
    assert laplace_b(w) == pytest.approx(16 / 5)
    assert laplace_b(w, zero_mean=False) == pytest.approx((3 + 1 + 0 + 2 + 10) / 5)  # median 0
    w2 = w + 1.0
    assert laplace_b(w2, zero_mean=False) == pytest.approx(16 / 5)
    with pytest.raises(ValueError):
        laplace_b(np.array([]))


def _by_hand(w: np.ndarray, w0: float) -> float:
    """eq. 15 on a weight matrix with per-output-channel gamma, written as plain loops."""
    w = w.reshape(w.shape[0], -1)
    total, count = 0.0, 0
    for row in w:
        s = [np.sin(w0 * v) for v in row]
        gamma = sum(abs(v) for v in s) / len(s)
        for v in s:
            q = gamma if v >= 0 else -gamma
            total += (v - q) ** 2
            count += 1
    return total / count


def test_measured_qe_of_a_layer_equals_hand_computation():
    torch.manual_seed(SEED)
    layer = BinaryLinear(23, 6, SurrogateConfig(name="biper", w0=20.0))
    w = layer.weight.detach().double().numpy()
    assert measured_qe(layer) == pytest.approx(_by_hand(w, 20.0), rel=1e-6)
    assert measured_qe(layer.weight, 20.0) == pytest.approx(_by_hand(w, 20.0), rel=1e-6)
    assert measured_qe(layer, w0=5.0) == pytest.approx(_by_hand(w, 5.0), rel=1e-6)
    conv = BinaryConv2d(3, 4, 3, SurrogateConfig(name="biper", w0=12.0))
    wc = conv.weight.detach().double().numpy()
    assert measured_qe(conv) == pytest.approx(_by_hand(wc, 12.0), rel=1e-6)
    # the per-channel gamma is the layer's own stage-2 scale
    s = np.abs(np.sin(20.0 * w)).mean(1)
    np.testing.assert_allclose(layer.channel_scale().detach().numpy(), s, rtol=1e-5)
    with pytest.raises(ValueError):
        measured_qe(w)  # a bare array needs w0


def test_measured_qe_approaches_closed_form_for_laplace_weights():
    """With Laplace weights, the measured QE (per-channel empirical gamma) is the closed form up
    to sampling noise (~1/sqrt(n) per channel) and the O(1/n) bias of the fitted gamma."""
    seed = SEED + 11
    w0, b = 20.0, 0.04
    w = np.random.default_rng(seed).laplace(0.0, b, size=(64, 8192))
    assert measured_qe(w, w0) == pytest.approx(quantization_error(w0, b), abs=1e-3), f"seed {seed}"
    assert measured_qe(w, w0) == pytest.approx(quantization_error(w0, laplace_b(w)), abs=1e-3)


def test_model_report_covers_every_binary_layer():
    torch.manual_seed(SEED)
    spec = default_spec("cnn", (1, 8, 8), 10)
    model = build_model(spec)
    rows = model_quantization_report(model)
    layers = binary_layers(model)
    assert len(rows) == len(layers) >= 4
    for row, layer in zip(rows, layers):
        w = layer.weight.detach().double().numpy()
        assert row["shape"] == list(w.shape)
        assert row["w0"] == spec["surrogate"]["w0"]
        assert row["b"] == pytest.approx(np.abs(w).mean(), rel=1e-6)
        assert row["x"] == pytest.approx(row["w0"] * row["b"])
        assert row["qe_closed_form"] == pytest.approx(quantization_error(row["w0"], row["b"]))
        assert row["gamma_closed_form"] == pytest.approx(optimal_scale(row["w0"], row["b"]))
        assert row["qe_measured"] == pytest.approx(_by_hand(w, row["w0"]), rel=1e-6)
        assert 0 <= row["qe_measured"] <= 1
    names = [r["layer"] for r in rows]
    assert len(set(names)) == len(names) and all(n for n in names)
    text = format_report(rows)
    assert len(text.splitlines()) == len(rows) + 1 and "QE*" in text
