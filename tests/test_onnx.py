"""`wedepth export onnx`, `WEDepthOnnxModel` and `wedepth predict --backend onnxruntime`: one export of a tiny
VFM-free folder, then parity with PyTorch at sizes that were not the trace size."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_tiny_config
from PIL import Image

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor
from wedepth_hf.cli import main
from wedepth_hf.onnx_export import export_friendly, minimum_export_side


for _module in ("onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(_module, reason='the [onnx] extra is not installed (pip install "wedepth_hf[onnx]")')

from wedepth_hf.onnx_export import WEDepthOnnxModel  # noqa: E402 - after the extra's check


# A Swin window of 2 tokens keeps the smallest side the graph takes (every stage's map larger than the window) at 96.
TINY = {"model_type": "swin", "embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 2}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the VFM-free model folder, the folder `wedepth export onnx` wrote from it)."""
    root = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation(make_tiny_config(encoder_config=TINY, decoder_layers=1)).eval()
    model.vfm.save_pretrained(root / "vfm")
    model.record_vfm_source(str(root / "vfm"))
    model.save_pretrained(root / "free", include_vfm=False)
    WEDepthImageProcessor().save_pretrained(root / "free")
    assert main(["export", "onnx", "--model", str(root / "free"), "--output", str(root / "exported")]) == 0
    return root / "free", root / "exported"


def test_the_graph_matches_pytorch_at_sizes_it_was_not_traced_at(exported: tuple[Path, Path]) -> None:
    free, folder = exported
    model = WEDepthForDepthEstimation.from_pretrained(free).eval()
    graph = WEDepthOnnxModel.from_pretrained(folder)
    assert graph.minimum_side == 96
    # The trace size is 96x160 (batch 2): other batches, both orientations, Swin maps with and without padding.
    for shape in ((1, 3, 96, 128), (3, 3, 128, 96), (1, 3, 192, 224)):
        pixel_values = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            expected = model(pixel_values=pixel_values).predicted_depth
        depth = graph(pixel_values=pixel_values).predicted_depth
        assert depth.shape == shape[:1] + shape[2:]
        assert ((depth - expected).abs() / expected.abs()).max().item() <= 1e-4, shape


def test_the_export_form_folds_the_prompts_and_leaves_the_model_as_it_was() -> None:
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation(make_tiny_config(encoder_config=TINY, decoder_layers=1)).eval()
    pixel_values = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        before = model(pixel_values=pixel_values).predicted_depth
    blocks = [module for module in model.encoder.modules() if hasattr(module, "shift_size")]
    blocks[1].window_size, blocks[1].shift_size = 1, 0  # as transformers' Swin leaves it after a tiny input
    stages = model.prompted_vfm
    with export_friendly(model), torch.no_grad():
        folded = stages.stage_prompts()
        assert [(block.window_size, block.shift_size) for block in blocks[:2]] == [(2, 0), (2, 0)]
        assert {module.self_attn.implementation for module in model.pixel_decoder.layers} == {"grid_sample"}
        assert model.encoder.config._attn_implementation == "eager"
        exported = model(pixel_values=pixel_values).predicted_depth
    with torch.no_grad():
        stages.prompt_embeddings.add_(1.0)  # the folded prompts are a copy, not a view of the weights
    assert not torch.equal(stages.stage_prompts(), folded)
    assert (blocks[1].window_size, blocks[1].shift_size) == (1, 0)
    assert {module.self_attn.implementation for module in model.pixel_decoder.layers} == {"gather"}
    assert model.encoder.config._attn_implementation == "sdpa"
    assert ((exported - before).abs() / before).max() <= 1e-5


def test_the_processor_loads_from_the_exported_folder(exported: tuple[Path, Path]) -> None:
    from transformers import AutoImageProcessor

    _, folder = exported
    assert isinstance(AutoImageProcessor.from_pretrained(folder), WEDepthImageProcessor)


def test_export_refuses_a_size_the_graph_cannot_take(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    free, _ = exported
    assert minimum_export_side(make_tiny_config(encoder_config=TINY)) == 96
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "export",
                "onnx",
                "--model",
                str(free),
                "--output",
                str(tmp_path / "x.onnx"),
                "--height",
                "40",
                "--width",
                "90",
            ]
        )
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--height 40: the exported graph takes multiples of 32 of at least 96 px" in message
    assert not (tmp_path / "x.onnx").exists()


def test_an_output_folder_named_like_a_graph_is_refused_before_exporting(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`--output x.onnx` where x.onnx is a folder: exit 2 and one line before the model loads, even with --overwrite
    (the graph could not be written there after minutes of tracing)."""
    free, _ = exported
    (tmp_path / "x.onnx").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "onnx", "--model", str(free), "--output", str(tmp_path / "x.onnx"), "--overwrite"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "x.onnx is a folder whose name ends in .onnx; give the file to write, e.g." in message
    assert list((tmp_path / "x.onnx").iterdir()) == []


@pytest.mark.parametrize("existing", ["notes.txt", "preprocessor_config.json", "image_processing_wedepth.py"])
def test_export_keeps_existing_files(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, existing: str
) -> None:
    """An --output that is a file of the user's, or a folder whose processor config would be replaced: exit 2, one
    line, the file as it was."""
    free, _ = exported
    (tmp_path / existing).write_text("keep me")
    output = tmp_path / existing if existing == "notes.txt" else tmp_path
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "onnx", "--model", str(free), "--output", str(output)])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert ("is a file that is not a .onnx" if existing == "notes.txt" else "--overwrite to replace them") in message
    assert (tmp_path / existing).read_text() == "keep me" and not (tmp_path / "model.onnx").exists()


def test_predict_with_onnxruntime_writes_the_depth_of_the_torch_backend(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    free, folder = exported
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    common = [str(tmp_path / "scene.png"), "--processing_size", "0", "--no_progress"]
    assert (
        main(["predict", *common, "--model", str(free), "--output_dir", str(tmp_path / "torch"), "--dtype", "float32"])
        == 0
    )
    assert (
        main(
            [
                "predict",
                *common,
                "--model",
                str(folder),
                "--output_dir",
                str(tmp_path / "ort"),
                "--backend",
                "onnxruntime",
            ]
        )
        == 0
    )
    torch_mm = np.asarray(Image.open(tmp_path / "torch" / "scene_depth.png")).astype(np.int64)
    ort_mm = np.asarray(Image.open(tmp_path / "ort" / "scene_depth.png")).astype(np.int64)
    assert torch_mm.shape == (96, 128) and torch_mm.max() > 0
    assert np.abs(torch_mm - ort_mm).max() <= 1


def test_predict_with_onnxruntime_refuses_a_low_precision_dtype(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, folder = exported
    Image.new("RGB", (80, 70)).save(tmp_path / "a.png")
    arguments = ["predict", str(tmp_path / "a.png"), "--model", str(folder), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main([*arguments, "--backend", "onnxruntime", "--dtype", "bfloat16"])
    assert exit_info.value.code == 2
    assert "--backend onnxruntime runs float32 graphs" in capsys.readouterr().err


def test_a_missing_extra_is_one_line_that_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    assert main(["export", "onnx", "--model", str(tmp_path), "--output", str(tmp_path / "m.onnx")]) == 1
    assert 'pip install "wedepth_hf[onnx]" (onnxruntime is missing)' in caplog.text
    with pytest.raises(ImportError, match=r"wedepth_hf\[onnx\]"):
        WEDepthOnnxModel.from_pretrained(tmp_path)
