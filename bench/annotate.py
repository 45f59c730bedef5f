"""Annotation speed and output validity on CPU, next to pyrodigal on the same sequence in the same run.

    python bench/annotate.py [--slice_bp 20000] [--genomes bsub168 ...] [--sizes tiny default]

For each model size (random weights: speed only), annotates a slice of each shared genome with and
without the biology constraints, checks the GFF3 with `gt gff3validator`, and prints bp/s, the
constraint overhead and the ratio to pyrodigal's bp/s (meta mode, same slice).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine  # noqa: E402

import annotate  # noqa: E402
from annotation.annotator import AnnotationOptions  # noqa: E402
from genome_io.baselines import prodigal_genes  # noqa: E402
from genome_io.fasta import read_fasta  # noqa: E402
from genome_io.gff3_writer import write_gff3  # noqa: E402
from tests.fixtures.genomes import GENOME_TAXA, SHARED_GENOMES  # noqa: E402

SIZES = {  # init_model.py flags
    "tiny": [
        "--hidden_size",
        "64",
        "--num_hidden_layers",
        "2",
        "--num_attention_heads",
        "2",
        "--intermediate_size",
        "128",
        "--decoder_layers",
        "2",
        "--num_experts",
        "4",
    ],
    "default": [],
}


def build_model(size: str, work: Path) -> Path:
    import init_model
    from tests.fixtures.genomes import random_dna
    from tokenization.tokenizer import extend_tokenizer, train_dna_bpe

    tokenizer_dir = work / "tokenizer"
    if not tokenizer_dir.exists():
        tokenizer = train_dna_bpe(sequences=[random_dna(300_000, seed=1)], vocab_size=4096)
        extend_tokenizer(tokenizer)
        tokenizer.save_pretrained(tokenizer_dir)
    out = work / size
    init_model.main(["--save_dir", str(out), "--tokenizer", str(tokenizer_dir), "--use_moe", *SIZES[size]])
    return out


def genome_slice(name: str, slice_bp: int, work: Path) -> Path:
    seqid, sequence = next(iter(read_fasta(SHARED_GENOMES / name / "genome.fna.gz")))
    path = work / f"{name}.fa"
    path.write_text(f">{seqid}\n{sequence[:slice_bp]}\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slice_bp", type=int, default=20_000)
    parser.add_argument("--genomes", nargs="*", default=None, help="shared genome names (default: all)")
    parser.add_argument("--sizes", nargs="*", default=["tiny", "default"], choices=list(SIZES))
    parser.add_argument("--max_new_tokens", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    names = args.genomes or sorted(GENOME_TAXA)
    if not SHARED_GENOMES.is_dir():
        print(f"no shared genomes at {SHARED_GENOMES}: nothing to benchmark")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in args.sizes:
            model, tokenizer = annotate.load_model(str(build_model(size, work)))
            for name in names:
                fasta = genome_slice(name, args.slice_bp, work)
                started = time.perf_counter()
                prodigal_genes(fasta, meta=True)
                prodigal_bps = args.slice_bp / (time.perf_counter() - started)
                speeds, valid = {}, "n/a"
                for constraints in (True, False):
                    genes, lengths, stats = annotate.annotate_genome(
                        model,
                        tokenizer,
                        fasta,
                        AnnotationOptions(
                            GENOME_TAXA[name], constraints=constraints, max_new_tokens=args.max_new_tokens
                        ),
                        progress=False,
                    )
                    speeds[constraints] = stats.bp_per_second
                    out = work / f"{name}.{size}.{constraints}.gff3"
                    write_gff3(genes, lengths, out, scores=stats.scores)
                    if shutil.which("gt"):
                        check = subprocess.run(
                            ["gt", "gff3validator", str(out)], capture_output=True, text=True
                        )
                        ok = check.returncode == 0 and not check.stderr.strip()
                        valid = "ok" if ok and valid != "INVALID" else "INVALID"
                rows.append((size, name, speeds[True], speeds[False], prodigal_bps, valid))
    print(
        f"{'size':<8} {'genome':<22} {'bp/s constr':>12} {'bp/s free':>10} {'overhead':>9} {'vs prodigal':>12} gt"
    )
    for size, name, on, off, prodigal, valid in rows:
        print(
            f"{size:<8} {name:<22} {on:>12,.0f} {off:>10,.0f} {off / on - 1:>8.1%} {on / prodigal:>12.2e} {valid}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
