"""Generation-based annotation metrics on validation windows (the Trainer's `compute_metrics`).

Generated ids and labels are decoded through the codec with each window's own coordinate scheme
(pointer ids name that window's source tokens), then compared window by window:
- `exon_f1` (exact features: CDS segments), `gene_f1` (whole coding structure), `gene_3prime_f1`,
  `gene_exact_f1`: the project's gene-finding levels from `scoring.score`, summed over windows;
- `record_f1`: gene records of any type (coding or not) matched exactly, every field;
- `window_exact`: share of windows whose decoded annotation equals the reference exactly;
- `start_exact` / `end_exact`: share of reference gene starts / ends predicted exactly (same strand), and
  `start_error_bp` / `end_error_bp`: mean distance to the nearest predicted one (windows with a prediction).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from core.features import Gene
from scoring.metrics import Scores, score
from tokenization.codec import DecodeResult
from tokenization.tokenizer import decode_ids

from .data import coordinate_scheme

WINDOW = "window"  # windows are scored one at a time under a placeholder seqid
# scoring.score's levels reported here: exact CDS segments ("exact features"), whole genes, gene ends.
METRIC_LEVELS = ("exon", "gene", "gene_3prime", "gene_exact")


def generated_genes(ids: Iterable[int], tokenizer, scheme) -> DecodeResult:
    """Decode one row of generated ids or labels (padding and -100 dropped; decoding stops at <eos>)."""
    return decode_ids([i for i in map(int, ids) if i >= 0 and i != tokenizer.pad_token_id], tokenizer, scheme)


class AnnotationScorer:
    """Accumulates window scores: the project's gene-finding levels (`scoring.score`) plus exact records."""

    def __init__(self):
        self.scores = Scores()
        self.counts = Counter()

    def add(self, reference: list[Gene], predicted: list[Gene], decode_errors: int = 0) -> None:
        self.scores += score({WINDOW: reference}, {WINDOW: predicted})
        self._add_boundaries(reference, predicted)
        ref_records, pred_records = Counter(reference), Counter(predicted)
        self.counts.update(
            record_tp=sum((ref_records & pred_records).values()),
            record_pred=len(predicted),
            record_ref=len(reference),
            windows=1,
            windows_exact=int(ref_records == pred_records),
            decode_errors=decode_errors,
        )

    def _add_boundaries(self, reference: list[Gene], predicted: list[Gene]) -> None:
        """Per reference gene end (start / end): exact or not, and the distance to the nearest predicted
        end of the same kind on the same strand (only when the window has a prediction on that strand)."""
        for gene in reference:
            same_strand = [p for p in predicted if p.strand == gene.strand]
            for edge in ("start", "end"):
                self.counts[f"{edge}_total"] += 1
                if same_strand:
                    error = min(abs(getattr(p, edge) - getattr(gene, edge)) for p in same_strand)
                    self.counts[f"{edge}_exact"] += error == 0
                    self.counts[f"{edge}_error_sum"] += error
                    self.counts[f"{edge}_predicted"] += 1

    def result(self) -> dict[str, float]:
        c = self.counts
        out = {}
        for level in METRIC_LEVELS:
            f1 = self.scores[level].f1
            if not math.isnan(f1):  # NaN = nothing to count at this level (e.g. no coding genes)
                out[f"{level}_f1"] = f1
        denominator = c["record_pred"] + c["record_ref"]
        out["record_f1"] = 2 * c["record_tp"] / denominator if denominator else 1.0
        out["window_exact"] = c["windows_exact"] / c["windows"] if c["windows"] else 0.0
        out["decode_errors_per_window"] = c["decode_errors"] / c["windows"] if c["windows"] else 0.0
        for edge in ("start", "end"):
            if c[f"{edge}_total"]:
                out[f"{edge}_exact"] = c[f"{edge}_exact"] / c[f"{edge}_total"]
            if c[f"{edge}_predicted"]:
                out[f"{edge}_error_bp"] = c[f"{edge}_error_sum"] / c[f"{edge}_predicted"]
        return out


def annotation_metrics(eval_dataset, tokenizer, scheme_name: str):
    """`compute_metrics` for Seq2SeqTrainer(predict_with_generate=True) on a tokenized validation set.

    Predictions arrive in dataset order (the trainer evaluates sequentially), so prediction i is decoded
    with window i's scheme.
    """
    vocab_size = len(tokenizer)
    offsets = eval_dataset["token_offsets"]

    def compute_metrics(eval_pred) -> dict[str, float]:
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
        if len(predictions) != len(offsets):
            raise ValueError(f"{len(predictions)} predictions for {len(offsets)} validation windows")
        scorer = AnnotationScorer()
        for generated, label, token_offsets in zip(predictions, labels, offsets, strict=True):
            scheme = coordinate_scheme(scheme_name, token_offsets, vocab_size)
            reference = generated_genes(label, tokenizer, scheme)
            predicted = generated_genes(generated, tokenizer, scheme)
            scorer.add(reference.genes, predicted.genes, len(predicted.errors))
        return scorer.result()

    return compute_metrics
