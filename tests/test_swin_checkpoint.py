"""Starting the encoder from a Swin-repository (or timm) ImageNet `.pth`, as the authors start theirs.

The source state dicts here are written from the Swin repository's module structure (github microsoft/Swin-Transformer,
`models/swin_transformer.py`: `patch_embed`, `layers[i].blocks[j]` with `norm1`, `attn.qkv`, `attn.proj`,
`attn.relative_position_bias_table` and the buffers `relative_position_index` / `attn_mask`, `norm2`, `mlp.fc1/fc2`,
`layers[i].downsample` after every stage but the last, the final `norm` and `head`), not from the converter, and the
loaded encoder is checked tensor by tensor and against a small re-implementation of that repository's forward.
"""

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import make_tiny_config
from transformers import Dinov2Config, Dinov2Model

from wedepth_hf import WEDepthForDepthEstimation
from wedepth_hf.conversion import convert_swin_state_dict, load_swin_checkpoint


SWIN = {"embed_dim": 24, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 3, 4], "window_size": 2, "mlp_ratio": 2.0}
PATCH = 4
EPS = 1e-6
PRETRAINING_SIZE = 64  # stage grids 16, 8, 4, 2: never below the window, so the repository keeps window 2 throughout
NUM_CLASSES = 7


def _tiny_config(**swin: Any):
    return make_tiny_config(
        encoder_config={"model_type": "swin", **SWIN, "layer_norm_eps": EPS, "drop_path_rate": 0.1, **swin}
    )


def _repository_position_index(window: int) -> torch.Tensor:
    """`relative_position_index` as the Swin repository's WindowAttention builds it, (window², window²)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]


def _shift_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """The repository's SW-MSA mask: (windows, window², window²), 0 within a region and -100 across regions."""
    regions = torch.zeros(height, width)
    count = 0
    for rows in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for cols in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            regions[rows, cols] = count
            count += 1
    windows = regions.view(height // window, window, width // window, window).permute(0, 2, 1, 3).reshape(-1, window**2)
    difference = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(difference).masked_fill(difference != 0, -100.0)


def swin_repository_state_dict(seed: int = 0, **overrides: Any) -> dict[str, torch.Tensor]:
    """Random weights for the tiny Swin, with every key (and shape) the Swin repository's classifier saves."""
    swin = {**SWIN, **overrides}
    generator = torch.Generator().manual_seed(seed)

    def tensor(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.5

    embed, window = swin["embed_dim"], swin["window_size"]
    state = {
        "patch_embed.proj.weight": tensor(embed, 3, PATCH, PATCH),
        "patch_embed.proj.bias": tensor(embed),
        "patch_embed.norm.weight": 1 + tensor(embed),
        "patch_embed.norm.bias": tensor(embed),
    }
    for stage, (depth, heads) in enumerate(zip(swin["depths"], swin["num_heads"])):
        dim, grid = embed * 2**stage, PRETRAINING_SIZE // PATCH // 2**stage
        hidden = int(dim * swin["mlp_ratio"])
        for block in range(depth):
            prefix = f"layers.{stage}.blocks.{block}."
            state.update(
                {
                    prefix + "norm1.weight": 1 + tensor(dim),
                    prefix + "norm1.bias": tensor(dim),
                    prefix + "attn.relative_position_bias_table": tensor((2 * window - 1) ** 2, heads),
                    prefix + "attn.relative_position_index": _repository_position_index(window),
                    prefix + "attn.qkv.weight": tensor(3 * dim, dim),
                    prefix + "attn.qkv.bias": tensor(3 * dim),
                    prefix + "attn.proj.weight": tensor(dim, dim),
                    prefix + "attn.proj.bias": tensor(dim),
                    prefix + "norm2.weight": 1 + tensor(dim),
                    prefix + "norm2.bias": tensor(dim),
                    prefix + "mlp.fc1.weight": tensor(hidden, dim),
                    prefix + "mlp.fc1.bias": tensor(hidden),
                    prefix + "mlp.fc2.weight": tensor(dim, hidden),
                    prefix + "mlp.fc2.bias": tensor(dim),
                }
            )
            if block % 2 == 1 and grid > window:  # the repository registers a mask only where it shifts
                state[prefix + "attn_mask"] = _shift_mask(grid, grid, window, window // 2)
        if stage < len(swin["depths"]) - 1:
            state[f"layers.{stage}.downsample.reduction.weight"] = tensor(2 * dim, 4 * dim)
            state[f"layers.{stage}.downsample.norm.weight"] = 1 + tensor(4 * dim)
            state[f"layers.{stage}.downsample.norm.bias"] = tensor(4 * dim)
    final = embed * 2 ** (len(swin["depths"]) - 1)
    state.update(
        {
            "norm.weight": 1 + tensor(final),
            "norm.bias": tensor(final),
            "head.weight": tensor(NUM_CLASSES, final),
            "head.bias": tensor(NUM_CLASSES),
        }
    )
    return state


def timm_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same weights as timm >= 0.9 keys them: patch merging at the start of the next stage, `head.fc`."""
    renamed = {}
    for key, value in state.items():
        if key.startswith("layers.") and ".downsample." in key:
            stage, rest = key[len("layers.") :].split(".", 1)
            key = f"layers.{int(stage) + 1}.{rest}"
        renamed[key.replace("head.", "head.fc.")] = value
    return renamed


# ---- the Swin repository's forward, re-implemented -------------------------------------------------------------------
# Shifted windows in every odd block, whatever the grid, as in the detection backbone the authors use.


def _window_attention(x: torch.Tensor, state: dict, prefix: str, heads: int, window: int, mask) -> torch.Tensor:
    windows, tokens, channels = x.shape
    qkv = F.linear(x, state[prefix + "attn.qkv.weight"], state[prefix + "attn.qkv.bias"])
    q, k, v = qkv.reshape(windows, tokens, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
    attention = (q * (channels // heads) ** -0.5) @ k.transpose(-2, -1)
    index = state[prefix + "attn.relative_position_index"].reshape(-1)
    bias = state[prefix + "attn.relative_position_bias_table"][index].view(tokens, tokens, heads).permute(2, 0, 1)
    attention = attention + bias
    if mask is not None:
        attention = attention.view(-1, mask.shape[0], heads, tokens, tokens) + mask[None, :, None]
        attention = attention.view(-1, heads, tokens, tokens)
    out = (attention.softmax(-1) @ v).transpose(1, 2).reshape(windows, tokens, channels)
    return F.linear(out, state[prefix + "attn.proj.weight"], state[prefix + "attn.proj.bias"])


def _block(x: torch.Tensor, size: tuple[int, int], state: dict, prefix: str, heads: int, shift: int) -> torch.Tensor:
    (height, width), window = size, SWIN["window_size"]
    batch, _, channels = x.shape
    y = F.layer_norm(x, (channels,), state[prefix + "norm1.weight"], state[prefix + "norm1.bias"], EPS)
    y = y.view(batch, height, width, channels)
    if shift:
        y = torch.roll(y, (-shift, -shift), (1, 2))
    y = y.view(batch, height // window, window, width // window, window, channels).permute(0, 1, 3, 2, 4, 5)
    mask = _shift_mask(height, width, window, shift) if shift else None
    y = _window_attention(y.reshape(-1, window * window, channels), state, prefix, heads, window, mask)
    y = y.view(batch, height // window, width // window, window, window, channels).permute(0, 1, 3, 2, 4, 5)
    y = y.reshape(batch, height, width, channels)
    if shift:
        y = torch.roll(y, (shift, shift), (1, 2))
    x = x + y.reshape(batch, height * width, channels)
    y = F.layer_norm(x, (channels,), state[prefix + "norm2.weight"], state[prefix + "norm2.bias"], EPS)
    y = F.gelu(F.linear(y, state[prefix + "mlp.fc1.weight"], state[prefix + "mlp.fc1.bias"]))
    return x + F.linear(y, state[prefix + "mlp.fc2.weight"], state[prefix + "mlp.fc2.bias"])


def _patch_merging(x: torch.Tensor, size: tuple[int, int], state: dict, prefix: str) -> torch.Tensor:
    (height, width), (batch, _, channels) = size, x.shape
    x = x.view(batch, height, width, channels)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    x = x.view(batch, -1, 4 * channels)
    x = F.layer_norm(x, (4 * channels,), state[prefix + "norm.weight"], state[prefix + "norm.bias"], EPS)
    return F.linear(x, state[prefix + "reduction.weight"])


def reference_stage_maps(state: dict[str, torch.Tensor], pixels: torch.Tensor) -> list[torch.Tensor]:
    """The four stage outputs (before any output norm) as (batch, channels, height, width)."""
    x = F.conv2d(pixels, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH)
    batch, channels, height, width = x.shape
    x = F.layer_norm(
        x.flatten(2).transpose(1, 2), (channels,), state["patch_embed.norm.weight"], state["patch_embed.norm.bias"], EPS
    )
    maps = []
    for stage, (depth, heads) in enumerate(zip(SWIN["depths"], SWIN["num_heads"])):
        for block in range(depth):
            shift = SWIN["window_size"] // 2 if block % 2 else 0
            x = _block(x, (height, width), state, f"layers.{stage}.blocks.{block}.", heads, shift)
        maps.append(x.transpose(1, 2).reshape(batch, -1, height, width))
        if stage < len(SWIN["depths"]) - 1:
            x = _patch_merging(x, (height, width), state, f"layers.{stage}.downsample.")
            height, width = height // 2, width // 2
    return maps


# ---- fixtures --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vfm_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vfm")
    Dinov2Model(
        Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=28)
    ).save_pretrained(folder)
    return folder


def _save(state: dict[str, torch.Tensor], path: Path, wrapper: str | None = "model") -> str:
    torch.save({wrapper: state} if wrapper else state, path)
    return str(path)


def _load(vfm_folder: Path, encoder_file: str, **swin: Any) -> WEDepthForDepthEstimation:
    return WEDepthForDepthEstimation.from_pretrained_backbones(_tiny_config(**swin), str(vfm_folder), encoder_file)


# ---- tests -----------------------------------------------------------------------------------------------------------


def _expected_encoder_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each SwinBackbone weight and the source tensor it must equal, written out by hand."""
    expected = {
        "swin.embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "swin.embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "swin.embeddings.norm.weight": state["patch_embed.norm.weight"],
        "swin.embeddings.norm.bias": state["patch_embed.norm.bias"],
        "swin.layernorm.weight": state["norm.weight"],
        "swin.layernorm.bias": state["norm.bias"],
    }
    for stage, depth in enumerate(SWIN["depths"]):
        dim = SWIN["embed_dim"] * 2**stage
        for block in range(depth):
            ours, theirs = f"swin.encoder.layers.{stage}.blocks.{block}.", f"layers.{stage}.blocks.{block}."
            qkv_weight, qkv_bias = state[theirs + "attn.qkv.weight"], state[theirs + "attn.qkv.bias"]
            expected.update(
                {
                    ours + "attention.q_proj.weight": qkv_weight[:dim],
                    ours + "attention.k_proj.weight": qkv_weight[dim : 2 * dim],
                    ours + "attention.v_proj.weight": qkv_weight[2 * dim :],
                    ours + "attention.q_proj.bias": qkv_bias[:dim],
                    ours + "attention.k_proj.bias": qkv_bias[dim : 2 * dim],
                    ours + "attention.v_proj.bias": qkv_bias[2 * dim :],
                    ours + "attention.o_proj.weight": state[theirs + "attn.proj.weight"],
                    ours + "attention.o_proj.bias": state[theirs + "attn.proj.bias"],
                    ours + "attention.relative_position_bias.relative_position_bias_table": state[
                        theirs + "attn.relative_position_bias_table"
                    ],
                    ours + "layernorm_before.weight": state[theirs + "norm1.weight"],
                    ours + "layernorm_before.bias": state[theirs + "norm1.bias"],
                    ours + "layernorm_after.weight": state[theirs + "norm2.weight"],
                    ours + "layernorm_after.bias": state[theirs + "norm2.bias"],
                    ours + "mlp.fc1.weight": state[theirs + "mlp.fc1.weight"],
                    ours + "mlp.fc1.bias": state[theirs + "mlp.fc1.bias"],
                    ours + "mlp.fc2.weight": state[theirs + "mlp.fc2.weight"],
                    ours + "mlp.fc2.bias": state[theirs + "mlp.fc2.bias"],
                }
            )
        if stage < len(SWIN["depths"]) - 1:
            for name in ("reduction.weight", "norm.weight", "norm.bias"):
                expected[f"swin.encoder.layers.{stage}.downsample.{name}"] = state[f"layers.{stage}.downsample.{name}"]
    for stage in range(1, len(SWIN["depths"]) + 1):
        dim = SWIN["embed_dim"] * 2 ** (stage - 1)
        expected[f"hidden_states_norms.stage{stage}.weight"] = torch.ones(dim)
        expected[f"hidden_states_norms.stage{stage}.bias"] = torch.zeros(dim)
    return expected


def test_every_encoder_tensor_comes_from_the_swin_file(tmp_path, vfm_folder) -> None:
    state = swin_repository_state_dict()
    path = _save(state, tmp_path / "swin.pth")
    model = _load(vfm_folder, path)
    encoder = model.encoder.state_dict()
    expected = _expected_encoder_tensors(state)
    assert sorted(encoder) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(encoder[name], tensor), name
    assert model.config.encoder_pretrained_name_or_path == path
    assert model.config.encoder_config.layer_norm_eps == EPS and model.config.encoder_config.drop_path_rate == 0.1
    assert model.config.encoder_config.depths == SWIN["depths"]
    assert all(not p.requires_grad for p in model.vfm.parameters())
    assert all(p.requires_grad for n, p in model.encoder.named_parameters() if not n.startswith("swin.layernorm."))


def test_the_encoder_computes_what_the_swin_repository_computes(tmp_path, vfm_folder) -> None:
    state = swin_repository_state_dict(seed=1)
    model = _load(vfm_folder, _save(state, tmp_path / "swin.pth")).eval()
    pixels = torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        feature_maps = model.encoder(pixels).feature_maps
        embedding, _ = model.encoder.swin.embeddings(pixels)
        expected_maps = reference_stage_maps(state, pixels)
    # The patch embedding by hand: each 4x4 patch times the kernel, plus bias, then the LayerNorm.
    patch = pixels[0, :, 4:8, 8:12]
    token = (state["patch_embed.proj.weight"] * patch).sum((1, 2, 3)) + state["patch_embed.proj.bias"]
    token = (token - token.mean()) / torch.sqrt(token.var(unbiased=False) + EPS)
    token = token * state["patch_embed.norm.weight"] + state["patch_embed.norm.bias"]
    torch.testing.assert_close(embedding[0, 1 * 32 + 2], token, rtol=1e-4, atol=1e-4)
    # Whole stages, each through the fresh (identity-initialised) output norm.
    assert len(feature_maps) == 4
    for stage, (ours, theirs) in enumerate(zip(feature_maps, expected_maps)):
        normed = F.layer_norm(theirs.permute(0, 2, 3, 1), (theirs.shape[1],), eps=EPS).permute(0, 3, 1, 2)
        torch.testing.assert_close(ours, normed, rtol=1e-4, atol=1e-4, msg=lambda m, s=stage: f"stage {s + 1}: {m}")


@pytest.mark.parametrize("swap", [("q", "k"), ("k", "v")])
def test_a_wrong_qkv_split_would_be_caught(tmp_path, vfm_folder, swap) -> None:
    """The checks above fail when the projections are loaded in the wrong order."""
    state = swin_repository_state_dict(seed=3)
    model = _load(vfm_folder, _save(state, tmp_path / "swin.pth")).eval()
    attention = model.encoder.swin.encoder.layers[1].blocks[1].attention
    first, second = (getattr(attention, f"{name}_proj") for name in swap)
    with torch.no_grad():
        swapped = first.weight.clone()
        first.weight.copy_(second.weight)
        second.weight.copy_(swapped)
    mismatched = [
        n for n, t in _expected_encoder_tensors(state).items() if not torch.equal(model.encoder.state_dict()[n], t)
    ]
    assert len(mismatched) == 2
    pixels = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model.encoder(pixels).feature_maps[1]
    theirs = reference_stage_maps(state, pixels)[1]
    normed = F.layer_norm(theirs.permute(0, 2, 3, 1), (theirs.shape[1],), eps=EPS).permute(0, 3, 1, 2)
    assert not torch.allclose(ours, normed, rtol=1e-4, atol=1e-4)


def test_the_report_accounts_for_every_key() -> None:
    state = swin_repository_state_dict()
    config = _tiny_config().encoder_config
    converted, report = convert_swin_state_dict(state, config)
    assert report.layout == "swin"
    assert set(report.mapped) | set(report.dropped) == set(state) and not set(report.mapped) & set(report.dropped)
    assert sorted(k for k, reason in report.dropped.items() if "classifier" in reason) == ["head.bias", "head.weight"]
    masks = [k for k in state if k.endswith("attn_mask")]
    assert masks == ["layers.0.blocks.1.attn_mask", "layers.1.blocks.1.attn_mask", "layers.2.blocks.1.attn_mask"]
    assert all("mask" in report.dropped[key] for key in masks)
    indices = [k for k in state if k.endswith("relative_position_index")]
    assert len(indices) == 8 and all("index" in report.dropped[key] for key in indices)
    assert sorted(report.fresh) == sorted(
        f"hidden_states_norms.stage{s}.{p}" for s in (1, 2, 3, 4) for p in ("weight", "bias")
    )
    assert report.mapped["layers.2.blocks.0.attn.qkv.weight"] == [
        f"swin.encoder.layers.2.blocks.0.attention.{name}_proj.weight" for name in ("q", "k", "v")
    ]
    assert report.mapped["norm.weight"] == ["swin.layernorm.weight"]
    assert set(converted) == {k for keys in report.mapped.values() for k in keys} | set(report.fresh)
    summary = report.summary()
    assert "119 tensors mapped (swin layout)" in summary and "2 dropped: the ImageNet classifier" in summary
    assert "8 dropped: relative-position index" in summary and "8 freshly initialised: per-stage output" in summary


def test_timm_layout_gives_the_same_encoder(tmp_path, vfm_folder) -> None:
    state = swin_repository_state_dict(seed=4)
    repository = _load(vfm_folder, _save(state, tmp_path / "swin.pth")).encoder.state_dict()
    timm_state = {k: v for k, v in timm_layout(state).items() if not k.endswith(("attn_mask", "position_index"))}
    assert "layers.3.downsample.reduction.weight" in timm_state and "head.fc.weight" in timm_state
    timm = _load(vfm_folder, _save(timm_state, tmp_path / "timm.pth", wrapper="state_dict")).encoder.state_dict()
    assert all(torch.equal(repository[name], timm[name]) for name in repository)
    _, report = load_swin_checkpoint(tmp_path / "timm.pth", _tiny_config().encoder_config)
    assert report.layout == "timm" and report.mapped["layers.3.downsample.norm.bias"] == [
        "swin.encoder.layers.2.downsample.norm.bias"
    ]


def test_plain_ddp_and_safetensors_files_load(tmp_path, vfm_folder) -> None:
    from safetensors.torch import save_file

    state = swin_repository_state_dict(seed=5)
    reference = _load(vfm_folder, _save(state, tmp_path / "wrapped.pth")).encoder.state_dict()
    files = [
        _save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt", wrapper=None),
        str(tmp_path / "swin.safetensors"),
    ]
    save_file({k: v.contiguous() for k, v in state.items()}, files[1])
    for path in files:
        loaded = _load(vfm_folder, path).encoder.state_dict()
        assert all(torch.equal(reference[name], loaded[name]) for name in reference), path


def test_an_unknown_key_is_named(tmp_path, vfm_folder) -> None:
    state = {**swin_repository_state_dict(), "layers.1.blocks.0.attn.extra_scale": torch.ones(1)}
    with pytest.raises(ValueError, match=r"unknown keys \['layers\.1\.blocks\.0\.attn\.extra_scale'\]"):
        _load(vfm_folder, _save(state, tmp_path / "swin.pth"))
    state = {**swin_repository_state_dict(), "layers.1.blocks.2.norm1.weight": torch.ones(48)}  # a third block
    with pytest.raises(ValueError, match=r"depths"):
        _load(vfm_folder, _save(state, tmp_path / "deeper.pth"))


@pytest.mark.parametrize(
    "key, named",
    [
        ("layers.2.blocks.1.mlp.fc2.bias", "swin.encoder.layers.2.blocks.1.mlp.fc2.bias"),
        ("layers.0.blocks.0.attn.qkv.weight", "swin.encoder.layers.0.blocks.0.attention.q_proj.weight"),
        ("layers.1.downsample.reduction.weight", "swin.encoder.layers.1.downsample.reduction.weight"),
    ],
)
def test_a_missing_key_is_named(tmp_path, vfm_folder, key, named) -> None:
    state = swin_repository_state_dict()
    del state[key]
    with pytest.raises(ValueError, match=rf"lacks weights the Swin encoder needs: \[[^]]*'{re.escape(named)}'"):
        _load(vfm_folder, _save(state, tmp_path / "swin.pth"))


def test_a_file_of_another_swin_is_refused(tmp_path, vfm_folder) -> None:
    wider = swin_repository_state_dict(embed_dim=16)
    with pytest.raises(ValueError, match=r"embed_dim 16.*encoder config is .*embed_dim 24.*differ in embed_dim"):
        _load(vfm_folder, _save(wider, tmp_path / "wider.pth"))
    more_heads = swin_repository_state_dict(num_heads=[2, 2, 3, 4])
    with pytest.raises(ValueError, match=r"differ in num_heads"):
        _load(vfm_folder, _save(more_heads, tmp_path / "heads.pth"))
    other_window = swin_repository_state_dict(window_size=4)
    with pytest.raises(ValueError, match=r"differ in window_size"):
        _load(vfm_folder, _save(other_window, tmp_path / "window.pth"))
    # The error names the common sizes: a Swin-T file for the Swin-B of the `large` preset.
    tiny_t = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 7}
    meta_state = {
        "patch_embed.proj.weight": torch.empty(96, 3, 4, 4, device="meta"),
        **{
            f"layers.{s}.blocks.{b}.attn.relative_position_bias_table": torch.empty(
                169, tiny_t["num_heads"][s], device="meta"
            )
            for s, depth in enumerate(tiny_t["depths"])
            for b in range(depth)
        },
    }
    from wedepth_hf import WEDepthConfig

    with pytest.raises(ValueError, match=r"holds Swin-T .*encoder config is Swin-B"):
        convert_swin_state_dict(meta_state, WEDepthConfig.from_preset("large").encoder_config)


def test_a_mismatched_shape_is_named(tmp_path, vfm_folder) -> None:
    state = swin_repository_state_dict()
    state["layers.1.blocks.0.mlp.fc1.weight"] = torch.zeros(95, 48)
    state["layers.1.blocks.0.mlp.fc1.bias"] = torch.zeros(95)
    with pytest.raises(ValueError, match=r"layers\.1\.blocks\.0\.mlp\.fc1\.weight: file \(95, 48\)"):
        _load(vfm_folder, _save(state, tmp_path / "swin.pth"))


def test_a_wrong_position_index_is_refused(tmp_path, vfm_folder) -> None:
    state = swin_repository_state_dict()
    state["layers.0.blocks.1.attn.relative_position_index"] = state["layers.0.blocks.1.attn.relative_position_index"].T
    with pytest.raises(ValueError, match=r"layers\.0\.blocks\.1\.attn\.relative_position_index is not"):
        _load(vfm_folder, _save(state, tmp_path / "swin.pth"))


def test_pickled_objects_and_non_state_dicts_are_refused(tmp_path, vfm_folder) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo planted",))

    torch.save({"model": swin_repository_state_dict(), "config": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(
        ValueError, match=r"weights-only PyTorch checkpoint \(UnpicklingError: .*GLOBAL posix\.system"
    ) as error:
        _load(vfm_folder, str(tmp_path / "evil.pth"))
    assert "\n" not in str(error.value) and "weights_only" not in str(error.value)
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(1), "epoch": 3}}, tmp_path / "mixed.pth")
    with pytest.raises(ValueError, match=r"not a state dict of tensors: \['epoch'\]"):
        _load(vfm_folder, str(tmp_path / "mixed.pth"))
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="is not a state dict: it holds list"):
        _load(vfm_folder, str(tmp_path / "list.pth"))
    (tmp_path / "text.bin").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="could not be read as a weights-only"):
        _load(vfm_folder, str(tmp_path / "text.bin"))
    with pytest.raises(FileNotFoundError, match="No encoder checkpoint file"):
        _load(vfm_folder, str(tmp_path / "absent.pth"))


def test_a_non_swin_encoder_config_is_refused() -> None:
    from transformers import ConvNextConfig

    with pytest.raises(ValueError, match="needs a Swin encoder config"):
        convert_swin_state_dict(swin_repository_state_dict(), ConvNextConfig())


def test_the_tiny_file_has_the_repository_keys() -> None:
    """The generated file, counted independently: patch embedding 4; per block 14 tensors, plus a mask in the shifted
    blocks whose grid exceeds the window (stages 1-3 here); 3 per patch merging (3 of them); final norm 2, head 2."""
    state = swin_repository_state_dict()
    assert len(state) == 4 + 14 * sum(SWIN["depths"]) + 3 + 3 * 3 + 2 + 2
    assert state["layers.3.blocks.0.attn.relative_position_bias_table"].shape == (9, 4)
    assert state["layers.0.blocks.1.attn_mask"].shape == (64, 4, 4)


def test_the_training_option_takes_a_file(tmp_path, vfm_folder) -> None:
    """`encoder_name_or_path` of a training config goes to `from_pretrained_backbones` as it is: a file path works."""
    from wedepth_hf.training.config import TrainingConfig
    from wedepth_hf.training.optimization import build_model

    state = swin_repository_state_dict(seed=6)
    path = _save(state, tmp_path / "swin_base_patch4_window7_224.pth")
    tiny = _tiny_config()
    model_config = {
        key: getattr(tiny, key)
        for key in ("prompt_num", "prompt_dim", "prompt_attention_heads", "decoder_hidden_size", "decoder_ffn_dim")
    }
    config = TrainingConfig(
        preset="small",
        pretrained_backbones=True,
        vfm_name_or_path=str(vfm_folder),
        encoder_name_or_path=path,
        model_config={
            **model_config,
            "head_hidden_size": tiny.head_hidden_size,
            "vfm_config": tiny.vfm_config.to_dict(),
            "encoder_config": tiny.encoder_config.to_dict(),
        },
    )
    model = build_model(config)
    assert model.config.encoder_pretrained_name_or_path == path
    encoder = model.encoder.state_dict()
    assert all(torch.equal(encoder[name], tensor) for name, tensor in _expected_encoder_tensors(state).items())
