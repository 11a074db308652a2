"""Hostile and careless input to `wedepth train` and `wedepth evaluate`, tried as a user runs the command, in a fresh
process: the exit status, the first line of the message, no traceback, and which files exist afterwards with their
content hashes (a refused command creates and changes nothing). Where several values meet the same check, one goes
through a fresh process and the others through `wedepth_hf.cli.main` in this one (a process costs seconds of imports).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_refused, make_tiny_config, run_wedepth, tree_digest
from PIL import Image
from torch.utils.data import DataLoader

from wedepth_hf import WEDepthForDepthEstimation, cli
from wedepth_hf.data import write_synthetic_nyu_layout
from wedepth_hf.data.authors import AuthorsEvaluationDataset
from wedepth_hf.data.datasets import BadSampleError, NYUDepthDataset, bad_sample_message
from wedepth_hf.data.synthetic import foreign_synthetic_entries
from wedepth_hf.evaluation import evaluate_authors_dataset


FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A `--config synthetic` run of one step on two scenes: what a command would do if it were not refused.
SHORT_RUN = ["--config", "synthetic", "--max_train_steps", "1", "--log_with", "none"]
SHORT_RUN += ["--synthetic_num_train", "2", "--synthetic_num_val", "1"]
# Options that make that run read a folder of NYU-layout lists instead of writing synthetic data.
NYU_DATA = [*SHORT_RUN, "--dataset", "nyu", "--data_root", "ds", "--train_split_file", "train.txt"]


@pytest.fixture(scope="module")
def model() -> WEDepthForDepthEstimation:
    """A tiny random WEDepth."""
    torch.manual_seed(0)
    return WEDepthForDepthEstimation(make_tiny_config())


@pytest.fixture(scope="module")
def model_dir(model: WEDepthForDepthEstimation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved to a folder."""
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def nyu_data(tmp_path: Path) -> Path:
    """`tmp_path/ds`: 2 training and 2 validation scenes of 32x48 in the NYU list layout (train.txt, val.txt)."""
    write_synthetic_nyu_layout(tmp_path / "ds", 2, 2, seed=0, height=32, width=48)
    return tmp_path / "ds"


def _refused_without_a_trace(arguments: list[str], cwd: Path, status: int, first_line: str) -> None:
    """The command, in a fresh process, exits with `status` and `first_line`, and leaves every file under `cwd` as it
    was."""
    before = tree_digest(cwd)
    assert_refused(run_wedepth(arguments, cwd), status, first_line)
    assert tree_digest(cwd) == before


def _usage_error_in_process(
    arguments: list[str], cwd: Path, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The command, through `wedepth_hf.cli.main` in this process from `cwd`, stops with the usage error `message`
    (exit status 2, nothing else raised) and leaves every file under `cwd` as it was."""
    monkeypatch.chdir(cwd)
    before = tree_digest(cwd)
    with pytest.raises(SystemExit) as stopped:
        cli.main(arguments)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert tree_digest(cwd) == before


# ---- item 4: a ground-truth map without a valid pixel is skipped and counted ----------------------------------------


def test_an_all_zero_ground_truth_map_is_skipped_and_counted_community(model_dir: Path, nyu_data: Path) -> None:
    Image.fromarray(np.zeros((32, 48), np.uint16)).save(nyu_data / "val" / "scene_001" / "sync_depth_00000.png")
    arguments = ["evaluate", "--model", str(model_dir), "--dataset", "nyu", "--data_root", "ds"]
    completed = run_wedepth([*arguments, "--split_file", "val.txt", "--output", "r.json"], nyu_data.parent)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((nyu_data.parent / "r.json").read_text())
    assert report["num_images"] == {"nyu": 1} and report["num_skipped"] == {"nyu": 1}


def test_an_all_zero_ground_truth_map_is_skipped_and_counted_authors(
    model: WEDepthForDepthEstimation, tmp_path: Path
) -> None:
    """(The authors' reader already skipped such a map; this keeps it so.)"""
    shutil.copytree(FIXTURES / "authors_eval_s0" / "nyu", tmp_path / "nyu")
    Image.fromarray(np.zeros((480, 640), np.uint16)).save(tmp_path / "nyu" / "kitchen" / "sync_depth_00100.png")
    result = evaluate_authors_dataset(model, AuthorsEvaluationDataset("nyu", tmp_path / "nyu"), progress=False)
    # bathroom is scored; kitchen (zeroed) and living_room (fewer than 10 valid pixels in the fixture) are skipped.
    assert (result.num_images, result.num_skipped) == (1, 2)


# ---- item 5: the training list under another name is not a validation list ------------------------------------------


def test_the_training_list_is_refused_as_validation_list_however_spelt(
    nyu_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    shutil.copy(nyu_data / "train.txt", nyu_data / "copy.txt")
    arguments = ["train", *NYU_DATA, "--output_dir", "run", "--val_split_file"]
    same_file = "is the training list (train.txt: the same file)"
    _refused_without_a_trace([*arguments, "ds/train.txt"], nyu_data.parent, 2, same_file)
    _usage_error_in_process([*arguments, str(nyu_data / "train.txt")], nyu_data.parent, same_file, monkeypatch, capsys)
    copy = "is the training list (train.txt: a copy, with the same lines)"
    _usage_error_in_process([*arguments, "copy.txt"], nyu_data.parent, copy, monkeypatch, capsys)


# ---- item 6: an unrelated folder is not an output folder -------------------------------------------------------------


def test_training_into_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    (folder / "data").mkdir(parents=True)
    (folder / "training_config.yaml").write_text("my notes\n")
    (folder / "data" / "train.txt").write_text("my list\n")
    arguments = ["train", *SHORT_RUN, "--output_dir", "mine"]
    _refused_without_a_trace(arguments, tmp_path, 1, "mine holds files that no WEDepth training wrote")


# ---- item 9: every value checked before anything is built or written -------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "first_line"),
    [
        ("--learning_rate", "nan", "`learning_rate` must be a finite number, got nan"),
        ("--learning_rate", "-1", "`learning_rate` must be a positive number, got -1.0"),
        ("--dataloader_num_workers", "-1", "`dataloader_num_workers` must be 0 (load in the main process) or more"),
        ("--synthetic_height", "-5", "`synthetic_height` must be at least 1, got -5"),
        ("--synthetic_num_train", "0", "`synthetic_num_train` must be at least 1, got 0"),
    ],
)
def test_bad_training_values_are_refused_before_anything_is_written(
    tmp_path: Path,
    option: str,
    value: str,
    first_line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    arguments = ["train", *SHORT_RUN, "--output_dir", "run", option, value]
    if value == "nan":
        _refused_without_a_trace(arguments, tmp_path, 2, first_line)
    else:
        _usage_error_in_process(arguments, tmp_path, first_line, monkeypatch, capsys)


@pytest.mark.parametrize(
    ("text", "first_line"),
    [
        ('output_dir: !!python/object/apply:os.system ["touch pwned"]\n', "tags that make Python objects are not read"),
        ("# nothing but a comment\n", "is empty: it holds no training settings"),
    ],
)
def test_a_config_file_of_python_tags_or_nothing_is_refused(
    tmp_path: Path, text: str, first_line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "run.yaml").write_text(text)
    arguments = ["train", "--config", "run.yaml", "--output_dir", "run"]
    if "python" in text:
        _refused_without_a_trace(arguments, tmp_path, 2, first_line)
    else:
        _usage_error_in_process(arguments, tmp_path, first_line, monkeypatch, capsys)


def test_evaluate_checks_its_output_paths_before_evaluating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "out").mkdir()
    # No model and no data: the paths are checked before either is looked at.
    arguments = ["evaluate", "--model", "no-model", "--dataset", "nyu", "--data_root", "no-data"]
    _refused_without_a_trace([*arguments, "--output", "out"], tmp_path, 2, "--output out is a folder")
    for extra, message in (
        (["--update_model_card", str(tmp_path / "no" / "README.md")], "no such model card (README.md) to update"),
        (["--output", "results.md"], "which would overwrite it; give a .json name"),
        (["--batch_size", "0"], "--batch_size must be at least 1"),
    ):
        _usage_error_in_process([*arguments, *extra], tmp_path, message, monkeypatch, capsys)


# ---- item 11: nothing accepted silently ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_config", "first_line"),
    [
        ("{no_such_field: 1}", "Unknown key `no_such_field` in `model_config` (a WEDepthConfig)"),
        ("{vfm_config: {hiden_size: 32}}", "Unknown key `hiden_size` in `model_config.vfm_config` (a Dinov2Config)"),
    ],
)
def test_a_misspelt_model_config_key_is_refused_at_any_depth(
    tmp_path: Path, model_config: str, first_line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    arguments = ["train", *SHORT_RUN, "--output_dir", "run", "--model_config", model_config]
    if "vfm_config" in model_config:
        _refused_without_a_trace(arguments, tmp_path, 2, first_line)
    else:
        _usage_error_in_process(arguments, tmp_path, first_line, monkeypatch, capsys)


def test_an_8_bit_depth_png_is_refused_saying_16_bit_is_expected(model_dir: Path, nyu_data: Path) -> None:
    Image.fromarray(np.full((32, 48), 200, np.uint8)).save(nyu_data / "val" / "scene_001" / "sync_depth_00000.png")
    arguments = ["evaluate", "--model", str(model_dir), "--dataset", "nyu", "--data_root", "ds"]
    arguments += ["--split_file", "val.txt", "--output", "r.json"]
    _refused_without_a_trace(arguments, nyu_data.parent, 1, "is an 8-bit PNG (mode 'L')")


def test_a_bad_sample_read_by_a_loader_worker_is_told_in_one_line(nyu_data: Path) -> None:
    """`DataLoader` workers (`dataloader_num_workers`, `--num_workers`) put their traceback into the message of the
    error they re-raise; the commands report its last line alone."""
    Image.fromarray(np.full((32, 48), 200, np.uint8)).save(nyu_data / "val" / "scene_000" / "sync_depth_00000.png")
    with pytest.raises(BadSampleError) as raised:
        list(DataLoader(NYUDepthDataset(nyu_data, "val.txt"), num_workers=1, collate_fn=list))
    assert "Traceback" in str(raised.value)
    message = bad_sample_message(raised.value)
    assert message.startswith("Depth file ") and "is an 8-bit PNG" in message and "\n" not in message


def test_list_lines_that_leave_the_data_root_are_refused(
    nyu_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (nyu_data.parent / "outside").mkdir()
    shutil.copy(nyu_data / "train" / "scene_000" / "rgb_00000.png", nyu_data.parent / "outside" / "rgb.png")
    (nyu_data / "train.txt").write_text("../outside/rgb.png train/scene_000/sync_depth_00000.png 50.0\n")
    _refused_without_a_trace(["train", *NYU_DATA, "--output_dir", "run"], nyu_data.parent, 2, "leads to")
    evaluate = ["evaluate", "--model", "no-model", "--dataset", "nyu", "--data_root", "ds", "--split_file", "train.txt"]
    _usage_error_in_process(evaluate, nyu_data.parent, "../outside/rgb.png leads to", monkeypatch, capsys)
    allowed = NYUDepthDataset(nyu_data, "train.txt", allow_paths_outside_root=True)
    assert allowed[0]["image"].shape == (3, 32, 48)


def test_overwrite_output_dir_deletes_only_what_a_run_wrote(tmp_path: Path) -> None:
    """`--overwrite_output_dir` starts over by deleting `checkpoints/` and `model/`; in a folder where those hold the
    user's own files, it refuses instead, and deletes nothing."""
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "notes.txt").write_text("my notes\n")
    (folder / "model").mkdir()
    (folder / "model" / "photo.jpg").write_bytes(b"not a model")
    arguments = ["train", *SHORT_RUN, "--output_dir", "mine", "--overwrite_output_dir", "true"]
    completed = run_wedepth(arguments, tmp_path)
    assert_refused(completed, 1, "holds files that are not checkpoints of a WEDepth training (notes.txt)")
    assert (folder / "checkpoints" / "notes.txt").read_text() == "my notes\n"
    assert (folder / "model" / "photo.jpg").read_bytes() == b"not a model"
    shutil.rmtree(folder / "checkpoints")
    completed = run_wedepth(arguments, tmp_path)
    assert_refused(completed, 1, "holds files other than a WEDepth model's (photo.jpg)")
    assert (folder / "model" / "photo.jpg").read_bytes() == b"not a model"


def test_an_evaluation_with_no_scorable_image_writes_no_report(model_dir: Path, nyu_data: Path) -> None:
    for scene in ("scene_000", "scene_001"):
        Image.fromarray(np.zeros((32, 48), np.uint16)).save(nyu_data / "val" / scene / "sync_depth_00000.png")
    arguments = ["evaluate", "--model", str(model_dir), "--dataset", "nyu", "--data_root", "ds"]
    arguments += ["--split_file", "val.txt", "--output", "r.json"]
    _refused_without_a_trace(arguments, nyu_data.parent, 1, "No image of nyu had enough valid ground-truth pixels (2")


def test_evaluate_refuses_a_broken_model_folder_in_one_line(nyu_data: Path) -> None:
    (nyu_data.parent / "broken").mkdir()
    (nyu_data.parent / "broken" / "config.json").write_text('{"model_type": "wedepth", "prompt_num": "two"}')
    arguments = ["evaluate", "--model", "broken", "--dataset", "nyu", "--data_root", "ds", "--split_file", "val.txt"]
    _refused_without_a_trace(
        arguments, nyu_data.parent, 1, "Could not load a depth model from 'broken': `prompt_num` must be a whole number"
    )


def test_the_authors_protocol_reports_a_bad_sample_in_one_line(model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "authors_eval_s0" / "nyu", tmp_path / "nyu")
    depth = tmp_path / "nyu" / "kitchen" / "sync_depth_00100.png"
    Image.fromarray(np.full((480, 640), 200, np.uint8)).save(depth)
    arguments = ["evaluate", "--model", str(model_dir), "--protocol", "authors", "--dataset", "nyu"]
    message = f"Depth file {Path('nyu', 'kitchen', 'sync_depth_00100.png')} has image mode 'L'"
    _refused_without_a_trace([*arguments, "--data_root", "nyu"], tmp_path, 1, message)


def test_evaluation_refuses_images_over_the_pixel_budget(model_dir: Path, nyu_data: Path, tmp_path: Path) -> None:
    arguments = ["evaluate", "--model", str(model_dir), "--dataset", "nyu", "--data_root", "ds"]
    arguments += ["--split_file", "val.txt", "--max_pixels", "1000"]
    _refused_without_a_trace(arguments, nyu_data.parent, 1, "48x32 = 1,536 pixels, more than the limit of 1,000")
    shutil.copytree(FIXTURES / "authors_eval_s0" / "nyu", tmp_path / "nyu")
    authors = ["evaluate", "--model", str(model_dir), "--protocol", "authors", "--dataset", "nyu", "--data_root"]
    _refused_without_a_trace([*authors, "nyu", "--max_pixels", "1000"], tmp_path, 1, "more than the limit of 1,000")


def test_the_authors_protocol_refuses_list_lines_that_leave_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    shutil.copytree(FIXTURES / "authors_eval_s0" / "nyu", tmp_path / "nyu")
    shutil.copy(tmp_path / "nyu" / "bathroom" / "rgb_00045.png", tmp_path / "outside.png")
    (tmp_path / "nyu" / "nyu_test.txt").write_text("../outside.png bathroom/sync_depth_00045.png 518.8579\n")
    arguments = ["evaluate", "--model", "no-model", "--protocol", "authors", "--dataset", "nyu", "--data_root", "nyu"]
    _usage_error_in_process(arguments, tmp_path, "../outside.png leads to", monkeypatch, capsys)


def test_a_synthetic_data_dir_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine" / "train").mkdir(parents=True)
    (tmp_path / "mine" / "train.txt").write_text("my list\n")
    (tmp_path / "mine" / "train" / "holiday.jpg").write_bytes(b"my photo")
    arguments = ["train", *SHORT_RUN, "--output_dir", "run", "--synthetic_data_dir", "mine"]
    _refused_without_a_trace(arguments, tmp_path, 2, "synthetic_data_dir mine holds files the synthetic data set does")
    # A folder a synthetic run wrote is used again.
    shutil.rmtree(tmp_path / "mine")
    write_synthetic_nyu_layout(tmp_path / "mine", 2, 1, seed=3, height=8, width=8)
    assert foreign_synthetic_entries(tmp_path / "mine") == []
    (tmp_path / "mine" / "val" / "scene_000" / "notes.txt").write_text("mine")
    assert foreign_synthetic_entries(tmp_path / "mine") == ["val/scene_000/notes.txt"]
