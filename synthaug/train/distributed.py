"""``fit`` on several processes: ``torchrun --nproc_per_node=N -m synthaug fit ...``.

torchrun starts N copies of the command with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (and the
rendezvous address) in their environment; :func:`join` reads them and joins the process group
(gloo on CPU, NCCL on CUDA, each rank on its own GPU ``cuda:LOCAL_RANK``). Every rank builds the
same networks from the seed, takes its own slice of every global batch and its own noise stream,
and the gradients of each phase are averaged (:class:`synthaug.models.step.GradientSync`), so all
ranks hold the same weights after every step. Rank 0 alone touches the run directory; where it
does something that can fail (opening the run, writing a checkpoint) the others wait for its
outcome and fail with the same message (:meth:`Processes.outcome`).

Example (one process: nothing to join):
    >>> procs = Processes()
    >>> procs.world_size, procs.is_main, procs.gather("x")
    (1, True, ['x'])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from ..errors import SynthaugError

__all__ = ["RANK_STREAM", "join", "Processes"]

T = TypeVar("T")
#: Offset between ranks' noise seeds: rank ``r`` draws from ``seed + 1 + r * RANK_STREAM`` (rank 0
#: from ``seed + 1``, as a single process does).
RANK_STREAM = 1_000_003


@dataclass(frozen=True)
class Processes:
    """This process's place among the ranks of a fit (one process by default)."""

    rank: int = 0
    world_size: int = 1
    #: Whether :func:`join` created the process group (and :meth:`leave` should end it).
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order (on every rank)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def outcome(self, action: Callable[[], T]) -> T:
        """Run ``action`` on rank 0 only; every rank returns its result, or raises its error
        (a :class:`SynthaugError` or ``OSError``) with the same message."""
        if not self.distributed:
            return action()
        import torch.distributed as dist

        message, result = None, None
        if self.is_main:
            try:
                result = action()
            except (SynthaugError, OSError) as err:
                message = str(err)
        box = [message, result]
        dist.broadcast_object_list(box, src=0)
        if box[0] is not None:
            raise SynthaugError(box[0])
        return box[1] if not self.is_main else result

    def min_int(self, value: int) -> int:
        """The smallest ``value`` over the ranks."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def leave(self) -> None:
        """End the process group if :func:`join` made it (a barrier first: gloo can abort at exit when a rank
        destroys the group while another still sends)."""
        if self.owns_group:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def join(device: torch.device) -> tuple[Processes, torch.device]:
    """The ranks this process belongs to (from torchrun's environment) and the device it trains
    on. Joins the default process group unless the caller already has."""
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return Processes(), device
    local_rank = _env_int("LOCAL_RANK", 0)
    import torch.distributed as dist

    if not dist.is_available():
        raise SynthaugError(f"WORLD_SIZE is {world_size}: expected a torch build with torch.distributed, got one "
                            f"without it")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SynthaugError(f"LOCAL_RANK {local_rank}: expected a CUDA index below {torch.cuda.device_count()} "
                                f"(--nproc_per_node at most the number of GPUs)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != world_size:
        raise SynthaugError(f"WORLD_SIZE is {world_size} but the process group has {dist.get_world_size()} ranks")
    return Processes(dist.get_rank(), world_size, owns), device


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise SynthaugError(f"{name}: expected an integer (as torchrun sets it), got {text!r}") from None
