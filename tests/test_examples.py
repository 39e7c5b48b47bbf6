# SPDX-License-Identifier: MIT
"""Every script in examples/ runs in its reduced (--quick) mode and checks its own results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", ["digits_end_to_end.py", "bring_your_own_data.py",
                                    # Brevitas training + two dynamo exports + 3 CLI runs: ~80 s
                                    pytest.param("brevitas_qonnx.py", marks=pytest.mark.slow)])
def test_example_runs(script, tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to compile the generated C (apt-get install gcc)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr


def test_firmware_project_links_the_emitted_library(mlp_ckpt, digits, tmp_path):
    """examples/firmware_project: a CMake application that add_subdirectory()s the emitted folder."""
    import numpy as np

    import bnn2hw
    from bnn2hw.mcu.cli import to_c_inputs

    for tool in ("cmake", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed (scripts/setup.sh installs it)")
    g = bnn2hw.load(mlp_ckpt[0])
    g.emit_c(target="host", out_dir=tmp_path / "fw")
    b = tmp_path / "build"
    r = subprocess.run(["cmake", "-S", str(EXAMPLES / "firmware_project"), "-B", str(b), f"-DBNN_FW_DIR={tmp_path / 'fw'}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(b)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for i in (0, 7, 123):
        x = digits.x_test[i:i + 1]
        (tmp_path / "in.bin").write_bytes(to_c_inputs(g, x).tobytes())
        out = subprocess.run([str(b / "classify"), str(tmp_path / "in.bin")], capture_output=True, text=True, check=True)
        logits = [int(v) for v in out.stdout.split("\n")[0].split()]
        np.testing.assert_array_equal(logits, g.predict(x)[0])
