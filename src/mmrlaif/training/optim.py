"""The projector at its own learning rate (``dpo.projector_learning_rate``).

POVID (like LLaVA's trainer with ``mm_projector_lr``) trains the vision-language projector at
2e-5 while the LoRA adapters train at 1e-7: the optimizer has separate parameter groups for the
projector, with the same schedule (the scheduler scales every group's own learning rate),
warmup and weight-decay split. :class:`ProjectorLRMixin` builds the Trainer's optimizer as
usual and then moves the projector's parameters (the family's projector parts,
:mod:`mmrlaif.models.families`) into groups of their own.
"""

from __future__ import annotations

import logging

import torch

from mmrlaif.families import Family
from mmrlaif.models.families import submodule

logger = logging.getLogger(__name__)


def projector_parameters(model: torch.nn.Module, family: Family) -> list[torch.nn.Parameter]:
    """The trainable parameters of the family's projector parts (under a PEFT wrapper too:
    its ``modules_to_save`` copy)."""
    params: dict[int, torch.nn.Parameter] = {}
    for path in family.projector:
        part = submodule(model, path)
        for p in [part] if isinstance(part, torch.nn.Parameter) else part.parameters():
            if p.requires_grad:
                params[id(p)] = p
    return list(params.values())


def split_projector_groups(
    optimizer: torch.optim.Optimizer, projector: list[torch.nn.Parameter], learning_rate: float
) -> int:
    """Move ``projector``'s parameters out of ``optimizer``'s groups into groups of their own
    at ``learning_rate`` (other settings, e.g. weight decay, as the group they came from).
    Call it before the first step and before the scheduler is built.

    Returns:
        The number of parameters moved.
    """
    ids = {id(p) for p in projector}
    moved, new_groups = 0, []
    for group in optimizer.param_groups:
        mine = [p for p in group["params"] if id(p) in ids]
        if not mine:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in ids]
        settings = {k: v for k, v in group.items() if k != "params"}
        new_groups.append(settings | {"params": mine, "lr": learning_rate})
        moved += sum(p.numel() for p in mine)
    for group in new_groups:
        optimizer.add_param_group(group)
    return moved


class ProjectorLRMixin:
    """Put before a ``transformers.Trainer`` subclass; :meth:`set_projector_learning_rate`
    before ``train()``."""

    projector_learning_rate: float | None = None
    projector_family: Family | None = None

    def set_projector_learning_rate(self, learning_rate: float | None, family: Family) -> None:
        """Train the family's projector at ``learning_rate`` (``None``: one learning rate)."""
        self.projector_learning_rate = learning_rate
        self.projector_family = family

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)  # type: ignore[misc]
        lr, family = self.projector_learning_rate, self.projector_family
        if lr is None or family is None:
            return optimizer
        opt_model = self.model if model is None else model  # type: ignore[attr-defined]
        projector = projector_parameters(opt_model, family)
        if not projector:
            raise ValueError(
                "dpo.projector_learning_rate is set but the projector "
                f"({', '.join(family.projector)}) has no trainable parameter"
            )
        moved = split_projector_groups(optimizer, projector, lr)
        logger.info("projector: %d parameters at learning rate %g", moved, lr)
        return optimizer
