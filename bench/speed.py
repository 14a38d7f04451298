"""Solver cost against the network's own cost, batch throughput and peak memory, in one run.

    python bench/speed.py [--size 64] [--device cpu] [--presets sr4,box_inpaint,gaussian_deblur]
                          [--reps 5] [--run-steps 10] [--memory] [--channels-last] [--compile]

Prints three tables (every figure of a table measured in this one run, round-robin, so machine
noise hits all methods alike):
1. one step mid-trajectory (t = 500 of 100 respaced steps) in ms, at batch 1 and 8, divided by the
   network's forward (`/fwd`) and forward + VJP (`/fv`) at the same batch;
2. throughput of whole solver runs (`--run-steps` steps, per image): batch 8 vs batch 1;
3. with --memory: memory of one run at batch 8, in a fresh process per method: the sampling's peak
   above the loaded process (CUDA: max allocated; CPU: peak RSS after resetting it, Linux).
Targets (issue 10): DPS step / (fwd+VJP) <= 1.05; C-DPS (paper variant) step / fwd <= 1.2; batch-8 throughput >=
1.5x batch 1 for every solver. On a shared CPU run with OMP_NUM_THREADS=1 for stable ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from common import bench_prior, interleaved, peak_rss_mb
from inversa.operators import make_preset
from inversa.solvers import make_solver
from inversa.solvers.base import Problem

# label -> (solver name, parameters)
METHODS = {
    "dps": ("dps", {}),
    "ca-dps": ("ca-dps", {}),
    "ca-dps vjp": ("ca-dps", {"mean_shift": "vjp"}),
    "cmi-dps": ("cmi-dps", {}),
    "cmi exact": ("cmi-dps", {"hvp": "exact"}),
    "c-dps": ("c-dps", {}),  # the joint step, the default since 2026-12-04
    "c-dps paper": ("c-dps", {"variant": "paper"}),  # the form issue 10's target (step / fwd <= 1.2) was set for
}


def setup(prior, preset: str, size: int, batch: int, device: str):
    op = make_preset(preset, size, index=list(range(batch))).to(device)
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    y = op.measure(x, generator=[torch.Generator().manual_seed(i) for i in range(batch)])
    return op, x, y


def step_table(prior, args):
    print(f"\n1. one step, ms (and / network forward, / forward+VJP), {args.size}x{args.size}")
    head = f"{'preset':<16}{'batch':>5}{'fwd':>8}{'fwd+vjp':>9}" + "".join(f"{m:>22}" for m in METHODS)
    print(head)
    for preset in args.presets.split(","):
        for batch in (1, 8):
            op, x, y = setup(prior, preset, args.size, batch, args.device)
            problem = Problem(y=2 * y - op.A(torch.ones_like(x)), operator=op, sigma=2 * op.sigma,
                              generators=[torch.Generator().manual_seed(i) for i in range(batch)])
            x_t = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(args.device)
            solvers = {}
            for label, (name, params) in METHODS.items():
                solvers[label] = make_solver(name, prior, **params)
                solvers[label].prepare(problem, solvers[label].timesteps(100))

            def fwd():
                with torch.inference_mode():
                    prior.net(x_t, 500)

            def fwd_vjp():
                xt = x_t.detach().requires_grad_(True)
                torch.autograd.grad(prior.net(xt, 500).sum(), xt)

            fns = {"fwd": fwd, "fv": fwd_vjp}
            for label, s in solvers.items():
                fns[label] = lambda s=s: s._one_step(50, 100, 500, 490, x_t, problem, None)
            t = interleaved(fns, reps=args.reps)
            cells = "".join(f"{t[m] * 1e3:>8.1f} [{t[m] / t['fwd']:>4.2f} {t[m] / t['fv']:>4.2f}]" for m in METHODS)
            print(f"{preset:<16}{batch:>5}{t['fwd'] * 1e3:>8.1f}{t['fv'] * 1e3:>9.1f}{cells}")
    print("   [a b]: a = step / fwd, b = step / (fwd+VJP)")


def throughput_table(prior, args):
    print(f"\n2. throughput of whole runs ({args.run_steps} steps), images/s at batch 1 and 8")
    print(f"{'preset':<16}" + "".join(f"{m:>26}" for m in METHODS))
    for preset in args.presets.split(","):
        runs = {}
        for batch in (1, 8):
            op, x, y = setup(prior, preset, args.size, batch, args.device)
            for label, (name, params) in METHODS.items():
                s = make_solver(name, prior, **params)
                gens = lambda b=batch: [torch.Generator().manual_seed(i) for i in range(b)]
                runs[(label, batch)] = lambda s=s, y=y, op=op, gens=gens: s(y, op, generator=gens(), num_steps=args.run_steps, progress=False)
        t = interleaved(runs, reps=max(1, args.reps // 2))
        cells = ""
        for m in METHODS:
            ips1, ips8 = 1 / t[(m, 1)], 8 / t[(m, 8)]
            cells += f"{ips1:>8.2f} {ips8:>7.2f} [{ips8 / ips1:>5.2f}x]"
        print(f"{preset:<16}{cells}")
    print("   a b [r]: images/s at batch 1, at batch 8, [batch-8 / batch-1 throughput]")


_CHILD = """
import json, sys, torch
sys.path.insert(0, {bench!r})
from common import bench_prior
from speed import METHODS, setup, rss_mb
from inversa.solvers import make_solver
prior, _ = bench_prior({size}, {device!r})
name, params = METHODS[{label!r}]
op, x, y = setup(prior, {preset!r}, {size}, 8, {device!r})
s = make_solver(name, prior, **params)
cuda = {device!r}.startswith("cuda")
if cuda:
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() / 2**20
else:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = rss_mb("VmRSS")
s(y, op, generator=[torch.Generator().manual_seed(i) for i in range(8)], num_steps=3, progress=False)
peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else rss_mb("VmHWM")
print(json.dumps([peak - before, peak]))
"""


def rss_mb(field: str) -> float:
    """VmRSS (current) or VmHWM (peak since the last reset) of this process, MB (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def memory_table(args):
    print(f"\n3. memory of one run at batch 8, MB: sampling's peak above the loaded process [whole process peak] "
          f"({'CUDA allocated' if args.device.startswith('cuda') else 'RSS'})")
    preset = args.presets.split(",")[0]
    print(f"{'preset':<16}" + "".join(f"{m:>18}" for m in METHODS))
    cells = ""
    for label in METHODS:
        code = _CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), size=args.size, device=args.device,
                             label=label, preset=preset)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        extra, peak = json.loads(out.stdout.strip().splitlines()[-1])
        cells += f"{extra:>10.0f} [{peak:>5.0f}]"
    print(f"{preset:<16}{cells}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--presets", default="sr4,box_inpaint,gaussian_deblur")
    ap.add_argument("--run-steps", type=int, default=25)
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--precision", default="fp32", help="network precision (DiffusionPrior.configure)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--skip-steps", action="store_true", help="skip table 1")
    ap.add_argument("--skip-throughput", action="store_true", help="skip table 2")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"columns, from: {', '.join(METHODS)}")
    args = ap.parse_args()
    chosen = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {', '.join(unknown)}; accepted: {', '.join(METHODS)}")
    for m in list(METHODS):  # the tables and the memory child read METHODS
        if m not in chosen:
            del METHODS[m]
    prior, kind = bench_prior(args.size, args.device)
    prior.configure(precision=args.precision, channels_last=args.channels_last, checkpointing=args.checkpointing,
                    compile=args.compile)
    print(f"prior: {prior.name} ({kind}), {args.size}x{args.size}, device {args.device}, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}; network "
          f"{args.precision}{', channels-last' if args.channels_last else ''}{', checkpointing' if args.checkpointing else ''}"
          f"{', compiled' if args.compile else ''}")
    if not args.skip_steps:
        step_table(prior, args)
    if not args.skip_throughput:
        throughput_table(prior, args)
    if args.memory:
        memory_table(args)
    print(f"\npeak RSS of this process {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
