"""bedGraph output of per-base tracks (genome_io.bedgraph)."""

from __future__ import annotations

import numpy as np

from genome_io.bedgraph import bedgraph_lines


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
