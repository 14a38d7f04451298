"""Shared helpers for the benchmarks: a prior to time, interleaved timing, peak memory."""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import torch


def bench_prior(size: int, device: str = "cpu"):
    """The bundled prior when installed, otherwise a random UNet of a similar size (says which)."""
    from inversa.pretrained import load_prior
    from inversa.errors import UserError

    try:
        return load_prior(None, device=device), "bundled"
    except UserError:
        from diffusers import DDPMScheduler, UNet2DModel

        from inversa.pretrained.prior import DiffusionPrior

        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=size, block_out_channels=(32, 64, 128, 128), layers_per_block=1,
                           down_block_types=("DownBlock2D",) * 4, up_block_types=("UpBlock2D",) * 4)
        return DiffusionPrior(unet.eval().requires_grad_(False).to(device), DDPMScheduler(beta_schedule="linear"), name="random-unet"), "random"


def nchw_copy(prior):
    """A copy of the prior (its own weights) kept in the NCHW layout, beside the prior's CPU default NHWC:
    timing one against the other never pays for converting the weights inside a timed call."""
    import copy

    return copy.deepcopy(prior).configure(channels_last=False)


def interleaved(fns: dict, reps: int = 5) -> dict:
    """Median seconds of each fn, run round-robin so machine noise hits all of them alike."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # evaluation data and LPIPS weights, never bundled


def sample_photos(limit: int | None, size: int):
    """The first `limit` FFHQ evaluation photos (../shared/data/ffhq256-sample), centre-cropped and
    resized to size x size as `inversa eval --size` does, as a (N, 3, size, size) tensor in [0, 1];
    None when the folder is absent (evaluation data is never bundled)."""
    from inversa.imageio import load_image_square

    data = SHARED / "data" / "ffhq256-sample"
    if not data.is_dir():
        print(f"skipped: {data} is absent (evaluation photos live in ../shared)")
        return None
    paths = sorted(p for p in data.iterdir() if p.suffix.lower() == ".png")[:limit]
    return torch.cat([load_image_square(p, size) for p in paths])


def photo_problem(preset: str, limit: int | None, size: int, device: str = "cpu"):
    """(x, operator, y, prior, prior kind) for the sample photos under a preset (or "circ_deblur", see
    `bench_operator`), with measurement
    noise seeded 1000 + i per photo (shared by every bench that compares methods); None without
    ../shared."""
    x = sample_photos(limit, size)
    if x is None:
        return None
    prior, kind = bench_prior(size, device)
    x = x.to(device)
    op = bench_operator(preset, size, list(range(len(x)))).to(device)
    y = op.measure(x, generator=[torch.Generator().manual_seed(1000 + i) for i in range(len(x))])
    return x, op, y, prior, kind


def bench_operator(task: str, size: int, indices: list[int]):
    """The operator of `task` for photos `indices`: a preset (masks drawn by index, as the presets do), or
    "circ_deblur", the Gaussian-deblurring preset's kernel and noise with circular padding, which has
    an SVD (deepinv's DDRM needs one) and so runs on every solver of both libraries."""
    from inversa.operators import Blur, make_preset

    if task == "circ_deblur":
        preset = make_preset("gaussian_deblur", size, index=indices)
        return Blur(preset.kernel, "circular", preset.noise)
    return make_preset(task, size, index=indices)
