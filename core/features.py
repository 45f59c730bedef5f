"""The annotation data model every part of GFF-MoE shares.

A `Gene` holds its `Transcript`s; a transcript is an exon chain plus an optional coding span.
UTRs, CDS segments and their phases are *derived* (exons clipped to the coding span, phases
from the chain), which is both the compact form the decoder learns and the normal form that
GFF3 files of every dialect are reduced to before comparison.

Coordinates are inclusive integers (`start <= end`). Their frame depends on the holder:
- genome level (GFF reading/writing, scoring): 1-based positions on a seqid;
- window level (codec, model targets): 0-based offsets from the window's first base.
`Gene.shift` moves between frames; `Gene.clip` cuts a gene to a window and records the cut
edges as open (`open_left` / `open_right`, GenBank's `<` and `>`), never as false ends; `Gene.mirror`
is the gene as seen on the reverse complement of its window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import total_ordering

Span = tuple[int, int]

# Segments hang directly on the gene (NCBI prokaryotes, SGD): no transcript line in GFF3.
DIRECT = "direct"


def is_gene_type(featuretype: str) -> bool:
    """Gene-level feature types end in "gene", as the Sequence Ontology names them: gene, pseudogene,
    ncRNA_gene, unitary_pseudogene, transgene (SO:0000902, is_a gene); transcripts and segments never do."""
    return featuretype.endswith("gene")


def merge_spans(spans: list[Span] | tuple[Span, ...]) -> tuple[Span, ...]:
    """Sorted union of inclusive spans; touching spans (a.end + 1 == b.start) merge."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple((s, e) for s, e in out)


@total_ordering  # not dataclass order: it would compare cds None with a tuple (TypeError)
@dataclass(frozen=True)
class Transcript:
    type: str  # mRNA, tRNA, rRNA, ncRNA, ..., or DIRECT
    exons: tuple[Span, ...]  # sorted, non-empty; may overlap/touch only for ribosomal slippage chains
    cds: Span | None = None  # coding span (genomic extent of all CDS bases), inside the exon chain
    phase: int = 0  # GFF phase of the 5'-most CDS segment (strand-aware); 0 for complete CDS

    def _order(self) -> tuple:
        return (self.type, self.exons, self.cds or (), self.phase)

    def __lt__(self, other: Transcript) -> bool:
        return self._order() < other._order()

    @property
    def start(self) -> int:
        return self.exons[0][0]

    @property
    def end(self) -> int:
        return self.exons[-1][1]

    def cds_segments(self) -> tuple[Span, ...]:
        """Exons clipped to the coding span, in genomic order."""
        if self.cds is None:
            return ()
        cs, ce = self.cds
        return tuple((max(s, cs), min(e, ce)) for s, e in self.exons if s <= ce and e >= cs)

    def cds_phases(self, strand: str) -> tuple[int, ...]:
        """GFF phase of each CDS segment (genomic order), carried along the chain from `phase`."""
        segs = self.cds_segments()
        order = list(range(len(segs)))
        if strand == "-":
            order.reverse()
        phases = [0] * len(segs)
        phase = self.phase
        for i in order:
            phases[i] = phase
            length = segs[i][1] - segs[i][0] + 1
            phase = (3 - (length - phase) % 3) % 3
        return tuple(phases)


@dataclass(frozen=True, order=True)
class Gene:
    start: int
    end: int
    strand: str  # '+', '-' or '.'
    type: str = "gene"  # gene, pseudogene, ncRNA_gene, ...
    transcripts: tuple[Transcript, ...] = ()
    open_left: bool = False  # the feature continues beyond `start` (GenBank '<')
    open_right: bool = False  # the feature continues beyond `end` (GenBank '>')
    name: str = field(default="", compare=False)  # source ID, for reports only

    def shift(self, delta: int) -> Gene:
        def mv(span: Span) -> Span:
            return (span[0] + delta, span[1] + delta)

        txs = tuple(
            replace(t, exons=tuple(mv(x) for x in t.exons), cds=mv(t.cds) if t.cds else None)
            for t in self.transcripts
        )
        return replace(self, start=self.start + delta, end=self.end + delta, transcripts=txs)

    def mirror(self, length: int) -> Gene:
        """The gene as seen on the reverse complement of a `length`-base sequence (0-based coordinates).

        Position x maps to length-1-x and the strand flips. The 5'-most CDS segment stays the 5'-most, so
        the phase carries over unchanged; the open edges swap sides.
        """

        def flip(span: Span) -> Span:
            return (length - 1 - span[1], length - 1 - span[0])

        txs = tuple(
            sorted(
                replace(
                    t, exons=tuple(flip(x) for x in reversed(t.exons)), cds=flip(t.cds) if t.cds else None
                )
                for t in self.transcripts
            )
        )
        return replace(
            self,
            start=length - 1 - self.end,
            end=length - 1 - self.start,
            strand={"+": "-", "-": "+"}.get(self.strand, self.strand),
            transcripts=txs,
            open_left=self.open_right,
            open_right=self.open_left,
        )

    def clip(self, lo: int, hi: int) -> Gene | None:
        """The part of the gene inside [lo, hi], with cut edges marked open; None if disjoint.

        A cut coding span keeps its reading frame: the phase of the new 5'-most segment is
        recomputed so that decoding restores the original codons.
        """
        if self.end < lo or self.start > hi:
            return None
        if lo <= self.start and self.end <= hi:
            return self
        txs = []
        for t in self.transcripts:
            exons = tuple((max(s, lo), min(e, hi)) for s, e in t.exons if s <= hi and e >= lo)
            if not exons:
                continue
            cds, phase = t.cds, t.phase
            if cds is not None:
                if cds[1] < lo or cds[0] > hi or not Transcript("x", exons, cds).cds_segments():
                    cds, phase = None, 0
                else:
                    phase = _phase_after_clip(t, self.strand, lo, hi)
                    # The coding span shrinks to the coding bases left in the window (not to lo/hi,
                    # which may fall in an intron or a removed exon).
                    segs = Transcript("x", exons, (max(cds[0], lo), min(cds[1], hi))).cds_segments()
                    cds = (segs[0][0], max(e for _, e in segs))
            txs.append(Transcript(t.type, exons, cds, phase))
        return replace(
            self,
            start=max(self.start, lo),
            end=min(self.end, hi),
            transcripts=tuple(sorted(txs)),
            open_left=self.open_left or self.start < lo,
            open_right=self.open_right or self.end > hi,
        )


def _phase_after_clip(t: Transcript, strand: str, lo: int, hi: int) -> int:
    """Phase of the first CDS base (in transcription order) that survives clipping to [lo, hi]."""
    segs = t.cds_segments()
    phases = t.cds_phases(strand)
    if strand == "-":  # the 5' end is the right end
        for (s, e), p in sorted(zip(segs, phases, strict=True), key=lambda x: -x[0][1]):
            if s > hi:
                continue
            if e <= hi:
                return p
            return (p - (e - hi)) % 3
    else:
        for (s, e), p in zip(segs, phases, strict=True):
            if e < lo:
                continue
            if s >= lo:
                return p
            return (p - (lo - s)) % 3
    return 0
