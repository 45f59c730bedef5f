"""Learning probe: exact base-pair coordinates are learnable end to end.

Random 1,000 bp windows, each with one planted 12-bp marker at a random position; the target is the marker
as one record with its exact start and end. Everything is the real thing: a DNABERT-2-style BPE tokenizer
with the GFF vocabulary, the codec's targets in the model's pointer coordinates, a tiny GFF-MoE from
init_model.py, train.py's Seq2SeqTrainer, and generation-based evaluation on held-out windows.
Sized for ONE core (CI runs it under pytest-xdist on one of two): 1000 steps take about 6 minutes there, and
training stops at 7.5 minutes in any case (the accuracy assertion then tells whether that was enough).
"""

from __future__ import annotations

import random
import time

import pytest
import torch

from tests.fixtures.training import make_model, make_tokenizer, train_probe
from training.synthetic import marker_window, write_windows

TRAIN_WINDOWS, HELD_OUT_WINDOWS, WINDOW_BP = 8000, 200, 1000
TRAINING_STEPS, TRAINING_BUDGET_S = 1000, 450


@pytest.mark.slow
def test_planted_marker_coordinates_are_learned_exactly(tmp_path):
    torch.set_num_threads(1)
    started = time.perf_counter()
    make_tokenizer(tmp_path / "tokenizer", vocab_size=4096, seed=21, dna_bp=300_000)
    model = make_model(
        tmp_path / "model", tmp_path / "tokenizer", scheme="pointer", num_experts=2, top_k=1, decoder_layers=1,
        max_length=16, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    )  # fmt: skip
    rng = random.Random(5)
    dataset = write_windows(
        tmp_path / "data",
        "prokaryotes",
        {
            "train": [marker_window(rng, f"t{i}", WINDOW_BP) for i in range(TRAIN_WINDOWS)],
            "validation": [marker_window(rng, f"v{i}", WINDOW_BP) for i in range(HELD_OUT_WINDOWS)],
        },
    )
    metrics = train_probe(
        model, dataset, tmp_path / "run", TRAINING_STEPS, TRAINING_BUDGET_S, 32,
        "--per_device_eval_batch_size", "50", "--warmup_steps", "30", "--logging_steps", "50",
        "--generation_max_length", "16",
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    print(f"marker probe: {metrics} in {elapsed:.0f} s")
    assert metrics["eval_window_exact"] >= 0.95, metrics  # the one record, start and end exact, nothing else
    assert metrics["eval_record_f1"] >= 0.95, metrics
    assert elapsed < 600
