"""How often the start scorer picks a real gene's start, on a bacterium it was not fitted on.

    python bench/starts.py

For each of the four shared bacteria (`--bacteria`): the scorer (`training.starts`) fitted on the curated
genes of the others, then applied to this one's genes, each given its stop (as after the decoder): the share of
starts right, beside the longest-start rule (the ORF floor's, and the annotator's without a scorer). Genes:
whole single-exon coding genes whose ORF begins after a stop. Needs ../shared (never copied).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine  # noqa: E402

from annotation.constraints import GeneticCode  # noqa: E402
from annotation.starts import start_weight_vector  # noqa: E402
from genome_io.fasta import read_fasta  # noqa: E402
from genome_io.gff import read_gff  # noqa: E402
from tests.fixtures.genomes import SHARED_GENOMES  # noqa: E402
from training.starts import fit_start_weights, start_example  # noqa: E402

BACTERIA = ("bsub168", "mabs_atcc19977", "tpallidum_nichols", "paracoccus_scn6821")


def examples(name: str) -> list[tuple[np.ndarray, int]]:
    """The start examples of one shared bacterium's curated genes."""
    code = GeneticCode(11)
    sequences = dict(read_fasta(SHARED_GENOMES / name / "genome.fna.gz"))
    genes = read_gff(SHARED_GENOMES / name / "annotation.gff3.gz").genes_by_seqid
    found = (start_example(gene, sequences[seqid], code) for seqid in genes for gene in genes[seqid])
    return [example for example in found if example is not None]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bacteria",
        nargs="+",
        choices=BACTERIA,
        default=BACTERIA,
        help="shared bacteria (default: all four)",
    )
    args = parser.parse_args(argv)
    if not SHARED_GENOMES.is_dir():
        print(f"starts.py: {SHARED_GENOMES}: the shared genomes are not here; nothing to measure")
        return 0
    print(machine())
    data = {name: examples(name) for name in args.bacteria}
    print("share of real starts picked, the scorer fitted on the other bacteria:")
    print(f"  {'bacterium':<20} {'genes':>6}  {'longest start':>13}  {'start scorer':>12}")
    for name, held_out in data.items():
        weights = start_weight_vector(fit_start_weights([e for n, d in data.items() if n != name for e in d]))
        longest = np.mean([chosen == 0 for _, chosen in held_out])
        scored = np.mean([int(np.argmax(features @ weights)) == chosen for features, chosen in held_out])
        print(f"  {name:<20} {len(held_out):>6}  {longest:>13.3f}  {scored:>12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
