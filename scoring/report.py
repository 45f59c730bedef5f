"""Side-by-side text table of several predictors' scores."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .metrics import Scores

LEVEL_NAMES = {
    "nucleotide": "nucleotide",
    "exon": "CDS segment (exon)",
    "transcript": "transcript (CDS chain)",
    "gene": "gene (any chain)",
    "gene_3prime": "gene 3' (strand+stop)",
    "gene_exact": "gene exact (start+stop)",
}


def _rate(value: float) -> str:
    return "  -  " if math.isnan(value) else f"{value:.3f}"


def format_table(scores_by_name: Mapping[str, Scores]) -> str:
    """Levels as rows; sensitivity / precision / F1 of each named predictor as columns."""
    width = max(map(len, LEVEL_NAMES.values()))
    header = f"{'':<{width}}" + "".join(f" | {name:^17.17}" for name in scores_by_name)
    units = f"{'level':<{width}}" + " |  Sn    Pr    F1  " * len(scores_by_name)
    rows = [header, units, "-" * len(units)]
    for level in Scores.levels():
        cells = (s[level] for s in scores_by_name.values())
        rows.append(
            f"{LEVEL_NAMES[level]:<{width}}"
            + "".join(f" | {_rate(c.sensitivity)} {_rate(c.precision)} {_rate(c.f1)}" for c in cells)
        )
    counts = (f"{s.gene.reference} / {s.gene.predicted}" for s in scores_by_name.values())
    rows.append(f"{'coding genes ref / pred':<{width}}" + "".join(f" | {c:^17}" for c in counts))
    return "\n".join(rows)
