"""Baking FASTA + GFF3 by taxon into a Hub-native dataset (parquet shards + dataset card).

`python -m dataset_builder bake --help`; programmatic: `bake.bake_genome`, `bake.genome_examples`,
`builder.GffMoeWindows` (a `datasets` builder). The package imports nothing itself: `datasets` and `pyarrow`
load only with the modules that use them.
"""
