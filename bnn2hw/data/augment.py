# SPDX-License-Identifier: MIT
"""Training-time augmentation and the batches a training process sees in one epoch.

The papers' CIFAR augmentation (BiPer sec. 5.1.3, following ReActNet/Bi-Real; the official
code's ``transforms.RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``): pad each uint8
image with 4 zero pixels on every side, crop a random window of the original size, flip it
left-right with probability 1/2. Here the random choices of a batch are drawn from a generator
seeded by ``(seed, stage, epoch, batch)`` alone, for the whole *global* batch, so the result does
not depend on the number of DataLoader workers or of processes, nor on where a run was resumed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PAD = 4


def batch_generator(seed: int, stage: int, epoch: int, batch: int) -> torch.Generator:
    """A generator that depends only on (seed, stage, epoch, batch index)."""
    state = np.random.SeedSequence([seed, stage, epoch, batch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def crop_flip_params(n: int, gen: torch.Generator, pad: int = PAD):
    """(row offsets, column offsets, flip flags) of ``n`` images, offsets in 0..2*pad."""
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    return oy, ox, flip


def random_crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor,
                     pad: int = PAD) -> torch.Tensor:
    """(N, C, H, W) images -> zero-pad by ``pad``, crop H x W at (oy, ox), flip where ``flip``."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = oy[:, None] + torch.arange(h)
    cols = ox[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
              rows[:, None, :, None], cols[:, None, None, :]]


class EpochBatches(torch.utils.data.Dataset):
    """Item ``i`` is this process's share of the epoch's ``i``-th global mini-batch, as float
    pixels and labels: rank ``r`` of ``world`` takes the ``r``-th of ``world`` equal slices
    (the DistributedSampler idea applied to the batch: each sample is seen by exactly one
    process per epoch, and the processes together see the single-process batch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batches: list[torch.Tensor], rank: int = 0,
                 world: int = 1, augment_key: tuple[int, int, int] | None = None):
        self.x, self.y, self.batches = x, y, batches
        self.rank, self.world, self.augment_key = rank, world, augment_key

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        idx = self.batches[i]
        lo, hi = 0, len(idx)
        if self.world > 1:
            per = len(idx) // self.world
            lo, hi = self.rank * per, (self.rank + 1) * per
        xb = self.x[idx[lo:hi]]
        if self.augment_key is not None:
            oy, ox, flip = crop_flip_params(len(idx), batch_generator(*self.augment_key, i))
            xb = random_crop_flip(xb, oy[lo:hi], ox[lo:hi], flip[lo:hi])
        # standard strides: the layout a conv sees decides its summation order (bit-exactness)
        return xb.to(torch.float32, memory_format=torch.contiguous_format), self.y[idx[lo:hi]]
