# SPDX-License-Identifier: MIT
"""Verilog-2005 for a list of :class:`~bnn2hw.fpga.rtl.plan.MvauPlan`: one MVAU module per IR
dense or conv2d layer (with its threshold); for a conv also a sliding-window module (whole image
in, one im2col window per beat out), a gather module (one output pixel per beat in, whole image
out) and, if the IR pools next, a max-pool module (OR of bits); a top module chains them with
valid/ready streams.

Every layer module has the same structure (FINN's MVAU, with the same PE/SIMD folding):

* ``s_*``: the whole input vector of one frame in one beat; ``m_*``: the whole output vector
  (bits, or the integer logits). A beat moves when ``tvalid && tready`` (AXI-Stream); the
  producer holds ``tdata``/``tvalid`` until then, so back-pressure stalls the layer, never
  drops data.
* issue stage: for every neuron fold ``nf < MH/PE`` and synapse fold ``sf < MW/SIMD`` (one per
  clock), read the ``PE x SIMD`` weights of that fold from the weight ROM (synchronous read,
  infers BRAM or LUTRAM) and the ``SIMD`` inputs (the frame register rotates by SIMD elements
  each fold); the next frame is taken in the same cycle the last fold is issued, so a layer
  starts a frame every ``(MH/PE)(MW/SIMD)`` cycles (FINN's cycle model).
* per PE a pipelined adder tree (one register per level) sums the SIMD products (xnor bits,
  ±u8, or u8 x int8);
* the accumulator adds the fold sums; after the last synapse fold a comparison with the
  threshold ROM row (``(acc >= T) xor inv``) gives PE output bits, shifted into the output
  vector (or PE integer logits for the last layer);
* a completed output vector moves to the ``m_tdata`` register; if that still holds an unread
  vector it moves to a skid register, and the whole layer pipeline stalls (``en`` low) until
  ``m_tdata`` is read. ``en`` and ``s_tready`` depend on registers only, so ready signals do
  not form a combinational chain through the layers.

With PE = MH and SIMD = MW (fully unrolled) each layer takes one frame per clock.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ... import __version__
from ...errors import Bnn2hwError
from .plan import MvauPlan, bitlen, signed_bits

PREFIX = "bnn"


def _ident(name: str) -> str:
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not s or not (s[0].isalpha()):
        raise Bnn2hwError(f"cannot make a Verilog identifier from layer name {name!r}")
    return s


def module_name(p: MvauPlan) -> str:
    return f"{PREFIX}_{_ident(p.name)}"


def _hex(v: int, width: int) -> str:
    return f"{width}'h{v:0{(width + 3) // 4}x}"


def _pack(values, width: int) -> int:
    """Little-end-first packing: values[i] at bits [i*width +: width], two's complement."""
    out = 0
    mask = (1 << width) - 1
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * width)
    return out


def weight_rom_rows(p: MvauPlan) -> list[int]:
    """Row nf*SF + sf: bit group (pe*SIMD + s) = weight of neuron nf*PE + pe, input sf*SIMD + s."""
    rows = []
    for nf in range(p.NF):
        for sf in range(p.SF):
            blk = p.weight[nf * p.PE:(nf + 1) * p.PE, sf * p.SIMD:(sf + 1) * p.SIMD]
            if p.weight_kind == "binary":
                vals = (blk.reshape(-1) > 0).astype(np.int64)
            else:
                vals = blk.reshape(-1)
            rows.append(_pack(vals, p.WW))
    return rows


def thr_rom_rows(p: MvauPlan) -> list[int]:
    """Row nf: per PE pe, {inv, T} of output channel nf*PE + pe, AW+1 bits each."""
    rows = []
    for nf in range(p.NF):
        vals = []
        for pe in range(p.PE):
            c = nf * p.PE + pe
            vals.append(((int(p.inv[c]) & 1) << p.AW) | (int(p.thr[c]) & ((1 << p.AW) - 1)))
        rows.append(_pack(vals, p.AW + 1))
    return rows


def _ext(expr_msb: str, expr: str, width: int, to: int, signed: bool) -> str:
    """``expr`` (``width`` bits, sign bit ``expr_msb``) extended to ``to`` bits, lint-clean."""
    if to == width:
        return expr
    if to < width:
        raise AssertionError("narrowing")
    fill = f"{{{to - width}{{{expr_msb}}}}}" if signed else f"{to - width}'d0"
    return f"{{{fill}, {expr}}}"


def _term_lines(p: MvauPlan) -> tuple[list[str], int, bool]:
    """The SIMD products per PE as wires ``t0`` (width TW), and whether they are signed."""
    S, IW, WW = p.SIMD, p.IW, p.WW
    x = f"x1[s*{IW} +: {IW}]"
    w = f"w1[(pe*{S}+s)*{WW} +: {WW}]"
    if p.popcount:
        tw, signed = 1, False
        expr = f"~(x1[s] ^ w1[pe*{S}+s])"
        what = "xnor: 1 when input and weight agree (both +1 or both -1)"
    elif p.in_kind == "fixed" and p.weight_kind == "binary":
        tw, signed = IW + 1, True
        xe = f"{{x1[s*{IW} + {IW - 1}], {x}}}"
        expr = f"w1[pe*{S}+s] ? {xe} : ({tw}'d0 - {xe})"
        what = f"{IW}-bit stream integer times ±1: +q or -q ({tw}-bit two's complement)"
    elif p.in_kind == "fixed":
        tw, signed = IW + 8, True
        expr = f"$signed({x}) * $signed({w})"
        what = f"{IW}-bit stream integer times int8 weight ({tw}-bit signed product)"
    elif p.in_kind == "u8" and p.weight_kind == "binary":
        tw, signed = 10, True
        expr = f"w1[pe*{S}+s] ? {{2'b00, {x}}} : (10'd0 - {{2'b00, {x}}})"
        what = "u8 pixel times ±1: +x or -x (10-bit two's complement)"
    elif p.in_kind == "u8":
        tw, signed = 17, True
        expr = f"$signed({{1'b0, {x}}}) * $signed({w})"
        what = "u8 pixel times int8 weight (17-bit signed product)"
    else:
        tw, signed = 9, True
        expr = f"x1[s] ? {{{w}[7], {w}}} : (9'd0 - {{{w}[7], {w}}})"
        what = "±1 input times int8 weight: +w or -w (9-bit two's complement)"
    if p.popcount:  # one LUT per xnor: it feeds the first adder level directly
        lines = [f"    // products, {what}",
                 f"    wire [{p.PE * S * tw - 1}:0] t0;",
                 "    generate",
                 f"        for (pe = 0; pe < {p.PE}; pe = pe + 1) begin : g_pe_t0",
                 f"            for (s = 0; s < {S}; s = s + 1) begin : g_s",
                 f"                assign t0[(pe*{S}+s)*{tw} +: {tw}] = {expr};",
                 "            end",
                 "        end",
                 "    endgenerate"]
        return lines, tw, signed
    # wider products (a negation or a multiply) get their own register stage, so that no
    # stage holds a negation (or multiplier) and an adder in series (Fmax)
    lines = [f"    // products, {what}; registered (one pipeline stage)",
             f"    reg [{p.PE * S * tw - 1}:0] t0;",
             "    generate",
             f"        for (pe = 0; pe < {p.PE}; pe = pe + 1) begin : g_pe_t0",
             f"            for (s = 0; s < {S}; s = s + 1) begin : g_s",
             f"                always @(posedge clk) if (en) t0[(pe*{S}+s)*{tw} +: {tw}] <= {expr};",
             "            end",
             "        end",
             "    endgenerate"]
    return lines, tw, signed


def combined_levels(p: MvauPlan) -> bool:
    """True when the adder tree registers only every second level (and the last): for binary x
    binary layers with constant weights (one weight ROM row: PE = MH, SIMD = MW), where a sum of
    four xnor terms is a function of four input bits, one LUT4 per bit, so two levels fit one
    stage at the same clock; it halves the tree's registers of an unrolled layer."""
    return p.popcount and p.NF * p.SF == 1 and p.SIMD >= 4


def _tree_lines(p: MvauPlan, tw: int, signed: bool) -> tuple[list[str], str, int, int]:
    """Pipelined pairwise adder tree over the SIMD terms of each PE: a register after every
    level, or after every second level and the last (:func:`combined_levels`).

    Returns (lines, name of the last level, its width, number of register stages)."""
    lines = []
    n, w, src = p.SIMD, tw, "t0"
    level = regs = 0
    if n == 1:
        lines += ["    // SIMD = 1: one register stage instead of a tree",
                  f"    reg [{p.PE * w - 1}:0] t1;",
                  "    always @(posedge clk) if (en) t1 <= t0;"]
        return lines, "t1", w, 1
    pairs_only = combined_levels(p)
    while n > 1:
        level += 1
        m, nw = (n + 1) // 2, w + 1
        dst = f"t{level}"
        registered = not pairs_only or level % 2 == 0 or m == 1
        regs += registered
        if registered:
            kind, drive = "reg ", lambda lhs, rhs: f"always @(posedge clk) if (en) {lhs} <= {rhs};"
        else:
            kind, drive = "wire", lambda lhs, rhs: f"assign {lhs} = {rhs};"
        lines += [f"    // adder tree level {level}: {m} sums of 2 per PE, {nw} bits"
                  + ("" if registered else " (not registered: two levels per stage)"),
                  f"    {kind} [{p.PE * m * nw - 1}:0] {dst};",
                  "    generate",
                  f"        for (pe = 0; pe < {p.PE}; pe = pe + 1) begin : g_pe_{dst}"]
        pairs = n // 2
        a = f"{src}[(pe*{n}+2*j)*{w} +: {w}]"
        b = f"{src}[(pe*{n}+2*j+1)*{w} +: {w}]"
        amsb = f"{src}[(pe*{n}+2*j)*{w} + {w - 1}]"
        bmsb = f"{src}[(pe*{n}+2*j+1)*{w} + {w - 1}]"
        lines += [f"            for (j = 0; j < {pairs}; j = j + 1) begin : g_j",
                  "                " + drive(f"{dst}[(pe*{m}+j)*{nw} +: {nw}]",
                                          f"{_ext(amsb, a, w, nw, signed)} + {_ext(bmsb, b, w, nw, signed)}"),
                  "            end"]
        if n % 2:
            c = f"{src}[(pe*{n}+{n - 1})*{w} +: {w}]"
            cmsb = f"{src}[(pe*{n}+{n - 1})*{w} + {w - 1}]"
            lines += ["            // odd count: the last term passes to the next level",
                      "            " + drive(f"{dst}[(pe*{m}+{m - 1})*{nw} +: {nw}]", _ext(cmsb, c, w, nw, signed))]
        lines += ["        end", "    endgenerate"]
        n, w, src = m, nw, dst
    return lines, src, w, regs


ROM_STYLES = ("auto", "block", "logic")
BRAM18_BITS = 18 * 1024  # one RAMB18 (Xilinx) / DP16KD (ECP5): 18 kbit, at most 36 bits wide


def rom_style(depth: int, width: int, requested: str = "auto") -> str:
    """yosys ``rom_style`` for a ROM of ``depth`` words of ``width`` bits: ``block`` (RAMB18/36 on
    Xilinx, DP16KD on ECP5) or ``logic`` (LUTs).

    ``auto``: a ROM of one word is a constant, and a ROM of at most 16 words costs about one LUT
    per bit as logic, so both stay ``logic``; deeper ROMs go to block RAM when they fill at least
    a tenth of the BRAM18s they need (a 36-bit port per BRAM18 at depth <= 512), as FINN's
    ``ram_style auto`` does for its weight memories; the rest stay logic. (yosys 0.23 maps no
    registered-read ROM to LUTRAM: ``distributed`` fails with "no valid mapping".)"""
    if requested not in ROM_STYLES:
        raise Bnn2hwError(f"unknown ROM style {requested!r}; valid: {', '.join(ROM_STYLES)}")
    if depth <= 1:
        return "logic"
    if requested != "auto":
        return requested
    if depth <= 16:
        return "logic"
    brams = -(-width // 36) * -(-depth // 512)
    return "block" if depth * width >= 0.1 * brams * BRAM18_BITS else "logic"


def _rom_lines(name: str, width: int, rows: list[int], comment: str, sync_addr: str, out: str,
               style: str, enable: str | None = "en") -> list[str]:
    """A ROM with a registered read (``out <= rom[addr]``), the form yosys maps to block RAM or
    LUTRAM; ``style`` goes to yosys as the ``rom_style`` attribute."""
    depth = len(rows)
    lines = [f"    // {comment}",
             f"    // {depth} x {width} bits, rom_style {style}",
             f"    (* rom_style = \"{style}\" *)",
             f"    reg [{width - 1}:0] {name} [0:{depth - 1}];",
             "    initial begin"]
    lines += [f"        {name}[{i}] = {_hex(r, width)};" for i, r in enumerate(rows)]
    lines += ["    end"]
    cond = f"if ({enable}) " if enable else ""
    lines += [f"    always @(posedge clk) {cond}{out} <= {name}[{sync_addr}];"]
    return lines


def _fold_row_rom_lines(name: str, width: int, rows: list[int], comment: str, style: str) -> list[str]:
    """A ROM of one row per neuron fold (threshold or requant constants) whose row ``rnf`` must be
    in the register ``thr_row`` in every cycle (the compare / requant reads it combinationally).
    ``rnf`` advances (``rnf_adv = en && res_v``) to ``(rnf + 1) mod NF``.

    * ``logic``: ``thr_row <= rom[rnf_nxt]`` every cycle (a LUT ROM with a registered read).
    * ``block``: block RAM has a slow clock-to-output (a DP16KD's output is not registered inside
      the block), so the row is read one neuron fold ahead: the RAM's output ``tq`` holds row
      ``(rnf + 1) mod NF`` and ``thr_row`` (an ordinary register) row ``rnf``; on ``rnf_adv`` both
      advance (``thr_row <= tq``, ``tq <= rom[(rnf + 2) mod NF]``), so stalls (``en`` low) hold
      both. Reset loads row 0 (a constant) into ``thr_row`` and reads row 1 into ``tq``. The RAM
      then drives only a register: no RAM -> compare -> output path (Fmax). Invariant, after reset:
      ``thr_row == rom[rnf]`` and ``tq == rom[(rnf + 1) mod NF]``."""
    NF = len(rows)
    if style != "block" or NF < 2:
        return _rom_lines(name, width, rows, comment + "; read one cycle ahead (address rnf_nxt), so thr_row "
                          "is row rnf", "rnf_nxt", "thr_row", style, None)
    nfw = bitlen(NF - 1)
    if NF == 2:
        ahead2 = "rnf"  # (rnf + 2) mod 2
    elif NF & (NF - 1) == 0:
        ahead2 = f"rnf + {nfw}'d2"  # wraps modulo NF = 2^nfw
    else:
        ahead2 = f"(rnf >= {nfw}'d{NF - 2}) ? rnf - {nfw}'d{NF - 2} : rnf + {nfw}'d2"
    L = [f"    // {name} in block RAM, read one neuron fold ahead: tq = row (rnf + 1) mod {NF}, thr_row = row rnf",
         f"    reg [{width - 1}:0] tq;",
         "    wire rnf_adv = en && res_v;  // rnf advances this cycle (as in rnf_nxt)",
         f"    wire [{nfw - 1}:0] trd = !rst_n ? {nfw}'d1 : {ahead2};  // (rnf + 2) mod {NF}: tq after the advance",
         "    wire trd_en = !rst_n || rnf_adv;"]
    L += _rom_lines(name, width, rows, comment + "; read one neuron fold ahead (address trd when trd_en)",
                    "trd", "tq", style, "trd_en")
    L += ["    always @(posedge clk) begin",
          f"        if (!rst_n) thr_row <= {_hex(rows[0], width)};  // row 0",
          "        else if (rnf_adv) thr_row <= tq;",
          "    end"]
    return L


def _issue_last_next(NF: int, SF: int, nfw: int, sfw: int) -> str:
    """Verilog for ``issue_last`` of the next cycle, given that the layer is running now: the fold
    after (nf, sf) is (NF-1, SF-1). After the last fold (nf, sf) wraps to (0, 0)."""
    if NF == 1 and SF == 1:
        return "1'b1"
    if NF == 1:  # next sf == SF-1 <=> sf == SF-2
        return f"(sf == {sfw}'d{SF - 2})"
    if SF == 1:  # next nf == NF-1 <=> nf == NF-2
        return f"(nf == {nfw}'d{NF - 2})"
    # next (nf, sf) = (NF-1, SF-1) <=> nf == NF-1 and sf == SF-2
    return f"(nf == {nfw}'d{NF - 1}) && (sf == {sfw}'d{SF - 2})"


def requant_rows(p: MvauPlan) -> tuple[list[int], int, int, int, int, int, str]:
    """The fused requant's constants in the accumulator domain of the hardware: per output o,
    (m_o, b_o) with ``clip((a * m_o + b_o) >>> shift)`` equal to the IR's
    ``clip((x * mult_o + bias_o) >>> shift)``, where a is the MVAU's accumulator and x the IR's:
    x = a for a signed accumulator; x = 2P - MW for a popcount P, so m = 2 mult and
    b = bias - MW mult (exact integer identity). Returns (ROM rows: row nf, lane pe at
    ``[pe*(mw+bw) +: mw+bw]`` = {b, m} of output nf*PE + pe; mw, bw: the fields' widths; xw: the
    signed width of a; qw: of a * m; fw: of a * m + b, with a spare bit; xv: the Verilog
    expression of a for lane ``pe``)."""
    rq = p.requant
    mult = np.asarray(rq["mult"], dtype=np.int64)
    bias = np.asarray(rq["bias"], dtype=np.int64)
    if p.popcount:
        m, b = 2 * mult, bias - p.MW * mult
        alo, ahi = 0, p.MW
        xw = p.AW + 1
        xv = f"$signed({{1'b0, acc[pe*{p.AW} +: {p.AW}]}})"
    else:
        m, b = mult, bias
        alo, ahi = p.acc_lo, p.acc_hi
        xw = p.AW
        xv = f"$signed(acc[pe*{p.AW} +: {p.AW}])"
    m, b = [int(v) for v in m], [int(v) for v in b]
    mw = signed_bits(min(m + [0]), max(m + [0]))
    bw = signed_bits(min(b + [0]), max(b + [0]))
    prods = [v for mo in m for v in (alo * mo, ahi * mo)]
    qw = max(signed_bits(min(prods + [0]), max(prods + [0])), xw)
    ext = [v for mo, bo in zip(m, b) for v in (alo * mo + bo, ahi * mo + bo)]
    fw = max(signed_bits(min(ext + [0]), max(ext + [0])), qw, bw, rq["bits"] + 1) + 1
    rows = []
    for nf in range(p.NF):
        r = 0
        for pe in range(p.PE):
            o = nf * p.PE + pe
            r |= ((b[o] & ((1 << bw) - 1)) << mw | (m[o] & ((1 << mw) - 1))) << (pe * (mw + bw))
        rows.append(r)
    return rows, mw, bw, xw, qw, fw, xv


def _sconst(v: int, w: int) -> str:
    """A signed ``w``-bit Verilog constant."""
    return f"-{w}'sd{-v}" if v < 0 else f"{w}'sd{v}"


def _requant_lines(p: MvauPlan, rom: str) -> list[str]:
    """The IR requant after this MVAU, per PE on each finished result (FINN's placement of the
    activation inside the MVAU): one multiplier per PE (a DSP), the (m, b) row of the result's
    neuron fold read one cycle ahead like the threshold ROM, then two stages gated by ``en``:
    q1 = a * m, q2 = (q1 + b) >>> shift; ``res`` = clip(q2) to [lo, hi]. ``q2_v`` / ``q2_l`` take
    the place of ``res_v`` / ``res_last`` for the output stage."""
    rq = p.requant
    rows, mw, bw, xw, qw, fw, xv = requant_rows(p)
    bits, sh, lo, hi = rq["bits"], rq["shift"], rq["lo"], rq["hi"]
    PE, NF = p.PE, p.NF
    rw = mw + bw
    L = [f"    // ---- requant {rq['name']} (fused): per output clip((acc * m + b) >>> {sh}) to [{lo}, {hi}], {bits} bits",
         (f"    //      acc = P, m = 2 mult, b = bias - {p.MW} mult (the IR's x = 2P - {p.MW})" if p.popcount
          else "    //      acc = the IR's x, m = mult, b = bias"),
         f"    reg [{PE * rw - 1}:0] thr_row;"]
    L += _fold_row_rom_lines("qrom", PE * rw, rows,
                             f"requant ROM: row nf, bits [pe*{rw} +: {rw}] = {{b ({bw} bits), m ({mw} bits)}} of "
                             "output nf*PE+pe", rom_style(NF, PE * rw, rom))
    L += ["    reg q1_v, q1_l, q2_v, q2_l;  // the requant stages hold a result / the vector's last fold",
          "    always @(posedge clk) begin",
          "        if (!rst_n) begin q1_v <= 1'b0; q2_v <= 1'b0; end",
          "        else if (en) begin q1_v <= res_v; q2_v <= q1_v; end",
          "        if (en) begin q1_l <= res_last; q2_l <= q1_l; end",
          "    end",
          f"    wire [{PE * bits - 1}:0] res;",
          "    generate",
          f"        for (pe = 0; pe < {PE}; pe = pe + 1) begin : g_rq",
          f"            wire signed [{mw - 1}:0] m = thr_row[pe*{rw} +: {mw}];",
          f"            wire signed [{bw - 1}:0] b = thr_row[pe*{rw} + {mw} +: {bw}];",
          f"            wire signed [{xw - 1}:0] a = {xv};",
          f"            reg signed [{qw - 1}:0] q1;",
          f"            reg signed [{bw - 1}:0] b1;",
          f"            reg signed [{fw - 1}:0] q2;",
          "            always @(posedge clk) if (en) begin",
          "                q1 <= a * m;",
          "                b1 <= b;",
          (f"                q2 <= ($signed({{{{{fw - qw}{{q1[{qw - 1}]}}}}, q1}}) + $signed({{{{{fw - bw}{{b1[{bw - 1}]}}}}, b1}}))"
           f" >>> {sh};"),
          "            end",
          (f"            assign res[pe*{bits} +: {bits}] = (q2 < {_sconst(lo, fw)}) ? {bits}'h{lo & ((1 << bits) - 1):x} :"
           f" (q2 > {_sconst(hi, fw)}) ? {bits}'h{hi & ((1 << bits) - 1):x} : q2[{bits - 1}:0];"),
          "        end",
          "    endgenerate"]
    return L


def emit_layer(p: MvauPlan, index: int, model_hash: str, rom: str = "auto") -> str:
    """One MVAU module for IR dense layer ``p`` (+ its threshold)."""
    NF, SF, PE, S, AW = p.NF, p.SF, p.PE, p.SIMD, p.AW
    IN_W, OUT_W = p.in_width, p.out_width
    nfw, sfw, aw_addr = bitlen(NF - 1), bitlen(SF - 1), bitlen(NF * SF - 1)
    name = module_name(p)
    kind = {True: "binary x binary (xnor-popcount)", False: f"{p.in_kind} x {p.weight_kind}"}[p.popcount]
    out_desc = (f"{p.MH} integer logits of {p.LW} bits (two's complement), logit o at [o*{p.LW} +: {p.LW}]"
                if p.is_logits else f"{p.MH} bits (1 = +1), channel o at bit o")
    if p.requant:
        b = p.requant["bits"]
        out_desc = f"{p.MH} stream integers of {b} bits (two's complement, requant {p.requant['name']}), o at [o*{b} +: {b}]"
    L = [f"// IR layer {index}: {p.name} (dense, {kind}) <- PyTorch module {p.source}"
         + (f", threshold {p.thr_name}" if p.thr_name else f", requant {p.requant['name']}" if p.requant
            else ", no activation: integer logits"),
         f"// MW={p.MW} inputs, MH={p.MH} outputs, folded PE={PE} x SIMD={S}: "
         f"NF={NF} neuron folds x SF={SF} synapse folds = {p.cycles} cycles/frame",
         f"// input:  {p.MW} x {p.IW}-bit ({ {'u8': 'u8 pixel', 'bits': 'bit, 1 = +1'}.get(p.in_kind, 'stream integer')}), "
         f"element i at [i*{p.IW} +: {p.IW}]",
         f"// output: {out_desc}",
         "// accumulator: " + ("P = popcount(xnor(x, w)) (acc = 2P - MW)" if p.popcount
                                else f"signed sum of products, {AW} bits, range [{p.acc_lo}, {p.acc_hi}]"),
         f"// generated by bnn2hw {__version__} from model {model_hash}",
         "`default_nettype none",
         f"module {name} (",
         "    input  wire clk,",
         "    input  wire rst_n,  // synchronous, active low",
         f"    input  wire [{IN_W - 1}:0] s_tdata,",
         "    input  wire s_tvalid,",
         "    output wire s_tready,",
         f"    output reg  [{OUT_W - 1}:0] m_tdata,",
         "    output reg  m_tvalid,",
         "    input  wire m_tready",
         ");",
         "    genvar pe, s;" if S == 1 else "    genvar pe, s, j;",
         "",
         "    // ---- stall: the skid register holds a second finished vector while m_tdata is unread",
         "    reg skid_v;",
         "    reg res_v;                       // res stage holds a finished fold (after the last synapse fold)",
         f"    reg [{nfw - 1}:0] rnf;                 // neuron fold of the next result",
         f"    wire [{nfw - 1}:0] rnf_nxt;            // rnf of the next cycle (threshold ROM address)",
         f"    wire res_last = (rnf == {nfw}'d{NF - 1});",
         "    wire en = !skid_v;",
         "",
         "    // ---- issue stage: one (neuron fold, synapse fold) per cycle",
         "    reg running;",
         f"    reg [{nfw - 1}:0] nf;",
         f"    reg [{sfw - 1}:0] sf;",
         f"    reg [{aw_addr - 1}:0] waddr;           // nf*SF + sf",
         f"    wire sf_last = (sf == {sfw}'d{SF - 1});",
         "    // issue_last: the fold issued now is the frame's last, (nf, sf) = (NF-1, SF-1); a register",
         "    // (computed from the next nf, sf), so s_tready is an AND of registers (Fmax)",
         "    reg issue_last;",
         f"    wire [{aw_addr - 1}:0] waddr_nxt = issue_last ? {aw_addr}'d0 : waddr + {aw_addr}'d1;",
         "    assign s_tready = en && (!running || issue_last);",
         "    wire take = s_tvalid && s_tready;",
         f"    reg [{IN_W - 1}:0] cur;  // the frame being computed"
         + (f"; fold sf reads elements [sf*SIMD, sf*SIMD + {S}) through a {SF}:1 multiplexer" if SF > 1 else ""),
         "    always @(posedge clk) begin",
         "        if (!rst_n) begin",
         f"            running <= 1'b0; nf <= {nfw}'d0; sf <= {sfw}'d0; waddr <= {aw_addr}'d0;",
         f"            issue_last <= 1'b{int(NF == 1 and SF == 1)};",
         "        end else if (en) begin",
         "            if (running) begin",
         f"                sf <= sf_last ? {sfw}'d0 : sf + {sfw}'d1;",
         f"                if (sf_last) nf <= (nf == {nfw}'d{NF - 1}) ? {nfw}'d0 : nf + {nfw}'d1;",
         "                waddr <= waddr_nxt;",
         f"                issue_last <= {_issue_last_next(NF, SF, nfw, sfw)};",
         "            end",
         "            if (take) running <= 1'b1;",
         "            else if (issue_last) running <= 1'b0;",
         "        end",
         "    end"]
    sw = S * p.IW
    L += ["    always @(posedge clk) if (en && take) cur <= s_tdata;"]
    if SF > 1:  # a case multiplexer (yosys: a LUT/MUXF tree; a variable part-select becomes a shifter)
        L += [f"    reg [{sw - 1}:0] xs;  // elements [sf*SIMD, sf*SIMD + SIMD) of cur",
              "    always @(*) begin",
              "        case (sf)"]
        L += [f"            {sfw}'d{k}: xs = cur[{(k + 1) * sw - 1}:{k * sw}];" for k in range(SF - 1)]
        L += [f"            default: xs = cur[{IN_W - 1}:{(SF - 1) * sw}];",
              "        endcase",
              "    end"]
    L += ["",
          "    // ---- stage 1: weights of this fold (ROM, synchronous read) and the SIMD inputs",
          f"    reg [{PE * S * p.WW - 1}:0] w1;",
          f"    reg [{S * p.IW - 1}:0] x1;",
          "    reg v1, first1, last1;"]
    wstyle = rom_style(NF * SF, PE * S * p.WW, rom)
    wdesc = (f"weight ROM: row nf*SF+sf, bits [(pe*SIMD+s)*{p.WW} +: {p.WW}] = weight of output "
             f"nf*PE+pe, input sf*SIMD+s" + (" (1 = +1)" if p.WW == 1 else " (int8)"))
    if wstyle == "block":
        # block RAM's clock-to-output is slow: read one cycle ahead into w0 (the BRAM's own
        # output), then register w1 <= w0 (Fmax); w0 is the row at waddr in every cycle
        L += [f"    reg [{PE * S * p.WW - 1}:0] w0;",
              f"    wire [{aw_addr - 1}:0] wrd = !rst_n ? {aw_addr}'d0 : (en && running) ? waddr_nxt : waddr;"]
        L += _rom_lines("wrom", PE * S * p.WW, weight_rom_rows(p), wdesc + "; read one cycle ahead (address wrd)",
                        "wrd", "w0", wstyle, None)
        L += ["    always @(posedge clk) if (en) w1 <= w0;"]
    else:
        L += _rom_lines("wrom", PE * S * p.WW, weight_rom_rows(p), wdesc, "waddr", "w1", wstyle)
    L += ["    always @(posedge clk) begin",
          "        if (!rst_n) v1 <= 1'b0;",
          "        else if (en) v1 <= running;",
          "        if (en) begin",
          (f"            x1 <= xs;" if SF > 1 else f"            x1 <= cur[{S * p.IW - 1}:0];"),
          f"            first1 <= (sf == {sfw}'d0);",
          "            last1 <= sf_last;",
          "        end",
          "    end",
          ""]
    tl, tw, signed = _term_lines(p)
    L += tl
    trl, top, sw, stages = _tree_lines(p, tw, signed)
    L += trl
    if not p.popcount:
        stages += 1  # the product register
    # control bits follow the tree
    L += ["",
          f"    // control bits travel beside the {stages} product/tree stage(s)",
          f"    reg [{stages - 1}:0] vp, firstp, lastp;"]
    if stages == 1:
        L += ["    always @(posedge clk) begin",
              "        if (!rst_n) vp <= 1'b0; else if (en) vp <= v1;",
              "        if (en) begin firstp <= first1; lastp <= last1; end",
              "    end"]
    else:
        L += ["    always @(posedge clk) begin",
              f"        if (!rst_n) vp <= {stages}'d0; else if (en) vp <= {{vp[{stages - 2}:0], v1}};",
              f"        if (en) begin firstp <= {{firstp[{stages - 2}:0], first1}}; "
              f"lastp <= {{lastp[{stages - 2}:0], last1}}; end",
              "    end"]
    st = stages - 1
    # accumulate
    acc_w = AW
    if sw > AW:
        raise AssertionError(f"{p.name}: tree width {sw} exceeds accumulator width {AW}")
    if sw < acc_w:
        sum_ext = _ext(f"{top}[pe*{sw} + {sw - 1}]", f"{top}[pe*{sw} +: {sw}]", sw, acc_w, signed)
    else:
        sum_ext = f"{top}[pe*{sw} +: {sw}]"
    L += ["",
          f"    // ---- accumulate the fold sums ({acc_w} bits per PE)",
          f"    reg [{PE * acc_w - 1}:0] acc;",
          "    generate",
          f"        for (pe = 0; pe < {PE}; pe = pe + 1) begin : g_acc",
          f"            always @(posedge clk) if (en && vp[{st}])",
          f"                acc[pe*{acc_w} +: {acc_w}] <= (firstp[{st}] ? {acc_w}'d0 : acc[pe*{acc_w} +: {acc_w}]) "
          f"+ {sum_ext};",
          "        end",
          "    endgenerate",
          "    always @(posedge clk) begin",
          "        if (!rst_n) res_v <= 1'b0;",
          f"        else if (en) res_v <= vp[{st}] && lastp[{st}];",
          "    end",
          ""]
    # result
    out_v, out_l = "res_v", "res_last"  # a result for the output stage / it is the vector's last fold
    if p.requant:
        L += _requant_lines(p, rom)
        RW, out_v, out_l = p.requant["bits"], "q2_v", "q2_l"
    elif p.is_logits:
        LW = p.LW
        L += [f"    // ---- integer logits, {LW} bits each"]
        if p.popcount:
            acc_ext = _ext("1'b0", f"acc[pe*{acc_w} +: {acc_w}]", acc_w, LW - 1, False)
            L += ["    // logit = 2P - MW (two's complement)",
                  f"    wire [{PE * LW - 1}:0] res;",
                  "    generate",
                  f"        for (pe = 0; pe < {PE}; pe = pe + 1) begin : g_res",
                  f"            assign res[pe*{LW} +: {LW}] = {{{acc_ext}, 1'b0}} - {LW}'d{p.MW};",
                  "        end",
                  "    endgenerate"]
            RW = LW
        else:
            L += [f"    wire [{PE * LW - 1}:0] res = acc;"]
            RW = LW
    else:
        L += [f"    reg [{PE * (AW + 1) - 1}:0] thr_row;"]
        L += _fold_row_rom_lines("trom", PE * (AW + 1), thr_rom_rows(p),
                                 f"threshold ROM: row nf, bits [pe*{AW + 1} +: {AW + 1}] = {{inv, T}} of output "
                                 f"nf*PE+pe; bit = ({'P' if p.popcount else 'acc'} >= T) xor inv",
                                 rom_style(NF, PE * (AW + 1), rom))
        cmp_a = f"acc[pe*{acc_w} +: {acc_w}]"
        tsel = f"thr_row[pe*{AW + 1} +: {AW}]"
        if acc_w > AW:
            tsel = _ext(f"thr_row[pe*{AW + 1} + {AW - 1}]", tsel, AW, acc_w, not p.popcount)
        cmp = (f"({cmp_a} >= {tsel})" if p.popcount else f"($signed({cmp_a}) >= $signed({tsel}))")
        L += [
              "    // threshold compare: 1 (+1) when acc reaches T, inverted for direction -1",
              f"    wire [{PE - 1}:0] res;",
              "    generate",
              f"        for (pe = 0; pe < {PE}; pe = pe + 1) begin : g_res",
              f"            assign res[pe] = {cmp} ^ thr_row[pe*{AW + 1} + {AW}];",
              "        end",
              "    endgenerate"]
        RW = 1
    L += ["",
          "    // ---- output: results of fold nf fill outputs [nf*PE, nf*PE+PE); a finished vector goes to",
          "    // m_tdata, or to the skid register if m_tdata is still unread (then en stops the layer).",
          "    // en depends only on skid_v, a register: no combinational path from m_tready to s_tready."]
    vec, skid_w = "res", OUT_W
    if NF > 1:
        # while skid_v, en is low and asm holds folds 0..NF-2 of the parked vector: the skid
        # register holds its last fold only
        skid_w = PE * RW
        L += ["    // the skid register holds the parked vector's last fold; asm (frozen while skid_v) the rest"]
    if NF > 1:
        bw = (NF - 1) * PE * RW
        piece = PE * RW
        vec = "{res, asm}"
        L += [f"    reg [{bw - 1}:0] asm;  // folds 0..NF-2 of the vector being assembled",
              f"    always @(posedge clk) if (en && {out_v} && !{out_l}) "
              + (f"asm <= {{res, asm[{bw - 1}:{piece}]}};" if NF > 2 else "asm <= res;")]
    L += [f"    assign rnf_nxt = !rst_n ? {nfw}'d0 : (en && res_v) ? (res_last ? {nfw}'d0 : rnf + {nfw}'d1) : rnf;",
          "    always @(posedge clk) rnf <= rnf_nxt;",
          *([f"    wire [{OUT_W - 1}:0] vec = {vec};"] if skid_w == OUT_W else []),
          f"    wire done = en && {out_v} && {out_l};  // a finished output vector this cycle",
          f"    reg [{skid_w - 1}:0] skid;",
          "    // m_tdata takes the parked vector (skid_v) or the finished one when it is free or being read",
          "    // (skid_v implies m_tvalid)" + ("; folds 0..NF-2 come from asm either way (no multiplexer)"
                                            if skid_w < OUT_W else ""),
          "    wire load = (!m_tvalid || m_tready) && (skid_v || done);",
          ("    always @(posedge clk) if (load) m_tdata <= {skid_v ? skid : res, asm};" if skid_w < OUT_W
           else "    always @(posedge clk) if (load) m_tdata <= skid_v ? skid : vec;"),
          "    always @(posedge clk) begin",
          "        if (!rst_n) begin",
          "            m_tvalid <= 1'b0; skid_v <= 1'b0;",
          "        end else begin",
          "            if (m_tvalid && m_tready) begin          // m_tdata read: refill from skid or vec",
          "                if (skid_v) skid_v <= 1'b0;",
          "                else if (!done) m_tvalid <= 1'b0;",
          "            end else if (m_tvalid) begin             // m_tdata unread: park vec in skid",
          f"                if (done) begin skid <= {'vec' if skid_w == OUT_W else 'res'}; skid_v <= 1'b1; end",
          "            end else if (done) begin                 // m_tdata empty",
          "                m_tvalid <= 1'b1;",
          "            end",
          "        end",
          "    end",
          ]
    L += ["endmodule",
          "`default_nettype wire",
          ""]
    return "\n".join(L)


def emit_swg(p: MvauPlan, model_hash: str) -> str:
    """Sliding window: the whole input image in one beat -> the OH*OW windows, one per beat, in
    raster order; window element (ky, kx, c) at [((ky*KW + kx)*C + c)*IW +: IW] (im2col's order)."""
    c = p.conv
    H, W, C, KH, KW, S, OH, OW = (c[k] for k in ("in_h", "in_w", "C", "kh", "kw", "stride", "oh", "ow"))
    P = c.get("pad", 0)
    EW = C * p.IW
    V = OH * OW
    pw = bitlen(V - 1)
    fin, win = p.frame_in_width, p.in_width
    pad_desc = ""
    if P:
        pad_desc = (f", padding {P} ({'the bit 0 = activation -1, FINN FMPadding' if p.IW == 1 else 'pixel 0'}"
                    " in every tap outside the image)")
    L = [f"// sliding window of IR layer {p.name} (conv2d {KH}x{KW}, stride {S}{pad_desc}) <- {p.source}: "
         f"{H}x{W}x{C} image in one beat -> {OH}x{OW} windows of {KH}x{KW}x{C}, one per beat",
         f"// generated by bnn2hw {__version__} from model {model_hash}",
         "`default_nettype none",
         f"module {module_name(p)}_swg (",
         "    input  wire clk,",
         "    input  wire rst_n,",
         f"    input  wire [{fin - 1}:0] s_tdata,  // pixel (y, x), channel c at [((y*{W} + x)*{C} + c)*{p.IW} +: {p.IW}]",
         "    input  wire s_tvalid,",
         "    output wire s_tready,",
         f"    output reg  [{win - 1}:0] m_tdata,",
         "    output reg  m_tvalid,",
         "    input  wire m_tready",
         ");",
         f"    reg [{fin - 1}:0] frame;",
         "    reg busy;                 // frame holds an image whose windows are not all sent",
         f"    reg [{pw - 1}:0] pos;            // output pixel oy*{OW} + ox of the next window",
         f"    reg [{win - 1}:0] win;",
         "    always @* begin",
         "        case (pos)"]
    for oy in range(OH):
        for ox in range(OW):
            taps = []
            for ky in range(KH):
                for kx in range(KW):
                    iy, ix = oy * S + ky - P, ox * S + kx - P
                    if not (0 <= iy < H and 0 <= ix < W):
                        taps.append(f"{EW}'d0")  # padding
                        continue
                    idx = iy * W + ix
                    taps.append(f"frame[{(idx + 1) * EW - 1}:{idx * EW}]")
            L.append(f"            {pw}'d{oy * OW + ox}: win = {{{', '.join(reversed(taps))}}};  // ({oy}, {ox})")
    if V < (1 << pw):
        L.append(f"            default: win = {win}'d0;")
    L += ["        endcase",
          "    end",
          "    wire load = busy && (!m_tvalid || m_tready);",
          f"    wire pos_last = (pos == {pw}'d{V - 1});",
          "    // ready only when idle: a register, so no ready chain runs through the window (Fmax); the",
          "    // image after the last window waits one cycle (V + 1 cycles per image at most)",
          "    assign s_tready = !busy;",
          "    wire take = s_tvalid && s_tready;",
          "    always @(posedge clk) if (take) frame <= s_tdata;",
          "    always @(posedge clk) begin",
          "        if (!rst_n) begin",
          f"            busy <= 1'b0; pos <= {pw}'d0; m_tvalid <= 1'b0;",
          "        end else begin",
          "            if (load) begin",
          f"                m_tdata <= win; m_tvalid <= 1'b1; pos <= pos_last ? {pw}'d0 : pos + {pw}'d1;",
          "            end else if (m_tready) m_tvalid <= 1'b0;",
          "            if (take) busy <= 1'b1;",
          "            else if (load && pos_last) busy <= 1'b0;",
          "        end",
          "    end",
          "endmodule",
          "`default_nettype wire",
          ""]
    used = {(oy * S + ky - P) * W + ox * S + kx - P for oy in range(OH) for ox in range(OW)
            for ky in range(KH) for kx in range(KW)
            if 0 <= oy * S + ky - P < H and 0 <= ox * S + kx - P < W}
    if len(used) < H * W:
        L.insert(3, "/* verilator lint_off UNUSEDSIGNAL */  // pixels no window covers (floor division)")
        L.insert(len(L) - 2, "/* verilator lint_on UNUSEDSIGNAL */")
    return "\n".join(L)


def frame_pack_body(beats: int, bw: int, what: str, ready_comment: list[str] | None = None) -> list[str]:
    """Body of a module that packs ``beats`` beats of ``bw`` bits into one frame, beat v at
    ``[v*bw +: bw]`` (ports s_tdata/s_tvalid/s_tready, m_tdata/m_tvalid/m_tready, clk, rst_n).
    s_tready is registers only: the last beat waits while the previous frame is still in m_tdata."""
    cw = bitlen(beats - 1)
    L = [f"    reg [{cw - 1}:0] cnt;  // {what}",
         f"    wire cnt_last = (cnt == {cw}'d{beats - 1});"] + list(ready_comment or []) + [
         "    assign s_tready = !(m_tvalid && cnt_last);",
         "    wire take = s_tvalid && s_tready;"]
    if beats > 1:
        aw = (beats - 1) * bw
        L += [f"    reg [{aw - 1}:0] asm;",
              "    always @(posedge clk) if (take && !cnt_last) "
              + (f"asm <= {{s_tdata, asm[{aw - 1}:{bw}]}};" if beats > 2 else "asm <= s_tdata;")]
        full = "{s_tdata, asm}"
    else:
        full = "s_tdata"
    return L + ["    always @(posedge clk) begin",
                "        if (!rst_n) begin",
                f"            cnt <= {cw}'d0; m_tvalid <= 1'b0;",
                "        end else begin",
                "            if (m_tvalid && m_tready) m_tvalid <= 1'b0;",
                "            if (take) begin",
                f"                if (cnt_last) begin m_tdata <= {full}; m_tvalid <= 1'b1; cnt <= {cw}'d0; end",
                f"                else cnt <= cnt + {cw}'d1;",
                "            end",
                "        end",
                "    end"]


def emit_gather(p: MvauPlan, model_hash: str, pixel_width: int | None = None) -> str:
    """OH*OW output pixels of a conv, one per beat -> the whole output image in one beat.
    ``pixel_width``: bits of one pixel (default MH: one bit per channel)."""
    V = p.vectors
    MH = pixel_width or p.MH
    L = [f"// gather of IR layer {p.name}: {V} output pixels of {MH} bits, one per beat -> one "
         f"{p.conv['oh']}x{p.conv['ow']} image, pixel v at [v*{MH} +: {MH}]",
         f"// generated by bnn2hw {__version__} from model {model_hash}",
         "`default_nettype none",
         f"module {module_name(p)}_gather (",
         "    input  wire clk,",
         "    input  wire rst_n,",
         f"    input  wire [{MH - 1}:0] s_tdata,",
         "    input  wire s_tvalid,",
         "    output wire s_tready,",
         f"    output reg  [{V * MH - 1}:0] m_tdata,",
         "    output reg  m_tvalid,",
         "    input  wire m_tready",
         ");",
         ] + frame_pack_body(V, MH, "pixels of the image being gathered", [
         "    // the last pixel waits while the previous image is still in m_tdata (read or not): s_tready",
         "    // depends on registers only, so no ready path runs from the consumer through the gather into",
         "    // the conv's skid register (Fmax); it costs one cycle per image only when the consumer reads",
         "    // the previous image in the very cycle the last pixel arrives"]) + [
          "endmodule",
          "`default_nettype wire",
          ""]
    return "\n".join(L)


def emit_instream(p: MvauPlan, model_hash: str) -> str:
    """s_axis width adapter of the design: a frame arrives as ``beats_per_frame`` beats of
    ``beat_width`` bits, beat k holding frame bits ``[k*BW +: BW]`` (so with 8-bit beats, pixel k
    in beat k, as FINN's input stream); the last beat's bits above the frame are ignored. The
    assembled frame waits in ``m_tdata`` for the first layer; while it is unread, the last beat of
    the next frame is refused (``s_tready`` low): back-pressure, no data lost."""
    BW, N, F = p.beat_width, p.beats_per_frame, p.frame_in_width
    cw = bitlen(N - 1)
    pad = N * BW - F
    L = [f"// s_axis input stream: {N} beats of {BW} bits -> one {F}-bit frame ({F // p.IW} x {p.IW}-bit inputs)",
         f"// generated by bnn2hw {__version__} from model {model_hash}",
         "`default_nettype none"]
    if pad:
        L.append(f"/* verilator lint_off UNUSEDSIGNAL */  // the last beat's top {pad} bits lie beyond the frame")
    L += [f"module {PREFIX}_instream (",
          "    input  wire clk,",
          "    input  wire rst_n,",
          f"    input  wire [{BW - 1}:0] s_tdata,",
          "    input  wire s_tvalid,",
          "    output wire s_tready,",
          f"    output reg  [{F - 1}:0] m_tdata,",
          "    output reg  m_tvalid,",
          "    input  wire m_tready",
          ");",
          f"    reg [{cw - 1}:0] cnt;  // beats of the frame being assembled",
          f"    wire cnt_last = (cnt == {cw}'d{N - 1});",
          "    assign s_tready = !(m_tvalid && !m_tready && cnt_last);",
          "    wire take = s_tvalid && s_tready;"]
    full = "{s_tdata, asm}" if N > 1 else "s_tdata"
    if N > 1:
        bw = (N - 1) * BW
        L += [f"    reg [{bw - 1}:0] asm;  // beats 0..{N - 2}, beat 0 lowest",
              "    always @(posedge clk) if (take && !cnt_last) "
              + (f"asm <= {{s_tdata, asm[{bw - 1}:{BW}]}};" if N > 2 else "asm <= s_tdata;")]
    L += [f"    wire [{N * BW - 1}:0] full = {full};",
          "    always @(posedge clk) begin",
          "        if (!rst_n) begin",
          f"            cnt <= {cw}'d0; m_tvalid <= 1'b0;",
          "        end else begin",
          "            if (m_tvalid && m_tready) m_tvalid <= 1'b0;",
          "            if (take) begin",
          f"                if (cnt_last) begin m_tdata <= full[{F - 1}:0]; m_tvalid <= 1'b1; cnt <= {cw}'d0; end",
          f"                else cnt <= cnt + {cw}'d1;",
          "            end",
          "        end",
          "    end",
          "endmodule"]
    if pad:
        L.append("/* verilator lint_on UNUSEDSIGNAL */")
    L += ["`default_nettype wire", ""]
    return "\n".join(L)


def emit_pool(p: MvauPlan, model_hash: str) -> str:
    """Max-pool on ±1 bits (1 = +1): the OR of each window; combinational, passes valid/ready."""
    q, c = p.pool, p.conv
    K, S, PH, PW, OH, OW, C = q["k"], q["stride"], q["ph"], q["pw"], c["oh"], c["ow"], p.MH
    L = [f"// IR layer {q['name']}: max-pool {K}x{K} stride {S} after {p.name}: {OH}x{OW}x{C} -> {PH}x{PW}x{C}; "
         "max of ±1 = OR of the bits",
         f"// generated by bnn2hw {__version__} from model {model_hash}",
         "`default_nettype none"]
    used = {(py * S + ky) * OW + px * S + kx for py in range(PH) for px in range(PW)
            for ky in range(K) for kx in range(K)}
    if len(used) < OH * OW:
        L.append("/* verilator lint_off UNUSEDSIGNAL */  // pixels no pooling window covers (floor division)")
    L += [f"module {PREFIX}_{_ident(q['name'])} (",
          f"    input  wire [{OH * OW * C - 1}:0] s_tdata,",
          "    input  wire s_tvalid,",
          "    output wire s_tready,",
          f"    output wire [{PH * PW * C - 1}:0] m_tdata,",
          "    output wire m_tvalid,",
          "    input  wire m_tready",
          ");",
          "    assign m_tvalid = s_tvalid;",
          "    assign s_tready = m_tready;",
          "    genvar py, px, c;",
          "    generate",
          f"        for (py = 0; py < {PH}; py = py + 1) begin : g_y",
          f"            for (px = 0; px < {PW}; px = px + 1) begin : g_x",
          f"                for (c = 0; c < {C}; c = c + 1) begin : g_c",
          f"                    assign m_tdata[(py*{PW} + px)*{C} + c] ="]
    terms = [f"s_tdata[((py*{S} + {ky})*{OW} + px*{S} + {kx})*{C} + c]" for ky in range(K) for kx in range(K)]
    L += ["                        " + " |\n                        ".join(terms) + ";",
          "                end",
          "            end",
          "        end",
          "    endgenerate",
          "endmodule"]
    if len(used) < OH * OW:
        L.append("/* verilator lint_on UNUSEDSIGNAL */")
    L += ["`default_nettype wire", ""]
    return "\n".join(L)


def stages(plans: list[MvauPlan]) -> list[dict]:
    """The dataflow chain: module, instance, beat widths, clocked, comment."""
    out = []
    first = plans[0]
    if first.in_beat_bits is not None:
        out.append({"module": f"{PREFIX}_instream", "inst": "u_instream", "in": first.beat_width,
                    "out": first.frame_in_width, "clk": True,
                    "what": f"input stream: {first.beats_per_frame} beats of {first.beat_width} bits per frame"})
    for p in plans:
        mn = module_name(p)
        if p.conv:
            out.append({"module": f"{mn}_swg", "inst": f"u_{_ident(p.name)}_swg", "in": p.frame_in_width,
                        "out": p.in_width, "clk": True, "what": f"{p.name} sliding window <- {p.source}"})
        out.append({"module": mn, "inst": f"u_{_ident(p.name)}", "in": p.in_width, "out": p.out_width, "clk": True,
                    "what": f"{p.name} <- {p.source}: {p.MW} -> {p.MH}, PE {p.PE} x SIMD {p.SIMD}"
                            + (f", {p.vectors} pixels" if p.conv else "")})
        if p.conv:
            out.append({"module": f"{mn}_gather", "inst": f"u_{_ident(p.name)}_gather", "in": p.out_width,
                        "out": p.vectors * p.out_width, "clk": True, "what": f"{p.name} gather"})
        if p.pool:
            out.append({"module": f"{PREFIX}_{_ident(p.pool['name'])}", "inst": f"u_{_ident(p.pool['name'])}",
                        "in": p.vectors * p.out_width, "out": p.frame_out_width, "clk": False,
                        "what": f"{p.pool['name']} max-pool"})
    return out


def emit_top(plans: list[MvauPlan], model_hash: str, top: str = f"{PREFIX}_top") -> str:
    first, last = plans[0], plans[-1]
    st = stages(plans)
    L = [f"// bnn2hw dataflow accelerator: {len(plans)} layers, generated by bnn2hw {__version__} "
         f"from model {model_hash}",
         (f"// s_axis: one frame per beat, " if first.in_beat_bits is None else
          f"// s_axis: one frame in {first.beats_per_frame} beats of {first.beat_width} bits (beat k = frame bits "
          f"[k*{first.beat_width} +: {first.beat_width}]), ")
         + f"{first.frame_in_width // first.IW} x {first.IW}-bit inputs "
         + ("(u8 pixels, element i at [i*8 +: 8], (y, x, c) order)" if first.in_kind == "u8" else "(bits, 1 = +1)"),
         f"// m_axis: {last.MH} integer logits of {last.LW} bits (two's complement), logit o at "
         f"[o*{last.LW} +: {last.LW}]; AXI-Stream valid/ready with back-pressure",
         "// layers (IR name, PE x SIMD, cycles/frame): "
         + "; ".join(f"{p.name} {p.PE}x{p.SIMD} {p.cycles}" for p in plans),
         "`default_nettype none",
         f"module {top} (",
         "    input  wire clk,",
         "    input  wire rst_n,",
         f"    input  wire [{st[0]['in'] - 1}:0] s_axis_tdata,",
         "    input  wire s_axis_tvalid,",
         "    output wire s_axis_tready,",
         f"    output wire [{st[-1]['out'] - 1}:0] m_axis_tdata,",
         "    output wire m_axis_tvalid,",
         "    input  wire m_axis_tready",
         ");"]
    for k in range(len(st) - 1):
        L += [f"    wire [{st[k]['out'] - 1}:0] d{k};", f"    wire v{k}, r{k};"]
    n = len(st)
    for k, g in enumerate(st):
        sd, sv, sr = ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready") if k == 0 else (f"d{k - 1}", f"v{k - 1}", f"r{k - 1}")
        md, mv, mr = ("m_axis_tdata", "m_axis_tvalid", "m_axis_tready") if k == n - 1 else (f"d{k}", f"v{k}", f"r{k}")
        L += [f"    // {g['what']}",
              f"    {g['module']} {g['inst']} (" + (".clk(clk), .rst_n(rst_n)," if g["clk"] else ""),
              f"        .s_tdata({sd}), .s_tvalid({sv}), .s_tready({sr}),",
              f"        .m_tdata({md}), .m_tvalid({mv}), .m_tready({mr}));"]
    L += ["endmodule", "`default_nettype wire", ""]
    return "\n".join(L)


def emit_design(plans: list[MvauPlan], model_hash: str, rom: str = "auto") -> dict[str, str]:
    """{file name: Verilog text}: one file per module, the top last; ``rom``: :func:`rom_style`."""
    files = {}
    if plans[0].in_beat_bits is not None:
        files[f"{PREFIX}_instream.v"] = emit_instream(plans[0], model_hash)
    for i, p in enumerate(plans):
        if p.conv:
            files[f"{module_name(p)}_swg.v"] = emit_swg(p, model_hash)
        files[f"{module_name(p)}.v"] = emit_layer(p, i, model_hash, rom)
        if p.conv:
            files[f"{module_name(p)}_gather.v"] = emit_gather(p, model_hash)
        if p.pool:
            files[f"{PREFIX}_{_ident(p.pool['name'])}.v"] = emit_pool(p, model_hash)
    files[f"{PREFIX}_top.v"] = emit_top(plans, model_hash)
    return files


def design_hash(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode() + b"\0" + files[k].encode())
    return h.hexdigest()[:16]
