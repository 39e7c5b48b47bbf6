# SPDX-License-Identifier: MIT
"""Firmware kernels (firmware/src/bnn_*.c): every optimized variant equals its _ref loop
nest and a numpy reference, bit-exactly, on awkward widths; packed outputs have zero
padding bits.  The C driver (firmware/tests/kernel_driver.c) is built with host gcc under
-Wall -Wextra -Werror -fsanitize=address,undefined for every popcount strategy, and for
Cortex-M3/M4 (Thumb-2 assembly paths) and M0 under QEMU."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnn2hw.mcu import periodic_tables as pt
from bnn2hw.mcu.targets import get_target

FW = Path(__file__).resolve().parents[1] / "firmware"
WIDTHS = [1, 31, 32, 33, 63, 64, 65, 256]
OUTS = [1, 3, 33, 37]
STRATEGIES = {"builtin": 1, "swar": 2, "table": 3, "multi": 4}
ARM_TARGETS = ["cortex-m3", "cortex-m4", "cortex-m0"]


# ---------------------------------------------------------------- build and run


def _build_host(tmp: Path, strategy: str) -> list[str]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: apt-get install gcc")
    exe = tmp / f"kd_{strategy}"
    cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-g", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", "-DBNN_HOST", f"-DBNN_POPCOUNT={STRATEGIES[strategy]}",
           f"-I{FW / 'include'}", f"-I{FW / 'harness'}", str(FW / "tests" / "kernel_driver.c"),
           *map(str, sorted((FW / "src").glob("bnn_*.c"))), "-o", str(exe)]
    subprocess.run(cmd, check=True)
    return [str(exe)]


def _build_arm(tmp: Path, target: str) -> list[str]:
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found")
    t = get_target(target)
    elf = tmp / f"kd_{target}.elf"
    buf = "1024" if target == "cortex-m0" else str(1 << 17)
    cmd = ["arm-none-eabi-gcc", *t.cpu_flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
           "-fno-tree-loop-distribute-patterns", f"-DBUF_WORDS={buf}", f"-I{FW / 'include'}",
           f"-I{FW / 'harness'}", str(FW / "tests" / "kernel_driver.c"),
           *map(str, sorted((FW / "src").glob("bnn_*.c"))), str(FW / "harness" / "startup.c"),
           str(FW / "harness" / "semihost.c"), "-nostartfiles", "-specs=nano.specs", "-specs=nosys.specs",
           f"-L{FW / 'harness'}", "-T", str(FW / "harness" / f"mem_{target}.ld"), "-o", str(elf)]
    subprocess.run(cmd, check=True)
    return ["qemu-system-arm", "-M", t.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]


@pytest.fixture(scope="module", params=[*[f"host-{s}" for s in STRATEGIES], *ARM_TARGETS])
def driver(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param.startswith("host-"):
        cmd = _build_host(tmp, request.param[5:])
    else:
        cmd = _build_arm(tmp, request.param)

    def run(words: list[np.ndarray], tmpdir: Path) -> np.ndarray:
        data = np.concatenate([np.ascontiguousarray(w).view(np.uint32).ravel() for w in words])
        if request.param == "cortex-m0" and data.size > 1024:
            pytest.skip("case larger than the Cortex-M0 driver buffer (16 KiB RAM)")
        data.astype("<u4").tofile(tmpdir / "case.bin")
        proc = subprocess.run(cmd, cwd=tmpdir, timeout=120)
        if proc.returncode == 3 and request.param == "cortex-m0":
            pytest.skip("case outputs exceed the Cortex-M0 driver buffer (16 KiB RAM)")
        assert proc.returncode == 0, f"kernel driver {request.param} exited with {proc.returncode}"
        return np.fromfile(tmpdir / "out.bin", dtype="<u4")

    run.name = request.param
    return run


# ---------------------------------------------------------------- numpy references


def pack_bits(pm1: np.ndarray) -> np.ndarray:
    """[..., n] in {-1,+1} -> uint32 [..., words], bit 1 = +1, padding 0."""
    n = pm1.shape[-1]
    words = (n + 31) // 32
    bits = np.zeros(pm1.shape[:-1] + (words * 32,), dtype=np.uint8)
    bits[..., :n] = pm1 > 0
    b = np.packbits(bits.reshape(pm1.shape[:-1] + (words, 4, 8)), axis=-1, bitorder="little")
    return b.reshape(pm1.shape[:-1] + (words * 4,)).view("<u4").astype(np.uint32)


def pad_words(a: np.ndarray) -> np.ndarray:
    b = np.ascontiguousarray(a).view(np.uint8).ravel()
    return np.concatenate([b, np.zeros((-b.size) % 4, np.uint8)]).view(np.uint32)


def check_padding(packed: np.ndarray, n: int, what: str) -> None:
    if n % 32:
        assert np.all(packed.reshape(-1, (n + 31) // 32)[:, -1] >> np.uint32(n % 32) == 0), f"{what}: padding bits set"


def split(out: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    assert out.size == sum(sizes)
    return np.split(out, np.cumsum(sizes)[:-1])


def rand_pm1(rng, shape):
    return rng.choice(np.array([-1, 1], dtype=np.int64), size=shape)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("n_in", WIDTHS)
@pytest.mark.parametrize("n_out", OUTS)
def test_dense(driver, tmp_path, n_in, n_out):
    seed = 1000 + n_in * 100 + n_out
    rng = np.random.default_rng(seed)
    x, w = rand_pm1(rng, n_in), rand_pm1(rng, (n_out, n_in))
    acc = w @ x
    p = (n_in - acc) // 2
    mm = p + rng.integers(-1, 2, size=n_out)  # ties (p == M) included
    mm[0] = -1
    if n_out > 2:
        mm[1] = n_in
    mm = np.clip(mm, -1, n_in).astype(np.int32)
    out = driver([np.array([1, n_in, n_out], np.uint32), pack_bits(x), pack_bits(w), mm], tmp_path)
    ow = (n_out + 31) // 32
    bref, bopt, aref, aopt = split(out, [ow, ow, n_out, n_out])
    expect_bits = pack_bits(np.where(p <= mm, 1, -1))
    assert np.array_equal(bref, expect_bits), f"dense bits ref vs numpy (seed {seed})"
    assert np.array_equal(bopt, bref), f"dense bits opt vs ref (seed {seed}, {driver.name})"
    assert np.array_equal(aref.view(np.int32), acc), f"dense acc ref (seed {seed})"
    assert np.array_equal(aopt.view(np.int32), acc), f"dense acc opt (seed {seed}, {driver.name})"
    check_padding(bopt, n_out, f"dense (seed {seed})")


def test_dense_many_chunks(driver, tmp_path):
    """Rows of 8, 16 and 9 words exercise the assembly chunk loops and the C remainder."""
    for n_in in (512, 257, 1000):
        seed = 7 + n_in
        rng = np.random.default_rng(seed)
        n_out = 45
        x, w = rand_pm1(rng, n_in), rand_pm1(rng, (n_out, n_in))
        x[:] = 1 if n_in == 257 else x  # extreme: all agree / disagree rows
        w[0] = -x
        acc = w @ x
        mm = ((n_in - acc) // 2).astype(np.int32)
        out = driver([np.array([1, n_in, n_out], np.uint32), pack_bits(x), pack_bits(w), mm], tmp_path)
        bref, bopt, aref, aopt = split(out, [2, 2, n_out, n_out])
        assert np.array_equal(bopt, pack_bits(np.ones(n_out))), f"seed {seed}"
        assert np.array_equal(aopt.view(np.int32), acc), f"seed {seed}, {driver.name}"


@pytest.mark.parametrize("n_in", WIDTHS)
@pytest.mark.parametrize("kind", [2, 3])
def test_first_u8(driver, tmp_path, n_in, kind):
    n_out = 33
    seed = 2000 + kind * 1000 + n_in
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=n_in).astype(np.uint8)
    x[0] = 255
    if kind == 2:
        w = rand_pm1(rng, (n_out, n_in))
        wdata = pack_bits(w)
    else:
        w = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
        wdata = pad_words(w)
    acc = w.astype(np.int64) @ x.astype(np.int64)
    thr = (acc + rng.integers(-1, 2, size=n_out)).astype(np.int32)
    out = driver([np.array([kind, n_in, n_out], np.uint32), pad_words(x), wdata, thr], tmp_path)
    aref, aopt, bref, bopt = split(out, [n_out, n_out, 2, 2])
    assert np.array_equal(aref.view(np.int32), acc), f"first kind {kind} ref (seed {seed})"
    assert np.array_equal(aopt.view(np.int32), acc), f"first kind {kind} opt (seed {seed})"
    expect = pack_bits(np.where(acc >= thr, 1, -1))
    assert np.array_equal(bref, expect) and np.array_equal(bopt, expect), f"first bits (seed {seed})"
    check_padding(bopt, n_out, f"first (seed {seed})")


@pytest.mark.parametrize("n_in,n_out,fill", [(64, 256, None), (64, 70, 255), (40, 31, 0), (96, 40, None),
                                             (8, 3, 255)])
def test_first_u8_bin_tables(driver, tmp_path, n_in, n_out, fill):
    """The byte-table path of bnn_first_u8_bin_*: the digits shape (64 x 256), the two-word fast
    path with a partial last word, inputs past the 64 tabulated ones, extreme inputs."""
    seed = 4000 + n_in * 3 + n_out
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=n_in).astype(np.uint8) if fill is None else np.full(n_in, fill, np.uint8)
    w = rand_pm1(rng, (n_out, n_in))
    w[0] = 1
    acc = w.astype(np.int64) @ x.astype(np.int64)
    thr = (acc + rng.integers(-1, 2, size=n_out)).astype(np.int32)
    out = driver([np.array([2, n_in, n_out], np.uint32), pad_words(x), pack_bits(w), thr], tmp_path)
    ow = (n_out + 31) // 32
    aref, aopt, bref, bopt = split(out, [n_out, n_out, ow, ow])
    assert np.array_equal(aref.view(np.int32), acc), f"first tables ref (seed {seed})"
    assert np.array_equal(aopt.view(np.int32), acc), f"first tables acc (seed {seed}, {driver.name})"
    expect = pack_bits(np.where(acc >= thr, 1, -1))
    assert np.array_equal(bopt, expect) and np.array_equal(bref, expect), f"first tables bits (seed {seed})"
    check_padding(bopt, n_out, f"first tables (seed {seed})")


@pytest.mark.parametrize("n_in", WIDTHS)
def test_last_bin_s8(driver, tmp_path, n_in):
    n_out = 5
    seed = 5000 + n_in
    rng = np.random.default_rng(seed)
    x = rand_pm1(rng, n_in)
    w = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
    acc = w.astype(np.int64) @ x
    out = driver([np.array([4, n_in, n_out], np.uint32), pack_bits(x), pad_words(w)], tmp_path)
    aref, aopt = split(out, [n_out, n_out])
    assert np.array_equal(aref.view(np.int32), acc) and np.array_equal(aopt.view(np.int32), acc), f"seed {seed}"


def conv_reference(x, w, stride, pad):
    """x [H, W, C] (+-1 or uint8), w [O, KH, KW, C] +-1; zero padding contributes 0."""
    h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    xp = np.zeros((h + 2 * pad[0], wd + 2 * pad[1], c), dtype=np.int64)
    xp[pad[0] : pad[0] + h, pad[1] : pad[1] + wd] = x
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    acc = np.zeros((oh, ow, o), dtype=np.int64)
    for y in range(oh):
        for xx in range(ow):
            win = xp[y * stride[0] : y * stride[0] + kh, xx * stride[1] : xx * stride[1] + kw]
            acc[y, xx] = np.tensordot(w, win, axes=([1, 2, 3], [0, 1, 2]))
    return acc


@pytest.mark.parametrize(
    "cin,cout,k,stride,pad",
    [(1, 1, 3, 1, 1), (31, 3, 3, 1, 1), (33, 37, 3, 2, 1), (64, 5, 2, 2, 0), (65, 33, 3, 1, 2),
     (32, 64, 3, 1, 0), (1, 33, 3, 1, 0), (3, 5, 2, 1, 1), (32, 33, 2, 2, 1), (256, 3, 1, 1, 0)]
)
@pytest.mark.parametrize("u8", [False, True])
def test_conv(driver, tmp_path, cin, cout, k, stride, pad, u8):
    seed = 6000 + cin * 10 + cout + (7 if u8 else 0)
    rng = np.random.default_rng(seed)
    h, wd = 5, 4
    x = rng.integers(0, 256, size=(h, wd, cin)).astype(np.uint8) if u8 else rand_pm1(rng, (h, wd, cin))
    w = rand_pm1(rng, (cout, k, k, cin))
    acc = conv_reference(x, w, (stride, stride), (pad, pad))
    oh, ow = acc.shape[:2]
    thr = (acc[0, 0] + rng.integers(-1, 2, size=cout)).astype(np.int32)
    params = np.array([6 if u8 else 5, h, wd, cin, oh, ow, cout, k, k, stride, stride, pad, pad], np.uint32)
    xdata = pad_words(x) if u8 else pack_bits(x)
    out = driver([params, xdata, pack_bits(w), thr], tmp_path)
    nb = oh * ow * ((cout + 31) // 32)
    bref, bopt, aref, aopt = split(out, [nb, nb, acc.size, acc.size])
    assert np.array_equal(aref.view(np.int32), acc.ravel()), f"conv acc ref (seed {seed})"
    assert np.array_equal(aopt.view(np.int32), acc.ravel()), f"conv acc opt (seed {seed}, {driver.name})"
    expect = pack_bits(np.where(acc >= thr, 1, -1)).ravel()
    assert np.array_equal(bref, expect) and np.array_equal(bopt, expect), f"conv bits (seed {seed})"
    check_padding(bopt, cout, f"conv (seed {seed})")


@pytest.mark.parametrize("c", [1, 31, 33, 64, 65])
@pytest.mark.parametrize("k,stride", [(2, 2), (3, 2), (2, 1)])
def test_maxpool(driver, tmp_path, c, k, stride):
    seed = 8000 + c * 10 + k + stride
    rng = np.random.default_rng(seed)
    h, wd = 7, 6
    x = rand_pm1(rng, (h, wd, c))
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    ref = np.array([[x[y * stride : y * stride + k, xx * stride : xx * stride + k].max(axis=(0, 1))
                     for xx in range(ow)] for y in range(oh)])
    params = np.array([7, h, wd, c, oh, ow, k, k, stride, stride], np.uint32)
    out = driver([params, pack_bits(x)], tmp_path)
    n = oh * ow * ((c + 31) // 32)
    r, o = split(out, [n, n])
    expect = pack_bits(ref).ravel()
    assert np.array_equal(r, expect) and np.array_equal(o, expect), f"maxpool (seed {seed})"
    check_padding(o, c, f"maxpool (seed {seed})")


@pytest.mark.parametrize("channels", [1, 31, 32, 33, 65])
def test_threshold(driver, tmp_path, channels):
    seed = 9000 + channels
    rng = np.random.default_rng(seed)
    pos = 3
    thr = rng.integers(-50, 50, size=channels).astype(np.int32)
    thr[0] = np.iinfo(np.int32).min
    acc = (thr[None, :] + rng.integers(-1, 2, size=(pos, channels))).astype(np.int32)  # ties
    acc[0, 0] = np.iinfo(np.int32).max
    direction = rng.choice(np.array([-1, 1], np.int8), size=channels)
    expect_pm = np.where(direction >= 0, acc.astype(np.int64) >= thr, acc.astype(np.int64) <= thr)
    out = driver([np.array([8, pos, channels], np.uint32), acc, thr, pad_words(direction)], tmp_path)
    n = pos * ((channels + 31) // 32)
    r, o = split(out, [n, n])
    expect = pack_bits(np.where(expect_pm, 1, -1)).ravel()
    assert np.array_equal(r, expect) and np.array_equal(o, expect), f"threshold (seed {seed})"
    check_padding(o, channels, f"threshold (seed {seed})")


@pytest.mark.parametrize("w0,in_frac,out_frac,table_bits", [(20.0, 16, 15, 8), (1.0, 12, 14, 10), (-3.5, 20, 29, 4)])
def test_periodic(driver, tmp_path, w0, in_frac, out_frac, table_bits):
    seed = int(abs(w0) * 10) + in_frac
    rng = np.random.default_rng(seed)
    p = pt.make_params(w0, in_frac, out_frac, table_bits)
    x = rng.integers(-(2**31), 2**31, size=300, dtype=np.int64)
    x[:100] = rng.integers(-(4 << in_frac), 4 << in_frac, size=100)
    x[:4] = [0, 1, -1, -(2**31)]
    x = x.astype(np.int32)
    table = pt.table("sine", table_bits, out_frac)
    head = np.array([9, out_frac, p.phase_mul & 0xFFFFFFFF, p.phase_shift, table_bits, p.lin_a & 0xFFFFFFFF,
                     p.lin_n, x.size], np.uint32)
    out = driver([head, table, x], tmp_path).view(np.int32)
    lut, tay, lin = split(out, [x.size] * 3)
    assert np.array_equal(lut, pt.lut_eval(p, table, x)), f"periodic lut (seed {seed})"
    assert np.array_equal(tay, pt.taylor_eval(p, x)), f"periodic taylor (seed {seed})"
    assert np.array_equal(lin, pt.linear_eval(p, x)), f"periodic linear (seed {seed})"


def test_periodic_error_bounds():
    """The numpy models are accurate: Taylor (eq. 10) within 0.005 everywhere, the LUT
    within half a table step plus rounding, eq. 11 only near 0."""
    assert pt.max_abs_error("taylor", 20.0, 16, 15, -1.0, 1.0) < 0.0048
    assert pt.max_abs_error("lut", 20.0, 16, 15, -1.0, 1.0) < np.pi / 256 + 2**-15 + 1e-4
    assert pt.max_abs_error("linear", 20.0, 16, 15, -0.01, 0.01) < 0.002
