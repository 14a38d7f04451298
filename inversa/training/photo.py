"""The unconditional photo prior (`inversa train`, the default `--kind prior`).

A purely convolutional `UNet2DModel` (`unets.make_unet`), so one trained on 64² crops runs at any
size divisible by 8, trained by `loop.run` on random crops of offline photos (`data`).
"""

from __future__ import annotations

from pathlib import Path

from inversa.errors import UserError
from inversa.training.data import LICENCES, RandomCrops, load_photos, split_photos
from inversa.training.loop import Settings, Task, make_eval_set, run
from inversa.training.unets import make_unet

# Changing any of these makes old checkpoints unusable, so they are checked on resume.
RUN_KEYS = ("data", "size", "batch_size", "lr", "seed", "channels", "layers_per_block",
            "warmup_steps", "ema_decay", "held_out_fraction", "zoom", "lr_schedule")
ADDED_LATER = {"zoom": 1.0, "lr_schedule": "cosine"}  # run keys newer than some saved runs: what those runs used


class CropBatches:
    """draw(step, g) for the loop: the step's crops (seeded by the crop dataset itself), no labels."""

    def __init__(self, crops: RandomCrops, batch_size: int):
        self.crops, self.batch_size = crops, batch_size

    def __call__(self, step: int, g):
        return self.crops.batch(step * self.batch_size, self.batch_size), None


def train(
    data: str,
    output_dir: str | Path,
    *,
    size: int = 64,
    steps: int = 2000,
    batch_size: int = 8,
    lr: float = 3e-4,
    seed: int = 0,
    checkpoint_every: int = 100,
    eval_every: int = 100,
    eval_crops: int = 64,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    layers_per_block: int = 1,
    warmup_steps: int = 100,
    ema_decay: float = 0.9995,
    held_out_fraction: float = 0.1,
    zoom: float = 1.0,
    lr_schedule: str = "cosine",
    max_minutes: float | None = None,
    workers: int = 0,
    keep_checkpoints: int = 2,
    resume: str | Path | None = "latest",
    sample_steps: int = 100,
    fp16: bool = True,
    num_threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Train, checkpoint and export a diffusers folder (`unet/`, `scheduler/`) to `output_dir`.

    `workers` > 0 builds batches in that many loader processes (same batches as 0); `resume` and
    `max_minutes` as in `loop.run`. Returns a summary dict.
    """
    settings = Settings.of(locals())
    if size < 1 or size % 2 ** (len(channels) - 1):
        raise UserError(f"--size {size}: must be a positive multiple of {2 ** (len(channels) - 1)}")
    settings.check()

    photos = load_photos(data)
    train_photos, held_photos = split_photos(photos, held_out_fraction)
    train_ds = RandomCrops(train_photos, size, seed=seed, zoom=zoom)  # held-out crops unzoomed: losses stay comparable
    eval_set = make_eval_set(RandomCrops(held_photos, size, seed=seed + 1).batch(0, eval_crops), seed) \
        if held_photos else None
    config = dict(data=data, size=size, channels=list(channels), layers_per_block=layers_per_block,
                  held_out_fraction=held_out_fraction, zoom=zoom, eval_crops=eval_crops,
                  train_images=[p.name for p in train_photos], held_out_images=[p.name for p in held_photos],
                  licences={s: LICENCES[s] for s in sorted({p.source for p in photos})})
    task = Task(make_model=lambda: make_unet(size, channels, layers_per_block), draw=CropBatches(train_ds, batch_size),
                eval_set=eval_set, config=config, run_keys=RUN_KEYS, added_later=ADDED_LATER, sample_size=size,
                summary=dict(train_images=len(train_photos), held_out_images=len(held_photos)))
    return run(task, settings, output_dir)
