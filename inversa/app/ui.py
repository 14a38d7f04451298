"""The Gradio page: upload a photo, mark the damage (or simulate one), restore, compare, download.

    from inversa.app import build_app, launch
    launch(host="127.0.0.1", port=7860, default_model="path/to/diffusers-folder")

The restore event is also an API endpoint (`/restore`) for `gradio_client`; its parameters are the
`run` arguments below (all but `photo` have defaults; empty text fields are the method's defaults).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

import gradio as gr
import torch
import torch.nn.functional as F

from inversa.app.runner import (AUTO, MAX_SIDE_LABEL, NOISE_LABEL, TRANSPARENT_NOTE, Cancelled, ModelCache,
                                check_image_file, estimate_photo_noise, load_mask_for,
                                method_guide, method_label, open_upright, params_help, parse_params, photo_facts,
                                plan_sizes, quality_guide, resolve_solver, restore_kwargs, run_stream,
                                solver_signature, solvers_for, worse_than_naive)
from inversa.errors import UserError

MODES = [("My photo is damaged", "damaged"), ("Simulate a degradation (see PSNR/SSIM)", "simulate")]
TASKS = [("Holes or scratches (inpaint)", "inpaint"), ("Blur (deblur)", "deblur"),
         ("Low resolution (super-resolution)", "sr"), ("Noise (denoise)", "denoise")]
KERNELS = [("Out of focus (Gaussian)", "gaussian"), ("Camera shake (motion)", "motion"), ("My own kernel file", "file")]
SAMPLERS = [("Method default", ""), ("Fresh noise each step (DDPM)", "ddpm"), ("Deterministic (DDIM)", "ddim")]
AUTO_PARAMS_HELP = ("Parameters of the method the quality preset picks (type `key=value` under Other parameters; "
                    "empty = the preset's value); choose a method above to see all of its parameters.")
EDITOR_SIDE = 1024  # the brush canvas shows at most this; the mask is scaled back to the photo
CSS = """
#report { min-height: 3.5em; }
#examples table { table-layout: fixed; width: 100%; }
#examples th, #examples td { white-space: normal; overflow-wrap: anywhere; }
"""


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


def brush_size(side: int) -> int:
    """Brush radius (px of the editor's image) for an image whose longer side is `side`: strokes
    about 1/30 of the side wide (checked in a browser: 900x600 photo, stroke 60 px wide)."""
    return max(2, round(side / 60))


def _brush(size: int) -> gr.Brush:
    return gr.Brush(default_size=size, colors=["#ff00ff"], color_mode="fixed")


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
    def check_photo(self, payload):
        """Runs on the raw upload (preprocess=False), so unreadable files get a clear message.
        Returns the brush canvas (an upright copy of at most EDITOR_SIDE, brush width to scale)."""
        if not payload:
            return None
        try:
            check_image_file(payload["path"], max_pixels=self.max_pixels, name=payload.get("orig_name"))
            im = open_upright(payload["path"], payload.get("orig_name"))
        except UserError as exc:
            raise _error(str(exc), duration=None) from None
        im.thumbnail((EDITOR_SIDE, EDITOR_SIDE))
        path = str(self._run_dir() / "editor.png")
        im.save(path)
        return gr.ImageEditor(value={"background": path, "layers": [], "composite": path},
                              brush=_brush(brush_size(max(im.size))))

    def photo_note(self, payload, mode, task, factor, preset, max_side):
        """The size note under the photo: sizes the solver works at and what changes them."""
        if not payload:
            return ""
        try:
            size, transparent = photo_facts(payload["path"], payload.get("orig_name"))
            note = plan_sizes(size, mode=mode, task=task, factor=factor, preset=preset, max_side=max_side).note()
        except UserError as exc:
            return f"⚠ {exc}"
        return note + (f" Note: {TRANSPARENT_NOTE}." if transparent else "")

    def estimate_noise(self, payload, max_side, current, last_auto):
        """Fill 'Noise in my photo' with the estimate at the working size, unless the user typed
        their own value (the field then differs from the last estimate)."""
        if not payload:
            return gr.skip(), gr.skip()
        if (current or "").strip() not in ("", (last_auto or "").strip()):
            return gr.skip(), gr.skip()
        try:
            est = f"{estimate_photo_noise(payload['path'], max_side=int(max_side), max_pixels=self.max_pixels):.4f}"
        except UserError:
            return gr.skip(), gr.skip()  # check_photo already says why
        except Exception as exc:  # e.g. a missing wavelet library: say so, the run can still go on with a typed value
            gr.Warning(f"could not estimate the photo's noise ({type(exc).__name__}: {exc}); type it in '{NOISE_LABEL}'")
            return gr.skip(), gr.skip()
        return est, est

    def check_mask(self, payload, photo):
        """A mask upload: refused at once when it does not match the photo or marks everything missing."""
        if not payload:
            return
        try:
            if photo:
                size = photo_facts(photo["path"])[0]
                load_mask_for(payload["path"], size, max_pixels=self.max_pixels, name=payload.get("orig_name"))
            else:
                check_image_file(payload["path"], max_pixels=self.max_pixels, name=payload.get("orig_name"))
        except UserError as exc:
            raise _error(str(exc), duration=None) from None

    def degrade(self, photo, mode, preset, seed, noise_to_add, max_side):
        """The simulated measurement (no model needed: the naive solver)."""
        if mode != "simulate" or not photo:
            return None
        from inversa.restoration import restore

        try:
            kw, _ = restore_kwargs(photo=photo, mode="simulate", task="inpaint", preset=preset, solver="naive", steps=1,
                                   seed=seed, noise_to_add=noise_to_add, max_side=max_side, max_pixels=self.max_pixels)
            r = restore(**kw)
        except UserError as exc:
            raise _error(str(exc)) from None
        except Exception as exc:  # one readable line, not a bare "Error" badge
            raise gr.Error(f"could not simulate the degradation: {type(exc).__name__}: {exc}") from None
        return _pil(r.measurement, tuple(r.naive.shape[-2:]))

    def cancel(self, request: gr.Request):
        """Cancel: stop this page's run; the live preview (a noisy estimate) is cleared."""
        ev = self._cancels.get(getattr(request, "session_hash", None) or "")
        if ev is not None:
            ev.set()
        return "Cancelled.", None, gr.Button(interactive=True)

    def run(self, photo, mode="damaged", task="inpaint", editor=None, mask_file=None, kernel_type="gaussian",
            kernel_size=21, blur_std=3.0, motion_intensity=0.5, kernel_file=None, factor=4, preset="box_inpaint",
            solver=AUTO, steps=None, seed=0, noise_in_photo="", noise_to_add=0.025, model=None, max_side=None,
            scale="", start="", sampler="", params="", quality="balanced", samples=1, keep_observed=False,
            request: gr.Request = None, progress=gr.Progress()):
        """Generator: yields (preview, before/after, comparison, report, restored file, comparison file).
        Empty `scale`/`start`/`sampler`/`params` send nothing (the method's defaults); an empty
        `noise_in_photo` is estimated from the photo. `solver` AUTO and `steps` 0 take the `quality`
        preset's choice for the task; `samples` k > 1 returns the mean of k restorations."""
        steps, max_side = steps or self.default_steps, max_side or self.max_side
        cancel, key = threading.Event(), getattr(request, "session_hash", None) or str(id(threading.current_thread()))
        self._cancels[key] = cancel
        off = gr.DownloadButton(value=None, interactive=False)
        skip = gr.skip()
        try:
            try:
                used = resolve_solver(solver, quality, mode, task, preset, self.models.kind(model or self.default_model))
                kw, notes = restore_kwargs(photo=photo, mode=mode, task=task, editor=editor, mask_file=mask_file,
                                           kernel_type=kernel_type, kernel_size=kernel_size, blur_std=blur_std,
                                           motion_intensity=motion_intensity, kernel_file=kernel_file, factor=factor,
                                           preset=preset, solver=solver, steps=steps, seed=seed,
                                           noise_in_photo=noise_in_photo, noise_to_add=noise_to_add,
                                           max_side=max_side, max_pixels=self.max_pixels, quality=quality,
                                           samples=samples, keep_observed=keep_observed,
                                           solver_params=parse_params(params, used, scale=scale, start=start,
                                                                      sampler=sampler))
                yield None, None, None, f"Loading the model `{model or self.default_model}`…", off, off
                prior = None if used == "naive" else self.models.get(model or self.default_model)
                yield skip, skip, skip, "Sampling…", skip, skip
                progress(0, desc="sampling")
                t0 = time.perf_counter()
                for item in run_stream(kw, prior, cancel):
                    if item[0] == "step":
                        _, i, n, preview = item
                        progress((i, n), desc="sampling", unit="steps")
                        if preview is not None:
                            yield _pil(preview), skip, skip, f"Step {i}/{n}…", skip, skip
                    else:
                        result = item[1]
                        result.messages[:0] = notes
            except Cancelled:
                gr.Warning("Restoration cancelled.")
                yield None, skip, skip, "Cancelled.", off, off
                return
            except UserError as exc:
                yield None, skip, skip, f"**Not restored:** {exc}", off, off
                raise _error(str(exc)) from None
            except Exception as exc:  # e.g. out of memory: one readable line, the app keeps going
                first_line = (str(exc).splitlines() or [""])[0]
                message = f"restoration failed: {type(exc).__name__}: {first_line}"
                yield None, skip, skip, f"**Not restored:** {message}", off, off
                raise gr.Error(message) from None  # (logged with its traceback: not the user's mistake)
            yield self._outputs(result, result.metadata.get("solver") or used, time.perf_counter() - t0)  # a latent
            # model's preset is known once it is loaded
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
        how = "" if solver == "naive" else (f", {meta.get('num_steps')} steps, seed {meta.get('seed')}: "
                                            f"{meta.get('nfe')} network evaluations, {meta.get('vjp')} gradient passes")
        done = f"{size[1]}x{size[0]} px with {method_label(solver)} (`{solver}`){how}, in {seconds:.1f} s."
        m = r.metrics
        if worse_than_naive(m):
            lines = [f"**Worse than the simple inverse:** PSNR {m['psnr_restored']:.2f} dB against "
                     f"{m['psnr_naive']:.2f} dB for the simple inverse of the degraded photo. This result is "
                     f"{done[0].lower()}{done[1:]} Try the Recommended method (a quality preset), a warm start "
                     "(Advanced: Warm start 0.3), the mean of several restorations, or a prior trained on photos "
                     "like this one."]
        else:
            lines = [f"**Restored** {done}"]
        if m:
            lines += ["", "| against the original | PSNR (dB) | SSIM |", "|---|---|---|",
                      f"| degraded (simple inverse) | {m['psnr_naive']:.2f} | {m['ssim_naive']:.4f} |",
                      f"| restored | {m['psnr_restored']:.2f} | {m['ssim_restored']:.4f} |"]
        lines += [f"\n_{msg}_" for msg in r.messages]
        # Plain paths (not component updates) so API clients get files; a follow-up event enables the buttons.
        return after, (before, after), comparison, "\n".join(lines), str(restored_path), str(comparison_path)


def method_order(names: list[str]) -> list[str]:
    """The method list's order: DPS first (then latent DPS), the naive baseline last, the rest by name."""
    return sorted(names, key=lambda s: (s == "naive", s not in ("dps", "latent-dps"), s))


def method_choices(names: list[str]) -> list[tuple[str, str]]:
    return [("Recommended for the quality", AUTO)] + [(f"{method_label(s)} ({s})", s) for s in names]


def method_dropdown(kind: str | None, current: str) -> gr.Dropdown:
    """The Method list for a model of `kind` (every solver while the kind is unknown): the current choice
    kept when it fits, else the Recommended entry."""
    names = method_order(solvers_for(kind))
    return gr.Dropdown(choices=method_choices(names), value=current if current in names else AUTO)


def _solver_help(name: str) -> str:
    """One line on the chosen method: what it is, its cost per step (for AUTO: what each quality runs)."""
    if name == AUTO:
        return quality_guide()
    guide = dict(method_guide())
    return guide[name] if name in guide else f"`{name}`"


def _advanced(name: str):
    """The Advanced fields that apply to the chosen method, and its parameters in plain words."""
    sig = auto_signature() if name == AUTO else solver_signature(name)
    return (gr.update(visible="scale" in sig), gr.update(visible="start" in sig), gr.update(visible="sampler" in sig),
            AUTO_PARAMS_HELP if name == AUTO else params_help(name))


def auto_signature() -> dict:
    """The parameters every solver a quality preset can pick accepts (the Advanced fields shown for AUTO)."""
    from inversa.quality import PRESETS

    names = {s.solver for per_task in PRESETS.values() for s in per_task.values()}
    sigs = [solver_signature(n) for n in sorted(names)]
    return {k: p for k, p in sigs[0].items() if all(k in other for other in sigs[1:])}


def _examples(folder: Path) -> tuple[list[list], list[str]]:
    """Offline examples, rows of (photo, mode, task, mask, preset): scikit-image's astronaut and cat,
    and the astronaut with painted scratches."""
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
            [str(folder / "cat.png"), "simulate", "sr", None, "sr4"]]  # the task column says what sr4 is


def build_app(default_model=None, *, device: str | None = None, default_steps: int | None = None, max_side: int = 256,
              max_pixels: int = 16_000_000, concurrency: int = 2, queue_size: int = 32,
              examples: bool = True) -> gr.Blocks:
    """The web UI. `default_model`: bundled name, diffusers folder or hub id (default: the bundled
    prior); `max_side`: default longer side of the photo the solver gets (super-resolution returns
    factor x that); `max_pixels`: largest accepted upload; `concurrency`: restorations running at
    once (others wait in a queue of `queue_size`, shown their place)."""
    from inversa import operators as ops
    from inversa.operators import PRESETS
    from inversa.pretrained import registry
    from inversa.quality import DEFAULT_QUALITY, QUALITIES, seconds_range

    app = _App(default_model=default_model, device=device, default_steps=default_steps, max_side=max_side,
               max_pixels=max_pixels)
    models = [m.name for m in registry.restoration_models()]
    models = models if app.default_model in models else [app.default_model] + models
    solvers = [AUTO] + method_order(solvers_for(app.models.kind(app.default_model)))  # those that fit the model

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
                                                brush=_brush(8), canvas_size=(512, 512), height=360, elem_id="editor")
                        mask_file = gr.Image(label="…or upload a mask (white = missing, same size as the photo)",
                                             type="filepath", image_mode=None, format="png", sources=["upload"],
                                             height=160, elem_id="mask")
                    with gr.Column(visible=False) as blur_box:
                        kernel_type = gr.Radio(KERNELS, value="gaussian", label="Blur kind", elem_id="kernel-type")
                        kernel_size = gr.Slider(3, 61, value=21, step=2, label="Blur size (px, odd)",
                                                visible=True, elem_id="kernel-size")
                        blur_std = gr.Slider(0.3, 10, value=3.0, step=0.1, label="Blur radius (Gaussian std, px)",
                                             visible=True, elem_id="blur-std")
                        motion_intensity = gr.Slider(0, 1, value=0.5, step=0.05, label="Shake strength",
                                                     info="the shake's path is drawn from the seed",
                                                     visible=False, elem_id="motion-intensity")
                        kernel_file = gr.File(label="Kernel file (.npy, .npz or a grey image)", type="filepath",
                                              file_types=[".npy", ".npz", "image"], visible=False, elem_id="kernel-file")
                    with gr.Column(visible=False) as sr_box:
                        factor = gr.Radio([2, 4, 8], value=4, label="Upscaling factor", elem_id="factor")
                    noise_in_photo = gr.Textbox("", label=f"{NOISE_LABEL} (σ, 0–1)", elem_id="noise-in-photo",
                                                placeholder="estimated from the photo",
                                                info="estimated from the photo on upload; type your own value to "
                                                     "override (empty = estimate at Restore)")
                with gr.Group(visible=False) as simulate_box:
                    preset = gr.Dropdown([(f"{k}: {v}", k) for k, v in PRESETS.items()], value="box_inpaint",
                                         label="Degradation (benchmark preset)", elem_id="preset")
                    noise_to_add = gr.Slider(0, 0.2, value=ops.DEFAULT_SIGMA, step=0.005, label="Noise to add (σ, 0–1)",
                                             info=f"{ops.DEFAULT_SIGMA} is the literature's 0.05 on [-1, 1]",
                                             elem_id="noise-to-add")
                    degraded = gr.Image(label="Degraded: what the solver sees", interactive=False, format="png",
                                        height=260, elem_id="degraded")
            with gr.Column():
                with gr.Accordion("Which method? (guide)", open=True, elem_id="guide-box"):
                    gr.Markdown("\n".join(f"- {line}" for _, line in method_guide()) +
                                "\n\nA network evaluation is one pass of the prior; a gradient pass costs about "
                                "as much again. The bundled prior (`inversa-photo-64`) learnt textures from 25 photos, "
                                "not faces or objects: it cannot bring back a face's features; a face prior "
                                "(`inversa models list`) can.", elem_id="guide")
                quality = gr.Radio([(f"{q.capitalize()} (~{seconds_range(q)} at 256²)", q) for q in QUALITIES],
                                   value=DEFAULT_QUALITY, label="Quality", elem_id="quality",
                                   info="picks the method, steps and warm start for the task (Recommended method)")
                solver = gr.Dropdown(method_choices(solvers[1:]), value=AUTO, label="Method", elem_id="solver")
                solver_help = gr.Markdown(_solver_help(AUTO), elem_id="solver-help")
                steps = gr.Slider(0, 1000, value=default_steps or 0, step=1, label="Sampling steps", elem_id="steps",
                                  info="0 = the quality preset's (50 for a chosen method); more is slower and usually "
                                       "better")
                samples = gr.Slider(1, 8, value=1, step=1, label="Restorations to average", elem_id="samples",
                                    info="1 = one restoration (sharp; may invent detail); k = the mean of k (higher "
                                         "PSNR, smoother; k times the time)")
                keep_observed = gr.Checkbox(False, label="Keep the photo's own pixels exactly (inpainting, noise 0)",
                                            elem_id="keep-observed")
                seed = gr.Number(0, precision=0, minimum=0, label="Seed", info="same seed, same result")
                model = gr.Dropdown(models, value=app.default_model, allow_custom_value=True, label="Model (prior)",
                                    info="a bundled name, a hub id (256², needs a GPU), or a local diffusers folder")
                max_side_in = gr.Slider(32, max(1024, max_side), value=max_side, step=32, label=MAX_SIDE_LABEL,
                                        elem_id="max-side",
                                        info="larger photos are downscaled to this before restoring (super-resolution "
                                             "then returns factor x this); keep small on a CPU")
                with gr.Accordion("Advanced: method parameters", open=False, elem_id="advanced"):
                    sig0 = auto_signature()
                    scale = gr.Textbox("", label="Guidance scale (empty = the method's default)", elem_id="scale",
                                       placeholder="default", visible="scale" in sig0,
                                       info="how hard each step pulls toward the photo; DPS default 0.3 for "
                                            "deblur/SR/denoise, 0.5 for inpainting")
                    start = gr.Textbox("", label="Warm start (empty = the method's default)", elem_id="start",
                                       placeholder="default", visible="start" in sig0,
                                       info="1 = from pure noise; 0.3 = from the simple inverse, running the last "
                                            "30% of the steps (faster, closer to the photo)")
                    sampler = gr.Radio(SAMPLERS, value="", label="Sampler", visible="sampler" in sig0, elem_id="sampler")
                    params = gr.Textbox("", label="Other parameters", placeholder="key=value, key=value", lines=1,
                                        elem_id="params")
                    params_md = gr.Markdown(AUTO_PARAMS_HELP, elem_id="params-help")
                with gr.Row():
                    run_btn = gr.Button("Restore", variant="primary", elem_id="restore")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
                report = gr.Markdown("Press **Restore** when ready.", label="Report", elem_id="report", min_height=48)
                preview = gr.Image(label="Result (live estimate while sampling)", interactive=False, format="png",
                                   height=300, elem_id="preview")
                slider = gr.ImageSlider(label="Before / after", type="pil", format="png", interactive=False,
                                        max_height=300, elem_id="slider")
        comparison = gr.Image(label="Side by side", interactive=False, format="png", elem_id="comparison")
        with gr.Row():
            dl_restored = gr.DownloadButton("Download restored PNG", interactive=False, elem_id="dl-restored")
            dl_comparison = gr.DownloadButton("Download comparison PNG", interactive=False, elem_id="dl-comparison")
        if examples:
            gr.Examples(_examples(app.tmp), inputs=[photo, mode, task, mask_file, preset], label="Examples (offline)",
                        elem_id="examples")

        private = dict(api_visibility="private")
        noise_auto = gr.State("")  # the last estimate put in "Noise in my photo" (not a value the user typed)
        checked = photo.change(app.check_photo, photo, editor, preprocess=False, **private)
        checked.failure(lambda: (None, None, ""), None, [photo, editor, photo_info], **private)
        note = dict(fn=app.photo_note, inputs=[photo, mode, task, factor, preset, max_side_in], outputs=photo_info,
                    preprocess=False, **private)
        checked.success(**note)
        gr.on([mode.change, task.change, factor.change, preset.change, max_side_in.change], trigger_mode="always_last",
              **note)
        noise = dict(fn=app.estimate_noise, inputs=[photo, max_side_in, noise_in_photo, noise_auto],
                     outputs=[noise_in_photo, noise_auto], preprocess=False, **private)
        checked.success(**noise)
        max_side_in.change(trigger_mode="always_last", **noise)
        mask_file.change(app.check_mask, [mask_file, photo], None, preprocess=False,
                         **private).failure(lambda: None, None, mask_file, **private)
        mode.change(lambda m: (gr.update(visible=m == "damaged"), gr.update(visible=m == "simulate")), mode,
                    [damaged_box, simulate_box], **private)
        task.change(lambda t: tuple(gr.update(visible=t == k) for k in ("inpaint", "deblur", "sr")), task,
                    [inpaint_box, blur_box, sr_box], **private)
        kernel_type.change(lambda k: (gr.update(visible=k != "file"), gr.update(visible=k == "gaussian"),
                                      gr.update(visible=k == "motion"), gr.update(visible=k == "file")),
                           kernel_type, [kernel_size, blur_std, motion_intensity, kernel_file], **private)
        solver.change(lambda s: (_solver_help(s), *_advanced(s)), solver, [solver_help, scale, start, sampler, params_md],
                      **private)
        model.change(lambda m, s: method_dropdown(app.models.kind(m or app.default_model), s), [model, solver], solver,
                     trigger_mode="always_last", **private)
        degrade = dict(fn=app.degrade, inputs=[photo, mode, preset, seed, noise_to_add, max_side_in], outputs=degraded,
                       **private)
        checked.success(**degrade)  # after the check: a bad upload gets one clear error, not two
        gr.on([mode.change, preset.change, seed.change, noise_to_add.change, max_side_in.change],
              trigger_mode="always_last", **degrade)
        # Restore is disabled from the click until the run ends (queued or running), and again usable on Cancel.
        locked = run_btn.click(lambda: (gr.Button(interactive=False), "Waiting for a free slot (your place in the queue "
                                        "shows here while others restore)…"), None, [run_btn, report], queue=False,
                               **private)
        run_evt = locked.then(
            app.run, [photo, mode, task, editor, mask_file, kernel_type, kernel_size, blur_std, motion_intensity,
                      kernel_file, factor, preset, solver, steps, seed, noise_in_photo, noise_to_add, model, max_side_in,
                      scale, start, sampler, params, quality, samples, keep_observed],
            [preview, slider, comparison, report, dl_restored, dl_comparison], api_name="restore",
            concurrency_limit=concurrency, concurrency_id="restore", show_progress_on=[preview])
        run_evt.then(lambda *files: (gr.Button(interactive=True), *(gr.update(interactive=bool(f)) for f in files)),
                     [dl_restored, dl_comparison], [run_btn, dl_restored, dl_comparison], **private)
        run_evt.failure(lambda: gr.Button(interactive=True), None, run_btn, queue=False, **private)  # (.then skips errors)
        cancel_btn.click(app.cancel, None, [report, preview, run_btn], cancels=[run_evt], queue=False, **private)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo


def launch(demo: gr.Blocks | None = None, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           max_file_size: str | int = "20mb", block: bool = True, **build_kwargs) -> gr.Blocks:
    """Build (unless given) and serve the app; binds `host` (loopback by default). With
    `block=False` it returns once the server is up (`demo.local_url`, `demo.close()`)."""
    demo = demo or build_app(**build_kwargs)
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=max_file_size,
                prevent_thread_lock=not block, show_error=False, quiet=not block, css=CSS)
    return demo
