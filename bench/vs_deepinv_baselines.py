"""Our DiffPIR and DDRM against deepinv's, on the same diffusers UNet, photos and measurements.

    python bench/vs_deepinv_baselines.py [--size 64] [--limit 4] [--steps 20,100]
                                         [--presets box_inpaint,random_inpaint,sr4,circ_deblur] [--reps 1]
                                         [--paper-noise]

deepinv (a test/bench-only dependency) gets our prior through its denoiser interface
(`inversa.interop.deepinv.PriorDenoiser`) and the same measurement y. The operator goes to deepinv as
our own operator's SVD (`to_deepinv(op, shape)`, a `DecomposablePhysics`, which deepinv's DDRM needs
and whose proximal step DiffPIR solves in closed form, as ours does): inpainting, SR x4 and
"circ_deblur" (the Gaussian-deblurring preset with circular padding; the preset's reflect padding has
no SVD). Both methods run with their
published defaults on both sides (DDRM eta 0.85, eta_b 1; DiffPIR lambda 7, zeta 0.3 ours / deepinv's
default zeta 0.1 and our zeta, both printed) at the same number of network evaluations.

Prints per preset and step count: mean PSNR of each, the difference (goal: ours not lower by more
than 0.2 dB), and wall time per batch with the ratio ours/deepinv (goal <= 1.0), measured
interleaved in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import types

import numpy as np
import torch

from common import bench_operator, photo_problem
from inversa.eval.metrics import psnr
from inversa.interop.deepinv import PriorDenoiser
from inversa.solvers import make_solver


def deepinv_physics(preset, size, i):
    """Image i's operator as deepinv physics: its DDRM takes one mask for the whole batch."""
    from inversa.interop.deepinv import to_deepinv

    return to_deepinv(bench_operator(preset, size, [i]), (1, 3, size, size))


@contextlib.contextmanager
def paper_noise():
    """deepinv 0.5.0's DDRM draws each step's noise as `std * randn / np.sqrt(2.0)` while its denoiser is
    told the level `std`: a denoiser told more noise than there is smooths more (higher PSNR, higher
    LPIPS). Inside this context that division is 1, i.e. the noise of DDRM's paper (and ours); a
    diagnostic of the bench only. Refused when deepinv's source no longer has that line."""
    import inspect

    import deepinv.sampling.diffusion as module

    if "/ np.sqrt(2.0)" not in inspect.getsource(module.DDRM.forward):
        raise SystemExit("--paper-noise: this deepinv's DDRM has no '/ np.sqrt(2.0)' noise draw; nothing to undo")
    shim = types.SimpleNamespace(**vars(np))
    shim.sqrt = lambda v: 1.0 if isinstance(v, float) and v == 2.0 else np.sqrt(v)
    module.np = shim
    try:
        yield
    finally:
        module.np = np


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


def run_ours(method, prior, preset, size, y, steps, seed, start=1.0):
    """One image at a time too, so the wall times compare the same work. With `start` < 1 (a warm
    start), steps / start respaced steps, of which the last `steps` run: the same network evaluations."""
    solver = make_solver(method, prior, start=start)
    steps = round(steps / start)
    return torch.cat([solver(y[i:i + 1], bench_operator(preset, size, [i]),
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
    ap.add_argument("--paper-noise", action="store_true",
                    help="also deepinv's DDRM with the paper's noise level (see paper_noise), a diagnostic")
    args = ap.parse_args()
    import deepinv

    for preset in args.presets.split(","):
        problem = photo_problem(preset, args.limit, args.size)
        if problem is None:
            return
        x, op, y, prior, kind = problem
        den, physics = PriorDenoiser(prior), [deepinv_physics(preset, args.size, i) for i in range(len(x))]
        print(f"\n{preset}: prior {prior.name} ({kind}); {len(x)} photos {args.size}x{args.size}, float32, "
              f"torch threads {torch.get_num_threads()}, deepinv {deepinv.__version__}; "
              f"naive inverse {psnr(op.naive_inverse(y), x).mean():.2f} dB")
        for steps in (int(s) for s in args.steps.split(",")):
            for method in ("ddrm", "diffpir"):
                runs = {"ours": lambda: run_ours(method, prior, preset, args.size, y, steps, args.seed),
                        "deepinv": lambda: run_deepinv(method, den, physics, y, steps, args.seed)}
                if method == "ddrm" and args.ddrm_start < 1:
                    runs[f"ours start {args.ddrm_start:g}"] = lambda: run_ours(method, prior, preset, args.size, y, steps, args.seed,
                                                                              args.ddrm_start)
                if method == "ddrm" and args.paper_noise:
                    def paper():
                        with paper_noise():
                            return run_deepinv(method, den, physics, y, steps, args.seed)
                    runs["deepinv paper noise"] = paper
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
                best = max(v for k, v in scores.items() if k in ("deepinv", "deepinv zeta 0.3"))
                ratio = statistics.median(times["ours"]) / statistics.median(times["deepinv"])
                paper = (f", ours - deepinv paper noise {scores['ours'] - scores['deepinv paper noise']:+.2f} dB"
                         if "deepinv paper noise" in scores else "")
                print(f"  {method} @ {steps}: {line}  | ours - best deepinv {scores['ours'] - best:+.2f} dB{paper}, "
                      f"time ours/deepinv {ratio:.2f}")


if __name__ == "__main__":
    main()
