"""Quality presets: the solver, step count and parameters `restore()` uses for a task when no
solver is named.

    from inversa.quality import setting
    s = setting("balanced", "sr")      # Setting(solver=..., steps=..., params={...}, seconds=...)

Three presets per restoration task (inpaint, deblur, sr, denoise): `fast`, `balanced` (the
default of `inversa restore`, the web UI and `restore()`) and `best`. Each was chosen on the held-out
crops of the training split (`bench/tune.py`, never on evaluation photos) and confirmed on the FFHQ
sample with `bench/defaults.py`; docs/quality.md ("Quality presets") holds both tables and the
commands. `seconds` is the measured wall time per 256x256 photo on 2 CPU cores with the bundled prior,
shown to users beside the preset's name (it grows with the photo's pixels and with `samples`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inversa.errors import UserError

QUALITIES = ("fast", "balanced", "best")
DEFAULT_QUALITY = "balanced"
TASK_OF_PRESET = {"sr4": "sr", "box_inpaint": "inpaint", "random_inpaint": "inpaint", "gaussian_deblur": "deblur",
                  "motion_deblur": "deblur", "denoise": "denoise"}


@dataclass(frozen=True)
class Setting:
    """One preset for one task: `solver` run for `steps` with `params` (a warm `start` runs only the
    last `start` fraction of them); `seconds` per 256² photo on 2 CPU cores, measured."""

    solver: str
    steps: int
    params: dict = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params.items())
        return f"{self.solver}, {self.steps} steps{extra}"


PRESETS: dict[str, dict[str, Setting]] = {
    "fast": {
        "inpaint": Setting("dps", 25, {"start": 0.2}, 1.1),
        "deblur": Setting("pigdm", 25, {"start": 0.2}, 2.0),
        "sr": Setting("pigdm", 25, {"start": 0.2}, 1.0),
        "denoise": Setting("c-dps", 25, {"start": 0.3}, 1.2),
    },
    "balanced": {
        "inpaint": Setting("dps", 25, {"start": 0.2}, 1.1),
        "deblur": Setting("pigdm", 50, {"start": 0.2}, 3.8),
        "sr": Setting("pigdm", 25, {"start": 0.2}, 1.0),
        "denoise": Setting("c-dps", 50, {"start": 0.3}, 2.3),
    },
    "best": {
        "inpaint": Setting("dps", 25, {"start": 0.2}, 1.1),
        "deblur": Setting("pigdm", 50, {"start": 0.4}, 8.4),
        "sr": Setting("pigdm", 50, {"start": 0.4}, 4.1),
        "denoise": Setting("c-dps", 50, {"start": 0.3}, 2.3),
    },
}


def check_quality(quality) -> str:
    """`quality` lower-cased, or one UserError line naming it and the accepted values."""
    q = str(quality).strip().lower()
    if q not in QUALITIES:
        raise UserError(f"unknown quality {quality!r}; accepted: {', '.join(QUALITIES)}")
    return q


def setting(quality: str, task: str) -> Setting:
    """The preset `quality` for `task` (a restoration task or a benchmark preset's name)."""
    q = check_quality(quality)
    t = TASK_OF_PRESET.get(task, task)
    if t not in PRESETS[q]:
        raise UserError(f"unknown task {task!r}; accepted: {', '.join(PRESETS[q])} (or a preset: {', '.join(TASK_OF_PRESET)})")
    return PRESETS[q][t]


def seconds_range(quality: str) -> str:
    """'1.3 s' or '2.5-5 s': the preset's measured time per 256² photo over the tasks."""
    secs = sorted({s.seconds for s in PRESETS[check_quality(quality)].values()})
    fmt = lambda v: f"{v:.2g}"  # noqa: E731
    return f"{fmt(secs[0])} s" if len(secs) == 1 else f"{fmt(secs[0])}-{fmt(secs[-1])} s"


def quality_help() -> str:
    """One line per preset for `--help` and the web UI: what it runs per task and its time."""
    lines = []
    for q in QUALITIES:
        tasks = "; ".join(f"{t}: {s.describe()}" for t, s in PRESETS[q].items())
        lines.append(f"{q} (about {seconds_range(q)} per 256² photo on 2 CPU cores) — {tasks}")
    return "\n".join(lines)
