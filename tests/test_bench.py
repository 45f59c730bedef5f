"""The model benchmarks still run and print their ratios (tiny sizes, one round: nothing here is timed)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "32", "--layers", "1", "--heads", "2", "--experts", "4", "--repeats", "1"]
BENCHES = {
    "moe.py": (
        ["--tokens", "64", "--hidden", "32", "--expert_inner", "32", "--experts", "4", "8", "--repeats", "1"],
        "ratio vs dense",
    ),
    "train_step.py": (
        TINY + ["--batch", "2", "--source", "48", "--target", "8"],
        "GffMoe + track head / SwitchTransformers:",
    ),
    "generate.py": (TINY + ["--source", "32", "--new_tokens", "4"], "cache speed-up"),
    "long_window.py": (
        ["--lengths", "128", "256", "--reference_lengths", "128", "--hidden", "32", "--block", "64"],
        "memory growth",
    ),
}


@pytest.mark.parametrize("bench", BENCHES)
def test_model_benchmark_runs(bench):
    args, expected = BENCHES[bench]
    done = subprocess.run(
        [sys.executable, f"bench/{bench}", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout, done.stdout
    assert done.stdout.startswith("machine: ") and "thread(s)" in done.stdout.splitlines()[0]
