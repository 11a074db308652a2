"""`wedepth predict` on videos and frame folders (wedepth_hf.video), with clips the tests encode with PyAV and a tiny
random model saved to a temporary folder."""

import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from helpers import save_tiny_model
from PIL import Image

from wedepth_hf import cli, video
from wedepth_hf.camera import CameraRequest, image_intrinsics
from wedepth_hf.inference import predict_images
from wedepth_hf.prediction_inputs import load_models
from wedepth_hf.video import VideoSettings, depth_video, npz_depth_writer, write_clip
from wedepth_hf.visualization import default_intrinsics, depth_color_image, load_depth_png, read_point_cloud_ply


FPS = 12
FRAMES = 15
HEIGHT, WIDTH = 32, 48
# Mean absolute difference (0-255 levels) allowed between an H.264 yuv420p frame and the RGB image it encodes
# (about 1.4 measured at crf 18).
CODEC_TOLERANCE = 3.0


@pytest.fixture(scope="module")
def av() -> ModuleType:
    return pytest.importorskip("av", reason="PyAV is not installed (pip install 'wedepth_hf[video]')")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny_wedepth"))


def _frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random frames that change from one to the next (their depth differs)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 4, 6, 3), dtype=np.uint8)
    return [np.asarray(Image.fromarray(frame).resize((WIDTH, HEIGHT), Image.BILINEAR)) for frame in coarse]


def _encode(av: ModuleType, path: Path, frames: list[np.ndarray], fps: int) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    for frame in frames:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode(None))
    container.close()
    return path


def _decode(av: ModuleType, path: Path) -> tuple[list[Image.Image], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [frame.to_image() for frame in container.decode(stream)], stream.average_rate


@pytest.fixture(scope="module")
def clip(av: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _encode(av, tmp_path_factory.mktemp("clip") / "clip.mp4", _frames(FRAMES), FPS)


@pytest.fixture(scope="module")
def reference_depth(av: ModuleType, clip: Path, model_dir: Path) -> np.ndarray:
    """The image path's depth of the clip's decoded frames, one image at a time."""
    model = load_models([str(model_dir)], torch.device("cpu"))[0]
    frames, _ = _decode(av, clip)
    depths = [
        predict_images(model.model, model.processor, [frame], torch.device("cpu"), torch.float32, False)[0].numpy()
        for frame in frames
    ]
    return np.stack(depths)


def _predict(*arguments: str) -> int:
    return cli.main(["predict", *arguments, "--no_progress", "--dtype", "float32"])


def _colour_error(decoded: Image.Image, depth: np.ndarray, low: float, high: float) -> float:
    expected = np.asarray(depth_color_image(depth, low, high), dtype=np.float64)
    height, width = expected.shape[:2]
    return float(np.abs(np.asarray(decoded, dtype=np.float64)[:height, :width] - expected).mean())


def test_video_writes_colour_video_png_depth_and_ply_with_one_colour_range(
    av: ModuleType, clip: Path, model_dir: Path, reference_depth: np.ndarray, tmp_path: Path
) -> None:
    code = _predict(str(clip), "--model", str(model_dir), "--output_dir", str(tmp_path), "--batch_size", "4")
    assert code == 0
    colour, rate = _decode(av, tmp_path / "clip_depth_color.mp4")
    assert len(colour) == FRAMES and rate == FPS
    pngs = sorted((tmp_path / "clip_depth").iterdir())
    assert [path.name for path in pngs] == [f"{index:06d}.png" for index in range(FRAMES)]
    for png, expected in zip(pngs, reference_depth):
        np.testing.assert_allclose(load_depth_png(png), expected, atol=1e-3)
    # The colour range is fixed from the first second (FPS frames) and used for every frame, also after it.
    first_second = reference_depth[:FPS]
    low, high = float(first_second.min()), float(first_second.max())
    assert reference_depth[FPS:].max() != high or reference_depth[FPS:].min() != low
    errors = [_colour_error(frame, depth, low, high) for frame, depth in zip(colour, reference_depth)]
    assert max(errors) < CODEC_TOLERANCE, errors
    per_frame = [_colour_error(frame, depth, depth.min(), depth.max()) for frame, depth in zip(colour, reference_depth)]
    assert max(per_frame) > 2 * CODEC_TOLERANCE, per_frame  # a per-frame range would have been caught
    assert not list(tmp_path.glob("*.ply"))


def test_video_npz_depth_range_and_ply_frames(
    av: ModuleType,
    clip: Path,
    model_dir: Path,
    reference_depth: np.ndarray,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    arguments = [str(clip), "--model", str(model_dir), "--output-dir", str(tmp_path), "--batch-size", "3"]
    code = _predict(*arguments, "--save-depth", "npz", "--depth-range", "0.5,20", "--ply-frames", "2,14,99")
    assert code == 1  # frame 99 does not exist; the rest is written
    assert "--ply_frames [99] are past the clip's last frame, 14." in caplog.text
    with np.load(tmp_path / "clip_depth.npz") as archive:
        assert archive.files == ["depth"]
        depth = archive["depth"]
    assert depth.dtype == np.float16 and depth.shape == (FRAMES, HEIGHT, WIDTH)
    np.testing.assert_allclose(depth.astype(np.float32), reference_depth, rtol=1e-3, atol=1e-3)
    assert not (tmp_path / "clip_depth").exists()
    colour, _ = _decode(av, tmp_path / "clip_depth_color.mp4")
    errors = [_colour_error(frame, depth, 0.5, 20.0) for frame, depth in zip(colour, reference_depth)]
    assert max(errors) < CODEC_TOLERANCE, errors
    assert sorted(path.name for path in tmp_path.glob("*.ply")) == ["clip_frame000002.ply", "clip_frame000014.ply"]
    points = read_point_cloud_ply(tmp_path / "clip_frame000002.ply")
    assert len(points) == HEIGHT * WIDTH
    np.testing.assert_allclose(np.sort(points["z"]), np.sort(reference_depth[2].ravel()), rtol=1e-5)


def test_frame_folder_as_video_matches_the_image_path(av: ModuleType, model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(_frames(5, seed=1)):
        Image.fromarray(frame).save(folder / f"f{index:02d}.png")
    images_out, video_out = tmp_path / "images", tmp_path / "video"
    assert _predict(str(folder), "--model", str(model_dir), "--output_dir", str(images_out)) == 0
    arguments = ["--model", str(model_dir), "--output_dir", str(video_out), "--batch_size", "2"]
    assert _predict(str(folder), *arguments, "--frames_as_video", "--fps", "5") == 0
    assert not list(video_out.glob("f0*"))
    colour, rate = _decode(av, video_out / "frames_depth_color.mp4")
    assert len(colour) == 5 and rate == 5
    for index in range(5):
        as_video = load_depth_png(video_out / "frames_depth" / f"{index:06d}.png")
        np.testing.assert_allclose(as_video, load_depth_png(images_out / f"f{index:02d}_depth.png"), atol=1.5e-3)


def test_depth_video_api(av: ModuleType, clip: Path, model_dir: Path, tmp_path: Path) -> None:
    model = load_models([str(model_dir)], torch.device("cpu"))[0]
    destination = tmp_path / "depth.mp4"
    result = depth_video(model, clip, destination, device=torch.device("cpu"), dtype=torch.float32, max_frames=5)
    assert result == destination
    colour, rate = _decode(av, destination)
    assert len(colour) == 5 and rate == FPS
    assert sorted(path.name for path in tmp_path.iterdir()) == ["depth.mp4"]


def test_clip_point_clouds_use_the_camera_the_depth_assumes(av: ModuleType, clip: Path, tmp_path: Path) -> None:
    """Without a focal length, a frame's point cloud uses the model's training camera at the frame's resolution (as
    an image's does), not a 60-degree default."""
    camera = {"focal_length": 40.0, "image_size": [48, 64], "source": "test"}
    model = load_models([str(save_tiny_model(tmp_path / "model", training_camera=camera))], torch.device("cpu"))[0]
    settings = VideoSettings(ply_frames=frozenset({1}), max_frames=2)
    write_clip(model, clip, tmp_path / "d.mp4", tmp_path / "d", settings, torch.device("cpu"), torch.float32)
    frame = _decode(av, clip)[0][1]
    fx, fy, cx, cy = image_intrinsics(model.processor, frame, CameraRequest(), None)
    assert fx != pytest.approx(default_intrinsics(frame.height, frame.width)[0])
    points = read_point_cloud_ply(tmp_path / "d_frame000001.ply")
    rows, columns = np.divmod(np.arange(frame.height * frame.width), frame.width)
    np.testing.assert_allclose(points["x"], (columns - cx) * points["z"] / fx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points["y"], (rows - cy) * points["z"] / fy, rtol=1e-5, atol=1e-6)


def test_frame_folder_frames_are_refused_by_their_headers_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame over the pixel budget, or of another size than the first, is refused before it is decoded."""
    for name, (height, width) in (("a.png", (30, 40)), ("b.png", (30, 40)), ("c.png", (20, 40))):
        Image.new("RGB", (width, height)).save(tmp_path / name)
    decoded: list[str] = []
    monkeypatch.setattr(video, "load_image", lambda path: decoded.append(path.name) or Image.open(path))
    with pytest.raises(video.VideoError, match=r"a\.png is 40x30 = 1,200 pixels, more than the limit of 100"):
        next(video._folder_frames(sorted(tmp_path.glob("*.png")), 100))
    assert decoded == []
    frames = video._folder_frames(sorted(tmp_path.glob("*.png")), 0)
    with pytest.raises(video.VideoError, match=r"c\.png: the frame is 40x20, the folder's first frame 40x30"):
        list(frames)
    assert decoded == ["a.png", "b.png"]


def test_npz_writer_streams_frames_and_leaves_nothing_after_an_error(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).uniform(0.5, 10, (3, 4, 5)).astype(np.float32)
    with npz_depth_writer(tmp_path / "d.npz") as append:
        for frame in frames:
            append(frame)
    with np.load(tmp_path / "d.npz") as archive:
        np.testing.assert_array_equal(archive["depth"], frames.astype(np.float16))
    with pytest.raises(RuntimeError), npz_depth_writer(tmp_path / "e.npz") as append:
        append(frames[0])
        raise RuntimeError("interrupted")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["d.npz"]


def test_missing_pyav_is_one_line_with_the_install_command(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"not decoded: PyAV is checked first")
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    code = _predict(str(tmp_path / "clip.mp4"), "--model", str(model_dir), "--output_dir", str(tmp_path / "out"))
    assert code == 1
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert errors[0].getMessage() == 'Reading and writing video needs PyAV: pip install "wedepth_hf[video]".'


def test_corrupt_video_is_one_line_and_exit_1(
    av: ModuleType, model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    code = _predict(str(tmp_path / "broken.mp4"), "--model", str(model_dir), "--output_dir", str(tmp_path / "out"))
    assert code == 1
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors[0].startswith(f"{tmp_path / 'broken.mp4'}: cannot read the video ("), errors
    assert errors[0].endswith("Skipped.") and "Traceback" not in caplog.text
    assert not list((tmp_path / "out").iterdir())


def test_video_options_without_a_video_are_usage_errors(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    Image.fromarray(_frames(1)[0]).save(tmp_path / "a.png")
    for extra in (["--depth_range", "1,5"], ["--save_depth", "npz"], ["--depth_range", "5,1"]):
        with pytest.raises(SystemExit) as exit_info:
            _predict(str(tmp_path / "a.png"), "--model", str(model_dir), "--output_dir", str(tmp_path), *extra)
        assert exit_info.value.code == 2
    errors = capsys.readouterr().err
    assert "--depth_range apply to videos; no input is a video file" in errors
    assert "expected finite 0 <= MIN < MAX, got '5,1'" in errors
