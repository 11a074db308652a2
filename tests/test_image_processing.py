"""WEDepthImageProcessor: every input kind becomes ImageNet-normalised RGB; depth goes back to the original size."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor
from transformers.modeling_outputs import DepthEstimatorOutput

from wedepth_hf import WEDepthImageProcessor


MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _normalised(rgb_0_255: np.ndarray) -> np.ndarray:
    """Reference: (H, W, 3) values in 0-255 -> (3, H, W) ImageNet-normalised."""
    return np.moveaxis((rgb_0_255 / 255.0 - MEAN) / STD, -1, 0)


@pytest.fixture
def processor() -> WEDepthImageProcessor:
    return WEDepthImageProcessor()


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(13, 21, 3), dtype=np.uint8)


def _pixels(processor: WEDepthImageProcessor, image) -> np.ndarray:
    values = processor(image, return_tensors="pt")["pixel_values"]
    assert values.dtype == torch.float32 and values.ndim == 4 and values.shape[:2] == (1, 3)
    return values[0].numpy()


def test_uses_the_pil_backend_and_keeps_the_size(processor) -> None:
    assert processor.backend == "pil"
    assert _pixels(processor, Image.new("RGB", (97, 31))).shape == (3, 31, 97)


@pytest.mark.parametrize("kind", ["pil", "numpy_hwc", "numpy_chw", "torch_chw", "torch_hwc"])
def test_rgb_inputs(processor, rgb, kind: str) -> None:
    image = {
        "pil": lambda: Image.fromarray(rgb),
        "numpy_hwc": lambda: rgb,
        "numpy_chw": lambda: np.moveaxis(rgb, -1, 0).copy(),
        "torch_chw": lambda: torch.from_numpy(np.moveaxis(rgb, -1, 0).copy()),
        "torch_hwc": lambda: torch.from_numpy(rgb),
    }[kind]()
    np.testing.assert_allclose(_pixels(processor, image), _normalised(rgb.astype(np.float32)), rtol=1e-5, atol=1e-5)


def test_grayscale_is_replicated(processor, rgb) -> None:
    gray = rgb[..., 0]
    expected = _normalised(np.repeat(gray[..., None], 3, axis=2).astype(np.float32))
    np.testing.assert_allclose(_pixels(processor, Image.fromarray(gray, mode="L")), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_pixels(processor, gray), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_pixels(processor, gray[..., None]), expected, rtol=1e-5, atol=1e-5)


def test_sixteen_bit_is_scaled_not_clipped(processor) -> None:
    gray16 = np.array([[0, 257, 65535], [32896, 1000, 65535]], dtype=np.uint16)
    expected = _normalised(np.repeat((gray16 / 257.0)[..., None], 3, axis=2).astype(np.float32))
    np.testing.assert_allclose(_pixels(processor, Image.fromarray(gray16)), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(_pixels(processor, gray16), expected, rtol=1e-5, atol=1e-4)
    rgb16 = np.stack([gray16, gray16 // 2, gray16 // 4], axis=-1)
    expected = _normalised((rgb16 / 257.0).astype(np.float32))
    np.testing.assert_allclose(_pixels(processor, rgb16), expected, rtol=1e-5, atol=1e-4)


def test_integer_images_follow_one_explicit_rule(processor) -> None:
    """uint16 is 16-bit; PIL mode "I" is read as 16-bit; other integer dtypes must hold 8-bit values. Values outside
    a rule's range raise instead of choosing a scale from the data."""
    gray16 = np.array([[0, 257, 65535], [32896, 1000, 65535]], dtype=np.int32)
    expected16 = _normalised(np.repeat((gray16 / 257.0)[..., None], 3, axis=2).astype(np.float32))
    np.testing.assert_allclose(_pixels(processor, Image.fromarray(gray16, mode="I")), expected16, rtol=1e-5, atol=1e-4)
    # The same small values mean 16-bit in mode "I" but 8-bit in an int32 array: the rule follows the type, not data.
    small = np.array([[0, 100], [200, 255]], dtype=np.int32)
    from_mode_i = _pixels(processor, Image.fromarray(small, mode="I"))
    np.testing.assert_allclose(from_mode_i, _normalised(np.repeat((small / 257.0)[..., None], 3, axis=2)), atol=1e-4)
    np.testing.assert_allclose(
        _pixels(processor, small), _normalised(np.repeat(small[..., None], 3, axis=2).astype(np.float32)), atol=1e-5
    )
    with pytest.raises(ValueError, match="mode 'I'.*0-65535; got 0-70000"):
        processor(Image.fromarray(np.array([[0, 70000]], dtype=np.int32), mode="I"), return_tensors="pt")
    with pytest.raises(ValueError, match="dtype int32 must hold 8-bit values 0-255; got 0-1000.*uint16"):
        processor(np.array([[0, 1000]], dtype=np.int32), return_tensors="pt")
    with pytest.raises(ValueError, match="dtype int16 must hold 8-bit values 0-255; got -1-3"):
        processor(np.array([[-1, 3]], dtype=np.int16), return_tensors="pt")


def test_rgba_is_composited_over_white(processor) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent -> white
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    expected_rgb = np.array(
        [[[255, 0, 0], [255, 255, 255]], [[255 * (1 - 128 / 255)] * 3, [255, 255, 255]]], dtype=np.float32
    )
    for image in (Image.fromarray(rgba, mode="RGBA"), rgba):
        np.testing.assert_allclose(_pixels(processor, image), _normalised(expected_rgb), rtol=1e-5, atol=1e-4)


def test_palette_image(processor, rgb) -> None:
    palette = Image.fromarray(rgb).convert("P")
    expected = _normalised(np.asarray(palette.convert("RGB"), dtype=np.float32))
    np.testing.assert_allclose(_pixels(processor, palette), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 6, 2), (5, 6, 5), (2, 5, 6, 7), (1, 2, 5, 6, 3)])
def test_wrong_channel_count(processor, shape) -> None:
    with pytest.raises(ValueError, match="channels|shape"):
        processor(np.zeros(shape, dtype=np.uint8), return_tensors="pt")


@pytest.mark.parametrize("image", [np.zeros((0, 5, 3), dtype=np.uint8), np.zeros((4, 0), dtype=np.uint8)])
def test_empty_image(processor, image) -> None:
    with pytest.raises(ValueError, match="empty"):
        processor(image, return_tensors="pt")


def test_empty_pil_image(processor) -> None:
    with pytest.raises(ValueError, match="empty"):
        processor(Image.new("RGB", (0, 4)), return_tensors="pt")


def test_batches(processor, rgb) -> None:
    batch = processor([rgb, rgb[::-1].copy()], return_tensors="pt")["pixel_values"]
    assert batch.shape == (2, 3, 13, 21)
    stacked = processor(np.stack([rgb, rgb[::-1]]), return_tensors="pt")["pixel_values"]
    assert torch.equal(stacked, batch)
    with pytest.raises(ValueError, match="different sizes"):
        processor([rgb, rgb[:5]], return_tensors="pt")
    resized = processor([rgb, rgb[:5]], do_resize=True, size={"height": 8, "width": 12}, return_tensors="pt")
    assert resized["pixel_values"].shape == (2, 3, 8, 12)
    with pytest.raises(ValueError, match="`shortest_edge`, or `height` and `width`"):
        processor(rgb, size={"longest_edge": 8}, return_tensors="pt")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((960, 1280), (480, 640)),
        ((3024, 4032), (480, 640)),
        ((500, 2000), (480, 1920)),
        ((480, 640), (480, 640)),
        ((375, 1242), (375, 1242)),
        ((20, 30), (20, 30)),
    ],
)
def test_large_photos_are_processed_at_a_bounded_resolution(processor, size, expected) -> None:
    """The shorter side is brought down to 480 by default, the aspect ratio kept; smaller images are not enlarged."""
    image = np.random.default_rng(0).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    assert _pixels(processor, image).shape[1:] == expected


def test_the_processing_resolution_is_a_setting(processor, rgb) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    assert processor(image, processing_size=150, return_tensors="pt")["pixel_values"].shape[2:] == (150, 200)
    assert processor(image, processing_size=None, return_tensors="pt")["pixel_values"].shape[2:] == (300, 400)
    custom = WEDepthImageProcessor(size={"shortest_edge": 100})
    assert custom(image, return_tensors="pt")["pixel_values"].shape[2:] == (100, 133)
    # Shrinking is antialiased: a fine checkerboard becomes its mean grey, not an alias pattern.
    checker = np.indices((400, 400)).sum(axis=0) % 2 * 255
    shrunk = processor(checker.astype(np.uint8), processing_size=100, do_normalize=False, return_tensors="pt")
    np.testing.assert_allclose(shrunk["pixel_values"].numpy(), 0.5, atol=0.01)


@pytest.mark.parametrize("kind", ["numpy_0_1", "numpy_0_255", "torch_0_1", "pil_mode_f_0_1", "pil_mode_f_0_255"])
def test_float_images_in_0_1_or_0_255_give_the_same_pixels(processor, rgb, kind: str) -> None:
    gray = rgb[..., 0].astype(np.float32)
    image = {
        "numpy_0_1": lambda: rgb.astype(np.float32) / 255,
        "numpy_0_255": lambda: rgb.astype(np.float32),
        "torch_0_1": lambda: torch.from_numpy(rgb.astype(np.float32) / 255),
        "pil_mode_f_0_1": lambda: Image.fromarray(gray / 255, mode="F"),
        "pil_mode_f_0_255": lambda: Image.fromarray(gray, mode="F"),
    }[kind]()
    reference = rgb if not kind.startswith("pil") else np.repeat(rgb[..., :1], 3, axis=2)
    np.testing.assert_allclose(_pixels(processor, image), _normalised(reference.astype(np.float32)), atol=1e-4)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.nan, "NaN or infinite"),
        (np.inf, "NaN or infinite"),
        (-0.5, "\\[0, 1\\] or \\[0, 255\\]"),
        (300.0, "\\[0, 1\\] or \\[0, 255\\]"),
    ],
)
def test_float_images_no_rule_covers_are_errors(processor, rgb, values: float, message: str) -> None:
    image = rgb.astype(np.float32)
    image[3, 4, 1] = values
    with pytest.raises(ValueError, match=message):
        processor(image, return_tensors="pt")
    with pytest.raises(ValueError, match=message):
        processor(Image.fromarray(image[..., 1], mode="F"), return_tensors="pt")


def test_post_processing_returns_the_original_size(processor) -> None:
    depth = torch.rand(2, 16, 24) + 1.0
    outputs = DepthEstimatorOutput(predicted_depth=depth)
    same = processor.post_process_depth_estimation(outputs, target_sizes=[(16, 24), (16, 24)])
    assert torch.equal(same[0]["predicted_depth"], depth[0])
    resized = processor.post_process_depth_estimation(outputs, target_sizes=[(32, 48), (7, 9)])
    assert resized[0]["predicted_depth"].shape == (32, 48)
    assert resized[1]["predicted_depth"].shape == (7, 9)
    # Bilinear resizing stays within the input's range: no negative or overshooting depth.
    assert (
        resized[0]["predicted_depth"].min() >= depth[0].min() and resized[0]["predicted_depth"].max() <= depth[0].max()
    )
    untouched = processor.post_process_depth_estimation(outputs)
    assert torch.equal(untouched[1]["predicted_depth"], depth[1])
    with pytest.raises(ValueError, match="target sizes"):
        processor.post_process_depth_estimation(outputs, target_sizes=[(16, 24)])


def test_save_and_load(tmp_path, tiny_model) -> None:
    tiny_model.save_pretrained(tmp_path)
    WEDepthImageProcessor(do_resize=True, size={"shortest_edge": 480}).save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, WEDepthImageProcessor)
    assert loaded.do_resize and loaded.size.shortest_edge == 480
