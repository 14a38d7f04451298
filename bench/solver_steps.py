"""Step time of each method relative to one network forward+VJP, at batch 1 and 8, side by side.

    python bench/solver_steps.py [--size 64] [--device cpu] [--presets gaussian_deblur,box_inpaint]

Goals (issue 5): CA-DPS paper <= 1.3x DPS, C-DPS <= 0.6x DPS, CMI-DPS <= 2.5x DPS. One step is
timed mid-trajectory (t = 500 of 100 respaced steps) with each method's defaults (CG capped by its
cg_iters); "ca-dps cov" is the paper variant with mean_shift="covariance" (no VJP). On a shared CPU
run it with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse

import torch

from common import bench_prior, interleaved, peak_rss_mb
from inversa.operators import make_preset
from inversa.solvers import CADPS, CDPS, DPS, make_solver
from inversa.solvers.base import Problem

METHODS = {
    "dps": lambda p: DPS(p),
    "ca-dps paper": lambda p: CADPS(p),
    "ca-dps cov": lambda p: CADPS(p, mean_shift="covariance"),
    "ca-dps ref": lambda p: CADPS(p, variant="reference"),
    "cmi-dps": lambda p: make_solver("cmi-dps", p, base="dps"),
    "c-dps": lambda p: CDPS(p),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--presets", default="gaussian_deblur,box_inpaint")
    args = ap.parse_args()
    prior, kind = bench_prior(args.size, args.device)
    print(f"prior: {prior.name} ({kind}), {args.size}x{args.size}, device {args.device}, torch threads {torch.get_num_threads()}")
    print("times: median ms of one step; in brackets: / (network forward + VJP); last columns: / DPS step")
    head = f"{'preset':<16}{'batch':>5}{'fwd+vjp':>9}" + "".join(f"{m:>20}" for m in METHODS) + "".join(f"{m + '/dps':>17}" for m in METHODS if m != "dps")
    print(head)
    for preset in args.presets.split(","):
        for batch in (1, 8):
            op = make_preset(preset, args.size, index=list(range(batch))).to(args.device)
            x = torch.rand(batch, 3, args.size, args.size, device=args.device)
            y = op.measure(x, generator=torch.Generator().manual_seed(0))
            problem = Problem(y=2 * y - op.A(torch.ones_like(x)), operator=op, sigma=2 * op.sigma, generators=None)
            solvers = {}
            for name, make in METHODS.items():
                solvers[name] = make(prior)
                solvers[name].prepare(problem, solvers[name].timesteps(100))
            x_t = torch.randn_like(x)

            def net_fwd_vjp():
                xt = x_t.detach().requires_grad_(True)
                torch.autograd.grad(prior.net(xt, 500).sum(), xt)

            fns = {"net": net_fwd_vjp}
            for name, s in solvers.items():
                fns[name] = lambda s=s: s._one_step(50, 100, 500, 490, x_t, problem, None)
            t = interleaved(fns, reps=args.reps)
            cells = "".join(f"{t[m] * 1e3:>11.1f} [{t[m] / t['net']:>5.2f}]" for m in METHODS)
            rel = "".join(f"{t[m] / t['dps']:>17.2f}" for m in METHODS if m != "dps")
            print(f"{preset:<16}{batch:>5}{t['net'] * 1e3:>9.1f}{cells}{rel}")
            cg = {m: s.cg_log.as_dict() for m, s in solvers.items() if hasattr(s, "cg_log") and s.cg_log.solves}
            if cg:
                print("    CG per solve, max iterations: " + ", ".join(f"{m} {d['cg_max_iterations']} (residual {d['cg_max_residual']:.1e})" for m, d in cg.items()))
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
