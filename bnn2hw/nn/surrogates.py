# SPDX-License-Identifier: MIT
"""Binarizers: an exact ±1 forward pass with a method-specific surrogate backward pass.

Every binarizer here has two faces:

* ``binarize(x)``: forward ``sign(f(x))`` with the tie rule ``sign(0) = +1`` (see
  :func:`binary_sign`), backward ``g(x)``, the method's surrogate derivative;
* ``relax(x)``: the smooth real-valued function ``f(x)`` itself, used as the weight in
  stage 1 of BiPer's two-stage training (BiPer sec. 5.1.3, eq. 10).

The methods (papers in ``shared/papers``):

==============  =============================  ==========================================
name            forward                        backward (per element)
==============  =============================  ==========================================
``biper``       sign(sin(w0 x))   BiPer eq. 8  w0 cos(w0 x)                BiPer eq. 9-10
``sine``        sign(sin(w0 x))                cos(w0 x)          M-BiPer eq. 8 (scaled)
``cosine``      sign(cos(w0 x))                -sin(w0 x)         M-BiPer eq. 8
``triangle``    sign(tri(w0 x))                sign(cos(w0 x))    M-BiPer eq. 8
``sawtooth``    sign(saw(w0 x))                1, 0 near the jump (smoothed, see below)
``square``      sign(sq(w0 x))                 triangular bumps at the edges (smoothed)
``arctan-sine`` sign(atan(sin(w0 x)))          cos(w0 x) / (1 + sin^2(w0 x))
``fda``         sign(x) (+ alpha e(x))         FDA eq. 15: 4w/pi sum cos((2i+1) w x) + e'(x),
                                               0 for |x| > 1 (w = 0.1; see :class:`FDA`)
``ste``         sign(x)                        1                                 BiPer eq. 4
``clipped-ste`` sign(x)                        1 if |x| <= 1 else 0              BiPer eq. 5
==============  =============================  ==========================================

The M-BiPer family uses period 2 pi / w0 and gradient scaling ``g = f'(x) / max|f'|``
(M-BiPer eq. 8), so its backward is bounded by 1 whatever w0 is; BiPer's own backward keeps
the factor w0 (eq. 9). The optional symmetry adjustment (M-BiPer eq. 9) replaces ``g(x)`` by
``g(x) - s (g(x) - g(-x))``: ``s = 0`` leaves it alone, ``s = 1/2`` keeps only the even part.

Smoothed derivatives (M-BiPer sec. 3.1 notes that square and sawtooth waves have impulse
derivatives at their jumps, which explode gradients):

* sawtooth ``saw(t) = wrap(t)/pi`` with ``wrap(t)`` in [-pi, pi): its derivative is the constant
  ``w0/pi`` plus a negative Dirac impulse at ``t = pi (mod 2 pi)``. We drop the impulse and set
  the gradient to zero within ``delta`` of the jump (a clipped STE on the phase), so
  ``g = 1`` for ``|wrap(t)| < pi - delta`` and 0 otherwise; ``delta = pi/8`` by default. Stage 1's
  relaxed weight ``saw(w0 x)`` uses the same window for its derivative ``(w0/pi) g``.
* square ``sq(t) = sign(sin t)``: its derivative is ``2 delta(t) - 2 delta(t - pi)`` (mod 2 pi).
  We replace each impulse by a triangular bump of half-width ``delta`` (default pi/4), height 1,
  signed like the jump: ``g = max(0, 1 - d0/delta) - max(0, 1 - d1/delta)`` with ``d0, d1`` the
  phase distances to the nearest rising (0) and falling (pi) edges.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import Bnn2hwError


def binary_sign(x: Tensor) -> Tensor:
    """``sign`` with bnn2hw's tie rule: ``x >= 0`` gives +1, ``x < 0`` gives -1.

    This is the Brevitas / Larq convention (``torch.sign(0)`` would give 0, which has no bit).
    Every back end (IR executor, ONNX thresholds, C kernels) uses the same rule: an
    accumulator that lands exactly on its threshold yields +1.
    """
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _SignWithSurrogate(torch.autograd.Function):
    """Forward ``binary_sign(f(x))``, backward ``grad_output * g(x)``."""

    @staticmethod
    def forward(ctx, x: Tensor, f: Callable[[Tensor], Tensor], g: Callable[[Tensor], Tensor]):
        ctx.save_for_backward(x)
        ctx.g = g
        return binary_sign(f(x))

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.g(x), None, None


class _RelaxWithGrad(torch.autograd.Function):
    """Forward ``f(x)``, backward ``grad_output * df(x)``: for relaxed functions whose autograd
    derivative is useless (NaN at the triangle's corners, zero for the square wave)."""

    @staticmethod
    def forward(ctx, x: Tensor, f: Callable[[Tensor], Tensor], df: Callable[[Tensor], Tensor]):
        ctx.save_for_backward(x)
        ctx.df = df
        return f(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.df(x), None, None


def _wrap(t: Tensor) -> Tensor:
    """Phase wrapped into [-pi, pi)."""
    return torch.remainder(t + math.pi, 2 * math.pi) - math.pi


@dataclass
class SurrogateConfig:
    """Everything needed to rebuild a binarizer; stored in checkpoints."""

    name: str = "biper"
    w0: float = 20.0
    symmetry: float = 0.0  # M-BiPer eq. 9 coefficient
    delta: float | None = None  # smoothing half-width for sawtooth / square (radians of phase)
    fda_terms: int = 9  # FDA n_s (sec. 3.2)
    fda_omega: float = 0.1  # FDA omega = 2 pi / T: period T = 20 pi, far wider than the inputs
    fda_alpha: float = 0.5  # initial weight of the noise adaptation module, decays to 0
    fda_features: int | None = None  # width d of the noise adaptation module (set by the layer)
    fda_clip: float | None = 1.0  # FDA's gradient is zero where |x| > fda_clip (None: never)
    period_init: bool = False  # init w ~ U(-pi/w0, pi/w0) for continuous periodic f (layers.py)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Binarizer(nn.Module):
    """Base class: subclasses define ``f`` (the relaxed function) and ``g`` (its surrogate)."""

    name = "base"
    # True: f is continuous with period 2 pi / w0, and the binary layers initialise w uniformly
    # over one period. Sawtooth and square are False: their f jumps (at +-pi, and at 0 and pi),
    # and an init over the whole period puts weights on the jump (sawtooth stage 1 fell to
    # 19-35% test accuracy with it).
    periodic = False

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.config = config
        self.progress = 0.0  # fraction of training done, for schedules (FDA)

    # -- the two functions that define a method ---------------------------------------------
    def f(self, x: Tensor) -> Tensor:
        """The relaxed real-valued function (abstract: every method in SURROGATES defines it)."""
        raise TypeError(f"{type(self).__name__} does not define f()")

    def g(self, x: Tensor) -> Tensor:
        """The surrogate derivative df/dx (abstract: every method in SURROGATES defines it)."""
        raise TypeError(f"{type(self).__name__} does not define g()")

    # -- shared behaviour ------------------------------------------------------------------
    def surrogate_grad(self, x: Tensor) -> Tensor:
        """``g`` with the optional M-BiPer symmetry adjustment (eq. 9)."""
        s = self.config.symmetry
        gx = self.g(x)
        if s:
            gx = gx - s * (gx - self.g(-x))
        return gx

    def binarize(self, x: Tensor) -> Tensor:
        return _SignWithSurrogate.apply(x, self.f, self.surrogate_grad)

    def relax(self, x: Tensor) -> Tensor:
        return self.f(x)

    def hard(self, x: Tensor) -> Tensor:
        """The inference-time ±1 value with no autograd: what the exporter writes."""
        with torch.no_grad():
            return binary_sign(self.f(x))

    def set_progress(self, p: float) -> None:
        self.progress = float(min(max(p, 0.0), 1.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.binarize(x)

    def extra_repr(self) -> str:
        return f"name={self.name}, w0={self.config.w0}"


class BiPer(Binarizer):
    """BiPer eq. 8-10: forward sign(sin(w0 w)), backward d/dw sin(w0 w) = w0 cos(w0 w)."""

    name = "biper"
    periodic = True

    def f(self, x):
        return torch.sin(self.config.w0 * x)

    def g(self, x):
        return self.config.w0 * torch.cos(self.config.w0 * x)


class Sine(Binarizer):
    """M-BiPer sine: BiPer's forward, gradient scaled by max|f'| = w0 (M-BiPer eq. 8)."""

    name = "sine"
    periodic = True

    def f(self, x):
        return torch.sin(self.config.w0 * x)

    def g(self, x):
        return torch.cos(self.config.w0 * x)


class Cosine(Binarizer):
    """M-BiPer cosine: forward sign(cos(w0 w)), backward -sin(w0 w) (eq. 8 scaling)."""

    name = "cosine"
    periodic = True

    def f(self, x):
        return torch.cos(self.config.w0 * x)

    def g(self, x):
        return -torch.sin(self.config.w0 * x)


def triangle_wave(t: Tensor) -> Tensor:
    """``tri(t) = (2/pi) asin(sin t)`` computed without asin: ``1 - (2/pi) |wrap(t - pi/2)|``.

    Same function (a unit triangle wave in phase with ``sin t``: 0 at 0, 1 at pi/2, -1 at -pi/2),
    but piecewise linear in float arithmetic. ``asin(sin t)`` is not usable under autograd: where
    float32 ``sin t`` rounds to exactly +-1 (within ~3e-4 rad of a crest) ``asin'`` is infinite
    and the chain rule gives +-inf or NaN, which one SGD step spreads to every parameter. Here
    autograd gives ``(2/pi) sign(cos t)`` everywhere (0 exactly at a crest)."""
    return 1.0 - (2 / math.pi) * _wrap(t - math.pi / 2).abs()


class Triangle(Binarizer):
    """M-BiPer triangle wave tri(t) = (2/pi) asin(sin t), in phase with the sine.

    ``f'(w) = (2 w0/pi) sign(cos(w0 w))``, so the scaled gradient is ``sign(cos(w0 w))``.
    ``f`` is evaluated with :func:`triangle_wave` (no asin, finite gradient everywhere)."""

    name = "triangle"
    periodic = True

    def f(self, x):
        return triangle_wave(self.config.w0 * x)

    def g(self, x):
        return binary_sign(torch.cos(self.config.w0 * x))

    def relax(self, x):
        # d tri / dx = (2 w0 / pi) sign(cos(w0 x)), stated explicitly (the same as autograd
        # through triangle_wave away from the crests)
        w0 = self.config.w0
        return _RelaxWithGrad.apply(x, self.f, lambda t: (2 * w0 / math.pi) * self.g(t))


class Sawtooth(Binarizer):
    """M-BiPer sawtooth saw(t) = wrap(t)/pi; same sign as sin t. Smoothed gradient: see module doc."""

    name = "sawtooth"

    def f(self, x):
        return _wrap(self.config.w0 * x) / math.pi

    def g(self, x):
        delta = self.config.delta if self.config.delta is not None else math.pi / 8
        t = _wrap(self.config.w0 * x)
        return (t.abs() < math.pi - delta).to(x.dtype)

    def relax(self, x):
        # stage 1 uses the same smoothed derivative, (w0/pi) g: under plain autograd the slope
        # w0/pi holds right up to the jump, SGD walks weights across it and their real value
        # flips from +1 to -1 (the digits CNN's stage 1 stalled at 83% test accuracy)
        w0 = self.config.w0
        return _RelaxWithGrad.apply(x, self.f, lambda t: (w0 / math.pi) * self.g(t))


class Square(Binarizer):
    """M-BiPer square wave sq(t) = sign(sin t). Smoothed gradient: triangular bumps at the edges."""

    name = "square"

    def f(self, x):
        return binary_sign(torch.sin(self.config.w0 * x))

    def g(self, x):
        delta = self.config.delta if self.config.delta is not None else math.pi / 4
        t = _wrap(self.config.w0 * x)  # rising edge at 0, falling edge at +-pi
        d_rise = t.abs()
        d_fall = math.pi - t.abs()
        return torch.clamp(1 - d_rise / delta, min=0) - torch.clamp(1 - d_fall / delta, min=0)

    def relax(self, x):
        # the square wave's derivative is impulses: stage 1 uses the smoothed bumps times w0
        w0 = self.config.w0
        return _RelaxWithGrad.apply(x, self.f, lambda t: w0 * self.g(t))


class ArctanSine(Binarizer):
    """M-BiPer arctan-sine f(t) = atan(sin t); f'(w) = w0 cos t / (1 + sin^2 t), max at t = 0."""

    name = "arctan-sine"
    periodic = True

    def f(self, x):
        return torch.atan(torch.sin(self.config.w0 * x))

    def g(self, x):
        t = self.config.w0 * x
        return torch.cos(t) / (1 + torch.sin(t) ** 2)


class STE(Binarizer):
    """Straight-through estimator (BiPer eq. 4): sign forward, identity backward."""

    name = "ste"

    def f(self, x):
        return x

    def g(self, x):
        return torch.ones_like(x)


class ClippedSTE(Binarizer):
    """Clipped STE (BiPer eq. 5): gradient 1 on |x| <= 1, else 0; relaxed weight hardtanh(x)."""

    name = "clipped-ste"

    def f(self, x):
        return torch.clamp(x, -1.0, 1.0)

    def g(self, x):
        return (x.abs() <= 1).to(x.dtype)


class BiRealSign(Binarizer):
    """Activation binarizer: sign forward, Bi-Real piecewise polynomial backward (BiPer eq. 6-7).

    ``dF/da = 2 + 2a`` on [-1, 0), ``2 - 2a`` on [0, 1), 0 elsewhere; relaxed F is the
    piecewise quadratic whose derivative that is (clipped to [-1, 1])."""

    name = "bireal"

    def f(self, x):
        xc = torch.clamp(x, -1.0, 1.0)
        return torch.where(xc < 0, 2 * xc + xc * xc, 2 * xc - xc * xc)

    def g(self, x):
        return torch.clamp(2 - 2 * x.abs(), min=0)


class NoiseAdaptation(nn.Module):
    """FDA eq. 13: e(t) = relu(t W1) W2 + eta(t), eta(t) = a sin(t), a = 0.1; k = 64 reduction.

    Acts on the last dimension (width ``d``); W1, W2 start zero-mean so e(t) is unbiased."""

    def __init__(self, d: int, k: int = 64, a: float = 0.1):
        super().__init__()
        hidden = max(d // k, 1)
        self.fc1 = nn.Linear(d, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, d, bias=False)
        nn.init.normal_(self.fc1.weight, 0.0, 1.0 / math.sqrt(d))
        nn.init.normal_(self.fc2.weight, 0.0, 1.0 / math.sqrt(hidden) * 0.1)
        self.a = a

    def forward(self, t: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(t))) + self.a * torch.sin(t)


class FDA(Binarizer):
    """FDA (NeurIPS 2021): sign forward; backward the n-term Fourier series of the square wave.

    ``s_n(t) = 4/pi sum_{i=0}^{n} sin((2i+1) w t)/(2i+1)`` (eq. 9), ``s_n'(t) = 4w/pi sum
    cos((2i+1) w t)`` (eq. 10, used in eq. 15). The noise adaptation module (eq. 13) adds
    ``alpha * e(t)`` to the forward output (eq. 14); alpha decays linearly to 0 over training
    and the number of terms grows from n_s to 2 n_s (sec. 3.2), both driven by
    :meth:`set_progress`. With alpha = 0 the forward is exactly ±1.

    Frequency and window. The paper leaves omega = 2 pi / T open; eq. 7 only needs the input to
    stay inside one period of the square wave. bnn2hw uses omega = 0.1 (T = 20 pi) and zeroes the
    gradient where ``|x| > fda_clip = 1``, as the public PyTorch FDA code does; the peak gradient
    is then ``4 omega (n + 1) / pi`` = 1.27 (n = 9) to 2.42 (n = 18), close to Bi-Real's 2.
    bnn2hw's first choice, omega = pi/2 (T = 4) with no window, made training collapse to one
    class at the paper's lr 0.1 (digits MLP and CNN, 5 of 6 runs): its gradient peaks at
    ``2 (n + 1)`` = 20..38 and has equally large *negative* lobes at ``|t| = 2, 6, ...`` (the
    square wave's falling edges), right where batch-normalised activations lie, so descent pushes
    those pre-activations further out; the BN shifts ran away (|beta| up to ~20) until every unit
    was constant. Both settings remain available through ``fda_omega`` / ``fda_clip``.
    """

    name = "fda"

    def __init__(self, config: SurrogateConfig):
        super().__init__(config)
        self.noise = NoiseAdaptation(config.fda_features) if config.fda_features else None

    @property
    def terms(self) -> int:
        n_s = self.config.fda_terms
        return int(round(n_s + self.progress * n_s))

    @property
    def alpha(self) -> float:
        return self.config.fda_alpha * (1.0 - self.progress)

    def f(self, x):
        # The relaxed (stage-1) weight is hardtanh(x): the Fourier sum below matches sign(x)
        # only inside one period |x| < pi / omega, so it is not a usable real-valued weight.
        return torch.clamp(x, -1.0, 1.0)

    def fourier(self, x: Tensor) -> Tensor:
        """The n-term partial sum s_n(x) of FDA eq. 9 (whose derivative is :meth:`g`)."""
        w = self.config.fda_omega
        k = torch.arange(self.terms + 1, dtype=x.dtype, device=x.device) * 2 + 1
        return (4 / math.pi) * (torch.sin(x.unsqueeze(-1) * (k * w)) / k).sum(-1)

    def g(self, x):
        w = self.config.fda_omega
        k = torch.arange(self.terms + 1, dtype=x.dtype, device=x.device) * 2 + 1
        grad = (4 * w / math.pi) * torch.cos(x.unsqueeze(-1) * (k * w)).sum(-1)
        if self.config.fda_clip is not None:
            grad = grad * (x.abs() <= self.config.fda_clip).to(x.dtype)
        return grad

    def binarize(self, x: Tensor) -> Tensor:
        out = _SignWithSurrogate.apply(x, lambda t: t, self.surrogate_grad)
        if self.noise is not None and self.alpha > 0 and self.training:
            out = out + self.alpha * self.noise(x)
        return out

    def hard(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return binary_sign(x)


SURROGATES: dict[str, type[Binarizer]] = {
    cls.name: cls
    for cls in (BiPer, Sine, Cosine, Triangle, Sawtooth, Square, ArctanSine, FDA, STE, ClippedSTE)
}
"""Weight binarizers selectable with ``--surrogate``."""

ACTIVATION_BINARIZERS: dict[str, type[Binarizer]] = {
    "bireal": BiRealSign,
    "ste": ClippedSTE,
    "fda": FDA,
}
"""Activation binarizers. ``default_activation`` picks one to match the weight surrogate."""


def default_activation(surrogate: str) -> str:
    """BiPer and M-BiPer use Bi-Real's activation surrogate; FDA its own; STE the clipped STE."""
    if surrogate == "fda":
        return "fda"
    if surrogate in ("ste", "clipped-ste"):
        return "ste"
    return "bireal"


def make_binarizer(config: SurrogateConfig | dict, activation: bool = False) -> Binarizer:
    """Build a binarizer by name; unknown names raise :class:`Bnn2hwError` listing valid ones."""
    if isinstance(config, dict):
        config = SurrogateConfig(**config)
    table = ACTIVATION_BINARIZERS if activation else SURROGATES
    try:
        cls = table[config.name]
    except KeyError:
        kind = "activation binarizer" if activation else "surrogate"
        raise Bnn2hwError(
            f"unknown {kind} {config.name!r}; valid: {', '.join(sorted(table))}"
        ) from None
    return cls(config)
