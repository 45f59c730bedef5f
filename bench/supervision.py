"""What the per-base track buys: the demo's recipe trained with and without the track loss, same steps.

    python bench/supervision.py                          # 400 steps per arm, the demo's genome
    python bench/supervision.py --max_steps 200 --track_loss_weight 0.5

Each arm is one `demo.py` run (same genome, held-out region, tokenizer seed, model size, data order and
number of optimizer steps; only `--track_loss_weight` differs), so the arms stay comparable on a busy
machine where a time budget would not. Prints gene 3', exact and nucleotide F1 of each arm on the held-out
region beside Prodigal and the ORF floor (the demo's default genome has silver labels: Prodigal's calls).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import demo  # noqa: E402

LEVELS = ("gene_3prime", "gene_exact", "nucleotide")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max_steps", type=int, default=400, help="optimizer steps of every arm")
    parser.add_argument("--track_loss_weight", type=float, default=1.0, help="the track arm's loss weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="the demo's tiny model (smoke runs)")
    parser.add_argument("--genome_bp", type=int, help="use only the first N bp of the genome (smoke runs)")
    parser.add_argument("--out_dir", type=Path, default=REPO / "outputs" / "supervision")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    arms = {
        "decoder loss only": 0.0,
        f"+ track loss (weight {args.track_loss_weight:g})": args.track_loss_weight,
    }
    rows = {}
    for i, (arm, weight) in enumerate(arms.items()):
        demo_args = ["--out_dir", str(args.out_dir / f"arm{i}"), "--max_steps", str(args.max_steps)]
        demo_args += ["--seed", str(args.seed), "--track_loss_weight", str(weight)]
        demo_args += ["--tiny"] * args.tiny + (["--genome_bp", str(args.genome_bp)] if args.genome_bp else [])
        print(f"== {arm}: python demo.py {' '.join(demo_args)}", flush=True)
        if demo.main(demo_args) != 0:
            return 1
        scores = json.loads((args.out_dir / f"arm{i}" / "scores.json").read_text())["scores"]
        rows[f"GFF-MoE, {arm}"] = scores["GFF-MoE"]
        rows.update({name: scores[name] for name in ("Prodigal", "ORF floor")})
    print(f"\nheld-out region, {args.max_steps} steps per arm (F1; labels as the demo says)")
    print(f"{'':<44}" + "".join(f"{level:>14}" for level in LEVELS))
    for name, scores in rows.items():
        print(f"{name:<44}" + "".join(f"{scores[level]['f1']:>14.3f}" for level in LEVELS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
