"""genome_io.gff: every dialect to Gene/Transcript, counted per-feature skips, structural aborts."""

from __future__ import annotations

import gzip

import pytest
from Bio.Seq import Seq

from core.errors import InputError
from core.features import DIRECT, Gene, Transcript, is_gene_type
from genome_io.fasta import read_fasta
from genome_io.gff import read_gff
from tests.fixtures.genomes import write_text
from tokenization.codec import genes_to_text, normalise, text_to_genes

LENGTHS = {"c1": 20_000, "c2": 5_000}


def gff(tmp_path, *rows, name="a.gff3"):
    lines = ["##gff-version 3", *("\t".join(map(str, row)) for row in rows), ""]
    return write_text(tmp_path / name, "\n".join(lines))


def genes(result, seqid="c1"):
    return result.genes_by_seqid.get(seqid, [])


def assert_accounted(report):
    assert report.kept + sum(report.dropped.values()) == report.genes_in_file


def test_tiny_genome_dialects(tiny_genome):
    fasta, path = tiny_genome
    result = read_gff(path, {s: len(q) for s, q in read_fasta(fasta)})
    g1, g2, g3 = genes(result, "ctg1")
    assert g1 == Gene(101, 400, "+", "gene", (Transcript(DIRECT, ((101, 400),), (101, 400), 0),))
    assert g2.strand == "-" and g2.transcripts[0].cds == (1001, 1600)
    assert g3.transcripts == (Transcript("mRNA", ((3001, 3300), (3501, 4200)), (3101, 4000), 0),)
    (g4,) = genes(result, "ctg2")
    assert g4.transcripts == (Transcript("tRNA", ((201, 272),)),)
    assert result.report.kept == result.report.genes_in_file == 4
    # the second CDS phase (1) disagrees with the chain (200 bp -> phase 1 is right): nothing to normalise
    assert result.report.phases_normalised == 0


def test_ncbi_slippage_segments_stay_apart_and_pseudogene_keeps_cds(tmp_path):
    path = gff(
        tmp_path,
        ("c1", "R", "gene", 100, 1000, ".", "+", ".", "ID=g1"),
        ("c1", "R", "CDS", 100, 171, ".", "+", "0", "ID=cds1;Parent=g1"),
        ("c1", "R", "CDS", 171, 1000, ".", "+", "0", "ID=cds1;Parent=g1"),  # -1 frameshift
        ("c1", "R", "pseudogene", 2000, 2300, ".", "-", ".", "ID=p1;pseudo=true"),
        ("c1", "R", "CDS", 2000, 2300, ".", "-", "0", "ID=cds2;Parent=p1;pseudo=true"),
    )
    g1, p1 = genes(read_gff(path, LENGTHS))
    assert g1.transcripts[0].exons == ((100, 171), (171, 1000)) and g1.transcripts[0].cds == (100, 1000)
    assert p1.type == "pseudogene" and p1.transcripts[0].cds == (2000, 2300)


def test_gene_level_types_end_in_gene_as_the_sequence_ontology_names_them():
    assert all(map(is_gene_type, ("gene", "pseudogene", "transgene", "ncRNA_gene", "unitary_pseudogene")))
    assert not any(
        map(is_gene_type, ("mRNA", "transcript", "pseudogenic_transcript", "V_gene_segment", "CDS"))
    )


@pytest.mark.parametrize("gene_type", ["transgene", "unitary_pseudogene"])  # SO: transgene is_a gene
def test_reader_and_codec_agree_on_what_a_gene_is(tmp_path, gene_type):
    path = gff(
        tmp_path,
        ("c1", "R", gene_type, 100, 400, ".", "+", ".", "ID=g"),
        ("c1", "R", "mRNA", 100, 400, ".", "+", ".", "ID=t;Parent=g"),
        ("c1", "R", "CDS", 100, 400, ".", "+", "0", "Parent=t"),
    )
    (g,) = genes(read_gff(path, LENGTHS))
    assert g.type == gene_type and g.transcripts == (Transcript("mRNA", ((100, 400),), (100, 400), 0),)
    window = g.shift(-99)
    assert text_to_genes(genes_to_text([window])).genes == normalise([window])


def test_sgd_cds_on_gene_noncoding_exons_and_orphan_transcript(tmp_path):
    path = gff(
        tmp_path,
        ("c1", "SGD", "chromosome", 1, 20000, ".", ".", ".", "ID=c1"),
        ("c1", "SGD", "gene", 100, 700, ".", "-", ".", "ID=Y1"),
        ("c1", "SGD", "CDS", 100, 300, ".", "-", "0", "Parent=Y1;"),
        ("c1", "SGD", "CDS", 400, 700, ".", "-", "0", "Parent=Y1;"),
        ("c1", "SGD", "tRNA", 1000, 1100, ".", "+", ".", "ID=tP"),
        ("c1", "SGD", "noncoding_exon", 1000, 1030, ".", "+", ".", "Parent=tP"),
        ("c1", "SGD", "noncoding_exon", 1070, 1100, ".", "+", ".", "Parent=tP"),
    )
    result = read_gff(path, LENGTHS)
    y1, trna = genes(result)
    assert y1.transcripts == (Transcript(DIRECT, ((100, 300), (400, 700)), (100, 700), 0),)
    assert trna.type == "gene" and trna.transcripts == (Transcript("tRNA", ((1000, 1030), (1070, 1100))),)
    assert (result.report.gene_lines, result.report.orphans_wrapped) == (1, 1)
    assert_accounted(result.report)


def test_phytozome_without_exons_merges_cds_and_utrs_and_minus_phase(tmp_path):
    path = gff(
        tmp_path,
        ("c1", "P", "gene", 1000, 3000, ".", "-", ".", "ID=g"),
        ("c1", "P", "mRNA", 1000, 3000, ".", "-", ".", "ID=t;Parent=g"),
        ("c1", "P", "five_prime_UTR", 2901, 3000, ".", "-", ".", "Parent=t"),
        ("c1", "P", "CDS", 2500, 2900, ".", "-", "2", "Parent=t"),
        ("c1", "P", "CDS", 1200, 1300, ".", "-", "1", "Parent=t"),  # chain: (401 - 2) % 3 = 0 -> 0, not 1
        ("c1", "P", "three_prime_UTR", 1000, 1199, ".", "-", ".", "Parent=t"),
    )
    result = read_gff(path, LENGTHS)
    (g,) = genes(result)
    t = g.transcripts[0]
    assert t.exons == ((1000, 1300), (2500, 3000)) and t.cds == (1200, 2900)
    assert t.phase == 2  # GFF phase of the 5'-most (rightmost on '-') CDS segment
    assert t.cds_phases("-") == (0, 2)
    assert result.report.phases_normalised == 1


def test_flybase_multi_parent_lines_belong_to_both_transcripts(tmp_path):
    path = gff(
        tmp_path,
        ("c1", "FB", "gene", 100, 900, ".", "+", ".", "ID=g"),
        ("c1", "FB", "mRNA", 100, 900, ".", "+", ".", "ID=ta;Parent=g"),
        ("c1", "FB", "mRNA", 100, 800, ".", "+", ".", "ID=tb;Parent=g"),
        ("c1", "FB", "exon", 100, 300, ".", "+", ".", "Parent=ta,tb"),
        ("c1", "FB", "exon", 600, 900, ".", "+", ".", "Parent=ta"),
        ("c1", "FB", "exon", 600, 800, ".", "+", ".", "Parent=tb"),
        ("c1", "FB", "CDS", 200, 300, ".", "+", "0", "Parent=ta,tb"),
        ("c1", "FB", "CDS", 600, 700, ".", "+", "2", "Parent=ta,tb"),
    )
    (g,) = genes(read_gff(path, LENGTHS))
    assert [t.exons for t in g.transcripts] == [((100, 300), (600, 800)), ((100, 300), (600, 900))]
    assert all(t.cds == (200, 700) for t in g.transcripts)


def test_gtf_without_gene_lines_and_stop_codon_joins_cds(tmp_path):
    path = tmp_path / "a.gtf"
    rows = [
        ("c1", "E", "exon", 100, 400, ".", "+", ".", 'gene_id "G1"; transcript_id "T1";'),
        ("c1", "E", "exon", 600, 900, ".", "+", ".", 'gene_id "G1"; transcript_id "T1";'),
        ("c1", "E", "CDS", 200, 400, ".", "+", "0", 'gene_id "G1"; transcript_id "T1";'),
        ("c1", "E", "CDS", 600, 697, ".", "+", "2", 'gene_id "G1"; transcript_id "T1";'),
        ("c1", "E", "stop_codon", 698, 700, ".", "+", "0", 'gene_id "G1"; transcript_id "T1";'),
    ]
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    result = read_gff(path, LENGTHS)
    (g,) = genes(result)
    assert (g.start, g.end, g.type) == (100, 900, "gene")
    assert g.transcripts == (Transcript("transcript", ((100, 400), (600, 900)), (200, 700), 0),)
    assert_accounted(result.report)


def test_gff3_stop_codon_lines_inside_the_cds_add_no_segment(tmp_path):
    """AUGUSTUS's GFF3: gene -> transcript -> start_codon, CDS (stop included), intron, stop_codon lines."""
    path = gff(
        tmp_path,
        ("c1", "AUGUSTUS", "gene", 100, 900, ".", "+", ".", "ID=g1"),
        ("c1", "AUGUSTUS", "transcript", 100, 900, ".", "+", ".", "ID=g1.t1;Parent=g1"),
        ("c1", "AUGUSTUS", "start_codon", 100, 102, ".", "+", "0", "Parent=g1.t1"),
        ("c1", "AUGUSTUS", "CDS", 100, 400, ".", "+", "0", "ID=g1.t1.cds;Parent=g1.t1"),
        ("c1", "AUGUSTUS", "intron", 401, 599, ".", "+", ".", "Parent=g1.t1"),
        ("c1", "AUGUSTUS", "CDS", 600, 900, ".", "+", "2", "ID=g1.t1.cds;Parent=g1.t1"),
        ("c1", "AUGUSTUS", "stop_codon", 898, 900, ".", "+", "0", "Parent=g1.t1"),
        ("c1", "AUGUSTUS", "gene", 1000, 1300, ".", "-", ".", "ID=g2"),
        ("c1", "AUGUSTUS", "transcript", 1000, 1300, ".", "-", ".", "ID=g2.t1;Parent=g2"),
        ("c1", "AUGUSTUS", "stop_codon", 1000, 1002, ".", "-", "0", "Parent=g2.t1"),
        ("c1", "AUGUSTUS", "CDS", 1000, 1300, ".", "-", "0", "ID=g2.t1.cds;Parent=g2.t1"),
    )
    result = read_gff(path, LENGTHS)
    plus, minus = genes(result)
    assert plus.transcripts == (Transcript("transcript", ((100, 400), (600, 900)), (100, 900), 0),)
    assert minus.transcripts == (Transcript("transcript", ((1000, 1300),), (1000, 1300), 0),)
    assert not result.report.dropped and not result.report.phases_normalised


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("c9", "S", "gene", 10, 90, ".", "+", ".", "ID=bad"), "seqid not in FASTA"),
        (("c2", "S", "gene", 4990, 5010, ".", "+", ".", "ID=bad"), "coordinates beyond the sequence"),
        (("c1", "S", "gene", 500, 400, ".", "+", ".", "ID=bad"), "start > end"),
        (("c1", "S", "gene", 400, 500, ".", "?", ".", "ID=bad"), "unknown strand"),
        (("c1", "S", "CDS", 400, 500, ".", "+", "0", "ID=x;Parent=nowhere"), "missing Parent"),
    ],
)
def test_per_feature_errors_are_counted_skips_with_file_and_line(tmp_path, row, reason):
    good = ("c1", "S", "gene", 1000, 1300, ".", "+", ".", "ID=ok")
    path = gff(tmp_path, good, row)
    result = read_gff(path, LENGTHS)
    assert [g.name for g in genes(result)] == ["ok"]
    report = result.report
    assert_accounted(report)
    if reason == "missing Parent":  # not a gene: a skipped feature line
        assert report.skipped_features[reason] == 1 and report.genes_in_file == 1
    else:
        assert report.dropped[reason] == 1 and report.genes_in_file == 2
    assert report.examples[reason][0].startswith(f"{path}:3: ")
    assert reason in report.summary()


def test_child_error_drops_its_gene(tmp_path):
    path = gff(
        tmp_path,
        ("c1", "S", "gene", 100, 900, ".", "+", ".", "ID=g"),
        ("c1", "S", "CDS", 100, 900, ".", "+", "0", "Parent=g"),
        ("c1", "S", "gene", 1000, 1900, ".", "+", ".", "ID=h"),
        ("c1", "S", "CDS", 1900, 1000, ".", "+", "0", "Parent=h"),
    )
    result = read_gff(path, LENGTHS)
    assert [g.name for g in genes(result)] == ["g"]
    assert result.report.dropped == {"start > end": 1}
    assert result.report.examples["start > end"][0].startswith(f"{path}:5: CDS")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty GFF"),
        ("##gff-version 3\n# nothing\n", 1, "empty GFF"),
        ("##gff-version 3\nc1\tS\tgene\t1\t9\n", 2, "expected 9 tab-separated columns, found 5"),
        (">c1\nACGT\n", 1, "empty GFF"),
        ("c1 S gene 1 9 . + . ID=a\n", 1, "expected 9 tab-separated columns"),
        ("c1\tS\tgene\tone\t9\t.\t+\t.\tID=a\n", 1, "start/end must be integers"),
    ],
)
def test_structural_errors_abort_naming_file_and_line(tmp_path, text, line, words):
    path = write_text(tmp_path / "bad.gff3", text)
    with pytest.raises(InputError) as info:
        read_gff(path, LENGTHS)
    assert str(info.value).startswith(f"{path}:{line}: ") and words in str(info.value)


def test_truncated_gzip_and_crlf(tmp_path):
    rows = "".join(f"c1\tS\tgene\t{i * 10 + 1}\t{i * 10 + 5}\t.\t+\t.\tID=g{i}\n" for i in range(1500))
    data = gzip.compress(rows.encode())
    cut = tmp_path / "cut.gff3.gz"
    cut.write_bytes(data[: len(data) - 20])
    with pytest.raises(InputError, match="truncated or corrupt gzip") as info:
        read_gff(cut, LENGTHS)
    assert str(info.value).startswith(f"{cut}:")
    crlf = tmp_path / "crlf.gff3"
    crlf.write_bytes(rows.replace("\n", "\r\n").encode())
    assert read_gff(crlf, LENGTHS).report.kept == 1500


# Gene-level features (gene + pseudogene + *_gene) and those with a CDS, from genomes/MANIFEST.md;
# scer adds 8 transposable_element_gene lines that the MANIFEST's count leaves out.
MANIFEST_GENES = {
    "bsub168": (4536, 4325),
    "mabs_atcc19977": (4992, 4942),
    "tpallidum_nichols": (1035, 978),
    "paracoccus_scn6821": (3264, 3224),
    "scer_chrI_II": (575 + 8, 583),
    "cele_ws270_1pct": (221, 158),
    "dmel_r6_1pct": (108, 75),
    "atha_tair10_1pct": (359, 341),
    "ptri_v3_chr01part": (1028, 1028),
    "hsap_grch38_chr9_1mb": (23, 8),
}
# Valid CDS (start codon, stop, no internal stop) from the MANIFEST: our translation (without the
# start-codon requirement) must find at least as many.
MANIFEST_VALID_CDS = {
    "bsub168": 4295,
    "mabs_atcc19977": 4942,
    "tpallidum_nichols": 978,
    "paracoccus_scn6821": 3119,
    "scer_chrI_II": 583,
    "cele_ws270_1pct": 328,
    "dmel_r6_1pct": 234,
    "atha_tair10_1pct": 457,
    "ptri_v3_chr01part": 1815,
    "hsap_grch38_chr9_1mb": 30,
}


@pytest.mark.genomes
def test_shared_genomes_match_manifest_and_translate(real_genome):
    name, fasta, path = real_genome
    sequences = dict(read_fasta(fasta))
    result = read_gff(path, {s: len(q) for s, q in sequences.items()})
    report = result.report
    assert_accounted(report)
    assert (report.gene_lines, report.protein_coding) == MANIFEST_GENES[name]
    assert report.kept == report.genes_in_file  # every shipped file is clean
    table = 11 if name in ("bsub168", "mabs_atcc19977", "tpallidum_nichols", "paracoccus_scn6821") else 1
    valid = 0
    for seqid, gs in result.genes_by_seqid.items():
        for gene in gs:
            for t in gene.transcripts:
                if t.cds:
                    valid += _translates(sequences[seqid], gene.strand, t, table)
    assert valid >= MANIFEST_VALID_CDS[name]


def _translates(sequence: str, strand: str, t: Transcript, table: int) -> bool:
    dna = "".join(sequence[s - 1 : e] for s, e in t.cds_segments()).upper()
    if strand == "-":
        dna = str(Seq(dna).reverse_complement())
    dna = dna[t.phase :]
    protein = str(Seq(dna[: len(dna) // 3 * 3]).translate(table=table))
    return len(dna) % 3 == 0 and protein.endswith("*") and "*" not in protein[:-1]


def test_cds_lines_of_a_noncoding_rna_are_its_exons(tmp_path):
    # PomBase writes the exons of tRNA/ncRNA genes as CDS lines: they code for nothing, so they must not
    # count as coding bases (scoring) nor teach the model a coding span (bake).
    path = gff(
        tmp_path,
        ("c1", "PB", "gene", 101, 300, ".", "+", ".", "ID=t"),
        ("c1", "PB", "tRNA", 101, 300, ".", "+", ".", "ID=t.1;Parent=t"),
        ("c1", "PB", "CDS", 101, 140, ".", "+", "0", "Parent=t.1"),
        ("c1", "PB", "CDS", 201, 300, ".", "+", "0", "Parent=t.1"),
        ("c1", "PB", "gene", 1001, 1300, ".", "+", ".", "ID=n"),
        ("c1", "PB", "ncRNA", 1001, 1300, ".", "+", ".", "ID=n.1;Parent=n"),
        ("c1", "PB", "exon", 1001, 1300, ".", "+", ".", "Parent=n.1"),
        ("c1", "PB", "CDS", 1001, 1300, ".", "+", "0", "Parent=n.1"),
        ("c1", "PB", "gene", 2001, 2300, ".", "+", ".", "ID=m"),
        ("c1", "PB", "mRNA", 2001, 2300, ".", "+", ".", "ID=m.1;Parent=m"),
        ("c1", "PB", "CDS", 2001, 2300, ".", "+", "0", "Parent=m.1"),
    )
    result = read_gff(path, LENGTHS)
    trna, ncrna, mrna = genes(result)
    assert trna.transcripts == (Transcript("tRNA", ((101, 140), (201, 300))),)
    assert ncrna.transcripts == (Transcript("ncRNA", ((1001, 1300),)),)
    assert mrna.transcripts == (Transcript("mRNA", ((2001, 2300),), (2001, 2300), 0),)
    assert result.report.noncoding_cds == 3 and result.report.protein_coding == 1
    assert "3 CDS lines of non-coding RNAs read as exons" in result.report.summary()
