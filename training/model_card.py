"""The model card (README.md with the Hub's YAML metadata) written into every trained model's directory.

It says what a user choosing a checkpoint needs: the taxa it annotates, the species it was trained on
(and held out), where its labels came from (a curated annotation, or a gene finder's silver labels), usage
that runs as written, the scores measured (validation windows, and named held-out sequence beside
baselines, as the Hub's `model-index`) and its limitations. The facts Tiberius keeps in one small YAML per
set of weights (target taxa, training species, soft-masking, version) are the card's `gffmoe` metadata.
The card is rendered from its metadata alone, so scores measured later (`add_held_out_scores`, which
demo.py calls after scoring) re-render it. A base model or dataset is named only by its Hub id: a card on
the Hub carries no path of the machine that trained it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from annotation.annotator import GENETIC_CODES
from core.taxa import TAXA
from dataset_builder.card import read_reports
from dataset_builder.schema import LABEL_SOURCES

TAGS = ["genomics", "gene-annotation", "gff3", "dnabert-2", "mixture-of-experts"]
TASK = {"task_type": "gene-annotation", "task_name": "Gene annotation (DNA -> GFF3)"}
# Validation metrics reported in the model-index (compute_metrics names, with the Trainer's eval_ prefix).
VALIDATION_METRICS = {
    "eval_exon_f1": "exact-feature (CDS segment) F1",
    "eval_gene_f1": "gene-level F1",
    "eval_gene_3prime_f1": "gene 3' F1",
    "eval_gene_exact_f1": "gene exact F1",
    "eval_record_f1": "exact record F1",
    "eval_window_exact": "exact windows",
    "eval_loss": "loss",
}
# Levels of `scoring.Scores` reported for held-out sequence (F1 of each).
HELD_OUT_LEVELS = {
    "gene_3prime": "gene 3' F1",
    "gene_exact": "gene exact F1",
    "gene": "gene F1",
    "exon": "exon (CDS segment) F1",
    "nucleotide": "nucleotide F1",
}
PLACEHOLDER = "PATH_OR_REPO"  # the model's id in the usage lines when it has no Hub id yet
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def hub_id(name: str | None) -> str | None:
    """`name` when it is a Hub id (owner/name, not a path on this machine), else None."""
    if not name or "/" not in name or Path(name).exists():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def training_facts(dataset_dir: str | Path, taxa: list[str]) -> dict:
    """Species trained on and held out, and the label sources, from the baked dataset's per-genome reports."""
    reports = read_reports(Path(dataset_dir))
    rows = [report for taxon in taxa for report in reports.get(taxon, [])]
    return {
        "training_species": sorted({r["species"] for r in rows if r["windows"]["train"]}),
        "held_out_species": sorted({r["species"] for r in rows if not r["windows"]["train"]}),
        "labels": sorted({LABEL_SOURCES[r["labels"]].format(**r) for r in rows}),
    }


def architecture(config) -> str:
    decoder = (
        f"Mixture-of-Experts decoder ({config.num_experts} experts, top-{config.moe_top_k})"
        if config.num_experts > 1
        else "dense decoder (one feed-forward per layer, no experts)"
    )
    track = (
        f", per-base track head (loss weight {config.track_loss_weight:g})"
        if config.track_loss_weight
        else ""
    )
    starts = (
        "; a start scorer fitted on the training genes (`start_weights`: which start codon of its ORF a "
        "bacterial gene takes)"
        if getattr(config, "start_weights", None)
        else ""
    )
    return (
        f"DNABERT-2-style encoder ({config.num_hidden_layers} layers, hidden size {config.hidden_size}) + "
        f"{decoder}, {config.decoder_layers} layers; {config.coordinate_scheme} coordinates{track}{starts}"
    )


def write_model_card(
    output_dir: str | Path,
    *,
    base_model: str,
    datasets: list[str],
    dataset_dir: str,
    metrics: dict[str, float],
    config,
    training_args,
) -> Path:
    """Write `output_dir/README.md` for a model trained on `datasets` (taxon configs) of `dataset_dir`;
    `metrics` are the Trainer's final evaluation on the validation windows (empty without them)."""
    model_id = getattr(training_args, "hub_model_id", None)
    dataset_id = hub_id(str(dataset_dir))
    steps = training_args.max_steps if training_args.max_steps > 0 else None
    facts = {
        "version": tomllib.loads(PYPROJECT.read_text())["project"]["version"],
        "taxa": list(datasets),
        "genetic_code": {taxon: GENETIC_CODES.get(taxon, 1) for taxon in datasets},
        "window_bp": {
            taxon: getattr(config, "training_window_bp", None) or TAXA[taxon][0]
            for taxon in datasets
            if taxon in TAXA
        },
        **training_facts(dataset_dir, datasets),
        "softmasking": False,  # every reader upper-cases DNA: lower-case repeat masking is not seen
        "architecture": architecture(config),
        "training": {
            "steps": steps,
            "epochs": None if steps else training_args.num_train_epochs,
            "learning_rate": training_args.learning_rate,
            "batch_size_per_device": training_args.per_device_train_batch_size,
            "seed": training_args.seed,
        },
        "baselines": {},
    }
    validation = [
        EvalResult(
            **TASK,
            dataset_type=dataset_id or "gffmoe-windows",
            dataset_name=f"validation windows ({', '.join(datasets)})",
            dataset_split="validation",
            metric_type=key.removeprefix("eval_"),
            metric_name=name,
            metric_value=round(float(metrics[key]), 4),
        )
        for key, name in VALIDATION_METRICS.items()
        if key in metrics
    ]
    data = ModelCardData(
        model_name=model_id or f"gffmoe-{'-'.join(datasets)}",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="text2text-generation",
        tags=TAGS,
        base_model=hub_id(base_model),
        datasets=[dataset_id] if dataset_id else None,
        metrics=[result.metric_type for result in validation] or None,
        eval_results=validation or None,
        gffmoe=facts,
    )
    return _save(Path(output_dir), data)


def add_held_out_scores(
    model_dir: str | Path, *, sequence: str, scores: dict[str, dict], model: str = "GFF-MoE"
) -> Path:
    """Add scores measured on named held-out sequence to the card: the model's (`scores[model]`, a
    `scoring.Scores.as_dict()`) to its model-index, every other predictor's beside them as a baseline."""
    path = Path(model_dir) / "README.md"
    data = ModelCard.load(path).data
    results = [
        EvalResult(
            **TASK,
            dataset_type="held-out-sequence",
            dataset_name=sequence,
            dataset_split="test",
            metric_type=f"{level}_f1",
            metric_name=name,
            metric_value=round(scores[model][level]["f1"] or 0.0, 4),
        )
        for level, name in HELD_OUT_LEVELS.items()
    ]
    data.eval_results = [r for r in data.eval_results or [] if r.dataset_name != sequence] + results
    data.metrics = sorted({*(data.metrics or []), *(r.metric_type for r in results)})
    data.gffmoe["baselines"][sequence] = {
        name: {f"{level}_f1": round(s[level]["f1"] or 0.0, 4) for level in HELD_OUT_LEVELS}
        for name, s in scores.items()
        if name != model
    }
    return _save(Path(model_dir), data)


def _save(model_dir: Path, data: ModelCardData) -> Path:
    path = model_dir / "README.md"
    ModelCard(f"---\n{data.to_yaml()}\n---\n{_body(data)}").save(path)
    return path


def _results(data: ModelCardData) -> str:
    """One table per evaluated dataset: the model's scores, and the baselines measured beside them."""
    tables = []
    for dataset in dict.fromkeys(r.dataset_name for r in data.eval_results or []):
        results = [r for r in data.eval_results if r.dataset_name == dataset]
        baselines = data.gffmoe["baselines"].get(dataset, {})
        header = " | ".join(["metric", data.model_name, *baselines])
        rows = [
            " | ".join(
                [
                    r.metric_name,
                    str(r.metric_value),
                    *(str(b.get(r.metric_type, "")) for b in baselines.values()),
                ]
            )
            for r in results
        ]
        rule = "|".join(["---"] * (2 + len(baselines)))
        tables.append(
            f"**{dataset}** ({results[0].dataset_split})\n\n| {header} |\n|{rule}|\n"
            + "\n".join(f"| {row} |" for row in rows)
        )
    return (
        "\n\n".join(tables) or "No scores measured yet (no validation windows, no held-out sequence scored)."
    )


def _body(data: ModelCardData) -> str:
    facts = data.gffmoe
    model = hub_id(data.model_name) or PLACEHOLDER
    taxa = ", ".join(facts["taxa"])
    species = ", ".join(facts["training_species"]) or "(none recorded)"
    held_out = (
        ", ".join(facts["held_out_species"]) or "none (held-out sequence, if any, is named under Results)"
    )
    labels = "; ".join(facts["labels"]) or "(not recorded)"
    if not facts["labels"]:
        label_note = "Where its labels came from was not recorded (no bake reports in the dataset folder)."
    elif any("silver" in label for label in facts["labels"]):
        label_note = (
            "Its labels are a gene finder's own predictions (silver labels), not a curated annotation: it "
            "learns to imitate that program, and scores against such labels measure agreement, not accuracy."
        )
    else:
        label_note = "Its labels are the reference annotation of each training genome, no better than it."
    training = facts["training"]
    budget = f"{training['steps']} steps" if training["steps"] else f"{training['epochs']} epochs"
    codes = ", ".join(f"{taxon}: {code}" for taxon, code in facts["genetic_code"].items())
    taxon = facts["taxa"][0]
    base = (
        f"fine-tuned from [{data.base_model}](https://huggingface.co/{data.base_model})"
        if data.base_model
        else "initialised by `init_model.py` (from DNABERT-2 weights, or small and random)"
    )
    return f"""
# GFF-MoE gene annotator: {taxa}

GFF-MoE reads DNA and writes GFF3: a DNABERT-2 encoder reads a genome window, a decoder writes its genes as
tokens that decode to GFF3 features. {facts["architecture"]}. GFF-MoE version {facts["version"]}.

| | |
|---|---|
| target taxa | {taxa} (window {", ".join(f"{bp:,} bp" for bp in facts["window_bp"].values())}; genetic code {codes}) |
| training species | {species} |
| held-out species | {held_out} |
| labels | {labels} |
| soft-masking | ignored: lower-case bases are read as upper case |
| base model | {base} |
| training | {budget}, learning rate {training["learning_rate"]}, batch size {training["batch_size_per_device"]} per device, seed {training["seed"]} |

## Usage

The `gff-annotation` pipeline travels with the model (no checkout needed):

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

dna = "ATGAAACGCATTAGCACCACCATTACCACCACCATCACCATTACCACAGGTAACGGTGCGGGCTGA"
model = AutoModelForSeq2SeqLM.from_pretrained("{model}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{model}", trust_remote_code=True)  # the model's own code
ids = model.generate(**tokenizer(dna, return_tensors="pt"), max_new_tokens=32)  # annotation token ids

annotate = pipeline("gff-annotation", model="{model}", trust_remote_code=True)
print(annotate(f">ctg1\\n{{dna}}\\n", taxon="{taxon}")["gff3"])  # or a FASTA path; windows, constraints, GFF3
```

Whole genomes, from a checkout of the GFF-MoE repository (`--trust_remote_code` runs the code of a model
from the Hub; a directory this checkout saved needs none):

```bash
python annotate.py --model {model} --fasta genome.fa --out genes.gff3 --taxon {taxon} --trust_remote_code
python -m scoring --reference reference.gff3 --prediction genes.gff3 --fasta genome.fa --baseline prodigal orf
```

## Results

{_results(data)}

## Limitations

- Annotates the taxa above only; other taxa need their window size and genetic code, and training on them.
- {label_note}
- Genes longer than a window are seen only clipped; coordinates are snapped to open reading frames and
  splice sites by constrained decoding, which keeps each record well-formed, not correct.
- Scores on validation windows come from the training genomes' own sequence; held-out species or sequence
  (above, where named) are the measure of generalisation.
"""
