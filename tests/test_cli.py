"""End-to-end tests of `wedepth predict` on real image files with a tiny saved model, and of the forwarding commands."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor, cli
from wedepth_hf.visualization import default_intrinsics, load_depth_png, read_point_cloud_ply

from conftest import make_tiny_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_wedepth")
    torch.manual_seed(0)
    WEDepthForDepthEstimation(make_tiny_config()).save_pretrained(folder)
    WEDepthImageProcessor().save_pretrained(folder)
    return folder


def _write_image(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    array = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(array).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


def _reference_depth(model_dir: Path, image: np.ndarray) -> np.ndarray:
    model = WEDepthForDepthEstimation.from_pretrained(model_dir).eval()
    pixel_values = WEDepthImageProcessor()(images=Image.fromarray(image), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model(pixel_values=pixel_values).predicted_depth[0].numpy()


def test_predict_folder_glob_and_corrupt_file(model_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    image_a = _write_image(first / "a.png", 30, 40, 0)
    _write_image(first / "b.jpg", 30, 40, 1)
    _write_image(first / "c.png", 28, 36, 2)
    (first / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    # A truncated JPEG of a batched size: its header reads, its pixels do not; the rest of its batch goes on.
    _write_image(first / "cut.jpg", 30, 40, 4)
    encoded = (first / "cut.jpg").read_bytes()
    (first / "cut.jpg").write_bytes(encoded[: len(encoded) * 2 // 3])
    assert cli.read_image_size(first / "cut.jpg") == (30, 40)
    _write_image(second / "a.png", 30, 40, 3)
    (second / "notes.txt").write_text("ignored by the glob")
    output = tmp_path / "out"

    code = cli.main(
        ["predict", str(first), str(second / "*.png"), "--model", str(model_dir), "--output-dir", str(output),
         "--batch-size", "2", "--save-ply", "--no-progress"]
    )
    assert code == 1  # the corrupt and the truncated file failed
    names = sorted(path.name for path in output.iterdir())
    # The two a.png files from different folders do not overwrite each other.
    assert names == sorted(
        f"{stem}{suffix}"
        for stem in ("first__a", "b", "c", "second__a")
        for suffix in ("_depth.png", "_depth_color.png", ".ply")
    )
    for stem, (height, width) in {"first__a": (30, 40), "b": (30, 40), "c": (28, 36), "second__a": (30, 40)}.items():
        with Image.open(output / f"{stem}_depth.png") as depth_png:
            assert depth_png.size == (width, height) and depth_png.mode.startswith("I")
        with Image.open(output / f"{stem}_depth_color.png") as color:
            assert color.size == (width + 90, max(height, 64))

    reference = _reference_depth(model_dir, image_a)
    written = load_depth_png(output / "first__a_depth.png")
    assert written.shape == reference.shape
    assert np.abs(written - reference).max() <= 1e-3

    points = read_point_cloud_ply(output / "first__a.ply")
    assert len(points) == int((np.isfinite(reference) & (reference > 0)).sum())
    fx, fy, cx, cy = default_intrinsics(30, 40)
    row, col = 7, 33
    index = row * 40 + col  # every pixel has a positive depth, so points are in row-major pixel order
    z = reference[row, col]
    np.testing.assert_allclose(
        [points[index]["x"], points[index]["y"], points[index]["z"]],
        [(col - cx) * z / fx, (row - cy) * z / fy, z],
        rtol=1e-4,
    )
    assert (points[index]["red"], points[index]["green"], points[index]["blue"]) == tuple(image_a[row, col])


def test_predict_flip_tta_and_bfloat16(model_dir: Path, tmp_path: Path) -> None:
    image = _write_image(tmp_path / "x.png", 28, 42, 5)
    output = tmp_path / "out"
    args = ["predict", str(tmp_path / "x.png"), "--model", str(model_dir), "--output-dir", str(output), "--no-progress"]
    assert cli.main([*args, "--flip-tta", "--dtype", "bfloat16", "--device", "cpu"]) == 0
    model = WEDepthForDepthEstimation.from_pretrained(model_dir).eval()
    pixel_values = WEDepthImageProcessor()(images=Image.fromarray(image), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = (model(pixel_values).predicted_depth + model(pixel_values.flip(-1)).predicted_depth.flip(-1)) / 2
    written = load_depth_png(output / "x_depth.png")
    assert np.abs(written - expected[0].numpy()).max() < 0.05 * float(expected.max())


def test_missing_inputs_and_partial_intrinsics_are_errors(model_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    assert cli.main(["predict", str(tmp_path / "nothing*.png"), "--model", str(model_dir), "--output-dir", str(output)]) == 1
    with pytest.raises(SystemExit, match="all four"):
        cli.main(["predict", str(tmp_path), "--model", str(model_dir), "--output-dir", str(output), "--fx", "500"])


def test_unique_output_stems() -> None:
    files = [Path("/d1/x/a.png"), Path("/d2/x/a.png"), Path("/d1/b.png"), Path("/d1/b.jpg")]
    stems = cli.unique_output_stems(files)
    assert stems[2:] == ["b_png", "b_jpg"]
    assert stems[:2] == ["d1__x__a", "d2__x__a"]


def test_train_and_evaluate_forward_to_examples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    record = tmp_path / "argv.txt"
    script.write_text(f"import sys\nopen({str(record)!r}, 'w').write(' '.join(sys.argv[1:]))\nsys.exit(3)\n")
    monkeypatch.setattr(cli, "_examples_script", lambda name: script)
    assert cli.main(["train", "--config", "x.yaml", "--epochs", "2"]) == 3
    assert record.read_text() == "--config x.yaml --epochs 2"


def test_missing_examples_folder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "wedepth_hf" / "cli.py"))
    with pytest.raises(SystemExit, match="examples/evaluate.py of a source checkout"):
        cli.main(["evaluate", "--help"])
