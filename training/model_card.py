"""The model card (README.md with Hub YAML metadata) written into a trained model's directory."""

from __future__ import annotations

from pathlib import Path

import yaml

TAGS = ["genomics", "gene-annotation", "gff3", "dnabert-2", "mixture-of-experts"]
# Metrics reported in the card's model-index (compute_metrics names, with the Trainer's eval_ prefix).
CARD_METRICS = {
    "eval_exon_f1": "exact-feature (CDS segment) F1",
    "eval_gene_f1": "gene-level F1",
    "eval_gene_3prime_f1": "gene 3' F1",
    "eval_gene_exact_f1": "gene exact F1",
    "eval_record_f1": "exact record F1",
    "eval_window_exact": "exact windows",
    "eval_loss": "loss",
}


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
    """Write `output_dir/README.md`: metadata the Hub indexes, then usage and training details."""
    measured = [
        {"type": key.removeprefix("eval_"), "name": name, "value": round(float(metrics[key]), 4)}
        for key, name in CARD_METRICS.items()
        if key in metrics
    ]
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "text2text-generation",
        "license": "apache-2.0",
        "tags": TAGS,
        "datasets": [Path(dataset_dir).name] if Path(dataset_dir).name else [],
        "metrics": [m["type"] for m in measured],
    }
    if measured:
        metadata["model-index"] = [
            {
                "name": Path(output_dir).name,
                "results": [
                    {
                        "task": {"type": "gene-annotation", "name": "Gene annotation (DNA -> GFF3)"},
                        "dataset": {
                            "name": f"{Path(dataset_dir).name} ({', '.join(datasets)})",
                            "type": Path(dataset_dir).name,
                        },
                        "metrics": measured,
                    }
                ],
            }
        ]
    experts = (
        f"{config.num_experts} experts, top-{config.moe_top_k}"
        if getattr(config, "num_experts", 0)
        else "dense"
    )
    results = "\n".join(f"| {m['name']} | {m['value']} |" for m in measured) or "| (no validation split) | |"
    body = f"""
# {Path(output_dir).name}

GFF-MoE gene annotator: **DNA in, GFF3 out.** A DNABERT-2 encoder reads a genomic window; a
Mixture-of-Experts decoder ({experts}, {config.decoder_layers} layers, hidden size {config.hidden_size})
writes its genes as tokens that decode to GFF3 features, with `{config.coordinate_scheme}` coordinates.

## Usage

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

dna = "ATGAAACGCATTAGCACCACCATTACCACCACCATCACCATTACCACAGGTAACGGTGCGGGCTGA"
model = AutoModelForSeq2SeqLM.from_pretrained("PATH_OR_REPO", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO", trust_remote_code=True)  # the model's own code
ids = model.generate(**tokenizer(dna, return_tensors="pt"), max_new_tokens=32)  # annotation token ids

annotate = pipeline("gff-annotation", model="PATH_OR_REPO", trust_remote_code=True)
print(annotate(f">ctg1\\n{{dna}}\\n", taxon="prokaryotes")["gff3"])  # or a FASTA path; windows, constraints, GFF3
```

Whole genomes: `python annotate.py --model PATH_OR_REPO --fasta genome.fa --out genes.gff3 --taxon prokaryotes`.

## Training

- Base model: `{base_model}`
- Data: `{dataset_dir}`, configs {", ".join(datasets)}
- Steps: {training_args.max_steps if training_args.max_steps > 0 else f"{training_args.num_train_epochs} epochs"},
  learning rate {training_args.learning_rate}, batch size {training_args.per_device_train_batch_size} per device,
  seed {training_args.seed}

## Validation (generated windows)

| metric | value |
|---|---|
{results}
"""
    path = Path(output_dir) / "README.md"
    path.write_text(f"---\n{yaml.safe_dump(metadata, sort_keys=False)}---\n{body}")
    return path
