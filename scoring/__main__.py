"""python -m scoring: score a GFF3 prediction (and/or baselines) against a reference annotation."""

from __future__ import annotations

import argparse
import json
import re
import sys

from core.errors import InputError
from core.taxa import AUGUSTUS_SPECIES, TAXA
from genome_io.baselines import augustus_genes, orf_floor_genes, prodigal_genes
from genome_io.cli import run_cli
from genome_io.fasta import read_fasta
from genome_io.gff import read_gff

from .metrics import Region, score
from .report import format_table

PROG = "python -m scoring"
# Each baseline runs on the FASTA's records with the parsed arguments (taxon, AUGUSTUS parameter set).
BASELINES = {
    "prodigal": lambda records, args: prodigal_genes(records),
    "augustus": lambda records, args: augustus_genes(records, args.augustus_species),
    "orf": lambda records, args: orf_floor_genes(records, args.taxon),
}
# Reasons read_gff drops a gene that mean the GFF does not belong to this FASTA.
WRONG_GENOME = ("seqid not in FASTA", "coordinates beyond the sequence")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Gene-prediction accuracy (Burset & Guigo levels: nucleotide, CDS segment, transcript, "
        "gene, gene 3' end, gene exact) of a GFF3/GTF prediction and/or baselines against a reference. "
        "Reference pseudogenes are excluded; see scoring/metrics.py for the exact rules.",
    )
    parser.add_argument("--reference", required=True, help="reference annotation, GFF3 or GTF (.gz ok)")
    parser.add_argument("--prediction", help="predicted annotation, GFF3 or GTF (.gz ok)")
    parser.add_argument(
        "--fasta", help="genome FASTA (.gz ok): checks that both files belong to it; needed by --baseline"
    )
    parser.add_argument(
        "--baseline",
        nargs="+",
        action="extend",
        choices=sorted(BASELINES),
        default=[],
        help="also score baselines run on --fasta: prodigal (pyrodigal, single-genome mode), augustus "
        "(the AUGUSTUS binary, parameter set --augustus_species) and/or orf (the trivial floor: every ORF "
        "with its longest start as a single-exon gene, >= 600 bp for prokaryotes, >= 300 bp (ATG starts) "
        "for eukaryotes)",
    )
    parser.add_argument(
        "--taxon",
        choices=list(TAXA),
        default="prokaryotes",
        help="taxon of the genome: sets the ORF floor and the default --augustus_species (default: prokaryotes)",
    )
    defaults = ", ".join(f"{species} for {taxon}" for taxon, species in AUGUSTUS_SPECIES.items())
    parser.add_argument(
        "--augustus_species",
        metavar="NAME",
        help=f"AUGUSTUS parameter set for --baseline augustus (default per --taxon: {defaults})",
    )
    parser.add_argument(
        "--region", type=_region, help="score only genes wholly inside SEQID:START-END (1-based)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON dict {predictor: {level: scores}}")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.prediction and not args.baseline:
        parser.error("nothing to score: give --prediction and/or --baseline")
    if args.baseline and not args.fasta:
        parser.error("--baseline needs --fasta")
    args.augustus_species = args.augustus_species or AUGUSTUS_SPECIES.get(args.taxon)
    if "augustus" in args.baseline and not args.augustus_species:
        parser.error(f"--baseline augustus needs --augustus_species (no default for {args.taxon})")
    return args


def _region(text: str) -> Region:
    match = re.fullmatch(r"(.+):(\d+)-(\d+)", text.replace(",", ""))
    if not match or int(match[2]) > int(match[3]):
        raise argparse.ArgumentTypeError(f"expected SEQID:START-END with START <= END, got {text!r}")
    return match[1], int(match[2]), int(match[3])


def read_genes(
    path: str, seq_lengths: dict[str, int] | None, fasta: str | None, allow_empty: bool = False
) -> dict:
    """Genes of one GFF; InputError if any lie outside the FASTA's sequences; other drops go to stderr."""
    result = read_gff(path, seq_lengths, allow_empty)
    report = result.report
    for reason in WRONG_GENOME:
        if report.dropped[reason]:
            first = report.examples[reason][0]
            raise InputError(
                path,
                None,
                f"{report.dropped[reason]} gene(s) lie outside the sequences of {fasta} (first: {first})",
            )
    print(f"{path}: {report.summary()}", file=sys.stderr)
    return result.genes_by_seqid


def check_shared_seqids(reference_path: str, reference: dict, prediction_path: str, prediction: dict) -> None:
    """Without a FASTA nothing ties the two files to one genome: genes on no shared seqid are an
    InputError (a renamed assembly would score 0), a prediction's seqids unknown to the reference a warning."""
    foreign = sorted(set(prediction) - set(reference))
    if reference and prediction and len(foreign) == len(prediction):
        raise InputError(
            prediction_path,
            None,
            f"no seqid in common with {reference_path} (prediction: {', '.join(foreign[:3])}; "
            f"reference: {', '.join(sorted(reference)[:3])}): give --fasta or check the names",
        )
    if reference and foreign:
        print(
            f"warning: {prediction_path}: {len(foreign)} seqid(s) without reference genes "
            f"({', '.join(foreign[:3])}): their genes count as false positives",
            file=sys.stderr,
        )


def score_files(argv=None) -> None:
    args = parse_args(argv)
    records = list(read_fasta(args.fasta)) if args.fasta else []
    lengths = {seqid: len(sequence) for seqid, sequence in records} or None
    reference = read_genes(args.reference, lengths, args.fasta)
    predictions = {}
    if args.prediction:  # a prediction of no genes is a result to score, not an error
        predictions["prediction"] = read_genes(args.prediction, lengths, args.fasta, allow_empty=True)
        if not args.fasta:
            check_shared_seqids(args.reference, reference, args.prediction, predictions["prediction"])
    for name in args.baseline:
        print(f"running baseline {name} on {args.fasta} ...", file=sys.stderr)
        predictions[name] = BASELINES[name](records, args)
    scores = {name: score(reference, genes, args.region) for name, genes in predictions.items()}
    if args.json:
        print(json.dumps({name: s.as_dict() for name, s in scores.items()}, indent=2))
    else:
        print(format_table(scores))


def main(argv=None) -> int:
    return run_cli(PROG, score_files, argv)


if __name__ == "__main__":
    sys.exit(main())
