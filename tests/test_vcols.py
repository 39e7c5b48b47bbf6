# SPDX-License-Identifier: MIT
"""Column-sliced kernels (firmware bnn_vcols.c, bnn_dense_vbits in bnn_dense.c): every fast variant
equals its _ref twin and numpy, bit-exactly, at awkward sizes (K in 1, 31, 32, 33, 63, 65, 255,
257, 1000; 1, 31, 32, 33, 65, 257 outputs), on inputs all ones, all zeros, exactly half ones (the
S0/S1 tie), random, with thresholds at the ties (acc == thr) and M = -1 / M >= K (never / always).

One driver image per target (firmware/tests/vcols_driver.c): the host under -Wall -Wextra -Werror
-fsanitize=address,undefined (portable C) and QEMU Cortex-M0 (portable C, the ARMv6-M select; its
16 KiB RAM holds the smaller cases only, the others are skipped with that reason), M3, M4, M7, M33
(Thumb-2 assembly) and M55 (the same assembly on ARMv8.1-M; its dense layers keep the Helium row
kernels, BNN_DENSE_VCOLS = 0).  The generated-model tests (emit-c at awkward widths) are at the end."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnn2hw.mcu.targets import get_target
from bnn2hw.mcu.vcols import planes_of, use_vcols, vcols_layer

FW = Path(__file__).resolve().parents[1] / "bnn2hw" / "firmware"
TARGETS = ["host", "cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
BUF_WORDS = {"cortex-m0": 1024, "cortex-m55": 1 << 15}  # others: 1 << 17 (driver buffers in RAM)
MAX_K = {"cortex-m0": 1024}  # others: 4096 (the driver's index scratch)
KS = [1, 31, 32, 33, 63, 65, 255, 257, 1000]
NOUTS = [1, 9, 10, 31, 32, 33, 65, 257]
FILL = ["ones", "zeros", "half", "random"]


def pack(bits01: np.ndarray) -> np.ndarray:
    """[..., n] of 0/1 -> uint32 [..., words], element i in word i // 32 bit i % 32."""
    n = bits01.shape[-1]
    words = (n + 31) // 32
    b = np.zeros(bits01.shape[:-1] + (words * 32,), dtype=np.uint64)
    b[..., :n] = bits01
    b = b.reshape(bits01.shape[:-1] + (words, 32))
    return (b << np.arange(32, dtype=np.uint64)).sum(axis=-1).astype(np.uint32)


def lanes(planes: np.ndarray, signed: bool) -> np.ndarray:
    """[n] uint32 planes -> [32] lane values (bit r of plane j = bit j of lane r)."""
    n = planes.size
    v = ((planes.astype(np.int64)[:, None] >> np.arange(32)) & 1) << np.arange(n)[:, None]
    v = v.sum(axis=0)
    return np.where(signed & (v >> (n - 1) & 1 == 1), v - (1 << n), v) if signed else v


def input_bits(rng, k: int, fill: str) -> np.ndarray:
    if fill == "ones":
        return np.ones(k, np.int64)
    if fill == "zeros":
        return np.zeros(k, np.int64)
    if fill == "half":  # n1 = k // 2: the S1 side of the tie (and n1 = k - n1 exactly when k is even)
        x = np.zeros(k, np.int64)
        x[rng.permutation(k)[:k // 2]] = 1
        return x
    return rng.integers(0, 2, size=k)


# ---------------------------------------------------------------- cases


CASES: dict[str, tuple[np.ndarray, int, object]] = {}  # name -> (words, out words, check(out, target))


def add(name, arrays, out_words, check):
    words = np.concatenate([np.asarray(a, dtype=np.int64).astype(np.uint32).ravel() for a in arrays])
    assert name not in CASES
    CASES[name] = (words, out_words, check)


def select_case(k: int, fill: str) -> None:
    rng = np.random.default_rng(100 * k + FILL.index(fill))
    x = input_bits(rng, k, fill)
    if fill == "half" and k % 2:
        x[np.flatnonzero(x == 0)[0]] = 1  # odd k: n1 = k // 2 + 1, the S0 side
    xw = pack(x)
    if k % 32 and fill != "zeros":
        xw[-1] |= np.uint32(0xFFFFFFFF) << np.uint32(k % 32)  # padding bits set: must be ignored
    n1 = int(x.sum())
    want = 1 if n1 <= k - n1 else 0
    expect = np.flatnonzero(x == want)
    half = k // 2

    def check(out, target):
        ref, fast = out[:2 + half], out[2 + half:]
        assert ref[0] == n1 and ref[1] == expect.size, f"select ref n1/m (k {k}, {fill})"
        assert np.array_equal(ref[2:2 + expect.size], expect), f"select ref indices (k {k}, {fill})"
        assert np.all(ref[2 + expect.size:] == 0xFFFFFFFF), f"select ref wrote past m (k {k})"
        m = expect.size  # the fast variant may write idx[m] (room for k / 2 + 1 entries), nothing further
        assert np.array_equal(fast[:2 + m], ref[:2 + m]), f"select fast vs ref (k {k}, {fill}, {target})"
        assert np.all(fast[2 + m + 1:] == 0xFFFFFFFF), f"select fast wrote past m + 1 (k {k}, {fill}, {target})"

    add(f"select-{k}-{fill}", [[1, k], xw], 2 * (2 + half), check)


for _k in KS + [2, 64, 96, 128]:
    for _f in FILL:
        select_case(_k, _f)


def count_case(name: str, nq: int, ms: list[int], start_max: int, seed: int) -> None:
    """Segments of ms columns (random indices into one column array, repeats allowed), starting counts
    below start_max; nq planes hold the final counts (the bound the caller guarantees)."""
    rng = np.random.default_rng(seed)
    ncols = 300
    cols = rng.integers(0, 2 ** 32, size=ncols, dtype=np.uint64).astype(np.uint32)
    cols[:2] = [0xFFFFFFFF, 0]  # every lane carrying / none
    q0 = rng.integers(0, start_max + 1, size=32)
    segs, total = [], q0.copy()
    for s, m in enumerate(ms):
        off = 0 if s == 0 else int(rng.integers(0, 40))
        idx = rng.integers(0, ncols - off, size=m)
        if s == 0 and m >= 16:
            idx[:16] = 0  # a block of all-ones columns: the ripple through every plane
        segs.append((off, idx))
        colbits = (cols[(off + idx)].astype(np.int64)[:, None] >> np.arange(32)) & 1
        total = total + colbits.sum(axis=0)
    assert total.max() < 2 ** nq, (name, total.max(), nq)
    q0_planes = [int(((q0 >> j) & 1) @ (1 << np.arange(32, dtype=np.int64))) for j in range(nq)]
    words = [[2, nq, len(ms), ncols], q0_planes, cols]
    for off, idx in segs:
        words += [[off, len(idx)], idx]

    def check(out, target):
        for v, part in enumerate((out[:nq + 2], out[nq + 2:])):
            got = lanes(part[:nq], signed=False)
            what = ("ref", "fast")[v]
            assert np.array_equal(got, total), f"count {what} {name} ({target})"
            assert part[nq] == 0, f"count {what} {name}: planes nq..3 written ({target})"
            assert part[nq + 1] == 0x5A5A5A5A, f"count {what} {name}: wrote past its planes ({target})"

    add(f"count-{name}", words, 2 * (nq + 2), check)


count_case("empty", 5, [0], 3, 1)
count_case("one", 5, [1], 3, 2)
count_case("15-16-17", 7, [15, 16, 17], 5, 3)
count_case("31-32-33", 8, [31, 32, 33, 0, 1], 0, 4)
count_case("257", 10, [257], 0, 5)
count_case("1000", 11, [500, 500], 7, 6)
count_case("nq1", 1, [1], 0, 7)
count_case("nq2", 2, [2, 1], 0, 8)
count_case("nq3-block", 5, [16], 0, 9)  # all-ones block: every lane reaches 16 exactly (nq 5)
count_case("nq4", 4, [3, 5], 6, 10)
count_case("max24", 24, [64, 64], 2 ** 24 - 129, 11)  # counts ending just below 2^24
count_case("many-segs", 9, [3, 16, 0, 31, 9, 48, 1, 2, 7], 0, 12)


def ge_case(name: str, nq: int, nt: int, n: int, seed: int, bias_range: int) -> None:
    rng = np.random.default_rng(seed)
    words = [[3, n, nq, nt]]
    expect = []
    for c in range(n):
        q = rng.integers(0, 2 ** nq, size=32)
        tmin, tmax = -(2 ** (nt - 1)), 2 ** (nt - 1) - 1
        bias = int(rng.integers(-bias_range, bias_range + 1))
        if c % 3 == 0:  # ties: T = 2 Q - bias where it fits, and one below / above
            t = np.clip(2 * q - bias + rng.integers(-1, 2, size=32), tmin, tmax)
        else:
            t = rng.integers(tmin, tmax + 1, size=32)
        if c == 1:
            q[:] = 2 ** nq - 1
            t[:] = tmin
        if c == 2:
            q[:] = 0
            t[:] = tmax
        assert np.all(np.abs(t + bias) < 2 ** 30)
        expect.append(int(((2 * q >= t + bias).astype(np.int64) << np.arange(32)).sum()))
        tw = [int((((t & ((1 << nt) - 1)) >> j) & 1) @ (1 << np.arange(32, dtype=np.int64))) for j in range(nt)]
        qw = [int(((q >> j) & 1) @ (1 << np.arange(32, dtype=np.int64))) for j in range(nq)]
        words += [[bias & 0xFFFFFFFF], qw, tw]

    def check(out, target):
        ref, fast = out[0::2], out[1::2]
        assert np.array_equal(ref, np.array(expect, np.uint32)), f"ge ref {name}"
        assert np.array_equal(fast, ref), f"ge fast {name} ({target})"

    add(f"ge-{name}", words, 2 * n, check)


for _i, (_nq, _nt, _b) in enumerate([(1, 1, 3), (1, 2, 5), (4, 3, 40), (5, 7, 100), (7, 9, 300), (10, 12, 3000),
                                     (11, 12, 1001), (24, 24, 2 ** 20), (3, 24, 2 ** 29 - 2 ** 23 - 1),
                                     (24, 2, 2 ** 29), (12, 5, 0)]):
    ge_case(f"{_nq}-{_nt}-{_b}", _nq, _nt, 24, 50 + _i, _b)


def ge_const_case(name: str, nq: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words, expect = [[5, n, nq]], []
    for i in range(n):
        q = rng.integers(0, 2 ** nq, size=32)
        c = [int(q[0]), int(q[5]) + 1, 0, 1, 2 ** nq - 1, 2 ** nq, 2 ** nq + 3, 2 ** 31][i % 8]  # ties, ends
        c = int(rng.integers(0, 2 ** nq + 2)) if i >= 16 else c
        q[1] = 2 ** nq - 1
        expect.append(int(((q >= c).astype(np.int64) << np.arange(32)).sum()))
        words += [[c], [int(((q >> j) & 1) @ (1 << np.arange(32, dtype=np.int64))) for j in range(nq)]]

    def check(out, target):
        assert np.array_equal(out[0::2], np.array(expect, np.uint32)), f"ge_const ref {name}"
        assert np.array_equal(out[1::2], out[0::2]), f"ge_const fast {name} ({target})"

    add(f"geconst-{name}", words, 2 * n, check)


for _nq in (1, 2, 4, 9, 13, 24):
    ge_const_case(str(_nq), _nq, 32, 90 + _nq)


def group_case(name: str, nv: int, nq: int, m: int, seed: int, cols_kind: str = "random", ngroups: int = 1,
               np_col: bool = False, flip: bool = False) -> None:
    """bnn_vc_groups: per group, start values V (nv planes) + the npcol column (when np_col; it sets
    lanes 0 .. 3 and lane 2 starts at 15 where it fits, so its carry ripples past plane 3 into memory)
    + the m listed columns, compared with constants c at the ties (c == a lane's count, count + 1),
    both ends (0, 2^nq - 1, 2^nq, above) and random; every group's word XORed with flip."""
    rng = np.random.default_rng(seed)
    ncols = 40
    npcol = ncols - 1 if np_col else 0  # 0: BNN_VC_NO_COL
    cols_g, v_g, totals = [], [], []
    idx = rng.integers(0, ncols - 1 if np_col else ncols, size=m)
    for g in range(ngroups):
        if cols_kind == "ones":
            cols = np.full(ncols, 0xFFFFFFFF, np.int64)
        elif cols_kind == "zeros":
            cols = np.zeros(ncols, np.int64)
        else:
            cols = rng.integers(0, 2 ** 32, size=ncols, dtype=np.int64)
        if np_col:
            cols[-1] |= 0xF
        colbits = ((cols[idx][:, None] >> np.arange(32)) & 1).sum(axis=0)  # [32] listed count per lane
        npbits = (cols[-1] >> np.arange(32)) & 1 if np_col else np.zeros(32, np.int64)
        vmax = min(2 ** nv - 1, 2 ** nq - 1 - m - int(np_col))
        v = rng.integers(0, vmax + 1, size=32)
        v[0], v[1] = 0, vmax  # the ends of the start values
        if np_col and vmax >= 15:
            v[2] = 15
        cols_g.append(cols)
        v_g.append(planes_of(v, nv))
        totals.append(v + npbits + colbits)
    tot = np.concatenate(totals)
    assert tot.max() < 2 ** nq
    t0 = totals[0]
    cs = [int(t0[0]), int(t0[1]), int(t0[2]) + 1, int(t0[3]), 0, 1, 2 ** nq - 1, 2 ** nq,
          2 ** nq + 5, 2 ** 31, 2 ** 32 - 1] + [int(x) for x in rng.integers(0, 2 ** nq + 1, size=5)]
    fw = 0xFFFFFFFF if flip else 0
    expect = [[int(((t >= c).astype(np.int64) << np.arange(32)).sum()) ^ fw for t in totals] for c in cs]
    words = [[6, nv, nq, ncols, ngroups, npcol, fw], np.concatenate(cols_g), np.concatenate(v_g), [m], idx,
             [len(cs)], cs]

    def check(out, target):
        out = out.reshape(len(cs), 2, ngroups)
        assert np.array_equal(out[:, 0], np.array(expect, np.uint32)), f"groups ref {name}"
        assert np.array_equal(out[:, 1], out[:, 0]), f"groups fast {name} ({target})"

    add(f"group-{name}", words, 2 * len(cs) * ngroups, check)


for _i, (_nv, _nq, _m) in enumerate([(4, 2, 0), (4, 3, 0), (4, 4, 0), (4, 5, 16), (4, 7, 64), (5, 7, 32), (7, 7, 48),
                                     (4, 9, 256), (9, 9, 16), (12, 13, 512), (4, 24, 32), (24, 24, 1024),
                                     (20, 22, 96)]):
    group_case(f"{_nv}-{_nq}-{_m}-{_i}", _nv, _nq, _m, 300 + _i)
    # the same with 3 groups, the npcol column and flip (nq = nv = 4 with m = 0 leaves room for it)
    group_case(f"{_nv}-{_nq}-{_m}-{_i}-np3", _nv, _nq, _m, 400 + _i, ngroups=3, np_col=_nq >= 3, flip=_i % 2 == 1)
group_case("ones", 4, 7, 64, 320, "ones")
group_case("zeros", 6, 8, 48, 321, "zeros")
group_case("ones-np-2", 4, 7, 64, 322, "ones", ngroups=2, np_col=True)  # every lane carries through q[4 ..]
group_case("zeros-np-2-flip", 6, 8, 48, 323, "zeros", ngroups=2, np_col=True, flip=True)
group_case("np-nz4", 4, 4, 0, 324, ngroups=2, np_col=True)  # nz = 4: no memory planes
group_case("np-5", 5, 5, 16, 325, ngroups=5, np_col=True, flip=True)


def dense_case(k: int, n_out: int, fill: str) -> None:
    seed = 7000 + 10 * k + n_out + 100000 * FILL.index(fill)
    rng = np.random.default_rng(seed)
    x = input_bits(rng, k, fill)
    w = rng.choice(np.array([-1, 1]), size=(n_out, k))
    w[0] = np.where(x == 1, 1, -1)  # row 0 agrees everywhere (p = 0)
    if n_out > 2:
        w[-1] = np.where(x == 1, -1, 1)  # the last row disagrees everywhere (p = K)
    p = ((w > 0).astype(np.int64) != x[None, :]).sum(axis=1)
    mm = p + rng.integers(-1, 2, size=n_out)  # ties p == M included
    mm[rng.random(n_out) < 0.1] = -1  # never
    mm[rng.random(n_out) < 0.1] = k  # always
    if n_out > 3:
        mm[1], mm[2] = -5, k + 7  # past the clamps
    lay = vcols_layer(w, mm)
    groups = (n_out + 31) // 32
    expect = pack((p <= np.clip(mm, -1, k)).astype(np.int64))
    xw = pack(x)

    def check(out, target):
        ref, fast, guard = out[:groups], out[groups:2 * groups], out[-1]
        assert np.array_equal(ref, expect), f"dense_vbits ref vs numpy (seed {seed})"
        assert np.array_equal(fast, expect), f"dense_vbits fast vs numpy (seed {seed}, {target})"
        assert guard == 0x5A5A5A5A, f"dense_vbits wrote past its index scratch (seed {seed}, {target})"

    add(f"dense-{k}x{n_out}-{fill}", [[4, k, n_out, lay.nq, lay.nv, lay.off], xw, lay.wc, lay.tv], 2 * groups + 1,
        check)


for _k in KS:
    for _o in NOUTS:
        for _f in FILL if _o in (1, 33, 257) else ["random"]:
            dense_case(_k, _o, _f)
for _k in (64, 96, 128, 160, 256, 288, 2048):
    dense_case(_k, 64, "random")


# ---------------------------------------------------------------- build and run


def _sources():
    return [str(FW / "tests" / "vcols_driver.c"), *map(str, sorted((FW / "src").glob("bnn_*.c")))]


def _build(tmp: Path, target: str) -> list[str]:
    if target == "host":
        if shutil.which("gcc") is None:
            pytest.fail("gcc not found: apt-get install gcc")
        exe = tmp / "vd"
        subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-g", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", "-DBNN_HOST", f"-I{FW / 'include'}", f"-I{FW / 'harness'}",
                        *_sources(), "-o", str(exe)], check=True)
        return [str(exe)]
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    t = get_target(target)
    elf = tmp / "vd.elf"
    subprocess.run(["arm-none-eabi-gcc", *t.cpu_flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                    "-fno-tree-loop-distribute-patterns", f"-DBUF_WORDS={BUF_WORDS.get(target, 1 << 17)}",
                    f"-DVC_MAX_K={MAX_K.get(target, 4096)}u", f"-I{FW / 'include'}", f"-I{FW / 'harness'}", *_sources(),
                    str(FW / "harness" / "startup.c"), str(FW / "harness" / "semihost.c"), "-nostartfiles",
                    "-specs=nano.specs", "-specs=nosys.specs", f"-L{FW / 'harness'}", "-T",
                    str(FW / "harness" / f"mem_{target}.ld"), "-o", str(elf)], check=True)
    return ["qemu-system-arm", "-M", t.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]


def _run_batch(cmd, names, tmp):
    words = [np.array([len(names)], np.uint32)]
    for n in names:
        words += [np.array([CASES[n][0].size], np.uint32), CASES[n][0]]
    np.concatenate(words).astype("<u4").tofile(tmp / "case.bin")
    proc = subprocess.run(cmd, cwd=tmp, timeout=300)
    assert proc.returncode == 0, f"vcols driver {cmd[0]} exited with {proc.returncode}"
    out = np.fromfile(tmp / "out.bin", dtype="<u4")
    res, i = {}, 0
    for n in names:
        size = int(out[i])
        assert size == CASES[n][1], f"{n}: driver wrote {size} words, expected {CASES[n][1]}"
        res[n] = out[i + 1:i + 1 + size]
        i += 1 + size
    assert i == out.size
    return res


@pytest.fixture(scope="module", params=TARGETS)
def results(request, tmp_path_factory):
    target = request.param
    tmp = tmp_path_factory.mktemp(target)
    cmd = _build(tmp, target)
    cap = BUF_WORDS.get(target, 1 << 17) - 1
    res, batch, used_in, used_out = {}, [], 1, 0
    for name, (words, out_words, _) in CASES.items():
        k = int(name.split("-")[1].split("x")[0]) if name.startswith(("select-", "dense-")) else 0
        if words.size + 2 > cap or out_words + 1 > cap or k > MAX_K.get(target, 4096):
            assert target == "cortex-m0", f"{name} does not fit the {target} driver"
            res[name] = f"case larger than the {target} driver buffers ({cap + 1} words; 16 KiB RAM on the micro:bit)"
            continue
        if used_in + words.size + 1 > cap or used_out + out_words + 1 > cap:
            res.update(_run_batch(cmd, batch, tmp))
            batch, used_in, used_out = [], 1, 0
        batch.append(name)
        used_in += words.size + 1
        used_out += out_words + 1
    if batch:
        res.update(_run_batch(cmd, batch, tmp))
    res["__target__"] = target
    return res


@pytest.mark.parametrize("name", list(CASES))
def test_vcols_kernel(results, name):
    out = results[name]
    if isinstance(out, str):
        pytest.skip(out)
    CASES[name][2](out, results["__target__"])


def test_layout_planes():
    """The stored format: columns per group (bit r = row 32 g + r), the zero column, and the start
    values / NP columns decode back to T1 = C - M and U0 = C + M + 1 - K."""
    rng = np.random.default_rng(3)
    k, n_out = 37, 40
    w = rng.choice(np.array([-1, 1]), size=(n_out, k))
    mm = rng.integers(-1, k + 1, size=n_out)
    mm[:3] = [-1, k, k + 5]
    lay = vcols_layer(w, mm)
    assert lay.wc.size == 2 * (k + 3) and lay.tv.size == 2 * 2 * lay.nv
    cols = lay.wc.reshape(2, k + 3)
    assert np.all(cols[:, k] == 0)
    for o in (0, 31, 32, 39):
        g, r = divmod(o, 32)
        assert np.array_equal((cols[g, :k] >> np.uint32(r)) & 1, (w[o] > 0).astype(np.uint32))
    assert np.all(cols[1, :k] >> np.uint32(8) == 0)  # rows 40..63 do not exist: 0 bits
    c = (w > 0).sum(axis=1)
    mmc = np.clip(mm, -1, k)
    tv = lay.tv.reshape(2, 2, lay.nv)  # [set, group, plane]: every group of T1, then every group of U0
    for s, t in enumerate((c - mmc, c + mmc + 1 - k)):
        for g, rows in ((0, slice(0, 32)), (1, slice(32, 40))):
            n = rows.stop - rows.start
            v = lanes(tv[s, g], False)[:n]
            par = 1 - ((cols[g, k + 1 + s].astype(np.int64) >> np.arange(32)) & 1)[:n]
            assert np.all(v >= 0) and np.array_equal(2 * (lay.off - v) + par, t[rows]), (s, g)
            assert v.max() + k // 2 + 1 < 2 ** lay.nq


# (K, n_out) -> (instructions of a K-n_out-10 MLP on the Cortex-M4 with the column-sliced hidden
# layer, with the row kernels): QEMU counts, 2026-12-01 (bnn_vc_groups), -DBNN_DENSE_VCOLS=1 / 0 on one
# model (firmware/tests/mlp_model.py, random_binary_mlp seed 2024, the first of its bench inputs)
MEASURED_M4 = {(32, 32): (737, 887), (64, 16): (878, 647), (64, 32): (871, 1014), (256, 10): (2236, 981),
               (256, 16): (2246, 1398), (256, 24): (2252, 1954), (256, 32): (2249, 2509),
               (1000, 16): (7554, 4430), (1000, 33): (10966, 9088)}


def test_choice_rule():
    """The count model picks the faster kernel at every measured shape (crossover near 32 outputs per
    group), and large layers take the column-sliced kernel."""
    for (k, o), (vcols, rows) in MEASURED_M4.items():
        assert use_vcols(k, o) == (vcols < rows), (k, o)
    assert use_vcols(256, 256) and use_vcols(128, 128) and use_vcols(64, 64) and use_vcols(1000, 64)
    assert not use_vcols(256, 10) and not use_vcols(1000, 1)


# ---------------------------------------------------------------- generated models (emit-c)


def _mlp_graph(sizes, seed):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_mcu_models as bm
    return bm.random_mlp_graph(sizes, seed)


@pytest.mark.parametrize("sizes", [(257, 65, 33, 10), (33, 257, 31, 7)])
def test_emitted_model_vcols(tmp_path, sizes):
    """emit-c of binary MLPs at awkward widths: the hidden layers the count model picks run
    bnn_dense_vbits (both stored formats in model.c, BNN_DENSE_VCOLS choosing), a 65 -> 33 layer keeps
    the rows; every integer logit equals the IR executor's on the host (sanitizers), in QEMU on the
    Cortex-M4 and M0 (column-sliced: assembly, portable C) and on the M4 with -DBNN_DENSE_VCOLS=0 (the
    #else branch: row kernels), on inputs all +1, all -1, exactly half +1 and random."""
    from bnn2hw.ir import execute
    from bnn2hw.mcu import qemu, toolchain
    from bnn2hw.mcu.cli import to_c_inputs, verify_firmware, write_firmware_dir

    graph = _mlp_graph(sizes, 11)
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "cortex-m4")
    src = (out / "model.c").read_text()
    n_v = sum(use_vcols(a, b) for a, b in zip(sizes[:-2], sizes[1:-1]))
    assert n_v >= 1 and src.count("bnn_dense_vbits(&") == n_v
    assert src.count("bnn_dense_bits(&") == len(sizes) - 2  # the row format stays for -DBNN_DENSE_VCOLS=0
    rng = np.random.default_rng(5)
    k = sizes[0]
    half = np.where(rng.permutation(k) < k // 2, 1, -1)
    x = np.stack([np.ones(k), -np.ones(k), half, *rng.choice([-1, 1], size=(5, k))]).astype(np.int64)
    res = verify_firmware(graph, out, "cortex-m0", x, echo=lambda *_: None)
    assert res["host"]["int_logits_differing"] == 0 and res["cortex-m0"]["int_logits_differing"] == 0
    ref = execute.run(graph, x).int_logits
    for flags in ("", "-DBNN_DENSE_VCOLS=0"):
        elf = toolchain.build(out, "cortex-m4", extra_cflags=flags)
        assert np.array_equal(qemu.run(elf, "cortex-m4", to_c_inputs(graph, x), graph.num_classes), ref), flags


def _sym_sizes(elf: Path) -> dict:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    return {p[3]: int(p[1], 16) for p in (line.split() for line in out.splitlines()) if len(p) == 4}


def test_vidx_scratch_only_where_vcols(tmp_path):
    """The index scratch of bnn_dense_vbits (BNN_DENSE_VIDX_WORDS(257) = 144 words) is a static under
    #if BNN_DENSE_VCOLS, not an arena temp: the Cortex-M4 build links it (576 B), the Cortex-M55
    build (Helium row kernels) has neither it nor a larger arena (issue 11); BNN_SCRATCH_BYTES counts the most."""
    from bnn2hw.mcu import codegen, toolchain
    from bnn2hw.mcu.cli import write_firmware_dir

    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("arm-none-eabi-nm") is None:
        pytest.fail("arm-none-eabi-gcc / arm-none-eabi-nm not installed (.ci installs gcc-arm-none-eabi)")
    graph = _mlp_graph((257, 65, 33, 10), 11)
    em = codegen.emit(graph)
    assert "static uint32_t bnn_vidx[144];" in em.source and "bnn_vidx, (bnn_word_t *)" in em.source
    out = tmp_path / "fw"
    write_firmware_dir(graph, out, "cortex-m4")
    m4 = _sym_sizes(toolchain.build(out, "cortex-m4"))
    m55 = _sym_sizes(toolchain.build(out, "cortex-m55"))
    assert m4["bnn_vidx"] == 4 * 144 and "bnn_vidx" not in m55
    assert m55["arena"] == m4["arena"] < 4 * 144, (m55["arena"], m4["arena"])
    assert em.scratch_bytes == m4["arena"] + 4 * 144 + m4["input_bits"]  # + the packed input's static
