"""The settings of an evaluation run, from the command line and/or a JSON or TOML file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from inversa.errors import UserError

# Settings whose change makes earlier rows of a run folder incomparable (checked on resume).
FROZEN = ("data", "model", "size", "lpips_net", "solver_params")


@dataclass
class EvalConfig:
    data: str | None = None
    out: str | None = None
    tasks: list[str] = field(default_factory=list)
    solvers: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: list[int] = field(default_factory=lambda: [50])
    model: str | None = None
    lpips_net: str = "alex"  # "alex", "vgg" or "none"
    lpips_weights: str | None = None
    limit: int | None = None
    size: int | None = None
    device: str | None = None
    solver_params: dict = field(default_factory=dict)  # {"dps": {"scale": 0.3}, ...}
    fid: bool = True
    grid_images: int = 4
    batch_size: int = 1  # images restored together (same task, solver, steps, seed): throughput only

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: dict) -> EvalConfig:
        """Checked, normalised settings; `values` may use dashes or underscores and comma strings for lists."""
        names = {f.name for f in fields(cls)}
        clean = {}
        for key, value in values.items():
            k = key.replace("-", "_")
            if k not in names:
                raise UserError(f"unknown setting {key!r}; accepted: {', '.join(sorted(names))}")
            if value is not None:
                clean[k] = value
        cfg = cls(**clean)
        cfg.tasks = _str_list(cfg.tasks, "tasks")
        cfg.solvers = [s.lower().replace("_", "-") for s in _str_list(cfg.solvers, "solvers")]
        cfg.seeds = _int_list(cfg.seeds, "seeds", minimum=0)
        cfg.steps = _int_list(cfg.steps, "steps", minimum=1)
        for name, minimum in (("limit", 1), ("size", 8), ("grid_images", 0), ("batch_size", 1)):
            setattr(cfg, name, as_int(getattr(cfg, name), name, minimum))
        if cfg.lpips_net not in ("alex", "vgg", "none"):
            raise UserError(f"lpips_net must be alex, vgg or none, got {cfg.lpips_net!r}")
        if not isinstance(cfg.solver_params, dict) or not all(isinstance(v, dict) for v in cfg.solver_params.values()):
            raise UserError("solver_params must map solver names to tables of parameters, e.g. {\"dps\": {\"scale\": 0.3}}")
        cfg.solver_params = {k.lower().replace("_", "-"): v for k, v in cfg.solver_params.items()}
        if not isinstance(cfg.fid, bool):
            raise UserError(f"fid must be true or false, got {cfg.fid!r}")
        return cfg

    def require(self, *names: str) -> None:
        for name in names:
            if not getattr(self, name):
                raise UserError(f"--{name} is required (on the command line or in --config)")


def as_int(value, what: str, minimum: int) -> int | None:
    """None, an int or a string of digits, checked against `minimum`."""
    if value is None:
        return None
    try:
        v = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    except ValueError:
        v = None
    if v is None or v < minimum:
        raise UserError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return v


def _str_list(value, what: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
        raise UserError(f"{what} must be a comma-separated list of names, got {value!r}")
    return list(dict.fromkeys(s.strip() for s in items if s.strip()))


def _int_list(value, what: str, minimum: int) -> list[int]:
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else value
    try:
        out = [int(str(s).strip()) for s in items if str(s).strip()]
    except (TypeError, ValueError):
        out = None
    if not out or any(v < minimum for v in out):
        raise UserError(f"{what} must be comma-separated integers >= {minimum}, got {value!r}")
    return list(dict.fromkeys(out))


def read_config_file(path: str) -> dict:
    """The settings in a JSON or TOML file (by suffix; other suffixes are tried as JSON, then TOML)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read config file {str(p)!r}: {exc.strerror or exc}") from None
    errors = []
    for kind in (["toml"] if p.suffix == ".toml" else ["json"] if p.suffix == ".json" else ["json", "toml"]):
        try:
            data = json.loads(text) if kind == "json" else _toml().loads(text)
        except ValueError as exc:  # both json's and tomllib's errors are ValueErrors
            errors.append(f"{kind}: {str(exc).splitlines()[0]}")
            continue
        if not isinstance(data, dict):
            raise UserError(f"config file {str(p)!r} must hold a table of settings")
        return data
    raise UserError(f"config file {str(p)!r} is not valid JSON or TOML ({'; '.join(errors)})")


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UserError("TOML config files need Python 3.11+ or the tomli package; use JSON instead") from None
    return tomllib
