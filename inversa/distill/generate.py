"""`inversa distill`: generate a distilled training set (ImageFolder: DIR/<class_name>/<k>.png + metadata.json).

Seeded and resumable. Image k of class c starts from its own generator seeded by (seed, c, k), and
images are generated in fixed per-class chunks [j*B, (j+1)*B), so a chunk's arithmetic (and the PNG
bytes) never depend on what an earlier, interrupted run managed to write. Files are written
atomically (temporary name + rename): a rerun of the same command skips complete chunks, regenerates
the others, and never duplicates or loses an image.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from inversa.errors import UserError
from inversa.imageio import atomic_write_json, save_image

METHODS = ("igds", "unguided")
METADATA = "metadata.json"
# Settings that change the images: a rerun with other values must not mix two sets in one folder.
_SET_KEYS = ("model", "classifier", "method", "ipc", "classes", "seed", "steps", "batch_size", "cfg_scale", "sampler",
             "params", "real_data")


def image_seed(seed: int, c: int, k: int) -> int:
    """The seed of image k of class c: a hash of (seed, c, k) alone."""
    return int(np.random.SeedSequence([seed, c, k]).generate_state(1, np.uint64)[0] & (2**63 - 1))


def parse_classes(spec, class_names: list[str]) -> list[int]:
    """None -> all; otherwise names or indices (comma-separated string or list)."""
    if spec is None or spec == "" or spec == "all":
        return list(range(len(class_names)))
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
    out = []
    for it in items:
        if it in class_names:
            out.append(class_names.index(it))
        elif it.isdigit() and int(it) < len(class_names):
            out.append(int(it))
        else:
            raise UserError(f"--classes: {it!r} is not a class of this model; accepted: names "
                            f"{', '.join(class_names)} or indices 0-{len(class_names) - 1}")
    if len(set(out)) != len(out):
        raise UserError(f"--classes {spec!r} names a class twice")
    return out


def real_images(real_data: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Real training images for the centroids: 'fashion-mnist' or an ImageFolder path."""
    if real_data == "fashion-mnist":
        from inversa.distill.data import CLASSES, load_fashion_mnist

        x, y = load_fashion_mnist("train")
        return x, y, list(CLASSES)
    from inversa.distill.data import load_image_folder

    return load_image_folder(real_data)


def distill(model: str, output: str | Path, *, ipc: int, classifier: str | None = None, classes=None,
            method: str = "igds", seed: int = 0, steps: int = 50, batch_size: int = 10, cfg_scale: float = 1.0,
            sampler: str = "ddpm", params: dict | None = None, real_data: str = "fashion-mnist",
            max_images: int | None = None, device: str = "cpu", progress: bool = True) -> dict:
    """Write IPC images per class to `output`; returns the metadata dict.

    `params`: IGDS parameters (scale, beta, beta0, beta_schedule, window). `max_images`: stop after
    writing this many new images (a controlled interruption; rerun to finish)."""
    from inversa.pretrained.conditional import load_conditional_prior

    params = _check_arguments(method, ipc, steps, batch_size, classifier, params)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {str(out)!r} exists and is not a folder")

    started, t_load = time.strftime("%Y-%m-%dT%H:%M:%S"), time.perf_counter()
    prior = load_conditional_prior(model, cfg_scale=cfg_scale, device=device)
    class_ids = parse_classes(classes, prior.class_names)
    solver, centroid_file = _make_solver(method, prior, model=model, classifier=classifier, ipc=ipc, sampler=sampler,
                                         params=params, real_data=real_data, device=device)
    load_seconds = time.perf_counter() - t_load

    settings = dict(model=model, classifier=classifier if method == "igds" else None, method=method, ipc=ipc,
                    classes=[prior.class_names[c] for c in class_ids], seed=seed, steps=steps, batch_size=batch_size,
                    cfg_scale=cfg_scale, sampler=sampler, params=solver.params(),
                    real_data=real_data if method == "igds" else None)
    meta = _open_set(out, settings, prior, solver, centroid_file)
    chunks = [(c, list(range(j, min(j + batch_size, ipc)))) for c in class_ids for j in range(0, ipc, batch_size)]
    files = {(c, tuple(ks)): [out / prior.class_names[c] / f"{k:04d}.png" for k in ks] for c, ks in chunks}
    t0, run = time.perf_counter(), {"written": 0, "generate_seconds": 0.0}
    try:
        _generate(solver, chunks, files, seed=seed, steps=steps, max_images=max_images, run=run,
                  desc=f"distill {method}", progress=progress)
    finally:
        meta["runs"].append(dict(started=started, images_written=run["written"], load_seconds=round(load_seconds, 2),
                                 generate_seconds=round(run["generate_seconds"], 2),
                                 seconds=round(time.perf_counter() - t0 + load_seconds, 2),
                                 torch_threads=torch.get_num_threads(), device=str(device)))
        meta["complete"] = all(p.exists() for paths in files.values() for p in paths)
        meta["images"] = sum(1 for paths in files.values() for p in paths if p.exists())
        meta["total_generate_seconds"] = round(sum(r["generate_seconds"] for r in meta["runs"]), 2)
        atomic_write_json(out / METADATA, meta, indent=2, sort_keys=False)
    return meta


def _check_arguments(method, ipc, steps, batch_size, classifier, params) -> dict:
    """The IGDS parameters as a dict, after one-line errors for anything `distill` cannot run with."""
    if method not in METHODS:
        raise UserError(f"--method {method!r} is not known; accepted: {', '.join(METHODS)}")
    for flag, v in (("--ipc", ipc), ("--steps", steps), ("--batch-size", batch_size)):
        if not isinstance(v, int) or v < 1:
            raise UserError(f"{flag} {v!r}: must be a positive integer")
    if method == "igds" and not classifier:
        raise UserError("--method igds needs --classifier (a bundled name such as inversa-fashion-classifier, or a folder)")
    params = dict(params or {})
    if method == "unguided" and params:
        raise UserError(f"--param {', '.join(params)}: the unguided method takes no parameters")
    return params


def _make_solver(method, prior, *, model, classifier, ipc, sampler, params, real_data, device):
    """(IGDS with the classifier and its cached class centroids, centroid file) or (the unguided sampler, None)."""
    from inversa.solvers.igds import IGDS, ConditionalSampler
    from inversa.solvers.params import declared_params

    if method != "igds":
        return ConditionalSampler(prior, sampler=sampler), None
    from inversa.distill.classifier import cached_centroids, load_classifier

    accepted = [p.name for p in declared_params(IGDS) if p.name != "sampler"]  # --sampler sets that one
    unknown = [k for k in params if k not in accepted]
    if unknown:
        raise UserError(f"--param {', '.join(unknown)}: not an IGDS parameter; accepted: {', '.join(accepted)}")
    clf = load_classifier(classifier, device=device)
    if clf.num_classes is not None and clf.num_classes != prior.num_classes:
        raise UserError(f"classifier {classifier} has {clf.num_classes} classes, model {model} has {prior.num_classes}")
    x_real, y_real, _ = real_images(real_data)
    Q, centroid_file = cached_centroids(clf, x_real, y_real, prior.num_classes)
    return IGDS(prior, clf, Q, ipc=ipc, sampler=sampler, **params), centroid_file


def _open_set(out: Path, settings: dict, prior, solver, centroid_file) -> dict:
    """The set's metadata, new or resumed (a folder made with other settings is refused), written out."""
    meta_path = out / METADATA
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta:
        old = meta.get("settings", {})
        diff = [k for k in _SET_KEYS if old.get(k) != settings[k]]
        if diff:
            raise UserError(f"{out} holds a distilled set made with other settings ({', '.join(f'{k}={old.get(k)!r}' for k in diff)}): "
                            "rerun with the same settings or use another -o")
    out.mkdir(parents=True, exist_ok=True)
    meta.setdefault("settings", settings)
    meta["model_source"] = prior.source
    meta["classifier_source"] = getattr(solver, "classifier", None) and solver.classifier.source
    meta["centroids_cache"] = str(centroid_file) if centroid_file else None
    meta["layout"] = "ImageFolder: <class_name>/<k:04d>.png, k = 0..ipc-1; image (c, k) seeded by image_seed(seed, c, k)"
    meta.setdefault("runs", [])
    atomic_write_json(meta_path, meta, indent=2, sort_keys=False)
    return meta


def _generate(solver, chunks, files, *, seed, steps, max_images, run: dict, desc: str, progress: bool) -> None:
    """Generate the chunks not yet complete on disk, writing each missing PNG; `run` counts images
    written and generation seconds (kept when interrupted); stops after `max_images` new images."""
    from tqdm.auto import tqdm

    total = sum(len(ks) for _, ks in chunks)
    todo = [(c, ks) for c, ks in chunks if not all(p.exists() for p in files[c, tuple(ks)])]
    bar = tqdm(total=total, initial=total - sum(len(ks) for _, ks in todo), desc=desc, disable=not progress, unit="img")
    try:
        for c, ks in todo:
            if max_images is not None and run["written"] >= max_images:
                return
            gens = [torch.Generator().manual_seed(image_seed(seed, c, k)) for k in ks]
            t1 = time.perf_counter()
            res = solver.generate([c] * len(ks), generator=gens, num_steps=steps, progress=False)
            run["generate_seconds"] += time.perf_counter() - t1
            for x, path in zip(res.x, files[c, tuple(ks)]):
                if max_images is not None and run["written"] >= max_images:
                    return
                if not path.exists():
                    save_image(x, path)  # makes the class folder
                    run["written"] += 1
            bar.update(len(ks))
    finally:
        bar.close()
