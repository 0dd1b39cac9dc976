"""The processes of one fine-tuning run: one by default, or several data-parallel ones started by ``torchrun``.

Every process takes its equal slice of the same seeded global batch (the batch is a pure function of the seed
and the step), so ``N`` processes at batch ``B / N`` each compute what one process computes at batch ``B``, up
to float rounding. :class:`World` holds the three collectives this needs; for a world of one they do nothing,
so the training loop has no second, distributed copy.

Why not ``DistributedDataParallel``: CLIP's contrastive loss couples every pair of the global batch, so each
process gathers the features of all of them *with gradient* (the loss is not a sum of per-process losses),
and the gradient-based attribution methods differentiate a gradient (``create_graph=True``), which DDP's
reducer does not support (its hooks assume one plain backward per step). Instead each process backpropagates
its *share* of the global loss, shares that sum to the global loss, and :meth:`World.sum_gradients` adds the
gradients once after backward: the sum is the gradient of the global loss, whatever the loss looks like.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import CAEError


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` processes, and the device its slice of each batch runs on."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Rank 0: the process that shows progress and writes the run folder."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This process's rows of a global batch of ``n`` (equal slices, in rank order)."""
        if n % self.size:
            raise CAEError(f"a batch of {n} does not split into {self.size} equal parts; choose a batch_size "
                           f"divisible by the number of processes")
        k = n // self.size
        return slice(self.rank * k, (self.rank + 1) * k)

    def gather(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each of ``xs`` with every process's rows stacked in rank order along dim 0, in one collective
        (the tensors share their other dims), differentiable: backward sends each process the gradient of its
        own rows, summed over the processes."""
        if self.size == 1:
            return xs
        rows = [x.shape[0] for x in xs]
        parts = _GatherRows.apply(torch.cat(xs)).split(sum(rows))
        return tuple(torch.cat([p.split(rows)[j] for p in parts]) for j in range(len(xs)))

    def total(self, x: torch.Tensor) -> torch.Tensor:
        """The sum of a tensor over the processes, without gradient (counts, logged losses)."""
        x = x.detach().clone()
        if self.size > 1:
            dist.all_reduce(x)
        return x

    def sum_gradients(self, model: torch.nn.Module) -> None:
        """Add every parameter's gradient over the processes (one flat all-reduce per dtype)."""
        if self.size == 1:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]  # the same set on every rank
        for dtype in dict.fromkeys(g.dtype for g in grads):
            same = [g for g in grads if g.dtype == dtype]
            flat = torch.cat([g.reshape(-1) for g in same])
            dist.all_reduce(flat)
            offset = 0
            for g in same:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (filling on-disk caches), the others after it, from those caches."""
        if self.size > 1 and not self.main:
            dist.barrier()
        yield
        if self.size > 1 and self.main:
            dist.barrier()


class _GatherRows(torch.autograd.Function):
    """All processes' rows in rank order; backward: the gradient of this process's rows, summed over the
    processes (what ``torch.distributed.nn.functional.all_gather`` does; that one is deprecated since torch
    2.14, and gloo has no reduce-scatter, so the sum is an all-reduce and a slice)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        rank = dist.get_rank()
        return grad[rank * ctx.rows:(rank + 1) * ctx.rows]


def join_world(device: str) -> World:
    """The world ``torchrun`` started this process in (its ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), joined:
    NCCL with one GPU per process for a CUDA ``device``, gloo on the CPU otherwise. Without ``torchrun``: a
    world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=size)
    return World(rank, size, device)


def leave_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
