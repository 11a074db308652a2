"""Shared fixtures: tiny random WEDepth configs that build and run in milliseconds on a CPU (the helpers they use
are in helpers.py)."""

import os
from collections.abc import Callable

import pytest
import torch
from helpers import make_tiny_config

import wedepth_hf
from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation


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

    return os.path.dirname(os.path.dirname(os.path.abspath(wedepth_hf.__file__)))
