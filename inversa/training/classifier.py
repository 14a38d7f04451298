"""The Fashion-MNIST classifier (`inversa train --kind classifier`), the bundled inversa-fashion-classifier."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from inversa.distill.data import CLASSES, SIZE, load_fashion_mnist
from inversa.errors import UserError
from inversa.training.data import random_flips


def train_classifier(out: str | Path, *, epochs: int = 2, batch_size: int = 128, lr: float = 2e-3, width: int = 32,
                     seed: int = 0, num_threads: int | None = None, progress: bool = True) -> dict:
    """A ConvNet-3 (instance norm) classifier; exports `model.safetensors` + `config.json`.

    AdamW with a one-cycle schedule; every batch is a function of (seed, step)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from inversa.distill.classifier import Classifier
    from inversa.distill.nets import make_net

    for name, v in (("epochs", epochs), ("batch-size", batch_size), ("width", width)):
        if v < 1:
            raise UserError(f"--{name} {v}: must be a positive integer")
    if not lr > 0:
        raise UserError(f"--lr {lr}: must be positive")
    if num_threads:
        torch.set_num_threads(num_threads)
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
    if steps < 1:
        raise UserError(f"--batch-size {batch_size}: larger than the {len(x_tr)} training images")
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    t0 = time.time()
    net.train()
    for step in tqdm(range(steps), desc="train classifier", disable=not progress, mininterval=10):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(x_tr), (batch_size,), generator=g)
        loss = F.cross_entropy(clf(random_flips(x_tr[idx], g)), y_tr[idx])
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
