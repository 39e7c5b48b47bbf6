# SPDX-License-Identifier: MIT
"""Deploying an official-layout BiPer resnet20 (issue 10 section 3): a trained-ish model on
synthetic data through ``import-biper`` and ``emit-c --verify --target cortex-m4``.

The model is bnn2hw's transcription of the official ``resnet20_1w1a``
(:mod:`bnn2hw.nn.biper_official`, binary weights ``sign(sin(w0 w))``, learnable alphas, float
residual stream, float first conv and ``bn2 + linear``), trained for a few epochs on a synthetic
10-class 32x32x3 set (a smooth random template per class, amplitude 40, plus Gaussian pixel noise
``--noise``: learnable, unlike uniform noise, and not trivially so; CIFAR-10 is not available
here), written as the official ``main_stage2.py`` checkpoint
(keys ``module.*``, ``alpha``/``beta``/``tau`` per binary conv), then:

1. ``bnn2hw import-biper`` (time);
2. ``export_ir`` (fold + IR == quantized twin on the test split + accuracy report; time);
3. ``bnn2hw emit-c --target cortex-m4 --verify`` (host ASan/UBSan + QEMU on ``--samples``
   images; time, flash, RAM, instructions per inference).

Writes ``benchmarks/results/biper_official.md``.

    python benchmarks/bench_biper_official.py [--epochs 3] [--train 2000] [--test 500] [--samples 8] [--noise 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw.frontends.biper_official import CIFAR10_NORMALIZE  # noqa: E402
from bnn2hw.nn.layers import set_stage  # noqa: E402
from bnn2hw.nn.models import build_model  # noqa: E402

W0 = 20.0


def synthetic(n: int, seed: int, templates: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = 128 + 40 * templates[y] + rng.normal(0, noise, (n, 3, 32, 32))
    return np.clip(np.round(x), 0, 255).astype(np.uint8), y


def make_templates(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.normal(size=(10, 3, 4, 4)))
    t = torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False)
    return (t / t.abs().amax(dim=(1, 2, 3), keepdim=True)).numpy()


def train(spec: dict, x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(spec)
    set_stage(model, 2)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        total = 0.0
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        print(f"epoch {ep + 1}: loss {total / len(xt):.3f}", flush=True)
    return model.eval()


def official_state(model: torch.nn.Module) -> dict:
    """bnn2hw's names -> the official ones (``<conv>.conv.weight`` -> ``<conv>.weight``), plus the
    unused ``beta`` / ``tau`` the official BinarizeConv2d stores; prefixed ``module.``."""
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith(".conv.weight") or k.endswith(".conv.alpha"):
            base = k[:-len(".conv.weight")] if k.endswith("weight") else k[:-len(".conv.alpha")]
            out[f"{base}.{k.rsplit('.', 1)[1]}"] = v
            if k.endswith("alpha"):
                out[f"{base}.beta"] = torch.ones_like(v)
                out[f"{base}.tau"] = torch.tensor(1.0)
        else:
            out[k] = v
    return {"module." + k: v.clone() for k, v in out.items()}


@torch.no_grad()
def diagnostics(model, spec: dict, x: np.ndarray, float_logits: np.ndarray) -> dict:
    """Where the float -> fixed-point change enters (twin only, no IR): the fraction of sign bits
    that differ from the float model's at the first and the last binary conv, and the class
    agreement of a twin whose first conv keeps 16-bit instead of int8 weights (not deployable:
    the IR takes int8)."""
    from bnn2hw.export.fold_official import QuantizedTwin, plan_official

    signs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: signs.__setitem__(n, o.numpy()))
             for n, m in model.named_modules() if n in ("layer1.0.conv1.sign", "layer3.2.conv2.sign")]
    model(torch.from_numpy(x.astype(np.float32)))
    for h in hooks:
        h.remove()
    out = {}
    for levels in (127, 32767):
        pl = plan_official(model, spec)
        pl.first(model.conv1, model.bn1, "conv1", pl.frac, levels=levels)
        named, _, lg = QuantizedTwin(pl).trace(torch.from_numpy(x.astype(np.float32)))
        out[levels] = {"first_sign_differ": float((named["l1_0_sign1"].numpy() != signs["layer1.0.conv1.sign"]).mean()),
                       "last_sign_differ": float((named["l3_2_sign2"].numpy() != signs["layer3.2.conv2.sign"]).mean()),
                       "class_agreement": float((lg.numpy().argmax(1) == float_logits.argmax(1)).mean())}
    return out


def run(cmd: list[str]) -> tuple[float, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "bnn2hw", *cmd], capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"bnn2hw {' '.join(cmd)} failed:\n{r.stderr}")
    return dt, r.stdout + r.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--noise", type=float, default=40.0, help="pixel noise std (template amplitude 40)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "biper_official.md"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    tpl = make_templates()
    x, y = synthetic(a.train, 1, tpl, a.noise)
    xt, yt = synthetic(a.test, 2, tpl, a.noise)
    spec = {"arch": "resnet20", "official_biper": True, "in_shape": [3, 32, 32], "num_classes": 10,
            "first": "float", "last": "float", "surrogate": {"name": "biper", "w0": W0}, "activation": "bireal",
            "normalize": CIFAR10_NORMALIZE}
    t0 = time.perf_counter()
    model = train(spec, x, y, a.epochs)
    t_train = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "synthetic.npz", x=x, y=y, x_test=xt, y_test=yt)
        torch.save({"epoch": a.epochs, "state_dict": official_state(model)}, tmp / "official.pth.tar")
        t_imp, _ = run(["import-biper", str(tmp / "official.pth.tar"), "--arch", "resnet20", "--w0", str(W0),
                        "-o", str(tmp / "imported.pt")])
        from bnn2hw.export.pipeline import export_ir

        t = time.perf_counter()
        exp = export_ir(tmp / "imported.pt", str(tmp / "synthetic.npz"))
        t_exp = time.perf_counter() - t
        cal = exp.graph.meta["calibration"]
        from bnn2hw.ir import execute
        from bnn2hw.train import predict

        fl = predict(model, xt)
        dl = np.abs(fl - execute.run(exp.graph, xt).logits)
        spread = float(np.std(fl))
        diag = diagnostics(model, spec, xt, fl)
        t_c, log = run(["emit-c", str(tmp / "imported.pt"), "--target", "cortex-m4", "--verify",
                        "--verify-samples", str(a.samples), "--dataset", str(tmp / "synthetic.npz"),
                        "-o", str(tmp / "fw")])
        rep = json.loads((tmp / "fw" / "report.json").read_text())
    m4 = rep["verification"]["cortex-m4"]
    lines = [
        "# Official BiPer resnet20 deployed to Cortex-M4 (issue 10 section 3)",
        "",
        "`python benchmarks/bench_biper_official.py "
        f"--epochs {a.epochs} --train {a.train} --test {a.test} --samples {a.samples} --noise {a.noise:g}` "
        "(2 shared cores, one torch thread). Model: bnn2hw's transcription of the official `resnet20_1w1a`, "
        f"trained {a.epochs} epochs (stage 2, Adam) on a synthetic 10-class 32x32x3 set ({a.train} train / "
        f"{a.test} test; a smooth random template per class, amplitude 40, plus pixel noise of std {a.noise:g}), saved as the official checkpoint, then "
        "`import-biper` and `emit-c`. Synthetic data: the accuracies say how much the fixed-point deployment "
        "changes the decisions, not what CIFAR-10 accuracy would be.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| training (not part of the deployment) | {t_train:.0f} s |",
        f"| `import-biper` (CLI, incl. Python start) | {t_imp:.1f} s |",
        f"| `export_ir` (fold + IR == twin on {cal['test_samples']} test images + accuracy report) | {t_exp:.1f} s |",
        f"| `emit-c --target cortex-m4 --verify` ({a.samples} images; host ASan/UBSan + QEMU; incl. export) | "
        f"{t_c:.0f} s |",
        f"| stream | {cal['stream_bits']}-bit, Q{cal['stream_frac']} ({cal['format']}) |",
        f"| IR == quantized twin | {cal['twin_vs_ir']['exact']} ({cal['twin_vs_ir']['stream_compared']} stream "
        f"integers, {cal['twin_vs_ir']['bits_compared']} bits, every integer logit) |",
        f"| test accuracy, official float model | {cal['float_accuracy']:.4f} |",
        f"| test accuracy, deployed IR (= C) | {cal['ir_accuracy']:.4f} |",
        f"| class agreement float vs IR | {cal['class_agreement']:.4f} |",
        f"| float vs IR logits: mean / max abs difference (float logits' std {spread:.3g}) | {dl.mean():.3g} / "
        f"{dl.max():.3g} |",
        f"| sign bits differing from float: first binary conv (layer1.0.conv1) / last (layer3.2.conv2) | "
        f"{diag[127]['first_sign_differ']:.4f} / {diag[127]['last_sign_differ']:.4f} |",
        f"| diagnostic (twin only, not deployable): 16-bit first-conv weights: first / last sign bits differing, "
        f"class agreement | {diag[32767]['first_sign_differ']:.4f} / {diag[32767]['last_sign_differ']:.4f}, "
        f"{diag[32767]['class_agreement']:.4f} |",
        f"| Cortex-M4 (QEMU) logits differing from the IR | {m4['int_logits_differing']} of {a.samples} x 10 |",
        f"| Cortex-M4 instructions / inference | {m4.get('instructions_per_inference')} |",
        f"| Cortex-M4 flash (ELF) | {m4.get('flash_bytes')} B |",
        f"| Cortex-M4 RAM | {m4.get('ram_bytes')} B (arena {rep['scratch_bytes']} B) |",
        f"| flash lower bound (weight bits / 8 + 4 B per threshold) | {rep['flash_lower_bound_bytes']} B |",
        "",
        "emit-c output:",
        "",
        "```",
        *[l for l in log.strip().splitlines() if l.strip()],
        "```",
    ]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
