"""Peak memory of annotate.py against genome size and fragmentation: bounded by the batch, not the genome.

    python bench/annotate_memory.py [--reference_bp 1000000] [--long_bp 20000000] [--contigs 20000 --contig_bp 1000]

A tiny random-weight model (bench/annotate.py's "tiny"; it measures memory and speed, not accuracy)
annotates, each in a fresh `annotate.py` process on one thread (`--workers 1`: the memory of one process that
decodes; each forked worker holds its own batches the same way) with `--max_new_tokens 8`: one reference
contig, one long contig and a fragmented assembly of many small contigs (as metagenome assemblies are). Each
row: the child's peak RSS (`os.wait4`'s ru_maxrss of that one process), its ratio to the reference run's,
bp/s and wall time. The issue's bound: every ratio within 1.5x.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import machine  # noqa: E402

MAX_NEW_TOKENS = 8
# init_model.py flags of the tiny random-weight model: memory and speed, not accuracy.
TINY = ["--hidden_size", "64", "--num_hidden_layers", "2", "--num_attention_heads", "2", "--intermediate_size",
        "128", "--decoder_layers", "2", "--num_experts", "4"]  # fmt: skip
LINE = 80  # FASTA line width


def build_model(work: Path) -> Path:
    """The tiny model, with a DNA BPE trained on random DNA and the GFF vocabulary."""
    import init_model
    from tests.fixtures.genomes import random_dna
    from tokenization.tokenizer import extend_tokenizer, train_dna_bpe

    tokenizer = train_dna_bpe(sequences=[random_dna(300_000, seed=1)], vocab_size=4096)
    extend_tokenizer(tokenizer)
    tokenizer.save_pretrained(work / "tokenizer")
    init_model.main(
        ["--save_dir", str(work / "tiny"), "--tokenizer", str(work / "tokenizer"), "--use_moe", *TINY]
    )
    return work / "tiny"


def write_fasta(path: Path, contigs: int, contig_bp: int, seed: int) -> Path:
    """`contigs` random contigs of `contig_bp` each, written one at a time (the parent never holds them all)."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(contigs):
            dna = "".join(rng.choices("ACGT", k=contig_bp))
            fh.write(f">ctg{i}\n")
            fh.writelines(dna[j : j + LINE] + "\n" for j in range(0, len(dna), LINE))
    return path


def annotate_in_child(model: Path, fasta: Path, out: Path) -> tuple[int, float, str]:
    """(peak RSS in KiB, wall seconds, the summary line) of one annotate.py process."""
    command = [sys.executable, str(REPO / "annotate.py"), "--model", str(model), "--fasta", str(fasta)]
    command += ["--out", str(out), "--max_new_tokens", str(MAX_NEW_TOKENS), "--workers", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not every child's maximum
        seconds = time.perf_counter() - started
        log.seek(0)
        text = log.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"annotate.py failed on {fasta.name}:\n{text[-2000:]}")
    summary = next(line for line in text.splitlines() if " genes (+" in line)
    return usage.ru_maxrss, seconds, summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference_bp", type=int, default=1_000_000)
    parser.add_argument("--long_bp", type=int, default=20_000_000)
    parser.add_argument("--contigs", type=int, default=20_000)
    parser.add_argument("--contig_bp", type=int, default=1_000)
    args = parser.parse_args(argv)
    print(machine())
    print(
        f"each annotate.py on 1 thread (OMP_NUM_THREADS=1, --workers 1), a tiny random-weight model, --max_new_tokens "
        f"{MAX_NEW_TOKENS}: this measures memory and speed, not accuracy"
    )
    cases = [
        (f"1 contig x {args.reference_bp:,} bp (reference)", 1, args.reference_bp),
        (f"1 contig x {args.long_bp:,} bp", 1, args.long_bp),
        (f"{args.contigs:,} contigs x {args.contig_bp:,} bp", args.contigs, args.contig_bp),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(work)
        for seed, (name, contigs, contig_bp) in enumerate(cases):
            fasta = write_fasta(work / f"genome{seed}.fa", contigs, contig_bp, seed)
            peak_kib, seconds, summary = annotate_in_child(model, fasta, work / f"genome{seed}.gff3")
            rows.append((name, contigs * contig_bp, peak_kib, seconds))
            print(f"  {name}: peak RSS {peak_kib / 1024:,.0f} MiB; {summary}", flush=True)
            fasta.unlink()
    reference = rows[0][2]
    print(f"{'genome':<34} {'peak RSS':>10} {'vs reference':>13} {'bp/s':>8} {'wall':>8}")
    for name, bases, peak_kib, seconds in rows:
        print(
            f"{name:<34} {peak_kib / 1024:>7.0f} MiB {peak_kib / reference:>12.2f}x "
            f"{bases / seconds:>8,.0f} {seconds:>7.0f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
