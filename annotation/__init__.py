"""Genome annotation: window tiling and stitching, biology-constrained decoding."""
