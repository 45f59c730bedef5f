"""GFF3 / GTF reading: every dialect in the wild reduced to `core.features.Gene` (1-based).

Lines are split by gffutils' own parser (`feature_from_line`, dialect inferred the gffutils way), then
assembled gene -> transcript -> segments:

- NCBI prokaryotes and SGD hang CDS (or `noncoding_exon`) directly on the gene: one `DIRECT` transcript
  whose exons are the segments as given (overlapping/touching ribosomal-slippage segments kept apart);
- gene -> mRNA/tRNA/... -> exon/CDS (NCBI, JGI, KorfLab, Ensembl); a CDS line with `Parent=a,b` (FlyBase)
  belongs to both transcripts;
- transcripts without exon lines (Phytozome) get exons = CDS + UTR segments merged;
- GTF links segments by `transcript_id` and transcripts by `gene_id`; missing gene or transcript lines are
  implied, and `stop_codon` joins the CDS segment it touches (GTF CDS exclude the stop; GFF3 CDS,
  AUGUSTUS's included, hold it already);
- a transcript (or a bare CDS) without a gene line is wrapped in a gene of type "gene" and counted.

Structural problems (not GFF, empty, truncated gzip, bad columns, a coordinate that is not a decimal
integer) raise InputError. Problems of one feature (seqid not in the FASTA, a coordinate below 1 or
beyond the sequence, start > end, unknown strand, missing Parent, an ID that another gene or
transcript line already has, a Parent cycle, a gene crossing the origin of a circular sequence) drop the
gene it belongs to, with a reason and file:line in the report: never silently.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from os import PathLike

from gffutils.feature import feature_from_line
from gffutils.iterators import DataIterator

from core.errors import InputError
from core.features import DIRECT, Gene, Transcript, is_gene_type, merge_spans

from .files import numbered_lines
from .gff3_writer import unescape_seqid

CODING = ("CDS", "stop_codon")  # GTF's CDS exclude the stop codon; GFF3's (e.g. AUGUSTUS's) include it
UTR = ("five_prime_UTR", "three_prime_UTR", "UTR", "5UTR", "3UTR", "five_prime_utr", "three_prime_utr")
EXON = ("exon", "noncoding_exon")
SEGMENT_TYPES = frozenset((*CODING, *UTR, *EXON, "start_codon"))
# Transcript-like types that may stand without a gene line (SGD tRNA/snoRNA, Prokka-style CDS-only files).
ORPHAN_ROOT_TYPES = frozenset(("mRNA", "transcript", "primary_transcript", "pseudogenic_transcript", "CDS"))
NEEDED_ATTRIBUTES = (
    "ID=",
    "Parent=",
    "Name=",
    "gene_id",
    "transcript_id",
    "gene_name",
    "start_range=",
    "end_range=",
    "Is_circular=",
)
COORDINATE = re.compile(r"-?[0-9]+")  # ASCII digits only: int() also reads '３９７' and the like
CROSSES_ORIGIN = "crosses the origin of a circular sequence"
# Reasons noted where they are found (at the line that causes them), not again when the gene is dropped.
NOTED_WHEN_LINKED = ("missing Parent", "duplicate ID", "Parent cycle")
MAX_EXAMPLES = 10  # skip messages kept per reason


def is_noncoding_rna(featuretype: str) -> bool:
    """tRNA, rRNA, ncRNA, snoRNA, lnc_RNA, ...: a transcript that codes for no protein."""
    return featuretype.endswith("RNA") and featuretype != "mRNA"


def _is_orphan_root(featuretype: str) -> bool:
    return featuretype in ORPHAN_ROOT_TYPES or featuretype.endswith("RNA")


@dataclass
class GffReport:
    """What reading one GFF file did. Invariant: kept + sum(dropped.values()) == genes_in_file."""

    path: str
    gene_lines: int = 0  # gene-level features (gene, pseudogene, *_gene)
    orphans_wrapped: int = 0  # transcripts / bare CDS without a gene line, wrapped in a gene
    kept: int = 0
    protein_coding: int = 0  # kept genes with at least one CDS
    dropped: Counter = field(default_factory=Counter)  # reason -> genes
    skipped_features: Counter = field(default_factory=Counter)  # reason -> lines not in any kept gene
    phases_normalised: int = 0  # CDS phases that disagreed with the chain rule
    noncoding_cds: int = 0  # CDS lines of a tRNA/rRNA/ncRNA (PomBase writes their exons so): read as exons
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> "path:line: message"

    @property
    def genes_in_file(self) -> int:
        return self.gene_lines + self.orphans_wrapped

    def note(self, reason: str, line: int, message: str) -> None:
        shown = self.examples.setdefault(reason, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(f"{self.path}:{line}: {message}")

    def summary(self) -> str:
        parts = [f"{self.genes_in_file} genes in file", f"{self.kept} kept ({self.protein_coding} coding)"]
        parts += [f"{n} dropped: {reason}" for reason, n in sorted(self.dropped.items())]
        if self.orphans_wrapped:
            parts.append(f"{self.orphans_wrapped} wrapped in a gene line")
        if self.phases_normalised:
            parts.append(f"{self.phases_normalised} CDS phases normalised")
        if self.noncoding_cds:
            parts.append(f"{self.noncoding_cds} CDS lines of non-coding RNAs read as exons")
        parts += [f"{n} features skipped: {reason}" for reason, n in sorted(self.skipped_features.items())]
        return "; ".join(parts)


@dataclass
class GffReadResult:
    genes_by_seqid: dict[str, list[Gene]]  # sorted by (start, end), 1-based inclusive
    report: GffReport
    # Per seqid, the spans (1-based) of the lines of dropped genes and of skipped feature lines: bases the
    # file annotates that no kept gene labels.
    dropped_spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass
class _Record:
    line: int
    seqid: str
    type: str
    start: int
    end: int
    strand: str
    phase: int | None
    id: str | None
    parents: list[str]
    name: str
    gene_id: str | None = None  # GTF only
    open_left: bool = False  # start_range=.,N: the feature continues left of `start` (NCBI partial)
    open_right: bool = False  # end_range=N,.: the feature continues right of `end`
    error: str | None = None  # why the feature cannot be used (reason, for the report)
    children: list[_Record] = field(default_factory=list)


def read_gff(
    path: str | PathLike, seq_lengths: dict[str, int] | None = None, allow_empty: bool = False
) -> GffReadResult:
    """Read a GFF3 or GTF file (plain or gzip) into genes per seqid.

    `seq_lengths` (seqid -> length, e.g. `fasta_lengths(fasta)`) enables the seqid and coordinate checks.
    A file without feature lines is an InputError unless `allow_empty` (a prediction of no genes, as
    annotate.py writes for a genome where it finds none).
    """
    report = GffReport(str(path))
    records, circular = _parse(path, seq_lengths, report, allow_empty)
    genes: dict[str, list[Gene]] = defaultdict(list)
    dropped: dict[str, list[tuple[int, int]]] = defaultdict(list)
    in_genes: set[int] = set()  # id() of the records of every gene
    for root, wrapped in _roots(records, report):
        report.orphans_wrapped += wrapped
        report.gene_lines += not wrapped
        lines = list(_walk(root))
        in_genes.update(map(id, lines))
        gene, reason = _assemble(root, wrapped, report)
        if gene is not None and root.seqid in circular and _crosses_origin(gene, circular[root.seqid]):
            report.note(CROSSES_ORIGIN, root.line, f"{root.type} {root.name}: pieces at both ends")
            gene, reason = None, CROSSES_ORIGIN
        if gene is None:
            report.dropped[reason] += 1
            dropped[root.seqid] += [(r.start, r.end) for r in lines if not r.children]
            continue
        report.kept += 1
        report.protein_coding += any(t.cds for t in gene.transcripts)
        genes[root.seqid].append(gene)
    for r in records:  # lines in no gene, e.g. a CDS whose Parent is missing
        if id(r) not in in_genes and r.error and (r.parents or r.type in SEGMENT_TYPES):
            dropped[r.seqid].append((r.start, r.end))
    spans = {seqid: _on_sequence(s, circular.get(seqid)) for seqid, s in dropped.items()}
    return GffReadResult({seqid: sorted(gs) for seqid, gs in genes.items()}, report, spans)


def _crosses_origin(gene: Gene, length: int) -> bool:
    """NCBI writes a gene across the origin of a circular sequence as pieces at both of its ends."""
    segments = {x for t in gene.transcripts for x in (*t.exons, *t.cds_segments())}
    return len(segments) > 1 and any(s == 1 for s, _ in segments) and any(e == length for _, e in segments)


def _on_sequence(spans: list[tuple[int, int]], circular_length: int | None) -> list[tuple[int, int]]:
    """Spans as bases of the sequence: past the end of a circular one, a span goes on from base 1."""
    out = []
    for start, end in spans:
        start = max(start, 1)
        if circular_length and end > circular_length:
            out += [(start, circular_length), (1, end - circular_length)]
        else:
            out.append((start, end))
    return sorted(out)


# --- lines -> records -----------------------------------------------------------------------------


def _parse(path, seq_lengths, report: GffReport, allow_empty: bool) -> tuple[list[_Record], dict[str, int]]:
    feature_lines: list[tuple[int, str]] = []
    for number, line in numbered_lines(path):
        if line.startswith("##FASTA") or line.startswith(">"):
            break  # embedded sequence section
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 9:
            raise InputError(path, number, f"not GFF: expected 9 tab-separated columns, found {len(fields)}")
        if not (COORDINATE.fullmatch(fields[3]) and COORDINATE.fullmatch(fields[4])):
            raise InputError(
                path, number, f"not GFF: start/end must be integers, got {fields[3]!r}, {fields[4]!r}"
            )
        feature_lines.append((number, line))
    if not feature_lines:
        if allow_empty:
            return [], {}
        raise InputError(path, 1, "empty GFF: no feature lines")

    head = [feature_from_line(line) for _, line in feature_lines[:100]]
    dialect = DataIterator(head, checklines=len(head)).dialect  # inferred from these lines
    gtf = dialect.get("fmt") == "gtf"
    features = [
        (number, feature_from_line(_needed_attributes(line), dialect=dialect))
        for number, line in feature_lines
    ]
    if not gtf:  # GFF3 percent-encodes column 1; GTF has no escapes
        for _, feature in features:
            feature.seqid = unescape_seqid(feature.seqid)
    # Circular sequences (Is_circular=true on their region line) and their lengths.
    circular = {
        f.seqid: (seq_lengths or {}).get(f.seqid, f.end)
        for _, f in features
        if f.featuretype == "region" and f.attributes.get("Is_circular", [""])[0] == "true"
    }
    records = []
    for number, feature in features:
        record = _record(number, feature, gtf)
        record.error = _check(record, seq_lengths, circular)
        records.append(record)
    return (_implied_gtf_parents(records) if gtf else records), circular


def _needed_attributes(line: str) -> str:
    """The line with only the attributes read here: decoding dozens of Dbxref/Note values is most of
    the parsing time on NCBI files, and none of them shapes a gene."""
    columns, _, attributes = line.rpartition("\t")
    kept = [a for a in attributes.split(";") if a.lstrip().startswith(NEEDED_ATTRIBUTES)]
    return f"{columns}\t{';'.join(kept)}"


def _record(number: int, f, gtf: bool) -> _Record:
    attrs = f.attributes
    if gtf:  # GTF: segments point at their transcript, transcripts at their gene
        gene_id, tx_id = attrs.get("gene_id", [None])[0], attrs.get("transcript_id", [None])[0]
        if is_gene_type(f.featuretype):
            fid, parents = gene_id, []
        elif f.featuretype in SEGMENT_TYPES:
            fid, parents = None, [tx_id] if tx_id else []
        else:
            fid, parents = tx_id, [gene_id] if gene_id else []
    else:
        fid = attrs.get("ID", [None])[0]
        parents = [p for p in attrs.get("Parent", []) if p]  # split at commas, then unescaped, by gffutils
    phase = int(f.frame) if f.frame in ("0", "1", "2") else None
    name = (attrs.get("Name") or attrs.get("gene_name") or [fid or ""])[0]
    gene_id = attrs.get("gene_id", [None])[0] if gtf else None
    return _Record(
        number,
        f.seqid,
        f.featuretype,
        f.start,
        f.end,
        f.strand,
        phase,
        fid,
        parents,
        name,
        gene_id,
        open_left=attrs.get("start_range", [""])[0] == ".",
        open_right=attrs.get("end_range", ["", ""])[-1] == ".",
    )


def _check(r: _Record, seq_lengths: dict[str, int] | None, circular: dict[str, int]) -> str | None:
    if r.start > r.end:
        return "start > end"
    if r.strand not in ("+", "-", ".") and (is_gene_type(r.type) or r.type in SEGMENT_TYPES or r.parents):
        return "unknown strand"
    if r.start < 1:  # 0 and negative starts, whether or not the sequence lengths are known
        return "coordinate below 1"
    if r.seqid in circular and r.end > circular[r.seqid]:  # the GFF3 spec's way across the origin
        return CROSSES_ORIGIN
    if seq_lengths is not None:
        if r.seqid not in seq_lengths:
            return "seqid not in FASTA"
        if r.end > seq_lengths[r.seqid]:
            return "coordinates beyond the sequence"
    return None


def _implied_gtf_parents(records: list[_Record]) -> list[_Record]:
    """GTF files often omit gene and transcript lines: imply them from gene_id / transcript_id."""
    known = {r.id for r in records if r.id}
    implied: dict[str, _Record] = {}
    for r in records:
        for parent_id in r.parents:
            if parent_id in known:
                continue
            parent = implied.get(parent_id)
            if parent is None:
                is_transcript = r.type in SEGMENT_TYPES
                parent = implied[parent_id] = _Record(
                    r.line, r.seqid, "transcript" if is_transcript else "gene", r.start, r.end, r.strand,
                    None, parent_id, [r.gene_id] if is_transcript and r.gene_id else [], parent_id,
                    gene_id=r.gene_id,
                )  # fmt: skip
            parent.start, parent.end = min(parent.start, r.start), max(parent.end, r.end)
    # Implied transcripts may need an implied gene in turn.
    return _implied_gtf_parents([*implied.values(), *records]) if implied else records


# --- records -> genes -----------------------------------------------------------------------------


def _roots(records: list[_Record], report: GffReport):
    """(root record, wrapped?) for every gene line and every parentless transcript, children linked."""
    by_id: dict[str, _Record] = {}
    for r in records:
        if not r.id or (r.type in SEGMENT_TYPES and not is_gene_type(r.type)):
            continue  # segments of one feature share their ID (GFF3 multi-line features)
        first = by_id.setdefault(r.id, r)
        # Two genes (or two transcripts) with one ID: whose children are whose cannot be told, both go.
        # (A GTF gene_id may equal its transcript_id: one level each, not a duplicate.)
        if first is not r and is_gene_type(first.type) == is_gene_type(r.type):
            first.error = r.error = "duplicate ID"
            report.note("duplicate ID", r.line, f"{r.type} ID {r.id!r} is already used at line {first.line}")
    for r in records:
        for parent_id in r.parents:
            parent = by_id.get(parent_id)
            if parent is None:
                r.error = r.error or "missing Parent"
                report.skipped_features["missing Parent"] += 1
                report.note(
                    "missing Parent", r.line, f"{r.type} names Parent {parent_id!r}, which is not in the file"
                )
            elif parent is not r:
                cycle = _descent(r, parent)
                if cycle is None:
                    parent.children.append(r)
                    continue
                for member in cycle:  # the link would close a loop: every record on it is unusable
                    member.error = "Parent cycle"
                report.note(
                    "Parent cycle", r.line, f"{r.type} names Parent {parent_id!r}, which descends from it"
                )
    for r in records:
        if is_gene_type(r.type):
            yield r, False
        elif not r.parents and _is_orphan_root(r.type):
            yield r, True


def _assemble(root: _Record, wrapped: bool, report: GffReport) -> tuple[Gene | None, str]:
    """The gene of one root record, or (None, reason) when a feature in it is unusable."""
    for r in _walk(root):
        if r.error:
            if r.error not in NOTED_WHEN_LINKED:
                report.note(r.error, r.line, f"{r.type} {r.name}: {r.error}")
            return None, r.error
        if r is not root and (r.strand != root.strand or r.seqid != root.seqid):
            report.note("child on another strand/seqid", r.line, f"{r.type} {r.name} disagrees with its gene")
            return None, "child on another strand/seqid"

    # (transcript type, segment lines, transcript span) of every transcript of the gene
    if wrapped and root.type == "CDS":  # a bare CDS is a one-segment gene
        groups = [(DIRECT, [root], None)]
    elif wrapped:
        groups = [(root.type, root.children, (root.start, root.end))]
    else:
        direct = [c for c in root.children if c.type in SEGMENT_TYPES]
        groups = [(DIRECT, direct, None)] if direct else []
        groups += [
            (c.type, c.children, (c.start, c.end)) for c in root.children if c.type not in SEGMENT_TYPES
        ]

    transcripts = []
    for tx_type, parts, span in groups:
        transcript, reason = _transcript(tx_type, parts, root.strand, report)
        if reason:
            report.note(reason, root.line, f"{root.type} {root.name}: {reason}")
            return None, reason
        if transcript is None and span is not None:  # no segment lines: the transcript is one exon
            transcript = Transcript(tx_type, (span,))
        if transcript is not None:
            transcripts.append(transcript)
    spans = [(root.start, root.end), *((t.start, t.end) for t in transcripts)]
    gene = Gene(
        start=min(s for s, _ in spans),
        end=max(e for _, e in spans),
        strand=root.strand,
        type="gene" if wrapped else root.type,
        transcripts=tuple(sorted(set(transcripts))),
        open_left=root.open_left,
        open_right=root.open_right,
        name=root.id or root.name,
    )
    return gene, ""


def _transcript(tx_type, parts, strand, report) -> tuple[Transcript | None, str]:
    """One transcript from its segment lines; (None, "") when there are none."""
    if is_noncoding_rna(tx_type) and any(p.type in CODING for p in parts):
        report.noncoding_cds += sum(p.type == "CDS" for p in parts)
        has_exons = any(p.type in EXON for p in parts)
        parts = [
            replace(p, type="exon") if p.type in CODING else p
            for p in parts
            if not (has_exons and p.type in CODING)
        ]
    cds = [(p.start, p.end, p.phase) for p in parts if p.type == "CDS"]
    coding = _with_stop_codons(
        [(p.start, p.end) for p in parts if p.type == "CDS"],
        [(p.start, p.end) for p in parts if p.type == "stop_codon"],
    )
    exons = sorted((p.start, p.end) for p in parts if p.type in EXON)
    utrs = [(p.start, p.end) for p in parts if p.type in UTR]
    if not (coding or exons or utrs):
        return None, ""
    if not exons:  # no exon lines: CDS as given (slippage stays apart) or, with UTRs, CDS + UTR merged
        exons = list(merge_spans(coding + utrs)) if utrs else coding
    cds_span = (coding[0][0], max(e for _, e in coding)) if coding else None
    transcript = Transcript(tx_type, tuple(exons), cds_span, 0)
    if cds_span:
        coding_bases = sum(e - s + 1 for s, e in merge_spans(coding))
        if sum(e - s + 1 for s, e in merge_spans(transcript.cds_segments())) != coding_bases:
            return None, "CDS lines do not fill the exon chain between CDS start and end"
        transcript = Transcript(tx_type, tuple(exons), cds_span, _five_prime_phase(cds, strand, report))
    return transcript, ""


def _with_stop_codons(cds: list[tuple[int, int]], stops: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """CDS segments, each stop_codon line folded into the segment it touches or overlaps (so that it is
    not a segment of its own); the CDS segments themselves stay apart (ribosomal slippage)."""
    segments = sorted(cds)
    for start, end in stops:
        near = [i for i, (s, e) in enumerate(segments) if start <= e + 1 and end >= s - 1]
        if near:
            s, e = segments[near[0]]
            segments[near[0]] = (min(s, start), max(e, end))
        else:
            segments.append((start, end))
    return sorted(segments)


def _five_prime_phase(cds: list[tuple[int, int, int | None]], strand: str, report: GffReport) -> int:
    """Phase of the 5'-most CDS segment; phases further along that break the chain rule are counted."""
    ordered = sorted(cds, reverse=strand == "-")
    phase = ordered[0][2] or 0
    expected = phase
    for start, end, given in ordered:
        if given is not None and given != expected:
            report.phases_normalised += 1
        expected = (3 - (end - start + 1 - expected) % 3) % 3
    return phase


def _walk(record: _Record):
    yield record
    for child in record.children:
        yield from _walk(child)


def _descent(record: _Record, target: _Record) -> list[_Record] | None:
    """The records from `record` down to `target` through linked children, None if `target` is not under it
    (links that would close a cycle are never made, so this terminates)."""
    if record is target:
        return [record]
    for child in record.children:
        path = _descent(child, target)
        if path is not None:
            return [record, *path]
    return None
