"""Metric depth for the user's camera: the canonical-camera rescaling, focal lengths from EXIF, a field of view or
intrinsics, the training camera a converted or trained model records, and the point clouds' intrinsics."""

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_tiny_config
from PIL import Image

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor, cli
from wedepth_hf.camera import (
    FULL_FRAME_DIAGONAL_MM,
    NYU_TRAINING_CAMERA,
    CameraRequest,
    focal_from_exif,
    focal_from_fov,
    median_training_camera,
)
from wedepth_hf.data.synthetic import nyu_intrinsics, render_scene, sample_scene
from wedepth_hf.visualization import flying_pixels, load_depth_png, read_point_cloud_ply


TRAINING_SIZE = (24, 32)
TRAINING_FOCAL = nyu_intrinsics(*TRAINING_SIZE)[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained (so its processor says) on 24x32 images of the NYU camera scaled to that size."""
    folder = tmp_path_factory.mktemp("camera_model")
    torch.manual_seed(0)
    camera = {"focal_length": TRAINING_FOCAL, "image_size": list(TRAINING_SIZE), "source": "test"}
    WEDepthForDepthEstimation(make_tiny_config(training_camera=camera)).save_pretrained(folder)
    WEDepthImageProcessor(size={"shortest_edge": TRAINING_SIZE[0]}, training_camera=camera).save_pretrained(folder)
    return folder


def _predict(model_dir: Path, image: Path, output: Path, *options: str) -> np.ndarray:
    code = cli.main(
        ["predict", str(image), "--model", str(model_dir), "--output_dir", str(output), "--no_progress"]
        + ["--dtype", "float32", *options]
    )
    assert code == 0
    return load_depth_png(output / f"{image.stem}_depth.png")


def test_canonical_camera_gives_the_scenes_depth_at_two_focal_lengths() -> None:
    """A scene rendered at 30x40 (focal f1) and at 60x80 (f2 = 2 f1, the same view). A model of the 30x40 camera sees
    the 60x80 image (not resized) at f2 and predicts depth * f1 / f2: post-processing with f2 gives the scene's depth,
    and the 30x40 image processed with its own focal is left as it is."""
    scene = sample_scene(3)
    low, high = render_scene(scene, 30, 40), render_scene(scene, 60, 80)
    f1, f2 = nyu_intrinsics(30, 40)[0], nyu_intrinsics(60, 80)[0]
    assert f2 == pytest.approx(2 * f1, rel=1e-12)
    processor = WEDepthImageProcessor(training_camera={"focal_length": f1})
    canonical = torch.from_numpy(high["depth"] * (f1 / f2)).float()[None]
    result = processor.post_process_depth_estimation({"predicted_depth": canonical}, [(60, 80)], focal_length=f2)
    np.testing.assert_allclose(result[0]["predicted_depth"].numpy(), high["depth"], rtol=1e-6)
    untouched = torch.from_numpy(low["depth"]).float()[None]
    result = processor.post_process_depth_estimation({"predicted_depth": untouched}, [(30, 40)], focal_length=[f1])
    assert torch.equal(result[0]["predicted_depth"], untouched[0])


def test_focal_length_scales_the_written_depth_by_the_focal_ratio(model_dir: Path, tmp_path: Path) -> None:
    """A 48x64 photo reaches the model at 24x32: --focal_length F gives depth x F * (32 / 64) / f_train. At the
    training camera's focal brought to 48x64 (2 f_train) the depth is the uncorrected one, bit for bit."""
    image = tmp_path / "photo.png"
    Image.fromarray(render_scene(sample_scene(5), 48, 64)["image"]).save(image)
    plain = _predict(model_dir, image, tmp_path / "plain")
    at_training = _predict(model_dir, image, tmp_path / "at_training", "--focal_length", repr(2 * TRAINING_FOCAL))
    assert np.array_equal(plain, at_training)
    focal = 3.0 * TRAINING_FOCAL
    scaled = _predict(model_dir, image, tmp_path / "scaled", "--focal_length", repr(focal))
    expected_ratio = focal * (32 / 64) / TRAINING_FOCAL
    assert expected_ratio == pytest.approx(1.5)
    # The PNG holds millimetres: the ratio holds to the millimetre rounding of both maps.
    np.testing.assert_allclose(scaled, plain * expected_ratio, atol=0.5e-3 * (1 + expected_ratio) + 1e-7)
    wide = _predict(model_dir, image, tmp_path / "fov", "--fov", "90")
    np.testing.assert_allclose(wide, plain * (32 / 2) / TRAINING_FOCAL, atol=1.1e-3)


def test_an_nyu_camera_image_is_not_changed(tmp_path: Path) -> None:
    """A model of the NYU camera, a 480x640 image at NYU's focal: exactly the uncorrected depth."""
    folder = tmp_path / "nyu_model"
    torch.manual_seed(1)
    WEDepthForDepthEstimation(make_tiny_config(training_camera=NYU_TRAINING_CAMERA)).save_pretrained(folder)
    WEDepthImageProcessor(training_camera=NYU_TRAINING_CAMERA).save_pretrained(folder)
    image = tmp_path / "room.png"
    Image.fromarray(render_scene(sample_scene(7), 480, 640)["image"]).save(image)
    plain = _predict(folder, image, tmp_path / "plain")
    corrected = _predict(folder, image, tmp_path / "nyu", "--focal_length", repr(NYU_TRAINING_CAMERA["focal_length"]))
    assert np.array_equal(plain, corrected)


def _jpeg_with_exif(path: Path, size: tuple[int, int], tags: dict[int, object]) -> Path:
    image = Image.fromarray(np.full((size[1], size[0], 3), 128, dtype=np.uint8))
    exif = Image.Exif()
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd.update(tags)
    image.save(path, exif=exif)
    return path


def test_exif_focal_lengths(tmp_path: Path) -> None:
    """FocalLengthIn35mmFilm along the diagonal; FocalLength with the sensor's pixel density; neither: None."""
    with Image.open(_jpeg_with_exif(tmp_path / "a.jpg", (400, 300), {0xA405: 26})) as image:
        focal = focal_from_exif(image)
    assert focal.pixels == pytest.approx(26 * 500 / FULL_FRAME_DIAGONAL_MM, rel=1e-9)
    assert "FocalLengthIn35mmFilm (26 mm)" in focal.source
    # 4.25 mm lens, 1000 pixels per centimetre of sensor (unit 3): 425 px.
    tags = {0x920A: 4.25, 0xA20E: 1000.0, 0xA210: 3}
    with Image.open(_jpeg_with_exif(tmp_path / "b.jpg", (400, 300), tags)) as image:
        assert focal_from_exif(image).pixels == pytest.approx(425.0, rel=1e-9)
    with Image.open(_jpeg_with_exif(tmp_path / "c.jpg", (400, 300), {0x920A: 4.25})) as image:
        assert focal_from_exif(image) is None
    assert focal_from_fov(640, 90) == pytest.approx(320.0)
    assert CameraRequest(fov=90).focal_for(Image.new("RGB", (640, 480))).pixels == pytest.approx(320.0)


def test_focal_length_auto_uses_exif_and_says_so(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    photo = _jpeg_with_exif(tmp_path / "photo.jpg", (64, 48), {0xA405: 50})
    bare = _jpeg_with_exif(tmp_path / "bare.jpg", (64, 48), {})
    plain = _predict(model_dir, photo, tmp_path / "plain")
    with caplog.at_level(logging.INFO):
        auto = _predict(model_dir, photo, tmp_path / "auto", "--focal_length", "auto")
        _predict(model_dir, bare, tmp_path / "auto", "--focal_length", "auto")
    focal = 50 * math.hypot(64, 48) / FULL_FRAME_DIAGONAL_MM
    np.testing.assert_allclose(auto, plain * focal * (32 / 64) / TRAINING_FOCAL, atol=1.5e-3)
    assert f"focal length {focal:.1f} px, from EXIF FocalLengthIn35mmFilm (50 mm)" in caplog.text
    assert "bare.jpg: no EXIF focal length" in caplog.text


def test_a_model_without_training_camera_refuses_a_focal_length(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "unknown"
    WEDepthForDepthEstimation(make_tiny_config()).save_pretrained(folder)
    WEDepthImageProcessor().save_pretrained(folder)
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 24), (90, 120, 200)).save(image)
    arguments = ["predict", str(image), "--model", str(folder), "--output_dir", str(tmp_path / "out"), "--fov", "60"]
    assert cli.main(arguments) == 1
    assert "records no training camera" in caplog.text
    assert not (tmp_path / "out" / "x_depth.png").exists()


def test_point_cloud_intrinsics_and_flying_pixels(model_dir: Path, tmp_path: Path) -> None:
    """The PLY's camera: --intrinsics as given; without, the training focal brought to the image (2 f_train at 48x64)
    and the centre; --drop_flying_pixels leaves out the pixels at a depth step."""
    image = tmp_path / "p.png"
    Image.fromarray(render_scene(sample_scene(2), 48, 64)["image"]).save(image)
    _predict(model_dir, image, tmp_path / "default", "--save_ply")
    header = (tmp_path / "default" / "p.ply").read_bytes().split(b"end_header")[0].decode()
    assert f"fx={2 * TRAINING_FOCAL} fy={2 * TRAINING_FOCAL} cx=31.5 cy=23.5" in header
    _predict(model_dir, image, tmp_path / "given", "--save_ply", "--intrinsics", "70,71,30,20")
    header = (tmp_path / "given" / "p.ply").read_bytes().split(b"end_header")[0].decode()
    assert "fx=70.0 fy=71.0 cx=30.0 cy=20.0" in header
    depth = np.full((6, 8), 2.0)
    depth[:, 4:] = 5.0
    assert np.array_equal(np.nonzero(flying_pixels(depth, 0.05).any(axis=0))[0], [3, 4])
    assert not flying_pixels(depth, 2.0).any()
    _predict(model_dir, image, tmp_path / "dropped", "--save_ply", "--drop_flying_pixels", "0.001")
    assert len(read_point_cloud_ply(tmp_path / "dropped" / "p.ply")) < 48 * 64


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--focal_length", "0"], "expected a number > 0"),
        (["--fov", "180"], "expected degrees between 0 and 180"),
        (["--intrinsics", "1,2,3"], "expected fx,fy,cx,cy"),
        (["--fov", "60", "--focal_length", "500"], "give one of --focal_length, --fov and --intrinsics"),
        (["--fx", "500", "--fy", "500", "--cx", "1", "--cy", "1", "--intrinsics", "1,1,1,1"], "not both"),
    ],
)
def test_camera_usage_errors(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, options: list[str], message: str
) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 24)).save(image)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", str(image), "--model", str(model_dir), "--output_dir", str(tmp_path / "o"), *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_training_cameras_recorded() -> None:
    """The median focal of a list; a processor or config with a malformed camera is refused."""
    camera = median_training_camera([718.9, 721.5, 707.0, None], (352, 1216), "kitti list")
    assert camera == {"focal_length": 718.9, "image_size": [352, 1216], "source": "kitti list"}
    assert median_training_camera([], None, "none") is None
    with pytest.raises(ValueError, match="focal_length is -2"):
        WEDepthImageProcessor(training_camera={"focal_length": -2})
    with pytest.raises(ValueError, match="training_camera"):
        make_tiny_config(training_camera={"focal": 500})
    processor = WEDepthImageProcessor()
    with pytest.raises(ValueError, match="records no `training_camera`"):
        processor.post_process_depth_estimation({"predicted_depth": torch.ones(1, 4, 4)}, [(4, 4)], focal_length=5.0)
