# SPDX-License-Identifier: MIT
"""Generation-time specialisation of one-tile binary convs on cores without Helium (issue 11).

A 3x3 conv with at most ``conv_m4_prep.FEW_POS`` (16) output positions runs on
``bnn_conv_bits_few`` as one tile: per call it checks the geometry, copies a zero-bordered image of
the windows when there is padding, lists each position's M row and packs the patches with the
generic gather loops, and only then runs the rows.  On such small layers that fixed work is a large
share of the call: 4x4x16 stride 2 pad 0 (one position, 2,304 binary MACs) took 884 instructions a call
on the Cortex-M4, of which the rows 594 (QEMU per-function counts); 688 as a tile.

All of that depends only on the layer's geometry, so the code generator does it here, once:

* :func:`patches_c` writes a C function that packs every position's patch in the prepared data's
  layout straight from the input words, one assignment per patch word with constant offsets; a
  padded tap is the constant 0 (zero padding and -1 padding alike: the M tables carry the
  difference, conv_m4_prep.m_tables), so there is no bordered copy and no window test;
* :func:`tile_c` lists each position's M row (``q->m`` + its window class's row) as a table of
  pointers in flash and the ``bnn_conv_tile_t`` that ``bnn_conv_bits_tile`` (bnn_conv.h) takes.

The patch layouts are bnn_conv.c's (any fixed bit order is exact as long as rows and patches share
it): the bit stream of ``pack_taps`` (tap i's word j at bit i cin + 32 j), which for 3x3x16 is
``pack_taps_3x3x16``'s taps 2k, 2k + 1 in word k and tap 8 alone (with the pair records,
``bnn_conv16_tail`` of it); 3x3x24 (``pack_taps_3x3x24``: taps 3 and 7 split over the top bytes of
words 0-2 and 3-5; with the tail-spread rows, ``bnn_conv24_tail`` of tap 8); the tap words as they are
when the rows are not packed (cin a multiple of 32, or rows too long to pack; ``copy_window``).  Input
channels 16 and 24 run the assembly record loops (straight from the entry when cout <= 32); other counts
the row kernel per position (bnn_conv_bits_few's few_rows).

Invariant: ``patches_c``'s words equal those bnn_conv.c's gathers write for every position (the
tests run both entries on the same data, host and QEMU, against numpy).
"""

from __future__ import annotations

import numpy as np

from . import conv_m4_prep

# bnn_conv.h BNN_CONV_TILE_WORDS: the patch buffer of bnn_conv_bits_tile's general path (1,152 B of stack)
TILE_WORDS = 288


def applies(cin: int, kh: int, kw: int, out_hw: tuple[int, int]) -> bool:
    """The code generator calls bnn_conv_bits_tile (with --optimize speed): a 3x3 conv with 1 to
    conv_m4_prep.FEW_POS (16) output positions whose patches fit the entry's TILE_WORDS-word buffer
    (positions x conv_m4_prep.row_words), whatever its padding or stride (no bordered image, so none of
    conv_m4_prep.one_tile's image bound)."""
    npos = out_hw[0] * out_hw[1]
    return (kh == 3 and kw == 3 and cin > 0 and 0 < npos <= conv_m4_prep.FEW_POS
            and npos * conv_m4_prep.row_words(cin, kh, kw) <= TILE_WORDS)


def _taps(in_hw: tuple[int, int], stride: int, pad: int, oy: int, ox: int, cw: int = 1) -> list[int | None]:
    """The first input word of each of the 9 taps of position (oy, ox) (cw words a pixel), row-major; None
    where the tap lies in the padding."""
    h, w = in_hw
    out = []
    for ky in range(3):
        for kx in range(3):
            y, x = oy * stride - pad + ky, ox * stride - pad + kx
            out.append((y * w + x) * cw if 0 <= y < h and 0 <= x < w else None)
    return out


def _term(word: int | None, shift_right: int = 0, shift_left: int = 0) -> str | None:
    """C for (in[word] >> shift_right) << shift_left, or None for a padded tap."""
    if word is None:
        return None
    e = f"in[{word}]"
    if shift_right:
        e = f"({e} >> {shift_right})"
    return f"{e} << {shift_left}" if shift_left else e


def _or(*terms: str | None) -> str:
    live = [t for t in terms if t is not None]
    return " | ".join(live) if live else "0u"


def patch_exprs(cin: int, nw: int, pairs: bool, taps: list[int | None]) -> list[str]:
    """The nw patch words of one position as C expressions over ``in`` (taps: :func:`_taps`), in the
    layout bnn_conv.c's gathers write for rows of nw words (pairs: the 3x3x16 pair records' / 3x3x24
    tail-spread rows' last word)."""
    t = taps
    cw = -(-cin // 32)
    if nw == 9 * cw:  # the tap words as they are (copy_window)
        return [_or(_term(None if v is None else v + j)) for v in t for j in range(cw)]
    if cin == 24 and nw == 7:  # pack_taps_3x3x24: d = tap 3, h = tap 7
        d, h = t[3], t[7]
        words = [_or(_term(t[0]), _term(d, 0, 24)), _or(_term(t[1]), _term(d, 8, 24)),
                 _or(_term(t[2]), _term(d, 16, 24)), _or(_term(t[4]), _term(h, 0, 24)),
                 _or(_term(t[5]), _term(h, 8, 24)), _or(_term(t[6]), _term(h, 16, 24))]
        last = _or(_term(t[8]))
        return words + [f"bnn_conv24_tail({last})" if pairs and last != "0u" else last]
    if nw == -(-9 * cin // 32):  # pack_taps' bit stream: tap i's word j at bit i cin + 32 j
        words = []
        for k in range(nw):
            terms = []
            for i, v in enumerate(t):
                for j in range(cw):
                    bits = min(32, cin - 32 * j)  # the tap word's valid bits
                    off = i * cin + 32 * j - 32 * k  # its first bit relative to word k
                    if -bits < off < 32:
                        src = None if v is None else v + j
                        terms.append(_term(src, 0, off) if off >= 0 else _term(src, -off))
            words.append(_or(*terms))
        if cin == 16 and pairs and words[4] != "0u":  # the pair records' fifth word: tap 8 spread and doubled
            words[4] = f"bnn_conv16_tail({words[4]})"
        return words
    raise ValueError(f"conv_tile: no patch layout for cin {cin} in rows of {nw} words")


def patches_c(name: str, cin: int, q: dict, in_hw: tuple[int, int], out_hw: tuple[int, int], stride: int,
              pad: int) -> str:
    """C of ``static void name(const bnn_word_t *in, bnn_word_t *x)``: every output position's patch in
    the layout of the prepared data q (conv_m4_prep.prepare), position after position (1 to 16
    positions, :func:`applies`)."""
    nw, pairs = int(q["nw"]), bool(q["pairs"])
    oh, ow = out_hw
    lines = [f"/* The {oh * ow} patches of a {in_hw[0]}x{in_hw[1]}x{cin} input's 3x3 windows (stride {stride}, "
             f"pad {pad}), {nw} words each in the\n * prepared rows' layout (bnn_conv.h bnn_conv_bits_tile); "
             "a padded tap is 0. */",
             f"static void {name}(const bnn_word_t *in, bnn_word_t *x)", "{"]
    for oy in range(oh):
        for ox in range(ow):
            i = (oy * ow + ox) * nw
            lines.append(f"    /* position ({oy}, {ox}) */")
            taps = _taps(in_hw, stride, pad, oy, ox, -(-cin // 32))
            for k, e in enumerate(patch_exprs(cin, nw, pairs, taps)):
                lines.append(f"    x[{i + k}] = {e};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def m_rows(q: dict, out_hw: tuple[int, int]) -> np.ndarray:
    """Each position's offset into q["m"] (int32 entries): its window class's row, as bnn_conv.c's
    few_mrows computes it (ycls[oy] nx + xcls[ox]) cpad."""
    cpad = q["m"].shape[1]
    oh, ow = out_hw
    return np.array([(int(q["ycls"][oy]) * q["nx"] + int(q["xcls"][ox])) * cpad
                     for oy in range(oh) for ox in range(ow)], dtype=np.int64)


def tile_c(lid: str, m_name: str, cin: int, q: dict, in_hw: tuple[int, int], out_hw: tuple[int, int],
           stride: int, pad: int) -> str:
    """C of layer lid's ``static const bnn_conv_tile_t {lid}_tile`` (bnn_conv.h) and what it points to:
    the patch packer ``{lid}_patches`` and the M-row table ``{lid}_mp`` into the prepared M array m_name."""
    ptrs = [f"{m_name} + {o}" for o in m_rows(q, out_hw)]
    rows = ",\n".join("    " + ", ".join(ptrs[i:i + 6]) for i in range(0, len(ptrs), 6))
    npos = out_hw[0] * out_hw[1]
    return (patches_c(f"{lid}_patches", cin, q, in_hw, out_hw, stride, pad)
            + "/* each position's M row (its window class's row of the prepared M table) */\n"
            + f"static const int32_t *const {lid}_mp[{npos}] = {{\n{rows}\n}};\n"
            + f"static const bnn_conv_tile_t {lid}_tile = {{{lid}_patches, {lid}_mp, {npos}u}};\n")

