# SPDX-License-Identifier: MIT
"""The ``bnn2hw`` command: train, export (FPGA), emit-c (MCU), inspect.

This module only parses and checks options; the work is done by the library functions it
imports lazily (``train``, :func:`bnn2hw.fpga.cli.export_fpga`, :func:`bnn2hw.mcu.cli.emit_c`).
Every command is always registered, so a broken dependency is reported by name when the command
runs instead of making the command vanish.

User errors (:class:`Bnn2hwError`, bad options, unwritable outputs) print one ``error:`` line
naming the problem and exit with status 2; SIGINT and SIGTERM clean up temporary output and exit
with 130 and 143. Nothing half-written is ever left at ``-o``.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .errors import Bnn2hwError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train periodic-surrogate BNNs and deploy them bit-exactly to FPGA and MCU.")

MAX_PARAMETERS = 1 << 28
"""Refuse models above 268 M parameters before allocating them (1 GiB of float32 weights)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bnn2hw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Train periodic-surrogate BNNs and deploy them bit-exactly to FPGA and MCU."""


def _warn(msg: str) -> None:
    typer.secho(f"warning: {msg}", fg="yellow", err=True)


def _lazy(module: str, what: str):
    """Import ``bnn2hw.<module>``; a missing or broken dependency becomes an error naming it."""
    try:
        return importlib.import_module(f"bnn2hw.{module}")
    except ImportError as e:
        raise Bnn2hwError(f"{what} is unavailable: importing its dependencies failed ({e}); "
                          "reinstall bnn2hw's requirements (pip install bnn2hw)") from None


def _positive(name: str, value: float | int | None, integer: bool = False, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "a non-negative" if allow_zero else "a positive"
        kind = "integer" if integer else "number"
        raise Bnn2hwError(f"{name} must be {bound} {kind}, got {value}")


def _parse_hidden(hidden: str) -> list[int]:
    try:
        widths = [int(h) for h in hidden.split(",") if h.strip()]
    except ValueError:
        raise Bnn2hwError(f"--hidden must be comma-separated integers, got {hidden!r}") from None
    if not widths or any(w < 1 for w in widths):
        raise Bnn2hwError(f"--hidden widths must be positive integers, got {hidden!r}")
    return widths


def _check_size(spec: dict) -> None:
    """Refuse absurd model sizes before any tensor is allocated (counted on the meta device)."""
    import torch

    from .nn.models import build_model

    with torch.device("meta"):
        net = build_model(spec)
    n = sum(p.numel() for p in net.parameters())
    if n > MAX_PARAMETERS:
        raise Bnn2hwError(f"model {spec['arch']!r} with these sizes has {n:,} parameters "
                          f"(limit {MAX_PARAMETERS:,}); check --hidden / --image-size")


@app.command()
def train(
    ctx: typer.Context,
    model: str = typer.Option("mlp", help="mlp | cnn | mbiper-mlp | resnet8 | resnet20 | vgg-small | "
                                          "resnet18 | mbiper-resnet20"),
    dataset: str = typer.Option("digits", help="'digits' (built in), a .npz file or an image folder"),
    surrogate: str = typer.Option("biper", help="biper|sine|cosine|triangle|sawtooth|square|"
                                                "arctan-sine|fda|ste|clipped-ste"),
    w0: float = typer.Option(20.0, help="angular frequency w0 of the periodic binarizer (BiPer eq. 8)"),
    activation: Optional[str] = typer.Option(None, help="activation binarizer: bireal|ste|fda "
                                                        "(default: matches the surrogate)"),
    first: str = typer.Option("binary", help="first layer weights: binary | int8 | float"),
    last: Optional[str] = typer.Option(None, help="last layer weights: binary | int8 | float (default: "
                                                  "int8 for resnet8/resnet20/vgg-small, else binary)"),
    residual_bits: Optional[int] = typer.Option(None, help="resnet8/resnet20/vgg-small: bits of the quantized "
                                                           "residual stream, 8 (default) or 16; 0: float stream "
                                                           "(resnet8: exported through calibration; resnet20/"
                                                           "vgg-small: the papers' float models, not exportable)"),
    pad_value: Optional[int] = typer.Option(None, help="resnet8/resnet20/vgg-small: value of a padded tap of a "
                                                       "binary conv: -1 (default; FINN and C) or 0 (C only)"),
    widths: Optional[str] = typer.Option(None, help="resnet8/resnet20/vgg-small: three stage widths, comma "
                                                    "separated (default 16,32,64; vgg-small 128,256,512)"),
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
    batch_size: int = typer.Option(64, help="global mini-batch size, split evenly over torchrun's "
                                            "processes (at least 2 per process: BatchNorm)"),
    sin2_reg: float = typer.Option(0.0, help="tau of the official code's tau*mean(sin^2(w0 w))"),
    symmetry: float = typer.Option(0.0, help="M-BiPer eq. 9 symmetry adjustment coefficient"),
    val_fraction: float = typer.Option(0.0, help="hold out this stratified fraction of the training "
                                                 "split to choose fallback weights if a stage diverges "
                                                 "(0: the training split itself is used)"),
    seed: int = typer.Option(0, help="random seed (weights, shuffling, augmentation)"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's choice)"),
    image_size: Optional[int] = typer.Option(None, help="image folders: resize to this size (default: "
                                                        "the images' own size, which must be square "
                                                        "and common to all)"),
    channels: int = typer.Option(1, help="image folders: 1 (grayscale) or 3 (RGB)"),
    augment: bool = typer.Option(False, "--augment", help="random crop with 4-pixel zero padding and "
                                                          "horizontal flip (image data; the papers' "
                                                          "CIFAR augmentation)"),
    normalize: Optional[str] = typer.Option(None, help="per-channel input normalization, pixels in "
                                                       "[0,1]: 'auto' (training-split statistics), "
                                                       "'MEAN,STD' or 'M1,M2,M3:S1,S2,S3'; recorded "
                                                       "in the checkpoint, folded at export"),
    warmup_epochs: int = typer.Option(0, help="linear learning-rate warm-up epochs at the start of "
                                              "each stage (the official BiPer code: 5)"),
    recipe: Optional[str] = typer.Option(None, help="a paper's hyperparameters: biper-cifar10-resnet18 "
                                                    "| biper-cifar10-resnet20 | biper-cifar10-vgg-small "
                                                    "(options given explicitly win)"),
    device: str = typer.Option("auto", help="auto (CUDA if available) | cpu | cuda | cuda:N; cuda "
                                            "without CUDA falls back to the CPU with a warning"),
    amp: str = typer.Option("off", help="mixed precision on CUDA: off | bf16 | fp16 (evaluation and "
                                        "export stay float32)"),
    workers: int = typer.Option(0, help="DataLoader worker processes per training process (0: "
                                        "batches are prepared in the training process)"),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="torchrun: BatchNorm statistics over the "
                                                          "global batch (SyncBatchNorm)"),
    save_every: int = typer.Option(0, help="every N epochs write a resumable checkpoint to "
                                           "OUTPUT's sibling <stem>.resume.pt (0: never)"),
    resume: Optional[Path] = typer.Option(None, help="continue the run saved in this resumable "
                                                     "checkpoint (model, data and hyperparameters "
                                                     "come from it)"),
    output: Path = typer.Option(..., "-o", "--output", help="checkpoint file to write"),
    quiet: bool = typer.Option(False, help="no progress bar or per-epoch lines"),
    compact: bool = typer.Option(False, help="progress bar and one line per stage, no per-epoch lines"),
    no_plots: bool = typer.Option(False, "--no-plots", help="do not write the training-curve PNG"),
):
    """Two-stage training (BiPer sec. 5.1.3); writes a bnn2hw checkpoint. Runs on one device, or
    under torchrun on many (DistributedDataParallel; see bnn2hw.distributed)."""
    from .outdir import check_output_path

    # options the user gave (typer may vendor its own click: compare the source by name)
    given = {p for p in ctx.params
             if getattr(ctx.get_parameter_source(p), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}
    o = dict(ctx.params)
    o.pop("ctx", None)
    extra = {"sin2_reg2": None, "sin2_sum": False}  # recipe-only settings
    if recipe is not None:
        from .recipes import get_recipe

        for key, value in get_recipe(recipe).items():
            if key in extra:
                extra[key] = value
            elif key not in given:
                o[key] = value
    if resume is not None:
        allowed = {"resume", "output", "save_every", "device", "amp", "workers", "sync_bn",
                   "threads", "quiet", "compact", "no_plots", "dataset"}
        clash = sorted(given - allowed)
        if clash:
            names = ", ".join("--" + c.replace("_", "-") for c in clash)
            raise Bnn2hwError(f"--resume continues with the model, data and hyperparameters saved in "
                              f"{resume}; drop {names}")
    check_output_path(output, "file")
    _check_train_options(o)
    from .distributed import setup_runtime, teardown

    rt = setup_runtime(o["device"], o["amp"], o["workers"], o["sync_bn"], warn=_warn)
    try:
        _train(o, extra, given, rt)
    finally:
        teardown(rt)


def _check_train_options(o: dict) -> None:
    for name in ("w0", "lr1", "lr2", "latent_lr1", "latent_lr2"):
        _positive("--" + name.replace("_", "-"), o[name])
    for name in ("wd1", "wd2", "sin2_reg"):
        _positive("--" + name.replace("_", "-"), o[name], allow_zero=True)
    for name in ("epochs1", "epochs2", "warmup_epochs", "workers", "save_every"):
        _positive("--" + name.replace("_", "-"), o[name], integer=True, allow_zero=True)
    if o["epochs1"] + o["epochs2"] == 0:
        raise Bnn2hwError("--epochs1 and --epochs2 are both 0: nothing to train")
    if o["batch_size"] < 2:
        raise Bnn2hwError("--batch-size must be at least 2 (BatchNorm needs two samples), "
                          f"got {o['batch_size']}")
    _positive("--threads", o["threads"], integer=True)
    _positive("--image-size", o["image_size"], integer=True)
    if not math.isfinite(o["symmetry"]):
        raise Bnn2hwError(f"--symmetry must be a finite number, got {o['symmetry']}")
    if not 0.0 <= o["val_fraction"] < 0.5:
        raise Bnn2hwError(f"--val-fraction must be in [0, 0.5), got {o['val_fraction']}")
    if o["channels"] not in (1, 3):
        raise Bnn2hwError(f"--channels must be 1 (grayscale) or 3 (RGB), got {o['channels']}")
    if o["image_size"] is not None and o["image_size"] > 1024:
        raise Bnn2hwError(f"--image-size {o['image_size']} is larger than 1024 pixels")
    if o["amp"] not in ("off", "bf16", "fp16"):
        raise Bnn2hwError(f"--amp must be off, bf16 or fp16, got {o['amp']!r}")
    if o["resume"] is not None and o["recipe"] is not None:
        raise Bnn2hwError("--resume continues a run with its own settings; drop --recipe")
    if o["normalize"] is not None:
        from .nn.normalize import parse_normalize

        parse_normalize(o["normalize"])


def _residual_options(spec: dict, o: dict) -> None:
    """--residual-bits, --pad-value, --widths into ``spec`` (checked)."""
    from .nn.models import DEPLOYABLE_RESIDUAL
    from .nn.residual import PAD_VALUES, STREAM_BITS

    arch = spec["arch"]
    given = [n for n in ("residual_bits", "pad_value", "widths") if o[n] is not None]
    if arch not in DEPLOYABLE_RESIDUAL:
        if given:
            raise Bnn2hwError(f"--{given[0].replace('_', '-')} applies to resnet8, resnet20 and vgg-small, "
                              f"not {arch!r}")
        return
    if o["residual_bits"] is not None:
        if o["residual_bits"] not in (0, *STREAM_BITS):
            raise Bnn2hwError(f"--residual-bits must be 8 or 16 (or 0: the papers' float model), got "
                              f"{o['residual_bits']}")
        spec["residual_bits"] = int(o["residual_bits"])
    if o["pad_value"] is not None:
        if o["pad_value"] not in PAD_VALUES:
            raise Bnn2hwError(f"--pad-value must be 0 or -1, got {o['pad_value']}")
        spec["pad_value"] = int(o["pad_value"])
    if o["widths"] is not None:
        w = _parse_hidden(o["widths"])
        if len(w) != 3:
            raise Bnn2hwError(f"--widths needs three comma-separated widths, got {o['widths']!r}")
        spec["widths"] = w
    if not spec.get("residual_bits") and arch != "resnet8":  # the papers' float resnet20 / vgg-small
        for key in ("residual_bits", "pad_value", "widths"):
            spec.pop(key, None)
        spec["last"] = "binary"


def _resume_state(path: Path) -> dict:
    from .checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    if not isinstance(ckpt.get("resume"), dict):
        raise Bnn2hwError(f"{path}: not a resumable checkpoint (it was not written by "
                          "`bnn2hw train --save-every`); a finished run cannot be continued")
    return ckpt


def _train(o: dict, extra: dict, given: set, rt) -> None:
    """The train command after option checks, in a process whose runtime ``rt`` is set up."""
    widths = _parse_hidden(o["hidden"]) if o["hidden"] is not None else None
    trainer = _lazy("train", "training")
    from .checkpoint import save_checkpoint
    from .data import describe_source, load_dataset
    from .nn.layers import PERIODIC_FUNCTIONS
    from .nn.models import build_model, default_spec
    from .nn.surrogates import ACTIVATION_BINARIZERS, SURROGATES

    model = o["model"]
    output = Path(o["output"])
    resume_ckpt = _resume_state(o["resume"]) if o["resume"] is not None else None
    if resume_ckpt is not None:
        meta0 = resume_ckpt["meta"]
        source = o["dataset"] if "dataset" in given else meta0.get("dataset", "digits")
        opts = meta0.get("data", {})
        data = load_dataset(source, image_size=opts.get("image_size"), channels=opts.get("channels", 1))
        spec = resume_ckpt["spec"]
        if list(data.in_shape) != list(spec["in_shape"]):
            raise Bnn2hwError(f"--dataset {source}: rows of shape {list(data.in_shape)}, but the run "
                              f"in {o['resume']} trains on {spec['in_shape']}")
        net = build_model(spec)
        net.load_state_dict(resume_ckpt["state_dict"])
        cfg = trainer.TrainConfig(**{**meta0["train"], "threads": o["threads"]})
        epochs1, epochs2, dataset, model = cfg.epochs1, cfg.epochs2, source, spec["arch"]
    else:
        surrogate = o["surrogate"]
        if surrogate not in SURROGATES:
            raise Bnn2hwError(f"unknown surrogate {surrogate!r}; valid: {', '.join(sorted(SURROGATES))}")
        if o["activation"] is not None and o["activation"] not in ACTIVATION_BINARIZERS:
            raise Bnn2hwError(f"unknown activation {o['activation']!r}; valid: "
                              f"{', '.join(sorted(ACTIVATION_BINARIZERS))}")
        if o["periodic"] not in PERIODIC_FUNCTIONS:
            raise Bnn2hwError(f"unknown periodic activation {o['periodic']!r}; valid: "
                              f"{', '.join(PERIODIC_FUNCTIONS)}")
        for opt, kind in (("--first", o["first"]), ("--last", o["last"])):
            if kind is not None and kind not in ("binary", "int8", "float"):
                raise Bnn2hwError(f"{opt} must be binary, int8 or float, got {kind!r}")
        dataset = o["dataset"]
        data = load_dataset(dataset, image_size=o["image_size"], channels=o["channels"])
        spec = default_spec(model, data.in_shape, data.num_classes)
        spec["surrogate"].update(name=surrogate, w0=o["w0"], symmetry=o["symmetry"])
        spec.update(first=o["first"], activation=o["activation"])
        if o["last"] is not None:
            spec["last"] = o["last"]
        _residual_options(spec, o)
        if widths is not None:
            if "hidden" not in spec:
                raise Bnn2hwError(f"--hidden applies to mlp and cnn, not {model!r}")
            spec["hidden"] = widths
        if model in ("mbiper-mlp", "mbiper-resnet20"):
            spec["periodic"] = o["periodic"]
        elif o["periodic"] != "sine":
            raise Bnn2hwError(f"--periodic applies to mbiper-mlp and mbiper-resnet20, not {model!r}")
        if model == "cnn" and len(data.in_shape) != 3:
            raise Bnn2hwError(f"model 'cnn' needs image data (C, H, W); {dataset} has rows of shape "
                              f"{data.in_shape}")
        if o["augment"] and len(data.in_shape) != 3:
            raise Bnn2hwError(f"--augment needs image data (C, H, W); {dataset} has rows of shape "
                              f"{list(data.in_shape)}")
        if o["normalize"] is not None:
            from .nn.normalize import channel_statistics, check_normalize, parse_normalize

            norm = parse_normalize(o["normalize"])
            if norm == "auto":
                norm = channel_statistics(data.x_train)
            channels_in = int(data.in_shape[0]) if len(data.in_shape) == 3 else 1
            spec["normalize"] = check_normalize(norm, channels_in)
        from .nn.residual import deployability_warnings

        for msg in deployability_warnings(spec):  # before training: name the layer and the reason
            _warn(msg)
        _check_size(spec)
        trainer.seed_everything(o["seed"])
        try:
            net = build_model(spec)
        except Bnn2hwError:
            raise
        except (RuntimeError, ValueError) as e:
            raise Bnn2hwError(f"model {model!r} does not fit data of shape {list(data.in_shape)}: "
                              f"{e}") from None
        epochs1, epochs2 = o["epochs1"], o["epochs2"]
        cfg = trainer.TrainConfig(epochs1=epochs1, epochs2=epochs2, lr1=o["lr1"], lr2=o["lr2"],
                                  latent_lr1=o["latent_lr1"], latent_lr2=o["latent_lr2"], wd1=o["wd1"],
                                  wd2=o["wd2"], batch_size=o["batch_size"], sin2_reg=o["sin2_reg"],
                                  seed=o["seed"], threads=o["threads"], val_fraction=o["val_fraction"],
                                  warmup_epochs=o["warmup_epochs"], augment=o["augment"], **extra)
    if rt.distributed and cfg.batch_size % rt.world:
        raise Bnn2hwError(f"--batch-size {cfg.batch_size} is the global batch; it must be divisible by "
                          f"the number of processes ({rt.world})")
    if rt.distributed and cfg.batch_size // rt.world < 2:
        raise Bnn2hwError(f"--batch-size {cfg.batch_size} over {rt.world} processes leaves fewer than "
                          "2 samples per process (BatchNorm needs two)")
    quiet, compact = o["quiet"], o["compact"]

    def log(rec):
        last_of_stage = rec["epoch"] == (epochs1 if rec["stage"] == 1 else epochs2)
        if not quiet and (not compact or last_of_stage):
            from tqdm import tqdm

            tqdm.write(f"stage {rec['stage']} epoch {rec['epoch']:3d}  loss {rec['loss']:.4f}  "
                       f"test acc {rec['test_acc']:.4f}  {rec['seconds']:.2f}s", file=sys.stderr)

    runtime_meta = {"device": str(rt.device), "world_size": rt.world, "amp": rt.amp,
                    "sync_bn": bool(rt.sync_bn and rt.distributed), "workers": rt.workers}

    def base_meta(history, acc, used) -> dict:
        meta = {"dataset": describe_source(dataset), "data": data.load_options(),
                "input": {"dtype": "uint8", "shape": list(data.in_shape)},
                "test_accuracy": acc, "train": used.to_dict(), "history": history,
                "seconds_per_epoch": trainer.epoch_seconds(history), "runtime": runtime_meta}
        if o.get("recipe"):
            meta["recipe"] = o["recipe"]
        elif resume_ckpt is not None and resume_ckpt["meta"].get("recipe"):
            meta["recipe"] = resume_ckpt["meta"]["recipe"]
        if spec.get("normalize"):
            meta["normalize"] = spec["normalize"]
        return meta

    resume_path = output.with_name(output.stem + ".resume.pt")

    def on_checkpoint(state):
        history = state["history"]
        acc = history[-1]["test_acc"] if history else math.nan
        meta = {**base_meta(history, acc, trainer.TrainConfig(**state["config"])),
                "partial": {"stage": state["stage"], "epoch": state["epoch"]}}
        save_checkpoint(resume_path, net, spec, meta, resume=state)
        if not quiet:
            from tqdm import tqdm

            tqdm.write(f"wrote {resume_path} (resumable: stage {state['stage']} epoch {state['epoch']})",
                       file=sys.stderr)

    try:
        history, used = trainer.train_two_stage(
            net, data, cfg, log=log, progress=not quiet and rt.is_main, runtime=rt,
            resume=resume_ckpt["resume"] if resume_ckpt is not None else None,
            save_every=o["save_every"], on_checkpoint=on_checkpoint if o["save_every"] else None)
    except (RuntimeError, ValueError) as e:
        raise Bnn2hwError(f"training {model!r} on {dataset} failed: {str(e).splitlines()[0]}") from None
    if not rt.is_main:
        return
    acc = trainer.accuracy(net, data.x_test, data.y_test)
    meta = base_meta(history, acc, used)
    if used.diverged:
        meta["diverged"] = used.diverged
        for d in used.diverged:
            _warn(f"stage {d['stage']} diverged at epoch {d['epoch']} ({d['reason']}); kept the weights "
                  f"of epoch {d['restored_epoch']} (accuracy {d['restored_accuracy']:.4f} on the "
                  f"{d['selected_on']} split)")
    save_checkpoint(output, net, spec, meta)
    typer.echo(f"test accuracy {acc:.4f} ({len(data.y_test)} samples); wrote {output}")
    if history and not o["no_plots"]:
        from .plots import plot_training_curves

        png = plot_training_curves(history, Path(output).with_suffix(".training.png"))
        typer.echo(f"wrote {png} (loss and test accuracy per epoch)")


@app.command()
def inspect(path: Path = typer.Argument(..., help="a checkpoint (.pt), an IR file (.bnnir.npz) or a QONNX file (.onnx)")):
    """Print a checkpoint's spec and metadata, or an IR graph layer by layer."""
    if str(path).endswith(".npz"):
        from .ir.graph import load_ir

        typer.echo(load_ir(path).describe())
        return
    if path.suffix == ".onnx":  # a QONNX file: the imported IR (bnn2hw.frontends)
        typer.echo(_lazy("frontends.qonnx_verify", "the QONNX front end").describe(path))
        return
    from .checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    meta = {k: v for k, v in ckpt["meta"].items() if k != "history"}
    typer.echo(json.dumps({"spec": ckpt["spec"], "meta": meta}, indent=2, default=str))


@app.command()
def summary(
    path: Path = typer.Argument(..., help="a checkpoint (.pt) or an IR file (.bnnir.npz)"),
    core: str = typer.Option("cortex-m4", help="core for the instruction estimate"),
    clock_mhz: float = typer.Option(100.0, help="FPGA clock for FINN's folding"),
    target_fps: float = typer.Option(1e6, help="frames per second FINN's folding aims at"),
    json_out: bool = typer.Option(False, "--json", help="print the rows as JSON"),
):
    """Per-layer table: op, output shape, binary and 8-bit MACs, weight bits, thresholds, flash,
    RAM, estimated instructions on a Cortex-M core and FINN cycles, with totals."""
    _positive("--clock-mhz", clock_mhz)
    _positive("--target-fps", target_fps)
    from .api import load
    from .mcu.targets import get_target

    get_target(core)
    graph = load(path)
    if json_out:
        from .ir.summary import layer_costs

        typer.echo(json.dumps([r.to_dict() for r in layer_costs(graph, core, clock_mhz, target_fps)], indent=2))
    else:
        typer.echo(graph.summary(core, clock_mhz, target_fps))


@app.command()
def plot(
    what: str = typer.Argument(..., help="surrogates | quantization-error"),
    output: Path = typer.Option(Path("."), "-o", "--output", help="folder to write the PNG into"),
    w0: float = typer.Option(20.0, help="w0 of the binarizers (surrogates)"),
):
    """Figures: every surrogate's forward and backward, or BiPer's quantization error."""
    from .outdir import check_output_path
    from .plots import plot_quantization_error, plot_surrogates

    _positive("--w0", w0)
    if output.exists() and not output.is_dir():
        raise Bnn2hwError(f"-o {output} is a file; give a folder")
    check_output_path(output / "x.png", "file")
    if what == "surrogates":
        png = plot_surrogates(output / "surrogates.png", w0)
    elif what in ("quantization-error", "qe"):
        png = plot_quantization_error(output / "quantization_error.png")
    else:
        raise Bnn2hwError(f"unknown plot {what!r}; valid: surrogates, quantization-error")
    typer.echo(f"wrote {png}")


def _check_verify_options(verify_samples: Optional[int]) -> None:
    if verify_samples is not None and verify_samples < 1:
        raise Bnn2hwError(f"--verify-samples must be at least 1, got {verify_samples}")


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="bnn2hw checkpoint (.pt) or QONNX file (.onnx, Brevitas export_qonnx)"),
    target: str = typer.Option("pynq-z2", help="pynq-z1 | pynq-z2 | ultra96 | ultra96-v2 | zcu104 | kv260"),
    output: Path = typer.Option(Path("build"), "-o", "--output", help="build directory to write"),
    clock_mhz: float = typer.Option(100.0, help="FPGA clock for the cycle model and FINN"),
    target_fps: float = typer.Option(1e6, help="frames per second to fold for"),
    dataset: Optional[str] = typer.Option(None, help="verification data (default: the training data)"),
    verify_samples: Optional[int] = typer.Option(None, help="limit verification to N test samples"),
    no_verify: bool = typer.Option(False, "--no-verify", help="export without verification data "
                                                              "(not recommended: nothing is checked)"),
    finn: Optional[bool] = typer.Option(None, "--finn/--no-finn", help="run FINN's build (default: if importable)"),
    force: bool = typer.Option(False, "--force", help="replace -o even if it holds files bnn2hw did not write"),
    finn_version: str = typer.Option("dev", help="FINN to fold for: dev (default) | 0.10 (the v0.10.1 release)"),
    backend: str = typer.Option("finn", "--backend", help="finn (FINN-ready ONNX build dir) | rtl (open Verilog: "
                                "simulated, yosys/nextpnr; targets also ulx3s-85f, orangecrab-25f)"),
    rtl_beat_bytes: Optional[int] = typer.Option(None, "--rtl-beat-bytes", help="--backend rtl: input bytes per "
                                                 "AXI-Stream beat (1 = one u8 pixel per beat; default: a whole frame)"),
    no_synth: bool = typer.Option(False, "--no-synth", help="--backend rtl: generate, lint and simulate, but skip "
                                  "synthesis and place and route (yosys / nextpnr)"),
):
    """Fold a checkpoint to the integer IR and write a verified FINN build directory."""
    _positive("--clock-mhz", clock_mhz)
    _positive("--target-fps", target_fps)
    _check_verify_options(verify_samples)
    if no_verify and (dataset or verify_samples):
        raise Bnn2hwError("--no-verify contradicts --dataset/--verify-samples")
    if backend not in ("finn", "rtl"):
        raise Bnn2hwError(f"--backend must be finn or rtl, got {backend!r}")
    if backend == "rtl":
        rtl = _lazy("fpga.rtl", "the open RTL back end (export --backend rtl)")
        rtl.check_target(target)
        from .outdir import check_output_path

        check_output_path(output, "directory")
        if finn:
            raise Bnn2hwError("--finn runs FINN's build, which --backend rtl does not use")
        if no_verify:
            _warn("--no-verify: the RTL is not simulated and nothing is checked")
        rtl.export_rtl(checkpoint, target, output, clock_mhz, target_fps, dataset, verify_samples,
                       echo=typer.echo, verify=not no_verify, force=force, in_beat_bytes=rtl_beat_bytes,
                       synthesize=not no_synth)
        return
    if rtl_beat_bytes is not None:
        raise Bnn2hwError("--rtl-beat-bytes applies to --backend rtl only")
    if no_synth:
        raise Bnn2hwError("--no-synth applies to --backend rtl only (FINN's synthesis is --finn/--no-finn)")
    fpga = _lazy("fpga.cli", "the FPGA back end (export)")
    from .fpga import build
    from .outdir import check_output_path

    build.fpga_target(target)  # fail fast on a bad target, before any work
    build.check_finn_version(finn_version)
    check_output_path(output, "directory")
    if no_verify:
        _warn("--no-verify: the export is not checked against PyTorch or on any data")
    fpga.export_fpga(checkpoint, target, output, clock_mhz, target_fps, dataset, verify_samples, finn,
                     echo=typer.echo, verify=not no_verify, force=force, finn_version=finn_version)


@app.command("emit-c")
def emit_c_cmd(
    checkpoint: Path = typer.Argument(..., help="bnn2hw checkpoint (.pt) or QONNX file (.onnx, Brevitas export_qonnx)"),
    target: str = typer.Option("cortex-m4", help="host | cortex-m | cortex-m0/m3/m4/m7/m33/m55"),
    output: Path = typer.Option(Path("fw"), "-o", "--output", help="firmware directory to write"),
    popcount: Optional[str] = typer.Option(None, help="builtin | swar | table | multi (default per core)"),
    verify: bool = typer.Option(False, "--verify", help="build, run the test data on the host and in "
                                                        "QEMU, compare every integer logit with the IR"),
    no_verify: bool = typer.Option(False, "--no-verify", help="export without any data (no PyTorch == IR "
                                                              "check; not recommended)"),
    dataset: Optional[str] = typer.Option(None, help="verification data (default: the training data)"),
    verify_samples: Optional[int] = typer.Option(None, help="limit verification to N test samples"),
    act_approx: Optional[str] = typer.Option(None, help="periodic activations (M-BiPer models): lut "
                                                        "(default) | taylor | fixed (eq. 11, a x / 2^n)"),
    lut_bits: Optional[int] = typer.Option(None, help="lookup table size 2^lut_bits for --act-approx lut "
                                                      "(1..16, default 8)"),
    force: bool = typer.Option(False, "--force", help="replace -o even if it holds files bnn2hw did not write"),
    name: str = typer.Option("model", help="model name: files NAME.c/NAME.h and symbols NAME_infer, "
                                           "NAME_INPUT_LEN, ... (several models in one firmware)"),
    clock_mhz: Optional[float] = typer.Option(None, help="core clock for the --verify latency estimate "
                                                          "(default: a typical part's, e.g. 168 for cortex-m4)"),
    optimize: str = typer.Option("speed", help="speed (default): binary convs on the column-sliced kernel where "
                                               "the count model predicts >= 20% fewer instructions (M3/M4/M7/M33, "
                                               "multi popcount); size: every conv on the row kernel (no column-sliced weights, "
                                               "kernel code or work buffer)"),
):
    """Generate self-contained C99 XNOR-popcount firmware for a Cortex-M core (or the host)."""
    _check_verify_options(verify_samples)
    if verify and no_verify:
        raise Bnn2hwError("--verify and --no-verify contradict each other")
    if no_verify and (dataset or verify_samples):
        raise Bnn2hwError("--no-verify contradicts --dataset/--verify-samples")
    mcu = _lazy("mcu.cli", "the MCU back end (emit-c)")
    from .export.fold import PERIODIC_APPROX
    from .mcu.targets import check_popcount, get_target
    from .outdir import check_output_path

    get_target(target)  # fail fast on a bad target
    from .mcu.conv_vcols import check_optimize

    check_optimize(optimize)
    if clock_mhz is not None:
        from .mcu.cycles import check_clock_mhz

        check_clock_mhz(clock_mhz)
    if popcount is not None:
        check_popcount(popcount)
    if act_approx is not None and act_approx not in PERIODIC_APPROX:
        raise Bnn2hwError(f"unknown --act-approx {act_approx!r}; valid: {', '.join(PERIODIC_APPROX)}")
    if lut_bits is not None and not 1 <= lut_bits <= 16:
        raise Bnn2hwError(f"--lut-bits must be in 1..16, got {lut_bits}")
    if lut_bits is not None and act_approx not in (None, "lut"):
        raise Bnn2hwError(f"--lut-bits applies to --act-approx lut, not {act_approx!r}")
    from .mcu.packaging import check_name

    check_name(name)
    check_output_path(output, "directory")
    if no_verify:
        _warn("--no-verify: the firmware is not checked against PyTorch or on any data")
    mcu.emit_c(checkpoint, target, output, popcount, verify, dataset, verify_samples,
               act_approx, lut_bits, echo=typer.echo, warn=_warn, check_torch=not no_verify,
               force=force, name=name, clock_mhz=clock_mhz, optimize=optimize)


@app.command("import-biper")
def import_biper_cmd(
    checkpoint: Path = typer.Argument(..., help="a checkpoint written by the official BiPer code (edmav4/BiPer)"),
    arch: str = typer.Option(..., help="resnet20 | resnet18 | vgg-small (the official model it was trained as)"),
    w0: float = typer.Option(..., help="the run's --freq (w0): the official checkpoint does not store it"),
    output: Path = typer.Option(..., "-o", "--output", help="bnn2hw checkpoint to write"),
    normalize: str = typer.Option("cifar10", help="input normalization the official loader used: cifar10 "
                                                  "(its default) | none | MEAN,STD | M1,M2,M3:S1,S2,S3"),
    image_size: int = typer.Option(32, help="input image size (the official CIFAR models: 32)"),
):
    """Convert an official BiPer state dict into a bnn2hw checkpoint with the same eval outputs."""
    from .outdir import check_output_path

    check_output_path(output, "file")
    _positive("--w0", w0)
    _positive("--image-size", image_size, integer=True)
    bo = _lazy("frontends.biper_official", "the official BiPer importer")
    if normalize == "cifar10":
        norm = bo.CIFAR10_NORMALIZE
    elif normalize == "none":
        norm = None
    else:
        from .nn.normalize import check_normalize, parse_normalize

        norm = parse_normalize(normalize)
        if norm == "auto":
            raise Bnn2hwError("--normalize auto needs training data; give the official loader's MEAN:STD")
        norm = check_normalize(norm, 3)
    r = bo.import_biper(checkpoint, arch, w0, output, norm, image_size)
    typer.echo(f"wrote {output}: official {arch}, w0 {w0:g}; max |bnn2hw - official forward| = "
               f"{r['max_abs_diff']:.3g} on random inputs. It carries a float residual stream and full-precision "
               f"first/last layers: `bnn2hw emit-c {output} --target cortex-m4 --verify --dataset DATA.npz` deploys "
               "it through a 16-bit fixed-point stream with int8 first/last layers and reports the accuracy change "
               "on DATA (C back end; the FPGA export refuses it)")


def _click_error_types() -> tuple[tuple, tuple]:
    """(usage/parameter error classes, abort classes) of click and of typer's vendored click."""
    errors, aborts = [], [typer.Abort]
    for mod in ("click.exceptions", "typer._click.exceptions"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        errors += [c for c in (getattr(m, "ClickException", None),) if c is not None]
        aborts += [c for c in (getattr(m, "Abort", None),) if c is not None]
    return tuple(errors), tuple(aborts)


def main() -> None:
    """Entry point: every failure becomes one ``error:`` line and a non-zero exit status."""
    from .outdir import Terminated, terminate_on_sigterm

    click_errors, aborts = _click_error_types()
    terminate_on_sigterm()
    try:
        rc = app(standalone_mode=False)
    except Bnn2hwError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except (KeyboardInterrupt, *aborts):
        typer.secho("error: interrupted (SIGINT); no output was written", fg="red", err=True)
        sys.exit(130)
    except click_errors as e:
        ctx = getattr(e, "ctx", None)
        where = f" (bnn2hw {ctx.command_path.split(' ', 1)[1]}; see --help)" \
            if ctx is not None and " " in ctx.command_path else ""
        msg = " ".join(e.format_message().split())
        if not msg:  # bare `bnn2hw`: the help was printed (no_args_is_help)
            sys.exit(0)
        typer.secho(f"error: {msg}{where}", fg="red", err=True)
        sys.exit(2)
    except Terminated:
        typer.secho("error: terminated (SIGTERM); no output was written", fg="red", err=True)
        sys.exit(143)
    if rc == 130:  # typer turns KeyboardInterrupt into Exit(130)
        typer.secho("error: interrupted (SIGINT); no output was written", fg="red", err=True)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # ``python -m bnn2hw.cli``: use the package's module object
    from bnn2hw.cli import main as _main

    _main()
