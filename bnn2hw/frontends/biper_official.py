# SPDX-License-Identifier: MIT
"""Checkpoints of the official BiPer code (github edmav4/BiPer) -> a bnn2hw checkpoint.

Layout read from the official files (commit 0c07fdd):

* ``cifar10/main_stage2.py`` saves ``{'epoch', 'model', 'state_dict', 'best_prec1', 'optimizer',
  'lr_scheduler'}``; ``state_dict`` is the ``nn.DataParallel`` model's (keys prefixed
  ``module.``) or, with several GPUs, ``model.module.state_dict()`` (no prefix). Both are read,
  and so is a bare state dict.
* ``cifar10/modules/binarized_modules.py`` ``BinarizeConv2d``: ``weight`` (O, C, 3, 3) latent
  weights, ``alpha`` (O, 1, 1) learnable scale (``torch.rand`` init, any sign after training),
  ``beta`` (O, 1, 1, ones, unused in forward) and the buffer ``tau`` (unused in forward). ``freq``
  (w0) is a plain attribute, NOT in the state dict: ``--w0`` is required (the run scripts use
  20; ``--freq`` defaults to 30).
* ``cifar10/models_cifar/resnet.py`` (``resnet20_1w1a``), ``resnet2.py`` (``resnet18_1w1a``),
  ``vgg.py`` (``vgg_small_1w1a``): module names as in :mod:`bnn2hw.nn.biper_official`; first
  conv and last linear layer full precision.
* ``cifar10/dataset/dataset.py``: CIFAR-10 inputs normalized with mean (0.485, 0.456, 0.406),
  std (0.229, 0.224, 0.225) (the default ``--normalize cifar10``).

Mapping: ``<conv>.weight`` -> ``<conv>.conv.weight`` and ``<conv>.alpha`` -> ``<conv>.conv.alpha``
for every binary conv, everything else by name; ``beta`` and ``tau`` are dropped. Every official
key must be present with its official shape (errors name the key). Invariant (checked before the
file is written, :func:`check_equivalence`): the bnn2hw model's eval outputs on random inputs
equal :func:`official_forward`, a line-by-line functional transcription of the official eval
forward, within :data:`TOLERANCE`.

Stage 2 only (binary weights ``sign(sin(w0 w))``); a latent weight with ``sin(w0 w) == 0`` (the
official weight would be 0) is refused by name. The official activation is ``torch.sign``
(0 -> 0): kept with ``BinaryActivation(zero_tie=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import Bnn2hwError

TOLERANCE = 1e-5
CIFAR10_NORMALIZE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
ARCHS = ("resnet20", "resnet18", "vgg-small")


def binary_conv_names(bnn2hw_state: dict) -> list[str]:
    """Module names of the official ``BinarizeConv2d`` layers: bnn2hw's ``<name>.conv.alpha``."""
    return sorted(k[:-len(".conv.alpha")] for k in bnn2hw_state if k.endswith(".conv.alpha"))


def read_official(path: str | Path) -> dict:
    """The official state dict (``module.`` prefix removed), loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise Bnn2hwError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Bnn2hwError(f"{path}: not a loadable official BiPer checkpoint ({first})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Bnn2hwError(f"{path}: no state dict of tensors (expected the official "
                          "{'state_dict': ...} checkpoint or a bare state dict)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def make_spec(arch: str, state: dict, w0: float, normalize: dict | None, image_size: int = 32) -> dict:
    if arch not in ARCHS:
        raise Bnn2hwError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    first, last = ("conv0.weight", "fc.weight") if arch == "vgg-small" else ("conv1.weight", "linear.weight")
    for k in (first, last):
        if k not in state:
            raise Bnn2hwError(f"official {arch} state dict lacks {k!r} (is --arch right?)")
    channels, classes = int(state[first].shape[1]), int(state[last].shape[0])
    spec = {"arch": arch, "official_biper": True, "in_shape": [channels, image_size, image_size],
            "num_classes": classes, "first": "float", "last": "float",
            "surrogate": {"name": "biper", "w0": float(w0)}, "activation": "bireal"}
    if normalize:
        spec["normalize"] = normalize
    return spec


def convert(state: dict, spec: dict, where: str = "checkpoint") -> dict:
    """Official state dict -> the bnn2hw model's state dict (module doc: mapping and checks)."""
    from ..nn.models import build_model
    from ..nn.surrogates import SurrogateConfig  # noqa: F401  (spec validity)

    with torch.device("meta"):
        skeleton = build_model(spec)
    want = skeleton.state_dict()
    convs = binary_conv_names(want)
    out, used = {}, set()
    for k, v in want.items():
        src = k
        for c in convs:
            if k in (f"{c}.conv.weight", f"{c}.conv.alpha"):
                src = f"{c}.{k.rsplit('.', 1)[1]}"
        if src not in state:
            raise Bnn2hwError(f"{where}: the official {spec['arch']} state dict lacks {src!r}")
        if tuple(state[src].shape) != tuple(v.shape):
            raise Bnn2hwError(f"{where}: tensor {src!r} has shape {list(state[src].shape)}, the official "
                              f"{spec['arch']} needs {list(v.shape)}")
        t = state[src].detach().to(torch.float32 if v.is_floating_point() else v.dtype).clone()
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise Bnn2hwError(f"{where}: tensor {src!r} holds NaN or Inf")
        out[k] = t
        used.add(src)
    extra = sorted(k for k in state if k not in used and not k.endswith((".beta", ".tau")))
    if extra:
        raise Bnn2hwError(f"{where}: tensors the official {spec['arch']} does not have: {extra[:4]} "
                          "(is --arch right?)")
    w0 = spec["surrogate"]["w0"]
    for c in convs:
        w = state[f"{c}.weight"].float()
        zero = int((torch.sin(w0 * w) == 0).sum())
        if zero:
            raise Bnn2hwError(f"{where}: {zero} latent weights of {c!r} give sin(w0 w) = 0, whose official "
                              "sign is 0 (no binary value)")
    return out


def _official_conv(x, state, name, w0, stride):
    """``BinarizeConv2d.forward`` in eval, stage 2 (binarized_modules.py)."""
    bw = torch.sign(torch.sin(w0 * state[f"{name}.weight"]))
    ba = torch.sign(x)
    return F.conv2d(ba, bw, None, stride, 1) * state[f"{name}.alpha"]


def _bn(x, state, name):
    return F.batch_norm(x, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
                        state[f"{name}.bias"], False, 0.0, 1e-5)


def _shortcut(x, c_in, planes, stride):
    if stride == 1 and c_in == planes:
        return x
    pad = 0 if planes == c_in else planes // 4
    return F.pad(F.avg_pool2d(x, (2, 2)), (0, 0, 0, 0, pad, pad), "constant", 0)


@torch.no_grad()
def official_forward(arch: str, state: dict, w0: float, x: torch.Tensor) -> torch.Tensor:
    """The official eval forward, transcribed from resnet.py / resnet2.py / vgg.py (input: the
    normalized float images the official loader gives)."""
    s = {k: v.float() for k, v in state.items()}
    if arch == "vgg-small":
        h = F.hardtanh(_bn(F.conv2d(x, s["conv0.weight"], None, 1, 1), s, "bn0"))
        for i in range(1, 6):
            h = _official_conv(h, s, f"conv{i}", w0, 1)
            if i in (1, 3, 5):
                h = F.max_pool2d(h, 2, 2)
            h = F.hardtanh(_bn(h, s, f"bn{i}"))
        return F.linear(h.view(h.size(0), -1), s["fc.weight"], s["fc.bias"])
    depth = 20 if arch == "resnet20" else 18
    widths, blocks = ([16, 32, 64], 3) if depth == 20 else ([64, 128, 256, 512], 2)
    h = _bn(F.conv2d(x, s["conv1.weight"], None, 1, 1), s, "bn1")
    if depth == 20:
        h = F.hardtanh(h)
    c = widths[0]
    for i, width in enumerate(widths):
        for j in range(blocks):
            stride = 2 if (i > 0 and j == 0) else 1
            p = f"layer{i + 1}.{j}"
            if depth == 20:
                out = F.hardtanh(_bn(_official_conv(h, s, f"{p}.conv1", w0, stride), s, f"{p}.bn1")
                                 + _shortcut(h, c, width, stride))
                h = F.hardtanh(_bn(_official_conv(out, s, f"{p}.conv2", w0, 1), s, f"{p}.bn2") + out)
            else:
                out = F.hardtanh(_bn(_official_conv(h, s, f"{p}.conv1", w0, stride), s, f"{p}.bn1"))
                h = F.hardtanh(_bn(_official_conv(out, s, f"{p}.conv2", w0, 1), s, f"{p}.bn2")
                               + _shortcut(h, c, width, stride))
            c = width
    h = F.avg_pool2d(h, h.size(3) if depth == 20 else 4)
    return F.linear(_bn1d(h.view(h.size(0), -1), s), s["linear.weight"], s["linear.bias"])


def _bn1d(x, s):
    return _bn(x, s, "bn2")


@torch.no_grad()
def check_equivalence(model, spec: dict, state: dict, n: int = 8, seed: int = 0) -> float:
    """max |bnn2hw model(u8) - official_forward(normalize(u8 / 255))| on random uint8 images."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *spec["in_shape"]), generator=g).float()
    xo = x / 255.0
    if spec.get("normalize"):
        m = torch.tensor(spec["normalize"]["mean"]).view(1, -1, 1, 1)
        sd = torch.tensor(spec["normalize"]["std"]).view(1, -1, 1, 1)
        xo = (xo - m) / sd
    model.eval()
    return float((model(x) - official_forward(spec["arch"], state, spec["surrogate"]["w0"], xo)).abs().max())


def import_biper(ckpt: str | Path, arch: str, w0: float, output: str | Path, normalize: dict | None = None,
                 image_size: int = 32) -> dict:
    """Read, convert, check against :func:`official_forward`, write a bnn2hw checkpoint."""
    import math

    from ..checkpoint import save_checkpoint
    from ..nn.models import build_model

    if not (isinstance(w0, (int, float)) and math.isfinite(w0) and w0 > 0):
        raise Bnn2hwError(f"--w0 must be a positive number, got {w0}")
    state = read_official(ckpt)
    spec = make_spec(arch, state, w0, normalize, image_size)
    new = convert(state, spec, str(ckpt))
    model = build_model(spec)
    model.load_state_dict(new)
    model.eval()
    diff = check_equivalence(model, spec, state)
    if not diff <= TOLERANCE:
        raise Bnn2hwError(f"{ckpt}: the imported model differs from the official forward by {diff:g} "
                          f"(> {TOLERANCE:g})")
    meta = {"source": "official BiPer checkpoint", "official_checkpoint": str(Path(ckpt).resolve()),
            "official_code": "github edmav4/BiPer 0c07fdd", "stage": 2, "dataset": None,
            "input": {"dtype": "uint8", "shape": spec["in_shape"]},
            "import_check": {"max_abs_diff": diff, "tolerance": TOLERANCE, "random_inputs": 8}}
    save_checkpoint(output, model, spec, meta)
    return {"spec": spec, "max_abs_diff": diff}
