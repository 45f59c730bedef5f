"""What the per-base track buys: the demo's recipe (a) as it is, (b) with the track loss, (c) with the track
loss and track-guided decoding; the same steps, seed and data.

    python bench/supervision.py                          # 400 steps per trained arm, the demo's genome
    python bench/supervision.py --max_steps 200 --track_loss_weight 0.5 --track_weight 2

Arms (a) and (b) are `demo.py` runs that differ only in `--track_loss_weight` (same genome, held-out region,
tokenizer, model size, data order and number of optimizer steps, so they stay comparable on a busy machine
where a time budget would not), both annotated with `--track_weight 0`; arm (c) re-annotates (b)'s model with
`--track_weight`. Prints gene 3', exact and nucleotide F1 on the held-out region beside Prodigal and the ORF
floor (the demo's default genome has silver labels: Prodigal's calls).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import machine  # noqa: E402

import demo  # noqa: E402

LEVELS = ("gene_3prime", "gene_exact", "nucleotide")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max_steps", type=int, default=400, help="optimizer steps of every trained arm")
    parser.add_argument(
        "--track_loss_weight", type=float, default=1.0, help="arms (b) and (c): the track loss"
    )
    parser.add_argument("--track_weight", type=float, default=1.0, help="arm (c): the track in decoding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="the demo's tiny model (smoke runs)")
    parser.add_argument("--genome_bp", type=int, help="use only the first N bp of the genome (smoke runs)")
    parser.add_argument("--output_dir", type=Path, default=REPO / "outputs" / "supervision")
    return parser.parse_args(argv)


def train_arm(args, name: str, loss_weight: float) -> dict:
    """One demo run annotated without track guidance; its scores.json."""
    out = args.output_dir / name
    demo_args = ["--output_dir", str(out), "--max_steps", str(args.max_steps), "--seed", str(args.seed)]
    demo_args += ["--track_loss_weight", str(loss_weight), "--track_weight", "0"]
    demo_args += ["--tiny"] * args.tiny + (["--genome_bp", str(args.genome_bp)] if args.genome_bp else [])
    print(f"== {name}: python demo.py {' '.join(demo_args)}", flush=True)
    if demo.main(demo_args) != 0:
        raise SystemExit(1)
    return json.loads((out / "scores.json").read_text())


def guided_arm(args, trained: Path) -> dict:
    """Arm (b)'s model re-annotated with the track in its coordinates, at the demo's decoding settings."""
    gff = args.output_dir / "c_guided.gff3"
    annotate = [sys.executable, str(REPO / "annotate.py"), "--model", str(trained / "model"), "--quiet"]
    annotate += ["--fasta", str(trained / "heldout.fna"), "--out", str(gff), "--taxon", demo.TAXON]
    annotate += ["--track_weight", str(args.track_weight)]
    print(f"== (c) track-guided decoding: {' '.join(annotate[1:])}", flush=True)
    subprocess.run(annotate, check=True)
    scoring = [sys.executable, "-m", "scoring", "--reference", str(trained / "heldout_reference.gff3")]
    scoring += ["--prediction", str(gff), "--fasta", str(trained / "heldout.fna"), "--json"]
    return json.loads(subprocess.run(scoring, check=True, capture_output=True, text=True, cwd=REPO).stdout)


def main(argv=None) -> int:
    args = parse_args(argv)
    print(machine())
    plain = train_arm(args, "a_decoder_loss", 0.0)
    with_track = train_arm(args, "b_track_loss", args.track_loss_weight)
    guided = guided_arm(args, args.output_dir / "b_track_loss")
    rows = {
        "(a) decoder loss only": plain["scores"]["GFF-MoE"],
        f"(b) + track loss (weight {args.track_loss_weight:g})": with_track["scores"]["GFF-MoE"],
        f"(c) + track-guided decoding (--track_weight {args.track_weight:g})": guided["prediction"],
        "Prodigal": plain["scores"]["Prodigal"],
        "ORF floor": plain["scores"]["ORF floor"],
    }
    print(f"\nheld-out region, {args.max_steps} steps per trained arm (F1; labels as the demo says)")
    print(f"{'':<52}" + "".join(f"{level:>14}" for level in LEVELS))
    for name, scores in rows.items():
        print(f"{name:<52}" + "".join(f"{scores[level]['f1']:>14.3f}" for level in LEVELS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
