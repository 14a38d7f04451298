"""Guided-diffusion (ADM) checkpoints -> diffusers folders (`unet/` safetensors + `scheduler/`).

ADM (`guided_diffusion/unet.py` of Dhariwal & Nichol, used as-is by DPS, DiffPIR, ILVR, DDRM) maps
onto diffusers' `UNet2DModel` block for block: a `ResBlock` with `use_scale_shift_norm` is a
`ResnetBlock2D(time_embedding_norm="scale_shift")`, a down/up `ResBlock` is a `ResnetBlock2D(down/up=True)`
(`downsample_type="resnet"`), an `AttentionBlock` is an `Attention` whose q/k/v are rows of the fused
1x1 `qkv` convolution, the timestep embedding is `Timesteps(flip_sin_to_cos=True, freq_shift=0)`, and
`label_emb` is `num_class_embeds`. What diffusers cannot express is refused with one line:
`channel_mult[0] != 1` (ADM's 512² model: diffusers sizes the timestep embedding from the first block),
different attention head widths at different resolutions, and `conv_resample=False`.

`adm_forward` is a second, functional implementation of ADM on the original key names, so that a
real conversion can be checked numerically against its source (`inversa models verify DIR --against SRC`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from inversa.errors import UserError
from inversa.pretrained import safe_load


@dataclass(frozen=True)
class ADMConfig:
    """`guided_diffusion.script_util.create_model` arguments (learn_sigma as out_channels = 2 * in_channels)."""

    image_size: int = 256
    in_channels: int = 3
    out_channels: int = 6
    model_channels: int = 128
    num_res_blocks: int = 1
    channel_mult: tuple = (1, 1, 2, 2, 4, 4)
    attention_resolutions: tuple = (16,)  # image sides at which blocks attend (ADM: ds = image_size // r)
    num_heads: int = 4
    num_head_channels: int = 64  # -1: use num_heads everywhere
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    use_new_attention_order: bool = False
    num_classes: int | None = None
    dropout: float = 0.0
    use_fp16: bool = False
    noise_schedule: str = "linear"
    diffusion_steps: int = 1000

    @property
    def learn_sigma(self) -> bool:
        return self.out_channels == 2 * self.in_channels

    def attends(self, level: int) -> bool:
        return 2**level in {self.image_size // r for r in self.attention_resolutions}

    def heads(self, channels: int, up: bool = False) -> int:
        if self.num_head_channels != -1:
            return channels // self.num_head_channels
        return self.num_heads_upsample if up and self.num_heads_upsample != -1 else self.num_heads


ADM_CONFIGS = {
    # DPS2022/diffusion-posterior-sampling configs/model_config.yaml (ffhq_10m.pt)
    "ffhq": ADMConfig(),
    # openai/guided-diffusion README, "256x256 model (unconditional)" flags
    "imagenet256-uncond": ADMConfig(model_channels=256, num_res_blocks=2, attention_resolutions=(32, 16, 8), use_fp16=True),
}


def diffusers_config(cfg: ADMConfig) -> dict:
    """`UNet2DModel` keyword arguments for an ADM configuration (refuses what diffusers cannot express)."""
    if cfg.channel_mult[0] != 1:
        raise UserError(f"ADM channel_mult {cfg.channel_mult}: diffusers' UNet2DModel needs channel_mult[0] == 1 (its timestep embedding is sized by the first block)")
    if any(m * cfg.model_channels != int(m * cfg.model_channels) for m in cfg.channel_mult):
        raise UserError(f"ADM channel_mult {cfg.channel_mult} with model_channels {cfg.model_channels} gives fractional widths")
    chans = [int(m * cfg.model_channels) for m in cfg.channel_mult]
    levels = range(len(chans))
    sites = [(c, up) for L, c in zip(levels, chans) if cfg.attends(L) for up in (False, True)] + [(chans[-1], False)]
    bad = next(((c, cfg.heads(c, up)) for c, up in sites if cfg.heads(c, up) < 1 or c % cfg.heads(c, up)), None)
    if bad:
        raise UserError(f"ADM attention over {bad[0]} channels cannot be split into {bad[1]} heads (num_head_channels {cfg.num_head_channels}, num_heads {cfg.num_heads})")
    head_dims = {c // cfg.heads(c, up) for c, up in sites}
    if len(head_dims) != 1:
        raise UserError(f"ADM attention head widths {sorted(head_dims)} differ between resolutions; diffusers' UNet2DModel has one attention_head_dim")
    updown = "resnet" if cfg.resblock_updown else "conv"
    plain_down, plain_up = ("ResnetDownsampleBlock2D", "ResnetUpsampleBlock2D") if cfg.resblock_updown else ("DownBlock2D", "UpBlock2D")
    return dict(
        sample_size=cfg.image_size, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        block_out_channels=tuple(chans), layers_per_block=cfg.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if cfg.attends(L) else plain_down for L in levels),
        up_block_types=tuple("AttnUpBlock2D" if cfg.attends(L) else plain_up for L in reversed(levels)),
        downsample_type=updown, upsample_type=updown, attention_head_dim=head_dims.pop(),
        norm_num_groups=32, attn_norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
        resnet_time_scale_shift="scale_shift" if cfg.use_scale_shift_norm else "default",
        flip_sin_to_cos=True, freq_shift=0, dropout=cfg.dropout, num_class_embeds=cfg.num_classes,
    )


def make_scheduler(cfg: ADMConfig):
    from diffusers import DDPMScheduler

    if cfg.noise_schedule not in ("linear", "cosine"):
        raise UserError(f"ADM noise_schedule {cfg.noise_schedule!r}; accepted: linear, cosine")
    scale = 1000 / cfg.diffusion_steps  # ADM rescales the linear betas for other step counts
    return DDPMScheduler(
        num_train_timesteps=cfg.diffusion_steps, beta_start=1e-4 * scale, beta_end=0.02 * scale,
        beta_schedule="linear" if cfg.noise_schedule == "linear" else "squaredcos_cap_v2",
        variance_type="learned_range" if cfg.learn_sigma else "fixed_large", prediction_type="epsilon", clip_sample=True,
    )


# --- key mapping -------------------------------------------------------------------------------

_RES = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
        "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


@dataclass
class KeyMap:
    modules: dict = field(default_factory=dict)  # ADM module prefix -> diffusers module prefix
    attention: dict = field(default_factory=dict)  # ADM attention prefix -> (diffusers prefix, ADM heads)


def key_map(cfg: ADMConfig) -> KeyMap:
    """Where every ADM module goes, walking the network in ADM's construction order."""
    km = KeyMap({"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
                 "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out", "label_emb": "class_embedding"})

    def res(src, dst):
        km.modules.update({f"{src}.{a}": f"{dst}.{b}" for a, b in _RES.items()})

    chans = [int(m * cfg.model_channels) for m in cfg.channel_mult]
    n, k = len(chans), 1
    for L in range(n):
        for i in range(cfg.num_res_blocks):
            res(f"input_blocks.{k}.0", f"down_blocks.{L}.resnets.{i}")
            if cfg.attends(L):
                km.attention[f"input_blocks.{k}.1"] = (f"down_blocks.{L}.attentions.{i}", cfg.heads(chans[L]))
            k += 1
        if L < n - 1:
            if cfg.resblock_updown:
                res(f"input_blocks.{k}.0", f"down_blocks.{L}.downsamplers.0")
            else:
                km.modules[f"input_blocks.{k}.0.op"] = f"down_blocks.{L}.downsamplers.0.conv"
            k += 1
    res("middle_block.0", "mid_block.resnets.0")
    km.attention["middle_block.1"] = ("mid_block.attentions.0", cfg.heads(chans[-1]))
    res("middle_block.2", "mid_block.resnets.1")
    k = 0
    for j, L in enumerate(reversed(range(n))):
        for i in range(cfg.num_res_blocks + 1):
            res(f"output_blocks.{k}.0", f"up_blocks.{j}.resnets.{i}")
            s = 1
            if cfg.attends(L):
                km.attention[f"output_blocks.{k}.1"] = (f"up_blocks.{j}.attentions.{i}", cfg.heads(chans[L], up=True))
                s = 2
            if L and i == cfg.num_res_blocks:
                if cfg.resblock_updown:
                    res(f"output_blocks.{k}.{s}", f"up_blocks.{j}.upsamplers.0")
                else:
                    km.modules[f"output_blocks.{k}.{s}.conv"] = f"up_blocks.{j}.upsamplers.0.conv"
            k += 1
    for src, (dst, _) in km.attention.items():
        km.modules.update({f"{src}.norm": f"{dst}.group_norm", f"{src}.proj_out": f"{dst}.to_out.0"})
    return km


def split_qkv(w: torch.Tensor, heads: int, new_order: bool) -> tuple[torch.Tensor, ...]:
    """ADM's fused qkv rows -> (q, k, v) rows, each ordered head by head as diffusers splits them.
    Legacy order (QKVAttentionLegacy) interleaves per head: [q_h, k_h, v_h] for h = 0..heads-1."""
    c3 = w.shape[0]
    if new_order:
        return tuple(t.contiguous() for t in w.chunk(3, dim=0))
    rows = w.reshape(heads, 3, c3 // (3 * heads), *w.shape[1:])
    return tuple(rows[:, i].reshape(c3 // 3, *w.shape[1:]).contiguous() for i in range(3))


def convert_state_dict(sd: dict[str, torch.Tensor], cfg: ADMConfig, *, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """ADM state dict -> diffusers `UNet2DModel` state dict (float32), checked key by key against `cfg`."""
    km = key_map(cfg)
    out, origin, unknown = {}, {}, []
    for key, w in sd.items():
        mod, _, param = key.rpartition(".")
        if mod.endswith(".qkv") and mod[: -len(".qkv")] in km.attention:
            dst, heads = km.attention[mod[: -len(".qkv")]]
            for proj, part in zip(("to_q", "to_k", "to_v"), split_qkv(w, heads, cfg.use_new_attention_order)):
                out[f"{dst}.{proj}.{param}"] = part.squeeze(-1) if part.ndim == 3 else part
                origin[f"{dst}.{proj}.{param}"] = key
        elif mod in km.modules:
            dst = f"{km.modules[mod]}.{param}"
            out[dst] = w.squeeze(-1) if ".to_out.0." in dst and w.ndim == 3 else w
            origin[dst] = key
        else:
            unknown.append(key)
    out = {k: v.float() for k, v in out.items()}
    expected = {k: tuple(v.shape) for k, v in _meta_unet(cfg).state_dict().items()}
    missing = sorted(set(expected) - set(out))
    unknown += sorted(origin[k] for k in set(out) - set(expected))  # mapped, but not in this configuration (label_emb)
    bad_shape = [k for k in out if k in expected and tuple(out[k].shape) != expected[k]]
    if unknown or missing or bad_shape:
        what = (f"{len(unknown)} unexpected keys (e.g. {unknown[0]!r})" if unknown else
                f"{len(missing)} missing weights (e.g. for {missing[0]!r})" if missing else
                f"shape {tuple(out[bad_shape[0]].shape)} of {origin[bad_shape[0]]!r}, expected {expected[bad_shape[0]]}")
        raise UserError(f"{name} does not match the ADM architecture {_describe(cfg)}: {what} (a different checkpoint, or the wrong --config?)")
    return out


def _meta_unet(cfg: ADMConfig):
    from diffusers import UNet2DModel

    with torch.device("meta"):  # no memory and no random init for ~550M parameters
        return UNet2DModel(**diffusers_config(cfg))


def to_diffusers(sd: dict[str, torch.Tensor], cfg: ADMConfig, *, name: str = "checkpoint"):
    """A ready `UNet2DModel` (eval mode) holding the converted weights."""
    unet = _meta_unet(cfg)
    unet.load_state_dict(convert_state_dict(sd, cfg, name=name), strict=True, assign=True)
    return unet.eval()


def _describe(cfg: ADMConfig) -> str:
    return (f"(model_channels {cfg.model_channels}, num_res_blocks {cfg.num_res_blocks}, channel_mult "
            f"{','.join(f'{m:g}' for m in cfg.channel_mult)}, attention at {','.join(map(str, cfg.attention_resolutions))})")


# --- configuration ---------------------------------------------------------------------------

def infer_config(sd: dict[str, torch.Tensor], *, image_size: int = 256, num_head_channels: int = 64,
                 use_new_attention_order: bool = False) -> ADMConfig:
    """Read an ADM architecture off the tensor names and shapes. Not in the weights: the image size
    (only names the attention resolutions), the head count (`num_head_channels`) and the qkv order."""
    if "time_embed.0.weight" not in sd or "input_blocks.0.0.weight" not in sd or "out.2.weight" not in sd:
        hint = " (it looks like a diffusers UNet: pass its folder as --model)" if "conv_in.weight" in sd else ""
        raise UserError(f"not an ADM (guided-diffusion) UNet: no time_embed/input_blocks/out weights; found keys like {sorted(sd)[:2]}{hint}")
    mc = sd["time_embed.0.weight"].shape[1]
    n_out = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("output_blocks."))

    def upsamples(k):
        return any(f"output_blocks.{k}.{j}.{p}.weight" in sd for j in (1, 2) for p in ("in_layers.0", "conv"))

    nrb = next((k for k in range(n_out) if upsamples(k)), n_out - 1)
    levels = n_out // (nrb + 1)
    mult, attn = [], []
    for L in range(levels):
        first = f"input_blocks.{1 + L * (nrb + 1)}"
        if f"{first}.0.in_layers.2.weight" not in sd:
            raise UserError(f"unknown ADM layout: {first} is not a ResBlock ({levels} levels of {nrb} blocks inferred)")
        ch = sd[f"{first}.0.in_layers.2.weight"].shape[0]
        mult.append(ch // mc if ch % mc == 0 else ch / mc)
        if f"{first}.1.qkv.weight" in sd:
            attn.append(image_size // 2**L)
    down = f"input_blocks.{nrb + 1}.0"
    updown = levels > 1 and f"{down}.in_layers.0.weight" in sd
    if levels > 1 and not updown and f"{down}.op.weight" not in sd:
        raise UserError("ADM checkpoint with conv_resample=False (average-pool downsampling): diffusers' UNet2DModel cannot express it")
    emb = sd["input_blocks.1.0.emb_layers.1.weight"].shape[0]
    label = sd.get("label_emb.weight")
    return ADMConfig(
        image_size=image_size, in_channels=sd["input_blocks.0.0.weight"].shape[1], out_channels=sd["out.2.weight"].shape[0],
        model_channels=mc, num_res_blocks=nrb, channel_mult=tuple(mult), attention_resolutions=tuple(attn),
        num_head_channels=num_head_channels, use_scale_shift_norm=emb == 2 * mult[0] * mc, resblock_updown=updown,
        use_new_attention_order=use_new_attention_order, num_classes=None if label is None else label.shape[0],
    )


def resolve_config(config: str | ADMConfig, sd: dict[str, torch.Tensor], source_name: str = "", *,
                   image_size: int | None = None) -> ADMConfig:
    """A preset name, `auto` (a known file name's preset, else inferred from shapes, for images of
    `image_size`, default 256), or a config."""
    if isinstance(config, ADMConfig):
        return config
    if config == "auto":
        from inversa.pretrained import registry

        entry = registry.find_adm_file(source_name)
        return ADM_CONFIGS[entry.adm_config] if entry else infer_config(sd, image_size=image_size or 256)
    if config not in ADM_CONFIGS:
        raise UserError(f"unknown ADM config {config!r}; accepted: {', '.join(ADM_CONFIGS)}, auto")
    return ADM_CONFIGS[config]


# --- conversion to a folder ----------------------------------------------------------------------

def convert_checkpoint(src: str | Path, out_dir: str | Path, *, config: str | ADMConfig = "auto",
                       image_size: int | None = None) -> dict:
    """Convert an ADM `.pt`/`.safetensors` file into `out_dir/unet` + `out_dir/scheduler` (+ provenance
    in `conversion.json`, a `MODEL_CARD.md`). `image_size` is the training resolution of an unknown
    checkpoint read with `config="auto"`. Nothing is left behind on failure."""
    from inversa.pretrained import registry

    src, out_dir = Path(src).expanduser(), Path(out_dir).expanduser()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"output {str(out_dir)!r} already exists and is not an empty folder; choose a new -o DIR")
    if config != "auto":  # a preset name is checked before the (large) file is read
        config = resolve_config(config, {}, src.name)
    entry = registry.find_adm_file(src.name)
    sd = safe_load.load_state_dict(src)
    source_sha = safe_load.check_sha256(src, entry.sha256 if entry else None)
    cfg = resolve_config(config, sd, src.name, image_size=image_size)
    unet = to_diffusers(sd, cfg, name=repr(src.name))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        make_scheduler(cfg).save_pretrained(tmp / "scheduler")
        weights = tmp / "unet" / "diffusion_pytorch_model.safetensors"
        info = {"source": src.name, "source_sha256": source_sha,
                "adm_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
                "unet_sha256": safe_load.sha256_file(weights), "registry_name": entry.name if entry else None}
        (tmp / "conversion.json").write_text(json.dumps(info, indent=2) + "\n")
        title = entry.description if entry else f"ADM model converted from {src.name}"
        (tmp / "MODEL_CARD.md").write_text(
            f"# {title}\n\nConverted by `inversa models convert` from `{src.name}` (sha256 {info['source_sha256']}).\n"
            f"ADM architecture {_describe(cfg)}, learned variance: {cfg.learn_sigma}.\n"
            + (f"\nObtain: {entry.obtain}\nLicence: {entry.licence}\n" if entry else ""))
        umask = os.umask(0)
        os.umask(umask)
        for p in [tmp, *tmp.rglob("*")]:  # mkdtemp (and the safetensors writer) create owner-only modes
            p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def verify_folder(folder: str | Path, *, against: str | Path | None = None, size: int | None = None,
                  tol: float = 1e-4, log=print) -> dict:
    """Check a diffusers model folder: weights hash (when converted here), loading, scheduler/variance
    agreement, a finite forward pass; with `against` (the ADM source), the max abs output difference."""
    from inversa.pretrained.loading import load_prior

    folder = Path(folder).expanduser()
    record = folder / "conversion.json"
    info = json.loads(record.read_text()) if record.is_file() else None
    if info:
        weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
        if not weights.is_file():
            raise UserError(f"{str(weights)!r} is missing: the conversion is incomplete; convert again")
        if safe_load.sha256_file(weights) != info.get("unet_sha256"):
            raise UserError(f"{str(weights)!r} does not have the sha256 recorded in conversion.json: the file was changed or damaged; convert again")
        log(f"weights: sha256 matches conversion.json (source {info['source']} sha256 {info['source_sha256'][:16]}…)")
    prior = load_prior(str(folder))
    unet, sched = prior.model, prior.scheduler
    variance = sched.config.get("variance_type")
    if prior.learned_variance != (variance == "learned_range"):
        raise UserError(f"{folder}: the UNet has {unet.config.out_channels} output channels but the scheduler's variance_type is {variance!r}")
    n = sum(p.numel() for p in unet.parameters())
    log(f"loads: UNet2DModel {n / 1e6:.2f} M parameters, learned variance {prior.learned_variance}, "
        f"{type(sched).__name__} {sched.config.num_train_timesteps} steps, variance {variance}")
    size = size or 2 * prior.size_multiple
    T = prior.num_train_timesteps
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, prior.in_channels, size, size, generator=g), torch.tensor([0, T // 2, T - 1])
    y = torch.zeros(3, dtype=torch.long) if unet.config.get("num_class_embeds") else None
    with torch.no_grad():
        out = unet(x, t, class_labels=y).sample
    if not torch.isfinite(out).all():
        raise UserError(f"{folder}: the network output is not finite at {size}x{size}")
    log(f"runs: {size}x{size} at t={','.join(map(str, t.tolist()))}, output {tuple(out.shape)}, finite")
    result = {"parameters": n, "output_shape": tuple(out.shape)}
    if against is not None:
        sd = safe_load.load_state_dict(against)
        cfg = config_from_json(info["adm_config"]) if info else resolve_config("auto", sd, Path(against).name)
        with torch.no_grad():
            ref = adm_forward(sd, cfg, x, t, y)
        c = prior.in_channels
        d_eps, d_var = (out - ref)[:, :c].abs().max().item(), (out - ref)[:, c:].abs().max().item() if prior.learned_variance else 0.0
        result.update(max_abs_diff_eps=d_eps, max_abs_diff_var=d_var)
        if max(d_eps, d_var) > tol:
            raise UserError(f"{folder} differs from {against}: max abs difference eps {d_eps:.3g}, variance {d_var:.3g} > {tol:g}")
        log(f"matches {Path(against).name}: max abs difference eps {d_eps:.2e}, variance {d_var:.2e} (< {tol:g}, reference ADM implementation)")
    return result


# --- reference implementation (original key names) ------------------------------------------------

def adm_forward(sd: dict[str, torch.Tensor], cfg: ADMConfig, x: torch.Tensor, timesteps: torch.Tensor,
                y: torch.Tensor | None = None) -> torch.Tensor:
    """`guided_diffusion.unet.UNetModel.forward`, written functionally over the original state dict."""

    def lin(p, h):
        return F.linear(h, sd[f"{p}.weight"], sd[f"{p}.bias"])

    def conv(p, h, stride=1):
        w = sd[f"{p}.weight"]
        return F.conv2d(h, w, sd[f"{p}.bias"], stride=stride, padding=w.shape[-1] // 2)

    def gn(p, h):
        return F.group_norm(h.float(), 32, sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-5).type(h.dtype)

    def res(p, h, emb, up=False, down=False):
        a = F.silu(gn(f"{p}.in_layers.0", h))
        if up:
            a, h = F.interpolate(a, scale_factor=2, mode="nearest"), F.interpolate(h, scale_factor=2, mode="nearest")
        elif down:
            a, h = F.avg_pool2d(a, 2), F.avg_pool2d(h, 2)
        a = conv(f"{p}.in_layers.2", a)
        e = lin(f"{p}.emb_layers.1", F.silu(emb))[..., None, None]
        if cfg.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            a = gn(f"{p}.out_layers.0", a) * (1 + scale) + shift
        else:
            a = gn(f"{p}.out_layers.0", a + e)
        a = conv(f"{p}.out_layers.3", F.silu(a))
        return (conv(f"{p}.skip_connection", h) if f"{p}.skip_connection.weight" in sd else h) + a

    def attn(p, h, heads):
        b, c, *spatial = h.shape
        qkv = F.conv1d(gn(f"{p}.norm", h).reshape(b, c, -1), sd[f"{p}.qkv.weight"], sd[f"{p}.qkv.bias"])
        ch = c // heads
        if cfg.use_new_attention_order:
            q, k, v = (t.reshape(b * heads, ch, -1) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * heads, 3 * ch, -1).split(ch, dim=1)
        s = 1 / math.sqrt(math.sqrt(ch))
        w = torch.softmax(torch.einsum("bct,bcs->bts", q * s, k * s).float(), dim=-1).type(q.dtype)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, -1)
        return h + F.conv1d(a, sd[f"{p}.proj_out.weight"], sd[f"{p}.proj_out.bias"]).reshape(b, c, *spatial)

    half = cfg.model_channels // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    emb = lin("time_embed.2", F.silu(lin("time_embed.0", torch.cat([torch.cos(args), torch.sin(args)], dim=-1))))
    if cfg.num_classes is not None:
        emb = emb + sd["label_emb.weight"][y]
    chans = [int(m * cfg.model_channels) for m in cfg.channel_mult]
    h = conv("input_blocks.0.0", x)
    hs, k, n = [h], 1, len(chans)
    for L in range(n):
        for _ in range(cfg.num_res_blocks):
            h = res(f"input_blocks.{k}.0", h, emb)
            if cfg.attends(L):
                h = attn(f"input_blocks.{k}.1", h, cfg.heads(chans[L]))
            hs.append(h)
            k += 1
        if L < n - 1:
            p = f"input_blocks.{k}.0"
            h = res(p, h, emb, down=True) if cfg.resblock_updown else conv(f"{p}.op", h, stride=2)
            hs.append(h)
            k += 1
    h = res("middle_block.0", h, emb)
    h = attn("middle_block.1", h, cfg.heads(chans[-1]))
    h = res("middle_block.2", h, emb)
    k = 0
    for L in reversed(range(n)):
        for i in range(cfg.num_res_blocks + 1):
            p = f"output_blocks.{k}"
            h = res(f"{p}.0", torch.cat([h, hs.pop()], dim=1), emb)
            s = 1
            if cfg.attends(L):
                h, s = attn(f"{p}.1", h, cfg.heads(chans[L], up=True)), 2
            if L and i == cfg.num_res_blocks:
                h = (res(f"{p}.{s}", h, emb, up=True) if cfg.resblock_updown
                     else conv(f"{p}.{s}.conv", F.interpolate(h, scale_factor=2, mode="nearest")))
            k += 1
    return conv("out.2", F.silu(gn("out.0", h)))


def config_from_json(d: dict) -> ADMConfig:
    return replace(ADMConfig(), **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in ADMConfig.__dataclass_fields__})
