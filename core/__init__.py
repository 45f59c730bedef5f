"""The data model every other package shares, importing nothing else of the project: genes and
transcripts (`features`), the bad-input error (`errors`), the taxon table (`taxa`)."""
