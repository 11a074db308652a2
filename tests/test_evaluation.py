"""The evaluation loop (batching, flip TTA, KB crop, alignment, skipping), every supported layout, and the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, make_hf_dataset, make_tiny_config, run_two_processes, write_list, write_pair
from PIL import Image

from wedepth_hf import WEDepthForDepthEstimation
from wedepth_hf.data import NYUDepthDataset, kb_crop_box, normalize_images
from wedepth_hf.evaluation import (
    EVALUATION_DATASETS,
    build_evaluation_dataset,
    evaluate_depth_model,
    predict_depth,
    resolve_spec,
)
from wedepth_hf.hub import render_model_card
from wedepth_hf.metrics import DepthMetricsAccumulator, crop_mask


@pytest.fixture(scope="module")
def model() -> WEDepthForDepthEstimation:
    torch.manual_seed(0)
    return WEDepthForDepthEstimation(make_tiny_config(max_depth=10.0))


def nyu_folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    lines = []
    for index, (height, width) in enumerate(sizes):
        rgb, depth, _ = write_pair(root, str(index), height, width, seed=index)
        lines.append(f"{rgb} {depth} 518.8579")
    return write_list(root / "test.txt", lines)


def manual_metrics(model: torch.nn.Module, dataset, **settings) -> dict[str, float]:
    accumulator = DepthMetricsAccumulator(**settings)
    with torch.no_grad():
        for index in range(len(dataset)):
            sample = dataset[index]
            prediction = model(pixel_values=normalize_images(sample["image"])[None]).predicted_depth[0]
            accumulator.update(prediction, sample["depth"])
    return accumulator.compute()


def test_evaluation_matches_a_per_image_loop_and_restores_training_mode(tmp_path: Path, model) -> None:
    nyu_folder(tmp_path, [(30, 40)] * 3)
    # A fourth image whose only measured pixels lie outside the Eigen crop (rows 2:29 at height 30): skipped.
    raw = np.zeros((30, 40), dtype=np.uint16)
    raw[0] = 2000
    rgb, depth, _ = write_pair(tmp_path, "outside", raw_depth=raw)
    (tmp_path / "test.txt").write_text((tmp_path / "test.txt").read_text() + f"{rgb} {depth} 518.8579\n")
    dataset = NYUDepthDataset(tmp_path, "test.txt")
    model.train()
    result = evaluate_depth_model(
        model, dataset, batch_size=3, min_depth=1e-3, max_depth=10.0, crop="eigen_nyu", progress=False
    )
    assert model.training
    assert result.num_images == 3 and result.num_skipped == 1
    model.eval()
    expected = manual_metrics(model, dataset, min_depth=1e-3, max_depth=10.0, crop="eigen_nyu")
    assert result.metrics == pytest.approx(expected, rel=1e-5)
    assert result.settings["crop"] == "eigen_nyu" and result.settings["batch_size"] == 3


def test_flip_tta_is_the_mean_of_the_two_passes(model) -> None:
    model.eval()
    images = torch.randint(0, 256, (2, 3, 30, 40), dtype=torch.uint8)
    with torch.no_grad():
        plain = model(pixel_values=normalize_images(images)).predicted_depth
        flipped = model(pixel_values=normalize_images(images.flip(-1))).predicted_depth.flip(-1)
        tta = predict_depth(model, images, flip_tta=True)
    assert not torch.allclose(plain, flipped)
    assert torch.allclose(tta, (plain + flipped) / 2, atol=1e-6)


def test_mixed_image_sizes_in_one_batch(tmp_path: Path, model) -> None:
    nyu_folder(tmp_path, [(30, 40), (28, 36), (30, 40), (30, 70)])
    dataset = NYUDepthDataset(tmp_path, "test.txt")
    settings = dict(min_depth=1e-3, max_depth=10.0, crop="eigen_nyu", progress=False)
    batched = evaluate_depth_model(model, dataset, batch_size=4, **settings)
    single = evaluate_depth_model(model, dataset, batch_size=1, **settings)
    assert batched.num_images == single.num_images == 4
    assert batched.metrics == pytest.approx(single.metrics, rel=1e-5)


def test_kb_crop_runs_on_the_crop_and_pastes_back(model) -> None:
    model.eval()
    images = torch.randint(0, 256, (1, 3, 60, 100), dtype=torch.uint8)
    with torch.no_grad():
        depth = predict_depth(model, images, kb_crop=True, kb_crop_size=(40, 80))
        crop = model(pixel_values=normalize_images(images[..., 20:60, 10:90])).predicted_depth
    assert depth.shape == (1, 60, 100)
    assert torch.allclose(depth[:, 20:60, 10:90], crop, atol=1e-6)
    assert float(depth[:, :20].abs().sum()) == 0.0 and float(depth[:, :, :10].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="352x1216"):
        predict_depth(model, images, kb_crop=True)


class ConstantDepth(torch.nn.Module):
    """A stand-in model that predicts 1 m everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"predicted_depth": torch.ones_like(pixel_values[:, 0]) + self.anchor}


def test_crop_on_kb_crop_scores_the_garg_box_of_the_352x1216_map() -> None:
    """The authors' KITTI evaluation: the Garg box is computed on the KB-cropped map, not on the full frame."""
    height, width = 375, 1242
    top, left = kb_crop_box(height, width)
    authors_box = torch.zeros(height, width, dtype=torch.bool)
    authors_box[top : top + 352, left : left + 1216] = crop_mask(352, 1216, "garg")
    standard_box = crop_mask(height, width, "garg")
    assert (authors_box ^ standard_box).sum() > 10_000
    shrunk = torch.zeros_like(authors_box)
    shrunk[1:-1, 1:-1] = authors_box[:-2, 1:-1] & authors_box[2:, 1:-1] & authors_box[1:-1, :-2] & authors_box[1:-1, 2:]

    def evaluate(right: torch.Tensor, **options: object) -> dict[str, float]:
        """delta1/abs_rel of the 1 m prediction against ground truth 1 m on `right` and 5 m elsewhere."""
        depth = torch.where(right, 1.0, 5.0)
        sample = {"image": torch.zeros(3, height, width, dtype=torch.uint8), "depth": depth, "focal": 721.5, "id": "k"}
        result = evaluate_depth_model(
            ConstantDepth(),
            [sample],
            min_depth=1e-3,
            max_depth=80.0,
            crop="garg",
            kb_crop=True,
            progress=False,
            **options,
        )
        return result.metrics

    # Right exactly on the box from the 352x1216 size: perfect, so no pixel outside it is scored ...
    assert evaluate(authors_box, crop_on_kb_crop=True)["delta1"] == 1.0
    # ... and every pixel of it is (wrong on its one-pixel border only: exactly that share of misses).
    share = int(shrunk.sum()) / int(authors_box.sum())
    assert evaluate(shrunk, crop_on_kb_crop=True)["delta1"] == pytest.approx(share, abs=1e-12)
    # The default (standard) protocol scores the full-frame box: another set of pixels.
    standard = evaluate(authors_box)
    overlap = int((standard_box & authors_box).sum()) / int(standard_box.sum())
    assert standard["delta1"] == pytest.approx(overlap, abs=1e-12)
    assert standard["delta1"] < 0.95
    with pytest.raises(ValueError, match="needs kb_crop=True"):
        evaluate_depth_model(ConstantDepth(), [], min_depth=1e-3, max_depth=80.0, crop="garg", crop_on_kb_crop=True)


class RedChannelDepth(torch.nn.Module):
    """A stand-in model: depth = 3 * red / 255 + 0.2, an affine function of the red channel."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        red = pixel_values[:, 0] * 0.229 + 0.485
        return {"predicted_depth": 3.0 * red + 0.2 + self.anchor}


@pytest.mark.parametrize(
    ("alignment", "exact"),
    [("none", False), ("median", False), ("least_squares", True), ("least_squares_disparity", False)],
)
def test_alignment_in_the_evaluation(tmp_path: Path, alignment: str, exact: bool) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "scene").mkdir()
    lines = []
    for index in range(2):
        red = rng.integers(0, 256, (30, 40))
        image = np.stack([red, rng.integers(0, 256, (30, 40)), rng.integers(0, 256, (30, 40))], -1).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / f"scene/{index}.png")
        # Ground truth (red + 10) / 50 m, in millimetres: an affine function of the stand-in's prediction.
        Image.fromarray(((red + 10) * 20).astype(np.uint16)).save(tmp_path / f"scene/{index}_depth.png")
        lines.append(f"scene/{index}.png scene/{index}_depth.png 500")
    dataset = NYUDepthDataset(tmp_path, write_list(tmp_path / "list.txt", lines))
    result = evaluate_depth_model(
        RedChannelDepth(), dataset, min_depth=1e-3, max_depth=10.0, alignment=alignment, progress=False
    )
    assert result.num_images == 2 and result.settings["alignment"] == alignment
    if exact:
        assert result.metrics["abs_rel"] < 1e-5 and result.metrics["delta1"] == 1.0
    else:
        assert result.metrics["abs_rel"] > 1e-3
    with pytest.raises(ValueError, match="least_squares"):
        evaluate_depth_model(RedChannelDepth(), dataset, min_depth=1e-3, max_depth=10.0, alignment="scale")


def write_layout(name: str, root: Path) -> tuple[str | None, np.ndarray, dict]:
    """Write 2 samples of dataset `name` in its layout; return (split file or None, first depth in metres, kwargs)."""
    height, width = (60, 100) if EVALUATION_DATASETS[name].kb_crop else (30, 40)
    rng = np.random.default_rng(1)
    metres = rng.uniform(2.5, 7.5, (height, width))
    kwargs: dict = {}
    if name.startswith("diode"):
        for index in range(2):
            scan = root / "scene_1" / f"scan_{index}"
            scan.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(scan / "00.png")
            np.save(scan / "00_depth.npy", metres[..., None].astype(np.float32))
            np.save(scan / "00_depth_mask.npy", np.ones((height, width), dtype=np.float32))
        return None, metres, kwargs
    if name == "hf":
        dataset, depths = make_hf_dataset(2)
        dataset.save_to_disk(str(root / "saved"))
        return None, np.asarray(depths[0], dtype=np.float64), {"split": "validation"}
    spec = EVALUATION_DATASETS[name]
    scale = spec.depth_scale or 1000.0
    lines = []
    for index in range(2):
        if name == "hypersim":
            # Distance to the camera centre (f = 886.81 px at 768x1024, scaled to this width) of planar depth `metres`.
            focal = 886.81 * width / 1024
            x = np.arange(width) + 0.5 - width / 2
            y = np.arange(height) + 0.5 - height / 2
            raw = metres * np.sqrt(focal**2 + x[None] ** 2 + y[:, None] ** 2) / focal
            rgb, depth, _ = write_pair(root, str(index), height, width, depth_suffix=".npy", raw_depth=raw)
            lines.append(f"{rgb} {depth} {focal}")
            continue
        raw = np.round(metres * scale).astype(np.uint32)
        if name == "sunrgbd":
            raw = ((raw << 3) | (raw >> 13)) & 0xFFFF
        rgb, depth, _ = write_pair(root, str(index), height, width, raw_depth=raw.astype(np.uint16))
        lines.append(f"{rgb} {depth} 500")
    lines.append("scene/rgb_9.png None 500")
    write_list(root / (spec.default_split_file or "list.txt"), lines)
    if name == "folder":
        kwargs["depth_scale"] = 1000.0
    expected = metres if name == "hypersim" else np.round(metres * scale) / scale
    return (None if spec.default_split_file else "list.txt"), expected, kwargs


@pytest.mark.parametrize("name", sorted(EVALUATION_DATASETS))
def test_every_layout_reads_and_evaluates(tmp_path: Path, name: str, model) -> None:
    split_file, expected, kwargs = write_layout(name, tmp_path)
    split = kwargs.pop("split", "validation")
    spec = resolve_spec(name, **kwargs)
    data_root = tmp_path / "saved" if name == "hf" else tmp_path
    dataset = build_evaluation_dataset(spec, data_root, split_file, split=split)
    assert len(dataset) == 2
    assert np.allclose(dataset[0]["depth"].numpy(), expected, atol=1e-5)
    result = evaluate_depth_model(
        model,
        dataset,
        batch_size=2,
        min_depth=spec.min_depth,
        max_depth=spec.max_depth,
        crop=spec.crop,
        kb_crop=spec.kb_crop,
        kb_crop_size=(48, 96),
        progress=False,
    )
    assert result.num_images == 2 and result.num_skipped == 0
    assert all(np.isfinite(value) for value in result.metrics.values())


def test_missing_split_file_for_list_layouts_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a split file"):
        build_evaluation_dataset(resolve_spec("ibims"), tmp_path)
    with pytest.raises(ValueError, match="needs a depth_scale"):
        build_evaluation_dataset(resolve_spec("folder"), tmp_path, "list.txt")
    with pytest.raises(ValueError, match="choose one of"):
        resolve_spec("nyu2")


def test_evaluate_script_writes_json(tmp_path: Path, model) -> None:
    data = tmp_path / "nyu"
    nyu_folder(data, [(30, 40)] * 3)
    model.save_pretrained(tmp_path / "model")
    output = tmp_path / "results.json"
    card = tmp_path / "model" / "README.md"
    render_model_card(model_name="tiny").save(card)
    command = [
        sys.executable,
        str(REPO / "examples" / "evaluate.py"),
        "--model",
        str(tmp_path / "model"),
        "--dataset",
        "nyu",
        "--data_root",
        str(data),
        "--split_file",
        "test.txt",
        "--batch_size",
        "2",
        "--flip_tta",
        "--output",
        str(output),
        "--update_model_card",
        str(card),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "| nyu |" in completed.stderr and "images used: 3" in completed.stderr  # the log
    report = json.loads(output.read_text())
    assert report["num_images"] == {"nyu": 3} and report["num_skipped"] == {"nyu": 0}
    assert report["settings"]["flip_tta"] is True and report["settings"]["crop"] == "eigen_nyu"
    expected = evaluate_depth_model(
        model,
        NYUDepthDataset(data, "test.txt"),
        min_depth=1e-3,
        max_depth=10.0,
        crop="eigen_nyu",
        flip_tta=True,
        progress=False,
    )
    assert report["results"]["nyu"] == pytest.approx(expected.metrics, rel=1e-5)
    assert f"| nyu | {expected.metrics['abs_rel']:.4f} |" in card.read_text()


@pytest.mark.slow
def test_two_processes_score_every_image_exactly_once(tmp_path: Path, model) -> None:
    """Sharded over 2 processes, 3 images (the last batch padded with a duplicate) give the single-process result:
    `gather_for_metrics` drops the padding of the loader that `prepare_data_loader` shards."""
    data = tmp_path / "nyu"
    nyu_folder(data, [(30, 40)] * 3)
    model.save_pretrained(tmp_path / "model")
    arguments = ["--model", str(tmp_path / "model"), "--dataset", "nyu", "--data_root", str(data)]
    arguments += ["--split_file", "test.txt", "--output", str(tmp_path / "results.json")]
    completed = run_two_processes("evaluate.py", arguments, cwd=tmp_path, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["settings"]["num_processes"] == 2 and report["num_images"] == {"nyu": 3}
    single = evaluate_depth_model(
        model, NYUDepthDataset(data, "test.txt"), min_depth=1e-3, max_depth=10.0, crop="eigen_nyu", progress=False
    )
    assert report["results"]["nyu"] == pytest.approx(single.metrics, rel=1e-6)
