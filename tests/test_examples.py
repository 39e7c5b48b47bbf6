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


@pytest.mark.parametrize("script", ["digits_end_to_end.py", "bring_your_own_data.py"])
def test_example_runs(script, tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to compile the generated C (apt-get install gcc)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr
