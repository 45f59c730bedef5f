"""`python -m dataset_builder bake|bake_many ...`: bake genomes into a Hub-native dataset directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import InputError
from core.taxa import AUGUSTUS_SPECIES, TAXA
from genome_io.cli import deprecated, fraction, non_negative_int, old_spelling, positive_int, run_cli

from .bake import BakeOptions, bake_genome
from .schema import LABEL_SOURCES

PROG = "python -m dataset_builder"
FASTA_SUFFIXES = (".fna", ".fa", ".fasta", ".fas")
GFF_SUFFIXES = (".gff3", ".gff", ".gtf")
OLD_BAKE_MANY = "bake-many"  # the command's name before one style; still accepted for one release


def _options_parser() -> argparse.ArgumentParser:
    """The options `bake` and `bake_many` share."""
    taxa = ", ".join(f"{t} {limit}/{bound}" for t, (limit, bound) in TAXA.items())
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--taxon", required=True, choices=list(TAXA), help=f"taxon group (limit/bound bp: {taxa})")
    p.add_argument("--limit", type=positive_int, help="window length limit in bp (default: the taxon's)")
    p.add_argument(
        "--threshold", type=positive_int, help="long-gene bound in bp: longer genes are only seen clipped"
    )
    p.add_argument(
        "--overlap", type=non_negative_int, help="bases shared by neighbouring windows (default: limit / 10)"
    )
    p.add_argument(
        "--rc_augment", action="store_true", help="add reverse-complement windows (mirrored targets)"
    )
    p.add_argument(
        "--coding_only",
        action="store_true",
        help="protein-coding structure only: transcripts cut to their CDS chains (no UTRs), non-coding genes "
        "left out (counted in the report): what a CDS-level gene finder predicts",
    )
    p.add_argument("--hint_ratio", type=fraction, default=0.0, help="fraction of genes also given as hints")
    p.add_argument(
        "--holdout", action="append", default=[], metavar="SPECIES", help="put a whole species in test"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the split draw and the hints")
    p.add_argument(
        "--val_fraction", type=fraction, default=0.05, help="fraction of split blocks in validation"
    )
    p.add_argument("--test_fraction", type=fraction, default=0.05, help="fraction of split blocks in test")
    p.add_argument(
        "--split_block", type=positive_int, help="bp per contiguous split block (default: 10 x limit)"
    )
    p.add_argument(
        "--labels",
        choices=["gff", "prodigal", "augustus"],
        default="gff",
        help="where genes come from: the GFF, or the predictions of Prodigal (prokaryotes) or AUGUSTUS "
        "(eukaryotes): silver labels, for genomes without a GFF",
    )
    species_sets = ", ".join(f"{species} for {taxon}" for taxon, species in AUGUSTUS_SPECIES.items())
    p.add_argument(
        "--augustus_species",
        metavar="NAME",
        help=f"AUGUSTUS parameter set for --labels augustus (default per --taxon: {species_sets})",
    )
    p.add_argument("--extract_tokens", type=Path, metavar="FILE", help="write new feature-type tokens here")
    p.add_argument("--dataset_dir", type=Path, default=Path("dataset_builder"), help="dataset directory")
    quiet = p.add_argument("--quiet", action="store_true", help="no progress bars")
    old_spelling(p, quiet, "--no_progress")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bake FASTA + GFF3/GTF pairs into windows with gene targets, as parquet shards plus a "
        "dataset card, loadable with datasets.load_dataset(DATASET_DIR, TAXON).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    shared = _options_parser()
    bake = commands.add_parser("bake", parents=[shared], help="bake one genome")
    bake.add_argument("fasta", type=Path, help="genome FASTA (plain or .gz)")
    bake.add_argument(
        "gff",
        type=Path,
        nargs="?",
        help="annotation GFF3/GTF (plain or .gz); omit with --labels prodigal/augustus",
    )
    bake.add_argument("--species", required=True, help="species name (one set of shards per species)")
    many = commands.add_parser(
        "bake_many",
        aliases=[OLD_BAKE_MANY],
        parents=[shared],
        help="bake RAW_DIR/<species>/ FASTA + GFF pairs, one per species",
    )
    many.add_argument("species", nargs="+", help="species directories under --raw_dir")
    many.add_argument("--raw_dir", type=Path, required=True, help="folder with one sub-folder per species")
    return parser


def find_pair(directory: Path, need_gff: bool) -> tuple[Path, Path | None]:
    """The FASTA and GFF in a species folder (any of .fna/.fa/.fasta and .gff3/.gff/.gtf, optionally .gz)."""

    def one(suffixes, kind):
        found = sorted(p for p in directory.iterdir() if p.name.removesuffix(".gz").endswith(suffixes))
        if len(found) > 1:
            raise InputError(
                directory, None, f"more than one {kind} file: {', '.join(p.name for p in found)}"
            )
        return found[0] if found else None

    if not directory.is_dir():
        raise InputError(directory, None, "no such species folder")
    fasta, gff = one(FASTA_SUFFIXES, "FASTA"), one(GFF_SUFFIXES, "GFF")
    if fasta is None:
        raise InputError(directory, None, f"no FASTA file ({'/'.join(FASTA_SUFFIXES)}[.gz])")
    if gff is None and need_gff:
        raise InputError(
            directory, None, f"no GFF file ({'/'.join(GFF_SUFFIXES)}[.gz]); or use --labels prodigal/augustus"
        )
    return fasta, gff


def bake(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == OLD_BAKE_MANY:
        deprecated(PROG, OLD_BAKE_MANY, "bake_many")
    options = BakeOptions(
        taxon=args.taxon,
        limit=args.limit,
        threshold=args.threshold,
        overlap=args.overlap,
        rc_augment=args.rc_augment,
        coding_only=args.coding_only,
        hint_ratio=args.hint_ratio,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        split_block=args.split_block,
        holdout=tuple(args.holdout),
        labels=args.labels,
        augustus_species=args.augustus_species,
    )
    if args.command == "bake":
        jobs = [(args.species, args.fasta, args.gff if args.labels == "gff" else None)]
    else:
        jobs = [(s, *find_pair(args.raw_dir / s, args.labels == "gff")) for s in args.species]
    reports = []
    for species, fasta, gff in jobs:
        gff = gff if args.labels == "gff" else None
        reports.append(bake_genome(species, fasta, gff, options, args.dataset_dir, not args.quiet))
    for report in reports:
        print(report.summary())
    if options.labels != "gff":
        print(f"note: these labels are {LABEL_SOURCES[options.labels].format(**vars(options))}.")
    new_types = sorted({t for r in reports for t in r.new_feature_types})
    if args.extract_tokens:
        args.extract_tokens.write_text("".join(f"<{t}>\n" for t in new_types))
        print(f"{len(new_types)} new feature-type tokens written to {args.extract_tokens}")
    elif new_types:
        print(
            f"new feature types (not in the codec vocabulary): {', '.join(new_types)}; see --extract_tokens"
        )
    print(f"dataset: {args.dataset_dir} (load_dataset({str(args.dataset_dir)!r}, {args.taxon!r}))")


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, bake, argv)


if __name__ == "__main__":
    sys.exit(main())
