"""Dataset readers of the list layouts and Hugging Face datasets, bad-data handling, batching and normalisation."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_hf_dataset, write_list, write_pair
from PIL import Image

from wedepth_hf import WEDepthImageProcessor
from wedepth_hf.data import (
    DepthListDataset,
    HFDepthDataset,
    KITTIDepthDataset,
    NYUDepthDataset,
    collate_depth_samples,
    hypersim_distance_to_depth,
    kb_crop_box,
    normalize_images,
    read_depth,
)


def test_nyu_list_layout_sample(tmp_path: Path) -> None:
    rgb, depth, metres = write_pair(tmp_path, "0")
    write_list(tmp_path / "test.txt", [f"/{rgb} /{depth} 500.5", "", "scene/rgb_x.png None 518.8"])
    dataset = NYUDepthDataset(tmp_path, "test.txt")
    assert len(dataset) == 1 and dataset.num_without_depth == 1
    sample = dataset[0]
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 30, 40)
    assert np.asarray(Image.open(tmp_path / rgb)).transpose(2, 0, 1).tolist() == sample["image"].tolist()
    assert sample["depth"].dtype == torch.float32
    assert torch.allclose(sample["depth"], torch.from_numpy(metres).float())
    assert sample["focal"] == 500.5 and sample["id"] == rgb


def test_two_field_lines_use_the_default_focal_or_fail(tmp_path: Path) -> None:
    rgb, depth, _ = write_pair(tmp_path, "0")
    write_list(tmp_path / "test.txt", [f"{rgb} {depth}"])
    assert NYUDepthDataset(tmp_path, "test.txt")[0]["focal"] == pytest.approx(518.8579)
    with pytest.raises(ValueError, match=r"test\.txt.*focal"):
        DepthListDataset(tmp_path, "test.txt", depth_scale=1000.0)


@pytest.mark.parametrize("line", ["a.png", "a.png b.png 500 extra", "a.png b.png focal"])
def test_malformed_list_lines_name_file_line_and_layout(tmp_path: Path, line: str) -> None:
    write_list(tmp_path / "list.txt", ["a.png b.png 500", line])
    with pytest.raises(ValueError, match=r"list\.txt, line 2.*expected lines '<rgb> <depth> <focal>'"):
        NYUDepthDataset(tmp_path, "list.txt")


def test_missing_list_file_and_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt.*<rgb> <depth> <focal>"):
        NYUDepthDataset(tmp_path, "nope.txt")
    with pytest.raises(FileNotFoundError, match="missing_root"):
        NYUDepthDataset(tmp_path / "missing_root", "x.txt")


def test_a_misspelt_reading_option_is_refused_not_ignored(tmp_path: Path) -> None:
    """The options shared by every dataset (`SampleReading`) are declared once; a typo must not fall through."""
    rgb, depth, _ = write_pair(tmp_path, "a")
    write_list(tmp_path / "list.txt", [f"{rgb} {depth} 500"])
    with pytest.raises(TypeError, match="on_bad_samples"):
        NYUDepthDataset(tmp_path, "list.txt", on_bad_samples="skip")
    with pytest.raises(ValueError, match="on_bad_sample must be"):
        NYUDepthDataset(tmp_path, "list.txt", on_bad_sample="ignore")
    dataset = KITTIDepthDataset(tmp_path, "list.txt", on_bad_sample="skip", max_depth=80.0)
    assert (dataset.on_bad_sample, dataset.max_depth, dataset.kb_crop) == ("skip", 80.0, False)


def test_bad_samples_raise_naming_the_file_or_are_skipped_and_counted(tmp_path: Path) -> None:
    good = write_pair(tmp_path, "good")
    small = write_pair(tmp_path, "small", seed=1)
    Image.fromarray(np.ones((10, 10), dtype=np.uint16)).save(tmp_path / small[1])  # depth of another size
    empty = write_pair(tmp_path, "empty", raw_depth=np.zeros((30, 40), dtype=np.uint16))
    nan = write_pair(tmp_path, "nan", depth_suffix=".npy", raw_depth=np.full((30, 40), np.nan))
    cases = {
        "scene/rgb_missing.png scene/depth_good.png": (FileNotFoundError, "rgb_missing.png"),
        f"{small[0]} {small[1]}": (ValueError, r"depth_small\.png.*size"),
        f"{empty[0]} {empty[1]}": (ValueError, r"depth_empty\.png.*no valid"),
        f"{nan[0]} {nan[1]}": (ValueError, r"depth_nan\.npy.*NaN"),
        f"{good[0]} scene/not_there.png": (FileNotFoundError, "not_there.png"),
    }
    for line, (error, pattern) in cases.items():
        write_list(tmp_path / "list.txt", [f"{line} 500"])
        with pytest.raises(error, match=pattern):
            NYUDepthDataset(tmp_path, "list.txt")[0]
    lines = [f"{line} 500" for line in cases] + [f"{good[0]} {good[1]} 500"]
    dataset = NYUDepthDataset(tmp_path, write_list(tmp_path / "all.txt", lines), on_bad_sample="skip")
    assert dataset[0]["id"] == good[0]
    assert dataset.skipped == len(cases) and len(dataset.skipped_ids) == len(cases)
    with pytest.raises(ValueError, match="Every sample"):
        bad_list = write_list(tmp_path / "bad.txt", [f"{empty[0]} {empty[1]} 500"])
        NYUDepthDataset(tmp_path, bad_list, on_bad_sample="skip")[0]


def test_max_depth_decides_validity(tmp_path: Path) -> None:
    rgb, depth, _ = write_pair(tmp_path, "far", raw_depth=np.full((30, 40), 90 * 256, dtype=np.uint16))
    write_list(tmp_path / "list.txt", [f"{rgb} {depth} 700"])
    assert KITTIDepthDataset(tmp_path, "list.txt")[0]["depth"].max() == 90.0
    with pytest.raises(ValueError, match="max_depth=80"):
        KITTIDepthDataset(tmp_path, "list.txt", max_depth=80.0)[0]


def test_kitti_roots_none_lines_and_kb_crop(tmp_path: Path) -> None:
    rgb, depth, metres = write_pair(tmp_path / "raw", "0", 60, 100, depth_scale=256.0)
    (tmp_path / "gt").mkdir()
    (tmp_path / "raw" / depth).rename(tmp_path / "gt" / "d.png")
    write_list(tmp_path / "eigen.txt", [f"{rgb} d.png 721.5", f"{rgb} None 721.5"])
    full = KITTIDepthDataset(tmp_path, "eigen.txt", image_root="raw", depth_root="gt")
    assert len(full) == 1 and full.num_without_depth == 1
    assert torch.allclose(full[0]["depth"], torch.from_numpy(metres).float())
    cropped = KITTIDepthDataset(
        tmp_path, "eigen.txt", image_root="raw", depth_root="gt", kb_crop=True, kb_crop_size=(40, 80)
    )
    sample = cropped[0]
    # top = 60 - 40 = 20, left = (100 - 80) // 2 = 10
    assert torch.equal(sample["image"], full[0]["image"][:, 20:60, 10:90])
    assert torch.equal(sample["depth"], full[0]["depth"][20:60, 10:90])
    with pytest.raises(ValueError, match=r"at least 352x1216; got 60x100"):
        KITTIDepthDataset(tmp_path, "eigen.txt", image_root="raw", depth_root="gt", kb_crop=True)[0]


def test_kb_crop_box_full_size() -> None:
    assert kb_crop_box(375, 1242) == (23, 13)
    assert kb_crop_box(352, 1216) == (0, 0)
    with pytest.raises(ValueError, match="351x1242"):
        kb_crop_box(351, 1242)


def test_depth_decodings(tmp_path: Path) -> None:
    # SUN RGB-D: stored bits rotated right by 3 relative to millimetres.
    mm = np.array([[1234, 8000], [0, 65535 >> 3]], dtype=np.uint32)
    stored = ((mm << 3) | (mm >> 13)) & 0xFFFF
    Image.fromarray(stored.astype(np.uint16)).save(tmp_path / "sun.png")
    decoded = read_depth(tmp_path / "sun.png", depth_scale=1000.0, decoding="sunrgbd_png")
    assert np.allclose(decoded, mm / 1000.0)
    # DIODE: (H, W, 1) metres with a sibling mask.
    np.save(tmp_path / "a_depth.npy", np.full((2, 3, 1), 4.0, dtype=np.float32))
    np.save(tmp_path / "a_depth_mask.npy", np.array([[1, 0, 1], [1, 1, 0]], dtype=np.float32))
    assert read_depth(tmp_path / "a_depth.npy", depth_scale=1.0).tolist() == [[4, 0, 4], [4, 4, 0]]
    # HyperSim: distance along each pixel's ray -> planar depth of a fronto-parallel plane at z = 2.
    height, width, focal = 6, 8, 5.0
    x = np.arange(width) + 0.5 - width / 2
    y = np.arange(height) + 0.5 - height / 2
    distance = 2.0 * np.sqrt(focal**2 + x[None] ** 2 + y[:, None] ** 2) / focal
    assert np.allclose(hypersim_distance_to_depth(distance, focal), 2.0)
    np.save(tmp_path / "hyp.npy", distance)
    planar = read_depth(tmp_path / "hyp.npy", depth_scale=1.0, decoding="hypersim_distance", focal=focal)
    assert np.allclose(planar, 2.0)
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb\.png.*mode 'RGB'"):
        read_depth(tmp_path / "rgb.png", depth_scale=1000.0)
    with pytest.raises(ValueError, match="choose one of"):
        read_depth(tmp_path / "sun.png", depth_scale=1.0, decoding="jpeg")


def test_collate_and_normalisation_match_the_image_processor(tmp_path: Path) -> None:
    samples = [
        {
            "image": torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8),
            "depth": torch.rand(5, 7),
            "focal": 500.0,
            "id": str(i),
        }
        for i in range(2)
    ]
    batch = collate_depth_samples(samples)
    assert batch["pixel_values"].shape == (2, 3, 5, 7) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].shape == (2, 5, 7) and batch["labels"].dtype == torch.float32
    assert batch["focal"].tolist() == [500.0, 500.0] and batch["ids"] == ["0", "1"]
    expected = WEDepthImageProcessor()([s["image"].permute(1, 2, 0).numpy() for s in samples], return_tensors="pt")
    assert torch.allclose(batch["pixel_values"], expected["pixel_values"], atol=1e-6)
    assert torch.allclose(normalize_images(samples[0]["image"]), expected["pixel_values"][0], atol=1e-6)
    samples[1]["image"] = torch.zeros((3, 6, 7), dtype=torch.uint8)
    with pytest.raises(ValueError, match="different sizes"):
        collate_depth_samples(samples)


def test_hf_dataset_float_and_integer_depth(tmp_path: Path) -> None:
    dataset, depths = make_hf_dataset()
    reader = HFDepthDataset(dataset, "validation", default_focal=518.8579)
    sample = reader[1]
    assert sample["image"].shape == (3, 30, 40) and sample["focal"] == pytest.approx(518.8579)
    assert torch.allclose(sample["depth"], torch.from_numpy(np.array(depths[1], dtype=np.float32)))
    import datasets

    datasets.DatasetDict({"test": dataset}).save_to_disk(str(tmp_path / "saved"))
    assert len(HFDepthDataset(str(tmp_path / "saved"), "test")) == 3
    with pytest.raises(ValueError, match="available"):
        HFDepthDataset(str(tmp_path / "saved"), "train")
    integer, raw = make_hf_dataset(integer_depth=True)
    scaled = HFDepthDataset(integer, "validation", depth_scale=1000.0)[0]["depth"]
    assert torch.allclose(scaled, torch.from_numpy(np.array(raw[0], dtype=np.float32) / 1000.0))
    with pytest.raises(ValueError, match="pass depth_scale"):
        HFDepthDataset(integer, "validation")[0]
    with pytest.raises(ValueError, match="no column"):
        HFDepthDataset(integer, "validation", depth_column="depth")
