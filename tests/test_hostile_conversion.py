"""Hostile input to `wedepth convert-original` and to the folder swaps of conversion and training export (issue 17).

Each case runs the public command, in a fresh process where the exit status, the first line and the absence of a
traceback are the point, and checks with `tree_digest` that nothing of the user's was deleted or changed and that
nothing was written where the command refused.
"""

import json
import os
import random
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fixtures.golden import fixture_configs
from helpers import assert_refused, make_tiny_config, run_wedepth, tree_digest
from safetensors.torch import load_file, save_file

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor, cli, conversion
from wedepth_hf.training.export import save_model_weights
from wedepth_hf.training.run_folder import OutputDirError


FIXTURE = Path(__file__).parent / "fixtures" / "official_nyu_s0_56x90"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with what `convert-original` reads: the authors' tiny checkpoint, their config, and the tiny VFM and
    Swin configs (as the user would have them)."""
    folder = tmp_path_factory.mktemp("inputs")
    meta = json.loads((FIXTURE / "config.json").read_text())
    vfm_config, encoder_config = fixture_configs(meta)
    vfm_config.save_pretrained(folder / "vfm")
    encoder_config.save_pretrained(folder / "swin")
    (folder / "nyu.json").write_text(json.dumps(meta["config"]))
    shutil.copy(FIXTURE / "official_state_dict.safetensors", folder / "best_d1.safetensors")
    return folder


def _arguments(
    folder: Path,
    output: str,
    *extra: str,
    checkpoint: Path | None = None,
    config: Path | None = None,
    vfm_config: Path | None = None,
) -> list[str]:
    """`convert-original` reading the inputs in `folder` (relative paths when `folder` is the working directory), or
    the checkpoint, config or VFM config given instead."""
    return [
        "convert-original",
        "--checkpoint",
        str(checkpoint or folder / "best_d1.safetensors"),
        "--config",
        str(config or folder / "nyu.json"),
        "--vfm_config",
        str(vfm_config or folder / "vfm"),
        "--encoder_config",
        str(folder / "swin" / "config.json"),
        "--output",
        output,
        *extra,
    ]


def _refused_in_process(arguments: list[str], caplog: pytest.LogCaptureFixture, first_line: str) -> None:
    """`wedepth` run in this process returns 1 with an error whose message contains `first_line` (an exception
    escaping `main` fails the test: the command would have printed a traceback)."""
    caplog.clear()
    assert cli.main(arguments) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors and first_line in errors[0] and "\n" not in errors[0], errors


def _usage_error_in_process(arguments: list[str], capsys: pytest.CaptureFixture, message: str) -> None:
    """`wedepth` run in this process stops with the usage error `message` from its parser (exit status 2): an output
    folder that is refused is a mistake on the command line, found before anything is read."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(arguments)
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], errors


# ---- item 1: --output . / .. never deletes the working directory, the inputs or anything outside the folder ---------


def test_output_dot_and_dot_dot_with_overwrite_delete_nothing(tmp_path: Path, inputs: Path) -> None:
    parent = tmp_path / "parent"
    child, sibling = parent / "child", parent / "sibling"
    shutil.copytree(inputs, child)
    (child / "notes.txt").write_text("the user's notes")
    sibling.mkdir()
    (sibling / "results.csv").write_text("1,2,3")
    before = tree_digest(parent)
    relative = Path(".")
    for output in (".", ".."):
        completed = run_wedepth(_arguments(relative, output, "--overwrite"), cwd=child)
        assert_refused(completed, 2, "is or contains the working directory, which is never replaced")
        assert tree_digest(parent) == before
        assert sorted(os.listdir(parent)) == ["child", "sibling"]  # no staging folder left beside them


def test_overwrite_replaces_only_a_model_folder_and_never_holding_an_input(
    tmp_path: Path, inputs: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "wedepth-nyu"
    # The old code's fixed temporary name: a user's folder of that name is not touched (it was deleted before).
    bystander = tmp_path / ".wedepth-nyu.converting"
    bystander.mkdir()
    (bystander / "keep.txt").write_text("mine")
    kept = tree_digest(bystander)
    assert cli.main(_arguments(inputs, str(output))) == 0
    first = tree_digest(output)
    assert cli.main(_arguments(inputs, str(output), "--overwrite")) == 0
    assert tree_digest(output).keys() == first.keys()
    assert sorted(os.listdir(tmp_path)) == [".wedepth-nyu.converting", "wedepth-nyu"]
    assert tree_digest(bystander) == kept
    # A model folder with one more file of the user's is not a model folder: refused, left as it was.
    (output / "notes.txt").write_text("mine")
    before = tree_digest(tmp_path)
    _usage_error_in_process(
        _arguments(inputs, str(output), "--overwrite"), capsys, "holds files other than a WEDepth model's (notes.txt)"
    )
    assert tree_digest(tmp_path) == before
    # A model folder that holds the checkpoint being converted is never replaced.
    (output / "notes.txt").unlink()
    shutil.copy(inputs / "best_d1.safetensors", output / "model-00001-of-00001.safetensors")
    before = tree_digest(tmp_path)
    checkpoint = output / "model-00001-of-00001.safetensors"
    arguments = _arguments(inputs, str(output), "--overwrite", checkpoint=checkpoint)
    _usage_error_in_process(arguments, capsys, "is or contains the input")
    assert tree_digest(tmp_path) == before


def test_a_failed_swap_keeps_the_old_folder(tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "wedepth-nyu"
    assert cli.main(_arguments(inputs, str(output))) == 0
    before = tree_digest(tmp_path)
    real_rename = os.rename
    failures = [OSError(28, "No space left on device")]

    def failing_rename(source: str | Path, destination: str | Path) -> None:
        """The first rename onto the output folder fails (a full disk, say); later ones, restoring it, succeed."""
        if Path(destination) == output and failures:
            raise failures.pop()
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", failing_rename)
    monkeypatch.setattr(Path, "rename", lambda self, target: failing_rename(self, target))
    assert cli.main(_arguments(inputs, str(output), "--overwrite")) == 1
    assert tree_digest(tmp_path) == before


def test_an_interrupted_write_leaves_the_old_folder_and_no_partial_one(
    tmp_path: Path, inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "wedepth-nyu"
    assert cli.main(_arguments(inputs, str(output))) == 0
    before = tree_digest(tmp_path)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(WEDepthImageProcessor, "save_pretrained", interrupted)
        assert cli.main(_arguments(inputs, str(output), "--overwrite")) == 130  # Ctrl-C: one line, exit 130
    assert tree_digest(tmp_path) == before and os.listdir(tmp_path) == ["wedepth-nyu"]
    # A symbolic link is refused before anything is written (it was deleted through before, or left a partial copy).
    (tmp_path / "link").symlink_to(output)
    _usage_error_in_process(_arguments(inputs, str(tmp_path / "link"), "--overwrite"), capsys, "is a symbolic link")
    assert tree_digest(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["link", "wedepth-nyu"]


def _main_process() -> SimpleNamespace:
    """The parts of an `accelerate.Accelerator` that `save_model_weights` uses, for one process."""
    return SimpleNamespace(
        is_main_process=True,
        unwrap_model=lambda model: model,
        get_state_dict=lambda model: model.state_dict(),
        wait_for_everyone=lambda: None,
    )


def test_the_training_export_swaps_its_folder_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = WEDepthForDepthEstimation(make_tiny_config())
    model_dir = tmp_path / "model"
    bystander = tmp_path / ".tmp-model"  # the old code's fixed temporary name, deleted there before each export
    bystander.mkdir()
    (bystander / "keep.txt").write_text("mine")
    save_model_weights(model, _main_process(), model_dir, include_vfm=True, step=1)
    save_model_weights(model, _main_process(), model_dir, include_vfm=True, step=2)
    assert json.loads((model_dir / ".wedepth-export.json").read_text()) == {"global_step": 2}
    assert sorted(os.listdir(tmp_path)) == [".tmp-model", "model"] and os.listdir(bystander) == ["keep.txt"]
    # A file of the user's in the export, or a working directory inside it, stops the export; nothing is deleted.
    (model_dir / "notes.txt").write_text("mine")
    before = tree_digest(tmp_path)
    with pytest.raises(OutputDirError, match=r"holds files other than a WEDepth model's \(notes.txt\)"):
        save_model_weights(model, _main_process(), model_dir, include_vfm=True, step=3)
    assert tree_digest(tmp_path) == before
    (model_dir / "notes.txt").unlink()
    monkeypatch.chdir(model_dir)
    before = tree_digest(tmp_path)
    with pytest.raises(OutputDirError, match="is or contains the working directory"):
        save_model_weights(model, _main_process(), model_dir, include_vfm=True, step=3)
    assert tree_digest(tmp_path) == before


# ---- item 9: unreadable and malformed inputs give one line, exit 1, and write nothing --------------------------------


@pytest.mark.parametrize(
    "content",
    [random.Random(0).randbytes(4096), struct.pack("<Q", 2**62) + b'{"x": {}}'],
    ids=["random_bytes", "huge_header"],
)
def test_an_unreadable_safetensors_file_is_one_line(tmp_path: Path, inputs: Path, content: bytes) -> None:
    # Already one line before issue 17's fixes (read_checkpoint_file, since 10eedc6): kept so it stays so.
    (tmp_path / "bad.safetensors").write_bytes(content)
    before = tree_digest(tmp_path)
    arguments = _arguments(inputs, str(tmp_path / "out"), checkpoint=tmp_path / "bad.safetensors")
    assert_refused(run_wedepth(arguments, cwd=tmp_path), 1, "could not be read as a safetensors file")
    assert tree_digest(tmp_path) == before and os.listdir(tmp_path) == ["bad.safetensors"]


def test_a_config_of_the_wrong_type_is_one_line(tmp_path: Path, inputs: Path) -> None:
    config = json.loads((inputs / "nyu.json").read_text())
    config["model"]["prompt_num"] = "4"
    (tmp_path / "nyu.json").write_text(json.dumps(config))
    arguments = _arguments(inputs, str(tmp_path / "out"), config=tmp_path / "nyu.json")
    completed = run_wedepth(arguments, cwd=tmp_path)
    assert_refused(completed, 1, "The config's prompt_num is '4'; it must be a whole number of at least 1.")
    assert os.listdir(tmp_path) == ["nyu.json"]


_CONFIG = json.loads((FIXTURE / "config.json").read_text())["config"]
_MODEL = _CONFIG["model"]


@pytest.mark.parametrize(
    ("config", "first_line"),
    [
        ({**_MODEL, "layer_idx": 3}, "The config's layer_idx is 3; it must be a list"),
        ({**_MODEL, "layer_idx": "0123"}, "The config's layer_idx is '0123'; it must be a list"),
        ({**_MODEL, "ext_num": 4.5}, "The config's ext_num is 4.5"),
        ({**_MODEL, "inj_num": 10**6}, "The config's inj_num is 1000000, but the checkpoint's inject_pt.head_1 has"),
        ({key: value for key, value in _MODEL.items() if key != "prompt_num"}, "model section lacks ['prompt_num']"),
        ([1, 2], "The config's 'model' section is a list"),
    ],
    ids=["layers_int", "layers_string", "float_depth", "huge_depth", "missing_field", "model_list"],
)
def test_malformed_config_fields_are_one_line(
    tmp_path: Path, inputs: Path, caplog: pytest.LogCaptureFixture, config: object, first_line: str
) -> None:
    (tmp_path / "nyu.json").write_text(json.dumps({**_CONFIG, "model": config}))
    arguments = _arguments(inputs, str(tmp_path / "out"), config=tmp_path / "nyu.json")
    _refused_in_process(arguments, caplog, first_line)
    assert os.listdir(tmp_path) == ["nyu.json"]


def _edited(original: dict[str, torch.Tensor], key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    return {**original, key: tensor}


@pytest.mark.parametrize(
    ("edit", "first_line"),
    [
        (
            lambda sd: _edited(sd, "decoder.transformer.encoder.layer_1.linear1.weight", torch.zeros(())),
            "decoder.transformer.encoder.layer_1.linear1.weight has shape (); an official WEDepth checkpoint's has 2",
        ),
        (
            lambda sd: _edited(sd, "partition_enhance.prompt_embeddings_1", torch.zeros(7)),
            "partition_enhance.prompt_embeddings_1 has shape (7,)",
        ),
        (
            lambda sd: {key: value.to(torch.int32) for key, value in sd.items()},
            "weight(s) that are not floating-point",
        ),
    ],
    ids=["scalar_width", "prompt_shape", "integer_weights"],
)
def test_malformed_tensors_are_one_line(
    tmp_path: Path,
    inputs: Path,
    caplog: pytest.LogCaptureFixture,
    edit: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    first_line: str,
) -> None:
    save_file(edit(load_file(str(inputs / "best_d1.safetensors"))), tmp_path / "bad.safetensors")
    arguments = _arguments(inputs, str(tmp_path / "out"), checkpoint=tmp_path / "bad.safetensors")
    _refused_in_process(arguments, caplog, first_line)
    assert os.listdir(tmp_path) == ["bad.safetensors"]


def test_a_wide_tensor_is_refused_before_the_model_is_allocated(
    tmp_path: Path, inputs: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder width is read from a tensor's shape: 4000 describes 0.8 billion parameters (3 GB), which were
    allocated and initialised before the shapes were compared. Now only a model on the meta device is built."""
    devices: list[str] = []

    def recording(config: object) -> WEDepthForDepthEstimation:
        devices.append(torch.get_default_device().type)
        return WEDepthForDepthEstimation(config)

    monkeypatch.setattr(conversion, "WEDepthForDepthEstimation", recording)
    original = load_file(str(inputs / "best_d1.safetensors"))
    save_file(
        _edited(original, "decoder.input_adapter_1.0.weight", torch.zeros(4000, 1, 1, 1)), tmp_path / "wide.safetensors"
    )
    arguments = _arguments(inputs, str(tmp_path / "out"), checkpoint=tmp_path / "wide.safetensors")
    _refused_in_process(
        arguments, caplog, "shape mismatch(es) (is the config the one this checkpoint was trained with?)"
    )
    assert devices == ["meta"]


def test_a_pth_whose_keys_are_not_names_and_malformed_vfm_configs_are_one_line(
    tmp_path: Path, inputs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.save({1: torch.zeros(1)}, tmp_path / "bad.pth")
    arguments = _arguments(inputs, str(tmp_path / "out"), checkpoint=tmp_path / "bad.pth")
    _refused_in_process(arguments, caplog, "its keys [1] are not parameter names")
    (tmp_path / "vfm.json").write_text("[1, 2]")
    arguments = _arguments(inputs, str(tmp_path / "out"), vfm_config=tmp_path / "vfm.json")
    _refused_in_process(arguments, caplog, "is not a 'dinov2' config.json (model_type 'list')")
    (tmp_path / "vfm.json").write_text(json.dumps({"model_type": "dinov2", "hidden_size": "64"}))
    _refused_in_process(arguments, caplog, "vfm.json is not a valid 'dinov2' config (Validation error for field")
    assert sorted(os.listdir(tmp_path)) == ["bad.pth", "vfm.json"]


# ---- item 11: a checkpoint with NaN or infinite values is refused, naming the tensors --------------------------------


def test_an_all_nan_checkpoint_is_refused_naming_tensors(tmp_path: Path, inputs: Path) -> None:
    original = load_file(str(inputs / "best_d1.safetensors"))
    save_file(
        {
            key: torch.full_like(value, float("nan")) if value.is_floating_point() else value
            for key, value in original.items()
        },
        tmp_path / "diverged.safetensors",
    )
    arguments = _arguments(inputs, str(tmp_path / "out"), checkpoint=tmp_path / "diverged.safetensors")
    completed = run_wedepth(arguments, cwd=tmp_path)
    assert_refused(completed, 1, "diverged.safetensors holds NaN or infinite values in 749 of its 799 tensors")
    assert "decoder.fpn_conv_1.norm.bias" in completed.stderr and "and 744 more" in completed.stderr
    assert os.listdir(tmp_path) == ["diverged.safetensors"]


def test_one_infinite_weight_is_named_and_an_unused_one_does_not_matter(
    tmp_path: Path, inputs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    original = load_file(str(inputs / "best_d1.safetensors"))
    weight = original["decoder.out_conv_2.weight"].clone()
    weight[0, 0, 0, 0] = float("inf")
    save_file(_edited(original, "decoder.out_conv_2.weight", weight), tmp_path / "inf.safetensors")
    arguments = _arguments(inputs, str(tmp_path / "out"), checkpoint=tmp_path / "inf.safetensors")
    _refused_in_process(
        arguments, caplog, "holds NaN or infinite values in 1 of its 799 tensors (decoder.out_conv_2.weight)"
    )
    # The authors' forward never reads sf.dwconv2: NaN there changes no depth.
    unused = _edited(original, "sf.dwconv2.weight", torch.full_like(original["sf.dwconv2.weight"], float("nan")))
    save_file(unused, tmp_path / "unused.safetensors")
    assert cli.main(_arguments(inputs, str(tmp_path / "out"), checkpoint=tmp_path / "unused.safetensors")) == 0
