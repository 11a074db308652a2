"""Helpers shared by the test files: paths, fresh processes of the `wedepth` command, tiny random WEDepth configs,
generated datasets, and a Markdown reader. Test files import them from here (never from each other or conftest)."""

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation, WEDepthImageProcessor
from wedepth_hf.training import TrainingConfig


REPO = Path(__file__).resolve().parent.parent
"""The repository's root."""

# CommonMark's fences and headings, for `markdown_structure`.
_OPENING_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CLOSING_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")


def run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` (dedented) in a fresh, offline Python process with no standard input (a prompt would fail, not hang);
    `env` adds environment variables."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_two_processes(
    example: str, arguments: list[str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`examples/<example>` under `torch.distributed.run` with 2 CPU processes over gloo (as `torchrun` and
    `accelerate launch` start them), offline, one thread each; its output captured as text."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, str(REPO / "examples" / example), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_wedepth(arguments: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m wedepth_hf <arguments>` in a fresh, offline process with no standard input, as a user runs the
    `wedepth` command; `env` adds environment variables."""
    return subprocess.run(
        [sys.executable, "-m", "wedepth_hf", *arguments],
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_refused(completed: subprocess.CompletedProcess[str], status: int, first_line: str) -> None:
    """The command failed with `status`, without a traceback, and the first line of its message contains
    `first_line`: the first line of standard error that is not argparse's usage, a progress bar or a warning."""
    assert completed.returncode == status, (completed.returncode, completed.stderr[-3000:])
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    lines = [line for line in completed.stderr.splitlines() if line.strip() and "%|" not in line]
    message = [line for line in lines if not line.startswith(("usage:", " ")) and "warn" not in line.lower()]
    assert message and first_line in message[0], (first_line, lines[:8])


def tree_digest(root: Path) -> dict[str, str]:
    """{path relative to root: sha256 of its bytes} of every file under `root` (what a command must leave alone)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def make_tiny_config(**overrides: Any) -> WEDepthConfig:
    """A WEDepth config with a 4-layer DINOv2 and a 4-stage Swin, a few thousand parameters each."""
    values: dict[str, Any] = {
        "vfm_config": {
            "model_type": "dinov2",
            "hidden_size": 32,
            "num_hidden_layers": 4,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        "encoder_config": {
            "model_type": "swin",
            "embed_dim": 16,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 2, 2],
            "window_size": 4,
        },
        "prompt_num": 5,
        "prompt_dim": 32,
        "prompt_attention_heads": 4,
        "decoder_hidden_size": 32,
        "decoder_ffn_dim": 64,
        "decoder_layers": 2,
        "head_hidden_size": 16,
    }
    values.update(overrides)
    return WEDepthConfig(**values)


def save_tiny_model(folder: Path, training_camera: dict[str, Any] | None = None, seed: int = 0) -> Path:
    """A tiny random WEDepth folder (`make_tiny_config`, seeded) with a default image processor, optionally recording
    a training camera; returns the folder."""
    torch.manual_seed(seed)
    WEDepthForDepthEstimation(make_tiny_config()).save_pretrained(folder)
    WEDepthImageProcessor(training_camera=training_camera).save_pretrained(folder)
    return folder


def write_pair(
    root: Path,
    name: str,
    height: int = 30,
    width: int = 40,
    *,
    seed: int = 0,
    depth_scale: float = 1000.0,
    depth_suffix: str = ".png",
    raw_depth: np.ndarray | None = None,
) -> tuple[str, str, np.ndarray]:
    """Write an RGB PNG and a depth file under root; returns (rgb_rel, depth_rel, depth in metres as stored)."""
    rng = np.random.default_rng(seed)
    rgb_rel, depth_rel = f"scene/rgb_{name}.png", f"scene/depth_{name}{depth_suffix}"
    (root / "scene").mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / rgb_rel)
    if raw_depth is None:
        raw_depth = rng.integers(500, 5000, (height, width)).astype(np.uint16)
    if depth_suffix == ".png":
        Image.fromarray(raw_depth.astype(np.uint16)).save(root / depth_rel)
    else:
        np.save(root / depth_rel, raw_depth)
    return rgb_rel, depth_rel, raw_depth.astype(np.float64) / depth_scale


def write_list(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def make_hf_dataset(num: int = 3, *, integer_depth: bool = False, height: int = 30, width: int = 40):
    """An in-memory `datasets.Dataset` with image/depth_map columns (float TIFF or 16-bit PNG depth)."""
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for _ in range(num)]
    if integer_depth:
        depths = [Image.fromarray(rng.integers(500, 5000, (height, width)).astype(np.uint16)) for _ in range(num)]
    else:
        depths = [
            Image.fromarray(rng.uniform(0.5, 5.0, (height, width)).astype(np.float32), mode="F") for _ in range(num)
        ]
    features = datasets.Features({"image": datasets.Image(), "depth_map": datasets.Image()})
    return datasets.Dataset.from_dict({"image": images, "depth_map": depths}, features=features), depths


def markdown_structure(body: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(headings outside code blocks, [(info string, content)] of the fenced code blocks) of a markdown body, by
    CommonMark's rules for fences: a block closes only on a fence of the same character at least as long."""
    headings: list[str] = []
    blocks: list[tuple[str, str]] = []
    fence, info, content, previous = None, "", [], ""
    for line in body.splitlines():
        if fence is not None:
            closing = _CLOSING_FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                blocks.append((info, "\n".join(content)))
                fence, previous = None, ""
            else:
                content.append(line)
            continue
        opening = _OPENING_FENCE.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            fence, info, content = opening.group(1), opening.group(2).strip(), []
        elif _ATX_HEADING.match(line):
            headings.append(line.strip())
        elif _SETEXT_UNDERLINE.match(line) and previous.strip() and not _ATX_HEADING.match(previous):
            headings.append(previous.strip())
        previous = line
    assert fence is None, "a code block is left open"
    return headings, blocks


def tiny_model_config() -> dict:
    """The conftest tiny WEDepth config as a `model_config` dict."""
    values = make_tiny_config().to_dict()
    for key in ("model_type", "transformers_version", "architectures", "auto_map", "_name_or_path"):
        values.pop(key, None)
    return values


def tiny_training(output_dir: Path, **overrides: object) -> TrainingConfig:
    """A few CPU steps of a tiny random model on 32x48 synthetic NYU-layout data."""
    values = {
        "output_dir": str(output_dir),
        "preset": None,
        "pretrained_backbones": False,
        "model_config": tiny_model_config(),
        "dataset": "synthetic",
        "synthetic_num_train": 4,
        "synthetic_num_val": 2,
        "synthetic_height": 32,
        "synthetic_width": 48,
        "per_device_train_batch_size": 2,
        "max_train_steps": 4,
        "warmup_steps": 1,
        "learning_rate": 1e-3,
        "eval_steps": 2,
        "eval_max_depth": 10.0,
        "checkpointing_steps": 2,
        "checkpoints_total_limit": None,
        "logging_steps": 1,
        "log_with": "none",
        "seed": 0,
    }
    values.update(overrides)
    return TrainingConfig(**values)
