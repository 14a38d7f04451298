"""Time against quality over measured configurations: the Pareto front, and the fastest configuration
that is at least as good as a reference in every metric (bench/time_to_quality.py prints both).

A configuration is a dict with a cost (e.g. "seconds" per image) and metrics; `better` says, per
metric, whether higher ("psnr", "ssim") or lower ("lpips") is better.

    front = pareto_front(points, metric="psnr")                  # cheapest first
    best = fastest_at_least(points, deepinv_point, ("psnr", "lpips"))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from inversa.eval.report import METRICS

HIGHER_IS_BETTER = {name: higher for name, _, higher, _ in METRICS}


def at_least(point: dict, reference: dict, metrics: Sequence[str]) -> bool:
    """Whether `point` is as good as `reference` or better in every one of `metrics`."""
    for m in metrics:
        if HIGHER_IS_BETTER[m]:
            if point[m] < reference[m]:
                return False
        elif point[m] > reference[m]:
            return False
    return True


def pareto_front(points: Iterable[dict], metric: str = "psnr", cost: str = "seconds") -> list[dict]:
    """The points that no other point beats in both cost and `metric` (ties in both keep the first),
    sorted by cost: cost rises and the metric improves along the list."""
    key = (lambda p: -p[metric]) if HIGHER_IS_BETTER[metric] else (lambda p: p[metric])
    front: list[dict] = []
    for p in sorted(points, key=lambda p: (p[cost], key(p))):
        if not front or key(p) < key(front[-1]):
            front.append(p)
    return front


def fastest_at_least(points: Iterable[dict], reference: dict, metrics: Sequence[str] = ("psnr", "lpips"),
                     cost: str = "seconds") -> dict | None:
    """The cheapest point at least as good as `reference` in every metric; None when no point is."""
    good = [p for p in points if at_least(p, reference, metrics)]
    return min(good, key=lambda p: p[cost]) if good else None
