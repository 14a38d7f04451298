"""Sampling with and without denormals flushed to zero on CPU, interleaved in one process.

    OMP_NUM_THREADS=1 python bench/denormals.py [--limit 2] [--steps 20] [--reps 6]

inversa runs every network forward and the sampling loop with denormal floats flushed to zero on CPU
(`inversa.device.flush_denormals`). This times DDRM (random inpainting), DPS (SR x4) and DiffPIR
(circular deblurring) on the FFHQ sample (or stand-in photos) one image at a time, once with the flush
and once with it replaced by a no-op, and prints the median of each (`common.interleaved`) and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib

import torch

from common import bench_operator, interleaved, photo_problem
import inversa.pretrained.prior as prior_module
import inversa.solvers.base as loop_module
from inversa.solvers import make_solver

CASES = (("random_inpaint", "ddrm"), ("sr4", "dps"), ("circ_deblur", "diffpir"))


@contextlib.contextmanager
def flush(enabled: bool):
    """The library's flush, or a no-op in its place (in the network call and the loop)."""
    real = prior_module.flush_denormals
    stand_in = real if enabled else (lambda device: contextlib.nullcontext())
    prior_module.flush_denormals = loop_module.flush_denormals = stand_in
    try:
        yield
    finally:
        prior_module.flush_denormals = loop_module.flush_denormals = real


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=6)
    args = ap.parse_args()
    print(f"torch threads {torch.get_num_threads()}, 64x64, {args.steps} steps, median of {args.reps} interleaved runs")
    for preset, method in CASES:
        problem = photo_problem(preset, args.limit, 64)
        if problem is None:
            return
        x, _, y, prior, _ = problem
        solver = make_solver(method, prior)

        def run(enabled):
            with flush(enabled):
                for i in range(len(x)):
                    solver(y[i:i + 1], bench_operator(preset, 64, [i]), generator=[torch.Generator().manual_seed(i + 1)],
                           num_steps=args.steps, progress=False)

        best = interleaved({"flush": lambda: run(True), "no flush": lambda: run(False)}, reps=args.reps)
        print(f"  {method} on {preset}: flushed {best['flush']:.3f} s, not flushed {best['no flush']:.3f} s, "
              f"ratio {best['flush'] / best['no flush']:.3f}")


if __name__ == "__main__":
    main()
