"""Shared helpers for the model benchmarks: timing, parameter counts and a tiny GffMoe model."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's top-level modules

from configuration_gffmoe import GffMoeConfig  # noqa: E402
from modeling_gffmoe import GffMoeForConditionalGeneration  # noqa: E402


def machine() -> str:
    """One line naming what a run measured on: ratios move between CPUs (which GEMM kernels MKL picks for the
    CPU, cache sizes) and with the thread count, so every benchmark prints it first and README gives its
    figures as ranges over the machines measured."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} on {torch.get_num_threads()} "
        f"thread(s), {torch.backends.cpu.get_cpu_capability()} kernels, device {device}"
    )


def median_times(
    candidates: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median time of each candidate over `repeats` interleaved rounds (one run of each per round).

    Interleaving exposes every candidate to the same background load, and each round starts one candidate
    later, so none always runs right after the same neighbour (its caches, the allocator's state); the median
    ignores the rounds a burst of load hit. With one torch thread the clock is the process's CPU time, which
    other jobs taking turns on the cores do not inflate; with more, wall time.
    """
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    names = list(candidates)
    times = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock()
            candidates[name]()
            times[name].append(clock() - start)
    return {name: statistics.median(runs) for name, runs in times.items()}


def active_parameters(model: torch.nn.Module, num_experts: int, top_k: int) -> int:
    """Parameters one token uses: expert weights (any name containing "expert") count top_k / num_experts."""
    total = 0.0
    for name, param in model.named_parameters():
        total += param.numel() * (top_k / num_experts if "expert" in name else 1)
    return round(total)


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


def stitching_ablation(model, tokenizer, records, options, workers: int = 1) -> tuple[dict, object, dict]:
    """Genes per seqid of `records` under annotate.py's stitching rules (`options`, resolved for the model),
    and without each rule that came after the decoder, all from ONE decoding (stitching is a pass over the
    decoded windows, so the rows differ only by the rules): (rows {name: genes per seqid}, the decoding's
    AnnotationStats, {seqid: the track's coding probability per base [length, 2] (+, -)}, empty for a model
    without a track head). Rows: "defaults"; "longest starts" (no start scorer); "no long ORFs"; "neither";
    "decoder's starts" (neither, and no start moved)."""
    from dataclasses import replace

    from annotation.annotator import (
        AnnotationStats,
        WindowAnnotator,
        decode_windows,
        stitch_contigs,
        tile_records,
    )
    from annotation.starts import start_weight_vector

    options = options.for_model(model.config)
    stats = AnnotationStats()
    annotator = WindowAnnotator(model, tokenizer, options, keep_coding=True)  # (only with a track head)
    started = time.perf_counter()
    decoded = list(
        decode_windows(annotator, tile_records(records, options, stats), None, stats, False, workers)
    )
    weights = start_weight_vector(getattr(model.config, "start_weights", None))
    no_orfs = replace(options, long_orfs=0)
    variants = {
        "defaults": (options, weights),
        "longest starts": (options, None),
        "no long ORFs": (no_orfs, weights),
        "neither": (no_orfs, None),
        "decoder's starts": (replace(no_orfs, choose_starts=False), None),
    }
    rows, coding = {}, {}
    for name, (variant, start_weights) in variants.items():
        counted = stats if name == "defaults" else AnnotationStats()
        contigs = list(stitch_contigs(decoded, counted, variant, start_weights))
        rows[name] = {c.seqid: c.genes for c in contigs}
        if name == "defaults":
            stats.seconds = time.perf_counter() - started
            coding = {c.seqid: c.coding for c in contigs if c.coding is not None}
    return rows, stats, coding


PROKARYOTE_LEVELS = ("gene_3prime", "gene_exact", "nucleotide")


def f1s(scores, levels: tuple[str, ...] = PROKARYOTE_LEVELS) -> str:
    """F1 at `levels` (default gene 3' / exact / nucleotide) of a `scoring.metrics.score` result."""
    return " / ".join(f"{scores[level].f1:.3f}" for level in levels)


def print_ablation(rows: dict, reference: dict, levels: tuple[str, ...] = PROKARYOTE_LEVELS) -> None:
    """`stitching_ablation`'s rows scored against `reference` (genes per seqid), one line each."""
    from scoring.metrics import score

    for name, genes in rows.items():
        line = f1s(score(reference, genes), levels)
        print(f"  {name:<18} {line}   {sum(map(len, genes.values())):>6} genes")
