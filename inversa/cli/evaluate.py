"""`inversa eval`: batch evaluation of solvers on image folders."""

from __future__ import annotations


def register(sub, common) -> None:
    ev = sub.add_parser(
        "eval", parents=[common], help="batch evaluation: PSNR/SSIM/LPIPS/FID tables and an HTML report (resumable, shardable)",
        description="Evaluate solvers on a folder of images: for each image, task, solver, step count and seed, "
        "measure, restore and score; rerunning resumes; `accelerate launch -m inversa eval ...` splits the work.",
    )
    ev.add_argument("--data", metavar="DIR", help="folder of clean images")
    ev.add_argument("--tasks", metavar="T1,T2", help="task presets, e.g. sr4,box_inpaint,random_inpaint,gaussian_deblur,motion_deblur")
    ev.add_argument("--solvers", metavar="S1,S2", help="comma-separated, from {solvers}")
    ev.add_argument("--seeds", metavar="0,1,2", help="seeds (default 0)")
    ev.add_argument("--steps", metavar="N[,N2]", help="sampling steps; several give a metric-vs-NFE plot (default 50)")
    ev.add_argument("--model", metavar="M", help="prior: bundled name, diffusers folder or hub id (default: bundled)")
    ev.add_argument("--lpips-net", metavar="alex|vgg|none", help="LPIPS backbone (default alex)")
    ev.add_argument("--lpips-weights", metavar="PATH", help="local LPIPS weights, file or folder (or $INVERSA_LPIPS_WEIGHTS)")
    ev.add_argument("--limit", metavar="K", help="use the first K images")
    ev.add_argument("--size", metavar="S", help="centre-crop and resize images to SxS (default: the model's size)")
    ev.add_argument("--device", help="auto (default: cuda when available, or accelerate's), cpu, cuda, cuda:N")
    ev.add_argument("--batch-size", metavar="B", help="images restored together (same task, solver, steps and seed; "
                    "default 1): more throughput, the same results up to float rounding")
    ev.add_argument("--out", metavar="RUN_DIR", help="run folder: rows, images and reports")
    ev.add_argument("--config", metavar="FILE", help="JSON or TOML file with any of these settings (and solver_params)")
    ev.add_argument("--num-shards", metavar="N", help="split the items into N shards ...")
    ev.add_argument("--shard-index", metavar="I", help="... and run shard I (0-based)")
    ev.add_argument("--merge", action="store_true", help="only build the tables and report of RUN_DIR from its rows")
    ev.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    ev.set_defaults(func=run)


def run(args) -> int:
    from inversa.eval.evaluate import main_cli

    if args.device is not None and args.device.strip().lower() != "auto":
        from inversa.device import resolve_device

        resolve_device(args.device)
    else:
        args.device = None  # accelerate's device: cuda when available
    if args.out:
        from inversa.imageio import check_writable_folder

        check_writable_folder(args.out, "--out")
    return main_cli(args)
