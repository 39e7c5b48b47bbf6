# SPDX-License-Identifier: MIT
"""Binarizers and binary layers against the papers' formulas, computed independently in numpy.

Papers: BiPer (eq. 4, 5, 7, 8-10), M-BiPer (eq. 8, 9), FDA (eq. 9, 10, 13-15), in
``shared/papers``. Every random test is seeded and names its seed in the assertion message.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantLinear

from bnn2hw.errors import Bnn2hwError
from bnn2hw.nn.layers import BinaryConv2d, BinaryLinear
from bnn2hw.nn.surrogates import (ACTIVATION_BINARIZERS, SURROGATES, SurrogateConfig,
                                  binary_sign, make_binarizer)

W0 = 20.0
SEED = 1234
PI = np.pi


# --------------------------------------------------------------------------------------------
# Independent numpy references


def np_sign(v: np.ndarray) -> np.ndarray:
    """bnn2hw's tie rule: v >= 0 -> +1."""
    return np.where(v >= 0, 1.0, -1.0)


def np_wrap(t: np.ndarray) -> np.ndarray:
    """Phase in [-pi, pi)."""
    return np.mod(t + PI, 2 * PI) - PI


FDA_OMEGA = 0.1  # bnn2hw's default omega (as in the public FDA code)
FDA_CLIP = 1.0  # and its gradient window |x| <= 1


def fda_grad(x: np.ndarray, n: int, omega: float = FDA_OMEGA,
             clip: float | None = FDA_CLIP) -> np.ndarray:
    """FDA eq. 10 / third term of eq. 15: s_n'(x) = 4 w / pi sum_{i=0}^{n} cos((2i+1) w x),
    set to 0 where |x| > clip (bnn2hw's default window, ``SurrogateConfig.fda_clip``)."""
    total = np.zeros_like(x)
    for i in range(n + 1):
        total += np.cos((2 * i + 1) * omega * x)
    grad = 4 * omega / PI * total
    if clip is not None:
        grad = np.where(np.abs(x) <= clip, grad, 0.0)
    return grad


def reference_forward(name: str, x: np.ndarray, w0: float = W0) -> np.ndarray:
    """sign(f(x)) for each method: the periodic family all share sin's sign except cosine."""
    t = w0 * x
    if name in ("biper", "sine", "triangle", "sawtooth", "square", "arctan-sine"):
        return np_sign(np.sin(t))
    if name == "cosine":
        return np_sign(np.cos(t))
    return np_sign(x)  # fda, ste, clipped-ste, bireal


def reference_grad(name: str, x: np.ndarray, w0: float = W0, fda_terms: int = 9) -> np.ndarray:
    """The paper's surrogate derivative for each method (see the module docstring of
    ``bnn2hw.nn.surrogates`` for the smoothed sawtooth/square ones)."""
    t = w0 * x
    if name == "biper":  # BiPer eq. 9-10: d/dw sin(w0 w)
        return w0 * np.cos(t)
    if name == "sine":  # M-BiPer eq. 8: w0 cos t / max|w0 cos| = cos t
        return np.cos(t)
    if name == "cosine":  # -w0 sin t / w0
        return -np.sin(t)
    if name == "triangle":  # tri = 2/pi asin(sin t): f' = (2 w0/pi) sign(cos t), max 2 w0/pi
        return np.sign(np.cos(t))
    if name == "arctan-sine":  # f' = w0 cos t / (1 + sin^2 t), max w0 at t = 0
        return np.cos(t) / (1 + np.sin(t) ** 2)
    if name == "sawtooth":  # slope w0/pi normalised to 1, zero within pi/8 of the jump
        return (np.abs(np_wrap(t)) < PI - PI / 8).astype(float)
    if name == "square":  # unit triangular bumps of half-width pi/4 at rising/falling edges
        d = np.abs(np_wrap(t))
        return np.maximum(0, 1 - d / (PI / 4)) - np.maximum(0, 1 - (PI - d) / (PI / 4))
    if name == "fda":
        return fda_grad(x, fda_terms)
    if name == "ste":  # BiPer eq. 4
        return np.ones_like(x)
    if name == "clipped-ste":  # BiPer eq. 5
        return (np.abs(x) <= 1).astype(float)
    if name == "bireal":  # BiPer eq. 7: 2 + 2a on [-1, 0), 2 - 2a on [0, 1), else 0
        return np.where((x >= -1) & (x < 0), 2 + 2 * x, np.where((x >= 0) & (x < 1), 2 - 2 * x, 0.0))
    raise KeyError(name)


def relaxed(name: str, t: np.ndarray) -> np.ndarray:
    """The smooth periodic f(t) of M-BiPer sec. 4.1 (for finite-difference cross-checks)."""
    return {"sine": np.sin, "cosine": np.cos,
            "triangle": lambda u: 2 / PI * np.arcsin(np.sin(u)),
            "arctan-sine": lambda u: np.arctan(np.sin(u))}[name](t)


def sample_points(seed: int, n: int = 400, lo: float = -1.5, hi: float = 1.5) -> np.ndarray:
    """Random float64 points kept away from every kink and jump used above, so the reference and
    torch cannot disagree because of rounding right at a boundary."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, size=4 * n)
    t = W0 * x
    margin = 1e-6
    ok = np.abs(np.sin(t)) > margin  # forward jumps / square edges
    ok &= np.abs(np.cos(t)) > margin  # triangle kinks, cosine forward
    ok &= np.abs(np.abs(np_wrap(t)) - (PI - PI / 8)) > margin  # sawtooth smoothing edge
    ok &= np.abs(np.abs(np_wrap(t)) - PI / 4) > margin  # square bump ends
    ok &= np.abs(np.abs(np_wrap(t)) - 3 * PI / 4) > margin
    for edge in (0.0, 1.0):
        ok &= np.abs(np.abs(x) - edge) > margin  # sign, clipped STE, Bi-Real
    return x[ok][:n]


def autograd_grad(binarizer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(forward, d sum(forward * v) / dx / v) for a random upstream gradient v, in float64."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = binarizer.binarize(xt)
    v = torch.linspace(0.5, 1.5, len(x), dtype=torch.float64)  # nonuniform upstream grad
    (out * v).sum().backward()
    return out.detach().numpy(), (xt.grad / v).numpy()


ALL_BINARIZERS = [("weight", n) for n in SURROGATES] + [("activation", n)
                                                       for n in ACTIVATION_BINARIZERS]


def build(kind: str, name: str, **cfg):
    return make_binarizer(SurrogateConfig(name=name, w0=W0, **cfg), activation=kind == "activation")


def method_of(binarizer) -> str:
    """The formula to use: ACTIVATION_BINARIZERS['ste'] is the clipped STE class."""
    return binarizer.name


# --------------------------------------------------------------------------------------------
# Registry


def test_registries_hold_the_documented_methods():
    assert set(SURROGATES) == {"biper", "sine", "cosine", "triangle", "sawtooth", "square",
                               "arctan-sine", "fda", "ste", "clipped-ste"}
    assert set(ACTIVATION_BINARIZERS) == {"bireal", "ste", "fda"}


@pytest.mark.parametrize("activation", [False, True])
def test_registry_rejects_unknown_name_listing_valid_ones(activation):
    table = ACTIVATION_BINARIZERS if activation else SURROGATES
    with pytest.raises(Bnn2hwError) as exc:
        make_binarizer(SurrogateConfig(name="no-such-surrogate"), activation=activation)
    msg = str(exc.value)
    assert "no-such-surrogate" in msg
    for name in table:
        assert name in msg, f"valid name {name!r} missing from {msg!r}"


def test_registry_accepts_dict_config():
    b = make_binarizer({"name": "biper", "w0": 7.0})
    assert b.name == "biper" and b.config.w0 == 7.0


# --------------------------------------------------------------------------------------------
# Forward: exactly ±1, sign(f(x)), tie rule


@pytest.mark.parametrize("kind,name", ALL_BINARIZERS)
def test_forward_is_exactly_pm1_and_matches_sign_of_f(kind, name):
    b = build(kind, name)
    b.eval()
    x = sample_points(SEED)
    out, _ = autograd_grad(b, x)
    assert set(np.unique(out)) <= {-1.0, 1.0}, f"seed {SEED}: {name} forward not ±1"
    expected = reference_forward(method_of(b), x)
    bad = np.flatnonzero(out != expected)
    assert bad.size == 0, f"seed {SEED}: {name} forward wrong at x={x[bad[:5]]}"
    hard = b.hard(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(hard, out, err_msg=f"seed {SEED}: {name} hard() != binarize()")


@pytest.mark.parametrize("kind,name", ALL_BINARIZERS)
def test_tie_rule_sign_zero_is_plus_one(kind, name):
    b = build(kind, name)
    b.eval()
    zero = torch.tensor([0.0, -0.0], dtype=torch.float64)
    np.testing.assert_array_equal(b.binarize(zero).numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(b.hard(zero).numpy(), [1.0, 1.0])
    # A genuine tie: f(0) = 0 for every method except cosine (f(0) = 1) and square, whose f is
    # itself sign(sin(w0 x)) and so resolves the same tie sin(0) = 0 one step earlier.
    if name not in ("cosine", "square"):
        assert float(b.relax(torch.tensor(0.0, dtype=torch.float64)).abs()) == 0.0


def test_binary_sign_tie_rule_and_values():
    x = torch.tensor([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0])
    np.testing.assert_array_equal(binary_sign(x).numpy(), [-1, -1, 1, 1, 1, 1])


# --------------------------------------------------------------------------------------------
# Backward: autograd equals the paper's formula


@pytest.mark.parametrize("kind,name", ALL_BINARIZERS)
def test_gradient_matches_paper_formula(kind, name):
    b = build(kind, name)
    b.eval()  # FDA: no noise module term in eval mode
    x = sample_points(SEED + 1)
    _, grad = autograd_grad(b, x)
    expected = reference_grad(method_of(b), x)
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-9,
                               err_msg=f"seed {SEED + 1}: {kind} binarizer {name}")
    # The formula is not trivially constant (except STE): it must vary over the samples.
    if name != "ste" or kind == "activation":
        assert np.ptp(expected) > 0.5


@pytest.mark.parametrize("name", ["sine", "cosine", "triangle", "arctan-sine"])
def test_mbiper_gradient_is_normalised_derivative_by_finite_differences(name):
    """M-BiPer eq. 8, g = f'(x) / max|f'|, checked against numerical differentiation of the
    relaxed f(w0 x) itself (so an error in the closed forms above would also show)."""
    b = build("weight", name)
    x = sample_points(SEED + 2, n=200)
    h = 1e-7
    fd = (relaxed(name, W0 * (x + h)) - relaxed(name, W0 * (x - h))) / (2 * h)
    grid = np.linspace(0, 2 * PI / W0, 200001)
    dense = np.abs(np.diff(relaxed(name, W0 * grid)) / np.diff(grid))
    expected = fd / dense.max()
    _, grad = autograd_grad(b, x)
    np.testing.assert_allclose(grad, expected, atol=2e-4, err_msg=f"seed {SEED + 2}: {name}")
    assert np.abs(grad).max() <= 1 + 1e-12, f"seed {SEED + 2}: {name} gradient exceeds 1"


def test_biper_gradient_scales_with_w0():
    """BiPer eq. 9: unlike M-BiPer's scaled sine, the gradient keeps the factor w0."""
    x = sample_points(SEED + 3, n=50)
    for w0 in (1.0, 5.0, 30.0):
        b = make_binarizer(SurrogateConfig(name="biper", w0=w0))
        _, grad = autograd_grad(b, x)
        np.testing.assert_allclose(grad, w0 * np.cos(w0 * x), rtol=1e-9, atol=1e-9,
                                   err_msg=f"seed {SEED + 3}: w0={w0}")


@pytest.mark.parametrize("s", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("name", ["cosine", "biper", "square"])
def test_symmetry_adjustment_mbiper_eq9(name, s):
    """M-BiPer eq. 9: g(x) - s (g(x) - g(-x))."""
    b = build("weight", name, symmetry=s)
    x = sample_points(SEED + 4, n=200)
    _, grad = autograd_grad(b, x)
    g = reference_grad(name, x)
    g_neg = reference_grad(name, -x)
    np.testing.assert_allclose(grad, g - s * (g - g_neg), atol=1e-9,
                               err_msg=f"seed {SEED + 4}: {name} s={s}")
    if name == "cosine":  # -sin is odd: the adjustment must actually change it
        assert np.abs(grad - g).max() > 0.1
        if s == 0.5:
            np.testing.assert_allclose(grad, 0.0, atol=1e-12)  # only the (zero) even part


def test_upstream_gradient_is_multiplied_not_replaced():
    b = build("weight", "biper")
    x = torch.tensor([0.01, 0.02], dtype=torch.float64, requires_grad=True)
    b.binarize(x).backward(torch.tensor([3.0, -2.0], dtype=torch.float64))
    expected = np.array([3.0, -2.0]) * W0 * np.cos(W0 * np.array([0.01, 0.02]))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# FDA: schedules, noise adaptation module


def test_fda_terms_and_alpha_schedule():
    """FDA sec. 3.2: n grows from n_s to 2 n_s; alpha (eq. 14) decays to 0 over training."""
    b = build("weight", "fda", fda_terms=9, fda_alpha=0.5)
    b.set_progress(0.0)
    assert b.terms == 9 and b.alpha == pytest.approx(0.5)
    b.set_progress(0.5)
    assert 9 < b.terms < 18 and b.alpha == pytest.approx(0.25)
    b.set_progress(1.0)
    assert b.terms == 18 and b.alpha == 0.0
    b.set_progress(7.0)  # clamped
    assert b.terms == 18 and b.alpha == 0.0
    previous = 0
    for p in np.linspace(0, 1, 21):  # monotone
        b.set_progress(float(p))
        assert b.terms >= previous
        previous = b.terms


@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0])
def test_fda_gradient_follows_the_number_of_terms(progress):
    b = build("weight", "fda", fda_terms=9)
    b.set_progress(progress)
    n = b.terms
    x = sample_points(SEED + 5, n=200, lo=-3, hi=3)
    _, grad = autograd_grad(b, x)
    np.testing.assert_allclose(grad, fda_grad(x, n), atol=1e-9,
                               err_msg=f"seed {SEED + 5}: progress {progress}, n={n}")
    if n != 9:  # a different n is a different function
        assert np.abs(fda_grad(x, n) - fda_grad(x, 9)).max() > 0.1
    # omega and the window are parameters: the paper's formula with omega = pi/2, no window
    b2 = build("weight", "fda", fda_terms=9, fda_omega=PI / 2, fda_clip=None)
    b2.set_progress(progress)
    _, grad2 = autograd_grad(b2, x)
    np.testing.assert_allclose(grad2, fda_grad(x, n, omega=PI / 2, clip=None), atol=1e-9,
                               err_msg=f"seed {SEED + 5}: progress {progress}, omega pi/2")


def test_fda_fourier_partial_sum_is_eq9_and_approaches_sign():
    b = build("weight", "fda", fda_terms=9, fda_omega=PI / 2)
    x = sample_points(SEED + 6, n=200, lo=-1.9, hi=1.9)
    k = 2 * np.arange(b.terms + 1) + 1
    expected = 4 / PI * (np.sin(np.outer(x, k) * PI / 2) / k).sum(1)
    got = b.fourier(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=f"seed {SEED + 6}")
    away = np.abs(x) > 0.3  # Gibbs ringing is small away from the jump
    assert np.abs(got[away] - np.sign(x[away])).max() < 0.2


def _np_noise(noise, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FDA eq. 13 e(t) = relu(t W1) W2 + a sin(t), and J^T v helper terms."""
    w1 = noise.fc1.weight.detach().double().numpy()  # (hidden, d)
    w2 = noise.fc2.weight.detach().double().numpy()  # (d, hidden)
    pre = x @ w1.T
    e = np.maximum(pre, 0) @ w2.T + noise.a * np.sin(x)
    return e, pre


def test_fda_training_forward_adds_alpha_noise_and_its_gradient():
    """FDA eq. 14 forward z = sign(t) + alpha e(t); eq. 15 backward includes e'(t)."""
    torch.manual_seed(SEED)
    d = 16
    b = build("activation", "fda", fda_features=d, fda_alpha=0.5)
    b.double()
    b.train()
    b.set_progress(0.2)
    alpha = b.alpha
    assert alpha == pytest.approx(0.4)
    rng = np.random.default_rng(SEED + 7)
    x = rng.normal(size=(5, d))
    v = rng.normal(size=(5, d))
    xt = torch.tensor(x, requires_grad=True)
    out = b.binarize(xt)
    (out * torch.tensor(v)).sum().backward()
    e, pre = _np_noise(b.noise, x)
    np.testing.assert_allclose(out.detach().numpy(), np_sign(x) + alpha * e, atol=1e-12,
                               err_msg=f"seed {SEED + 7}: forward")
    assert not np.all(np.isin(out.detach().numpy(), [-1.0, 1.0]))  # the noise is really there
    w1 = b.noise.fc1.weight.detach().double().numpy()
    w2 = b.noise.fc2.weight.detach().double().numpy()
    grad_noise = ((v @ w2) * (pre > 0)) @ w1 + v * b.noise.a * np.cos(x)
    expected = v * fda_grad(x, b.terms) + alpha * grad_noise
    np.testing.assert_allclose(xt.grad.numpy(), expected, atol=1e-10,
                               err_msg=f"seed {SEED + 7}: backward")

    # Eval mode, or the end of training (alpha = 0), gives exactly ±1 again.
    b.eval()
    np.testing.assert_array_equal(b.binarize(torch.tensor(x)).detach().numpy(), np_sign(x))
    b.train()
    b.set_progress(1.0)
    np.testing.assert_array_equal(b.binarize(torch.tensor(x)).detach().numpy(), np_sign(x))


# --------------------------------------------------------------------------------------------
# Brevitas layers: integer accumulators times gamma


def np_conv2d(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    """Direct integer cross-correlation (N, C, H, W) * (O, C, k, k), zero padding."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = h + 2 * padding - k + 1, wd + 2 * padding - k + 1
    out = np.zeros((n, o, ho, wo), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i:i + k, j:j + k].reshape(n, -1)
            out[:, :, i, j] = patch @ w.reshape(o, -1).T
    return out


def _weights_f(name: str, w: np.ndarray) -> np.ndarray:
    """Relaxed weight f(w) (stage 1) for the layer tests."""
    if name in ("biper",):
        return np.sin(W0 * w)
    if name == "ste":
        return w
    if name in ("clipped-ste", "fda"):
        return np.clip(w, -1, 1)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["biper", "ste", "clipped-ste", "fda"])
@pytest.mark.parametrize("inputs", ["pm1", "uint8"])
def test_binary_linear_integer_accumulator_times_gamma(name, inputs):
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED + 8)
    n_in, n_out = 37, 11  # awkward widths
    input_scale = 1.0 if inputs == "pm1" else 1 / 255
    layer = BinaryLinear(n_in, n_out, SurrogateConfig(name=name, w0=W0), input_scale=input_scale)
    layer.eval()
    w = layer.weight.detach().double().numpy()
    f = _weights_f(name, w)
    wq = np_sign(f).astype(np.int64)
    if inputs == "pm1":
        x = rng.choice([-1, 1], size=(9, n_in)).astype(np.int64)
    else:
        x = rng.integers(0, 256, size=(9, n_in)).astype(np.int64)
    acc_ref = x @ wq.T
    xt = torch.tensor(x, dtype=torch.float32)
    with torch.no_grad():
        acc = QuantLinear.forward(layer, xt)  # the Brevitas product before gamma
        y = layer(xt)
    acc = acc.value if hasattr(acc, "value") else acc
    np.testing.assert_array_equal(acc.numpy(), acc_ref.astype(np.float32),
                                  err_msg=f"seed {SEED + 8}: {name} accumulator not exact")
    gamma_ref = np.abs(f).mean(axis=1)
    gamma = layer.channel_scale().detach().numpy()
    np.testing.assert_allclose(gamma, gamma_ref, rtol=1e-5,
                               err_msg=f"seed {SEED + 8}: gamma != mean |f(w)| per channel")
    expected_y = acc * (layer.channel_scale().detach() * input_scale)
    np.testing.assert_array_equal(y.numpy(), expected_y.numpy())
    np.testing.assert_allclose(y.numpy(), acc_ref * gamma_ref * input_scale, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.hard_weight().numpy(), wq.astype(np.float32))


def test_binary_linear_stage1_uses_sin_w0_w_as_weight():
    """BiPer eq. 10: stage 1 trains with the real-valued weight sin(w0 w) and no gamma."""
    torch.manual_seed(SEED)
    layer = BinaryLinear(13, 5, SurrogateConfig(name="biper", w0=W0))
    layer.stage = 1
    rng = np.random.default_rng(SEED + 9)
    x = rng.normal(size=(4, 13))
    w = layer.weight.detach().double().numpy()
    y = layer(torch.tensor(x, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(y, x @ np.sin(W0 * w).T, rtol=1e-4, atol=1e-5,
                               err_msg=f"seed {SEED + 9}")
    np.testing.assert_array_equal(layer.channel_scale().detach().numpy(), np.ones(5, dtype=np.float32))
    # and the gradient w.r.t. the latent weight is the chain rule through sin(w0 w)
    layer.weight.grad = None
    layer(torch.tensor(x, dtype=torch.float32)).sum().backward()
    expected = x.sum(0)[None, :] * W0 * np.cos(W0 * w)
    np.testing.assert_allclose(layer.weight.grad.double().numpy(), expected, rtol=1e-3, atol=1e-3)
    layer.stage = 2
    y2 = layer(torch.tensor(x, dtype=torch.float32)).detach().double().numpy()
    gamma = np.abs(np.sin(W0 * w)).mean(1)
    np.testing.assert_allclose(y2, (x @ np_sign(np.sin(W0 * w)).T) * gamma, rtol=1e-4, atol=1e-4)


def test_binary_linear_stage2_gradient_is_biper_surrogate():
    """Stage 2 backward: dL/dw = (x^T dL/dacc) * gamma ... * w0 cos(w0 w) (BiPer eq. 9); with
    scaling off, exactly x^T v times w0 cos(w0 w)."""
    torch.manual_seed(SEED)
    layer = BinaryLinear(7, 3, SurrogateConfig(name="biper", w0=W0), scaling="none")
    rng = np.random.default_rng(SEED + 10)
    x = rng.choice([-1.0, 1.0], size=(6, 7))
    v = rng.normal(size=(6, 3))
    layer(torch.tensor(x, dtype=torch.float32)).backward(torch.tensor(v, dtype=torch.float32))
    w = layer.weight.detach().double().numpy()
    expected = (v.T @ x) * W0 * np.cos(W0 * w)
    np.testing.assert_allclose(layer.weight.grad.double().numpy(), expected, rtol=1e-4, atol=1e-4,
                               err_msg=f"seed {SEED + 10}")


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("inputs", ["pm1", "uint8"])
def test_binary_conv2d_integer_accumulator_times_gamma(padding, inputs):
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED + 11)
    input_scale = 1.0 if inputs == "pm1" else 1 / 255
    layer = BinaryConv2d(3, 5, 3, SurrogateConfig(name="biper", w0=W0), padding=padding,
                         input_scale=input_scale)
    layer.eval()
    w = layer.weight.detach().double().numpy()
    wq = np_sign(np.sin(W0 * w)).astype(np.int64)
    if inputs == "pm1":
        x = rng.choice([-1, 1], size=(2, 3, 7, 6)).astype(np.int64)
    else:
        x = rng.integers(0, 256, size=(2, 3, 7, 6)).astype(np.int64)
    acc_ref = np_conv2d(x, wq, padding)
    xt = torch.tensor(x, dtype=torch.float32)
    with torch.no_grad():
        acc = QuantConv2d.forward(layer, xt)
        y = layer(xt)
    acc = acc.value if hasattr(acc, "value") else acc
    np.testing.assert_array_equal(acc.numpy(), acc_ref.astype(np.float32),
                                  err_msg=f"seed {SEED + 11}: conv accumulator not exact")
    gamma_ref = np.abs(np.sin(W0 * w)).reshape(5, -1).mean(1)
    np.testing.assert_allclose(layer.channel_scale().detach().numpy(), gamma_ref, rtol=1e-5)
    expected = acc * (layer.channel_scale().detach() * input_scale).reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(y.numpy(), expected.numpy())
    # stage 1: real-valued sin(w0 w) kernel, no gamma
    layer.stage = 1
    with torch.no_grad():
        y1 = layer(xt).double().numpy()
    ref1 = np.zeros_like(y1)
    s = np.sin(W0 * w)
    xp = np.pad(x.astype(float), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    for i in range(y1.shape[2]):
        for j in range(y1.shape[3]):
            ref1[:, :, i, j] = xp[:, :, i:i + 3, j:j + 3].reshape(2, -1) @ s.reshape(5, -1).T
    np.testing.assert_allclose(y1, ref1 * input_scale, rtol=1e-4, atol=1e-3 * max(input_scale, 1e-2))


def test_math_constants_used_by_references():
    """Guard the reference helpers themselves (they are the oracle for everything above)."""
    assert reference_grad("bireal", np.array([-0.5, 0.5, 1.5]))[0] == pytest.approx(1.0)
    assert reference_grad("bireal", np.array([0.5]))[0] == pytest.approx(1.0)
    assert fda_grad(np.array([0.0]), 9, omega=PI / 2)[0] == pytest.approx(4 * (PI / 2) / PI * 10)
    assert fda_grad(np.array([0.0]), 9)[0] == pytest.approx(4 * 0.1 / PI * 10)
    assert fda_grad(np.array([1.5]), 9)[0] == 0.0
    assert np_wrap(np.array([PI]))[0] == pytest.approx(-PI)
    assert math.isclose(reference_grad("square", np.array([0.0]))[0], 1.0)


# --------------------------------------------------------------------------------------------
# Stage 1: the relaxed weight f(w) must have a finite gradient everywhere


def _peak_points() -> torch.Tensor:
    """float32 weights where sin(w0 w) rounds to exactly +-1 (the crests), plus zeros."""
    k = torch.arange(-8, 9, dtype=torch.float64)
    crests = ((k + 0.5) * torch.pi / W0).float()
    return torch.cat([crests, torch.zeros(1)])


_STAGE1_BUGS: dict = {}  # triangle and square used to have NaN / zero stage-1 gradients (fixed)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=_STAGE1_BUGS[n]))
    if n in _STAGE1_BUGS else n for n in SURROGATES])
def test_stage1_relaxed_weight_gradient_is_finite(name):
    b = build("weight", name)
    x = _peak_points().requires_grad_(True)
    assert torch.sin(W0 * x.detach()).abs().max() == 1.0  # the crests really are hit
    b.relax(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), f"{name}: grad {x.grad}"
    y = torch.linspace(-0.3, 0.3, 101, requires_grad=True)
    b.relax(y).sum().backward()
    assert y.grad.abs().max() > 0, f"{name}: stage-1 weights get no gradient"


def test_sawtooth_stage1_gradient_is_windowed_like_stage2():
    """Stage 1's relaxed sawtooth saw(w0 x) = wrap(w0 x)/pi has slope w0/pi, and the same
    pi/8 window as the stage-2 backward (M-BiPer sec. 3.1 smoothing) next to its jump, so SGD
    does not walk weights across the jump (+1 -> -1). Forward is unchanged."""
    b = build("weight", "sawtooth")
    x = sample_points(7)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = b.relax(xt)
    out.sum().backward()
    t = np_wrap(W0 * x)
    assert np.allclose(out.detach().numpy(), t / PI)
    expect = np.where(np.abs(t) < PI - PI / 8, W0 / PI, 0.0)
    assert np.allclose(xt.grad.numpy(), expect)
    assert (expect == 0).any() and (expect > 0).any()  # both regions sampled
