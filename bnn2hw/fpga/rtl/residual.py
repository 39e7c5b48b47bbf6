# SPDX-License-Identifier: MIT
"""RTL for IR graphs with a residual stream (issue 9's ops): any DAG of ``conv2d``/``dense``
(with a ``threshold`` or a ``requant`` after them), ``requant``, ``threshold`` on the stream,
saturating ``add``, ``avgpool`` (window sum), ``maxpool``, ``flatten`` and a ``dense`` head on
the stream, e.g. tests/residual_graphs.py's resnet8 (issue 15: pixel-streamed, so that a 32x32
resnet8 is as narrow as FINN's dataflow).

Streams. Every image tensor travels as a valid/ready stream of pixels: one pixel of C channels
per beat in raster order (``Tensor.beats`` = H*W), element c at ``[c*EW +: EW]`` (bits 1 = +1,
stream integers two's complement of the op's ``bits``); a 1-D tensor (the pooled vector) is one
beat. Per IR op:

* ``conv2d`` / ``dense`` (+ its ``threshold`` or ``requant``): a conv reads its input pixels
  through :func:`emit_swg_stream` (a line buffer of about KH + 1 rows, the windows read tap by tap), or a
  whole frame through the chain back end's sliding window when the input arrives as frames (one
  frame per s_axis beat, a max-pool's output); then the chain back end's MVAU with FINN's (PE,
  SIMD) folding, one output pixel per beat; a requant runs inside the MVAU, per PE on each
  finished result (``emit.requant_rows``: per channel ``clip((acc * m + b) >>> shift)``, one
  multiplier per PE, as FINN places the activation in its MVAU). A following ``maxpool``: gather
  and the chain back end's pool module (frames).
* ``threshold`` on the stream: one pixel per beat and per clock (:func:`emit_threshold`).
  ``add`` and global ``avgpool``: serial when a beat has enough clocks (:func:`serial_lanes`: a
  few adders over the C elements in groups, one group per clock, the input beat read in place;
  :func:`emit_add_serial`, :func:`emit_global_pool_serial`), else one beat per clock
  (:func:`emit_add`, :func:`emit_global_pool`: C accumulators); a windowed ``avgpool`` packs the
  frame (:func:`emit_pack`) and sums whole windows (:func:`emit_avgpool`). A pixel stream read
  only by dense layers is packed into one frame.
* A tensor read by several ops goes through a fork: one shared data register when a beat has 2+
  clocks (:func:`emit_fork_shared`), else one output and skid register per reader
  (:func:`emit_fork`). Each ``add`` input that is not the late one goes through a FIFO
  (:func:`emit_fifo`, block RAM when large; :func:`emit_fifo_words` when storing a wide beat as
  several narrower words takes fewer BRAM18s) as deep as the late path can hold beats from the two
  paths' common tensor, + :data:`FIFO_SLACK` (:func:`_holds`: line buffers and registers).
  Without it the fork would wait for the add, and the long branch would starve.

Ready paths (Fmax): every new module's s_tready is a register or an AND of registers (skid
registers), or, for the add (a join), the AND of both inputs' valids with a register.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ... import __version__
from ...errors import Bnn2hwError
from ...ir.graph import INPUT, Graph
from .emit import (
    PREFIX,
    _ident,
    _sconst,
    emit_gather,
    emit_instream,
    emit_layer,
    emit_pool,
    emit_swg,
    frame_pack_body,
    module_name,
)
from .plan import MvauPlan, bitlen, mvau_plan, signed_bits
from .sim import Probe

RESIDUAL_OPS = ("requant", "add", "avgpool")


def needs_residual(graph: Graph) -> bool:
    """True when the graph has stream ops or branches: the chain back end cannot place it."""
    return any(l.op in RESIDUAL_OPS for l in graph.layers) or bool(graph.branches())


@dataclass
class Tensor:
    """One IR tensor as it travels in the design."""

    name: str
    shape: tuple  # (H, W, C) or (F,)
    kind: str  # "u8" | "bits" | "fixed"
    width: int  # bits per element
    lat: int  # analytical cycle (after the input handshake) at which the whole tensor is ready

    @property
    def signed(self) -> bool:
        return self.kind == "fixed"

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

    beats: int = 1  # beats per frame: H*W for a pixel stream (one pixel of C channels per beat), 1 for a frame

    @property
    def frame_width(self) -> int:
        return self.n * self.width

    @property
    def beat_elems(self) -> int:
        return self.n // self.beats

    @property
    def beat_width(self) -> int:
        return self.beat_elems * self.width


@dataclass
class Node:
    """One stage of the dataflow: instances chained inside it, one input stream per read tensor
    (several for an add), one output stream."""

    name: str
    reads: list  # IR tensor names
    out: str  # IR tensor name it produces
    modules: dict = field(default_factory=dict)  # file -> Verilog
    chain: list = field(default_factory=list)  # [(module, inst, in width, out width[, clocked])] in order
    join: dict | None = None  # add: {"module", "inst"} with s0/s1 ports
    plan: MvauPlan | None = None


def _hdr(what: str, model_hash: str) -> list[str]:
    return [f"// {what}", f"// generated by bnn2hw {__version__} from model {model_hash}", "`default_nettype none"]


def _frame_ports(iw: int, ow: int, inputs: int = 1) -> list[str]:
    L = ["    input  wire clk,", "    input  wire rst_n,"]
    if inputs == 1:
        L += [f"    input  wire [{iw - 1}:0] s_tdata,", "    input  wire s_tvalid,", "    output wire s_tready,"]
    else:
        for k in range(inputs):
            L += [f"    input  wire [{iw[k] - 1}:0] s{k}_tdata,", f"    input  wire s{k}_tvalid,",
                  f"    output wire s{k}_tready,"]
    L += [f"    output reg  [{ow - 1}:0] m_tdata,", "    output reg  m_tvalid,", "    input  wire m_tready"]
    return L


def _bounds(bits: int, attrs: dict) -> tuple[int, int]:
    """Saturation bounds of a requant/add: the op's optional ``lo``/``hi``, else the ``bits`` range."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return (lo if attrs.get("lo") is None else int(attrs["lo"]), hi if attrs.get("hi") is None else int(attrs["hi"]))


def _sext(sig: str, i: int, b: int, w: int) -> str:
    """Element i (b-bit signed) of the packed vector sig, sign-extended to w >= b bits (Verilog)."""
    el = f"{sig}[{i * b + b - 1}:{i * b}]"
    return f"{{{{{w - b}{{{sig}[{i * b + b - 1}]}}}}, {el}}}" if w > b else el


def _skid(r: str, w: int, push: str = "take", m: str = "m", skid: str = "skid") -> list[str]:
    """Output stage of a stream module: ``{m}_tdata`` / ``{m}_tvalid`` registers plus one skid
    register, so that one beat per clock passes and the module's ready (``!{skid}_v``) is a
    register: no ready path runs through the module. ``push``: the beat ``r`` is produced."""
    return [f"    reg [{w - 1}:0] {skid};",
            f"    reg {skid}_v;  // {skid} holds a beat the consumer did not take yet",
            "    always @(posedge clk) begin",
            f"        if (!rst_n) begin {m}_tvalid <= 1'b0; {skid}_v <= 1'b0; end",
            f"        else if (!{m}_tvalid || {m}_tready) begin",
            f"            if ({skid}_v) begin {m}_tvalid <= 1'b1; {skid}_v <= 1'b0; end",
            f"            else {m}_tvalid <= {push};",
            f"        end else if ({push}) {skid}_v <= 1'b1;",
            "    end",
            "    always @(posedge clk) begin",
            f"        if (!{m}_tvalid || {m}_tready) begin",
            f"            if ({skid}_v) {m}_tdata <= {skid};",
            f"            else if ({push}) {m}_tdata <= {r};",
            f"        end else if ({push}) {skid} <= {r};",
            "    end"]


def _tail() -> list[str]:
    return ["endmodule", "`default_nettype wire", ""]


def emit_threshold(mod: str, what: str, t: Tensor, thr, direction, model_hash: str) -> str:
    """IR ``threshold`` on a stream tensor, one beat (a pixel of C channels, or a whole 1-D
    tensor) per clock: bit = (q >= thr_c) for direction +1, (q <= thr_c) for -1 (ties give +1), as
    ``(q >= T) xor inv`` with T = thr or thr + 1 clamped to [lo, hi + 1]; element i of a beat is
    channel i mod C (C comparators for a pixel stream)."""
    b, C, E = t.width, t.shape[-1], t.beat_elems
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    L = _hdr(f"{what}: threshold on {E} stream integers of {b} bits ({C} channels) per beat -> {E} bits, "
             f"{t.beats} beats per frame", model_hash)
    L += [f"module {mod} ("] + _frame_ports(E * b, E) + [");"]
    L += [f"    wire [{E - 1}:0] r;"]
    for c in range(C):
        d = int(direction[c])
        T = int(np.clip(int(thr[c]) + (0 if d > 0 else 1), lo, hi + 1))
        L.append(f"    localparam signed [{b}:0] T{c} = {_sconst(T, b + 1)};  // thr {int(thr[c])}, direction {d:+d}")
    L += ["    genvar i;", "    generate"]
    for c in range(C):
        d = int(direction[c])
        L += [f"        for (i = {c}; i < {E}; i = i + {C}) begin : g_c{c}",
              (f"            assign r[i] = {'' if d > 0 else '!'}($signed({{s_tdata[i*{b} + {b - 1}], "
              f"s_tdata[i*{b} +: {b}]}}) >= T{c});"),
              "        end"]
    L += ["    endgenerate", "    assign s_tready = !skid_v;", "    wire take = s_tvalid && s_tready;"]
    L += _skid("r", E) + _tail()
    return "\n".join(L)


def emit_add(mod: str, what: str, a: Tensor, b: Tensor, bits: int, model_hash: str,
             bounds: tuple[int, int] | None = None) -> str:
    """IR ``add``: element-wise ``clip(a + b, lo, hi)`` on one beat of each input per clock (a
    join: both beats are taken in one cycle; s_tready = both valid and the skid stage empty).
    Two stages for Fmax: the sums, then the clipped sums, each an output and a skid register."""
    E, wa, wb = a.beat_elems, a.width, b.width
    sw = max(wa, wb, bits) + 1
    lo, hi = bounds or (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    L = _hdr(f"{what}: saturating add of two streams of {E} elements per beat ({wa} + {wb} bits) -> {bits} bits "
             f"in [{lo}, {hi}], {a.beats} beats per frame", model_hash)
    L += [f"module {mod} ("] + _frame_ports([E * wa, E * wb], E * bits, 2) + [");"]
    L += ["    wire take = s0_tvalid && s1_tvalid && !skid_v;  // join: one beat of each at once",
          "    assign s0_tready = take;",
          "    assign s1_tready = take;",
          f"    wire [{E * sw - 1}:0] v;  // the sums",
          f"    wire [{E * bits - 1}:0] r;  // the clipped sums",
          f"    reg [{E * sw - 1}:0] a_tdata;",
          "    reg a_tvalid;",
          "    wire a_tready = !skid2_v;",
          "    wire a_take = a_tvalid && a_tready;",
          "    genvar i;", "    generate",
          f"        for (i = 0; i < {E}; i = i + 1) begin : g_e",
          f"            assign v[i*{sw} +: {sw}] = $signed(s0_tdata[i*{wa} +: {wa}]) + $signed(s1_tdata[i*{wb} +: {wb}]);",
          f"            wire signed [{sw - 1}:0] a = a_tdata[i*{sw} +: {sw}];",
          (f"            assign r[i*{bits} +: {bits}] = (a < {_sconst(lo, sw)}) ? {bits}'h{lo & ((1 << bits) - 1):x} : "
          f"(a > {_sconst(hi, sw)}) ? {bits}'h{hi & ((1 << bits) - 1):x} : a[{bits - 1}:0];"),
          "        end",
          "    endgenerate",
          "    // stage 1: the sums"]
    L += _skid("v", E * sw, "take", "a", "skid") + ["    // stage 2: the clipped sums"]
    L += _skid("r", E * bits, "a_take", "m", "skid2") + _tail()
    return "\n".join(L)


SERIAL_OVERHEAD = 4  # clocks per beat of a serial element-wise module beyond its G issue clocks


def serial_lanes(E: int, cycles_per_beat: int) -> int:
    """Lanes (adders) of a serial element-wise module on E elements per beat that has
    ``cycles_per_beat`` clocks per beat (the design's interval / the tensor's beats): the fewest
    lanes L whose G = ceil(E / L) groups fit, G + :data:`SERIAL_OVERHEAD` <= cycles_per_beat, with
    G >= 2; 0 when none does (then the one-beat-per-clock module is used)."""
    for lanes in range(1, E):
        G = -(-E // lanes)
        if G < 2:
            break
        if G + SERIAL_OVERHEAD <= cycles_per_beat:
            return lanes
    return 0


def _serial_ctrl(G: int, valid: str, ready: list[str], done: str) -> list[str]:
    """Control of a serial element-wise module: the beat on the input bus is read in place, group
    g = 0 .. G-1 one per clock (AXI-Stream keeps tdata stable while tvalid and not tready), and
    taken with its last group (``ready`` ports = run and g = G-1: registers only). Stage 1 holds
    the group's operands (``v1``, ``l1`` = it is the beat's last group); ``done`` (an expression
    of stage 1) marks a finished output, which ``full`` holds until it moves to m_tdata. A new
    beat starts once the previous one has left stage 1 and no finished output waits: G + 2 or
    G + 3 clocks per beat (<= G + SERIAL_OVERHEAD)."""
    gw = bitlen(G - 1)
    L = [f"    reg [{gw - 1}:0] g;  // group issued in this cycle while run",
         "    reg run;  // issuing the groups of the beat on the input bus",
         "    reg v1, l1;  // stage 1 holds a group / the beat's last",
         "    reg full;  // a finished output waits for m_tdata",
         "    wire busy = run || v1 || full;",
         f"    wire start = !busy && {valid};",
         "    wire issue = run || start;",
         f"    wire g_last = (g == {gw}'d{G - 1});"]
    L += [f"    assign {r} = run && g_last;  // the beat leaves the bus with its last group" for r in ready]
    L += ["    wire move = full && (!m_tvalid || m_tready);",
          "    always @(posedge clk) begin",
          "        if (!rst_n) begin",
          f"            run <= 1'b0; g <= {gw}'d0; v1 <= 1'b0; full <= 1'b0; m_tvalid <= 1'b0;",
          "        end else begin",
          "            if (issue) begin",
          "                run <= !g_last;",
          f"                g <= g_last ? {gw}'d0 : g + {gw}'d1;",
          "            end",
          "            v1 <= issue;",
          f"            if ({done}) full <= 1'b1;",
          "            else if (move) full <= 1'b0;",
          "            if (move) m_tvalid <= 1'b1;",
          "            else if (m_tready) m_tvalid <= 1'b0;",
          "        end",
          "    end",
          "    always @(posedge clk) l1 <= g_last;"]
    return L


def _group_select(bus: str, E: int, w: int, lanes: int, G: int, name: str) -> list[str]:
    """``{name}``: lanes x w bits, group g of the E elements of ``bus`` (zero padded to G * lanes)."""
    pad = G * lanes - E
    full = f"{{{pad * w}'d0, {bus}}}" if pad else bus
    return [f"    wire [{G * lanes * w - 1}:0] {name}_all = {full};",
            f"    wire [{lanes * w - 1}:0] {name}_g = {name}_all[g*{lanes * w} +: {lanes * w}];"]


def emit_add_serial(mod: str, what: str, a: Tensor, b: Tensor, bits: int, model_hash: str, lanes: int,
                    bounds: tuple[int, int] | None = None) -> str:
    """IR ``add`` (element-wise ``clip(a + b, lo, hi)``) as :func:`emit_add`, time-multiplexed:
    ``lanes`` adders take the E elements of a beat in G = ceil(E / lanes) groups, one group per
    clock, reading both input beats in place (:func:`_serial_ctrl`; both taken at once, a join);
    the clipped group shifts into an output register (group 0 ends at the bottom), which moves to
    m_tdata when the beat is done. For streams with many clocks per pixel (a 32x32 resnet8 at
    1,000 frames/s has 96 to 1,536): no E-wide adders and no E-wide skid registers."""
    E, wa, wb = a.beat_elems, a.width, b.width
    G = -(-E // lanes)
    sw = max(wa, wb, bits) + 1
    lo, hi = bounds or (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    ow = G * lanes * bits
    L = _hdr(f"{what}: saturating add of two streams of {E} elements per beat ({wa} + {wb} bits) -> {bits} bits "
             f"in [{lo}, {hi}], {a.beats} beats per frame; {lanes} adder(s) over {G} groups (serial)", model_hash)
    L += [f"module {mod} ("] + _frame_ports([E * wa, E * wb], E * bits, 2) + [");"]
    L += _serial_ctrl(G, "s0_tvalid && s1_tvalid", ["s0_tready", "s1_tready"], "v1 && l1")
    L += _group_select("s0_tdata", E, wa, lanes, G, "a") + _group_select("s1_tdata", E, wb, lanes, G, "b")
    L += [f"    reg [{lanes * wa - 1}:0] a1;", f"    reg [{lanes * wb - 1}:0] b1;",
          "    always @(posedge clk) begin a1 <= a_g; b1 <= b_g; end",
          f"    wire [{lanes * bits - 1}:0] y;  // the clipped sums of the group in stage 1",
          "    genvar j;", "    generate", f"        for (j = 0; j < {lanes}; j = j + 1) begin : g_lane",
          f"            wire signed [{sw - 1}:0] v = $signed(a1[j*{wa} +: {wa}]) + $signed(b1[j*{wb} +: {wb}]);",
          (f"            assign y[j*{bits} +: {bits}] = (v < {_sconst(lo, sw)}) ? {bits}'h{lo & ((1 << bits) - 1):x} : "
           f"(v > {_sconst(hi, sw)}) ? {bits}'h{hi & ((1 << bits) - 1):x} : v[{bits - 1}:0];"),
          "        end", "    endgenerate"]
    if ow > E * bits:
        L.append("    /* verilator lint_off UNUSEDSIGNAL */  // the padded lanes' results")
    L += [f"    reg [{ow - 1}:0] sr;  // group g lands at the top and moves down: group 0 ends at the bottom",
          "    always @(posedge clk) if (v1) sr <= " + (f"{{y, sr[{ow - 1}:{lanes * bits}]}};"),
          f"    always @(posedge clk) if (move) m_tdata <= sr[{E * bits - 1}:0];"]
    if ow > E * bits:
        L.append("    /* verilator lint_on UNUSEDSIGNAL */")
    return "\n".join(L + _tail())


def emit_global_pool_serial(mod: str, what: str, t: Tensor, ow_: int, model_hash: str, lanes: int) -> str:
    """IR global ``avgpool`` (the SUM over the H*W pixels of a frame) as :func:`emit_global_pool`,
    time-multiplexed: ``lanes`` adders take the C channels of a pixel in G = ceil(C / lanes)
    groups, one per clock, reading the pixel in place (:func:`_serial_ctrl`). The C sums live in a
    ring of G slots that rotates by one slot per group (slot of group g at the bottom when group g
    is added: new top = bottom + x_g, or x_g on a frame's first pixel), so no sum is selected by a
    multiplexer; after the frame's last pixel the ring holds the sums in order and moves to
    m_tdata."""
    H, W, C = t.shape
    b, V = t.width, H * W
    G = -(-C // lanes)
    cw = bitlen(V - 1)
    rw = G * lanes * ow_
    sl = lanes * ow_
    L = _hdr(f"{what}: global window sum over {H}x{W} pixels of {C} channels of {b} bits, one pixel per beat -> "
             f"{C} sums of {ow_} bits per frame; {lanes} adder(s) over {G} groups (serial)", model_hash)
    L += [f"module {mod} ("] + _frame_ports(C * b, C * ow_) + [");"]
    L += [f"    reg [{cw - 1}:0] pix;  // pixel of the frame in stage 1",
          "    reg first1;  // stage 1's pixel is the frame's first"]
    L += _serial_ctrl(G, "s_tvalid", ["s_tready"], f"v1 && l1 && (pix == {cw}'d{V - 1})")
    L += _group_select("s_tdata", C, b, lanes, G, "x")
    L += [f"    reg [{lanes * b - 1}:0] x1;",
          "    always @(posedge clk) x1 <= x_g;",
          f"    reg [{rw - 1}:0] ring;  // G slots of {lanes} sums; the slot of the group in stage 1 at the bottom",
          f"    wire [{sl - 1}:0] nxt;"]
    for j in range(lanes):
        x = _sext("x1", j, b, ow_)
        L.append(f"    assign nxt[{j * ow_} +: {ow_}] = (first1 ? {ow_}'d0 : ring[{j * ow_} +: {ow_}]) + {x};")
    L += ["    always @(posedge clk) begin",
          f"        if (!rst_n) begin pix <= {cw}'d0; first1 <= 1'b1; end",
          (f"        else if (v1 && l1) begin pix <= (pix == {cw}'d{V - 1}) ? {cw}'d0 : pix + {cw}'d1; "
           f"first1 <= (pix == {cw}'d{V - 1}); end"),
          "        if (v1) ring <= " + (f"{{nxt, ring[{rw - 1}:{sl}]}};" if G > 1 else "nxt;"),
          "    end"]
    if rw > C * ow_:
        L.append("    /* verilator lint_off UNUSEDSIGNAL */  // the padded lanes' sums")
    L += [f"    always @(posedge clk) if (move) m_tdata <= ring[{C * ow_ - 1}:0];"]
    if rw > C * ow_:
        L.append("    /* verilator lint_on UNUSEDSIGNAL */")
    return "\n".join(L + _tail())


def emit_fork_shared(mod: str, fw: int, n: int, model_hash: str) -> str:
    """One stream to ``n`` readers through ONE data register (all readers see the same beat): a
    beat is taken when every reader has taken the previous one (s_tready = no reader pending, a
    compare of registers), so a beat passes every 2 clocks at best: for streams with at least 2
    clocks per beat, in place of :func:`emit_fork`'s per-reader output and skid registers."""
    L = _hdr(f"fork: one stream of {fw}-bit beats to {n} readers, one shared data register (a beat per 2+ clocks)",
             model_hash)
    L += [f"module {mod} (", "    input  wire clk,", "    input  wire rst_n,",
          f"    input  wire [{fw - 1}:0] s_tdata,", "    input  wire s_tvalid,", "    output wire s_tready,"]
    for k in range(n):
        L += [f"    output wire [{fw - 1}:0] m{k}_tdata,", f"    output wire m{k}_tvalid,",
              f"    input  wire m{k}_tready" + ("," if k < n - 1 else "")]
    L += [");",
          f"    reg [{fw - 1}:0] d;",
          f"    reg [{n - 1}:0] pend;  // reader k has not taken d yet",
          f"    assign s_tready = (pend == {n}'d0);",
          "    wire take = s_tvalid && s_tready;",
          f"    wire [{n - 1}:0] got = {{" + ", ".join(f"m{k}_tvalid && m{k}_tready" for k in reversed(range(n))) + "};",
          "    always @(posedge clk) begin",
          f"        if (!rst_n) pend <= {n}'d0;",
          f"        else if (take) pend <= {{{n}{{1'b1}}}};",
          "        else pend <= pend & ~got;",
          "        if (take) d <= s_tdata;",
          "    end"]
    for k in range(n):
        L += [f"    assign m{k}_tdata = d;", f"    assign m{k}_tvalid = pend[{k}];"]
    return "\n".join(L + _tail())


def emit_global_pool(mod: str, what: str, t: Tensor, ow_: int, model_hash: str) -> str:
    """IR ``avgpool`` with one window over the whole image (kernel = H = W): the SUM over the
    H*W pixels of a frame (no division), one pixel of C channels per beat and per clock into C
    accumulators of ``ow_`` bits; one output beat (C sums) per frame."""
    H, W, C = t.shape
    b, V = t.width, H * W
    cw = bitlen(V - 1)
    L = _hdr(f"{what}: global window sum over {H}x{W} pixels of {C} channels of {b} bits, one pixel per beat -> "
             f"{C} sums of {ow_} bits per frame", model_hash)
    L += [f"module {mod} ("] + _frame_ports(C * b, C * ow_) + [");"]
    L += ["    assign s_tready = !skid_v;",
          "    wire take = s_tvalid && s_tready;",
          f"    reg [{cw - 1}:0] pix;  // pixel index of the next beat in its frame",
          f"    wire pix_last = (pix == {cw}'d{V - 1});",
          f"    reg [{C * ow_ - 1}:0] acc;",
          f"    wire [{C * ow_ - 1}:0] r;"]
    for c in range(C):
        x = _sext("s_tdata", c, b, ow_)
        L.append(f"    assign r[{c * ow_} +: {ow_}] = (pix == {cw}'d0 ? {ow_}'d0 : acc[{c * ow_} +: {ow_}]) + {x};")
    L += ["    always @(posedge clk) begin",
          f"        if (!rst_n) pix <= {cw}'d0;",
          f"        else if (take) pix <= pix_last ? {cw}'d0 : pix + {cw}'d1;",
          "        if (take) acc <= r;",
          "    end",
          "    wire push = take && pix_last;"]
    L += _skid("r", C * ow_, "push") + _tail()
    return "\n".join(L)


def emit_avgpool(mod: str, what: str, t: Tensor, k: int, stride: int, ow_: int, model_hash: str) -> tuple[str, tuple]:
    """IR ``avgpool`` on a whole frame per beat: the SUM of every k x k window (no division),
    ``ow_`` bits per sum (windowed pools; the global pool is :func:`emit_global_pool`)."""
    H, W, C = t.shape
    b = t.width
    OH, OW = (H - k) // stride + 1, (W - k) // stride + 1
    N = OH * OW * C
    L = _hdr(f"{what}: {k}x{k} window sums, stride {stride}: {H}x{W}x{C} of {b} bits -> {OH}x{OW}x{C} of {ow_} bits",
             model_hash)
    used = {(py * stride + ky) * W + px * stride + kx for py in range(OH) for px in range(OW)
            for ky in range(k) for kx in range(k)}
    if len(used) < H * W:
        L.append("/* verilator lint_off UNUSEDSIGNAL */  // pixels no window covers (floor division)")
    L += [f"module {mod} ("] + _frame_ports(t.n * b, N * ow_) + [");"]
    L += ["    assign s_tready = !m_tvalid;",
          "    wire take = s_tvalid && s_tready;",
          f"    wire [{N * ow_ - 1}:0] r;"]
    for py in range(OH):
        for px in range(OW):
            for c in range(C):
                terms = []
                for ky in range(k):
                    for kx in range(k):
                        e = ((py * stride + ky) * W + px * stride + kx) * C + c
                        terms.append(_sext("s_tdata", e, b, ow_))
                o = (py * OW + px) * C + c
                L.append(f"    assign r[{o * ow_ + ow_ - 1}:{o * ow_}] = " + " + ".join(terms) + ";")
    L += ["    always @(posedge clk) begin",
          "        if (!rst_n) m_tvalid <= 1'b0;",
          "        else if (take) m_tvalid <= 1'b1;",
          "        else if (m_tready) m_tvalid <= 1'b0;",
          "        if (take) m_tdata <= r;",
          "    end"] + _tail()
    if len(used) < H * W:
        L.insert(len(L) - 2, "/* verilator lint_on UNUSEDSIGNAL */")
    return "\n".join(L), (OH, OW, C)


def swg_line_buffer(conv: dict) -> tuple[int, int]:
    """The line buffer of :func:`emit_swg_stream` for one conv's geometry: (rows, depth).

    ``depth`` (pixels) is a power of two, so that every ring address wraps for free; input row g
    (counted over all frames) starts at address ``g*W mod depth``, and the ring holds ``rows =
    depth // W`` whole rows. ``depth`` is the smallest power of two holding ``need`` rows,
    ``need = max(KH + S, 2*KH - 2*P + m)`` with m = (H + 2P - KH) mod S:

    * KH + S: while the reader works on an output row (KH rows in use), the writer fills the S
      rows that the next output row adds;
    * 2*KH - 2*P + m: during a frame's last output row, the rows from its top to the frame's last
      row (KH - P + m) are held while the writer already fills the next frame's first KH - P rows;
    * plus one row when the writer is the slower side or nearly so (OW*KH*KW < S*W + 4 cycles per
      output row): the reader starts a row about three cycles after its last input row is written
      and releases rows when it ends, so the writer needs one row of slack not to wait.

    So neither side waits for the other in steady state (cycles per frame stay max(H*W,
    OH*OW*KH*KW)); FINN's ConvolutionInputGenerator keeps about KH rows plus one for the same
    reason. E.g. 3x3, padding 1, stride 1: 4 rows; stride 2: 5 rows; 1x1 stride 2: 4 rows."""
    H, W, KH, KW, S, P = conv["in_h"], conv["in_w"], conv["kh"], conv["kw"], conv["stride"], conv.get("pad", 0)
    m = (H + 2 * P - KH) % S
    need = max(KH + S, 2 * KH - 2 * P + m) + (1 if conv["ow"] * KH * KW < S * W + 4 else 0)
    depth = 1 << bitlen(need * W - 1)
    return depth // W, depth


def _swg_row_table(conv: dict) -> list[tuple[int, int, int]]:
    """Per output row oy of a streaming window: (nr, rs, nx) in input rows, where
    ``top(oy) = max(0, oy*S - P)`` is its first real input row, ``nr`` = how many real rows it
    reads (top .. min(H-1, oy*S - P + KH - 1)), ``rs`` = the rows released when it ends
    (top(oy+1) - top(oy); for the last row of a frame: H - top, the frame's remaining rows, read
    or not), ``nx = rs + nr(next row)``: rows that must be written, counted from this row's top,
    before the next output row may start."""
    H, KH, S, OH = conv["in_h"], conv["kh"], conv["stride"], conv["oh"]
    P = conv.get("pad", 0)

    def top(oy: int) -> int:
        return max(0, oy * S - P)

    def nr(oy: int) -> int:
        return min(H - 1, oy * S - P + KH - 1) - top(oy) + 1

    rows = []
    for oy in range(OH):
        rs = top(oy + 1) - top(oy) if oy < OH - 1 else H - top(oy)
        rows.append((nr(oy), rs, rs + nr((oy + 1) % OH)))
    return rows


def emit_swg_stream(p: MvauPlan, model_hash: str) -> str:
    """Sliding window on a pixel stream (one pixel of C channels per beat, raster order) through a
    line buffer (FINN's ConvolutionInputGenerator): a ring of ``rows`` input rows
    (:func:`swg_line_buffer`, about (KH + 1) * W pixels; block RAM when large) that the writer
    fills one pixel per beat while the reader reads the windows of earlier rows tap by tap (KH*KW
    registered reads per window; padded taps read as 0: the bit 0 = activation -1 on a binary
    input, FINN's FMPadding, or the pixel 0) and assembles one window per beat, element
    (ky, kx, c) at ``[((ky*KW + kx)*C + c)*IW +: IW]`` (im2col's order, as :func:`emit_swg`).

    Flow control in whole rows: ``occ`` = input rows written minus rows released. The writer
    takes pixels while ``occ < rows`` (s_tready is that compare, registered, computed as if a
    pixel offered at a row's last column were taken: s_tvalid does not reach it); the reader starts
    an output row once its rows are written (``occ >= nr``) and releases the rows no later output
    row needs when it ends (:func:`_swg_row_table`); the rows below a frame's last window (stride
    > 1) are written and released unread.

    Read path, for Fmax (no multiplier, no adder before the RAM address): the tap address is a
    register stepped by constants (+1 along a window row, + W - KW + 1 to the window's next row,
    from the window's or the output row's first address by S, S*W or a frame's row step times W;
    all modulo the power-of-two ring); the padding test compares registered row/column counters
    and is registered beside the RAM read; the window is assembled from registered taps. The
    per-row constants are registered from the output row counter, and the reader's "next row may
    start" decision is a register computed a cycle ahead.

    Output: a window's last tap is issued only when the window register is empty (registers only,
    so the consumer's ready does not reach the read path; with KH*KW >= 3 taps per window this
    costs no cycle); a 1x1 window (one tap) goes through the output register and a 2-deep queue
    with a count of the windows issued and not taken (at most 3), so that one window per clock
    passes (before this line buffer, a 1x1 window took two cycles).

    Cycles per frame: max(H*W written, OH*OW*KH*KW read); an output row needs at least three
    cycles for the next to start without a gap (only when OW*KH*KW < 3: e.g. W = 1)."""
    c = p.conv
    H, W, C, KH, KW, S, OH, OW = (c[k] for k in ("in_h", "in_w", "C", "kh", "kw", "stride", "oh", "ow"))
    P = c.get("pad", 0)
    EW, KK = C * p.IW, KH * KW
    R, N = swg_line_buffer(c)
    k = bitlen(N - 1)
    table = _swg_row_table(c)
    ob = signed_bits(-max(rs for _, rs, _ in table), max([R + rs + 2 for _, rs, _ in table] + [nx for *_, nx in table])) + 1
    style = "block" if N * EW >= 4096 and N > 16 else "distributed"

    def u(w: int, v: int) -> str:
        return f"{w}'d{v}"

    kxw, kyw, oxw, oyw, wxw = bitlen(KW - 1), bitlen(KH - 1), bitlen(OW - 1), bitlen(OH - 1), bitlen(W - 1)
    L = _hdr(f"streaming sliding window of IR layer {p.name} (conv2d {KH}x{KW}, stride {S}, padding {P}) <- "
             f"{p.source}: {H}x{W} pixels of {C} channels, one per beat -> {OH}x{OW} windows of {KH}x{KW}x{C}, "
             f"one per beat; a line buffer of {R} rows ({N} pixels, {style} RAM)", model_hash)
    L += [f"module {module_name(p)}_swg ("] + _frame_ports(EW, KK * EW) + [");"]
    L += [f"    // input row g (counted over frames), column x at address (g*{W} + x) mod {N}: {R} whole rows",
          f"    (* ram_style = \"{style}\" *) reg [{EW - 1}:0] mem [0:{N - 1}];",
          f"    reg signed [{ob - 1}:0] occ;  // input rows written - rows released (may dip below 0: unread rows)",
          f"    reg signed [{ob - 1}:0] occ1, occ2;  // occ + 1, occ + 2 (kept beside it: no adder before wr_ok)",
          "    reg wr_ok;  // occ < rows: the writer's row slot is free",
          "    // write side: one pixel per beat at consecutive ring addresses",
          "    assign s_tready = wr_ok;",
          "    wire take = s_tvalid && s_tready;",
          f"    reg [{k - 1}:0] waddr;",
          f"    reg [{wxw - 1}:0] wx;  // column of the next pixel",
          f"    wire wrow = take && (wx == {u(wxw, W - 1)});  // a row is complete",
          "    always @(posedge clk) if (take) mem[waddr] <= s_tdata;",
          "    // read side: tap (ky, kx) of window (oy, ox)",
          f"    reg [{kyw - 1}:0] ky;",
          f"    reg [{kxw - 1}:0] kx;",
          f"    reg [{oyw - 1}:0] oy;",
          f"    reg [{oxw - 1}:0] ox;",
          f"    reg [{k - 1}:0] a;  // ring address of the tap being issued",
          f"    reg [{k - 1}:0] aw;  // ... of the window's top-left tap",
          f"    reg [{k - 1}:0] ar;  // ... of the output row's first window's top-left tap",
          f"    wire kx_last = (kx == {u(kxw, KW - 1)});",
          f"    wire ky_last = (ky == {u(kyw, KH - 1)});",
          f"    wire ox_last = (ox == {u(oxw, OW - 1)});",
          f"    wire oy_last = (oy == {u(oyw, OH - 1)});",
          "    wire tap_last = kx_last && ky_last;",
          "    reg tv;  // a tap read is landing",
          "    reg cur_ok;  // the current output row's input rows are written",
          "    reg nxt_ok;  // ... and the next one's (registered a cycle ahead)",
          "    reg [1:0] age;  // cycles since the output row began (saturating): the row's constants are valid at 2",
          f"    reg signed [{ob - 1}:0] nr_q, rs_q, nx_q, rsr_q;  // the output row's constants (_swg_row_table), rs + rows",
          ]
    if KK > 1:
        L += ["    reg tl;  // the landing tap is its window's last",
              "    // the last tap of a window is issued only when the window register will be free when it",
              "    // lands (registers only: the consumer's ready stays out of the read path)",
              "    wire go = cur_ok && (!tap_last || (!(tv && tl) && !m_tvalid));",
              "    always @(posedge clk) tl <= rst_n && go && tap_last;"]
    else:
        L += ["    // one tap per window: windows issued and not taken (read pipeline, m_tdata, 2-deep queue) <= 3,",
              "    // a register compare (one window per clock: a window holds its place for 3 cycles)",
              "    reg [1:0] nwin;",
              "    wire out_take = m_tvalid && m_tready;",
              "    wire go = cur_ok && (nwin != 2'd3);",
              "    always @(posedge clk)",
              "        if (!rst_n) nwin <= 2'd0;",
              "        else nwin <= nwin + {1'b0, go} - {1'b0, out_take};"]
    L += [

          "    wire row_end = go && tap_last && ox_last;",
          f"    reg signed [{ob - 1}:0] rel;  // rows released by the output row that ended last cycle (else 0)",
          "    reg wrow_p;  // a row was completed last cycle (counted in occ one cycle late: s_tvalid stays out)",
          "    // the writer's next slot is free when occ + wrow_p - rel (+ 1 for a pixel offered at a row's",
          "    // last column, assumed taken: exact when it is, one cycle of s_tready low when it is not) < rows",
          "    wire ahead = wr_ok && (wx == " + u(wxw, W - 1) + ");",
          "    reg c0, c1, c2;  // occ + i < rows + rel this cycle (registered from next-state values)",
          "    wire signed [" + str(ob - 1) + ":0] occ_n = occ + (wrow_p ? " + _sconst(1, ob) + " : " + _sconst(0, ob) + ") - rel;",
          "    wire signed [" + str(ob - 1) + ":0] occ1_n = occ1 + (wrow_p ? " + _sconst(1, ob) + " : " + _sconst(0, ob) + ") - rel;",
          "    wire signed [" + str(ob - 1) + ":0] occ2_n = occ2 + (wrow_p ? " + _sconst(1, ob) + " : " + _sconst(0, ob) + ") - rel;"]
    # the per-row constants: a case on oy for the rows that differ from the most common one
    common = max(set(table), key=table.count)
    L += ["    always @(posedge clk) begin"]
    odd = [(i, t) for i, t in enumerate(table) if t != common]
    put = lambda t: (f"begin nr_q <= {_sconst(t[0], ob)}; rs_q <= {_sconst(t[1], ob)}; "  # noqa: E731
                     f"nx_q <= {_sconst(t[2], ob)}; rsr_q <= {_sconst(t[1] + R, ob)}; end")
    if odd:
        L += ["        case (oy)"] + [f"            {u(oyw, i)}: {put(t)}" for i, t in odd]
        L += [f"            default: {put(common)}", "        endcase"]
    else:
        L += [f"        {put(common)}"]
    L += ["    end"]
    a0 = (-P * W - P) % N
    L += ["    always @(posedge clk) begin",
          "        if (!rst_n) begin",
          f"            occ <= {_sconst(0, ob)}; occ1 <= {_sconst(1, ob)}; occ2 <= {_sconst(2, ob)};",
          f"            rel <= {_sconst(0, ob)}; c0 <= 1'b1; c1 <= 1'b{int(R > 1)}; c2 <= 1'b{int(R > 2)};",
          f"            wr_ok <= 1'b1; wrow_p <= 1'b0; waddr <= {u(k, 0)}; wx <= {u(wxw, 0)};",
          f"            ky <= {u(kyw, 0)}; kx <= {u(kxw, 0)}; oy <= {u(oyw, 0)}; ox <= {u(oxw, 0)};",
          f"            a <= {u(k, a0)}; aw <= {u(k, a0)}; ar <= {u(k, a0)};",
          "            tv <= 1'b0; cur_ok <= 1'b0; nxt_ok <= 1'b0; age <= 2'd0;",
          "        end else begin",
          "            occ <= occ_n; occ1 <= occ1_n; occ2 <= occ2_n;",
          "            wr_ok <= wrow_p ? (ahead ? c2 : c1) : (ahead ? c1 : c0);",
          "            c0 <= occ_n < (row_end ? rsr_q : " + _sconst(R, ob) + ");",
          "            c1 <= occ1_n < (row_end ? rsr_q : " + _sconst(R, ob) + ");",
          "            c2 <= occ2_n < (row_end ? rsr_q : " + _sconst(R, ob) + ");",
          "            rel <= row_end ? rs_q : " + _sconst(0, ob) + ";",
          "            wrow_p <= wrow;",
          "            if (take) begin",
          f"                waddr <= waddr + {u(k, 1)};",
          f"                wx <= (wx == {u(wxw, W - 1)}) ? {u(wxw, 0)} : wx + {u(wxw, 1)};",
          "            end",
          "            tv <= go;",
          "            age <= row_end ? 2'd0 : (age == 2'd2) ? 2'd2 : age + 2'd1;",
          "            nxt_ok <= !row_end && (age != 2'd0) && (occ >= nx_q);",
          "            if (row_end) cur_ok <= nxt_ok;",
          "            else if (!cur_ok) cur_ok <= (age != 2'd0) && (occ >= nr_q);",
          "            if (go) begin",
          "                if (!kx_last) begin",
          f"                    kx <= kx + {u(kxw, 1)}; a <= a + {u(k, 1)};",
          "                end else if (!ky_last) begin",
          f"                    kx <= {u(kxw, 0)}; ky <= ky + {u(kyw, 1)}; a <= a + {u(k, (W - KW + 1) % N)};",
          "                end else begin",
          f"                    kx <= {u(kxw, 0)}; ky <= {u(kyw, 0)};",
          "                    if (!ox_last) begin",
          f"                        ox <= ox + {u(oxw, 1)}; a <= aw + {u(k, S % N)}; aw <= aw + {u(k, S % N)};",
          "                    end else begin",
          f"                        ox <= {u(oxw, 0)};",
          f"                        oy <= oy_last ? {u(oyw, 0)} : oy + {u(oyw, 1)};",
          f"                        a <= ar + (oy_last ? {u(k, (H - (OH - 1) * S) * W % N)} : {u(k, S * W % N)});",
          f"                        aw <= ar + (oy_last ? {u(k, (H - (OH - 1) * S) * W % N)} : {u(k, S * W % N)});",
          f"                        ar <= ar + (oy_last ? {u(k, (H - (OH - 1) * S) * W % N)} : {u(k, S * W % N)});",
          "                    end",
          "                end",
          "            end",
          "        end",
          "    end",
          f"    reg [{EW - 1}:0] rdata;",
          "    always @(posedge clk) rdata <= mem[a];  // every cycle: tv marks the issued taps"]
    if P:
        yw, xw = bitlen(H + 2 * P - 1), bitlen(W + 2 * P - 1)
        L += ["    // padding: the tap's row and column in padded coordinates, counters stepped with the address",
              f"    reg [{yw - 1}:0] ry, by;  // tap row, window top row",
              f"    reg [{xw - 1}:0] rx, bx;  // tap column, window left column",
              "    reg tpad;  // the landing tap is padding",
              "    always @(posedge clk) begin",
              "        if (!rst_n) begin",
              f"            ry <= {u(yw, 0)}; by <= {u(yw, 0)}; rx <= {u(xw, 0)}; bx <= {u(xw, 0)}; tpad <= 1'b0;",
              "        end else begin",
              (f"            tpad <= (ry < {u(yw, P)}) || (ry >= {u(yw, H + P)}) || (rx < {u(xw, P)})"
               f" || (rx >= {u(xw, W + P)});"),
              "            if (go) begin",
              f"                if (!kx_last) rx <= rx + {u(xw, 1)};",
              f"                else if (!ky_last) begin rx <= bx; ry <= ry + {u(yw, 1)}; end",
              f"                else if (!ox_last) begin rx <= bx + {u(xw, S)}; bx <= bx + {u(xw, S)}; ry <= by; end",
              f"                else begin rx <= {u(xw, 0)}; bx <= {u(xw, 0)};",
              f"                    ry <= oy_last ? {u(yw, 0)} : by + {u(yw, S)}; by <= oy_last ? {u(yw, 0)} : by + {u(yw, S)};",
              "                end",
              "            end",
              "        end",
              "    end",
              f"    wire [{EW - 1}:0] tap = tpad ? {EW}'d0 : rdata;"]
    else:
        L += [f"    wire [{EW - 1}:0] tap = rdata;"]
    if KK == 1:
        L += ["    // the window (one tap) -> m_tdata, or a 2-deep queue behind it while the consumer stalls",
              f"    reg [{EW - 1}:0] q0, q1;",
              "    reg [1:0] qn;  // windows in the queue",
              "    wire out_free = !m_tvalid || m_tready;",
              "    wire pop = out_free && (qn != 2'd0);",
              "    wire push = tv && !(out_free && (qn == 2'd0));  // a landing window that cannot go to m_tdata",
              "    always @(posedge clk) begin",
              "        if (!rst_n) begin m_tvalid <= 1'b0; qn <= 2'd0; end",
              "        else begin",
              "            if (out_free) m_tvalid <= (qn != 2'd0) || tv;",
              "            if (pop && !push) qn <= qn - 2'd1;",
              "            else if (push && !pop) qn <= qn + 2'd1;",
              "        end",
              "        if (out_free) m_tdata <= (qn != 2'd0) ? q0 : tap;",
              "        if (pop) begin q0 <= (qn == 2'd2) ? q1 : tap; q1 <= tap; end",
              "        else if (push) begin if (qn == 2'd0) q0 <= tap; else q1 <= tap; end",
              "    end"] + _tail()
        return "\n".join(L)
    ww = (KK - 1) * EW
    L += [f"    reg [{ww - 1}:0] win;  // taps 0 .. {KK - 2} of the window being read, tap 0 lowest",
          "    always @(posedge clk) if (tv && !tl) win <= " + (f"{{tap, win[{ww - 1}:{EW}]}};" if KK > 2 else "tap;")]
    L += ["    always @(posedge clk) begin",
          "        if (!rst_n) m_tvalid <= 1'b0;",
          "        else if (tv && tl) m_tvalid <= 1'b1;",
          "        else if (m_tready) m_tvalid <= 1'b0;",
          "        if (tv && tl) m_tdata <= {tap, win};",
          "    end"] + _tail()
    return "\n".join(L)


def emit_pack(mod: str, what: str, bw: int, beats: int, model_hash: str) -> str:
    """``beats`` beats of ``bw`` bits (pixels in raster order) -> one frame, beat v at
    ``[v*bw +: bw]`` (for a sliding window or a dense layer, which read whole frames). s_tready is
    registers only (the last beat waits while the previous frame is still in m_tdata)."""
    L = _hdr(f"{what}: {beats} beats of {bw} bits -> one {beats * bw}-bit frame", model_hash)
    L += [f"module {mod} ("] + _frame_ports(bw, beats * bw) + [");"]
    L += frame_pack_body(beats, bw, "beats of the frame being packed")
    return "\n".join(L + _tail())


def emit_fork(mod: str, fw: int, n: int, model_hash: str) -> str:
    """One stream to ``n`` readers at one beat per clock: every reader has its own output
    register and skid register; a beat is taken when every reader's skid register is empty
    (s_tready = an AND of registers), so a reader that stalls holds the others back by at most
    the beat in its skid register."""
    L = _hdr(f"fork: one stream of {fw}-bit beats to {n} readers", model_hash)
    L += [f"module {mod} (", "    input  wire clk,", "    input  wire rst_n,",
          f"    input  wire [{fw - 1}:0] s_tdata,", "    input  wire s_tvalid,", "    output wire s_tready,"]
    for k in range(n):
        L += [f"    output reg  [{fw - 1}:0] m{k}_tdata,", f"    output reg  m{k}_tvalid,",
              f"    input  wire m{k}_tready" + ("," if k < n - 1 else "")]
    L += [");",
          f"    wire take = s_tvalid && s_tready;"]
    for k in range(n):
        L += [f"    // reader {k}"] + _skid("s_tdata", fw, "take", f"m{k}", f"skid{k}")
    L += ["    assign s_tready = " + " && ".join(f"!skid{k}_v" for k in range(n)) + ";"]
    L += _tail()
    return "\n".join(L)


def emit_fifo(mod: str, fw: int, depth: int, model_hash: str) -> str:
    """A FIFO of ``depth`` beats of ``fw`` bits: a memory with a registered read (yosys infers
    block RAM when it is large: ``ram_style``), then a read register and an output register
    (first word fall-through). s_tready = not full and m_tvalid are registers (or a compare of
    one); one beat per clock in and out."""
    aw = bitlen(depth - 1)
    cw = bitlen(depth)
    style = "block" if depth * fw >= 4096 and depth > 16 else "distributed"
    L = _hdr(f"skip-path FIFO: {depth} beats of {fw} bits ({style} RAM)", model_hash)
    L += [f"module {mod} (", "    input  wire clk,", "    input  wire rst_n,",
          f"    input  wire [{fw - 1}:0] s_tdata,", "    input  wire s_tvalid,", "    output wire s_tready,",
          f"    output reg  [{fw - 1}:0] m_tdata,", "    output reg  m_tvalid,", "    input  wire m_tready", ");",
          f"    (* ram_style = \"{style}\" *) reg [{fw - 1}:0] mem [0:{depth - 1}];",
          f"    reg [{aw - 1}:0] wp, rp;",
          f"    reg [{cw - 1}:0] cnt;  // beats in mem",
          f"    reg [{fw - 1}:0] rd_d;  // registered read",
          "    reg rd_v;",
          f"    assign s_tready = (cnt != {cw}'d{depth});",
          "    wire push = s_tvalid && s_tready;",
          "    wire move = rd_v && (!m_tvalid || m_tready);  // read register -> output register",
          f"    wire rd = (cnt != {cw}'d0) && (!rd_v || move);",
          "    always @(posedge clk) if (push) mem[wp] <= s_tdata;",
          "    always @(posedge clk) if (rd) rd_d <= mem[rp];",
          "    always @(posedge clk) if (move) m_tdata <= rd_d;",
          "    always @(posedge clk) begin",
          "        if (!rst_n) begin",
          f"            wp <= {aw}'d0; rp <= {aw}'d0; cnt <= {cw}'d0; rd_v <= 1'b0; m_tvalid <= 1'b0;",
          "        end else begin",
          f"            if (push) wp <= (wp == {aw}'d{depth - 1}) ? {aw}'d0 : wp + {aw}'d1;",
          f"            if (rd) rp <= (rp == {aw}'d{depth - 1}) ? {aw}'d0 : rp + {aw}'d1;",
          "            if (push && !rd) cnt <= cnt + 1'b1;",
          "            else if (rd && !push) cnt <= cnt - 1'b1;",
          "            if (rd) rd_v <= 1'b1;",
          "            else if (move) rd_v <= 1'b0;",
          "            if (move) m_tvalid <= 1'b1;",
          "            else if (m_tready) m_tvalid <= 1'b0;",
          "        end",
          "    end"] + _tail()
    return "\n".join(L)


# BRAM18 (xc7 RAMB18, ECP5 DP16KD) aspect ratios: (word width, depth) of one 18-kbit block
BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))


def bram18_count(depth: int, width: int) -> int:
    """BRAM18s for a ``depth`` x ``width`` memory: the cheapest aspect ratio of
    :data:`BRAM18_SHAPES`, blocks side by side for the width and stacked for the depth (a model
    of yosys' memory mapping; synthesis may pick another tiling)."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM18_SHAPES)


def fifo_words(fw: int, depth: int, clocks_per_beat: int) -> int:
    """Words per beat K for a skip FIFO of ``depth`` beats of ``fw`` bits: 1 (one beat per word,
    :func:`emit_fifo`) unless storing each beat as K words of ceil(fw / K) bits
    (:func:`emit_fifo_words`) takes fewer BRAM18s (:func:`bram18_count` of depth*K words), the
    memory is a block RAM at all, and ``clocks_per_beat`` >= K + 2 (the word FIFO moves a beat in
    K clocks in and K + 2 out; the caller passes the fewest clocks between beats of both add
    inputs, :func:`_beat_spacing`). The smallest K of the fewest BRAM18s. A 512-bit beat in a 512 x 36
    block takes 15 BRAM18 at any depth up to 512; as 15 words of 35 bits, 80 beats take 3."""
    if not (depth * fw >= 4096 and depth > 16) or fw < 2:  # distributed RAM: no BRAM to save
        return 1
    best, best_k = bram18_count(depth, fw), 1
    for k in range(2, min(fw, clocks_per_beat - 2) + 1):
        if (k - 1) * math.ceil(fw / k) >= fw:  # the last word would be empty
            continue
        c = bram18_count(depth * k, math.ceil(fw / k))
        if c < best:
            best, best_k = c, k
    return best_k


def emit_fifo_words(mod: str, fw: int, depth: int, k: int, model_hash: str) -> str:
    """A FIFO of ``depth`` beats of ``fw`` bits that stores each beat as ``k`` >= 2 words of
    W = ceil(fw / k) bits (word j = bits [j*W +: W], the last word zero-padded) in a block RAM of
    depth*k words, so that its BRAM18 count follows its bits (:func:`fifo_words`).

    Write side: the beat on s_tdata (AXI: held while s_tvalid waits for s_tready) is written one
    word per clock through a k:1 multiplexer; s_tready is high on its last word (a register
    compare), so a beat enters in k clocks. A beat starts only when a slot is free (``used`` <
    depth: beats being written, stored or being read). Read side: when the assembly register
    ``asm`` is empty and a whole beat is stored (``avail``), its k words are read on k
    consecutive clocks (registered block-RAM read) and land in their slices of ``asm``, which
    then moves to the output register m_tdata when that is free: the next beat is assembled
    while the consumer holds m_tdata (a serial add reads its beat in place for several clocks),
    k + 2 clocks per beat at most. The reader never stalls inside a beat and frees the beat's
    slot after reading its last word, so the writer (one word per clock, behind it) never
    overwrites an unread word. Order and data are those of :func:`emit_fifo`; capacity ``depth``
    beats + ``asm`` + m_tdata (as :func:`emit_fifo`'s read and output registers)."""
    if k < 2:
        raise Bnn2hwError(f"emit_fifo_words {mod}: {k} words per beat (use emit_fifo for 1)")
    w = -(-fw // k)
    if (k - 1) * w >= fw:
        raise Bnn2hwError(f"emit_fifo_words {mod}: {k} words of {w} bits leave the last word empty ({fw} bits)")
    d = depth * k
    aw, kw, cw = bitlen(d - 1), bitlen(k - 1), bitlen(depth)
    L = _hdr(f"skip-path FIFO: {depth} beats of {fw} bits, each stored as {k} words of {w} bits "
             f"(block RAM of {d} x {w})", model_hash)
    L += [f"module {mod} (", "    input  wire clk,", "    input  wire rst_n,",
          f"    input  wire [{fw - 1}:0] s_tdata,", "    input  wire s_tvalid,", "    output wire s_tready,",
          f"    output reg  [{fw - 1}:0] m_tdata,", "    output reg  m_tvalid,", "    input  wire m_tready", ");",
          f"    (* ram_style = \"block\" *) reg [{w - 1}:0] mem [0:{d - 1}];",
          f"    reg [{aw - 1}:0] wa, ra;  // word addresses",
          f"    reg [{kw - 1}:0] wk, rk, rk_d;  // word of the beat being written / read / landing",
          f"    reg [{cw - 1}:0] used;  // beats being written, stored or being read",
          f"    reg [{cw - 1}:0] avail;  // whole beats stored, not yet being read",
          "    reg rbusy;  // a beat is being read into asm",
          f"    reg [{fw - 1}:0] asm;  // the beat being assembled, then waiting for m_tdata",
          "    reg asm_v;  // asm holds a whole beat",
          "    reg rd_v;  // rd_q holds word rk_d",
          f"    reg [{w - 1}:0] rd_q;  // registered read",
          f"    reg [{w - 1}:0] wword;  // word wk of s_tdata",
          "    always @* begin",
          "        case (wk)"]
    for j in range(k):
        hi = min(fw, (j + 1) * w) - 1
        pad = (j + 1) * w - 1 - hi
        src = f"s_tdata[{hi}:{j * w}]" if hi > j * w else f"s_tdata[{hi}]"
        L += [f"            {kw}'d{j}: wword = " + (f"{{{pad}'d0, {src}}};" if pad else f"{src};")]
    L += [f"            default: wword = {w}'d0;", "        endcase", "    end",
          f"    wire we = s_tvalid && (wk != {kw}'d0 || used != {cw}'d{depth});  // a word of s_tdata is written",
          f"    wire w_first = we && wk == {kw}'d0;",
          f"    wire w_last = we && wk == {kw}'d{k - 1};",
          f"    assign s_tready = (wk == {kw}'d{k - 1});",
          f"    wire r_first = !rbusy && !asm_v && avail != {cw}'d0;",
          "    wire move = asm_v && (!m_tvalid || m_tready);  // asm -> output register",
          f"    wire re = r_first || rk != {kw}'d0;  // a word is read",
          f"    wire r_last = re && rk == {kw}'d{k - 1};",
          f"    wire land_last = rd_v && rk_d == {kw}'d{k - 1};",
          "    always @(posedge clk) if (we) mem[wa] <= wword;",
          "    always @(posedge clk) if (re) rd_q <= mem[ra];",
          "    always @(posedge clk) begin", "        if (rd_v) begin", "            case (rk_d)"]
    for j in range(k):
        hi = min(fw, (j + 1) * w) - 1
        dst = f"asm[{hi}:{j * w}]" if hi > j * w else f"asm[{hi}]"
        src = f"rd_q[{hi - j * w}:0]" if hi > j * w else "rd_q[0]"
        L += [f"                {kw}'d{j}: {dst} <= {src};"]
    L += ["                default: ;", "            endcase", "        end", "    end",
          "    always @(posedge clk) if (move) m_tdata <= asm;",
          "    always @(posedge clk) begin",
          "        if (!rst_n) begin",
          f"            wa <= {aw}'d0; ra <= {aw}'d0; wk <= {kw}'d0; rk <= {kw}'d0; rk_d <= {kw}'d0;",
          f"            used <= {cw}'d0; avail <= {cw}'d0; rbusy <= 1'b0; rd_v <= 1'b0; asm_v <= 1'b0;",
          "            m_tvalid <= 1'b0;",
          "        end else begin",
          f"            if (we) wa <= (wa == {aw}'d{d - 1}) ? {aw}'d0 : wa + {aw}'d1;",
          f"            if (we) wk <= (wk == {kw}'d{k - 1}) ? {kw}'d0 : wk + {kw}'d1;",
          f"            if (re) ra <= (ra == {aw}'d{d - 1}) ? {aw}'d0 : ra + {aw}'d1;",
          f"            if (re) rk <= (rk == {kw}'d{k - 1}) ? {kw}'d0 : rk + {kw}'d1;",
          "            rd_v <= re;",
          "            if (re) rk_d <= rk;",
          "            if (w_first && !r_last) used <= used + 1'b1;",
          "            else if (r_last && !w_first) used <= used - 1'b1;",
          "            if (w_last && !r_first) avail <= avail + 1'b1;",
          "            else if (r_first && !w_last) avail <= avail - 1'b1;",
          "            if (r_first) rbusy <= 1'b1;",
          "            else if (land_last) rbusy <= 1'b0;",
          "            if (land_last) asm_v <= 1'b1;",
          "            else if (move) asm_v <= 1'b0;",
          "            if (move) m_tvalid <= 1'b1;",
          "            else if (m_tready) m_tvalid <= 1'b0;",
          "        end",
          "    end"] + _tail()
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------


@dataclass
class ResidualDesign:
    files: dict  # file name -> Verilog
    plans: list  # every MVAU plan, the input's reader first and the logits layer last
    probes: list  # sim.Probe per IR tensor computed in hardware
    fifos: dict  # add input edge -> FIFO depth (frames), from the analytical model
    interval: int  # analytical cycles per frame (the slowest stage)
    latency: int  # analytical cycles from the input handshake to the logits
    tensors: dict  # IR tensor name -> Tensor


def _interval(p: MvauPlan) -> int:
    """Cycles per frame of an MVAU node: its folds x pixels, and the sliding window's V + 1."""
    return max(p.cycles, p.vectors + 1) if p.conv else p.cycles


def _latency(p: MvauPlan) -> int:
    """Analytical latency of an MVAU node: its cycles plus the pipeline (ROM, tree, accumulate,
    compare/requant, output, window and gather registers)."""
    return p.cycles + p.tree_levels + 8


def plan_residual(graph: Graph, folding: list[dict], model_hash: str, rom: str = "auto",
                  in_beat_bits: int | None = None) -> ResidualDesign:
    """IR DAG + FINN folding (every dense/conv2d by name) -> the design. ``in_beat_bits``: s_axis
    beat width (the chain back end's input stream module assembles the frame); None: one frame
    per beat."""
    if graph.meta.get("fixed_point"):
        raise Bnn2hwError("the RTL back end has no form for the M-BiPer fixed-point value path (periodic ops)")
    fold = {L["name"]: L for L in folding}
    layers = graph.layers
    readers: dict[str, list[int]] = {}
    for i in range(len(layers)):
        for t in graph.inputs_of(i):
            readers.setdefault(t, []).append(i)
    alias: dict[str, str] = {}  # flatten output -> its input tensor

    def src(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def frame_readers(name: str) -> bool:
        """Every reader of tensor ``name`` (through flattens) is a dense layer (reads whole frames;
        a conv reads a pixel stream through :func:`emit_swg_stream`)."""
        ops = []
        for j in readers.get(name, []):
            if layers[j].op == "flatten":
                ops.append(frame_readers(layers[j].name))
            else:
                ops.append(layers[j].op == "dense")
        return bool(ops) and all(ops)

    def pack_if_framed(node: Node, t: Tensor) -> Tensor:
        """A pixel stream read only by dense/conv layers is packed into frames in its producer."""
        if t.beats > 1 and frame_readers(t.name):
            pm = f"{PREFIX}_{_ident(t.name)}_pack"
            node.modules[f"{pm}.v"] = emit_pack(pm, f"frame packer of IR tensor {t.name} ({'x'.join(map(str, t.shape))})",
                                                t.beat_width, t.beats, model_hash)
            node.chain.append((pm, f"u_{_ident(t.name)}_pack", t.beat_width, t.frame_width))
            return Tensor(t.name, t.shape, t.kind, t.width, t.lat + 2, 1)
        return t

    kind0 = graph.input_kind
    ew0 = 8 if kind0 == "u8" else 1
    shape0 = tuple(graph.input_shape)
    # one input pixel per s_axis beat: the input is a pixel stream (no frame assembly)
    pix_in = len(shape0) == 3 and in_beat_bits is not None and in_beat_bits == shape0[2] * ew0
    tensors: dict[str, Tensor] = {INPUT: Tensor(INPUT, shape0, kind0, ew0, 0,
                                                shape0[0] * shape0[1] if pix_in else 1)}
    swg_cycles: dict[str, int] = {}  # conv on a pixel stream -> its window reader's cycles per frame
    # (node, file, text(interval)): element-wise modules whose lanes depend on the design's interval
    deferred: list = []
    nodes: list[Node] = []
    plans: list[MvauPlan] = []
    fused: set[int] = set()
    for i, layer in enumerate(layers):
        if i in fused or layer.op == "affine":
            continue
        ins = [src(t) for t in graph.inputs_of(i)]
        for t in ins:
            if t not in tensors:
                raise Bnn2hwError(f"IR layer {layer.name}: reads {t!r}, which the RTL back end did not place")
        tin = tensors[ins[0]]
        name = _ident(layer.name)
        if layer.op == "flatten":
            alias[layer.name] = ins[0]
            continue
        if layer.op in ("conv2d", "dense"):
            if layer.name not in fold:
                raise Bnn2hwError(f"IR layer {layer.name}: no folding (PE, SIMD) given")
            rd = [j for j in readers.get(layer.name, []) if layers[j].op != "affine"]  # the affine: logits
            nxt = layers[rd[0]] if len(rd) == 1 else None
            thr_layer = nxt if nxt is not None and nxt.op == "threshold" else None
            req = nxt if nxt is not None and nxt.op == "requant" else None
            if layer.attrs["in"] == "fixed" and tin.kind != "fixed":
                raise Bnn2hwError(f"IR layer {layer.name}: reads {tin.kind} data as a stream")
            if tin.beats > 1 and layer.op == "dense":
                raise Bnn2hwError(f"IR layer {layer.name}: reads the pixel stream {tin.name}, which other stream "
                                  "ops read too; the RTL back end packs a pixel stream into frames only when "
                                  "dense layers alone read it")
            in_shape = tin.shape if layer.op == "conv2d" else (tin.n,)
            p, shape = mvau_plan(layer, in_shape, fold[layer.name], thr_layer,
                                 tin.width if layer.attrs["in"] == "fixed" else None)
            node = Node(name, ins, layer.name, plan=p)
            mn = module_name(p)
            if p.conv and tin.beats > 1:  # pixels in: a line buffer, windows read tap by tap
                node.modules[f"{mn}_swg.v"] = emit_swg_stream(p, model_hash)
                node.chain.append((f"{mn}_swg", f"u_{name}_swg", tin.beat_width, p.in_width))
                c = p.conv
                swg_cycles[p.name] = max(c["oh"] * c["ow"] * c["kh"] * c["kw"], c["in_h"] * c["in_w"])
            elif p.conv:
                node.modules[f"{mn}_swg.v"] = emit_swg(p, model_hash)
                node.chain.append((f"{mn}_swg", f"u_{name}_swg", p.frame_in_width, p.in_width))
            if req is not None:  # the requant runs inside the MVAU, per PE (emit.requant_rows)
                bits = int(req.attrs["bits"])
                lo, hi = _bounds(bits, req.attrs)
                p.requant = {"name": req.name, "mult": req.arrays["mult"], "bias": req.arrays["bias"],
                             "shift": int(req.attrs["shift"]), "bits": bits, "lo": lo, "hi": hi}
            node.modules[f"{mn}.v"] = emit_layer(p, len(plans), model_hash, rom)
            node.chain.append((mn, f"u_{name}", p.in_width, p.out_width))
            pix_w, out = p.out_width, layer.name
            if thr_layer is not None:
                fused.add(rd[0])
                out, kind, ew = thr_layer.name, "bits", 1
            elif req is not None:
                fused.add(rd[0])
                out, kind, ew = req.name, "fixed", bits
            else:
                if rd:
                    raise Bnn2hwError(f"IR layer {layer.name}: its accumulators feed "
                                      f"{', '.join(layers[j].name for j in rd)}; the RTL back end places a "
                                      "dense/conv output only into one threshold or requant, or as the logits")
                if p.conv:
                    raise Bnn2hwError(f"IR layer {layer.name}: the last layer must be dense (integer logits)")
                out, kind, ew = layer.name, "logits", p.LW
            beats = 1
            prd = readers.get(out, [])
            pool_next = kind == "bits" and p.conv and len(prd) == 1 and layers[prd[0]].op == "maxpool"
            if p.conv and not pool_next:  # the output stays one pixel per beat
                beats = p.vectors
            elif p.conv:
                node.modules[f"{mn}_gather.v"] = emit_gather(p, model_hash, pix_w)
                node.chain.append((f"{mn}_gather", f"u_{name}_gather", pix_w, p.vectors * pix_w))
            node.out = out
            lat = max(tensors[t].lat for t in ins) + _latency(p) + max(0, swg_cycles.get(p.name, 0) - p.cycles)
            # a max-pool right after a conv's threshold (the chain back end's pool module)
            if pool_next:
                q = layers[prd[0]]
                k, st = q.attrs["kernel"], q.attrs["stride"]
                ph, pw = (shape[0] - k) // st + 1, (shape[1] - k) // st + 1
                p.pool = {"k": k, "stride": st, "ph": ph, "pw": pw, "name": q.name}
                pm = f"{PREFIX}_{_ident(q.name)}"
                node.modules[f"{pm}.v"] = emit_pool(p, model_hash)
                node.chain.append((pm, f"u_{_ident(q.name)}", p.vectors * pix_w, p.frame_out_width, False))
                fused.add(prd[0])
                out, shape = q.name, (ph, pw, shape[2])
                node.out = out
            tensors[out] = pack_if_framed(node, Tensor(out, shape, kind, ew, lat, beats))
            plans.append(p)
            nodes.append(node)
            continue
        node = Node(name, ins, layer.name)
        if layer.op == "threshold":
            if tin.kind != "fixed":
                raise Bnn2hwError(f"IR layer {layer.name}: a threshold on {tin.kind} data that no dense/conv "
                                  "produced directly has no RTL form")
            if np.asarray(layer.arrays["thr"]).ndim != 1:
                raise Bnn2hwError(f"IR layer {layer.name}: per-position thresholds have no RTL form")
            m = f"{PREFIX}_{name}_thr"
            node.modules[f"{m}.v"] = emit_threshold(m, f"IR layer {layer.name} <- {layer.source}", tin,
                                                    layer.arrays["thr"], layer.arrays["direction"], model_hash)
            node.chain.append((m, f"u_{name}", tin.beat_width, tin.beat_elems))
            tensors[layer.name] = pack_if_framed(node, Tensor(layer.name, tin.shape, "bits", 1, tin.lat + 2,
                                                              tin.beats))
        elif layer.op == "add":
            a, b = tensors[ins[0]], tensors[ins[1]]
            if a.kind != "fixed" or b.kind != "fixed" or a.shape != b.shape or a.beats != b.beats:
                raise Bnn2hwError(f"IR layer {layer.name}: add needs two stream tensors of one shape, got "
                                  f"{a.kind} {list(a.shape)} and {b.kind} {list(b.shape)}")
            bits = int(layer.attrs.get("bits", 32))
            m = f"{PREFIX}_{name}_add"
            args = (m, f"IR layer {layer.name} <- {layer.source}", a, b, bits, model_hash)

            def add_text(interval: int, args=args, bounds=_bounds(bits, layer.attrs), beats=a.beats, E=a.beat_elems):
                lanes = serial_lanes(E, interval // beats)
                return (emit_add_serial(*args, lanes=lanes, bounds=bounds) if lanes
                        else emit_add(*args, bounds=bounds))
            deferred.append((node, f"{m}.v", add_text))
            node.join = {"module": m, "inst": f"u_{name}", "widths": [a.beat_width, b.beat_width],
                         "out": a.beat_elems * bits}
            tensors[layer.name] = Tensor(layer.name, a.shape, "fixed", bits, max(a.lat, b.lat) + 2, a.beats)
        elif layer.op == "avgpool":
            if tin.kind != "fixed" or len(tin.shape) != 3:
                raise Bnn2hwError(f"IR layer {layer.name}: avgpool needs a stream image, got {tin.kind} "
                                  f"{list(tin.shape)}")
            k, st = int(layer.attrs["kernel"]), int(layer.attrs["stride"])
            lo, hi = -(1 << (tin.width - 1)), (1 << (tin.width - 1)) - 1
            ow_ = signed_bits(lo * k * k, hi * k * k)
            m = f"{PREFIX}_{name}_avgpool"
            what = f"IR layer {layer.name} (avgpool) <- {layer.source}"
            H, W, C = tin.shape
            if k == H == W and tin.beats == H * W:  # global: C accumulators over the pixel stream
                def pool_text(interval: int, args=(m, what, tin, ow_, model_hash)):
                    lanes = serial_lanes(args[2].shape[2], interval // args[2].beats)
                    return emit_global_pool_serial(*args, lanes=lanes) if lanes else emit_global_pool(*args)
                deferred.append((node, f"{m}.v", pool_text))
                node.chain.append((m, f"u_{name}", tin.beat_width, C * ow_))
                shape = (1, 1, C)
            else:  # windowed: the window sums of a whole frame (packed first if it streams pixels)
                if tin.beats > 1:
                    pm = f"{PREFIX}_{name}_pack"
                    node.modules[f"{pm}.v"] = emit_pack(pm, f"frame packer before {layer.name}", tin.beat_width,
                                                        tin.beats, model_hash)
                    node.chain.append((pm, f"u_{name}_pack", tin.beat_width, tin.frame_width))
                text, shape = emit_avgpool(m, what, tin, k, st, ow_, model_hash)
                node.modules[f"{m}.v"] = text
                node.chain.append((m, f"u_{name}", tin.frame_width, int(np.prod(shape)) * ow_))
            tensors[layer.name] = Tensor(layer.name, shape, "fixed", ow_, tin.lat + 2)
        elif layer.op == "requant":
            raise Bnn2hwError(f"IR layer {layer.name}: a requant that does not follow a dense/conv directly "
                              "has no RTL form yet")
        else:
            raise Bnn2hwError(f"IR layer {layer.name}: op {layer.op!r} has no RTL form")
        nodes.append(node)
    if not plans or tensors[nodes[-1].out].kind != "logits":
        raise Bnn2hwError("the IR graph does not end with a dense layer producing integer logits")
    first = [nd for nd in nodes if INPUT in nd.reads]
    if len(first) != 1 or first[0].plan is None or nodes[0] is not first[0]:
        raise Bnn2hwError("the RTL back end needs exactly one dense/conv layer reading the input, first")
    interval = max(max(_interval(p), swg_cycles.get(p.name, 0)) for p in plans)
    if in_beat_bits is not None:
        plans[0].in_beat_bits = in_beat_bits
        interval = max(interval, plans[0].beats_per_frame)
    for node, f, text in deferred:
        node.modules[f] = text(interval)
    return _wire(nodes, plans, tensors, interval, model_hash)


FIFO_SLACK = 8  # beats of a skip FIFO beyond the late path's capacity
SHARED_FORK_MIN_CLOCKS = 2  # clocks per beat from which a fork shares one data register (emit_fork_shared)


def _holds(nodes: list[Node], tensors: dict) -> tuple[dict, dict]:
    """Per tensor: ``hold``, the most frames (a fraction) that the stages from the design's input
    to it can hold at once along any path, and its ancestor tensors. A conv on a pixel stream holds
    its line buffer (:func:`swg_line_buffer`'s depth in input pixels); every stage holds up to 4
    output beats in registers (output, skid, fork, MVAU input); a stage on whole frames holds one
    frame. Invariant used by the skip FIFOs: a fork hands each beat to both paths, and an add takes
    one beat of each, so the beats inside the skip FIFO are at most those inside the other path
    (plus one): a FIFO as deep as that path's hold never stops the fork while that path could take
    a beat (no deadlock, no lost throughput)."""
    hold: dict[str, float] = {INPUT: 0.0}
    anc: dict[str, set] = {INPUT: {INPUT}}
    for nd in nodes:
        t = tensors[nd.out]
        h = max(hold[r] for r in nd.reads) + 4 / t.beats
        p = nd.plan
        if p is not None and p.conv and tensors[nd.reads[0]].beats > 1:
            h += swg_line_buffer(p.conv)[1] / (p.conv["in_h"] * p.conv["in_w"])
        elif t.beats == 1 or p is not None:
            h += 1.0
        hold[nd.out] = h
        anc[nd.out] = set().union(*(anc[r] for r in nd.reads)) | {nd.out}
    return hold, anc


def _beat_spacing(nodes: list[Node], tensors: dict, interval: int) -> dict:
    """Per tensor: the fewest clocks between two of its beats that its producers allow (a lower
    bound; a stream may be burstier than interval / beats when its producer is not the
    bottleneck): an MVAU's NF*SF (clocks per output vector), an add's slower input, any other
    stage its input's; the design's input 1. Capped at interval // beats (the average)."""
    sp: dict[str, int] = {INPUT: 1}
    for nd in nodes:
        t = tensors[nd.out]
        if nd.plan is not None:
            s = max(1, nd.plan.NF * nd.plan.SF)
        else:
            s = max(sp[r] for r in nd.reads)
        sp[nd.out] = min(s, max(1, interval // t.beats))
    return sp


def _wire(nodes: list[Node], plans: list[MvauPlan], tensors: dict, interval: int, model_hash: str) -> ResidualDesign:
    """Forks for tensors with several readers, FIFOs on the early input of every add, the top."""
    files: dict[str, str] = {}
    for nd in nodes:
        files.update(nd.modules)
    uses: dict[str, list[tuple[int, int]]] = {}  # tensor -> [(node index, input port)]
    for j, nd in enumerate(nodes):
        for k, t in enumerate(nd.reads):
            uses.setdefault(t, []).append((j, k))
    last = nodes[-1]
    L = [(f"// bnn2hw residual dataflow accelerator: {len(nodes)} stages, generated by bnn2hw {__version__} "
         f"from model {model_hash}"),
         (f"// s_axis: {plans[0].beats_per_frame} beat(s) of {plans[0].beat_width} bits per frame ({tensors[INPUT].n} x "
         f"{tensors[INPUT].width}-bit inputs, (y, x, c) order); m_axis: {plans[-1].MH} integer logits of "
         f"{plans[-1].LW} bits"),
         (f"// analytical model: {interval} cycles per frame (slowest stage), latency about "
         f"{tensors[last.out].lat} cycles"),
         "`default_nettype none",
         f"module {PREFIX}_top (",
         "    input  wire clk,",
         "    input  wire rst_n,",
         f"    input  wire [{plans[0].beat_width - 1}:0] s_axis_tdata,",
         "    input  wire s_axis_tvalid,",
         "    output wire s_axis_tready,",
         f"    output wire [{plans[-1].out_width - 1}:0] m_axis_tdata,",
         "    output wire m_axis_tvalid,",
         "    input  wire m_axis_tready",
         ");"]

    def wires(w: str, width: int) -> list[str]:
        return [f"    wire [{width - 1}:0] {w}_d;", f"    wire {w}_v, {w}_r;"]

    def inst(module: str, name: str, s: str, m: str, clk: bool = True) -> list[str]:
        return [f"    {module} {name} (" + (".clk(clk), .rst_n(rst_n)," if clk else ""),
                f"        .s_tdata({s}_d), .s_tvalid({s}_v), .s_tready({s}_r),",
                f"        .m_tdata({m}_d), .m_tvalid({m}_v), .m_tready({m}_r));"]

    if plans[0].in_beat_bits is None or tensors[INPUT].beats > 1:  # frames, or pixels for a streaming window
        L += [f"    wire [{tensors[INPUT].beat_width - 1}:0] input_d = s_axis_tdata;",
              "    wire input_v = s_axis_tvalid;", "    wire input_r;", "    assign s_axis_tready = input_r;"]
    else:  # frames arrive in beats: the chain back end's input stream assembles them
        files[f"{PREFIX}_instream.v"] = emit_instream(plans[0], model_hash)
        L += wires("input", tensors[INPUT].frame_width)
        L += [f"    // input stream: {plans[0].beats_per_frame} beats of {plans[0].beat_width} bits per frame",
              f"    {PREFIX}_instream u_instream (.clk(clk), .rst_n(rst_n),",
              "        .s_tdata(s_axis_tdata), .s_tvalid(s_axis_tvalid), .s_tready(s_axis_tready),",
              "        .m_tdata(input_d), .m_tvalid(input_v), .m_tready(input_r));"]
    # every tensor's producer output: wire t_<name>; its reader edges: e_<node>_<port>
    edge: dict[tuple[int, int], str] = {}
    fifos: dict[str, int] = {}
    body: list[str] = []
    for t, us in uses.items():
        tw = tensors[t].beat_width
        src = "input" if t == INPUT else f"t_{_ident(t)}"
        if t != INPUT:
            L += wires(src, tw)
        outs = []
        if len(us) == 1:
            outs = [src]
        else:
            if interval // tensors[t].beats >= SHARED_FORK_MIN_CLOCKS:  # one shared data register is enough
                fm = f"{PREFIX}_fork{len(us)}s_w{tw}"
                files[f"{fm}.v"] = emit_fork_shared(fm, tw, len(us), model_hash)
            else:
                fm = f"{PREFIX}_fork{len(us)}_w{tw}"
                files[f"{fm}.v"] = emit_fork(fm, tw, len(us), model_hash)
            outs = [f"f_{_ident(t)}_{k}" for k in range(len(us))]
            for o in outs:
                L += wires(o, tw)
            body += [f"    // {_ident(t)} is read by {len(us)} stages: fork",
                     f"    {fm} u_fork_{_ident(t)} (.clk(clk), .rst_n(rst_n),",
                     f"        .s_tdata({src}_d), .s_tvalid({src}_v), .s_tready({src}_r),"]
            body += [f"        .m{k}_tdata({o}_d), .m{k}_tvalid({o}_v), .m{k}_tready({o}_r)"
                     + (");" if k == len(us) - 1 else ",") for k, o in enumerate(outs)]
        for (j, k), o in zip(us, outs):
            edge[(j, k)] = o
    hold, anc = _holds(nodes, tensors)
    spacing = _beat_spacing(nodes, tensors, interval)
    for j, nd in enumerate(nodes):
        out = "m_axis" if nd is nodes[-1] else f"t_{_ident(nd.out)}"
        if nd.join:
            ins = []
            late = max(nd.reads, key=lambda t: hold[t])
            base = max(hold[c] for c in anc[nd.reads[0]] & anc[nd.reads[1]])  # the nearest common tensor
            for k, t in enumerate(nd.reads):
                e = edge[(j, k)]
                diff = tensors[late].lat - tensors[t].lat
                if t != late:  # the early input waits in a FIFO as deep as the late path can hold
                    depth = math.ceil((hold[late] - base) * tensors[t].beats) + FIFO_SLACK
                    tw = tensors[t].beat_width
                    # the word FIFO takes K clocks per beat in, K + 2 out: under both streams' fastest spacing
                    k_words = fifo_words(tw, depth, min(spacing[t], spacing[late]))
                    if k_words > 1:  # each beat as k_words narrower words: BRAM18s follow the bits
                        qm = f"{PREFIX}_fifo{depth}_w{tw}_k{k_words}"
                        files[f"{qm}.v"] = emit_fifo_words(qm, tw, depth, k_words, model_hash)
                    else:
                        qm = f"{PREFIX}_fifo{depth}_w{tw}"
                        files[f"{qm}.v"] = emit_fifo(qm, tw, depth, model_hash)
                    q = f"q_{nd.name}_{k}"
                    L += wires(q, tw)
                    fifos[f"{nd.out}.{t}"] = depth
                    body += [(f"    // skip path {t} -> {nd.out}: FIFO of {depth} beats ({depth / tensors[t].beats:.3f} frames):"
                              f" the beats the path to {late} holds from their common tensor, + {FIFO_SLACK}"
                              f" (model latency difference {diff} cycles)")] + inst(qm, f"u_fifo_{nd.name}_{k}", e, q)
                    e = q
                ins.append(e)
            body += [f"    // {nd.out}: saturating add",
                     f"    {nd.join['module']} {nd.join['inst']} (.clk(clk), .rst_n(rst_n),"]
            body += [f"        .s{k}_tdata({e}_d), .s{k}_tvalid({e}_v), .s{k}_tready({e}_r)," for k, e in enumerate(ins)]
            if out == "m_axis":
                raise Bnn2hwError("the IR graph does not end with a dense layer producing integer logits")
            body += [f"        .m_tdata({out}_d), .m_tvalid({out}_v), .m_tready({out}_r));"]
            continue
        cur = edge[(j, 0)]
        for c, (module, iname, _, ow, *clocked) in enumerate(nd.chain):
            nxt = out if c == len(nd.chain) - 1 else f"w_{iname[2:]}"
            if nxt != out:
                L += wires(nxt, ow)
            body += [f"    // {nd.out}: {module}"] + inst(module, iname, cur, nxt, not clocked or clocked[0])
            cur = nxt
    L += [f"    wire [{plans[-1].out_width - 1}:0] m_axis_d;", "    wire m_axis_v;",
          "    wire m_axis_r = m_axis_tready;",
          "    assign m_axis_tdata = m_axis_d;", "    assign m_axis_tvalid = m_axis_v;"]
    L += body + ["endmodule", "`default_nettype wire", ""]
    files[f"{PREFIX}_top.v"] = "\n".join(L)
    probes = []
    for nd in nodes[:-1]:
        t = tensors[nd.out]
        path = f"dut.{nd.join['inst']}" if nd.join else f"dut.{nd.chain[-1][1]}"
        probes.append(Probe(_ident(nd.out), path, nd.out, t.width, t.signed, t.beats, t.beat_elems))
    return ResidualDesign(files, plans, probes, fifos, interval, tensors[last.out].lat, tensors)
