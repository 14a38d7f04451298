"""ADM (guided-diffusion) -> diffusers conversion.

Equivalence on random weights: the exact ffhq_10m and ImageNet-256-uncond configurations against
deepinv's DiffUNet (an independent ADM implementation loading the original key names; skipped when
deepinv is not installed), and small custom configurations against `adm_forward`. Then the round trip
convert -> from_pretrained -> verify -> restore, and the one-line errors that leave nothing behind.
"""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from inversa.cli import main
from inversa.errors import UserError
from inversa.pretrained import adm, load_prior, registry
from inversa.pretrained.adm import ADM_CONFIGS, ADMConfig

TOL = 1e-4  # max abs difference in float32, eps and variance channels (issue 6)
T = torch.tensor([0, 500, 999])


def adm_state_dict(cfg: ADMConfig, seed: int = 0) -> dict:
    """Random weights with the original ADM key names for any configuration: diffusers' shapes mapped
    back through the key map (qkv re-fused in ADM's row order). Scales keep activations O(1)."""
    km = adm.key_map(cfg)
    inv = {v: k for k, v in km.modules.items()}
    shapes = {k: v.shape for k, v in adm._meta_unet(cfg).state_dict().items()}
    sd = {}
    for key, shape in shapes.items():
        mod, _, param = key.rpartition(".")
        if mod in inv:
            sd[f"{inv[mod]}.{param}"] = torch.empty(*shape, *((1,) if mod.endswith("to_out.0") and param == "weight" else ()))
    for src, (dst, _) in km.attention.items():
        c = shapes[f"{dst}.to_q.bias"][0]
        sd[f"{src}.qkv.weight"], sd[f"{src}.qkv.bias"] = torch.empty(3 * c, c, 1), torch.empty(3 * c)
    randomize_(sd.items(), seed)
    return sd


def randomize_(named, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in named:
            if p.ndim >= 2 and not name.startswith("label_emb"):
                p.normal_(0, p[0].numel() ** -0.5, generator=g)
            elif p.ndim == 1 and name.endswith("weight"):  # group-norm gains
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.normal_(0, 0.1 if p.ndim == 1 else 1.0, generator=g)


def max_diffs(a, b, c=3):
    d = (a - b).abs()
    return d[:, :c].max().item(), (d[:, c:].max().item() if a.shape[1] > c else 0.0)


SMALL = {
    "ffhq-like": ADMConfig(image_size=16, model_channels=32, channel_mult=(1, 2, 2), attention_resolutions=(8, 4), num_head_channels=16),
    "conv-resample+shift-norm-off+new-order+classes": ADMConfig(
        image_size=16, model_channels=32, num_res_blocks=2, channel_mult=(1, 2, 2), attention_resolutions=(8, 4),
        num_head_channels=-1, num_heads=2, resblock_updown=False, use_scale_shift_norm=False,
        use_new_attention_order=True, num_classes=10, out_channels=3),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_small_config_matches_reference(name):
    cfg = SMALL[name]
    sd = adm_state_dict(cfg)
    unet = adm.to_diffusers(sd, cfg)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 5, 9]) if cfg.num_classes else None
    with torch.no_grad():
        out, ref = unet(x, T, class_labels=y).sample, adm.adm_forward(sd, cfg, x, T, y)
    assert out.shape == (3, cfg.out_channels, 16, 16) and ref.abs().max() > 0.1
    d_eps, d_var = max_diffs(out, ref)
    print(f"{name}: max abs diff eps {d_eps:.2e} var {d_var:.2e}")
    assert d_eps < TOL and d_var < TOL
    # the layout is readable off the weights (heads and qkv order are not stored in them)
    inferred = adm.infer_config(sd, image_size=16, num_head_channels=cfg.num_head_channels,
                                use_new_attention_order=cfg.use_new_attention_order)
    assert replace(inferred, num_heads=cfg.num_heads) == cfg


def test_legacy_qkv_order_is_per_head():
    w = torch.arange(12.0)[:, None]  # 2 heads x (q, k, v) x 2 channels, legacy: [q0 k0 v0 q1 k1 v1]
    q, k, v = adm.split_qkv(w, heads=2, new_order=False)
    assert q.flatten().tolist() == [0, 1, 6, 7] and k.flatten().tolist() == [2, 3, 8, 9] and v.flatten().tolist() == [4, 5, 10, 11]
    assert [t.flatten().tolist() for t in adm.split_qkv(w, heads=2, new_order=True)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_presets_diffusers_configs():
    ffhq, imnet = (adm.diffusers_config(ADM_CONFIGS[k]) for k in ("ffhq", "imagenet256-uncond"))
    assert ffhq["block_out_channels"] == (128, 128, 256, 256, 512, 512) and ffhq["layers_per_block"] == 1
    assert ffhq["down_block_types"][4] == "AttnDownBlock2D" and ffhq["down_block_types"].count("AttnDownBlock2D") == 1
    assert imnet["block_out_channels"] == (256, 256, 512, 512, 1024, 1024) and imnet["layers_per_block"] == 2
    assert imnet["down_block_types"][3:] == ("AttnDownBlock2D",) * 3 and imnet["up_block_types"][:3] == ("AttnUpBlock2D",) * 3
    for c in (ffhq, imnet):
        assert (c["out_channels"], c["attention_head_dim"], c["resnet_time_scale_shift"], c["downsample_type"]) == (6, 64, "scale_shift", "resnet")
    sched = adm.make_scheduler(ADM_CONFIGS["ffhq"]).config
    assert (sched.variance_type, sched.beta_start, sched.beta_end, sched.num_train_timesteps) == ("learned_range", 1e-4, 0.02, 1000)


def test_inexpressible_configs_are_refused():
    with pytest.raises(UserError, match="channel_mult"):
        adm.diffusers_config(ADMConfig(channel_mult=(0.5, 1, 1, 2, 2, 4, 4), image_size=512))
    with pytest.raises(UserError, match="one attention_head_dim"):
        adm.diffusers_config(ADMConfig(num_head_channels=-1, attention_resolutions=(32, 16)))


# --- deepinv oracle: the exact configurations ------------------------------------------------------

def deepinv_pair(large: bool):
    pytest.importorskip("deepinv", reason="deepinv (test-only ADM oracle) is not installed: pip install deepinv")
    from deepinv.models import DiffUNet

    torch.manual_seed(0)
    net = DiffUNet(large_model=large, pretrained=None).eval()  # eval: deepinv's DiffUNet has dropout 0.1
    randomize_(net.named_parameters(), seed=0)  # also the zero-initialised output convolutions
    sd = {k: v for k, v in net.state_dict().items() if not k.startswith("sqrt_")}  # deepinv's schedule buffers
    cfg = ADM_CONFIGS["imagenet256-uncond" if large else "ffhq"]
    return net, sd, cfg, adm.to_diffusers(sd, cfg)


@pytest.fixture(scope="module")
def ffhq_pair():
    return deepinv_pair(large=False)


def check_against_deepinv(pair, size, reference=False):
    net, sd, cfg, unet = pair
    assert adm.infer_config(sd) == replace(cfg, use_fp16=False)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        oracle, out = net.forward_diffusion(x, T), unet(x, T).sample
        ref = adm.adm_forward(sd, cfg, x, T) if reference else None
    d_eps, d_var = max_diffs(out, oracle)
    print(f"{size}x{size} t={T.tolist()}: |out| max {oracle.abs().max():.2f}, max abs diff eps {d_eps:.2e} var {d_var:.2e}")
    assert oracle.shape == (3, 6, size, size) and oracle.abs().max() > 0.1
    assert d_eps < TOL and d_var < TOL
    if reference:
        r_eps, r_var = max_diffs(ref, oracle)
        print(f"  adm_forward vs deepinv: eps {r_eps:.2e} var {r_var:.2e}")
        assert r_eps < TOL and r_var < TOL


def test_ffhq_10m_config_matches_deepinv(ffhq_pair):
    check_against_deepinv(ffhq_pair, 32)


@pytest.mark.slow
def test_ffhq_10m_config_matches_deepinv_64_and_reference(ffhq_pair):
    check_against_deepinv(ffhq_pair, 64, reference=True)


@pytest.mark.slow
def test_imagenet256_uncond_config_matches_deepinv():
    check_against_deepinv(deepinv_pair(large=True), 32, reference=True)


# --- round trip and CLI ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    cfg = ADMConfig(image_size=32, model_channels=32, channel_mult=(1, 2, 2), attention_resolutions=(16, 8), num_head_channels=32)
    path = tmp_path_factory.mktemp("adm") / "small_adm.pt"
    torch.save(adm_state_dict(cfg), path)
    return path


def test_convert_verify_restore_round_trip(small_ckpt, tmp_path, capsys):
    from diffusers import UNet2DModel

    out = tmp_path / "converted"
    assert main(["models", "convert", str(small_ckpt), "-o", str(out), "--image-size", "32"]) == 0
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file() and (out / "scheduler" / "scheduler_config.json").is_file()
    unet = UNet2DModel.from_pretrained(out / "unet")
    assert unet.config.out_channels == 6 and unet.config.sample_size == 32
    prior = load_prior(str(out))
    assert prior.learned_variance and prior.scheduler.config.variance_type == "learned_range"
    assert main(["models", "verify", str(out), "--against", str(small_ckpt)]) == 0
    assert "max abs difference eps" in capsys.readouterr().out
    img = tmp_path / "r.png"
    assert main(["restore", "--demo", "--model", str(out), "--steps", "2", "--max-size", "32", "-o", str(img)]) == 0
    from PIL import Image

    assert Image.open(img).size == (32, 32)


@pytest.mark.slow
def test_ffhq_10m_full_size_round_trip(ffhq_pair, tmp_path):
    """A random-weight `ffhq_10m.pt` (recognised by name) converts, verifies and restores at 256²."""
    src = tmp_path / "ffhq_10m.pt"
    torch.save(ffhq_pair[1], src)
    out = tmp_path / "ffhq"
    assert main(["models", "convert", str(src), "-o", str(out)]) == 0
    assert main(["models", "verify", str(out), "--against", str(src), "--size", "64"]) == 0
    img = tmp_path / "r.png"
    assert main(["restore", "--demo", "--model", str(out), "--steps", "1", "--max-size", "256", "-o", str(img)]) == 0


def assert_nothing_written(out):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "inversa", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_convert_errors_one_line_nothing_half(small_ckpt, tmp_path):
    out = tmp_path / "out"
    r = run_cli("models", "convert", tmp_path / "missing.pt", "-o", out)
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert_nothing_written(out)


@pytest.mark.parametrize("case,match", [
    ("truncated", "truncated or corrupted"),
    ("pickle", "refusing to unpickle"),
    ("not-adm", "not an ADM"),
    ("wrong-config", "does not match the ADM architecture"),
    ("unknown-config", "unknown ADM config"),
    ("exists", "already exists"),
])
def test_convert_error_cases(case, match, small_ckpt, tmp_path, capsys):
    src, out, extra = small_ckpt, tmp_path / "out", []
    if case == "truncated":
        src = tmp_path / "t.pt"
        src.write_bytes(small_ckpt.read_bytes()[:5000])
    elif case == "pickle":
        src = tmp_path / "p.pt"
        torch.save({"w": torch.ones(1), "obj": registry.ModelEntry("a", "b", "c", "d")}, src)
    elif case == "not-adm":
        src = tmp_path / "n.pt"
        torch.save({"conv_in.weight": torch.ones(1)}, src)
    elif case == "wrong-config":
        extra = ["--config", "ffhq"]
    elif case == "unknown-config":
        extra = ["--config", "sd15"]
    else:
        out.mkdir()
        (out / "keep.txt").write_text("x")
    assert main(["models", "convert", str(src), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    if case == "exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert_nothing_written(out)


def test_failure_while_writing_leaves_nothing(small_ckpt, tmp_path, monkeypatch):
    def boom(cfg):
        raise OSError("disk full")

    monkeypatch.setattr(adm, "make_scheduler", boom)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        adm.convert_checkpoint(small_ckpt, out)
    assert_nothing_written(out)


def test_verify_detects_damaged_weights(small_ckpt, tmp_path, capsys):
    out = tmp_path / "c"
    adm.convert_checkpoint(small_ckpt, out, image_size=32)
    w = out / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    assert main(["models", "verify", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "sha256" in err and len(err.splitlines()) == 1


def test_adm_names_and_offline_hub_ids_say_what_to_do(tmp_path, capsys):
    entry = registry.find("ffhq_10m")
    assert entry.kind == "adm" and entry.adm_config in ADM_CONFIGS and entry.sha256 is None
    assert registry.find_adm_file("diffusion_ffhq_10m.pt") is entry  # deepinv's / DiffPIR's name for it
    for name, expected in [("ffhq_10m", "inversa models convert ffhq_10m.pt -o DIR --config ffhq"),
                           ("256x256_diffusion_uncond", "openaipublic"),
                           ("nobody-here/no-such-model", "could not be fetched")]:
        assert main(["models", "info", name]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1
    raw = tmp_path / "ffhq_10m.pt"
    raw.write_bytes(b"x")
    with pytest.raises(UserError, match="drive.google.com"):
        load_prior(str(raw))


def test_models_list_shows_adm_checkpoints(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "ffhq_10m" in out and "256x256_diffusion_uncond" in out and "google/ddpm-cifar10-32" in out
