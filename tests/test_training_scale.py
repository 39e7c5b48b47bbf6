# SPDX-License-Identifier: MIT
"""Training at scale, exercised on the CPU: the default path is unchanged bit for bit, runs resume
exactly, torchrun/DDP (gloo) trains in 2 processes and across 2 "nodes" on 127.0.0.1, devices
fall back with a message, augmentation and normalization behave, recipes set the paper's values.

CUDA, NCCL, ``--amp`` and ``--sync-bn`` need a GPU and are *not* exercised here (no GPU on CI);
only their refusal on the CPU is.
"""

from __future__ import annotations

import copy
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import legacy_train
from bnn2hw import cli
from bnn2hw.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from bnn2hw.data.augment import EpochBatches, batch_generator, crop_flip_params, random_crop_flip
from bnn2hw.distributed import resolve_device, setup_runtime
from bnn2hw.errors import Bnn2hwError
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.train import TrainConfig, predict, seed_everything, train_two_stage

REPO = Path(__file__).resolve().parents[1]
SEED = 3


def _env(**over) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)
    env.update(over)
    return env


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["bnn2hw", *map(str, args)])
    torch.set_num_threads(1)
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def assert_fails(code: int, err: str, *needles: str) -> None:
    assert code == 2, f"exit status {code}, stderr {err!r}"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


def _spec(digits, arch="mlp", surrogate="biper", **over):
    spec = default_spec(arch, digits.in_shape, digits.num_classes)
    spec["surrogate"]["name"] = surrogate
    if arch == "mlp":
        spec["hidden"] = [64, 64]
    spec.update(over)
    return spec


def _equal_states(a: dict, b: dict) -> list[str]:
    """Names of tensors that differ (empty: bit-identical)."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k].cpu(), b[k].cpu())]


# --------------------------------------------------------------------------------------------
# 1. the default single-process CPU path is today's, bit for bit


@pytest.mark.parametrize("arch,surrogate,epochs,extra", [
    ("mlp", "biper", 2, {"sin2_reg": 0.01, "clip_grad": 5.0}),
    ("cnn", "fda", 1, {}),
], ids=["mlp-biper-sin2-clip", "cnn-fda"])
def test_default_path_bit_identical_to_legacy_loop(digits, arch, surrogate, epochs, extra):
    """The trainer's default CPU run == the frozen pre-DDP loop (tests/legacy_train.py)."""
    torch.set_num_threads(1)
    spec = _spec(digits, arch, surrogate)
    states, hists = [], []
    for mod in (legacy_train, None):
        seed_everything(SEED)
        model = build_model(spec)
        if mod is legacy_train:
            h, _ = legacy_train.train_two_stage(model, digits, legacy_train.TrainConfig(
                epochs1=epochs, epochs2=epochs, seed=SEED, **extra), progress=False)
        else:
            h, _ = train_two_stage(model, digits, TrainConfig(epochs1=epochs, epochs2=epochs, seed=SEED,
                                                              **extra), progress=False)
        states.append(model.state_dict())
        hists.append([(r["stage"], r["epoch"], r["loss"], r["test_acc"]) for r in h])
    assert not _equal_states(*states), f"seed {SEED}: {arch} weights differ from the legacy loop"
    assert hists[0] == hists[1], f"seed {SEED}: {arch} losses/accuracies differ from the legacy loop"


def test_workers_give_the_same_weights(digits):
    """Batches prepared by 2 DataLoader workers == batches prepared in-process (with augmentation)."""
    torch.set_num_threads(1)
    from bnn2hw.distributed import Runtime

    spec = _spec(digits)
    states = []
    for workers in (0, 2):
        seed_everything(SEED)
        model = build_model(spec)
        rt = Runtime(torch.device("cpu"), workers=workers)
        train_two_stage(model, digits, TrainConfig(epochs1=1, epochs2=1, seed=SEED, augment=True),
                        progress=False, runtime=rt)
        states.append(model.state_dict())
    assert not _equal_states(*states), f"seed {SEED}: workers=2 changed the weights"


# --------------------------------------------------------------------------------------------
# 2. resume


def _roundtrip(obj):
    """Through torch.save and a weights_only load, as a checkpoint file would go."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("arch,cfg_kw", [
    ("mlp", {"epochs1": 3, "epochs2": 3, "sin2_reg": 0.01}),
    ("cnn", {"epochs1": 2, "epochs2": 2, "augment": True, "warmup_epochs": 2, "sin2_reg": 0.02,
             "sin2_reg2": 0.03, "sin2_sum": True, "clip_grad": 5.0, "val_fraction": 0.2}),
], ids=["mlp", "cnn-augment-warmup-sin2sum-clip-val"])
def test_resume_from_every_epoch_equals_uninterrupted(digits, arch, cfg_kw):
    """Resuming from each periodic state (inside stage 1, at the stage boundary, inside stage 2)
    ends with exactly the uninterrupted run's weights, history and config."""
    torch.set_num_threads(1)
    spec = _spec(digits, arch)
    snaps = []

    def keep(state):
        snaps.append(_roundtrip({"state": state, "weights": copy.deepcopy(model.state_dict())}))

    seed_everything(SEED)
    model = build_model(spec)
    hist, used = train_two_stage(model, digits, TrainConfig(seed=SEED, **cfg_kw), progress=False,
                                 save_every=1, on_checkpoint=keep)
    final = copy.deepcopy(model.state_dict())
    total = cfg_kw["epochs1"] + cfg_kw["epochs2"]
    assert len(snaps) == total - 1, f"{len(snaps)} periodic states for {total} epochs"
    for snap in snaps:
        resumed = build_model(spec)
        resumed.load_state_dict(snap["weights"])
        seed_everything(SEED + 100)  # the global RNG must come from the checkpoint
        h2, used2 = train_two_stage(resumed, digits, TrainConfig(seed=SEED, **cfg_kw), progress=False,
                                    resume=snap["state"])
        st = snap["state"]
        where = f"seed {SEED}, {arch}, resumed at stage {st['stage']} epoch {st['epoch']}"
        assert not _equal_states(final, resumed.state_dict()), f"{where}: weights differ"
        assert [(r["stage"], r["epoch"], r["loss"]) for r in h2] == \
               [(r["stage"], r["epoch"], r["loss"]) for r in hist], f"{where}: history differs"
        assert used2.to_dict() == used.to_dict(), where


def test_cli_interrupted_run_resumes_to_identical_weights(tmp_path, monkeypatch, capsys):
    """`train --save-every 1` interrupted in epoch 4 (KeyboardInterrupt from its log line), then
    `train --resume model.resume.pt` == the uninterrupted run, tensor for tensor."""
    args = ["train", "--hidden", "32", "--epochs1", "2", "--epochs2", "3", "--seed", SEED,
            "--threads", "1", "--no-plots"]
    full = tmp_path / "full.pt"
    code, _, err = run_cli(monkeypatch, capsys, *args, "--quiet", "-o", full)
    assert code == 0, err

    import bnn2hw.train as trainer

    real = trainer.train_two_stage

    def interrupted(*a, **kw):
        log = kw["log"]

        def stop_after_3(rec):
            log(rec)
            if (rec["stage"], rec["epoch"]) == (2, 2):  # after the (2, 1) save
                raise KeyboardInterrupt

        return real(*a, **{**kw, "log": stop_after_3})

    monkeypatch.setattr(trainer, "train_two_stage", interrupted)
    part = tmp_path / "part.pt"
    code, _, err = run_cli(monkeypatch, capsys, *args, "--save-every", "1", "-o", part)
    assert code == 130, err
    assert not part.exists(), "an interrupted run must not write its final checkpoint"
    saved = tmp_path / "part.resume.pt"
    ckpt = torch.load(saved, weights_only=True)
    assert (ckpt["resume"]["stage"], ckpt["resume"]["epoch"]) == (2, 1), ckpt["meta"].get("partial")
    monkeypatch.setattr(trainer, "train_two_stage", real)
    code, _, err = run_cli(monkeypatch, capsys, "train", "--resume", saved, "--threads", "1",
                           "--no-plots", "--quiet", "-o", part)
    assert code == 0, err
    a, b = read_checkpoint(full), read_checkpoint(part)
    assert not _equal_states(a["state_dict"], b["state_dict"]), f"seed {SEED}: resumed weights differ"
    assert a["meta"]["test_accuracy"] == b["meta"]["test_accuracy"]
    assert len(b["meta"]["history"]) == 5


def test_cli_resume_refusals(tmp_path, monkeypatch, capsys, mlp_ckpt):
    code, _, err = run_cli(monkeypatch, capsys, "train", "--resume", mlp_ckpt[0], "-o", tmp_path / "x.pt")
    assert_fails(code, err, "not a resumable checkpoint")
    code, _, err = run_cli(monkeypatch, capsys, "train", "--resume", mlp_ckpt[0], "--lr1", "0.3",
                           "--epochs2", "4", "-o", tmp_path / "x.pt")
    assert_fails(code, err, "--resume continues", "--epochs2", "--lr1")
    assert not (tmp_path / "x.pt").exists()


# --------------------------------------------------------------------------------------------
# 3. devices and bad options


def test_cuda_request_without_cuda_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    warnings = []
    assert resolve_device("cuda", warn=warnings.append) == torch.device("cpu")
    assert len(warnings) == 1 and "CUDA is not available" in warnings[0] and "CPU" in warnings[0], warnings
    assert resolve_device("auto", warn=warnings.append) == torch.device("cpu")
    assert len(warnings) == 1, "auto must fall back silently"
    with pytest.raises(Bnn2hwError, match="--amp bf16 needs a CUDA device"):
        setup_runtime("auto", amp="bf16")


def test_cli_device_cuda_on_this_machine(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--hidden", "16", "--epochs1", "1", "--epochs2",
                           "1", "--quiet", "--no-plots", "--device", "cuda", "-o", out)
    assert code == 0, err
    device = read_checkpoint(out)["meta"]["runtime"]["device"]
    if torch.cuda.is_available():
        assert device.startswith("cuda"), device
    else:
        assert "warning: --device cuda: CUDA is not available" in err, err
        assert device == "cpu", device


@pytest.mark.parametrize("args,needle", [
    (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
    (["--amp", "fp8"], "--amp must be off, bf16 or fp16"),
    (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a CUDA device"),
    (["--save-every", "-1"], "--save-every must be a non-negative integer"),
    (["--workers", "-2"], "--workers must be a non-negative integer"),
    (["--warmup-epochs", "-1"], "--warmup-epochs must be a non-negative integer"),
    (["--normalize", "0.5"], "--normalize must be 'auto'"),
    (["--normalize", "0.1,0.2,0.3:0.5,0.5,0.5"], "3 mean values for 1 input channel"),
    (["--normalize", "0.5,0"], "std values must be positive"),
    (["--recipe", "biper-imagenet"], "unknown --recipe"),
])
def test_bad_scale_options_one_error_line(tmp_path, monkeypatch, capsys, args, needle):
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--hidden", "16", "--epochs1", "1",
                           "--epochs2", "1", "--quiet", *args, "-o", out)
    assert_fails(code, err, needle)
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, err
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 4. augmentation and normalization


def test_crop_flip_geometry():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.int64).reshape(2, 3, 5, 5).to(torch.uint8)
    z = torch.zeros(2, dtype=torch.int64)
    same = random_crop_flip(x, z + 4, z + 4, torch.zeros(2, dtype=torch.bool))
    assert torch.equal(same, x), "offset 4 of a 4-padded image is the image"
    flipped = random_crop_flip(x, z + 4, z + 4, torch.ones(2, dtype=torch.bool))
    assert torch.equal(flipped, x.flip(-1))
    corner = random_crop_flip(x, z, z, torch.zeros(2, dtype=torch.bool))
    assert (corner[:, :, :4, :] == 0).all() and (corner[:, :, :, :4] == 0).all(), "zero padding"
    assert torch.equal(corner[:, :, 4, 4], x[:, :, 0, 0])
    oy, ox, flip = crop_flip_params(1000, batch_generator(SEED, 1, 0, 0))
    assert int(oy.min()) == 0 and int(oy.max()) == 8 and int(ox.max()) == 8
    assert 400 < int(flip.sum()) < 600, f"seed {SEED}: {int(flip.sum())} of 1000 flips"


def test_rank_slices_make_up_the_global_batch(digits):
    """Two ranks' augmented slices, concatenated, are the single-process augmented batch."""
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    bl = [perm[:64], perm[64:128]]
    one = EpochBatches(x, y, bl, 0, 1, (SEED, 1, 0))
    two = [EpochBatches(x, y, bl, r, 2, (SEED, 1, 0)) for r in (0, 1)]
    for i in range(2):
        xa, ya = one[i]
        parts = [t[i] for t in two]
        assert torch.equal(xa, torch.cat([p[0] for p in parts])), f"seed {SEED}, batch {i}"
        assert torch.equal(ya, torch.cat([p[1] for p in parts]))
        assert not torch.equal(xa, x[bl[i]].float()), "augmentation changed nothing"


def test_normalization_recorded_folded_and_exported(digits, tmp_path):
    """A CNN trained on normalized input folds the normalization into its first BatchNorm: the
    folded model (uint8 input) predicts what the trained one does, and export verifies."""
    torch.set_num_threads(1)
    spec = _spec(digits, "cnn", normalize={"mean": [0.3], "std": [0.4]})
    seed_everything(SEED)
    model = build_model(spec)
    train_two_stage(model, digits, TrainConfig(epochs1=1, epochs2=1, seed=SEED), progress=False)
    path = tmp_path / "norm.pt"
    save_checkpoint(path, model, spec, {"dataset": "digits", "input": {"dtype": "uint8",
                                                                       "shape": list(digits.in_shape)}})
    raw, _ = load_checkpoint(path)  # lenient load: folded too (the fold is exact)
    assert not hasattr(raw, "input_normalization"), "loaded model kept its normalization hook"
    want, got = predict(model, digits.x_test), predict(raw, digits.x_test)
    assert (want.argmax(1) == got.argmax(1)).mean() >= 0.995, f"seed {SEED}: folded model disagrees"
    assert np.allclose(want, got, atol=1e-3), f"seed {SEED}: max diff {np.abs(want - got).max()}"
    from bnn2hw.export.pipeline import export_ir

    exp = export_ir(path)  # verifies IR == (folded) PyTorch bit for bit on the test split
    assert exp.torch_vs_ir is not None and exp.torch_vs_ir.exact, exp.torch_vs_ir
    agree = (exp.torch_logits.argmax(1) == want.argmax(1)).mean()
    assert agree >= 0.995, f"seed {SEED}: exported model agrees with the trained one on {agree:.3f}"


def test_normalization_refused_where_it_cannot_fold(digits, tmp_path):
    spec = _spec(digits, "cnn", normalize={"mean": [0.3], "std": [0.4]})
    spec["convs"] = [[8, 3, 1, False]]  # padded first conv
    path = tmp_path / "pad.pt"
    save_checkpoint(path, build_model(spec), spec, {"dataset": "digits"})
    with pytest.raises(Bnn2hwError, match="zero-pads its input"):
        load_checkpoint(path, require_finite=True)
    spec3 = default_spec("mlp", (3, 4, 4), 2)
    spec3.update(hidden=[8], normalize={"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.3, 0.4]})
    path3 = tmp_path / "rgb.pt"
    save_checkpoint(path3, build_model(spec3), spec3, {"dataset": "x"})
    with pytest.raises(Bnn2hwError, match="per-channel std"):
        load_checkpoint(path3, require_finite=True)
    model, _ = load_checkpoint(path3)  # not for export: kept as trained
    assert hasattr(model, "input_normalization")


# --------------------------------------------------------------------------------------------
# 5. recipes


def test_recipe_sets_the_official_biper_settings(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(SEED)
    data = tmp_path / "cifar_like.npz"
    np.savez(data, x=rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8), y=np.arange(40) % 2,
             x_test=rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8), y_test=np.arange(10) % 2)
    out = tmp_path / "r20.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--recipe", "biper-cifar10-resnet20",
                           "--dataset", data, "--epochs1", "1", "--epochs2", "1", "--batch-size", "8",
                           "--quiet", "--no-plots", "-o", out)
    assert code == 0, err
    ck = read_checkpoint(out)
    t = ck["meta"]["train"]
    assert ck["spec"]["arch"] == "resnet20" and ck["spec"]["surrogate"]["w0"] == 20.0
    assert (t["lr1"], t["lr2"], t["wd1"], t["wd2"]) == (0.021, 0.0037, 0.0016, 0.00016), t
    assert (t["latent_lr1"], t["latent_lr2"]) == (0.021, 0.0037), t
    assert (t["sin2_reg"], t["sin2_reg2"], t["sin2_sum"], t["warmup_epochs"]) == (0.037, 0.0468, True, 5)
    assert t["augment"] is True and (t["epochs1"], t["epochs2"], t["batch_size"]) == (1, 1, 8), t
    assert ck["spec"]["normalize"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert ck["meta"]["recipe"] == "biper-cifar10-resnet20"


# --------------------------------------------------------------------------------------------
# 6. torchrun: 2 processes, and 2 "nodes" on the loopback interface


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_bounded(cmds: list[list[str]], env: dict, timeout: float) -> list[subprocess.CompletedProcess]:
    """Start every command in its own process group; kill the groups if they outlive ``timeout``."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True) for c in cmds]
    deadline = time.monotonic() + timeout
    results = []
    try:
        for p, c in zip(procs, cmds):
            out, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
            results.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    except subprocess.TimeoutExpired:
        pytest.fail(f"torchrun did not finish within {timeout} s")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return results


TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TINY_DDP = ["--hidden", "32", "--epochs1", "2", "--epochs2", "2", "--seed", str(SEED), "--threads", "1",
            "--batch-size", "64", "--no-plots", "--quiet"]


def test_torchrun_two_processes_gloo(tmp_path):
    """2-process standalone torchrun: both stages run, ranks end identical, rank 0 alone writes
    the checkpoints (final and periodic), and the checkpoint exports and verifies."""
    dump = tmp_path / "dump"
    dump.mkdir()
    out = tmp_path / "ddp.pt"
    cmd = [*TORCHRUN, "--standalone", "--nproc_per_node=2", str(REPO / "tests" / "ddp_worker.py"),
           "train", *TINY_DDP, "--save-every", "3", "-o", str(out)]
    r, = _run_bounded([cmd], _env(BNN2HW_TEST_DUMP=str(dump), OMP_NUM_THREADS="1"), timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    w0, w1 = (torch.load(dump / f"weights.rank{k}.pt", weights_only=True) for k in (0, 1))
    assert not _equal_states(w0, w1), f"seed {SEED}: ranks ended with different weights"
    assert (dump / "saves.rank0.txt").read_text().split() == ["ddp.resume.pt", "ddp.pt"]
    assert not (dump / "saves.rank1.txt").exists(), "rank 1 wrote a checkpoint"
    ck = read_checkpoint(out)
    assert not _equal_states(w0, ck["state_dict"])
    assert [(h["stage"], h["epoch"]) for h in ck["meta"]["history"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert ck["meta"]["runtime"]["world_size"] == 2 and ck["meta"]["test_accuracy"] > 0.5, ck["meta"]
    assert r.stdout.count("wrote ") == 1, r.stdout
    e = subprocess.run([sys.executable, "-m", "bnn2hw", "export", str(out), "--no-finn", "-o",
                        str(tmp_path / "build")], capture_output=True, text=True, env=_env(), timeout=300)
    assert e.returncode == 0, e.stderr[-2000:]
    assert "bit for bit" in e.stdout, e.stdout


def test_torchrun_two_nodes_on_loopback(tmp_path):
    """Two `torchrun --nnodes=2` launches (node_rank 0 and 1, c10d rendezvous on a free
    127.0.0.1 port) train together through `-m bnn2hw`, and finish; one checkpoint is written.
    The model is the FDA CNN, whose stage 1 leaves the weight noise module unused (DDP must be
    told, or it fails: find_unused_parameters is probed per stage)."""
    port = _free_port()
    out = tmp_path / "nodes.pt"
    cmds = [[*TORCHRUN, "--nnodes=2", "--nproc_per_node=1", f"--node_rank={r}", "--rdzv_backend=c10d",
             f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id=bnn2hw-test-{port}", "-m", "bnn2hw",
             "train", "--model", "cnn", "--surrogate", "fda", "--epochs1", "1", "--epochs2", "1",
             "--seed", str(SEED), "--threads", "1", "--no-plots", "--quiet", "-o", str(out)] for r in (0, 1)]
    results = _run_bounded(cmds, _env(OMP_NUM_THREADS="1"), timeout=240)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    assert sum(r.stdout.count("wrote ") for r in results) == 1, [r.stdout for r in results]
    ck = read_checkpoint(out)
    assert ck["meta"]["runtime"]["world_size"] == 2
    assert [(h["stage"], h["epoch"]) for h in ck["meta"]["history"]] == [(1, 1), (2, 1)]


def test_image_folder_with_train_and_test_splits(tmp_path):
    """`root/train/<class>/*` and `root/test/<class>/*` (a CIFAR-10 PNG export) are the splits."""
    from PIL import Image

    from bnn2hw.data import load_dataset

    rng = np.random.default_rng(SEED)
    counts = {"train": 3, "test": 2}
    for split, n in counts.items():
        for cls in ("cat", "dog"):
            (tmp_path / "c10" / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(
                    tmp_path / "c10" / split / cls / f"{i}.png")
    d = load_dataset(str(tmp_path / "c10"), channels=3)
    assert d.x_train.shape == (6, 3, 6, 6) and d.x_test.shape == (4, 3, 6, 6), (d.x_train.shape, d.x_test.shape)
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1] and d.y_test.tolist() == [0, 0, 1, 1]
    assert d.load_options() == {"image_size": 6, "channels": 3}
    (tmp_path / "c10" / "test" / "bird").mkdir()
    with pytest.raises(Bnn2hwError, match="differ from the training split"):
        load_dataset(str(tmp_path / "c10"), channels=3)
