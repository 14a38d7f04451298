"""Quality against network evaluations: mean PSNR of each method at several step counts.

    python bench/quality_nfe.py [--preset sr4] [--size 64] [--limit 8] [--steps 25,50,100,250,1000]
                                [--methods dps,dps-ddim,c-dps,ca-dps,ca-dps-vjp,cmi-dps]
                                [--max-steps cmi-dps=100,ca-dps-vjp=250] [--out runs/quality_nfe_sr4.json]

On the FFHQ evaluation photos (../shared/data/ffhq256-sample, centre-cropped and resized to --size
as `inversa eval --size` does) with the bundled prior, one batch per (method, steps): per-image
generators make each photo's result what a batch-1 run gives. Measurement noise is drawn once
(seed 1000 + i) and shared by every method. Each finished cell is saved to --out at once, so an
interrupted run resumes where it stopped. Prints PSNR mean ± std and NFE per image.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from common import photo_problem
from inversa.eval.metrics import psnr
from inversa.solvers import make_solver

METHODS = {
    "dps": ("dps", {}),
    "dps-ddim": ("dps", {"sampler": "ddim", "eta": 0.0}),
    "c-dps": ("c-dps", {}),  # variant="joint" since 2026-12-04
    "ca-dps": ("ca-dps", {}),  # mean_shift="tilt" (central secant), sqrt_iters=2 since 2026-12-04
    "ca-dps-vjp": ("ca-dps", {"mean_shift": "vjp"}),
    "cmi-dps": ("cmi-dps", {}),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="sr4")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--steps", default="25,50,100,250,1000")
    ap.add_argument("--methods", default="dps,dps-ddim,c-dps,ca-dps,ca-dps-vjp,cmi-dps")
    ap.add_argument("--max-steps", default="cmi-dps=100,ca-dps-vjp=250,dps-ddim=250",
                    help="cap the step counts of expensive methods, e.g. cmi-dps=100")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out")
    args = ap.parse_args()
    problem = photo_problem(args.preset, args.limit, args.size, args.device)
    if problem is None:
        return
    x, op, y, prior, kind = problem
    n = len(x)
    out = Path(args.out or f"runs/quality_nfe_{args.preset}_{args.size}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    cells = json.loads(out.read_text()) if out.exists() else {}
    caps = dict(item.split("=") for item in args.max_steps.split(",") if item)
    steps = [int(s) for s in args.steps.split(",")]
    print(f"prior: {prior.name} ({kind}); {n} photos {args.size}x{args.size}, {args.preset}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}; cells in {out}")
    naive = psnr(op.naive_inverse(y), x)
    cells["naive"] = {"psnr": naive.tolist(), "nfe": 0, "seconds": 0.0}
    for method in args.methods.split(","):
        name, params = METHODS[method]
        for k in steps:
            key = f"{method}@{k}"
            if key in cells or k > int(caps.get(method, 10**9)):
                continue
            gens = [torch.Generator().manual_seed(args.seed * 100_000 + i) for i in range(n)]
            t0 = time.perf_counter()
            res = make_solver(name, prior, **params)(y, op, generator=gens, num_steps=k, progress=False)
            p = psnr(res.x, x)
            cells[key] = {"psnr": p.tolist(), "nfe": res.nfe, "vjp": res.vjp, "seconds": time.perf_counter() - t0}
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(cells, indent=1))
            os.replace(tmp, out)  # a finished cell is never lost, a half-written file never left
            print(f"  {key:<18} PSNR {p.mean():6.2f} ± {p.std():.2f} dB  NFE {res.nfe:>5}  "
                  f"{time.perf_counter() - t0:7.1f} s", flush=True)
    print(f"\nmean PSNR (dB) ± std over {n} photos; NFE per image in brackets; naive inverse {naive.mean():.2f}")
    print(f"{'method':<12}" + "".join(f"{k:>20}" for k in steps))
    for method in args.methods.split(","):
        row = ""
        for k in steps:
            c = cells.get(f"{method}@{k}")
            if c:
                p = torch.tensor(c["psnr"])
                row += f"{p.mean():>9.2f} ± {p.std():4.2f} [{c['nfe']:>4}]"
            else:
                row += f"{'-':>20}"
        print(f"{method:<12}{row}")


if __name__ == "__main__":
    main()
