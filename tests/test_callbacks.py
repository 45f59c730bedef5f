"""The wall-clock training budget (training.callbacks.TimeBudgetCallback)."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import TrainerControl, TrainerState

from training.callbacks import TimeBudgetCallback


def _decide(rank: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    budget = TimeBudgetCallback(budget_s=5.0)
    budget.start = time.perf_counter() - (
        10.0 if rank == 0 else 0.0
    )  # only rank 0's clock is past the budget
    args = SimpleNamespace(device="cpu", save_strategy="no", eval_strategy="no")
    control = budget.on_step_end(args, TrainerState(), TrainerControl())
    results[rank] = control.should_training_stop
    dist.destroy_process_group()


def test_every_process_stops_at_the_same_step():
    """A process that stopped alone would hang its peers in their next collective (seen in the 2-process demo)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_decide, args=(port, results), nprocs=2, join=True)
        assert dict(results) == {0: True, 1: True}


def test_one_process_stops_once_the_budget_is_spent():
    budget = TimeBudgetCallback(budget_s=5.0)
    args = SimpleNamespace(device="cpu", save_strategy="steps", eval_strategy="no")
    budget.start = time.perf_counter()
    assert not budget.on_step_end(args, TrainerState(global_step=1), TrainerControl()).should_training_stop
    budget.start -= 10.0
    control = budget.on_step_end(args, TrainerState(global_step=2), TrainerControl())
    assert control.should_training_stop and control.should_save and not control.should_evaluate
    assert set(budget.elapsed_at_step) == {1, 2}
