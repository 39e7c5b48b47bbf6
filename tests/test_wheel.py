# SPDX-License-Identifier: MIT
"""A built wheel (and an editable install) carries the C runtime (issue 8, defect 2): build the
wheel from a copy of the source, delete the copy, install the wheel into a fresh venv and run
``bnn2hw emit-c --target host --verify`` from another directory with PYTHONPATH unset. The
venv reuses the system's torch etc. (--system-site-packages); the test checks that the bnn2hw
it runs is the installed one, not the checkout."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd, cwd, timeout=300):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True,
                       timeout=timeout, check=False)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}"
    return r


def _need_build_tools() -> None:
    for dist in ("setuptools", "pip"):  # metadata only: importing them here would patch distutils
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"python package {dist} not installed (pip install {dist})")
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc/make not installed (apt-get install gcc make)")


def _source_copy(dst: Path) -> Path:
    """What an sdist holds: pyproject, README and the package (the top-level firmware symlink
    is left out on purpose: the package must be self-contained)."""
    dst.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    shutil.copytree(ROOT / "bnn2hw", dst / "bnn2hw", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def _emit_and_verify(venv: Path, ckpt: Path, elsewhere: Path, expect_pkg: Path) -> None:
    py = venv / "bin" / "python"
    probe = ("import bnn2hw, bnn2hw.mcu.toolchain as t; print(bnn2hw.__file__); "
             "print(t.FIRMWARE_DIR); print(len(t.runtime_files()))")
    r = _run([py, "-c", probe], elsewhere)
    pkg_file, fw_dir, nfiles = r.stdout.split()
    assert Path(pkg_file).resolve().is_relative_to(expect_pkg.resolve()), \
        f"imported {pkg_file}, expected the package under {expect_pkg}"
    assert Path(fw_dir).resolve().is_relative_to(expect_pkg.resolve()) and int(nfiles) > 20, r.stdout
    out = elsewhere / "fw"
    r = _run([venv / "bin" / "bnn2hw", "emit-c", ckpt, "--target", "host", "--verify", "--verify-samples", "40",
              "-o", out], elsewhere)
    assert "host: 40 inputs, integer logits differing from the IR: 0" in r.stdout, r.stdout
    assert (out / "model.c").is_file() and (out / "Makefile").is_file() and (out / "bnn_bits.h").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["verification"]["host"]["int_logits_differing"] == 0


def test_wheel_install_runs_emit_c(mlp_ckpt, tmp_path):
    _need_build_tools()
    src = _source_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels,
          src], tmp_path)
    (whl,) = wheels.glob("bnn2hw-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for need in ("bnn2hw/py.typed", "bnn2hw/firmware/harness/Makefile", "bnn2hw/firmware/harness/main.c",
                 "bnn2hw/firmware/harness/mem_cortex-m4.ld", "bnn2hw/firmware/include/bnn_bits.h",
                 "bnn2hw/firmware/src/bnn_dense.c"):
        assert need in names, f"{need} missing from {whl.name}"
    shutil.rmtree(src)  # nothing may point back into the source tree
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], tmp_path)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", whl],
         tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    site = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     elsewhere).stdout.strip())
    _emit_and_verify(venv, Path(mlp_ckpt[0]), elsewhere, site / "bnn2hw")


def test_editable_install_runs_emit_c(mlp_ckpt, tmp_path):
    _need_build_tools()
    src = _source_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], tmp_path)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation",
          "-e", src], tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _emit_and_verify(venv, Path(mlp_ckpt[0]), elsewhere, src / "bnn2hw")
