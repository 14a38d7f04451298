"""`inversa models list|info|convert|verify`: bundled priors, hub models, ADM conversion."""

from __future__ import annotations

import json

from inversa.cli.common import Parser


def register(sub, common) -> None:
    mp = sub.add_parser("models", help="list, inspect, convert and verify priors")
    mp.set_defaults(func=None, usage=mp.format_usage)
    msub = mp.add_subparsers(dest="models_command", metavar="ACTION", parser_class=Parser)
    ml = msub.add_parser("list", parents=[common], help="bundled priors and known hub models")
    ml.add_argument("--json", action="store_true", help="print the list as JSON")
    ml.set_defaults(func=run)
    mi = msub.add_parser("info", parents=[common], help="details of one prior (loads it)")
    mi.add_argument("name", help="bundled name, diffusers folder (pixel UNet, LDMPipeline or Stable-Diffusion layout) or hub id")
    mi.add_argument("--prompt", help="text conditioning of a Stable-Diffusion-style model (default: the empty prompt)")
    mi.set_defaults(func=run)
    mc = msub.add_parser("convert", parents=[common], help="convert a guided-diffusion (ADM) checkpoint into a diffusers folder",
                         description="Convert an ADM checkpoint (ffhq_10m.pt, 256x256_diffusion_uncond.pt, ...) into "
                         "DIR/unet (safetensors) + DIR/scheduler, usable as --model DIR. .pt files are read weights-only.")
    mc.add_argument("src", metavar="SRC", help="ADM checkpoint: .pt/.pth (weights only) or .safetensors")
    mc.add_argument("-o", "--output", required=True, metavar="DIR", help="new folder to create")
    mc.add_argument("--config", default="auto", metavar="NAME",
                    help="ffhq, imagenet256-uncond, or auto (default: the known file's config, else read off the weights "
                    "assuming 64-channel attention heads)")
    mc.add_argument("--image-size", type=int, metavar="N", help="training image side of an unknown checkpoint read with --config auto (default 256)")
    mc.set_defaults(func=run)
    mv = msub.add_parser("verify", parents=[common], help="check that a model folder loads and runs (and matches its ADM source)")
    mv.add_argument("dir", metavar="DIR", help="diffusers model folder (e.g. made by `inversa models convert`)")
    mv.add_argument("--against", metavar="SRC", help="the ADM checkpoint DIR was converted from: compare outputs")
    mv.add_argument("--size", type=int, help="test image side (default: twice the smallest side the UNet accepts)")
    mv.add_argument("--tol", type=float, default=1e-4, help="largest accepted max abs difference with --against (default 1e-4)")
    mv.set_defaults(func=run)


def _list(args) -> int:
    from dataclasses import asdict

    from inversa.pretrained import registry

    models = registry.all_models()
    if args.json:
        print(json.dumps([{**asdict(m), "aliases": list(m.aliases), "default": m.name == registry.DEFAULT_MODEL}
                          for m in models], indent=2))
        return 0
    for m in models:
        default = " (default)" if m.name == registry.DEFAULT_MODEL else ""
        print(f"{m.name:34s} {m.label:11s} {m.description}{default}")
    return 0


def _info(args) -> int:
    from inversa.pretrained import load_prior

    prior = load_prior(args.name, prompt=args.prompt)
    n = sum(p.numel() for p in prior.model.parameters())
    latent = prior.kind == "latent"
    print(f"name: {prior.name}\nsource: {prior.source}\nkind: {'latent' if latent else 'pixel'}\n"
          f"{'unet' if latent else 'network'}: {type(prior.model).__name__}, {n / 1e6:.2f} M parameters\n"
          f"scheduler: {type(prior.scheduler).__name__}\nprediction: {prior.prediction_type}\n"
          f"learned variance: {prior.learned_variance}\ntrain timesteps: {prior.num_train_timesteps}")
    if latent:
        info = prior.describe()
        na = sum(p.numel() for p in prior.autoencoder.parameters())
        size = f"{prior.sample_size * prior.downscale} (latent {prior.sample_size})" if prior.sample_size else "not stated"
        print(f"autoencoder: {info['autoencoder']}, {na / 1e6:.2f} M parameters\nscaling factor: {info['scaling_factor']:g}\n"
              f"downscale factor: {info['downscale']}\nlatent channels: {info['latent_channels']}\n"
              f"conditioning: {info['conditioning']}\nsample size: {size}")
    else:
        print(f"sample size: {prior.sample_size}")
    print(f"input sides must be multiples of {prior.size_multiple}")
    return 0


def _convert(args) -> int:
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


def _verify(args) -> int:
    from inversa.pretrained.adm import verify_folder

    verify_folder(args.dir, against=args.against, size=args.size, tol=args.tol)
    print(f"verified {args.dir}")
    return 0


def run(args) -> int:
    return {"list": _list, "info": _info, "convert": _convert, "verify": _verify}[args.models_command](args)
