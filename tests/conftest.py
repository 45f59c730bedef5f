"""Shared fixtures. Each fixture module in tests/fixtures/ belongs to the part it serves."""

pytest_plugins = [
    "tests.fixtures.genomes",
    "tests.fixtures.tokenizer",
    "tests.fixtures.dnabert",
]
