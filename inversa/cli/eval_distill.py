"""`inversa eval-distill`: train students on distilled sets and report real-test accuracy."""

from __future__ import annotations

import os

from inversa.errors import UserError


def register(sub, common) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from inversa.distill import students as ed
    from inversa.distill.data import infer_ipc

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
    ipc = args.ipc or infer_ipc(args.dirs[0])
    sets = {d.rstrip("/"): d for d in args.dirs}
    if args.unguided:
        sets.update({str(u): u for u in (ed.unguided_baseline(d) for d in args.dirs)})
    rows = ed.evaluate_sets(sets, ed.real_data(args.real), ipc=ipc, archs=args.archs.split(","),
                            seeds=ed.parse_seeds(args.seeds), iterations=args.iterations, batch_size=args.batch_size,
                            lr=args.lr, random_real=not args.no_random_real, results_file=args.results,
                            progress=args.progress)
    print(ed.format_table(ed.summarize(rows)))
    return 0
