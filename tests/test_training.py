"""Training: config parsing, optimiser and schedule, checkpoints and exact resume, export, Hub push, the CLI."""

import json
import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from helpers import (
    REPO,
    make_tiny_config,
    markdown_structure,
    run_python,
    run_two_processes,
    tiny_model_config,
    tiny_training,
)
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import load_file

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor
from wedepth_hf.data.transforms import OPERATIONS
from wedepth_hf.training import (
    CheckpointError,
    OutputDirError,
    TrainingConfig,
    TrainingInterrupted,
    load_training_config,
    main,
    parse_training_args,
    train,
)
from wedepth_hf.training.config import bundled_config_names
from wedepth_hf.training.data import build_datasets
from wedepth_hf.training.optimization import (
    build_model,
    build_optimizer,
    build_scheduler,
    lr_factor,
    maybe_sync_batchnorm,
)
from wedepth_hf.training.run_folder import (
    STATE_FILE,
    TrainingState,
    find_latest_checkpoint,
    read_checkpoint_state,
    resolve_checkpoint,
)


CONFIGS = REPO / "wedepth_hf" / "configs"
METRIC_KEYS = {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1", "delta2", "delta3"}


# ---- configuration -----------------------------------------------------------------------------------------------


def test_yaml_and_typed_command_line_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("dataset: synthetic\npreset: small\npretrained_backbones: false\nlearning_rate: 1.0e-4\n")
    config = parse_training_args(
        [
            "--config",
            str(path),
            "--output_dir",
            "out",
            "--max_train_steps",
            "7",
            "--learning_rate",
            "3e-4",
            "--push_to_hub",
            "--hub_model_id",
            "org/name",
            "--model_config",
            "{max_depth: 80, vfm_stage_layers: [2, 5, 8, 11]}",
            "--eval_steps",
            "null",
            "--augment",
            "false",
        ]
    )
    assert config.output_dir == "out" and config.max_train_steps == 7 and config.learning_rate == 3e-4
    assert config.push_to_hub is True and config.augment is False and config.eval_steps is None
    assert config.model_config == {"max_depth": 80, "vfm_stage_layers": [2, 5, 8, 11]}
    assert config.preset == "small"  # from the YAML file
    for bad in (["--max_train_steps", "seven"], ["--no_such_key", "1"], ["--dataset", "imagenet"], ["--push_to_hub"]):
        with pytest.raises(SystemExit):
            parse_training_args(["--config", str(path), *bad])
    path.write_text("learning_rat: 1.0\n")
    with pytest.raises(ValueError, match="Did you mean `learning_rate`"):
        load_training_config(path)


SECRET = "hf_SECRET123secret"


@pytest.mark.parametrize(
    "argv",
    [
        ["--hub_to", SECRET],
        ["--hub_tok=" + SECRET],
        ["--hub_toke", SECRET],
        ["--hub_tokn", SECRET],
        ["--hub_token", SECRET, "--conf", "x.yaml"],
        ["--output_dir", "x", SECRET],
    ],
)
def test_abbreviated_or_unknown_options_are_refused_without_echoing_values(
    argv: list[str], capsys: pytest.CaptureFixture
) -> None:
    """argparse's abbreviations (`--hub_to` for `--hub_token`) are off, and the error names options, not values."""
    with pytest.raises(SystemExit) as exit_info:
        parse_training_args(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.err + captured.out
    assert "unrecognized arguments" in captured.err


def test_the_token_is_kept_out_of_the_public_config_and_repr() -> None:
    for argv in (["--hub_token", SECRET], ["--hub_token=" + SECRET]):
        config = parse_training_args(argv)
        assert config.hub_token == SECRET
        assert SECRET not in repr(config) and "hub_token" not in config.to_public_dict()


def test_shipped_configs_hold_the_papers_recipe() -> None:
    for name in ("nyu", "kitti"):
        config = load_training_config(CONFIGS / f"{name}.yaml")
        assert (config.preset, config.pretrained_backbones, config.dataset) == ("large", True, name)
        assert (config.learning_rate, config.weight_decay, config.warmup_epochs, config.min_lr_ratio) == (
            2e-4,
            0.01,
            3,
            0.1,
        )
        assert (config.num_train_epochs, config.per_device_train_batch_size, config.mixed_precision) == (20, 8, "fp16")
        assert (config.max_grad_norm, config.seed, config.metric_for_best_model) == (1.0, 42, "abs_rel")
        assert (config.flip, config.rotation, config.scale, config.translation) == (0.5, 5.0, 0.1, 0.1)
        assert config.brightness == config.contrast == config.saturation == config.gamma == config.hue == 0.1
        assert config.val_fraction > 0 or config.val_split_file is not None
        # The authors' train.py: warm-up from 0.1x, weight decay on everything trainable, SyncBatchNorm, their
        # augmentation policy (all nine operations weight 1, 1-4 of them with p 0.3/0.4/0.2/0.1).
        assert (config.warmup_start_ratio, config.min_lr_ratio) == (0.1, 0.1)
        assert config.decay_all_trainable_parameters and config.sync_batchnorm
        assert config.augment_op_weights == {name: 1.0 for name in OPERATIONS}
        assert config.augment_num_ops_probs == [0.3, 0.4, 0.2, 0.1]
        # The authors' training mask has no upper bound; validation is scored as their test sets are (the dataset
        # class's range and crop), in float32, with fp16, 4 workers and drop_last as their train.py.
        assert "max_depth" not in config.model_config
        assert config.eval_protocol == "authors" and config.eval_max_depth is None and config.eval_crop is None
        assert (config.dataloader_num_workers, config.dataloader_drop_last) == (4, True)
    kitti = load_training_config(CONFIGS / "kitti.yaml")
    assert kitti.model_config["vfm_stage_layers"] == [5, 11, 17, 23] and kitti.kb_crop is True
    synthetic = load_training_config(CONFIGS / "synthetic.yaml")
    assert synthetic.dataset == "synthetic" and not synthetic.pretrained_backbones
    model = build_model(synthetic)
    assert model.config.vfm_config.num_hidden_layers <= 6 and model.config.vfm_config.hidden_size <= 192


def test_bundled_configs_load_by_name_and_an_existing_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert bundled_config_names() == ["kitti", "nyu", "synthetic"]
    for name in bundled_config_names():
        assert load_training_config(name) == load_training_config(CONFIGS / f"{name}.yaml")
    assert parse_training_args(["--config", "kitti", "--output_dir", "x"]).kb_crop is True
    # A file at the given path wins over the bundled config of that name.
    monkeypatch.chdir(tmp_path)
    Path("nyu").write_text("dataset: synthetic\npreset: small\npretrained_backbones: false\n")
    assert load_training_config("nyu").dataset == "synthetic"
    # Neither a file nor a bundled name: an error that lists the bundled names.
    with pytest.raises(FileNotFoundError, match=r"neither a file nor .* bundled config \(kitti, nyu, synthetic\)"):
        load_training_config("imagenet")
    with pytest.raises(SystemExit) as exit_info:
        parse_training_args(["--config", "imagenet"])
    assert exit_info.value.code == 2 and "kitti, nyu, synthetic" in capsys.readouterr().err


def test_validation_on_a_test_list_or_the_train_list_is_refused() -> None:
    with pytest.raises(ValueError, match="looks like a test list"):
        TrainingConfig(dataset="nyu", data_root="d", train_split_file="train.txt", val_split_file="nyu_test_files.txt")
    with pytest.raises(ValueError, match="is the training list"):
        TrainingConfig(dataset="nyu", data_root="d", train_split_file="train.txt", val_split_file="train.txt")


def test_augmentation_settings_are_completed_and_checked_when_the_config_is_made() -> None:
    config = TrainingConfig(augment_op_weights={"hue": 0})
    assert config.augment_op_weights == {**{name: 1.0 for name in OPERATIONS}, "hue": 0.0}
    for overrides, message in (
        ({"augment_op_weights": {"sharpness": 1}}, "augment_op_weights.*not implemented"),
        ({"augment_num_ops_probs": [0.5, 0.6]}, "augment_num_ops_probs.*sum to 1"),
        ({"rotation": 200.0}, "rotation"),
        ({"warmup_start_ratio": 1.5}, "warmup_start_ratio"),
    ):
        with pytest.raises(ValueError, match=message):
            TrainingConfig(**overrides)


# ---- optimiser and schedule ----------------------------------------------------------------------------------------


class ToyNet(torch.nn.Module):
    """Generic parameter kinds under generic names (not WEDepth's): the decay rules must not depend on model names."""

    def __init__(self) -> None:
        super().__init__()
        self.prompt_tokens = torch.nn.Parameter(torch.ones(4, 8))
        self.prompt_block = torch.nn.Linear(8, 8)  # a 2-D weight in a "prompt" module is still decayed
        self.level_embed = torch.nn.Parameter(torch.ones(3, 8))
        self.relative_position_bias_table = torch.nn.Parameter(torch.ones(9, 2))
        self.gamma = torch.nn.Parameter(torch.ones(1, 8))
        self.conv = torch.nn.Conv2d(8, 8, 3)
        self.norm = torch.nn.BatchNorm2d(8)
        self.frozen = torch.nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


EXEMPT_WHEN_ASKED = {
    "prompt_tokens",
    "prompt_block.bias",
    "level_embed",
    "relative_position_bias_table",
    "gamma",
    "conv.bias",
    "norm.weight",
    "norm.bias",
}


def _groups_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[tuple[float, set[str]]]:
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    return [(group["weight_decay"], {names[id(p)] for p in group["params"]}) for group in optimizer.param_groups]


def test_authors_weight_decay_covers_every_trainable_parameter_and_no_frozen_one() -> None:
    model = ToyNet()
    optimizer = build_optimizer(model, TrainingConfig(weight_decay=0.05, learning_rate=0.1))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert _groups_by_name(model, optimizer) == [(0.05, trainable)]
    assert not any(name.startswith("frozen") for name in trainable)
    # AdamW with zero gradients only decays: every parameter, the 1-D norm weight included, shrinks by 1 - lr * wd.
    for parameter in model.parameters():
        parameter.grad = None if not parameter.requires_grad else torch.zeros_like(parameter)
    before = model.norm.weight.detach().clone()
    optimizer.step()
    assert torch.allclose(model.norm.weight, before * (1 - 0.1 * 0.05))
    assert torch.allclose(model.prompt_tokens, torch.full_like(model.prompt_tokens, 1 - 0.1 * 0.05))


def test_optional_exemptions_use_generic_rules() -> None:
    model = ToyNet()
    config = TrainingConfig(weight_decay=0.05, learning_rate=0.1, decay_all_trainable_parameters=False)
    optimizer = build_optimizer(model, config)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert _groups_by_name(model, optimizer) == [(0.05, trainable - EXEMPT_WHEN_ASKED), (0.0, EXEMPT_WHEN_ASKED)]
    for parameter in model.parameters():
        parameter.grad = None if not parameter.requires_grad else torch.zeros_like(parameter)
    before, decayed = model.norm.weight.detach().clone(), model.prompt_block.weight.detach().clone()
    optimizer.step()
    assert torch.equal(model.norm.weight, before)
    assert torch.allclose(model.prompt_block.weight, decayed * (1 - 0.1 * 0.05))


def test_authors_warmup_from_a_tenth_then_cosine_to_a_tenth() -> None:
    authors = {"warmup_start_ratio": 0.1}
    # WarmupCosineSchedule(warmup_steps=4, t_total=20): 0.1 + 0.9 * step / 4, then 0.1 + 0.45 * (1 + cos(pi * p)).
    assert lr_factor(0, 4, 20, 0.1, **authors) == pytest.approx(0.1)
    assert lr_factor(1, 4, 20, 0.1, **authors) == pytest.approx(0.325)
    assert lr_factor(3, 4, 20, 0.1, **authors) == pytest.approx(0.775)
    assert lr_factor(4, 4, 20, 0.1, **authors) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, 0.1, **authors) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(16, 4, 20, 0.1, **authors) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.75)))
    assert lr_factor(20, 4, 20, 0.1, **authors) == pytest.approx(0.1)
    assert lr_factor(25, 4, 20, 0.1, **authors) == pytest.approx(0.1)
    # Other start and end ratios: linear from the start, cosine to the end.
    assert lr_factor(0, 4, 20, 0.0, warmup_start_ratio=0.0) == 0.0
    assert lr_factor(2, 4, 20, 0.0, warmup_start_ratio=0.0) == pytest.approx(0.5)
    assert lr_factor(20, 4, 20, 0.0, warmup_start_ratio=0.0) == pytest.approx(0.0)
    assert lr_factor(0, 0, 20, 0.1, warmup_start_ratio=0.5) == pytest.approx(1.0)


def test_scheduler_follows_the_schedule_in_optimizer_steps_on_any_number_of_processes() -> None:
    # accelerate steps a prepared scheduler once per process: the schedule stays the same in optimizer steps.
    lrs = {}
    for processes in (1, 3):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
        scheduler = build_scheduler(optimizer, 2, 6, 0.1, processes, warmup_start_ratio=0.1)
        lrs[processes] = [scheduler.get_last_lr()[0]]  # the first step's learning rate
        for _ in range(6):
            optimizer.step()
            for _ in range(processes):
                scheduler.step()
            lrs[processes].append(scheduler.get_last_lr()[0])
    assert lrs[1] == pytest.approx(lrs[3])
    assert lrs[1][:3] == pytest.approx([0.2, 1.1, 2.0]) and lrs[1][-1] == pytest.approx(0.2)


# ---- SyncBatchNorm -------------------------------------------------------------------------------------------------


def test_sync_batchnorm_only_for_several_processes_on_devices_that_support_it(caplog: pytest.LogCaptureFixture) -> None:
    def kinds(model: torch.nn.Module) -> set[type]:
        return {type(module) for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)}

    cuda = torch.device("cuda")
    assert kinds(maybe_sync_batchnorm(ToyNet(), enabled=True, num_processes=2, device=cuda)) == {torch.nn.SyncBatchNorm}
    assert kinds(maybe_sync_batchnorm(ToyNet(), enabled=True, num_processes=1, device=cuda)) == {torch.nn.BatchNorm2d}
    assert kinds(maybe_sync_batchnorm(ToyNet(), enabled=False, num_processes=2, device=cuda)) == {torch.nn.BatchNorm2d}
    with caplog.at_level(logging.WARNING):
        kept = maybe_sync_batchnorm(ToyNet(), enabled=True, num_processes=2, device=torch.device("cpu"))
        maybe_sync_batchnorm(ToyNet(), enabled=True, num_processes=2, device=torch.device("cpu"), is_main_process=False)
    assert kinds(kept) == {torch.nn.BatchNorm2d}
    assert caplog.text.count("SyncBatchNorm does not run on cpu") == 1


def test_a_model_trained_with_sync_batchnorm_exports_plain_batchnorm(tmp_path: Path) -> None:
    model = WEDepthForDepthEstimation(make_tiny_config())
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(module, torch.nn.SyncBatchNorm) for module in synced.modules())
    synced.save_pretrained(tmp_path / "model")
    loaded = WEDepthForDepthEstimation.from_pretrained(tmp_path / "model")
    norms = [module for module in loaded.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(module) is torch.nn.BatchNorm2d for module in norms)
    expected = synced.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


# ---- checkpoints ---------------------------------------------------------------------------------------------------


def test_latest_ignores_incomplete_checkpoints(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    for name, complete in (("step_2", True), ("step_10", True), ("step_12", False), (".tmp-step_14", True)):
        (checkpoints / name).mkdir(parents=True)
        if complete:
            (checkpoints / name / STATE_FILE).write_text("{}")
    assert find_latest_checkpoint(checkpoints) == checkpoints / "step_10"  # numeric order, not text order
    assert resolve_checkpoint("latest", tmp_path) == checkpoints / "step_10"
    assert resolve_checkpoint("latest", tmp_path / "elsewhere") is None
    with pytest.raises(ValueError, match="not a complete WEDepth training checkpoint"):
        resolve_checkpoint(str(checkpoints / "step_12"), tmp_path)


# `training_state.json` of step 2 of `tiny_training(..., max_train_steps=2)`, as written by the code before
# `TrainingState` (the `json.dumps(state, indent=2)` of its string-keyed state dict).
EARLIER_STATE_FILE = """{
  "global_step": 2,
  "epoch": 0,
  "batches_in_epoch": 2,
  "best_metric": 0.429584867125801,
  "best_step": 2,
  "best_metrics": {
    "abs_rel": 0.429584867125801,
    "sq_rel": 0.8598504653982091,
    "rmse": 1.8369632523819022,
    "rmse_log": 0.6804012937754687,
    "log10": 0.25071938055929033,
    "silog": 48.63620277306654,
    "delta1": 0.1884765625,
    "delta2": 0.419921875,
    "delta3": 0.6227213541666666
  },
  "train_shortest_edge": 32
}"""


def test_a_state_file_of_the_earlier_format_loads_and_is_written_the_same(tmp_path: Path) -> None:
    state = TrainingState.from_json(EARLIER_STATE_FILE)
    assert (state.global_step, state.epoch, state.batches_in_epoch, state.best_step) == (2, 0, 2, 2)
    assert state.best_metric == state.best_metrics["abs_rel"] == 0.429584867125801
    assert state.train_shortest_edge == 32 and state.history == [] and state.eval_history == []
    assert state.to_json() == EARLIER_STATE_FILE  # the same keys, order and layout
    checkpoint = tmp_path / "checkpoints" / "step_2"
    checkpoint.mkdir(parents=True)
    (checkpoint / STATE_FILE).write_text(EARLIER_STATE_FILE)
    assert read_checkpoint_state(tiny_training(tmp_path), 1, checkpoint) == state


def test_a_checkpoint_with_a_state_file_of_the_earlier_format_resumes(tmp_path: Path) -> None:
    output_dir = tmp_path / "run"
    train(tiny_training(output_dir, max_train_steps=2))
    (output_dir / "checkpoints" / "step_2" / STATE_FILE).write_text(EARLIER_STATE_FILE)
    resumed = train(tiny_training(output_dir, max_train_steps=3, resume_from_checkpoint="latest"))
    assert [entry["step"] for entry in resumed.history] == [3]
    assert resumed.best_step in (2, 3) and resumed.best_metric <= 0.429584867125801
    written = (output_dir / "checkpoints" / "step_3" / STATE_FILE).read_text()
    assert list(json.loads(written)) == list(json.loads(EARLIER_STATE_FILE))
    assert json.loads(written)["global_step"] == 3


# ---- training runs -------------------------------------------------------------------------------------------------


def _steps(history: list[dict]) -> dict[int, dict]:
    return {entry["step"]: entry for entry in history}


def test_resume_continues_at_the_same_step_lr_data_and_weights(tmp_path: Path) -> None:
    full = train(tiny_training(tmp_path / "full"))
    assert [entry["step"] for entry in full.history] == [1, 2, 3, 4]
    assert [entry["step"] for entry in full.eval_history] == [2, 4]
    state = json.loads((tmp_path / "full" / "checkpoints" / "step_2" / STATE_FILE).read_text())
    assert state["global_step"] == 2 and state["best_step"] == 2

    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step_2", resumed_dir / "checkpoints" / "step_2")
    resumed = train(tiny_training(resumed_dir, resume_from_checkpoint="latest"))
    assert [entry["step"] for entry in resumed.history] == [3, 4]
    for step in (3, 4):
        assert resumed.history[step - 3]["lr"] == _steps(full.history)[step]["lr"]
        assert resumed.history[step - 3]["loss"] == pytest.approx(
            _steps(full.history)[step]["loss"], rel=1e-6, abs=1e-7
        )
    weights_full = load_file(tmp_path / "full" / "checkpoints" / "step_4" / "model.safetensors")
    weights_resumed = load_file(resumed_dir / "checkpoints" / "step_4" / "model.safetensors")
    for name, tensor in weights_full.items():
        torch.testing.assert_close(weights_resumed[name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    # The lr decays on the cosine after the one warm-up step.
    assert full.history[0]["lr"] == pytest.approx(1e-3)
    assert full.history[-1]["lr"] == pytest.approx(1e-4)


def test_training_learns_keeps_the_vfm_and_exports_a_pipeline_ready_folder(tmp_path: Path) -> None:
    from PIL import Image
    from transformers import pipeline

    config = tiny_training(
        tmp_path / "run",
        max_train_steps=24,
        eval_steps=12,
        checkpointing_steps=None,
        augment=False,
        synthetic_num_train=2,
        synthetic_num_val=2,
        learning_rate=3e-3,
    )
    torch.manual_seed(config.seed)
    from accelerate.utils import set_seed

    set_seed(config.seed)
    initial_vfm = {name: tensor.clone() for name, tensor in build_model(config).vfm.state_dict().items()}
    result = train(config)
    losses = [entry["loss"] for entry in result.history]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    assert set(result.eval_history[0]) == METRIC_KEYS | {"step"}
    assert result.best_step in (12, 24)

    model_dir = tmp_path / "run" / "model"
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "configuration_wedepth.py",
        "modeling_wedepth.py",
        "image_processing_wedepth.py",
    } <= set(os.listdir(model_dir))
    trained = WEDepthForDepthEstimation.from_pretrained(model_dir)
    for name, tensor in trained.vfm.state_dict().items():
        assert torch.equal(tensor, initial_vfm[name]), name
    card = (model_dir / "README.md").read_text()
    assert "model-index" in card and "abs_rel" in card and "pipeline_tag: depth-estimation" in card
    assert f"step {result.best_step} of 24" in card

    image = Image.new("RGB", (48, 32), (120, 80, 40))
    output = pipeline("depth-estimation", model=str(model_dir), device="cpu")(image)
    assert output["predicted_depth"].shape == (32, 48)
    assert torch.isfinite(output["predicted_depth"]).all()


def test_rerun_into_a_used_output_dir_needs_resume_or_overwrite(tmp_path: Path) -> None:
    processor_file = tmp_path / "run" / "model" / "preprocessor_config.json"
    train(tiny_training(tmp_path / "run", max_train_steps=2, eval_steps=None))
    # The exported processor resizes to the training resolution (32x48 images: shorter side 32).
    assert json.loads(processor_file.read_text())["size"] == {"shortest_edge": 32}
    # ... and records the camera of the 32x48 synthetic scenes: NYU's scaled to that size, in both configs.
    camera = json.loads(processor_file.read_text())["training_camera"]
    assert camera["focal_length"] == pytest.approx(518.8579 * 48 / 640) and camera["image_size"] == [32, 48]
    assert json.loads((processor_file.parent / "config.json").read_text())["training_camera"] == camera
    with pytest.raises(ValueError, match="resume_from_checkpoint latest"):
        train(tiny_training(tmp_path / "run", max_train_steps=2))
    # Resuming a finished run trains nothing more and keeps the step, and the resolution (no batch seen this time).
    processor_file.unlink()
    assert train(tiny_training(tmp_path / "run", max_train_steps=2, resume_from_checkpoint="latest")).history == []
    processor = WEDepthImageProcessor.from_pretrained(processor_file.parent)
    assert processor.do_resize is True and dict(processor.size) == {"shortest_edge": 32}


def _push_args(output_dir: Path) -> list[str]:
    return [
        "--config",
        str(CONFIGS / "synthetic.yaml"),
        "--output_dir",
        str(output_dir),
        "--model_config",
        json.dumps(tiny_model_config()),
        "--max_train_steps",
        "2",
        "--eval_steps",
        "2",
        "--checkpointing_steps",
        "1",
        "--synthetic_num_train",
        "2",
        "--synthetic_num_val",
        "1",
        "--synthetic_height",
        "32",
        "--synthetic_width",
        "48",
        "--per_device_train_batch_size",
        "2",
        "--log_with",
        "none",
        "--push_to_hub",
        "--hub_model_id",
        "org/wedepth-test",
    ]


def test_push_to_hub_sends_the_model_folder_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: captured.setdefault("repo", repo_id))

    def create_commit(self: HfApi, repo_id: str, operations: list, **kwargs: object) -> str:
        sent = tmp_path / "sent"
        for operation in operations:
            target = sent / operation.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(operation.path_or_fileobj, target)
        captured["files"] = sorted(operation.path_in_repo for operation in operations)
        return "https://huggingface.co/org/wedepth-test/commit/0"

    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    assert main(_push_args(tmp_path / "run")) == 0
    assert captured["repo"] == "org/wedepth-test"
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "configuration_wedepth.py",
        "modeling_wedepth.py",
        "image_processing_wedepth.py",
    } <= set(captured["files"])
    # No training checkpoint or data went (a remote-code file such as checkpointing_wedepth.py is part of the model).
    assert not any(name.startswith(("checkpoints/", "step_", "data/")) for name in captured["files"])
    assert (tmp_path / "run" / "checkpoints" / "step_2").is_dir()  # checkpoints exist locally, were not sent
    assert "model-index" in (tmp_path / "sent" / "README.md").read_text()

    # What was sent loads with trust_remote_code in a process where wedepth_hf cannot be imported.
    result = run_python(
        f"""
        import sys
        sys.modules["wedepth_hf"] = None
        from PIL import Image
        from transformers import pipeline
        estimator = pipeline("depth-estimation", model={str(tmp_path / "sent")!r}, trust_remote_code=True, device="cpu")
        assert type(estimator.model).__module__.startswith("transformers_modules")
        out = estimator(Image.new("RGB", (48, 32), (10, 200, 30)))
        print("REMOTE OK", tuple(out["predicted_depth"].shape))
    """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "REMOTE OK (32, 48)" in result.stdout


def test_failed_push_keeps_the_folder_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: HfApi, *args: object, **kwargs: object) -> None:
        raise ConnectionError("Hub unreachable")

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "create_commit", refuse)
    with caplog.at_level(logging.ERROR):
        assert main(_push_args(tmp_path / "run")) == 1
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert f"hf upload org/wedepth-test {tmp_path / 'run' / 'model'} ." in caplog.text
    assert "Hub unreachable" in caplog.text


@pytest.mark.slow
def test_train_script_end_to_end(tmp_path: Path) -> None:
    """`python examples/train.py --config ... --key value` as a user runs it; the folder loads in a pipeline."""
    output_dir = tmp_path / "cli-run"
    arguments = [
        arg for arg in _push_args(output_dir) if arg not in ("--push_to_hub", "--hub_model_id", "org/wedepth-test")
    ]
    completed = subprocess.run(
        [sys.executable, str(REPO / "examples" / "train.py"), *arguments],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Training 2 samples, 2 steps" in completed.stderr and "step 1/2" in completed.stderr
    card = (output_dir / "model" / "README.md").read_text()
    assert "wedepth train --config training_config.yaml" in card and "max_train_steps: 2" in card
    assert (output_dir / "data" / "train.txt").is_file()  # synthetic data went through the NYU list layout
    result = run_python(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import wedepth_hf
        from PIL import Image
        from transformers import pipeline
        depth_estimator = pipeline("depth-estimation", model={str(output_dir / "model")!r}, device="cpu")
        out = depth_estimator(Image.new("RGB", (50, 30)))
        print("SHAPE", tuple(out["predicted_depth"].shape))
    """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "SHAPE (30, 50)" in result.stdout
    assert math.isfinite(json.loads((output_dir / "checkpoints" / "step_2" / STATE_FILE).read_text())["best_metric"])


def test_build_datasets_returns_the_augmentation_the_training_set_applies(tmp_path: Path) -> None:
    data = build_datasets(tiny_training(tmp_path / "run"))
    assert data.augmentation is not None and data.train.transform is data.augmentation
    assert data.validation.transform is None and data.dropped_validation_samples == []
    assert build_datasets(tiny_training(tmp_path / "plain", augment=False)).augmentation is None


def test_hf_training_data_follows_on_bad_sample(tmp_path: Path) -> None:
    """`on_bad_sample` reaches a `datasets` dataset too: an all-NaN depth map raises, or is skipped and counted."""
    import datasets
    import numpy as np
    from PIL import Image

    from wedepth_hf.training.data import build_datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)) for _ in range(3)]
    depths = [rng.uniform(0.5, 5.0, (24, 32)).astype(np.float32) for _ in range(3)]
    depths[1][:] = np.nan
    features = datasets.Features({"image": datasets.Image(), "depth_map": datasets.Image()})
    dataset = datasets.Dataset.from_dict(
        {"image": images, "depth_map": [Image.fromarray(depth, mode="F") for depth in depths]}, features=features
    )
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(tmp_path / "hf"))
    common = {"dataset": "hf", "hf_dataset_name": str(tmp_path / "hf"), "hf_val_split": None, "augment": False}

    strict = build_datasets(tiny_training(tmp_path / "strict", **common)).train
    with pytest.raises(ValueError, match=r"hf\[1\]: the depth map contains NaN"):
        strict[1]
    lenient = build_datasets(tiny_training(tmp_path / "lenient", on_bad_sample="skip", **common)).train
    assert torch.equal(lenient[1]["depth"], torch.from_numpy(depths[2]))
    assert lenient.skipped == 1


@pytest.mark.slow
def test_two_processes_train_one_model(tmp_path: Path) -> None:
    """A distributed run (2 CPU processes over gloo, as `torchrun` / `accelerate launch` start them) shards the data,
    and only the main process writes checkpoints and the exported folder."""
    output_dir = tmp_path / "ddp-run"
    arguments = [
        arg for arg in _push_args(output_dir) if arg not in ("--push_to_hub", "--hub_model_id", "org/wedepth-test")
    ]
    arguments += ["--synthetic_num_train", "4"]
    completed = run_two_processes("train.py", arguments, cwd=tmp_path, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Training 4 samples, 2 steps (2 epochs of 1 steps)" in completed.stderr
    assert "2 process(es)" in completed.stderr
    assert (output_dir / "checkpoints" / "step_2" / STATE_FILE).is_file()
    # Plain BatchNorm on CPU processes (PyTorch's SyncBatchNorm refuses CPU tensors), said once.
    assert completed.stderr.count("SyncBatchNorm does not run on cpu") == 1
    # The exported folder loads, and holds the weights of the last (best) step.
    loaded = WEDepthForDepthEstimation.from_pretrained(output_dir / "model")
    checkpoint = load_file(output_dir / "checkpoints" / "step_2" / "model.safetensors")
    assert loaded.state_dict().keys() == checkpoint.keys()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, checkpoint[name]), name


# ---- secrets, locks, interrupts, damaged checkpoints, bad validation samples -----------------------------------------


def _cli_args(output_dir: Path, *extra: str) -> list[str]:
    """The arguments of a tiny command-line run (2 steps, checkpoints each step), without a Hub push."""
    skip = {"--push_to_hub", "--hub_model_id", "org/wedepth-test"}
    return [arg for arg in _push_args(output_dir) if arg not in skip] + list(extra)


def _files_holding(root: Path, secrets: list[str]) -> list[str]:
    """Every file under `root` (binary files included) that holds one of `secrets`."""
    return [
        f"{path} holds {secret}"
        for path in root.rglob("*")
        if path.is_file()
        for secret in secrets
        if secret.encode() in path.read_bytes()
    ]


@pytest.mark.parametrize("token_source", ["config file", "command line"])
def test_no_token_reaches_disk_logs_or_the_hub(
    token_source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    """A token given in a config file, on the command line or in HF_TOKEN is used for the upload and written nowhere:
    the card's command and configuration are rebuilt from the public configuration, which reproduces the run."""
    environment_secret = "hf_ENVIRONMENT456secret"
    monkeypatch.setenv("HF_TOKEN", environment_secret)
    used: dict = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: used.setdefault("token", self.token))

    def create_commit(self: HfApi, repo_id: str, operations: list, **kwargs: object) -> str:
        sent = tmp_path / "sent"
        for operation in operations:
            (sent / operation.path_in_repo).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(operation.path_or_fileobj, sent / operation.path_in_repo)
        return "https://huggingface.co/org/wedepth-test/commit/0"

    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    output_dir = tmp_path / "run"
    arguments = _push_args(output_dir) + ["--model_name", "tiny ``` run\n# not a heading"]
    if token_source == "config file":
        config_file = tmp_path / "with-token.yaml"
        config_file.write_text((CONFIGS / "synthetic.yaml").read_text() + f"\nhub_token: {SECRET}\n")
        arguments[arguments.index(str(CONFIGS / "synthetic.yaml"))] = str(config_file)
    else:
        arguments.append(f"--hub_token={SECRET}")
    with caplog.at_level(logging.DEBUG):
        assert main(arguments) == 0
    assert used["token"] == SECRET  # the token given is the one used
    captured = capfd.readouterr()
    secrets = [SECRET, environment_secret]
    assert not [secret for secret in secrets if secret in caplog.text + captured.out + captured.err]
    assert not _files_holding(output_dir, secrets) and not _files_holding(tmp_path / "sent", secrets)

    # The card: the command that reproduces the run from the saved configuration, and that configuration.
    saved_config = (output_dir / "training_config.yaml").read_text()
    headings, blocks = markdown_structure(ModelCard.load(output_dir / "model" / "README.md").text)
    assert headings == ["# tiny ``` run # not a heading", "## Use", "## Training", "## Results", "## Citation"]
    bash = next(content for info, content in blocks if info == "bash")
    assert bash.splitlines()[-1] == "wedepth train --config training_config.yaml"
    card_config = next(content for info, content in blocks if info == "yaml")
    assert yaml.safe_load(card_config) == yaml.safe_load(saved_config)
    reproduced = load_training_config(output_dir / "training_config.yaml")
    assert reproduced.hub_token is None and reproduced.max_train_steps == 2
    assert reproduced.to_public_dict() == parse_training_args(arguments).to_public_dict()


def _hold_lock(output_dir: Path) -> subprocess.Popen:
    """Another process holding the output folder's lock, as a running training does; it says when it holds it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import fcntl, os, socket, sys
        handle = open({str(output_dir / ".wedepth-training.lock")!r}, "a+")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.seek(0); handle.truncate(); handle.write(f"training process {{os.getpid()}} on {{socket.gethostname()}}")
        handle.flush()
        print("LOCKED", flush=True)
        sys.stdin.read()
    """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "LOCKED"
    return holder


def test_a_locked_output_dir_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    output_dir = tmp_path / "run"
    holder = _hold_lock(output_dir)
    try:
        with pytest.raises(OutputDirError, match=rf"Another training is using .*training process {holder.pid} on"):
            train(tiny_training(output_dir))
        assert sorted(os.listdir(output_dir)) == [".wedepth-training.lock"]  # nothing written, nothing deleted
    finally:
        holder.kill()  # kill -9: the kernel drops its lock
        holder.wait()
    assert (output_dir / ".wedepth-training.lock").is_file()
    assert train(tiny_training(output_dir, max_train_steps=1)).global_step == 1


@pytest.mark.slow
def test_a_locked_output_dir_stops_every_process_of_a_distributed_run(tmp_path: Path) -> None:
    """The main process holds the lock; when it cannot, the other ranks stop too instead of waiting for it."""
    output_dir = tmp_path / "ddp-run"
    holder = _hold_lock(output_dir)
    try:
        completed = run_two_processes("train.py", _cli_args(output_dir), cwd=tmp_path, timeout=180)
    finally:
        holder.kill()
        holder.wait()
    assert completed.returncode != 0
    assert f"Another training is using {output_dir}" in completed.stderr
    assert "The main process could not set up" in completed.stderr  # rank 1 stopped with it
    assert not (output_dir / "checkpoints").exists() and not (output_dir / "model").exists()


def test_an_exported_model_is_never_replaced_without_overwrite(tmp_path: Path) -> None:
    output_dir = tmp_path / "run"
    train(tiny_training(output_dir, max_train_steps=2, checkpointing_steps=None))
    weights = (output_dir / "model" / "model.safetensors").read_bytes()
    for overrides in ({}, {"resume_from_checkpoint": "latest"}):
        with pytest.raises(OutputDirError, match="already holds an exported model.*--overwrite_output_dir true"):
            train(tiny_training(output_dir, max_train_steps=2, checkpointing_steps=None, **overrides))
    assert (output_dir / "model" / "model.safetensors").read_bytes() == weights
    train(tiny_training(output_dir, max_train_steps=1, checkpointing_steps=None, overwrite_output_dir=True))
    assert json.loads((output_dir / "model" / ".wedepth-export.json").read_text()) == {"global_step": 1}


def _same_weights(model_dir: Path, checkpoint: Path) -> bool:
    """Whether the exported folder holds exactly the model weights of a training checkpoint."""
    exported = WEDepthForDepthEstimation.from_pretrained(model_dir).state_dict()
    saved = load_file(checkpoint / "model.safetensors")
    return exported.keys() == saved.keys() and all(torch.equal(exported[name], saved[name]) for name in saved)


def test_resuming_from_an_older_checkpoint_moves_the_abandoned_branch_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output_dir = tmp_path / "run"
    checkpoints = output_dir / "checkpoints"
    train(tiny_training(output_dir, eval_steps=4))  # checkpoints at 2 and 4; the export holds step 4
    with caplog.at_level(logging.WARNING):
        branch = train(
            tiny_training(
                output_dir,
                resume_from_checkpoint=str(checkpoints / "step_2"),
                max_train_steps=3,
                eval_steps=1,
                learning_rate=5e-4,
            )
        )
    # `latest` now continues this branch; the other one was moved aside, and the log says where.
    assert resolve_checkpoint("latest", output_dir) == checkpoints / "step_3"
    (abandoned,) = checkpoints.glob("abandoned-*")
    assert (abandoned / "step_4" / STATE_FILE).is_file() and (abandoned / "model" / "model.safetensors").is_file()
    assert f"abandons the later checkpoint {checkpoints / 'step_4'}: moved to {abandoned / 'step_4'}" in caplog.text
    assert "held weights of step 4 of the abandoned branch" in caplog.text
    # The export is this branch's best, as its card says.
    assert branch.best_step == 3
    assert json.loads((output_dir / "model" / ".wedepth-export.json").read_text()) == {"global_step": 3}
    assert _same_weights(output_dir / "model", checkpoints / "step_3")
    assert "step 3 of 3" in (output_dir / "model" / "README.md").read_text()


def test_a_damaged_checkpoint_names_the_file_and_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output_dir = tmp_path / "run"
    checkpoints = output_dir / "checkpoints"
    train(tiny_training(output_dir))  # checkpoints at 2 and 4
    damaged = checkpoints / "step_4" / "model.safetensors"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a copy cut short
    damaged_size = damaged.stat().st_size
    with pytest.raises(CheckpointError) as error:
        train(tiny_training(output_dir, resume_from_checkpoint="latest"))
    message = str(error.value)
    assert f"{damaged} is damaged or truncated" in message
    assert f"The previous complete checkpoint is {checkpoints / 'step_2'}" in message
    # The command line says the same, without a traceback, and exits 1.
    with caplog.at_level(logging.ERROR):
        assert main(["--config", str(output_dir / "training_config.yaml"), "--resume_from_checkpoint", "latest"]) == 1
    assert f"{damaged} is damaged or truncated" in caplog.text and "Traceback" not in caplog.text
    # The command it gives resumes from step 2, and moves the damaged checkpoint out of `latest`'s sight.
    command = shlex.split(message.split("resume from it with:\n")[1].splitlines()[0])
    assert command[:4] == ["wedepth", "train", "--config", str(output_dir / "training_config.yaml")]
    assert main(command[2:]) == 0
    (abandoned,) = checkpoints.glob("abandoned-*")
    assert (abandoned / "step_4" / "model.safetensors").stat().st_size == damaged_size
    assert resolve_checkpoint("latest", output_dir) == checkpoints / "step_4"
    load_file(checkpoints / "step_4" / "model.safetensors")  # the new step 4 is whole


@pytest.mark.parametrize("where", ["loading a batch", "inside a step"])
def test_keyboard_interrupt_saves_a_checkpoint_when_the_state_is_whole(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt between steps saves a checkpoint of that step; one inside a step (weights half updated) saves
    nothing and points to the latest complete checkpoint. Either way: where, and the command that resumes."""
    output_dir = tmp_path / "run"
    calls = {"count": 0}
    if where == "loading a batch":
        from wedepth_hf.data import NYUDepthDataset

        load = NYUDepthDataset.__getitem__

        def interrupting_load(self: NYUDepthDataset, index: int) -> dict:
            if self.transform is not None:  # training samples only
                calls["count"] += 1
                if calls["count"] == 5:  # the first sample of the third batch: steps 1 and 2 are done
                    raise KeyboardInterrupt
            return load(self, index)

        monkeypatch.setattr(NYUDepthDataset, "__getitem__", interrupting_load)
        config = tiny_training(output_dir, checkpointing_steps=None, eval_steps=None)
    else:
        forward = WEDepthForDepthEstimation.forward

        def interrupting_forward(self: WEDepthForDepthEstimation, *args: object, **kwargs: object) -> object:
            if kwargs.get("labels") is not None:
                calls["count"] += 1
                if calls["count"] == 3:
                    raise KeyboardInterrupt
            return forward(self, *args, **kwargs)

        monkeypatch.setattr(WEDepthForDepthEstimation, "forward", interrupting_forward)
        config = tiny_training(output_dir, checkpointing_steps=1, eval_steps=None)
    with pytest.raises(TrainingInterrupted) as interrupted:
        train(config)
    step_2 = output_dir / "checkpoints" / "step_2"
    assert interrupted.value.checkpoint == step_2
    assert json.loads((step_2 / STATE_FILE).read_text())["global_step"] == 2
    assert not (output_dir / "checkpoints" / "step_3").exists()
    done = "saved the checkpoint" if where == "loading a batch" else "the latest complete checkpoint is"
    assert f"after step 2; {done} {step_2}. Resume with:" in str(interrupted.value)
    assert interrupted.value.resume_command == shlex.join(
        [
            "wedepth",
            "train",
            "--config",
            str(output_dir / "training_config.yaml"),
            "--resume_from_checkpoint",
            str(step_2),
        ]
    )


@pytest.mark.slow
def test_ctrl_c_stops_at_a_step_boundary_saves_and_exits_130(tmp_path: Path) -> None:
    """A real Ctrl-C, sent to the whole process group as a terminal does (data-loader workers included): the step
    under way finishes, a checkpoint of it is saved, the exit status is 130, and the printed command resumes."""
    output_dir = tmp_path / "run"
    arguments = _cli_args(
        output_dir,
        "--max_train_steps",
        "200",
        "--eval_steps",
        "1000",
        "--checkpointing_steps",
        "null",
        "--logging_steps",
        "1",
        "--dataloader_num_workers",
        "1",
        "--synthetic_num_train",
        "4",
    )
    process = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "train.py"), *arguments],
        cwd=tmp_path,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "step 3/200" in line:
                os.killpg(process.pid, signal.SIGINT)
                break
        lines += process.stderr.readlines()
        assert process.wait(timeout=120) == 130
    finally:
        if process.poll() is None:
            process.kill()
    log = "".join(lines)
    assert "Traceback" not in log and "Ctrl-C: stopping after this step" in log
    logged_steps = [int(line.split("step ")[1].split("/")[0]) for line in lines if " step " in line and "/200" in line]
    command = shlex.split(log.split("Resume with:\n")[1].splitlines()[0].strip())
    checkpoint = Path(command[command.index("--resume_from_checkpoint") + 1])
    stopped_at = json.loads((checkpoint / STATE_FILE).read_text())["global_step"]
    assert checkpoint == output_dir / "checkpoints" / f"step_{stopped_at}"
    assert stopped_at == logged_steps[-1] >= 3  # the last step logged is the one saved: none lost or half done
    assert f"after step {stopped_at}; saved the checkpoint {checkpoint}" in log
    # The command resumes from there (here in-process, up to two more steps).
    assert main(command[2:] + ["--max_train_steps", str(stopped_at + 2), "--dataloader_num_workers", "0"]) == 0
    exported = json.loads((output_dir / "model" / ".wedepth-export.json").read_text())
    assert exported == {"global_step": stopped_at + 2}


def _write_bad_depth(root: Path, list_file: str, line: int) -> str:
    """Overwrite the depth file of `line` of a list file with bytes that are not an image; return its path."""
    depth = (root / list_file).read_text().splitlines()[line].split()[1]
    (root / depth).write_bytes(b"not a png")
    return depth


def test_bad_validation_samples_are_dropped_and_counted_never_replaced(tmp_path: Path) -> None:
    from wedepth_hf.data.synthetic import write_synthetic_nyu_layout

    root = tmp_path / "data"
    write_synthetic_nyu_layout(root, 4, 3, seed=0, height=32, width=48)
    bad_val = _write_bad_depth(root, "val.txt", 0)
    bad_train = _write_bad_depth(root, "train.txt", 1)
    common = {
        "dataset": "nyu",
        "data_root": str(root),
        "train_split_file": "train.txt",
        "val_split_file": "val.txt",
        "max_train_steps": 2,
        "eval_steps": 2,
    }

    data = build_datasets(tiny_training(tmp_path / "run", on_bad_sample="skip", **common))
    train_set, val = data.train, data.validation
    ids = [val[index]["id"] for index in range(len(val))]
    assert len(ids) == 2 and len(set(ids)) == 2  # no sample is scored twice
    assert len(val.dropped) == 1 and bad_val in val.dropped[0]
    assert data.dropped_validation_samples == val.dropped
    assert train_set[1]["id"] == train_set[2]["id"] and train_set.skipped == 1  # training still substitutes
    assert bad_train in train_set.skipped_ids[0]
    strict = build_datasets(tiny_training(tmp_path / "strict", **common)).validation
    with pytest.raises(ValueError, match="Cannot read depth file"):
        strict[0]

    result = train(tiny_training(tmp_path / "run", on_bad_sample="skip", **common))
    assert len(result.dropped_validation_samples) == 1
    assert "1 bad validation sample(s) were left out" in (tmp_path / "run" / "model" / "README.md").read_text()


def test_a_bad_training_sample_is_never_replaced_by_a_held_out_validation_sample(tmp_path: Path) -> None:
    from wedepth_hf.data.synthetic import write_synthetic_nyu_layout

    root = tmp_path / "data"
    write_synthetic_nyu_layout(root, 8, 0, seed=0, height=32, width=48)
    config = tiny_training(
        tmp_path / "run",
        dataset="nyu",
        data_root=str(root),
        train_split_file="train.txt",
        val_fraction=0.5,
        on_bad_sample="skip",
    )
    data = build_datasets(config)
    train_set, val = data.train, data.validation
    # A training sample whose next line in the list is held out for validation.
    position, index = next(
        (position, index) for position, index in enumerate(train_set.indices) if index + 1 in val.indices
    )
    _write_bad_depth(root, "train.txt", index)
    val_ids = {val[i]["id"] for i in range(len(val))}
    replacement = train_set[position]["id"]
    assert replacement not in val_ids
    assert replacement == train_set[(position + 1) % len(train_set)]["id"] and train_set.skipped == 1
