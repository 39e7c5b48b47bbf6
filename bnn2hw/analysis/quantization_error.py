# SPDX-License-Identifier: MIT
"""Quantization error (QE) of BiPer's binarizer, closed form and measured (BiPer sec. 4.1).

BiPer binarizes a latent weight ``w`` as ``gamma * sign(sin(w0 w))`` (eq. 8) and measures the
error against the real-valued stage-1 weight ``sin(w0 w)`` (eq. 10)::

    QE = E[(sin(w0 w) - gamma sign(sin(w0 w)))^2]                                   (eq. 15)
       = E[sin^2(w0 w)] - 2 gamma E|sin(w0 w)| + gamma^2                            (eq. 16-17)

For zero-mean Laplace latent weights ``w ~ La(0, b)``, with ``x = w0 b``::

    E[sin^2(w0 w)] = 2 x^2 / (4 x^2 + 1)                            (first term of eq. 17)
    E|sin(w0 w)|   = x (e^{pi/x} + 1) / ((x^2 + 1)(e^{pi/x} - 1))
                   = x coth(pi / (2x)) / (x^2 + 1)                                  (eq. 18)

``gamma = E|sin(w0 w)|`` minimises eq. 15 (its derivative in gamma, ``-2 E|sin| + 2 gamma``,
vanishes there), and substituting it into eq. 17 gives the optimal error::

    QE*(x) = 2 x^2 / (4 x^2 + 1) - gamma(x)^2.

QE* depends on ``w0`` and ``b`` only through ``x``. Its maximum is 0.102835 at
``x ~ 0.954882``, and ``QE* -> 1/2 - 4/pi^2`` as ``x -> inf`` (``gamma -> 2/pi``), both stated
after eq. 18 in the paper.

The *measured* error (:func:`measured_qe`) uses the trained weights themselves, with the
per-output-channel empirical optimum ``gamma_c = mean_i |sin(w0 w_ci)|``, which is the scale
:class:`bnn2hw.nn.layers.BinaryLinear` applies in stage 2.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor, nn

from ..nn.layers import binary_layers

QE_MAX = 0.102835
"""Maximum of QE*(x) over x = w0 b (BiPer, text after eq. 18)."""

QE_LIMIT = 0.5 - 4 / math.pi ** 2
"""Limit of QE* as w0 b -> inf (BiPer, text after eq. 18)."""


def _x(w0, b) -> np.ndarray:
    x = np.asarray(w0, dtype=np.float64) * np.asarray(b, dtype=np.float64)
    if np.any(x <= 0):
        raise ValueError("w0 * b must be positive")
    return x


def expected_sin2(w0, b) -> np.ndarray | float:
    """``E[sin^2(w0 w)]`` for ``w ~ La(0, b)``: ``2 x^2 / (4 x^2 + 1)`` (first term of eq. 17)."""
    x = _x(w0, b)
    out = 2 * x * x / (4 * x * x + 1)
    return float(out) if out.ndim == 0 else out


def optimal_scale(w0, b) -> np.ndarray | float:
    """Optimal scaling factor ``gamma = E|sin(w0 w)|`` for ``w ~ La(0, b)`` (BiPer eq. 18).

    ``x (e^{pi/x} + 1) / ((x^2 + 1)(e^{pi/x} - 1))`` with ``x = w0 b``, evaluated as
    ``x / ((x^2 + 1) tanh(pi / (2x)))``, which does not overflow for small ``x``.
    """
    x = _x(w0, b)
    out = x / ((x * x + 1) * np.tanh(np.pi / (2 * x)))
    return float(out) if out.ndim == 0 else out


def quantization_error(w0, b, gamma=None) -> np.ndarray | float:
    """Expected QE for ``w ~ La(0, b)`` (BiPer eq. 17); ``gamma=None`` uses the optimum (eq. 18).

    With the optimal gamma this is ``QE* = 2 x^2 / (4 x^2 + 1) - gamma^2``, ``x = w0 b``.
    """
    s2 = np.asarray(expected_sin2(w0, b))
    e_abs = np.asarray(optimal_scale(w0, b))
    g = e_abs if gamma is None else np.asarray(gamma, dtype=np.float64)
    out = s2 - 2 * g * e_abs + g * g
    return float(out) if out.ndim == 0 else out


def laplace_b(weights, zero_mean: bool = True) -> float:
    """Maximum-likelihood Laplace scale ``b`` of a weight sample.

    ``zero_mean=True`` (the model of BiPer sec. 4.1, ``La(0, b)``): ``b = mean |w|``, the MLE
    when the location is known to be 0. ``zero_mean=False``: location estimated by the median
    (its MLE) and ``b = mean |w - median(w)|``.
    """
    w = _as_numpy(weights).astype(np.float64).ravel()
    if w.size == 0:
        raise ValueError("laplace_b needs at least one weight")
    if zero_mean:
        return float(np.mean(np.abs(w)))
    return float(np.mean(np.abs(w - np.median(w))))


def _as_numpy(w) -> np.ndarray:
    if isinstance(w, Tensor):
        return w.detach().cpu().numpy()
    return np.asarray(w)


def _weight_and_w0(layer_or_weight, w0: float | None) -> tuple[np.ndarray, float]:
    if isinstance(layer_or_weight, nn.Module):
        weight = layer_or_weight.weight
        if w0 is None:
            w0 = layer_or_weight.binarizer.config.w0
    else:
        weight = layer_or_weight
    if w0 is None:
        raise ValueError("w0 is required when passing a weight tensor")
    return _as_numpy(weight).astype(np.float64), float(w0)


def measured_qe(layer_or_weight, w0: float | None = None) -> float:
    """Empirical QE of eq. 15 on actual weights, with the per-channel optimal gamma.

    ``mean_{c,i} (sin(w0 w_ci) - gamma_c sign(sin(w0 w_ci)))^2`` with
    ``gamma_c = mean_i |sin(w0 w_ci)|`` over output channel ``c`` (dim 0), tie rule
    ``sign(0) = +1``. ``layer_or_weight`` is a binary layer (its ``w0`` is used unless given)
    or a weight tensor/array (``w0`` required).
    """
    w, w0 = _weight_and_w0(layer_or_weight, w0)
    s = np.sin(w0 * w.reshape(w.shape[0], -1))
    gamma = np.abs(s).mean(axis=1, keepdims=True)
    sign = np.where(s >= 0, 1.0, -1.0)
    return float(np.mean((s - gamma * sign) ** 2))


def model_quantization_report(model: nn.Module, w0: float | None = None) -> list[dict]:
    """For every binary layer (:func:`bnn2hw.nn.layers.binary_layers`), in module order:
    name, weight shape, w0, fitted Laplace ``b`` (zero-mean MLE), ``x = w0 b``, the closed-form
    optimal gamma (eq. 18) and QE* (eq. 17), the measured QE (eq. 15) and the mean empirical
    gamma. The closed form assumes the binarizer is BiPer's sin(w0 w); the measured QE uses
    sin(w0 w) too, whatever surrogate the layer trained with."""
    names = {id(m): n for n, m in model.named_modules()}
    rows = []
    for layer in binary_layers(model):
        w, lw0 = _weight_and_w0(layer, w0)
        b = laplace_b(w)
        s = np.abs(np.sin(lw0 * w.reshape(w.shape[0], -1)))
        rows.append({"layer": names.get(id(layer), type(layer).__name__),
                     "shape": list(w.shape), "w0": lw0, "b": b, "x": lw0 * b,
                     "gamma_closed_form": optimal_scale(lw0, b),
                     "qe_closed_form": quantization_error(lw0, b),
                     "gamma_measured": float(s.mean()),
                     "qe_measured": measured_qe(w, lw0)})
    return rows


def format_report(rows: list[dict]) -> str:
    """A plain-text table of :func:`model_quantization_report` rows."""
    head = f"{'layer':24s} {'shape':>16s} {'w0':>6s} {'b':>9s} {'w0*b':>8s} " \
           f"{'gamma*':>8s} {'gamma':>8s} {'QE*':>8s} {'QE':>8s}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['layer'][:24]:24s} {'x'.join(map(str, r['shape'])):>16s} "
                     f"{r['w0']:6.1f} {r['b']:9.5f} {r['x']:8.4f} {r['gamma_closed_form']:8.5f} "
                     f"{r['gamma_measured']:8.5f} {r['qe_closed_form']:8.5f} "
                     f"{r['qe_measured']:8.5f}")
    return "\n".join(lines)


__all__ = ["QE_LIMIT", "QE_MAX", "expected_sin2", "format_report", "laplace_b", "measured_qe",
           "model_quantization_report", "optimal_scale", "quantization_error"]
