# SPDX-License-Identifier: MIT
"""The column-sliced conv's memory cost in generated firmware (issue 11, branch vc-mem): a complete
flash class table leaves no class cache in the work memory, the work memory is a static buffer
only where BNN_CONV_VCOLS compiles the kernel in, and ``emit-c --optimize size`` keeps every conv
on the row kernel (report.json ``conv_choices`` records each conv's kernel, estimates and flash).

The kernel itself (complete tables bit-exact with an exactly sized work buffer, the C's class keys
equal to conv_vcols.class_keys) is tested in tests/test_vcols_conv.py."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from cli_helpers import run_cli

from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu import codegen
from bnn2hw.mcu import conv_vcols as vc


def _graph(seed: int = 4):
    """uint8 stem -> binary 3x3 convs on bits: 32 -> 64 pad 0 (the digits CNN's conv1 shape, on
    the column-sliced kernel by the count model), 64 -> 40 stride 2 pad 1 at -1 padding (a tail
    group) -> flatten -> binary dense logits."""
    from conv_graphs import binary_conv3x3, threshold

    from bnn2hw.ir.graph import Graph, Layer

    rng = np.random.default_rng(seed)
    layers = [binary_conv3x3(rng, "stem", 1, 32, 1, 0, "u8"), threshold(rng, "t0", 32, 9 * 255),
              binary_conv3x3(rng, "c1", 32, 64, 1, 0, "bits", 0), threshold(rng, "t1", 64, 288),
              binary_conv3x3(rng, "c2", 64, 40, 2, 1, "bits", -1), threshold(rng, "t2", 40, 576),
              Layer("flatten", "flat", "flatten", {}),
              Layer("dense", "fc", "fc", {"in": "bits", "weight_kind": "binary"},
                    {"weight": rng.choice([-1, 1], (5, 2 * 2 * 40)).astype(np.int8)}),
              Layer("affine", "logits", "fc", {}, {"scale": np.ones(5), "bias": np.zeros(5)})]
    return Graph((8, 8, 1), layers, 1.0, {"model_hash": f"vcmem{seed}"})


def test_work_words_complete_table():
    """The work memory without the class cache and the per-channel terms is smaller by exactly
    (CLASSES + 1) entries + 2 cout words; the digits CNN's conv1: 673 words instead of 2,178."""
    assert vc.work_words(6, 32, 64, 3, 3, 1, 1, table_complete=True) == 673
    assert vc.work_words(6, 32, 64, 3, 3, 1, 1) == 673 + 17 * (1 + 2 * 4 * vc.nt(3, 3, 32, 1, 1)) + 128 == 2178
    for cin, cout, s in ((1, 1, 1), (31, 33, 2), (33, 65, 1), (255, 257, 2)):
        npos = vc.layer_npos(cin, cout, 3, s)
        full = vc.work_words(9, cin, cout, 3, 3, s, npos)
        assert full - vc.work_words(9, cin, cout, 3, 3, s, npos, True) == \
            (vc.CLASSES + 1) * (1 + vc.groups(cout, npos) * 4 * vc.nt(3, 3, cin, s, npos)) + 2 * cout


def test_tail_on_rows_table_has_no_tail_keys():
    """A tail on the row kernel meets no tail class: its table holds the full groups' keys only
    (bit 31 clear), and a layer with no full group and its tail on rows needs no table at all."""
    for h, wd, p in ((9, 9, 1), (1, 7, 1), (5, 5, 0)):
        keys = vc.class_keys(h, wd, 33, 3, 3, 2, p, 1, tail_vc=False)
        assert keys and all(k >> 31 == 0 for k in keys)
        assert set(keys) < set(vc.class_keys(h, wd, 33, 3, 3, 2, p, 1))
    assert vc.class_keys(9, 9, 5, 3, 3, 1, 1, 1, tail_vc=False) == []
    w = np.random.default_rng(0).choice([-1, 1], (5, 3, 3, 8))
    assert vc.class_table(w, np.zeros(5, np.int32), 9, 9, 1, 1, 1, False, tail_vc=False).shape == \
        (0, 1 + 4 * vc.nt(3, 3, 8, 1, 1))


def test_optimize_choice_and_report():
    """--optimize speed: conv c1 (the digits CNN's 32 -> 64 shape) on the column-sliced kernel with a
    complete table (no per-tap counts, table_complete 1) and its work memory a static under
    BNN_CONV_VCOLS, outside the arena; size: no column-sliced data or call at all, the arena the
    same.  conv_choices names each format's estimate, flash and work memory."""
    g = _graph()
    fast, small = codegen.emit(g, optimize="speed"), codegen.emit(g, optimize="size")
    assert "bnn_conv_vc_bits(&c1_vc" in fast.source and "static uint32_t bnn_cvwork[673];" in fast.source
    assert "c1_ct" not in fast.source and ", NULL, 1u, c1_cls, NULL, 1u};" in fast.source
    cv = fast.source.index("static uint32_t bnn_cvwork")
    assert fast.source.rfind("#if BNN_CONV_VCOLS", 0, cv) > fast.source.rfind("#endif", 0, cv)
    assert "bnn_conv_vc" not in small.source and "BNN_CONV_VCOLS" not in small.source
    by = {c["layer"]: c for c in fast.conv_choices}
    assert fast.scratch_bytes - small.scratch_bytes == max(
        c["column_sliced_work_bytes"] for c in fast.conv_choices if c["kernel"] == "column-sliced")
    assert set(by) == {"c1", "c2"} and by["c1"]["kernel"] == "column-sliced"
    assert all(c["kernel"] == "rows" and c["optimize"] == "size" for c in small.conv_choices)
    c1 = by["c1"]
    assert c1["estimated_instructions_m4"]["column_sliced"] < 0.8 * c1["estimated_instructions_m4"]["rows"]
    # columns + zero word (2 x 9 x 32 + 1 words) + the one-class table (1 + 2 x 4 x nt words)
    assert {f: c1["flash_bytes"][f] for f in ("column_sliced", "rows")} == {
        "column_sliced": 4 * (577 + 1 + 2 * 4 * vc.nt(3, 3, 32, 1, 1)), "rows": 2304}
    assert c1["column_sliced_work_bytes"] == 4 * 673
    from bnn2hw.mcu.cli import conv_choice_line

    line = conv_choice_line(c1)
    assert "column-sliced" in line and "2,304 B" in line and "2,692 B" in line


def test_optimize_bad_value(monkeypatch, capsys, tmp_path):
    """A bad --optimize is one `error:` line naming the valid values, exit 2, nothing written; the
    library call raises Bnn2hwError."""
    out = tmp_path / "fw"
    code, _, err = run_cli(monkeypatch, capsys, "emit-c", tmp_path / "none.pt", "-o", out, "--optimize", "fast")
    assert code == 2 and "error:" in err and "--optimize 'fast'" in err and "speed, size" in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and not out.exists()
    with pytest.raises(Bnn2hwError, match="--optimize"):
        codegen.emit(_graph(), optimize="Size")


@pytest.mark.parametrize("optimize", ["speed", "size"])
def test_optimize_firmware_exact_m4(tmp_path, optimize):
    """Both choices' firmware equals the IR executor bit for bit in QEMU on the Cortex-M4 (multi
    popcount: BNN_CONV_VCOLS on); the size build's flash is below the speed build's."""
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi qemu-system-arm")
    from bnn2hw.ir import execute
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, write_firmware_dir

    g = _graph()
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (4, 1, 8, 8)).astype(np.uint8)
    x[0], x[1] = 255, 0
    ref = execute.run(g, x).int_logits
    sizes = {}
    for opt in ("speed", "size") if optimize == "size" else ("speed",):
        d = tmp_path / opt
        write_firmware_dir(g, d, "cortex-m4", optimize=opt)
        elf = toolchain.build(d, "cortex-m4", popcount="multi")
        assert np.array_equal(qemu.run(elf, "cortex-m4", to_c_inputs(g, x), g.num_classes, timeout=300), ref)
        sizes[opt] = toolchain.size(elf).flash
    if optimize == "size":
        assert sizes["size"] < sizes["speed"]
