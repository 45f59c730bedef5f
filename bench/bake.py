"""Baking speed and memory per shared genome, beside the time to just decompress and read its files.

    PYTHONPATH=. .venv/bin/python bench/bake.py [NAME ...]

Each genome is baked in a fresh child process (one core: torch is not involved), so its peak RSS is its
own. Times are CPU seconds of that process (robust on a shared machine). Target: >= 2 Mbp/s for a bacterium; peak memory bounded by the largest sequence plus the GFF.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENOMES = ROOT.parent / "shared" / "genomes"
sys.path.insert(0, str(ROOT))

from _common import machine  # noqa: E402

CHILD = """
import json, resource, sys, time, gzip
from pathlib import Path
from dataset_builder.bake import BakeOptions, bake_genome
from tests.fixtures.genomes import GENOME_TAXA
name, out = sys.argv[1], Path(sys.argv[2])
d = Path(sys.argv[3]) / name
start = time.process_time()
for p in (d / "genome.fna.gz", d / "annotation.gff3.gz"):
    with gzip.open(p, "rt") as fh:
        for _ in fh:
            pass
read = time.process_time() - start
start = time.process_time()
report = bake_genome(name, d / "genome.fna.gz", d / "annotation.gff3.gz", BakeOptions(GENOME_TAXA[name]), out, progress=False)
bake = time.process_time() - start
print(json.dumps({"bp": report.bases, "read_s": read, "bake_s": bake,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "windows": sum(report.windows.values())}))
"""


def _text_bytes(path: Path) -> int:
    with gzip.open(path) as fh:
        return len(fh.read())


def main(names: list[str]) -> None:
    print(machine())
    if not GENOMES.is_dir():
        print(f"skipped: {GENOMES} is absent")
        return
    names = names or sorted(p.name for p in GENOMES.iterdir() if p.is_dir())
    print(
        f"{'genome':24} {'Mbp':>6} {'bake s':>7} {'Mbp/s':>6} {'read s':>7} {'bake/read':>9} {'peak RSS MB':>11} {'(text MB)':>9}"
    )
    for name in names:
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run(
                [sys.executable, "-c", CHILD, name, out, str(GENOMES)],
                capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
            )  # fmt: skip
        if run.returncode:
            print(f"{name}: failed\n{run.stderr[-2000:]}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        text_mb = sum(_text_bytes(GENOMES / name / f) for f in ("genome.fna.gz", "annotation.gff3.gz")) / 1e6
        mbp = r["bp"] / 1e6
        print(
            f"{name:24} {mbp:6.2f} {r['bake_s']:7.2f} {mbp / r['bake_s']:6.2f} {r['read_s']:7.2f} "
            f"{r['bake_s'] / r['read_s']:9.1f} {r['rss_mb']:11.0f} {text_mb:9.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
