"""dataset_builder: windows, mirroring, leak-free splits, accounting, codec round trip, load_dataset."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from Bio.Seq import Seq, reverse_complement

from core.features import Gene, Transcript
from dataset_builder.__main__ import main as cli
from dataset_builder.bake import BakeOptions, bake_genome
from dataset_builder.windows import GeneIndex, Window, plan_windows, window_genes
from genome_io.fasta import normalise_dna, read_fasta
from genome_io.gff import read_gff
from tests.fixtures.genomes import (
    GENOME_TAXA,
    needs_augustus,
    random_dna,
    shared_genome,
    write_text,
    yeast_slice,
)
from tokenization.codec import normalise, text_to_genes
from tokenization.track import BOUNDARY, CDS_CLASSES, gene_track

ROOT = Path(__file__).resolve().parents[1]


def _random_genes(rng: random.Random, length: int, n: int, max_len: int) -> list[Gene]:
    out = []
    for _ in range(n):
        size = rng.randint(50, max_len)
        start = rng.randint(1, length - size)
        out.append(Gene(start, start + size - 1, rng.choice("+-"), "gene", ()))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_windows_cover_the_sequence_and_cut_between_genes(seed):
    rng = random.Random(seed)
    length, limit, overlap = rng.randint(20_000, 60_000), 3000, 300
    genes = _random_genes(rng, length, rng.randint(0, 40), 2000) + [Gene(5000, 9000, "+")]  # one long gene
    windows = plan_windows(length, genes, limit, threshold=6000, overlap=overlap)
    tiles = [w for w in windows if not w.long_gene]
    assert tiles[0].start == 1 and tiles[-1].end == length
    for a, b in zip(tiles, tiles[1:], strict=False):
        assert len(a) <= limit and b.start <= a.end + 1 and a.end - b.start + 1 <= overlap
    short = [g for g in genes if g.end - g.start + 1 <= limit]
    for w in tiles[:-1]:  # a cut goes through a gene only when no clean boundary was within reach
        through = [g for g in short if g.start <= w.end < g.end]
        if through:
            assert all(
                any(g.start <= b - 1 < g.end for g in short) for b in range(w.start + limit // 2, w.end + 2)
            )
    assert [(w.start, w.end) for w in windows if w.long_gene] == [(5000 - 150, 9000 + 150)]


def test_window_genes_clip_with_open_edges_and_keep_the_frame():
    sequence = random_dna(3000, seed=9)
    t = Transcript("mRNA", ((101, 400), (601, 1000)), (201, 900), 0)
    gene = Gene(101, 1000, "+", "gene", (t,))
    (clipped,) = window_genes(GeneIndex([gene]), Window(301, 1300))
    assert clipped.open_left and not clipped.open_right and clipped.start == 0
    whole = "".join(sequence[s - 1 : e] for s, e in t.cds_segments())
    ct = clipped.transcripts[0]
    part = "".join(sequence[300 + s : 300 + e + 1] for s, e in ct.cds_segments())
    assert whole.endswith(part)
    assert (len(whole) - len(part) + ct.phase) % 3 == 0  # the part's first whole codon is a codon of the gene


def test_mirroring_twice_is_identity_and_cds_still_translates():
    rng = random.Random(5)
    orf = "ATG" + "".join(rng.choice(["GCT", "CTG", "AAA", "GAT", "CGC"]) for _ in range(99)) + "TAA"
    window = (
        random_dna(200, seed=6) + orf[:150] + random_dna(80, seed=7) + orf[150:] + random_dna(300, seed=8)
    )
    a, b = 200, 200 + 150 + 80
    t = Transcript(
        "mRNA", ((a - 20, a + 149), (b, b + len(orf) - 150 - 1 + 30)), (a, b + len(orf) - 150 - 1), 0
    )
    gene = Gene(a - 20, b + len(orf) - 150 + 29, "+", "gene", (t,), open_left=True)
    mirrored = gene.mirror(len(window))
    assert mirrored.mirror(len(window)) == gene
    assert mirrored.strand == "-" and mirrored.open_right and not mirrored.open_left
    rc = reverse_complement(window)
    segs = mirrored.transcripts[0].cds_segments()
    dna = str(Seq("".join(rc[s : e + 1] for s, e in segs)).reverse_complement())
    assert dna == orf and str(Seq(dna).translate()).endswith("*")


def _load(dataset_dir: Path, taxon: str, cache: Path) -> datasets.DatasetDict:
    return datasets.load_dataset(str(dataset_dir), taxon, cache_dir=str(cache))


def _check_windows(ds: datasets.DatasetDict, fasta: Path, gff: Path | None, genes_by_seqid=None) -> None:
    """Round trip: every target decodes to exactly the clipped, shifted genes of its window."""
    sequences = dict(read_fasta(fasta))
    if genes_by_seqid is None:
        genes_by_seqid = read_gff(gff, {s: len(q) for s, q in sequences.items()}).genes_by_seqid
    indexes = {s: GeneIndex(g) for s, g in genes_by_seqid.items()}
    for row in (r for split in ds.values() for r in split):
        window = Window(row["start"], row["end"])
        dna = normalise_dna(sequences[row["seqid"]][window.start - 1 : window.end])  # as every reader
        expected = window_genes(indexes.get(row["seqid"], GeneIndex([])), window)
        if row["strand_augmented"]:
            dna, expected = reverse_complement(dna), [g.mirror(len(window)) for g in expected]
        assert row["sequence"] == dna
        decoded = text_to_genes(row["target"], len(window))
        assert not decoded.errors
        assert decoded.genes == normalise(expected)
        assert row["n_genes"] == len(expected)


def _check_tracks(ds: datasets.DatasetDict) -> None:
    """Every window's per-base track marks exactly its genes' CDS bases on each strand, and in frame: the
    stop codon of a one-transcript gene that overlaps no other gene of its strand is marked as codon positions 0, 1, 2, and
    reads as a stop codon (but for reference models that end without one, e.g. Ensembl's cds_end_NF)."""
    stops, stop_codon = {"TAA", "TAG", "TGA"}, BOUNDARY.index("stop_codon")
    in_frame = total = 0
    for row in (r for split in ds.values() for r in split):
        dna, genes = row["sequence"], text_to_genes(row["target"]).genes
        track = gene_track(genes, len(dna))
        for strand, column in (("+", 0), ("-", 2)):
            stranded = [g for g in genes if g.strand == strand]
            cds = {
                b
                for g in stranded
                for t in g.transcripts
                for s, e in t.cds_segments()
                for b in range(s, e + 1)
            }
            assert set(np.flatnonzero(np.isin(track[:, column], CDS_CLASSES)).tolist()) == cds
            for gene in stranded:
                alone = all(o is gene or o.end < gene.start or o.start > gene.end for o in stranded)
                if not alone or len(gene.transcripts) != 1 or gene.transcripts[0].cds is None:
                    continue
                s, e = gene.transcripts[0].cds
                codon = range(e - 2, e + 1) if strand == "+" else range(s + 2, s - 1, -1)
                if min(codon) < 0 or max(codon) >= len(dna) or track[codon[0], column + 1] != stop_codon:
                    continue  # open 3' end: not marked
                assert list(track[list(codon), column]) == list(CDS_CLASSES)
                bases = "".join(dna[b] for b in codon)
                total += 1
                in_frame += (
                    bases if strand == "+" else bases.translate(str.maketrans("ACGT", "TGCA"))
                ) in stops
    assert total == 0 or in_frame >= 0.8 * total, (in_frame, total)


def _assert_leak_free(ds: datasets.DatasetDict) -> None:
    train = {}
    for r in ds["train"]:
        train.setdefault((r["species"], r["seqid"]), []).append((r["start"], r["end"]))
    for split in ("validation", "test"):
        for r in ds.get(split, []):
            for s, e in train.get((r["species"], r["seqid"]), []):
                assert e < r["start"] or s > r["end"], (
                    f"{split} window {r['start']}..{r['end']} in train {s}..{e}"
                )


def test_bake_tiny_genome_then_load_in_a_fresh_process(tiny_genome, tmp_path):
    fasta, gff = tiny_genome
    out = tmp_path / "ds"
    options = dict(
        limit=1000, overlap=100, split_block=2000, val_fraction=0.3, test_fraction=0.3, rc_augment=True
    )
    report = bake_genome("tiny", fasta, gff, BakeOptions("prokaryotes", **options), out, progress=False)
    assert report.kept + sum(report.dropped.values()) == report.genes_in_file == 4
    script = (
        "import datasets, json, sys; ds = datasets.load_dataset(sys.argv[1], 'prokaryotes', cache_dir=sys.argv[2]);"
        "print(json.dumps({k: v.num_rows for k, v in ds.items()}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(out), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    assert sum(rows.values()) == 2 * sum(report.windows.values())  # every window twice (rc_augment)
    ds = _load(out, "prokaryotes", tmp_path / "cache2")
    _check_windows(ds, fasta, gff)
    _assert_leak_free(ds)
    card = (out / "README.md").read_text()
    assert "config_name: prokaryotes" in card and "| tiny |" in card


def test_the_layout_the_bake_module_documents_is_what_it_writes(tiny_genome, tmp_path):
    from dataset_builder import bake

    documented = [line.split()[0] for line in bake.__doc__.splitlines() if line.strip().startswith("data/")]
    # data/<taxon>/<species>/<split>-NNNNN.parquet: a <name> is one word, NNNNN five digits
    patterns = [re.sub(r"<\w+>", r"\\w+", re.escape(p)).replace("NNNNN", r"\d{5}") + "$" for p in documented]
    options = BakeOptions("prokaryotes", limit=1000, overlap=100, val_fraction=0.3, test_fraction=0.3)
    bake_genome("tiny", *tiny_genome, options, tmp_path / "ds", progress=False)
    written = [
        p.relative_to(tmp_path / "ds").as_posix()
        for p in (tmp_path / "ds" / "data").rglob("*")
        if p.is_file()
    ]
    assert written and any(name.endswith(".parquet") for name in written)
    for name in written:
        assert any(re.match(pattern, name) for pattern in patterns), (
            f"{name} is not in bake.py's documented layout"
        )


def test_rebake_replaces_one_species_and_holdout_goes_to_test(tiny_genome, tmp_path):
    fasta, gff = tiny_genome
    out = tmp_path / "ds"
    bake_genome("a", fasta, gff, BakeOptions("prokaryotes", limit=1000, overlap=100), out, progress=False)
    bake_genome("b", fasta, gff, BakeOptions("prokaryotes", limit=2000, overlap=100), out, progress=False)
    held = BakeOptions("prokaryotes", limit=1000, overlap=100, holdout=("a",))
    bake_genome("a", fasta, gff, held, out, progress=False)
    ds = _load(out, "prokaryotes", tmp_path / "cache")
    assert set(ds["test"]["species"]) == {"a"} and set(ds["train"]["species"]) == {"b"}
    assert not [p for p in (out / "data" / "prokaryotes").iterdir() if p.name.startswith(".")]


def test_coding_only_keeps_cds_chains_and_counts_what_it_leaves_out(tiny_genome, tmp_path, capsys):
    """bake --coding_only: the spliced mRNA is cut to its CDS chain (its UTRs gone, the intron kept), the
    tRNA gene is left out and counted, and the windows that held it are baked (its bases: no coding gene)."""
    fasta, gff = tiny_genome
    out = tmp_path / "ds"
    args = ["bake", str(fasta), str(gff), "--taxon", "unicellular", "--species", "tiny", "--limit", "6000"]
    assert (
        cli(
            [*args, "--val_fraction", "0", "--test_fraction", "0", "--dataset_dir", str(out), "--coding_only"]
        )
        == 0
    )
    assert "1 non-coding (left out by --coding_only)" in capsys.readouterr().out
    report = json.loads((out / "data" / "unicellular" / "tiny" / "report.json").read_text())
    assert report["kept"] + sum(report["dropped"].values()) == report["genes_in_file"] == 4  # none lost
    rows = _load(out, "unicellular", tmp_path / "cache")["train"]
    genes = {  # window coordinates are 0-based: on the contig, 1-based
        row["seqid"]: [g.shift(row["start"]) for g in text_to_genes(row["target"]).genes] for row in rows
    }
    assert genes["ctg2"] == []  # the tRNA's window is kept, with no gene in it
    [spliced] = [g for g in genes["ctg1"] if g.strand == "+" and len(g.transcripts[0].exons) > 1]
    assert (spliced.start, spliced.end) == (3101, 4000)
    assert spliced.transcripts[0].exons == ((3101, 3300), (3501, 4000))
    assert spliced.transcripts[0].cds == (3101, 4000) and spliced.transcripts[0].phase == 0
    # The two NCBI-style coding genes are whole CDS already: unchanged.
    assert sorted((g.start, g.end) for g in genes["ctg1"]) == [(101, 400), (1001, 1600), (3101, 4000)]


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    fasta = write_text(tmp_path / "g.fa", ">c1\n" + random_dna(3000) + "\n")
    gff = write_text(tmp_path / "g.gff3", "c1\tS\tgene\t10\t20\n")
    code = cli(
        [
            "bake",
            str(fasta),
            str(gff),
            "--taxon",
            "prokaryotes",
            "--species",
            "x",
            "--dataset_dir",
            str(tmp_path / "d"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"python -m dataset_builder: error: {gff}:1: ") and "\n" not in err
    bad_fasta = write_text(tmp_path / "bad.fa", "ACGT\n")
    code = cli(
        [
            "bake",
            str(bad_fasta),
            str(gff),
            "--taxon",
            "prokaryotes",
            "--species",
            "x",
            "--dataset_dir",
            str(tmp_path / "d"),
        ]
    )
    assert code == 2 and f"{bad_fasta}:1: " in capsys.readouterr().err


def test_bake_many_extracts_new_tokens_and_hints(tmp_path, capsys):
    raw = tmp_path / "raw" / "sp1"
    raw.mkdir(parents=True)
    write_text(raw / "genome.fna.gz", ">c1\n" + random_dna(4000, seed=3) + "\n")
    write_text(
        raw / "genes.gff3",
        "c1\tS\tgene\t100\t700\t.\t+\t.\tID=g\nc1\tS\tweird_RNA\t100\t700\t.\t+\t.\tParent=g\n",
    )
    tokens = tmp_path / "new.txt"
    args = ["bake_many", "sp1", "--raw_dir", str(raw.parent), "--taxon", "prokaryotes", "--hint_ratio", "1.0"]
    code = cli([*args, "--extract_tokens", str(tokens), "--dataset_dir", str(tmp_path / "d"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert tokens.read_text() == "<weird_RNA>\n"
    ds = _load(tmp_path / "d", "prokaryotes", tmp_path / "cache")
    rows = [r for split in ds.values() for r in split]
    assert rows and all(r["hints"] == r["target"] for r in rows)


def test_prodigal_labels_are_declared_silver(tmp_path, capsys):
    pytest.importorskip("genome_io.baselines")
    orfs = random_dna(20_000, seed=11)
    fasta = write_text(tmp_path / "g.fa", ">c1\n" + orfs + "\n")
    code = cli(
        [
            "bake",
            str(fasta),
            "--labels",
            "prodigal",
            "--taxon",
            "prokaryotes",
            "--species",
            "s",
            "--dataset_dir",
            str(tmp_path / "d"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "silver labels" in out
    assert "silver labels" in (tmp_path / "d" / "README.md").read_text()
    from genome_io.baselines import prodigal_genes

    ds = _load(tmp_path / "d", "prokaryotes", tmp_path / "cache")
    _check_windows(ds, fasta, None, prodigal_genes(fasta))


@pytest.mark.genomes
def test_augustus_labels_are_declared_silver_with_their_parameter_set(tmp_path, capsys):
    needs_augustus()
    sequence, _ = yeast_slice()
    fasta = write_text(tmp_path / "yeast.fa", ">c1\n" + sequence + "\n")
    argv = [
        "bake",
        str(fasta),
        "--labels",
        "augustus",
        "--taxon",
        "unicellular",
        "--species",
        "y",
        "--limit",
        "5000",
    ]
    code = cli([*argv, "--dataset_dir", str(tmp_path / "d"), "--quiet"])
    out = capsys.readouterr().out
    said = "AUGUSTUS predictions (parameter set saccharomyces): silver labels, not a curated annotation"
    assert code == 0 and said in out and "labels: augustus saccharomyces" in out
    assert said in (tmp_path / "d" / "README.md").read_text()
    from genome_io.baselines import augustus_genes

    labels = augustus_genes(fasta, "saccharomyces")
    assert sum(map(len, labels.values())) >= 6
    ds = _load(tmp_path / "d", "unicellular", tmp_path / "cache")
    _check_windows(ds, fasta, None, labels)
    report = json.loads((tmp_path / "d" / "data" / "unicellular" / "y" / "report.json").read_text())
    assert report["augustus_species"] == "saccharomyces" and report["genes_in_file"] == len(labels["c1"])


def test_augustus_labels_need_a_parameter_set_for_prokaryotes(tmp_path, capsys):
    fasta = write_text(tmp_path / "g.fa", ">c1\n" + random_dna(3000) + "\n")
    argv = ["bake", str(fasta), "--labels", "augustus", "--taxon", "prokaryotes", "--species", "s"]
    assert cli([*argv, "--dataset_dir", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "python -m dataset_builder: error: --augustus_species: no default AUGUSTUS parameter set for prokaryotes; name one"
    )


def test_generator_based_builder(tiny_genome, tmp_path):
    from dataset_builder.builder import GffMoeWindows

    fasta, gff = tiny_genome
    builder = GffMoeWindows(
        config_name="prokaryotes", genomes=[("tiny", str(fasta), str(gff))], options={"limit": 2000, "overlap": 100},
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    builder.download_and_prepare()
    splits = builder.info.splits
    ds = datasets.DatasetDict({s: builder.as_dataset(split=s) for s in splits if splits[s].num_examples})
    assert ds["train"].num_rows > 0
    _check_windows(ds, fasta, gff)


@pytest.mark.genomes
@pytest.mark.parametrize("name", sorted(GENOME_TAXA))
def test_bake_shared_genomes(name, tmp_path):
    fasta, gff = shared_genome(name)
    options = BakeOptions(GENOME_TAXA[name], val_fraction=0.2, test_fraction=0.2)
    report = bake_genome(name, fasta, gff, options, tmp_path / "ds", progress=False)
    assert report.kept + sum(report.dropped.values()) == report.genes_in_file
    assert report.kept >= 0.85 * report.genes_in_file  # human: 2 genes over the 150 kb bound
    ds = _load(tmp_path / "ds", GENOME_TAXA[name], tmp_path / "cache")
    assert sum(ds[s].num_rows for s in ds) == sum(report.windows.values())
    _check_windows(ds, fasta, gff)
    _check_tracks(ds)
    _assert_leak_free(ds)
