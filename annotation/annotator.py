"""Annotating DNA with a GFF-MoE model: windows -> constrained generation -> genes, stitched per contig.

`annotate_genome` (a FASTA file), `annotate_records` (any (seqid, sequence) records) and `annotate_contigs`
(the same, streamed: each contig's annotation as soon as it is done) tile each contig into windows at the
taxon's length limit (the dataset's own table) with overlap, annotate them in batches with `WindowAnnotator`
(cached `generate`, optionally beam search, under the biology constraints of `constraints`, each window
also read as its reverse complement), and stitch the windows' genes back into one annotation per contig
(`windows`), each gene scored by the mean log-probability of its tokens.
Evidence genes (`read_hints`, a GFF3/GTF file) are clipped to each window they touch and read by the
encoder after the DNA (`tokenization.encode_source`).

How to annotate is one `AnnotationOptions` object, whose fields are annotate.py's flags (their defaults and
help) and the pipeline's call options. `annotate_contigs` runs in streaming stages, one generator and one
small result per contig each: `tile_records` -> `decode_windows` -> `stitch_contigs`, counting into one
`AnnotationStats`; under `accelerate launch` its processes share the windows (`decode_windows`).

Used by annotate.py (the CLI) and pipeline_gffmoe.py (the transformers pipeline). The module also works
copied flat into a saved model directory (hub_code.py), where its imports are relative.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, fields, replace
from functools import partial
from multiprocessing import get_context
from os import PathLike

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from Bio.Data.CodonTable import unambiguous_dna_by_id
from Bio.Seq import reverse_complement
from tqdm.auto import tqdm

from core.errors import InputError
from core.features import Gene
from core.orfs import open_reading_frames
from core.taxa import TAXA
from genome_io.fasta import read_fasta
from genome_io.files import numbered_lines
from genome_io.gff import GffReadResult, read_gff
from genome_io.gff3_writer import unescape_seqid
from tokenization.codec import CodecError, decode, encode
from tokenization.coordinates import NumberCoordinates, PointerCoordinates
from tokenization.tokenizer import TokenizerError, encode_source, ids_to_tokens, tokens_to_ids
from tokenization.track import BOUNDARY, REGION, TRACK_COLUMNS

from .constraints import (
    MIN_CODING_LENGTH,
    BiologyConstrainedLogitsProcessor,
    GeneticCode,
    GrammarVocab,
)
from .starts import pick_start, start_weight_vector
from .windows import (
    LONG_ORF,
    LONG_ORF_HANDICAP,
    MAX_OVERLAP,
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
DEFAULT_TAXON = "prokaryotes"  # for a model that does not say what it was trained on
# Of the window: genes up to this long are always seen whole by some window. A fifth left the demo's many
# 1-3 kb genes cut in every 3 kb window; a half read each base twice for no better score than a third.
OVERLAP_FRACTION = 1 / 3
# Beams for spliced genes: on held-out S. pombe, exon F1 greedy / 2 / 4 / 8 beams 0.05 / 0.21 / 0.19 / 0.16 (a model
# trained on CDS chains), 0.11 / 0.16 / 0.19 / - (on whole transcripts); 0.42 / 0.43 / 0.72 / - (an earlier
# eukaryote demo model on its held-out region). README, "A real eukaryote".
EUKARYOTE_BEAMS = 4
TOKENS_PER_KB = 40  # generation budget: ~5 prokaryote genes/kb would be 40 tokens (real density ~1/kb)
# Weight of the track's ORF evidence on a coding gene's coordinates (a model with a track head). Off by
# default: on the demo's 400-step model it lowered gene 3' F1 (bench/supervision.py, README).
TRACK_WEIGHT = 0.0
TRACK_WIDTHS = [len(REGION), len(BOUNDARY)] * (len(TRACK_COLUMNS) // 2)  # logits per track column


class OptionError(InputError, ValueError):
    """A bad `AnnotationOptions` value, in one line naming the option: reported as every input error is (a
    CLI exits 2), and a ValueError to the Python code that passed it."""


@dataclass(frozen=True)
class _Rule:
    """Which values an option accepts, and what they must be (for its error)."""

    accepts: Callable[[object], bool]
    expected: str


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _at_least(low: int) -> _Rule:
    return _Rule(lambda value: _is_integer(value) and value >= low, f"an integer >= {low}")


_BOOLEAN = _Rule(lambda value: isinstance(value, bool), "True or False")
_TAXON = _Rule(lambda value: isinstance(value, str) and value in TAXA, f"one of {', '.join(TAXA)}")
_TRANSLATION_TABLE = _Rule(
    lambda value: _is_integer(value) and value in unambiguous_dna_by_id, "an NCBI table"
)
_WEIGHT = _Rule(
    lambda value: isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf,
    "a number >= 0",
)


def _check(name: str, value, rule: _Rule) -> None:
    if not rule.accepts(value):
        raise OptionError(name, None, f"expected {rule.expected}, got {value!r}")


def _option(default, rule: _Rule, help: str):
    return field(default=default, metadata={"rule": rule, "help": help})


@dataclass(frozen=True)
class AnnotationOptions:
    """How to annotate, in one place: each option's default, rule and help (annotate.py builds its flags from
    them), read by the `gff-annotation` pipeline, `annotate_records` and `WindowAnnotator`. None means the
    model's or the taxon's default (`for_model` fills in what the model records; `window_bp`, `overlap_bp`,
    `translation_table`, `beams` resolve the rest). A bad value is refused when the options are
    built (`OptionError`)."""

    taxon: str | None = _option(
        None,
        _TAXON,
        f"sets window size, genetic code and coding-gene mode (default: the taxon the model was trained on, "
        f"when it was one, else {DEFAULT_TAXON})",
    )
    window_size: int | None = _option(
        None,
        _at_least(1),
        "bp per window (default: the window length the model was trained on, else the taxon's limit)",
    )
    overlap: int | None = _option(
        None,
        _at_least(0),
        "bp shared by neighbouring windows (default a third of the window)",
    )
    batch_size: int = _option(8, _at_least(1), "windows per generate call")
    num_beams: int | None = _option(
        None,
        _at_least(1),
        f"beam search width (1 = greedy; default: 1 for prokaryotes, {EUKARYOTE_BEAMS} for the other taxa, "
        "where it measured best on S. pombe: README)",
    )
    max_new_tokens: int | None = _option(None, _at_least(1), "generation budget per window")
    constraints: bool = _option(
        True, _BOOLEAN, "biology-constrained decoding (off: plain decoding, an ablation)"
    )
    genetic_code: int | None = _option(
        None, _TRANSLATION_TABLE, "NCBI translation table (default: 11 prokaryotes, else 1)"
    )
    coding_genes: bool = _option(
        True,
        _BOOLEAN,
        "coding-gene mode: hold each <gene> to an open reading frame while it is decoded, its span in "
        "prokaryotes, its exon chain (start codon, introns, stop codon) in the other taxa",
    )
    min_coding_length: int = _option(MIN_CODING_LENGTH, _at_least(1), "bp of a snapped gene, stop included")
    track_weight: float = _option(
        TRACK_WEIGHT,
        _WEIGHT,
        "weight of the model's per-base gene-structure track in a coding gene's coordinates: each ORF the "
        "decoder may point to scores the track's mean log-probability of its codon positions plus those of "
        f"its start and stop codons (models trained with a track head, prokaryotes' single-ORF genes only: "
        f"a spliced gene's coordinates are not weighed; 0: off; default {TRACK_WEIGHT:g})",
    )
    choose_starts: bool | None = _option(
        None,
        _BOOLEAN,
        "move each coding gene's start to the best start codon of its ORF, before overlapping genes are "
        "weighed: by the model's start scorer (config `start_weights`, which train.py fits on the training "
        "genes), or for a model without one the longest start, the first in frame after the previous stop "
        "(default: on in coding-gene mode, where the decoder's own starts are the worst of the three)",
    )
    max_gene_overlap: int | None = _option(
        None,
        _at_least(0),
        f"bp two coding genes may overlap; of two that overlap more, the one with more coding bases is kept "
        f"(default: {MAX_OVERLAP} in coding-gene mode, where a small model's false calls are mostly ORFs across "
        "a real gene; no limit otherwise)",
    )
    long_orfs: int | None = _option(
        None,
        _at_least(0),
        "bp from which an ORF that no window wrote is called as a gene, displacing the calls it overlaps "
        f"when {LONG_ORF_HANDICAP:g}x longer than each (default: {LONG_ORF}, the ORF floor's, in coding-gene "
        "mode, where a small model misses long genes and writes short ORFs inside them; 0: off)",
    )
    both_strands: bool = _option(
        True,
        _BOOLEAN,
        "read every window twice, as given and as its reverse complement (where its - genes are + genes), "
        "and merge the two reads, one copy per locus (default; twice the decoding time)",
    )

    def __post_init__(self):
        for option in fields(self):
            value, rule = getattr(self, option.name), option.metadata["rule"]
            if not (value is None and option.default is None):  # None: the taxon's default
                _check(option.name, value, rule)
        if self.overlap_bp >= self.window_bp:
            raise OptionError(
                "overlap", None, f"{self.overlap} bp must be below the window size ({self.window_bp} bp)"
            )

    def for_model(self, config) -> AnnotationOptions:
        """These options, with what was left to its default taken from the model where it says: the taxon it
        was trained on (its config's `training_taxa`, when one) and its training window (`training_window_bp`);
        both recorded by train.py."""
        taxa = getattr(config, "training_taxa", None) or []
        window = getattr(config, "training_window_bp", None)
        given = {
            "taxon": self.taxon or (taxa[0] if len(taxa) == 1 else None),
            "window_size": self.window_size or window,
        }
        return replace(self, **given)

    @property
    def taxon_name(self) -> str:
        return self.taxon or DEFAULT_TAXON

    @property
    def window_bp(self) -> int:
        return self.window_size or TAXA[self.taxon_name][0]

    @property
    def overlap_bp(self) -> int:
        return int(self.window_bp * OVERLAP_FRACTION) if self.overlap is None else self.overlap

    @property
    def translation_table(self) -> int:
        return self.genetic_code or GENETIC_CODES.get(self.taxon_name, 1)

    @property
    def gene_overlap_limit(self) -> int | None:
        if self.max_gene_overlap is not None:
            return self.max_gene_overlap
        return MAX_OVERLAP if self.coding_genes else None

    @property
    def long_orf_bp(self) -> int:
        if self.long_orfs is not None:
            return self.long_orfs
        return LONG_ORF if self.coding_genes and self.constraints else 0

    @property
    def stitch_min_length(self) -> int:
        """bp under which stitching drops a coding gene (`windows.stitch`): in coding-gene mode, as decoding."""
        return self.min_coding_length if self.coding_genes and self.constraints else 0

    @property
    def chooses_starts(self) -> bool:
        if self.choose_starts is not None:
            return self.choose_starts
        return self.coding_genes and self.constraints

    @property
    def spliced_genes(self) -> bool:
        """Whether a coding gene may be spliced: coding-gene mode then holds its exon chain, not its span, to
        an open reading frame (`annotation.constraints.SplicedChains`). Every taxon but prokaryotes."""
        return self.taxon_name != "prokaryotes"

    @property
    def beams(self) -> int:
        return self.num_beams or (EUKARYOTE_BEAMS if self.spliced_genes else 1)


@dataclass
class AnnotationStats:
    """What a run counted; the stages of `annotate_contigs` add to it as each contig goes by."""

    windows: int = 0
    bases: int = 0  # read by the windows (overlaps counted once per window)
    sequence_bases: int = 0  # every base of every contig = covered_bases + gap_bases
    covered_bases: int = 0  # inside at least one window
    gap_bases: int = 0  # in long N runs (annotation.windows.MIN_N_GAP), which no window reads
    seconds: float = 0.0
    decode_errors: int = 0
    stitch: StitchStats = field(default_factory=StitchStats)
    strands: Counter = field(default_factory=Counter)  # genes kept, by strand
    gene_bases: int = 0  # the kept genes' lengths, summed
    unreadable_hints: Counter = field(default_factory=Counter)  # reason -> hint genes left out
    empty_sequences: list[str] = field(default_factory=list)  # records without bases: nothing to annotate
    # `annotate_records` only (a stream's contigs carry their own): per seqid, parallel to its genes; and
    # with `coding_track`, the per-base coding probability (see there).
    scores: dict[str, list[float]] = field(default_factory=dict)
    coding: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def bp_per_second(self) -> float:
        return self.bases / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        genes = sum(self.strands.values())
        mean = self.gene_bases / genes if genes else 0.0
        strands = self.strands
        return (
            f"{genes} genes (+ {strands['+']}, - {strands['-']}, . {strands['.']}), mean length {mean:.0f} bp; "
            f"{self.windows} windows, {self.bases:,} bp in {self.seconds:.1f} s ({self.bp_per_second:,.0f} bp/s); "
            f"{self.covered_bases:,} of {self.sequence_bases:,} bp in windows, {self.gap_bases:,} in N runs; "
            f"stitching: {self.stitch.joined} joined, {self.stitch.duplicates} duplicates, "
            f"{self.stitch.dropped_pieces} cut pieces dropped, {self.stitch.overlapping} genes overlapping a "
            f"longer one dropped, {self.stitch.moved_starts} starts moved, {self.stitch.long_orfs} long ORFs added, "
            f"{self.stitch.short_genes} short genes dropped; "
            f"{self.decode_errors} malformed records"
            + "".join(f"; {n} hints unreadable: {why}" for why, n in sorted(self.unreadable_hints.items()))
            + (
                f"; {len(self.empty_sequences)} empty sequence(s) skipped: {', '.join(self.empty_sequences[:5])}"
                if self.empty_sequences
                else ""
            )
        )


class WindowAnnotator:
    """Annotates batches of windows with one model: encode, generate (constrained), decode, score.

    `options.both_strands` (the default) reads every window twice, as given and as its reverse complement,
    so that each strand is also read 5' to 3'. The decoder writes a gene's left coordinate first: on the +
    strand any start codon of the right ORF then fixes the 3' end, on the - strand the left coordinate is the
    stop codon itself, which a small model finds less often; on the reverse complement those genes are +
    genes.
    The genes of both reads are merged; where the two reads found one locus (`same_locus`), the copy with the
    higher score stays. It doubles the decoding.
    """

    def __init__(
        self, model, tokenizer, options: AnnotationOptions = AnnotationOptions(), keep_coding: bool = False
    ):
        self.model, self.tokenizer, self.options = model.eval(), tokenizer, options
        # Track-guided coordinates need a model with a track head (an older one is decoded as before).
        self.track_weight = options.track_weight if hasattr(model, "track_head") else 0.0
        # `keep_coding`: after each call, `coding[i]` is window i's coding probability per base [bases, 2]
        # (+ strand, - strand) from the track head.
        self.keep_coding = keep_coding and hasattr(model, "track_head")
        self.coding: list[np.ndarray] = []
        self.vocab = GrammarVocab.from_tokenizer(tokenizer)
        self.code = GeneticCode(options.translation_table)
        self.pointers = getattr(model.config, "coordinate_scheme", "pointer") == "pointer"

    @torch.no_grad()
    def __call__(
        self, windows: list[Window], hints: list[list[Gene]] | None = None
    ) -> tuple[list[list[Gene]], list[list[float]], int]:
        """Window-level genes and their scores per window, plus the number of malformed records.

        `hints[i]`: evidence genes of window i in its coordinates (`window_hints`), read by the encoder.
        """
        hints = hints or [None] * len(windows)
        if not self.options.both_strands:
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
        inputs["encoder_outputs"] = self.encode(inputs, [len(s["input_ids"]) for s in sources])
        track = None
        if (self.options.constraints and self.track_weight) or self.keep_coding:
            track = self.track_log_probs(inputs["encoder_outputs"].last_hidden_state, inputs)
        if self.keep_coding:
            self.coding = [
                coding_probability(t[: len(w.sequence)]) for t, w in zip(track, windows, strict=True)
            ]
        processors = []
        if self.options.constraints:
            processors.append(
                BiologyConstrainedLogitsProcessor.for_windows(
                    self.vocab,
                    [w.sequence for w in windows],
                    token_offsets.cpu().numpy() if self.pointers else None,
                    self.code,
                    self.options.coding_genes,
                    self.options.min_coding_length,
                    track,
                    self.track_weight,
                    spliced=self.options.spliced_genes,
                )
            )
        budget = self.options.max_new_tokens or max(
            64, TOKENS_PER_KB * max(len(w.sequence) for w in windows) // 1000
        )
        out = self.model.generate(
            **inputs,
            logits_processor=processors,
            num_beams=self.options.beams,
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

    def encode(self, inputs: dict, lengths: list[int]):
        """The encoder's outputs for the padded batch `inputs` (rows of `lengths` tokens). On CPU window by
        window, unpadded: as fast as one batched pass there, and the attention holds one window's
        [heads, tokens, tokens] bias instead of the whole batch's (measured at 16 windows a batch,
        bench/annotate.py: a worker's peak RSS 926 MiB, batched 1,371 MiB; and 1.15x faster)."""
        encoder = self.model.get_encoder()
        if self.model.device.type != "cpu":
            return encoder(**inputs)
        outputs = None
        for row, length in enumerate(lengths):
            window = encoder(**{key: value[row : row + 1, :length] for key, value in inputs.items()})
            if outputs is None:  # the encoder's own output class, which the decoder caches its context in
                states = window.last_hidden_state.new_zeros(
                    *inputs["input_ids"].shape, window.last_hidden_state.shape[-1]
                )
                outputs = type(window)(last_hidden_state=states, token_offsets=inputs["token_offsets"])
            outputs.last_hidden_state[row, :length] = window.last_hidden_state[0]
        return outputs

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
    model, tokenizer, fasta_path: str | PathLike, options: AnnotationOptions = AnnotationOptions(), **kwargs
) -> tuple[dict[str, list[Gene]], dict[str, int], AnnotationStats]:
    """Annotate every contig of a FASTA file (plain or gzip); arguments and result as `annotate_records`."""
    return annotate_records(model, tokenizer, read_fasta(fasta_path), options, **kwargs)


def annotate_records(
    model,
    tokenizer,
    records: Iterable[tuple[str, str]],
    options: AnnotationOptions = AnnotationOptions(),
    *,
    hints: dict[str, list[Gene]] | None = None,
    progress: bool = True,
    coding_track: bool = False,
    workers: int = 1,
) -> tuple[dict[str, list[Gene]], dict[str, int], AnnotationStats]:
    """Annotate (seqid, sequence) records as `options` say: (genes per seqid, 1-based; sequence lengths;
    statistics). The whole genome's `annotate_contigs`, collected.

    `hints` (seqid -> 1-based evidence genes, e.g. `read_hints(...).genes_by_seqid`) are given to the
    encoder of every window they touch (`[HIT]` records after the DNA, `tokenization.encode_source`).
    `stats.scores[seqid]` runs parallel to `genes_by_seqid[seqid]` (mean token log-probability per gene).
    `coding_track` keeps the track head's per-base coding probability in `stats.coding[seqid]` ([length, 2]:
    + and - strand, the mean of the windows that read a base; NaN where none did).
    """
    stats = AnnotationStats()
    genes, lengths = {}, {}
    contigs = annotate_contigs(
        model,
        tokenizer,
        records,
        options,
        stats,
        hints=hints,
        progress=progress,
        coding_track=coding_track,
        workers=workers,
    )
    for contig in contigs:
        genes[contig.seqid], lengths[contig.seqid] = contig.genes, contig.length
        stats.scores[contig.seqid] = contig.scores
        if coding_track:
            stats.coding[contig.seqid] = contig.coding
    return genes, lengths, stats


def annotate_contigs(
    model,
    tokenizer,
    records: Iterable[tuple[str, str]],
    options: AnnotationOptions = AnnotationOptions(),
    stats: AnnotationStats | None = None,
    *,
    hints: dict[str, list[Gene]] | None = None,
    progress: bool = True,
    coding_track: bool = False,
    workers: int = 1,
) -> Iterator[AnnotatedContig]:
    """Annotate (seqid, sequence) records one contig at a time, in their order: each contig comes out once its
    last window is decoded, so memory holds the batches in flight and their contigs, never the genome.

    `stats` counts the run as it goes (`seconds` once the last contig is out); arguments as
    `annotate_records`. Under `accelerate launch` the processes share the windows, and every process yields
    every contig (`decode_windows`).
    """
    if coding_track and not hasattr(model, "track_head"):
        raise ValueError("the model has no track head (trained without --track_loss_weight): no coding track")
    _check("workers", workers, _at_least(1))
    options = options.for_model(model.config)
    stats = stats if stats is not None else AnnotationStats()
    hints = readable_hints(hints, tokenizer, stats.unreadable_hints) if hints else None
    annotator = WindowAnnotator(model, tokenizer, options, keep_coding=coding_track)
    started = time.perf_counter()
    decoded = decode_windows(
        annotator, tile_records(records, options, stats), hints, stats, progress, workers
    )
    weights = start_weight_vector(getattr(model.config, "start_weights", None))
    yield from stitch_contigs(decoded, stats, options, weights)
    stats.seconds = time.perf_counter() - started


@dataclass
class TiledContig:
    """One contig cut into windows (`tile_records`)."""

    seqid: str
    sequence: str
    windows: list[Window]  # in order

    @property
    def length(self) -> int:
        return len(self.sequence)


def tile_records(
    records: Iterable[tuple[str, str]], options: AnnotationOptions, stats: AnnotationStats
) -> Iterator[TiledContig]:
    """Each record tiled at the options' window size with their overlap, all-N stretches skipped, one record
    at a time; its bases counted in `stats`."""
    for seqid, sequence in records:
        windows = tile(seqid, sequence, options.window_bp, options.overlap_bp)
        if not sequence:
            stats.empty_sequences.append(seqid)
        stats.sequence_bases += len(sequence)
        stats.covered_bases += covered_bases(windows)
        stats.gap_bases += gap_bases(sequence)
        yield TiledContig(seqid, sequence, windows)


class DecodedContig:
    """One contig's window genes, placed on it as its windows are decoded (`decode_windows`); with
    `keep_coding`, each base's coding probability summed over the windows that read it."""

    def __init__(self, contig: TiledContig, keep_coding: bool):
        self.contig = contig
        self.predictions: list[Prediction] = []  # window by window
        self.decoded = 0  # windows placed
        self.coding_sums = np.zeros((contig.length, 2), np.float32) if keep_coding else None
        self.coding_counts = np.zeros((contig.length, 1), np.float32) if keep_coding else None

    def place(self, index: int, genes: list[Gene], scores: list[float], coding: np.ndarray | None) -> None:
        window = self.contig.windows[index]
        self.predictions += place(window, index, genes, scores)
        self.decoded += 1
        if coding is not None:
            self.coding_sums[window.start : window.end] += coding
            self.coding_counts[window.start : window.end] += 1

    @property
    def complete(self) -> bool:
        return self.decoded == len(self.contig.windows)

    @property
    def coding(self) -> np.ndarray | None:
        """[length, 2]: the mean over the windows that read a base (NaN where none did)."""
        if self.coding_sums is None:
            return None
        with np.errstate(invalid="ignore"):  # 0 / 0: a base no window read
            return self.coding_sums / self.coding_counts


def decode_windows(
    annotator: WindowAnnotator,
    contigs: Iterable[TiledContig],
    hints: dict[str, list[Gene]] | None,
    stats: AnnotationStats,
    progress: bool,
    workers: int = 1,
) -> Iterator[DecodedContig]:
    """The contigs' windows, in order, through `annotator` in batches that run across contigs (20,000 tiny
    contigs still fill them); each contig is yielded once its last window is placed, so only the contigs of
    the batches in flight are held. The batches are decoded here, by `workers` forked CPU processes
    (`pooled_batches`) or by `accelerate launch`'s processes (`distributed_batches`); always whole batches as
    one process forms them, since a window's padding depends on its batch-mates and so do the last bits of
    its scores: every way gives one process's output exactly.
    """
    state = PartialState()
    pending: deque[DecodedContig] = deque()  # read, not yet yielded, in order

    def numbered_windows() -> Iterator[tuple[DecodedContig, int, Window]]:
        for contig in contigs:
            pending.append(DecodedContig(contig, annotator.keep_coding))
            for index, window in enumerate(contig.windows):
                yield pending[-1], index, window

    batches = batched(numbered_windows(), annotator.options.batch_size)
    if state.num_processes > 1:
        decoded = distributed_batches(annotator, batches, hints, state)
    elif workers > 1:
        decoded = pooled_batches(annotator, batches, hints, workers)
    else:
        decoded = ((batch, decode_batch(annotator, windows_of(batch), hints)) for batch in batches)
    shown = progress and state.is_main_process
    with tqdm(desc="annotating", unit="bp", unit_scale=True, disable=not shown) as bar:
        for batch, (genes, scores, errors, coding) in decoded:
            for (contig, index, _), window_genes, window_scores, window_coding in zip(
                batch, genes, scores, coding, strict=True
            ):
                contig.place(index, window_genes, window_scores, window_coding)
            bases = sum(len(window.sequence) for window in windows_of(batch))
            stats.decode_errors += errors
            stats.windows += len(batch)
            stats.bases += bases
            bar.update(bases)
            bar.set_postfix(windows=stats.windows)
            while pending and pending[0].complete:
                yield pending.popleft()
    yield from pending  # contigs without windows (empty, all N) after the last batch


def windows_of(batch: list[tuple[DecodedContig, int, Window]]) -> list[Window]:
    return [window for _, _, window in batch]


def distributed_batches(annotator, batches, hints, state: PartialState) -> Iterator[tuple[list, tuple]]:
    """Under `accelerate launch --num_processes N`: in each round of N batches process r decodes batch r, and
    every process gathers every batch's genes (`gather_object`)."""
    for round_batches in batched(batches, state.num_processes):
        mine = round_batches[state.process_index] if state.process_index < len(round_batches) else []
        results = gather_object([decode_batch(annotator, windows_of(mine), hints)])
        yield from zip(round_batches, results, strict=False)  # idle ranks last


# What a pooled worker decodes with: set in the parent just before the pool forks, so the children inherit
# the model instead of loading or unpickling it.
_pooled: tuple[WindowAnnotator, dict | None] | None = None


def pooled_batches(annotator, batches, hints, workers: int) -> Iterator[tuple[list, tuple]]:
    """`workers` forked CPU processes with one torch thread each decode the batches, up to two each in
    flight; results come back in order. On 2 cores two workers annotated 2.1x as fast as one process
    (bench/annotate.py, default vs --workers 1), where two torch threads in one process gained 1.25x."""
    global _pooled
    if annotator.model.device.type != "cpu":
        raise ValueError(
            f"workers > 1 decode on CPU only (model on {annotator.model.device}); "
            "for GPUs use accelerate launch"
        )
    _pooled = (annotator, hints)
    in_flight: deque[tuple[list, Future]] = deque()
    with ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_start_worker) as pool:
        try:
            for batch in batches:
                in_flight.append((batch, pool.submit(_decode_pooled, windows_of(batch))))
                if len(in_flight) >= 2 * workers:
                    batch, result = in_flight.popleft()
                    yield batch, result.result()
            while in_flight:
                batch, result = in_flight.popleft()
                yield batch, result.result()
        finally:
            _pooled = None
            pool.shutdown(cancel_futures=True)


def _start_worker() -> None:
    torch.set_num_threads(1)  # the workers are the parallelism (and OpenMP teams do not survive a fork)


def _decode_pooled(windows: list[Window]) -> tuple:
    annotator, hints = _pooled
    return decode_batch(annotator, windows, hints)


def decode_batch(
    annotator: WindowAnnotator, windows: list[Window], hints: dict[str, list[Gene]] | None
) -> tuple[list[list[Gene]], list[list[float]], int, list[np.ndarray | None]]:
    """One batch through `annotator`: each window's genes, their scores and coding track (or None), and the
    number of malformed records."""
    if not windows:  # a process without a batch in the last round
        return [], [], 0, []
    batch_hints = [window_hints(w, hints.get(w.seqid, ())) for w in windows] if hints else None
    genes, scores, errors = annotator(windows, batch_hints)
    coding = annotator.coding if annotator.keep_coding else [None] * len(windows)
    return genes, scores, errors, coding


@dataclass
class AnnotatedContig:
    """One contig's annotation (`stitch_contigs`): what `annotate_contigs` yields."""

    seqid: str
    length: int
    genes: list[Gene]  # 1-based
    scores: list[float | None]  # parallel to genes; None for a long ORF (no window wrote it)
    coding: np.ndarray | None = None  # with `coding_track` (see `annotate_records`)


def stitch_contigs(
    decoded: Iterable[DecodedContig],
    stats: AnnotationStats,
    options: AnnotationOptions,
    start_weights: np.ndarray | None = None,
) -> Iterator[AnnotatedContig]:
    """Each contig's window genes stitched into one annotation (`windows.stitch`) with the rules `options`
    turn on (gene overlap limit, long ORFs, edge genes, starts chosen by `start_weights` via
    `starts.pick_start`), its genes counted. A long ORF's score is None: the model did not write it."""
    code = GeneticCode(options.translation_table)
    for contig in decoded:
        dna = contig.contig.sequence
        move_start = (
            partial(
                pick_start, dna=dna, code=code, weights=start_weights, min_length=options.min_coding_length
            )
            if options.chooses_starts
            else None
        )
        long_orfs = (
            open_reading_frames(dna, code.start_codons, code.stop_codons, options.long_orf_bp)
            if options.long_orf_bp
            else ()
        )
        kept = stitch(
            contig.predictions,
            contig.contig.windows,
            stats.stitch,
            options.gene_overlap_limit,
            move_start,
            long_orfs,
            options.stitch_min_length,
        )
        stats.strands.update(p.gene.strand for p in kept)
        stats.gene_bases += sum(p.gene.end - p.gene.start + 1 for p in kept)
        seqid, length = contig.contig.seqid, contig.contig.length
        scores = [p.score if p.windows else None for p in kept]
        yield AnnotatedContig(seqid, length, [p.gene for p in kept], scores, contig.coding)
