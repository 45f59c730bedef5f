"""Scoring gene predictions against a reference annotation (`python -m scoring --help`): `metrics.score`,
`report.format_table`."""
