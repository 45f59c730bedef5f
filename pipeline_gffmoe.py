"""The `gff-annotation` transformers pipeline: FASTA in, genes and GFF3 out.

    from transformers import pipeline

    annotator = pipeline("gff-annotation", model="path/to/gffmoe", trust_remote_code=True)
    result = annotator(">chr1\\nATGAAA...\\n")  # or "ATGAAA..." (one record), or a FASTA path (plain or .gz)
    result["gff3"]  # GFF3 text; result["genes"]["chr1"]: the genes (1-based), result["scores"]["chr1"]
    annotator("genome.fa", workers=2)  # on CPU: two forked worker processes, as annotate.py --workers 2

A saved GFF-MoE directory carries this file and the project modules it needs, copied flat next to
config.json (`hub_code.save_hub_code`), so the pipeline runs from the directory alone. The work itself
is `annotation.annotator.annotate_records`, the same code as annotate.py's.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import fields
from os import PathLike
from pathlib import Path

from transformers import Pipeline

from annotation.annotator import AnnotationOptions, annotate_records, read_hints
from core.errors import InputError
from genome_io.fasta import NOT_IUPAC, read_fasta
from genome_io.gff3_writer import gff3_lines

FASTA_TEXT = "<FASTA text>"  # how errors name an input given as text
DNA_SEQID = "sequence"  # the record name of an input given as a bare DNA string
EXPECTED = "FASTA text (starting with '>') nor a DNA sequence (IUPAC letters only)"
MAX_NAMED_PATH = 200  # characters of a missing path an error repeats; longer text is named FASTA_TEXT
# Call options: AnnotationOptions' fields, its `batch_size` named `window_batch_size` (`batch_size` keeps its
# pipeline meaning), the inputs forwarded beside them, and `source` (GFF3 column 2).
ANNOTATION_OPTIONS = tuple(f.name for f in fields(AnnotationOptions) if f.name != "batch_size")
FORWARDED = ("progress", "hints", "workers")


def read_fasta_input(fasta: str | PathLike) -> list[tuple[str, str]]:
    """(seqid, sequence) records of FASTA text, a bare DNA sequence or a FASTA path; InputError naming the
    file (or FASTA_TEXT) and line.

    A string is decided by its content: FASTA text when it is empty, spans several lines or starts with
    '>'; a DNA sequence (one record named DNA_SEQID) when it is one line of IUPAC letters; else a path.
    """
    if not isinstance(fasta, str | PathLike):
        raise TypeError(f"expected FASTA text or a path, not {type(fasta).__name__}")
    if isinstance(fasta, str):
        line = fasta.strip()
        if not line or "\n" in fasta or fasta.startswith(">"):
            return _read_fasta_text(fasta)
        if not NOT_IUPAC.search(line):
            return _read_fasta_text(f">{DNA_SEQID}\n{line}\n")
        if not os.path.exists(fasta):  # (Path.exists raises for a name too long to be one)
            name = fasta if len(fasta) <= MAX_NAMED_PATH else FASTA_TEXT
            raise InputError(name, None, f"no such file, and not {EXPECTED}")
    return list(read_fasta(fasta))


def _read_fasta_text(text: str) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as folder:  # read_fasta reads files: one reader, one set of checks
        path = Path(folder) / "input.fa"
        path.write_text(text)
        try:
            return list(read_fasta(path))
        except InputError as err:
            raise InputError(FASTA_TEXT, err.line, err.message) from None


class GffAnnotationPipeline(Pipeline):
    """Annotates one FASTA (text or path) per input: {"genes", "scores", "sequence_lengths", "gff3"}.

    Call options: those of `AnnotationOptions` (taxon, window_size, num_beams, ...: their defaults and
    meaning are annotate.py's), with its `batch_size` (windows per `generate` call) named
    window_batch_size, as `batch_size` keeps its pipeline meaning; progress (a tqdm bar), hints (evidence
    the encoder reads: a GFF3/GTF path, or {seqid: [Gene]} 1-based) and source (GFF3 column 2, default
    "GFF-MoE"). An unknown option or a bad value is refused at the call, in one line.
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, window_batch_size=None, source=None, **forward):
        unknown = set(forward) - {*ANNOTATION_OPTIONS, *FORWARDED}
        if unknown:
            valid = ", ".join(sorted((*ANNOTATION_OPTIONS, *FORWARDED, "window_batch_size", "source")))
            raise TypeError(f"unknown gff-annotation options: {', '.join(sorted(unknown))} (valid: {valid})")
        forward = {key: value for key, value in forward.items() if value is not None}
        if window_batch_size is not None:
            forward["batch_size"] = window_batch_size
        # A bad value is refused now, at the call; `_forward` builds the options from these merged with the
        # pipeline's own (transformers merges forward parameters key by key).
        AnnotationOptions(**{key: value for key, value in forward.items() if key not in FORWARDED})
        return {}, forward, {"source": source} if source else {}

    def preprocess(self, fasta):
        return {"records": read_fasta_input(fasta)}

    def _forward(self, model_inputs, progress=False, hints=None, workers=1, **options):
        records = model_inputs["records"]
        if isinstance(hints, str | PathLike):
            hints = read_hints(hints, {seqid: len(sequence) for seqid, sequence in records}).genes_by_seqid
        genes, lengths, stats = annotate_records(
            self.model,
            self.tokenizer,
            records,
            AnnotationOptions(**options),
            progress=progress,
            hints=hints,
            workers=workers,
        )
        return {"genes": genes, "scores": stats.scores, "sequence_lengths": lengths}

    def postprocess(self, outputs, source="GFF-MoE"):
        gff3 = "".join(gff3_lines(outputs["genes"], outputs["sequence_lengths"], source, outputs["scores"]))
        return {**outputs, "gff3": gff3}
