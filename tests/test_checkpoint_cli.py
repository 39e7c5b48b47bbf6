# SPDX-License-Identifier: MIT
"""Checkpoints round-trip; the CLI rejects bad input with exit status 2 and a message naming the
problem, leaving no checkpoint behind; the data loaders read .npz files and image folders.

Most CLI cases call ``bnn2hw.cli.main()`` in-process with a patched ``sys.argv`` (the same
code path as the console script, minus a 5-15 s interpreter start); one test runs the real
``python -m bnn2hw.cli`` subprocess to pin the exit status end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from bnn2hw.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
from bnn2hw.data import load_dataset, load_digits
from bnn2hw.errors import Bnn2hwError
from bnn2hw.nn.models import build_model, default_spec
from bnn2hw.nn.surrogates import SURROGATES
from bnn2hw.train import TrainConfig, accuracy, predict, seed_everything, train_two_stage

SEED = 7
TINY = ["--hidden", "32", "--epochs1", "1", "--epochs2", "1", "--quiet"]




def assert_fails(code: int, err: str, *needles: str) -> None:
    assert code == 2, f"exit status {code}, stderr {err!r}"
    assert err.strip().startswith("error:"), err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


def assert_no_checkpoint(folder: Path, output: Path) -> None:
    assert not output.exists(), f"{output} left behind"
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(f".{output.name}")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


# --------------------------------------------------------------------------------------------
# Round trip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MLP trained 1 + 1 epochs with the Python API, saved as a checkpoint."""
    torch.set_num_threads(1)
    data = load_digits()
    spec = default_spec("mlp", data.in_shape, data.num_classes)
    spec["hidden"] = [32]
    seed_everything(SEED)
    model = build_model(spec)
    _, used = train_two_stage(model, data, TrainConfig(epochs1=1, epochs2=1, seed=SEED, threads=1),
                              progress=False)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, spec, {"dataset": "digits", "train": used.to_dict()})
    return model, spec, data, path


def test_checkpoint_loads_with_weights_only(trained):
    _, spec, _, path = trained
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == 1
    assert raw["spec"] == spec
    assert raw["meta"]["dataset"] == "digits" and "bnn2hw_version" in raw["meta"]
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())


def test_checkpoint_round_trip_identical_state_and_predictions(trained):
    model, spec, data, path = trained
    loaded, ckpt = load_checkpoint(path)
    assert not loaded.training
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    p_orig, p_loaded = predict(model, data.x_test), predict(loaded, data.x_test)
    np.testing.assert_array_equal(p_orig, p_loaded)
    assert accuracy(loaded, data.x_test, data.y_test) > 0.5  # it learned something in 2 epochs
    # a re-saved checkpoint is the same again
    path2 = path.with_name("again.pt")
    save_checkpoint(path2, loaded, ckpt["spec"], ckpt["meta"])
    again, _ = load_checkpoint(path2)
    np.testing.assert_array_equal(predict(again, data.x_test), p_orig)


def test_cli_train_writes_loadable_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cli.pt"
    code, stdout, err = run_cli(monkeypatch, capsys, "train", *TINY, "--surrogate", "ste",
                                "--seed", SEED, "-o", out)
    assert code == 0, err
    assert str(out) in stdout and "test accuracy" in stdout
    model, ckpt = load_checkpoint(out)
    data = load_digits()
    assert ckpt["spec"]["surrogate"]["name"] == "ste" and ckpt["spec"]["hidden"] == [32]
    # the stored accuracy is what the reloaded model predicts
    assert accuracy(model, data.x_test, data.y_test) == pytest.approx(ckpt["meta"]["test_accuracy"])
    assert len(ckpt["meta"]["history"]) == 2
    code, stdout, err = run_cli(monkeypatch, capsys, "inspect", out)
    assert code == 0 and '"surrogate"' in stdout and '"ste"' in stdout


# --------------------------------------------------------------------------------------------
# Bad input: exit 2, message naming the problem, no checkpoint left


def test_subprocess_missing_checkpoint_exit_status_2(tmp_path):
    missing = tmp_path / "nope.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "bnn2hw.cli", "inspect", str(missing)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert str(missing) in r.stderr and "no such checkpoint" in r.stderr
    assert "Traceback" not in r.stderr


def test_inspect_missing_file(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "missing.pt"
    assert_fails(*run_cli(monkeypatch, capsys, "inspect", missing)[::2], str(missing))


def test_inspect_text_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "notes.pt"
    path.write_text("this is not a checkpoint\n")
    code, _, err = run_cli(monkeypatch, capsys, "inspect", path)
    assert_fails(code, err, str(path), "not a bnn2hw checkpoint")
    assert "Traceback" not in err


@pytest.mark.parametrize("payload", [{"weights": torch.ones(3)}, [torch.ones(2)],
                                     {"format": "something-else", "version": 1}])
def test_inspect_torch_file_that_is_not_a_bnn2hw_checkpoint(tmp_path, monkeypatch, capsys, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    code, _, err = run_cli(monkeypatch, capsys, "inspect", path)
    assert_fails(code, err, str(path), "not a bnn2hw checkpoint")


def test_checkpoint_with_wrong_version_or_missing_keys(tmp_path):
    path = tmp_path / "v9.pt"
    torch.save({"format": FORMAT, "version": 9, "spec": {}, "state_dict": {}, "meta": {}}, path)
    with pytest.raises(Bnn2hwError, match="version 9"):
        read_checkpoint(path)
    torch.save({"format": FORMAT, "version": 1, "spec": {}, "meta": {}}, path)
    with pytest.raises(Bnn2hwError, match="state_dict"):
        read_checkpoint(path)


def test_checkpoint_whose_weights_do_not_fit_the_spec(trained, tmp_path):
    _, spec, _, path = trained
    raw = torch.load(path, weights_only=True)
    raw["spec"] = {**spec, "hidden": [48]}
    bad = tmp_path / "mismatch.pt"
    torch.save(raw, bad)
    with pytest.raises(Bnn2hwError, match="do not fit"):
        load_checkpoint(bad)


def test_train_unknown_surrogate(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--surrogate", "wobble", "-o", out)
    assert_fails(code, err, "'wobble'", *SURROGATES)
    assert_no_checkpoint(tmp_path, out)


def test_train_unknown_activation(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--activation", "relu", "-o", out)
    assert_fails(code, err, "'relu'", "bireal")
    assert_no_checkpoint(tmp_path, out)


def test_train_unknown_periodic_function(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--model", "mbiper-mlp",
                           "--periodic", "sawtooth", "-o", out)
    assert_fails(code, err, "'sawtooth'", "sine", "cosine", "triangle", "arctan-sine")
    assert_no_checkpoint(tmp_path, out)


def test_train_periodic_on_a_model_without_one(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--periodic", "cosine", "-o", out)
    assert_fails(code, err, "--periodic", "mbiper-mlp", "'mlp'")
    assert_no_checkpoint(tmp_path, out)


def test_train_unknown_model(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--model", "transformer", "-o", out)
    assert_fails(code, err, "'transformer'", "mlp", "cnn")
    assert_no_checkpoint(tmp_path, out)


def test_train_missing_dataset(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    missing = tmp_path / "nothing.npz"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--dataset", missing, "-o", out)
    assert_fails(code, err, str(missing))
    assert_no_checkpoint(tmp_path, out)


def _bad_npz_cases(rng):
    x = rng.integers(0, 256, size=(20, 6), dtype=np.uint8)
    y = np.arange(20) % 2
    return {
        "rows": ({"x": x, "y": y[:15]}, ["(20, 6)", "(15,)"]),
        "y2d": ({"x": x, "y": y.reshape(10, 2)}, ["'y'", "(10, 2)"]),
        "nox": ({"y": y, "data": x}, ["'x'", "missing"]),
        "test_rows": ({"x": x, "y": y, "x_test": x[:4], "y_test": y[:3]}, ["(4, 6)", "(3,)"]),
        "range": ({"x": x.astype(np.float32) / 100.0, "y": y}, ["[0, 1]"]),
    }


@pytest.mark.parametrize("case", ["rows", "y2d", "nox", "test_rows", "range"])
def test_train_bad_npz(tmp_path, monkeypatch, capsys, case):
    arrays, needles = _bad_npz_cases(np.random.default_rng(SEED))[case]
    data = tmp_path / f"{case}.npz"
    np.savez(data, **arrays)
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--dataset", data, "-o", out)
    assert_fails(code, err, str(data), *needles)
    assert_no_checkpoint(tmp_path, out)


def test_train_cnn_on_flat_features_is_refused(tmp_path, monkeypatch, capsys):
    data = tmp_path / "flat.npz"
    rng = np.random.default_rng(SEED)
    np.savez(data, x=rng.integers(0, 256, size=(40, 6), dtype=np.uint8), y=np.arange(40) % 2)
    out = tmp_path / "m.pt"
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--model", "cnn", "--dataset", data,
                           "-o", out)
    assert code == 2, err
    assert "(6,)" in err
    assert_no_checkpoint(tmp_path, out)


# --------------------------------------------------------------------------------------------
# Data loaders


def test_npz_float_unit_interval_is_mapped_to_uint8(tmp_path):
    rng = np.random.default_rng(SEED)
    x = rng.random((40, 5, 5)).astype(np.float32)
    x[0, 0, 0], x[0, 0, 1] = 0.0, 1.0
    y = np.arange(40) % 4
    path = tmp_path / "f.npz"
    np.savez(path, x=x, y=y)
    d = load_dataset(str(path))
    assert d.x_train.dtype == np.uint8 and d.in_shape == (1, 5, 5)  # (N, H, W) -> (N, 1, H, W)
    assert len(d.y_train) == 30 and len(d.y_test) == 10 and d.num_classes == 4
    assert sorted(np.bincount(d.y_test)) == [2, 2, 3, 3]  # stratified 25% of 4 x 10
    # every loaded row is rint(255 x) of some input row with the same label
    expected = {(bytes(np.rint(r * 255).astype(np.uint8).ravel()), int(lab)) for r, lab in zip(x, y)}
    got = {(bytes(r.ravel()), int(lab)) for r, lab in
           zip(np.concatenate([d.x_train, d.x_test]), np.concatenate([d.y_train, d.y_test]))}
    assert got == expected
    assert 0 in d.x_train or 0 in d.x_test
    assert (d.x_train.max() == 255) or (d.x_test.max() == 255)


def test_npz_uint8_with_test_split_is_used_as_is(tmp_path):
    rng = np.random.default_rng(SEED + 1)
    x = rng.integers(0, 256, size=(12, 7), dtype=np.uint8)
    xt = rng.integers(0, 256, size=(5, 7), dtype=np.uint8)
    y, yt = np.arange(12) % 3, np.array([2, 1, 0, 0, 1])
    path = tmp_path / "u.npz"
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)
    d = load_dataset(str(path))
    np.testing.assert_array_equal(d.x_train, x)
    np.testing.assert_array_equal(d.x_test, xt)
    np.testing.assert_array_equal(d.y_test, yt)
    assert d.in_shape == (7,) and d.num_classes == 3 and d.y_train.dtype == np.int64


def test_npz_uint8_without_test_split_is_split_stratified(tmp_path):
    rng = np.random.default_rng(SEED + 2)
    x = rng.integers(0, 256, size=(40, 1, 4, 4), dtype=np.uint8)
    y = np.arange(40) % 2
    path = tmp_path / "s.npz"
    np.savez(path, x=x, y=y)
    d = load_dataset(str(path))
    assert d.in_shape == (1, 4, 4)
    assert len(d.x_train) == 30 and len(d.x_test) == 10
    assert np.bincount(d.y_test).tolist() == [5, 5]
    d2 = load_dataset(str(path))  # deterministic split
    np.testing.assert_array_equal(d.x_test, d2.x_test)


def test_train_on_npz_end_to_end(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(SEED + 3)
    y = np.arange(60) % 2
    x = np.where(y[:, None] == 1, 200, 30).astype(np.uint8) + rng.integers(0, 20, (60, 10)).astype(np.uint8)
    data = tmp_path / "easy.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "easy.pt"
    code, stdout, err = run_cli(monkeypatch, capsys, "train", *TINY, "--surrogate", "ste",
                                "--dataset", data, "-o", out)
    assert code == 0, err
    model, ckpt = load_checkpoint(out)
    assert ckpt["spec"]["in_shape"] == [10] and ckpt["spec"]["num_classes"] == 2


def _make_image_folder(root: Path) -> dict[str, int]:
    from PIL import Image

    values = {"bright": 255, "dark": 0, "mid": 128}
    for cls, v in values.items():
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (10, 12), (v, v, v)).save(root / cls / f"{i}.png")
    (root / "dark" / "README.txt").write_text("not an image")
    return values


def test_image_folder_loader(tmp_path):
    pytest.importorskip("PIL", reason="Pillow (PIL) is needed to write the test images")
    values = _make_image_folder(tmp_path / "imgs")
    d = load_dataset(str(tmp_path / "imgs"), image_size=8)
    assert d.num_classes == 3 and d.in_shape == (1, 8, 8)
    assert len(d.y_train) + len(d.y_test) == 12  # README.txt ignored
    classes = sorted(values)  # labels follow sorted folder names
    for xs, ys in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        for img, label in zip(xs, ys):
            assert img.dtype == np.uint8
            assert np.all(img == values[classes[label]]), (label, np.unique(img))
    rgb = load_dataset(str(tmp_path / "imgs"), image_size=4, channels=3)
    assert rgb.in_shape == (3, 4, 4)


def test_image_folder_without_classes_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Bnn2hwError, match="no class subfolders"):
        load_dataset(str(tmp_path / "empty"))
