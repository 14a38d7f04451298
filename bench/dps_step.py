"""DPS step time / (network forward + VJP) at batch 1 and 8, and peak memory.

    python bench/dps_step.py [--size 64] [--device cpu]

Goal: <= 1.05 (everything but the network is negligible).
"""

from __future__ import annotations

import argparse

import torch

from common import bench_prior, interleaved, peak_rss_mb
from inversa.operators import make_preset
from inversa.solvers import DPS
from inversa.solvers.base import Problem, StepState


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    prior, kind = bench_prior(args.size, args.device)
    print(f"prior: {prior.name} ({kind}), {args.size}x{args.size}, device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'batch':>5} {'fwd+vjp ms':>11} {'dps step ms':>12} {'ratio':>6} {'peak RSS MB':>12}")
    for batch in (1, 8):
        op = make_preset("gaussian_deblur", (args.size, args.size)).to(args.device)
        x = torch.rand(batch, 3, args.size, args.size, device=args.device)
        y = op.measure(x, generator=torch.Generator().manual_seed(0))
        solver = DPS(prior)
        problem = Problem(y=2 * y - 1, operator=op, sigma=2 * op.sigma, generators=None)
        solver.prepare(problem, solver.timesteps(100))
        x_t = torch.randn_like(x)

        def net_fwd_vjp():
            xt = x_t.detach().requires_grad_(True)
            out = prior.net(xt, 500)
            torch.autograd.grad(out.sum(), xt)

        def dps_step():
            solver._one_step(0, 100, 500, 490, x_t, problem, None)

        t = interleaved({"net": net_fwd_vjp, "dps": dps_step}, reps=args.reps)
        print(f"{batch:>5} {t['net'] * 1e3:>11.1f} {t['dps'] * 1e3:>12.1f} {t['dps'] / t['net']:>6.3f} {peak_rss_mb():>12.0f}")


if __name__ == "__main__":
    main()
