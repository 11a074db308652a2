"""Hostile inputs to `wedepth predict` and to loading a model (issue 17): a VFM that is not the recorded one, configs
with wrong types or absurd sizes, non-finite depth, decompression bombs and a full disk. Each case runs the public
command in a fresh process and checks the exit status, the first line of the message, that there is no traceback, and
which files exist afterwards."""

import json
import math
import re
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import assert_refused, make_tiny_config, run_python, run_wedepth, tree_digest
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import Dinov2Config, Dinov2Model, SwinConfig, SwinForImageClassification

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation, WEDepthImageProcessor, cli, predict
from wedepth_hf.data.datasets import read_rgb


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny model folders: "full" (self-contained, its VFM's source and fingerprint recorded), "free" (the same model
    without its VFM) and "random" (random weights, no recorded VFM source), each with an image processor."""
    root = tmp_path_factory.mktemp("hostile_models")
    torch.manual_seed(3)
    Dinov2Model(
        Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=28)
    ).save_pretrained(root / "vfm")
    torch.manual_seed(4)
    SwinForImageClassification(
        SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, num_labels=3)
    ).save_pretrained(root / "encoder")
    torch.manual_seed(0)
    trained = WEDepthForDepthEstimation.from_pretrained_backbones(
        make_tiny_config(), vfm_name_or_path=str(root / "vfm"), encoder_name_or_path=str(root / "encoder")
    )
    trained.save_pretrained(root / "full")
    trained.save_pretrained(root / "free", include_vfm=False)
    torch.manual_seed(0)
    WEDepthForDepthEstimation(make_tiny_config()).save_pretrained(root / "random")
    for name in ("full", "free", "random"):
        WEDepthImageProcessor().save_pretrained(root / name)
    return {name: root / name for name in ("full", "free", "random")}


def _copy(source: Path, target: Path, config: dict[str, Any] | None = None, weights: Callable | None = None) -> Path:
    """A copy of a model folder, its config.json updated with `config` and its weights passed through `weights`."""
    shutil.copytree(source, target)
    if config is not None:
        values = json.loads((target / "config.json").read_text())
        for key, value in config.items():
            if "." in key:
                outer, inner = key.split(".")
                values[outer][inner] = value
            else:
                values[key] = value
        (target / "config.json").write_text(json.dumps(values))
    if weights is not None:
        tensors = weights(load_file(target / "model.safetensors"))
        save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


def _without_vfm(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in tensors.items() if not name.startswith("vfm.")}


def _vfm_changed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    name = next(name for name in sorted(tensors) if name.startswith("vfm.encoder"))
    return {**tensors, name: tensors[name] + 1e-3}


def _write_image(path: Path, height: int = 30, width: int = 40) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _predict(work: Path, model: Path, *inputs: str, options: tuple[str, ...] = ()) -> list[str]:
    """The `wedepth predict` arguments for `inputs` into work/out, in float32 (bfloat16 is the default only on some
    CPUs)."""
    return ["predict", *inputs, "--model", str(model), "--output-dir", str(work / "out"), "--dtype", "float32"] + [
        "--no-progress",
        *options,
    ]


# ---- item 2: the VFM a model ends up with is the recorded one --------------------------------------------------------


VFM_CASES = {
    # A VFM-free folder whose config.json is edited to say the VFM is inside.
    "vfm_free_said_inside": ("free", {"vfm_in_checkpoint": True}, None, "does not provide 79 of the frozen VFM's"),
    # A self-contained folder with its vfm.* tensors removed.
    "vfm_tensors_removed": ("full", None, _without_vfm, "does not provide 79 of the frozen VFM's"),
    # A self-contained folder whose VFM tensors were changed.
    "vfm_tensors_changed": ("full", None, _vfm_changed, "its frozen VFM is not the one its config records"),
}


@pytest.mark.parametrize("case", sorted(VFM_CASES))
def test_predict_refuses_a_model_whose_vfm_is_not_the_recorded_one(
    models: dict[str, Path], tmp_path: Path, case: str
) -> None:
    source, config, weights, reason = VFM_CASES[case]
    model = _copy(models[source], tmp_path / "model", config, weights)
    image = _write_image(tmp_path / "x.png")
    before = tree_digest(tmp_path)
    completed = run_wedepth(_predict(tmp_path, model, str(image)), cwd=tmp_path)
    assert_refused(completed, 1, f"Could not load a depth model from '{model}': ")
    assert reason in completed.stderr
    assert tree_digest(tmp_path) == before  # no output, nothing of the user's changed


def test_from_pretrained_checks_the_vfm_it_ends_up_with(
    models: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No recorded source, so no fingerprint to check: missing VFM tensors are an error all the same.
    random = _copy(models["random"], tmp_path / "random", weights=_without_vfm)
    with pytest.raises(ValueError, match="does not provide 79 of the frozen VFM's tensors .* never initialised"):
        WEDepthForDepthEstimation.from_pretrained(random)
    # The fingerprint is checked on the checkpoint's own bytes, then the model is cast as asked.
    recorded = WEDepthForDepthEstimation.from_pretrained(models["full"])
    cast = WEDepthForDepthEstimation.from_pretrained(models["full"], dtype=torch.bfloat16)
    assert cast.vfm.embeddings.cls_token.dtype == torch.bfloat16 and cast.config.dtype == torch.bfloat16
    assert torch.equal(cast.vfm.embeddings.cls_token, recorded.vfm.embeddings.cls_token.to(torch.bfloat16))
    # A model whose VFM no longer has its fingerprint (cast here) is saved without one, and loads again.
    cast.save_pretrained(tmp_path / "cast")
    assert "no longer has the fingerprint recorded" in caplog.text
    assert json.loads((tmp_path / "cast" / "config.json").read_text())["vfm_fingerprint"] is None
    assert cast.config.vfm_fingerprint == recorded.config.vfm_fingerprint  # the model in memory keeps its record
    reloaded = WEDepthForDepthEstimation.from_pretrained(tmp_path / "cast", dtype=torch.bfloat16)
    assert torch.equal(reloaded.vfm.embeddings.cls_token, cast.vfm.embeddings.cls_token)


# ---- items 9 and 11: config values and tensors checked before anything is built --------------------------------------


CONFIG_CASES = {
    "hidden_size_string": ({"vfm_config.hidden_size": "32"}, "`vfm_config.hidden_size` must be a whole number >= 1"),
    "hidden_size_huge": (
        {"vfm_config.hidden_size": 10**9},
        "This WEDepth config describes more than 1.6e+19 parameters in the VFM alone",
    ),
    "prompt_num_fraction": ({"prompt_num": 5.5}, "`prompt_num` must be a whole number >= 1, got 5.5 (float)"),
    "decoder_layers_word": ({"decoder_layers": "two"}, "`decoder_layers` must be a whole number >= 1, got 'two'"),
    "decoder_width_zero": ({"decoder_hidden_size": 0}, "`decoder_hidden_size` must be a whole number >= 1, got 0"),
    "decoder_width_huge": (
        {"decoder_hidden_size": 100000},
        "This WEDepth config describes about 440.2 billion parameters",
    ),
    "tensor_of_wrong_shape": (None, "1 tensor(s) of the checkpoint do not have the shapes its config gives the model"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_predict_refuses_a_bad_config_or_tensor_in_one_line(models: dict[str, Path], tmp_path: Path, case: str) -> None:
    config, reason = CONFIG_CASES[case]

    def wrong_shape(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**tensors, "depth_heads.0.conv1.weight": torch.zeros(3, 3)}

    model = _copy(models["random"], tmp_path / "model", config, None if config else wrong_shape)
    image = _write_image(tmp_path / "x.png")
    before = tree_digest(tmp_path)
    completed = run_wedepth(_predict(tmp_path, model, str(image)), cwd=tmp_path)
    assert_refused(completed, 1, f"Could not load a depth model from '{model}': {reason}")
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"prompt_num": True}, "`prompt_num` must be a whole number >= 1, got True (bool)"),
        ({"prompt_dim": 32.0}, "`prompt_dim` must be a whole number >= 1, got 32.0 (float)"),
        ({"min_depth": "0.1"}, "`min_depth` must be a finite number > 0, got '0.1'"),
        ({"layer_norm_eps": math.nan}, "`layer_norm_eps` must be a finite number > 0"),
        ({"vfm_in_checkpoint": "false"}, "`vfm_in_checkpoint` must be true or false, got 'false'"),
        ({"vfm_fingerprint": "sha256:00"}, "`vfm_fingerprint` must be null or"),
        ({"encoder_config": {"model_type": "swin", "embed_dim": "16"}}, "`encoder_config.embed_dim` must be a whole"),
        ({"encoder_config": {"model_type": "swin", "depths": [2, 0, 2, 2]}}, "`encoder_config.depths` must be a whole"),
        ({"head_hidden_size": 200_000}, "describes about 2.1e+12 parameters"),
        ({"prompt_num": 10**7}, "would need one activation of about 4.8 GiB"),
        # Refused before transformers builds a list entry per layer (minutes for this one).
        ({"vfm_config": {"model_type": "dinov2", "num_hidden_layers": 10**7}}, "parameters in the VFM alone"),
        ({"decoder_ffn_dim": 3_000_000}, "would need one activation of about 285.0 GiB"),
    ],
)
def test_config_values_are_type_and_range_checked(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        make_tiny_config(**values)


def test_training_sizes_are_refused_before_anything_is_allocated() -> None:
    # The training side builds `WEDepthConfig.from_preset(preset, **model_config)`.
    with pytest.raises(ValueError, match=r"describes about .* billion parameters .* decoder_hidden_size=100000"):
        WEDepthConfig.from_preset("large", decoder_hidden_size=100000)


@pytest.mark.parametrize("preset", ["small", "large"])
def test_the_size_estimate_is_the_parameter_count(preset: str) -> None:
    config = WEDepthConfig.from_preset(preset)
    with torch.device("meta"):
        counts = WEDepthForDepthEstimation(config).parameter_counts()
    estimate = config.estimated_parameters()
    assert estimate["new_modules"] == counts["new_modules"]
    for part in ("vfm", "encoder"):
        assert abs(estimate[part] - counts[part]) <= 1e-3 * counts[part]


# ---- item 3: a non-finite depth map is never written -----------------------------------------------------------------


def test_non_finite_depth_is_not_written(models: dict[str, Path], tmp_path: Path) -> None:
    model = WEDepthForDepthEstimation.from_pretrained(models["random"])
    with torch.no_grad():
        model.depth_heads[0].log_depth.bias.fill_(math.nan)
    model.save_pretrained(tmp_path / "nan_model")
    WEDepthImageProcessor().save_pretrained(tmp_path / "nan_model")
    image = _write_image(tmp_path / "x.png")
    before = tree_digest(tmp_path)
    completed = run_wedepth(_predict(tmp_path, tmp_path / "nan_model", str(image), options=("--save-ply",)), tmp_path)
    assert_refused(
        completed,
        1,
        f"{image}: the predicted depth has 1200 non-finite values (NaN or infinite) of 1200; nothing written for it.",
    )
    assert "1 input(s) failed; 0 image(s) were written" in completed.stderr
    assert tree_digest(tmp_path) == before


def test_non_finite_depth_under_autocast_is_predicted_again_in_float32(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A map that has non-finite values under bfloat16 autocast only is predicted again in float32 and written."""
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation(make_tiny_config()).eval()

    def nan_under_autocast(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output * math.nan if torch.is_autocast_enabled("cpu") else output

    model.depth_heads[0].register_forward_hook(nan_under_autocast)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    item = predict.InputImage(tmp_path / "x.png", "x", (30, 40))
    loaded = [predict.LoadedModel("tiny", model, WEDepthImageProcessor())]
    arguments = cli.build_parser().parse_args(["predict", "x.png", "--model", "tiny", "--output-dir", str(tmp_path)])
    cpu, _ = predict._check_arguments(arguments)
    failures = predict._predict_and_write(loaded, [tmp_path], [(item, image)], arguments, cpu, torch.bfloat16)
    assert failures == 0
    assert "non-finite values; predicting it again in float32" in caplog.text
    written = np.asarray(Image.open(tmp_path / "x_depth.png"))
    expected = predict.predict_images(model, WEDepthImageProcessor(), [image], cpu, torch.float32, False)
    assert np.array_equal(written, predict.depth_to_uint16_millimetres(expected[0].numpy()))


# ---- item 7: the pixel budget ----------------------------------------------------------------------------------------


def _png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 8-bit grayscale PNG of `width` x `height` black pixels, a few kilobytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row's pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_before_it_is_decoded(models: dict[str, Path], tmp_path: Path) -> None:
    bomb = _png_bomb(tmp_path / "bomb.png", 8000, 7000)  # 56 MP, under Pillow's own limit
    assert bomb.stat().st_size < 200_000
    good = _write_image(tmp_path / "good.png")
    completed = run_wedepth(_predict(tmp_path, models["random"], str(bomb), str(good)), cwd=tmp_path)
    assert_refused(
        completed,
        1,
        f"{bomb} is 8000x7000 = 56,000,000 pixels, more than the limit of 50,000,000 (a guard against decompression "
        "bombs); if the image is genuine, raise the limit with --max_pixels. Skipped.",
    )
    assert "1 input(s) failed; 1 image(s) were written" in completed.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["good_depth.png", "good_depth_color.png"]
    with pytest.raises(ValueError, match="56,000,000 pixels, more than the limit of 50,000,000"):
        read_rgb(bomb)
    with pytest.raises(ValueError, match="1,200 pixels, more than the limit of 1,000"):
        read_rgb(good, max_pixels=1000)
    assert read_rgb(good, max_pixels=1200).shape == (3, 30, 40)
    parser = cli.build_parser()
    options = ["predict", "x.png", "--model", "m", "--output-dir", "o"]
    assert parser.parse_args(options).max_pixels == 50_000_000
    assert parser.parse_args([*options, "--max_pixels", "0"]).max_pixels == 0
    with pytest.raises(SystemExit) as refused:
        parser.parse_args([*options, "--max-pixels", "-1"])
    assert refused.value.code == 2


def test_the_image_processor_has_the_pixel_budget(tmp_path: Path) -> None:
    # Checked on arrays before they are converted: np.zeros maps the pages lazily, so nothing of 50 MP is touched.
    with pytest.raises(ValueError, match="7072x7072 = 50,013,184 pixels, more than the limit of 50,000,000"):
        WEDepthImageProcessor()(np.zeros((7072, 7072), dtype=np.uint8))
    processor = WEDepthImageProcessor(max_pixels=1000)
    for image in (np.zeros((30, 40, 3), dtype=np.uint8), Image.new("RGB", (40, 30))):
        with pytest.raises(ValueError, match="1,200 pixels, more than the limit of 1,000"):
            processor(image)
    assert processor(Image.new("RGB", (40, 30)), max_pixels=1200)["pixel_values"][0].shape == (3, 30, 40)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["max_pixels"] == 1000
    assert WEDepthImageProcessor.from_pretrained(tmp_path).max_pixels == 1000


# ---- item 8: the outputs of one image change together ----------------------------------------------------------------


def test_a_full_disk_leaves_all_outputs_of_an_image_as_they_were(models: dict[str, Path], tmp_path: Path) -> None:
    image = _write_image(tmp_path / "x.png")
    output = tmp_path / "out"
    output.mkdir()
    for name in ("x_depth.png", "x_depth_color.png", "x.ply"):
        (output / name).write_bytes(f"the previous {name}".encode())
    before = tree_digest(tmp_path)
    arguments = _predict(tmp_path, models["random"], str(image), options=("--save-ply",))
    # The disk fills up while the third output, the point cloud, is flushed.
    completed = run_python(
        f"""
        import errno, os, sys
        from wedepth_hf import cli

        flush = os.fsync

        def full_disk_for_the_point_cloud(descriptor):
            if ".x.ply." in os.readlink(f"/proc/self/fd/{{descriptor}}"):
                raise OSError(errno.ENOSPC, "No space left on device")
            flush(descriptor)

        os.fsync = full_disk_for_the_point_cloud
        sys.exit(cli.main({arguments!r}))
        """,
        cwd=tmp_path,
    )
    assert tree_digest(tmp_path) == before  # all three as they were, and no partial or temporary file
    reason = f"{image}: cannot write its outputs to {output} (No space left on device); none of them was changed."
    assert_refused(completed, 1, reason)
    assert "1 input(s) failed; 0 image(s) were written" in completed.stderr
