"""The `/restore` API (gradio_client), the upload checks and the CLI hook, without a browser."""

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
    from inversa.restore import restore

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
    run = app.run(photo, mode="simulate", preset="box_inpaint", steps=1000, request=session)
    assert "Loading" in next(run)[3] and next(run)[3] == "Sampling…"
    app.cancel(session)  # the Cancel button: the run stops at its next step and says so
    with pytest.warns(UserWarning, match="cancelled"):  # gr.Warning, outside a page
        assert [out[3] for out in run][-1] == "Cancelled."
    assert _wait_until(lambda: not _restore_threads())

    run = app.run(photo, mode="simulate", preset="box_inpaint", steps=1000)
    next(run), next(run)
    run.close()  # the page went away (or Gradio cancelled the task): the worker stops too
    assert _wait_until(lambda: not _restore_threads())


def test_offline_examples(tmp_path):
    from inversa.app.runner import restore_kwargs
    from inversa.app.ui import _examples

    rows = _examples(tmp_path)
    assert all(Path(row[0]).is_file() for row in rows)
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
    from inversa.app.runner import brush_mask, fit_to_factor, parse_params, restore_kwargs

    layer = np.zeros((10, 20, 4), np.uint8)
    layer[2:4, 5:10, 3] = 255
    m = brush_mask({"layers": [layer]}, (20, 40))  # painted = missing, scaled to the photo
    assert m.shape == (20, 40) and m.sum() == 20 * 40 - 4 * 10 and m[5, 12] == 0
    assert brush_mask({"layers": [np.zeros((10, 20, 4), np.uint8)]}, (20, 40)) is None
    want = {"sampler": "ddim", "scale": 0.5, "clip_x0": False}
    assert parse_params("scale=0.5, clip_x0=false", "dps", sampler="ddim") == want
    with pytest.raises(UserError, match="accepted: "):
        parse_params("nope=1", "dps")
    x, notes = fit_to_factor(torch.rand(1, 3, 50, 30), 256, 4)  # a simulated x4 SR needs multiples of 4
    assert x.shape[-2:] == (48, 28) and notes == ["cropped to 28x48, a multiple of the x4 factor"]
    x, notes = fit_to_factor(torch.rand(1, 3, 300, 150), 100, 4)
    assert x.shape[-2:] == (100, 48) and len(notes) == 2

    phone = tmp_path / "phone.jpg"  # stored 40x30, EXIF orientation 6: shown (and restored) upright, 30x40
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30), (200, 100, 50)).save(phone, exif=exif)
    kw, _ = restore_kwargs(photo=str(phone), mode="damaged", task="denoise", max_pixels=10_000)
    assert kw["image"].shape == (1, 3, 40, 30)


def test_cli_app_binds_loopback_by_default():
    from inversa.cli import build_parser

    args = build_parser().parse_args(["app"])
    assert (args.host, args.port, args.share, args.model) == ("127.0.0.1", None, False, None)
    args = build_parser().parse_args(["app", "--host", "0.0.0.0", "--port", "8000", "--share", "--model", "m"])
    assert (args.host, args.port, args.share, args.model) == ("0.0.0.0", 8000, True, "m")
