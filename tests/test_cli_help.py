"""Every command-line entry point explains itself: `--help` exits 0 and prints a usage line."""

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
    ["-m", "dataset_builder", "bake-many"],
    ["-m", "scoring"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command):
    done = subprocess.run(
        [sys.executable, *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "Traceback" not in done.stderr
