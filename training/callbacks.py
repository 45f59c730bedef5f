"""Trainer callbacks: a wall-clock training budget."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from transformers import TrainerCallback


class TimeBudgetCallback(TrainerCallback):
    """Stops training after `budget_s` seconds of training (checked after each optimizer step; the last
    step is saved and evaluated as the strategies say), and records the elapsed time of every step.

    Under data parallelism every process takes the same decision, on the slowest clock (one max-reduce of a
    scalar per step): a process that stopped alone would wait forever in a collective its peers never join."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.start: float | None = None
        self.elapsed_at_step: dict[int, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        elapsed = time.perf_counter() - self.start
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            slowest = torch.tensor([elapsed], dtype=torch.float64, device=args.device)
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            elapsed = slowest.item()
        self.elapsed_at_step[state.global_step] = elapsed
        if elapsed >= self.budget_s:
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
            control.should_evaluate = args.eval_strategy != "no"
        return control
