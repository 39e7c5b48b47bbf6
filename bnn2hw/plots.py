# SPDX-License-Identifier: MIT
"""Figures (matplotlib, PNG, no screen needed): surrogates, BiPer's quantization error, training
curves, and per-layer cost bars. Each function writes one file and returns its path; the commands
that call them list the files they wrote.

* :func:`plot_surrogates`: every weight binarizer's forward ``f(w)`` (stage 1's real weight,
  BiPer eq. 10; M-BiPer's family, FDA's Fourier series) and backward ``g(w)`` (the surrogate
  gradient, BiPer eq. 9-10, M-BiPer eq. 8), at ``w0``.
* :func:`plot_quantization_error`: BiPer's closed-form QE* against ``x = w0 b`` (eq. 15-18) with
  its maximum 0.102835 at x = 0.954882 and its limit 1/2 - 4/pi^2.
* :func:`plot_training_curves`: loss and test accuracy per epoch, both stages.
* :func:`plot_layer_costs`: per-layer estimated instructions and flash bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import Bnn2hwError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Bnn2hwError("plots need matplotlib: pip install matplotlib") from None
    return plt


def plot_surrogates(path: str | Path, w0: float = 20.0) -> Path:
    import torch

    from .nn.surrogates import SURROGATES, SurrogateConfig

    plt = _pyplot()
    w = torch.linspace(-2 * np.pi / w0, 2 * np.pi / w0, 801)
    names = sorted(SURROGATES)
    cols = 4
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharex=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        b = SURROGATES[name](SurrogateConfig(name=name, w0=w0))
        b.eval()
        with torch.no_grad():
            f, g = b.f(w).numpy(), b.g(w).numpy()
        ax.plot(w.numpy(), f, color="C0", lw=1.3, label="forward f(w)")
        ax.plot(w.numpy(), np.where(f >= 0, 1.0, -1.0), color="C0", lw=0.6, alpha=0.5, label="sign(f(w))")
        ax2 = ax.twinx()
        ax2.plot(w.numpy(), g, color="C3", lw=1.1, ls="--", label="backward g(w)")
        ax2.tick_params(axis="y", colors="C3", labelsize=7)
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color="C0", lw=1.3), plt.Line2D([], [], color="C0", lw=0.6, alpha=0.5),
               plt.Line2D([], [], color="C3", ls="--")]
    fig.legend(handles, ["forward f(w) (stage-1 weight)", "sign(f(w)) (stage-2 weight)",
                         "backward g(w) (right axis)"], loc="lower right", fontsize=9)
    fig.suptitle(f"Weight binarizers at w0 = {w0:g} (x axis: latent weight w)")
    fig.tight_layout()
    return _save(fig, path)


def plot_quantization_error(path: str | Path) -> Path:
    from .analysis.quantization_error import QE_LIMIT, QE_MAX, quantization_error

    plt = _pyplot()
    x = np.linspace(0.01, 10, 4000)
    qe = quantization_error(1.0, x)
    i = int(np.argmax(qe))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, qe, label="QE*(w0 b), BiPer eq. 15-18")
    ax.axhline(QE_LIMIT, ls="--", color="gray", label=f"limit 1/2 - 4/pi^2 = {QE_LIMIT:.6f}")
    ax.plot([x[i]], [qe[i]], "o", color="C3", label=f"max {QE_MAX} at x = 0.954882")
    ax.set_xlabel("x = w0 b (Laplace scale b of the latent weights)")
    ax.set_ylabel("quantization error")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(history: list[dict], path: str | Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for stage in (1, 2):
        recs = [(i + 1, r) for i, r in enumerate(history) if r["stage"] == stage]
        if not recs:
            continue
        ep = [i for i, _ in recs]
        axes[0].plot(ep, [r["loss"] for _, r in recs], marker=".", label=f"stage {stage}")
        axes[1].plot(ep, [r["test_acc"] for _, r in recs], marker=".", label=f"stage {stage}")
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel("test accuracy")
    for ax in axes:
        ax.set_xlabel("epoch (both stages)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_costs(graph, path: str | Path, core: str = "cortex-m4") -> Path:
    from .ir.summary import layer_costs

    plt = _pyplot()
    rows = [r for r in layer_costs(graph, core) if r.op in ("dense", "conv2d", "maxpool", "threshold",
                                                             "fixed_affine", "periodic", "add")]
    names = [r.name for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(rows) + 1.5))
    axes[0].barh(names, [r.instructions for r in rows], color="C0")
    axes[0].set_xlabel(f"estimated instructions ({core})")
    axes[1].barh(names, [r.flash_bytes for r in rows], color="C1")
    axes[1].set_xlabel("flash bytes (lower bound)")
    for ax in axes:
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
