"""Shared fixtures: tiny random WEDepth configs that build and run in milliseconds on a CPU."""

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import wedepth_hf
from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation


REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def tiny_config() -> Callable[..., WEDepthConfig]:
    return make_tiny_config


@pytest.fixture
def tiny_model() -> WEDepthForDepthEstimation:
    torch.manual_seed(0)
    return WEDepthForDepthEstimation(make_tiny_config())


@pytest.fixture(scope="session")
def package_parent() -> str:
    """Directory that contains the wedepth_hf package (to hide or expose it in subprocesses)."""
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(wedepth_hf.__file__)))
