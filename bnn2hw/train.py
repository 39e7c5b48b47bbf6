# SPDX-License-Identifier: MIT
"""Two-stage training as in BiPer sec. 5.1.3.

Stage 1: real-valued weights ``f(w)`` (``sin(w0 w)`` for BiPer, eq. 10) with binary
activations. Stage 2: binary weights ``sign(f(w))`` (eq. 8), warm-started from stage 1's latent
weights. Both stages: SGD with momentum 0.9 and a cosine learning-rate schedule; the paper's
defaults are lr 0.1 / wd 5e-4 (stage 1) and lr 0.01 / wd 5e-5 (stage 2). The official BiPer code
adds ``tau * mean(sin^2(w0 w))`` to the loss (``sin2_reg``; off by default, see below).
``clip_grad`` optionally clips the global gradient norm (off by default; no default uses it).

Learning rates. ``lr1`` / ``lr2`` are the paper's 0.1 / 0.01 and apply to every parameter
except the *latent weights of a periodic binarizer* (BiPer and the M-BiPer family), which get
``latent_lr1`` / ``latent_lr2`` (:func:`latent_learning_rates`). BatchNorm, the classifier's
scale and bias, int8/float first and last layers, and all weights of STE, clipped STE and FDA
use the paper's rates. Why the latent weights differ: a step ``dw`` moves the phase
``theta = w0 w`` by ``w0 dw``, and the gradient of ``sin(w0 w)`` carries another factor ``w0``
(eq. 9), so one SGD step moves the phase by ``w0^2 lr cos(theta) g``. The defaults:

* stage 1, every periodic binarizer: ``latent_lr1 = lr1 / w0`` (phase step ``w0 lr1 = 2`` at
  w0 = 20). Stage 1 uses the real value ``f(w0 w)`` as the weight, so a large phase step
  scrambles it: with the paper's 0.1 (phase step 40) the digits MLP's stage 1 ends at 31-65%
  test accuracy.
* stage 2, BiPer: the paper's ``lr2`` (phase step ``w0^2 lr2 = 4``). Stage 2 only reads the sign
  of ``sin(w0 w)`` and its cosine schedule anneals the steps to 0, so large steps explore bit
  flips instead of scrambling weights (measured below: smaller rates are worse).
* stage 2, the M-BiPer family: ``w0 lr2``, the same phase step as BiPer's. M-BiPer eq. 8 divides
  the backward by ``max|f'| = w0``; M-BiPer trains with Adam, whose steps do not depend on the
  gradient's scale, so under SGD the faithful translation is to undo that factor in the rate.

Explicit ``latent_lr1`` / ``latent_lr2`` (``--latent-lr1`` / ``--latent-lr2``) override this.

How they were chosen (digits, MLP 8-bit input -> binary 256-256 -> binary 10 and the default
CNN, w0 = 20, 30 + 30 epochs, accuracy on a held-out 25% *validation* part of the training
split, ``train_test_split(x_train, test_size=0.25, stratify=y, random_state=1)``; the test split
was not used for tuning; one validation image = 0.3 points; the 1010 training images leave a
50-image last batch, so this sweep, run before :func:`batches` dropped short tails, is not
affected by them). BiPer, mean of seeds 0-2 (0-5 where
marked; seed-to-seed std about 0.3-1.5):

==================================================  =================  =================
setting (BiPer; latent lr1 / lr2; other params)     MLP final val %    CNN final val %
==================================================  =================  =================
one rate for all params, 0.005 / 2.5e-5 (previous)  94.91 (6 seeds)    90.70
latent 0.005 / 2.5e-5; others 0.1 / 0.01            95.70 (6 seeds)    91.00
latent 0.005 / 2.5e-4; others 0.1 / 0.01            96.54              92.98
latent 0.005 / 1e-3; others 0.1 / 0.01              96.70 (6 seeds)    94.25 (6 seeds)
latent 0.005 / 4e-3; others 0.1 / 0.01              97.23              95.25
latent 0.005 / 0.01; others 0.1 / 0.01 (default)    96.83 (6 seeds)    96.88 (6 seeds)
latent 0.005 / 0.032; others 0.1 / 0.01             97.23              96.54
latent 0.02 / 1e-3; others 0.1 / 0.01               95.94              94.86
==================================================  =================  =================

The stage-1 accuracy is 96.4-96.9 (MLP) and 95.4-95.8 (CNN) in every row with latent lr1 0.005:
with the default stage 2 the binary models match or beat their real-weight stage 1.
M-BiPer family, MLP, latent stage-2 rate 0.01 (the paper's, phase step 0.2) vs 0.2 (= w0 lr2,
phase step 4, the default), seeds 0-2: sine 96.44 vs 96.64, triangle 95.45 vs 96.83
(0.02: sine 95.85, triangle 96.44, arctan-sine 96.44, sawtooth 94.21; seeds 0-1).
arctan-sine 96.64 and sawtooth 92.09 at 0.2 (seeds 0-2): sawtooth, whose backward is 1 up to
the jump with no cosine factor, prefers the smaller rate; the default keeps one rule for the family.
Earlier (single rate for all parameters): the official code's sin^2 regulariser (``sin2_reg``
0.04, which pulls ``w0 w`` towards multiples of pi, i.e. towards the bit boundaries) lowered the
MLP's validation accuracy from 94.86 to 93.97 and stays off; 20 + 40 epochs did not help;
initialising the latent weights over one period (``SurrogateConfig.period_init``) was within the
noise (95.55 vs 96.24 with per-group rates, seeds 0-2) and stays opt-in. Random +-1 pixel shifts
of the 8x8 images (the analogue of the papers' CIFAR random crops) cut the MLP's stage-1
validation accuracy to 89% (seed 0) and are not offered. The scaling factor is not a lever for
the MLP and CNN: every hidden binary layer is followed by BatchNorm, which cancels a positive
per-channel scale (mean |sin|, eq. 18 or a learnable alpha alike), and the binary last layer has
a learnable per-class scale. What the per-group rates fixed: with one rate for all parameters,
the rate that suited the latent weights in stage 1 also froze BatchNorm and the classifier
(recalibrating BatchNorm alone on the binarized stage-1 CNN lifts validation accuracy from 84%
to 92%, seed 0), and the 1/w0^2 stage-2 rate the previous defaults used kept bits from flipping.
Final test-split numbers: ``benchmarks/results/training.md``.

Divergence guard. A run can blow up (seen once: a BiPer MLP's stage-2 loss went 0.21 -> 44 ->
184 and it ended at 10.7%). Each stage keeps the weights (and BatchNorm statistics) of its best
epoch by accuracy on a *selection split*: a stratified ``val_fraction`` of the training split
held out from training (``--val-fraction``), or, by default (0, so that the published numbers
keep using every training image), the training split itself in eval mode. A non-finite batch
loss, or an epoch loss above ``EXPLODE_FACTOR`` times the stage's best epoch loss (and 1.0 above
it), or a non-finite weight or BatchNorm statistic after an epoch, ends the stage and restores its best weights; the event is returned in
``TrainConfig.diverged`` (and the CLI writes it to the checkpoint's metadata and the log).

Where and how long. ``train_two_stage(..., runtime=)`` takes a :class:`bnn2hw.distributed.Runtime`
(device, ``--amp``, DataLoader workers, torchrun rank and world size); the default is one CPU
process, whose results are bit-identical to the loop before devices and DDP existed (tested
against a frozen copy, ``tests/legacy_train.py``). Each epoch's batches come from
:class:`bnn2hw.data.augment.EpochBatches`: the same seeded permutation on every rank, each rank
taking its slice of every *global* batch (``batch_size``), optional crop + flip augmentation
seeded per batch, so neither workers nor the number of processes change what is computed
(up to BatchNorm statistics, which are per process; see :mod:`bnn2hw.distributed`).

Resume. With ``save_every`` N, every N epochs (counted over both stages, not after the last)
``on_checkpoint`` receives a state of plain containers and tensors (stage, epochs done, optimizer,
scheduler, grad scaler, the shuffling generator, the global torch/CUDA/numpy/Python RNGs, the
guard's best epoch and weights, the history and the resolved config). ``resume=`` that state,
with the model holding the weights saved alongside, continues at the same stage and epoch; a
CPU run resumed this way ends with exactly the uninterrupted run's tensors (tested from every
epoch). Stage-specific options used by the recipes (:mod:`bnn2hw.recipes`): ``warmup_epochs``
(linear warm-up, then a cosine over the remaining epochs, as the official BiPer code),
``sin2_reg2`` (stage-2 tau) and ``sin2_sum`` (penalty summed over layers, as the official code).
"""

from __future__ import annotations

import copy
import gc
import math
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from .data import Dataset
from .data.augment import EpochBatches
from .distributed import Runtime, all_reduce_sum, average_buffers
from .errors import Bnn2hwError
from .nn.layers import binary_layers, set_progress, set_stage


@dataclass
class TrainConfig:
    epochs1: int = 30
    epochs2: int = 30
    lr1: float = 0.1  # paper's rates: every parameter but a periodic binarizer's latent weights
    lr2: float = 0.01
    latent_lr1: float | None = None  # periodic latent weights; None: latent_learning_rates()
    latent_lr2: float | None = None
    wd1: float = 5e-4
    wd2: float = 5e-5
    batch_size: int = 64
    sin2_reg: float = 0.0
    clip_grad: float | None = None  # max global gradient norm (None: no clipping)
    seed: int = 0
    threads: int | None = None
    val_fraction: float = 0.0  # selection split for the divergence guard (0: the training split)
    sin2_reg2: float | None = None  # stage-2 tau of the sin^2 regulariser (None: sin2_reg)
    sin2_sum: bool = False  # sum the sin^2 penalty over layers (official code) instead of the mean
    warmup_epochs: int = 0  # linear warm-up epochs at the start of each stage (official code: 5)
    augment: bool = False  # random 4-pixel-padded crop + horizontal flip (image data)
    diverged: list = field(default_factory=list)  # filled by train_two_stage: guard events

    def to_dict(self) -> dict:
        return asdict(self)


EXPLODE_FACTOR = 10.0
"""An epoch loss above this multiple of the stage's best epoch loss (and 1.0 above it) is a divergence."""

PERIODIC = {"biper", "sine", "cosine", "triangle", "sawtooth", "square", "arctan-sine"}


def latent_learning_rates(surrogate: str, w0: float, lr1: float = 0.1,
                          lr2: float = 0.01) -> tuple[float, float]:
    """(stage-1, stage-2) learning rates of the latent weights of a ``surrogate`` binarizer
    given the paper's ``lr1`` / ``lr2``; see the module docstring for the phase-step rule."""
    if surrogate == "biper":
        return lr1 / w0, lr2
    if surrogate in PERIODIC:
        return lr1 / w0, lr2 * w0
    return lr1, lr2


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def as_float(x: np.ndarray) -> torch.Tensor:
    """uint8 pixels -> float tensor of the same integer values (the model's input)."""
    return torch.from_numpy(x.astype(np.float32))


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Eval-mode float32 logits for uint8 inputs (on the model's device; never autocast)."""
    model.eval()
    dev = _device_of(model)
    outs = [model(as_float(x[i:i + batch]).to(dev)).float().cpu() for i in range(0, len(x), batch)]
    return torch.cat(outs).numpy()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x).argmax(1) == y).mean())


def _accuracy(rt, model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """:func:`accuracy`, sharded over the processes when distributed: each rank evaluates a
    contiguous 1/N of the rows and the correct counts are summed (every rank gets the same value)."""
    if not rt.distributed:
        return accuracy(model, x, y)
    lo, hi = len(x) * rt.rank // rt.world, len(x) * (rt.rank + 1) // rt.world
    correct = int((predict(model, x[lo:hi]).argmax(1) == y[lo:hi]).sum()) if hi > lo else 0
    return all_reduce_sum(rt, [float(correct)])[0] / max(len(x), 1)


def _sin2_penalty(model: nn.Module, reduce_sum: bool = False) -> torch.Tensor:
    """``mean_l mean(sin^2(w0 w_l))`` over the binary layers, or the sum over layers
    (``reduce_sum``), which is what the official BiPer code adds to the loss."""
    terms = [torch.sin(m.binarizer.config.w0 * m.weight).pow(2).mean() for m in binary_layers(model)]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum() if reduce_sum else torch.stack(terms).mean()


def batches(perm: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Full mini-batches of ``perm`` (the incomplete last one is dropped, as ``drop_last`` does;
    the order is reshuffled every epoch, so every sample is still used). A tail of a few
    samples gives BatchNorm a noisy mean/variance and one noisy SGD step per epoch: with 1347
    digits training images and batch 64 it is a 3-image batch, and the BiPer MLP's test
    accuracy (seeds 0-2) was 91.0% with it and 96.8% without. A data set smaller than
    one batch is used as one batch."""
    n = len(perm)
    if n < batch_size:
        return [perm] if n >= 2 else []  # BatchNorm needs two samples
    return [perm[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def param_groups(model: nn.Module, lr: float, latent_lr: float) -> list[dict]:
    """Optimizer groups: the binary layers' latent weights at ``latent_lr``, the rest at ``lr``."""
    latent = [m.weight for m in binary_layers(model)]
    ids = {id(p) for p in latent}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [g for g in ({"params": latent, "lr": latent_lr}, {"params": rest, "lr": lr})
            if g["params"]]


# --- resumable state -------------------------------------------------------------------------
# A periodic checkpoint carries, besides the model, a ``resume`` dict of plain containers and
# tensors (so ``torch.load(weights_only=True)`` reads it): the stage and the number of its epochs
# done, the optimizer, scheduler and grad-scaler state, the shuffling generator, the global RNGs
# (torch, CUDA, numpy, Python; stored as tensors), the divergence guard's best epoch (weights
# included), the history so far and the resolved training config.


def rng_state() -> dict:
    """The global RNG states as tensors and numbers (weights_only-loadable)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64),
                        "gauss": gauss},
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _cpu_state(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _stage_lr_factor(epoch: int, warmup: int) -> float | None:
    """Linear warm-up (the official BiPer code's ``--warm_up``): epoch e < warmup runs at
    (e + 1) / warmup times the base rate; None after the warm-up."""
    return (epoch + 1) / warmup if epoch < warmup else None


def _run_stage(model, fwd, data: Dataset, stage: int, epochs: int, lr: float, latent_lr: float,
               wd: float, cfg: TrainConfig, progress_offset: float, total_epochs: int, log,
               bar, select: tuple[np.ndarray, np.ndarray, str], rt, history: list,
               resume: dict | None = None, save_every: int = 0, on_checkpoint=None) -> None:
    """One stage; appends per-epoch records to ``history``. On divergence (see the module
    docstring) restores the stage's best weights, appends the event to ``cfg.diverged`` and
    returns early. ``model`` is the plain module, ``fwd`` the one to call for training (the
    DDP wrapper when distributed)."""
    set_stage(model, stage)
    opt = torch.optim.SGD(param_groups(model, lr, latent_lr), lr=lr, momentum=0.9,
                          weight_decay=wd)
    warm = int(cfg.warmup_epochs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs - max(warm - 1, 0), 1))
    scaler = rt.grad_scaler()
    x_all, y_all = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + stage)
    loss_fn = nn.CrossEntropyLoss()
    tau = cfg.sin2_reg if stage == 1 or cfg.sin2_reg2 is None else cfg.sin2_reg2
    x_sel, y_sel, sel_name = select
    start = 0
    if resume is not None and resume["stage"] == stage:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        if scaler is not None and resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        gen.set_state(resume["shuffle_rng"])
        b = resume["best"]
        best = {"epoch": b["epoch"], "acc": b["acc"], "loss": b["loss"], "state": b["state"]}
        start = int(resume["epoch"])
    else:
        best = {"epoch": 0, "acc": _accuracy(rt, model, x_sel, y_sel),
                "state": copy.deepcopy(model.state_dict()), "loss": math.inf}
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        model.train()
        set_progress(model, (progress_offset + epoch) / max(total_epochs, 1))
        factor = _stage_lr_factor(epoch, warm)
        if factor is not None:
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * factor
        perm = torch.randperm(len(x_all), generator=gen)
        epoch_data = EpochBatches(x_all, y_all, batches(perm, cfg.batch_size), rt.rank, rt.world,
                                  (cfg.seed, stage, epoch) if cfg.augment else None)
        if rt.workers:
            loader = torch.utils.data.DataLoader(epoch_data, batch_size=None, shuffle=False,
                                                 num_workers=rt.workers, pin_memory=rt.pin_memory,
                                                 generator=torch.Generator().manual_seed(0))
        else:
            loader = (epoch_data[i] for i in range(len(epoch_data)))
        total, seen, bad = 0.0, 0, None
        for xb, yb in loader:
            xb = xb.to(rt.device, non_blocking=True)
            yb = yb.to(rt.device, non_blocking=True)
            with rt.autocast():
                loss = loss_fn(fwd(xb), yb)
                if tau:
                    loss = loss + tau * _sin2_penalty(model, cfg.sin2_sum)
            if rt.distributed:  # every rank takes the same decision on the global batch loss
                batch_total, n = all_reduce_sum(rt, [float(loss.detach()) * len(yb), len(yb)])
                finite = math.isfinite(batch_total)
            else:
                finite = bool(torch.isfinite(loss))
            if not finite:
                value = batch_total / n if rt.distributed else float(loss.detach())
                bad = f"non-finite loss {value}"
                break
            opt.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                if cfg.clip_grad:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                opt.step()
            if rt.distributed:
                total += batch_total
                seen += int(n)
            else:
                total += float(loss.detach()) * len(yb)
                seen += len(yb)
        if epoch >= warm - 1:
            sched.step()
        average_buffers(rt, model)
        seconds = time.perf_counter() - t0
        epoch_loss = total / max(seen, 1)
        if bad is None and not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()
                                   if t.is_floating_point()):
            bad = "non-finite weights or BatchNorm statistics"
        if bad is None and epoch_loss > EXPLODE_FACTOR * best["loss"] and epoch_loss > best["loss"] + 1.0:
            bad = f"loss exploded to {epoch_loss:.4g} (best epoch {best['loss']:.4g})"
        if bad is not None:
            model.load_state_dict(best["state"])
            cfg.diverged.append({"stage": stage, "epoch": epoch + 1, "reason": bad,
                                 "restored_epoch": best["epoch"], "restored_accuracy": best["acc"],
                                 "selected_on": sel_name})
            if bar is not None:
                bar.update(epochs - epoch)
            return
        set_progress(model, 1.0 if epoch == epochs - 1 and stage == 2 else
                     (progress_offset + epoch + 1) / max(total_epochs, 1))
        acc = _accuracy(rt, model, data.x_test, data.y_test)
        sel_acc = _accuracy(rt, model, x_sel, y_sel)
        if sel_acc >= best["acc"]:
            best.update(epoch=epoch + 1, acc=sel_acc, state=copy.deepcopy(model.state_dict()))
        best["loss"] = min(best["loss"], epoch_loss)
        rec = {"stage": stage, "epoch": epoch + 1, "loss": epoch_loss, "test_acc": acc,
               "seconds": seconds}
        history.append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(stage=stage, loss=f"{rec['loss']:.3f}", acc=f"{acc:.4f}")
        if log:
            log(rec)
        done = int(progress_offset) + epoch + 1
        if on_checkpoint is not None and save_every and done % save_every == 0 and done < total_epochs:
            on_checkpoint({
                "stage": stage, "epoch": epoch + 1, "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "shuffle_rng": gen.get_state(), "rng": rng_state(),
                "best": {"epoch": best["epoch"], "acc": best["acc"], "loss": best["loss"],
                         "state": _cpu_state(best["state"])},
                "history": [dict(h) for h in history], "diverged": [dict(d) for d in cfg.diverged],
                "config": cfg.to_dict()})


def selection_split(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, tuple]:
    """(training data, (x, y, name) of the divergence guard's selection split); see module doc."""
    if not fraction:
        return data, (data.x_train, data.y_train, "training")
    from sklearn.model_selection import train_test_split

    try:
        x_tr, x_val, y_tr, y_val = train_test_split(data.x_train, data.y_train, test_size=fraction,
                                                    stratify=data.y_train, random_state=seed)
    except ValueError as e:
        raise Bnn2hwError(f"--val-fraction {fraction}: cannot hold out a stratified validation split "
                          f"({e})") from None
    kept = Dataset(data.name, x_tr, y_tr, data.x_test, data.y_test, data.num_classes, data.options)
    return kept, (x_val, y_val, "validation")


def resolve_config(model: nn.Module, cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the latent learning rates filled in (:func:`latent_learning_rates`)."""
    binarizers = [m.binarizer.config for m in binary_layers(model)]
    if len({(b.name, b.w0) for b in binarizers}) > 1:
        raise Bnn2hwError("train_two_stage: all binary layers must share one surrogate and w0, "
                         f"got {sorted({(b.name, b.w0) for b in binarizers})}")
    d1, d2 = (latent_learning_rates(binarizers[0].name, binarizers[0].w0, cfg.lr1, cfg.lr2)
              if binarizers else (cfg.lr1, cfg.lr2))
    return TrainConfig(**{**cfg.to_dict(),
                          "latent_lr1": cfg.latent_lr1 if cfg.latent_lr1 is not None else d1,
                          "latent_lr2": cfg.latent_lr2 if cfg.latent_lr2 is not None else d2})


def _has_unused_parameters(model: nn.Module, stage: int, x: torch.Tensor) -> bool:
    """Does one training step of ``stage`` leave a parameter without a gradient (e.g. FDA's
    weight noise module in stage 1)? Probed on a copy, with the RNG state put back."""
    probe = copy.deepcopy(model)
    set_stage(probe, stage)
    probe.train()
    devices = [x.device.index] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        probe(x).float().sum().backward()
    return any(p.grad is None for p in probe.parameters() if p.requires_grad)


def _wrap(model: nn.Module, rt, find_unused: bool) -> nn.Module:
    """DistributedDataParallel around ``model`` when distributed."""
    if not rt.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def train_two_stage(model: nn.Module, data: Dataset, cfg: TrainConfig, log=None,
                    progress: bool = True, runtime=None, resume: dict | None = None,
                    save_every: int = 0, on_checkpoint=None) -> tuple[list[dict], TrainConfig]:
    """Run stage 1 then stage 2 on ``model`` in place; returns the per-epoch history and the
    config with the learning rates actually used.

    ``runtime`` (:class:`bnn2hw.distributed.Runtime`; default: this process, CPU) says where to
    train. Every ``save_every`` epochs (counted over both stages) ``on_checkpoint(state)`` gets
    the resumable state (on rank 0 only); ``resume`` is such a state, with the model already
    holding the weights saved with it: training continues at the exact epoch and stage."""
    rt = runtime or Runtime(torch.device("cpu"))
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if cfg.augment and data.x_train.ndim != 4:
        raise Bnn2hwError(f"--augment needs image data (N, C, H, W); {data.name} has rows of shape "
                          f"{list(data.in_shape)}")
    if resume is not None:
        cfg = TrainConfig(**{**resume["config"], "threads": cfg.threads})
    else:
        cfg = resolve_config(model, cfg)
    cfg.diverged = [dict(d) for d in resume["diverged"]] if resume is not None else []
    if rt.distributed and cfg.batch_size % rt.world:
        raise Bnn2hwError(f"--batch-size {cfg.batch_size} is the global batch and must be divisible "
                          f"by the number of processes ({rt.world})")
    if not rt.is_main:
        log, progress, on_checkpoint = None, False, None
    data, select = selection_split(data, cfg.val_fraction, cfg.seed)
    model.to(rt.device)
    unused = {1: False, 2: False}
    if rt.distributed:
        x_probe = torch.from_numpy(data.x_train[:2]).float().to(rt.device)
        unused = {st: _has_unused_parameters(model, st, x_probe) for st in (1, 2)}
        if rt.sync_bn:
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
    total = cfg.epochs1 + cfg.epochs2
    history: list[dict] = [dict(h) for h in resume["history"]] if resume is not None else []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="training", unit="epoch")
    if resume is not None:
        set_rng_state(resume["rng"])
        if bar is not None:
            bar.update((resume["epoch"] if resume["stage"] == 1 else cfg.epochs1 + resume["epoch"]))
    kw = dict(rt=rt, history=history, save_every=save_every, on_checkpoint=on_checkpoint)
    try:
        if cfg.epochs1 and (resume is None or resume["stage"] == 1):
            fwd = _wrap(model, rt, unused[1])
            _run_stage(model, fwd, data, 1, cfg.epochs1, cfg.lr1, cfg.latent_lr1, cfg.wd1,
                       cfg, 0, total, log, bar, select, resume=resume, **kw)
            del fwd  # one DDP wrapper (and its gradient hooks) at a time
            gc.collect()
        fwd = _wrap(model, rt, unused[2])
        _run_stage(model, fwd, data, 2, cfg.epochs2, cfg.lr2, cfg.latent_lr2, cfg.wd2, cfg,
                   cfg.epochs1, total, log, bar, select, resume=resume, **kw)
    finally:
        if bar is not None:
            bar.close()
    set_stage(model, 2)
    set_progress(model, 1.0)
    model.eval()
    return history, cfg


def epoch_seconds(history: list[dict]) -> float:
    return float(np.mean([h["seconds"] for h in history])) if history else math.nan
