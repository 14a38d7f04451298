"""Evaluate solvers on a folder of photos: PSNR/SSIM (and LPIPS/FID when their weights are at hand)
tables and an HTML report, resumable (rerun to continue).

    python examples/evaluate_folder.py                         # makes a folder of 3 small photos
    python examples/evaluate_folder.py --data photos/ --solvers naive,dps,c-dps --steps 50 --size 256
"""

import argparse
from pathlib import Path

import inversa
from inversa.eval import run_eval


def sample_folder(folder: Path, n: int = 3) -> Path:
    """A few crops of the demo photo, so the example runs anywhere."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = inversa.demo_image(128)
    for k in range(n):
        inversa.save_image(photo[..., 32 * k: 32 * k + 64, 32:96], folder / f"crop{k}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder of clean photos (default: made from the demo photo)")
    parser.add_argument("--solvers", default="naive,dps")
    parser.add_argument("--tasks", default="sr4,box_inpaint")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--size", type=int, default=32, help="centre-crop and resize to SxS (default 32)")
    parser.add_argument("--out", default="eval_run")
    args = parser.parse_args()

    data = args.data or sample_folder(Path(args.out) / "photos")
    result = run_eval({"data": str(data), "out": args.out, "tasks": args.tasks, "solvers": args.solvers,
                       "steps": args.steps, "size": args.size, "lpips_net": "none", "fid": False}, progress=False)
    print(Path(result["merged"]["markdown"]).read_text(encoding="utf-8"))
    print(f"report: {result['merged']['html']}")


if __name__ == "__main__":
    main()
