"""Codec cost per shared genome: target tokens per gene and per kb, and encode/decode throughput.

Windows are the dataset's (`dataset_builder.windows.plan_windows`, per-taxon limits). Throughput is
reported as a ratio against a reference measured in the same run: BPE-tokenizing the same windows'
DNA (`encode_source`), the work every training example does anyway. "ptr ms/win" is a pointer-scheme
round trip per window, building the scheme from the window's token offsets included.

    PYTHONPATH=. .venv/bin/python bench/codec.py [--genomes bsub168 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's top-level modules

from _common import machine  # noqa: E402

from core.taxa import TAXA  # noqa: E402
from dataset_builder.windows import GeneIndex, plan_windows, window_genes  # noqa: E402
from genome_io.fasta import read_fasta  # noqa: E402
from genome_io.gff import read_gff  # noqa: E402
from tests.fixtures.genomes import GENOME_NAMES, GENOME_TAXA, SHARED_GENOMES  # noqa: E402
from tokenization.codec import decode, encode, genes_to_text, text_to_genes  # noqa: E402
from tokenization.coordinates import PointerCoordinates  # noqa: E402
from tokenization.tokenizer import encode_source, train_dna_bpe  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def genome_windows(name: str) -> list[tuple[str, list]]:
    """(DNA, window-relative genes) of every dataset window of one shared genome."""
    directory = SHARED_GENOMES / name
    sequences = dict(read_fasta(directory / "genome.fna.gz"))
    genes = read_gff(
        directory / "annotation.gff3.gz", {k: len(v) for k, v in sequences.items()}
    ).genes_by_seqid
    limit, threshold = TAXA[GENOME_TAXA[name]]
    out = []
    for seqid, seq in sequences.items():
        index = GeneIndex(genes.get(seqid, []))
        for window in plan_windows(len(seq), index.genes, limit, threshold, limit // 10):
            out.append((seq[window.start - 1 : window.end], window_genes(index, window)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--genomes", nargs="*", default=GENOME_NAMES, help="shared genome names (default: all)"
    )
    args = parser.parse_args()
    print(machine())
    if not args.genomes:
        sys.exit(f"no genomes: {SHARED_GENOMES} is absent")

    first = next(iter(read_fasta(SHARED_GENOMES / args.genomes[0] / "genome.fna.gz")))[1][:1_000_000]
    tokenizer = train_dna_bpe(sequences=[first])
    header = (
        f"{'genome':22} {'windows':>7} {'genes':>6} {'tok/gene':>8} {'tok/kb':>7} {'max tok':>7} "
        f"{'enc genes/s':>11} {'dec genes/s':>11} {'ptr ms/win':>10} {'codec/BPE time':>14}"
    )
    print(header)
    print("-" * len(header))
    for name in args.genomes:
        windows = genome_windows(name)
        genes = sum(len(g) for _, g in windows)
        bp = sum(len(dna) for dna, _ in windows)
        texts, t_encode = timed(lambda windows=windows: [genes_to_text(g) for _, g in windows])
        _, t_decode = timed(lambda texts=texts: [text_to_genes(t) for t in texts])
        sources, t_bpe = timed(lambda windows=windows: [encode_source(tokenizer, dna) for dna, _ in windows])

        def pointer_round_trip(windows=windows, sources=sources):
            for (_, gs), source in zip(windows, sources, strict=True):
                scheme = PointerCoordinates(source["token_offsets"], len(tokenizer))
                decode(encode(gs, scheme), scheme)

        _, t_pointer = timed(pointer_round_trip)
        tokens = [len(t.split()) for t in texts]
        print(
            f"{name:22} {len(windows):7d} {genes:6d} {sum(tokens) / max(genes, 1):8.1f} "
            f"{1000 * sum(tokens) / bp:7.1f} {max(tokens):7d} {genes / t_encode:11.0f} {genes / t_decode:11.0f} "
            f"{1000 * t_pointer / len(windows):10.1f} {(t_encode + t_decode) / t_bpe:14.3f}"
        )


if __name__ == "__main__":
    main()
