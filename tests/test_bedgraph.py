"""bedGraph output of per-base tracks (genome_io.bedgraph)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError
from genome_io.bedgraph import bedgraph_lines, read_bedgraph, write_bedgraph


def test_runs_are_zero_based_half_open_one_line_each_and_gaps_are_left_out():
    values = np.array([[0.1, 0.0], [0.1, 0.0], [0.904, 0.0], [np.nan, np.nan], [0.9, 0.5]])
    lines = list(bedgraph_lines({"ctg1": values, "b": np.array([[1.0, 0.25]])}, ["plus", "minus"]))
    assert lines == [
        'track type=bedGraph name="plus"\n',
        "ctg1\t0\t2\t0.10\n",
        "ctg1\t2\t3\t0.90\n",  # 0.904 rounds to 0.90 but base 3 (no value) breaks the run
        "ctg1\t4\t5\t0.90\n",
        "b\t0\t1\t1.00\n",
        'track type=bedGraph name="minus"\n',
        "ctg1\t0\t3\t0.00\n",
        "ctg1\t4\t5\t0.50\n",
        "b\t0\t1\t0.25\n",
    ]


def test_what_is_written_reads_back_per_base_and_a_bad_line_names_file_and_line(tmp_path):
    values = np.array([[0.1, 0.0], [0.1, 0.0], [0.9, np.nan], [np.nan, np.nan], [0.9, 0.5]])
    write_bedgraph(tmp_path / "t.bedgraph.gz", {"ctg1": values, "b": np.array([[1.0, 0.25]])}, ["+", "-"])
    tracks = read_bedgraph(tmp_path / "t.bedgraph.gz", {"ctg1": 5, "b": 1, "empty": 3})
    np.testing.assert_array_equal(tracks["ctg1"], values)
    np.testing.assert_array_equal(tracks["b"], [[1.0, 0.25]])
    assert np.isnan(tracks["empty"]).all() and tracks["empty"].shape == (3, 2)
    bad = tmp_path / "bad.bedgraph"
    bad.write_text('track type=bedGraph name="+"\nctg1\t0\t9\t0.5\n')
    with pytest.raises(InputError, match=r"bad.bedgraph:2: a value outside a track section or its sequence"):
        read_bedgraph(bad, {"ctg1": 5})
    bad.write_text('track type=bedGraph name="+"\nctg1\t0\tx\t0.5\n')
    with pytest.raises(InputError, match=r"bad.bedgraph:2: expected: seqid start end value"):
        read_bedgraph(bad, {"ctg1": 5})
