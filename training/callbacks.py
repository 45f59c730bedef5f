"""Trainer callbacks: a wall-clock training budget, and training progress as people read it."""

from __future__ import annotations

import sys
import time

import torch
import torch.distributed as dist
from transformers import ProgressCallback, TrainerCallback


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


class TrainingProgressCallback(ProgressCallback):
    """One line per training log: step, loss, tokens per second and the time left, e.g.

        step 40/200  loss 3.2108  1,850 tokens/s  2m 31s left

    (tokens/s from the `tokens_per_second` that `GffMoeTrainer` logs; the time left is the steps left at the
    pace so far, or the rest of `budget_s`, `--max_train_seconds`, when that ends sooner). Evaluation and
    summary logs print as transformers' PrinterCallback prints them. On a terminal, and unless
    `--disable_tqdm`, transformers' tqdm bar runs below the lines; elsewhere (a log file, the demo) lines only.
    It replaces the Trainer's own ProgressCallback / PrinterCallback, which print every log key.
    """

    def __init__(self, budget_s: float | None = None):
        super().__init__()
        self.budget_s = budget_s
        self.started = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        if sys.stdout.isatty() and not args.disable_tqdm:
            super().on_train_begin(args, state, control, **kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            super().on_step_end(args, state, control, **kwargs)

    def on_prediction_step(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            super().on_prediction_step(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            line = self.progress_line(state, logs)
        else:
            line = str(
                {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in logs.items() if k != "total_flos"}
            )
        if self.training_bar is not None:
            self.training_bar.write(line)
        else:
            print(line, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            super().on_train_end(args, state, control, **kwargs)
            self.training_bar = None

    def progress_line(self, state, logs: dict) -> str:
        elapsed = time.perf_counter() - self.started
        step, max_steps = state.global_step, state.max_steps
        left = (max_steps - step) * elapsed / max(step, 1)
        if self.budget_s:
            left = min(left, max(self.budget_s - elapsed, 0.0))
        parts = [f"step {step}/{max_steps}", f"loss {logs['loss']:.4f}"]
        if "tokens_per_second" in logs:
            parts.append(f"{logs['tokens_per_second']:,.0f} tokens/s")
        parts.append(f"{_duration(left)} left")
        return "  ".join(parts)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"
