"""Genes out as GFF3 that GenomeTools' `gt gff3validator` accepts without an error or a warning.

Layout, per gene (sorted by seqid in `seq_lengths` order, then by position):

    gene                      ID={seqid}_g{n}            (score = the gene's score, e.g. mean log-prob)
      mRNA / tRNA / ...       ID={gene}.t{k}; Parent={gene}
        exon                  ID={transcript}.exon{j}; Parent={transcript}
        five_prime_UTR        ID={transcript}.utr5p{j}; Parent={transcript}   (exon parts 5' of the CDS)
        CDS                   ID={transcript}.cds; Parent={transcript}   (one ID over all segments)
        three_prime_UTR       ID={transcript}.utr3p{j}; Parent={transcript}

A `DIRECT` transcript has no line of its own: its CDS (or, when non-coding, its exons) hang
directly on the gene, as in NCBI prokaryote and SGD files; it gets no UTR lines. Introns are implied
(the gaps of the exon chain), as GFF3 readers expect. Phases come from
`Transcript.cds_phases`. Open ends follow NCBI: `partial=true` plus `start_range=.,START` /
`end_range=END,.` on every feature that reaches the open edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from typing import TextIO
from urllib.parse import unquote

from core.features import DIRECT, Gene, Transcript

from .files import write_atomically

# GFF3 spec, column 9: these must be percent-encoded, and nothing else may be.
_ATTRIBUTE_ESCAPES = str.maketrans(
    {c: f"%{ord(c):02X}" for c in "%;=&,\t\n\r\x7f" + "".join(map(chr, range(32)))}
)
# GFF3 spec, column 1: escape every character outside [a-zA-Z0-9.:^*$@!+_?-|] (as UTF-8 bytes).
_SEQID_UNSAFE = re.compile(r"[^a-zA-Z0-9.:^*$@!+_?\-|]")

Attributes = Mapping[str, str | Sequence[str]]


def escape_attribute(value: object) -> str:
    return str(value).translate(_ATTRIBUTE_ESCAPES)


def escape_seqid(seqid: str) -> str:
    """Column 1 as the GFF3 spec requires; `unescape_seqid` (what the reader applies) inverts it."""
    return _SEQID_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), seqid)


def unescape_seqid(column: str) -> str:
    return unquote(column)  # bytes that are not UTF-8 become U+FFFD: a seqid no FASTA has


def format_attributes(attributes: Attributes) -> str:
    """`key=value;...`; a list value becomes comma-separated values (each escaped on its own)."""
    fields = []
    for key, value in attributes.items():
        values = [value] if isinstance(value, str) else value
        fields.append(f"{escape_attribute(key)}={','.join(escape_attribute(v) for v in values)}")
    return ";".join(fields)


def gff3_lines(
    genes_by_seqid: Mapping[str, Sequence[Gene]],
    seq_lengths: Mapping[str, int],
    source: str = "GFF-MoE",
    scores: Mapping[str, Sequence[float | None]] | None = None,
    attributes: Mapping[str, Sequence[Attributes]] | None = None,
) -> Iterator[str]:
    """The lines of `write_gff3`'s output (each ending in a newline), produced lazily."""
    unknown = [seqid for seqid in genes_by_seqid if seqid not in seq_lengths]
    if unknown:
        raise ValueError(f"genes on seqids without a length: {', '.join(unknown[:5])}")
    yield from gff3_header(seq_lengths)
    for seqid, length in seq_lengths.items():
        yield from gff3_contig_lines(
            seqid,
            length,
            genes_by_seqid.get(seqid, ()),
            source,
            scores.get(seqid) if scores else None,
            attributes.get(seqid) if attributes else None,
        )


def gff3_header(seq_lengths: Mapping[str, int]) -> Iterator[str]:
    """The version line and every sequence's region, which come before any feature line."""
    yield "##gff-version 3\n"
    for seqid, length in seq_lengths.items():
        if length:  # an empty sequence has no region (`1 0` is invalid GFF3), and so no genes
            yield f"##sequence-region {escape_seqid(seqid)} 1 {length}\n"


def gff3_contig_lines(
    seqid: str,
    length: int,
    genes: Sequence[Gene],
    source: str = "GFF-MoE",
    scores: Sequence[float | None] | None = None,
    attributes: Sequence[Attributes] | None = None,
) -> Iterator[str]:
    """The feature lines of one sequence's genes (1-based), sorted by position, after `gff3_header`: a
    streamed annotation writes each contig as it is done. `scores` and `attributes` run parallel to `genes`."""
    for extra in (scores, attributes):
        if extra is not None and len(extra) != len(genes):
            raise ValueError(f"{seqid}: {len(extra)} scores/attributes for {len(genes)} genes")
    writer = _FeatureWriter(seqid, source)
    for n, i in enumerate(sorted(range(len(genes)), key=genes.__getitem__), start=1):
        gene = genes[i]
        if gene.start < 1 or gene.end > length:
            raise ValueError(f"gene {gene.start}..{gene.end} lies outside {seqid} (1..{length})")
        yield from writer.gene(
            gene,
            f"{seqid}_g{n}",
            scores[i] if scores is not None else None,
            attributes[i] if attributes is not None else {},
        )


def write_gff3(
    genes_by_seqid: Mapping[str, Sequence[Gene]],
    seq_lengths: Mapping[str, int],
    path_or_stream: str | PathLike | TextIO,
    source: str = "GFF-MoE",
    scores: Mapping[str, Sequence[float | None]] | None = None,
    attributes: Mapping[str, Sequence[Attributes]] | None = None,
) -> None:
    """Write genes (1-based, per seqid) as GFF3 to a path (gzip if it ends in .gz) or an open text stream.

    `scores` and `attributes`, when given, run parallel to each seqid's gene list: a score (or None)
    and a dict of extra attributes for the gene line. A path is written atomically: the text goes
    to a temporary file in the same folder that replaces the target only once complete, so a
    failure leaves no partial output. An unwritable path raises InputError naming it.
    """
    lines = gff3_lines(genes_by_seqid, seq_lengths, source, scores, attributes)
    if hasattr(path_or_stream, "write"):
        path_or_stream.writelines(lines)
        return
    write_atomically(path_or_stream, lines)


class _FeatureWriter:
    """Formats the feature lines of one seqid."""

    def __init__(self, seqid: str, source: str):
        self.seqid, self.source = escape_seqid(seqid), escape_attribute(source) or "."

    def line(self, type_, start, end, strand, attributes, score=None, phase=None) -> str:
        score = "." if score is None else f"{score:.6g}"
        phase = "." if phase is None else str(phase)
        columns = (self.seqid, self.source, type_, start, end, score, strand, phase)
        return "\t".join(map(str, columns)) + f"\t{format_attributes(attributes)}\n"

    def gene(self, gene: Gene, gene_id: str, score: float | None, extra: Attributes) -> Iterator[str]:
        attributes = {"ID": gene_id}
        if gene.name:
            attributes["Name"] = gene.name
        attributes |= _partial(gene, gene.start, gene.end) | dict(extra)
        yield self.line(gene.type, gene.start, gene.end, gene.strand, attributes, score=score)
        for k, transcript in enumerate(gene.transcripts, start=1):
            yield from self.transcript(gene, transcript, gene_id, f"{gene_id}.t{k}")

    def transcript(self, gene: Gene, tx: Transcript, gene_id: str, tx_id: str) -> Iterator[str]:
        segments = tx.cds_segments()
        if tx.type == DIRECT:
            parent = gene_id
            # NCBI style has no exon lines when the exons are just the CDS segments.
            write_exons = not segments or segments != tx.exons
        else:
            parent, write_exons = tx_id, True
            attributes = {"ID": tx_id, "Parent": gene_id} | _partial(gene, tx.start, tx.end)
            yield self.line(tx.type, tx.start, tx.end, gene.strand, attributes)
        if write_exons:
            for j, (start, end) in enumerate(tx.exons, start=1):
                attributes = {"ID": f"{tx_id}.exon{j}", "Parent": parent} | _partial(gene, start, end)
                yield self.line("exon", start, end, gene.strand, attributes)
        five, three = _utrs(tx, gene.strand) if tx.type != DIRECT else ((), ())
        for j, (start, end) in enumerate(five, start=1):
            attributes = {"ID": f"{tx_id}.utr5p{j}", "Parent": parent} | _partial(gene, start, end)
            yield self.line("five_prime_UTR", start, end, gene.strand, attributes)
        for (start, end), phase in zip(segments, tx.cds_phases(gene.strand), strict=True):
            attributes = {"ID": f"{tx_id}.cds", "Parent": parent} | _partial(gene, start, end)
            yield self.line("CDS", start, end, gene.strand, attributes, phase=phase)
        for j, (start, end) in enumerate(three, start=1):
            attributes = {"ID": f"{tx_id}.utr3p{j}", "Parent": parent} | _partial(gene, start, end)
            yield self.line("three_prime_UTR", start, end, gene.strand, attributes)


def _utrs(tx: Transcript, strand: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(5' UTR, 3' UTR) segments of a coding transcript, in genomic order: its exon parts outside the CDS."""
    if tx.cds is None:
        return [], []
    cds_start, cds_end = tx.cds
    left = [(s, min(e, cds_start - 1)) for s, e in tx.exons if s < cds_start]
    right = [(max(s, cds_end + 1), e) for s, e in tx.exons if e > cds_end]
    return (left, right) if strand == "+" else (right, left)


def _partial(gene: Gene, start: int, end: int) -> dict[str, str | list[str]]:
    """NCBI's open-end attributes for a feature of `gene` spanning start..end."""
    open_left = gene.open_left and start == gene.start
    open_right = gene.open_right and end == gene.end
    attributes = {"partial": "true"} if open_left or open_right else {}
    if open_left:
        attributes["start_range"] = [".", str(start)]
    if open_right:
        attributes["end_range"] = [str(end), "."]
    return attributes
