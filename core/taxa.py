"""Window length limit and long-gene bound (bp) per taxon group, from the original recipe.

Shared by the dataset builder and the annotator; a module without imports, so that it travels with a
saved model (hub_code.py).
"""

TAXA: dict[str, tuple[int, int]] = {
    "prokaryotes": (9_000, 50_000),
    "unicellular": (22_500, 50_000),
    "invertebrates": (45_000, 80_000),
    "vertebrates": (90_000, 150_000),
    "plants": (45_000, 60_000),
}

# AUGUSTUS parameter set (a folder of its config/species) per eukaryote taxon: the default of the
# AUGUSTUS baseline (`python -m scoring --baseline augustus`) and of its silver labels (`bake --labels augustus`).
AUGUSTUS_SPECIES: dict[str, str] = {
    "unicellular": "saccharomyces",
    "invertebrates": "fly",
    "vertebrates": "human",
    "plants": "arabidopsis",
}
