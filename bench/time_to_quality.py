"""Time to a given quality: every inversa solver over a grid of steps, warm starts and batch sizes,
against deepinv's samplers at their own defaults, on the same network, photos and measurements.

    python bench/time_to_quality.py [--size 64] [--limit 4] [--tasks sr4,circ_deblur,random_inpaint]
        [--solvers dps,pigdm,ddrm:s_noise=0.9,...] [--steps 5,10,25,50,100,250,1000] [--starts 1,0.4,0.2] [--batches 1,4]
        [--samples 1,4]
        [--deepinv dps-f64,dps-f32,diffpir,ddrm,ddrm-20] [--dps-weight 300] [--threads 2]
        [--out runs/time_to_quality_64.jsonl] [--plot docs/time_to_quality.png] [--reduced]

Photos: the first --limit of ../shared/data/ffhq256-sample at --size (skips without them). Tasks: SR x4
(bicubic), Gaussian deblurring (61-tap kernel, std 3, *circular* padding so that deepinv's DDRM, which
needs an SVD, runs on the very same operator) and random inpainting (70 % missing), noise std 0.05,
measurement noise seeded 1000 + i for photo i. deepinv (a bench-only dependency) gets the bundled prior
through `PriorDenoiser` and our operator through `to_deepinv` (its SVD as a `DecomposablePhysics` for
DDRM and DiffPIR's closed-form proximal step; `A`/`A^T` for DPS):

- dps-f64: deepinv's DPS at its defaults (1000 time points, float64, DDPM solver) with guidance
  weight --dps-weight (its default weight 1.0 leaves y nearly unused; 300 was the best of a sweep
  10..3000, docs/performance.md section 4); dps-f32: the same in float32;
- diffpir: DiffPIR at its defaults (100 iterations, zeta 0.1, lambda 7, sigma = the noise std);
- ddrm: DDRM at its defaults (100 levels, eta 0.85, eta_b 1); ddrm-20: with 20 levels.

deepinv runs each config on the whole batch, except DDRM on per-image masks (it takes one mask per
batch), which runs one photo at a time. A solver may carry parameters, `name:key=value[:key=value]` (e.g. `ddrm:s_noise=0.9`: DDRM with 0.9
times its fresh noise; the config name then reads "ddrm s_noise=0.9 N=..."). Every inversa solver
runs at each (steps N, start s, batch b):
N respaced steps of which about N s run from the naive inverse diffused to s (s = 1: from noise);
photo i uses seed i; with --samples K > 1, also the mean of K samples per photo (`restore(samples=K)`).
Each point records mean PSNR, LPIPS (AlexNet, ../shared/weights/lpips), wall
seconds per photo, network forwards and VJPs per photo, appended to --out as it finishes: a rerun
skips the points already there (the full grid takes hours on 2 cores; --reduced: 2 photos, 3 points
per solver, minutes). Points are keyed by task, size, photo count, config and batch only: after
changing --dps-weight, --threads or the prior, write to a new --out.

Prints, per task, over every point in --out for this size and photo count (whichever run measured
it): the deepinv points; the Pareto fronts of ours (seconds vs PSNR, seconds vs LPIPS);
for every deepinv point the fastest inversa point with PSNR >= and LPIPS <= at a batch size no larger,
and the time ratio (goals: <= 0.5, <= 0.01 against dps-f64). Each matched pair is then re-timed
back to back (--confirm-reps) and that ratio is the one reported, since one grid point's time alone
rides on the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import SHARED, bench_operator, bench_prior, sample_photos

TASKS = ("sr4", "circ_deblur", "random_inpaint")
DEEPINV = ("dps-f64", "dps-f32", "diffpir", "ddrm", "ddrm-20")
GOALS = {"dps-f64": 0.01}  # the time-ratio goal per deepinv config; 0.5 otherwise
REDUCED_POINTS = ((25, 0.2), (50, 0.4), (100, 1.0))  # (N, start) per solver in --reduced


def chunks(n: int, batch: int):
    return [list(range(i, min(i + batch, n))) for i in range(0, n, batch)]


def solver_spec(spec: str) -> tuple[str, dict]:
    """("ddrm", {"s_noise": 0.9}) from "ddrm:s_noise=0.9"; parameters checked against the solver's."""
    from inversa.cli.common import parse_params
    from inversa.params import check_solver_params

    name, *items = spec.split(":")
    return name, check_solver_params(name, parse_params(items))


def spec_label(name: str, params: dict) -> str:
    return " ".join([name, *(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())])


def run_ours(prior, task, size, y, solver, steps, start, batch, samples=1, seed=0, params=None):
    """(restorations, forwards per photo, VJPs per photo) of one solver configuration; with samples K > 1
    each photo's restoration is the mean of K samples (seeds i, i + 10000, ...), run in one batch of
    `batch` photos x K, as `restore(samples=K)` does."""
    from inversa.solvers import make_solver

    method = make_solver(solver, prior, start=start, **(params or {}))
    outs, nfe, vjp, parts = [], 0, 0, chunks(len(y), batch)
    for idx in parts:
        rep = [i for i in idx for _ in range(samples)]
        r = method(y[rep], bench_operator(task, size, rep),
                   generator=[torch.Generator().manual_seed(i + 10000 * k) for i in idx for k in range(samples)],
                   num_steps=steps, progress=False)
        outs.append(r.x.view(len(idx), samples, *r.x.shape[1:]).mean(1))
        nfe, vjp = nfe + r.nfe * samples, vjp + r.vjp * samples  # each photo's K samples each take r.nfe
    return torch.cat(outs), nfe / len(parts), vjp / len(parts)


def deepinv_batch(config: str, task: str, n: int) -> int:
    return 1 if config.startswith("ddrm") and task == "random_inpaint" else n


def run_deepinv(prior, den, task, size, y, config, dps_weight, seed=0):
    """(restorations, forwards per photo, VJPs per photo) of one deepinv configuration."""
    import deepinv as dinv

    from inversa.interop.deepinv import to_deepinv

    n, nfe0, outs = len(y), prior.nfe, []
    parts = chunks(n, deepinv_batch(config, task, n))
    for idx in parts:
        op = bench_operator(task, size, idx)
        shape = (len(idx), 3, size, size)
        with torch.no_grad():
            if config.startswith("dps"):
                dtype = torch.float64 if config == "dps-f64" else torch.float32
                model = dinv.sampling.DPS(den, num_steps=1000, weight=dps_weight, dtype=dtype,
                                          rng=torch.Generator().manual_seed(seed + 1))
                out = model(y[idx], to_deepinv(op), x_init=shape, seed=seed + 1)
            elif config == "diffpir":
                model = dinv.sampling.DiffPIR(den, dinv.optim.data_fidelity.L2(), sigma=op.sigma)
                out = model(y[idx], to_deepinv(op, shape), seed=seed + 1)  # seed 0 would mean "unseeded"
            else:
                levels = 20 if config == "ddrm-20" else None  # None: deepinv's default, 100
                model = dinv.sampling.DDRM(den, sigmas=None if levels is None else np.linspace(1, 0, levels))
                out = model(y[idx], to_deepinv(op, shape), seed=seed + 1)
        outs.append(out.float().clamp(0, 1))
    nfe = (prior.nfe - nfe0) / len(parts)
    return torch.cat(outs), nfe, (nfe if config.startswith("dps") else 0)


def score(x, out, weights) -> dict:
    from inversa.eval.metrics import lpips, psnr

    return {"psnr": float(psnr(out, x).mean()), "lpips": float(lpips(out, x, weights=weights).mean())}


def grid(args, n: int):
    """(solver spec, N, start, batch, samples) of every inversa point to run."""
    solvers = [solver_spec(s) for s in args.solvers.split(",")]
    if args.reduced:
        return [(s, N, st, n, 1) for s in solvers for N, st in REDUCED_POINTS]
    return [(s, int(N), float(st), min(int(b), n), int(k)) for s in solvers for N in args.steps.split(",")
            for st in args.starts.split(",") for b in dict.fromkeys(args.batches.split(","))
            for k in args.samples.split(",")]


def timed(fn):
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0


def measure_task(args, task, x, prior, den, done, out_file, weights):
    n, size = len(x), args.size
    op = bench_operator(task, size, list(range(n)))
    y = op.measure(x, generator=[torch.Generator().manual_seed(1000 + i) for i in range(n)])
    naive = op.naive_inverse(y).clamp(0, 1)
    base = {"task": task, "size": size, "photos": n, "threads": torch.get_num_threads()}
    todo = [("deepinv", c, deepinv_batch(c, task, n), {}) for c in args.deepinv.split(",") if c] + \
           [("inversa", f"{spec_label(*s)} N={N} start={st:g}" + (f" mean of {k}" if k > 1 else ""), b,
             dict(solver=s[0], params=s[1], steps=N, start=st, samples=k)) for s, N, st, b, k in grid(args, n)]
    points = [{**base, "who": "naive", "config": "naive inverse", "batch": n, "seconds": 0.0, "nfe": 0, "vjp": 0,
               **score(x, naive, weights)}]
    for who, config, batch, spec in todo:
        key = (task, size, n, who, config, batch)
        if key in done:
            continue
        if who == "deepinv":
            (out, nfe, vjp), sec = timed(lambda: run_deepinv(prior, den, task, size, y, config, args.dps_weight))
        else:
            (out, nfe, vjp), sec = timed(lambda: run_ours(prior, task, size, y, spec["solver"], spec["steps"],
                                                          spec["start"], batch, spec["samples"],
                                                          params=spec["params"]))
        point = {**base, "who": who, "config": config, "batch": batch, **spec, "seconds": sec / n, "nfe": nfe,
                 "vjp": vjp, **score(x, out, weights)}
        with out_file.open("a") as f:
            f.write(json.dumps(point) + "\n")
        done[key] = point
        print(f"  {task} {who} {config} batch {batch}: {point['psnr']:.2f} dB, LPIPS {point['lpips']:.4f}, "
              f"{point['seconds']:.3f} s/photo", file=sys.stderr, flush=True)
    # every point measured for this task, size and photo count, this run's grid or an earlier one's
    return points + [p for k, p in done.items() if k[:3] == (task, size, n)], y


def retime(args, task, x, y, prior, den, ref, ours, reps):
    """Seconds per photo of the deepinv point and our match, run back to back `reps` times (medians)."""
    t_ref, t_ours = [], []
    for _ in range(reps):
        t_ref.append(timed(lambda: run_deepinv(prior, den, task, args.size, y, ref["config"], args.dps_weight))[1])
        t_ours.append(timed(lambda: run_ours(prior, task, args.size, y, ours["solver"], ours["steps"], ours["start"],
                                             ours["batch"], ours.get("samples", 1), params=ours.get("params")))[1])
    return statistics.median(t_ref) / len(x), statistics.median(t_ours) / len(x)


def describe(p: dict) -> str:
    return (f"{p['config']} (batch {p['batch']}): {p['psnr']:.2f} dB, LPIPS {p['lpips']:.4f}, "
            f"{p['seconds']:.3f} s/photo, {p['nfe']:g} NFE + {p['vjp']:g} VJP")


def report(args, task, points, x, y, prior, den) -> list[bool]:
    from inversa.eval.front import fastest_at_least, pareto_front

    ours = [p for p in points if p["who"] == "inversa"]
    print(f"\n## {task} ({len(x)} photos at {args.size}², torch threads {torch.get_num_threads()})\n")
    for p in points:
        if p["who"] != "inversa":
            print(f"{p['who']} {describe(p)}")
    for metric in ("psnr", "lpips"):
        print(f"\nPareto front of inversa, seconds vs {metric.upper()}:")
        for p in pareto_front(ours, metric):
            print(f"  {describe(p)}")
    print("\nFor each deepinv point, the fastest inversa point with PSNR >= and LPIPS <= (batch no larger):")
    verdicts = []
    for ref in (p for p in points if p["who"] == "deepinv"):
        goal = GOALS.get(ref["config"], 0.5)
        match = fastest_at_least([p for p in ours if p["batch"] <= ref["batch"]], ref)
        if match is None:
            print(f"  deepinv {ref['config']}: none of ours reaches it  [goal {goal:g}x: MISSED]")
            verdicts.append(False)
            continue
        t_ref, t_ours = ((ref["seconds"], match["seconds"]) if not args.confirm_reps else
                         retime(args, task, x, y, prior, den, ref, match, args.confirm_reps))
        ok = t_ours <= goal * t_ref
        verdicts.append(ok)
        print(f"  deepinv {ref['config']} ({ref['psnr']:.2f} dB, {ref['lpips']:.4f}): {describe(match)}; "
              f"re-timed {t_ours:.3f} vs {t_ref:.3f} s/photo, ratio {t_ours / t_ref:.4f}  "
              f"[goal {goal:g}x: {'met' if ok else 'MISSED'}]")
    return verdicts


def plot(path: Path, by_task: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inversa.eval.front import pareto_front

    fig, axes = plt.subplots(2, len(by_task), figsize=(5 * len(by_task), 8), squeeze=False)
    for j, (task, points) in enumerate(by_task.items()):
        ours = [p for p in points if p["who"] == "inversa"]
        for i, metric in enumerate(("psnr", "lpips")):
            ax = axes[i][j]
            ax.scatter([p["seconds"] for p in ours], [p[metric] for p in ours], s=8, c="0.75", label="inversa (grid)")
            front = pareto_front(ours, metric)
            ax.step([p["seconds"] for p in front], [p[metric] for p in front], where="post", c="C0",
                    label="inversa Pareto front")
            for k, p in enumerate(p for p in points if p["who"] == "deepinv"):
                ax.scatter([p["seconds"]], [p[metric]], marker="s", c=f"C{k + 1}", label=f"deepinv {p['config']}")
            naive = next(p for p in points if p["who"] == "naive")
            ax.axhline(naive[metric], ls=":", c="k", label="naive inverse")
            ax.set_xscale("log")
            ax.set_xlabel("seconds per photo (log)")
            ax.set_ylabel(metric.upper() + (" (dB) ↑" if metric == "psnr" else " ↓"))
            ax.set_title(task)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"\nplot written to {path}")


def main() -> int:
    from inversa.solvers.registry import solver_names

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--solvers", default=",".join(s for s in solver_names("pixel") if s != "naive"))
    ap.add_argument("--steps", default="5,10,25,50,100,250,1000")
    ap.add_argument("--starts", default="1,0.4,0.2")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--samples", default="1", help="K values: each restoration the mean of K samples")
    ap.add_argument("--deepinv", default=",".join(DEEPINV))
    ap.add_argument("--dps-weight", type=float, default=300.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--confirm-reps", type=int, help="re-time each matched pair back to back this many times "
                    "(0: no; default 1, 0 with --reduced)")
    ap.add_argument("--out", help="results file (JSON lines; default runs/time_to_quality_<size>.jsonl)")
    ap.add_argument("--plot", help="write the fronts as a PNG here")
    ap.add_argument("--reduced", action="store_true", help="2 photos, 3 points per solver")
    args = ap.parse_args()
    if args.reduced:
        args.limit = min(args.limit, 2)
    if args.confirm_reps is None:
        args.confirm_reps = 0 if args.reduced else 1
    torch.set_num_threads(args.threads)
    x_all = sample_photos(args.limit, args.size)
    if x_all is None:
        return 0
    from inversa.interop.deepinv import PriorDenoiser

    prior, kind = bench_prior(args.size)
    den = PriorDenoiser(prior)
    weights = SHARED / "weights" / "lpips"
    weights = weights if weights.is_dir() else None
    out_file = Path(args.out or f"runs/time_to_quality_{args.size}.jsonl")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if out_file.exists():
        for line in out_file.read_text().splitlines():
            p = json.loads(line)
            done[(p["task"], p["size"], p["photos"], p["who"], p["config"], p["batch"])] = p
    import deepinv

    print(f"# Time to quality: prior {prior.name} ({kind}), {len(x_all)} photos at {args.size}², torch "
          f"{torch.__version__}, deepinv {deepinv.__version__}, threads {args.threads}; results in {out_file}")
    by_task, verdicts = {}, []
    for task in args.tasks.split(","):
        points, y = measure_task(args, task, x_all, prior, den, done, out_file, weights)
        by_task[task] = points
        verdicts += report(args, task, points, x_all, y, prior, den)
    print(f"\nmust-hold: {sum(verdicts)}/{len(verdicts)} deepinv points matched within their time goal")
    if args.plot:
        plot(Path(args.plot), by_task)
    return 0


if __name__ == "__main__":
    sys.exit(main())
