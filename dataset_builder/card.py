"""The dataset card (README.md): Hub YAML metadata with one config per baked taxon, and the reports."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import yaml

from core.taxa import TAXA

from .schema import FEATURES, LABEL_SOURCES, SPLITS

FEATURE_DOCS = {
    "species": "species name given at bake time",
    "taxon": "taxon group (one config per taxon)",
    "seqid": "sequence (chromosome/contig) name in the FASTA",
    "start": "first base of the window on `seqid` (1-based, inclusive)",
    "end": "last base of the window (1-based, inclusive)",
    "strand_augmented": "true for the reverse complement of [start, end] (`--rc_augment`); coordinates in "
    "`target` are then mirrored",
    "sequence": "the window's DNA, upper case (IUPAC codes kept)",
    "target": "the window's genes as canonical codec text (`tokenization.codec.genes_to_text`): 0-based "
    "window coordinates, genes cut by a window edge marked `<open_l>`/`<open_r>`",
    "n_genes": "genes (whole or cut) in the window",
    "n_partial": "genes cut by a window edge",
    "hints": "codec text of a random subset of the window's genes (`--hint_ratio`), empty otherwise",
}

BODY = """
# GFF-MoE training windows

Windows of genomic DNA paired with their gene annotation, written in the GFF-MoE target grammar
(`tokenization/codec.py`): the model reads `sequence` and learns to write `target`, which decodes to GFF3.
One config per taxon group, each with `train`, `validation` and `test` splits:

```python
from datasets import load_dataset
ds = load_dataset("./dataset_builder", "prokaryotes")   # or the Hub id this folder was pushed to
```

## How it is made
`python -m dataset_builder bake FASTA GFF --taxon T --species NAME` (or `bake_many --raw_dir RAW ...`):

1. FASTA and GFF3/GTF are read by `genome_io` (Biopython, gffutils); every dialect (NCBI, SGD, JGI,
   FlyBase, Phytozome, Ensembl) is reduced to genes -> transcripts -> exons + coding span. Genes with
   unusable features (seqid not in the FASTA, coordinates outside the sequence, unknown strand, missing
   Parent, duplicate ID, Parent cycle, crossing the origin of a circular sequence, ...) are dropped and
   counted, never silently, and so are feature lines that belong to no gene.
2. Each sequence is tiled with windows of at most the taxon's limit, cut between genes wherever a gap
   exists, neighbours overlapping by a tenth of the limit. A gene longer than the limit but within the
   long-gene bound gets a window of its own. Genes cut by a window edge keep their reading frame and are
   marked open on that side. Windows that are mostly N, or where a dropped gene lies (its bases would read
   as "no gene"), are skipped.
3. Splits are drawn per contiguous block of 10 limits (seeded), and windows straddling blocks of two
   splits are dropped, so no base of a validation or test window is in a training window of the same
   genome. `--holdout SPECIES` puts a whole species in `test`.

| taxon | window limit (bp) | long-gene bound (bp) |
|---|---|---|
{taxa}

## Features
| column | meaning |
|---|---|
{features}

## Licence
The windows are derived from third-party genome assemblies and annotations; each keeps the licence and
terms of its source (see the per-genome table for what went in). Labels whose source is Prodigal or
AUGUSTUS are **silver labels** (that gene finder's own predictions), not a curated annotation.

## Per-genome reports
{reports}
"""


def read_reports(dataset_dir: Path) -> dict[str, list[dict]]:
    """Per-genome reports on disk, by taxon."""
    reports: dict[str, list[dict]] = {}
    for path in sorted(Path(dataset_dir).glob("data/*/*/report.json")):
        reports.setdefault(path.parent.parent.name, []).append(json.loads(path.read_text()))
    return reports


def write_card(dataset_dir: Path) -> Path:
    """(Re)write `dataset_dir/README.md` from the shards and reports on disk (atomically)."""
    dataset_dir = Path(dataset_dir)
    reports = read_reports(dataset_dir)
    configs = []
    for taxon in sorted(reports):
        files = [
            {"split": split, "path": f"data/{taxon}/*/{split}-*.parquet"}
            for split in SPLITS
            if any((dataset_dir / "data" / taxon).glob(f"*/{split}-*.parquet"))
        ]
        if files:
            configs.append(
                {"config_name": taxon, "data_files": files, "description": _fingerprint(dataset_dir, taxon)}
            )
    metadata = {
        "license": "other",
        "license_name": "per-source",
        "license_details": "Derived from public genome assemblies and annotations; each keeps its source's terms.",
        "pretty_name": "GFF-MoE gene annotation windows",
        "tags": ["biology", "genomics", "dna", "gene-annotation", "gff3"],
        "size_categories": [_size_category(reports)],
        "configs": configs,
    }
    text = "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---\n" + _body(reports)
    path = dataset_dir / "README.md"
    handle, temp = tempfile.mkstemp(prefix=".README.", dir=dataset_dir)
    with os.fdopen(handle, "w") as fh:
        fh.write(text)
    os.replace(temp, path)
    return path


def _fingerprint(dataset_dir: Path, taxon: str) -> str:
    """The taxon's shards by content, for the card's YAML.

    datasets keys the cache of a local folder by its basename and the card's YAML alone (the data-file
    patterns, not the files): without this, two `mydata` folders, or one re-baked, load the windows first
    cached. A config's `description` is a builder parameter, so it enters that key.
    """
    digest = hashlib.sha256()
    for shard in sorted((dataset_dir / "data" / taxon).glob("*/*.parquet")):
        digest.update(f"{shard.relative_to(dataset_dir)}\0".encode())
        with open(shard, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return f"{taxon} windows, shards sha256 {digest.hexdigest()[:16]}"


def _size_category(reports: dict[str, list[dict]]) -> str:
    rows = sum(sum(r["windows"].values()) for rs in reports.values() for r in rs)
    for bound, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < bound:
            return name
    return "n>1M"


def _body(reports: dict[str, list[dict]]) -> str:
    taxa = "\n".join(f"| {t} | {limit:,} | {bound:,} |" for t, (limit, bound) in TAXA.items())
    features = "\n".join(f"| `{name}` ({FEATURES[name].dtype}) | {FEATURE_DOCS[name]} |" for name in FEATURES)
    if not reports:
        table = "Nothing baked yet: run `python -m dataset_builder bake --help`."
    else:
        lines = [
            "| taxon | species | labels | bp | windows (train/val/test) | genes in file | kept | dropped (reason) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for taxon, rs in sorted(reports.items()):
            for r in rs:
                dropped = "; ".join(f"{n} {reason}" for reason, n in sorted(r["dropped"].items())) or "0"
                windows = "/".join(str(r["windows"][s]) for s in SPLITS)
                lines.append(
                    f"| {taxon} | {r['species']} | {LABEL_SOURCES[r['labels']].format(**r)} | {r['bases']:,} | {windows} "
                    f"| {r['genes_in_file']} | {r['kept']} | {dropped} |"
                )
        table = "\n".join(lines)
    return BODY.format(taxa=taxa, features=features, reports=table)
