"""The per-base gene-structure track (tokenization.track): hand-made genes on both strands."""

from __future__ import annotations

import numpy as np

from core.features import Gene, Transcript
from tests.fixtures.genes import coding
from tokenization.track import BOUNDARY, REGION, gene_track

R = {name: i for i, name in enumerate(REGION)}
B = {name: i for i, name in enumerate(BOUNDARY)}


def names(column: np.ndarray, table) -> str:
    return " ".join(table[i] for i in column)


def test_plus_gene_codon_positions_and_its_start_and_stop_codons():
    track = gene_track([coding(2, 10, "+")], 14)
    assert list(track[:, 0]) == [0, 0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 0, 0, 0]
    # A bacterial gene's transcript starts and ends at its codons: the codons win.
    assert (
        names(track[:, 1], BOUNDARY).split()
        == ["none"] * 2 + ["start_codon"] * 3 + ["none"] * 3 + ["stop_codon"] * 3 + ["none"] * 3
    )
    assert not track[:, 2:].any()  # nothing on the - strand


def test_minus_gene_is_read_from_its_right_end():
    track = gene_track([coding(0, 8, "-")], 9)
    # Codon positions run 0,1,2 from the right end (the 5' end of a - gene).
    assert list(track[:, 2]) == [3, 2, 1, 3, 2, 1, 3, 2, 1]
    assert list(track[6:9, 3]) == [B["start_codon"]] * 3
    assert list(track[0:3, 3]) == [B["stop_codon"]] * 3
    assert not track[:, :2].any()


def test_the_frame_is_carried_across_an_intron_and_splice_sites_are_marked():
    # exon 1: 0-4 (5 bases), intron 5-9, exon 2: 10-13 (4 bases): 9 coding bases, 3 codons.
    gene = coding(0, 13, "+", exons=[(0, 4), (10, 13)])
    track = gene_track([gene], 14)
    coding_positions = [int(track[i, 0]) - 1 for i in [0, 1, 2, 3, 4, 10, 11, 12, 13]]
    assert coding_positions == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert list(track[5:10, 0]) == [R["intron"]] * 5
    assert list(track[5:7, 1]) == [B["donor"]] * 2
    assert list(track[8:10, 1]) == [B["acceptor"]] * 2
    assert list(track[11:14, 1]) == [B["stop_codon"]] * 3


def test_minus_strand_donor_is_at_the_right_end_of_the_intron():
    gene = coding(0, 13, "-", exons=[(0, 3), (9, 13)])
    track = gene_track([gene], 14)
    assert list(track[4:9, 2]) == [R["intron"]] * 5
    assert list(track[7:9, 3]) == [B["donor"]] * 2
    assert list(track[4:6, 3]) == [B["acceptor"]] * 2
    # 5' exon 9-13 read leftwards: positions 0,1,2,0,1 then the 3' exon continues with 2,0,1,2.
    assert [int(track[i, 2]) - 1 for i in [13, 12, 11, 10, 9, 3, 2, 1, 0]] == [0, 1, 2, 0, 1, 2, 0, 1, 2]


def test_open_edges_are_not_boundaries_and_keep_the_frame():
    whole = coding(0, 11, "+")
    cut = whole.clip(4, 11).shift(-4)  # a window starting at base 4: the start codon is outside
    assert cut.open_left
    track = gene_track([cut], 8)
    assert not (track[:, 1] == B["start_codon"]).any()
    assert not (track[:, 1] == B["transcript_start"]).any()
    # The frame of the window's bases is the whole gene's frame.
    assert list(track[:, 0]) == list(gene_track([whole], 12)[4:, 0])
    assert list(track[5:8, 1]) == [B["stop_codon"]] * 3


def test_a_utr_exon_intron_and_overlapping_genes_on_both_strands():
    utr_gene = Gene(
        0, 19, "+", transcripts=(Transcript("mRNA", ((0, 5), (10, 19)), (3, 15)),)
    )  # 5' UTR 0-2, CDS 3-5 + 10-15 (3 codons), 3' UTR 16-19
    other = coding(12, 17, "-")
    track = gene_track([utr_gene, other], 20)
    assert names(track[0:3, 0], REGION) == "utr utr utr"
    assert names(track[16:20, 0], REGION) == "utr utr utr utr"
    assert names(track[6:10, 0], REGION) == "intron intron intron intron"
    assert set(np.flatnonzero(np.isin(track[:, 0], [1, 2, 3]))) == {3, 4, 5, 10, 11, 12, 13, 14, 15}
    assert set(np.flatnonzero(np.isin(track[:, 2], [1, 2, 3]))) == set(range(12, 18))
    assert track[0, 1] == B["transcript_start"] and track[19, 1] == B["transcript_end"]
    assert names(track[3:6, 1], BOUNDARY) == "start_codon start_codon start_codon"
    assert names(track[13:16, 1], BOUNDARY) == "stop_codon stop_codon stop_codon"


def test_a_noncoding_transcript_is_exon_and_intron_only():
    trna = Gene(2, 11, "+", type="tRNA_gene", transcripts=(Transcript("tRNA", ((2, 4), (8, 11))),))
    track = gene_track([trna], 14)
    assert names(track[2:12, 0], REGION) == " ".join(["utr"] * 3 + ["intron"] * 3 + ["utr"] * 4)
    assert not np.isin(track[:, 1], [B["start_codon"], B["stop_codon"]]).any()


def test_a_partial_model_has_no_start_or_stop_codon_where_its_chain_is_cut_mid_codon():
    # Phase 1: the first base finishes a codon of a start the model lacks; 8 bases end one base into a codon.
    gene = coding(0, 7, "+", phase=1)
    track = gene_track([gene], 8)
    assert [int(c) - 1 for c in track[:, 0]] == [2, 0, 1, 2, 0, 1, 2, 0]
    assert not np.isin(track[:, 1], [B["start_codon"], B["stop_codon"]]).any()
