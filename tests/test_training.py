# SPDX-License-Identifier: MIT
"""Short end-to-end training runs: regression tests for surrogates that used to collapse.

* ``triangle``: ``(2/pi) asin(sin(w0 w))`` under autograd gave +-inf/NaN gradients wherever
  float32 ``sin`` rounds to exactly +-1; one SGD step then made every parameter NaN and the model
  predicted one class (10%). Now computed as a piecewise-linear wave (``triangle_wave``).
* ``fda``: with omega = pi/2 the Fourier-series gradient (FDA eq. 10) peaked at 2 (n + 1) = 20..38
  and had equally large *negative* lobes at |t| = 2, 6, ... (the falling edges of the period-4
  square wave) where batch-normalised activations live; at the paper's lr 0.1 the BN shifts ran
  away and the eval-mode model collapsed to one class. Now omega = 0.1 with the gradient zeroed
  for |t| > 1, as in the public FDA code.

Each test trains the default digits MLP (binary 256-256, binary last layer) for a few epochs with
one thread; each takes a few seconds. Chance is 10%.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.nn.surrogates import SurrogateConfig, make_binarizer, triangle_wave
from bnn2hw.train import TrainConfig, accuracy, seed_everything, train_two_stage

SEED = 0


def _train(digits, surrogate: str, epochs1: int, epochs2: int, seed: int = SEED):
    torch.set_num_threads(1)
    spec = default_spec("mlp", digits.in_shape, digits.num_classes)
    spec["surrogate"]["name"] = surrogate
    seed_everything(seed)
    model = build_model(spec)
    history, used = train_two_stage(model, digits,
                                    TrainConfig(epochs1=epochs1, epochs2=epochs2, seed=seed,
                                                threads=1), progress=False)
    return model, history, used


def _assert_finite(model, what: str):
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    bad += [n for n, b in model.named_buffers()
            if b.dtype.is_floating_point and not torch.isfinite(b).all()]
    assert not bad, f"{what}: non-finite parameters/buffers {bad}"


def test_triangle_gradient_is_finite_at_the_crests():
    """float32 points whose sin rounds to exactly +-1: the old asin(clamp(sin)) gave inf/NaN."""
    b = make_binarizer(SurrogateConfig(name="triangle", w0=20.0))
    crests = torch.tensor([math.pi / 2, -math.pi / 2, 5 * math.pi / 2, math.pi / 2 + 1e-4],
                          dtype=torch.float32) / 20.0
    assert (torch.sin(20.0 * crests).abs() == 1.0).any()  # the float32 trap is really hit
    for fn in (b.relax, b.f, lambda x: triangle_wave(20.0 * x)):
        x = crests.clone().requires_grad_(True)
        fn(x).sum().backward()
        assert torch.isfinite(x.grad).all(), x.grad
        assert x.grad.abs().max() <= 2 * 20.0 / math.pi + 1e-4
    t = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    np.testing.assert_allclose(triangle_wave(t).numpy(),
                               (2 / np.pi * np.arcsin(np.sin(t.numpy()))), atol=1e-9)


def test_triangle_mlp_trains_without_collapse(digits):
    """Regression: every triangle run ended at 10% with NaN parameters (stage 1, epoch 1)."""
    model, history, _ = _train(digits, "triangle", epochs1=4, epochs2=6)
    _assert_finite(model, f"triangle seed {SEED}")
    assert all(math.isfinite(h["loss"]) for h in history), history
    stage1 = [h["test_acc"] for h in history if h["stage"] == 1]
    acc = accuracy(model, digits.x_test, digits.y_test)
    assert stage1[-1] > 0.8, f"seed {SEED}: stage-1 accuracy {stage1}"
    assert acc > 0.7, f"seed {SEED}: final accuracy {acc:.3f} (chance 0.1); history {history}"


def test_fda_default_gradient_is_bounded_and_sign_like():
    """FDA eq. 10 with the defaults: positive bump around 0 bounded by 4 w (n+1)/pi ~ 2.4 at
    n = 2 n_s = 18, zero outside |t| <= 1; no opposite-sign lobe inside the BN range.
    Regression guard: the collapsing settings (omega = pi/2, no window: peak 20-38, -20 lobes at
    |t| = 2) fail every assertion here."""
    b = make_binarizer(SurrogateConfig(name="fda"))
    for p in (0.0, 1.0):
        b.set_progress(p)
        t = torch.linspace(-4, 4, 8001, dtype=torch.float64)
        g = b.g(t)
        peak = 4 * b.config.fda_omega * (b.terms + 1) / math.pi
        assert g.max() == pytest.approx(peak, rel=1e-6) and peak < 2.5
        assert (g[t.abs() > 1] == 0).all()
        assert g[t.abs() <= 0.5].min() > 0


def test_fda_mlp_trains_without_collapse(digits):
    """End-to-end smoke test of FDA with the defaults (paper's lr 0.1, noise module on).

    The collapse with omega = pi/2 needed 5-8 epochs of the 30-epoch schedule on some seeds and
    does not reproduce in a run this short (checked: the old settings pass this test), so the
    regression guard for it is ``test_fda_default_gradient_is_bounded_and_sign_like`` above."""
    model, history, used = _train(digits, "fda", epochs1=8, epochs2=2)
    assert used.lr1 == pytest.approx(0.1)  # the paper's learning rate, unchanged
    _assert_finite(model, f"fda seed {SEED}")
    stage1 = [round(h["test_acc"], 3) for h in history if h["stage"] == 1]
    acc = accuracy(model, digits.x_test, digits.y_test)
    assert min(stage1[3:]) > 0.5, f"seed {SEED}: stage-1 accuracy collapsed: {stage1}"
    assert acc > 0.8, f"seed {SEED}: final accuracy {acc:.3f} (chance 0.1); stage 1 {stage1}"


@pytest.mark.parametrize("surrogate,w0,expected", [
    ("biper", 20.0, (0.1 / 20, 0.01)),   # stage 2: the paper's rate, phase step w0^2 lr2
    ("sine", 20.0, (0.1 / 20, 0.01 * 20)),   # M-BiPer eq. 8 divides the backward by w0
    ("triangle", 10.0, (0.1 / 10, 0.01 * 10)), ("biper", 10.0, (0.1 / 10, 0.01)),
    ("ste", 20.0, (0.1, 0.01)), ("fda", 20.0, (0.1, 0.01)),
])
def test_latent_learning_rates_follow_the_phase_step_rule(surrogate, w0, expected):
    """Stage-1 phase step w0^2 lr1_latent = w0 lr1; stage-2 phase step w0^2 lr2 for BiPer (eq. 9)
    and the M-BiPer family (eq. 8) alike (module docstring of bnn2hw.train)."""
    from bnn2hw.train import latent_learning_rates

    got = latent_learning_rates(surrogate, w0, 0.1, 0.01)
    assert got == pytest.approx(expected)
    if surrogate == "biper":  # the same phase step as the M-BiPer rate with eq. 8's 1/w0
        assert got[1] * w0 ** 2 == pytest.approx(latent_learning_rates("sine", w0, 0.1, 0.01)[1] * w0)


@pytest.mark.parametrize("frozen", ["latent", "rest"])
def test_latent_weights_and_other_parameters_use_their_own_rates(digits, frozen):
    """A zero rate freezes exactly its group: latent weights of the binary layers vs BatchNorm,
    classifier scale/bias (stage 2, one epoch)."""
    from bnn2hw.nn.layers import binary_layers

    torch.set_num_threads(1)
    spec = default_spec("mlp", digits.in_shape, digits.num_classes)
    seed_everything(SEED)
    model = build_model(spec)
    latent_ids = {id(m.weight) for m in binary_layers(model)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(epochs1=0, epochs2=1, seed=SEED, threads=1,
                      lr2=0.0 if frozen == "rest" else 0.01,
                      latent_lr2=0.0 if frozen == "latent" else 1e-3)
    _, used = train_two_stage(model, digits, cfg, progress=False)
    assert (used.lr2, used.latent_lr2) == (cfg.lr2, cfg.latent_lr2)
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        is_latent = id(p) in latent_ids
        should_move = is_latent != (frozen == "latent")
        assert moved == should_move, f"{n}: moved={moved}, latent={is_latent}, frozen={frozen}"


def test_batches_are_full_and_drop_the_short_tail():
    """1347 digits images at batch 64 used to end each epoch with a 3-image batch (noisy
    BatchNorm statistics; BiPer MLP test accuracy 91.0% with it, 96.8% without)."""
    from bnn2hw.train import batches

    perm = torch.randperm(1347)
    got = batches(perm, 64)
    assert [len(b) for b in got] == [64] * 21
    assert torch.equal(torch.cat(got), perm[:21 * 64])
    assert [len(b) for b in batches(torch.arange(128), 64)] == [64, 64]
    assert [len(b) for b in batches(torch.arange(10), 64)] == [10]  # smaller than one batch
    assert batches(torch.arange(1), 64) == []  # BatchNorm needs two samples
