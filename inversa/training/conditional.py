"""The class-conditional Fashion-MNIST prior (`inversa train --kind conditional`), the bundled
inversa-fashion-32.

A `UNet2DModel` with a class embedding (`num_class_embeds` = classes + 1: the last index is the
null class, used for 10 % of the training labels so classifier-free guidance works, as in DiT),
trained by `loop.run` with the same conventions as the photo prior.
"""

from __future__ import annotations

from pathlib import Path

import torch

from inversa.distill.data import CLASSES, SIZE, held_out_split, load_fashion_mnist
from inversa.training.data import random_flips
from inversa.training.loop import Settings, Task, make_eval_set, run
from inversa.training.unets import make_conditional_unet

DATA = "fashion-mnist train (Debian dataset-fashion-mnist), padded to 32x32"
# Changing any of these makes old checkpoints unusable, so they are checked on resume.
RUN_KEYS = ("data", "batch_size", "lr", "seed", "channels", "layers_per_block", "warmup_steps", "ema_decay",
            "label_dropout", "lr_schedule")


class LabelledBatches:
    """draw(step, g) for the loop: random training images (flipped at random) and their labels, each
    replaced by the null class with probability `label_dropout`."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, label_dropout: float, null: int):
        self.x, self.y, self.batch_size, self.label_dropout, self.null = x, y, batch_size, label_dropout, null

    def __call__(self, step: int, g: torch.Generator):
        idx = torch.randint(0, len(self.x), (self.batch_size,), generator=g)
        x0, y = random_flips(self.x[idx], g), self.y[idx].clone()
        y[torch.rand(self.batch_size, generator=g) < self.label_dropout] = self.null
        return x0, y


def train_conditional(out: str | Path, *, steps: int = 1600, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                      channels=(32, 64, 64), layers_per_block: int = 1, warmup_steps: int = 200,
                      ema_decay: float = 0.999, label_dropout: float = 0.1, lr_schedule: str = "cosine",
                      checkpoint_every: int = 200, eval_every: int = 500, eval_images: int = 1000,
                      max_minutes: float | None = None, workers: int = 0, keep_checkpoints: int = 2,
                      resume: str | Path | None = "latest", sample_steps: int = 100, fp16: bool = True,
                      num_threads: int | None = None, progress: bool = True) -> dict:
    """Train and export a diffusers folder (`unet/`, `scheduler/`) + `samples.png` (8 per class) +
    `train_config.json`; `resume` and `max_minutes` as in `loop.run`."""
    settings = Settings.of(locals())
    settings.check()
    x_all, y_all = load_fashion_mnist("train")
    tr, ho = held_out_split(len(x_all))
    ho = ho[:eval_images]
    x_tr, y_tr = x_all[tr] * 2 - 1, y_all[tr]
    x_ho, y_ho = x_all[ho] * 2 - 1, y_all[ho]
    null = len(CLASSES)
    config = dict(data=DATA, channels=list(channels), layers_per_block=layers_per_block, label_dropout=label_dropout,
                  eval_images=eval_images, classes=list(CLASSES), null_class=null,
                  torch_threads=num_threads or torch.get_num_threads())
    task = Task(make_model=lambda: make_conditional_unet(channels, layers_per_block, len(CLASSES)),
                draw=LabelledBatches(x_tr, y_tr, batch_size, label_dropout, null),
                eval_set=make_eval_set(x_ho, seed, y_ho), config=config, run_keys=RUN_KEYS, sample_size=SIZE,
                sample_labels=torch.arange(len(CLASSES)).repeat_interleave(8), grid_columns=8, eval_chunk=128,
                desc="train prior", summary=dict(held_out_images=len(x_ho), train_images=len(x_tr)))
    return run(task, settings, out)
