"""Coordinate schemes: how one window-relative base position is written as exactly two tokens.

The codec, the model, the constrained decoder and the annotator all go through one scheme object:

- `NumberCoordinates`: `<n{bp // 1000}> <n{bp % 1000}>`, windows up to 999,999 bp. Tokenizer-independent,
  so it is the canonical text stored in datasets.
- `PointerCoordinates`: `<@i> <o{k}>` = "the source (encoder) token at position i, base k inside it".
  `<@i>` is not a vocabulary token: its id is `vocab_size + i`, one of the model's pointer slots.

A scheme answers `encode(bp) -> [first, second]`, `decode(first, second) -> bp | None` (never raises),
and, for constrained decoding, `legal_first()` / `legal_second(first)`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

NUMBER_BASE = 1000
MAX_NUMBER_BP = NUMBER_BASE * NUMBER_BASE - 1
# DNABERT-2-style BPE tokens are at most this long (train_dna_bpe enforces it; other tokenizers are checked).
MAX_OFFSET = 64

NUMBER_TOKENS = tuple(f"<n{i}>" for i in range(NUMBER_BASE))
OFFSET_TOKENS = tuple(f"<o{k}>" for k in range(MAX_OFFSET))
_NUMBER_INDEX = {tok: i for i, tok in enumerate(NUMBER_TOKENS)}
_OFFSET_INDEX = {tok: k for k, tok in enumerate(OFFSET_TOKENS)}
_POINTER = re.compile(r"<@(\d+)>")


def pointer_token(position: int) -> str:
    """The token string of a pointer to encoder position `position`."""
    return f"<@{position}>"


def pointer_position(token: str) -> int | None:
    """Encoder position named by a pointer token string, or None if `token` is not one."""
    match = _POINTER.fullmatch(token)
    return int(match.group(1)) if match else None


class CoordinateError(ValueError):
    """A base position that a scheme cannot write (outside the window or outside every DNA token)."""


class NumberCoordinates:
    """Base-1000 digit pair: `<n{bp // 1000}> <n{bp % 1000}>`."""

    def __init__(self, window_length: int | None = None):
        if window_length is not None and not 0 < window_length <= MAX_NUMBER_BP + 1:
            raise CoordinateError(f"window length {window_length} is outside 1..{MAX_NUMBER_BP + 1}")
        self.window_length = window_length if window_length is not None else MAX_NUMBER_BP + 1

    def __repr__(self) -> str:
        return f"NumberCoordinates(window_length={self.window_length})"

    def encode(self, bp: int) -> list[str]:
        if not 0 <= bp < self.window_length:
            raise CoordinateError(f"base {bp} is outside the window 0..{self.window_length - 1}")
        return [NUMBER_TOKENS[bp // NUMBER_BASE], NUMBER_TOKENS[bp % NUMBER_BASE]]

    def decode(self, first: str, second: str) -> int | None:
        high, low = _NUMBER_INDEX.get(first), _NUMBER_INDEX.get(second)
        if high is None or low is None:
            return None
        bp = high * NUMBER_BASE + low
        return bp if bp < self.window_length else None

    def legal_first(self) -> list[str]:
        return list(NUMBER_TOKENS[: (self.window_length - 1) // NUMBER_BASE + 1])

    def legal_second(self, first: str) -> list[str]:
        high = _NUMBER_INDEX.get(first)
        if high is None:
            return []
        return list(NUMBER_TOKENS[: min(NUMBER_BASE, self.window_length - high * NUMBER_BASE)])


class PointerCoordinates:
    """Pointer to an encoder token plus an offset inside it: `<@i> <o{k}>` = token_offsets[i][0] + k.

    `token_offsets[i]` is the half-open base span of source token i (specials are empty, (0, 0)), and
    `vocab_size` is the size of the token vocabulary, so pointer `<@i>` has id `vocab_size + i`.
    """

    def __init__(self, token_offsets: Sequence[Sequence[int]], vocab_size: int):
        self.vocab_size = vocab_size
        self.spans = [(s, e) for s, e in _as_pairs(token_offsets)]
        # Positions of DNA tokens (non-empty spans) ordered by start, for base -> position lookup.
        self._dna_positions = [i for i, (s, e) in enumerate(self.spans) if e > s]
        self._dna_starts = [self.spans[i][0] for i in self._dna_positions]
        if self._dna_starts != sorted(self._dna_starts):  # BPE output is in order; anything else is sorted
            self._dna_positions.sort(key=lambda i: self.spans[i][0])
            self._dna_starts.sort()
        longest = max((e - s for s, e in self.spans), default=0)
        if longest > MAX_OFFSET:
            raise CoordinateError(
                f"a source token spans {longest} bp, longer than MAX_OFFSET={MAX_OFFSET}: "
                "this tokenizer has DNA tokens the pointer scheme cannot address"
            )

    def __repr__(self) -> str:
        return f"PointerCoordinates({len(self.spans)} source tokens, vocab_size={self.vocab_size})"

    def position_of(self, bp: int) -> int | None:
        """Encoder position of the DNA token that holds base `bp`, or None."""
        k = bisect.bisect_right(self._dna_starts, bp) - 1
        if k < 0:
            return None
        position = self._dna_positions[k]
        return position if bp < self.spans[position][1] else None

    def encode(self, bp: int) -> list[str]:
        position = self.position_of(bp)
        if position is None:
            raise CoordinateError(f"base {bp} lies in no DNA token of this window")
        return [pointer_token(position), OFFSET_TOKENS[bp - self.spans[position][0]]]

    def decode(self, first: str, second: str) -> int | None:
        position, offset = pointer_position(first), _OFFSET_INDEX.get(second)
        if position is None or offset is None or position >= len(self.spans):
            return None
        start, end = self.spans[position]
        return start + offset if offset < end - start else None

    def legal_first(self) -> list[str]:
        return [pointer_token(i) for i in self._dna_positions]

    def legal_second(self, first: str) -> list[str]:
        position = pointer_position(first)
        if position is None or position >= len(self.spans):
            return []
        start, end = self.spans[position]
        return list(OFFSET_TOKENS[: end - start])

    # Ids of pointer tokens: the model's output slots after the vocabulary.
    def pointer_id(self, position: int) -> int:
        return self.vocab_size + position

    def legal_pointer_ids(self) -> list[int]:
        return [self.vocab_size + i for i in self._dna_positions]

    def offset_limit(self, pointer_id: int) -> int:
        """How many offset tokens `<o0>..` are legal after pointer id `pointer_id` (0 = illegal pointer)."""
        position = pointer_id - self.vocab_size
        if not 0 <= position < len(self.spans):
            return 0
        start, end = self.spans[position]
        return end - start


CoordinateScheme = NumberCoordinates | PointerCoordinates


def _as_pairs(token_offsets) -> list:
    """Accept a list of int pairs, a numpy array or a torch tensor of shape [S, 2]."""
    return token_offsets.tolist() if hasattr(token_offsets, "tolist") else token_offsets
