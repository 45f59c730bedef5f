"""What every GFF-MoE command line shares: option-value types for argparse, old option spellings, and
the end of `main()` (`run_cli`).

One style: options in snake_case (as transformers' and the original recipe's), `--quiet` for no progress
bars, and every error one line `PROG: error: ...`, as argparse prints a bad option value (exit 2, before
any heavy work). Ctrl-C ends a command with one line and the shell's status for SIGINT (130). annotate.py's
GFF3 and bake's shards are written to a temporary file or folder renamed into place, so an interrupt
leaves neither half-written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from core.errors import InputError

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


def launched_with_others() -> bool:
    """Whether this process is one of several that a distributed launcher started (torchrun, accelerate)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def use_cpu_processes_without_gpus() -> None:
    """A distributed launch (e.g. cpu_ddp.yaml) on a machine without GPUs: run as CPU processes over gloo.

    Without this, accelerate finds no GPU and every process silently runs alone: train.py would train its
    own copy of the model on the whole dataset, annotate.py annotate (and write) the whole genome in each.
    """
    import torch

    if launched_with_others() and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


def exit_launched(code: int) -> NoReturn:
    """`sys.exit(code)`; one of several launched processes (WORLD_SIZE > 1) leaves without the interpreter's
    finalization, its streams flushed, once its output is written.

    torch's gloo threads outlive `destroy_process_group()` while anything in torch still holds the group
    (after annotate.py's gathers, after FSDP), and one that frees a tensor while the interpreter finalizes
    aborts the finished process: "terminate called without an active exception", SIGABRT
    (pytorch/pytorch#190489; twice in CI, once in each kind of run).
    """
    if launched_with_others():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def check_model_source(name: str) -> None:
    """InputError unless `name` is a local directory or could be a hub id (`name` or `owner/name`): a
    missing directory is reported as one, not as huggingface_hub's "Repo id must be in the form..."."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if os.path.isdir(name):
        return
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise InputError(
            name, None, "no such model directory (and not a hub id: name or owner/name)"
        ) from None


def deprecated(prog: str, old: str, new: str) -> None:
    """The one line an old spelling of an option or command prints: it works for one more release."""
    print(
        f"{prog}: warning: {old} is deprecated and will be removed in the next release; use {new}",
        file=sys.stderr,
    )


class _OldSpelling(argparse.Action):
    """An old spelling of another option (hidden from --help): a deprecation line, then that option's action."""

    def __init__(self, option_strings, dest, option: argparse.Action, spelling: str):
        super().__init__(
            option_strings,
            dest,
            nargs=option.nargs,
            type=option.type,
            choices=option.choices,
            metavar=option.metavar,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
        self.option, self.spelling = option, spelling

    def __call__(self, parser, namespace, values, option_string=None):
        deprecated(parser.prog, option_string, self.spelling)
        self.option(parser, namespace, values, self.spelling)


def old_spelling(container, option: argparse.Action, old: str, new: str | None = None) -> None:
    """Accept `old`, the spelling `option` had before one style, for one more release: it acts as `new`
    (default: the option's first spelling) after one deprecation line on stderr. `container` is the parser
    or group `option` was added to, so that required and mutually exclusive groups still hold."""
    spelling = new or option.option_strings[0]
    container.add_argument(old, dest=option.dest, action=_OldSpelling, option=option, spelling=spelling)


class SnakeBooleanAction(argparse.BooleanOptionalAction):
    """argparse's `--x` / `--no-x` pair, spelled `--x` / `--no_x` like every other option."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.option_strings = [s.replace("--no-", "--no_", 1) for s in self.option_strings]

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not option_string.startswith("--no_"))


def run_cli(
    prog: str, command: Callable[[list[str] | None], object], argv: list[str] | None, errors=()
) -> int:
    """A command line's `main`: `command(argv)` parses and does the work; returns its exit status.

    0 when it returns; 2 with one line `PROG: error: ...` for bad input (InputError, or one of `errors`);
    130 with one line on Ctrl-C. Never a traceback for either.
    """
    try:
        command(argv)
    except (InputError, *errors) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0
