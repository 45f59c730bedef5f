"""Biology-constrained decoding: a `LogitsProcessor` that only lets the decoder write possible genes.

The processor runs the codec grammar (`tokenization.codec`) as a state machine, one state per beam,
advanced by one token per step (states are keyed by the generated prefix, so beam reordering is free and
nothing is re-parsed). In each state it masks every token that would make the record malformed or
biologically impossible in this window's DNA:

- grammar: `[ATT] gene* <eos>`, every record complete, coordinates inside the window (and, for pointer
  coordinates, inside a real DNA token), gene start < end, genes in canonical (start, end) order,
  transcripts inside their gene, `<open_l>` / `<open_r>` only at the window edge they name;
- introns: at least 4 bp, canonical splice sites GT..AG, GC..AG or AT..AC (reverse-complemented on the
  minus strand), exons at least 1 bp, in order;
- coding spans (`<cds_all>`, `<cds>` + phase): a start codon at the 5' end, the first in-frame stop at
  the 3' end, length a multiple of 3, reading frame carried across the introns; an end that runs off an
  open window edge is exempt (any phase at an open 5' end, no stop needed at an open 3' end). Pseudogene
  CDS are only held to the structure (they are broken by definition);
- transcripts: at most `MAX_TRANSCRIPTS` per gene and one `<direct>` among them, never two identical ones
  in a gene (a weak model loops on them), and no two consecutive genes alike in (start, end, strand, type).

Coding-gene mode (`coding_genes=True`, the annotator's default): the grammar writes a
gene's coordinates before its strand and transcripts, so checking codons only at `<cds_all>` leaves a model
whose coordinates are a few bases off with nothing but non-coding transcripts. In this mode the coordinates
of a gene that can code (`<gene>`, `<protein_coding_gene>`) are snapped to the open reading frames of either
strand as they are written: the left coordinate to a start codon (plus strand) or a stop codon (minus
strand) of an ORF in the window, the right one to an end of an ORF with that left coordinate (plus: the first
in-frame stop; minus: a start codon of that frame before the next upstream stop), genes at least
`min_coding_length` bp, coordinates on an open window edge exempt as above (the open flag then becomes
compulsory). The strand token then allows only the strands on which the span is an ORF (almost always one),
so the DNA, not a guess made before any coordinate, decides it. Such a gene needs at least one transcript.
The trade-off: a tRNA or rRNA written as `<gene>` is snapped to an ORF too (it loses exactness; gene-level
scoring counts coding genes only); `<ncRNA_gene>` and `<pseudogene>` are not snapped.

Spliced coding-gene mode (`spliced=True` as well, the annotator's default outside prokaryotes): a coding gene is
one CDS chain, and each of its transcripts is that chain (`<cds_all>`), its introns chosen as it is written.
The gene's left coordinate is a start codon (+) or a stop codon (-) from which some spliced chain reaches a
right end; the right one an end such a chain reaches from it (a stop codon on +, a start codon on -; at least
`min_coding_length` bp where any is); the strand one on which a chain joins the two. Then every intron is
offered only where the chain, frame carried, can still close at the gene's end, and an intron that would split
a stop codon is refused. `SplicedChains` answers these reachability questions per window and strand. Without
this mode a small model's spliced genes were mostly exon chains that are no ORF, closed without a CDS.

Per window, the DNA is coded once (`WindowTables`); the legal coding spans of a transcript are computed
once when its exon chain is complete (a few hundred (start, end, phase) triples, numpy), then each
coordinate step is a boolean mask over the window's bases turned into token ids by the coordinate scheme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum, auto

import numpy as np
import torch
from Bio.Data.CodonTable import unambiguous_dna_by_id
from transformers import LogitsProcessor

from core.features import is_gene_type
from core.orfs import COMPLEMENT, base_codes, codon_ids, codon_table
from tokenization.codec import (
    ANNOTATION_TASK,
    BOS,
    CDS,
    CDS_ALL,
    DIRECT,
    EOS,
    INTRONS,
    OPEN_LEFT,
    OPEN_RIGHT,
    PHASE_TOKENS,
    SPAN,
    STRAND_TOKENS,
    is_type_name,
    type_token,
)
from tokenization.coordinates import NUMBER_BASE, NUMBER_TOKENS, OFFSET_TOKENS
from tokenization.track import BOUNDARY, REGION, TRACK_COLUMNS

# Start codons used when none are given: the common ones of the table (Prodigal's for code 11).
DEFAULT_START_CODONS = {11: ("ATG", "GTG", "TTG"), 4: ("ATG", "GTG", "TTG")}
# Canonical splice sites as (intron's first two bases, last two bases), in transcription orientation.
SPLICE_SITES = (("GT", "AG"), ("GC", "AG"), ("AT", "AC"))
MIN_INTRON = 4
MAX_TRANSCRIPTS = 16  # per gene; the shared genomes have at most a handful
# bp of a snapped gene, stop codon included. Prodigal's own minimum is 90, but it scores each gene; a small
# model's calls under 300 bp are mostly false (greedy gene 3' F1 0.45 / 0.38 at 90 bp vs 0.79 / 0.80 at 300
# on the demo's held-out region / unseen B. subtilis), while few real genes are shorter (6 of 91 held out).
MIN_CODING_LENGTH = 300
STRANDS = ("+", "-", ".")
CODING_GENE_TYPES = ("gene", "protein_coding_gene")  # gene types whose span coding-gene mode snaps to an ORF


def _revcomp(dinucleotide: str) -> str:
    return dinucleotide[::-1].translate(str.maketrans("ACGT", "TGCA"))


class GeneticCode:
    """Start and stop codons of an NCBI translation table, as lookups over codon ids (`core.orfs.codon_ids`)."""

    def __init__(self, table: int = 11, start_codons: Sequence[str] | None = None):
        stops = unambiguous_dna_by_id[table].stop_codons
        starts = start_codons or DEFAULT_START_CODONS.get(table, ("ATG",))
        self.table = table
        self.start_codons, self.stop_codons = tuple(starts), tuple(stops)
        self.is_start, self.is_stop = codon_table(starts), codon_table(stops)


class WindowTables:
    """What the constraints need to know about one window's DNA, computed once."""

    def __init__(self, dna: str, code: GeneticCode, addressable: np.ndarray | None = None):
        self.length = len(dna)
        self.code = code
        self.bases = base_codes(dna)  # any case, U as T
        # Bases a coordinate may name (pointer coordinates can only name bases inside DNA tokens).
        self.addressable = np.ones(self.length, bool) if addressable is None else addressable
        self._splice_cache: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._orf_cache: dict[int, np.ndarray] = {}

    def dinucleotide_at(self, motif: str) -> np.ndarray:
        """Boolean per position i: bases i, i+1 spell `motif` (False at the last base)."""
        a, b = (int(code) for code in base_codes(motif))
        hit = np.zeros(self.length, bool)
        hit[:-1] = (self.bases[:-1] == a) & (self.bases[1:] == b)
        return hit

    def splice_pairs(self, strand: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per splice-site kind: (left site at i, cumulative count of right sites) in genomic orientation.

        An intron a+1..b-1 (a = last base of an exon, b = first base of the next) is canonical when for
        one kind its first two genomic bases (at a+1) match `left` and its last two (at b-2) match `right`.
        """
        if strand not in self._splice_cache:
            pairs = []
            for donor, acceptor in SPLICE_SITES:
                left, right = (donor, acceptor) if strand == "+" else (_revcomp(acceptor), _revcomp(donor))
                right_hits = self.dinucleotide_at(right)
                pairs.append((self.dinucleotide_at(left), np.concatenate([[0], np.cumsum(right_hits)])))
            self._splice_cache[strand] = pairs
        return self._splice_cache[strand]

    def orfs(self, min_length: int) -> np.ndarray:
        """Every coding-gene span the decoder can address, on either strand, as rows (start, end, strand index
        into STRANDS): start codon .. first in-frame stop, at least `min_length` bp, or cut by a window edge
        (any frame, no length limit). Computed once per window; the decoder filters it at every gene."""
        if min_length not in self._orf_cache:
            n, per_strand = self.length, []
            for k, strand in enumerate(STRANDS[:2]):
                spans = self.coding_spans(((0, n - 1),), strand, open5=True, open3=True).rows[:, :2]
                start, end = spans[:, 0], spans[:, 1]
                keep = (end > start) & ((end - start + 1 >= min_length) | (start == 0) | (end == n - 1))
                keep &= self.addressable[start] & self.addressable[end]
                spans = np.unique(spans[keep], axis=0)
                per_strand.append(np.column_stack([spans, np.full(len(spans), k)]))
            self._orf_cache[min_length] = np.concatenate(per_strand)
        return self._orf_cache[min_length]

    def coding_spans(
        self, exons: tuple[tuple[int, int], ...], strand: str, open5: bool, open3: bool
    ) -> CodingSpans:
        """Every legal (cds start, cds end, phase) on this exon chain, in genomic coordinates."""
        positions = np.concatenate([np.arange(s, e + 1) for s, e in exons])
        bases = self.bases[positions]
        if strand == "-":  # transcription orientation
            positions, bases = positions[::-1], COMPLEMENT[bases[::-1]]
        n = len(bases)
        if n < 3:
            return CodingSpans(np.zeros((0, 3), dtype=np.int64))
        codons = codon_ids(bases)
        five = np.flatnonzero(self.code.is_start[codons])  # complete 5' ends: a start codon, phase 0
        phase = np.zeros_like(five)
        if open5:  # the 5' end runs off the window: any phase, no start codon needed
            five, phase = (
                np.concatenate([[0, 0, 0], five[five > 0]]),
                np.concatenate([[0, 1, 2], phase[five > 0]]),
            )
        first_codon = five + phase
        stops = np.flatnonzero(self.code.is_stop[codons])
        three = np.full(len(five), -1)
        for frame in range(3):  # the 3' end is the first in-frame stop: no internal stop by construction
            in_frame = stops[stops % 3 == frame]
            rows = np.flatnonzero(first_codon % 3 == frame)
            k = np.searchsorted(in_frame, first_codon[rows])
            found = k < len(in_frame)
            three[rows[found]] = in_frame[k[found]] + 2
            if open3:  # no stop before the open 3' edge: the CDS runs off the window
                three[rows[~found]] = n - 1
        ok = (three >= 0) & (first_codon < n)
        first, last = positions[five[ok]], positions[three[ok]]
        if strand == "-":
            first, last = last, first
        return CodingSpans(np.stack([first, last, phase[ok]], axis=1).astype(np.int64))


class CodingSpans:
    """The legal coding spans of one exon chain, as rows (cds start, cds end, phase), genomic coordinates."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows

    def _not_whole(self, extent: tuple[int, int]) -> np.ndarray:
        return (self.rows[:, 0] != extent[0]) | (self.rows[:, 1] != extent[1])

    def has_whole(self, extent: tuple[int, int]) -> bool:
        return len(self.phases(*extent)) > 0

    def has_part(self, extent: tuple[int, int]) -> bool:
        return bool(self._not_whole(extent).any())

    def starts(self, extent: tuple[int, int]) -> np.ndarray:
        """Starts of the spans written with `<cds>` (the whole extent is written `<cds_all>`)."""
        return self.rows[self._not_whole(extent), 0]

    def ends(self, extent: tuple[int, int], first: int) -> np.ndarray:
        return self.rows[self._not_whole(extent) & (self.rows[:, 0] == first), 1]

    def phases(self, first: int, last: int) -> list[int]:
        hit = (self.rows[:, 0] == first) & (self.rows[:, 1] == last)
        return sorted(set(self.rows[hit, 2].tolist()))


class ChainSpans(CodingSpans):
    """Pseudogene CDS: any start <= end on the exon chain, any phase (its codons are not checked)."""

    def __init__(self, exons: tuple[tuple[int, int], ...]):
        self.positions = np.concatenate([np.arange(s, e + 1) for s, e in exons])
        self.on_chain = set(self.positions.tolist())

    def has_whole(self, extent: tuple[int, int]) -> bool:
        return True

    def has_part(self, extent: tuple[int, int]) -> bool:
        return len(self.positions) > 1

    def starts(self, extent: tuple[int, int]) -> np.ndarray:
        return self.positions

    def ends(self, extent: tuple[int, int], first: int) -> np.ndarray:
        ends = self.positions[self.positions >= first]
        return ends[ends != extent[1]] if first == extent[0] else ends

    def phases(self, first: int, last: int) -> list[int]:
        return [0, 1, 2] if first in self.on_chain and last in self.on_chain and first <= last else []


class SplicedChains:
    """Where the CDS chain of a spliced coding gene on one strand can run in one window.

    Read left to right (genomic order), a CDS chain on either strand is whole codons counted from its left
    end: on + a start codon first and a stop codon last, on - a stop codon first and a start codon last
    (both reverse-complemented), and no stop codon in between. Inside one exon the codons sit in one genomic
    frame `g` (a codon begins at every base p with p % 3 == g); an intron from a + 1 to b - 1 moves the frame
    of the next exon to (g + b - a - 1) % 3. So where a chain can go is a reachability question over (base,
    frame), answered with interval arithmetic over the exons' runs between stop codons: `forward` from a
    gene's left end, `backward` from its right end (or from every possible one). A codon split by an intron
    is not looked at here (the grammar checks it when the intron is written, `spanning_stops`); nor is the
    chain's length, which the caller holds to a minimum where it can.
    """

    def __init__(self, tables: WindowTables, strand: str):
        n, code = tables.length, tables.code
        self.length = n
        if strand == "+":
            ids = codon_ids(tables.bases)
        else:  # the codon at each base as the - strand reads it
            ids = codon_ids(COMPLEMENT[tables.bases][::-1])[::-1]
        tail = np.zeros(min(2, n), bool)  # no codon begins at the last two bases
        stop = np.concatenate([code.is_stop[ids], tail])
        start = np.concatenate([code.is_start[ids], tail])
        self.bases, self.strand, self.code = tables.bases, strand, code
        self.first, self.last = (start, stop) if strand == "+" else (stop, start)
        self.stops = [np.flatnonzero(stop & (np.arange(n) % 3 == g)) for g in range(3)]
        # Per splice-site kind: exon ends `a` with the intron's first two bases at a + 1, and exon starts `b`
        # with its last two at b - 2 (genomic orientation, as `WindowTables.splice_pairs`).
        self.kinds = []
        for left, right_counts in tables.splice_pairs(strand):
            donors, acceptors = np.zeros(n, bool), np.zeros(n, bool)
            donors[:-1] = left[1:]
            acceptors[2:] = np.diff(right_counts)[: max(n - 2, 0)] > 0
            self.kinds.append((donors, acceptors))
        self._ends_cache: dict[int, np.ndarray] = {}
        self._back_cache: dict[int, np.ndarray] = {}

    # ---- runs: how far one exon reaches without a stop codon inside it

    def _paint(self, reach: np.ndarray, lo: np.ndarray, hi: np.ndarray, frames: np.ndarray) -> None:
        for g in range(3):
            rows = (frames == g) & (lo <= hi)
            delta = np.zeros(self.length + 1, np.int64)
            np.add.at(delta, lo[rows], 1)
            np.add.at(delta, hi[rows] + 1, -1)
            reach[g] |= np.cumsum(delta[:-1]) > 0

    def _rightwards(self, starts: np.ndarray, frames: np.ndarray, search_from: np.ndarray) -> np.ndarray:
        """The last base an exon entering at `starts` (genomic frames) can reach: a base before the first stop
        codon of its frame at or after `search_from` ends, so the chain may still close on that stop."""
        ends = np.full(len(starts), self.length - 1)
        for g in range(3):
            rows = frames == g
            k = np.searchsorted(self.stops[g], search_from[rows])
            found = k < len(self.stops[g])
            ends[np.flatnonzero(rows)[found]] = self.stops[g][k[found]] + 1
        return ends

    def _leftwards(self, ends: np.ndarray, frames: np.ndarray, search_to: np.ndarray) -> np.ndarray:
        """The first base an exon ending at `ends` can reach leftwards: after the last stop codon of its frame
        that begins at or before `search_to`."""
        starts = np.zeros(len(ends), np.int64)
        for g in range(3):
            rows = frames == g
            k = np.searchsorted(self.stops[g], search_to[rows], side="right") - 1
            found = k >= 0
            starts[np.flatnonzero(rows)[found]] = self.stops[g][k[found]] + 1
        return starts

    def _splice_sites(self, reach: np.ndarray, donors: bool) -> dict[tuple[int, int], int]:
        """Per (splice kind, frame shift): the first exon end at a donor (`donors`) or the last exon start
        at an acceptor that `reach` holds. The shift is what the intron adds to the next exon's genomic frame
        (rightwards from an end) or to the previous one's (leftwards from a start): the site's frame less its
        base, mod 3, one off for the intron's first or last base."""
        found = {}
        for kind, sites in enumerate(self.kinds):
            for g in range(3):
                at = np.flatnonzero(reach[g] & sites[0 if donors else 1])
                for r in range(3):
                    if (hits := at[at % 3 == r]).size:
                        found[kind, (g - r - 1) % 3 if donors else (g - r + 1) % 3] = int(
                            hits[0] if donors else hits[-1]
                        )
        return found

    # ---- reachability

    def forward(self, start: int, frames: Sequence[int]) -> np.ndarray:
        """[3, length]: bases an exon of a chain beginning at `start` (its first codon in one of `frames`)
        can hold, by genomic frame."""
        entries = (np.full(len(frames), start), np.asarray(frames), np.full(len(frames), start + 1))
        earliest: dict[tuple[int, int], int] = {}
        while True:  # entries only grow, so the reach and its earliest exon ends only grow and move left
            reach = np.zeros((3, self.length), bool)
            self._paint(reach, entries[0], self._rightwards(*entries), entries[1])
            found = self._splice_sites(reach, donors=True)
            new = {key: a for key, a in found.items() if earliest.get(key) != a}
            if not new:
                return reach
            earliest = found
            # Every acceptor after an exon end of a kind starts a new exon, in the frame that end implies.
            lists = [entries]
            for (kind, shift), a in new.items():
                b = np.flatnonzero(self.kinds[kind][1])
                b = b[b >= a + 1 + MIN_INTRON]
                lists.append((b, (b + shift) % 3, b))
            entries = tuple(np.concatenate(parts) for parts in zip(*lists, strict=True))

    def backward(self, end: int | None = None) -> np.ndarray:
        """[3, length]: bases an exon can hold, by genomic frame, from which the chain can still close at
        `end` (its last codon at end - 2; None: at any base where a chain can close, or open at the window's
        last base)."""
        cached = -1 if end is None else end
        if cached in self._back_cache:
            return self._back_cache[cached]
        n = self.length
        if end is None:
            q = np.flatnonzero(self.last)
            ys, frames, limits = q + 2, q % 3, q - 1  # the last codon itself is exempt
            ys, frames = np.concatenate([ys, [n - 1] * 3]), np.concatenate([frames, [0, 1, 2]])
            limits = np.concatenate([limits, [n - 3] * 3])
        else:
            ys, frames, limits = np.array([end]), np.array([(end - 2) % 3]), np.array([end - 3])
        entries = (ys, frames, limits)
        latest: dict[tuple[int, int], int] = {}
        while True:  # as `forward`, mirrored: exon starts move right, donors before them open exons
            reach = np.zeros((3, n), bool)
            self._paint(reach, self._leftwards(*entries), entries[0], entries[1])
            found = self._splice_sites(reach, donors=False)
            new = {key: b for key, b in found.items() if latest.get(key) != b}
            if not new:
                self._back_cache[cached] = reach
                return reach
            latest = found
            lists = [entries]
            for (kind, shift), b in new.items():
                a = np.flatnonzero(self.kinds[kind][0])
                a = a[a <= b - 1 - MIN_INTRON]
                lists.append((a, (a + shift) % 3, a - 2))
            entries = tuple(np.concatenate(parts) for parts in zip(*lists, strict=True))

    # ---- what the grammar asks

    def starts(self) -> np.ndarray:
        """Bool [length]: left ends from which a chain can reach some right end (its first codon there, or
        cut by the window's first base)."""
        n, back = self.length, self.backward()
        ok = np.zeros(n, bool)
        s = np.arange(n - 1)
        # the base after the first codon's first base, in its frame: the first codon itself is exempt
        ok[:-1] = self.first[:-1] & back[s % 3, s + 1]
        ok[0] |= back[:, 0].any()
        return ok

    def ends(self, start: int) -> np.ndarray:
        """Bool [length]: right ends of the chains beginning at `start` (its last codon ending there, or cut
        by the window's last base). At the window's first base the chain may be cut, in any frame."""
        if start not in self._ends_cache:
            n = self.length
            reach = self.forward(start, [0, 1, 2] if start == 0 else [start % 3])
            q = np.arange(n)
            ends = np.zeros(n, bool)
            ends[2:] = (self.last & reach[q % 3, q])[:-2]
            ends[n - 1] |= reach[:, n - 1].any()
            self._ends_cache[start] = ends
        return self._ends_cache[start]

    def exon_ends(self, exon_start: int, frame: int, first_exon: bool, end: int) -> np.ndarray:
        """Bool [length]: last bases `a` of the exon beginning at `exon_start` (codons in genomic `frame`) at
        which an intron can open after which the chain can still close at `end`."""
        n, back = self.length, self.backward(end)
        search_from = exon_start + 1 if first_exon else exon_start  # a gene's first codon is exempt
        last = self._rightwards(np.array([exon_start]), np.array([frame]), np.array([search_from]))[0]
        a = np.arange(exon_start, max(exon_start, min(last, end - 1 - MIN_INTRON) + 1))
        legal = np.zeros(n, bool)
        for donors, acceptors in self.kinds:
            b = np.flatnonzero(acceptors[: end + 1])
            for shift in range(3):
                after = b[back[(b + shift) % 3, b]]
                if after.size:
                    here = a[(frame - a - 1) % 3 == shift]
                    legal[here] |= donors[here] & (here + 1 + MIN_INTRON <= after[-1])
        return legal

    def exon_starts(self, a: int, frame: int, end: int, tail: np.ndarray) -> np.ndarray:
        """Bool [length]: first bases `b` of the exon after an intron a + 1 .. b - 1 (the exon before it has
        its codons in genomic `frame`; `tail` holds the chain's bases after its last whole codon) from which
        the chain can close at `end`, without a stop codon split by the intron."""
        n, back = self.length, self.backward(end)
        shift = (frame - a - 1) % 3
        b = np.arange(a + 1 + MIN_INTRON, end + 1)
        legal = np.zeros(n, bool)
        for donors, acceptors in self.kinds:
            if donors[a]:
                here = b[acceptors[b]]
                legal[here] |= back[(here + shift) % 3, here]
        if len(tail):  # the codon the intron splits: the tail's bases and the next exon's first ones
            b = np.flatnonzero(legal)
            b = b[b + 2 - len(tail) < n]
            parts = [np.full(len(b), self.bases[p]) for p in tail]
            parts += [self.bases[b + k] for k in range(3 - len(tail))]
            triples = np.stack(parts, axis=1)  # genomic order; the - strand reads them reverse-complemented
            if self.strand == "-":
                triples = COMPLEMENT[triples[:, ::-1]]
            legal[b[self.code.is_stop[codon_ids(triples.ravel(), step=3)]]] = False
        return legal


# ---------------------------------------------------------------- vocabulary


class GrammarVocab:
    """Token ids of every grammar category, read from an extended tokenizer (pointers: `vocab_size + i`)."""

    def __init__(self, vocab: Mapping[str, int], vocab_size: int):
        self.vocab_size = vocab_size
        self.bos, self.eos, self.task = vocab[BOS], vocab[EOS], vocab[ANNOTATION_TASK]
        names = {
            token[1:-1]: i for token, i in vocab.items() if token.startswith("<") and token.endswith(">")
        }
        types = {name: i for name, i in names.items() if is_type_name(name)}
        self.gene_types = np.array(sorted(i for name, i in types.items() if is_gene_type(name)))
        self.pseudo_types = frozenset(
            i for name, i in types.items() if is_gene_type(name) and "pseudo" in name
        )
        self.coding_gene_types = frozenset(i for name, i in types.items() if name in CODING_GENE_TYPES)
        self.transcript_types = np.array(sorted(i for name, i in types.items() if not is_gene_type(name)))
        self.direct = vocab[type_token(DIRECT)]
        self.strands = {vocab[token]: strand for token, strand in STRAND_TOKENS.items()}
        self.strand_ids = {strand: i for i, strand in self.strands.items()}
        self.open_left, self.open_right = vocab[OPEN_LEFT], vocab[OPEN_RIGHT]
        self.span, self.introns, self.cds, self.cds_all = (
            vocab[SPAN],
            vocab[INTRONS],
            vocab[CDS],
            vocab[CDS_ALL],
        )
        self.phases = {vocab[token]: phase for token, phase in PHASE_TOKENS.items()}
        self.phase_ids = {phase: i for i, phase in self.phases.items()}
        self.numbers = np.array([vocab[t] for t in NUMBER_TOKENS])
        self.offsets = np.array([vocab[t] for t in OFFSET_TOKENS])
        self.number_value = {int(i): v for v, i in enumerate(self.numbers)}
        self.offset_value = {int(i): k for k, i in enumerate(self.offsets)}
        self.gene_type_set = frozenset(self.gene_types.tolist())
        self.transcript_type_set = frozenset(self.transcript_types.tolist())
        # What may follow a finished gene header or transcript: a transcript, the next gene, or the end.
        self.next_gene = np.concatenate([self.gene_types, [self.eos]])
        self.follow = np.concatenate([self.transcript_types, self.next_gene])
        self.follow_set = frozenset(self.follow.tolist())

    @classmethod
    def from_tokenizer(cls, tokenizer) -> GrammarVocab:
        return cls(tokenizer.get_vocab(), len(tokenizer))


class CoordinateTokens:
    """Turns a boolean mask of legal bases into legal coordinate tokens, for one window's scheme."""

    def __init__(self, vocab: GrammarVocab, token_offsets: np.ndarray | None, length: int):
        self.vocab, self.length = vocab, length
        self.spans = (
            None if token_offsets is None else np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)
        )

    def addressable(self) -> np.ndarray:
        mask = np.zeros(self.length, bool)
        if self.spans is None:
            mask[:] = True
        else:
            for s, e in self.spans:
                mask[s:e] = True
        return mask

    def first(self, legal: np.ndarray) -> np.ndarray:
        if self.spans is None:
            padded = np.zeros(-(-self.length // NUMBER_BASE) * NUMBER_BASE, bool)
            padded[: self.length] = legal
            return self.vocab.numbers[np.flatnonzero(padded.reshape(-1, NUMBER_BASE).any(1))]
        counts = np.concatenate([[0], np.cumsum(legal)])
        s, e = self.spans[:, 0].clip(0, self.length), self.spans[:, 1].clip(0, self.length)
        return self.vocab.vocab_size + np.flatnonzero((e > s) & (counts[e] > counts[s]))

    def second(self, first_id: int, legal: np.ndarray) -> np.ndarray:
        lo, hi = self._range(first_id)
        return (self.vocab.numbers if self.spans is None else self.vocab.offsets)[
            np.flatnonzero(legal[lo:hi])
        ]

    def value(self, first_id: int, second_id: int) -> int | None:
        lo, hi = self._range(first_id)
        table = self.vocab.number_value if self.spans is None else self.vocab.offset_value
        k = table.get(second_id)
        return lo + k if k is not None and lo + k < hi else None

    def _range(self, first_id: int) -> tuple[int, int]:
        if self.spans is None:
            high = self.vocab.number_value.get(first_id, self.length)
            return high * NUMBER_BASE, min((high + 1) * NUMBER_BASE, self.length)
        s, e = self.spans[first_id - self.vocab.vocab_size]
        return int(s), int(min(e, self.length))


class TrackEvidence:
    """What the model's per-base track says of one window's open reading frames.

    `log_probs` [length, 26]: the track head's log-probabilities, each of `TRACK_COLUMNS` (region and boundary
    of the + strand, then of the - strand) normalised on its own. An ORF's evidence is the mean
    log-probability of its bases' codon positions on its strand, plus those of its start and stop codons. An
    ORF cut by the window edge is read the same way (the track's value at the edge base): a free pass there
    would favour cut genes, which stitching then drops for the copy a neighbouring window sees whole.
    """

    def __init__(self, log_probs: np.ndarray):
        self.log_probs, self.length = log_probs, len(log_probs)
        widths = [len(REGION), len(BOUNDARY)] * (len(TRACK_COLUMNS) // 2)
        self.columns = np.cumsum([0, *widths[:-1]])  # first logit of each track column
        # Prefix sums of the codon-position log-probability, per strand and frame (the base where codon
        # position 0 falls, mod 3; counted from the 5' end, which is the right end on the - strand).
        bases = np.arange(self.length)
        self._coding = {}
        for k, strand in enumerate("+-"):
            region = log_probs[:, self.columns[2 * k] :][:, : len(REGION)]
            for frame in range(3):
                position = (bases - frame) % 3 if strand == "+" else (frame - bases) % 3
                per_base = region[bases, REGION.index("cds0") + position]
                self._coding[k, frame] = np.concatenate([[0.0], np.cumsum(per_base)])

    def orf_scores(self, orfs: np.ndarray) -> np.ndarray:
        """Evidence of ORF rows (start, end, strand index), window coordinates."""
        scores = np.zeros(len(orfs))
        for k in (0, 1):
            rows = orfs[:, 2] == k
            start, end = orfs[rows, 0], orfs[rows, 1]
            frame = start % 3 if k == 0 else end % 3
            coding = np.empty(len(start))
            for f in range(3):
                on = frame == f
                cumulative = self._coding[k, f]
                coding[on] = (cumulative[end[on] + 1] - cumulative[start[on]]) / (end[on] - start[on] + 1)
            boundary = self.log_probs[:, self.columns[2 * k + 1] :]
            five, three = (start, end) if k == 0 else (end, start)
            starts = boundary[five, BOUNDARY.index("start_codon")]
            stops = boundary[three, BOUNDARY.index("stop_codon")]
            scores[rows] = coding + starts + stops
        return scores


# ---------------------------------------------------------------- the grammar state machine


class Slot(Enum):
    """Where a sequence is in the grammar `<bos> [ATT] gene* <eos>`."""

    BOS = auto()  # nothing written yet
    TASK = auto()  # after <bos>
    RECORD = auto()  # after [ATT], before the first gene
    COORD = auto()  # inside a coordinate (which one: `Purpose`)
    STRAND = auto()  # after a gene's two coordinates
    BODY = auto()  # in a gene: its open flags and transcripts (how far a transcript is: `Stage`)
    DONE = auto()  # after <eos>: anything may follow


class Purpose(Enum):
    """Which coordinate is being written."""

    GENE_START = auto()
    GENE_END = auto()
    SPAN_START = auto()
    SPAN_END = auto()
    INTRON_END = auto()  # the last base of the exon before an intron
    INTRON_NEXT = auto()  # the first base of the exon after it
    CDS_START = auto()
    CDS_END = auto()


class Stage(Enum):
    """How far a transcript is written: head -> span -> introns -> cds -> phase (each but the head optional)."""

    HEAD = auto()
    SPAN = auto()
    INTRONS = auto()
    CDS = auto()
    PHASE = auto()


class GrammarError(RuntimeError):
    """A grammar state that no token sequence leads to: a bug in the constraints, never bad input."""


class Rules(dict):
    """A dispatch table from a `Slot`, `Purpose` or `Stage` to the method that handles it. A state without a
    rule is impossible and raises, instead of falling into another state's branch."""

    def __init__(self, kind: str, rules: dict):
        super().__init__(rules)
        self.kind = kind

    def __missing__(self, key):
        raise GrammarError(f"impossible grammar state: no rule for {self.kind} {key!r}")


@dataclass(frozen=True)
class _Gene:
    start: int = -1
    end: int = -1
    strand: str = "."
    pseudo: bool = False
    open_left: bool = False
    open_right: bool = False
    type_id: int = -1
    coding: bool = False  # coding-gene mode snaps its span to an ORF


@dataclass(frozen=True)
class _Transcript:
    start: int
    end: int
    exon_start: int  # start of the exon being built (the last intron's second coordinate)
    introns: tuple[tuple[int, int], ...] = ()
    stage: Stage = Stage.HEAD

    def exons(self) -> tuple[tuple[int, int], ...]:
        starts = [self.start, *(b for _, b in self.introns)]
        ends = [*(a for a, _ in self.introns), self.end]
        return tuple(zip(starts, ends, strict=True))


@dataclass(frozen=True)
class State:
    """Where one sequence is in the grammar, and what the current record has said so far."""

    slot: Slot = Slot.BOS
    prev: tuple[int, int] = (-1, -1)  # (start, end) of the previous gene, for canonical order
    prev_kind: tuple[str, int] = (".", -1)  # its (strand, type id): no two consecutive genes alike
    gene: _Gene | None = None
    transcript: _Transcript | None = None
    purpose: Purpose | None = None  # which coordinate is being written (in slot COORD)
    first: int = -1  # its first token, once written
    legal: np.ndarray | None = None  # legal bases for the coordinate being written
    pending: int = -1  # the first coordinate of a pair (intron, CDS) while the second is written
    cds: tuple[int, int] = (-1, -1)  # the current transcript's CDS, once written
    tokens: tuple[int, ...] = ()  # the current transcript's tokens so far (from its type)
    done: frozenset[tuple[int, ...]] = frozenset()  # the gene's finished transcripts, as their tokens


class Grammar:
    """The codec grammar over one window, with its biology. `step` and `allowed` never mutate a state."""

    def __init__(
        self,
        vocab: GrammarVocab,
        tables: WindowTables,
        coordinates: CoordinateTokens,
        coding_genes: bool = False,
        min_coding_length: int = MIN_CODING_LENGTH,
        evidence: TrackEvidence | None = None,
        spliced: bool = False,
    ):
        self.vocab, self.tables, self.coords = vocab, tables, coordinates
        self.length = tables.length
        self.coding_genes, self.min_coding_length = coding_genes, min_coding_length
        self.evidence = evidence
        self.spliced = spliced
        self._chains: dict[str, SplicedChains] = {}
        self._spliced_starts: np.ndarray | None = None
        self._orf_scores: np.ndarray | None = None
        self._spans_cache: dict[tuple, CodingSpans] = {}
        # Each state's rules are class-level tables (`_allowed_in`, ..., at the end of the class).

    # -------------------------------------------------------- allowed tokens

    def allowed(self, state: State) -> np.ndarray | None:
        """Ids allowed next (None: anything, the sequence is finished)."""
        ids = self._allowed_in[state.slot](self, state)
        if ids is None or state.transcript is None or state.slot not in (Slot.BODY, Slot.COORD):
            return ids
        return self._without_repeats(state, ids)

    def evidence_bias(self, state: State, ids: np.ndarray) -> np.ndarray | None:
        """The track's evidence for each allowed coordinate token of a coding gene's span (None elsewhere):
        the best ORF a first token's bases can start (or end), or the ORF the base a second token names
        starts (or ends); 0 for the best token, negative for the others."""
        if self.evidence is None or state.slot is not Slot.COORD:
            return None
        if state.purpose not in (Purpose.GENE_START, Purpose.GENE_END):
            return None
        if not state.gene.coding or self.spliced:
            return None
        keep = self._gene_orf_mask(state)
        orfs, scores = self.tables.orfs(self.min_coding_length)[keep], self._orf_evidence()[keep]
        if state.purpose is Purpose.GENE_END:
            orfs, scores = orfs[orfs[:, 0] == state.gene.start], scores[orfs[:, 0] == state.gene.start]
        per_base = np.full(self.length, -np.inf)
        np.maximum.at(per_base, orfs[:, 0 if state.purpose is Purpose.GENE_START else 1], scores)
        if state.first < 0:
            values = [per_base[slice(*self.coords._range(i))].max(initial=-np.inf) for i in ids.tolist()]
        else:
            values = [
                per_base[v] if (v := self.coords.value(state.first, i)) is not None else -np.inf for i in ids
            ]
        values = np.asarray(values)
        if not np.isfinite(values).any():
            return None
        return np.where(np.isfinite(values), values - values[np.isfinite(values)].max(), 0.0)

    def _bos_allowed(self, state: State) -> np.ndarray:
        return np.array([self.vocab.bos])

    def _task_allowed(self, state: State) -> np.ndarray:
        return np.array([self.vocab.task])

    def _done_allowed(self, state: State) -> None:
        return None

    def _record_allowed(self, state: State) -> np.ndarray:
        ids = [self.vocab.eos]
        if self.length >= 2:
            ids += self.vocab.gene_types.tolist()
        return np.array(ids)

    def _strand_allowed(self, state: State) -> np.ndarray:
        return np.array([self.vocab.strand_ids[s] for s in self._strands(state)])

    def _coordinate_allowed(self, state: State) -> np.ndarray:
        if state.first < 0:
            return self.coords.first(state.legal)
        return self.coords.second(state.first, state.legal)

    def _body_allowed(self, state: State) -> np.ndarray:
        if state.transcript is None:
            return self._header_allowed(state)
        return self._allowed_at_stage[state.transcript.stage](self, state)

    def _header_allowed(self, state: State) -> np.ndarray:
        """After the gene's coordinates and strand: its open flags, then a transcript, the next gene or the end."""
        v, gene = self.vocab, state.gene
        finished = True
        open_left = gene.start == 0 and not gene.open_left and not gene.open_right
        open_right = gene.end == self.length - 1 and not gene.open_right
        if gene.coding and self.spliced:  # an edge without the chain's first (last) codon must be marked open
            chains = self.chains(gene.strand)
            closed_left = bool(chains.first[gene.start])
            closed_right = gene.end >= 2 and bool(chains.last[gene.end - 2])
            finished = (closed_left or gene.open_left) and (closed_right or gene.open_right)
            open_right &= closed_left or gene.open_left  # <open_l> comes first
        elif gene.coding:  # an edge the ORF runs off must be marked open
            finished = self._is_orf(gene, gene.open_left, gene.open_right)
            open_left &= self._is_orf(gene, True, False) or (open_right and self._is_orf(gene, True, True))
            open_right &= self._is_orf(gene, gene.open_left, True)
        ids = [self._follow(state)] if finished else []
        if open_left:
            ids.append([v.open_left])
        if open_right:
            ids.append([v.open_right])
        return np.concatenate(ids).astype(np.int64)

    def _phase_allowed(self, state: State) -> np.ndarray:
        """After the CDS coordinates: a phase token, or phase 0 by omission."""
        phases = self._choices(state).phases(*state.cds)
        ids = [self.vocab.phase_ids[p] for p in phases if p]
        return np.concatenate([ids, self._follow(state) if 0 in phases else []]).astype(np.int64)

    def _structure_allowed(self, state: State) -> np.ndarray:
        """In a transcript before its CDS: its span, introns or CDS, or what ends it."""
        if self._framed(state.gene):
            return self._chain_allowed(state)
        v, gene, tx = self.vocab, state.gene, state.transcript
        ids = [self._follow(state)]
        if tx.stage is Stage.HEAD and self._span_possible(gene):
            ids.append([v.span])
        if tx.stage in (Stage.HEAD, Stage.SPAN) and self._intron_legal(state, tx.start).any():
            ids.append([v.introns])
        if tx.stage is Stage.INTRONS:
            ids.append(self.coords.first(self._intron_legal(state, tx.exon_start)))
        if gene.strand != ".":
            choices, extent = self._choices(state), (tx.start, tx.end)
            if choices.has_whole(extent):
                ids.append([v.cds_all])
            if choices.has_part(extent):
                ids.append([v.cds])
        return np.concatenate(ids).astype(np.int64)

    def _chain_allowed(self, state: State) -> np.ndarray:
        """In a transcript of a spliced coding gene: an intron where the chain can still close at the gene's
        end, or the whole transcript as its CDS once it is one. Ending it without a CDS is left only where
        neither is (a split codon `SplicedChains` does not foresee)."""
        v, tx = self.vocab, state.transcript
        ids = []
        ends = self._intron_legal(state, tx.exon_start) & self.tables.addressable
        if tx.stage is Stage.INTRONS:
            ids.append(self.coords.first(ends))
        elif ends.any():
            ids.append([v.introns])
        if self._choices(state).has_whole((tx.start, tx.end)):
            ids.append([v.cds_all])
        if not any(len(i) for i in ids):
            ids.append(self._follow(state))
        return np.concatenate(ids).astype(np.int64)

    def _follow(self, state: State) -> np.ndarray:
        """What may end the gene header or a transcript: another transcript, the next gene, the end."""
        v = self.vocab
        count = len(state.done) + (state.transcript is not None)
        if count >= MAX_TRANSCRIPTS:
            return v.next_gene
        follow = v.transcript_types if count == 0 and state.gene.coding else v.follow
        # One `<direct>` transcript per gene, as `codec.gene_problems` requires.
        if any(t[0] == v.direct for t in state.done) or state.tokens[:1] == (v.direct,):
            follow = follow[follow != v.direct]
        return follow

    # -------------------------------------------------------- no repeated transcripts

    def _without_repeats(self, state: State, ids: np.ndarray) -> np.ndarray:
        """`ids` minus the tokens after which every completion repeats one of the gene's transcripts."""
        v = self.vocab
        keep = np.ones(len(ids), bool)
        if state.tokens in state.done:  # ending the transcript here would repeat one
            keep &= ~np.isin(ids, v.follow)
        # A token that continues along a finished transcript, or starts the next one like a finished one.
        first_tokens = [t[0] for t in state.done | {state.tokens}]
        risky = np.isin(ids, list(self._repeating(state))) | (
            np.isin(ids, v.transcript_types) & np.isin(ids, first_tokens)
        )
        for k in np.flatnonzero(risky & keep):
            keep[k] = self._has_new_completion(self.step(state, int(ids[k])))
        return ids[keep]

    def _repeating(self, state: State) -> set[int]:
        """Next tokens that keep the current transcript a prefix of a finished one."""
        n = len(state.tokens)
        return {t[n] for t in state.done if len(t) > n and t[:n] == state.tokens}

    def _has_new_completion(self, state: State) -> bool:
        """Whether the current transcript can still end unlike all finished ones. Only paths along a
        finished transcript are searched: any other token leaves them all, and the grammar has no dead ends."""
        ids = self._allowed_in[state.slot](self, state)
        follows = np.isin(ids, self.vocab.follow)
        if follows.any() and state.tokens not in state.done:
            return True
        repeating = self._repeating(state)
        if any(int(i) not in repeating for i in ids[~follows]):
            return True
        return any(self._has_new_completion(self.step(state, t)) for t in repeating if t in ids)

    # -------------------------------------------------------- transitions

    def step(self, state: State, token: int) -> State:
        after = self._advance(state, token)
        if (
            after.transcript is not None
            and state.transcript is not None
            and token not in self.vocab.follow_set
        ):
            after = replace(after, tokens=(*state.tokens, token))
        return after

    def _advance(self, state: State, token: int) -> State:
        if token == self.vocab.eos:  # in any slot
            return replace(state, slot=Slot.DONE)
        return self._next_after[state.slot](self, state, token)

    def _after_start(self, state: State, token: int) -> State:
        """`<bos> [ATT]` (or `[ATT]` alone) starts the records; anything else ends the sequence."""
        if token == self.vocab.bos and state.slot is Slot.BOS:
            return replace(state, slot=Slot.TASK)
        return replace(state, slot=Slot.RECORD if token == self.vocab.task else Slot.DONE)

    def _after_done(self, state: State, token: int) -> State:
        return state

    def _after_strand(self, state: State, token: int) -> State:
        return replace(state, slot=Slot.BODY, gene=replace(state.gene, strand=self.vocab.strands[token]))

    def _after_coordinate_token(self, state: State, token: int) -> State:
        if state.first < 0:
            return replace(state, first=token)
        value = self.coords.value(state.first, token)
        return self._written[state.purpose](self, replace(state, first=-1), -1 if value is None else value)

    def _after_record_token(self, state: State, token: int) -> State:
        v = self.vocab
        if token in v.gene_type_set:  # a new gene (from RECORD or after the previous one)
            if state.gene is None:
                prev, kind = state.prev, state.prev_kind
            else:
                prev, kind = (state.gene.start, state.gene.end), (state.gene.strand, state.gene.type_id)
            gene = _Gene(
                pseudo=token in v.pseudo_types,
                type_id=token,
                coding=self.coding_genes and token in v.coding_gene_types,
            )
            return self._coordinate(State(prev=prev, prev_kind=kind, gene=gene), Purpose.GENE_START)
        gene, tx = state.gene, state.transcript
        if token in v.transcript_type_set:
            done = state.done if tx is None else state.done | {state.tokens}
            transcript = _Transcript(gene.start, gene.end, gene.start)
            return replace(state, transcript=transcript, tokens=(token,), done=done)
        if token == v.open_left:
            return replace(state, gene=replace(gene, open_left=True))
        if token == v.open_right:
            return replace(state, gene=replace(gene, open_right=True))
        if token == v.span:
            return self._coordinate(state, Purpose.SPAN_START)
        if token == v.introns:
            return self._coordinate(
                replace(state, transcript=replace(tx, stage=Stage.INTRONS)), Purpose.INTRON_END
            )
        if token == v.cds_all:
            return replace(state, transcript=replace(tx, stage=Stage.CDS), cds=(tx.start, tx.end))
        if token == v.cds:
            return self._coordinate(state, Purpose.CDS_START)
        if token in v.phases:
            return replace(state, transcript=replace(tx, stage=Stage.PHASE))
        if (
            state.slot is Slot.BODY and tx is not None and tx.stage is Stage.INTRONS
        ):  # another intron's first token
            return replace(self._coordinate(state, Purpose.INTRON_END), first=token)
        return replace(state, slot=Slot.DONE)  # unreachable under the mask

    def _coordinate(self, state: State, purpose: Purpose) -> State:
        state = replace(state, slot=Slot.COORD, purpose=purpose, first=-1)
        return replace(state, legal=self._legal_bases[purpose](self, state) & self.tables.addressable)

    # -------------------------------------------------------- where writing a coordinate leads

    def _gene_start_written(self, state: State, value: int) -> State:
        return self._coordinate(replace(state, gene=replace(state.gene, start=value)), Purpose.GENE_END)

    def _gene_end_written(self, state: State, value: int) -> State:
        return replace(state, slot=Slot.STRAND, legal=None, gene=replace(state.gene, end=value))

    def _span_start_written(self, state: State, value: int) -> State:
        transcript = replace(state.transcript, start=value, exon_start=value)
        return self._coordinate(replace(state, transcript=transcript), Purpose.SPAN_END)

    def _span_end_written(self, state: State, value: int) -> State:
        transcript = replace(state.transcript, end=value, stage=Stage.SPAN)
        return replace(state, slot=Slot.BODY, legal=None, transcript=transcript)

    def _intron_end_written(self, state: State, value: int) -> State:
        return self._coordinate(replace(state, pending=value), Purpose.INTRON_NEXT)

    def _intron_next_written(self, state: State, value: int) -> State:
        tx = state.transcript
        transcript = replace(tx, introns=(*tx.introns, (state.pending, value)), exon_start=value)
        return replace(state, slot=Slot.BODY, legal=None, transcript=transcript)

    def _cds_start_written(self, state: State, value: int) -> State:
        return self._coordinate(replace(state, pending=value), Purpose.CDS_END)

    def _cds_end_written(self, state: State, value: int) -> State:
        transcript = replace(state.transcript, stage=Stage.CDS)
        return replace(state, slot=Slot.BODY, legal=None, transcript=transcript, cds=(state.pending, value))

    # -------------------------------------------------------- legal bases of each coordinate

    def _gene_start_legal(self, state: State) -> np.ndarray:
        legal = self._between(max(state.prev[0], 0), self.length - 1)
        if state.gene.coding and self.spliced:
            if self._spliced_starts is None:
                self._spliced_starts = self.chains("+").starts() | self.chains("-").starts()
            legal &= self._spliced_starts
        elif state.gene.coding:
            legal &= self._mask(self._gene_orfs(state)[:, 0])
        return legal

    def _gene_end_legal(self, state: State) -> np.ndarray:
        gene = state.gene
        # Canonical order: a gene starting where the previous one did ends no earlier.
        same_start = gene.start == state.prev[0]
        legal = self._between(
            max(gene.start + 1, state.prev[1]) if same_start else gene.start + 1, self.length
        )
        if gene.coding and self.spliced:
            ends = np.zeros(self.length, bool)
            for strand in self._chain_strands(gene.start):
                ends |= self.chains(strand).ends(gene.start)
            # at least min_coding_length bp, short only where nothing is longer
            long_enough = ends & (np.arange(self.length) - gene.start + 1 >= self.min_coding_length)
            legal &= long_enough if (legal & long_enough).any() else ends
        elif gene.coding:
            orfs = self._gene_orfs(state)
            legal &= self._mask(orfs[orfs[:, 0] == gene.start, 1])
        return legal

    def _span_start_legal(self, state: State) -> np.ndarray:
        return self._between(state.gene.start, state.gene.end)

    def _span_end_legal(self, state: State) -> np.ndarray:
        gene, tx = state.gene, state.transcript
        legal = self._between(tx.start + 1, gene.end + 1)
        if tx.start == gene.start:
            legal[gene.end] = False  # that span is the gene's own: written without <span>
        return legal

    def _intron_end_legal(self, state: State) -> np.ndarray:
        return self._intron_legal(state, state.transcript.exon_start)

    def _intron_next_legal(self, state: State) -> np.ndarray:
        legal, a, tx = np.zeros(self.length, bool), state.pending, state.transcript
        if self._framed(state.gene):
            frame, chain = self._chain_so_far(state)
            chain = np.concatenate([chain, np.arange(tx.exon_start, a + 1)])
            tail = chain[len(chain) - ((a - frame) % 3 + 1) % 3 :]  # the bases after the last whole codon
            return self.chains(state.gene.strand).exon_starts(a, frame, tx.end, tail)
        for left, right_counts in self.tables.splice_pairs(state.gene.strand):
            if left[a + 1]:
                b = np.arange(a + 1 + MIN_INTRON, tx.end + 1)
                legal[b] |= right_counts[b - 1] > right_counts[b - 2]
        return legal

    def _cds_start_legal(self, state: State) -> np.ndarray:
        tx = state.transcript
        return self._mask(self._choices(state).starts((tx.start, tx.end)))

    def _cds_end_legal(self, state: State) -> np.ndarray:
        tx = state.transcript
        return self._mask(self._choices(state).ends((tx.start, tx.end), state.pending))

    def _intron_legal(self, state: State, exon_start: int) -> np.ndarray:
        """Legal last bases `a` of an exon starting at `exon_start` that a canonical intron can follow."""
        n, tx = self.length, state.transcript
        legal = np.zeros(n, bool)
        if state.gene.strand == "." or tx is None:
            return legal
        if self._framed(state.gene):
            frame, chain = self._chain_so_far(state)
            chains = self.chains(state.gene.strand)
            return chains.exon_ends(exon_start, frame, len(chain) == 0, tx.end)
        a = np.arange(exon_start, tx.end - MIN_INTRON)  # room for an intron and a 1-bp last exon
        if len(a) == 0:
            return legal
        for left, right_counts in self.tables.splice_pairs(state.gene.strand):
            # right site at j in [a + 1 + MIN_INTRON - 2, tx.end - 2]: counts over [a + 3, tx.end - 1)
            lo, hi = a + MIN_INTRON - 1, tx.end - 1
            legal[a] |= left[a + 1] & (right_counts[hi] > right_counts[np.minimum(lo, hi)])
        return legal

    def _mask(self, positions: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.length, bool)
        mask[positions] = True
        return mask

    def _between(self, first: int, stop: int) -> np.ndarray:
        """Bases first .. stop - 1 (none when stop <= first)."""
        mask = np.zeros(self.length, bool)
        mask[first:stop] = True
        return mask

    def _strands(self, state: State) -> list[str]:
        """Strands the gene whose coordinates are written may take: for a coding gene those on which its span
        is an ORF; never the previous gene's when that one is alike (same span and type)."""
        gene = state.gene
        if gene.coding and not self.spliced:
            orfs = self._gene_orfs(state)
            on_span = (orfs[:, 0] == gene.start) & (orfs[:, 1] == gene.end)
            return [STRANDS[k] for k in sorted(set(orfs[on_span, 2].tolist()))]
        alike = (gene.start, gene.end) == state.prev and gene.type_id == state.prev_kind[1]
        strands = STRANDS
        if gene.coding:  # spliced: the strands on which a chain runs from one end to the other
            joined = self._chain_strands(gene.start)
            strands = [s for s in joined if self.chains(s).ends(gene.start)[gene.end]]
        return [s for s in strands if not (alike and s == state.prev_kind[0])]

    # -------------------------------------------------------- spliced coding genes

    def chains(self, strand: str) -> SplicedChains:
        if strand not in self._chains:
            self._chains[strand] = SplicedChains(self.tables, strand)
        return self._chains[strand]

    def _chain_strands(self, start: int) -> list[str]:
        """Strands on which a spliced coding gene may begin at `start`: its first codon, or the window's edge."""
        return [s for s in "+-" if start == 0 or self.chains(s).first[start]]

    def _framed(self, gene: _Gene) -> bool:
        """Whether the gene's transcripts are held to whole CDS chains as they are written: a spliced coding
        gene with both ends in the window (a cut one is written as the plain grammar allows)."""
        return gene.coding and self.spliced and not (gene.open_left or gene.open_right)

    def _chain_so_far(self, state: State) -> tuple[int, np.ndarray]:
        """The genomic frame of the current exon's codons, and the bases of the exons before it."""
        tx = state.transcript
        before = tx.exons()[:-1]
        chain = np.concatenate([np.arange(s, e + 1) for s, e in before]) if before else np.zeros(0, np.int64)
        return (tx.exon_start - len(chain)) % 3, chain

    def _gene_orfs(self, state: State) -> np.ndarray:
        """The ORF spans a coding gene may take here, as rows (start, end, strand index into STRANDS):
        addressable, in canonical order, and not a repeat of an alike previous gene."""
        return self.tables.orfs(self.min_coding_length)[self._gene_orf_mask(state)]

    def _gene_orf_mask(self, state: State) -> np.ndarray:
        """Which rows of the window's ORF table `_gene_orfs` keeps."""
        orfs = self.tables.orfs(self.min_coding_length)
        start, end, strand = orfs[:, 0], orfs[:, 1], orfs[:, 2]
        (prev_start, prev_end), (prev_strand, prev_type) = state.prev, state.prev_kind
        keep = (start > prev_start) | ((start == prev_start) & (end >= prev_end))
        if prev_type == state.gene.type_id and prev_strand in "+-":
            keep &= ~((start == prev_start) & (end == prev_end) & (strand == STRANDS.index(prev_strand)))
        return keep

    def _orf_evidence(self) -> np.ndarray:
        """The track's evidence of every row of the window's ORF table, computed once per window."""
        if self._orf_scores is None:
            self._orf_scores = self.evidence.orf_scores(self.tables.orfs(self.min_coding_length))
        return self._orf_scores

    def _is_orf(self, gene: _Gene, open_left: bool, open_right: bool) -> bool:
        """Whether the gene's span is one whole CDS, given which of its edges run off the window."""
        open5, open3 = (open_left, open_right) if gene.strand == "+" else (open_right, open_left)
        extent = (gene.start, gene.end)
        return self._spans((extent,), gene.strand, open5, open3, False).has_whole(extent)

    def _span_possible(self, gene: _Gene) -> bool:
        return gene.end - gene.start >= 2  # some (a, b), a < b, inside the gene but not the gene itself

    def _choices(self, state: State) -> CodingSpans:
        """Legal (cds start, cds end, phase) of the current transcript (cached per exon chain)."""
        gene, tx = state.gene, state.transcript
        exons = tx.exons()
        plus = gene.strand == "+"
        open5 = (
            (gene.open_left and tx.start == 0) if plus else (gene.open_right and tx.end == self.length - 1)
        )
        open3 = (
            (gene.open_right and tx.end == self.length - 1) if plus else (gene.open_left and tx.start == 0)
        )
        return self._spans(exons, gene.strand, open5, open3, gene.pseudo)

    def _spans(
        self, exons: tuple[tuple[int, int], ...], strand: str, open5: bool, open3: bool, pseudo: bool
    ) -> CodingSpans:
        key = (exons, strand, open5, open3, pseudo)
        if key not in self._spans_cache:
            self._spans_cache[key] = (
                ChainSpans(exons) if pseudo else self.tables.coding_spans(exons, strand, open5, open3)
            )
        return self._spans_cache[key]

    # One rule per state: the tokens it allows, where the next token takes it, the bases a coordinate may
    # name and where writing it leads. Plain functions, called with the grammar: tables of bound methods
    # made every Grammar a reference cycle that only the cyclic GC freed, so each batch's windows
    # stayed on the heap among the model's buffers (bench/annotate_memory.py: peak RSS on a 20 Mbp contig
    # 915 MiB before, 703 after).
    _allowed_in = Rules(
        "slot",
        {
            Slot.BOS: _bos_allowed,
            Slot.TASK: _task_allowed,
            Slot.RECORD: _record_allowed,
            Slot.COORD: _coordinate_allowed,
            Slot.STRAND: _strand_allowed,
            Slot.BODY: _body_allowed,
            Slot.DONE: _done_allowed,
        },
    )
    _allowed_at_stage = Rules(
        "stage",
        {
            Stage.HEAD: _structure_allowed,
            Stage.SPAN: _structure_allowed,
            Stage.INTRONS: _structure_allowed,
            Stage.CDS: _phase_allowed,
            Stage.PHASE: _follow,
        },
    )
    _next_after = Rules(
        "slot",
        {
            Slot.BOS: _after_start,
            Slot.TASK: _after_start,
            Slot.RECORD: _after_record_token,
            Slot.COORD: _after_coordinate_token,
            Slot.STRAND: _after_strand,
            Slot.BODY: _after_record_token,
            Slot.DONE: _after_done,
        },
    )
    _legal_bases = Rules(
        "coordinate",
        {
            Purpose.GENE_START: _gene_start_legal,
            Purpose.GENE_END: _gene_end_legal,
            Purpose.SPAN_START: _span_start_legal,
            Purpose.SPAN_END: _span_end_legal,
            Purpose.INTRON_END: _intron_end_legal,
            Purpose.INTRON_NEXT: _intron_next_legal,
            Purpose.CDS_START: _cds_start_legal,
            Purpose.CDS_END: _cds_end_legal,
        },
    )
    _written = Rules(
        "coordinate",
        {
            Purpose.GENE_START: _gene_start_written,
            Purpose.GENE_END: _gene_end_written,
            Purpose.SPAN_START: _span_start_written,
            Purpose.SPAN_END: _span_end_written,
            Purpose.INTRON_END: _intron_end_written,
            Purpose.INTRON_NEXT: _intron_next_written,
            Purpose.CDS_START: _cds_start_written,
            Purpose.CDS_END: _cds_end_written,
        },
    )


# ---------------------------------------------------------------- the logits processor


class BiologyConstrainedLogitsProcessor(LogitsProcessor):
    """Masks, for every generated sequence, the tokens its window's grammar and DNA do not allow.

    One `Grammar` per batch item; rows of `input_ids` are grouped by item (beams and returned sequences
    of item b are rows b * group .. (b + 1) * group - 1, as `generate` lays them out).
    """

    def __init__(self, grammars: Sequence[Grammar], evidence_weight: float = 0.0):
        self.grammars = list(grammars)
        self.evidence_weight = evidence_weight
        self._states: dict[tuple[int, tuple[int, ...]], State] = {}

    @classmethod
    def for_windows(
        cls,
        vocab: GrammarVocab,
        sequences: Sequence[str],
        token_offsets: Sequence | None = None,
        code: GeneticCode | None = None,
        coding_genes: bool = False,
        min_coding_length: int = MIN_CODING_LENGTH,
        track: Sequence[np.ndarray] | None = None,
        track_weight: float = 0.0,
        spliced: bool = False,
    ) -> BiologyConstrainedLogitsProcessor:
        """Constraints for a batch of windows; `token_offsets` (per window) selects pointer coordinates,
        `coding_genes` snaps the spans of coding-capable genes to ORFs, or with `spliced` their exon chains
        (see the module docstring). `track`
        (per window, the track head's log-probabilities) adds `track_weight` x the ORF evidence
        (`TrackEvidence`) to the scores of a coding gene's coordinate tokens."""
        code = code or GeneticCode(11)
        grammars = []
        for i, dna in enumerate(sequences):
            offsets = None if token_offsets is None else np.asarray(token_offsets[i]).reshape(-1, 2)
            coordinates = CoordinateTokens(vocab, offsets, len(dna))
            tables = WindowTables(dna, code, coordinates.addressable())
            evidence = TrackEvidence(track[i][: len(dna)]) if track is not None and track_weight else None
            grammars.append(
                Grammar(vocab, tables, coordinates, coding_genes, min_coding_length, evidence, spliced)
            )
        return cls(grammars, track_weight)

    def state(self, item: int, prefix: Sequence[int]) -> State:
        """The grammar state after `prefix`, advanced from the parent prefix's state when it is known."""
        grammar = self.grammars[item]
        parent = self._states.get((item, tuple(prefix[:-1]))) if prefix else None
        if parent is not None:
            return grammar.step(parent, prefix[-1])
        state = State()
        for token in prefix:
            state = grammar.step(state, token)
        return state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        group = input_ids.shape[0] // len(self.grammars)
        banned = np.ones(tuple(scores.shape), bool)
        guided = []  # (row, allowed ids, the track's evidence for each)
        states = {}
        for row, prefix in enumerate(input_ids.tolist()):
            item = row // group
            key = (item, tuple(prefix))
            if key not in states:
                states[key] = self.state(item, prefix)
            allowed = self.grammars[item].allowed(states[key])
            if allowed is None:
                banned[row] = False
                continue
            allowed = allowed[allowed < scores.shape[1]]
            banned[row, allowed if len(allowed) else [self.grammars[item].vocab.eos]] = False
            if (
                self.evidence_weight
                and (evidence := self.grammars[item].evidence_bias(states[key], allowed)) is not None
            ):
                guided.append((row, allowed, evidence))
        self._states = states
        scores = scores.masked_fill(torch.from_numpy(banned).to(scores.device), -float("inf"))
        for row, allowed, evidence in guided:
            # The evidence re-weighs the coordinate choices but keeps their total probability, so a beam that
            # writes a gene pays nothing for it next to one that stops.
            ids = torch.from_numpy(allowed).to(scores.device)
            before = scores[row, ids]
            after = before + self.evidence_weight * torch.from_numpy(evidence).to(scores.device, scores.dtype)
            scores[row, ids] = after - after.logsumexp(0) + before.logsumexp(0)
        return scores
