"""Multi-process training on torch.distributed, as started by torchrun (`torchrun --nproc-per-node N -m digitkit
train ...`, or `digitkit train --nproc N`). One `World` object tells the rest of the code who it is.

The rules that keep N processes equal to one: `--batch-size` is the total batch, split evenly over the ranks,
so an epoch has the same steps and the same LR schedule whatever N is; every rank draws the same epoch order and
takes its own slice of every batch; train metrics are summed over ranks; rank 0 alone validates and broadcasts
the numbers, so early stopping and LR decisions are the same everywhere; rank 0 alone prints and writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def sum(self, *values: float) -> list[float]:
        """Each value summed over all ranks (float64, so counts stay exact)."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return t.cpu().tolist()

    def share(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> World:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a plain run is a world of one."""
    if not launched_by_torchrun():
        return World()
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size())


def local_device(device: torch.device) -> torch.device:
    """On CUDA each local rank gets its own GPU (NCCL cannot run two ranks on one)."""
    if device.type == "cuda" and launched_by_torchrun() and device.index is None:
        local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= gpus:
            from digitkit.errors import DigitkitError

            raise DigitkitError(f"{os.environ.get('LOCAL_WORLD_SIZE', local_rank + 1)} processes on CUDA need as many "
                                f"GPUs, and this machine has {gpus}: use --nproc {gpus}, or --device cpu")
        return torch.device("cuda", local_rank)
    return device


def leave(world: World, finished: bool = True) -> None:
    """Tear the group down: after a finished run in step on every rank (a barrier), and only after the DDP wrapper
    is freed, since a gloo group whose last owner the garbage collector frees at interpreter exit, or whose peer
    has already hung up, can abort the process (seen as SIGABRT after a finished run in CI). After an error there
    is no barrier: the other ranks may never arrive, and torchrun stops them once this one exits."""
    if world.distributed:
        import gc

        import torch.distributed as dist

        if dist.is_initialized():
            gc.collect()  # DDP's reducer holds the group; free it now, not during interpreter shutdown
            try:
                if finished:
                    dist.barrier()
            finally:
                dist.destroy_process_group()
                gc.collect()


def shard(items: Any, world: World) -> Any:
    """This rank's slice of one batch (every rank holds the same full batch order)."""
    return items[world.rank :: world.size] if world.distributed else items
