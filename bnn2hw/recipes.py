# SPDX-License-Identifier: MIT
"""Training recipes: the papers' hyperparameters as ``bnn2hw train`` option values.

``biper-cifar10-resnet18`` is the official BiPer code's CIFAR-10 run (github.com/edmav4/BiPer,
``cifar10/run_stg1.sh`` and ``run_stg2.sh``; optimizer, schedule, warm-up and regulariser from
``cifar10/main.py``, data pipeline from ``cifar10/dataset/dataset.py``), which implements the
paper's two-stage training (BiPer, CVPR 2024, sec. 5.1.3):

* stage 1 (real weights ``sin(w0 w)``, eq. 10): 600 epochs, SGD momentum 0.9, lr 0.021, weight
  decay 0.0016; stage 2 (binary weights, eq. 8, warm-started from stage 1): 300 epochs, lr
  0.0037, weight decay 0.00016; w0 = 20 (``--freq 20``; sec. 5.2.1 picks 20); global batch 256;
  both stages: 5 warm-up epochs at ``lr (e + 1) / 5`` then a cosine schedule over the remaining
  epochs (``--warm_up``, ``CosineAnnealingLR(epochs - 4)``).
* one learning rate for every parameter (the official optimizer has a single group), so the
  latent weights get ``lr1`` / ``lr2`` too instead of bnn2hw's phase-step defaults.
* the regulariser ``tau * mean(sin^2(w0 w))`` summed over the binary conv layers
  (``0.5 - 0.5 cos(2 freq w)``, summed over modules in ``forward``), tau 0.037 in stage 1 and
  0.0468 in stage 2 (``--tau``; ``tau_min = tau_max``, so constant).
* data: random crop 32 with 4-pixel zero padding and horizontal flip (sec. 5.1.3, "following
  [18]"), normalization with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), the
  values ``dataset.py`` uses for CIFAR-10.

The paper's text (sec. 5.1.3) states lr 0.1 / 0.01 and weight decay 5e-4 / 5e-5 "if not
otherwise specified"; the recipes follow the released run scripts, which are what produced the
published checkpoints. The official scripts show ResNet-18 only; ``-resnet20`` and
``-vgg-small`` apply the same settings to those models (the paper gives one setting for its
CIFAR-10 experiments). Every value can be overridden by giving its option explicitly.

Not reproduced: the first conv and last FC are full precision in the papers' models and in
bnn2hw's ``resnet18``/``resnet20``/``vgg-small`` with ``--residual-bits 0`` (what the recipes
select), so these models are trainable but not exportable; the normalization is recorded in the
checkpoint either way. The deployable forms (``--residual-bits 8|16``, :mod:`bnn2hw.nn.residual`)
can take the same recipe values by giving ``--residual-bits 8`` explicitly (drop ``--normalize``:
their padded binary stem cannot absorb it exactly).
"""

from __future__ import annotations

from .errors import Bnn2hwError

_BIPER_CIFAR10 = {
    "surrogate": "biper", "w0": 20.0, "epochs1": 600, "epochs2": 300,
    "lr1": 0.021, "lr2": 0.0037, "latent_lr1": 0.021, "latent_lr2": 0.0037,
    "wd1": 0.0016, "wd2": 0.00016, "batch_size": 256,
    "sin2_reg": 0.037, "sin2_reg2": 0.0468, "sin2_sum": True, "warmup_epochs": 5,
    "augment": True, "normalize": "0.485,0.456,0.406:0.229,0.224,0.225", "channels": 3,
}

RECIPES = {
    "biper-cifar10-resnet18": {"model": "resnet18", **_BIPER_CIFAR10},
    "biper-cifar10-resnet20": {"model": "resnet20", "residual_bits": 0, **_BIPER_CIFAR10},
    "biper-cifar10-vgg-small": {"model": "vgg-small", "residual_bits": 0, **_BIPER_CIFAR10},
}


def get_recipe(name: str) -> dict:
    if name not in RECIPES:
        raise Bnn2hwError(f"unknown --recipe {name!r}; valid: {', '.join(RECIPES)}")
    return dict(RECIPES[name])
