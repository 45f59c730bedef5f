"""Shared helpers for the model benchmarks: timing and a tiny GffMoe model."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's top-level modules

from configuration_gffmoe import GffMoeConfig  # noqa: E402
from modeling_gffmoe import GffMoeForConditionalGeneration  # noqa: E402


def best_time(fn, repeats: int = 5, warmup: int = 2) -> float:
    """Best wall time of `fn()` over `repeats` runs, after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gffmoe(
    hidden: int, layers: int, heads: int, inner: int, experts: int, top_k: int, vocab: int = 4096, **kw
):
    config = GffMoeConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inner,
        decoder_layers=layers,
        num_experts=experts,
        moe_top_k=top_k,
        hidden_dropout_prob=0.0,
        **kw,
    )
    return GffMoeForConditionalGeneration(config)
