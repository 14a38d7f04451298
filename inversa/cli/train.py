"""`inversa train`: train a small diffusion prior on photos, the class-conditional Fashion-MNIST
prior, or the Fashion-MNIST classifier."""

from __future__ import annotations

from inversa.errors import UserError

KINDS = ("prior", "conditional", "classifier")
FASHION = "fashion-mnist"
# Options that only some kinds use (dest -> kinds); the rest apply to every kind that trains a prior.
_ONLY = {"size": ("prior",), "zoom": ("prior",), "epochs": ("classifier",), "width": ("classifier",)}
_PRIOR_ONLY = ("steps", "checkpoint_every", "eval_every", "channels", "fp32", "lr_schedule", "workers",
               "max_minutes", "resume")


def register(sub, common) -> None:
    # Defaults (None: the trainer's own) reproduce the bundled models: inversa-photo-64 (sized for
    # ~1 h on one shared CPU core), inversa-fashion-32 and inversa-fashion-classifier.
    p = sub.add_parser("train", parents=[common], help="train a small diffusion prior (photos or class-conditional) "
                       "or the Fashion-MNIST classifier",
                       description="Train a DDPM prior (diffusers UNet2DModel, no attention) on random photo crops "
                       "(--kind prior) or on Fashion-MNIST with class labels (--kind conditional), or the "
                       "Fashion-MNIST classifier (--kind classifier); priors resume from MODEL_DIR/checkpoints "
                       "when rerun.")
    p.add_argument("--kind", default="prior", help=f"what to train: {', '.join(KINDS)} (default prior)")
    p.add_argument("--data", help="prior: comma-separated sources (all, opencv, skimage, sklearn, matplotlib) "
                   f"and/or image folders (required); conditional, classifier: {FASHION} (the default)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    p.add_argument("--size", type=int, help="prior: crop size (default 64)")
    p.add_argument("--steps", type=int, help="optimisation steps (default: prior 2000, conditional 1600)")
    p.add_argument("--batch-size", type=int, help="default: prior 8, conditional 32, classifier 128")
    p.add_argument("--lr", type=float, help="peak learning rate (default: prior 3e-4, conditional 1e-3, classifier 2e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, help="default: prior 100, conditional 200")
    p.add_argument("--eval-every", type=int, help="held-out loss every N steps (default: prior 100, conditional 500)")
    p.add_argument("--channels", help="UNet block widths (default: prior 16,32,64,128, conditional 32,64,64)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="'latest' (default: newest checkpoint in MODEL_DIR, if any), a checkpoint folder, or 'none'")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--fp32", action="store_true", default=None, help="export float32 weights (default float16)")
    p.add_argument("--zoom", type=float,
                   help="prior: also crop from each photo upsampled up to this factor (smooth pixel-level content; "
                   "default 1)")
    p.add_argument("--lr-schedule",  # checked by loop.Settings, which owns the list
                   help="learning rate after warm-up: cosine (decay to 0 at --steps; default) or constant")
    p.add_argument("--workers", type=int,
                   help="loader processes building batches ahead of a GPU (default 0: in the training process)")
    p.add_argument("--max-minutes", type=float,
                   help="stop and export after this much wall time (with --lr-schedule constant the model "
                   "equals one trained with --steps set to the step reached)")
    p.add_argument("--epochs", type=int, help="classifier: epochs (default 2)")
    p.add_argument("--width", type=int, help="classifier: ConvNet width (default 32)")
    p.set_defaults(func=run)


def _check_kind(args) -> None:
    if args.kind not in KINDS:
        raise UserError(f"--kind {args.kind!r}: accepted: {', '.join(KINDS)}")
    only = {**_ONLY, **{k: ("prior", "conditional") for k in _PRIOR_ONLY}}
    for dest, kinds in only.items():
        if getattr(args, dest) is not None and args.kind not in kinds:
            raise UserError(f"--{dest.replace('_', '-')}: only for --kind {' or '.join(kinds)}, not {args.kind}")
    if args.kind == "prior" and args.data is None:
        raise UserError("--data: required with --kind prior (photo sources or image folders)")
    if args.kind != "prior" and args.data not in (None, FASHION):
        raise UserError(f"--data {args.data!r}: --kind {args.kind} trains on {FASHION} only")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be a positive integer")


def _options(args) -> dict:
    """The options given on the command line, as keyword arguments of the trainer (the rest: its defaults)."""
    names = ("size", "steps", "batch_size", "lr", "checkpoint_every", "eval_every", "zoom", "lr_schedule",
             "workers", "max_minutes", "epochs", "width")
    kw = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.channels is not None:
        try:
            kw["channels"] = tuple(int(c) for c in args.channels.split(","))
        except ValueError:
            raise UserError(f"--channels {args.channels!r}: expected integers like 32,64,128,128") from None
    if args.resume is not None:
        kw["resume"] = None if args.resume == "none" else args.resume
    if args.fp32:
        kw["fp16"] = False
    return dict(kw, seed=args.seed, num_threads=args.threads, progress=args.progress)


def run(args) -> int:
    from inversa.imageio import check_writable_folder

    _check_kind(args)
    kw = _options(args)
    check_writable_folder(args.output, "-o")
    if args.kind == "prior":
        from inversa.training.photo import train

        summary = train(args.data, args.output, **kw)
    elif args.kind == "conditional":
        from inversa.training.conditional import train_conditional

        summary = train_conditional(args.output, **kw)
    else:
        from inversa.training.classifier import train_classifier

        summary = train_classifier(args.output, **kw)
    print(f"saved {args.output}: {summary}")
    return 0
