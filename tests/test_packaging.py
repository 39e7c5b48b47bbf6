# SPDX-License-Identifier: MIT
"""The emitted firmware in users' build systems (issue 13): the CMake project builds for the host
(its self-test passes) and for Cortex-M4; the Zephyr module and Arduino library list exactly the
files that exist; ``--name`` renames every public symbol so that two models and one runtime link
into one image, which runs both in QEMU with the IR's integer logits."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import bnn2hw
from bnn2hw.errors import Bnn2hwError
from bnn2hw.mcu import qemu
from bnn2hw.mcu.cli import to_c_inputs
from bnn2hw.mcu.packaging import check_name
from bnn2hw.mcu.targets import get_target


def _need(*tools):
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def named_fw(tmp_path_factory, mlp_ckpt):
    g = bnn2hw.load(mlp_ckpt[0])
    out = tmp_path_factory.mktemp("named") / "fw"
    g.emit_c(target="cortex-m4", out_dir=out, name="digits_mlp")
    return g, out


def test_named_model_has_only_prefixed_public_symbols(named_fw):
    _, out = named_fw
    header = (out / "digits_mlp.h").read_text()
    for sym in ("digits_mlp_infer", "digits_mlp_predict", "DIGITS_MLP_INPUT_LEN", "DIGITS_MLP_NUM_LOGITS"):
        assert sym in header, sym
    assert not re.search(r"\b(bnn_infer|bnn_predict|BNN_INPUT_LEN|BNN_NUM_LOGITS)\b", header)
    source = (out / "digits_mlp.c").read_text()
    # every file-scope definition that is not static is one of the two entry points
    public = re.findall(r"^(?!static|#|/\*| \*|\s|})([A-Za-z_][\w\s\*]*?\b(\w+)\s*\()", source, re.M)
    assert sorted({name for _, name in public}) == ["digits_mlp_infer", "digits_mlp_predict"]
    assert not (out / "model.c").exists()


def test_cmake_host_selftest_and_cortex_m4(named_fw, tmp_path):
    _need("cmake", "gcc")
    _, out = named_fw
    b = tmp_path / "host"
    subprocess.run(["cmake", "-S", str(out), "-B", str(b)], check=True, capture_output=True)
    r = subprocess.run(["cmake", "--build", str(b)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in r.stdout.lower() + r.stderr.lower()
    r = subprocess.run([str(b / "digits_mlp_selftest")], capture_output=True, text=True)
    assert r.returncode == 0 and "passed (0 mismatches)" in r.stdout, r.stdout
    _need("arm-none-eabi-gcc")
    m = tmp_path / "m4"
    r = subprocess.run(["cmake", "-S", str(out), "-B", str(m), f"-DCMAKE_TOOLCHAIN_FILE={out}/cmake/arm-none-eabi.cmake"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(m)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    lib = m / "libdigits_mlp.a"
    info = subprocess.run(["arm-none-eabi-readelf", "-A", str(lib)], capture_output=True, text=True).stdout
    assert "Cortex-M4" in info or "v7E-M" in info, info[:500]


def test_selftest_catches_a_wrong_model(named_fw, tmp_path):
    """The self-test is not vacuous: flipping one weight bit of the last layer (which changes an
    integer logit directly) makes it fail."""
    _need("gcc")
    _, out = named_fw
    fw = tmp_path / "fw"
    shutil.copytree(out, fw)
    src = (fw / "digits_mlp.c").read_text()
    m = re.search(r"static const bnn_word_t fc2_w\[\d+\] = \{\n\s+0x([0-9a-f]{8})u", src)
    flipped = f"{int(m.group(1), 16) ^ 1:08x}"
    (fw / "digits_mlp.c").write_text(src.replace(f"0x{m.group(1)}u", f"0x{flipped}u", 1))
    exe = tmp_path / "st"
    srcs = [str(fw / "digits_mlp.c"), *map(str, sorted(fw.glob("bnn_*.c"))), str(fw / "selftest" / "selftest.c")]
    subprocess.run(["gcc", "-std=c99", "-O1", f"-I{fw}", *srcs, "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 1 and "FAILED" in r.stdout, r.stdout


def test_zephyr_and_arduino_files_match_the_folder(named_fw):
    _, out = named_fw
    zc = (out / "zephyr" / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"\$\{BNN_DIR\}/(\S+\.c)", zc))
    assert listed == {"digits_mlp.c", *(p.name for p in out.glob("bnn_*.c"))}
    assert "CONFIG_BNN_MODEL_DIGITS_MLP" in zc and "config BNN_MODEL_DIGITS_MLP" in (out / "zephyr" / "Kconfig").read_text()
    assert "kconfig: zephyr/Kconfig" in (out / "zephyr" / "module.yml").read_text()
    lib = out / "arduino" / "bnn2hw_digits_mlp"
    props = dict(l.split("=", 1) for l in (lib / "library.properties").read_text().splitlines())
    assert props["includes"] == "digits_mlp.h" and props["architectures"] == "*"
    src = {p.name for p in (lib / "src").iterdir()}
    assert "digits_mlp.c" in src and "main.c" not in src and "bnn_harness.h" not in src
    assert 'extern "C"' in (lib / "src" / "digits_mlp.h").read_text()  # usable from a C++ sketch


@pytest.mark.qemu
def test_two_models_in_one_image_run_in_qemu(mlp_ckpt, cnn_ckpt, digits, tmp_path):
    _need("arm-none-eabi-gcc", "qemu-system-arm")
    ga, gb = bnn2hw.load(mlp_ckpt[0]), bnn2hw.load(cnn_ckpt[0])
    fa = ga.emit_c(target="cortex-m4", out_dir=tmp_path / "a", name="net_a")
    fb = gb.emit_c(target="cortex-m4", out_dir=tmp_path / "b", name="net_b")
    main = tmp_path / "two.c"
    main.write_text("""
#include <stdint.h>
#include "bnn_harness.h"
#include "net_a.h"
#include "net_b.h"
static uint8_t in[NET_A_INPUT_LEN + NET_B_INPUT_LEN];
static int32_t out[NET_A_NUM_LOGITS + NET_B_NUM_LOGITS];
int main(void)
{
    int f = bnn_sh_open("inputs.bin", BNN_OPEN_RB);
    if (f < 0 || bnn_sh_read(f, in, sizeof in) != sizeof in) { bnn_sh_exit(2); }
    (void)bnn_sh_close(f);
    if (net_a_infer(in, NET_A_INPUT_LEN, out, NET_A_NUM_LOGITS) != BNN_OK) { bnn_sh_exit(4); }
    if (net_b_infer(in + NET_A_INPUT_LEN, NET_B_INPUT_LEN, out + NET_A_NUM_LOGITS, NET_B_NUM_LOGITS) != BNN_OK) {
        bnn_sh_exit(4);
    }
    f = bnn_sh_open("logits.bin", BNN_OPEN_WB);
    if (f < 0 || bnn_sh_write(f, out, sizeof out) != sizeof out) { bnn_sh_exit(2); }
    (void)bnn_sh_close(f);
    bnn_sh_exit(0);
}
""")
    a, b = fa.out_dir, fb.out_dir
    elf = tmp_path / "two.elf"
    cpu = list(get_target("cortex-m4").cpu_flags)
    srcs = [str(main), str(a / "net_a.c"), str(b / "net_b.c"), *map(str, sorted(a.glob("bnn_*.c"))),
            str(a / "startup.c"), str(a / "semihost.c")]
    r = subprocess.run(["arm-none-eabi-gcc", *cpu, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{a}", f"-I{b}",
                        *srcs, "-nostartfiles", "-specs=nano.specs", "-specs=nosys.specs", f"-L{a}",
                        "-T", str(a / "mem_cortex-m4.ld"), "-Wl,--gc-sections", "-o", str(elf)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for i in range(3):
        xa, xb = digits.x_test[i:i + 1], digits.x_test[10 + i:11 + i]
        row = np.concatenate([to_c_inputs(ga, xa), to_c_inputs(gb, xb)], axis=1)
        got = qemu.run(elf, "cortex-m4", row, ga.num_classes + gb.num_classes)[0]
        want = np.concatenate([ga.predict(xa)[0], gb.predict(xb)[0]])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", ["bnn", "bnn_x", "9lives", "Model", "a-b", "x" * 40])
def test_bad_names_are_refused(bad):
    with pytest.raises(Bnn2hwError, match="--name"):
        check_name(bad)
