"""Baking one genome into windows (examples) with leak-free splits, and writing them as parquet shards.

Layout under a dataset directory (default `./dataset_builder`, the Hub dataset repository):

    data/<taxon>/<species>/<split>-NNNNN.parquet             one species' windows per split (00000, 00001, ...)
    data/<taxon>/<species>/report.json                      the per-genome report
    README.md                                                dataset card; its YAML `configs:` list the taxa

A species directory is written under a hidden temporary name and renamed into place, so an interrupted
bake leaves the previous dataset as it was, and re-baking a species replaces only that species.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from Bio.Seq import reverse_complement
from tqdm.auto import tqdm

from core.errors import InputError
from core.features import Gene, merge_spans
from core.taxa import AUGUSTUS_SPECIES, TAXA
from genome_io.fasta import fasta_lengths, normalise_dna, read_fasta
from genome_io.gff import read_gff
from tokenization.codec import codec_vocabulary, gene_problems, genes_to_text, type_token

from .card import write_card
from .schema import FEATURES, LABEL_SOURCES, SPLITS
from .windows import GeneIndex, Window, plan_windows, window_genes

ROWS_PER_SHARD = 4000


class BakeError(InputError):
    """Bad options or inputs for a bake (reported like every input error: one line, exit 2)."""


@dataclass
class BakeOptions:
    taxon: str
    limit: int | None = None  # window length limit (bp); default from TAXA
    threshold: int | None = None  # long-gene bound (bp); default from TAXA
    overlap: int | None = None  # bases shared by neighbouring windows; default limit // 10
    rc_augment: bool = False
    # Protein-coding structure only: each coding transcript cut to its CDS chain (no UTRs), non-coding genes
    # left out, so that the decoder learns where coding starts, splices and stops, as ab initio gene finders
    # predict (AUGUSTUS --UTR=off) and the CDS-level scores measure.
    coding_only: bool = False
    hint_ratio: float = 0.0
    seed: int = 42
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    split_block: int | None = None  # bp per contiguous split block; default 10 x limit
    max_n_fraction: float = 0.5  # skip windows with more N than this
    holdout: tuple[str, ...] = ()  # species that go to test whole
    labels: str = "gff"  # or "prodigal", "augustus"
    augustus_species: str | None = None  # AUGUSTUS parameter set for labels="augustus"; default per taxon

    def __post_init__(self):
        if self.taxon not in TAXA:
            raise BakeError("--taxon", None, f"unknown taxon {self.taxon!r}; choose from {', '.join(TAXA)}")
        limit, threshold = TAXA[self.taxon]
        self.limit = self.limit or limit
        self.threshold = self.threshold or max(threshold, self.limit)
        self.overlap = self.limit // 10 if self.overlap is None else self.overlap
        self.split_block = self.split_block or 10 * self.limit
        if not 0 <= self.overlap < self.limit // 2:
            raise BakeError("--overlap", None, f"must be in [0, limit/2), got {self.overlap}")
        if self.threshold < self.limit:
            raise BakeError(
                "--threshold", None, f"long-gene bound {self.threshold} is below the limit {self.limit}"
            )
        if not (
            self.val_fraction >= 0 and self.test_fraction >= 0 and self.val_fraction + self.test_fraction < 1
        ):
            raise BakeError("--val_fraction", None, "fractions must be >= 0 and sum to less than 1")
        if self.labels not in LABEL_SOURCES:
            raise BakeError(
                "--labels", None, f"unknown label source {self.labels!r}; choose {', '.join(LABEL_SOURCES)}"
            )
        if self.labels == "augustus":
            self.augustus_species = self.augustus_species or AUGUSTUS_SPECIES.get(self.taxon)
            if not self.augustus_species:
                raise BakeError(
                    "--augustus_species",
                    None,
                    f"no default AUGUSTUS parameter set for {self.taxon}; name one",
                )


@dataclass
class GenomeReport:
    """What baking one genome did. Genes: kept + sum(dropped) == genes_in_file."""

    species: str
    taxon: str
    fasta: str
    annotation: str
    labels: str
    augustus_species: str = ""  # the parameter set of AUGUSTUS labels
    sequences: int = 0
    bases: int = 0
    genes_in_file: int = 0
    kept: int = 0  # complete in at least one baked window
    dropped: dict[str, int] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    windows_skipped: dict[str, int] = field(default_factory=dict)  # reason -> windows
    features_skipped: dict[str, int] = field(default_factory=dict)  # reason -> GFF lines in no gene
    long_gene_windows: int = 0
    new_feature_types: list[str] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> "file:line: message"

    def summary(self) -> str:
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())) or "none"
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.windows_skipped.items())) or "none"
        windows = " / ".join(f"{self.windows[s]} {s}" for s in SPLITS)
        labels = f"{self.labels} {self.augustus_species}".strip()
        features = "".join(
            f"; {n} feature lines skipped: {why}" for why, n in sorted(self.features_skipped.items())
        )
        return (
            f"{self.species} ({self.taxon}, {self.bases:,} bp in {self.sequences} sequences, labels: {labels})\n"
            f"  windows: {windows} ({self.long_gene_windows} long-gene windows); skipped: {skipped}\n"
            f"  genes: {self.genes_in_file} in file = {self.kept} kept + "
            f"{sum(self.dropped.values())} dropped ({dropped}){features}"
        )


# --- examples -------------------------------------------------------------------------------------


def read_labels(
    fasta: Path, gff: Path | None, options: BakeOptions, report: GenomeReport
) -> tuple[dict[str, list[Gene]], dict[str, list[tuple[int, int]]]]:
    """Genes per seqid (1-based) from the GFF, or from Prodigal or AUGUSTUS, and the spans of the genes and
    lines it dropped (bases that no label covers); accounts every gene and skipped line in the report."""
    if options.labels != "gff":
        from genome_io.baselines import augustus_genes, prodigal_genes

        if options.labels == "augustus":
            report.augustus_species = options.augustus_species
            genes = augustus_genes(fasta, options.augustus_species)
        else:
            genes = prodigal_genes(fasta)
        report.genes_in_file = sum(map(len, genes.values()))
        return genes, {}
    if gff is None:
        raise BakeError(
            fasta, None, "no annotation given: pass a GFF3/GTF file or --labels prodigal/augustus"
        )
    result = read_gff(gff, fasta_lengths(fasta))
    gff_report = result.report
    report.genes_in_file = gff_report.genes_in_file
    report.dropped.update(gff_report.dropped)
    report.features_skipped.update(gff_report.skipped_features)
    report.examples.update(gff_report.examples)
    return result.genes_by_seqid, result.dropped_spans


def split_of(species: str, seqid: str, window: Window, options: BakeOptions) -> str | None:
    """The split of a window: that of its contiguous block, None if it straddles blocks of two splits."""
    if species in options.holdout:
        return "test"
    first, last = (window.start - 1) // options.split_block, (window.end - 1) // options.split_block
    splits = {_block_split(species, seqid, block, options) for block in range(first, last + 1)}
    return splits.pop() if len(splits) == 1 else None


def _block_split(species: str, seqid: str, block: int, options: BakeOptions) -> str:
    draw = random.Random(f"{options.seed}:{species}:{seqid}:{block}").random()
    if draw < options.test_fraction:
        return "test"
    if draw < options.test_fraction + options.val_fraction:
        return "validation"
    return "train"


def genome_examples(
    species: str, fasta: Path, gff: Path | None, options: BakeOptions, progress: bool = False
) -> tuple[Iterator[tuple[str, dict]], GenomeReport]:
    """(split, example) for every window of one genome, and its report (complete once exhausted)."""
    report = GenomeReport(species, options.taxon, str(fasta), str(gff) if gff else "", options.labels)
    genes_by_seqid, unlabelled = read_labels(fasta, gff, options, report)
    genes_by_seqid = _writable(genes_by_seqid, report, unlabelled)
    if options.coding_only:
        genes_by_seqid = _coding_only(genes_by_seqid, report)
    known_types = set(codec_vocabulary())
    report.new_feature_types = sorted(
        {t for gs in genes_by_seqid.values() for g in gs for t in (g.type, *(x.type for x in g.transcripts))}
        - {t[1:-1] for t in known_types}
    )

    def examples() -> Iterator[tuple[str, dict]]:
        complete: set[Gene] = set()
        bar = tqdm(desc=species, unit="bp", unit_scale=True, disable=not progress)
        for seqid, sequence in read_fasta(fasta):
            report.sequences += 1
            report.bases += len(sequence)
            genes = genes_by_seqid.get(seqid, [])
            index, dropped = GeneIndex(genes), _Spans(unlabelled.get(seqid, []))
            for window in plan_windows(
                len(sequence), genes, options.limit, options.threshold, options.overlap
            ):
                dna = normalise_dna(sequence[window.start - 1 : window.end])
                skip = _skip_reason(dna, options)
                if skip is None and dropped.overlaps(window.start, window.end):
                    skip = "holds a dropped gene (its bases would read as no gene)"
                split = split_of(species, seqid, window, options) if skip is None else None
                if skip is None and split is None:
                    skip = "straddles a split boundary"
                if skip is not None:
                    report.windows_skipped[skip] = report.windows_skipped.get(skip, 0) + 1
                    continue
                local = window_genes(index, window)
                complete.update(
                    g
                    for g in index.overlapping(window.start, window.end)
                    if window.start <= g.start and g.end <= window.end
                )
                report.windows[split] += 1
                report.long_gene_windows += window.long_gene
                rng = random.Random(f"{options.seed}:{species}:{seqid}:{window.start}:{window.end}")
                yield split, _example(species, options.taxon, seqid, window, dna, local, False, rng, options)
                if options.rc_augment:
                    mirrored = [g.mirror(len(window)) for g in local]
                    rc = reverse_complement(dna)
                    yield (
                        split,
                        _example(species, options.taxon, seqid, window, rc, mirrored, True, rng, options),
                    )
            bar.update(len(sequence))
        bar.close()
        _account_windows(genes_by_seqid, complete, options, report)

    return examples(), report


class _Spans:
    """Sorted, merged spans (1-based) queried for overlap with a window."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = merge_spans(spans)
        self.ends = [end for _, end in self.spans]

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_left(self.ends, start)  # the first span ending at or after `start`
        return i < len(self.spans) and self.spans[i][0] <= end


def _skip_reason(dna: str, options: BakeOptions) -> str | None:
    if dna.count("N") > options.max_n_fraction * len(dna):
        return "mostly N"
    return None


def _example(species, taxon, seqid, window, dna, genes, mirrored, rng, options) -> dict:
    hints = [g for g in genes if rng.random() < options.hint_ratio] if options.hint_ratio else []
    return {
        "species": species,
        "taxon": taxon,
        "seqid": seqid,
        "start": window.start,
        "end": window.end,
        "strand_augmented": mirrored,
        "sequence": dna,
        "target": genes_to_text(genes),
        "n_genes": len(genes),
        "n_partial": sum(g.open_left or g.open_right for g in genes),
        "hints": genes_to_text(hints),
    }


def _writable(
    genes_by_seqid: dict[str, list[Gene]], report: GenomeReport, unlabelled: dict[str, list[tuple[int, int]]]
) -> dict[str, list[Gene]]:
    """Drop (and account) genes the codec cannot write, e.g. a type name that cannot be a token; their
    spans join `unlabelled`."""
    out = {}
    for seqid, genes in genes_by_seqid.items():
        out[seqid] = []
        for gene in genes:
            problems = gene_problems(gene) + _type_problems(gene)
            if problems:
                reason = "not writable by the codec"
                report.dropped[reason] = report.dropped.get(reason, 0) + 1
                report.examples.setdefault(reason, []).append(f"{gene.name or seqid}: {'; '.join(problems)}")
                unlabelled.setdefault(seqid, []).append((gene.start, gene.end))
            else:
                out[seqid].append(gene)
    return out


NON_CODING = "non-coding (left out by --coding_only)"


def _coding_only(genes_by_seqid: dict[str, list[Gene]], report: GenomeReport) -> dict[str, list[Gene]]:
    """Each gene cut to its coding transcripts' CDS chains (isoforms that differ only in UTRs become one);
    genes without a CDS are left out (and counted): their bases are then read as no coding gene."""
    out = {}
    for seqid, genes in genes_by_seqid.items():
        out[seqid] = []
        for gene in genes:
            chains = dict.fromkeys(
                replace(t, exons=t.cds_segments()) for t in gene.transcripts if t.cds is not None
            )
            if not chains:
                report.dropped[NON_CODING] = report.dropped.get(NON_CODING, 0) + 1
                continue
            start, end = min(t.start for t in chains), max(t.end for t in chains)
            out[seqid].append(
                replace(
                    gene,
                    start=start,
                    end=end,
                    transcripts=tuple(chains),
                    open_left=gene.open_left and start == gene.start,
                    open_right=gene.open_right and end == gene.end,
                )
            )
    return out


def _type_problems(gene: Gene) -> list[str]:
    problems = []
    for name in (gene.type, *(t.type for t in gene.transcripts)):
        try:
            type_token(name)
        except ValueError as err:
            problems.append(str(err))
    return problems


def _account_windows(genes_by_seqid, complete: set[Gene], options: BakeOptions, report: GenomeReport) -> None:
    """Genes that no baked window holds whole are dropped, with the reason."""
    for genes in genes_by_seqid.values():
        for gene in genes:
            if gene in complete:
                report.kept += 1
                continue
            if gene.end - gene.start + 1 > options.threshold:
                reason = f"longer than the long-gene bound ({options.threshold} bp): only clipped pieces"
            else:
                reason = "not whole in any baked window (mostly-N, split-boundary or dense cut)"
            report.dropped[reason] = report.dropped.get(reason, 0) + 1


# --- writing --------------------------------------------------------------------------------------


def bake_genome(
    species: str,
    fasta: Path,
    gff: Path | None,
    options: BakeOptions,
    dataset_dir: Path,
    progress: bool = True,
) -> GenomeReport:
    """Bake one genome into `dataset_dir`, replacing that species' previous shards; rewrite the card."""
    dataset_dir = Path(dataset_dir)
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise BakeError(dataset_dir, None, "not a directory: the dataset directory names a file")
    taxon_dir = dataset_dir / "data" / options.taxon
    taxon_dir.mkdir(parents=True, exist_ok=True)
    examples, report = genome_examples(species, Path(fasta), gff and Path(gff), options, progress)
    staging = Path(tempfile.mkdtemp(prefix=f".{species}.", dir=taxon_dir))
    try:
        writers = _ShardWriters(staging)
        for split, example in examples:
            writers.add(split, example)
        writers.close()
        if report.kept == 0:  # windows without any gene would only teach "no gene here"
            dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.dropped.items())) or "none"
            raise BakeError(
                gff or fasta,
                None,
                f"no usable gene: {report.genes_in_file} in the annotation, none kept (dropped: {dropped}); "
                "nothing baked",
            )
        (staging / "report.json").write_text(json.dumps(asdict(report), indent=1))
        _replace_dir(staging, taxon_dir / species)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_card(dataset_dir)
    return report


class _ShardWriters:
    """Parquet shards per split, `ROWS_PER_SHARD` rows each, named `<split>-NNNNN.parquet`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
        self.shards: Counter = Counter()
        self.schema = FEATURES.arrow_schema

    def add(self, split: str, example: dict) -> None:
        self.rows[split].append(example)
        if len(self.rows[split]) >= ROWS_PER_SHARD:
            self._flush(split)

    def _flush(self, split: str) -> None:
        table = pa.Table.from_pylist(self.rows[split], schema=self.schema)
        pq.write_table(table, self.directory / f"{split}-{self.shards[split]:05d}.parquet")
        self.shards[split] += 1
        self.rows[split] = []

    def close(self) -> None:
        for split in SPLITS:
            if self.rows[split]:
                self._flush(split)


def _replace_dir(new: Path, target: Path) -> None:
    """Move `new` to `target`, replacing it; the old copy is removed only once the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)
