"""A seeded regression slice: record the outputs of every solver on every preset, one `inversa train`
run and one `inversa distill` run, then compare a later tree against the record.

    python bench/regression.py record runs/regression/before.safetensors
    python bench/regression.py compare runs/regression/before.safetensors   # after a refactor

It uses only the public API (`inversa.load_prior`, `make_preset`, `make_solver`, `SOLVERS`) and the
CLI, so it runs unchanged across a change of the package layout. Outputs: the bundled photo prior at
32², two images, 5 steps, seeds per image; the train run is 3 steps of a tiny UNet on the skimage photos
(fp32 export); the distill run is 2 images per class of 2 classes with IGDS, 3 steps. `compare` prints
the largest absolute difference per entry and exits 1 when any exceeds --atol (default 0: torch.equal).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

SIZE, STEPS = 32, 5
BASES_FOR_CMI = ("dps", "ca-dps")


def _photos() -> torch.Tensor:
    import inversa

    x = inversa.demo_image(SIZE)
    return torch.cat([x, x.flip(-1)])  # two different images


def solver_outputs() -> dict[str, torch.Tensor]:
    import inversa
    from inversa.solvers.registry import solver_names

    torch.set_num_threads(1)
    prior = inversa.load_prior("inversa-photo-64")
    x = _photos()
    out = {}
    names = [n for n in solver_names("pixel") if n != "naive"] + [f"cmi-dps+{b}" for b in BASES_FOR_CMI]
    for preset in inversa.PRESETS:
        op = inversa.make_preset(preset, SIZE, index=[0, 1], seed=0)
        y = op.measure(x, generator=[torch.Generator().manual_seed(10 + i) for i in range(2)])
        out[f"y/{preset}"] = y
        for name in names:
            kw = {"base": name.split("+")[1]} if name.startswith("cmi-dps+") else {}
            solver = inversa.make_solver(name.split("+")[0], prior, **kw)
            gens = [torch.Generator().manual_seed(i) for i in range(2)]
            try:
                res = solver(y, op, generator=gens, num_steps=STEPS, progress=False)
            except inversa.UserError:  # e.g. DDRM on reflect-padded blur: the refusal itself is recorded
                out[f"{name}/{preset}/refused"] = torch.ones(1)
                continue
            out[f"{name}/{preset}"] = res.x.detach().float().contiguous()
            out[f"{name}/{preset}/counts"] = torch.tensor([res.nfe, res.vjp])
    return out


def _run(argv: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "inversa", *argv], check=True, stdout=subprocess.DEVNULL)


def cli_outputs(work: Path) -> dict[str, torch.Tensor]:
    out = {}
    _run(["train", "--data", "skimage", "-o", str(work / "model"), "--size", "16", "--steps", "3", "--batch-size", "2",
          "--channels", "8,16", "--checkpoint-every", "3", "--eval-every", "3", "--fp32", "--threads", "1", "-q"])
    weights = next((work / "model").rglob("*.safetensors"))
    for k, v in sorted(load_file(weights).items()):
        out[f"train/{k}"] = v.float()
    _run(["distill", "--model", "inversa-fashion-32", "--classifier", "inversa-fashion-classifier", "--ipc", "2",
          "--classes", "0,1", "--steps", "3", "--batch-size", "2", "--threads", "1", "-o", str(work / "distilled"), "-q"])
    for p in sorted((work / "distilled").rglob("*.png")):
        out[f"distill/{p.relative_to(work / 'distilled')}"] = torch.from_numpy(np.array(Image.open(p))).float()
    return out


def record() -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory() as d:
        return {**solver_outputs(), **cli_outputs(Path(d))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["record", "compare"])
    ap.add_argument("file")
    ap.add_argument("--atol", type=float, default=0.0)
    a = ap.parse_args()
    now = record()
    if a.mode == "record":
        Path(a.file).parent.mkdir(parents=True, exist_ok=True)
        save_file(now, a.file)
        print(f"recorded {len(now)} entries in {a.file}")
        return 0
    before = load_file(a.file)
    bad, new = 0, sorted(set(now) - set(before))  # entries of solvers registered after the record: listed, not compared
    for k in sorted(before):
        if k not in now:
            print(f"{k}: missing now")
            bad += 1
            continue
        d = (before[k].double() - now[k].double()).abs().max().item() if before[k].shape == now[k].shape else float("inf")
        if d > a.atol:
            print(f"{k}: max |diff| {d:.3g}")
            bad += 1
    if new:
        print(f"{len(new)} new entries (not in the record): {', '.join(new)}")
    print(f"{len(before)} entries compared, {bad} differ beyond atol={a.atol}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
