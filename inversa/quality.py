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
        "denoise": Setting("c-dps", 25, {"variant": "corrected", "start": 0.3}, 1.2),
    },
    "balanced": {
        "inpaint": Setting("dps", 25, {"start": 0.2}, 1.1),
        "deblur": Setting("pigdm", 50, {"start": 0.2}, 3.8),
        "sr": Setting("pigdm", 25, {"start": 0.2}, 1.0),
        "denoise": Setting("c-dps", 50, {"variant": "corrected", "start": 0.3}, 2.3),
    },
    "best": {
        "inpaint": Setting("dps", 25, {"start": 0.2}, 1.1),
        "deblur": Setting("pigdm", 50, {"start": 0.4}, 8.4),
        "sr": Setting("pigdm", 50, {"start": 0.4}, 4.1),
        "denoise": Setting("c-dps", 50, {"variant": "corrected", "start": 0.3}, 2.3),
    },
}


# Latent models (a UNet over autoencoder latents, `prior.kind == "latent"`): the pixel presets' solvers refuse
# them, so `restore()` takes these instead, the same for every task. LC-DPS, because on the linear-autoencoder
# oracle it samples the exact posterior (mean error <= 0.008, variance ratios 0.92-1.10 at 25 steps) where
# latent DPS and PSLD are over-concentrated (ratios 0.03-0.42 on inpainting) or biased (blur mean 0.10 off);
# tests/solvers/test_latent_oracle.py, docs/methods.md "LC-DPS". Step counts only: no latent model is
# bundled, so no time per photo has been measured (`seconds` stays 0: not shown).
LATENT_PRESETS: dict[str, Setting] = {
    "fast": Setting("lc-dps", 25),
    "balanced": Setting("lc-dps", 50),
    "best": Setting("lc-dps", 100),
}


def check_quality(quality) -> str:
    """`quality` lower-cased, or one UserError line naming it and the accepted values."""
    q = str(quality).strip().lower()
    if q not in QUALITIES:
        raise UserError(f"unknown quality {quality!r}; accepted: {', '.join(QUALITIES)}")
    return q


def setting(quality: str, task: str, kind: str = "pixel") -> Setting:
    """The preset `quality` for `task` (a restoration task or a benchmark preset's name), for a prior of
    `kind` ("pixel", or "latent": `LATENT_PRESETS`)."""
    q = check_quality(quality)
    t = TASK_OF_PRESET.get(task, task)
    if t not in PRESETS[q]:
        raise UserError(f"unknown task {task!r}; accepted: {', '.join(PRESETS[q])} (or a preset: {', '.join(TASK_OF_PRESET)})")
    return LATENT_PRESETS[q] if kind == "latent" else PRESETS[q][t]


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
    lines.append("latent models (a UNet over autoencoder latents), every task — "
                 + "; ".join(f"{q}: {s.describe()}" for q, s in LATENT_PRESETS.items()))
    return "\n".join(lines)
