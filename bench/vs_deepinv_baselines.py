"""Our DiffPIR and DDRM against deepinv's, on the same diffusers UNet, photos and measurements.

    python bench/vs_deepinv_baselines.py [--size 64] [--limit 4] [--steps 20,100] [--seeds 1]
                                         [--presets box_inpaint,random_inpaint,sr4,circ_deblur] [--reps 1]
                                         [--paper-noise]

deepinv (a test/bench-only dependency) gets our prior through its denoiser interface
(`inversa.interop.deepinv.PriorDenoiser`) and the same measurement y. The operator goes to deepinv as
our own operator's SVD (`to_deepinv(op, shape)`, a `DecomposablePhysics`, which deepinv's DDRM needs
and whose proximal step DiffPIR solves in closed form, as ours does): inpainting, SR x4 and
"circ_deblur" (the Gaussian-deblurring preset with circular padding; the preset's reflect padding has
no SVD). Each method runs at the same number of network evaluations in four ways:

- "ours" and "deepinv": each library's defaults (ours: the papers' published settings, DDRM η 0.85,
  η_b 1 from noise, DiffPIR λ 7, ζ 0.3; deepinv 0.5.0: DDRM η 0.85, η_b 1 warm-started at its first
  level with noise drawn at 1/sqrt(2) of DDRM's; DiffPIR λ 7, ζ 0.1);
- the same configuration on both sides, which is what compares the two implementations: for DDRM
  "ours as deepinv" (our DDRM warm-started where deepinv's starts, `start` 0.4, with `s_noise`
  1/sqrt(2)); for DiffPIR "deepinv as ours" (ζ 0.3 and λ 3.5: deepinv's data step is the proximal
  operator of ½||Ax - y||² with γ = 1/(2ρ), i.e. ||Ax - y||² + 2ρ||x - x0||², so its λ weighs the
  prior twice what the paper's and the official code's λ does).
- `--paper-noise`: deepinv's DDRM without its 1/sqrt(2), a diagnostic.
- Layouts: inversa runs a convolutional network NHWC on CPU (`DiffusionPrior.configure`, `bench/layout.py`);
  deepinv calls networks as they are, NCHW. So deepinv's ways reach the same weights through a copy of the
  prior kept NCHW, and the same-configuration pair runs once more with deepinv on our NHWC prior ("deepinv
  ..., NHWC"): the first ratio is what each library's user gets, the second the implementations alone.
- `--loop-cost`: instead, the same-configuration pairs with a stand-in network of negligible cost, which
  times what each implementation adds to the network's forwards (milliseconds per step, the minimum
  of 7 interleaved runs): both libraries pay one forward per level, so that is where they can differ.

Every photo runs with --seeds seeds (photo i, seed k: generator i + 1 + 1000 k on both sides). That
makes the DiffPIR pair common random numbers: ours and deepinv's draw x_T and one normal per step in
the same order from the same seed, so their paired difference is the algorithms' alone (DDRM's
runs draw differently: deepinv's starts from y, ours diffuses the naive inverse). Prints per preset, steps
and method: mean PSNR and wall time of each way (the fastest of its seeds x --reps interleaved runs, as
`timeit` advises: slower runs measure the machine's other work; the ways take turns at running first), and
for the same-configuration pair the paired PSNR difference ours - deepinv with its standard error over
photos x seeds (goal: not lower by more than 0.2 dB) and the wall-time ratio ours/deepinv (goal <= 1.0),
all measured interleaved in one run, one image at a time on both sides (deepinv's DDRM shares one mask
across a batch).
"""

from __future__ import annotations

import argparse
import contextlib
import time
import types

import numpy as np
import torch

from common import bench_operator, nchw_copy, photo_problem
from inversa.eval.metrics import psnr
from inversa.interop.deepinv import PriorDenoiser
from inversa.solvers import make_solver


AS_DEEPINV_START = 0.4  # deepinv's DDRM starts at VE sigma 1 ([0, 1] units): abar = 1 / (1 + 2²) = 0.2, t = 396 of 1000


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


def run_deepinv(method, den, physics, y, steps, seed, zeta=None, lam=7.0):
    """One image at a time (deepinv's DDRM shares one mask across a batch; per-image masks differ)."""
    import deepinv as dinv

    outs = []
    with torch.no_grad():
        for i, ph in enumerate(physics):
            if method == "ddrm":
                model = dinv.sampling.DDRM(den, sigmas=np.linspace(1, 0, steps), eta=0.85, etab=1.0)
            else:
                model = dinv.sampling.DiffPIR(den, dinv.optim.data_fidelity.L2(), sigma=ph.noise_model.sigma,
                                              max_iter=steps, zeta=zeta if zeta is not None else 0.1, lambda_=lam)
            outs.append(model(y[i:i + 1], ph, seed=seed + i + 1).clamp(0, 1))  # seed 0 would mean "no seeding"
    return torch.cat(outs)


def run_ours(method, prior, preset, size, y, steps, seed, start=1.0, **params):
    """One image at a time too, so the wall times compare the same work. With `start` < 1 (a warm
    start), steps / start respaced steps, of which the last `steps` run: the same network evaluations."""
    solver = make_solver(method, prior, start=start, **params)
    steps = round(steps / start)
    # seed + i + 1 as deepinv's run: common random numbers where both draw alike (DiffPIR: x_T, then one per step)
    return torch.cat([solver(y[i:i + 1], bench_operator(preset, size, [i]),
                             generator=[torch.Generator().manual_seed(seed + i + 1)], num_steps=steps, progress=False).x
                      for i in range(y.shape[0])])


def ways(args, method, prior, dens, physics, preset, y, steps):
    """{name: fn(seed) -> restorations} of every way to run `method` (see the module docstring), and the
    (ours, deepinv, deepinv on our layout) names of its same-configuration pair. `dens`: deepinv's
    denoiser in its own layout (NCHW) and in ours."""
    den, den_ours = dens
    ours = lambda seed, start=1.0, **kw: run_ours(method, prior, preset, args.size, y, steps, seed, start, **kw)  # noqa: E731
    runs = {"ours": ours, "deepinv": lambda seed: run_deepinv(method, den, physics, y, steps, seed)}
    if method == "diffpir":
        runs["deepinv as ours"] = lambda seed: run_deepinv(method, den, physics, y, steps, seed, zeta=0.3, lam=3.5)
        runs["deepinv as ours, NHWC"] = lambda seed: run_deepinv(method, den_ours, physics, y, steps, seed, zeta=0.3, lam=3.5)
        return runs, ("ours", "deepinv as ours", "deepinv as ours, NHWC")
    runs["ours as deepinv"] = lambda seed: ours(seed, AS_DEEPINV_START, s_noise=2**-0.5)
    runs["deepinv, NHWC"] = lambda seed: run_deepinv(method, den_ours, physics, y, steps, seed)
    if args.paper_noise:
        def paper(seed):
            with paper_noise():
                return run_deepinv(method, den, physics, y, steps, seed)
        runs["deepinv paper noise"] = paper
    return runs, ("ours as deepinv", "deepinv", "deepinv, NHWC")


def compare(args, runs, x, prior):
    """Interleaved runs over seeds and --reps, the ways' order rotated from run to run: per way the PSNR of
    every (seed, photo) (from its first run at each seed), the fastest run's seconds, NFE."""
    scores, times, nfes = {k: [] for k in runs}, {k: [] for k in runs}, {}
    names = list(runs)
    for seed in range(args.seeds):
        for rep in range(args.reps):
            r = (seed * args.reps + rep) % len(names)  # rotated order: no way always runs first (warm caches, clocks)
            for who in names[r:] + names[:r]:
                fn = runs[who]
                nfe0, t0 = prior.nfe, time.perf_counter()
                out = fn(args.seed + 1000 * seed)
                times[who].append(time.perf_counter() - t0)
                nfes[who] = prior.nfe - nfe0
                if rep == 0:
                    scores[who].append(psnr(out, x))
    return {k: torch.cat(v) for k, v in scores.items()}, {k: min(v) for k, v in times.items()}, nfes


class StandIn(torch.nn.Module):
    """A network of negligible cost (eps = 0.1 x_t), put in place of the UNet by `--loop-cost`."""

    def forward(self, x, t, *args, **kwargs):
        return 0.1 * x


@contextlib.contextmanager
def stand_in_network(*priors):
    """The priors' network call replaced by `StandIn` on both sides (deepinv reaches it through a prior
    too), so that what is timed is each library's own loop: operator transforms, noise, bookkeeping."""
    calls = [p.__dict__["_call"] for p in priors]
    for p in priors:
        p.__dict__["_call"] = StandIn()
    try:
        yield
    finally:
        for p, call in zip(priors, calls):
            p.__dict__["_call"] = call


def loop_cost(args, preset, prior, dens, physics, y, steps, reps=7):
    """Milliseconds per step of each library's own loop (a stand-in network), min over `reps` interleaved runs."""
    line = []
    with stand_in_network(prior, dens[0].prior):
        for method in ("ddrm", "diffpir"):
            runs, pair = ways(args, method, prior, dens, physics, preset, y, steps)
            pair = pair[:2]
            best = {k: float("inf") for k in pair}
            for _ in range(reps):
                for k in pair:
                    t0 = time.perf_counter()
                    runs[k](args.seed)
                    best[k] = min(best[k], time.perf_counter() - t0)
            per = {k: 1000 * v / (steps * len(y)) for k, v in best.items()}
            line.append(f"{method}: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))
    print(f"  loop's own cost, ms per step (stand-in network) @ {steps}: " + "; ".join(line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--steps", default="20,100")
    ap.add_argument("--presets", default="box_inpaint,random_inpaint")
    ap.add_argument("--seeds", type=int, default=1, help="samples per photo (paired across the two libraries)")
    ap.add_argument("--reps", type=int, default=1, help="timed runs per way and seed (the fastest counts)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paper-noise", action="store_true",
                    help="also deepinv's DDRM with the paper's noise level (see paper_noise), a diagnostic")
    ap.add_argument("--loop-cost", action="store_true",
                    help="only time each library's own loop per step, with a stand-in network (see stand_in_network)")
    args = ap.parse_args()
    import deepinv

    verdicts = []
    for preset in args.presets.split(","):
        problem = photo_problem(preset, args.limit, args.size)
        if problem is None:
            return
        x, op, y, prior, kind = problem
        # deepinv's ways: the same weights called NCHW, as deepinv calls networks, and on our NHWC prior
        dens, physics = (PriorDenoiser(nchw_copy(prior)), PriorDenoiser(prior)), [deepinv_physics(preset, args.size, i) for i in range(len(x))]
        print(f"\n{preset}: prior {prior.name} ({kind}); {len(x)} photos {args.size}x{args.size} x {args.seeds} seeds, "
              f"float32, torch threads {torch.get_num_threads()}, deepinv {deepinv.__version__}; "
              f"naive inverse {psnr(op.naive_inverse(y), x).mean():.2f} dB")
        for steps in (int(s) for s in args.steps.split(",")):
            if args.loop_cost:
                loop_cost(args, preset, prior, dens, physics, y, steps)
                continue
            for method in ("ddrm", "diffpir"):
                runs, (a, b, b_nhwc) = ways(args, method, prior, dens, physics, preset, y, steps)
                scores, times, nfes = compare(args, runs, x, prior)
                line = "  ".join(f"{who} {scores[who].mean():.2f} dB, {times[who]:.1f} s" for who in runs)
                d = scores[a] - scores[b]
                diff, se, ratio = d.mean().item(), (d.std() / len(d) ** 0.5).item(), times[a] / times[b]
                ok = diff >= -0.2 and ratio <= 1.0
                verdicts.append(ok)
                print(f"  {method} @ {steps} (NFE {nfes['ours']} per run): {line}\n    same configuration: {a} - {b} "
                      f"{diff:+.2f} ± {se:.2f} dB, time {ratio:.2f}  [{'met' if ok else 'MISSED'}]; both NHWC: time "
                      f"{times[a] / times[b_nhwc]:.2f}; defaults: ours - deepinv {(scores['ours'] - scores['deepinv']).mean():+.2f} dB")
    if verdicts:
        print(f"\nmust-hold: {sum(verdicts)}/{len(verdicts)} same-configuration rows within 0.2 dB at <= 1.0x the time")


if __name__ == "__main__":
    main()
