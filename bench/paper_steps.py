"""Every solver at its own published step count on the FFHQ sample, and CMI as a plug-in on each
gradient-guided base (DPS, ΠGDM, MCG, DSG) beside the base alone.

    python bench/paper_steps.py [--limit 2] [--seeds 0,1,2] [--size 64] [--part 1/2] [--out runs/paper_steps]

Each configuration is one `inversa eval` run (resumable: rerun the same command to finish) in
OUT/<label>; `--part i/n` runs every n-th configuration only (two processes on two cores), and a
run with nothing pending prints the combined table: per task, every configuration with its steps,
NFE and VJP per image, PSNR / SSIM / LPIPS (mean ± std over seeds) and seconds per image; then CMI on
each base minus the base alone. A solver's step count is its class's `paper_steps` (the paper's or
official code's); methods without a published count (CA-DPS, C-DPS) run at the library's 100.
DDRM needs a closed-form SVD, so it skips the reflect-padded blur presets (the evaluator refuses them).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from common import SHARED

TASKS = ("sr4", "box_inpaint", "random_inpaint", "gaussian_deblur", "motion_deblur")
SVD_TASKS = ("sr4", "box_inpaint", "random_inpaint")
LIBRARY_STEPS = 100  # `Solver.__call__`'s default: the count for methods that publish none
CMI_BASES = ("dps", "pigdm", "mcg", "dsg")


def configurations() -> list[dict]:
    """(label, solver, steps, params, tasks) for every row group of the table, in table order."""
    from inversa.solvers.registry import SOLVERS

    def steps_of(name: str) -> int:
        return getattr(SOLVERS[name], "paper_steps", None) or LIBRARY_STEPS

    out = [{"label": "naive", "solver": "naive", "steps": 1, "params": {}, "tasks": TASKS}]
    for name in ("dps", "pigdm", "mcg", "dsg", "ddrm", "ddnm", "diffpir", "daps", "ca-dps", "c-dps"):
        out.append({"label": name, "solver": name, "steps": steps_of(name), "params": {},
                    "tasks": SVD_TASKS if getattr(SOLVERS[name], "needs_svd", False) else TASKS})
    for base in CMI_BASES:
        out.append({"label": f"cmi-{base}", "solver": "cmi-dps", "steps": steps_of(base), "params": {"base": base},
                    "tasks": TASKS})
    return out


def run(cfg: dict, args) -> Path:
    from inversa.eval.evaluate import run_eval

    weights = SHARED / "weights" / "lpips"
    out = Path(args.out) / cfg["label"]
    run_eval({"data": str(SHARED / "data" / "ffhq256-sample"), "out": str(out), "tasks": ",".join(cfg["tasks"]),
              "solvers": cfg["solver"], "steps": str(cfg["steps"]), "seeds": args.seeds, "limit": args.limit,
              "size": args.size, "lpips_net": "alex", "solver_params": {cfg["solver"]: cfg["params"]} if cfg["params"] else {},
              "batch_size": args.batch_size, "lpips_weights": str(weights) if weights.is_dir() else None, "fid": False},
             progress=False)
    return out / "summary.csv"


def read_summary(path: Path) -> dict[str, dict]:
    """task -> the summary line of the configuration's one solver (the naive run: its only line)."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {r["task"]: r for r in csv.DictReader(f)}


def fmt(row: dict, metric: str, dec: int) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if not mean:
        return "n/a"
    return f"{float(mean):.{dec}f}" + (f" ± {float(std):.{dec}f}" if std else "")


def report(configs: list[dict], args) -> None:
    tables = {c["label"]: read_summary(Path(args.out) / c["label"] / "summary.csv") for c in configs}
    print("| task | method | steps | NFE | VJP | PSNR (dB) ↑ | SSIM ↑ | LPIPS-alex ↓ | s/image |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task in TASKS:
        for c in configs:
            row = tables[c["label"]].get(task)
            if task not in c["tasks"]:
                print(f"| {task} | {c['label']} | – | – | – | refused: no closed-form SVD (reflect-padded blur) | | | |")
                continue
            if row is None:
                print(f"| {task} | {c['label']} | {c['steps']} | – | – | not run | | | |")
                continue
            steps = 0 if c["solver"] == "naive" else c["steps"]
            print(f"| {task} | {c['label']} | {steps} | {float(row['nfe']):.0f} | {float(row['vjp']):.0f} | "
                  f"{fmt(row, 'psnr', 2)} | {fmt(row, 'ssim', 4)} | {fmt(row, 'lpips', 4)} | {float(row['wall_s']):.2f} |")
    print("\nCMI plug-in minus its base alone (same steps, photos, seeds): ΔPSNR (dB) / ΔLPIPS "
          "(negative ΔLPIPS is better); NFE and VJP per image of the plug-in against the base")
    print("| task | " + " | ".join(CMI_BASES) + " |")
    print("|---|" + "---|" * len(CMI_BASES))
    for task in TASKS:
        cells = []
        for base in CMI_BASES:
            b, p = tables[base].get(task), tables[f"cmi-{base}"].get(task)
            if not b or not p or not b.get("psnr_mean") or not p.get("psnr_mean"):
                cells.append("not run")
                continue
            cells.append(f"{float(p['psnr_mean']) - float(b['psnr_mean']):+.2f} / "
                         f"{float(p['lpips_mean']) - float(b['lpips_mean']):+.4f} "
                         f"({float(p['nfe']):.0f}+{float(p['vjp']):.0f} vs {float(b['nfe']):.0f}+{float(b['vjp']):.0f})")
        print(f"| {task} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=2, help="FFHQ photos (default 2)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=2, help="photos restored together (throughput only)")
    ap.add_argument("--part", default="1/1", help="i/n: run every n-th configuration, starting at the i-th")
    ap.add_argument("--only", help="comma-separated labels to run (default: all)")
    ap.add_argument("--report", action="store_true", help="print the table from what is there; run nothing")
    ap.add_argument("--out", default="runs/paper_steps")
    args = ap.parse_args()
    if not (SHARED / "data" / "ffhq256-sample").is_dir():
        print(f"skipped: {SHARED / 'data' / 'ffhq256-sample'} is absent (evaluation photos live in ../shared)")
        return 0
    try:
        i, n = (int(v) for v in args.part.split("/"))
        assert 1 <= i <= n
    except (ValueError, AssertionError):
        ap.error(f"--part must be i/n with 1 <= i <= n, got {args.part!r}")
    configs = configurations()
    if not args.report:
        only = set(args.only.split(",")) if args.only else None
        for c in configs[i - 1::n]:
            if only is None or c["label"] in only:
                print(f"running {c['label']} ({c['solver']}, {c['steps']} steps, {c['params'] or 'defaults'})", flush=True)
                run(c, args)
    report(configs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
