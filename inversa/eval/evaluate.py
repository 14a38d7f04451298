"""Batch evaluation: for every (image, task, solver, steps, seed) item, measure, restore, score.

A run folder holds:
    config.json              the settings (checked on resume) and the image list
    rows/<item>.json         one row per finished item; written last and atomically: the resume marker
    images/...               clean, measurement and restoration PNGs (for FID and the report)
    summary.csv|md, report.html, run.json    built by `merge` from all rows

Rerunning the same command skips items that have a row, so a run killed at any moment ends, once
rerun, with the same rows and tables as an uninterrupted one. Items are split between processes
by `index % num_shards`: `--num-shards/--shard-index`, or automatically under `accelerate launch`;
every process writes only its own rows, and the table is built from all of them.

Seeds: the operator of image k is `make_preset(task, index=k, seed=seed)`; the measurement noise and
the solver's generator are seeded from (seed, image name), so every solver sees the same
measurement and an item's result does not depend on the others, their order or the sharding.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from inversa.device import resolve_device
from inversa.errors import UserError
from inversa import imageio
from inversa.eval import metrics, store
from inversa.eval.config import FROZEN, EvalConfig, as_int, read_config_file

NAIVE = "naive"


def log(msg: str) -> None:
    print(f"inversa eval: {msg}", file=sys.stderr, flush=True)


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from its parts (unlike `hash()`, the same in every process)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class Item:
    image: str  # file name in the data folder
    index: int  # position in the sorted image list: selects the preset's mask/kernel
    task: str
    solver: str
    steps: int  # 0 for the naive baseline, which has no steps
    seed: int

    @property
    def stem(self) -> str:
        return Path(self.image).stem

    @property
    def key(self) -> str:
        return f"{self.task}__{self.solver}__n{self.steps}__seed{self.seed}__{self.stem}"

    @property
    def restoration(self) -> str:
        return f"images/{self.task}/{self.solver}-n{self.steps}/seed{self.seed}/{self.stem}.png"

    @property
    def measurement(self) -> str:
        return f"images/{self.task}/measurement/seed{self.seed}/{self.stem}.png"

    @property
    def clean(self) -> str:
        return f"images/clean/{self.stem}.png"


def make_items(images: list[str], cfg: EvalConfig) -> list[Item]:
    """All items of a run in a fixed order (the sharding splits this list)."""
    return [
        Item(name, k, task, solver, steps, seed)
        for task in cfg.tasks
        for solver in cfg.solvers
        for steps in ([0] if solver == NAIVE else cfg.steps)
        for seed in cfg.seeds
        for k, name in enumerate(images)
    ]


def _batches(items: list[Item], size: int):
    """Consecutive runs of items sharing (task, solver, steps, seed), cut to at most `size` items."""
    batch: list[Item] = []
    for item in items:
        same = batch and (item.task, item.solver, item.steps, item.seed) == (batch[0].task, batch[0].solver, batch[0].steps, batch[0].seed)
        if batch and (not same or len(batch) == size):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def row_path(out: Path, item: Item) -> Path:
    return out / "rows" / f"{item.key}.json"


def load_row(out: Path, item: Item) -> dict | None:
    row = imageio.read_json(row_path(out, item))
    return row if isinstance(row, dict) and row.get("key") == item.key else None


# --- setup ---------------------------------------------------------------------------------------


def _check_names(cfg: EvalConfig) -> None:
    from inversa.operators import PRESETS
    from inversa.solvers import SOLVERS

    for task in cfg.tasks:
        if task not in PRESETS:
            raise UserError(f"unknown task {task!r}; accepted: {', '.join(PRESETS)}")
    for solver in cfg.solvers:
        if solver not in SOLVERS:
            raise UserError(f"unknown solver {solver!r}; accepted: {', '.join(SOLVERS)}")
    unused = sorted(set(cfg.solver_params) - set(cfg.solvers))
    if unused:
        raise UserError(f"solver_params given for {', '.join(unused)}, which is not among --solvers")


def _check_kind(cfg: EvalConfig, prior) -> None:
    """Solvers that do not fit the model's kind (pixel-space solvers on a latent model, latent solvers on a
    pixel-space one) refused up front, in one line naming those that fit."""
    from inversa.solvers.registry import solver_names

    kind = getattr(prior, "kind", "pixel")  # priors built outside the package may not say
    fit = solver_names(kind, priorless=False)
    wrong = [s for s in cfg.solvers if s != NAIVE and s not in fit]
    if wrong:
        what = "a latent model (a UNet over autoencoder latents)" if kind == "latent" else "a pixel-space model"
        raise UserError(f"model {cfg.model or prior.name!r} is {what} and --solvers {', '.join(wrong)} "
                        f"{'does' if len(wrong) == 1 else 'do'} not run on it; accepted: {', '.join(fit + [NAIVE])}")


def _shard(num: int | None, index: int | None, device: str | None):
    """(shard index, shard count, accelerate state): explicit shards, else accelerate's processes."""
    from accelerate import PartialState

    # without cpu=True accelerate looks for GPUs only and sees a CPU launch as one process
    cpu = (device or "").startswith("cpu") or not torch.cuda.is_available() or \
        os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    state = PartialState(cpu=cpu)
    if num is not None or index is not None:
        if state.num_processes > 1:
            raise UserError("--num-shards/--shard-index cannot be combined with accelerate launch "
                            f"({state.num_processes} processes already split the items)")
        num = 1 if num is None else num
        index = 0 if index is None else index
        if num < 1 or not 0 <= index < num:
            raise UserError(f"--shard-index must be in [0, {num - 1}] for --num-shards {num}, got {index}")
        return index, num, state
    return state.process_index, state.num_processes, state


def _prepare_out(out: Path, settings: dict, images: list[str], skipped: list[str], cfg: EvalConfig) -> None:
    """Create the run folder (or check that it holds a compatible run) and record the settings."""
    old = imageio.read_json(out / "config.json")
    if old is not None:
        changed = [k for k in FROZEN if old.get("settings", {}).get(k) != settings[k]]
        if changed:
            k = changed[0]
            raise UserError(f"{out} holds a run made with {k}={old['settings'].get(k)!r} (now {settings[k]!r}); "
                            "use a new --out folder or the same settings")
        # Same model name, other weights (a retrained bundled prior, an overwritten folder): rows
        # would mix two models. Runs of the naive inverse alone record no weights.
        was, now = old.get("settings", {}).get("model_sha256"), settings.get("model_sha256")
        if was and now and was != now:
            raise UserError(f"{out} was started with other weights for model {settings['model'] or 'bundled'!r} "
                            f"(sha256 {was[:12]}…, now {now[:12]}…); use a new --out folder")
        settings["model_sha256"] = now or was
        n = min(len(old["images"]), len(images))
        if old["images"][:n] != images[:n]:  # masks and kernels follow the image index
            raise UserError(f"the images in {settings['data']} changed since {out} was started; use a new --out folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        imageio.atomic_write_json(out / "config.json", {
            "config": cfg.to_dict(), "settings": settings, "images": images, "skipped_files": skipped,
        })
    except OSError as exc:
        raise UserError(f"cannot write to --out {str(out)!r}: {exc.strerror or exc}") from None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed copy: an enclosing repository is not ours
        return None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.processor() or platform.machine()})"


def model_info(prior) -> dict:
    """Name, source and a SHA-256 of the weights (over the state dict, independent of file format; a latent
    model's covers its autoencoder too)."""
    from inversa.pretrained.safe_load import state_dict_sha256

    weights = prior.state_dict() if getattr(prior, "kind", "pixel") == "latent" else prior.model.state_dict()  # + autoencoder
    return {"name": prior.name, "source": prior.source, "sha256": state_dict_sha256(weights).hexdigest()}


def _picture(y: torch.Tensor, operator) -> torch.Tensor:
    """What the report shows as the measurement: y itself when it is an image, else the naive inverse."""
    if y.ndim == 4 and y.shape[1] in (1, 3):
        return y
    return operator.naive_inverse(y)


# --- running -------------------------------------------------------------------------------------


class _Runner:
    """Per-process state: images, the prior, the solvers and LPIPS, each loaded once."""

    def __init__(self, cfg: EvalConfig, out: Path, data: Path, size, device: torch.device, prior, lpips,
                 model: dict | None):
        self.cfg, self.out, self.data, self.size, self.device = cfg, out, data, size, device
        self.prior, self.lpips = prior, lpips
        self.model = model  # model_info(prior), computed once by run_eval
        self.solvers: dict = {}
        self.env = {"inversa": _version(), "commit": _git_commit(), "torch": torch.__version__,
                    "python": platform.python_version(), "device": _device_name(device)}

    def solver(self, name: str):
        if name not in self.solvers:
            from inversa.solvers import make_solver

            self.solvers[name] = make_solver(name, self.prior, **self.cfg.solver_params.get(name, {}))
        return self.solvers[name]

    def run(self, item: Item) -> dict:
        return self.run_batch([item])[0]

    def run_batch(self, items: list[Item]) -> list[dict]:
        """Items of one (task, solver, steps, seed), restored as one batch. Operators, measurement noise
        and solver noise are drawn per image from the image's own seeds, and solvers are
        batch-invariant, so each row is the one a batch of 1 gives (up to float rounding of batched
        network calls); images of different sizes go in separate batches."""
        images = [imageio.load_image_square(self.data / it.image, self.size) for it in items]
        rows: list[dict] = []
        for shape in dict.fromkeys(tuple(x.shape) for x in images):
            group = [(it, x) for it, x in zip(items, images) if tuple(x.shape) == shape]
            rows += self._restore([it for it, _ in group], torch.cat([x for _, x in group]).to(self.device))
        by_key = {r["key"]: r for r in rows}
        return [by_key[it.key] for it in items]

    def _restore(self, items: list[Item], x: torch.Tensor) -> list[dict]:
        from inversa.operators import make_preset

        t0 = time.perf_counter()
        first, n = items[0], len(items)
        h, w = x.shape[-2:]
        op = make_preset(first.task, image_size=(h, w), index=[it.index for it in items], seed=first.seed).to(self.device)
        m_seeds = [derive_seed("measurement", it.seed, it.image) for it in items]
        s_seeds = [derive_seed("solver", it.seed, it.image) for it in items]
        y = op.measure(x, generator=[torch.Generator().manual_seed(s) for s in m_seeds])
        t1 = time.perf_counter()
        out = self.solver(first.solver)(y, op, generator=[torch.Generator().manual_seed(s) for s in s_seeds],
                                        num_steps=first.steps, progress=False)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        wall = (time.perf_counter() - t1) / n  # per image
        xr = out.x.to(self.device, torch.float32)
        psnr, ssim = metrics.psnr(xr, x), metrics.ssim(xr, x)
        lpips = None
        if self.lpips is not None and not isinstance(self.lpips, str):
            lpips = metrics.lpips(xr, x, self.cfg.lpips_net, self.cfg.lpips_weights)
        picture = _picture(y, op)
        rows = []
        for i, item in enumerate(items):
            single = make_preset(item.task, image_size=(h, w), index=item.index, seed=item.seed)  # its own metadata (ms)
            row = {
                "key": item.key, "image": item.image, "image_index": item.index, "task": item.task,
                "solver": item.solver, "steps": item.steps, "seed": item.seed,
                "measurement_seed": m_seeds[i], "solver_seed": s_seeds[i], "image_size": [h, w],
                "psnr": float(psnr[i]), "ssim": float(ssim[i]),
                "lpips": None, "lpips_net": self.cfg.lpips_net,
                "nfe": int(out.nfe), "vjp": int(out.vjp), "wall_s": wall, "batch_size": n,
                "sigma": float(op.sigma), "sigma_pm1": 2 * float(op.sigma), "operator": single.metadata(),
                "solver_metadata": out.metadata, "solver_params": self.cfg.solver_params.get(item.solver, {}),
                "model": self.model if item.solver != NAIVE else None,
                "files": {"clean": item.clean, "measurement": item.measurement, "restoration": item.restoration},
                "env": self.env,
            }
            if isinstance(self.lpips, str):
                row["lpips_error"] = self.lpips
            elif lpips is not None:
                row["lpips"] = float(lpips[i])
                row["lpips_source"] = self.lpips.source
            for rel, img in ((item.clean, x[i:i + 1]), (item.measurement, picture[i:i + 1]), (item.restoration, xr[i:i + 1])):
                if rel == item.restoration or not (self.out / rel).exists():
                    imageio.save_image(img, self.out / rel, compress_level=1)  # lossless; level 6 is 3x slower
            row["item_s"] = (time.perf_counter() - t0) / n
            imageio.atomic_write_json(row_path(self.out, item), row)
            rows.append(row)
        return rows


def _version() -> str:
    from inversa import __version__

    return __version__


def run_eval(config: EvalConfig | dict, *, progress: bool = True, callback=None, fid_feature=None,
             num_shards: int | None = None, shard_index: int | None = None) -> dict:
    """Run (or resume) an evaluation; returns {"out", "done", "pending", "merged": paths or None}.

    `callback(item, row)` is called after each finished item. `fid_feature`: see `metrics.SetMetrics`.
    """
    cfg = config if isinstance(config, EvalConfig) else EvalConfig.from_mapping(config)
    cfg.require("data", "tasks", "solvers", "out")
    _check_names(cfg)
    data = Path(cfg.data).expanduser().resolve()
    paths, skipped = _list_images(data, cfg.limit)
    images = [p.name for p in paths]
    index, count, state = _shard(num_shards, shard_index, cfg.device)
    device = resolve_device(cfg.device) if cfg.device and str(cfg.device).lower() != "auto" else state.device

    prior = None
    if any(s != NAIVE for s in cfg.solvers):
        from inversa.pretrained import load_prior

        prior = load_prior(cfg.model, device=device)
        _check_kind(cfg, prior)
    size = cfg.size  # None: images at their own size (convolutional priors take any multiple of their stride)
    _check_tasks(cfg, paths, size)
    minfo = model_info(prior) if prior is not None else None
    settings = {"data": str(data), "model": cfg.model, "size": size, "lpips_net": cfg.lpips_net,
                "solver_params": cfg.solver_params, "model_sha256": minfo["sha256"] if minfo else None}
    out = Path(cfg.out).expanduser()
    _prepare_out_once(state, out, settings, images, skipped, cfg)
    if skipped and index == 0:
        log(f"skipped {len(skipped)} non-image file(s): {', '.join(skipped)}")

    runner = _Runner(cfg, out, data, size, device, prior, _load_lpips(cfg, device, quiet=index != 0), minfo)

    mine = make_items(images, cfg)[index::count]
    pending = [it for it in mine if load_row(out, it) is None]
    from tqdm.auto import tqdm

    desc = "eval" if count == 1 else f"eval {index + 1}/{count}"
    with tqdm(total=len(pending), desc=desc, disable=not progress, position=index if count > 1 else None, unit="item") as bar:
        for batch in _batches(pending, cfg.batch_size):
            for item, row in zip(batch, runner.run_batch(batch)):
                bar.update(1)
                if callback is not None:
                    callback(item, row)

    result = {"out": str(out), "done": len(mine), "pending": 0, "merged": None}
    if state.num_processes > 1:
        state.wait_for_everyone()
        if not state.is_main_process:
            return result
    missing = [it for it in make_items(images, cfg) if load_row(out, it) is None]
    if missing:  # other --num-shards processes still at work
        log(f"shard {index + 1}/{count} done; {len(missing)} item(s) of other shards pending: "
            f"when they finish, run `inversa eval --merge --out {out}`")
        result["pending"] = len(missing)
        return result
    result["merged"] = merge(out, fid_feature=fid_feature, progress=progress)
    return result



def _list_images(data: Path, limit: int | None) -> tuple[list[Path], list[str]]:
    """The first `limit` images of the folder (and the names of skipped non-images); names must differ by stem."""
    paths, skipped = store.list_images(data)
    paths = paths[:limit] if limit else paths
    stems: dict[str, str] = {}
    for p in paths:
        if p.stem in stems:
            raise UserError(f"two images share the name {p.stem!r} ({stems[p.stem]}, {p.name}); rename one")
        stems[p.stem] = p.name
    return paths, skipped


def _prepare_out_once(state, out: Path, settings: dict, images: list[str], skipped: list[str], cfg: EvalConfig) -> None:
    """`_prepare_out` by the main process only; the others wait for it and fail with it."""
    if state.num_processes == 1:
        _prepare_out(out, settings, images, skipped, cfg)
        return
    error = None
    if state.is_main_process:
        try:
            _prepare_out(out, settings, images, skipped, cfg)
        except UserError as exc:  # reach the barrier anyway, or the other processes wait forever
            error = exc
    state.wait_for_everyone()
    if error is not None:
        raise error
    if not (out / "config.json").exists():
        raise UserError(f"the main process could not prepare {out}")


def _load_lpips(cfg: EvalConfig, device, *, quiet: bool):
    """The LPIPS network, None when switched off, or the reason it is unavailable (a string, logged once)."""
    if cfg.lpips_net == "none":
        return None
    try:
        return metrics.load_lpips(cfg.lpips_net, cfg.lpips_weights, device)
    except metrics.MetricUnavailable as exc:
        if not quiet:
            log(str(exc))
        return str(exc)

def _check_tasks(cfg: EvalConfig, paths: list[Path], size) -> None:
    """Build and apply each task's operator once per image size, so bad sizes (and solvers that
    refuse an operator) fail before any work."""
    from PIL import Image

    from inversa.operators import make_preset

    sizes = {(size, size)} if size else set()
    if not size:
        for p in paths:
            with Image.open(p) as img:
                sizes.add((img.height, img.width))
    from inversa.solvers import SOLVERS

    for task in cfg.tasks:
        for h, w in sorted(sizes):
            op = make_preset(task, image_size=(h, w), index=0, seed=cfg.seeds[0])
            op.measure(torch.zeros(1, 3, h, w))
            for name in cfg.solvers:  # a solver that refuses an operator refuses before any work, not mid-run
                if getattr(SOLVERS.get(name), "needs_svd", False) and not op.has_svd:
                    raise UserError(f"solver {name} needs an operator with a closed-form SVD and task {task} "
                                    f"({op.describe()}) has none; evaluate it on: {op.SVD_OPERATORS}")


def merge(out: str | os.PathLike, *, fid_feature=None, progress: bool = False) -> dict:
    """Build summary.csv, summary.md, report.html and run.json from all rows of a run folder."""
    from inversa.eval import report

    out = Path(out).expanduser()
    saved = imageio.read_json(out / "config.json")
    if not isinstance(saved, dict):
        raise UserError(f"{str(out)!r} is not an evaluation run folder (no config.json)")
    cfg = EvalConfig.from_mapping(saved["config"])
    items = make_items(saved["images"], cfg)
    rows, missing = [], []
    for item in items:
        row = load_row(out, item)
        (rows.append(row) if row is not None else missing.append(item.key))
    return report.write_reports(out, cfg, saved, rows, missing, fid_feature=fid_feature, progress=progress)


def main_cli(args) -> int:
    """`inversa eval ...` (argparse namespace from inversa.cli)."""
    values = read_config_file(args.config) if args.config else {}
    cli = {k: getattr(args, k) for k in ("data", "out", "tasks", "solvers", "seeds", "steps", "model", "lpips_net",
                                          "lpips_weights", "limit", "size", "device", "batch_size")}
    values.update({k: v for k, v in cli.items() if v is not None})
    if args.no_fid:
        values["fid"] = False
    if args.merge:
        cfg = EvalConfig.from_mapping(values)
        cfg.require("out")
        paths = merge(cfg.out)
    else:
        result = run_eval(values, progress=getattr(args, "progress", True),
                          num_shards=as_int(args.num_shards, "--num-shards", 1),
                          shard_index=as_int(args.shard_index, "--shard-index", 0))
        paths = result["merged"]
    if paths:
        print(Path(paths["markdown"]).read_text(encoding="utf-8"))
        print(f"report: {paths['html']}")
    return 0
