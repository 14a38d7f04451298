"""`inversa train`: train a small diffusion prior on photos."""

from __future__ import annotations

from inversa.errors import UserError


def register(sub, common) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    from inversa.imageio import check_writable_folder

    try:
        channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise UserError(f"--channels {args.channels!r}: expected integers like 32,64,128,128") from None
    check_writable_folder(args.output, "-o")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be a positive integer")
    from inversa.training.train import train

    summary = train(args.data, args.output, size=args.size, steps=args.steps, batch_size=args.batch_size,
                    lr=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every,
                    eval_every=args.eval_every, channels=channels,
                    resume=None if args.resume == "none" else args.resume,
                    fp16=not args.fp32, num_threads=args.threads, zoom=args.zoom,
                    lr_schedule=args.lr_schedule, max_minutes=args.max_minutes,
                    workers=args.workers, progress=args.progress)
    print(f"saved {args.output}: {summary}")
    return 0
