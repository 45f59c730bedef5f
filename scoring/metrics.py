"""Gene-prediction accuracy at the field's levels (Burset & Guigo 1996), on protein-coding structure.

Every level reports sensitivity (found / reference), precision (correct / predicted) and F1:

- `nucleotide`: coding bases, strand-aware (a base coding on both strands counts once per strand);
- `exon`: CDS segments, exact (seqid, strand, start, end);
- `transcript`: whole CDS chains, exact;
- `gene`: a gene is right when one of its transcripts has exactly the CDS chain of a transcript of
  the other side (the eukaryote "gene F1");
- `gene_3prime`: same seqid, strand and stop end (the prokaryote convention; the stop codon is in the CDS);
- `gene_exact`: same seqid, strand, start and stop of the coding span.

Rules:
- Only coding transcripts count; tRNA, rRNA and other non-coding genes are ignored on both sides.
- Pseudogenes are neither required nor forbidden: reference genes or transcripts whose type contains
  "pseudo" (pseudogene, pseudogenic_transcript) are removed, and so are predicted genes that end at
  the stop of such a reference pseudogene (same seqid, strand and 3' end), so a caller that reads
  through a decayed gene is not penalised for it. (Counting those predictions as false positives
  instead gives NOTES.md's Prodigal anchors exactly; this rule raises 3' F1 by 0.000-0.009.)
- Matching is one-to-one: a reference gene (CDS segment, chain) is found by at most one prediction, so
  a second prediction of it is a false positive (CDS segments and chains count once per gene).
- `region` = (seqid, start, end), 1-based inclusive, restricts scoring to genes lying wholly inside it
  on both sides; a gene crossing the region's edge cannot be judged from inside and is left out.
- A ratio with nothing to count (0 / 0) is NaN; F1 is 0 when either side is 0, NaN when undefined.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

import networkx as nx
from networkx.algorithms import bipartite

from core.features import Gene, Span, merge_spans

GenesBySeqid = Mapping[str, Sequence[Gene]]
Region = tuple[str, int, int]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


@dataclass(frozen=True)
class LevelScore:
    """Counts at one level; `found` reference items were predicted, `correct` predictions are real."""

    found: int = 0
    reference: int = 0
    correct: int = 0
    predicted: int = 0

    @property
    def sensitivity(self) -> float:
        return _ratio(self.found, self.reference)

    @property
    def precision(self) -> float:
        return _ratio(self.correct, self.predicted)

    @property
    def f1(self) -> float:
        sn, pr = self.sensitivity, self.precision
        if sn == 0 or pr == 0:
            return 0.0
        return 2 * sn * pr / (sn + pr)  # NaN stays NaN

    def __add__(self, other: LevelScore) -> LevelScore:
        return LevelScore(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, float | int | None]:
        rates = {"sensitivity": self.sensitivity, "precision": self.precision, "f1": self.f1}
        counts = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: None if math.isnan(v) else v for k, v in rates.items()} | counts


@dataclass(frozen=True)
class Scores:
    """One `LevelScore` per level. Scores of disjoint parts (windows, contigs) add up with `+`."""

    nucleotide: LevelScore = LevelScore()
    exon: LevelScore = LevelScore()
    transcript: LevelScore = LevelScore()
    gene: LevelScore = LevelScore()
    gene_3prime: LevelScore = LevelScore()
    gene_exact: LevelScore = LevelScore()

    @classmethod
    def levels(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def __getitem__(self, level: str) -> LevelScore:
        return getattr(self, level)

    def __add__(self, other: Scores) -> Scores:
        return Scores(*(self[level] + other[level] for level in self.levels()))

    def as_dict(self) -> dict[str, dict[str, float | int | None]]:
        return {level: self[level].as_dict() for level in self.levels()}


def score(reference: GenesBySeqid, prediction: GenesBySeqid, region: Region | None = None) -> Scores:
    """Score predicted genes against reference genes (both 1-based, per seqid); see the module doc."""
    ref_genes, pseudo_stops = _coding_genes(reference, region)
    pred_genes, _ = _coding_genes(prediction, region)
    pred_genes = [(seqid, g) for seqid, g in pred_genes if not _stop_ends(seqid, g) & pseudo_stops]

    ref_chains = Counter(chain for seqid, g in ref_genes for chain in _chains(seqid, g))
    pred_chains = Counter(chain for seqid, g in pred_genes for chain in _chains(seqid, g))
    ref_exons = Counter(exon for seqid, g in ref_genes for exon in _exons(seqid, g))
    pred_exons = Counter(exon for seqid, g in pred_genes for exon in _exons(seqid, g))
    return Scores(
        nucleotide=_nucleotide_level(ref_chains, pred_chains),
        exon=_set_level(ref_exons, pred_exons),
        transcript=_set_level(ref_chains, pred_chains),
        gene=_gene_level(ref_genes, pred_genes, _chains),
        gene_3prime=_gene_level(ref_genes, pred_genes, _stop_ends),
        gene_exact=_gene_level(ref_genes, pred_genes, _coding_spans),
    )


# --- which genes count -----------------------------------------------------------------------------


def _is_pseudo(feature_type: str) -> bool:
    return "pseudo" in feature_type


def _coding_genes(genes_by_seqid: GenesBySeqid, region: Region | None) -> tuple[list[tuple[str, Gene]], set]:
    """(seqid, gene) of the coding genes to score, and the stop ends of the pseudogenes among them."""
    kept, pseudo_stops = [], set()
    for seqid, genes in genes_by_seqid.items():
        if region and seqid != region[0]:
            continue
        for gene in genes:
            if region and not (region[1] <= gene.start and gene.end <= region[2]):
                continue
            if _is_pseudo(gene.type):
                # Without CDS lines, a pseudogene's 3' end is the gene's.
                spans = [t.cds for t in gene.transcripts if t.cds] or [(gene.start, gene.end)]
                pseudo_stops |= {(seqid, gene.strand, _three_prime(gene.strand, span)) for span in spans}
                continue
            coding = tuple(t for t in gene.transcripts if t.cds and not _is_pseudo(t.type))
            pseudo = tuple(t for t in gene.transcripts if t.cds and _is_pseudo(t.type))
            pseudo_stops |= _stop_ends(seqid, replace(gene, transcripts=pseudo))
            if coding:
                kept.append((seqid, replace(gene, transcripts=coding)))
    return kept, pseudo_stops


# --- what a gene is matched by -----------------------------------------------------------------------


def _chains(seqid: str, gene: Gene) -> set:
    return {((seqid, gene.strand), t.cds_segments()) for t in gene.transcripts}


def _exons(seqid: str, gene: Gene) -> set:
    return {(*key, segment) for key, segments in _chains(seqid, gene) for segment in segments}


def _three_prime(strand: str, span: Span) -> int:
    return span[1] if strand == "+" else span[0]


def _stop_ends(seqid: str, gene: Gene) -> set:
    return {(seqid, gene.strand, _three_prime(gene.strand, t.cds)) for t in gene.transcripts if t.cds}


def _coding_spans(seqid: str, gene: Gene) -> set:
    return {(seqid, gene.strand, t.cds) for t in gene.transcripts}


# --- levels ------------------------------------------------------------------------------------------


def _set_level(reference: Counter, prediction: Counter) -> LevelScore:
    """Items counted once per gene that has them: one reference item is matched by one prediction."""
    shared = (reference & prediction).total()
    return LevelScore(shared, reference.total(), shared, prediction.total())


def _gene_level(ref_genes, pred_genes, keys) -> LevelScore:
    """One-to-one: a maximum matching of reference and predicted genes that share a key, so a second
    prediction of one reference gene is a false positive."""
    ref_keys = [keys(seqid, g) for seqid, g in ref_genes]
    refs_by_key = defaultdict(list)
    for i, k in enumerate(ref_keys):
        for key in k:
            refs_by_key[key].append(("reference", i))
    graph = nx.Graph()
    for j, (seqid, g) in enumerate(pred_genes):
        graph.add_edges_from((ref, ("prediction", j)) for key in keys(seqid, g) for ref in refs_by_key[key])
    references = {node for node in graph if node[0] == "reference"}
    matched = len(bipartite.hopcroft_karp_matching(graph, top_nodes=references)) // 2
    return LevelScore(found=matched, reference=len(ref_keys), correct=matched, predicted=len(pred_genes))


def _nucleotide_level(ref_chains: set, pred_chains: set) -> LevelScore:
    ref, pred = _coding_bases(ref_chains), _coding_bases(pred_chains)
    shared = sum(_intersection(ref[key], pred.get(key, ())) for key in ref)
    return LevelScore(shared, sum(map(_length, ref.values())), shared, sum(map(_length, pred.values())))


def _coding_bases(chains: Iterable) -> dict[tuple[str, str], tuple[Span, ...]]:
    spans = defaultdict(list)
    for key, segments in chains:
        spans[key] += segments
    return {key: merge_spans(s) for key, s in spans.items()}


def _length(spans: Iterable[Span]) -> int:
    return sum(e - s + 1 for s, e in spans)


def _intersection(a: Sequence[Span], b: Sequence[Span]) -> int:
    """Bases shared by two sorted lists of disjoint spans."""
    shared, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        shared += max(0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]) + 1)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return shared
