"""The optimisation step, owned by the loop for every family.

A family's trainer yields :class:`~synthaug.models.base.Phase` s (a loss and the optimizer it is
for); :class:`StepRunner` does the rest, the same way for all of them: autocast for the forward
passes, ``backward``, averaging the gradients across processes (:class:`GradientSync`), gradient
clipping, the optimizer step and, after the last phase, the EMA update. It returns the step's logs
as tensors, so the loop reads them back from the device only every few steps.

Example:
    >>> import torch
    >>> from synthaug.models import create_model
    >>> trainer = create_model("gan", {"g_width": 16, "d_width": 16}, (1, 8, 8), num_classes=2)
    >>> logs = StepRunner()(trainer, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]),
    ...                     torch.Generator().manual_seed(0), step=0)
    >>> sorted(logs)
    ['d_fake', 'd_real', 'loss_d', 'loss_g']
"""

from __future__ import annotations

import contextlib
import torch

from ..errors import SynthaugError

__all__ = ["PRECISIONS", "check_precision", "GradientSync", "stack_logs", "StepRunner"]

#: What ``precision`` may say: float32 throughout, or bfloat16 autocast of the forward passes
#: (weights, gradients and optimizer state stay float32, so no loss scaling is needed).
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise SynthaugError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


class GradientSync:
    """Average the gradients of an optimizer's parameters over all processes, one collective per
    phase (the gradients flattened into one buffer, as DistributedDataParallel's buckets are).

    Only the phase's own optimizer is synchronised, so the network a phase does not train (a
    GAN's frozen discriminator in the generator's phase) takes no part, and every family's
    networks are covered however their forward passes are called (the VAE calls its decoder's
    ``logits``, not ``forward``). :meth:`broadcast_buffers` makes rank 0's buffers (BatchNorm
    statistics, the EMA's) everyone's after each step, as DDP's ``broadcast_buffers`` does.
    """

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size

    def gradients(self, optimizer: torch.optim.Optimizer) -> None:
        import torch.distributed as dist

        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch._utils._flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world_size
        for grad, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        import torch.distributed as dist

        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for buffer in module.buffers():
            by_dtype.setdefault(buffer.dtype, []).append(buffer)
        for buffers in by_dtype.values():
            flat = torch._utils._flatten_dense_tensors(buffers)
            dist.broadcast(flat, src=0)
            for buffer, value in zip(buffers, torch._utils._unflatten_dense_tensors(flat, buffers)):
                buffer.copy_(value)


class StepRunner:
    """Run one training step of any family: ``runner(trainer, images, labels, rng, step,
    unlabeled) -> logs`` (tensors and numbers, not yet read back from the device)."""

    def __init__(self, precision: str = "fp32", sync: GradientSync | None = None) -> None:
        self.precision = precision
        self.sync = sync

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __call__(self, trainer, images: torch.Tensor, labels: torch.Tensor, rng: torch.Generator, step: int,
                 unlabeled: torch.Tensor | None = None) -> dict[str, torch.Tensor | float]:
        optimizers = trainer.optimizers()
        phases = iter(trainer.phases(images, labels, rng, step, unlabeled))
        logs: dict[str, torch.Tensor | float] = {}
        while True:
            # Autocast covers the trainer's forward passes only; backward and step run outside it.
            with self._autocast(images.device):
                phase = next(phases, None)
            if phase is None:
                break
            optimizer = optimizers[phase.optimizer]
            optimizer.zero_grad(set_to_none=True)
            phase.loss.backward()
            if self.sync is not None:
                self.sync.gradients(optimizer)
            if phase.clip > 0:
                torch.nn.utils.clip_grad_norm_(_parameters(optimizer), phase.clip)
            optimizer.step()
            logs.update(phase.logs)
        trainer.update_ema(step, trainer.ema_decay)
        if self.sync is not None:
            self.sync.broadcast_buffers(trainer)
        return logs


def _parameters(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def stack_logs(rows: list[dict[str, torch.Tensor | float]]) -> list[dict[str, float]]:
    """The logs of several steps as numbers, read back from the device at once (one host sync
    for all of them, instead of one per value per step)."""
    values = [v.detach().double().reshape(()) if isinstance(v, torch.Tensor) else torch.tensor(float(v),
                                                                                           dtype=torch.float64)
              for row in rows for v in row.values()]
    if not values:
        return [{} for _ in rows]
    device = next((v.device for v in values if v.device.type != "cpu"), torch.device("cpu"))
    flat = torch.stack([v.to(device) for v in values]).tolist()
    out, k = [], 0
    for row in rows:
        out.append(dict(zip(row.keys(), flat[k:k + len(row)])))
        k += len(row)
    return out
