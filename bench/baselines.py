"""Baselines on the shared prokaryote genomes: Prodigal and the ORF floor, accuracy against the
NOTES.md anchors and speed (bp/s; the ORF floor as a ratio of Prodigal's, measured in the same run).

    PYTHONPATH=. .venv/bin/python bench/baselines.py [--genomes bsub168 ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import machine
from tqdm import tqdm

from genome_io.baselines import baseline_speed, orf_floor_genes, prodigal_genes
from genome_io.fasta import read_fasta
from genome_io.gff import read_gff
from scoring.metrics import score

SHARED_GENOMES = Path(__file__).resolve().parents[1].parent / "shared" / "genomes"
# NOTES.md: Prodigal gene-level F1, 3' (strand + stop) and exact (start + stop).
ANCHORS = {
    "bsub168": (0.976, 0.885),
    "mabs_atcc19977": (0.984, 0.797),
    "tpallidum_nichols": (0.952, 0.678),
    "paracoccus_scn6821": (0.964, 0.818),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--genomes", nargs="+", default=list(ANCHORS), choices=list(ANCHORS))
    args = parser.parse_args()
    print(machine())
    if not SHARED_GENOMES.is_dir():
        print(f"skipped: {SHARED_GENOMES} does not exist")
        return 0
    rows = []
    for name in tqdm(args.genomes, desc="genomes"):
        records = list(read_fasta(SHARED_GENOMES / name / "genome.fna.gz"))
        lengths = {seqid: len(sequence) for seqid, sequence in records}
        reference = read_gff(SHARED_GENOMES / name / "annotation.gff3.gz", lengths).genes_by_seqid
        prodigal, prodigal_speed = baseline_speed(prodigal_genes, records)
        floor, floor_speed = baseline_speed(orf_floor_genes, records)
        p, f = score(reference, prodigal), score(reference, floor)
        rows.append(
            f"{name:<20} {p.gene_3prime.f1:.3f} ({ANCHORS[name][0]:.3f}) {p.gene_exact.f1:.3f} "
            f"({ANCHORS[name][1]:.3f}) {prodigal_speed / 1e6:6.2f}   | {f.gene_3prime.f1:.3f} "
            f"{f.gene_exact.f1:.3f} {floor_speed / prodigal_speed:6.1f}x"
        )
    print(
        f"{'':<20} {'Prodigal F1: 3p (anchor)  exact (anchor)  Mbp/s':<49}| ORF floor: 3p  exact  speed vs Prodigal"
    )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
