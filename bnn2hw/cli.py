# SPDX-License-Identifier: MIT
"""The ``bnn2hw`` command: train, export (FPGA), emit-c (MCU), inspect.

User errors (:class:`Bnn2hwError`) print one line naming the problem and exit with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import Bnn2hwError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train periodic-surrogate BNNs and deploy them bit-exactly to FPGA and MCU.")


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


@app.command()
def train(
    model: str = typer.Option("mlp", help="mlp | cnn | mbiper-mlp | resnet18 | resnet20 | vgg-small | "
                                          "mbiper-resnet20"),
    dataset: str = typer.Option("digits", help="'digits' (built in), a .npz file or an image folder"),
    surrogate: str = typer.Option("biper", help="biper|sine|cosine|triangle|sawtooth|square|"
                                                "arctan-sine|fda|ste|clipped-ste"),
    w0: float = typer.Option(20.0, help="angular frequency w0 of the periodic binarizer (BiPer eq. 8)"),
    activation: Optional[str] = typer.Option(None, help="activation binarizer: bireal|ste|fda "
                                                        "(default: matches the surrogate)"),
    first: str = typer.Option("binary", help="first layer weights: binary | int8 | float"),
    last: str = typer.Option("binary", help="last layer weights: binary | int8 | float"),
    hidden: Optional[str] = typer.Option(None, help="hidden widths, comma separated (mlp: 256,256)"),
    periodic: str = typer.Option("sine", help="mbiper-mlp / mbiper-resnet20: periodic activation f of "
                                              "M-BiPer eq. 7 (sine|cosine|triangle|arctan-sine)"),
    epochs1: int = typer.Option(30, help="stage-1 epochs (real weights f(w), binary activations)"),
    epochs2: int = typer.Option(30, help="stage-2 epochs (binary weights)"),
    lr1: float = typer.Option(0.1, help="stage-1 learning rate (BatchNorm, classifier, int8/float "
                                        "layers; all weights of ste/clipped-ste/fda)"),
    lr2: float = typer.Option(0.01, help="stage-2 learning rate (same parameters as --lr1)"),
    latent_lr1: Optional[float] = typer.Option(None, help="stage-1 rate of a periodic binarizer's "
                                                          "latent weights (default lr1/w0)"),
    latent_lr2: Optional[float] = typer.Option(None, help="stage-2 rate of a periodic binarizer's "
                                                          "latent weights (default lr2 for biper, "
                                                          "w0*lr2 for the M-BiPer family)"),
    wd1: float = typer.Option(5e-4, help="stage-1 weight decay"),
    wd2: float = typer.Option(5e-5, help="stage-2 weight decay"),
    batch_size: int = typer.Option(64),
    sin2_reg: float = typer.Option(0.0, help="tau of the official code's tau*mean(sin^2(w0 w))"),
    symmetry: float = typer.Option(0.0, help="M-BiPer eq. 9 symmetry adjustment coefficient"),
    seed: int = typer.Option(0, help="random seed (weights, shuffling)"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice)"),
    image_size: int = typer.Option(8, help="image folders: resize to this size"),
    channels: int = typer.Option(1, help="image folders: 1 (grayscale) or 3 (RGB)"),
    output: Path = typer.Option(..., "-o", "--output", help="checkpoint file to write"),
    quiet: bool = typer.Option(False, help="no progress bar or per-epoch lines"),
):
    """Two-stage training (BiPer sec. 5.1.3); writes a bnn2hw checkpoint."""
    from .checkpoint import save_checkpoint
    from .data import load_dataset
    from .nn.layers import PERIODIC_FUNCTIONS
    from .nn.models import build_model, default_spec
    from .nn.surrogates import ACTIVATION_BINARIZERS, SURROGATES
    from .train import TrainConfig, accuracy, epoch_seconds, seed_everything, train_two_stage

    if surrogate not in SURROGATES:
        _fail(f"unknown surrogate {surrogate!r}; valid: {', '.join(sorted(SURROGATES))}")
    if activation is not None and activation not in ACTIVATION_BINARIZERS:
        _fail(f"unknown activation {activation!r}; valid: {', '.join(sorted(ACTIVATION_BINARIZERS))}")
    if periodic not in PERIODIC_FUNCTIONS:
        _fail(f"unknown periodic activation {periodic!r}; valid: {', '.join(PERIODIC_FUNCTIONS)}")
    data = load_dataset(dataset, image_size=image_size, channels=channels)
    spec = default_spec(model, data.in_shape, data.num_classes)
    spec["surrogate"].update(name=surrogate, w0=w0, symmetry=symmetry)
    spec.update(first=first, last=last, activation=activation)
    if hidden is not None:
        try:
            spec["hidden"] = [int(h) for h in hidden.split(",") if h.strip()]
        except ValueError:
            _fail(f"--hidden must be comma-separated integers, got {hidden!r}")
    if model in ("mbiper-mlp", "mbiper-resnet20"):
        spec["periodic"] = periodic
    elif periodic != "sine":
        _fail(f"--periodic applies to mbiper-mlp and mbiper-resnet20, not {model!r}")
    if model == "cnn" and len(data.in_shape) != 3:
        _fail(f"model 'cnn' needs image data (C, H, W); {dataset} has rows of shape {data.in_shape}")
    seed_everything(seed)
    net = build_model(spec)
    cfg = TrainConfig(epochs1=epochs1, epochs2=epochs2, lr1=lr1, lr2=lr2, latent_lr1=latent_lr1,
                      latent_lr2=latent_lr2, wd1=wd1, wd2=wd2,
                      batch_size=batch_size, sin2_reg=sin2_reg, seed=seed, threads=threads)

    def log(rec):
        if not quiet:
            typer.echo(f"stage {rec['stage']} epoch {rec['epoch']:3d}  loss {rec['loss']:.4f}  "
                       f"test acc {rec['test_acc']:.4f}  {rec['seconds']:.2f}s", err=True)

    history, used = train_two_stage(net, data, cfg, log=log, progress=not quiet)
    acc = accuracy(net, data.x_test, data.y_test)
    meta = {"dataset": dataset, "input": {"dtype": "uint8", "shape": list(data.in_shape)},
            "test_accuracy": acc, "train": used.to_dict(), "history": history,
            "seconds_per_epoch": epoch_seconds(history)}
    save_checkpoint(output, net, spec, meta)
    typer.echo(f"test accuracy {acc:.4f} ({len(data.y_test)} samples); wrote {output}")


@app.command()
def inspect(path: Path = typer.Argument(..., help="a checkpoint (.pt) or an IR file (.bnnir.npz)")):
    """Print a checkpoint's spec and metadata, or an IR graph layer by layer."""
    if str(path).endswith(".npz"):
        from .ir.graph import load_ir

        typer.echo(load_ir(path).describe())
        return
    from .checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    meta = {k: v for k, v in ckpt["meta"].items() if k != "history"}
    typer.echo(json.dumps({"spec": ckpt["spec"], "meta": meta}, indent=2, default=str))


def _register_backends() -> None:
    """Attach the export and emit-c commands (kept in their own modules)."""
    try:
        from .fpga import cli as fpga_cli  # noqa: F401  (registers `export`)
    except ImportError:
        pass
    try:
        from .mcu import cli as mcu_cli  # noqa: F401  (registers `emit-c`)
    except ImportError:
        pass


def main() -> None:
    _register_backends()
    try:
        app()
    except Bnn2hwError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":  # ``python -m bnn2hw.cli``: use the package's module object
    from bnn2hw.cli import main as _main

    _main()
