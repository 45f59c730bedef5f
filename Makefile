# GFF-MoE: `make test` and `make demo` are all a newcomer needs.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

# Re-installs only when the dependency list changes.
$(STAMP): pyproject.toml requirements-cpu.txt
	@command -v gt >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -qq genometools >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq genometools >/dev/null 2>&1)) || \
	  echo "note: GenomeTools (gt) not installed; GFF3 validation tests will skip"; }
	@command -v augustus >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -qq augustus >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq augustus >/dev/null 2>&1)) || \
	  echo "note: AUGUSTUS not installed; the AUGUSTUS baseline and its tests will skip"; }
	@test -x $(BIN)/python || (command -v $(PY) >/dev/null 2>&1 && $(PY) -m venv $(VENV) || python3 -m venv $(VENV))
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-cpu.txt
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# make demo [TAXON=unicellular|invertebrates|vertebrates|plants] [DEMO_FASTA=genome.fa [DEMO_GFF=genes.gff3]]
# [DEMO_ARGS="--genome_bp 2000000 ..."]: a eukaryote needs its FASTA (demo.py --help says the rest).
demo: setup
	$(BIN)/python demo.py $(if $(TAXON),--taxon $(TAXON)) $(if $(DEMO_FASTA),--fasta $(DEMO_FASTA)) \
	  $(if $(DEMO_GFF),--gff $(DEMO_GFF)) $(DEMO_ARGS)

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) outputs .pytest_cache
