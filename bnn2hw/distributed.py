# SPDX-License-Identifier: MIT
"""Where training runs: the device, mixed precision, and torch.distributed (torchrun / DDP).

One :class:`Runtime` describes a process: its device, its rank among ``world`` processes, the
autocast dtype. :func:`setup_runtime` builds it from the command's options and, when the process
was started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), joins the process group:
NCCL when the device is CUDA, gloo on CPU. One process per device; under torchrun with CUDA,
process ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK``.

Device choice (``--device``): ``auto`` picks CUDA when ``torch.cuda.is_available()``, else the
CPU; ``cuda`` (or ``cuda:N``) without a usable CUDA device *falls back to the CPU with a warning*
(so one command line works on a laptop and on a GPU node); ``cpu`` is the CPU.

Mixed precision (``--amp``): ``bf16`` or ``fp16`` autocast of the training forward on CUDA only
(fp16 with a ``torch.amp.GradScaler``; bf16 needs none). Evaluation, the divergence guard's
selection and every export run in float32, so ``--amp`` never changes what the binarized model
decides at deployment. ``--amp`` on the CPU is refused.

Distributed data parallel. ``--batch-size`` is the *global* batch: each of the N processes
takes an equal 1/N slice of every mini-batch of the single-process schedule (the same shuffled
order on every rank, :class:`bnn2hw.data.augment.EpochBatches`), DDP averages the gradients, so
the optimizer sees the gradient of the same global batch and the learning rates keep their
meaning: changing the number of processes needs no learning-rate change. The difference from
one process is BatchNorm: each process normalizes with its own slice's statistics (``--sync-bn``
uses the global batch's, CUDA only), and the running statistics are averaged over the processes
after every epoch. To use a larger global batch, scale the learning rates linearly with it
(Goyal et al. 2017, "Accurate, Large Minibatch SGD"), e.g. ``--batch-size 1024 --lr1 0.084``
for BiPer's 256 / 0.021. Rank 0 alone logs and writes checkpoints; every rank evaluates the same
averaged model, so all ranks take the same divergence-guard decisions.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch

from .errors import Bnn2hwError

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    amp: str = "off"
    workers: int = 0
    sync_bn: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes checkpoints; every other rank only trains."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """The training forward's autocast context (a no-op unless --amp on CUDA)."""
        if AMP_DTYPES[self.amp] is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=AMP_DTYPES[self.amp])

    def grad_scaler(self):
        """A GradScaler for fp16 autocast (None otherwise: bf16 keeps float32's exponent range)."""
        return torch.amp.GradScaler("cuda") if self.amp == "fp16" else None


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise Bnn2hwError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {e}") from None


def resolve_device(requested: str, local_rank: int = 0, warn=None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch device (see the module docstring)."""
    req = requested.strip().lower()
    if req not in ("auto", "cpu", "cuda") and not (req.startswith("cuda:") and req[5:].isdigit()):
        raise Bnn2hwError(f"--device must be auto, cpu, cuda or cuda:N, got {requested!r}")
    if req == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if req != "auto" and warn is not None:
            warn(f"--device {requested}: CUDA is not available (torch {torch.__version__}, "
                 f"torch.cuda.is_available() is False); training on the CPU instead")
        return torch.device("cpu")
    if req.startswith("cuda:"):
        index = int(req[5:])
        if index >= torch.cuda.device_count():
            raise Bnn2hwError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))


def setup_runtime(device: str = "cpu", amp: str = "off", workers: int = 0, sync_bn: bool = False,
                  warn=None) -> Runtime:
    """Resolve the device, check ``amp``, and join torchrun's process group if there is one."""
    if amp not in AMP_DTYPES:
        raise Bnn2hwError(f"--amp must be off, bf16 or fp16, got {amp!r}")
    rank, world, local_rank = env_world()
    dev = resolve_device(device, local_rank, warn=warn if rank == 0 else None)
    if amp != "off" and dev.type != "cuda":
        raise Bnn2hwError(f"--amp {amp} needs a CUDA device (training runs on {dev}); drop --amp")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if sync_bn and world > 1 and dev.type != "cuda":
        raise Bnn2hwError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only); on the "
                          "CPU each process normalizes its share of the batch and the running "
                          "statistics are averaged over the processes after every epoch")
    rt = Runtime(dev, rank, world, local_rank, amp, workers, sync_bn)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    elif sync_bn and warn is not None:
        warn("--sync-bn has no effect in a single process")
    return rt


def teardown(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def all_reduce_sum(rt: Runtime, values: list[float]) -> list[float]:
    """Sum ``values`` over all ranks (float64, on the process's device)."""
    if not rt.distributed:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()


def average_buffers(rt: Runtime, model: torch.nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over all ranks, so every
    rank evaluates, selects and saves the same model after an epoch."""
    if not rt.distributed:
        return
    import torch.distributed as dist

    for b in model.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b.div_(rt.world)


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        dist.barrier()
