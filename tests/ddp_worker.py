# SPDX-License-Identifier: MIT
"""``torchrun ... tests/ddp_worker.py train ...``: run ``bnn2hw train`` (the CLI's own ``main``)
and record, per rank, the final weights and every checkpoint write, in ``$BNN2HW_TEST_DUMP``.

test_training_scale.py uses it to check that the ranks of a DDP run end with identical weights
and that rank 0 alone writes checkpoints.
"""

import os
import sys
from pathlib import Path

import torch

import bnn2hw.checkpoint as checkpoint
import bnn2hw.train as trainer

DUMP = Path(os.environ["BNN2HW_TEST_DUMP"])
RANK = int(os.environ["RANK"])
_save, _train = checkpoint.save_checkpoint, trainer.train_two_stage


def save_checkpoint(path, *args, **kwargs):
    with open(DUMP / f"saves.rank{RANK}.txt", "a") as f:
        f.write(f"{Path(path).name}\n")
    return _save(path, *args, **kwargs)


def train_two_stage(model, *args, **kwargs):
    out = _train(model, *args, **kwargs)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
               DUMP / f"weights.rank{RANK}.pt")
    return out


checkpoint.save_checkpoint = save_checkpoint
trainer.train_two_stage = train_two_stage

if __name__ == "__main__":
    from bnn2hw.cli import main

    sys.argv = ["bnn2hw", *sys.argv[1:]]
    main()
