"""Synthetic windows with planted features, for probes that must show coordinates are learnable.

- `marker_window`: random DNA with one planted 12-bp marker; the target is that marker as one gene record.
- `orf_window`: random DNA with one planted ORF (ATG, in-frame codons without a stop, a stop codon).
- `spliced_gene_window`: random DNA with one planted multi-exon coding gene (GT..AG introns, the frame carried
  across them), on either strand; the target is gene -> mRNA -> exons = CDS segments.
`write_windows` stores them in the baked-dataset layout (`data/<taxon>/<species>/<split>-*.parquet` plus a
card listing the config), so train.py reads them with `load_dataset(dir, taxon)` like real genomes.
"""

from __future__ import annotations

import random
from pathlib import Path

import datasets
import yaml
from Bio.Seq import reverse_complement

from core.features import DIRECT, Gene, Transcript
from dataset_builder.bake import FEATURES
from tokenization.codec import genes_to_text

MARKER = "GATTACATGCCA"  # 12 bp, planted once per window
STOPS = ("TAA", "TAG", "TGA")
KOZAK = "GCCACC"  # planted just before the start codon of a spliced gene (Kozak's gccRccATGG)
POLYPYRIMIDINE = 12  # bp of C/T before an intron's acceptor YAG
SENSE_CODONS = tuple(a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT" if a + b + c not in STOPS)
# Codon usage of a spliced gene: biased as in real genomes (purine first, G/C third), which shows the frame.
CODON_USAGE = tuple((2 if c[0] in "AG" else 1) * (3 if c[2] in "GC" else 1) for c in SENSE_CODONS)


def random_bases(rng: random.Random, n: int) -> str:
    return "".join(rng.choices("ACGT", k=n))


def _row(name: str, sequence: str, genes: list[Gene], taxon: str) -> dict:
    return {
        "species": "synthetic",
        "taxon": taxon,
        "seqid": name,
        "start": 1,
        "end": len(sequence),
        "strand_augmented": False,
        "sequence": sequence,
        "target": genes_to_text(genes),
        "n_genes": len(genes),
        "n_partial": 0,
        "hints": "",
    }


def marker_window(rng: random.Random, name: str, length: int = 1000, taxon: str = "prokaryotes") -> dict:
    """One window: random DNA, MARKER at a uniformly random position, target = one gene record on it."""
    start = rng.randrange(length - len(MARKER) + 1)
    sequence = random_bases(rng, start) + MARKER + random_bases(rng, length - start - len(MARKER))
    return _row(name, sequence, [Gene(start, start + len(MARKER) - 1, "+")], taxon)


def orf_window(
    rng: random.Random,
    name: str,
    length: int = 1500,
    orf_bp: tuple[int, int] = (150, 900),
    taxon: str = "prokaryotes",
) -> dict:
    """One window: random DNA with one planted ORF (ATG ... stop, `orf_bp` long, a multiple of 3) on + strand,
    target = a bacterial gene record (gene -> CDS over the whole gene)."""
    codons = rng.randrange(orf_bp[0] // 3, orf_bp[1] // 3 + 1)
    orf = "ATG" + "".join(rng.choices(SENSE_CODONS, k=codons - 2)) + rng.choice(STOPS)
    start = rng.randrange(length - len(orf) + 1)
    sequence = random_bases(rng, start) + orf + random_bases(rng, length - start - len(orf))
    end = start + len(orf) - 1
    gene = Gene(start, end, "+", "gene", (Transcript(DIRECT, ((start, end),), (start, end)),))
    return _row(name, sequence, [gene], taxon)


def spliced_gene_window(
    rng: random.Random,
    name: str,
    length: int = 1500,
    introns: tuple[int, int] = (1, 4),
    intron_bp: tuple[int, int] = (40, 150),
    exon_bp: tuple[int, int] = (30, 120),
    taxon: str = "unicellular",
    signals: bool = True,
) -> dict:
    """One window: random DNA with one planted coding gene of `introns` canonical GT..AG introns (`intron_bp`
    long), its exons `exon_bp` long and cut at any base, so that the codon frame runs on across each intron;
    the spliced CDS is ATG, sense codons, a stop. Half the windows carry the gene on the - strand.

    `signals` (default) gives the gene the sequence signals real eukaryote genes carry (`intron`, `KOZAK`,
    `CODON_USAGE`). Without them the exon chain is not identifiable: in each of 300 bare 600-bp windows
    (exons 25-60, introns 40-70 bp) moving one exon boundary by at most 45 bp to another canonical splice site
    gave another valid coding chain, about as likely under this generator as the planted one."""
    n_introns = rng.randint(*introns)
    exon_lengths = [rng.randint(*exon_bp) for _ in range(n_introns + 1)]
    exon_lengths[-1] += -sum(exon_lengths) % 3  # the spliced CDS is whole codons
    usage = CODON_USAGE if signals else None
    cds = "ATG" + "".join(rng.choices(SENSE_CODONS, usage, k=sum(exon_lengths) // 3 - 2)) + rng.choice(STOPS)
    lead = KOZAK if signals else ""
    start = rng.randrange(len(lead), length - sum(exon_lengths) - n_introns * intron_bp[1] + 1)
    pieces, exons, position, offset = [], [], start, 0
    for index, exon_length in enumerate(exon_lengths):
        pieces.append(cds[offset : offset + exon_length])
        exons.append((position, position + exon_length - 1))
        offset, position = offset + exon_length, position + exon_length
        if index < n_introns:
            size = rng.randint(*intron_bp)
            pieces.append(intron(rng, size) if signals else "GT" + random_bases(rng, size - 4) + "AG")
            position += size
    gene_dna = "".join(pieces)
    sequence = (
        random_bases(rng, start - len(lead))
        + lead
        + gene_dna
        + random_bases(rng, length - start - len(gene_dna))
    )
    end = start + len(gene_dna) - 1
    gene = Gene(start, end, "+", "gene", (Transcript("mRNA", tuple(exons), (start, end)),))
    if rng.random() < 0.5:
        sequence, gene = reverse_complement(sequence), gene.mirror(length)
    return _row(name, sequence, [gene], taxon)


def intron(rng: random.Random, length: int) -> str:
    """A `length`-bp intron (at least 21) with the consensus of real ones: the donor GTRAGT, random bases, a
    polypyrimidine tract and the acceptor YAG (R = A/G, Y = C/T)."""
    middle = random_bases(rng, length - len("GTRAGT") - POLYPYRIMIDINE - len("YAG"))
    tract = "".join(rng.choices("CT", k=POLYPYRIMIDINE))
    return f"GT{rng.choice('AG')}AGT{middle}{tract}{rng.choice('CT')}AG"


def write_windows(dataset_dir: str | Path, taxon: str, splits: dict[str, list[dict]]) -> Path:
    """Write windows in the baked layout and a card whose YAML lists the `taxon` config."""
    dataset_dir = Path(dataset_dir)
    species_dir = dataset_dir / "data" / taxon / "synthetic"
    species_dir.mkdir(parents=True, exist_ok=True)
    splits = {split: rows for split, rows in splits.items() if rows}
    for split, rows in splits.items():
        datasets.Dataset.from_list(rows, features=FEATURES).to_parquet(
            str(species_dir / f"{split}-00000.parquet")
        )
    data_files = [{"split": split, "path": f"data/{taxon}/*/{split}-*.parquet"} for split in splits]
    card = {"configs": [{"config_name": taxon, "data_files": data_files}]}
    (dataset_dir / "README.md").write_text(
        f"---\n{yaml.safe_dump(card, sort_keys=False)}---\nSynthetic windows.\n"
    )
    return dataset_dir
