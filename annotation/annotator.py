"""Annotating DNA with a GFF-MoE model: windows -> constrained generation -> genes, stitched per contig.

`annotate_genome` (a FASTA file) and `annotate_records` (any (seqid, sequence) records) tile each contig
into windows at the taxon's length limit (the dataset's own table) with overlap, annotate them in batches
with `WindowAnnotator` (cached `generate`, optionally beam search, under the biology constraints of
`constraints`, each window also read as its reverse complement), and stitch the windows' genes back into
one annotation per contig (`windows`), each gene scored by the mean log-probability of its tokens.
Evidence genes (`read_hints`, a GFF3/GTF file) are clipped to each window they touch and read by the
encoder after the DNA (`tokenization.encode_source`).

Used by annotate.py (the CLI) and pipeline_gffmoe.py (the transformers pipeline). The module also works
copied flat into a saved model directory (hub_code.py), where its imports are relative.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from os import PathLike

import numpy as np
import torch
from Bio.Seq import reverse_complement
from tqdm.auto import tqdm

from core.errors import InputError
from core.features import Gene
from core.taxa import TAXA
from genome_io.fasta import read_fasta
from genome_io.files import numbered_lines
from genome_io.gff import GffReadResult, read_gff
from genome_io.gff3_writer import unescape_seqid
from tokenization.codec import CodecError, decode, encode
from tokenization.coordinates import NumberCoordinates, PointerCoordinates
from tokenization.tokenizer import TokenizerError, encode_source, ids_to_tokens, tokens_to_ids
from tokenization.track import BOUNDARY, REGION, TRACK_COLUMNS

from .constraints import MIN_CODING_LENGTH, BiologyConstrainedLogitsProcessor, GeneticCode, GrammarVocab
from .windows import (
    Prediction,
    StitchStats,
    Window,
    covered_bases,
    gap_bases,
    place,
    same_locus,
    stitch,
    tile,
)

GENETIC_CODES = {"prokaryotes": 11}  # every other taxon: the standard code 1
OVERLAP_FRACTION = 0.2  # of the window: genes shorter than this are always seen whole by some window
TOKENS_PER_KB = 40  # generation budget: ~5 prokaryote genes/kb would be 40 tokens (real density ~1/kb)
# Weight of the track's ORF evidence on a coding gene's coordinates (a model with a track head). Off by
# default: on the demo's 400-step model it lowered gene 3' F1 (bench/supervision.py, README).
TRACK_WEIGHT = 0.0
TRACK_WIDTHS = [len(REGION), len(BOUNDARY)] * (len(TRACK_COLUMNS) // 2)  # logits per track column


@dataclass
class AnnotationStats:
    windows: int = 0
    bases: int = 0  # read by the windows (overlaps counted once per window)
    sequence_bases: int = 0  # every base of every contig = covered_bases + gap_bases
    covered_bases: int = 0  # inside at least one window
    gap_bases: int = 0  # in long N runs (annotation.windows.MIN_N_GAP), which no window reads
    seconds: float = 0.0
    decode_errors: int = 0
    stitch: StitchStats = field(default_factory=StitchStats)
    scores: dict[str, list[float]] = field(default_factory=dict)  # per seqid, parallel to its genes
    unreadable_hints: Counter = field(default_factory=Counter)  # reason -> hint genes left out
    empty_sequences: list[str] = field(default_factory=list)  # records without bases: nothing to annotate
    coding: dict[str, np.ndarray] = field(default_factory=dict)  # per seqid, with `coding_track` (see there)

    @property
    def bp_per_second(self) -> float:
        return self.bases / self.seconds if self.seconds else 0.0

    def summary(self, genes_by_seqid: dict[str, list[Gene]]) -> str:
        genes = [g for gs in genes_by_seqid.values() for g in gs]
        strands = Counter(g.strand for g in genes)
        mean = sum(g.end - g.start + 1 for g in genes) / len(genes) if genes else 0.0
        return (
            f"{len(genes)} genes (+ {strands['+']}, - {strands['-']}, . {strands['.']}), mean length {mean:.0f} bp; "
            f"{self.windows} windows, {self.bases:,} bp in {self.seconds:.1f} s ({self.bp_per_second:,.0f} bp/s); "
            f"{self.covered_bases:,} of {self.sequence_bases:,} bp in windows, {self.gap_bases:,} in N runs; "
            f"stitching: {self.stitch.joined} joined, {self.stitch.duplicates} duplicates, "
            f"{self.stitch.dropped_pieces} cut pieces dropped; {self.decode_errors} malformed records"
            + "".join(f"; {n} hints unreadable: {why}" for why, n in sorted(self.unreadable_hints.items()))
            + (
                f"; {len(self.empty_sequences)} empty sequence(s) skipped: {', '.join(self.empty_sequences[:5])}"
                if self.empty_sequences
                else ""
            )
        )


class WindowAnnotator:
    """Annotates batches of windows with one model: encode, generate (constrained), decode, score.

    `both_strands` (the default) reads every window twice, as given and as its reverse complement, so that
    each strand is also read 5' to 3'. The decoder writes a gene's left coordinate first: on the + strand
    any start codon of the right ORF then fixes the 3' end, on the - strand the left coordinate is the stop
    codon itself, which a small model finds less often; on the reverse complement those genes are + genes.
    The genes of both reads are merged; where the two reads found one locus (`same_locus`), the copy with the
    higher score stays. It doubles the decoding.
    """

    def __init__(
        self,
        model,
        tokenizer,
        genetic_code: int = 11,
        constraints: bool = True,
        num_beams: int = 1,
        max_new_tokens: int | None = None,
        coding_genes: bool = False,
        min_coding_length: int = MIN_CODING_LENGTH,
        both_strands: bool = True,
        track_weight: float = 0.0,
        keep_coding: bool = False,
    ):
        self.model, self.tokenizer = model.eval(), tokenizer
        # Track-guided coordinates need a model with a track head (an older one is decoded as before).
        self.track_weight = track_weight if hasattr(model, "track_head") else 0.0
        # `keep_coding`: after each call, `coding[i]` is window i's coding probability per base [bases, 2]
        # (+ strand, - strand) from the track head.
        self.keep_coding = keep_coding and hasattr(model, "track_head")
        self.coding: list[np.ndarray] = []
        self.both_strands = both_strands
        self.vocab = GrammarVocab.from_tokenizer(tokenizer)
        self.code = GeneticCode(genetic_code)
        self.constraints, self.num_beams, self.max_new_tokens = constraints, num_beams, max_new_tokens
        self.coding_genes, self.min_coding_length = coding_genes, min_coding_length
        self.pointers = getattr(model.config, "coordinate_scheme", "pointer") == "pointer"

    @torch.no_grad()
    def __call__(
        self, windows: list[Window], hints: list[list[Gene]] | None = None
    ) -> tuple[list[list[Gene]], list[list[float]], int]:
        """Window-level genes and their scores per window, plus the number of malformed records.

        `hints[i]`: evidence genes of window i in its coordinates (`window_hints`), read by the encoder.
        """
        hints = hints or [None] * len(windows)
        if not self.both_strands:
            return self._generate(windows, hints)
        # (the reverse-complement reads' tracks are dropped below: the forward read's covers both strands)
        flipped = [
            replace(
                w, sequence=reverse_complement(w.sequence), open_left=w.open_right, open_right=w.open_left
            )
            for w in windows
        ]
        flipped_hints = [
            h and [g.mirror(len(w.sequence)) for g in h] for w, h in zip(windows, hints, strict=True)
        ]
        genes, scores, errors = self._generate(windows + flipped, hints + flipped_hints)
        n = len(windows)
        for i, window in enumerate(windows):
            mirrored = [g.mirror(len(window.sequence)) for g in genes[n + i]]
            genes[i], scores[i] = merge_reads(genes[i], scores[i], mirrored, scores[n + i])
        self.coding = self.coding[:n]
        return genes[:n], scores[:n], errors

    def _generate(
        self, windows: list[Window], hints: list[list[Gene] | None]
    ) -> tuple[list[list[Gene]], list[list[float]], int]:
        """One constrained `generate` over the windows as given: genes, their scores, malformed records."""
        sources = [
            encode_source(self.tokenizer, w.sequence, hints=h) for w, h in zip(windows, hints, strict=True)
        ]
        length = max(len(s["input_ids"]) for s in sources)
        device = self.model.device

        def padded(key, value):
            return torch.tensor([s[key] + [value] * (length - len(s[key])) for s in sources], device=device)

        inputs = {
            "input_ids": padded("input_ids", self.tokenizer.pad_token_id),
            "attention_mask": padded("attention_mask", 0),
            "token_offsets": padded("token_offsets", (0, 0)),
        }
        token_offsets = inputs["token_offsets"]
        track = None
        if (self.constraints and self.track_weight) or self.keep_coding:  # one encoder pass for both
            inputs["encoder_outputs"] = self.model.get_encoder()(**inputs)
            track = self.track_log_probs(inputs["encoder_outputs"].last_hidden_state, inputs)
        if self.keep_coding:
            self.coding = [
                coding_probability(t[: len(w.sequence)]) for t, w in zip(track, windows, strict=True)
            ]
        processors = []
        if self.constraints:
            processors.append(
                BiologyConstrainedLogitsProcessor.for_windows(
                    self.vocab,
                    [w.sequence for w in windows],
                    token_offsets.cpu().numpy() if self.pointers else None,
                    self.code,
                    self.coding_genes,
                    self.min_coding_length,
                    track,
                    self.track_weight,
                )
            )
        budget = self.max_new_tokens or max(64, TOKENS_PER_KB * max(len(w.sequence) for w in windows) // 1000)
        out = self.model.generate(
            **inputs,
            logits_processor=processors,
            num_beams=self.num_beams,
            do_sample=False,
            max_new_tokens=budget,
            max_length=None,
            output_scores=True,
            return_dict_in_generate=True,
        )
        log_probs = token_log_probs(out)
        genes, scores, errors = [], [], 0
        for i, window in enumerate(windows):
            scheme = (
                PointerCoordinates(sources[i]["token_offsets"], len(self.tokenizer))
                if self.pointers
                else NumberCoordinates(len(window.sequence))
            )
            ids = out.sequences[i].tolist()
            # out.scores covers the generated tokens only: align the log-probs with ids[-len:].
            step_scores = log_probs[i].tolist()
            offset = len(ids) - len(step_scores)
            window_genes, window_scores, window_errors = self._records(ids, step_scores, offset, scheme)
            genes.append(window_genes)
            scores.append(window_scores)
            errors += window_errors
        return genes, scores, errors

    def track_log_probs(self, encoder_states: torch.Tensor, inputs: dict) -> list:
        """Per window, the track head's log-probabilities [bases, 26] (each track column normalised alone)."""
        logits = self.model.track_logits(encoder_states, inputs["input_ids"], inputs["token_offsets"]).float()
        log_probs = torch.cat([part.log_softmax(-1) for part in logits.split(TRACK_WIDTHS, dim=-1)], dim=-1)
        return list(log_probs.cpu().numpy())

    def _records(self, ids: list[int], log_probs: list[float], offset: int, scheme):
        """Decode each gene record on its own, so that each gets the mean log-probability of its tokens.

        When the token budget ran out, the last record may be cut anywhere, even where it reads as complete
        (`<cds_all>` without the phase token that followed, a header without its open flags): it is kept
        with its transcripts that another transcript's type token follows, and dropped when it has none.
        """
        cut_by_budget = self.vocab.eos not in ids[offset:]
        if not cut_by_budget:
            ids = ids[: ids.index(self.vocab.eos, offset)]
        starts = [i for i in range(offset, len(ids)) if ids[i] in self.vocab.gene_type_set] + [len(ids)]
        genes, scores, errors = [], [], 0
        for begin, end in zip(starts, starts[1:], strict=False):
            record = ids[begin:end]
            if cut_by_budget and end == len(ids):
                transcripts = [k for k, i in enumerate(record) if i in self.vocab.transcript_type_set]
                if len(transcripts) < 2:  # not one whole transcript
                    errors += 1
                    continue
                record = record[: transcripts[-1]]
            result = decode(ids_to_tokens(self.tokenizer, record), scheme)
            errors += len(result.errors)
            # Scored over the tokens decoded (a cut record's dropped tail does not count).
            finite = [p for p in log_probs[begin - offset : begin - offset + len(record)] if math.isfinite(p)]
            for gene in result.genes:
                genes.append(gene)
                scores.append(sum(finite) / len(finite) if finite else 0.0)
        return genes, scores, errors


def coding_probability(log_probs: np.ndarray) -> np.ndarray:
    """Per base, the track's probability of CDS (any codon position) on the + and the - strand [bases, 2]."""
    columns = np.cumsum([0, *TRACK_WIDTHS[:-1]])
    cds = [REGION.index(name) for name in ("cds0", "cds1", "cds2")]
    return np.stack([np.exp(log_probs[:, columns[2 * k] + cds]).sum(-1) for k in (0, 1)], axis=-1)


def merge_reads(
    genes: list[Gene], scores: list[float], other_genes: list[Gene], other_scores: list[float]
) -> tuple[list[Gene], list[float]]:
    """The genes of two reads of one window (both in its coordinates), a locus found by both reads once:
    greedy by score, a gene is dropped when the other read's accepted genes hold the same locus."""
    candidates = [(s, 0, g) for g, s in zip(genes, scores, strict=True)]
    candidates += [(s, 1, g) for g, s in zip(other_genes, other_scores, strict=True)]
    accepted: list[tuple[float, int, Gene]] = []
    for score, read, gene in sorted(candidates, key=lambda c: -c[0]):
        if not any(r != read and same_locus(gene, g) for _, r, g in accepted):
            accepted.append((score, read, gene))
    accepted.sort(key=lambda c: c[2])
    return [g for _, _, g in accepted], [s for s, _, _ in accepted]


def token_log_probs(out) -> torch.Tensor:
    """Log-probability of each generated token, [rows, generated], NaN after a returned beam had finished.

    Follows `compute_transition_scores`, which does not fit: it reshapes the scores by `config.vocab_size`, but
    ours carry pointer slots after the vocabulary. Beam search runs more steps than the returned beams keep:
    `beam_indices` [rows, generated] names the row of `out.scores[t]` each token came from (-1 once finished).
    """
    beams = getattr(out, "beam_indices", None)
    if beams is None:  # greedy search: sequence i is row i of every step
        beams = torch.arange(len(out.sequences), device=out.sequences.device)[:, None]
        beams = beams.expand(-1, len(out.scores))
    steps = beams.shape[1]
    tokens = out.sequences[:, out.sequences.shape[1] - steps :]
    rows = beams.clamp(min=0)
    log_probs = [out.scores[t].float().log_softmax(-1)[rows[:, t], tokens[:, t]] for t in range(steps)]
    return torch.stack(log_probs, 1).masked_fill(beams < 0, math.nan)


def read_hints(path: str | PathLike, seq_lengths: dict[str, int]) -> GffReadResult:
    """Evidence genes (1-based, per seqid) from a GFF3/GTF file, as AUGUSTUS reads hints.

    A seqid missing from the FASTA is an InputError at its line: hints for another assembly are a mistake,
    not evidence to skip. Genes the GFF reader drops are counted in the result's report.
    """
    for number, line in numbered_lines(path):
        if line.startswith("##FASTA") or line.startswith(">"):
            break
        if line.strip() and not line.startswith("#"):
            seqid = unescape_seqid(line.split("\t", 1)[0])
            if seqid not in seq_lengths:
                raise InputError(path, number, f"hint seqid {seqid!r} is not in the FASTA file")
    return read_gff(path, seq_lengths)


def readable_hints(hints: dict[str, list[Gene]], tokenizer, unreadable: Counter) -> dict[str, list[Gene]]:
    """The hint genes the tokenizer can spell; the others are counted in `unreadable` by reason."""
    readable = {}
    for seqid, genes in hints.items():
        readable[seqid] = []
        for gene in genes:
            try:  # at the window origin: the coordinates a window gives the encoder
                tokens_to_ids(tokenizer, encode([gene.shift(-gene.start)], NumberCoordinates()))
            except (CodecError, TokenizerError) as err:
                unreadable[str(err).split(": ")[-1]] += 1
                continue
            readable[seqid].append(gene)
    return readable


def window_hints(window: Window, genes: Iterable[Gene]) -> list[Gene]:
    """Contig-level (1-based) hint genes seen by `window`, in its 0-based coordinates, cut edges open
    (the clip and shift the dataset builder gives the training targets and hints)."""
    first = window.start + 1  # the window's first base, 1-based
    clipped = (gene.clip(first, window.end) for gene in genes)
    return [gene.shift(-first) for gene in clipped if gene is not None]


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def annotate_genome(
    model, tokenizer, fasta_path: str | PathLike, taxon: str = "prokaryotes", **options
) -> tuple[dict[str, list[Gene]], dict[str, int], AnnotationStats]:
    """Annotate every contig of a FASTA file (plain or gzip); options and result as `annotate_records`."""
    return annotate_records(model, tokenizer, read_fasta(fasta_path), taxon, **options)


def annotate_records(
    model,
    tokenizer,
    records: Iterable[tuple[str, str]],
    taxon: str = "prokaryotes",
    batch_size: int = 4,
    num_beams: int = 1,
    constraints: bool = True,
    genetic_code: int | None = None,
    coding_genes: bool | None = None,
    min_coding_length: int = MIN_CODING_LENGTH,
    both_strands: bool = True,
    window_size: int | None = None,
    overlap: int | None = None,
    max_new_tokens: int | None = None,
    progress: bool = True,
    hints: dict[str, list[Gene]] | None = None,
    track_weight: float = TRACK_WEIGHT,
    coding_track: bool = False,
) -> tuple[dict[str, list[Gene]], dict[str, int], AnnotationStats]:
    """Annotate (seqid, sequence) records: (genes per seqid, 1-based; sequence lengths; statistics).

    `hints` (seqid -> 1-based evidence genes, e.g. `read_hints(...).genes_by_seqid`) are given to the
    encoder of every window they touch (`[HIT]` records after the DNA, `tokenization.encode_source`).

    `stats.scores[seqid]` runs parallel to `genes_by_seqid[seqid]` (mean token log-probability per gene).
    `coding_genes` (default: on for prokaryotes, whose genes are single ORFs) snaps the spans of `<gene>`
    records to ORFs of at least `min_coding_length` bp as they are decoded (`constraints`). `both_strands`
    also reads each window's reverse complement and merges the two reads (`WindowAnnotator`; twice the
    decoding). `track_weight` weighs the model's per-base track (a model with a track head) in a coding
    gene's coordinates (`constraints.TrackEvidence`). `coding_track` keeps its per-base coding probability
    in `stats.coding[seqid]` ([length, 2]: + and - strand, the mean of the windows that read a base; NaN
    where none did).
    """
    if coding_track and not hasattr(model, "track_head"):
        raise ValueError("the model has no track head (trained without --track_loss_weight): no coding track")
    if taxon not in TAXA:
        raise ValueError(f"unknown taxon {taxon!r}; choose from {', '.join(TAXA)}")
    size = window_size or TAXA[taxon][0]
    overlap = int(size * OVERLAP_FRACTION) if overlap is None else overlap
    code = genetic_code or GENETIC_CODES.get(taxon, 1)
    coding_genes = taxon == "prokaryotes" if coding_genes is None else coding_genes
    annotator = WindowAnnotator(
        model,
        tokenizer,
        code,
        constraints=constraints,
        num_beams=num_beams,
        max_new_tokens=max_new_tokens,
        coding_genes=coding_genes,
        min_coding_length=min_coding_length,
        both_strands=both_strands,
        track_weight=track_weight,
        keep_coding=coding_track,
    )
    stats = AnnotationStats()
    coding_sums: dict[str, np.ndarray] = {}
    coding_counts: dict[str, np.ndarray] = {}
    hints = readable_hints(hints, tokenizer, stats.unreadable_hints) if hints else None
    seq_lengths: dict[str, int] = {}
    windows: dict[str, list[Window]] = {}
    predictions: dict[str, list[Prediction]] = {}
    started = time.perf_counter()

    def all_windows() -> Iterator[tuple[int, Window]]:
        for seqid, sequence in records:
            seq_lengths[seqid] = len(sequence)
            if not sequence:
                stats.empty_sequences.append(seqid)
            windows[seqid] = tile(seqid, sequence, size, overlap)
            stats.sequence_bases += len(sequence)
            stats.covered_bases += covered_bases(windows[seqid])
            stats.gap_bases += gap_bases(sequence)
            predictions[seqid] = []
            if coding_track:
                coding_sums[seqid] = np.zeros((len(sequence), 2), np.float32)
                coding_counts[seqid] = np.zeros((len(sequence), 1), np.float32)
            yield from enumerate(windows[seqid])

    bar = tqdm(desc="annotating", unit="bp", unit_scale=True, disable=not progress)
    for batch in batched(all_windows(), batch_size):
        batch_windows = [w for _, w in batch]
        batch_hints = [window_hints(w, hints.get(w.seqid, ())) for w in batch_windows] if hints else None
        genes, scores, errors = annotator(batch_windows, batch_hints)
        stats.decode_errors += errors
        for (index, window), window_genes, window_scores in zip(batch, genes, scores, strict=True):
            predictions[window.seqid] += place(window, index, window_genes, window_scores)
            stats.windows += 1
            stats.bases += len(window.sequence)
        if coding_track:
            for window, coding in zip(batch_windows, annotator.coding, strict=True):
                coding_sums[window.seqid][window.start : window.end] += coding
                coding_counts[window.seqid][window.start : window.end] += 1
        bar.update(sum(len(w.sequence) for _, w in batch))
        bar.set_postfix(windows=stats.windows)
    bar.close()

    genes_by_seqid = {}
    for seqid in seq_lengths:
        kept = stitch(predictions[seqid], windows[seqid], stats.stitch)
        genes_by_seqid[seqid] = [p.gene for p in kept]
        stats.scores[seqid] = [p.score for p in kept]
    for seqid, sums in coding_sums.items():
        with np.errstate(invalid="ignore"):  # 0 / 0: a base no window read
            stats.coding[seqid] = sums / coding_counts[seqid]
    stats.seconds = time.perf_counter() - started
    return genes_by_seqid, seq_lengths, stats
