"""Our DiffPIR and DDRM against deepinv's, on the same diffusers UNet, photos and measurements.

    python bench/vs_deepinv_baselines.py [--size 64] [--limit 4] [--steps 20,100]
                                         [--presets box_inpaint,random_inpaint] [--reps 1]

deepinv (a test/bench-only dependency) gets our prior through its denoiser interface
(`inversa.interop.deepinv.PriorDenoiser`) and the same measurement y. The operator goes to deepinv as
its own `Inpainting` physics with our mask (a `DecomposablePhysics`, which deepinv's DDRM needs and
whose proximal step DiffPIR solves in closed form, as ours does). Both methods run with their
published defaults on both sides (DDRM eta 0.85, eta_b 1; DiffPIR lambda 7, zeta 0.3 ours / deepinv's
default zeta 0.1 and our zeta, both printed) at the same number of network evaluations.

Prints per preset and step count: mean PSNR of each, the difference (goal: ours not lower by more
than 0.2 dB), and wall time per batch with the ratio ours/deepinv (goal <= 1.0), measured
interleaved in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import photo_problem
from inversa.eval.metrics import psnr
from inversa.interop.deepinv import PriorDenoiser
from inversa.solvers import make_solver


def deepinv_physics(op, shape, i):
    """Image i's mask as deepinv's Inpainting (its DDRM takes one mask for the whole batch)."""
    import deepinv as dinv

    return dinv.physics.Inpainting(img_size=tuple(shape[1:]), mask=op.mask[i:i + 1].expand(1, *shape[1:]).clone(),
                                   noise_model=dinv.physics.GaussianNoise(sigma=op.sigma), device=op.mask.device)


def run_deepinv(method, den, physics, y, steps, seed, zeta=None):
    """One image at a time (deepinv's DDRM shares one mask across a batch; per-image masks differ)."""
    import deepinv as dinv

    outs = []
    with torch.no_grad():
        for i, ph in enumerate(physics):
            if method == "ddrm":
                model = dinv.sampling.DDRM(den, sigmas=np.linspace(1, 0, steps), eta=0.85, etab=1.0)
            else:
                model = dinv.sampling.DiffPIR(den, dinv.optim.data_fidelity.L2(), sigma=ph.noise_model.sigma,
                                              max_iter=steps, zeta=zeta if zeta is not None else 0.1, lambda_=7.0)
            outs.append(model(y[i:i + 1], ph, seed=seed + i + 1).clamp(0, 1))  # seed 0 would mean "no seeding"
    return torch.cat(outs)


def run_ours(method, prior, op, y, steps, seed, start=1.0):
    """One image at a time too, so the wall times compare the same work. With `start` < 1 (a warm
    start), steps / start respaced steps, of which the last `steps` run: the same network evaluations."""
    from inversa.operators import Inpainting

    solver = make_solver(method, prior, start=start)
    steps = round(steps / start)
    return torch.cat([solver(y[i:i + 1], Inpainting(op.mask[i:i + 1], noise=op.noise),
                             generator=[torch.Generator().manual_seed(seed + i)], num_steps=steps, progress=False).x
                      for i in range(y.shape[0])])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--steps", default="20,100")
    ap.add_argument("--presets", default="box_inpaint,random_inpaint")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ddrm-start", type=float, default=0.2,
                    help="also our DDRM warm-started at this fraction, at the same NFE (deepinv's starts at VE sigma 1)")
    args = ap.parse_args()
    import deepinv

    for preset in args.presets.split(","):
        problem = photo_problem(preset, args.limit, args.size)
        if problem is None:
            return
        x, op, y, prior, kind = problem
        den, physics = PriorDenoiser(prior), [deepinv_physics(op, tuple(x.shape), i) for i in range(len(x))]
        print(f"\n{preset}: prior {prior.name} ({kind}); {len(x)} photos {args.size}x{args.size}, float32, "
              f"torch threads {torch.get_num_threads()}, deepinv {deepinv.__version__}; "
              f"naive inverse {psnr(op.naive_inverse(y), x).mean():.2f} dB")
        for steps in (int(s) for s in args.steps.split(",")):
            for method in ("ddrm", "diffpir"):
                runs = {"ours": lambda: run_ours(method, prior, op, y, steps, args.seed),
                        "deepinv": lambda: run_deepinv(method, den, physics, y, steps, args.seed)}
                if method == "ddrm" and args.ddrm_start < 1:
                    runs[f"ours start {args.ddrm_start:g}"] = lambda: run_ours(method, prior, op, y, steps, args.seed,
                                                                              args.ddrm_start)
                if method == "diffpir":
                    runs["deepinv zeta 0.3"] = lambda: run_deepinv(method, den, physics, y, steps, args.seed, zeta=0.3)
                times = {k: [] for k in runs}
                scores, nfes = {}, {}
                for rep in range(args.reps):
                    for who, fn in runs.items():  # interleaved
                        nfe0, t0 = prior.nfe, time.perf_counter()
                        out = fn()
                        times[who].append(time.perf_counter() - t0)
                        scores[who], nfes[who] = psnr(out, x).mean().item(), prior.nfe - nfe0
                line = "  ".join(f"{who} {scores[who]:.2f} dB, {statistics.median(times[who]):.1f} s, NFE {nfes[who]}"
                                 for who in runs)
                best = max(v for k, v in scores.items() if k.startswith("deepinv"))
                ratio = statistics.median(times["ours"]) / statistics.median(times["deepinv"])
                print(f"  {method} @ {steps}: {line}  | ours - best deepinv {scores['ours'] - best:+.2f} dB, "
                      f"time ours/deepinv {ratio:.2f}")


if __name__ == "__main__":
    main()
