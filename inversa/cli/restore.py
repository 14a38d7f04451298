"""`inversa restore`: restore a damaged photo, or simulate a degradation and restore it."""

from __future__ import annotations

import argparse
import json

from inversa.cli.common import parse_params
from inversa.errors import UserError
from inversa.quality import quality_help


def register(sub, common) -> None:
    p = sub.add_parser("restore", parents=[common], help="restore a damaged photo, or simulate a degradation and restore it",
                       description="Restore IMAGE. Damaged mode (default): IMAGE is the measurement; give --mask "
                       "(inpaint), --kernel or --blur-std (deblur), --factor (sr). Simulate mode (--preset or "
                       "--simulate): IMAGE is clean; it is degraded, restored and PSNR/SSIM are printed. "
                       "`inversa solvers` lists each solver's --param names and defaults.")
    p.add_argument("image", nargs="?", help="input image file (omit with --demo)")
    p.add_argument("--task", help="inpaint, deblur, sr or denoise")
    p.add_argument("--preset", help="simulate a benchmark degradation: sr4, box_inpaint, random_inpaint, gaussian_deblur, motion_deblur, denoise")
    p.add_argument("--simulate", action="store_true", help="treat IMAGE as clean and degrade it with --task parameters")
    p.add_argument("--mask", help="mask image/array file, white = missing pixels")
    p.add_argument("--kernel", help="blur kernel file (.npy, .npz or image)")
    p.add_argument("--blur-std", type=float, default=3.0, help="Gaussian blur std in pixels when no --kernel (default 3)")
    p.add_argument("--factor", type=int, default=4, help="super-resolution factor (default 4)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sigma", type=float, help="Gaussian noise std in [0, 1] image units (default 0.025)")
    g.add_argument("--sigma-pm1", type=float, help="the same on the [-1, 1] scale of the literature (0.05 = --sigma 0.025)")
    p.add_argument("--quality", default="balanced",
                   help="which solver, steps and warm start to use for the task when --solver is not given "
                   "(default balanced): " + " | ".join(quality_help().splitlines()))
    p.add_argument("--solver", help="one of {solvers} (default: the --quality preset's for the task; lc-dps for a "
                   "latent model, which runs only latent-dps, psld, lc-dps); `inversa solvers` lists their parameters")
    p.add_argument("--steps", type=int, help="sampling steps (default: the --quality preset's; 50 with --solver)")
    p.add_argument("--samples", type=int, default=1,
                   help="restore K samples as one batch and write their mean (the posterior mean's estimate: higher "
                   "PSNR, smoother; K times the work; default 1, one sample)")
    p.add_argument("--keep-observed", action="store_true",
                   help="inpainting with --sigma 0: put the observed pixels back exactly")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="bundled model name, diffusers folder or hub id (default: the bundled prior)")
    p.add_argument("--device", default="auto", help="auto (default: cuda when available, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--max-size", type=int, default=512, help="downscale larger images to this longer side (default 512)")
    p.add_argument("--precision", default="fp32", help="network precision: fp32 (default), bf16 or fp16 (GPUs)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC layout for the network (default: on for CPUs, where it is faster; off on GPUs)")
    p.add_argument("--checkpointing", action="store_true", help="recompute activations in backward passes (less memory at large sizes)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (pays off on long GPU runs)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="solver parameter, e.g. scale=0.5 (repeatable; `inversa solvers` lists them)")
    p.add_argument("-o", "--out", help="restored image path (default IMAGE_restored.png)")
    p.add_argument("--save-measurement", metavar="PATH", help="also write the measurement")
    p.add_argument("--save-comparison", metavar="PATH", help="also write a side-by-side PNG")
    p.add_argument("--demo", action="store_true", help="offline demo: degrade scikit-image's astronaut, restore, write a comparison")
    p.add_argument("--json", action="store_true", help="print the result (files, metrics, NFE, metadata) as JSON")
    p.set_defaults(func=run)


def _inputs(args):
    """(image, preset, out, comparison) of `inversa restore`, the demo's included."""
    from pathlib import Path

    if args.demo:
        from inversa.demo import demo_image

        out = Path(args.out or "inversa_demo_restored.png")
        comparison = args.save_comparison or str(out.with_name(out.stem.replace("_restored", "") + "_comparison.png"))
        return demo_image(), args.preset or ("sr4" if args.task is None else None), out, comparison
    if not args.image:
        raise UserError("give an IMAGE file (or --demo)")
    out = Path(args.out or Path(args.image).with_name(Path(args.image).stem + "_restored.png"))
    return args.image, args.preset, out, args.save_comparison


def run(args) -> int:
    from inversa.imageio import check_output_path
    from inversa.restoration import restore, write_outputs

    sigma = args.sigma if args.sigma_pm1 is None else args.sigma_pm1 / 2
    params = parse_params(args.param)
    image, preset, out, comparison = _inputs(args)
    for path in [out, args.save_measurement, comparison]:
        if path:  # before the image is read or a model loaded
            check_output_path(path)
    result = restore(image, task=args.task, preset=preset, simulate=args.simulate, mask=args.mask, kernel=args.kernel,
                     blur_std=args.blur_std, factor=args.factor, sigma=sigma, solver=args.solver, steps=args.steps,
                     seed=args.seed, model=args.model, device=args.device, max_size=args.max_size,
                     solver_params=params, quality=args.quality, samples=args.samples,
                     keep_observed=args.keep_observed, progress=args.progress,
                     prior_options={"precision": args.precision, "channels_last": args.channels_last,
                                    "checkpointing": args.checkpointing, "compile": args.compile})
    written = write_outputs(result, out, measurement=args.save_measurement, comparison=comparison)
    meta = result.metadata
    if args.json:
        print(json.dumps({"outputs": [str(p) for p in written], "metrics": result.metrics, "nfe": meta.get("nfe"),
                          "vjp": meta.get("vjp"), "seconds": meta.get("seconds"), "messages": result.messages,
                          "metadata": meta}, indent=2, default=str))
        return 0
    for path in written:
        print(f"wrote {path}")
    start = meta.get("start", 1.0)
    how = f"{meta.get('solver')}, {meta.get('steps')} steps" + (
        f", warm start {start}: the last {meta.get('num_steps')} run" if start < 1 else "")
    if meta.get("quality"):
        how += f"; quality {meta['quality']}"
    print(f"{meta['output']} ({how})")
    m = result.metrics
    if m:
        print(f"degraded (naive inverse): PSNR {m['psnr_naive']:.2f} dB  SSIM {m['ssim_naive']:.4f}")
        print(f"restored: PSNR {m['psnr_restored']:.2f} dB  SSIM {m['ssim_restored']:.4f}")
    print(f"NFE {meta.get('nfe')}  VJP {meta.get('vjp')}  {meta.get('seconds', 0):.1f} s")
    return 0
