import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# The test app's limits: a 4000x3000 photo is accepted (a flat PNG of that size is a small file);
# "too large" uploads are small files too.
MAX_PIXELS = 4000 * 3000
MAX_FILE_SIZE = "100kb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def make_photo(tmp_path):
    """make_photo(name, (w, h), shift): a PNG of the astronaut resized (and rolled by `shift` px), its
    levels squeezed into [0.1, 0.9] so that black pixels in a measurement can only be masked ones."""
    from inversa.demo import demo_image
    from inversa.imageio import save_image

    def make(name="photo.png", size=(96, 72), shift=0):
        x = torch.nn.functional.interpolate(demo_image(128), size=(size[1], size[0]), mode="bilinear", antialias=True)
        return save_image(torch.roll(0.1 + 0.8 * x.clamp(0, 1), shifts=shift, dims=-1), tmp_path / name)
    return make


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The app shares a few busy cores with the browser and other jobs: one torch thread is far
    faster there than several spinning ones (restored after each module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def app_demo(tiny_model_dir):
    """The app serving on a free loopback port with the tiny model and 3 steps."""
    from inversa.app import build_app, launch

    demo = build_app(str(tiny_model_dir), default_steps=3, max_side=128, max_pixels=MAX_PIXELS, concurrency=2)
    launch(demo, port=_free_port(), max_file_size=MAX_FILE_SIZE, block=False)
    yield demo
    demo.close()


@pytest.fixture(scope="session")
def app_server(app_demo):
    """The app's URL."""
    return app_demo.local_url.rstrip("/")


@pytest.fixture(scope="module")
def queue_server(tiny_model_dir):
    """A second app that runs one restoration at a time (the others queue), no examples."""
    from inversa.app import build_app, launch

    demo = build_app(str(tiny_model_dir), default_steps=3, max_side=128, max_pixels=MAX_PIXELS, concurrency=1,
                     examples=False)
    launch(demo, port=_free_port(), max_file_size=MAX_FILE_SIZE, block=False)
    yield demo.local_url.rstrip("/")
    demo.close()


@pytest.fixture()
def restore_calls(monkeypatch):
    """The keyword arguments (and "result") of every `restore()` call a page's Restore made (the app runs in this
    process, so the page's requests reach the spy)."""
    import importlib

    module = importlib.import_module("inversa.restoration")
    calls, real = [], module.restore

    def spy(*args, **kwargs):
        if kwargs.get("callback") is None:  # the simulated preview, not a run
            return real(*args, **kwargs)
        call = {**kwargs, "result": None}
        calls.append(call)
        call["result"] = real(*args, **kwargs)
        return call["result"]

    monkeypatch.setattr(module, "restore", spy)
    return calls


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the Python playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def open_page(browser):
    """open_page(url): a fresh browser context's page on the app (closed after the test)."""
    contexts = []

    def open_(url):
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        contexts.append(ctx)
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(url)
        pg.wait_for_selector("#photo input[type=file]", state="attached")
        return pg
    yield open_
    for ctx in contexts:
        ctx.close()


@pytest.fixture()
def page(open_page, app_server):
    return open_page(app_server)


@pytest.fixture(scope="session")
def to_array():
    """to_array(path) -> (H, W, 3) float array in [0, 1]."""
    def load(path):
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    return load


@pytest.fixture()
def shot(tmp_path):
    """shot(page, name): a full-page screenshot under the test's tmp_path."""
    def take(pg, name):
        out = tmp_path / f"{name}.png"
        pg.screenshot(path=str(out), full_page=True)
        return out
    return take

