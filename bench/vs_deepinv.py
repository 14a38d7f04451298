"""Our DPS against deepinv's DPS on the same diffusers UNet, the same steps and dtype.

    python bench/vs_deepinv.py [--size 64] [--steps 100] [--limit 8] [--preset sr4]
                               [--weights 10,30,100,300] [--reps 2] [--device cpu]

deepinv (a test/bench-only dependency) gets our prior through its denoiser interface
(`denoiser(x, sigma)` on [0, 1] images, VE noise level sigma): the nearest training timestep,
then Tweedie's x0 = x - sigma eps, as deepinv's own DiffUNet does. Both run the DDPM ancestral
sampler in float32 with the network in float32 on the same photos and measurements
(../shared/data/ffhq256-sample at --size).

Prints: wall time of one batch run of each (median of --reps, interleaved) and their ratio
(goal <= 0.75), NFE/VJP per step, and mean PSNR of our DPS (default step size) and of deepinv's
DPS at each `--weights` value (its "norm" guidance weight has no default that fits every
operator and step count, so it is swept; the best is compared: goal, ours not lower by > 0.2 dB).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import photo_problem
from inversa.eval.metrics import psnr
from inversa.interop.deepinv import PriorDenoiser
from inversa.solvers import DPS


def run_deepinv(denoiser, op, y, steps, weight, seed, device):
    import deepinv as dinv

    physics = dinv.physics.LinearPhysics(A=op.A, A_adjoint=op.A_adjoint, device=device)
    # deepinv's num_steps counts time points: N + 1 of them give N network evaluations, as our N steps
    model = dinv.sampling.DPS(denoiser, solver="ddpm", num_steps=steps + 1, weight=weight, device=device,
                              dtype=torch.float32, minus_one_one=True, rng=torch.Generator(device).manual_seed(seed))
    shape = tuple(op.input_shape(tuple(y.shape)))
    with torch.no_grad():
        return model(y, physics, x_init=shape, seed=seed).clamp(0, 1)


def run_ours(prior, op, y, steps, seed):
    gens = [torch.Generator().manual_seed(seed + i) for i in range(y.shape[0])]
    return DPS(prior)(y, op, generator=gens, num_steps=steps, progress=False).x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--preset", default="sr4")
    ap.add_argument("--weights", default="10,30,100,300")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import deepinv

    problem = photo_problem(args.preset, args.limit, args.size, args.device)
    if problem is None:
        return
    x, op, y, prior, kind = problem
    den = PriorDenoiser(prior).to(args.device)
    weights = [float(w) for w in args.weights.split(",")]
    print(f"prior: {prior.name} ({kind}); {len(x)} photos {args.size}x{args.size}, {args.preset}, {args.steps} steps, "
          f"float32, device {args.device}, torch threads {torch.get_num_threads()}, deepinv {deepinv.__version__}")

    # timing: the same batch, interleaved, median of reps
    times = {"ours": [], "deepinv": []}
    for rep in range(args.reps + 1):  # the first round warms up
        for who in times:
            nfe0 = prior.nfe
            t0 = time.perf_counter()
            if who == "ours":
                out = run_ours(prior, op, y, args.steps, args.seed)
            else:
                out = run_deepinv(den, op, y, args.steps, weights[0], args.seed, args.device)
            dt = time.perf_counter() - t0
            if rep:
                times[who].append(dt)
            if rep == 1:
                print(f"  {who:<8} network evaluations per run: {prior.nfe - nfe0} (forward + VJP each)")
    t_ours, t_di = statistics.median(times["ours"]), statistics.median(times["deepinv"])
    print(f"wall time per batch: ours {t_ours:.1f} s, deepinv {t_di:.1f} s, ratio ours/deepinv {t_ours / t_di:.3f}")

    # quality
    ours = psnr(run_ours(prior, op, y, args.steps, args.seed), x)
    print(f"PSNR ours (default step size): {ours.mean():.2f} ± {ours.std():.2f} dB")
    best = None
    for w in weights:
        p = psnr(run_deepinv(den, op, y, args.steps, w, args.seed, args.device), x)
        print(f"PSNR deepinv weight {w:g}: {p.mean():.2f} ± {p.std():.2f} dB")
        best = p if best is None or p.mean() > best.mean() else best
    naive = psnr(op.naive_inverse(y), x)
    print(f"PSNR naive inverse: {naive.mean():.2f} dB")
    print(f"ours - best deepinv: {ours.mean() - best.mean():+.2f} dB (goal >= -0.2)")


if __name__ == "__main__":
    main()
