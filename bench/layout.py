"""The network's memory layout on CPU: NHWC (channels-last) against NCHW, interleaved in one process.

    OMP_NUM_THREADS=1 python bench/layout.py [--limit 2] [--steps 20] [--reps 6] [--adm] [--quality]

inversa runs convolutional networks NHWC on CPU by default (`DiffusionPrior.configure(channels_last=None)`).
This times, with `channels_last=True` and `False` taking turns (`common.interleaved`, median of --reps):
1. one forward of the bundled prior's UNet at 64² (batch 1 and 4), 128² and 256²; with --adm also one of the
   ADM FFHQ 256² configuration (DPS's network; random weights, 93.6 M parameters, seconds a forward);
2. whole runs of DDRM (random inpainting), DiffPIR (circular deblurring), DPS (SR x4, forward + VJP a step)
   and CA-DPS (box inpainting) on the FFHQ sample (or stand-in photos), one image at a time,
and prints each pair and the ratio NHWC / NCHW (below 1: NHWC faster). The layouts agree to rounding in
one forward; a whole run of a solver that amplifies rounding (DPS, CA-DPS) ends at a different sample.
3. with --quality, instead: PSNR / LPIPS of DPS, CA-DPS, C-DPS and CMI-DPS at 25 steps on the first 8
   FFHQ sample photos x 3 seeds in each layout, and how far the restorations are apart per pixel.
"""

from __future__ import annotations

import argparse

import torch

from common import bench_operator, interleaved, nchw_copy, photo_problem
from inversa.solvers import make_solver

CASES = (("random_inpaint", "ddrm"), ("circ_deblur", "diffpir"), ("sr4", "dps"), ("box_inpaint", "ca-dps"))


def layouts(prior):
    """{True: prior kept NHWC, False: a copy of it kept NCHW (`common.nchw_copy`)}."""
    return {True: prior.configure(channels_last=True), False: nchw_copy(prior)}


def forward_times(prior, shapes, reps):
    priors = layouts(prior)
    for shape in shapes:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))

        def run(nhwc):
            with torch.no_grad():
                priors[nhwc].net(x, 500)

        best = interleaved({"nhwc": lambda: run(True), "nchw": lambda: run(False)}, reps=reps)
        print(f"  forward {'x'.join(map(str, shape))}: NHWC {best['nhwc'] * 1e3:.1f} ms, NCHW {best['nchw'] * 1e3:.1f} ms, "
              f"ratio {best['nhwc'] / best['nchw']:.3f}", flush=True)


def adm_prior():
    """The ADM FFHQ 256² architecture with random weights (the real checkpoint is a download)."""
    from diffusers import UNet2DModel

    from inversa.pretrained import DiffusionPrior, adm

    cfg = adm.ADM_CONFIGS["ffhq"]
    torch.manual_seed(0)
    return DiffusionPrior(UNet2DModel(**adm.diffusers_config(cfg)).eval(), adm.make_scheduler(cfg), name="adm-ffhq-random")


QUALITY_CASES = (("sr4", "dps"), ("random_inpaint", "ca-dps"), ("gaussian_deblur", "c-dps"), ("box_inpaint", "cmi-dps"))


def quality(seeds=3, limit=8, steps=25):
    """Each layout's restorations of the same problems, the same seeds: PSNR / LPIPS and their distance."""
    from common import SHARED
    from inversa.eval.metrics import MetricUnavailable, lpips, psnr

    for preset, method in QUALITY_CASES:
        problem = photo_problem(preset, limit, 64)
        if problem is None:
            return
        x, op, y, prior, _ = problem
        ref, res = x.repeat(seeds, 1, 1, 1), {}
        for nhwc, p in layouts(prior).items():
            solver = make_solver(method, p)
            out = torch.cat([solver(y, op, generator=[torch.Generator().manual_seed(1 + i + 1000 * k) for i in range(len(x))],
                                    num_steps=steps, progress=False).x for k in range(seeds)])
            try:
                lp = f"{lpips(out, ref, weights=SHARED / 'weights' / 'lpips').mean():.3f}"
            except MetricUnavailable:
                lp = "-"
            res[nhwc] = (psnr(out, ref).mean().item(), lp, out)
        d = (res[True][2] - res[False][2]).abs()
        print(f"  {method} on {preset}: NHWC {res[True][0]:.2f} dB / LPIPS {res[True][1]}, NCHW {res[False][0]:.2f} dB / "
              f"{res[False][1]}; |difference| per pixel mean {d.mean():.1e}, max {d.max():.1e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--adm", action="store_true", help="also one forward of the ADM FFHQ 256² configuration")
    ap.add_argument("--quality", action="store_true", help="instead, restorations' quality in each layout (see above)")
    args = ap.parse_args()
    if args.quality:
        print("25 steps, 8 FFHQ sample photos x 3 seeds at 64², each layout")
        return quality()
    print(f"torch threads {torch.get_num_threads()}, median of {args.reps} interleaved runs")
    problem = photo_problem(CASES[0][0], args.limit, 64)
    if problem is None:
        return
    prior = problem[3]
    print("network forward (bundled prior)")
    forward_times(prior, [(1, 3, 64, 64), (4, 3, 64, 64), (1, 3, 128, 128), (1, 3, 256, 256)], args.reps)
    if args.adm:
        print("network forward (ADM FFHQ 256² configuration, random weights)")
        forward_times(adm_prior(), [(1, 3, 256, 256)], max(2, args.reps // 3))
    print(f"whole runs at 64², {args.steps} steps, {args.limit} photos one at a time")
    for preset, method in CASES:
        x, _, y, prior, _ = photo_problem(preset, args.limit, 64)
        solvers = {nhwc: make_solver(method, p) for nhwc, p in layouts(prior).items()}

        def run(nhwc):
            for i in range(len(x)):
                solvers[nhwc](y[i:i + 1], bench_operator(preset, 64, [i]), generator=[torch.Generator().manual_seed(i + 1)],
                              num_steps=args.steps, progress=False)

        best = interleaved({"nhwc": lambda: run(True), "nchw": lambda: run(False)}, reps=args.reps)
        print(f"  {method} on {preset}: NHWC {best['nhwc']:.3f} s, NCHW {best['nchw']:.3f} s, "
              f"ratio {best['nhwc'] / best['nchw']:.3f}", flush=True)


if __name__ == "__main__":
    main()
