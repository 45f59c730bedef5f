"""Coordinate schemes compared on the planted-ORF probe: exact coordinates and mean error over time.

Random DNA windows (default 1,500 bp), each with one planted ORF (ATG, sense codons, a stop; 150-900 bp);
the target is the gene record with its exact start and end. For each coordinate scheme the same small
GFF-MoE (same tokenizer, data, seed and optimiser) trains through train.py / Seq2SeqTrainer for the same
wall-clock budget and is evaluated by generation on held-out windows at regular steps.

    python bench/coordinates.py                       # pointer vs number, 4 minutes each
    python bench/coordinates.py --budget_s 60 --schemes pointer

Prints, per scheme and evaluation: elapsed seconds, exact start / end (%), mean |error| of start / end (bp),
exact records (%); then the ratio pointer / number of exact records at the end of the budget.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine  # noqa: E402

import init_model  # noqa: E402
import train  # noqa: E402
from tokenization.tokenizer import extend_tokenizer, train_dna_bpe  # noqa: E402
from training.callbacks import TimeBudgetCallback  # noqa: E402
from training.synthetic import orf_window, random_bases, write_windows  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schemes", nargs="+", default=["pointer", "number"], choices=["pointer", "number"])
    parser.add_argument("--budget_s", type=float, default=240, help="training seconds per scheme")
    parser.add_argument("--eval_steps", type=int, default=100, help="evaluate every N optimizer steps")
    parser.add_argument("--window", type=int, default=1500, help="window length (bp)")
    parser.add_argument("--train_windows", type=int, default=4000)
    parser.add_argument("--eval_windows", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--work_dir", help="keep tokenizer, data and runs here (default: a temporary folder)")
    return parser.parse_args(argv)


def prepare(work: Path, args) -> Path:
    """Tokenizer (DNABERT-2-style BPE on random DNA + GFF vocabulary) and the ORF windows."""
    rng = random.Random(0)
    tokenizer = train_dna_bpe(sequences=[random_bases(rng, 300_000)], vocab_size=4096)
    extend_tokenizer(tokenizer)
    tokenizer.save_pretrained(str(work / "tokenizer"))
    windows = {
        "train": [orf_window(rng, f"t{i}", args.window) for i in range(args.train_windows)],
        "validation": [orf_window(rng, f"v{i}", args.window) for i in range(args.eval_windows)],
    }
    return write_windows(work / "data", "prokaryotes", windows)


def run_scheme(scheme: str, work: Path, dataset: Path, args) -> list[dict]:
    model_dir = work / f"model_{scheme}"
    init_model.main(
        [
            "--save_dir",
            str(model_dir),
            "--tokenizer",
            str(work / "tokenizer"),
            "--use_moe",
            "--num_experts",
            "2",
            "--moe_top_k",
            "1",
            "--tie_weights",
            "--decoder_layers",
            "2",
            "--hidden_size",
            str(args.hidden_size),
            "--num_hidden_layers",
            "2",
            "--num_attention_heads",
            "4",
            "--intermediate_size",
            str(2 * args.hidden_size),
            "--coordinate_scheme",
            scheme,
            "--max_length",
            "24",
        ]  # fmt: skip
    )
    budget = TimeBudgetCallback(args.budget_s)
    parsed = train.parse_args(
        [
            "--model_name_or_path",
            str(model_dir),
            "--dataset_dir",
            str(dataset),
            "--output_dir",
            str(work / f"run_{scheme}"),
            "--max_steps",
            "100000",
            "--per_device_train_batch_size",
            str(args.batch_size),
            "--per_device_eval_batch_size",
            "50",
            "--learning_rate",
            str(args.learning_rate),
            "--warmup_steps",
            "30",
            "--lr_scheduler_type",
            "constant_with_warmup",
            "--eval_strategy",
            "steps",
            "--eval_steps",
            str(args.eval_steps),
            "--save_strategy",
            "no",
            "--logging_steps",
            "50",
            "--generation_max_length",
            "24",
            "--report_to",
            "none",
            "--use_cpu",
            "--seed",
            "0",
            "--disable_tqdm",
            "true",
        ]  # fmt: skip
    )
    train.train(*parsed, callbacks=[budget])
    state = json.loads((work / f"run_{scheme}" / "trainer_state.json").read_text())
    evals = list({log["step"]: log for log in state["log_history"] if "eval_record_f1" in log}.values())
    for log in evals:
        log["elapsed_s"] = budget.elapsed_at_step.get(log["step"], float("nan"))
    return evals


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        dataset = prepare(work, args)
        results = {scheme: run_scheme(scheme, work, dataset, args) for scheme in args.schemes}

    print(f"\nplanted ORF probe: {args.window} bp windows, {args.train_windows} training windows, "
          f"{args.budget_s:.0f} s per scheme, {args.eval_windows} held-out windows")  # fmt: skip
    print(
        f"{'scheme':<8} {'step':>5} {'time s':>7} {'start %':>8} {'end %':>6} {'|err| start':>11} {'|err| end':>9} {'records %':>9}"
    )
    for scheme, evals in results.items():
        for log in evals:
            print(
                f"{scheme:<8} {log['step']:>5} {log['elapsed_s']:>7.0f} {100 * log.get('eval_start_exact', 0):>8.1f} "
                f"{100 * log.get('eval_end_exact', 0):>6.1f} {log.get('eval_start_error_bp', float('nan')):>11.1f} "
                f"{log.get('eval_end_error_bp', float('nan')):>9.1f} {100 * log['eval_record_f1']:>9.1f}"
            )
    if {"pointer", "number"} <= results.keys() and results["number"]:
        pointer, number = results["pointer"][-1]["eval_record_f1"], results["number"][-1]["eval_record_f1"]
        ratio = pointer / number if number else float("inf")
        print(
            f"exact records at the end of the budget: pointer {pointer:.3f}, number {number:.3f} (ratio {ratio:.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
