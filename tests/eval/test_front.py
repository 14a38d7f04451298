"""The Pareto front and the time-to-quality match that bench/time_to_quality.py prints."""

from __future__ import annotations

from inversa.eval.front import at_least, fastest_at_least, pareto_front


def pt(name, seconds, psnr, lpips):
    return {"config": name, "seconds": seconds, "psnr": psnr, "lpips": lpips}


POINTS = [pt("a", 1.0, 20.0, 0.30), pt("b", 2.0, 22.0, 0.20), pt("c", 3.0, 21.0, 0.10),
          pt("d", 4.0, 23.0, 0.25), pt("e", 2.0, 19.0, 0.40), pt("f", 0.5, 18.0, 0.50)]


def test_pareto_front_keeps_only_undominated_points_cheapest_first():
    assert [p["config"] for p in pareto_front(POINTS, "psnr")] == ["f", "a", "b", "d"]
    assert [p["config"] for p in pareto_front(POINTS, "lpips")] == ["f", "a", "b", "c"]
    # brute force: a point is on the front iff no other point is at least as cheap and strictly better
    for metric, sign in (("psnr", 1), ("lpips", -1)):
        front = {p["config"] for p in pareto_front(POINTS, metric)}
        for p in POINTS:
            dominated = any(q is not p and q["seconds"] <= p["seconds"] and sign * q[metric] > sign * p[metric]
                            for q in POINTS)
            assert (p["config"] in front) == (not dominated)


def test_pareto_front_of_ties_keeps_one():
    same = [pt("x", 1.0, 20.0, 0.2), pt("y", 1.0, 20.0, 0.2)]
    assert [p["config"] for p in pareto_front(same, "psnr")] == ["x"]


def test_fastest_at_least_needs_every_metric():
    ref = pt("ref", 10.0, 21.0, 0.25)
    assert at_least(POINTS[1], ref, ("psnr", "lpips")) and not at_least(POINTS[0], ref, ("psnr", "lpips"))
    assert fastest_at_least(POINTS, ref)["config"] == "b"  # c is better in LPIPS only, d slower
    assert fastest_at_least(POINTS, ref, ("lpips",))["config"] == "b"
    assert fastest_at_least(POINTS, pt("ref", 1.0, 30.0, 0.0)) is None
