"""Train a small, purely convolutional DDPM prior (`inversa train`).

The model is a diffusers `UNet2DModel` without attention, so one trained on 64² crops runs at any
size divisible by 8. Noise schedule and parametrisation follow DPS (1000 linear betas 1e-4..0.02,
epsilon prediction). Every random draw is a function of (seed, step), which makes a resumed run
identical to an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from inversa.errors import UserError
from inversa.training.data import LICENCES, RandomCrops, load_photos, split_photos

# Changing any of these makes old checkpoints unusable, so they are checked on resume.
_RUN_KEYS = ("data", "size", "batch_size", "lr", "seed", "channels", "layers_per_block",
             "warmup_steps", "ema_decay", "held_out_fraction", "zoom", "lr_schedule")
_ADDED_LATER = {"zoom": 1.0, "lr_schedule": "cosine"}  # run keys newer than some saved runs: what those runs used
LR_SCHEDULES = ("cosine", "constant")


def make_unet(size: int = 64, channels: tuple[int, ...] = (16, 32, 64, 128), layers_per_block: int = 1):
    from diffusers import UNet2DModel

    n = len(channels)
    return UNet2DModel(
        sample_size=size, in_channels=3, out_channels=3, block_out_channels=tuple(channels),
        layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n, add_attention=False,
        norm_num_groups=math.gcd(32, *channels),
    )


def make_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                         beta_end=0.02, prediction_type="epsilon", clip_sample=True)


class _StepBatches(torch.utils.data.Dataset):
    """Item i is the noised batch of step `first + i`, a pure function of (seed, step): loader
    workers can build batches ahead of the GPU and a resumed run sees the same batches."""

    def __init__(self, crops: RandomCrops, batch_size: int, seed: int, scheduler, first: int, last: int):
        self.crops, self.batch_size, self.seed, self.scheduler = crops, batch_size, seed, scheduler
        self.first, self.last = first, last

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __getitem__(self, i: int):
        step = self.first + i
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        x0 = self.crops.batch(step * self.batch_size, self.batch_size)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (self.batch_size,), generator=g)
        return self.scheduler.add_noise(x0, noise, t), noise, t


def _eval_set(held: RandomCrops, n: int, seed: int):
    g = torch.Generator().manual_seed(seed + 7)
    x0 = held.batch(0, n)
    t = torch.linspace(0, 999, n).round().long()  # stratified: the loss is comparable across runs
    return x0, torch.randn(x0.shape, generator=g), t


@torch.no_grad()
def held_out_loss(unet, scheduler, eval_set, chunk: int = 32) -> float:
    x0, noise, t = eval_set
    device = next(unet.parameters()).device
    total = 0.0
    for i in range(0, len(x0), chunk):
        xt = scheduler.add_noise(x0[i:i + chunk], noise[i:i + chunk], t[i:i + chunk])
        pred = unet(xt.to(device), t[i:i + chunk].to(device)).sample
        total += F.mse_loss(pred.float().cpu(), noise[i:i + chunk], reduction="sum").item()
    return total / noise.numel()


@torch.no_grad()
def sample(unet, scheduler, n: int = 16, size: int = 64, steps: int = 100, seed: int = 0) -> torch.Tensor:
    """Ancestral DDPM samples in [0, 1] (NCHW, on the CPU)."""
    device = next(unet.parameters()).device
    g = torch.Generator().manual_seed(seed)  # noise drawn on the CPU: the same samples on any device
    scheduler = scheduler.__class__.from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    x = torch.randn((n, 3, size, size), generator=g)
    for t in scheduler.timesteps:
        eps = unet(x.to(device), t).sample.cpu()
        x = scheduler.step(eps, t, x, generator=g).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 4, pad: int = 2) -> None:
    n, _, h, w = images.shape
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


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = sorted(p for p in ckpt_dir.glob("step_*") if (p / "step.json").exists())
    return done[-1] if done else None


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

    `resume`: "latest" continues from the newest checkpoint under `output_dir/checkpoints` if
    any, a path continues from that checkpoint, None starts afresh. `workers` > 0 builds batches
    in that many loader processes (same batches as 0). `max_minutes` stops (and
    exports) once that much wall time has passed in this call; with lr_schedule="constant" the
    result equals a run with `steps` set to the step reached. Returns a summary dict.
    """
    if size < 1 or size % 2 ** (len(channels) - 1):
        raise UserError(f"--size {size}: must be a positive multiple of {2 ** (len(channels) - 1)}")
    for name, v in (("steps", steps), ("batch-size", batch_size), ("checkpoint-every", checkpoint_every)):
        if v < 1:
            raise UserError(f"--{name} {v}: must be a positive integer")
    if not lr > 0:
        raise UserError(f"--lr {lr}: must be positive")
    if lr_schedule not in LR_SCHEDULES:
        raise UserError(f"--lr-schedule {lr_schedule!r}: accepted: {', '.join(LR_SCHEDULES)}")
    if workers < 0:
        raise UserError(f"--workers {workers}: must be 0 (batches built in the training process) or more")
    if max_minutes is not None and not max_minutes > 0:
        raise UserError(f"--max-minutes {max_minutes}: must be positive")
    if num_threads:
        torch.set_num_threads(num_threads)

    out = Path(output_dir)
    ckpt_dir = out / "checkpoints"
    config = dict(data=data, size=size, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                  channels=list(channels), layers_per_block=layers_per_block,
                  warmup_steps=warmup_steps, ema_decay=ema_decay,
                  held_out_fraction=held_out_fraction, zoom=zoom, lr_schedule=lr_schedule, checkpoint_every=checkpoint_every,
                  eval_every=eval_every, eval_crops=eval_crops, sample_steps=sample_steps, fp16=fp16,
                  max_minutes=max_minutes, workers=workers)

    start_ckpt = None
    if resume == "latest":
        start_ckpt = _latest_checkpoint(ckpt_dir)
    elif resume is not None:
        start_ckpt = Path(resume)
        if not (start_ckpt / "step.json").exists():
            raise UserError(f"--resume {resume}: not a checkpoint folder (no step.json)")
    if start_ckpt is not None:
        old = json.loads((out / "train_config.json").read_text()) if (out / "train_config.json").exists() else {}
        old = {**_ADDED_LATER, **old} if old else {}
        diff = [k for k in _RUN_KEYS if k in old and old[k] != config[k]]
        if diff:
            raise UserError(f"{out} holds a run with other settings ({', '.join(f'{k}={old[k]}' for k in diff)}): "
                            "use the same settings, another -o, or delete its checkpoints")

    photos = load_photos(data)
    train_photos, held_photos = split_photos(photos, held_out_fraction)
    train_ds = RandomCrops(train_photos, size, seed=seed, zoom=zoom)  # held-out crops unzoomed: losses stay comparable
    eval_set = _eval_set(RandomCrops(held_photos, size, seed=seed + 1), eval_crops, seed) if held_photos else None
    config["train_images"] = [p.name for p in train_photos]
    config["held_out_images"] = [p.name for p in held_photos]
    config["licences"] = {s: LICENCES[s] for s in sorted({p.source for p in photos})}

    # Heavy imports (diffusers.training_utils pulls in transformers) only once the inputs are valid.
    from accelerate import Accelerator
    from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    torch.manual_seed(seed)  # model initialisation
    unet = make_unet(size, channels, layers_per_block)
    scheduler = make_scheduler()
    config["parameters"] = sum(p.numel() for p in unet.parameters())
    accelerator = Accelerator(project_dir=str(out))
    # Fused multi-tensor EMA on GPUs (hundreds of tiny kernels otherwise); the CPU keeps the
    # per-tensor update so CPU runs stay bit-identical to the bundled model's log.
    ema = EMAModel(unet.parameters(), decay=ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=2 / 3,
                   foreach=accelerator.device.type != "cpu")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    lr_sched = (get_cosine_schedule_with_warmup(optimizer, warmup_steps, steps) if lr_schedule == "cosine"
                else get_constant_schedule_with_warmup(optimizer, warmup_steps))

    unet, optimizer, lr_sched = accelerator.prepare(unet, optimizer, lr_sched)
    accelerator.register_for_checkpointing(ema)

    step = 0
    if start_ckpt is not None:
        accelerator.load_state(str(start_ckpt))
        step = json.loads((start_ckpt / "step.json").read_text())["step"]
    ema.to(accelerator.device)  # shadow weights live beside the model (fused update needs one device)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(config, indent=2))

    log_csv = out / "loss_log.csv"
    fields = ["step", "train_loss", "held_out_loss", "lr", "seconds"]
    rows = []
    if step and log_csv.exists():  # drop rows logged after the checkpoint we resume from
        rows = [r for r in csv.DictReader(log_csv.open()) if int(r["step"]) <= step]
    with log_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)

    def evaluate() -> float | None:
        if eval_set is None:
            return None
        model = accelerator.unwrap_model(unet)
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
        model.eval()
        loss = held_out_loss(model, scheduler, eval_set)
        model.train()
        ema.restore(model.parameters())
        return loss

    def checkpoint() -> None:
        path = ckpt_dir / f"step_{step:07d}"
        accelerator.save_state(str(path))
        (path / "step.json").write_text(json.dumps({"step": step}))  # written last: marks it complete
        others = sorted(p for p in ckpt_dir.glob("step_*") if p != path)
        for old in others[:max(0, len(others) - (keep_checkpoints - 1))]:
            shutil.rmtree(old, ignore_errors=True)

    device = accelerator.device
    # Workers build batches in other processes; pinned memory lets the copy overlap GPU work.
    loader = torch.utils.data.DataLoader(
        _StepBatches(train_ds, batch_size, seed, scheduler, step, steps), batch_size=None,
        num_workers=workers, pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)
    unet.train()
    t0 = time.time()
    bar = tqdm(total=steps, initial=step, desc="train", disable=not progress, mininterval=10, smoothing=0.05)
    last_held = None
    stopped_early = False
    pending: list[tuple[int, torch.Tensor, float | None, float, float]] = []

    def flush_log(w, f) -> None:
        # Losses stay on the device until written: a .item() per step would stall the GPU queue.
        if pending:
            losses = torch.stack([r[1] for r in pending]).tolist()
            for (s, _, held, lr_now, sec), loss_v in zip(pending, losses):
                w.writerow(dict(step=s, train_loss=f"{loss_v:.6f}", held_out_loss="" if held is None else f"{held:.6f}",
                                lr=f"{lr_now:.3e}", seconds=f"{sec:.1f}"))
            pending.clear()
        f.flush()

    try:
        with log_csv.open("a", newline="") as f:
            w = csv.DictWriter(f, fields)
            for xt, noise, t in loader:
                xt, noise, t = (v.to(device, non_blocking=True) for v in (xt, noise, t))
                loss = F.mse_loss(unet(xt, t).sample, noise)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(unet.parameters(), 1.0)
                optimizer.step()
                lr_sched.step()
                optimizer.zero_grad(set_to_none=True)
                ema.step(unet.parameters())
                step += 1
                bar.update(1)
                if max_minutes is not None and time.time() - t0 > 60 * max_minutes and step < steps:
                    stopped_early, steps = True, step
                held = evaluate() if (step % eval_every == 0 or step == steps) else None
                if held is not None:
                    last_held = held
                    bar.set_postfix(loss=f"{loss.item():.4f}", held_out=f"{held:.4f}")
                pending.append((step, loss.detach(), held, lr_sched.get_last_lr()[0], time.time() - t0))
                if held is not None or len(pending) >= 100:
                    flush_log(w, f)
                if step % checkpoint_every == 0 or step == steps:
                    flush_log(w, f)
                    checkpoint()
                if step == steps:  # reached early under --max-minutes
                    break
    except KeyboardInterrupt:
        with log_csv.open("a", newline="") as f:
            flush_log(csv.DictWriter(f, fields), f)
        checkpoint()
        bar.close()
        print(f"interrupted at step {step}: checkpoint saved; rerun the same command to resume", flush=True)
        raise
    bar.close()
    if stopped_early:
        print(f"--max-minutes {max_minutes}: stopped at step {step}", flush=True)

    # Export the EMA weights as a self-contained diffusers folder.
    model = accelerator.unwrap_model(unet)
    ema.copy_to(model.parameters())
    model.eval()
    if last_held is None and eval_set is not None:
        last_held = held_out_loss(model, scheduler, eval_set)
    export = make_unet(size, channels, layers_per_block)
    export.load_state_dict(model.state_dict())
    if fp16:  # halves the shipped size; loaders upcast with from_pretrained(torch_dtype=torch.float32)
        for p in export.parameters():
            p.data = p.data.half()
    export.save_pretrained(out / "unet", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    save_grid(sample(model, scheduler, 16, size, sample_steps, seed), out / "samples.png")
    plot_losses(log_csv, out / "loss_curve.png")
    summary = dict(steps=step, stopped_early=stopped_early, held_out_loss=last_held, parameters=config["parameters"],
                   train_images=len(train_photos), held_out_images=len(held_photos))
    config["result"] = summary
    (out / "train_config.json").write_text(json.dumps(config, indent=2))
    return summary
