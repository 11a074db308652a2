"""The demo page's work without a browser (`wedepth_hf.demo`): its handlers on a tiny random model, the files they
write, the click readout, the 3D view's point cloud, and `wedepth demo`'s errors. The browser test is
test_demo_browser.py."""

import importlib.util
import logging
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, save_tiny_model
from PIL import Image

from wedepth_hf.cli import main
from wedepth_hf.visualization import depth_to_points, read_point_cloud_ply


TRAINING_FOCAL = 50.0
"""The tiny processor's training camera: focal 50 px at 48x64 (the processor's own resolution for these images)."""


@pytest.fixture(scope="module")
def gradio():
    return pytest.importorskip("gradio", reason='the demo page needs Gradio: pip install "wedepth_hf[demo]"')


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    camera = {"focal_length": TRAINING_FOCAL, "image_size": [48, 64], "source": "test"}
    return save_tiny_model(tmp_path_factory.mktemp("model"), training_camera=camera)


@pytest.fixture(scope="module")
def blocks(gradio, model_folder: Path):
    from wedepth_hf.demo import build_demo

    return build_demo(str(model_folder), device="cpu", dtype="float32", max_frames=3)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "room photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def handler(blocks, name: str):
    """The page's event handler whose function is named `name`."""
    matches = [block_function.fn for block_function in blocks.fns.values() if block_function.name == name]
    assert matches, [block_function.name for block_function in blocks.fns.values()]
    return matches[0]


def test_image_prediction_writes_what_the_page_shows(blocks, photo: Path) -> None:
    """The colour depth, the 16-bit PNG, the full PLY, the table and the depth state all describe the same depth."""
    color, view_path, table, downloads, depth = handler(blocks, "predict_image")(str(photo), None)
    assert depth.shape == (48, 64) and np.isfinite(depth).all() and depth.std() > 0
    assert color.size == (64 + 90, 64)  # the map and its legend, padded to 64 rows
    png_path, ply_path = map(Path, downloads)
    assert (png_path.name, ply_path.name) == ("room photo_depth.png", "room photo.ply")
    with Image.open(png_path) as png:
        stored = np.asarray(png)
    assert stored.dtype == np.uint16 and stored.shape == (48, 64)
    expected = np.round(np.clip(depth.astype(np.float64), 0, 65.535) * 1000).astype(np.uint16)
    np.testing.assert_array_equal(stored, expected)
    cloud = read_point_cloud_ply(ply_path)
    # No focal length given: the training camera's, at the image's size (not resized), centred.
    intrinsics = (TRAINING_FOCAL, TRAINING_FOCAL, 31.5, 23.5)
    points, _ = depth_to_points(depth, np.zeros((48, 64, 3), np.uint8), intrinsics)
    np.testing.assert_allclose(np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1), points, rtol=1e-6)
    values = {row[0]: (row[1], float(row[2])) for row in table}
    assert values["minimum"][1] == pytest.approx(depth.min(), abs=1e-3)
    assert values["maximum"][1] == pytest.approx(depth.max(), abs=1e-3)
    assert values["median"][1] == pytest.approx(float(np.median(depth)), abs=1e-3)
    col, row = map(int, values["maximum"][0].split(", "))
    assert depth[row, col] == depth.max()
    assert values["centre"] == ("32, 24", pytest.approx(depth[24, 32], abs=1e-3))
    assert Path(view_path).is_file()


def test_focal_length_scales_depth_and_sets_the_point_cloud_camera(blocks, photo: Path) -> None:
    """A focal length twice the training camera's doubles the depth (the canonical camera), and the PLY uses it."""
    predict = handler(blocks, "predict_image")
    depth = predict(str(photo), None)[4]
    scaled_depth, downloads = (lambda result: (result[4], result[3]))(predict(str(photo), 2 * TRAINING_FOCAL))
    np.testing.assert_allclose(scaled_depth, 2 * depth, rtol=1e-5)
    header = Path(downloads[1]).read_bytes().split(b"end_header")[0].decode("ascii")
    assert f"fx={2 * TRAINING_FOCAL} fy={2 * TRAINING_FOCAL} cx=31.5 cy=23.5" in header


@pytest.mark.parametrize(
    ("path", "focal", "message"),
    [(None, None, "Upload an image first"), ("photo", -5.0, "must be a positive number"), ("photo", float("nan"), "")],
)
def test_visitor_errors_are_shown_on_the_page(blocks, gradio, photo: Path, path, focal, message: str) -> None:
    with pytest.raises(gradio.Error, match=message or "focal length"):
        handler(blocks, "predict_image")(str(photo) if path else None, focal)


def test_an_oversized_image_is_refused_before_decoding(gradio, model_folder: Path, tmp_path: Path) -> None:
    from wedepth_hf.demo import DepthDemo
    from wedepth_hf.prediction_inputs import load_models

    demo = DepthDemo(load_models([str(model_folder)], torch.device("cpu"))[0], torch.device("cpu"), torch.float32, 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(path)
    with pytest.raises(ValueError, match="more than the limit of 100"):
        demo.predict_image(str(path), None)


def test_depth_that_autocast_spoils_is_predicted_again_and_never_shown_non_finite(
    gradio, model_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As `wedepth predict`: a non-finite map under bfloat16 autocast is predicted again in float32; a map that is
    non-finite in float32 too is refused, never drawn."""
    from wedepth_hf.demo import DepthDemo
    from wedepth_hf.prediction_inputs import load_models

    cpu = torch.device("cpu")
    loaded = load_models([str(model_folder)], cpu)[0]
    spoil = {"always": False}
    hook = loaded.model.depth_heads[0].register_forward_hook(
        lambda module, inputs, output: output * np.nan if spoil["always"] or torch.is_autocast_enabled("cpu") else None
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    expected = DepthDemo(loaded, cpu, torch.float32, 10**6)._predict(image, None)
    assert np.isfinite(expected).all()
    assert np.array_equal(DepthDemo(loaded, cpu, torch.bfloat16, 10**6)._predict(image, None), expected)
    assert "the image: the depth predicted under bfloat16 autocast has non-finite values" in caplog.text
    spoil["always"] = True
    with pytest.raises(ValueError, match="non-finite values .* even in float32"):
        DepthDemo(loaded, cpu, torch.bfloat16, 10**6)._predict(image, None)
    hook.remove()


def test_click_readout(gradio) -> None:
    from wedepth_hf.demo import depth_at

    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert depth_at(depth, 3, 1) == "Depth at pixel (3, 1): 7.000 m"
    assert "outside the 4x3 depth map" in depth_at(depth, 4, 1)
    assert "Predict an image first" in depth_at(None, 0, 0)


def test_view_cloud_is_the_download_turned_and_thinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view's points are the full cloud's at every n-th pixel, turned half a turn about the optical axis (x and
    y negated: a rotation, not a mirror image), exactly (no resampling)."""
    from wedepth_hf import demo

    monkeypatch.setattr(demo, "VIEW_MAX_POINTS", 12 * 20 // 4)  # stride 2
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 8.0, (12, 20)).astype(np.float32)
    colours = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    intrinsics = (30.0, 31.0, 9.0, 5.0)
    count = demo.write_view_cloud(tmp_path / "view.ply", depth, colours, intrinsics)
    view = read_point_cloud_ply(tmp_path / "view.ply")
    points, point_colours = depth_to_points(depth, colours, intrinsics)
    turned = points.reshape(12, 20, 3)[::-1, ::-1][::2, ::2].reshape(-1, 3) * np.array([-1, -1, 1], np.float32)
    assert count == len(view) == 60
    np.testing.assert_allclose(np.stack([view["x"], view["y"], view["z"]], axis=1), turned, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(view["red"], point_colours.reshape(12, 20, 3)[::-1, ::-1][::2, ::2, 0].ravel())


def test_video_tab_writes_a_depth_video(blocks, tmp_path: Path) -> None:
    av = pytest.importorskip("av", reason='the video tab needs PyAV: pip install "wedepth_hf[video]"')
    video = pytest.importorskip("wedepth_hf.video", reason="wedepth_hf.video is not in this checkout")
    if not hasattr(video, "depth_video"):
        pytest.skip("wedepth_hf.video.depth_video is not written yet")
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(2)
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    written = Path(handler(blocks, "predict_video")(str(clip)))
    with av.open(str(written)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 3  # max_frames of the page
    assert frames[0].to_ndarray(format="rgb24").std() > 0


def test_missing_gradio_is_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Checked before the model is loaded: a model that does not exist is not what the message is about."""
    monkeypatch.setitem(sys.modules, "gradio", None)
    with caplog.at_level(logging.ERROR):
        status = main(["demo", "--model", "no-such-model-folder"])
    assert status == 1
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and 'pip install "wedepth_hf[demo]"' in errors[0], errors


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["demo", "--model", "unused", "--port", port])
    assert stopped.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_space_app_serves_the_model_it_is_given(gradio, model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/app.py: the model from $WEDEPTH_MODEL, the address and port from Gradio's variables (as a Space sets
    them), and the page built for that model."""
    spec = importlib.util.spec_from_file_location("space_app", REPO / "examples" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    served = {}
    monkeypatch.setattr(
        app, "launch_demo", lambda blocks, host, port: served.update(blocks=blocks, host=host, port=port)
    )
    monkeypatch.setattr(sys, "argv", ["app.py"])
    monkeypatch.setenv("WEDEPTH_MODEL", str(model_folder))
    monkeypatch.setenv("WEDEPTH_DEVICE", "cpu")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert app.main() == 0
    assert (served["host"], served["port"]) == ("0.0.0.0", 7861)
    assert isinstance(served["blocks"], gradio.Blocks)
    assert str(model_folder) in str(served["blocks"].config)


def test_a_port_in_use_is_one_line(gradio, model_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR):
            status = main(["demo", "--model", str(model_folder), "--port", str(port), "--device", "cpu"])
    assert status == 1
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"Cannot serve the page on 127.0.0.1:{port}" in errors[0], errors
    assert "give another --port" in errors[0]


def test_ctrl_c_ends_the_command_even_when_the_server_does_not_stop(
    gradio, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Gradio's close joins its busy workers: after the grace period the command ends with 130 all the same."""
    from wedepth_hf import demo

    class Page:
        def __init__(self, seconds: float) -> None:
            self.seconds = seconds

        def close(self, verbose: bool) -> None:
            time.sleep(self.seconds)

    exits: list[int] = []
    monkeypatch.setattr(demo.os, "_exit", exits.append)
    demo._close_within(Page(0.0), 5.0)
    assert exits == []
    with caplog.at_level(logging.WARNING):
        demo._close_within(Page(3.0), 0.2)
    assert exits == [130] and "did not stop within 0.2 s" in caplog.text
