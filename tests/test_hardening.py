# SPDX-License-Identifier: MIT
"""Issue 8: what users must get instead of the defects found in review (the refusals themselves
are in ``test_bad_input.py``): permissions that follow the umask, models trained on image folders
and relative paths that export from anywhere, channels-last data accepted when declared, export
without data, warnings for options that do nothing, the Makefile's default target, and the
divergence guard of training."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from bnn2hw import cli
from bnn2hw.checkpoint import read_checkpoint
from bnn2hw.data import load_dataset, load_digits
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.train import TrainConfig, accuracy, seed_everything, train_two_stage

SEED = 31




@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    out = folder / "m.pt"
    sys_argv = sys.argv
    try:
        sys.argv = ["bnn2hw", "train", "--hidden", "8", "--epochs1", "1", "--epochs2", "1", "--quiet",
                    "--seed", str(SEED), "--threads", "1", "-o", str(out)]
        with pytest.raises(SystemExit) as e:
            cli.main()
        assert e.value.code == 0
    finally:
        sys.argv = sys_argv
    return out


def test_outputs_follow_the_umask(tiny, tmp_path, monkeypatch, capsys):
    old = os.umask(0o022)
    try:
        code, _, err = run_cli(monkeypatch, capsys, "emit-c", tiny, "--target", "host", "-o", tmp_path / "fw")
        assert code == 0, err
        code, _, err = run_cli(monkeypatch, capsys, "train", "--hidden", "4", "--epochs1", "1", "--epochs2", "1",
                               "--quiet", "-o", tmp_path / "c.pt")
        assert code == 0, err
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "fw").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "fw" / "model.c").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o644


def test_firmware_folder_defaults_and_readme(tiny, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", tiny, "--target", "cortex-m7", "--popcount", "swar",
                           "-o", tmp_path / "fw")
    assert code == 0, err
    assert "only sets the default of the generated Makefile" in err  # --popcount without --verify
    make = (tmp_path / "fw" / "Makefile").read_text()
    assert "TARGET ?= cortex-m7" in make and "POPCOUNT ?= swar" in make
    readme = (tmp_path / "fw" / "README.md").read_text()
    assert "report.md" not in readme and "report.json" in readme
    assert json.loads((tmp_path / "fw" / "report.json").read_text())["target"] == "cortex-m7"


def test_act_approx_on_a_model_without_periodic_ops_warns(tiny, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", tiny, "--target", "host", "--act-approx", "taylor",
                           "-o", tmp_path / "fw")
    assert code == 0, err
    assert "warning:" in err and "no periodic activation" in err


def _image_folder(root: Path, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(SEED)
    for label in range(3):
        (root / f"class{label}").mkdir(parents=True)
        for i in range(12):
            img = rng.integers(0, 60, (size, size)).astype(np.uint8)
            img[:, label * size // 3:(label + 1) * size // 3] += 180  # a bright band per class
            Image.fromarray(img).save(root / f"class{label}" / f"{i}.png")
    return root


def test_image_folder_model_exports_from_another_directory(tmp_path, monkeypatch, capsys):
    """28x28-style images keep their size (no silent 8x8), the checkpoint records it and an
    absolute data path, and emit-c --verify works from another working directory."""
    pytest.importorskip("PIL", reason="Pillow writes the test images")
    train_dir = tmp_path / "a"
    _image_folder(train_dir / "imgs", 12)
    monkeypatch.chdir(train_dir)
    code, _, err = run_cli(monkeypatch, capsys, "train", "--dataset", "imgs", "--hidden", "8", "--epochs1", "1",
                           "--epochs2", "1", "--quiet", "-o", "m.pt")
    assert code == 0, err
    meta = read_checkpoint(train_dir / "m.pt")["meta"]
    assert meta["input"]["shape"] == [1, 12, 12], meta["input"]
    assert meta["data"] == {"image_size": 12, "channels": 1}
    assert Path(meta["dataset"]).is_absolute()
    other = tmp_path / "b"
    other.mkdir()
    monkeypatch.chdir(other)
    code, out, err = run_cli(monkeypatch, capsys, "emit-c", train_dir / "m.pt", "--target", "host", "--verify",
                             "-o", "fw")
    assert code == 0, err
    assert "integer logits differing from the IR: 0" in out


def test_export_without_data_warns(tiny, tmp_path, monkeypatch, capsys):
    raw = torch.load(tiny, weights_only=True)
    raw["meta"]["dataset"] = str(tmp_path / "gone.npz")
    ckpt = tmp_path / "nodata.pt"
    torch.save(raw, ckpt)
    code, _, err = run_cli(monkeypatch, capsys, "export", ckpt, "--no-verify", "--no-finn", "-o", tmp_path / "b")
    assert code == 0, err
    assert "warning: --no-verify" in err
    assert (tmp_path / "b" / "model_finn.onnx").exists()
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", ckpt, "--no-verify", "--target", "host",
                           "-o", tmp_path / "fw")
    assert code == 0, err
    assert (tmp_path / "fw" / "model.c").exists()


def test_declared_channels_last_npz_is_transposed(tmp_path):
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, 256, (40, 6, 5, 3)).astype(np.uint8)
    y = np.arange(40) % 2
    np.savez(tmp_path / "nhwc.npz", x=x, y=y, layout=np.array("NHWC"))
    d = load_dataset(str(tmp_path / "nhwc.npz"))
    assert d.in_shape == (3, 6, 5)
    both = np.concatenate([d.x_train, d.x_test])
    assert sorted(map(bytes, both)) == sorted(map(bytes, np.ascontiguousarray(x.transpose(0, 3, 1, 2))))


def test_divergence_guard_restores_best_weights(monkeypatch):
    """A loss that explodes in stage 1's third epoch (simulated: the loss is scaled by 1000 from
    then on, gradients unchanged) ends the stage and restores the best epoch's weights, recorded in the config."""
    import bnn2hw.train as tr

    data = load_digits()
    spec = default_spec("mlp", data.in_shape, data.num_classes)
    spec["hidden"] = [16]
    spec["surrogate"]["name"] = "ste"
    torch.set_num_threads(1)
    per_epoch = len(tr.batches(torch.arange(len(data.x_train)), 64))
    calls = {"n": 0}
    real = torch.nn.CrossEntropyLoss

    class Exploding(real):
        def forward(self, a, b):
            calls["n"] += 1
            loss = super().forward(a, b)
            # the value explodes, the gradient does not (so the run stays finite)
            return loss + 1000 * loss.detach() if 2 * per_epoch < calls["n"] <= 3 * per_epoch else loss

    monkeypatch.setattr(tr.nn, "CrossEntropyLoss", Exploding)
    seed_everything(SEED)
    model = build_model(spec)
    hist, cfg = train_two_stage(model, data, TrainConfig(epochs1=4, epochs2=1, seed=SEED), progress=False)
    assert len(cfg.diverged) == 1, f"seed {SEED}: {cfg.diverged}"
    event = cfg.diverged[0]
    assert event["stage"] == 1 and event["epoch"] == 3 and "exploded" in event["reason"]
    assert event["restored_epoch"] in (1, 2) and event["selected_on"] == "training"
    assert [h["stage"] for h in hist] == [1, 1, 2]  # stage 1 stopped, stage 2 ran
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def test_divergence_is_recorded_in_the_checkpoint(tmp_path, monkeypatch, capsys):
    """--lr2 1e6 makes stage 2's loss non-finite at once: the run keeps the stage's starting
    weights, warns, and writes the event into the checkpoint metadata."""
    code, _, err = run_cli(monkeypatch, capsys, "train", "--hidden", "16", "--surrogate", "ste", "--epochs1", "2",
                           "--epochs2", "2", "--lr2", "1e6", "--seed", str(SEED), "--quiet", "--val-fraction", "0.2",
                           "-o", tmp_path / "m.pt")
    assert code == 0, err
    assert "warning: stage 2 diverged" in err
    meta = read_checkpoint(tmp_path / "m.pt")["meta"]
    assert meta["diverged"][0]["stage"] == 2 and meta["diverged"][0]["selected_on"] == "validation"
    assert meta["test_accuracy"] > 0.3, meta["test_accuracy"]


def test_val_fraction_holds_out_a_stratified_split():
    from bnn2hw.train import selection_split

    data = load_digits()
    kept, (xv, yv, name) = selection_split(data, 0.1, SEED)
    assert name == "validation" and len(kept.x_train) + len(xv) == len(data.x_train)
    assert set(np.unique(yv)) == set(range(10))
    _ = accuracy
