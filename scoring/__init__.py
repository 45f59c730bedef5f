"""Scoring gene predictions against a reference annotation (`python -m scoring --help`)."""

from .metrics import LevelScore, Scores, score
from .report import format_table

__all__ = ["LevelScore", "Scores", "format_table", "score"]
