# SPDX-License-Identifier: MIT
"""Helpers shared by the FINN-graph tests (``test_finn_graph.py``, ``test_finn.py``)."""

from __future__ import annotations

import copy

import torch

NEGATED_CLASSES = (0, 2, 4, 6, 8)


def negate_classes(model: torch.nn.Module, classes=NEGATED_CLASSES) -> torch.nn.Module:
    """A copy of ``model`` whose output scale is negative exactly for ``classes``, built
    deterministically (no seed luck): every class whose learnt head scale has the wrong sign gets
    that scale and the latent weights of the head's row negated. The binarizers are odd functions
    and the channel scale (mean |f(w)|) is even, so the ±1 row flips and the float logits stay the
    same, while the IR's integer logit of that class changes sign."""
    m = copy.deepcopy(model)
    head = m.head
    assert head.learn_affine, "negate_classes needs a binary head with a learnt scale"
    want_neg = torch.zeros(head.scale.shape[0], dtype=torch.bool)
    want_neg[list(classes)] = True
    with torch.no_grad():
        flip = (head.scale < 0) != want_neg
        head.scale[flip] = -head.scale[flip]
        head.layer.weight[flip] = -head.layer.weight[flip]
    return m
