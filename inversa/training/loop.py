"""The training loop of every diffusion prior `inversa train` builds (photos, class-conditional).

AdamW with warm-up and a cosine or constant learning rate, gradient-norm clip 1, EMA weights
(diffusers `EMAModel`), a held-out epsilon loss on the EMA weights, checkpoints that resume
exactly, a wall-time budget, a loss log and plot, and the export of the EMA weights as a diffusers
folder (`unet/`, `scheduler/`, `train_config.json`, `samples.png`, `loss_curve.png`). Every
random draw is a function of (seed, step), so a resumed run equals an uninterrupted one.

What is trained is a `Task`: the model factory, `draw(step, generator) -> (x0, labels or None)`
and the held-out set; labels (class-conditional priors) are passed to the UNet as `class_labels`.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.training.plots import plot_losses, save_grid
from inversa.training.unets import make_scheduler

LR_SCHEDULES = ("cosine", "constant")
_LOG_FIELDS = ["step", "train_loss", "held_out_loss", "lr", "seconds"]


@dataclass
class Settings:
    """The optimisation and bookkeeping settings shared by every prior."""

    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    warmup_steps: int = 100
    ema_decay: float = 0.9995
    lr_schedule: str = "cosine"
    checkpoint_every: int = 100
    eval_every: int = 100
    keep_checkpoints: int = 2
    max_minutes: float | None = None
    workers: int = 0
    resume: str | Path | None = "latest"
    sample_steps: int = 100
    fp16: bool = True
    num_threads: int | None = None
    progress: bool = True

    @classmethod
    def of(cls, values: dict) -> Settings:
        """The settings among a trainer's keyword arguments (call with `locals()` first thing)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def check(self) -> None:
        for name, v in (("steps", self.steps), ("batch-size", self.batch_size),
                        ("checkpoint-every", self.checkpoint_every), ("eval-every", self.eval_every)):
            if v < 1:
                raise UserError(f"--{name} {v}: must be a positive integer")
        if not self.lr > 0:
            raise UserError(f"--lr {self.lr}: must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"--lr-schedule {self.lr_schedule!r}: accepted: {', '.join(LR_SCHEDULES)}")
        if self.workers < 0:
            raise UserError(f"--workers {self.workers}: must be 0 (batches built in the training process) or more")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise UserError(f"--max-minutes {self.max_minutes}: must be positive")

    def as_config(self) -> dict:
        keys = ("steps", "batch_size", "lr", "seed", "warmup_steps", "ema_decay", "lr_schedule", "checkpoint_every",
                "eval_every", "sample_steps", "fp16", "max_minutes", "workers")
        return {k: getattr(self, k) for k in keys}


@dataclass
class Task:
    """What is trained: the model, its batches and held-out set, and what the run records."""

    make_model: Callable[[], torch.nn.Module]
    draw: Callable[[int, torch.Generator], tuple]  # (step, generator) -> (x0 in [-1, 1], labels or None)
    eval_set: tuple | None  # make_eval_set(...) or None (no held-out data)
    config: dict  # written to train_config.json (with the settings and the result)
    run_keys: tuple[str, ...]  # config keys a resumed run must share with the saved one
    added_later: dict = field(default_factory=dict)  # run keys newer than some saved runs: their old value
    sample_n: int = 16
    sample_size: int = 64
    sample_labels: torch.Tensor | None = None
    grid_columns: int = 4
    eval_chunk: int = 32
    desc: str = "train"
    summary: dict = field(default_factory=dict)  # added to the returned summary (e.g. image counts)


class StepBatches(torch.utils.data.Dataset):
    """Item i is the noised batch of step `first + i`, a pure function of (seed, step): loader
    workers can build batches ahead of the GPU and a resumed run sees the same batches."""

    def __init__(self, draw, batch_size: int, seed: int, scheduler, first: int, last: int):
        self.draw, self.batch_size, self.seed, self.scheduler = draw, batch_size, seed, scheduler
        self.first, self.last = first, last

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __getitem__(self, i: int):
        step = self.first + i
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        x0, labels = self.draw(step, g)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (self.batch_size,), generator=g)
        return self.scheduler.add_noise(x0, noise, t), noise, t, labels


def make_eval_set(x0: torch.Tensor, seed: int, labels: torch.Tensor | None = None) -> tuple:
    g = torch.Generator().manual_seed(seed + 7)
    t = torch.linspace(0, 999, len(x0)).round().long()  # stratified: the loss is comparable across runs
    return x0, torch.randn(x0.shape, generator=g), t, labels


@torch.no_grad()
def held_out_loss(unet, scheduler, eval_set, chunk: int = 32) -> float:
    x0, noise, t, labels = eval_set
    device = next(unet.parameters()).device
    total = 0.0
    for i in range(0, len(x0), chunk):
        xt = scheduler.add_noise(x0[i:i + chunk], noise[i:i + chunk], t[i:i + chunk])
        y = None if labels is None else labels[i:i + chunk].to(device)
        pred = unet(xt.to(device), t[i:i + chunk].to(device), class_labels=y).sample
        total += F.mse_loss(pred.float().cpu(), noise[i:i + chunk], reduction="sum").item()
    return total / noise.numel()


@torch.no_grad()
def sample(unet, scheduler, n: int = 16, size: int = 64, steps: int = 100, seed: int = 0,
           labels: torch.Tensor | None = None) -> torch.Tensor:
    """Ancestral DDPM samples in [0, 1] (NCHW, on the CPU); `labels` (n,) for a conditional UNet."""
    device = next(unet.parameters()).device
    g = torch.Generator().manual_seed(seed)  # noise drawn on the CPU: the same samples on any device
    scheduler = scheduler.__class__.from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    y = None if labels is None else labels.to(device)
    x = torch.randn((n, unet.config.in_channels, size, size), generator=g)
    for t in scheduler.timesteps:
        eps = unet(x.to(device), t, class_labels=y).sample.cpu()
        x = scheduler.step(eps, t, x, generator=g).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = sorted(p for p in ckpt_dir.glob("step_*") if (p / "step.json").exists())
    return done[-1] if done else None


def start_checkpoint(out: Path, resume, config: dict, run_keys, added_later: dict) -> Path | None:
    """The checkpoint to resume from (None: start afresh); refuses a folder holding another run."""
    start = None
    if resume == "latest":
        start = latest_checkpoint(out / "checkpoints")
    elif resume is not None:
        start = Path(resume)
        if not (start / "step.json").exists():
            raise UserError(f"--resume {resume}: not a checkpoint folder (no step.json)")
    if start is not None:
        old = json.loads((out / "train_config.json").read_text()) if (out / "train_config.json").exists() else {}
        old = {**added_later, **old} if old else {}
        diff = [k for k in run_keys if k in old and old[k] != config[k]]
        if diff:
            raise UserError(f"{out} holds a run with other settings ({', '.join(f'{k}={old[k]}' for k in diff)}): "
                            "use the same settings, another -o, or delete its checkpoints")
    return start


def run(task: Task, settings: Settings, out: str | Path) -> dict:
    """Train `task`, checkpointing under `out/checkpoints`, and export it to `out`. Returns a summary
    (steps done, stopped_early, held_out_loss, parameters, train_seconds).

    `settings.resume`: "latest" continues from the newest checkpoint under `out/checkpoints` if
    any, a path continues from that checkpoint, None starts afresh. `max_minutes` stops (and
    exports) once that much wall time has passed in this call; with lr_schedule="constant" the
    result equals a run with `steps` set to the step reached."""
    s, out = settings, Path(out)
    config = {**task.config, **s.as_config()}
    start = start_checkpoint(out, s.resume, config, task.run_keys, task.added_later)
    if s.num_threads:
        torch.set_num_threads(s.num_threads)
    state = _Run(task, s, out, config)
    state.prepare(start)
    state.train()
    return state.export()


class _Run:
    """One call of `run`: the accelerator, model, optimiser, EMA and the log file."""

    def __init__(self, task: Task, settings: Settings, out: Path, config: dict):
        self.task, self.s, self.out, self.config = task, settings, out, config
        self.log_csv = out / "loss_log.csv"
        self.step, self.steps, self.stopped_early, self.last_held = 0, settings.steps, False, None
        self.pending: list[tuple[int, torch.Tensor, float | None, float, float]] = []

    def prepare(self, start: Path | None) -> None:
        # Heavy imports (diffusers.training_utils pulls in transformers) only once the inputs are valid.
        from accelerate import Accelerator
        from diffusers.optimization import (
            get_constant_schedule_with_warmup,
            get_cosine_schedule_with_warmup,
        )
        from diffusers.training_utils import EMAModel

        s = self.s
        torch.manual_seed(s.seed)  # model initialisation
        unet = self.task.make_model()
        self.scheduler = make_scheduler()
        self.config["parameters"] = sum(p.numel() for p in unet.parameters())
        self.accelerator = Accelerator(project_dir=str(self.out))
        # Fused multi-tensor EMA on GPUs (hundreds of tiny kernels otherwise); the CPU keeps the
        # per-tensor update so CPU runs stay bit-identical to the bundled models' logs.
        self.ema = EMAModel(unet.parameters(), decay=s.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=2 / 3,
                            foreach=self.accelerator.device.type != "cpu")
        optimizer = torch.optim.AdamW(unet.parameters(), lr=s.lr, weight_decay=0.0)
        lr_sched = (get_cosine_schedule_with_warmup(optimizer, s.warmup_steps, s.steps) if s.lr_schedule == "cosine"
                    else get_constant_schedule_with_warmup(optimizer, s.warmup_steps))
        self.unet, self.optimizer, self.lr_sched = self.accelerator.prepare(unet, optimizer, lr_sched)
        self.accelerator.register_for_checkpointing(self.ema)
        if start is not None:
            self.accelerator.load_state(str(start))
            self.step = json.loads((start / "step.json").read_text())["step"]
        self.ema.to(self.accelerator.device)  # shadow weights live beside the model (fused update needs one device)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train_config.json").write_text(json.dumps(self.config, indent=2))
        rows = []
        if self.step and self.log_csv.exists():  # drop rows logged after the checkpoint we resume from
            rows = [r for r in csv.DictReader(self.log_csv.open()) if int(r["step"]) <= self.step]
        with self.log_csv.open("w", newline="") as f:
            w = csv.DictWriter(f, _LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def evaluate(self) -> float | None:
        if self.task.eval_set is None:
            return None
        model = self.accelerator.unwrap_model(self.unet)
        self.ema.store(model.parameters())
        self.ema.copy_to(model.parameters())
        model.eval()
        loss = held_out_loss(model, self.scheduler, self.task.eval_set, self.task.eval_chunk)
        model.train()
        self.ema.restore(model.parameters())
        return loss

    def checkpoint(self) -> None:
        ckpt_dir = self.out / "checkpoints"
        path = ckpt_dir / f"step_{self.step:07d}"
        self.accelerator.save_state(str(path))
        (path / "step.json").write_text(json.dumps({"step": self.step}))  # written last: marks it complete
        # Rotation by hand, not accelerate's ProjectConfiguration(total_limit): step.json marks a complete folder.
        others = sorted(p for p in ckpt_dir.glob("step_*") if p != path)
        for old in others[:max(0, len(others) - (self.s.keep_checkpoints - 1))]:
            shutil.rmtree(old, ignore_errors=True)

    def flush_log(self, w, f) -> None:
        # Losses stay on the device until written: a .item() per step would stall the GPU queue.
        if self.pending:
            losses = torch.stack([r[1] for r in self.pending]).tolist()
            for (step, _, held, lr_now, sec), loss_v in zip(self.pending, losses):
                w.writerow(dict(step=step, train_loss=f"{loss_v:.6f}",
                                held_out_loss="" if held is None else f"{held:.6f}",
                                lr=f"{lr_now:.3e}", seconds=f"{sec:.1f}"))
            self.pending.clear()
        f.flush()

    def train(self) -> None:
        from tqdm.auto import tqdm

        s, device = self.s, self.accelerator.device
        # Workers build batches in other processes; pinned memory lets the copy overlap GPU work.
        loader = torch.utils.data.DataLoader(
            StepBatches(self.task.draw, s.batch_size, s.seed, self.scheduler, self.step, self.steps), batch_size=None,
            num_workers=s.workers, pin_memory=device.type == "cuda", prefetch_factor=4 if s.workers else None)
        self.unet.train()
        self.t0 = time.time()
        bar = tqdm(total=self.steps, initial=self.step, desc=self.task.desc, disable=not s.progress, mininterval=10,
                   smoothing=0.05)
        try:
            with self.log_csv.open("a", newline="") as f:
                w = csv.DictWriter(f, _LOG_FIELDS)
                for batch in loader:
                    self.train_step(batch, bar, w, f)
                    if self.step == self.steps:  # reached early under --max-minutes
                        break
        except KeyboardInterrupt:
            with self.log_csv.open("a", newline="") as f:
                self.flush_log(csv.DictWriter(f, _LOG_FIELDS), f)
            self.checkpoint()
            bar.close()
            print(f"interrupted at step {self.step}: checkpoint saved; rerun the same command to resume", flush=True)
            raise
        bar.close()
        self.train_seconds = time.time() - self.t0
        if self.stopped_early:
            print(f"--max-minutes {s.max_minutes}: stopped at step {self.step}", flush=True)

    def train_step(self, batch, bar, w, f) -> None:
        s, device = self.s, self.accelerator.device
        xt, noise, t, labels = batch
        xt, noise, t = (v.to(device, non_blocking=True) for v in (xt, noise, t))
        labels = None if labels is None else labels.to(device, non_blocking=True)
        loss = F.mse_loss(self.unet(xt, t, class_labels=labels).sample, noise)
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.optimizer.step()
        self.lr_sched.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.unet.parameters())
        self.step += 1
        bar.update(1)
        if s.max_minutes is not None and time.time() - self.t0 > 60 * s.max_minutes and self.step < self.steps:
            self.stopped_early, self.steps = True, self.step
        held = self.evaluate() if (self.step % s.eval_every == 0 or self.step == self.steps) else None
        if held is not None:
            self.last_held = held
            bar.set_postfix(loss=f"{loss.item():.4f}", held_out=f"{held:.4f}")
        self.pending.append((self.step, loss.detach(), held, self.lr_sched.get_last_lr()[0], time.time() - self.t0))
        if held is not None or len(self.pending) >= 100:
            self.flush_log(w, f)
        if self.step % s.checkpoint_every == 0 or self.step == self.steps:
            self.flush_log(w, f)
            self.checkpoint()

    def export(self) -> dict:
        """Export the EMA weights as a self-contained diffusers folder."""
        task, s, out = self.task, self.s, self.out
        model = self.accelerator.unwrap_model(self.unet)
        self.ema.copy_to(model.parameters())
        model.eval()
        if self.last_held is None and task.eval_set is not None:
            self.last_held = held_out_loss(model, self.scheduler, task.eval_set, task.eval_chunk)
        export = task.make_model()
        export.load_state_dict(model.state_dict())
        if s.fp16:  # halves the shipped size; loaders upcast with from_pretrained(torch_dtype=torch.float32)
            for p in export.parameters():
                p.data = p.data.half()
        export.save_pretrained(out / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(out / "scheduler")
        n = task.sample_n if task.sample_labels is None else len(task.sample_labels)
        images = sample(model, self.scheduler, n, task.sample_size, s.sample_steps, s.seed, task.sample_labels)
        save_grid(images, out / "samples.png", nrow=task.grid_columns)
        plot_losses(self.log_csv, out / "loss_curve.png")
        summary = dict(steps=self.step, stopped_early=self.stopped_early, held_out_loss=self.last_held,
                       parameters=self.config["parameters"], train_seconds=round(self.train_seconds, 1), **task.summary)
        self.config["result"] = summary
        (out / "train_config.json").write_text(json.dumps(self.config, indent=2))
        return summary
