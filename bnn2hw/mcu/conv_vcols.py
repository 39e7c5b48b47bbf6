# SPDX-License-Identifier: MIT
"""Weight packing for the column-sliced conv kernel (``bnn_conv_vc_bits``, firmware
``bnn_conv_vc.h``): columns of 32 lanes per group, tap-major, the per-tap +1 counts, the
lanes-per-position choice and the work-memory size, all as the C header defines them.

Invariants (checked by tests/test_vcols_conv.py against the C reference and numpy):
* ``cols[g, ky, kx', c]`` bit ``j cpl + r`` = weight of the lane's channel (``32 g + r`` when
  ``npos == 1``, else ``r``) at kernel tap ``(ky, kx' - j stride)``, 0 where no such tap.
* ``ctap[o, ky kw + kx]`` = number of +1 weights of channel ``o`` at tap ``(ky, kx)``.
"""

from __future__ import annotations

import numpy as np

CLASSES = 16  # BNN_CONV_VC_CLASSES
MAX_PLANES = 24  # BNN_VC_MAX_PLANES
MAX_TAPS = 64  # BNN_CONV_VC_TAPS


def choose_npos(cout: int, kw: int, stride: int, kh: int = 3) -> int:
    """Output positions per group of 32 lanes: 32 // cout for cout <= 16 (16 channels: 2, 8: 4),
    capped so the extended window stays within KWe <= 16 and kh KWe <= 64 taps; else 1."""
    if cout > 16:
        return 1
    npos = 32 // cout
    while npos > 1 and (kw + (npos - 1) * stride > 16 or kh * (kw + (npos - 1) * stride) > MAX_TAPS):
        npos -= 1
    return npos


def kwe(kw: int, stride: int, npos: int) -> int:
    return kw + (npos - 1) * stride


def groups(cout: int, npos: int) -> int:
    return 1 if npos > 1 else (cout + 31) // 32


def pack_columns(w: np.ndarray, stride: int, npos: int) -> np.ndarray:
    """w [O, KH, KW, C] in {-1, +1} -> uint32 columns [G, KH, KWe, C] (flattened in that order)."""
    o, kh, kw, c = w.shape
    ke, ng = kwe(kw, stride, npos), groups(o, npos)
    lanes = np.zeros((ng, kh, ke, c, 32), dtype=np.uint64)
    pos = (w > 0).astype(np.uint64)  # [O, KH, KW, C]
    if npos == 1:
        for g in range(ng):
            sub = pos[32 * g : 32 * g + 32]  # [r, KH, KW, C]
            lanes[g, :, :kw, :, : sub.shape[0]] = np.moveaxis(sub, 0, -1)
    else:
        for j in range(npos):
            lanes[0, :, j * stride : j * stride + kw, :, j * o : (j + 1) * o] = np.moveaxis(pos, 0, -1)
    cols = (lanes << np.arange(32, dtype=np.uint64)).sum(axis=-1)
    return cols.astype(np.uint32).ravel()


def tap_counts(w: np.ndarray) -> np.ndarray:
    """int16 [O, KH KW]: the +1 weights of each channel per tap."""
    o, kh, kw, c = w.shape
    if c > 32767:
        raise ValueError(f"conv with {c} input channels: the per-tap counts need int16")
    return (w > 0).sum(axis=3).reshape(o, kh * kw).astype(np.int16)


def _bitlen(v: int) -> int:
    return int(v).bit_length()


def nq(kh: int, kw: int, cin: int, stride: int, npos: int) -> int:
    qmax = kh * kwe(kw, stride, npos) * cin // 2
    return _bitlen(qmax) if qmax else 1


def nt(kh: int, kw: int, cin: int, stride: int, npos: int) -> int:
    hi = 2 * ((1 << nq(kh, kw, cin, stride, npos)) - 1) + kh * kw * cin + 2
    return 1 + _bitlen(hi)


def work_words(in_w: int, cin: int, cout: int, kh: int, kw: int, stride: int, npos: int) -> int:
    """bnn_conv_vc_work_words()."""
    return (kh * in_w * (cin + 1) + cin + 1 + kh
            + (CLASSES + 1) * (1 + groups(cout, npos) * 2 * nt(kh, kw, cin, stride, npos)))


def supported(kh: int, kw: int, cin: int, cout: int, stride: int, npos: int) -> bool:
    """bnn_conv_vc_ok() (square stride)."""
    ke = kwe(kw, stride, npos)
    return (npos >= 1 and 1 <= kh <= 16 and kw >= 1 and (npos == 1 or cout * npos <= 32) and ke <= 16
            and kh * ke <= MAX_TAPS and nq(kh, kw, cin, stride, npos) <= MAX_PLANES
            and nt(kh, kw, cin, stride, npos) <= MAX_PLANES)
