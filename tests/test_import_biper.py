# SPDX-License-Identifier: MIT
"""``bnn2hw import-biper`` (issue 10): state dicts in the layout of the official BiPer code
(github edmav4/BiPer, commit 0c07fdd), built here without any download, map into bnn2hw models
with the same eval outputs (max abs difference <= 1e-5 on random inputs).

The reference models below restate the official eval forward in this file's own words, with the
official module names so that ``load_state_dict(strict=True)`` checks every key and shape:
``cifar10/modules/binarized_modules.py`` (``BinarizeConv2d``: ``weight``, ``alpha`` (O, 1, 1),
``beta``, buffer ``tau``; ``conv(sign(x), sign(sin(freq w))) * alpha``, ``torch.sign``),
``cifar10/models_cifar/resnet.py`` (``resnet20_1w1a``), ``resnet2.py`` (``resnet18_1w1a``) and
``vgg.py`` (``vgg_small_1w1a``); the checkpoint dict is ``main_stage2.py``'s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnn2hw.checkpoint import load_checkpoint
from bnn2hw.errors import Bnn2hwError
from bnn2hw.frontends.biper_official import CIFAR10_NORMALIZE, import_biper

W0 = 20.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


class RefBinarizeConv2d(nn.Conv2d):
    def __init__(self, c_in, c_out, stride=1):
        super().__init__(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.alpha = nn.Parameter(torch.rand(c_out, 1, 1))
        self.beta = nn.Parameter(torch.ones(c_out, 1, 1), requires_grad=False)
        self.register_buffer("tau", torch.tensor(1.0))
        self.freq = W0

    def forward(self, x):
        bw = torch.sign(torch.sin(self.freq * self.weight))
        return F.conv2d(torch.sign(x), bw, None, self.stride, self.padding) * self.alpha


class _OptionA(nn.Module):
    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


class RefBlock(nn.Module):
    def __init__(self, c_in, planes, stride, r18):
        super().__init__()
        self.r18 = r18
        self.conv1 = RefBinarizeConv2d(c_in, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = RefBinarizeConv2d(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != planes:
            self.shortcut = nn.Sequential(nn.AvgPool2d((2, 2)), _OptionA(0 if planes == c_in else planes // 4))

    def forward(self, x):
        if self.r18:
            out = F.hardtanh(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            return F.hardtanh(out)
        out = self.bn1(self.conv1(x))
        out += self.shortcut(x)
        out = F.hardtanh(out)
        x1 = out
        out = self.bn2(self.conv2(out))
        out += x1
        return F.hardtanh(out)


class RefResNet(nn.Module):
    def __init__(self, depth, num_classes=10):
        super().__init__()
        self.depth = depth
        widths, blocks = ([16, 32, 64], 3) if depth == 20 else ([64, 128, 256, 512], 2)
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        c = widths[0]
        for i, w in enumerate(widths):
            mods = []
            for j in range(blocks):
                mods.append(RefBlock(c, w, 2 if i and not j else 1, depth == 18))
                c = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*mods))
        self.bn2 = nn.BatchNorm1d(c)
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        if self.depth == 20:
            out = F.hardtanh(out)
        for i in range(3 if self.depth == 20 else 4):
            out = getattr(self, f"layer{i + 1}")(out)
        out = F.avg_pool2d(out, out.size(3) if self.depth == 20 else 4)
        return self.linear(self.bn2(out.view(out.size(0), -1)))


class RefVGG(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 128, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(128)
        self.nonlinear0 = nn.Hardtanh()
        for i, (a, b) in enumerate([(128, 128), (128, 256), (256, 256), (256, 512), (512, 512)], 1):
            setattr(self, f"conv{i}", RefBinarizeConv2d(a, b))
            setattr(self, f"bn{i}", nn.BatchNorm2d(b))
            setattr(self, f"nonlinear{i}", nn.Hardtanh())
        self.pooling = nn.MaxPool2d(2, 2)
        self.fc = nn.Linear(512 * 4 * 4, num_classes)

    def forward(self, x):
        x = self.nonlinear0(self.bn0(self.conv0(x)))
        for i in range(1, 6):
            x = getattr(self, f"conv{i}")(x)
            if i in (1, 3, 5):
                x = self.pooling(x)
            x = getattr(self, f"nonlinear{i}")(getattr(self, f"bn{i}")(x))
        return self.fc(x.view(x.size(0), -1))


def reference(arch: str, seed: int) -> nn.Module:
    """An official-layout model with trained-looking, hostile parameters: negative alphas,
    BatchNorm statistics far from the defaults."""
    torch.manual_seed(seed)
    m = {"resnet20": lambda: RefResNet(20), "resnet18": lambda: RefResNet(18), "vgg-small": RefVGG}[arch]()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, RefBinarizeConv2d):
                mod.weight.normal_(0, 0.1)
                mod.alpha.copy_(torch.randn_like(mod.alpha))  # any sign, as after training
            elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.weight.normal_(0, 1)
                mod.bias.normal_(0, 0.3)
                mod.running_mean.normal_(0, 0.5)
                mod.running_var.uniform_(0.3, 2.0)
    return m.eval()


def save_official(model: nn.Module, path: Path, prefix: str = "module.") -> Path:
    """``main_stage2.py``'s checkpoint dict; ``module.`` prefix as nn.DataParallel writes it."""
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 300, "model": "x", "state_dict": sd, "best_prec1": 0.0}, path)
    return path


@torch.no_grad()
def max_diff(ours: nn.Module, ref: nn.Module, n: int = 6, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g).float()
    m = torch.tensor(CIFAR10_NORMALIZE["mean"]).view(1, 3, 1, 1)
    s = torch.tensor(CIFAR10_NORMALIZE["std"]).view(1, 3, 1, 1)
    return float((ours(x) - ref((x / 255.0 - m) / s)).abs().max())


@pytest.mark.parametrize("arch", ["resnet20", "vgg-small", "resnet18"])
def test_same_eval_outputs(tmp_path, arch):
    ref = reference(arch, seed=1)
    assert any((p < 0).any() for n, p in ref.named_parameters() if n.endswith("alpha")), "negative alphas (seed 1)"
    src = save_official(ref, tmp_path / "ckpt.pth.tar", prefix="module." if arch != "resnet18" else "")
    import_biper(src, arch, W0, tmp_path / "m.pt", CIFAR10_NORMALIZE)
    ours, ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["spec"]["surrogate"]["w0"] == W0 and ckpt["spec"]["official_biper"]
    d = max_diff(ours, ref, seed=2)
    assert d <= 1e-5, f"{arch}: max abs diff {d} (seed 2)"
    logits = ours(torch.randint(0, 256, (2, 3, 32, 32)).float())
    assert torch.isfinite(logits).all() and logits.std() > 0


def test_sign_zero_is_kept(tmp_path):
    """A stem channel whose BatchNorm gives exactly 0: the official torch.sign makes it 0, not +1."""
    ref = reference("resnet20", seed=3)
    with torch.no_grad():
        ref.bn1.weight[:4] = 0.0
        ref.bn1.bias[:4] = 0.0
    src = save_official(ref, tmp_path / "c.pth.tar")
    import_biper(src, "resnet20", W0, tmp_path / "m.pt", CIFAR10_NORMALIZE)
    ours, _ = load_checkpoint(tmp_path / "m.pt")
    assert max_diff(ours, ref, seed=4) <= 1e-5
    for m in ours.modules():  # without the option, 0 -> +1 changes the outputs: the option matters
        if hasattr(m, "zero_tie"):
            m.zero_tie = False
    assert max_diff(ours, ref, seed=4) > 1e-3


def test_cli_and_status(tmp_path):
    src = save_official(reference("resnet20", seed=5), tmp_path / "c.pth.tar")
    out = tmp_path / "m.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "import-biper", str(src), "--arch", "resnet20",
                        "--w0", "20", "-o", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "max |bnn2hw - official forward|" in r.stdout and "fixed-point stream" in r.stdout
    r = subprocess.run([sys.executable, "-m", "bnn2hw", "import-biper", str(src), "--arch", "resnet20",
                        "-o", str(tmp_path / "x.pt")], capture_output=True, text=True)
    assert r.returncode == 2 and "--w0" in r.stderr and not (tmp_path / "x.pt").exists()


def _refuse(tmp_path, mutate, arch, needles, w0=W0, ref_arch=None):
    ref = reference(ref_arch or arch, seed=6)
    sd = {"module." + k: v.clone() for k, v in ref.state_dict().items()}
    mutate(sd)
    p = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": sd}, p)
    with pytest.raises(Bnn2hwError) as e:
        import_biper(p, arch, w0, tmp_path / "out.pt")
    for n in needles:
        assert n in str(e.value), str(e.value)
    assert not (tmp_path / "out.pt").exists()


def test_refuses_missing_key(tmp_path):
    _refuse(tmp_path, lambda sd: sd.pop("module.layer2.0.conv1.alpha"), "resnet20", ["layer2.0.conv1.alpha", "lacks"])


def test_refuses_wrong_shape(tmp_path):
    def f(sd):
        sd["module.layer1.1.bn2.running_mean"] = torch.zeros(17)
    _refuse(tmp_path, f, "resnet20", ["layer1.1.bn2.running_mean", "[17]", "[16]"])


def test_refuses_wrong_arch(tmp_path):
    _refuse(tmp_path, lambda sd: None, "vgg-small", ["conv0.weight", "--arch"], ref_arch="resnet20")


def test_refuses_zero_weight_sign(tmp_path):
    def f(sd):
        sd["module.layer3.2.conv2.weight"].view(-1)[5] = 0.0
    _refuse(tmp_path, f, "resnet20", ["layer3.2.conv2", "sin(w0 w) = 0"])


def test_refuses_bad_w0(tmp_path):
    _refuse(tmp_path, lambda sd: None, "resnet20", ["--w0"], w0=-1.0)
