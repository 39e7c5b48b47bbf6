# SPDX-License-Identifier: MIT
"""The papers' architectures (ResNet-18/20 with Bi-Real double skips, VGG-small, M-BiPer eq. 7
residual ResNet-20): they are for users with GPUs and are not trained here to accuracy, but they
must build, run both training stages with finite gradients, actually binarize their binary
layers in stage 2, and round-trip through a checkpoint. CIFAR-shaped input, batch of 4."""

from __future__ import annotations

import pytest
import torch

from bnn2hw.checkpoint import load_checkpoint, save_checkpoint
from bnn2hw.nn.layers import binary_layers, set_stage
from bnn2hw.nn.models import PAPER_MODELS, build_model, default_spec


@pytest.mark.parametrize("arch", sorted(PAPER_MODELS))
def test_paper_model_trains_one_step_per_stage_and_round_trips(arch, tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    spec = default_spec(arch, (3, 32, 32), 10)
    if "residual_bits" in spec:  # resnet20, vgg-small: the papers' float form (see test_residual_models)
        spec["residual_bits"] = 0
    model = build_model(spec)
    layers = binary_layers(model)
    assert layers, f"{arch}: no binary layers"
    x = torch.rand(4, 3, 32, 32) * 255
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for stage in (1, 2):
        set_stage(model, stage)
        model.train()
        before = [m.weight.detach().clone() for m in layers]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss), f"{arch} stage {stage}: loss {loss}"
        grads = [m.weight.grad for m in layers]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), arch
        assert any(g.abs().sum() > 0 for g in grads), f"{arch} stage {stage}: zero weight gradients"
        opt.step()
        assert any(not torch.equal(b, m.weight) for b, m in zip(before, layers))
    # stage 2: the weight a binary layer uses is +-1 times its per-channel scale
    layer = layers[len(layers) // 2]
    w = layer.quant_weight().value.detach()
    per_channel = w.reshape(w.shape[0], -1).abs()
    assert torch.allclose(per_channel, per_channel[:, :1].expand_as(per_channel)), arch
    model.eval()
    with torch.no_grad():
        ref = model(x)
    save_checkpoint(tmp_path / "m.pt", model, spec, {"dataset": "cifar-shaped test"})
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    set_stage(loaded, 2)
    with torch.no_grad():
        assert torch.equal(loaded(x), ref), f"{arch}: checkpoint round trip changed the output"
