"""Train a small GFF-MoE on three shared bacteria for a fixed budget; annotate the fourth (held out).

    python bench/train_real.py                           # 30 minutes of training on this machine
    python bench/train_real.py --budget_min 10 --held_out tpallidum_nichols

Steps: bake the three training genomes (dataset_builder), train a BPE tokenizer on them (or use
--dnabert_path), build a small random model (init_model.py), train it with train.py for the budget, then
annotate the held-out genome with the annotator (annotation.annotator.annotate_genome) and score it against
its reference next to Prodigal and the ORF floor (same scorer). Prints training source tokens/s, padding
fractions, and gene-level F1 (3' and exact) of each caller. Needs ../shared/genomes (never copied).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import init_model  # noqa: E402
import train  # noqa: E402
from dataset_builder.bake import BakeOptions, bake_genome  # noqa: E402
from genome_io.baselines import orf_floor_genes, prodigal_genes  # noqa: E402
from genome_io.fasta import fasta_lengths  # noqa: E402
from genome_io.gff import read_gff  # noqa: E402
from scoring.metrics import score  # noqa: E402
from tokenization.tokenizer import build_tokenizer  # noqa: E402

GENOMES = REPO.parent / "shared" / "genomes"
BACTERIA = ("bsub168", "mabs_atcc19977", "tpallidum_nichols", "paracoccus_scn6821")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--held_out", default="tpallidum_nichols", choices=BACTERIA)
    parser.add_argument("--budget_min", type=float, default=30, help="training minutes")
    parser.add_argument(
        "--dnabert_path", help="DNABERT-2 checkpoint (default: a small random model + own BPE)"
    )
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--max_source_tokens", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work_dir", help="keep dataset, model and run here (default: a temporary folder)")
    return parser.parse_args(argv)


def genome(name: str) -> tuple[Path, Path]:
    return GENOMES / name / "genome.fna.gz", GENOMES / name / "annotation.gff3.gz"


def f1s(reference, prediction) -> tuple[float, float]:
    scores = score(reference, prediction)
    return scores.gene_3prime.f1, scores.gene_exact.f1


def main(argv=None) -> int:
    args = parse_args(argv)
    if not GENOMES.is_dir():
        print(
            f"train_real.py: {GENOMES}: the shared genomes are not here; nothing to measure", file=sys.stderr
        )
        return 2
    try:
        from annotation.annotator import AnnotationOptions, annotate_genome
    except ImportError as err:
        print(f"train_real.py: the annotator is not available ({err})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    training = [name for name in BACTERIA if name != args.held_out]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        dataset = work / "dataset"
        for name in training:
            bake_genome(name, *genome(name), BakeOptions(taxon="prokaryotes"), dataset, progress=False)
        build_tokenizer(
            work / "tokenizer", dnabert_path=args.dnabert_path, fasta_paths=[genome(n)[0] for n in training]
        )
        model_args = ["--save_dir", str(work / "model"), "--tokenizer", str(work / "tokenizer"), "--use_moe",
                      "--num_experts", "4", "--moe_top_k", "2", "--tie_weights", "--decoder_layers", "2"]  # fmt: skip
        if args.dnabert_path:
            model_args += ["--dnabert_path", args.dnabert_path]
        else:
            model_args += ["--hidden_size", str(args.hidden_size), "--num_hidden_layers", "2",
                           "--intermediate_size", str(2 * args.hidden_size)]  # fmt: skip
        init_model.main(model_args)

        run = work / "run"
        model_args, data_args, training_args = train.parse_args(
            [
                "--model_name_or_path",
                str(work / "model"),
                "--dataset_dir",
                str(dataset),
                "--output_dir",
                str(run),
                "--max_steps",
                "1000000",
                "--max_train_seconds",
                str(60 * args.budget_min),
                "--per_device_train_batch_size",
                str(args.batch_size),
                "--learning_rate",
                str(args.learning_rate),
                "--warmup_steps",
                "100",
                "--lr_scheduler_type",
                "constant_with_warmup",
                "--max_source_tokens",
                str(args.max_source_tokens),
                "--save_strategy",
                "no",
                "--logging_steps",
                "20",
                "--report_to",
                "none",
                "--seed",
                "0",
                "--max_eval_samples",
                "0",
            ]  # fmt: skip
        )
        training_args.include_num_input_tokens_seen = "non_padding"
        started = time.perf_counter()
        train.train(model_args, data_args, training_args)
        train_s = time.perf_counter() - started  # wall clock: the Trainer's train_runtime under-reports here
        state = json.loads((run / "trainer_state.json").read_text())
        logs = [log for log in state["log_history"] if "padding_fraction_source" in log]

        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        model = AutoModelForSeq2SeqLM.from_pretrained(run, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(run)
        fasta, gff = genome(args.held_out)
        reference = read_gff(gff, fasta_lengths(fasta)).genes_by_seqid
        started = time.perf_counter()
        predicted, _, stats = annotate_genome(model, tokenizer, fasta, AnnotationOptions("prokaryotes"))
        annotate_s = time.perf_counter() - started
        callers = {
            "GFF-MoE (this run)": predicted,
            "Prodigal (pyrodigal)": prodigal_genes(fasta),
            "ORF floor (>= 600 bp)": orf_floor_genes(fasta),
        }

    tokens_seen = state.get("num_input_tokens_seen", 0)
    print(f"\ntrained on {', '.join(training)} for {train_s / 60:.1f} min ({state['global_step']} steps)")
    print(
        f"training source tokens/s (non-padding, wall clock incl. tokenisation): {tokens_seen / train_s:.0f}"
    )
    mean = lambda key: sum(log[key] for log in logs) / len(logs)  # noqa: E731
    print(
        f"padding fraction: source {mean('padding_fraction_source'):.3f}, target {mean('padding_fraction_target'):.3f}"
    )
    print(
        f"annotating {args.held_out}: {annotate_s:.0f} s, {stats.windows} windows, {stats.decode_errors} decode errors"
    )
    print(f"\n{'caller':<24} {'3-prime F1':>10} {'exact F1':>9}")
    for name, genes in callers.items():
        three_prime, exact = f1s(reference, genes)
        print(f"{name:<24} {three_prime:>10.3f} {exact:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
