"""Fashion-MNIST distillation table: student accuracy for random-real, unguided and IGDS at IPC 1/10/50.

    python bench/distill_table.py                      # the table in docs/distillation.md
    python bench/distill_table.py --archs convnet,resnet_ap10

Uses the bundled inversa-fashion-32 prior and inversa-fashion-classifier. Generates one unguided set
at the largest IPC (unguided images do not depend on the IPC, so IPC k is its first k images per
class) and one IGDS set per IPC (beta depends on the IPC), then trains the students. Resumable:
the sets and the per-student rows (OUT/rows.jsonl) are reused when rerun. Writes OUT/table.md and
OUT/summary.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inversa.distill.generate import distill  # noqa: E402
from inversa.distill import students as ed  # noqa: E402
from inversa.distill.data import load_image_folder  # noqa: E402


@torch.no_grad()
def agreement(folder: Path, ipc: int, classifier, classes: list[str]) -> float:
    """Fraction of the set's first IPC images per class that the guidance classifier assigns to their class."""
    x, y, _ = load_image_folder(folder, classes, ipc=ipc, channels=1)
    return (classifier(x).argmax(1) == y).float().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/distill_table")
    p.add_argument("--ipcs", default="1,10,50")
    p.add_argument("--seeds", default="0,1,2", help="student seeds (random-real also redraws its subset per seed)")
    p.add_argument("--archs", default="convnet")
    p.add_argument("--model", default="inversa-fashion-32")
    p.add_argument("--classifier", default="inversa-fashion-classifier")
    p.add_argument("--set-seed", type=int, default=0, help="seed of the generated sets")
    p.add_argument("--steps", type=int, default=30, help="sampling steps per image")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="IGDS parameter (see inversa distill)")
    p.add_argument("--iterations", type=int, default=200, help="student SGD iterations")
    p.add_argument("--batch-size", type=int, default=32, help="student batch size")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from inversa.cli import parse_params as _parse_params
    from inversa.distill.classifier import load_classifier

    params = _parse_params(a.param)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ipcs = [int(i) for i in a.ipcs.split(",")]
    seeds, archs = ed.parse_seeds(a.seeds), a.archs.split(",")
    t0 = time.time()
    common = dict(seed=a.set_seed, steps=a.steps, batch_size=10, progress=True)
    timings = {}
    t = time.time()
    distill(a.model, out / "sets" / "unguided", ipc=max(ipcs), method="unguided", **common)
    timings["generate_unguided_s"] = round(time.time() - t, 1)
    for ipc in ipcs:
        t = time.time()
        distill(a.model, out / "sets" / f"igds-ipc{ipc}", ipc=ipc, method="igds", classifier=a.classifier, params=params, **common)
        timings[f"generate_igds_ipc{ipc}_s"] = round(time.time() - t, 1)
    real = ed.real_data("fashion-mnist")
    clf = load_classifier(a.classifier)
    rows, agree = [], {}
    for ipc in ipcs:
        t = time.time()
        sets = {"unguided": out / "sets" / "unguided", "igds": out / "sets" / f"igds-ipc{ipc}"}
        rows += ed.evaluate_sets(sets, real, ipc=ipc, archs=archs, seeds=seeds, iterations=a.iterations,
                                 batch_size=a.batch_size, lr=a.lr, results_file=out / "rows.jsonl")
        timings[f"students_ipc{ipc}_s"] = round(time.time() - t, 1)
        for name, folder in sets.items():
            agree[f"{name}@{ipc}"] = agreement(folder, ipc, clf, real["classes"])
    summary = ed.summarize(rows)
    table = ed.format_table(summary)
    agree_table = "| set | " + " | ".join(f"IPC {i}" for i in ipcs) + " |\n|---|" + "---|" * len(ipcs) + "\n" + "\n".join(
        f"| {n} | " + " | ".join(f"{100 * agree[f'{n}@{i}']:.1f}" for i in ipcs) + " |" for n in ("unguided", "igds"))
    wall = round(time.time() - t0, 1)
    machine = dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(), torch_threads=a.threads,
                   torch=torch.__version__, python=platform.python_version())
    meta = dict(command="python bench/distill_table.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                settings=vars(a), machine=machine, wall_seconds=wall, timings=timings, summary=summary,
                guidance_classifier_agreement=agree,
                igds_params=json.loads((out / "sets" / f"igds-ipc{ipcs[-1]}" / "metadata.json").read_text())["settings"]["params"])
    (out / "summary.json").write_text(json.dumps(meta, indent=2))
    text = (f"{table}\n\nGuidance-classifier agreement on the generated sets (% of images classified as their class):\n\n"
            f"{agree_table}\n\nwall time {wall / 60:.1f} min ({json.dumps(timings)})\n")
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
