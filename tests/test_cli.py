"""End-to-end tests of `wedepth predict` on real image files with a tiny saved model, and of the forwarding commands."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_refused, run_wedepth, save_tiny_model
from PIL import Image

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor, cli, evaluation, predict, prediction_inputs
from wedepth_hf.visualization import default_intrinsics, load_depth_png, read_point_cloud_ply


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny_wedepth"))


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
    assert prediction_inputs.read_image_size(first / "cut.jpg") == (30, 40)
    _write_image(second / "a.png", 30, 40, 3)
    (second / "notes.txt").write_text("ignored by the glob")
    output = tmp_path / "out"

    code = cli.main(
        [
            "predict",
            str(first),
            str(second / "*.png"),
            "--model",
            str(model_dir),
            "--output-dir",
            str(output),
            "--batch-size",
            "2",
            "--save-ply",
            "--no-progress",
            "--dtype",
            "float32",
        ]
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


def _usage_error(arguments: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one-line message of the usage error that `wedepth` stops with (exit status 2, from the parser)."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(arguments)
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    return errors[0]


def test_missing_inputs_and_partial_intrinsics_are_usage_errors(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "out"
    arguments = ["predict", str(tmp_path / "nothing*.png"), "--model", str(model_dir), "--output_dir", str(output)]
    assert "nothing*.png: pattern matches no file." in _usage_error(arguments, capsys)
    arguments = ["predict", str(tmp_path), "--model", str(model_dir), "--output_dir", str(output), "--fx", "500"]
    assert "give all four of --fx --fy --cx --cy" in _usage_error(arguments, capsys)
    assert "--batch_size/--batch-size: expected an integer >= 1" in _usage_error(
        [*arguments, "--batch_size", "0"], capsys
    )
    assert not output.exists()


def test_underscore_options_and_their_hyphen_aliases_are_the_same_option(capsys: pytest.CaptureFixture) -> None:
    parser = cli.build_parser()
    spellings = {
        "underscore": ["--output_dir", "o", "--batch_size", "4", "--processing_size", "240", "--max_pixels", "9"],
        "hyphen": ["--output-dir", "o", "--batch-size", "4", "--processing-size", "240", "--max-pixels", "9"],
    }
    flags = {"underscore": ["--flip_tta", "--save_ply", "--no_progress"], "hyphen": ["--flip-tta", "--save-ply"]}
    flags["hyphen"].append("--no-progress")
    parsed = {
        name: vars(parser.parse_args(["predict", "x.png", "--model", "m", *options, *flags[name]]))
        for name, options in spellings.items()
    }
    assert parsed["underscore"] == parsed["hyphen"]
    assert parsed["hyphen"]["output_dir"] == "o" and parsed["hyphen"]["batch_size"] == 4
    assert parsed["hyphen"]["flip_tta"] and parsed["hyphen"]["save_ply"] and parsed["hyphen"]["no_progress"]
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "--help"])
    usage = capsys.readouterr().out
    assert "--output_dir OUTPUT_DIR, --output-dir OUTPUT_DIR" in usage  # the underscore spelling first


def test_unique_output_stems() -> None:
    files = [Path("/d1/x/a.png"), Path("/d2/x/a.png"), Path("/d1/b.png"), Path("/d1/b.jpg")]
    stems = prediction_inputs.unique_output_stems(files)
    assert stems[2:] == ["b_png", "b_jpg"]
    assert stems[:2] == ["d1__x__a", "d2__x__a"]


def test_train_and_evaluate_run_in_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """`wedepth train` and `wedepth evaluate` hand every argument after the sub-command to the package's own
    commands (no script of a source checkout is involved)."""
    import wedepth_hf.evaluation
    import wedepth_hf.training

    received: dict[str, list[str]] = {}
    monkeypatch.setattr(wedepth_hf.training, "main", lambda argv: received.setdefault("train", list(argv)) and 3)
    monkeypatch.setattr(wedepth_hf.evaluation, "main", lambda argv: received.setdefault("evaluate", list(argv)) and 4)
    assert cli.main(["train", "--config", "synthetic", "--max_train_steps", "2"]) == 3
    assert cli.main(["evaluate", "--model", "m", "--help"]) == 4
    assert received == {
        "train": ["--config", "synthetic", "--max_train_steps", "2"],
        "evaluate": ["--model", "m", "--help"],
    }


def test_evaluate_help_lists_its_options(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    assert "--crop_on_kb_crop" in capsys.readouterr().out


# ---- image modes, output safety, per-image failures (bad input and faults) -----------------------------------------


def _predict(model_dir: Path, inputs: list[Path], output: Path, *extra: str) -> int:
    return cli.main(_predict_arguments(model_dir, inputs, output, *extra))


def _model_depth(model_dir: Path, image: object) -> np.ndarray:
    """What the processor API and the model give for `image` (PIL in any mode, or an array)."""
    model = WEDepthForDepthEstimation.from_pretrained(model_dir).eval()
    pixel_values = WEDepthImageProcessor()(images=image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model(pixel_values=pixel_values).predicted_depth[0].numpy()


def test_sixteen_bit_and_float_images_read_as_the_processor_reads_them(model_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    gray16 = rng.integers(0, 65536, size=(30, 40), dtype=np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    unit_float = rng.random((30, 40), dtype=np.float32)
    Image.fromarray(unit_float, mode="F").save(tmp_path / "unit.tiff")
    output = tmp_path / "out"
    assert _predict(model_dir, [tmp_path / "gray16.png", tmp_path / "unit.tiff"], output) == 0
    with Image.open(tmp_path / "gray16.png") as image:
        # Not saturated: the 16-bit values are scaled to 8-bit, exactly as the processor API does.
        expected = _model_depth(model_dir, image)
    assert np.abs(load_depth_png(output / "gray16_depth.png") - expected).max() <= 1e-3
    # A 0-1 float image is read as 0-1 (the processor's rule, tested there), not as a black 0-255 one.
    with Image.open(tmp_path / "unit.tiff") as image:
        expected = _model_depth(model_dir, image)
    assert np.abs(load_depth_png(output / "unit_depth.png") - expected).max() <= 1e-3
    black = _model_depth(model_dir, np.zeros((30, 40), dtype=np.uint8))
    assert np.abs(load_depth_png(output / "unit_depth.png") - black).max() > 0.01


def test_a_nan_image_is_an_error_naming_its_file_and_the_others_are_written(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = np.full((30, 40), 0.5, dtype=np.float32)
    bad[3, 4] = np.nan
    Image.fromarray(bad, mode="F").save(tmp_path / "bad.tiff")
    _write_image(tmp_path / "good.png", 30, 40, 1)
    output = tmp_path / "out"
    assert _predict(model_dir, [tmp_path / "bad.tiff", tmp_path / "good.png"], output, "--batch-size", "2") == 1
    assert f"{tmp_path / 'bad.tiff'}: prediction failed (ValueError: The image holds NaN" in caplog.text
    assert sorted(path.name for path in output.iterdir()) == ["good_depth.png", "good_depth_color.png"]


def test_one_failing_image_does_not_stop_the_run(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, height in (("small", 30), ("huge", 60), ("other", 30)):
        _write_image(tmp_path / f"{name}.png", height, 40, 2)
    forward = WEDepthForDepthEstimation.forward

    def out_of_memory_on_large_inputs(self, pixel_values, *args, **kwargs):
        if pixel_values.shape[-2] > 50:
            raise RuntimeError("DefaultCPUAllocator: not enough memory")
        return forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(WEDepthForDepthEstimation, "forward", out_of_memory_on_large_inputs)
    output = tmp_path / "out"
    assert _predict(model_dir, [tmp_path / f"{name}.png" for name in ("small", "huge", "other")], output) == 1
    assert "huge.png: prediction failed (RuntimeError: DefaultCPUAllocator: not enough memory); skipped." in caplog.text
    assert {"small_depth.png", "other_depth.png"} <= {path.name for path in output.iterdir()}
    assert "1 input(s) failed; 2 image(s) were written" in caplog.text


def test_large_photos_are_processed_at_a_bounded_resolution(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_image(tmp_path / "photo.jpg", 1200, 1600, 3)
    seen: list[tuple[int, int]] = []
    forward = WEDepthForDepthEstimation.forward

    def record(self, pixel_values, *args, **kwargs):
        seen.append(tuple(pixel_values.shape[-2:]))
        return forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(WEDepthForDepthEstimation, "forward", record)
    assert _predict(model_dir, [tmp_path / "photo.jpg"], tmp_path / "default") == 0
    assert _predict(model_dir, [tmp_path / "photo.jpg"], tmp_path / "smaller", "--processing-size", "240") == 0
    assert seen == [(480, 640), (240, 320)]
    for folder in ("default", "smaller"):
        assert load_depth_png(tmp_path / folder / "photo_depth.png").shape == (1200, 1600)


def test_outputs_are_written_atomically_and_never_through_a_symlink(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_image(tmp_path / "x.png", 30, 40, 4)
    output = tmp_path / "out"
    output.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (output / "x_depth.png").symlink_to(victim)
    assert _predict(model_dir, [tmp_path / "x.png"], output) == 0
    assert victim.read_text() == "keep me"
    assert not (output / "x_depth.png").is_symlink() and load_depth_png(output / "x_depth.png").shape == (30, 40)
    good = (output / "x_depth.png").read_bytes()

    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert _predict(model_dir, [tmp_path / "x.png"], output) == 1
    assert (output / "x_depth.png").read_bytes() == good
    assert sorted(path.name for path in output.iterdir()) == ["x_depth.png", "x_depth_color.png"]


def _predict_arguments(model_dir: Path, inputs: list[Path], output: Path, *extra: str) -> list[str]:
    """The arguments of `_predict`."""
    options = ["--no-progress", "--device", "cpu", "--dtype", "float32"]
    return ["predict", *map(str, inputs), "--model", str(model_dir), "--output-dir", str(output), *options, *extra]


def test_output_dir_problems_stop_the_run_before_any_model_is_loaded(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _write_image(tmp_path / "x.png", 30, 40, 4)
    monkeypatch.setattr(predict, "load_models", lambda *args: pytest.fail("a model was loaded"))
    (tmp_path / "a_file").write_text("")
    arguments = _predict_arguments(model_dir, [tmp_path / "x.png"], tmp_path / "a_file")
    assert f"--output_dir {tmp_path / 'a_file'}: cannot write there" in _usage_error(arguments, capsys)
    arguments = _predict_arguments(model_dir, [tmp_path / "x.png"], tmp_path / "a_file" / "below")
    assert "cannot write there" in _usage_error(arguments, capsys)
    # A read-only folder (simulated: the tests may run as root, whom permissions do not stop).
    import wedepth_hf.visualization as visualization

    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(visualization.os, "open", read_only)
    arguments = _predict_arguments(model_dir, [tmp_path / "x.png"], tmp_path / "read_only")
    assert "cannot write there (Permission denied)" in _usage_error(arguments, capsys)


# ---- one convention: usage errors from the parser (2), runtime errors in one line (1), --debug for the traceback ----

AUTHORS_NYU = Path(__file__).parent / "fixtures" / "authors_eval_s0" / "nyu"


def test_a_runtime_error_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    """A model folder that does not load ends `wedepth predict` with one line (exit 1); `--debug`, after the
    sub-command or before it, shows the traceback instead."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    _write_image(tmp_path / "x.png", 30, 40, 0)
    arguments = ["predict", "x.png", "--model", "broken", "--output_dir", "out", "--no_progress", "--dtype", "float32"]
    assert_refused(run_wedepth(arguments, tmp_path), 1, "Could not load a depth model from 'broken'")
    for debug in ([*arguments, "--debug"], ["--debug", *arguments]):
        completed = run_wedepth(debug, tmp_path)
        assert completed.returncode == 1 and "Traceback (most recent call last)" in completed.stderr, debug


def test_evaluate_runtime_errors_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    """`wedepth evaluate` maps its runtime errors as `wedepth train` does: a model that does not load is one line
    (exit 1, no traceback), and `--debug` shows the traceback."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    arguments = ["evaluate", "--model", "broken", "--protocol", "authors", "--dataset", "nyu"]
    arguments += ["--data_root", str(AUTHORS_NYU)]
    assert_refused(run_wedepth(arguments, tmp_path), 1, "Could not load a depth model from 'broken'")
    completed = run_wedepth(["--debug", *arguments], tmp_path)
    assert completed.returncode == 1 and "Traceback (most recent call last)" in completed.stderr


def test_evaluate_errors_after_loading_are_one_line_and_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A report that cannot be written is one logged line (exit 1), an unexpected error one line that points to
    --debug, Ctrl-C exit 130; with --debug the error itself is raised."""
    arguments = ["evaluate", "--model", "m", "--dataset", "nyu", "--data_root", "."]
    failures = iter([OSError(28, "No space left on device"), TypeError("a bug"), KeyboardInterrupt()])

    def failing(*args: object) -> int:
        raise next(failures)

    monkeypatch.setattr(evaluation, "_run_evaluation", failing)
    assert [cli.main(arguments) for _ in range(3)] == [1, 1, 130]
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors == [
        "[Errno 28] No space left on device",
        "TypeError: a bug (run again with --debug to see the traceback)",
        "Stopped by Ctrl-C.",
    ]

    def disk_full(*args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluation, "_run_evaluation", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        cli.main(["--debug", *arguments])
