"""Tables and the HTML report of an evaluation run, built from its rows (see `evaluate`).

The summary has one line per (task, solver, steps): mean over all rows, and a std that the tables
name: over seeds (std of the per-seed means, the run-to-run drift peers report) when there are
several seeds, else over images. FID/KID are computed per seed over the whole image set.
"""

from __future__ import annotations

import csv
import html
import io
import math
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from inversa import imageio
from inversa.eval import metrics

METRICS = (  # name, label, higher is better, decimals
    ("psnr", "PSNR (dB)", True, 2),
    ("ssim", "SSIM", True, 4),
    ("lpips", "LPIPS", False, 4),
    ("fid", "FID", False, 2),
    ("kid", "KID", False, 4),
)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _mean_std(values_by_seed: dict[int, list[float]]) -> tuple[float | None, float | None, str]:
    """(mean over all values, std, what the std is over)."""
    values = [v for vs in values_by_seed.values() for v in vs]
    if not values:
        return None, None, ""
    mean = statistics.fmean(values)
    if len(values_by_seed) >= 2:
        per_seed = [statistics.fmean(vs) for vs in values_by_seed.values() if vs]
        return mean, statistics.stdev(per_seed) if len(per_seed) >= 2 else None, "seeds"
    return mean, statistics.stdev(values) if len(values) >= 2 else None, "images"


def summarize(rows: list[dict], set_scores: dict | None = None) -> list[dict]:
    """One dict per (task, solver, steps), in the order of `rows` (the run's item order)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["solver"], r["steps"])].append(r)
    out = []
    for (task, solver, steps), rs in groups.items():
        line = {"task": task, "solver": solver, "steps": steps, "rows": len(rs),
                "images": len({r["image"] for r in rs}), "seeds": len({r["seed"] for r in rs}),
                "nfe": statistics.fmean(r["nfe"] for r in rs), "vjp": statistics.fmean(r["vjp"] for r in rs),
                "wall_s": statistics.fmean(r["wall_s"] for r in rs)}
        for name in ("psnr", "ssim", "lpips"):
            by_seed = defaultdict(list)
            for r in rs:
                if r.get(name) is not None:
                    by_seed[r["seed"]].append(r[name])
            line[f"{name}_mean"], line[f"{name}_std"], over = _mean_std(by_seed)
            line["std_over"] = line.get("std_over") or over
        scores = (set_scores or {}).get((task, solver, steps), {})
        for name, key in (("fid", "fid"), ("kid", "kid_mean")):
            by_seed = {s: [v[key]] for s, v in scores.items()}
            line[f"{name}_mean"], line[f"{name}_std"], _ = _mean_std(by_seed)
        out.append(line)
    return out


def _batched(paths: list[Path], batch: int = 16):
    """Stacks of images loaded from PNG; images of different sizes go in different stacks."""
    chunk: list[torch.Tensor] = []
    for p in paths:
        x = imageio.load_image_square(p)
        if chunk and (x.shape != chunk[0].shape or len(chunk) == batch):
            yield torch.cat(chunk)
            chunk = []
        chunk.append(x)
    if chunk:
        yield torch.cat(chunk)


def set_scores(out: Path, rows: list[dict], feature=None, progress=False) -> tuple[dict, str | None, str | None]:
    """({(task, solver, steps): {seed: fid/kid dict}}, feature name, unavailable reason)."""
    clean = sorted({r["files"]["clean"] for r in rows})
    try:
        sm = metrics.SetMetrics(_batched([out / c for c in clean]), feature=feature)
    except metrics.MetricUnavailable as exc:
        return {}, None, str(exc)
    groups: dict[tuple, list[Path]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["solver"], r["steps"], r["seed"])].append(out / r["files"]["restoration"])
    scores: dict[tuple, dict] = defaultdict(dict)
    from tqdm.auto import tqdm

    for (task, solver, steps, seed), paths in tqdm(sorted(groups.items()), desc="FID", disable=not progress):
        try:
            scores[(task, solver, steps)][seed] = sm(_batched(sorted(paths)))
        except metrics.MetricUnavailable as exc:
            return {}, sm.feature_name, str(exc)
    return dict(scores), sm.feature_name, None


def _fmt(mean, std, decimals: int) -> str:
    if mean is None:
        return "n/a"
    s = f"{mean:.{decimals}f}"
    return s + (f" ± {std:.{decimals}f}" if std is not None and math.isfinite(std) else "")


def _columns(summary: list[dict], lpips_label: str) -> list[tuple[str, str, int]]:
    cols = []
    for name, label, higher, dec in METRICS:
        if any(line[f"{name}_mean"] is not None for line in summary):
            label = lpips_label if name == "lpips" else label
            cols.append((name, f"{label} {'↑' if higher else '↓'}", dec))
    return cols


CSV_FIELDS = ("task", "solver", "steps", "nfe", "vjp", "rows", "images", "seeds", "std_over",
              *[f"{m}_{s}" for m, *_ in METRICS for s in ("mean", "std")], "wall_s")


def to_csv(summary: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for line in summary:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in line.items()})
    return buf.getvalue()


def _notes(info: dict) -> list[str]:
    n = info["n_seeds"]
    notes = [
        f"{info['n_images']} images ({info['sizes']}) × {len(info['tasks'])} tasks, seeds {', '.join(map(str, info['seeds']))}; "
        + ("± is the std over seeds of the per-seed means." if n >= 2 else "± is the std over images (one seed)."),
        f"LPIPS: {info['lpips']}.",
        f"FID/KID: {info['fid']}.",
        f"σ_y: {info['sigma']}.",
    ]
    if info["model"]:
        notes.append(f"Model: {info['model']}.")
    if info["skipped"]:
        notes.append(f"Skipped {len(info['skipped'])} non-image file(s) in the data folder: {', '.join(info['skipped'])}.")
    if info["missing"]:
        notes.append(f"INCOMPLETE: {info['missing']} item(s) have no result yet; rerun the command to finish.")
    return notes


def to_markdown(summary: list[dict], info: dict) -> str:
    cols = _columns(summary, info["lpips_label"])
    head = ["task", "solver", "steps", "NFE", "VJP", *[c[1] for c in cols], "s/item"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in summary:
        cells = [line["task"], line["solver"], str(line["steps"]), f"{line['nfe']:g}", f"{line['vjp']:g}",
                 *[_fmt(line[f"{c[0]}_mean"], line[f"{c[0]}_std"], c[2]) for c in cols], f"{line['wall_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(["# Evaluation summary", "", *lines, "", *[f"- {n}" for n in _notes(info)], ""])


def svg_plot(series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, width=360, height=240) -> str:
    """A small line plot: one polyline (with dots) per series."""
    pts = [p for ps in series.values() for p in ps]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-3)
    ml, mr, mt, mb = 52, 110, 12, 36
    sx = lambda x: ml + (x - x0) / (x1 - x0) * (width - ml - mr)  # noqa: E731
    sy = lambda y: height - mb - (y - y0) / (y1 - y0) * (height - mt - mb)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="10" font-family="sans-serif">',
             f'<rect x="{ml}" y="{mt}" width="{width - ml - mr}" height="{height - mt - mb}" fill="none" stroke="#999"/>']
    for v, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text x="{sx(v):.1f}" y="{height - mb + 12}" text-anchor="{anchor}">{v:g}</text>')
    for v in (y0, y1):
        parts.append(f'<text x="{ml - 4}" y="{sy(v) + 3:.1f}" text-anchor="end">{v:.4g}</text>')
    parts.append(f'<text x="{(ml + width - mr) / 2:.0f}" y="{height - 6}" text-anchor="middle">{html.escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{(mt + height - mb) / 2:.0f}" text-anchor="middle" transform="rotate(-90 12 {(mt + height - mb) / 2:.0f})">{html.escape(ylabel)}</text>')
    for i, (name, ps) in enumerate(series.items()):
        c = PALETTE[i % len(PALETTE)]
        ps = sorted(ps)
        if len(ps) == 1:  # a single step count (the naive baseline): a reference line across the plot
            y = sy(ps[0][1])
            parts.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{width - mr}" y2="{y:.1f}" stroke="{c}" stroke-dasharray="4 3"/>')
        else:
            parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" '
                         f'points="{" ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)}"/>')
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{c}"/>' for x, y in ps]
        ly = mt + 10 + 14 * i
        parts.append(f'<line x1="{width - mr + 8}" y1="{ly - 3}" x2="{width - mr + 22}" y2="{ly - 3}" stroke="{c}" stroke-width="2"/>'
                     f'<text x="{width - mr + 26}" y="{ly}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(summary: list[dict], rows: list[dict], cfg, info: dict, meta: dict) -> str:
    e = html.escape
    cols = _columns(summary, info["lpips_label"])
    body = ["<h1>inversa evaluation</h1>", "<ul>" + "".join(f"<li>{e(n)}</li>" for n in _notes(info)) + "</ul>",
            '<p>Files: <a href="summary.csv">summary.csv</a> · <a href="summary.md">summary.md</a> · '
            '<a href="run.json">run.json</a> (metadata) · rows/ (one JSON per item)</p>', "<h2>Summary</h2>"]
    head = ["task", "solver", "steps", "NFE", "VJP", *[c[1] for c in cols], "s/item"]
    table = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for line in summary:
        cells = [line["task"], line["solver"], line["steps"], f"{line['nfe']:g}", f"{line['vjp']:g}",
                 *[_fmt(line[f"{c[0]}_mean"], line[f"{c[0]}_std"], c[2]) for c in cols], f"{line['wall_s']:.2f}"]
        table.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    body.append("".join(table) + "</table>")

    by_key = {(r["task"], r["solver"], r["steps"], r["seed"], r["image"]): r for r in rows}
    images = sorted({r["image"] for r in rows}, key=lambda n: min(r["image_index"] for r in rows if r["image"] == n))
    steps_for = {s: (0 if s == "naive" else max(cfg.steps)) for s in cfg.solvers}
    seed = cfg.seeds[0]
    for task in cfg.tasks:
        body.append(f"<h2>{e(task)}</h2>")
        trs = [line for line in summary if line["task"] == task]
        if len(cfg.steps) > 1:
            for name, label, _, _ in METRICS[:3]:
                series = {line["solver"]: [] for line in trs}
                for line in trs:
                    if line[f"{name}_mean"] is not None:
                        series[line["solver"]].append((line["nfe"], line[f"{name}_mean"]))
                series = {k: v for k, v in series.items() if v}
                if series:
                    body.append(svg_plot(series, "NFE", info["lpips_label"] if name == "lpips" else label))
        shown = images[: cfg.grid_images]
        if not shown:
            continue
        grid = ["<table class=grid><tr><th>clean</th><th>measurement</th>" +
                "".join(f"<th>{e(s)}" + (f" ({steps_for[s]} steps)" if steps_for[s] else "") + "</th>" for s in cfg.solvers) + "</tr>"]
        for name in shown:
            first = next((r for s in cfg.solvers if (r := by_key.get((task, s, steps_for[s], seed, name)))), None)
            if first is None:
                continue
            cells = [f'<td><img src="{e(first["files"]["clean"])}"><br>{e(name)}</td>',
                     f'<td><img src="{e(first["files"]["measurement"])}"></td>']
            for s in cfg.solvers:
                r = by_key.get((task, s, steps_for[s], seed, name))
                if r is None:
                    cells.append("<td>missing</td>")
                    continue
                cap = f"{r['psnr']:.2f} dB" + (f" · LPIPS {r['lpips']:.3f}" if r.get("lpips") is not None else "")
                cells.append(f'<td><img src="{e(r["files"]["restoration"])}"><br>{e(cap)}</td>')
            grid.append("<tr>" + "".join(cells) + "</tr>")
        body.append("".join(grid) + f"</table><p class=small>seed {seed}</p>")
    body.append("<h2>Run metadata</h2><pre>" + e(_meta_text(meta)) + "</pre>")
    style = ("body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;text-align:center}"
             ".grid img{width:160px;image-rendering:pixelated}svg{margin:4px}.small{font-size:11px;color:#666}"
             "pre{font-size:11px;background:#f6f6f6;padding:8px;overflow:auto}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>inversa evaluation</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def _meta_text(meta: dict) -> str:
    import json

    brief = {k: v for k, v in meta.items() if k != "items"}
    return json.dumps(brief, indent=1, sort_keys=True, default=str)


def _distinct(values) -> list:
    seen = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return seen


def write_reports(out: Path, cfg, saved: dict, rows: list[dict], missing: list[str], *, fid_feature=None,
                  progress: bool = False) -> dict:
    """Write summary.csv, summary.md, report.html and run.json; returns their paths."""
    scores: dict = {}
    if missing:
        fid_text = "not computed: the run is incomplete"
    elif not cfg.fid:
        fid_text = "not computed (disabled)"
    else:
        scores, feature, reason = set_scores(out, rows, fid_feature, progress)
        fid_text = reason or f"{feature}, per seed over all {len(saved['images'])} images"
    summary = summarize(rows, scores)

    lpips_errors = _distinct(r.get("lpips_error") for r in rows)
    lpips_sources = _distinct(r.get("lpips_source") for r in rows)
    net = {"alex": "AlexNet", "vgg": "VGG16"}.get(cfg.lpips_net)
    if net is None:
        lpips_text = "not computed (lpips_net none)"
    else:
        lpips_text = f"v0.1, {net} backbone, inputs in [-1, 1]"
        if lpips_sources:
            lpips_text += f" (weights: {', '.join(lpips_sources)})"
        if lpips_errors:
            lpips_text += f"; missing on {sum(r.get('lpips') is None for r in rows)} row(s): {lpips_errors[0]}"
    models = _distinct(r.get("model") for r in rows)
    sigmas = {r["task"]: (r["sigma"], r["sigma_pm1"]) for r in rows}
    info = {
        "n_images": len(saved["images"]), "sizes": ", ".join(_distinct(f"{h}×{w}" for h, w in (r["image_size"] for r in rows))),
        "tasks": cfg.tasks, "seeds": cfg.seeds, "n_seeds": len(cfg.seeds),
        "lpips": lpips_text, "lpips_label": f"LPIPS-{cfg.lpips_net}",
        "fid": fid_text,
        "sigma": "; ".join(f"{t} {s:g} on [0, 1] = {p:g} on [-1, 1]" for t, (s, p) in sigmas.items()) or "n/a",
        "model": "; ".join(f"{m['name']} (sha256 {m['sha256'][:16]}…)" for m in models),
        "skipped": saved.get("skipped_files", []), "missing": len(missing),
    }
    envs = _distinct(r.get("env") for r in rows)
    meta = {
        "merged_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inversa": _distinct(e["inversa"] for e in envs), "git_commit": _distinct(e["commit"] for e in envs),
        "torch": _distinct(e["torch"] for e in envs), "python": _distinct(e["python"] for e in envs),
        "devices": _distinct(e["device"] for e in envs),
        "config": saved["config"], "settings": saved["settings"],
        "images": saved["images"], "skipped_files": info["skipped"],
        "models": models, "lpips": info["lpips"], "fid": info["fid"],
        "operators": {r["task"]: {k: v for k, v in r["operator"].items() if k != "index"} for r in rows},
        "sigma": {t: {"sigma_01": s, "sigma_pm1": p} for t, (s, p) in sigmas.items()},
        "seeds": cfg.seeds, "steps": cfg.steps,
        "solvers": {f"{r['solver']}@{r['steps']}": {k: v for k, v in r["solver_metadata"].items() if k != "seconds"} for r in rows},
        "rows": len(rows), "missing": missing,
        "wall_s_total": sum(r["wall_s"] for r in rows),
        "items": [{"key": r["key"], "wall_s": r["wall_s"], "item_s": r.get("item_s"), "nfe": r["nfe"], "vjp": r["vjp"],
                   "measurement_seed": r["measurement_seed"], "solver_seed": r["solver_seed"]} for r in rows],
        "set_scores": {f"{t}/{s}@{n}": v for (t, s, n), v in scores.items()},
    }
    paths = {"csv": out / "summary.csv", "markdown": out / "summary.md", "html": out / "report.html", "run": out / "run.json"}
    imageio.atomic_write_text(paths["csv"], to_csv(summary))
    imageio.atomic_write_text(paths["markdown"], to_markdown(summary, info))
    imageio.atomic_write_text(paths["html"], to_html(summary, rows, cfg, info, meta))
    imageio.atomic_write_json(paths["run"], meta)
    return {k: str(v) for k, v in paths.items()}
