"""Every command-line entry point explains itself (`--help` exits 0 and prints a usage line), speaks one
style (snake_case; the previous release's spellings still work, with one deprecation line) and prefixes its
errors with its name."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["annotate.py"],
    ["train.py"],
    ["init_model.py"],
    ["demo.py"],
    ["hub_code.py"],
    ["-m", "tokenization"],
    ["-m", "tokenization", "append_tk"],
    ["-m", "dataset_builder"],
    ["-m", "dataset_builder", "bake"],
    ["-m", "dataset_builder", "bake_many"],
    ["-m", "scoring"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command):
    done = subprocess.run(
        [sys.executable, *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "Traceback" not in done.stderr


# Each spelling of the previous release and its new one: (module, its argv with {} for the option, old, new).
SUBCOMMANDS = {"tokenization.__main__", "dataset_builder.__main__"}
OLD_SPELLINGS = [
    ("tokenization.__main__", ["init_tk", "t.txt", "{}", "my_RNA"], "--extra-types", "--extra_types"),
    ("tokenization.__main__", ["build_tk", "tk", "--fasta", "g.fa", "{}", "300"], "--vocab-size", "--vocab_size"),
    ("tokenization.__main__", ["build_tk", "tk", "{}", "zhihan1996/DNABERT-2-117M"], "--dnabert", "--dnabert_path"),
    ("dataset_builder.__main__", ["bake", "g.fa", "--taxon", "plants", "--species", "s", "{}"], "--no_progress",
     "--quiet"),
    ("annotate", ["--model", "m", "--fasta", "g.fa", "--out", "o.gff3", "{}"], "--no-both_strands",
     "--no_both_strands"),
    ("annotate", ["--model", "m", "--fasta", "g.fa", "--out", "o.gff3", "{}"], "--no-coding_genes",
     "--no_coding_genes"),
    ("demo", ["{}", "outputs/x"], "--out_dir", "--output_dir"),
]  # fmt: skip


@pytest.mark.parametrize("module, argv, old, new", OLD_SPELLINGS, ids=[s[2] for s in OLD_SPELLINGS])
def test_an_old_spelling_parses_as_the_new_one_with_one_warning(module, argv, old, new, capsys):
    parser = importlib.import_module(module).build_parser()
    with_new = parser.parse_args([new if word == "{}" else word for word in argv])
    assert capsys.readouterr().err == ""
    with_old = parser.parse_args([old if word == "{}" else word for word in argv])
    assert vars(with_old) == vars(with_new)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{parser.prog}{' ' + argv[0] if module in SUBCOMMANDS else ''}: warning: {old} is deprecated "
                   f"and will be removed in the next release; use {new}"]  # fmt: skip
    with pytest.raises(SystemExit):
        parser.parse_args([*argv[:1], "--help"] if module in SUBCOMMANDS else ["--help"])
    shown = capsys.readouterr().out
    assert new in shown and old not in shown.replace(new, "")  # the old spelling is not advertised


def test_bake_many_is_still_a_command_with_a_warning(tmp_path, capsys):
    from dataset_builder.__main__ import main

    argv = ["sp1", "--raw_dir", str(tmp_path), "--taxon", "prokaryotes", "--dataset_dir", str(tmp_path / "d")]
    assert main(["bake-many", *argv]) == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert (
        warning.startswith("python -m dataset_builder: warning: bake-many is deprecated")
        and "bake_many" in warning
    )
    assert error == f"python -m dataset_builder: error: {tmp_path / 'sp1'}: no such species folder"
    assert main(["bake_many", *argv]) == 2
    assert capsys.readouterr().err.splitlines() == [error]


@pytest.mark.parametrize(
    "module, argv, prog",
    [
        ("annotate", ["--model", "m", "--fasta", "{tmp}/missing.fa", "--out", "{tmp}/o.gff3"], "annotate.py"),
        ("scoring.__main__", ["--reference", "{tmp}/missing.gff3", "--prediction", "{tmp}/p.gff3"],
         "python -m scoring"),
        ("tokenization.__main__", ["append_tk", "{tmp}/missing.txt", "{tmp}"], "python -m tokenization"),
        ("dataset_builder.__main__", ["bake", "{tmp}/missing.fa", "{tmp}/missing.gff3", "--taxon", "prokaryotes",
                                      "--species", "s", "--dataset_dir", "{tmp}/d", "--quiet"],
         "python -m dataset_builder"),
        ("hub_code", ["{tmp}"], "hub_code.py"),
        ("init_model", ["--save_dir", "{tmp}/m", "--hidden_size", "30", "--num_attention_heads", "4"],
         "init_model.py"),
        ("demo", ["--fasta", "{tmp}/missing.fa", "--output_dir", "{tmp}/out"], "demo.py"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("-") else None,
)  # fmt: skip
def test_an_error_line_carries_the_program_name(module, argv, prog, tmp_path, capsys):
    """train.py's own error line is checked in tests/test_train.py and tests/test_bad_input_model.py."""
    main = importlib.import_module(module).main
    assert main([word.format(tmp=tmp_path) for word in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"{prog}: error: ") and "Traceback" not in "\n".join(err), err


@pytest.mark.parametrize("world_size", ["1", "2"])
def test_a_launched_process_leaves_flushed_and_without_finalizing(world_size):
    """One of several launched processes skips the interpreter's finalization (where gloo's leftover threads
    can abort it) yet keeps its status and everything it printed; a lone process exits as usual."""
    script = (
        "import atexit, sys\n"
        "from genome_io.cli import exit_launched\n"
        "atexit.register(lambda: print('finalized'))\n"
        "print('wrote out.gff3', end='')\n"  # no newline: still buffered when the process leaves
        "print('a note', file=sys.stderr, end='')\n"
        "exit_launched(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PATH": "", "PYTHONPATH": str(REPO), "WORLD_SIZE": world_size},
    )  # fmt: skip
    assert done.returncode == 3 and done.stderr == "a note"
    assert done.stdout == ("wrote out.gff3" if world_size == "2" else "wrote out.gff3finalized\n")
