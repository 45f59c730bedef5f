"""genome_io.fasta: streaming records and one-line errors naming file and line."""

from __future__ import annotations

import gzip

import pytest

from core.errors import InputError
from genome_io.fasta import fasta_lengths, read_fasta
from tests.fixtures.genomes import GENOME_TAXA, random_dna, write_text

# Total bp per shared genome, from genomes/MANIFEST.md.
MANIFEST_BP = {
    "bsub168": 4_215_606,
    "mabs_atcc19977": 5_090_491,
    "tpallidum_nichols": 1_139_633,
    "paracoccus_scn6821": 3_375_827,
    "scer_chrI_II": 1_043_386,
    "cele_ws270_1pct": 1_002_724,
    "dmel_r6_1pct": 1_375_477,
    "atha_tair10_1pct": 1_191_461,
    "ptri_v3_chr01part": 11_199_920,
    "hsap_grch38_chr9_1mb": 1_000_000,
}


def _error(path) -> InputError:
    with pytest.raises(InputError) as info:
        list(read_fasta(path))
    return info.value


def test_records_stream_with_first_word_ids_and_case_kept(tmp_path):
    a, b = random_dna(130, seed=3), random_dna(70, seed=4).lower()
    text = f">chr1 first contig\n{a[:60]}\n{a[60:120]}\n{a[120:]}\n\n>chr2\n{b}\n"
    plain = write_text(tmp_path / "g.fa", text)
    zipped = write_text(tmp_path / "g.fa.gz", text)
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    for path in (plain, zipped, crlf):
        assert list(read_fasta(path)) == [("chr1", a), ("chr2", b)]
    assert fasta_lengths(plain) == {"chr1": 130, "chr2": 70}


def test_iupac_codes_are_accepted(tmp_path):
    path = write_text(tmp_path / "g.fa", ">x\nACGTNRYSWKMBDHVU\nacgtnryk\n")
    assert fasta_lengths(path) == {"x": 24}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty FASTA"),
        ("\n\n", 1, "empty FASTA"),
        ("ACGT\nACGT\n", 1, "expected a '>' header"),
        (">a\nACGT\n>b\nAC\n>a\nGG\n", 5, "duplicate seqid 'a' (first at line 1)"),
        (">a\nACGT\n>b\nACGT\nAC*T\n", 5, "invalid character '*' in sequence 'b' (column 3)"),
        (">\nACGT\n", 1, "header without a sequence name"),
    ],
)
def test_bad_fasta_names_file_and_line(tmp_path, text, line, words):
    path = write_text(tmp_path / "bad.fa", text)
    err = _error(path)
    assert str(err).startswith(f"{path}:{line}: ")
    assert words in str(err)
    assert "\n" not in str(err)


def test_missing_and_truncated_files(tmp_path):
    err = _error(tmp_path / "nope.fa")
    assert str(err) == f"{tmp_path / 'nope.fa'}: no such file"
    data = gzip.compress((">x\n" + "ACGT" * 20_000 + "\n").encode())
    truncated = tmp_path / "cut.fa.gz"
    truncated.write_bytes(data[: len(data) // 2])
    err = _error(truncated)
    assert str(err).startswith(f"{truncated}:") and "truncated or corrupt gzip" in str(err)


@pytest.mark.genomes
def test_shared_genomes_parse_with_manifest_lengths(real_genome):
    name, fasta, _ = real_genome
    lengths = fasta_lengths(fasta)
    assert sum(lengths.values()) == MANIFEST_BP[name]
    assert name in GENOME_TAXA
