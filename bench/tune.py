"""Choose a solver parameter on photos the prior never saw in training and that are not evaluation
data: the held-out split of `inversa train` (skimage astronaut and rocket, opencv orange), several
crops of each, through `inversa eval`.

    python bench/tune.py --solver dps --param scale --values 0.3,1,3 \
        --tasks sr4,gaussian_deblur,random_inpaint --steps 50 --out runs/tune_dps

Prints PSNR / SSIM / LPIPS (when ../shared/weights/lpips is present) per task and value. Tuning
on FFHQ (../shared/data) would fit the evaluation set; this script never reads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import SHARED


def held_out_crops(folder: Path, size: int, per_photo: int, seed: int = 0) -> Path:
    """Square crops of the held-out photos (the whole photo's centre square, then random squares
    of random sizes), resized to size x size, written once as PNGs."""
    import numpy as np
    from PIL import Image

    from inversa.training.data import load_photos, split_photos

    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.png")):
        return folder
    _, held = split_photos(load_photos("all"))
    rng = np.random.default_rng(seed)
    for photo in held:
        im = photo.image
        w, h = im.size
        side = min(w, h)
        boxes = [((w - side) // 2, (h - side) // 2, side)]
        for _ in range(per_photo - 1):
            lo = min(max(size, side // 4), side)  # no smaller than the output, no larger than the photo
            s = int(rng.integers(lo, max(lo, side // 2) + 1))
            boxes.append((int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1)), s))
        for k, (x, y, s) in enumerate(boxes):
            crop = im.crop((x, y, x + s, y + s)).resize((size, size), Image.Resampling.LANCZOS)
            crop.save(folder / f"{photo.name.replace('/', '_')}_{k}.png")
    return folder


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--solver", default="dps")
    ap.add_argument("--param", default="scale")
    ap.add_argument("--values", default="0.3,1,3", help="comma-separated values (numbers or strings)")
    ap.add_argument("--with", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                    help="another solver parameter held fixed over the sweep (repeatable), e.g. start=0.3")
    ap.add_argument("--tasks", default="sr4,gaussian_deblur,random_inpaint")
    ap.add_argument("--steps", default="50")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--crops", type=int, default=4, help="crops per held-out photo")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; several average out a chaotic sampler's draw")
    ap.add_argument("--model")
    ap.add_argument("--out", default="runs/tune")
    args = ap.parse_args()
    from inversa.eval.evaluate import run_eval
    from inversa.solvers.registry import parse_value

    from inversa.cli import parse_params as _parse_params

    fixed = _parse_params(args.fixed)
    out = Path(args.out)
    data = held_out_crops(out / f"data{args.size}", args.size, args.crops)
    weights = SHARED / "weights" / "lpips"
    rows = []
    for raw in args.values.split(","):
        value = parse_value(raw.strip())
        result = run_eval({"data": str(data), "out": str(out / f"{args.param}={raw}"), "tasks": args.tasks,
                           "solvers": f"naive,{args.solver}", "steps": args.steps, "seeds": args.seeds, "size": args.size,
                           "model": args.model, "solver_params": {args.solver: {**fixed, args.param: value}},
                           "lpips_net": "alex" if weights.is_dir() else "none",
                           "lpips_weights": str(weights) if weights.is_dir() else None, "fid": False})
        rows.append((raw, Path(result["out"]) / "summary.md"))
    print(f"held-out crops: {len(list(data.glob('*.png')))} images of {args.size}², {args.solver} {args.param} in {args.values}"
          + "".join(f", {k}={v}" for k, v in fixed.items()))
    for raw, summary in rows:
        print(f"\n## {args.param} = {raw}\n")
        print("\n".join(line for line in summary.read_text().splitlines() if line.startswith("|")))
    return 0


if __name__ == "__main__":
    from inversa.errors import UserError

    try:
        sys.exit(main())
    except UserError as exc:  # a bad --param/--values: one line, as the CLI does
        sys.exit(f"tune.py: error: {exc}")
