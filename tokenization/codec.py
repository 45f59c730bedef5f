"""The GFF target codec: genes of one window <-> a token sequence the decoder learns.

Every token is a bracketed string `<...>` (or `[ATT]` / `[HIT]`), so no token occurs inside another or
inside DNA. The decoder's labels for one window are `[ATT] gene* <eos>` (decoder start: `<bos>`); hints
(task `[HIT]`) are an input-side record list in the same grammar.

    gene   := GTYPE coord(start) coord(end) STRAND [<open_l>] [<open_r>] tx*
    GTYPE  := <gene> | <pseudogene> | <ncRNA_gene> | ...    (any type name ending in "gene")
    STRAND := <+> | <-> | <.>
    tx     := TTYPE [<span> coord coord] [<introns> (coord coord)+] [CDS]
    TTYPE  := <direct> | <mRNA> | <tRNA> | <rRNA> | <ncRNA> | ...   (any other type name)
    CDS    := <cds_all> [PHASE] | <cds> coord coord [PHASE]
    PHASE  := <ph1> | <ph2>

- The strand follows the gene's coordinates: where a gene lies is decided first, and which strand it is on
  then follows from the DNA at those coordinates (for a coding gene, the strand on which the span is an
  open reading frame), instead of a guess made before the decoder has pointed anywhere.
- `<direct>`: segments hang on the gene itself (NCBI prokaryote gene -> CDS, SGD).
- `<span>` only when the transcript's extent (its exon chain's extent) differs from the gene's.
- `<introns>` lists, per exon junction, (last base of exon k, first base of exon k+1); absent = one exon.
  The second coordinate may be <= the first (overlapping exons of ribosomal slippage chains).
- `<cds_all>`: the coding span is the whole transcript extent; otherwise `<cds> start end`.
- PHASE: GFF phase of the 5'-most CDS segment (transcription order), omitted when 0. Every other segment's
  phase is derived along the chain (`Transcript.cds_phases`).
- A coordinate is exactly two tokens written by a coordinate scheme (`tokenization.coordinates`):
  `<n{bp // 1000}> <n{bp % 1000}>` (canonical text in datasets) or a pointer `<@i> <o{k}>`.

Tokens per gene: a bacterial gene (gene -> CDS over the whole gene) costs 8 tokens
(`<gene> c c <+> <direct> <cds_all>`, c = 2 tokens); a one-mRNA eukaryote gene with n exons and UTRs costs
13 + 4(n - 1) tokens (+1 for a non-zero phase), e.g. 29 for 5 exons.

Normalisation (what decoding restores exactly): genes sorted by (start, end, strand, type, transcripts,
open flags), transcripts by (start, end, type, exons, cds, phase); names dropped; phase 0 when there is
no CDS. Decoding is total: any token sequence gives the valid genes it holds plus a list of errors, and
resynchronises at the next gene-type token after a malformed record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from core.features import DIRECT, Gene, Transcript, is_gene_type

from .coordinates import NUMBER_TOKENS, OFFSET_TOKENS, CoordinateError, CoordinateScheme, NumberCoordinates

BOS, EOS = "<bos>", "<eos>"
ANNOTATION_TASK, HINTS_TASK = "[ATT]", "[HIT]"
TASK_TOKENS = (ANNOTATION_TASK, HINTS_TASK)
STRAND_TOKENS = {"<+>": "+", "<->": "-", "<.>": "."}
OPEN_LEFT, OPEN_RIGHT = "<open_l>", "<open_r>"
SPAN, INTRONS, CDS, CDS_ALL = "<span>", "<introns>", "<cds>", "<cds_all>"
PHASE_TOKENS = {"<ph1>": 1, "<ph2>": 2}
MARKER_TOKENS = (OPEN_LEFT, OPEN_RIGHT, SPAN, INTRONS, CDS, CDS_ALL)

GENE_TYPES = ("gene", "pseudogene", "ncRNA_gene", "protein_coding_gene", "transposable_element_gene")
TRANSCRIPT_TYPES = (
    DIRECT,
    "mRNA",
    "tRNA",
    "rRNA",
    "ncRNA",
    "tmRNA",
    "lnc_RNA",
    "snRNA",
    "snoRNA",
    "miRNA",
    "scRNA",
    "SRP_RNA",
    "RNase_P_RNA",
    "RNase_MRP_RNA",
    "antisense_RNA",
    "transcript",
    "primary_transcript",
    "pseudogenic_transcript",
    "region",  # SGD hangs some features on genes as `region`
)

_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
# Names that would spell a structural token: `<n12>`, `<o3>`, `<ph1>`, `<span>`, ...
_RESERVED_NAME = re.compile(r"(n|o|ph)\d+|bos|eos|open_l|open_r|span|introns|cds|cds_all")


class CodecError(ValueError):
    """A gene the codec cannot write (invalid structure or a coordinate the scheme cannot express)."""


def is_type_name(name: str) -> bool:
    return bool(_TYPE_NAME.fullmatch(name)) and not _RESERVED_NAME.fullmatch(name)


def type_token(name: str) -> str:
    if not is_type_name(name):
        raise CodecError(
            f"feature type {name!r} cannot be a token (letters, digits, _.:- only; not reserved)"
        )
    return f"<{name}>"


def _type_of(token: str) -> str | None:
    return (
        token[1:-1] if token.startswith("<") and token.endswith(">") and is_type_name(token[1:-1]) else None
    )


def codec_vocabulary(extra_types: Iterable[str] = ()) -> list[str]:
    """Every fixed token of the grammar (pointer tokens `<@i>` are model slots, not vocabulary)."""
    types = dict.fromkeys([*GENE_TYPES, *TRANSCRIPT_TYPES, *extra_types])
    return [
        BOS,
        EOS,
        *TASK_TOKENS,
        *(type_token(t) for t in types),
        *STRAND_TOKENS,
        *MARKER_TOKENS,
        *PHASE_TOKENS,
        *NUMBER_TOKENS,
        *OFFSET_TOKENS,
    ]


# ---------------------------------------------------------------- normalisation and validity


def _transcript_key(t: Transcript) -> tuple:
    return (t.start, t.end, t.type, t.exons, t.cds or (-1, -1), t.phase)


def _gene_key(g: Gene) -> tuple:
    return (
        g.start,
        g.end,
        g.strand,
        g.type,
        tuple(map(_transcript_key, g.transcripts)),
        g.open_left,
        g.open_right,
    )


def normalise(genes: Iterable[Gene]) -> list[Gene]:
    """The canonical form decoding restores: sorted genes and transcripts, no names, no phase without CDS."""
    out = []
    for g in genes:
        txs = (t if t.cds is not None or t.phase == 0 else replace(t, phase=0) for t in g.transcripts)
        out.append(replace(g, name="", transcripts=tuple(sorted(txs, key=_transcript_key))))
    return sorted(out, key=_gene_key)


def gene_problems(gene: Gene) -> list[str]:
    """Why `gene` is not a well-formed record (empty when it is). Shared by encoding and decoding."""
    problems = []
    if not (is_type_name(gene.type) and is_gene_type(gene.type)):
        problems.append(f"gene type {gene.type!r} is not a gene-level type name")
    if gene.strand not in STRAND_TOKENS.values():
        problems.append(f"strand {gene.strand!r} is not one of + - .")
    if gene.start > gene.end:
        problems.append(f"gene end {gene.end} < start {gene.start}")
    # Segments of a <direct> transcript hang on the gene itself: two such chains under one GFF3 parent
    # would read back as one (a parent's CDS rows form one chain).
    if (direct := sum(t.type == DIRECT for t in gene.transcripts)) > 1:
        problems.append(f"{direct} {DIRECT} transcripts: a gene has at most one")
    for t in gene.transcripts:
        where = f"{t.type} transcript"
        if not is_type_name(t.type) or is_gene_type(t.type):
            problems.append(f"transcript type {t.type!r} is not a transcript-level type name")
        if not t.exons:
            problems.append(f"{where} has no exons")
            continue
        if any(s > e for s, e in t.exons):
            problems.append(f"{where} has an exon with end < start")
        if any(b[0] < a[0] for a, b in zip(t.exons, t.exons[1:], strict=False)):
            problems.append(f"{where} exons are not sorted")
        if t.start < gene.start or t.end > gene.end:
            problems.append(f"{where} {t.start}..{t.end} extends beyond its gene {gene.start}..{gene.end}")
        if t.phase not in (0, 1, 2):
            problems.append(f"{where} phase {t.phase} is not 0, 1 or 2")
        if t.cds is not None:
            cs, ce = t.cds
            if cs > ce or cs < t.start or ce > t.end:
                problems.append(f"{where} CDS {cs}..{ce} is not inside its extent {t.start}..{t.end}")
            elif not t.cds_segments():
                problems.append(f"{where} CDS {cs}..{ce} lies in an intron")
    return problems


# ---------------------------------------------------------------- encoding


def encode(genes: Iterable[Gene], scheme: CoordinateScheme) -> list[str]:
    """Token strings of the records of `genes` (canonical order; no task or `<eos>` framing)."""
    genes = list(genes)
    for gene in genes:
        problems = gene_problems(gene)
        if problems:
            raise CodecError(f"{_describe(gene)}: {'; '.join(problems)}")
    tokens: list[str] = []
    for gene, original in zip(normalise(genes), sorted(genes, key=_gene_key), strict=True):
        try:
            tokens += _gene_tokens(gene, scheme)
        except CoordinateError as err:
            raise CodecError(f"{_describe(original)}: {err}") from None
    return tokens


def _describe(gene: Gene) -> str:
    return f"{gene.type} {gene.name + ' ' if gene.name else ''}at {gene.start}..{gene.end}"


def _gene_tokens(gene: Gene, scheme: CoordinateScheme) -> list[str]:
    tokens = [type_token(gene.type), *scheme.encode(gene.start), *scheme.encode(gene.end)]
    tokens.append(_strand_token(gene.strand))
    tokens += [OPEN_LEFT] * gene.open_left + [OPEN_RIGHT] * gene.open_right
    for t in gene.transcripts:
        tokens.append(type_token(t.type))
        if (t.start, t.end) != (gene.start, gene.end):
            tokens += [SPAN, *scheme.encode(t.start), *scheme.encode(t.end)]
        if len(t.exons) > 1:
            tokens.append(INTRONS)
            for (_, last), (first, _) in zip(t.exons, t.exons[1:], strict=False):
                tokens += scheme.encode(last) + scheme.encode(first)
        if t.cds is not None:
            if t.cds == (t.start, t.end):
                tokens.append(CDS_ALL)
            else:
                tokens += [CDS, *scheme.encode(t.cds[0]), *scheme.encode(t.cds[1])]
            if t.phase:
                tokens.append(f"<ph{t.phase}>")
    return tokens


def _strand_token(strand: str) -> str:
    return next(tok for tok, s in STRAND_TOKENS.items() if s == strand)


def target_tokens(genes: Iterable[Gene], scheme: CoordinateScheme, task: str = ANNOTATION_TASK) -> list[str]:
    """Decoder labels of one window: `task gene* <eos>`."""
    return [task, *encode(genes, scheme), EOS]


def genes_to_text(genes: Iterable[Gene]) -> str:
    """Canonical, tokenizer-independent target text (number coordinates, space-separated tokens)."""
    return " ".join(encode(genes, NumberCoordinates()))


# ---------------------------------------------------------------- decoding


@dataclass
class DecodeResult:
    genes: list[Gene] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Malformed(Exception):
    pass


class _Reader:
    """Cursor over a token list; every `expect_*` raises `_Malformed` with the token index."""

    def __init__(self, tokens: Sequence[str], scheme: CoordinateScheme):
        self.tokens, self.scheme, self.i = tokens, scheme, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, what: str) -> str:
        token = self.peek()
        if token is None or token == EOS:
            raise _Malformed(f"token {self.i}: sequence ends inside a record (expected {what})")
        self.i += 1
        return token

    def coordinate(self, what: str) -> int:
        at = self.i
        first, second = self.take(what), self.take(what)
        bp = self.scheme.decode(first, second)
        if bp is None:
            raise _Malformed(f"token {at}: {first} {second} is not a coordinate in this window ({what})")
        return bp

    def at_coordinate(self) -> bool:
        """Whether the next token can only start a coordinate (it is no structural token)."""
        token = self.peek()
        return token not in (None, EOS, CDS, CDS_ALL, *PHASE_TOKENS) and _type_of(token) is None

    def accept(self, token: str) -> bool:
        if self.peek() == token:
            self.i += 1
            return True
        return False


def decode(tokens: Sequence[str], scheme: CoordinateScheme) -> DecodeResult:
    """Genes spelled by `tokens`, plus one error per malformed record. Never raises.

    Leading `<bos>` / task tokens are skipped; decoding stops at the first `<eos>`.
    """
    result = DecodeResult()
    reader = _Reader(list(tokens), scheme)
    while reader.peek() in (BOS, *TASK_TOKENS):
        reader.i += 1
    while (token := reader.peek()) is not None and token != EOS:
        start = reader.i
        name = _type_of(token)
        if name is None or not is_gene_type(name):
            result.errors.append(f"token {start}: expected a gene type, got {token!r}")
            _skip_to_next_gene(reader, start + 1)
            continue
        try:
            gene = _read_gene(reader)
            problems = gene_problems(gene)
            if problems:
                raise _Malformed(f"token {start}: invalid {gene.type} record: {'; '.join(problems)}")
            result.genes.append(gene)
        except _Malformed as err:
            result.errors.append(str(err))
            _skip_to_next_gene(reader, start + 1)
    result.genes = normalise(result.genes)
    return result


def _skip_to_next_gene(reader: _Reader, i: int) -> None:
    while i < len(reader.tokens) and reader.tokens[i] != EOS:
        name = _type_of(reader.tokens[i])
        if name is not None and is_gene_type(name):
            break
        i += 1
    reader.i = i


def _read_gene(reader: _Reader) -> Gene:
    gene_type = _type_of(reader.take("gene type"))
    start, end = reader.coordinate("gene start"), reader.coordinate("gene end")
    strand_token = reader.take("strand")
    if strand_token not in STRAND_TOKENS:
        raise _Malformed(f"token {reader.i - 1}: expected a strand, got {strand_token!r}")
    open_left, open_right = reader.accept(OPEN_LEFT), reader.accept(OPEN_RIGHT)
    transcripts = []
    while (token := reader.peek()) is not None and token != EOS:
        name = _type_of(token)
        if name is None or is_gene_type(name):
            break  # next gene (or garbage, reported by the caller)
        reader.i += 1
        transcripts.append(_read_transcript(reader, name, start, end))
    if (token := reader.peek()) is not None and token != EOS and not is_gene_type(_type_of(token) or ""):
        raise _Malformed(f"token {reader.i}: unexpected {token!r} in a {gene_type} record")
    return Gene(start, end, STRAND_TOKENS[strand_token], gene_type, tuple(transcripts), open_left, open_right)


def _read_transcript(reader: _Reader, tx_type: str, gene_start: int, gene_end: int) -> Transcript:
    start, end = gene_start, gene_end
    if reader.accept(SPAN):
        start, end = reader.coordinate("transcript start"), reader.coordinate("transcript end")
    exon_starts, exon_ends = [start], []
    if reader.accept(INTRONS):
        while True:
            exon_ends.append(reader.coordinate("exon end"))
            exon_starts.append(reader.coordinate("exon start"))
            if not reader.at_coordinate():
                break
    exon_ends.append(end)
    cds, phase = None, 0
    if reader.accept(CDS_ALL):
        cds = (start, end)
    elif reader.accept(CDS):
        cds = (reader.coordinate("CDS start"), reader.coordinate("CDS end"))
    if cds is not None and reader.peek() in PHASE_TOKENS:
        phase = PHASE_TOKENS[reader.take("phase")]
    return Transcript(tx_type, tuple(zip(exon_starts, exon_ends, strict=True)), cds, phase)


def text_to_genes(text: str, window_length: int | None = None) -> DecodeResult:
    """Inverse of `genes_to_text`; coordinates beyond `window_length` (when given) are errors."""
    return decode(text.split(), NumberCoordinates(window_length))
