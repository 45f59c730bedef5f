"""Docs that run: every command line of the READMEs' shell blocks and of the model card goes through the
argparse parser of the program it names (parse only, no work), so a documented flag cannot drift.

A shell block (```bash, ```sh, or an untagged block's lines that start with a program) is read line by
line: `\\` joins continued lines, `# ...` is a comment, `[--opt X]` an optional part, `VAR=value` prefixes
are the environment. `...` right after the program stands for the arguments of that program's previous
command in the same document, `ARGS` for those of the previous train.py command. `make TARGET` must name
a Makefile target; `accelerate launch` goes through accelerate's own parser, then train.py's;
`launch_distributed.sh` passes its arguments to train.py. Other programs (AUGUSTUS) are named in
`EXTERNAL` and skipped; any other program fails, so a new kind of command line must be classified here.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "tokenization/README.md", "dataset_builder/README.md")
# The program a command line names -> the module whose build_parser() parses it.
PARSERS = {
    "annotate.py": "annotate",
    "train.py": "train",
    "init_model.py": "init_model",
    "demo.py": "demo",
    "hub_code.py": "hub_code",
    "-m tokenization": "tokenization.__main__",
    "-m dataset_builder": "dataset_builder.__main__",
    "-m scoring": "scoring.__main__",
}
LAUNCHERS = ("accelerate", "./accelerate_configs/launch_distributed.sh", "make")
EXTERNAL = {"augustus": "AUGUSTUS's own command line, not this project's"}
SHELL_FENCES = {"bash", "sh", "shell", "console"}


@dataclass
class Command:
    where: str  # file:line, for the test id and the failure message
    text: str


def shell_commands(markdown: str, source: str) -> list[Command]:
    """The command lines of a markdown text's fenced shell blocks, continuations joined."""
    commands, fence, pending = [], None, None
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:].strip() if fence is None else None
            continue
        if fence is None or fence not in SHELL_FENCES | {""}:
            continue
        text = line.strip()
        if pending is not None:
            pending.text += " " + text.removesuffix("\\").strip()
        elif text and not text.startswith("#") and (fence or text.startswith(("python ", "accelerate "))):
            pending = Command(f"{source}:{number}", text.removesuffix("\\").strip())
        if pending is not None and not text.endswith("\\"):
            commands.append(pending)
            pending = None
    return commands


def documented_commands() -> list[Command]:
    return [command for doc in DOCS for command in shell_commands((REPO / doc).read_text(), doc)]


def program_and_args(words: list[str]) -> tuple[str, list[str]]:
    """`python X.py ARGS` / `python -m PKG ARGS` -> ("X.py" or "-m PKG", ARGS)."""
    if words[0] not in ("python", "python3") or len(words) < 2:
        raise AssertionError(f"not a command this test knows: {' '.join(words)}")
    if words[1] == "-m":
        return f"-m {words[2]}", words[3:]
    return words[1], words[2:]


def parse(program: str, argv: list[str]) -> None:
    """Run argv through the program's own parser; AssertionError with argparse's message if it refuses."""
    if program not in PARSERS:
        raise AssertionError(f"{program}: not a GFF-MoE command line (known: {', '.join(PARSERS)})")
    parser = importlib.import_module(PARSERS[program]).build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exit_:
        if exit_.code != 0:  # --help exits 0
            raise AssertionError(stderr.getvalue().strip().splitlines()[-1]) from None


class Checker:
    """Checks command lines in document order (a `...` or `ARGS` refers to an earlier line)."""

    def __init__(self):
        self.previous: dict[str, list[str]] = {}

    def check(self, text: str) -> str | None:
        """None when the line parses; the reason when it is skipped; AssertionError when it is wrong."""
        words = [
            w.strip("[]") if w.startswith("[") or w.endswith("]") else w for w in shlex.split(text, True)
        ]
        words = [w for w in words if w]
        while re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # environment
            words = words[1:]
        if words[0] in EXTERNAL:
            return EXTERNAL[words[0]]
        if words[0] == "make":
            targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE)
            wanted = [w for w in words[1:] if "=" not in w]
            assert set(wanted) <= set(targets), f"no Makefile target {wanted} (targets: {targets})"
            return None
        if words[0] == "accelerate":
            assert words[1] == "launch", text
            from accelerate.commands.launch import launch_command_parser

            launch = launch_command_parser().parse_args(self.expand("accelerate", words[2:]))
            program, argv = launch.training_script, launch.training_script_args
        elif words[0].endswith("launch_distributed.sh"):
            program, argv = "train.py", words[1:]  # the script passes its arguments to train.py
        else:
            program, argv = program_and_args(words)
        argv = self.expand(program, argv)
        parse(program, argv)
        self.previous[program] = argv
        return None

    def expand(self, program: str, argv: list[str]) -> list[str]:
        """`...` (as the program's previous line) and `ARGS` (as the previous train.py line)."""
        expanded = []
        for word in argv:
            if word in ("...", "ARGS"):
                source = program if word == "..." else "train.py"
                assert source in self.previous, f"{word}: no earlier {source} command line to stand for"
                expanded += self.previous[source]
            else:
                expanded.append(word)
        return expanded


def check_all(commands: list[Command]) -> list[str]:
    """Each line's failure, as `file:line: command: reason` (empty when every line parses)."""
    checker, failures = Checker(), []
    for command in commands:
        try:
            checker.check(command.text)
        except AssertionError as err:
            failures.append(f"{command.where}: {command.text}\n    {err}")
    return failures


def test_every_readme_command_line_parses():
    commands = documented_commands()
    assert len(commands) >= 25 and {c.where.split(":")[0] for c in commands} <= set(DOCS)
    failures = check_all(commands)
    assert not failures, "\n".join(failures)


def test_the_readmes_cover_every_command_line_program():
    programs = set()
    for command in documented_commands():
        words = shlex.split(command.text, True)
        if words[0] == "python":
            programs.add(program_and_args(words)[0])
    assert programs == set(PARSERS) - {"hub_code.py"}, programs


@pytest.mark.parametrize(
    "wrong, reason",
    [
        # what the model card told users until it was checked: annotate.py takes --fasta and --out
        ("python annotate.py genome.fa --model gffmoe-prok --output genes.gff3", "required: --fasta, --out"),
        ("python -m tokenization build_tk tok/ --fasta a.fa --vocab_sise 300", "unrecognized arguments"),
        ("python -m dataset_builder bake g.fa g.gff3 --taxon bacteria --species s", "invalid choice"),
        ("python -m scoring --prediction p.gff3", "required"),
        ("accelerate launch --config_file c.yaml train.py --model_name_or_path m --epochs 3", "--epochs"),
        ("make tests", "no Makefile target"),
        ("python bench/unknown.py --x 1", "not a GFF-MoE command line"),
        ("gzip -d genome.fa.gz", "not a command this test knows"),
    ],
)
def test_a_wrong_command_line_fails(wrong, reason):
    failures = check_all([Command("doc.md:1", wrong)])
    assert len(failures) == 1 and reason in failures[0], failures


def test_continuations_comments_options_and_placeholders_are_read():
    markdown = (
        "```bash\n"
        "python annotate.py --model m --fasta g.fa \\\n    --out p.gff3   # a comment\n"
        "python annotate.py ... --track t.bedgraph [--num_beams 4]\n"
        "```\n"
        "```python\nnot = a command\n```\n"
    )
    commands = shell_commands(markdown, "doc.md")
    assert [c.where for c in commands] == ["doc.md:2", "doc.md:4"]
    assert commands[0].text == "python annotate.py --model m --fasta g.fa --out p.gff3   # a comment"
    assert check_all(commands) == []
    assert "--track" in check_all([Command("doc.md:1", "python annotate.py ... --track")])[0]


def test_the_model_card_command_lines_parse(tmp_path):
    """The card a trained directory carries (written here for a tiny config): its shell lines parse."""
    from configuration_gffmoe import GffMoeConfig
    from training.model_card import write_model_card

    config = GffMoeConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    args = SimpleNamespace(
        max_steps=1, num_train_epochs=1, learning_rate=1e-3, per_device_train_batch_size=1, seed=0
    )
    card = write_model_card(
        tmp_path, base_model="b", datasets=["prokaryotes"], dataset_dir="d", metrics={}, config=config,
        training_args=args,
    ).read_text()  # fmt: skip
    commands = shell_commands(card, "model card")
    assert any("annotate.py" in c.text for c in commands), card
    failures = check_all(commands)
    assert not failures, "\n".join(failures)
