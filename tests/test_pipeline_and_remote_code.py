"""The Hugging Face entry points: Auto classes, `pipeline("depth-estimation")`, and remote code without wedepth_hf."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_python
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation, pipeline

import wedepth_hf
from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation, WEDepthImageProcessor


REMOTE_CODE_FILES = (
    "configuration_wedepth.py",
    "modeling_wedepth.py",
    "checkpointing_wedepth.py",
    "gather_deformable_attention.py",
    "image_processing_wedepth.py",
)
"""The files a saved folder carries as remote code: the three Auto classes' and the modules they import relatively."""


@pytest.fixture
def saved_folder(tmp_path: Path, tiny_model: WEDepthForDepthEstimation) -> Path:
    folder = tmp_path / "wedepth-tiny"
    tiny_model.save_pretrained(folder)
    WEDepthImageProcessor().save_pretrained(folder)
    return folder


@pytest.fixture
def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(45, 67, 3), dtype=np.uint8))


def _expected_depth(folder: Path, image: Image.Image) -> torch.Tensor:
    model = WEDepthForDepthEstimation.from_pretrained(folder).eval()
    inputs = WEDepthImageProcessor.from_pretrained(folder)(image, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).predicted_depth[0]


def test_import_registers_the_auto_classes(saved_folder: Path) -> None:
    assert isinstance(AutoConfig.for_model("wedepth"), WEDepthConfig)
    assert isinstance(AutoModelForDepthEstimation.from_pretrained(saved_folder), WEDepthForDepthEstimation)
    assert isinstance(AutoImageProcessor.from_pretrained(saved_folder), WEDepthImageProcessor)


def test_saved_folder_holds_weights_config_and_remote_code(saved_folder: Path) -> None:
    files = set(os.listdir(saved_folder))
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        *REMOTE_CODE_FILES,
    } <= files
    assert not any(name.endswith(".bin") for name in files)
    auto_map = json.loads((saved_folder / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_wedepth.WEDepthConfig",
        "AutoModelForDepthEstimation": "modeling_wedepth.WEDepthForDepthEstimation",
        "AutoImageProcessor": "image_processing_wedepth.WEDepthImageProcessor",
    }
    # The remote files import only torch, numpy (a transformers dependency), transformers, the standard library and
    # each other.
    allowed = {"torch", "numpy", "transformers", *sys.stdlib_module_names}
    for name in REMOTE_CODE_FILES:
        for line in (saved_folder / name).read_text().splitlines():
            if line.startswith(("import ", "from ")):
                module = line.split()[1]
                assert module.split(".")[0] in allowed or module.startswith("."), (name, line)


def test_pipeline_from_a_saved_folder(saved_folder: Path, image: Image.Image) -> None:
    depth_estimator = pipeline("depth-estimation", model=str(saved_folder), device="cpu")
    assert isinstance(depth_estimator.model, WEDepthForDepthEstimation)
    result = depth_estimator(image)
    assert result["predicted_depth"].shape == (45, 67)
    assert result["depth"].size == (67, 45)
    torch.testing.assert_close(result["predicted_depth"], _expected_depth(saved_folder, image))


def test_pipeline_never_asks_about_remote_code_when_the_package_is_imported(
    saved_folder: Path, image: Image.Image, package_parent: str
) -> None:
    image.save(saved_folder.parent / "image.png")
    result = run_python(
        f"""
        import sys
        sys.path.insert(0, {package_parent!r})
        import wedepth_hf
        from transformers import pipeline
        depth_estimator = pipeline("depth-estimation", model={str(saved_folder)!r}, device="cpu")
        out = depth_estimator({str(saved_folder.parent / "image.png")!r})
        print("SHAPE", tuple(out["predicted_depth"].shape))
    """,
        cwd=saved_folder.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "SHAPE (45, 67)" in result.stdout
    assert "custom code" not in result.stdout + result.stderr


def test_remote_code_loads_without_the_package(saved_folder: Path, image: Image.Image) -> None:
    expected = _expected_depth(saved_folder, image)
    torch.save(expected, saved_folder.parent / "expected.pt")
    image.save(saved_folder.parent / "image.png")
    result = run_python(
        f"""
        import sys
        sys.modules["wedepth_hf"] = None  # any import of the package now fails
        import torch
        from transformers import pipeline
        depth_estimator = pipeline(
            "depth-estimation", model={str(saved_folder)!r}, trust_remote_code=True, device="cpu"
        )
        assert type(depth_estimator.model).__module__.startswith("transformers_modules"), type(depth_estimator.model)
        assert type(depth_estimator.image_processor).__module__.startswith("transformers_modules")
        out = depth_estimator({str(saved_folder.parent / "image.png")!r})
        expected = torch.load({str(saved_folder.parent / "expected.pt")!r})
        torch.testing.assert_close(out["predicted_depth"], expected)
        assert all(not p.requires_grad for p in depth_estimator.model.vfm.parameters())
        print("REMOTE OK", tuple(out["predicted_depth"].shape), out["depth"].size)
    """,
        cwd=saved_folder.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "REMOTE OK (45, 67) (67, 45)" in result.stdout


def test_a_folder_with_only_the_image_processor_loads_with_and_without_the_package(
    tmp_path: Path, image: Image.Image
) -> None:
    folder = tmp_path / "processor"
    WEDepthImageProcessor(size={"height": 28, "width": 42}).save_pretrained(folder)
    assert sorted(os.listdir(folder)) == ["image_processing_wedepth.py", "preprocessor_config.json"]
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "WEDepthImageProcessor"
    assert saved["auto_map"] == {"AutoImageProcessor": {"pil": "image_processing_wedepth.WEDepthImageProcessor"}}
    processor = AutoImageProcessor.from_pretrained(folder)
    assert type(processor) is WEDepthImageProcessor
    expected = processor(image, return_tensors="pt")["pixel_values"]
    assert expected.shape == (1, 3, 28, 42)
    torch.save(expected, tmp_path / "expected.pt")
    image.save(tmp_path / "image.png")
    result = run_python(
        f"""
        import sys
        sys.modules["wedepth_hf"] = None  # any import of the package now fails
        import torch
        from PIL import Image
        from transformers import AutoImageProcessor
        processor = AutoImageProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(processor).__module__.startswith("transformers_modules"), type(processor)
        pixel_values = processor(Image.open({str(tmp_path / "image.png")!r}), return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(pixel_values, torch.load({str(tmp_path / "expected.pt")!r}))
        print("PROCESSOR OK")
    """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "PROCESSOR OK" in result.stdout


def test_package_exports() -> None:
    assert set(wedepth_hf.__all__) >= {"WEDepthConfig", "WEDepthForDepthEstimation", "WEDepthImageProcessor"}
