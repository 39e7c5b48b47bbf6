# SPDX-License-Identifier: MIT
"""Hand-written test/benchmark models for the firmware harness (the code generator will
emit the same kind of model.c later).

``write_binary_mlp`` writes model.c/model.h for an all-binary MLP: the input is
``sizes[0]`` packed bits (bit convention of firmware/include/bnn_bits.h: element i is bit
i%8 of byte i/8, 1 = +1), hidden layers threshold to bits with popcount-domain thresholds,
the last layer returns int32 accumulators K - 2p.  ``binary_mlp_reference`` is the numpy
oracle.  ``write_float_mlp`` writes the same network computed in float (the comparison
point for the benchmark).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pack_rows(pm1: np.ndarray) -> np.ndarray:
    """[rows, n] in {-1,+1} -> uint32 [rows, words], element i in word i//32 bit i%32."""
    rows, n = pm1.shape
    words = (n + 31) // 32
    bits = np.zeros((rows, words * 32), dtype=np.uint8)
    bits[:, :n] = pm1 > 0
    packed = np.packbits(bits.reshape(rows, words, 4, 8), axis=-1, bitorder="little")
    return packed.reshape(rows, words * 4).view("<u4").astype(np.uint32)


def random_binary_mlp(sizes: list[int], seed: int) -> dict:
    """Random weights in {-1,+1} and max-mismatch thresholds near K/2."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.choice(np.array([-1, 1], dtype=np.int32), size=(n_out, n_in))
        last = i == len(sizes) - 2
        mm = None if last else rng.integers(n_in // 2 - 8, n_in // 2 + 8, size=n_out).astype(np.int32)
        layers.append({"w": w, "max_mismatch": mm})
    return {"sizes": list(sizes), "layers": layers}


def binary_mlp_reference(model: dict, inputs: np.ndarray) -> np.ndarray:
    """inputs uint8 [N, ceil(n0/8)] packed bits -> int32 logits [N, n_last]."""
    n0 = model["sizes"][0]
    bits = np.unpackbits(inputs, axis=1, bitorder="little")[:, :n0]
    x = np.where(bits == 1, 1, -1).astype(np.int64)
    for layer in model["layers"]:
        acc = x @ layer["w"].T.astype(np.int64)
        if layer["max_mismatch"] is None:
            return acc.astype(np.int32)
        k = layer["w"].shape[1]
        p = (k - acc) // 2
        x = np.where(p <= layer["max_mismatch"][None, :], 1, -1)
    raise AssertionError("model has no layers")


def _c_array(ctype: str, name: str, values: np.ndarray, fmt: str) -> str:
    vals = [fmt.format(int(v) & 0xFFFFFFFF if ctype.startswith("bnn_word") else int(v)) for v in values.ravel()]
    lines = [", ".join(vals[i : i + 8]) for i in range(0, len(vals), 8)]
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _model_h(input_len: int, num_logits: int) -> str:
    return (
        "/* SPDX-License-Identifier: MIT */\n/* model.h -- hand-written test model (bnn2hw firmware tests). */\n"
        "#ifndef MODEL_H\n#define MODEL_H\n#include <stddef.h>\n#include <stdint.h>\n"
        f"#define BNN_INPUT_LEN {input_len}\n#define BNN_NUM_LOGITS {num_logits}\n"
        "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len);\n"
        "#endif\n"
    )


def write_binary_mlp(out_dir: Path, model: dict) -> None:
    """model.c/model.h using bnn_dense_bits for hidden layers and bnn_dense_acc last."""
    sizes = model["sizes"]
    out_dir = Path(out_dir)
    in_len = (sizes[0] + 7) // 8
    parts = [
        "/* SPDX-License-Identifier: MIT */\n/* model.c -- hand-written binary MLP test model. */\n",
        '#include <string.h>\n#include "model.h"\n#include "bnn_dense.h"\n\n',
    ]
    # as the code generator does (bnn2hw.mcu.codegen.shared_dense_rows): one row kernel for the
    # hidden layers and the logits when their rows are of one class
    from bnn2hw.mcu.codegen import SHARED_ROWS_DEFINE, row_class
    if row_class(sizes[-2]) in {row_class(n) for n in sizes[:-2]}:
        parts.insert(1, SHARED_ROWS_DEFINE)
    # hidden layers: the column-sliced kernel where the code generator picks it (bnn2hw.mcu.vcols),
    # both stored formats under BNN_DENSE_VCOLS as it emits them
    from bnn2hw.mcu.vcols import use_vcols, vcols_layer
    vc = [layer["max_mismatch"] is not None and use_vcols(sizes[i], sizes[i + 1])
          for i, layer in enumerate(model["layers"])]
    for i, layer in enumerate(model["layers"]):
        if vc[i]:
            lay = vcols_layer(layer["w"], layer["max_mismatch"])
            parts.append("#if BNN_DENSE_VCOLS\n")
            parts.append(_c_array("bnn_word_t", f"wc{i}", lay.wc, "0x{:08x}u"))
            parts.append(_c_array("bnn_word_t", f"tv{i}", lay.tv, "0x{:08x}u"))
            parts.append(f"static const bnn_dense_vparams_t vp{i} = BNN_DENSE_VPARAMS({sizes[i]}u, {sizes[i + 1]}u, "
                         f"{lay.nq}u, {lay.nv}u, {lay.off}u);\n#else\n")
        parts.append(_c_array("bnn_word_t", f"w{i}", _pack_rows(layer["w"]), "0x{:08x}u"))
        if layer["max_mismatch"] is not None:
            parts.append(_c_array("int32_t", f"t{i}", layer["max_mismatch"], "{}"))
        if vc[i]:
            parts.append("#endif\n")
    maxw = max((n + 31) // 32 for n in sizes)
    bufs = f"buf_a[{maxw}], buf_b[{maxw}]" if len(model["layers"]) > 1 else f"buf_a[{maxw}]"
    parts.append(f"static bnn_word_t {bufs};\n")
    idxw = max([(sizes[i] // 2 + 16) // 16 * 16 for i in range(len(vc)) if vc[i]], default=0)
    if idxw:
        parts.append(f"#if BNN_DENSE_VCOLS\nstatic uint32_t vidx[{idxw}]; /* index list scratch */\n#endif\n")
    parts.append("\n")
    body = [
        "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n",
        f"    if (input_len != BNN_INPUT_LEN || logits_len != BNN_NUM_LOGITS) {{\n        return -1;\n    }}\n",
        f"    buf_a[{(sizes[0] + 31) // 32 - 1}] = 0;\n    memcpy(buf_a, input, BNN_INPUT_LEN); /* little-endian */\n",
    ]
    src, dst = "buf_a", "buf_b"
    for i, layer in enumerate(model["layers"]):
        n_in, n_out = sizes[i], sizes[i + 1]
        body.append(f"    {{\n        static const bnn_dense_params_t p = {{{n_in}u, {n_out}u}};\n")
        if layer["max_mismatch"] is None:
            body.append(f"        bnn_dense_acc(&p, {src}, w{i}, logits);\n    }}\n")
        elif vc[i]:
            body.append(f"#if BNN_DENSE_VCOLS\n        (void)p;\n        bnn_dense_vbits(&vp{i}, {src}, wc{i}, tv{i}, "
                        f"vidx, {dst});\n#else\n        bnn_dense_bits(&p, {src}, w{i}, t{i}, {dst});\n#endif\n    }}\n")
            src, dst = dst, src
        else:
            body.append(f"        bnn_dense_bits(&p, {src}, w{i}, t{i}, {dst});\n    }}\n")
            src, dst = dst, src
    body.append("    return 0;\n}\n")
    (out_dir / "model.c").write_text("".join(parts + body))
    (out_dir / "model.h").write_text(_model_h(in_len, sizes[-1]))


def write_float_mlp(out_dir: Path, model: dict) -> None:
    """The same network in plain float C: weights +-1.0f, sign activations, float thresholds."""
    sizes = model["sizes"]
    out_dir = Path(out_dir)
    in_len = (sizes[0] + 7) // 8
    parts = [
        "/* SPDX-License-Identifier: MIT */\n/* model.c -- float version of the binary MLP (benchmark baseline). */\n",
        '#include "model.h"\n\n',
    ]
    for i, layer in enumerate(model["layers"]):
        vals = ", ".join(f"{v:.1f}f" for v in layer["w"].ravel())
        parts.append(f"static const float w{i}[{layer['w'].size}] = {{{vals}}};\n")
        if layer["max_mismatch"] is not None:
            k = layer["w"].shape[1]
            thr = k - 2 * layer["max_mismatch"].astype(np.int64)  # acc >= K - 2M
            parts.append(f"static const float t{i}[{len(thr)}] = {{" + ", ".join(f"{v:.1f}f" for v in thr) + "};\n")
    maxn = max(sizes)
    parts.append(f"static float fa[{maxn}], fb[{maxn}];\n\n")
    body = [
        "int bnn_infer(const uint8_t *input, size_t input_len, int32_t *logits, size_t logits_len)\n{\n",
        "    if (input_len != BNN_INPUT_LEN || logits_len != BNN_NUM_LOGITS) {\n        return -1;\n    }\n",
        f"    for (int i = 0; i < {sizes[0]}; ++i) {{\n"
        "        fa[i] = ((input[i / 8] >> (i % 8)) & 1) ? 1.0f : -1.0f;\n    }\n",
    ]
    src, dst = "fa", "fb"
    for i, layer in enumerate(model["layers"]):
        n_in, n_out = sizes[i], sizes[i + 1]
        body.append(
            f"    for (int o = 0; o < {n_out}; ++o) {{\n        float s = 0.0f;\n"
            f"        for (int k = 0; k < {n_in}; ++k) {{\n            s += {src}[k] * w{i}[o * {n_in} + k];\n        }}\n"
        )
        if layer["max_mismatch"] is None:
            body.append("        logits[o] = (int32_t)s;\n    }\n")
        else:
            body.append(f"        {dst}[o] = s >= t{i}[o] ? 1.0f : -1.0f;\n    }}\n")
            src, dst = dst, src
    body.append("    return 0;\n}\n")
    (out_dir / "model.c").write_text("".join(parts + body))
    (out_dir / "model.h").write_text(_model_h(in_len, sizes[-1]))
