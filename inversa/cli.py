"""`inversa ...` subcommands. Thin: parse, call the library, print.

Each subcommand registers itself through an `_add_<name>(sub)` function below; users' errors
(`UserError`, missing files) are printed as one line and exit with code 2, as are a bare `inversa`
or `inversa models` (usage). `-q/--quiet` (or TQDM_DISABLE=1) silences progress bars and notes;
`--json` (restore, models list, solvers) prints one JSON document on stdout instead of text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from inversa.errors import UserError


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (no usage dump), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes (after its name): -q/--quiet."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes (also: TQDM_DISABLE=1)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inversa", description="Imaging inverse problems with pretrained diffusion priors.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _common()
    for add in (_add_restore, _add_solvers, _add_models, _add_train, _add_eval, _add_app, _add_distill, _add_eval_distill):
        add(sub, common)
    return parser


# --- restore ------------------------------------------------------------------------------------

def _add_restore(sub, common) -> None:
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
    p.add_argument("--solver", help="a registered solver, e.g. dps, ca-dps, cmi-dps, c-dps, ddrm, ddnm, pigdm, diffpir or naive; "
                   "`inversa solvers` lists them all with their parameters (default dps; c-dps for --demo)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="bundled model name, diffusers folder or hub id (default: the bundled prior)")
    p.add_argument("--device", default="auto", help="auto (default: cuda when available, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--max-size", type=int, default=512, help="downscale larger images to this longer side (default 512)")
    p.add_argument("--precision", default="fp32", help="network precision: fp32 (default), bf16 or fp16 (GPUs)")
    p.add_argument("--channels-last", action="store_true", help="NHWC layout for the network (faster on recent GPUs)")
    p.add_argument("--checkpointing", action="store_true", help="recompute activations in backward passes (less memory at large sizes)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (pays off on long GPU runs)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="solver parameter, e.g. scale=0.5 (repeatable; `inversa solvers` lists them)")
    p.add_argument("-o", "--out", help="restored image path (default IMAGE_restored.png)")
    p.add_argument("--save-measurement", metavar="PATH", help="also write the measurement")
    p.add_argument("--save-comparison", metavar="PATH", help="also write a side-by-side PNG")
    p.add_argument("--demo", action="store_true", help="offline demo: degrade scikit-image's astronaut, restore, write a comparison")
    p.add_argument("--json", action="store_true", help="print the result (files, metrics, NFE, metadata) as JSON")
    p.set_defaults(func=_cmd_restore)


def _restore_inputs(args):
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


def _cmd_restore(args) -> int:
    from inversa.imageio import check_output_path
    from inversa.restore import restore, write_outputs

    sigma = args.sigma if args.sigma_pm1 is None else args.sigma_pm1 / 2
    # C-DPS for the demo: with the small bundled prior it is the solver that keeps the photo (see the model card).
    args.solver = args.solver or ("c-dps" if args.demo else "dps")
    params = _parse_params(args.param)
    if args.demo:  # warm start: 3x fewer NFE and better on held-out photos with the bundled prior (docs/quality.md)
        params.setdefault("start", 0.3)
    image, preset, out, comparison = _restore_inputs(args)
    for path in [out, args.save_measurement, comparison]:
        if path:  # before the image is read or a model loaded
            check_output_path(path)
    result = restore(image, task=args.task, preset=preset, simulate=args.simulate, mask=args.mask, kernel=args.kernel,
                     blur_std=args.blur_std, factor=args.factor, sigma=sigma, solver=args.solver, steps=args.steps,
                     seed=args.seed, model=args.model, device=args.device, max_size=args.max_size,
                     solver_params=params, progress=args.progress,
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
    m = result.metrics
    if m:
        print(f"degraded (naive inverse): PSNR {m['psnr_naive']:.2f} dB  SSIM {m['ssim_naive']:.4f}")
        start = meta.get("start", 1.0)
        warm = f", warm start {start}" if start < 1 else ""
        print(f"restored ({args.solver}, {args.steps} steps{warm}): PSNR {m['psnr_restored']:.2f} dB  SSIM {m['ssim_restored']:.4f}")
    print(f"NFE {meta.get('nfe')}  VJP {meta.get('vjp')}  {meta.get('seconds', 0):.1f} s")
    return 0


def _parse_params(items: list[str]) -> dict:
    from inversa.solvers.registry import parse_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param {item!r} must look like KEY=VALUE")
        out[key] = parse_value(value)
    return out


# --- solvers ------------------------------------------------------------------------------------

def _add_solvers(sub, common) -> None:
    p = sub.add_parser("solvers", parents=[common], help="list the solvers and their --param names with defaults",
                       description="Every registered solver with the parameters `--param KEY=VALUE` accepts and their "
                       "defaults, read from the solver classes.")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=_cmd_solvers)


def _cmd_solvers(args) -> int:
    from inversa.params import format_solvers, solvers_json

    print(json.dumps(solvers_json(), indent=2) if args.json else format_solvers())
    return 0


# --- models -------------------------------------------------------------------------------------

def _add_models(sub, common) -> None:
    mp = sub.add_parser("models", help="list, inspect, convert and verify priors")
    mp.set_defaults(func=None, usage=mp.format_usage)
    msub = mp.add_subparsers(dest="models_command", metavar="ACTION", parser_class=_Parser)
    ml = msub.add_parser("list", parents=[common], help="bundled priors and known hub models")
    ml.add_argument("--json", action="store_true", help="print the list as JSON")
    ml.set_defaults(func=_cmd_models_list)
    mi = msub.add_parser("info", parents=[common], help="details of one prior (loads it)")
    mi.add_argument("name", help="bundled name, diffusers folder or hub id")
    mi.set_defaults(func=_cmd_models_info)
    mc = msub.add_parser("convert", parents=[common], help="convert a guided-diffusion (ADM) checkpoint into a diffusers folder",
                         description="Convert an ADM checkpoint (ffhq_10m.pt, 256x256_diffusion_uncond.pt, ...) into "
                         "DIR/unet (safetensors) + DIR/scheduler, usable as --model DIR. .pt files are read weights-only.")
    mc.add_argument("src", metavar="SRC", help="ADM checkpoint: .pt/.pth (weights only) or .safetensors")
    mc.add_argument("-o", "--output", required=True, metavar="DIR", help="new folder to create")
    mc.add_argument("--config", default="auto", metavar="NAME",
                    help="ffhq, imagenet256-uncond, or auto (default: the known file's config, else read off the weights "
                    "assuming 64-channel attention heads)")
    mc.add_argument("--image-size", type=int, metavar="N", help="training image side of an unknown checkpoint read with --config auto (default 256)")
    mc.set_defaults(func=_cmd_models_convert)
    mv = msub.add_parser("verify", parents=[common], help="check that a model folder loads and runs (and matches its ADM source)")
    mv.add_argument("dir", metavar="DIR", help="diffusers model folder (e.g. made by `inversa models convert`)")
    mv.add_argument("--against", metavar="SRC", help="the ADM checkpoint DIR was converted from: compare outputs")
    mv.add_argument("--size", type=int, help="test image side (default: twice the smallest side the UNet accepts)")
    mv.add_argument("--tol", type=float, default=1e-4, help="largest accepted max abs difference with --against (default 1e-4)")
    mv.set_defaults(func=_cmd_models_verify)


def _cmd_models_list(args) -> int:
    from dataclasses import asdict

    from inversa.pretrained import registry

    models = registry.all_models()
    if args.json:
        print(json.dumps([{**asdict(m), "aliases": list(m.aliases), "default": m.name == registry.DEFAULT_MODEL}
                          for m in models], indent=2))
        return 0
    for m in models:
        default = " (default)" if m.name == registry.DEFAULT_MODEL else ""
        print(f"{m.name:34s} {m.kind:11s} {m.description}{default}")
    return 0


def _cmd_models_info(args) -> int:
    from inversa.pretrained import load_prior

    prior = load_prior(args.name)
    n = sum(p.numel() for p in prior.model.parameters())
    print(f"name: {prior.name}\nsource: {prior.source}\nparameters: {n / 1e6:.2f} M\n"
          f"prediction: {prior.prediction_type}\nlearned variance: {prior.learned_variance}\n"
          f"train timesteps: {prior.num_train_timesteps}\nsample size: {prior.sample_size}\n"
          f"input sides must be multiples of {prior.size_multiple}")
    return 0


def _cmd_models_convert(args) -> int:
    from inversa.imageio import check_writable_folder
    from inversa.pretrained.adm import convert_checkpoint

    check_writable_folder(args.output, "-o")
    info = convert_checkpoint(args.src, args.output, config=args.config, image_size=args.image_size)
    cfg = info["adm_config"]
    print(f"converted {args.src} (sha256 {info['source_sha256']}) -> {args.output}\n"
          f"ADM config: model_channels {cfg['model_channels']}, num_res_blocks {cfg['num_res_blocks']}, channel_mult "
          f"{','.join(f'{m:g}' for m in cfg['channel_mult'])}, attention at {','.join(map(str, cfg['attention_resolutions']))}, "
          f"learned variance {cfg['out_channels'] == 2 * cfg['in_channels']}\n"
          f"use it with --model {args.output}; check it with `inversa models verify {args.output} --against {args.src}`")
    return 0


def _cmd_models_verify(args) -> int:
    from inversa.pretrained.adm import verify_folder

    verify_folder(args.dir, against=args.against, size=args.size, tol=args.tol)
    print(f"verified {args.dir}")
    return 0


# --- train --------------------------------------------------------------------------------------

def _add_train(sub, common) -> None:
    # Defaults reproduce the bundled inversa-photo-64 (sized for ~1 h on one shared CPU core).
    p = sub.add_parser("train", parents=[common], help="train a small convolutional diffusion prior on photos",
                       description="Train a DDPM prior (diffusers UNet2DModel, no attention) on random "
                       "crops; resumes from MODEL_DIR/checkpoints when rerun.")
    p.add_argument("--data", required=True,
                   help="comma-separated sources (all, opencv, skimage, sklearn, matplotlib) and/or image folders")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    p.add_argument("--size", type=int, default=64, help="crop size (default 64)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--channels", default="16,32,64,128", help="UNet block widths (default 16,32,64,128)")
    p.add_argument("--resume", default="latest", metavar="CHECKPOINT",
                   help="'latest' (default: newest checkpoint in MODEL_DIR, if any), a checkpoint folder, or 'none'")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--fp32", action="store_true", help="export float32 weights (default float16)")
    p.add_argument("--zoom", type=float, default=1.0,
                   help="also crop from each photo upsampled up to this factor (smooth pixel-level content; default 1)")
    p.add_argument("--lr-schedule", default="cosine",  # checked by train(), which owns the list
                   help="learning rate after warm-up: cosine (decay to 0 at --steps; default) or constant")
    p.add_argument("--workers", type=int, default=0,
                   help="loader processes building batches ahead of a GPU (default 0: in the training process)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop and export after this much wall time (with --lr-schedule constant the model "
                   "equals one trained with --steps set to the step reached)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from inversa.imageio import check_writable_folder

    try:
        channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise UserError(f"--channels {args.channels!r}: expected integers like 32,64,128,128") from None
    check_writable_folder(args.output, "-o")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be a positive integer")
    from inversa.pretrained.train import train

    summary = train(args.data, args.output, size=args.size, steps=args.steps, batch_size=args.batch_size,
                    lr=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every,
                    eval_every=args.eval_every, channels=channels,
                    resume=None if args.resume == "none" else args.resume,
                    fp16=not args.fp32, num_threads=args.threads, zoom=args.zoom,
                    lr_schedule=args.lr_schedule, max_minutes=args.max_minutes,
                    workers=args.workers, progress=args.progress)
    print(f"saved {args.output}: {summary}")
    return 0


# --- eval ---------------------------------------------------------------------------------------

def _add_eval(sub, common) -> None:
    ev = sub.add_parser(
        "eval", parents=[common], help="batch evaluation: PSNR/SSIM/LPIPS/FID tables and an HTML report (resumable, shardable)",
        description="Evaluate solvers on a folder of images: for each image, task, solver, step count and seed, "
        "measure, restore and score; rerunning resumes; `accelerate launch -m inversa eval ...` splits the work.",
    )
    ev.add_argument("--data", metavar="DIR", help="folder of clean images")
    ev.add_argument("--tasks", metavar="T1,T2", help="task presets, e.g. sr4,box_inpaint,random_inpaint,gaussian_deblur,motion_deblur")
    ev.add_argument("--solvers", metavar="S1,S2", help="solvers, e.g. naive,dps")
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
    ev.set_defaults(func=_cmd_eval)


def _cmd_eval(args) -> int:
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


# --- app ----------------------------------------------------------------------------------------

def _add_app(sub, common) -> None:
    ap = sub.add_parser("app", parents=[common], help="the web UI: upload a photo, mark the damage, restore, compare",
                        description="Start the Gradio web UI (needs `pip install 'inversa[app]'`). It binds 127.0.0.1 "
                        "(this machine only) unless --host says otherwise; restorations run one or two at a time, others queue.")
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 = all)")
    ap.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    ap.add_argument("--share", action="store_true", help="also open a temporary public *.gradio.live link")
    ap.add_argument("--model", help="default prior: bundled name, diffusers folder or hub id (default: the bundled prior)")
    ap.set_defaults(func=_cmd_app)


def _cmd_app(args) -> int:
    from inversa._extras import require
    from inversa.pretrained.loading import locate

    if args.port is not None and not 1 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: accepted: 1..65535")
    locate(args.model)  # a missing folder or an unknown name: one line before the server starts
    require("gradio", "app", "the web UI (inversa app)")
    from inversa.app import launch

    launch(host=args.host, port=args.port, share=args.share, default_model=args.model)
    return 0


# --- distill / eval-distill ---------------------------------------------------------------------

def _add_distill(sub, common) -> None:
    p = sub.add_parser("distill", parents=[common], help="generate a distilled training set (ImageFolder) with IGDS or unguided sampling",
                       description="Write IPC images per class to OUT/<class_name>/<k>.png plus OUT/metadata.json, "
                       "sampled from a class-conditional prior with IGDS guidance (or none). Seeded and resumable: "
                       "rerunning the same command finishes an interrupted run with identical files.")
    p.add_argument("--model", required=True, help="class-conditional prior: bundled name (inversa-fashion-32) or folder")
    p.add_argument("--classifier", help="guidance classifier: bundled name (inversa-fashion-classifier) or folder (igds)")
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--classes", help="comma-separated class names or indices (default: all)")
    p.add_argument("--method", default="igds", help="igds (default) or unguided")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
    p.add_argument("--batch-size", type=int, default=10, help="images generated together (default 10)")
    p.add_argument("--cfg-scale", type=float, default=1.0, help="classifier-free guidance weight (default 1 = none)")
    p.add_argument("--real-data", default="fashion-mnist", help="real images for the class centroids: fashion-mnist or an ImageFolder")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="IGDS parameter: scale, beta, beta0, beta_schedule (log|sqrt|constant), window (e.g. 0.2,0.8)")
    p.add_argument("--device", default="auto", help="auto (default: cuda when available, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("-o", "--out", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_distill)


def _cmd_distill(args) -> int:
    import torch

    from inversa.device import resolve_device
    from inversa.distill import distill
    from inversa.imageio import check_writable_folder

    device = resolve_device(args.device)
    check_writable_folder(args.out, "-o")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be a positive integer")
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = distill(args.model, args.out, ipc=args.ipc, classifier=args.classifier, classes=args.classes,
                   method=args.method, seed=args.seed, steps=args.steps, batch_size=args.batch_size,
                   cfg_scale=args.cfg_scale, params=_parse_params(args.param), real_data=args.real_data,
                   device=str(device), progress=args.progress)
    print(f"wrote {meta['images']} images to {args.out} ({meta['runs'][-1]['images_written']} new, "
          f"{meta['runs'][-1]['seconds']:.1f} s)")
    return 0


def _add_eval_distill(sub, common) -> None:
    p = sub.add_parser("eval-distill", parents=[common], help="train students on distilled sets and report real-test accuracy",
                       description="Train a student (ConvNet-3 / ResNet-AP-10) only on each ImageFolder DIR and report "
                       "its real-test accuracy, mean ± std over seeds, next to a random real subset of the same IPC.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="distilled ImageFolder(s), e.g. made by `inversa distill`")
    p.add_argument("--real", default="fashion-mnist", help="real data: fashion-mnist, or a folder with train/ and test/ ImageFolders")
    p.add_argument("--ipc", type=int, help="images per class used from each DIR (default: the smallest class folder of the first)")
    p.add_argument("--archs", default="convnet", help="convnet, resnet_ap10 (comma-separated; default convnet)")
    p.add_argument("--seeds", default="0,1,2", help="student seeds (default 0,1,2)")
    p.add_argument("--iterations", type=int, default=300, help="SGD iterations per student (default 300)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--no-random-real", action="store_true", help="skip the random real subset baseline")
    p.add_argument("--unguided", action="store_true",
                   help="also generate (or resume) DIR-unguided, the unguided set of the same model and settings, and score it")
    p.add_argument("--results", metavar="FILE", help="JSON-lines file of per-student rows (reused when rerun)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_cmd_eval_distill)


def _cmd_eval_distill(args) -> int:
    import torch

    from inversa.eval import distill as ed

    for flag, v in (("--iterations", args.iterations), ("--batch-size", args.batch_size), ("--threads", args.threads)):
        if v is not None and v < 1:
            raise UserError(f"{flag} {v}: must be a positive integer")
    for d in args.dirs:
        if not os.path.isdir(d):
            raise UserError(f"distilled set {d!r} does not exist or is not a folder; expected an ImageFolder "
                            f"(one sub-folder per class), e.g. made by `inversa distill`")
    if args.results:
        from inversa.imageio import check_writable

        check_writable(args.results, "--results")
    if args.threads:
        torch.set_num_threads(args.threads)
    ipc = args.ipc or ed.infer_ipc(args.dirs[0])
    sets = {d.rstrip("/"): d for d in args.dirs}
    if args.unguided:
        sets.update({str(u): u for u in (ed.unguided_baseline(d) for d in args.dirs)})
    rows = ed.evaluate_sets(sets, ed.real_data(args.real), ipc=ipc, archs=args.archs.split(","),
                            seeds=ed.parse_seeds(args.seeds), iterations=args.iterations, batch_size=args.batch_size,
                            lr=args.lr, random_real=not args.no_random_real, results_file=args.results,
                            progress=args.progress)
    print(ed.format_table(ed.summarize(rows)))
    return 0


# --- main ---------------------------------------------------------------------------------------

def _version() -> str:
    from inversa import __version__

    return f"inversa {__version__}"


def _quiet(args) -> bool:
    return bool(getattr(args, "quiet", False)) or os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # bare `inversa` or `inversa models`: usage, exit 2
        usage = getattr(args, "usage", None) or parser.format_usage
        print(usage().rstrip() + "\n" + ("inversa: error: a command is required (see --help)" if args.command is None
                                          else f"inversa {args.command}: error: an action is required (see --help)"),
              file=sys.stderr)
        return 2
    args.progress = not _quiet(args)
    if not args.progress:  # libraries that read the environment (diffusers, huggingface_hub, tqdm defaults)
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"inversa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inversa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
