"""The `/restore` API (gradio_client), the upload checks and the CLI hook, without a browser."""

import re
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inversa.errors import UserError

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # gradio's own pandas deprecations


def test_four_concurrent_clients_get_their_own_results(app_server, tiny_model_dir, make_photo, to_array):
    from gradio_client import Client, handle_file

    from inversa.pretrained import load_prior
    from inversa.restoration import restore

    sizes = [(48, 40), (40, 48), (32, 32), (56, 24)]
    photos = [make_photo(f"p{i}.png", size, shift=5 * i) for i, size in enumerate(sizes)]
    results, errors = [None] * 4, []

    def call(i):
        try:
            client = Client(app_server, verbose=False)
            results[i] = client.predict(photo=handle_file(str(photos[i])), mode="simulate", preset="box_inpaint",
                                        steps=3, seed=i, api_name="/restore")
        except Exception as exc:  # reported below with the client's index
            errors.append((i, exc))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    prior = load_prior(str(tiny_model_dir))
    for i, (w, h) in enumerate(sizes):
        report, restored_path = results[i][3], results[i][4]
        assert "PSNR" in report and "restored" in report
        got = to_array(restored_path)
        assert got.shape == (h, w, 3)
        want = restore(str(photos[i]), preset="box_inpaint", steps=3, seed=i, sigma=0.025, max_size=128,
                       prior=prior, progress=False).restored[0].permute(1, 2, 0).numpy()
        assert np.abs(got - want).max() <= 1.5 / 255, f"client {i} got another result than restore() gives"


def test_api_reports_user_errors(app_server, make_photo):
    from gradio_client import Client, handle_file

    client = Client(app_server, verbose=False)
    with pytest.raises(Exception, match="mark the damage"):
        client.predict(photo=handle_file(str(make_photo())), mode="damaged", task="inpaint", api_name="/restore")
    with pytest.raises(Exception, match="has no parameter 'bogus'"):
        client.predict(photo=handle_file(str(make_photo())), mode="simulate", params="bogus=1", api_name="/restore")


def _restore_threads():
    return [t for t in threading.enumerate() if t.name == "inversa-restore"]


def _wait_until(cond, seconds=30.0):
    end = time.monotonic() + seconds
    while not cond() and time.monotonic() < end:
        time.sleep(0.05)
    return cond()


def test_cancel_stops_the_run(app_demo, make_photo):
    app, photo = app_demo.inversa, str(make_photo())
    session = types.SimpleNamespace(session_hash="cancel-test")
    run = app.run(photo, mode="simulate", preset="box_inpaint", solver="dps", steps=1000, request=session)
    assert "Loading" in next(run)[3] and next(run)[3] == "Sampling…"
    assert app.cancel(session)[:2] == ("Cancelled.", None)  # the Cancel button; the live preview is cleared
    with pytest.warns(UserWarning, match="cancelled"):  # gr.Warning, outside a page: the run stops at its next step
        last = [out for out in run][-1]
    assert last[3] == "Cancelled." and last[0] is None
    assert _wait_until(lambda: not _restore_threads())

    run = app.run(photo, mode="simulate", preset="box_inpaint", solver="dps", steps=1000)
    next(run), next(run)
    run.close()  # the page went away (or Gradio cancelled the task): the worker stops too
    assert _wait_until(lambda: not _restore_threads())


def test_offline_examples(tmp_path):
    from inversa.app.runner import restore_kwargs
    from inversa.app.ui import _examples

    rows = _examples(tmp_path)
    assert all(Path(row[0]).is_file() for row in rows)
    assert [row[1:3] + row[4:] for row in rows] == [["damaged", "inpaint", "box_inpaint"],
                                                    ["simulate", "inpaint", "box_inpaint"],
                                                    ["simulate", "sr", "sr4"]]  # the cat SR example says so
    photo, mask = rows[0][0], rows[0][3]  # the scratched astronaut and its mask
    kw, _ = restore_kwargs(photo=photo, mode="damaged", task="inpaint", mask_file=mask, max_pixels=10**6)
    scratches = (np.asarray(Image.open(photo)) == 255).all(-1)
    missing = kw["mask"].numpy() == 0
    assert missing.sum() > 1000 and scratches[missing].mean() > 0.99


def test_check_image_file(tmp_path):
    from inversa.app.runner import check_image_file

    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(UserError, match="not a readable image"):
        check_image_file(bad, max_pixels=10_000)
    big = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(big)
    with pytest.raises(UserError, match=r"200x100 .* the limit is 0.01 megapixels"):
        check_image_file(big, max_pixels=10_000)
    assert check_image_file(big, max_pixels=20_000) == (200, 100)


def test_input_helpers(tmp_path):
    from inversa.app.runner import brush_mask, restore_kwargs

    layer = np.zeros((10, 20, 4), np.uint8)
    layer[2:4, 5:10, 3] = 255
    m = brush_mask({"layers": [layer]}, (20, 40))  # painted = missing, scaled to the photo
    assert m.shape == (20, 40) and m.sum() == 20 * 40 - 4 * 10 and m[5, 12] == 0
    assert brush_mask({"layers": [np.zeros((10, 20, 4), np.uint8)]}, (20, 40)) is None

    phone = tmp_path / "phone.jpg"  # stored 40x30, EXIF orientation 6: shown (and restored) upright, 30x40
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30), (200, 100, 50)).save(phone, exif=exif)
    kw, _ = restore_kwargs(photo=str(phone), mode="damaged", task="denoise", max_pixels=10_000)
    assert kw["image"].shape == (1, 3, 40, 30)


def test_parse_params_sends_only_given_values_typed():
    from inversa.app.runner import parse_params

    assert parse_params("", "dps", scale="", start=" ", sampler="") == {}  # empty fields: the method's defaults
    assert parse_params("", "dps", scale=None, sampler=None) == {}
    want = {"sampler": "ddim", "scale": 0.5, "clip_x0": False, "start": 0.3}
    assert parse_params("clip_x0=false, start=0.3", "dps", scale="0.5", sampler="ddim") == want
    assert parse_params("cg_iters=5, variant=reference", "ca-dps") == {"cg_iters": 5, "variant": "reference"}
    assert parse_params("", "cmi-dps", scale="0.4") == {"scale": 0.4}  # its base solver's parameter
    for text, kwargs, message in [
            ("start=abc", {}, "start: expected a number in (0, 1], got 'abc'"),
            ("", {"scale": "x"}, "scale: expected a number >= 0 (or none for the method's default), got 'x'"),
            ("clip_x0=maybe", {}, "clip_x0: expected true or false, got 'maybe'"),
            ("start=nan", {}, "start: expected a number in (0, 1], got 'nan'"),
            ("start=2", {}, "start must be a fraction in (0, 1]"),  # the solver's own range check, no model needed
            ("sampler=euler", {}, "sampler 'euler' is not supported; accepted: ddpm, ddim"),
            ("scale=0.5", {"scale": "0.3"}, "scale is set twice"),
            ("nope=1", {}, "solver 'dps' has no parameter 'nope'; accepted: "),
            ("start", {}, "must look like key=value")]:
        with pytest.raises(UserError, match=re.escape(message)):
            parse_params(text, "dps", **kwargs)
    with pytest.raises(UserError, match=re.escape("cg_iters: expected a whole number >= 1 (or none for the method's default), got '2.5'")):
        parse_params("cg_iters=2.5", "ca-dps")
    with pytest.raises(UserError, match="Guidance scale: method 'c-dps' has no such setting"):
        parse_params("", "c-dps", scale="0.3")


def test_size_plan_limits_the_photo_the_solver_gets(tmp_path):
    from inversa.app.runner import MAX_SIDE_LABEL, plan_sizes, restore_kwargs

    p = plan_sizes((4000, 3000), mode="damaged", task="sr", factor=4, max_side=256)
    assert (p.work, p.measurement, p.result) == ((256, 192), (256, 192), (1024, 768))
    assert "downscaled to **256x192**" in p.note() and MAX_SIDE_LABEL in p.note() and "returns **1024x768**" in p.note()
    p = plan_sizes((4000, 3000), mode="damaged", task="deblur", max_side=128)
    assert p.result == (128, 96) and MAX_SIDE_LABEL in p.note()
    p = plan_sizes((30, 50), mode="simulate", task="inpaint", preset="sr4", max_side=256)  # crop to the factor
    assert (p.work, p.measurement, p.result) == ((28, 48), (7, 12), (28, 48)) and "cropped to **28x48**" in p.note()
    p = plan_sizes((150, 300), mode="simulate", task="inpaint", preset="sr4", max_side=100)
    assert p.work == (48, 100) and p.measurement == (12, 25)
    assert plan_sizes((96, 72), mode="damaged", task="sr", factor=2, max_side=128).note() == \
        "96x72 px. x2 super-resolution returns **192x144** (the solver works at that size: 4x the time of the photo's own size)."
    with pytest.raises(UserError, match="smaller than the x4"):
        plan_sizes((3, 50), mode="simulate", task="inpaint", preset="sr4", max_side=256)

    photo = tmp_path / "wide.png"
    Image.new("RGB", (400, 300), (10, 200, 30)).save(photo)
    kw, notes = restore_kwargs(photo=str(photo), mode="damaged", task="sr", factor=4, max_side=100,
                               noise_in_photo="0.01", max_pixels=10**6)
    assert kw["image"].shape[-2:] == (75, 100) and kw["max_size"] == 400 and kw["sigma"] == 0.01
    assert "downscaled to 100x75" in notes[0]
    kw, _ = restore_kwargs(photo=str(photo), mode="simulate", task="inpaint", preset="sr4", max_side=90, max_pixels=10**6)
    assert kw["image"].shape[-2:] == (68, 88) and kw["max_size"] == 88 and kw["sigma"] == 0.025


def test_masks_are_checked_against_the_photo(tmp_path):
    from inversa.app.runner import load_mask_for, restore_kwargs

    photo, wrong, white, holes = (tmp_path / n for n in ("p.png", "wrong.png", "white.png", "holes.png"))
    Image.new("RGB", (40, 32), (100, 120, 140)).save(photo)
    Image.new("L", (20, 20), 255).save(wrong)
    Image.new("L", (40, 32), 255).save(white)
    m = Image.new("L", (40, 32), 0)
    m.paste(255, (10, 10, 20, 20))
    m.save(holes)
    with pytest.raises(UserError, match=re.escape("the mask 'wrong.png' is 20x20 but the photo is 40x32")):
        load_mask_for(wrong, (40, 32), max_pixels=10**6)
    with pytest.raises(UserError, match="marks the whole photo as missing"):
        load_mask_for(white, (40, 32), max_pixels=10**6)
    with pytest.raises(UserError, match="marks the whole photo as missing"):
        restore_kwargs(photo=str(photo), mode="damaged", task="inpaint", mask_file=str(white), max_pixels=10**6)
    kw, _ = restore_kwargs(photo=str(photo), mode="damaged", task="inpaint", mask_file=str(holes), max_side=20,
                           max_pixels=10**6)  # the mask follows the photo's downscale
    assert kw["mask"].shape == (16, 20) and kw["mask"].sum() == 16 * 20 - 5 * 5


def test_transparency_note_and_brush_width(app_demo, tmp_path):
    from inversa.app.runner import TRANSPARENT_NOTE, restore_kwargs

    app = app_demo.inversa
    clear = tmp_path / "clear.png"
    rgba = np.zeros((32, 40, 4), np.uint8)
    rgba[..., :3], rgba[:, :20, 3] = 50, 255  # the right half transparent
    Image.fromarray(rgba, "RGBA").save(clear)
    kw, notes = restore_kwargs(photo=str(clear), mode="damaged", task="denoise", max_pixels=10**6)
    assert TRANSPARENT_NOTE in notes and kw["image"][0, :, 5, 30].tolist() == [1.0, 1.0, 1.0]
    assert TRANSPARENT_NOTE in app.photo_note({"path": str(clear)}, "damaged", "denoise", 4, "box_inpaint", 128)
    opaque = tmp_path / "opaque.png"
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(opaque)
    assert restore_kwargs(photo=str(opaque), mode="damaged", task="denoise", max_pixels=10**6)[1] == [
        "noise in the photo estimated at σ = 0.0000 (type a value in 'Noise in my photo' to override)"]

    sizes = {}
    for w, h in [(96, 72), (900, 600), (3000, 2000)]:
        path = tmp_path / f"{w}.png"
        Image.new("RGB", (w, h), (1, 2, 3)).save(path)
        sizes[w] = app.check_photo({"path": str(path)}).brush.default_size
    assert sizes == {96: 2, 900: 15, 3000: 17}  # radius ~1/60 of the editor's image (at most 1024 px)


def test_noise_estimate(tmp_path):

    from inversa.app.runner import estimate_photo_noise, parse_sigma, restore_kwargs
    from inversa.imageio import save_image
    from inversa.noise_level import estimate_sigma

    g = torch.Generator().manual_seed(0)
    smooth = torch.linspace(0.2, 0.8, 128)[None, :].expand(96, 128)[None, None].expand(1, 3, 96, 128)
    for sigma in (0.0, 0.02, 0.05):
        noisy = (smooth + sigma * torch.randn(smooth.shape, generator=g)).clamp(0, 1)
        assert estimate_sigma(noisy) == pytest.approx(sigma, abs=0.1 * sigma + 0.002)
    path = save_image(noisy, tmp_path / "noisy.png")
    kw, notes = restore_kwargs(photo=str(path), mode="damaged", task="denoise", max_pixels=10**6)
    assert kw["sigma"] == pytest.approx(0.05, abs=0.007) and "estimated at σ = 0.0" in notes[-1]
    assert estimate_photo_noise(str(path), max_side=128, max_pixels=10**6) == kw["sigma"]
    assert estimate_photo_noise(str(path), max_side=32, max_pixels=10**6) < 0.5 * kw["sigma"]  # downscaling averages it
    assert parse_sigma("") is None and parse_sigma(" 0.03 ") == 0.03
    for bad in ("abc", "-0.1", "2"):
        with pytest.raises(UserError, match="Noise in my photo: expected a number in \\[0, 1\\]"):
            parse_sigma(bad)


def test_method_guide_covers_the_registry(monkeypatch):
    # the costs it shows are the classes' declared ones, checked against real runs in tests/solvers/test_contract.py
    from inversa.app.runner import method_cost, method_guide, params_help
    from inversa.app.ui import _solver_help
    from inversa.solvers import SOLVERS

    guide = dict(method_guide())
    assert list(guide) == list(SOLVERS)
    for name, cls in SOLVERS.items():
        assert cls.label in guide[name] and cls.summary in guide[name], name
        assert f"Cost: {method_cost(name)}." in guide[name] and guide[name] == _solver_help(name)
        assert "Parameters" in params_help(name) or "no parameters" in params_help(name)
    assert method_cost("ca-dps").startswith("up to 7 network evaluations") and method_cost("naive") == "no network: instant"
    assert method_cost("cmi-dps") == "up to 8 network evaluations + 2 gradient passes per step"
    assert "Rademacher" not in params_help("ca-dps") and "sampler='ddpm'" not in _solver_help("dps")

    class Sketch:
        """Sketch solver. A line that is not shown."""

    monkeypatch.setitem(SOLVERS, "sketch", Sketch)  # a solver registered later still gets its line
    assert dict(method_guide())["sketch"] == "**Sketch solver** (`sketch`): Sketch solver. Cost: cost per step not listed."


def test_simulated_result_worse_than_the_simple_inverse_is_flagged():
    from inversa.app.runner import worse_than_naive

    assert worse_than_naive({"psnr_restored": 20.0, "psnr_naive": 21.5})
    assert not worse_than_naive({"psnr_restored": 20.9, "psnr_naive": 21.5})
    assert not worse_than_naive({})


def test_cli_app_binds_loopback_by_default():
    from inversa.cli import build_parser

    args = build_parser().parse_args(["app"])
    assert (args.host, args.port, args.share, args.model) == ("127.0.0.1", None, False, None)
    args = build_parser().parse_args(["app", "--host", "0.0.0.0", "--port", "8000", "--share", "--model", "m"])
    assert (args.host, args.port, args.share, args.model) == ("0.0.0.0", 8000, True, "m")
