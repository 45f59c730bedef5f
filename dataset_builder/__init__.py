"""Baking FASTA + GFF3 by taxon into a Hub-native dataset (parquet shards + dataset card).

`python -m dataset_builder bake --help`; programmatic: `bake_genome`, `genome_examples`, `GffMoeWindows`.
"""

from .bake import BakeError, BakeOptions, GenomeReport, bake_genome, genome_examples
from .builder import GffMoeWindows, TaxonConfig
from .card import write_card
from .schema import FEATURES, SPLITS
from .taxa import TAXA
from .windows import Window, plan_windows, window_genes

__all__ = [
    "FEATURES",
    "SPLITS",
    "TAXA",
    "BakeError",
    "BakeOptions",
    "GenomeReport",
    "GffMoeWindows",
    "TaxonConfig",
    "Window",
    "bake_genome",
    "genome_examples",
    "plan_windows",
    "window_genes",
    "write_card",
]
