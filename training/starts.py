"""Fitting the start scorer (`annotation.starts`) on the training genes, after the Trainer is done.

Each whole single-exon coding gene of a prokaryote training window whose ORF starts inside the window is
one example: its ORF's start codons (features) and which of them the annotation chose. The weights that
maximise the mean log-probability of the chosen ones under a softmax over each ORF's candidates (a
conditional logit, convex: L-BFGS to convergence in seconds) go into the model's config.

Measured on the shared bacteria's curated starts, fitted on three and scored on the fourth (genes whose
stop is known, as after the decoder; `python bench/starts.py`): B. subtilis 0.61 -> 0.78 of the starts
right, M. abscessus 0.52 -> 0.69, Paracoccus 0.47 -> 0.73, T. pallidum 0.67 -> 0.67 (longest start ->
fitted scorer).
"""

from __future__ import annotations

import logging
import random

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from annotation.annotator import GENETIC_CODES
from annotation.constraints import GeneticCode
from annotation.starts import FEATURES, movable, orf_starts
from tokenization.codec import text_to_genes

logger = logging.getLogger(__name__)

TAXON = "prokaryotes"  # the taxon whose genes are single ORFs, where the annotator chooses starts
MAX_GENES = 20_000  # examples enough for ~100 weights; bounds the fit on a large dataset
L2 = 1e-3


def start_examples(
    windows: datasets.Dataset, max_genes: int = MAX_GENES, seed: int = 0, progress: bool = True
) -> list[tuple[np.ndarray, int]]:
    """(candidate features, index of the annotated start) per qualifying gene of the prokaryote windows,
    windows taken in a seeded random order until `max_genes` (reverse-complement copies skipped)."""
    taxa, augmented = (np.asarray(windows[column]) for column in ("taxon", "strand_augmented"))
    order = np.flatnonzero((taxa == TAXON) & ~augmented).tolist()
    random.Random(seed).shuffle(order)
    code = GeneticCode(GENETIC_CODES[TAXON])
    examples: list[tuple[np.ndarray, int]] = []
    with tqdm(total=max_genes, desc="start scorer: genes", disable=not progress) as bar:
        for i in order:
            if len(examples) >= max_genes:
                break
            window = windows[i]
            dna = window["sequence"]
            for gene in text_to_genes(window["target"]).genes:
                gene = gene.shift(1)  # window targets are 0-based
                example = start_example(gene, dna, code)
                if example is not None:
                    examples.append(example)
                    bar.update()
    return examples[:max_genes]


def start_example(gene, dna: str, code: GeneticCode) -> tuple[np.ndarray, int] | None:
    """(candidate features, index of `gene`'s start) of a whole single-exon coding gene (1-based on `dna`)
    whose ORF begins after a stop or N in `dna`; None for any other."""
    if not movable(gene) or gene.open_left or gene.open_right:
        return None
    orf = orf_starts(gene, dna, code)
    if orf is None or orf.at_sequence_end:  # candidates cut by the window edge
        return None
    five = gene.start if gene.strand == "+" else gene.end
    chosen = np.flatnonzero(orf.five_prime == five)
    return (orf.features, int(chosen[0])) if len(chosen) else None


def fit_start_weights(examples: list[tuple[np.ndarray, int]], l2: float = L2) -> dict[str, float]:
    """Conditional-logit weights (feature name -> weight) that best pick the annotated starts. The ORFs'
    candidates are packed end to end (a few MB for 20,000 genes, whatever the longest ORF)."""
    sizes = torch.tensor([len(x) for x, _ in examples])
    features = torch.from_numpy(np.concatenate([x for x, _ in examples]))
    orf = torch.repeat_interleave(torch.arange(len(examples)), sizes)  # each candidate's ORF
    chosen = sizes.cumsum(0) - sizes + torch.tensor([y for _, y in examples])  # packed index of each answer
    weights = torch.zeros(len(FEATURES), requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        scores = features @ weights
        top = torch.full((len(examples),), -torch.inf).scatter_reduce(0, orf, scores.detach(), "amax")
        total = torch.zeros(len(examples)).index_add(0, orf, torch.exp(scores - top[orf]))
        log_softmax = scores[chosen] - top - torch.log(total)  # of each answer among its ORF's candidates
        loss = -log_softmax.mean() + l2 * weights.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return {name: round(float(w), 4) for name, w in zip(FEATURES, weights.detach(), strict=True)}
