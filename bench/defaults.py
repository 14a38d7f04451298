"""What a user gets by default: each quality preset (and the k-sample posterior mean) against the naive
inverse, on the FFHQ sample, through `inversa.restore()` exactly as `inversa restore` runs it.

    python bench/defaults.py --qualities balanced --samples 1,4 --size 256 [--limit K] [--threads 2]

For each benchmark preset (sr4, box_inpaint, random_inpaint, gaussian_deblur, motion_deblur) and each
photo i of ../shared/data/ffhq256-sample, `restore(photo, preset=..., quality=..., samples=k, seed=i)`
(the seed draws photo i's mask or kernel, its noise and the sampler's noise), with the bundled prior
loaded once. Prints mean PSNR / SSIM / LPIPS (AlexNet, ../shared/weights/lpips) and wall seconds per
photo beside the naive inverse, then the must-hold checks: the preset beats the naive inverse in
LPIPS on every task and in PSNR on how many; k-sample means not below the naive PSNR. Evaluation
photos only: the presets were chosen on held-out training crops (bench/tune.py), never here.
"""

from __future__ import annotations

import argparse
import sys
import time

from common import SHARED

PRESETS = ("sr4", "box_inpaint", "random_inpaint", "gaussian_deblur", "motion_deblur")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qualities", default="balanced")
    ap.add_argument("--samples", default="1", help="comma-separated k values (k samples averaged)")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = SHARED / "data" / "ffhq256-sample"
    if not data.is_dir():
        print(f"skipped: {data} is absent (evaluation photos live in ../shared)")
        return 0
    import torch

    from inversa.eval.metrics import lpips, psnr, ssim
    from inversa.pretrained import load_prior
    from inversa.quality import setting
    from inversa.restoration import restore

    torch.set_num_threads(args.threads)
    photos = sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[: args.limit]
    weights = SHARED / "weights" / "lpips"
    prior = load_prior(None)
    rows = {}  # (preset, label) -> list of (psnr, ssim, lpips, seconds)
    runs = [(q, int(k)) for q in args.qualities.split(",") for k in args.samples.split(",")]
    for preset in args.presets.split(","):
        for j, (quality, k) in enumerate(runs):
            label = f"{quality}" + (f", mean of {k}" if k > 1 else "")
            for i, photo in enumerate(photos):
                t0 = time.perf_counter()
                r = restore(str(photo), preset=preset, quality=quality, samples=k, seed=i, prior=prior,
                            max_size=args.size, progress=False)
                sec = time.perf_counter() - t0
                scored = [(label, r.restored, sec)] + ([("naive", r.naive, 0.0)] if j == 0 else [])  # naive: once
                for name, est, s in scored:
                    lp = float(lpips(est, r.clean, weights=weights if weights.is_dir() else None)[0])
                    rows.setdefault((preset, name), []).append(
                        (float(psnr(est, r.clean)[0]), float(ssim(est, r.clean)[0]), lp, s))
            print(f"{preset} {label}: {setting(quality, preset).describe()}, {len(photos)} photos done",
                  file=sys.stderr, flush=True)
    mean = lambda vals, j: sum(v[j] for v in vals) / len(vals)  # noqa: E731
    print(f"FFHQ sample, {len(photos)} photos at {args.size}², bundled prior, torch threads {args.threads}\n")
    print("| preset | restored with | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | s/photo |")
    print("|---|---|---|---|---|---|")
    for (preset, name), vals in rows.items():
        print(f"| {preset} | {name} | {mean(vals, 0):.2f} | {mean(vals, 1):.4f} | {mean(vals, 2):.4f} | {mean(vals, 3):.1f} |")
    print()
    for (preset, name), vals in rows.items():
        if name == "naive":
            continue
        base = rows[preset, "naive"]
        print(f"{preset} {name}: PSNR {mean(vals, 0) - mean(base, 0):+.2f} dB, LPIPS {mean(vals, 2) - mean(base, 2):+.4f} "
              f"against the naive inverse")
    for label in sorted({name for _, name in rows if name != "naive"}):
        ours = {p: rows[p, label] for p, n in rows if n == label}
        lp = sum(mean(v, 2) < mean(rows[p, "naive"], 2) for p, v in ours.items())
        ps = sum(mean(v, 0) > mean(rows[p, "naive"], 0) for p, v in ours.items())
        print(f"{label}: beats the naive inverse in LPIPS on {lp}/{len(ours)} presets, in PSNR on {ps}/{len(ours)}; "
              f"slowest preset {max(mean(v, 3) for v in ours.values()):.1f} s/photo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
