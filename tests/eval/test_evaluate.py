"""The evaluator end to end on tiny images: tables, report, resume, sharding, bad input."""

import json
import re
import threading
from pathlib import Path

import pytest
import torch

from inversa.errors import UserError
from inversa.eval import evaluate as E

LPIPS_DIR = Path(__file__).resolve().parents[3] / "shared" / "weights" / "lpips"


def cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), tasks="sr4,box_inpaint", solvers="naive", seeds="0,1", lpips_net="none")
    return {**base, **kw}


def test_tables_report_and_metadata(data_dir, tmp_path, fake_solver, ev):
    out = tmp_path / "run"
    kw = dict(solvers="naive,fake", steps="2,4", solver_params={"fake": {"amp": 0.3}}, limit=2)
    if LPIPS_DIR.is_dir():
        kw.update(lpips_net="alex", lpips_weights=str(LPIPS_DIR))
    res = E.run_eval(cfg(data_dir, out, **kw), progress=False, fid_feature=ev.TinyFeatures())
    assert res["pending"] == 0 and res["merged"]
    rows = ev.rows(out)
    assert len(rows) == 2 * (1 + 2) * 2 * 2  # tasks x (naive + fake at 2 step counts) x seeds x images
    r = rows["sr4__fake__n4__seed1__img1"]
    assert (r["nfe"], r["vjp"], r["sigma"], r["sigma_pm1"]) == (4, 8, 0.025, 0.05)
    assert r["model"]["name"] == "tiny" and len(r["model"]["sha256"]) == 64
    assert r["operator"]["preset"] == "sr4" and r["solver_params"] == {"amp": 0.3}
    assert r["env"]["inversa"] and r["env"]["device"].startswith("cpu")
    # every solver sees the same measurement; solver noise differs by seed and image
    assert r["measurement_seed"] == rows["sr4__naive__n0__seed1__img1"]["measurement_seed"]
    assert len({x["solver_seed"] for x in rows.values()}) == 2 * 2

    table = ev.table(out)
    head = table[0]
    lines = {(t[0], t[1], t[2]): dict(zip(head, t)) for t in table[1:]}
    assert set(lines) == {(t, s, n) for t in ("sr4", "box_inpaint") for s, n in (("naive", "0"), ("fake", "2"), ("fake", "4"))}
    fake4 = lines[("sr4", "fake", "4")]
    assert float(fake4["nfe"]) == 4 and fake4["std_over"] == "seeds" and fake4["rows"] == "4"
    mean = sum(x["psnr"] for k, x in rows.items() if k.startswith("sr4__fake__n4")) / 4
    assert float(fake4["psnr_mean"]) == pytest.approx(mean)
    assert float(fake4["fid_mean"]) >= 0 and fake4["fid_std"] != ""  # FID per seed over the set, custom features
    md = (out / "summary.md").read_text()
    assert "| sr4 | fake | 4 | 4 | 8 |" in md and "custom TinyFeatures" in md and "notes.txt" in md
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 2 * (3 if LPIPS_DIR.is_dir() else 2)  # metric vs NFE, per task
    r0 = rows["sr4__fake__n4__seed0__img1"]  # the grids show the first seed and the most steps
    for rel in (r0["files"]["clean"], r0["files"]["measurement"], r0["files"]["restoration"]):
        assert f'src="{rel}"' in html and (out / rel).is_file()
    meta = json.loads((out / "run.json").read_text())
    assert meta["models"][0]["name"] == "tiny" and meta["sigma"]["sr4"] == {"sigma_01": 0.025, "sigma_pm1": 0.05}
    assert meta["skipped_files"] == ["notes.txt (not an image file)"] and meta["rows"] == 24
    assert meta["seeds"] == [0, 1] and len(meta["items"]) == 24 and meta["inversa"]
    if LPIPS_DIR.is_dir():
        assert "LPIPS-alex" in md and all(x["lpips"] is not None for x in rows.values())


def test_fid_unavailable_is_a_line_not_a_crash(data_dir, tmp_path, ev):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("no weights here")

    out = tmp_path / "run"
    E.run_eval(cfg(data_dir, out, tasks="sr4", seeds="0"), progress=False, fid_feature=Broken())
    md = (out / "summary.md").read_text()
    assert "- FID/KID: FID unavailable: RuntimeError: no weights here." in md
    assert "± is the std over images (one seed)" in md
    # the default Inception path, offline or without torch-fidelity, ends the same way
    E.merge(out)
    assert "FID/KID: FID unavailable: " in (out / "summary.md").read_text() or "InceptionV3" in (out / "summary.md").read_text()


class Killed(Exception):
    pass


def test_killed_and_resumed_gives_the_same_table(data_dir, tmp_path, ev):
    ref = tmp_path / "ref"
    E.run_eval(cfg(data_dir, ref), progress=False)

    out = tmp_path / "run"
    done = []

    def die_after_five(item, row):
        done.append(item.key)
        if len(done) == 5:
            raise Killed

    with pytest.raises(Killed):
        E.run_eval(cfg(data_dir, out), progress=False, callback=die_after_five)
    assert len(list((out / "rows").glob("*.json"))) == 5 and not (out / "summary.csv").exists()
    # what a kill -9 can leave: a temporary file; a damaged row is redone too
    (out / "rows" / ".sr4__naive__n0__seed1__img0.json.123-abc.tmp").write_text("{half")
    (out / "rows" / f"{done[0]}.json").write_text("{half")
    again = []
    E.run_eval(cfg(data_dir, out), progress=False, callback=lambda item, row: again.append(item.key))
    assert len(again) == 12 - 4 and done[0] in again and not set(again) & set(done[1:])
    assert ev.rows(out) == ev.rows(ref)
    assert ev.table(out) == ev.table(ref)
    assert E.run_eval(cfg(data_dir, out), progress=False, callback=lambda *a: pytest.fail("redid an item"))["done"] == 12


def _unbatched(rows):
    return {k: {f: v for f, v in r.items() if f != "batch_size"} for k, r in rows.items()}


def test_batches_give_the_rows_of_single_items(data_dir, tmp_path, fake_solver, ev):
    """batch_size groups items of one (task, solver, steps, seed) and one image size; every row (metrics,
    seeds, per-image operator metadata, files) is the row of the unbatched run."""
    from PIL import Image

    Image.fromarray((torch.rand(48, 40, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy()).save(data_dir / "img3.png")
    ref, out = tmp_path / "ref", tmp_path / "run"
    settings = dict(solvers="naive,fake", tasks="sr4,random_inpaint")
    E.run_eval(cfg(data_dir, ref, **settings), progress=False)
    E.run_eval(cfg(data_dir, out, batch_size=3, **settings), progress=False)
    got = ev.rows(out)
    assert _unbatched(got) == _unbatched(ev.rows(ref)) and ev.table(out) == ev.table(ref)
    sizes = {k: r["batch_size"] for k, r in got.items()}
    assert sizes["sr4__fake__n50__seed0__img0"] == 3 and sizes["sr4__fake__n50__seed0__img3"] == 1  # 48x40 alone
    for stem in ("img0", "img1", "img2", "img3"):  # the same pictures
        for rel in (f"images/random_inpaint/fake-n50/seed1/{stem}.png", f"images/random_inpaint/measurement/seed1/{stem}.png"):
            assert (out / rel).read_bytes() == (ref / rel).read_bytes()


def test_two_shards_then_merge_equal_one_process(data_dir, tmp_path, ev):
    ref = tmp_path / "ref"
    E.run_eval(cfg(data_dir, ref), progress=False)
    out = tmp_path / "run"
    first = E.run_eval(cfg(data_dir, out), progress=False, num_shards=2, shard_index=1)
    assert first["pending"] == 6 and first["merged"] is None and not (out / "summary.csv").exists()
    second = E.run_eval(cfg(data_dir, out), progress=False, num_shards=2, shard_index=0)
    assert second["merged"]  # the last shard to finish builds the tables
    assert ev.rows(out) == ev.rows(ref) and ev.table(out) == ev.table(ref)
    (out / "summary.csv").unlink()
    E.merge(out)
    assert ev.table(out) == ev.table(ref)


def test_accelerate_processes_split_the_items(data_dir, tmp_path, monkeypatch, ev):
    """Two accelerate processes, simulated by threads that share a barrier."""
    import accelerate

    barrier = threading.Barrier(2, timeout=120)
    local = threading.local()

    class State:
        num_processes = 2
        device = torch.device("cpu")

        def __init__(self, cpu=False):
            self.process_index = local.rank
            self.is_main_process = local.rank == 0

        def wait_for_everyone(self):
            barrier.wait()

    monkeypatch.setattr(accelerate, "PartialState", State)
    out, results, errors = tmp_path / "run", {}, []

    def worker(rank):
        local.rank = rank
        try:
            results[rank] = E.run_eval(cfg(data_dir, out), progress=False)
        except Exception as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(r,)) for r in (0, 1)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    assert results[0]["merged"] and results[1]["merged"] is None and results[0]["done"] == results[1]["done"] == 6
    monkeypatch.undo()
    ref = tmp_path / "ref"
    E.run_eval(cfg(data_dir, ref), progress=False)
    assert ev.rows(out) == ev.rows(ref) and ev.table(out) == ev.table(ref)
    with pytest.raises(UserError, match="--shard-index must be in"):
        E.run_eval(cfg(data_dir, out), num_shards=2, shard_index=2)


@pytest.mark.parametrize("change,message", [
    (dict(tasks="sr4,nope"), "unknown task 'nope'; accepted: sr4,"),
    (dict(solvers="naive,magic"), "unknown solver 'magic'; accepted:"),
    (dict(seeds="0,x"), "seeds must be comma-separated integers"),
    (dict(steps="0"), "steps must be comma-separated integers >= 1"),
    (dict(lpips_net="squeeze"), "lpips_net must be alex, vgg or none"),
    (dict(solver_params={"dps": {"scale": 1}}), "solver_params given for dps"),
    (dict(size=30), "not a multiple of the super-resolution factor"),
    (dict(colour="red"), "unknown setting 'colour'"),
    (dict(tasks=""), "--tasks is required"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(solvers="naive,ddrm", tasks="sr4,gaussian_deblur"),
     "solver ddrm needs an operator with a closed-form SVD and task gaussian_deblur (blur with padding='reflect') has none"),
])
def test_bad_settings_fail_before_writing(data_dir, tmp_path, change, message):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=re.escape(message)):
        E.run_eval(cfg(data_dir, out, **change), progress=False)
    assert not out.exists()


def test_bad_data_and_output_folders(data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    for data, message in ((tmp_path / "missing", "does not exist"), (empty, "no images in")):
        with pytest.raises(UserError, match=message):
            E.run_eval(cfg(data, tmp_path / "run"), progress=False)
    (data_dir / "broken.png").write_bytes(b"not a png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write to --out"):
        E.run_eval(cfg(data_dir, tmp_path / "file" / "run"), progress=False)
    out = tmp_path / "run"
    E.run_eval(cfg(data_dir, out, tasks="sr4", seeds="0", limit=2), progress=False)
    assert "broken.png (unreadable" in (out / "summary.md").read_text() and len(list((out / "rows").glob("*"))) == 2
    with pytest.raises(UserError, match="holds a run made with size=None"):
        E.run_eval(cfg(data_dir, out, tasks="sr4", size=16), progress=False)
    (data_dir / "img0.png").rename(data_dir / "img9.png")  # shifts the image indices that masks follow
    with pytest.raises(UserError, match="changed since"):
        E.run_eval(cfg(data_dir, out, tasks="sr4", seeds="0", limit=2), progress=False)


def test_config_file_json_and_toml(data_dir, tmp_path):
    from inversa.eval.config import EvalConfig, read_config_file

    (tmp_path / "c.toml").write_text(f'data = "{data_dir}"\ntasks = ["sr4"]\nsolvers = "naive"\nseeds = [0, 1]\n'
                                     '[solver_params.naive]\n')
    (tmp_path / "c.json").write_text(json.dumps({"data": str(data_dir), "tasks": "sr4", "solvers": ["naive"], "seeds": [0, 1],
                                                 "solver_params": {"naive": {}}}))
    a, b = (EvalConfig.from_mapping(read_config_file(tmp_path / f"c.{s}")) for s in ("toml", "json"))
    assert a == b and a.seeds == [0, 1] and a.tasks == ["sr4"]
    (tmp_path / "bad.toml").write_text("data = [")
    with pytest.raises(UserError, match="not valid JSON or TOML"):
        read_config_file(tmp_path / "bad.toml")


def test_cli_errors_are_one_line(tmp_path, data_dir, ev, capsys):
    from inversa.cli import main

    out = tmp_path / "run"
    p = ev.run_cli("--data", data_dir, "--tasks", "sr5", "--solvers", "naive", "--out", out)  # a real process once
    assert p.returncode == 2 and p.stderr == "inversa eval: error: unknown task 'sr5'; accepted: " \
        "sr4, box_inpaint, random_inpaint, gaussian_deblur, motion_deblur, denoise\n"
    for args, message in ((["--tasks", "sr4", "--solvers", "naive"], "--data is required"),
                          (["--data", data_dir, "--tasks", "sr4", "--solvers", "naive", "--steps", "ten"], "steps must be"),
                          (["--data", data_dir, "--tasks", "sr4", "--solvers", "naive", "--limit", "-1"], "limit must be"),
                          (["--data", data_dir, "--tasks", "sr4", "--solvers", "naive", "--lpips-net", "sq"], "lpips_net must"),
                          (["--data", data_dir, "--tasks", "sr4", "--solvers", "naive", "--num-shards", "x"], "--num-shards"),
                          (["--data", data_dir, "--tasks", "sr4", "--solvers", "naive", "--config", tmp_path / "no.toml"],
                           "cannot read config file")):
        assert main(["eval", *map(str, args), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("inversa eval: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_runs_and_merges(tmp_path, data_dir, capsys):
    from inversa.cli import main

    out = tmp_path / "run"
    conf = tmp_path / "eval.toml"
    conf.write_text(f'data = "{data_dir}"\ntasks = "sr4"\nsolvers = "naive"\nlpips_net = "none"\n')
    assert main(["eval", "--config", str(conf), "--out", str(out), "--no-fid", "--limit", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "| sr4 | naive | 0 |" in stdout and "report:" in stdout and "FID/KID: not computed" in stdout
    (out / "summary.md").unlink()
    assert main(["eval", "--merge", "--out", str(out)]) == 0 and (out / "summary.md").is_file()


def test_real_solver_with_a_tiny_diffusers_prior(data_dir, tmp_path, ev):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    unet.save_pretrained(tmp_path / "model" / "unet")
    DDPMScheduler(beta_schedule="linear").save_pretrained(tmp_path / "model" / "scheduler")
    out = tmp_path / "run"
    E.run_eval(cfg(data_dir, out, tasks="sr4", solvers="naive,dps", seeds="0", steps="2", limit=2,
                   model=str(tmp_path / "model")), progress=False)
    rows = ev.rows(out)
    batched = tmp_path / "batched"  # a real UNet in a batch of 2: the same rows up to float rounding
    E.run_eval(cfg(data_dir, batched, tasks="sr4", solvers="naive,dps", seeds="0", steps="2", limit=2, batch_size=2,
                   model=str(tmp_path / "model")), progress=False)
    for key, row in ev.rows(batched).items():
        assert row["batch_size"] == 2 and row["psnr"] == pytest.approx(rows[key]["psnr"], abs=1e-3)
        assert row["ssim"] == pytest.approx(rows[key]["ssim"], abs=1e-4)
    r = rows["sr4__dps__n2__seed0__img1"]
    assert (r["nfe"], r["vjp"], r["image_size"]) == (2, 2, [32, 32])  # images keep their own size by default
    assert r["model"]["sha256"] == E.model_info(type("P", (), {"model": unet, "name": "", "source": ""})())["sha256"]
    assert r["solver_metadata"]["solver"] == "dps" and rows["sr4__naive__n0__seed0__img1"]["model"] is None


def test_resume_refuses_other_weights_under_the_same_model_name(data_dir, tmp_path, fake_solver, monkeypatch, ev):
    out = tmp_path / "run"
    E.run_eval(cfg(data_dir, out, tasks="sr4", solvers="naive", seeds="0", limit=1), progress=False)
    E.run_eval(cfg(data_dir, out, tasks="sr4", solvers="naive,fake", seeds="0", limit=1), progress=False)
    sha = json.loads((out / "config.json").read_text())["settings"]["model_sha256"]
    assert len(sha) == 64  # recorded once a solver loads the model; naive-only runs record none

    class Retrained(ev.TinyPrior):
        def __init__(self):
            super().__init__()
            with torch.no_grad():
                self.model.weight.add_(0.1)

    import inversa.pretrained

    monkeypatch.setattr(inversa.pretrained, "load_prior", lambda name=None, device="cpu", **_: Retrained())
    with pytest.raises(UserError, match="other weights"):
        E.run_eval(cfg(data_dir, out, tasks="sr4", solvers="naive,fake", seeds="0", limit=1), progress=False)
    E.run_eval(cfg(data_dir, out, tasks="sr4", solvers="naive", seeds="0", limit=1), progress=False)  # naive: no weights
