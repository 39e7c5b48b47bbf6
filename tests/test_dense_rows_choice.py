# SPDX-License-Identifier: MIT
"""The code generator's dense row-kernel choice (bnn2hw.mcu.codegen.shared_dense_rows, issue 11):
BNN_DENSE_SHARED_ROWS (one Thumb-2 row kernel for the hidden bits layers and the popcount logits)
exactly when a logits layer's row class equals a hidden layer's and no conv layer links the
plain variants anyway.  The kernels themselves: tests/test_firmware_kernels.py (modes 0-3)."""

from __future__ import annotations

import pytest

from bnn2hw.mcu.codegen import (SHARED_ROWS_DEFINE, SHARED_ROWS_IF_ROWS_DEFINE, row_class, shared_dense_rows,
                                shared_rows_define)


def _model(sizes: list[int], conv: bool = False) -> tuple[str, str]:
    data = "".join(f"static const bnn_dense_params_t fc{i}_p = {{{a}u, {b}u}};\n"
                   for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
    body = "".join(f"    bnn_dense_{'acc' if i == len(sizes) - 2 else 'bits'}(&fc{i}_p, x, fc{i}_w, t{i}, y);\n"
                   for i in range(len(sizes) - 1))
    if conv:
        body = "    bnn_conv_bits(&c0_p, in, c0_w, c0_t, x);\n" + body
    return data, body


@pytest.mark.parametrize("n, cls", [(1, (1, 0)), (32, (1, 0)), (33, (2, 0)), (64, (2, 0)), (65, (0, 1)),
                                    (96, (0, 1)), (128, (1, 1)), (160, (2, 1)), (192, (0, 2)), (255, (2, 2)),
                                    (256, (2, 2)), (257, (0, 3)), (288, (0, 3)), (1000, (2, 2)), (1024, (2, 2))])
def test_row_class_matches_bnn_dbt2_pick(n, cls):
    """(nw % 3, group class) as bnn__dbt2_pick in bnn_bits.h computes it (nw = 32-bit words)."""
    assert row_class(n) == cls


@pytest.mark.parametrize("sizes, conv, shared", [
    ([256, 256, 256, 10], False, True),   # logits rows 8 words like the hidden rows
    ([128, 128, 128, 10], False, True),
    ([256, 256, 256, 10], True, False),   # a conv links the plain variants itself
    ([256, 128, 10], False, False),       # logits rows 4 words (1, 1), hidden 8 words (2, 2)
    ([256, 10], False, False),            # no hidden binary dense layer
    ([33, 65, 257, 10], False, False),    # logits rows 257 inputs (0, 3); hidden rows 33 (2, 0), 65 (0, 1)
    ([257, 100, 257, 10], False, True),   # logits rows 257 inputs (0, 3) = the first hidden layer's
])
def test_shared_dense_rows(sizes, conv, shared):
    data, body = _model(sizes, conv)
    assert shared_dense_rows(data, body) is shared


def test_generated_model_c_carries_the_define(tmp_path):
    """emit-c of a 256-256-256-10 binary MLP: model.c defines BNN_DENSE_SHARED_ROWS before any
    include (a user can still pass -DBNN_DENSE_SHARED_ROWS=0)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mcu_models as bm
    from bnn2hw.mcu.cli import write_firmware_dir
    write_firmware_dir(bm.random_mlp_graph((256, 256, 256, 10)), tmp_path / "fw", "cortex-m4")
    src = (tmp_path / "fw" / "model.c").read_text()
    # the hidden layers are column-sliced where BNN_DENSE_VCOLS: shared rows only on the other cores
    assert SHARED_ROWS_DEFINE not in src and SHARED_ROWS_IF_ROWS_DEFINE in src
    assert src.index("#define BNN_DENSE_SHARED_ROWS (!BNN_DENSE_VCOLS)") < src.index('#include "model.h"')


def test_shared_rows_define():
    """The define follows the hidden layers that share the logits' row class: one on the row
    kernels everywhere (a plain bnn_dense_bits call) -> 1; only column-sliced ones (their
    bnn_dense_bits call in the #else of #if BNN_DENSE_VCOLS) -> (!BNN_DENSE_VCOLS), since with
    bnn_dense_vbits the logits' kernel is the only row kernel; no shared class -> nothing."""
    data, body = _model([256, 256, 256, 10])
    assert shared_rows_define(data, body) == SHARED_ROWS_DEFINE
    vc = ["#if BNN_DENSE_VCOLS", "    bnn_dense_vbits(&fc{i}_vp, x, fc{i}_wc, t{i}_tv, bnn_vidx, y);", "#else",
          "    bnn_dense_bits(&fc{i}_p, x, fc{i}_w, t{i}, y);", "#endif"]
    both = "\n".join(v.format(i=i) for i in (0, 1) for v in vc) + "\n    bnn_dense_acc(&fc2_p, x, fc2_w, l);\n"
    assert shared_rows_define(data, both) == SHARED_ROWS_IF_ROWS_DEFINE
    one = "\n".join(v.format(i=0) for v in vc) + "\n    bnn_dense_bits(&fc1_p, x, fc1_w, t1, y);\n" \
        "    bnn_dense_acc(&fc2_p, x, fc2_w, l);\n"
    assert shared_rows_define(data, one) == SHARED_ROWS_DEFINE
    assert shared_rows_define(*_model([256, 128, 10])) == ""


def test_shared_rows_if_rows_exact_in_qemu(tmp_path):
    """The 256-256-256-10 model with BNN_DENSE_SHARED_ROWS (!BNN_DENSE_VCOLS) on the Cortex-M4: default
    (column-sliced hidden layers, logits on the plain popcount rows) and -DBNN_DENSE_VCOLS=0 (every layer
    on the shared mode-3/mode-2 rows): every integer logit equals the IR executor's, on all +1, all -1,
    half +1 (ties at the 0 threshold) and random inputs."""
    import shutil
    import sys
    from pathlib import Path

    import numpy as np

    from bnn2hw.ir import execute
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.fail("arm-none-eabi-gcc / qemu-system-arm not installed (.ci installs them)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mcu_models as bm
    graph = bm.random_mlp_graph((256, 256, 256, 10))
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "cortex-m4")
    assert SHARED_ROWS_IF_ROWS_DEFINE in (out / "model.c").read_text()
    rng = np.random.default_rng(3)
    half = np.where(rng.permutation(256) < 128, 1, -1)
    x = np.stack([np.ones(256), -np.ones(256), half, *rng.choice([-1, 1], size=(3, 256))]).astype(np.int64)
    ref = execute.run(graph, x).int_logits
    for flags in ("", "-DBNN_DENSE_VCOLS=0"):
        elf = toolchain.build(out, "cortex-m4", extra_cflags=flags)
        assert np.array_equal(qemu.run(elf, "cortex-m4", to_c_inputs(graph, x), graph.num_classes), ref), flags
