"""The baking logic as a `datasets.GeneratorBasedBuilder`: one BuilderConfig per taxon.

Programmatic use (no files written besides the datasets cache):

    builder = GffMoeWindows(config_name="prokaryotes", genomes=[("bsub", "genome.fna.gz", "genes.gff3.gz")],
                            cache_dir=tmp)
    builder.download_and_prepare()
    ds = builder.as_dataset()

`python -m dataset_builder bake` writes the same examples as Hub-native parquet shards instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets

from core.taxa import TAXA

from .bake import BakeOptions, genome_examples
from .schema import FEATURES, SPLITS


@dataclass
class TaxonConfig(datasets.BuilderConfig):
    """A taxon's window limit and long-gene bound, the genomes to bake and the bake options."""

    limit: int = 0
    threshold: int = 0
    genomes: list = field(default_factory=list)  # (species, fasta, gff or None)
    options: dict = field(default_factory=dict)  # other BakeOptions fields (seed, rc_augment, ...)


class GffMoeWindows(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = TaxonConfig
    BUILDER_CONFIGS = [
        TaxonConfig(name=taxon, limit=limit, threshold=bound, description=f"{taxon}: windows <= {limit} bp")
        for taxon, (limit, bound) in TAXA.items()
    ]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description="GFF-MoE gene annotation windows", features=FEATURES)

    def _bake_options(self) -> BakeOptions:
        c = self.config
        return BakeOptions(**{"taxon": c.name, "limit": c.limit, "threshold": c.threshold, **c.options})

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split}) for split in SPLITS]

    def _generate_examples(self, split: str):
        options = self._bake_options()
        for species, fasta, gff in self.config.genomes:
            examples, _ = genome_examples(species, Path(fasta), gff and Path(gff), options)
            for i, (example_split, example) in enumerate(examples):
                if example_split == split:
                    yield f"{species}-{i}", example
