"""Pictures of a training run: the sample grid and the loss curve."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def save_grid(images: torch.Tensor, path: Path, nrow: int = 4, pad: int = 2) -> None:
    """Images in [0, 1] (NCHW, 1 or 3 channels) as one PNG, each pixel drawn 2x2."""
    images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    n, _, h, w = images.shape
    # By hand rather than torchvision.utils.make_grid: torchvision is only in the optional `eval` extra.
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, np.uint8)
    arr = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for i, a in enumerate(arr):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = a
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.Resampling.NEAREST).save(path)


def plot_losses(log_csv: Path, path: Path) -> None:
    """Loss curve (log scale) drawn with PIL, so training needs no plotting library."""
    rows = list(csv.DictReader(log_csv.open()))
    train = [(int(r["step"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    held = [(int(r["step"]), float(r["held_out_loss"])) for r in rows if r["held_out_loss"]]
    if not train:
        return
    # By hand with PIL rather than matplotlib: matplotlib is only an optional extra.
    W, H, L, B, T, R = 720, 420, 60, 40, 30, 20
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    ys = [v for _, v in train + held]
    lo, hi = math.log10(min(ys)), math.log10(max(ys))
    hi = hi if hi > lo else lo + 1
    xmax = max(s for s, _ in train) or 1

    def xy(s, v):
        return L + (W - L - R) * s / xmax, T + (H - T - B) * (hi - math.log10(v)) / (hi - lo)

    d.rectangle([L, T, W - R, H - B], outline="black")
    for k in range(5):
        v = 10 ** (lo + (hi - lo) * k / 4)
        d.text((4, xy(0, v)[1] - 6), f"{v:.3g}", fill="black")
        d.text((xy(xmax * k / 4, v)[0] - 10, H - B + 6), f"{int(xmax * k / 4)}", fill="black")
    # Per-step losses are noisy (random t): a running mean shows the trend.
    k = max(1, len(train) // 100)
    smooth = [(train[i][0], float(np.mean([v for _, v in train[max(0, i - k):i + 1]]))) for i in range(len(train))]
    d.line([xy(s, v) for s, v in smooth], fill=(31, 119, 180), width=2)
    if len(held) > 1:
        d.line([xy(s, v) for s, v in held], fill=(214, 39, 40), width=2)
    d.text((L + 8, T + 6), "train loss (running mean)", fill=(31, 119, 180))
    d.text((L + 8, T + 20), "held-out loss (EMA weights)", fill=(214, 39, 40))
    d.text((W // 2 - 10, H - 16), "step", fill="black")
    img.save(path)
