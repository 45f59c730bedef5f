"""Annotation throughput and accuracy of a trained model at annotate.py's defaults, beside pyrodigal.

    make demo   # once: the trained model and held-out region this benchmark reads (outputs/demo)
    python bench/annotate.py [--demo_dir outputs/demo] [--genome tpallidum_nichols | --fasta GENOME.fa]

1. Speed on a whole bacterial genome (a shared genome, 1-5 Mbp, or --fasta): the demo's model annotates
   it at annotate.py's default settings (a worker per core, at most 8, one torch thread each; `--workers 1`
   for one process), and pyrodigal (single-genome mode, its training pass included, one thread: it has no
   parallelism within one sequence; the best of 3 runs) calls genes on the same sequence in the same
   run; bp/s of each, their ratio, and the peak RSS of this process and of its largest worker.
2. Accuracy at the settings timed: the demo's held-out region (never trained on) annotated at the same
   defaults and with 8 beams (the demo's decoding before), the named reference for speed, each scored (gene 3',
   exact, nucleotide F1) beside Prodigal and the ORF floor; so speed is never bought with accuracy unseen.
   Then what each stitching rule buys there (`_common.stitching_ablation`: one decoding, stitched with and
   without the start scorer and the long-ORF rule).
Every GFF3 written is checked with `gt gff3validator` where GenomeTools is installed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import f1s, machine, print_ablation, stitching_ablation  # noqa: E402

import annotate  # noqa: E402
from annotation.annotator import AnnotationOptions, annotate_genome  # noqa: E402
from genome_io.baselines import orf_floor_genes, prodigal_genes  # noqa: E402
from genome_io.fasta import read_fasta  # noqa: E402
from genome_io.gff import read_gff  # noqa: E402
from genome_io.gff3_writer import write_gff3  # noqa: E402
from scoring.metrics import score  # noqa: E402
from tests.fixtures.genomes import SHARED_GENOMES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PRODIGAL_RUNS = 3  # its best: one run of half a second varies by 1.5x on a shared machine
REFERENCE = {"num_beams": 8}  # the demo's decoding before greedy became the default: the reference for speed


def seconds_of(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def gt_verdict(genes, lengths, path: Path) -> str:
    write_gff3(genes, lengths, path)
    if not shutil.which("gt"):
        return "gt not installed"
    check = subprocess.run(["gt", "gff3validator", str(path)], capture_output=True, text=True)
    return (
        "gt-valid" if check.returncode == 0 and not check.stderr.strip() else "INVALID: " + check.stderr[:200]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo_dir", type=Path, default=REPO / "outputs" / "demo", help="a make demo output")
    parser.add_argument(
        "--genome", default="tpallidum_nichols", help="shared genome timed (1.1 Mbp; mabs_atcc19977: 5.1)"
    )
    parser.add_argument("--fasta", type=Path, help="time this FASTA instead of a shared genome")
    parser.add_argument("--no_reference", action="store_true", help="skip the 8-beam reference run")
    parser.add_argument(
        "--workers",
        type=int,
        default=annotate.cpu_workers(),
        help="decoding processes (default annotate.py's: one per core, at most 8)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(machine())
    model_dir = args.demo_dir / "model"
    fasta = args.fasta or SHARED_GENOMES / args.genome / "genome.fna.gz"
    for needed, how in ((model_dir, "run `make demo` first"), (fasta, "no genome to time")):
        if not needed.exists():
            print(f"{needed} is missing: {how}; nothing to benchmark")
            return 0
    model, tokenizer = annotate.load_model(str(model_dir), trust_remote_code=True)
    defaults = AnnotationOptions().for_model(model.config)
    print(
        f"defaults for this model: {defaults.window_bp:,} bp windows overlapping {defaults.overlap_bp:,} bp, "
        f"{defaults.beams} beam(s), both strands {defaults.both_strands}, genes >= "
        f"{defaults.min_coding_length} bp, overlap limit {defaults.gene_overlap_limit} bp"
    )
    with tempfile.TemporaryDirectory() as tmp:
        records = list(read_fasta(fasta))
        bp = sum(len(sequence) for _, sequence in records)
        prodigal_bps = bp / min(seconds_of(prodigal_genes, records) for _ in range(PRODIGAL_RUNS))
        started = time.perf_counter()
        genes, lengths, stats = annotate_genome(
            model, tokenizer, fasta, defaults, progress=False, workers=args.workers
        )
        model_bps = bp / (time.perf_counter() - started)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        verdict = gt_verdict(genes, lengths, Path(tmp) / "genome.gff3")
        print(
            f"\nspeed on {fasta.name} ({bp:,} bp, {len(records)} sequence(s)), defaults, {args.workers} worker(s):"
        )
        print(
            f"  GFF-MoE  {model_bps:>12,.0f} bp/s  ({bp / model_bps:.0f} s; {sum(map(len, genes.values()))} genes, {verdict})"
        )
        print(f"  pyrodigal {prodigal_bps:>11,.0f} bp/s")
        print(
            f"  ratio GFF-MoE / pyrodigal: 1/{prodigal_bps / model_bps:,.0f}; peak RSS {rss:,.0f} MiB"
            + (f", largest worker {worker_rss:,.0f} MiB" if args.workers > 1 else "")
        )

        region = args.demo_dir / "heldout.fna"
        reference = read_gff(args.demo_dir / "heldout_reference.gff3").genes_by_seqid
        region_records = list(read_fasta(region))
        region_bp = sum(len(s) for _, s in region_records)
        # One decoding at the defaults gives their row and, re-stitched, what each stitching rule buys.
        ablation, stats, _ = stitching_ablation(model, tokenizer, region_records, defaults, args.workers)
        lengths = {seqid: len(sequence) for seqid, sequence in region_records}
        verdict = gt_verdict(ablation["defaults"], lengths, Path(tmp) / "r.gff3")
        rows = {"defaults": (score(reference, ablation["defaults"]), region_bp / stats.seconds, verdict)}
        if not args.no_reference:
            started = time.perf_counter()
            genes, lengths, _ = annotate_genome(
                model, tokenizer, region, replace(defaults, **REFERENCE), progress=False, workers=args.workers
            )
            seconds = time.perf_counter() - started
            rows["8 beams"] = (
                score(reference, genes),
                region_bp / seconds,
                gt_verdict(genes, lengths, Path(tmp) / "r.gff3"),
            )
        for name, caller in (("Prodigal", prodigal_genes), ("ORF floor", orf_floor_genes)):
            started = time.perf_counter()
            genes = caller(region_records)
            rows[name] = (score(reference, genes), region_bp / (time.perf_counter() - started), "")
    print(f"\nheld-out region {region} ({region_bp:,} bp), F1 gene 3' / exact / nucleotide:")
    for name, (scores, bps, verdict) in rows.items():
        print(f"  {name:<16} {f1s(scores)}   {bps:>12,.0f} bp/s  {verdict}")
    if "8 beams" in rows:
        print(f"  speed, defaults / 8 beams: {rows['defaults'][1] / rows['8 beams'][1]:.1f}x")
    print("what each stitching rule buys at the defaults (the same decoded windows):")
    print_ablation(ablation, reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
