"""Train the bundled Fashion-MNIST demo models: a class-conditional DDPM prior and a classifier.

    python -m inversa.training.train_conditional prior -o DIR [--steps N ...]
    python -m inversa.training.train_conditional classifier -o DIR [--epochs N ...]

The prior is a diffusers `UNet2DModel` with a class embedding (`num_class_embeds` = classes + 1: the
last index is the null class, used for 10 % of the training labels so classifier-free guidance works,
as in DiT). Same conventions as `inversa train`: DDPM linear schedule, epsilon prediction, AdamW with
warm-up + cosine decay, EMA weights exported as fp16 safetensors, every random draw a function of
(seed, step).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from inversa.distill.data import CLASSES, SIZE, held_out_split, load_fashion_mnist
from inversa.training.train import make_scheduler, save_grid


def make_conditional_unet(channels=(32, 64, 64), layers_per_block: int = 1, num_classes: int = 10, size: int = SIZE,
                          in_channels: int = 1):
    from diffusers import UNet2DModel

    n = len(channels)
    return UNet2DModel(
        sample_size=size, in_channels=in_channels, out_channels=in_channels, block_out_channels=tuple(channels),
        layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * n, up_block_types=("UpBlock2D",) * n,
        add_attention=False, norm_num_groups=math.gcd(32, *channels), num_class_embeds=num_classes + 1,
    )


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flips (garments are left-right symmetric classes)."""
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@torch.no_grad()
def conditional_held_out_loss(unet, scheduler, x0, y, seed: int = 0, chunk: int = 128) -> float:
    """Epsilon MSE on held-out images with stratified t (comparable across runs)."""
    g = torch.Generator().manual_seed(seed + 7)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.linspace(0, 999, len(x0)).round().long()
    total = 0.0
    for i in range(0, len(x0), chunk):
        xt = scheduler.add_noise(x0[i:i + chunk], noise[i:i + chunk], t[i:i + chunk])
        pred = unet(xt, t[i:i + chunk], class_labels=y[i:i + chunk]).sample
        total += F.mse_loss(pred, noise[i:i + chunk], reduction="sum").item()
    return total / noise.numel()


@torch.no_grad()
def conditional_samples(unet, scheduler, labels: torch.Tensor, steps: int = 100, seed: int = 0) -> torch.Tensor:
    """Ancestral DDPM samples in [0, 1] for the given class labels."""
    g = torch.Generator().manual_seed(seed)
    sched = scheduler.__class__.from_config(scheduler.config)
    sched.set_timesteps(steps)
    x = torch.randn((len(labels), unet.config.in_channels, unet.config.sample_size, unet.config.sample_size), generator=g)
    for t in sched.timesteps:
        x = sched.step(unet(x, t, class_labels=labels).sample, t, x, generator=g).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def train_prior(out: str | Path, *, steps: int = 1600, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                channels=(32, 64, 64), layers_per_block: int = 1, warmup_steps: int = 200, ema_decay: float = 0.999,
                label_dropout: float = 0.1, eval_every: int = 500, eval_images: int = 1000, max_seconds: float | None = None,
                progress: bool = True) -> dict:
    """Train and export a diffusers folder (`unet/`, `scheduler/`) + `samples.png` + `train_config.json`.

    `max_seconds` stops early (the cosine schedule is still laid out for `steps`); the summary records
    the steps actually done."""
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all = load_fashion_mnist("train")
    tr, ho = held_out_split(len(x_all))
    x_tr, y_tr = x_all[tr] * 2 - 1, y_all[tr]
    ho = ho[:eval_images]
    x_ho, y_ho = x_all[ho] * 2 - 1, y_all[ho]
    torch.manual_seed(seed)
    unet = make_conditional_unet(channels, layers_per_block, len(CLASSES))
    scheduler = make_scheduler()
    n_params = sum(p.numel() for p in unet.parameters())
    ema = EMAModel(unet.parameters(), decay=ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=2 / 3)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    sched_lr = get_cosine_schedule_with_warmup(opt, warmup_steps, steps)
    alphas = scheduler.alphas_cumprod
    null = len(CLASSES)
    log, t0, step = [], time.time(), 0

    def held_out() -> float:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
        unet.eval()
        loss = conditional_held_out_loss(unet, scheduler, x_ho, y_ho, seed)
        unet.train()
        ema.restore(unet.parameters())
        return loss

    unet.train()
    bar = tqdm(total=steps, desc="train prior", disable=not progress, mininterval=10)
    while step < steps and (max_seconds is None or time.time() - t0 < max_seconds):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(x_tr), (batch_size,), generator=g)
        x0, y = _augment(x_tr[idx], g), y_tr[idx].clone()
        y[torch.rand(batch_size, generator=g) < label_dropout] = null
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (batch_size,), generator=g)
        a = alphas[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, class_labels=y).sample, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched_lr.step()
        opt.zero_grad(set_to_none=True)
        ema.step(unet.parameters())
        step += 1
        bar.update(1)
        if step % eval_every == 0:
            h = held_out()
            log.append({"step": step, "train_loss": loss.item(), "held_out_loss": h, "seconds": round(time.time() - t0, 1)})
            bar.set_postfix(loss=f"{loss.item():.4f}", held_out=f"{h:.4f}")
            print(json.dumps(log[-1]), flush=True)
    bar.close()
    seconds = time.time() - t0
    final = held_out()
    ema.copy_to(unet.parameters())
    unet.eval()
    export = make_conditional_unet(channels, layers_per_block, len(CLASSES))
    export.load_state_dict(unet.state_dict())
    for p in export.parameters():  # fp16 halves the shipped size; the loader upcasts
        p.data = p.data.half()
    export.save_pretrained(out / "unet", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    labels = torch.arange(len(CLASSES)).repeat_interleave(8)
    save_grid(conditional_samples(unet, scheduler, labels, 100, seed).expand(-1, 3, -1, -1), out / "samples.png", nrow=8)
    summary = dict(steps=step, train_seconds=round(seconds, 1), held_out_loss=final, parameters=n_params,
                   held_out_images=len(x_ho), train_images=len(x_tr))
    config = dict(data="fashion-mnist train (Debian dataset-fashion-mnist), padded to 32x32", steps_planned=steps,
                  batch_size=batch_size, lr=lr, seed=seed, channels=list(channels), layers_per_block=layers_per_block,
                  warmup_steps=warmup_steps, ema_decay=ema_decay, label_dropout=label_dropout, classes=list(CLASSES),
                  null_class=null, torch_threads=torch.get_num_threads(), log=log, result=summary)
    (out / "train_config.json").write_text(json.dumps(config, indent=2))
    return summary


def train_classifier(out: str | Path, *, epochs: int = 2, batch_size: int = 128, lr: float = 2e-3, width: int = 32,
                     seed: int = 0, progress: bool = True) -> dict:
    """A ConvNet-3 (instance norm) classifier; exports `model.safetensors` + `config.json`."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from inversa.distill.nets import make_net
    from inversa.distill.classifier import Classifier

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = load_fashion_mnist("train")
    x_te, y_te = load_fashion_mnist("test")
    torch.manual_seed(seed)
    config = dict(arch="convnet", arch_kwargs={"width": width, "depth": 3}, in_channels=1, num_classes=len(CLASSES),
                  input_size=SIZE, input_range=[0, 1], mean=[float(x_tr.mean())], std=[float(x_tr.std())],
                  class_names=list(CLASSES))
    net = make_net("convnet", in_channels=1, num_classes=len(CLASSES), size=SIZE, width=width, depth=3)
    clf = Classifier(net, **{k: config[k] for k in ("input_size", "input_range", "mean", "std", "class_names")})
    steps = epochs * (len(x_tr) // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    t0 = time.time()
    net.train()
    for step in tqdm(range(steps), desc="train classifier", disable=not progress, mininterval=10):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(x_tr), (batch_size,), generator=g)
        loss = F.cross_entropy(clf(_augment(x_tr[idx], g)), y_tr[idx])
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.time() - t0
    net.eval()
    with torch.no_grad():
        pred = torch.cat([clf(x_te[i:i + 1000]).argmax(1) for i in range(0, len(x_te), 1000)])
    acc = (pred == y_te).float().mean().item()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out / "model.safetensors")
    summary = dict(test_accuracy=acc, train_seconds=round(seconds, 1), steps=steps, epochs=epochs, batch_size=batch_size,
                   lr=lr, seed=seed, parameters=sum(p.numel() for p in net.parameters()), torch_threads=torch.get_num_threads())
    (out / "config.json").write_text(json.dumps({**config, "training": summary}, indent=2))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m inversa.training.train_conditional", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("prior", "classifier"))
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--steps", type=int, default=1600, help="prior: optimisation steps")
    p.add_argument("--max-minutes", type=float, default=None, help="prior: stop after this wall time")
    p.add_argument("--channels", default="32,64,64", help="prior: UNet block widths")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=2, help="classifier: epochs")
    p.add_argument("--width", type=int, default=32, help="classifier: ConvNet width")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.what == "prior":
        s = train_prior(a.output, steps=a.steps, batch_size=a.batch_size or 32, seed=a.seed,
                        channels=tuple(int(c) for c in a.channels.split(",")),
                        max_seconds=None if a.max_minutes is None else a.max_minutes * 60)
    else:
        s = train_classifier(a.output, epochs=a.epochs, batch_size=a.batch_size or 128, width=a.width, seed=a.seed)
    print(json.dumps(s))


if __name__ == "__main__":
    main()
