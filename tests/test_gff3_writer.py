"""GFF3 writing: validator-clean output, exact round trips through read_gff, escaping, atomic writes."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
from collections import Counter
from urllib.parse import unquote

import pytest

from core.errors import InputError
from core.features import DIRECT, Gene, Transcript
from genome_io.fasta import fasta_lengths
from genome_io.gff import read_gff
from genome_io.gff3_writer import escape_attribute, escape_seqid, write_gff3
from tests.fixtures.genes import coding
from tests.fixtures.genomes import GENOME_NAMES, shared_genome

# Every shape the writer must handle: NCBI gene -> CDS (both strands, a phase-2 5' partial), a gene with
# two spliced mRNA isoforms and UTRs, a tRNA, a non-coding DIRECT gene, a pseudogene, a childless gene.
SYNTHETIC = {
    "ctg1": [
        coding(3001, 3600, "-", open_right=True),
        coding(101, 400, "+", name="a;b=c,d"),
        Gene(
            1001,
            2200,
            "+",
            transcripts=(
                Transcript("mRNA", ((1001, 1300), (1501, 2200)), (1101, 2000)),
                Transcript("mRNA", ((1001, 1300), (1601, 2200)), (1102, 1900), phase=0),
            ),
        ),
        Gene(2301, 2372, "+", transcripts=(Transcript("tRNA", ((2301, 2372),)),)),
        Gene(2401, 2500, "-", "pseudogene", (Transcript(DIRECT, ((2401, 2500),), (2401, 2500)),)),
        Gene(2601, 2700, "+"),
    ],
    "ctg2": [
        coding(2, 601, "+", open_left=True),
        Gene(801, 900, "-", "ncRNA_gene", (Transcript(DIRECT, ((801, 900),)),)),
    ],
}
LENGTHS = {"ctg1": 3600, "ctg2": 1000, "ctg3": 500}


def gt_validate(path):
    """(valid, messages) from GenomeTools, or skip when gt is not installed."""
    if shutil.which("gt") is None:
        pytest.skip("GenomeTools (gt) is not installed")
    done = subprocess.run(["gt", "gff3validator", str(path)], capture_output=True, text=True)
    return done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr


def test_synthetic_round_trip_is_identical(tmp_path):
    path = tmp_path / "out.gff3"
    write_gff3(SYNTHETIC, LENGTHS, path)
    back = read_gff(path, LENGTHS)
    assert not back.report.dropped
    assert any(g.open_left or g.open_right for genes in back.genes_by_seqid.values() for g in genes)
    assert back.genes_by_seqid == {seqid: sorted(genes) for seqid, genes in SYNTHETIC.items()}


def test_synthetic_output_is_validator_clean(tmp_path):
    path = tmp_path / "out.gff3"
    write_gff3(SYNTHETIC, LENGTHS, path, scores={"ctg1": [-0.5, None, -1.25, 0, 1, 2], "ctg2": [0.1, 0.2]})
    valid, messages = gt_validate(path)
    assert valid, messages


def test_layout_phases_partials_and_scores():
    out = io.StringIO()
    genes = {"ctg1": SYNTHETIC["ctg1"], "ctg2": SYNTHETIC["ctg2"]}
    scores = {"ctg1": [-0.5, None, -1.25, None, None, None], "ctg2": [None, None]}
    write_gff3(
        genes, LENGTHS, out, source="test", scores=scores, attributes={"ctg1": [{"note": "x"}] + [{}] * 5}
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "##gff-version 3"
    assert lines[1:4] == [
        "##sequence-region ctg1 1 3600",
        "##sequence-region ctg2 1 1000",
        "##sequence-region ctg3 1 500",
    ]
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    # Sorted by seqid (FASTA order) then position, each gene followed by its children.
    gene_rows = [r for r in rows if r[2] in ("gene", "pseudogene", "ncRNA_gene")]
    assert [(r[0], int(r[3])) for r in gene_rows] == [
        ("ctg1", 101), ("ctg1", 1001), ("ctg1", 2301), ("ctg1", 2401), ("ctg1", 2601), ("ctg1", 3001),
        ("ctg2", 2), ("ctg2", 801),
    ]  # fmt: skip
    # Scores and extra attributes stay with their gene although the input was not sorted.
    assert [r[5] for r in gene_rows[:6]] == [".", "-1.25", ".", ".", ".", "-0.5"]
    assert gene_rows[5][8].endswith(";note=x") and all(r[1] == "test" for r in rows)
    attributes = [dict(kv.split("=") for kv in r[8].split(";")) for r in rows]
    ids = Counter(a["ID"] for a in attributes)
    assert all(i.endswith(".cds") for i, n in ids.items() if n > 1)  # only CDS segments share an ID
    assert {a["Parent"] for a in attributes if "Parent" in a} <= set(ids)
    # Second isoform: CDS 1102..1300 (199 bp, phase 0) then 1601..1900 starting 1 base into a codon.
    # 199 = 3*66 + 1, so the next segment starts with 2 bases left to finish the codon: phase 2.
    cds = [(int(r[3]), int(r[4]), r[7]) for r in rows if r[2] == "CDS" and r[8].startswith("ID=ctg1_g2.t2")]
    assert cds == [(1102, 1300, "0"), (1601, 1900, "2")]
    # Minus-strand gene open at its right end (no start codon): NCBI end_range on gene and CDS.
    open_rows = [r for r in rows if r[3] == "3001"]
    assert all("partial=true" in r[8] and "end_range=3600,." in r[8] for r in open_rows)
    assert [r[2] for r in open_rows] == ["gene", "CDS"]
    assert "start_range=.,2" in gene_rows[6][8]
    # DIRECT non-coding gene: exons hang on the gene itself; coding DIRECT: CDS only, no exon line.
    assert [r[2] for r in rows if r[0] == "ctg2"] == ["gene", "CDS", "ncRNA_gene", "exon"]


def test_attribute_and_seqid_escaping():
    nasty = "a;b=c,d&e%f\tg\nh é"
    escaped = escape_attribute(nasty)
    assert not set(";=,&\t\n") & set(escaped) and unquote(escaped) == nasty
    assert escape_attribute("plain-Name_1.2 (x)") == "plain-Name_1.2 (x)"  # nothing else is encoded
    assert escape_seqid("chr 1>x") == "chr%201%3Ex" and escape_seqid("NC_000964.3|a:b") == "NC_000964.3|a:b"


def test_gzip_output(tmp_path):
    path = tmp_path / "out.gff3.gz"
    write_gff3(SYNTHETIC, LENGTHS, path)
    with gzip.open(path, "rt") as fh:
        assert fh.readline() == "##gff-version 3\n"
    assert read_gff(path, LENGTHS).genes_by_seqid == {
        seqid: sorted(genes) for seqid, genes in SYNTHETIC.items()
    }


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.gff3"
    path.write_text("previous\n")
    too_long = {"ctg1": [*SYNTHETIC["ctg1"], coding(3500, 3700, "+")]}
    with pytest.raises(ValueError, match="outside ctg1"):
        write_gff3(too_long, LENGTHS, path)
    with pytest.raises(ValueError, match="without a length: ctgX"):
        write_gff3({"ctgX": []}, LENGTHS, path)
    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.gff3"]


def test_unwritable_path_is_an_input_error(tmp_path):
    path = tmp_path / "missing_dir" / "out.gff3"
    with pytest.raises(InputError, match=r"missing_dir/out.gff3: cannot write"):
        write_gff3(SYNTHETIC, LENGTHS, path)
    assert not path.parent.exists()


@pytest.mark.genomes
@pytest.mark.parametrize("name", GENOME_NAMES or ["<none>"])
def test_real_genome_round_trip_and_validator(name, tmp_path):
    """Every shared genome: read, write back, the validator is clean and reading again gives the same genes."""
    if name == "<none>":
        pytest.skip("no shared genomes")
    fasta, gff = shared_genome(name)
    lengths = fasta_lengths(fasta)
    genes = read_gff(gff, lengths).genes_by_seqid
    path = tmp_path / "out.gff3"
    write_gff3(genes, lengths, path)
    valid, messages = gt_validate(path)
    assert valid, messages[:2000]
    assert read_gff(path, lengths).genes_by_seqid == genes


def test_spliced_genes_on_both_strands_as_users_expect(tmp_path):
    """Eukaryote layout: gene -> mRNA -> exons, 5' UTR, CDS chain, 3' UTR; introns implied; sorted; gt-clean."""
    plus = Transcript("mRNA", ((1001, 1200), (1401, 1600), (1801, 2100)), (1101, 2000))
    minus = Transcript("mRNA", ((3001, 3300), (3501, 3700), (3901, 4000)), (3101, 3600))
    genes = {"chr": [Gene(3001, 4000, "-", transcripts=(minus,)), Gene(1001, 2100, "+", transcripts=(plus,))]}
    path = tmp_path / "euk.gff3"
    write_gff3(genes, {"chr": 5000}, path)
    valid, messages = gt_validate(path)
    assert valid, messages
    rows = [line.split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
    assert [int(r[3]) for r in rows if r[2] == "gene"] == [1001, 3001]  # sorted by coordinate
    assert not any(r[2] == "intron" for r in rows)  # introns are the gaps of the exon chain
    for gene_id, strand, transcript in (("chr_g1", "+", plus), ("chr_g2", "-", minus)):
        children = [r for r in rows if r[8].split(";")[0].startswith(f"ID={gene_id}.")]
        kinds = [r[2] for r in children]
        order = ("mRNA", "exon", "five_prime_UTR", "CDS", "three_prime_UTR")
        assert kinds == sorted(kinds, key=order.index) and set(kinds) == set(order)
        assert all(r[6] == strand for r in children)
        spans = {
            kind: sorted((int(r[3]), int(r[4])) for r in children if r[2] == kind) for kind in set(kinds)
        }
        assert spans["exon"] == list(transcript.exons)
        # UTRs and CDS tile the exons base for base; the UTRs lie on the right side of the CDS.
        pieces = sorted(spans["five_prime_UTR"] + spans["CDS"] + spans["three_prime_UTR"])
        assert sum(e - s + 1 for s, e in pieces) == sum(e - s + 1 for s, e in transcript.exons)
        cds_start, cds_end = transcript.cds
        five_side = [e < cds_start for _, e in spans["five_prime_UTR"]]
        assert all(five_side) if strand == "+" else not any(five_side)
        # Phases from the chain, 5' to 3': bases still owed to the open codon.
        cds_rows = sorted(
            (r for r in children if r[2] == "CDS"), key=lambda r: int(r[3]), reverse=strand == "-"
        )
        done = 0
        for r in cds_rows:
            assert int(r[7]) == (3 - done % 3) % 3
            done += int(r[4]) - int(r[3]) + 1
    assert read_gff(path, {"chr": 5000}).genes_by_seqid == {"chr": sorted(genes["chr"])}
