"""The web UI in headless Debian Chromium: upload, brush a mask, restore, download; bad uploads."""

import time

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


def _toast(page, text):
    page.locator(".toast-body", has_text=text).first.wait_for(timeout=60_000)


def test_upload_brush_restore_download(page, make_photo, to_array, shot, tmp_path):
    src = make_photo("photo.png", (96, 72))
    page.locator("#photo input[type=file]").set_input_files(str(src))
    page.locator("#photo-info", has_text="96x72 px").wait_for()
    # The editor shows a zoom level once the photo is on its canvas.
    page.wait_for_function("() => /[0-9]+%/.test(document.querySelector('#editor').innerText)")
    box = page.locator("#editor canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 60, cy)
    page.mouse.down()
    page.mouse.move(cx + 60, cy, steps=4)  # each move redraws the (software-rendered) canvas
    page.mouse.up()
    t0 = time.perf_counter()
    page.click("#restore")
    page.locator("#report", has_text="Restored").wait_for(timeout=240_000)
    seconds = time.perf_counter() - t0
    with page.expect_download() as download:
        page.click("#dl-restored")
    restored = tmp_path / "restored.png"
    download.value.save_as(restored)
    before_url = page.eval_on_selector_all("#slider img", "els => els.map(e => e.src)")[0]
    (tmp_path / "before.png").write_bytes(page.request.get(before_url).body())
    shot(page, "restored_page")

    out, x, before = to_array(restored), to_array(src), to_array(tmp_path / "before.png")
    with Image.open(restored) as im:
        assert im.size == (96, 72)
    masked = before.max(-1) == 0  # the measurement is black where the brush painted (the photo has no black)
    frac = masked.mean()  # (a busy machine can bend the stroke, so only its extent is checked)
    assert 0.01 < frac < 0.7, f"brushed fraction {frac:.3f}: the stroke did not reach the solver as a mask"
    assert np.abs(out - x).mean(-1)[masked].mean() > 0.02, "the masked region was not filled in"
    print(f"browser restore: {seconds:.1f} s from click to result")


def test_bad_uploads_show_errors_and_app_keeps_serving(page, app_server, make_photo, shot, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is a text file, not a PNG")
    too_many_pixels = tmp_path / "huge.png"  # 200x200 > the test app's 160x160 limit, a small file
    Image.new("RGB", (200, 200), (120, 130, 140)).save(too_many_pixels)
    too_many_bytes = tmp_path / "noise.png"  # 120 kB > the test app's 100 kB upload limit
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(too_many_bytes)
    for i, (path, message) in enumerate([(not_image, "'notes.png' is not a readable image"),
                                         (too_many_pixels, "'huge.png' is 200x200 (0.04 megapixels); the limit is"),
                                         (too_many_bytes, "exceed the maximum allowed size")]):
        if i:  # a fresh page: the previous upload's clean-up must not race with this one
            page.reload()
            page.wait_for_selector("#photo input[type=file]", state="attached")
        page.locator("#photo input[type=file]").set_input_files(str(path))
        _toast(page, message)
        shot(page, f"bad_upload_{path.stem}")

    assert page.request.get(app_server).ok
    page.locator("#photo input[type=file]").set_input_files(str(make_photo("ok.png", (40, 32))))
    page.locator("#photo-info", has_text="40x32 px").wait_for()
