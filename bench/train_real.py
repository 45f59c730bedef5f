"""Train a small GFF-MoE on real genomes for a fixed CPU budget; annotate held-out sequence no training
window touched, and score it beside the classical gene finder and the trivial ORF floor.

    python bench/train_real.py                                   # bacteria: 30 min, T. pallidum held out
    python bench/train_real.py --budget_min 12 --held_out tpallidum_nichols
    python bench/train_real.py --taxon unicellular --budget_min 12   # S. pombe chr I + II -> chr III

Prokaryotes: trained on three of the four shared bacteria, the fourth annotated whole, beside Prodigal
(pyrodigal) and the ORF floor (>= 600 bp). Unicellular: trained on chromosomes I and II of S. pombe
(../shared/eukaryotes, 47 % of its mRNAs spliced), the first `--held_out_bp` of chromosome III annotated,
beside AUGUSTUS with the pombe parameter set (trained on this species: in-sample, said so in the table),
AUGUSTUS with the S. cerevisiae set (another yeast: what a new species gets) and the ORF floor (>= 300 bp,
ATG). Steps: bake (dataset_builder), a BPE tokenizer trained on the training DNA (or --dnabert_path), a
small random model (init_model.py), train.py for the budget, annotate (annotation.annotator), score
(scoring: nucleotide, CDS segment, CDS chain, gene). Needs ../shared (never copied).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import machine, print_ablation, stitching_ablation  # noqa: E402

import init_model  # noqa: E402
import train  # noqa: E402
from annotate import cpu_workers, load_model  # noqa: E402
from annotation.annotator import AnnotationOptions  # noqa: E402
from dataset_builder.bake import BakeOptions, bake_genome  # noqa: E402
from genome_io.baselines import augustus_genes, orf_floor_genes, prodigal_genes  # noqa: E402
from genome_io.cli import non_negative_float, non_negative_int  # noqa: E402
from genome_io.fasta import fasta_lengths, read_fasta  # noqa: E402
from genome_io.gff import read_gff  # noqa: E402
from genome_io.gff3_writer import write_gff3  # noqa: E402
from scoring.metrics import LevelScore, score  # noqa: E402
from scoring.report import format_table  # noqa: E402
from tokenization.codec import type_token  # noqa: E402
from tokenization.tokenizer import build_tokenizer  # noqa: E402
from tokenization.track import CDS_CLASSES, TRACK_COLUMNS, gene_track  # noqa: E402

SHARED = REPO.parent / "shared"
GENOMES = SHARED / "genomes"
BACTERIA = ("bsub168", "mabs_atcc19977", "tpallidum_nichols", "paracoccus_scn6821")
POMBE = SHARED / "eukaryotes" / "spombe_972h"
POMBE_TRAINING = ("I", "II")
REGION_PLUS, REGION_MINUS = TRACK_COLUMNS.index("region_plus"), TRACK_COLUMNS.index("region_minus")
# Published exon / gene F1 on A. thaliana (Tiberius paper; another kingdom: context, not comparable).
ANCHORS = (
    "published exon / gene F1 on A. thaliana: Tiberius 90.0 / 71.6, Helixer 88.1 / 67.7, AUGUSTUS 79.1 / 50.9"
)


@dataclass
class Corpus:
    """What one benchmark trains on and what it annotates, all read from ../shared."""

    taxon: str
    training: list[tuple[str, Path, Path]]  # (species, FASTA, GFF3) baked for training
    held_out: str  # what the table names
    records: list[tuple[str, str]]  # held-out (seqid, sequence): annotated by every caller
    reference: dict  # its genes per seqid, 1-based
    baselines: dict  # caller name -> function of the records


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--taxon", default="prokaryotes", choices=("prokaryotes", "unicellular"))
    parser.add_argument(
        "--held_out",
        help="prokaryotes: the bacterium annotated whole (default tpallidum_nichols, one of "
        f"{', '.join(BACTERIA)}); unicellular: the S. pombe chromosome (default III)",
    )
    parser.add_argument(
        "--held_out_bp",
        type=int,
        default=200_000,
        help="unicellular: bp of the held-out chromosome annotated, from its start (0 = all of it)",
    )
    parser.add_argument("--budget_min", type=float, default=30, help="training minutes")
    parser.add_argument(
        "--max_steps", type=int, default=1_000_000, help="optimizer steps, if reached before the budget"
    )
    parser.add_argument(
        "--dnabert_path", help="DNABERT-2 checkpoint (default: a small random model + own BPE)"
    )
    parser.add_argument(
        "--window_bp", type=int, help="bake and annotation window (default: 9000 bacteria, 5000 unicellular)"
    )
    parser.add_argument(
        "--coding_only",
        action="store_true",
        help="bake --coding_only: train on the CDS chains of coding genes only (default: whole transcripts, "
        "UTRs and non-coding genes included)",
    )
    parser.add_argument(
        "--track_loss_weight",
        type=non_negative_float,
        default=0.0,
        help="init_model.py's option: weight of the per-base track loss (0: no track head); with a track "
        "head the bench also scores the track's per-base coding calls on the held-out sequence",
    )
    parser.add_argument(
        "--track_conv_channels",
        type=non_negative_int,
        default=0,
        help="init_model.py's option: width of the track head's convolutions over the bases (0: none)",
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


def bacteria(held_out: str) -> Corpus:
    if held_out not in BACTERIA:
        raise SystemExit(f"train_real.py: --held_out {held_out}: not one of {', '.join(BACTERIA)}")
    fasta, gff = genome(held_out)
    records = list(read_fasta(fasta))
    return Corpus(
        "prokaryotes",
        [(name, *genome(name)) for name in BACTERIA if name != held_out],
        held_out,
        records,
        read_gff(gff, fasta_lengths(fasta)).genes_by_seqid,
        {"Prodigal (pyrodigal)": prodigal_genes, "ORF floor (>= 600 bp)": orf_floor_genes},
    )


def pombe(held_out: str, held_out_bp: int, work: Path) -> Corpus:
    """S. pombe chromosomes I and II written to their own FASTA + GFF3 for baking; the held-out
    chromosome cut to its first `held_out_bp` (genes running past the cut dropped from the reference)."""
    fasta, gff = POMBE / "genome.fna.gz", POMBE / "annotation.gff3.gz"
    chromosomes = dict(read_fasta(fasta))
    genes = read_gff(gff, {seqid: len(dna) for seqid, dna in chromosomes.items()}).genes_by_seqid
    if held_out in POMBE_TRAINING or held_out not in chromosomes:
        raise SystemExit(f"train_real.py: --held_out {held_out}: not a held-out S. pombe chromosome")
    train_fasta, train_gff = work / "pombe_training.fa", work / "pombe_training.gff3"
    with open(train_fasta, "w") as out:
        out.writelines(f">{seqid}\n{chromosomes[seqid]}\n" for seqid in POMBE_TRAINING)
    write_gff3(
        {seqid: genes.get(seqid, []) for seqid in POMBE_TRAINING},
        {seqid: len(chromosomes[seqid]) for seqid in POMBE_TRAINING},
        train_gff,
    )
    dna = chromosomes[held_out][: held_out_bp or None]
    reference = [gene for gene in genes.get(held_out, []) if gene.end <= len(dna)]
    return Corpus(
        "unicellular",
        [("spombe_972h", train_fasta, train_gff)],
        f"S. pombe chr {held_out}:1-{len(dna)}",
        [(held_out, dna)],
        {held_out: reference},
        {
            "AUGUSTUS pombe (in-sample)": lambda records: augustus_genes(
                records, "schizosaccharomyces_pombe"
            ),
            "AUGUSTUS S.cerevisiae": lambda records: augustus_genes(records, "saccharomyces"),
            "ORF floor (>= 300 bp)": lambda records: orf_floor_genes(records, "unicellular"),
        },
    )


def train_model(corpus: Corpus, args, work: Path) -> tuple[Path, dict, float]:
    """Bake, tokenizer, init, train for the budget: (run directory, trainer state, wall seconds)."""
    dataset = work / "dataset"
    options = BakeOptions(taxon=corpus.taxon, limit=args.window_bp, coding_only=args.coding_only)
    reports = [bake_genome(*genome, options, dataset, progress=False) for genome in corpus.training]
    new_types = sorted({t for report in reports for t in report.new_feature_types})  # e.g. PomBase's
    build_tokenizer(
        work / "tokenizer",
        dnabert_path=args.dnabert_path,
        fasta_paths=[fasta for _, fasta, _ in corpus.training],
        extra_tokens=[type_token(t) for t in new_types],
    )
    model_args = ["--save_dir", str(work / "model"), "--tokenizer", str(work / "tokenizer"), "--use_moe",
                  "--num_experts", "4", "--moe_top_k", "2", "--tie_weights", "--decoder_layers", "2",
                  "--track_loss_weight", str(args.track_loss_weight),
                  "--track_conv_channels", str(args.track_conv_channels)]  # fmt: skip
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
            "--dataset_config",
            corpus.taxon,
            "--output_dir",
            str(run),
            "--max_steps",
            str(args.max_steps),
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
    return run, json.loads((run / "trainer_state.json").read_text()), train_s


def coding_scores(coding: dict, reference: dict) -> dict[str, LevelScore]:
    """Per strand, the bases the track calls coding (`coding`: per seqid, the probability per base [length,
    2]) against the CDS bases of the reference (genes per seqid, 1-based), as `tokenization.track` labels them."""
    scores = {strand: LevelScore() for strand in "+-"}
    for seqid, probability in coding.items():
        track = gene_track([gene.shift(-1) for gene in reference.get(seqid, [])], len(probability))
        truth = np.isin(track[:, [REGION_PLUS, REGION_MINUS]], CDS_CLASSES)
        called = probability > 0.5
        for k, strand in enumerate("+-"):
            found = int((truth[:, k] & called[:, k]).sum())
            scores[strand] += LevelScore(found, int(truth[:, k].sum()), found, int(called[:, k].sum()))
    return scores


def main(argv=None) -> int:
    args = parse_args(argv)
    needed = GENOMES if args.taxon == "prokaryotes" else POMBE
    if not needed.is_dir():
        print(
            f"train_real.py: {needed}: the shared genomes are not here; nothing to measure", file=sys.stderr
        )
        return 2
    torch.set_num_threads(args.threads)
    print(machine())
    args.window_bp = args.window_bp or (None if args.taxon == "prokaryotes" else 5000)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.taxon == "prokaryotes":
            corpus = bacteria(args.held_out or "tpallidum_nichols")
        else:
            corpus = pombe(args.held_out or "III", args.held_out_bp, work)
        run, state, train_s = train_model(corpus, args, work)
        model, tokenizer = load_model(str(run))  # as annotate.py loads it
        options = AnnotationOptions(taxon=corpus.taxon, window_size=args.window_bp)  # annotate.py's defaults
        ablation, stats, coding = stitching_ablation(model, tokenizer, corpus.records, options, cpu_workers())
        callers = {"GFF-MoE (this run)": ablation["defaults"]}
        for name, caller in corpus.baselines.items():
            callers[name] = caller(corpus.records)

    logs = [log for log in state["log_history"] if "padding_fraction_source" in log]
    trained_on = ", ".join(species for species, _, _ in corpus.training)
    print(f"\ntrained on {trained_on} for {train_s / 60:.1f} min ({state['global_step']} steps)")
    tokens_seen = state.get("num_input_tokens_seen", 0)
    print(
        f"training source tokens/s (non-padding, wall clock incl. tokenisation): {tokens_seen / train_s:.0f}"
    )
    if logs:  # the trainer logs padding every `--logging_steps`
        mean = lambda key: sum(log[key] for log in logs) / len(logs)  # noqa: E731
        source, target = mean("padding_fraction_source"), mean("padding_fraction_target")
        print(f"padding fraction: source {source:.3f}, target {target:.3f}")
    bp = sum(len(dna) for _, dna in corpus.records)
    print(
        f"annotating {corpus.held_out} ({bp} bp): {stats.seconds:.0f} s, {stats.windows} windows, "
        f"{stats.decode_errors} decode errors\n"
    )
    print(format_table({name: score(corpus.reference, genes) for name, genes in callers.items()}))
    if coding:
        print("\nthe track head's per-base coding calls (probability > 0.5) against the reference CDS bases:")
        for strand, bases in coding_scores(coding, corpus.reference).items():
            print(
                f"  {strand} strand: Sn {bases.sensitivity:.3f}  Pr {bases.precision:.3f}  F1 {bases.f1:.3f}"
            )
    # "no long ORFs" is what the model wrote itself: the long ORFs are the ORF floor's kind of call.
    if corpus.taxon == "prokaryotes":
        print("\nwhat each stitching rule buys (the same decoded windows), F1 gene 3' / exact / nucleotide:")
        print_ablation(ablation, corpus.reference)
    else:
        print(
            "\nwhat each stitching rule buys (the same decoded windows), F1 exon / transcript / gene exact:"
        )
        print_ablation(ablation, corpus.reference, ("exon", "transcript", "gene_exact"))
        print(f"\n({ANCHORS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
