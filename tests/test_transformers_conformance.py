"""transformers' own common tests run against WEDepth: `ModelTesterMixin`, `ConfigTester`, `ImageProcessingTestMixin`.

The mixins are not part of this repository: they come from the `tests/` folder of the source distribution of the
installed transformers version (`.ci/run` downloads and extracts it), named by the environment variable
`WEDEPTH_TRANSFORMERS_TESTS` (that `tests/` folder, or the sdist's root). Without it this module is skipped. The
mixins import `parameterized`, a test dependency of transformers, not of wedepth_hf.

The sdist ships only the top-level `tests/*.py`. What they import from transformers' repository but the sdist lacks is
stood in for by empty modules, each named below; nothing of a mixin is copied or changed. Every test of the mixins
passes here or is skipped with the reason it does not apply to WEDepth (a frozen-backbone depth model).
"""

import importlib
import os
import sys
import types
import unittest
from pathlib import Path
from unittest import mock

import pytest
import torch
import transformers
from helpers import make_tiny_config

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation, WEDepthImageProcessor


def _tests_folder() -> Path | None:
    """transformers' `tests/` folder named by `WEDEPTH_TRANSFORMERS_TESTS` (the folder itself or the sdist's root)."""
    named = os.environ.get("WEDEPTH_TRANSFORMERS_TESTS")
    if not named:
        return None
    for folder in (Path(named), Path(named) / "tests"):
        if (folder / "test_modeling_common.py").is_file():
            return folder
    raise FileNotFoundError(f"WEDEPTH_TRANSFORMERS_TESTS={named} holds no test_modeling_common.py (nor its tests/).")


TESTS = _tests_folder()
if TESTS is None:
    pytest.skip(
        "set WEDEPTH_TRANSFORMERS_TESTS to the tests/ folder of the transformers sdist (see .ci/run)",
        allow_module_level=True,
    )
pytest.importorskip(
    "parameterized", reason="transformers' common tests need `parameterized` (pip install parameterized)"
)

PACKAGE = "transformers_common_tests"
"""The name transformers' `tests/` folder is imported under (this repository has a `tests/` of its own)."""

# Modules of transformers' repository that the sdist's test files import but the sdist does not hold: (module,
# attributes). The mixins' export tests (ExportTesterMixin) and generation tests (GenerationTesterMixin) are thus not
# run, nor is the config check that needs `config_common_kwargs`; the image fixtures' Hub URLs are not fetched.
_ABSENT_FROM_THE_SDIST = {
    "exporters.test_export": {"ExportTesterMixin": type("ExportTesterMixin", (), {})},
    "generation.test_utils": {"GenerationTesterMixin": type("GenerationTesterMixin", (), {})},
    "utils.test_configuration_utils": {"config_common_kwargs": {}},
}


def _import_common_tests() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """test_modeling_common, test_configuration_common and test_image_processing_common of the named folder."""
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(TESTS)]
    sys.modules[PACKAGE] = package
    for name, attributes in _ABSENT_FROM_THE_SDIST.items():
        if (TESTS / (name.replace(".", "/") + ".py")).is_file():
            continue
        parent = f"{PACKAGE}.{name.split('.')[0]}"
        sys.modules.setdefault(parent, types.ModuleType(parent)).__path__ = []
        stand_in = types.ModuleType(f"{PACKAGE}.{name}")
        stand_in.__dict__.update(attributes)
        sys.modules[stand_in.__name__] = stand_in
    if not (TESTS.parent / "utils" / "fetch_hub_objects_for_ci.py").is_file():
        fetch = types.ModuleType("fetch_hub_objects_for_ci")
        fetch.url_to_local_path = lambda url: url
        sys.modules.setdefault("fetch_hub_objects_for_ci", fetch)
    # test_configuration_common imports transformers again from the repository's tests/__init__.py (absent from the
    # sdist) into a variable it never uses: the installed transformers stands in.
    with mock.patch("transformers.utils.direct_transformers_import", lambda *args, **kwargs: transformers):
        return tuple(
            importlib.import_module(f"{PACKAGE}.{name}")
            for name in ("test_modeling_common", "test_configuration_common", "test_image_processing_common")
        )


modeling_common, configuration_common, image_processing_common = _import_common_tests()

# ---- the model -------------------------------------------------------------------------------------------------------

IMAGE_SIZE = (28, 42)
"""A tiny input: 2 x 3 VFM patches, 7 x 11 encoder tokens at stride 4."""


class WEDepthModelTester:
    """Tiny WEDepth models and inputs for `ModelTesterMixin`."""

    def __init__(self, parent: unittest.TestCase, batch_size: int = 2) -> None:
        self.parent = parent
        self.batch_size = batch_size
        self.is_training = True
        config = self.get_config()
        encoder, vfm = config.encoder_config, config.vfm_config
        # hidden_states: the Swin backbone's patch embedding and four stages, then the VFM's embeddings and layers.
        self.expected_num_hidden_layers = 1 + len(encoder.depths) + 1 + vfm.num_hidden_layers
        # attentions: the Swin backbone's last block of each stage, then every VFM layer.
        self.num_hidden_layers = len(encoder.depths) + vfm.num_hidden_layers
        self.hidden_size = vfm.hidden_size
        self.num_attention_heads = vfm.num_attention_heads

    def get_config(self) -> WEDepthConfig:
        return make_tiny_config()

    def prepare_config_and_inputs(self) -> tuple[WEDepthConfig, torch.Tensor, torch.Tensor]:
        pixel_values = modeling_common.floats_tensor([self.batch_size, 3, *IMAGE_SIZE])
        labels = torch.rand(self.batch_size, *IMAGE_SIZE) * 9 + 0.5
        return self.get_config(), pixel_values, labels

    def prepare_config_and_inputs_for_common(self) -> tuple[WEDepthConfig, dict[str, torch.Tensor]]:
        config, pixel_values, _ = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


def _not_applicable(reason: str):
    """A mixin test replaced by a skip that says why it does not apply to WEDepth."""

    def skipped(self: unittest.TestCase, *args: object, **kwargs: object) -> None:
        self.skipTest(reason)

    return skipped


class WEDepthModelTest(modeling_common.ModelTesterMixin, unittest.TestCase):
    """transformers' common model tests on a tiny WEDepth."""

    all_model_classes = (WEDepthForDepthEstimation,)
    test_resize_embeddings = False
    test_mismatched_shapes = False
    test_torch_exportable = False
    has_attentions = True

    def setUp(self) -> None:
        self.model_tester = WEDepthModelTester(self)
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=WEDepthConfig, has_text_modality=False
        )

    def _prepare_for_class(self, inputs_dict: dict, model_class: type, return_labels: bool = False) -> dict:
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            generator = torch.Generator().manual_seed(0)  # the same labels at every call
            inputs_dict["labels"] = torch.rand(self.model_tester.batch_size, *IMAGE_SIZE, generator=generator) * 9 + 0.5
        return inputs_dict

    test_attention_outputs = _not_applicable(
        "attentions join the Swin encoder's windowed maps and the VFM's: no one (heads, seq, seq) shape; "
        "tests/test_modeling.py checks them"
    )
    test_hidden_states_output = _not_applicable(
        "hidden_states join the encoder's (B, C, h, w) maps and the VFM's (B, T, C) tokens: no one seq_length; "
        "tests/test_modeling.py checks them"
    )
    test_retain_grad_hidden_states_attentions = _not_applicable(
        "hidden_states[0], the Swin backbone's patch-embedding map, is a reshaped copy of its tokens that the depth is "
        "not computed from, so it gets no gradient"
    )
    test_num_layers_is_small = _not_applicable(
        "WEDepth runs its VFM in four stages of at least one layer and needs a four-stage encoder: 4 is its minimum"
    )
    test_model_get_set_embeddings = _not_applicable(
        "no token embeddings: the input embedding is the encoder's patch embedding (a convolution), not an nn.Embedding"
    )
    test_model_weights_reload_no_missing_tied_weights = _not_applicable(
        "a checkpoint without the frozen VFM's weights is refused (the VFM is never initialised at random), so an "
        "emptied checkpoint raises instead of listing missing keys"
    )


# ---- the config ------------------------------------------------------------------------------------------------------


class WEDepthConfigTest(unittest.TestCase):
    """transformers' `ConfigTester` checks on `WEDepthConfig`, one test each."""

    def setUp(self) -> None:
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=WEDepthConfig, has_text_modality=False, prompt_num=3, decoder_layers=2
        )

    def test_config_to_json_string(self) -> None:
        self.config_tester.create_and_test_config_to_json_string()

    def test_config_to_json_file(self) -> None:
        self.config_tester.create_and_test_config_to_json_file()

    def test_config_from_and_save_pretrained(self) -> None:
        self.config_tester.create_and_test_config_from_and_save_pretrained()

    def test_config_from_and_save_pretrained_subfolder(self) -> None:
        self.config_tester.create_and_test_config_from_and_save_pretrained_subfolder()

    def test_config_from_and_save_pretrained_composite(self) -> None:
        self.config_tester.create_and_test_config_from_and_save_pretrained_composite()

    def test_config_with_num_labels(self) -> None:
        self.config_tester.create_and_test_config_with_num_labels()

    def test_config_from_pretrained_custom_kwargs(self) -> None:
        self.config_tester.create_and_test_config_from_pretrained_custom_kwargs()

    def test_config_can_be_init_without_params(self) -> None:
        self.config_tester.check_config_can_be_init_without_params()

    def test_config_common_properties(self) -> None:
        self.config_tester.create_and_test_config_common_properties()

    def test_config_arguments_init(self) -> None:
        if not configuration_common.config_common_kwargs:
            self.skipTest("needs tests/utils/test_configuration_utils.py, which the transformers sdist does not ship")
        self.config_tester.check_config_arguments_init()


# ---- the image processor ---------------------------------------------------------------------------------------------


class WEDepthImageProcessingTester(image_processing_common.ImageProcessingTester):
    """Images and processor settings for `ImageProcessingTestMixin`: a fixed output size."""

    def __init__(self, parent: unittest.TestCase) -> None:
        super().__init__(parent, batch_size=3, min_resolution=20, max_resolution=60, size={"height": 18, "width": 20})

    def _get_image_processing_classes(self) -> dict[str, type]:
        # The mixin finds the classes by the test file's folder name among transformers' own models.
        return {"pil": WEDepthImageProcessor}


class WEDepthImageProcessingTest(image_processing_common.ImageProcessingTestMixin, unittest.TestCase):
    """transformers' common image processor tests on `WEDepthImageProcessor`."""

    image_processor_tester_class = WEDepthImageProcessingTester

    test_call_numpy_4_channels = _not_applicable(
        "WEDepth always converts images to RGB (its model takes exactly 3 channels): 4-channel output does not apply"
    )
    test_new_models_require_torchvision_backend = _not_applicable(
        "a transformers policy for its own new models; WEDepth's remote code keeps the PIL backend, without torchvision"
    )


def test_the_mixins_came_from_the_named_folder() -> None:
    for module in (modeling_common, configuration_common, image_processing_common):
        assert Path(module.__file__).parent == TESTS
