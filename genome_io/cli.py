"""What every GFF-MoE command line shares: option-value types for argparse and the end of `main()`.

A bad option value is refused by argparse itself (`PROG: error: argument --x: ...`, exit 2) before any
heavy work; Ctrl-C ends a command with one line and the shell's status for SIGINT (130). annotate.py's
GFF3 and bake's shards are written to a temporary file or folder renamed into place, so an interrupt
leaves neither half-written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process ended by Ctrl-C


def _number(kind: type, low: float | None, high: float | None, what: str) -> Callable[[str], int | float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (low is not None and not value >= low) or (high is not None and not value <= high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, None, "an integer >= 1")
non_negative_int = _number(int, 0, None, "an integer >= 0")
fraction = _number(float, 0.0, 1.0, "a number in [0, 1]")
non_negative_float = _number(float, 0.0, None, "a number >= 0")


def device(text: str) -> str:
    """A torch device this machine has (`cpu`, `cuda`, `cuda:1`, `mps`)."""
    import torch  # only the commands that run a model take --device

    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r}") from None
    if parsed.type == "cpu":
        return text
    backend = getattr(torch, parsed.type, None)
    count = backend.device_count() if backend is not None and hasattr(backend, "device_count") else 0
    if count == 0 or (parsed.index is not None and parsed.index >= count):
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has no such device ({count} {parsed.type})")
    return text


def check_model_source(name: str) -> None:
    """InputError unless `name` is a local directory or could be a hub id (`name` or `owner/name`): a
    missing directory is reported as one, not as huggingface_hub's "Repo id must be in the form..."."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from core.errors import InputError

    if os.path.isdir(name):
        return
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise InputError(
            name, None, "no such model directory (and not a hub id: name or owner/name)"
        ) from None


def run(main: Callable[[], int], prog: str) -> NoReturn:
    """`sys.exit(main())`, with Ctrl-C reported as one line and exit status 130 instead of a traceback."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = INTERRUPTED
    sys.exit(code)
