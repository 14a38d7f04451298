"""Restoration quality on the FFHQ sample: each solver against the naive inverse, through `inversa eval`.

    python bench/quality.py --solvers naive,dps --tasks sr4,gaussian_deblur,random_inpaint \
        --steps 50 --seeds 0 [--limit K] [--size S] [--params JSON] --out runs/quality

Reads ../shared/data/ffhq256-sample (evaluation photos, never used in training) and the LPIPS
backbones in ../shared/weights/lpips; prints the summary table (mean ± std) that `inversa eval`
writes to OUT/summary.md. Resumable: rerun the same command to finish an interrupted run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import SHARED


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--solvers", default="naive,dps")
    ap.add_argument("--tasks", default="sr4,gaussian_deblur,random_inpaint")
    ap.add_argument("--steps", default="50")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--model")
    ap.add_argument("--params", default="{}", help='solver parameters as JSON, e.g. {"ca-dps": {"mean_shift": "vjp"}}')
    ap.add_argument("--batch-size", type=int, default=1, help="images restored together (same rows, more throughput)")
    ap.add_argument("--out", default="runs/quality")
    args = ap.parse_args()
    data = SHARED / "data" / "ffhq256-sample"
    if not data.is_dir():
        print(f"skipped: {data} is absent (evaluation photos live in ../shared)")
        return 0
    from inversa.eval.evaluate import run_eval

    weights = SHARED / "weights" / "lpips"
    result = run_eval({"data": str(data), "out": args.out, "tasks": args.tasks, "solvers": args.solvers,
                       "steps": args.steps, "seeds": args.seeds, "limit": args.limit, "size": args.size,
                       "model": args.model, "lpips_net": "alex", "solver_params": json.loads(args.params),
                       "batch_size": args.batch_size,
                       "lpips_weights": str(weights) if weights.is_dir() else None, "fid": False})
    summary = Path(result["out"]) / "summary.md"
    if summary.exists():
        print(summary.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
