"""`inversa distill`: generate a distilled training set."""

from __future__ import annotations

from inversa.cli.common import parse_params
from inversa.errors import UserError


def register(sub, common) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from inversa.device import resolve_device
    from inversa.distill.generate import distill
    from inversa.imageio import check_writable_folder

    device = resolve_device(args.device)
    check_writable_folder(args.out, "-o")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be a positive integer")
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = distill(args.model, args.out, ipc=args.ipc, classifier=args.classifier, classes=args.classes,
                   method=args.method, seed=args.seed, steps=args.steps, batch_size=args.batch_size,
                   cfg_scale=args.cfg_scale, params=parse_params(args.param), real_data=args.real_data,
                   device=str(device), progress=args.progress)
    print(f"wrote {meta['images']} images to {args.out} ({meta['runs'][-1]['images_written']} new, "
          f"{meta['runs'][-1]['seconds']:.1f} s)")
    return 0
