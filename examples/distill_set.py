"""Distil a small training set from the bundled class-conditional Fashion-MNIST prior.

    python examples/distill_set.py                      # 1 image of 2 classes, unguided, 5 steps
    python examples/distill_set.py --method igds --ipc 10 --steps 50   # IGDS: needs Fashion-MNIST
                                                        # (apt-get install dataset-fashion-mnist)
"""

import argparse

from inversa.distill.generate import distill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="unguided", help="unguided (default) or igds")
    parser.add_argument("--ipc", type=int, default=1, help="images per class (default 1)")
    parser.add_argument("--classes", default="t-shirt_top,trouser", help="class names or indices (default two)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default="distilled")
    args = parser.parse_args()

    meta = distill("inversa-fashion-32", args.out, ipc=args.ipc, classes=args.classes, method=args.method,
                   classifier="inversa-fashion-classifier" if args.method == "igds" else None,
                   steps=args.steps, progress=False)
    print(f"wrote {meta['images']} images to {args.out} (classes {', '.join(meta['settings']['classes'])})")


if __name__ == "__main__":
    main()
