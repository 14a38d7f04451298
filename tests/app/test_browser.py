"""The web UI in headless Debian Chromium: upload, brush a mask, restore, download; bad uploads; the
issue-19 defects (Advanced fields, readable errors, size limit, queue, masks, kernels, noise, examples)."""

import re
import time

import numpy as np
import pytest
from PIL import Image

from inversa.quality import setting

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
    too_many_pixels = tmp_path / "huge.png"  # 4001x3000 > the test app's 4000x3000 limit, a small file
    Image.new("RGB", (4001, 3000), (120, 130, 140)).save(too_many_pixels)
    too_many_bytes = tmp_path / "noise.png"  # 120 kB > the test app's 100 kB upload limit
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(too_many_bytes)
    for i, (path, message) in enumerate([(not_image, "'notes.png' is not a readable image"),
                                         (too_many_pixels, "'huge.png' is 4001x3000 (12 megapixels); the limit is 12 megapixels"),
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


# --- issue 19: the page's defects, each shown by a test that failed on the page before the fix ---------
def _upload(page, path, size_text):
    page.locator("#photo input[type=file]").set_input_files(str(path))
    page.locator("#photo-info", has_text=size_text).wait_for()


def _radio(page, elem_id, text):
    page.locator(f"#{elem_id} label", has_text=text).first.click()


def _number(page, elem_id, value):
    """Type into a slider's number box."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _choose(page, elem_id, text):
    """Pick the dropdown option whose label contains `text`."""
    page.locator(f"#{elem_id} input").first.click()
    page.locator("[role=listbox] li", has_text=text).first.click()
    page.wait_for_timeout(300)


def _text(page, elem_id, value):
    page.locator(f"#{elem_id}").locator("textarea, input").first.fill(value)


def _restore(page, calls, seconds=120.0):
    """Click Restore and wait for this run's result (`calls`: the restore_calls fixture) to be shown:
    Restore is usable again only once the page has it."""
    n = len(calls)
    page.locator("#restore").click()
    end = time.monotonic() + seconds
    while not (len(calls) > n and calls[-1]["result"] is not None) and time.monotonic() < end:
        time.sleep(0.05)
    assert len(calls) > n and calls[-1]["result"] is not None, "no result"
    expect_enabled(page.locator("#restore"))


def test_advanced_fields_send_only_what_was_typed(page, make_photo, restore_calls):
    """Opening "Advanced" used to show 0 in the empty guidance field and send scale=0 (and the
    sampler radio always sent sampler='ddpm'). Also: a simulated result worse than the simple
    inverse is flagged, not announced as restored."""
    _upload(page, make_photo("a.png", (40, 32)), "40x32 px")
    _radio(page, "mode", "Simulate")
    _choose(page, "solver", "(dps)")  # DPS shows every Advanced field
    page.get_by_text("Advanced: method parameters").click()
    page.wait_for_timeout(300)
    _restore(page, restore_calls)
    assert restore_calls[-1]["solver_params"] == {}, "opening Advanced sent values nobody typed"

    m = restore_calls[-1]["result"].metrics  # the tiny random prior makes a far worse picture than the fill
    assert m["psnr_restored"] < m["psnr_naive"] - 1, f"precondition: {m}"
    report = page.locator("#report").inner_text()
    assert "Worse than the simple inverse" in report and "Restored" not in report, report

    _text(page, "scale", "0.7")
    _radio(page, "sampler", "DDIM")
    _restore(page, restore_calls)
    assert restore_calls[-1]["solver_params"] == {"scale": 0.7, "sampler": "ddim"}
    _text(page, "scale", "")
    _radio(page, "sampler", "Method default")
    _restore(page, restore_calls)
    assert restore_calls[-1]["solver_params"] == {}


def test_bad_parameter_shows_a_readable_message(page, make_photo, restore_calls):
    """`start=abc` used to end in a TypeError: a red "Error" badge and no message."""
    _upload(page, make_photo("b.png", (40, 32)), "40x32 px")
    _radio(page, "mode", "Simulate")
    page.get_by_text("Advanced: method parameters").click()
    for typed, message in [("start=abc", "start: expected a number in (0, 1], got 'abc'"),
                           ("start=2", "start must be a fraction in (0, 1]"),  # the solver's own check, before a model loads
                           ("bogus=1", f"solver {setting('balanced', 'box_inpaint').solver!r} has no parameter "
                                       "'bogus'; accepted: ")]:  # the method the default quality picks
        page.get_by_label("Other parameters").fill(typed)
        page.locator("#restore").click()
        _toast(page, message)
        page.locator("#report", has_text=message).wait_for(timeout=10_000)  # stays readable after the toast
        expect_enabled(page.locator("#restore"))
    assert not restore_calls, "a run started with a bad parameter"


def expect_enabled(locator, seconds=10.0):
    end = time.monotonic() + seconds
    while locator.is_disabled() and time.monotonic() < end:
        time.sleep(0.1)
    assert locator.is_enabled()


def test_large_photo_super_resolution_limits_the_input(page, tmp_path, restore_calls):
    """A 4000x3000 photo for x4 SR used to be downscaled to 32x24 (max side / 4) and come back
    128x96; the note named a "Settings" section that does not exist and never changed."""
    from PIL import ImageDraw

    big = tmp_path / "big.png"  # 12 megapixels, ~50 kB: flat colours
    im = Image.new("RGB", (4000, 3000), (90, 140, 200))
    ImageDraw.Draw(im).rectangle((1000, 800, 2600, 2200), fill=(220, 180, 60))
    im.save(big)
    _upload(page, big, "4000x3000 px")
    _radio(page, "task", "super-resolution")
    info = page.locator("#photo-info")
    info.get_by_text(re.compile(r"downscaled to 128x96 .*Max photo side.*returns 512x384")).wait_for()
    assert page.locator("#max-side").get_by_text("Max photo side").is_visible(), "the note names a control not on the page"
    _number(page, "max-side", 64)  # the note follows the control
    info.get_by_text(re.compile(r"downscaled to 64x48 .*64 px.*returns 256x192")).wait_for()
    _radio(page, "factor", "2")
    info.get_by_text(re.compile(r"64x48 .*returns 128x96")).wait_for()
    _radio(page, "factor", "4")
    _number(page, "steps", 1)
    _restore(page, restore_calls)
    call = restore_calls[-1]
    assert call["image"].shape[-2:] == (48, 64) and call["factor"] == 4
    assert call["result"].restored.shape[-2:] == (192, 256)
    page.locator("#report", has_text="256x192 px").wait_for()


def test_mask_of_the_wrong_size_or_all_white_is_refused_at_upload(page, make_photo, tmp_path):
    _upload(page, make_photo("m.png", (40, 32)), "40x32 px")
    small, white = tmp_path / "small_mask.png", tmp_path / "white_mask.png"
    Image.new("L", (20, 20), 255).save(small)
    Image.new("L", (40, 32), 255).save(white)
    page.locator("#mask input[type=file]").set_input_files(str(small))
    _toast(page, "the mask 'small_mask.png' is 20x20 but the photo is 40x32; they must match")
    page.locator("#mask img").wait_for(state="detached")  # refused: the upload box is back
    page.locator("#mask").get_by_text("Drop Image Here").wait_for()
    page.locator("#mask input[type=file]").set_input_files(str(white))
    _toast(page, "the mask marks the whole photo as missing")


def test_queued_user_sees_their_place_and_cannot_click_restore_twice(open_page, queue_server, make_photo):
    """One restoration at a time: the third page waits behind two. Its place in the queue used to
    sit in a block of height 0, and Restore stayed clickable. Cancel then clears the noisy live
    preview of the running page."""
    pages = []
    for i in range(3):
        pg = open_page(queue_server)
        _upload(pg, make_photo(f"q{i}.png", (40, 32), shift=5 * i), "40x32 px")
        _radio(pg, "mode", "Simulate")
        _choose(pg, "solver", "(dps)")  # from noise: all 1000 steps run (a preset's warm start runs a fifth)
        _number(pg, "steps", 1000)
        pages.append(pg)
    first, second, third = pages
    first.locator("#restore").click()
    first.locator("#preview img").wait_for()  # running, with a live preview
    second.locator("#restore").click()
    second.get_by_text(re.compile(r"queue: 1/1")).first.wait_for()
    third.locator("#restore").click()
    place = third.get_by_text(re.compile(r"queue: 2/2")).first
    place.wait_for()
    place.scroll_into_view_if_needed()
    # Seen = hit-testable at its centre (Gradio's status text takes no pointer events: let it take them).
    on_top = place.evaluate("e => { e.style.pointerEvents = 'auto'; const r = e.getBoundingClientRect();"
                            "const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
                            "return r.height > 0 && hit !== null && e.contains(hit); }")
    assert on_top, "the queue position is hidden (clipped by a block of height 0, or under another block)"
    for pg in pages:
        assert pg.locator("#restore").is_disabled(), "Restore is clickable while queued or running"
    for pg in (third, second, first):
        pg.locator("#cancel").click()
        pg.locator("#report", has_text="Cancelled.").wait_for()
        expect_enabled(pg.locator("#restore"))
    first.locator("#preview img").wait_for(state="detached", timeout=10_000)


def test_deblur_shows_only_the_chosen_kernels_settings(page):
    _radio(page, "task", "deblur")
    shown = lambda: {k: page.locator(f"#{k}").is_visible()  # noqa: E731
                     for k in ("kernel-size", "blur-std", "motion-intensity", "kernel-file")}
    page.locator("#blur-std").wait_for()
    assert shown() == {"kernel-size": True, "blur-std": True, "motion-intensity": False, "kernel-file": False}
    _radio(page, "kernel-type", "motion")
    page.locator("#motion-intensity").wait_for()
    assert shown() == {"kernel-size": True, "blur-std": False, "motion-intensity": True, "kernel-file": False}
    _radio(page, "kernel-type", "kernel file")
    page.locator("#kernel-file").wait_for()
    assert shown() == {"kernel-size": False, "blur-std": False, "motion-intensity": False, "kernel-file": True}


def test_noise_in_my_photo_is_estimated_and_separate_from_noise_to_add(page, tmp_path, restore_calls):
    import torch

    from inversa.imageio import save_image

    g = torch.Generator().manual_seed(0)  # a smooth picture plus noise of std 0.08
    ramp = torch.linspace(0.3, 0.7, 128)
    clean = (ramp[None, :] * torch.ones(96, 1))[None, None].expand(1, 3, 96, 128)
    noisy = save_image((clean + 0.08 * torch.randn(clean.shape, generator=g)).clamp(0, 1), tmp_path / "noisy.png")
    _upload(page, noisy, "128x96 px")
    field = page.locator("#noise-in-photo").locator("textarea, input").first
    page.wait_for_function("el => el.value !== ''", arg=field.element_handle(), timeout=30_000)
    estimate = float(field.input_value())
    assert 0.065 < estimate < 0.095, estimate
    assert not page.locator("#noise-to-add").is_visible()
    _radio(page, "task", "denoise")
    _number(page, "steps", 1)
    _restore(page, restore_calls)
    assert restore_calls[-1]["sigma"] == pytest.approx(estimate)
    field.fill("0.05")  # the user's own value wins, and is kept when the size limit changes
    _number(page, "max-side", 64)
    page.wait_for_timeout(1000)
    assert field.input_value() == "0.05"
    _restore(page, restore_calls)
    assert restore_calls[-1]["sigma"] == 0.05
    _radio(page, "mode", "Simulate")
    page.locator("#noise-to-add").wait_for()
    assert not page.locator("#noise-in-photo").is_visible()


def test_examples_table_shows_every_column(page):
    table = page.locator("table", has_text="What do you want to do?")
    table.wait_for()
    right = table.evaluate("t => t.parentElement.getBoundingClientRect().right")
    heads = table.locator("th")
    assert heads.count() == 5
    assert heads.nth(4).bounding_box()["x"] + heads.nth(4).bounding_box()["width"] <= right + 1, "5th column cut"
    cat = table.locator("tr", has_text="sr4")
    assert "super-resolution" in cat.locator("td").nth(2).inner_text()


def test_quality_preset_and_mean_of_k_reach_restore_and_the_report_says_which(page, make_photo, restore_calls):
    """The Quality radio picks the method for the task (Method: Recommended), the samples slider asks
    for the mean of k restorations, and the report says which one the user got."""
    _upload(page, make_photo("q.png", (40, 32)), "40x32 px")
    _radio(page, "mode", "Simulate")
    page.locator("#solver-help", has_text="quality preset picks it").wait_for()
    _radio(page, "quality", "Fast")
    _number(page, "steps", 2)
    _restore(page, restore_calls)
    call = restore_calls[-1]
    assert call["solver"] is None and call["quality"] == "fast" and call["samples"] == 1, call
    used = call["result"].metadata["solver"]
    assert used == setting("fast", "box_inpaint").solver
    report = page.locator("#report").inner_text()
    assert f"({used})" in report and "one restoration" in report, report

    _number(page, "samples", 2)
    _restore(page, restore_calls)
    assert restore_calls[-1]["samples"] == 2
    page.locator("#report", has_text="the mean of 2 restorations").wait_for(timeout=10_000)
