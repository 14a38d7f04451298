"""`inversa eval-distill`: the dataset-distillation protocol (DC/DM/Minimax/IGD).

Train a student (ConvNet-3 or ResNet-AP-10) from scratch only on a distilled set, report its
accuracy on the real test set, mean ± std over seeds, next to two baselines of the same size: a
random real subset (IPC images per class, drawn per seed) and unguided class-conditional samples of
the same model. The student budget is a fixed number of SGD iterations with random shifts and flips
(differentiable-siamese-augmentation-like), sized for a CPU; it is the same for every set, so the
comparison is fair even where the absolute accuracies are below the literature's 1000-epoch runs.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.distill.data import load_image_folder
from inversa.distill.nets import ARCHS, make_net

def random_real_subset(x: torch.Tensor, y: torch.Tensor, ipc: int, seed: int, classes=None) -> tuple[torch.Tensor, torch.Tensor]:
    """IPC random real images per class (the draw depends on the seed)."""
    g = torch.Generator().manual_seed(10_007 * seed + ipc)
    idx = []
    for c in (classes if classes is not None else y.unique().tolist()):
        members = torch.nonzero(y == c).flatten()
        if len(members) < ipc:
            raise UserError(f"class {c} has {len(members)} real images, fewer than IPC {ipc}")
        idx.append(members[torch.randperm(len(members), generator=g)[:ipc]])
    idx = torch.cat(idx)
    return x[idx], y[idx]


def augment(x: torch.Tensor, g: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random translation by up to `shift` pixels (zero padding) and horizontal flip, per image."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (shift,) * 4)
    dx, dy = (torch.randint(0, 2 * shift + 1, (n,), generator=g) for _ in range(2))
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def train_student(x: torch.Tensor, y: torch.Tensor, *, arch: str = "convnet", num_classes: int = 10, seed: int = 0,
                  iterations: int = 300, batch_size: int = 64, lr: float = 0.01, weight_decay: float = 5e-4,
                  normalize: tuple[float, float] | None = None) -> torch.nn.Module:
    """SGD (momentum 0.9, cosine decay) for a fixed number of iterations on (x, y) only."""
    torch.manual_seed(seed)
    net = make_net(arch, in_channels=x.shape[1], num_classes=num_classes, size=x.shape[-1])
    mean, std = normalize if normalize is not None else (0.0, 1.0)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    g = torch.Generator().manual_seed(seed + 1)
    b = min(batch_size, len(x))
    net.train()
    for it in range(iterations):
        idx = torch.randperm(len(x), generator=g)[:b]
        loss = F.cross_entropy(net((augment(x[idx], g) - mean) / std), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def test_accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, normalize=None, batch_size: int = 1000) -> float:
    mean, std = normalize if normalize is not None else (0.0, 1.0)
    correct = sum((net((x[i:i + batch_size] - mean) / std).argmax(1) == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def real_data(name: str) -> dict:
    """Real train/test splits: 'fashion-mnist', or a folder with train/ and test/ ImageFolders."""
    if name == "fashion-mnist":
        from inversa.distill.data import CLASSES, load_fashion_mnist

        (xtr, ytr), (xte, yte) = load_fashion_mnist("train"), load_fashion_mnist("test")
        return dict(train=(xtr, ytr), test=(xte, yte), classes=list(CLASSES), name=name)
    root = Path(name)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise UserError(f"--real {name!r}: expected 'fashion-mnist' or a folder with train/ and test/ ImageFolders")
    xtr, ytr, classes = load_image_folder(root / "train")
    xte, yte, _ = load_image_folder(root / "test", classes, channels=xtr.shape[1], size=xtr.shape[-1])
    return dict(train=(xtr, ytr), test=(xte, yte), classes=classes, name=name)


def score_set(x: torch.Tensor, y: torch.Tensor, real: dict, *, arch: str, seed: int, iterations: int, batch_size: int,
              lr: float = 0.01) -> dict:
    """One student: trained on (x, y), scored on the real test split."""
    xte, yte = real["test"]
    if x.shape[1:] != xte.shape[1:]:  # the student sees test-sized images
        x = F.interpolate(x.mean(1, keepdim=True) if xte.shape[1] == 1 and x.shape[1] == 3 else x,
                          size=xte.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    xtr = real["train"][0]
    norm = (float(xtr.mean()), float(xtr.std()))  # the real data's statistics, for every set alike
    t0 = time.perf_counter()
    net = train_student(x, y, arch=arch, num_classes=len(real["classes"]), seed=seed, iterations=iterations,
                        batch_size=batch_size, lr=lr, normalize=norm)
    t1 = time.perf_counter()
    acc = test_accuracy(net, xte, yte, normalize=norm)
    return dict(arch=arch, seed=seed, accuracy=acc, train_seconds=round(t1 - t0, 1), test_seconds=round(time.perf_counter() - t1, 1),
                images=len(x), iterations=iterations, batch_size=batch_size, lr=lr)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def evaluate_sets(sets: dict, real: dict, *, ipc: int, archs=("convnet",), seeds=(0, 1, 2), iterations: int = 300,
                  batch_size: int = 64, lr: float = 0.01, random_real: bool = True, results_file: str | Path | None = None,
                  progress: bool = True) -> list[dict]:
    """Score every set (name -> ImageFolder path) and the random-real baseline; one row per (set, arch, seed).

    `results_file` (JSON lines) makes it resumable: rows already there are reused."""
    from tqdm.auto import tqdm

    for a in archs:
        if a not in ARCHS:
            raise UserError(f"--archs: {a!r} is not known; accepted: {', '.join(ARCHS)}")
    if not seeds:
        raise UserError("--seeds: give at least one seed")
    done = {}
    path = Path(results_file) if results_file else None
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[(r["set"], r["ipc"], r["arch"], r["seed"], r["iterations"], r["batch_size"], r["lr"])] = r
    loaded = {name: load_image_folder(d, real["classes"], ipc=ipc, channels=real["test"][0].shape[1])[:2]
              for name, d in sets.items()}
    names = (["random-real"] if random_real else []) + list(sets)
    rows = []
    jobs = [(n, a, s) for n in names for a in archs for s in seeds]
    for name, arch, seed in tqdm(jobs, desc=f"students ipc {ipc}", disable=not progress):
        key = (name, ipc, arch, seed, iterations, batch_size, lr)
        if key in done:
            rows.append(done[key])
            continue
        x, y = random_real_subset(*real["train"], ipc, seed) if name == "random-real" else loaded[name]
        r = dict(set=name, ipc=ipc, **score_set(x, y, real, arch=arch, seed=seed, iterations=iterations,
                                                batch_size=batch_size, lr=lr))
        rows.append(r)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(json.dumps(r) + "\n")
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (set, ipc, arch)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["set"], r["ipc"], r["arch"]), []).append(r["accuracy"])
    return [dict(set=s, ipc=i, arch=a, mean=mean_std(v)[0], std=mean_std(v)[1], n=len(v))
            for (s, i, a), v in groups.items()]


def format_table(summary: list[dict]) -> str:
    """Markdown: one row per (arch, set), one column per IPC, cells 'mean ± std' in % (n seeds)."""
    ipcs = sorted({r["ipc"] for r in summary})
    keys = list(dict.fromkeys((r["arch"], r["set"]) for r in summary))
    cell = {(r["arch"], r["set"], r["ipc"]): r for r in summary}
    lines = ["| student | set | " + " | ".join(f"IPC {i}" for i in ipcs) + " |",
             "|---|---|" + "---|" * len(ipcs)]
    for arch, s in keys:
        vals = []
        for i in ipcs:
            r = cell.get((arch, s, i))
            vals.append("—" if r is None else f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f} (n={r['n']})")
        lines.append(f"| {arch} | {s} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected integers like 0,1,2") from None
    if not seeds:
        raise UserError(f"--seeds {text!r}: give at least one seed")
    return seeds


def unguided_baseline(folder: str | Path, *, progress: bool = True) -> Path:
    """The unguided set matching a distilled folder made by `inversa distill` (same model, classes,
    IPC, seed, steps, CFG), generated — or resumed — next to it as `<folder>-unguided`."""
    from inversa.distill.generate import METADATA, distill

    folder = Path(folder)
    meta_path = folder / METADATA
    if not meta_path.exists():
        raise UserError(f"--unguided: {str(folder)!r} has no {METADATA}; it must be made by `inversa distill`")
    s = json.loads(meta_path.read_text())["settings"]
    out = folder.with_name(folder.name + "-unguided")
    distill(s["model"], out, ipc=s["ipc"], classes=s["classes"], method="unguided", seed=s["seed"], steps=s["steps"],
            batch_size=s["batch_size"], cfg_scale=s["cfg_scale"], sampler=s.get("sampler", "ddpm"), progress=progress)
    return out
