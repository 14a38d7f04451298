"""The Gradio page: upload a photo, mark the damage (or simulate one), restore, compare, download.

    from inversa.app import build_app, launch
    launch(host="127.0.0.1", port=7860, default_model="path/to/diffusers-folder")

The restore event is also an API endpoint (`/restore`) for `gradio_client`; its parameters are the
`run` arguments below (all but `photo` have defaults).
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

import gradio as gr
import torch
import torch.nn.functional as F

from inversa.app.runner import (Cancelled, ModelCache, check_image_file, open_upright, parse_params,
                                restore_kwargs, run_stream, solver_params)
from inversa.errors import UserError

MODES = [("My photo is damaged", "damaged"), ("Simulate a degradation (see PSNR/SSIM)", "simulate")]
TASKS = [("Holes or scratches (inpaint)", "inpaint"), ("Blur (deblur)", "deblur"),
         ("Low resolution (super-resolution)", "sr"), ("Noise (denoise)", "denoise")]
EDITOR_SIDE = 1024  # the brush canvas shows at most this; the mask is scaled back to the photo


def _pil(x: torch.Tensor, size: tuple[int, int] | None = None):
    from inversa.imageio import tensor_to_pil

    if size is not None and tuple(x.shape[-2:]) != tuple(size):  # nearest keeps low-res pixels visible
        x = F.interpolate(x.float(), size=size, mode="nearest")
    return tensor_to_pil(x)


def _error(message: str, **kwargs) -> gr.Error:
    """A user's mistake: shown in the page, no traceback in the server log."""
    return gr.Error(message, print_exception=False, **kwargs)


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class _App:
    def __init__(self, *, default_model, device, default_steps, max_side, max_pixels):
        from inversa.pretrained import registry

        self.default_model = str(default_model) if default_model else registry.DEFAULT_MODEL
        self.models = ModelCache(device or _default_device())
        self.default_steps, self.max_side, self.max_pixels = default_steps, max_side, max_pixels
        self.tmp = Path(tempfile.mkdtemp(prefix="inversa-app-"))
        weakref.finalize(self, shutil.rmtree, self.tmp, True)
        self._cancels: dict[str, threading.Event] = {}

    def _run_dir(self) -> Path:
        for old in self.tmp.glob("run-*"):  # results older than an hour were downloaded or abandoned
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.tmp))

    # --- event handlers -------------------------------------------------------------------------
    def check_photo(self, payload, max_side):
        """Runs on the raw upload (preprocess=False), so unreadable files get a clear message."""
        if not payload:
            return None, ""
        try:
            check_image_file(payload["path"], max_pixels=self.max_pixels, name=payload.get("orig_name"))
            im = open_upright(payload["path"], payload.get("orig_name"))
        except UserError as exc:
            raise _error(str(exc), duration=None) from None
        w, h = im.size  # the brush canvas gets an upright copy of at most EDITOR_SIDE
        im.thumbnail((EDITOR_SIDE, EDITOR_SIDE))
        path = str(self._run_dir() / "editor.png")
        im.save(path)
        note = f"{w}x{h} px"
        if max(w, h) > int(max_side):
            note += f"; restored at most {int(max_side)} px on the longer side (Settings: max image side)"
        return {"background": path, "layers": [], "composite": path}, note

    def check_mask(self, payload):
        if payload:
            try:
                check_image_file(payload["path"], max_pixels=self.max_pixels, name=payload.get("orig_name"))
            except UserError as exc:
                raise _error(str(exc), duration=None) from None

    def degrade(self, photo, mode, preset, seed, sigma, max_side):
        """The simulated measurement (no model needed: the naive solver)."""
        if mode != "simulate" or not photo:
            return None
        from inversa.restore import restore

        try:
            kw, _ = restore_kwargs(photo=photo, mode="simulate", task="inpaint", preset=preset, solver="naive", steps=1,
                                   seed=seed, sigma=sigma, max_side=max_side, max_pixels=self.max_pixels)
            r = restore(**kw)
        except UserError as exc:
            raise _error(str(exc)) from None
        return _pil(r.measurement, tuple(r.naive.shape[-2:]))

    def cancel(self, request: gr.Request):
        ev = self._cancels.get(getattr(request, "session_hash", None) or "")
        if ev is not None:
            ev.set()
        return "Cancelled."

    def run(self, photo, mode="damaged", task="inpaint", editor=None, mask_file=None, kernel_type="gaussian",
            kernel_size=21, blur_std=3.0, motion_intensity=0.5, kernel_file=None, factor=4, preset="box_inpaint",
            solver="dps", steps=None, seed=0, sigma=0.025, model=None, max_side=None, scale=None, sampler="ddpm",
            params="", request: gr.Request = None, progress=gr.Progress()):
        """Generator: yields (preview, before/after, comparison, report, restored file, comparison file)."""
        steps, max_side = steps or self.default_steps, max_side or self.max_side
        cancel, key = threading.Event(), getattr(request, "session_hash", None) or str(id(threading.current_thread()))
        self._cancels[key] = cancel
        off = gr.DownloadButton(value=None, interactive=False)
        try:
            try:
                kw, notes = restore_kwargs(photo=photo, mode=mode, task=task, editor=editor, mask_file=mask_file,
                                           kernel_type=kernel_type, kernel_size=kernel_size, blur_std=blur_std,
                                           motion_intensity=motion_intensity, kernel_file=kernel_file, factor=factor,
                                           preset=preset, solver=solver, steps=steps, seed=seed, sigma=sigma,
                                           max_side=max_side, max_pixels=self.max_pixels,
                                           solver_params=parse_params(params, solver, scale=scale, sampler=sampler))
                yield None, None, None, f"Loading the model `{model or self.default_model}`…", off, off
                prior = None if solver == "naive" else self.models.get(model or self.default_model)
                yield gr.skip(), gr.skip(), gr.skip(), "Sampling…", gr.skip(), gr.skip()
                progress(0, desc="sampling")
                t0 = time.perf_counter()
                for item in run_stream(kw, prior, cancel):
                    if item[0] == "step":
                        _, i, n, preview = item
                        progress((i, n), desc="sampling", unit="steps")
                        if preview is not None:
                            yield _pil(preview), gr.skip(), gr.skip(), f"Step {i}/{n}…", gr.skip(), gr.skip()
                    else:
                        result = item[1]
                        result.messages[:0] = notes
            except UserError as exc:
                raise _error(str(exc)) from None
            except Cancelled:
                gr.Warning("Restoration cancelled.")
                yield gr.skip(), gr.skip(), gr.skip(), "Cancelled.", off, off
                return
            except (RuntimeError, ValueError, OSError) as exc:  # e.g. out of memory: one line, the app keeps going
                first_line = (str(exc).splitlines() or [""])[0]
                raise gr.Error(f"restoration failed: {type(exc).__name__}: {first_line}") from None
            yield self._outputs(result, solver, time.perf_counter() - t0)
        finally:
            cancel.set()  # also stops the worker when the page cancels or disconnects
            if self._cancels.get(key) is cancel:
                del self._cancels[key]

    def _outputs(self, r, solver, seconds):
        from inversa.imageio import save_image, side_by_side

        size = tuple(r.restored.shape[-2:])
        before, after = _pil(r.measurement, size), _pil(r.restored)
        panels, labels = [r.measurement, r.restored], ["degraded" if r.clean is not None else "input", "restored"]
        if r.clean is not None:
            panels, labels = panels + [r.clean], labels + ["original"]
        comparison = side_by_side(panels, labels, height=max(size[0], 256))  # small results shown larger
        d = self._run_dir()
        restored_path = save_image(r.restored, d / "restored.png")
        comparison_path = save_image(comparison, d / "comparison.png")
        meta = r.metadata
        how = "" if solver == "naive" else (f", {meta.get('num_steps')} steps, seed {meta.get('seed')}, NFE "
                                            f"{meta.get('nfe')}, VJP {meta.get('vjp')}")
        lines = [f"**Restored** {size[1]}x{size[0]} px with `{solver}`{how}, in {seconds:.1f} s."]
        if r.metrics:
            m = r.metrics
            lines += ["", "| against the original | PSNR (dB) | SSIM |", "|---|---|---|",
                      f"| degraded (simple inverse) | {m['psnr_naive']:.2f} | {m['ssim_naive']:.4f} |",
                      f"| restored | {m['psnr_restored']:.2f} | {m['ssim_restored']:.4f} |"]
        lines += [f"\n_{msg}_" for msg in r.messages]
        # Plain paths (not component updates) so API clients get files; a follow-up event enables the buttons.
        return after, (before, after), comparison, "\n".join(lines), str(restored_path), str(comparison_path)


def _solver_help(name: str) -> str:
    from inversa.solvers import SOLVERS

    about = " ".join((SOLVERS[name].__doc__ or "").strip().split("\n\n")[0].split())
    params = ", ".join(f"`{k}`" if v is inspect.Parameter.empty else f"`{k}={v!r}`" for k, v in solver_params(name).items())
    return f"**{name}**: {about}\n\n" + (f"Parameters (defaults; set under Advanced): {params}" if params else "No parameters.")


def _examples(folder: Path) -> list[list]:
    """Offline examples: scikit-image's astronaut and cat, and the astronaut with painted scratches."""
    from PIL import Image, ImageDraw
    from skimage import data

    from inversa.demo import demo_image
    from inversa.imageio import save_image

    astro = save_image(demo_image(256), folder / "astronaut.png")
    Image.fromarray(data.chelsea()).resize((256, 170), Image.LANCZOS).save(folder / "cat.png")
    mask = Image.new("L", (256, 256), 0)
    draw = ImageDraw.Draw(mask)
    for line in [(20, 40, 200, 90), (60, 230, 240, 150), (140, 10, 110, 250)]:
        draw.line(line, fill=255, width=7)
    mask.save(folder / "scratches_mask.png")
    with Image.open(astro) as im:
        scratched = im.convert("RGB")
    scratched.paste((255, 255, 255), mask=mask)
    scratched.save(folder / "astronaut_scratched.png")
    scratched, scratches = str(folder / "astronaut_scratched.png"), str(folder / "scratches_mask.png")
    return [[scratched, "damaged", "inpaint", scratches, "box_inpaint"],
            [str(astro), "simulate", "inpaint", None, "box_inpaint"],
            [str(folder / "cat.png"), "simulate", "inpaint", None, "sr4"]]


def build_app(default_model=None, *, device: str | None = None, default_steps: int = 30, max_side: int = 256,
              max_pixels: int = 16_000_000, concurrency: int = 2, queue_size: int = 32,
              examples: bool = True) -> gr.Blocks:
    """The web UI. `default_model`: bundled name, diffusers folder or hub id (default: the bundled
    prior); `max_side`: default longer side images are restored at; `max_pixels`: largest accepted
    upload; `concurrency`: restorations running at once (others wait in a queue of `queue_size`)."""
    from inversa.operators import PRESETS
    from inversa.pretrained import registry
    from inversa.solvers import SOLVERS

    app = _App(default_model=default_model, device=device, default_steps=default_steps, max_side=max_side,
               max_pixels=max_pixels)
    models = [m.name for m in registry.restoration_models()]
    models = models if app.default_model in models else [app.default_model] + models
    solvers = sorted(SOLVERS, key=lambda s: (s == "naive", s != "dps", s))  # dps first, the baseline last

    with gr.Blocks(title="inversa: restore a photo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        demo.inversa = app  # for tests and embedding
        gr.Markdown("## inversa — restore a photo with a diffusion prior\n"
                    "Upload a photo, say what is wrong with it (or simulate a degradation of a clean photo), "
                    "press **Restore**. Runs on this machine; nothing is sent elsewhere.")
        with gr.Row():
            with gr.Column():
                photo = gr.Image(label="Photo (upload, paste or webcam)", type="filepath", image_mode=None, format="png",
                                 sources=["upload", "clipboard", "webcam"], height=300, elem_id="photo")
                photo_info = gr.Markdown(elem_id="photo-info")
                mode = gr.Radio(MODES, value="damaged", label="What do you want to do?", elem_id="mode")
                with gr.Group(visible=True) as damaged_box:
                    task = gr.Radio(TASKS, value="inpaint", label="What is wrong with the photo?", elem_id="task")
                    with gr.Column(visible=True) as inpaint_box:
                        editor = gr.ImageEditor(label="Brush over the holes and scratches (painted = missing)",
                                                type="numpy", sources=[], transforms=(), layers=False,
                                                brush=gr.Brush(default_size=8, colors=["#ff00ff"], color_mode="fixed"),
                                                canvas_size=(512, 512), height=360, elem_id="editor")
                        mask_file = gr.Image(label="…or upload a mask (white = missing, same size as the photo)",
                                             type="filepath", image_mode=None, sources=["upload"], height=160,
                                             elem_id="mask")
                    with gr.Column(visible=False) as blur_box:
                        kernel_type = gr.Radio(["gaussian", "motion", "file"], value="gaussian", label="Blur kernel",
                                               info="Gaussian (out of focus), motion (camera shake, drawn from the "
                                                    "seed), or your own file")
                        kernel_size = gr.Slider(3, 61, value=21, step=2, label="Kernel size (px, odd)")
                        blur_std = gr.Slider(0.3, 10, value=3.0, step=0.1, label="Gaussian std (px)")
                        motion_intensity = gr.Slider(0, 1, value=0.5, step=0.05, label="Motion intensity")
                        kernel_file = gr.File(label="Kernel file (.npy, .npz or a grey image)", type="filepath",
                                              file_types=[".npy", ".npz", "image"])
                    with gr.Column(visible=False) as sr_box:
                        factor = gr.Radio([2, 4, 8], value=4, label="Upscaling factor")
                with gr.Group(visible=False) as simulate_box:
                    preset = gr.Dropdown([(f"{k}: {v}", k) for k, v in PRESETS.items()], value="box_inpaint",
                                         label="Degradation (benchmark preset)", elem_id="preset")
                    degraded = gr.Image(label="Degraded: what the solver sees", interactive=False, format="png",
                                        height=260, elem_id="degraded")
            with gr.Column():
                solver = gr.Dropdown(solvers, value=solvers[0], label="Method", elem_id="solver")
                solver_help = gr.Markdown(_solver_help(solvers[0]), elem_id="solver-help")
                steps = gr.Slider(1, 1000, value=default_steps, step=1, label="Sampling steps", elem_id="steps",
                                  info="more is slower and usually better; 25-50 is fine on a CPU")
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, label="Seed", info="same seed, same result")
                    sigma = gr.Slider(0, 0.2, value=0.025, step=0.005, label="Noise level σ",
                                      info="[0, 1] units; 0.025 is the literature's 0.05 on [-1, 1]")
                model = gr.Dropdown(models, value=app.default_model, allow_custom_value=True, label="Model (prior)",
                                    info="a bundled name, a hub id (256², needs a GPU), or a local diffusers folder")
                max_side_in = gr.Slider(32, max(1024, max_side), value=max_side, step=32, label="Max image side (px)",
                                        info="larger photos are downscaled first; keep small on a CPU")
                with gr.Accordion("Advanced: method parameters", open=False):
                    scale = gr.Number(None, label="Guidance scale (empty = the method's default)",
                                      info="DPS: step size of the data-fidelity gradient (0.3 deblur/SR, 0.5 inpaint)")
                    sampler = gr.Radio(["ddpm", "ddim"], value="ddpm", label="Sampler")
                    params = gr.Textbox("", label="Other parameters", placeholder="key=value, key=value", lines=1)
                with gr.Row():
                    run_btn = gr.Button("Restore", variant="primary", elem_id="restore")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
                report = gr.Markdown(label="Report", elem_id="report")
                preview = gr.Image(label="Result (live estimate while sampling)", interactive=False, format="png",
                                   height=300, elem_id="preview")
                slider = gr.ImageSlider(label="Before / after", type="pil", format="png", interactive=False,
                                        max_height=300, elem_id="slider")
        comparison = gr.Image(label="Side by side", interactive=False, format="png", elem_id="comparison")
        with gr.Row():
            dl_restored = gr.DownloadButton("Download restored PNG", interactive=False, elem_id="dl-restored")
            dl_comparison = gr.DownloadButton("Download comparison PNG", interactive=False, elem_id="dl-comparison")
        if examples:
            gr.Examples(_examples(app.tmp), inputs=[photo, mode, task, mask_file, preset], label="Examples (offline)")

        private = dict(api_visibility="private")
        checked = photo.change(app.check_photo, [photo, max_side_in], [editor, photo_info], preprocess=False, **private)
        checked.failure(lambda: (None, None, ""), None, [photo, editor, photo_info], **private)
        mask_file.change(app.check_mask, mask_file, None, preprocess=False,
                         **private).failure(lambda: None, None, mask_file, **private)
        mode.change(lambda m: (gr.update(visible=m == "damaged"), gr.update(visible=m == "simulate")), mode,
                    [damaged_box, simulate_box], **private)
        task.change(lambda t: tuple(gr.update(visible=t == k) for k in ("inpaint", "deblur", "sr")), task,
                    [inpaint_box, blur_box, sr_box], **private)
        solver.change(_solver_help, solver, solver_help, **private)
        degrade = dict(fn=app.degrade, inputs=[photo, mode, preset, seed, sigma, max_side_in], outputs=degraded, **private)
        checked.success(**degrade)  # after the check: a bad upload gets one clear error, not two
        gr.on([mode.change, preset.change, seed.change, sigma.change, max_side_in.change], trigger_mode="always_last",
              **degrade)
        run_evt = run_btn.click(
            app.run, [photo, mode, task, editor, mask_file, kernel_type, kernel_size, blur_std, motion_intensity,
                      kernel_file, factor, preset, solver, steps, seed, sigma, model, max_side_in, scale, sampler, params],
            [preview, slider, comparison, report, dl_restored, dl_comparison], api_name="restore",
            concurrency_limit=concurrency, concurrency_id="restore", show_progress_on=[report])
        run_evt.then(lambda *files: tuple(gr.update(interactive=bool(f)) for f in files), [dl_restored, dl_comparison],
                     [dl_restored, dl_comparison], **private)
        cancel_btn.click(app.cancel, None, report, cancels=[run_evt], queue=False, **private)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo


def launch(demo: gr.Blocks | None = None, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           max_file_size: str | int = "20mb", block: bool = True, **build_kwargs) -> gr.Blocks:
    """Build (unless given) and serve the app; binds `host` (loopback by default). With
    `block=False` it returns once the server is up (`demo.local_url`, `demo.close()`)."""
    demo = demo or build_app(**build_kwargs)
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=max_file_size,
                prevent_thread_lock=not block, show_error=False, quiet=not block)
    return demo
