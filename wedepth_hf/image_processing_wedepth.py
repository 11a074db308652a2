"""Image processor for WEDepth.

Turns PIL images, NumPy arrays or torch tensors (RGB, RGBA, grayscale, 8- or 16-bit, any size) into ImageNet-normalised
`pixel_values`, and resizes predicted depth back to the original image size. It uses the PIL/NumPy backend only, so it
works without torchvision. This file imports only torch, numpy (a transformers dependency) and transformers (it travels
to the Hub as remote code; NumPy is a hard dependency of transformers and the array type of its PIL backend).
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    PILImageResampling,
    SizeDict,
    is_pil_image,
)
from transformers.processing_utils import ImagesKwargs
from transformers.utils import TensorType, logging


logger = logging.get_logger(__name__)

_CHANNEL_COUNTS = (1, 3, 4)
DEFAULT_PROCESSING_SIZE = 480
"""Shorter side images are resized down to when no training resolution is recorded: NYU-Depth v2's 480x640."""
DEFAULT_MAX_PIXELS = 50_000_000
"""Largest image (height x width) read by default, about 50 megapixels (four 12 MP phone photos): a decompression bomb,
a small file that declares a huge size, is refused before it is decoded. `max_pixels` raises the limit."""


def check_max_pixels(max_pixels: int) -> None:
    """Raise unless `max_pixels` is a pixel limit: an integer >= 0 (0: no limit)."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 0:
        raise ValueError(f"`max_pixels` must be an integer >= 0 (0: no limit), got {max_pixels!r}.")


def check_pixel_budget(height: int, width: int, max_pixels: int, name: str = "The image", setting: str = "") -> None:
    """Raise a ValueError when an image of `height` x `width` has more than `max_pixels` pixels (0: no limit).

    The one pixel-budget check of `wedepth predict` (on the file's header, before decoding), `WEDepthImageProcessor`
    and the evaluation datasets; `setting` names how the caller raises the limit (default: `max_pixels`).
    """
    check_max_pixels(max_pixels)
    if max_pixels and height * width > max_pixels:
        raise ValueError(
            f"{name} is {width}x{height} = {height * width:,} pixels, more than the limit of {max_pixels:,} (a guard "
            f"against decompression bombs); if the image is genuine, raise the limit with {setting or '`max_pixels`'}."
        )


def check_training_camera(camera: Any, name: str = "`training_camera`") -> None:
    """Raise unless `camera` is None or a training camera: {"focal_length": pixels > 0} and optionally "image_size"
    ([height, width] of the training images) and "source" (text); the focal length is at the resolution the training
    images reached the model."""
    if camera is None:
        return
    expected = f'{name} must be null or {{"focal_length": pixels > 0, "image_size": [height, width], "source": text}}'
    if not isinstance(camera, dict) or not {"focal_length"} <= set(camera) <= {
        "focal_length",
        "image_size",
        "source",
    }:
        raise ValueError(f"{expected}; got {camera!r}.")
    focal, size = camera["focal_length"], camera.get("image_size", [1, 1])
    if isinstance(focal, bool) or not isinstance(focal, (int, float)) or not math.isfinite(focal) or focal <= 0:
        raise ValueError(f"{expected}; its focal_length is {focal!r}.")
    if not (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in size)
    ):
        raise ValueError(f"{expected}; its image_size is {size!r}.")
    if not isinstance(camera.get("source", ""), str):
        raise ValueError(f"{expected}; its source is {camera['source']!r}.")


def canonical_depth_scale(focal_length: float, image_width: int, processed_width: int, training_focal: float) -> float:
    """The factor that turns depth predicted for the training camera into depth for the user's camera.

    A model learns its training camera's focal length `training_focal` (pixels at its input resolution). An image of
    width `image_width` taken with `focal_length` pixels reaches the model at `processed_width`, with the effective
    focal f_eff = focal_length * processed_width / image_width. An object of size S at depth Z spans S * f_eff / Z
    pixels, which the model reads as depth S * training_focal / (S * f_eff / Z) = Z * training_focal / f_eff; the true
    depth is the prediction times f_eff / training_focal (the canonical-camera transform of Metric3D).
    """
    if isinstance(focal_length, bool) or not isinstance(focal_length, (int, float)) or not focal_length > 0:
        raise ValueError(f"A focal length must be a number of pixels > 0, got {focal_length!r}.")
    if not math.isfinite(focal_length):
        raise ValueError(f"A focal length must be finite, got {focal_length!r}.")
    return focal_length * processed_width / image_width / training_focal


def _float_to_0_255(array: np.ndarray) -> np.ndarray:
    """A floating-point image in the 0-255 range: values in [0, 1] are scaled by 255, values up to 255 kept.

    NaN, infinite, negative or larger values are an error: no rule could say what they mean.
    """
    if not np.isfinite(array).all():
        raise ValueError("The image holds NaN or infinite values; give finite pixel values.")
    if array.size == 0:
        return array
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 255.0:
        raise ValueError(
            f"A floating-point image must hold values in [0, 1] or [0, 255]; got {low:g} to {high:g}. Rescale it, or "
            f"give it as uint8 / uint16."
        )
    return array * np.float32(255.0) if high <= 1.0 else array


def _rgb_array_from_pil(image: Any) -> np.ndarray:
    """(H, W, 3) float32 in the 0-255 range from any PIL mode; 16-bit and 32-bit modes are scaled, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(image, dtype=np.float32) / 257.0
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "I":
        # 32-bit integer mode: how PIL opens some 16-bit PNGs and TIFFs. Read as 16-bit; anything wider is refused.
        gray = np.asarray(image, dtype=np.int64)
        if gray.size and (gray.min() < 0 or gray.max() > 65535):
            raise ValueError(
                f"A 32-bit integer image (PIL mode 'I') is read as 16-bit, so it must hold values 0-65535; got "
                f"{gray.min()}-{gray.max()}. Convert it to an 8-bit or 16-bit image first."
            )
        return np.repeat((gray / 257.0).astype(np.float32)[..., None], 3, axis=2)
    if image.mode == "F":
        return np.repeat(_float_to_0_255(np.asarray(image, dtype=np.float32))[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "P") and (image.mode != "P" or "transparency" in image.info):
        # Transparent pixels are composited over white, as transformers' `convert_to_rgb` does.
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _rgb_array_from_array(array: np.ndarray, input_data_format: str | None, max_pixels: int) -> np.ndarray:
    """(H, W, 3) float32 in the 0-255 range from a (H, W), (H, W, C) or (C, H, W) array with C in {1, 3, 4}, of at
    most `max_pixels` pixels (0: any size)."""
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"Images must hold integer or floating-point values, got dtype {array.dtype}.")
    if array.ndim == 2:
        array = array[..., None]
    elif array.ndim == 3:
        channels_first = input_data_format == "channels_first" or (
            input_data_format is None and array.shape[-1] not in _CHANNEL_COUNTS and array.shape[0] in _CHANNEL_COUNTS
        )
        if channels_first:
            array = np.moveaxis(array, 0, -1)
    else:
        raise ValueError(
            f"An image must have shape (height, width), (height, width, channels) or (channels, height, width); got "
            f"{array.shape}."
        )
    check_pixel_budget(array.shape[0], array.shape[1], max_pixels)
    channels = array.shape[-1]
    image_dtype = array.dtype
    if channels not in _CHANNEL_COUNTS:
        raise ValueError(
            f"An image must have 1 (grayscale), 3 (RGB) or 4 (RGBA) channels; got {channels} in an array of shape "
            f"{array.shape}."
        )
    if array.dtype == np.uint16:
        array = array.astype(np.float32) / 257.0
    else:
        if np.issubdtype(array.dtype, np.integer) and array.dtype != np.uint8 and array.size:
            # The range of other integer types is not implied by the dtype: they must hold 8-bit values.
            low, high = array.min(), array.max()
            if low < 0 or high > 255:
                raise ValueError(
                    f"An integer image of dtype {array.dtype} must hold 8-bit values 0-255; got {low}-{high}. Cast it "
                    f"to uint8, or to uint16 for a 16-bit image."
                )
        array = array.astype(np.float32)
        if not np.issubdtype(image_dtype, np.integer):
            array = _float_to_0_255(array)
    if channels == 4:
        scale = 255.0 if array[..., 3].max(initial=0) > 1.0 else 1.0
        alpha = array[..., 3:] / scale
        array = array[..., :3] * alpha + (scale * (1.0 - alpha))
    elif channels == 1:
        array = np.repeat(array, 3, axis=2)
    return array


def to_rgb_array(image: Any, input_data_format: str | None = None, max_pixels: int = 0) -> np.ndarray:
    """Any supported image (PIL in any mode, NumPy array or torch tensor) as (H, W, 3) float32 RGB in the 0-255 range.

    The reading rules of `WEDepthImageProcessor`: uint8 and other integer types holding 0-255 as they are, uint16 and
    PIL's 16-bit modes scaled by 1/257, floats in [0, 1] scaled by 255 and floats up to 255 kept; grayscale is
    replicated, alpha composited over white. Values no rule covers (NaN, inf, out of range) raise a ValueError, and so
    does an image of more than `max_pixels` pixels (`check_pixel_budget`; 0: any size), before it is converted.
    """
    if is_pil_image(image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Got an empty image of size {image.width}x{image.height}.")
        check_pixel_budget(image.height, image.width, max_pixels)
        return _rgb_array_from_pil(image)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
        if array.size == 0:
            raise ValueError(f"Got an empty image of shape {array.shape}.")
        return _rgb_array_from_array(array, input_data_format, max_pixels)
    raise ValueError(f"Images must be PIL images, NumPy arrays or torch tensors; got {type(image).__name__}.")


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(3, H, W) float32 resized to (3, height, width): bilinear, antialiased when shrinking, no quantisation."""
    resized = F.interpolate(
        torch.from_numpy(image)[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0].numpy()


def processing_resolution(height: int, width: int, size: SizeDict) -> tuple[int, int]:
    """The (height, width) an image of `height` x `width` is processed at.

    `shortest_edge`: the shorter side brought down to it, the aspect ratio kept; smaller images keep their size.
    `height` and `width`: exactly that size.
    """
    if size.shortest_edge is not None:
        shorter = min(height, width)
        if shorter <= size.shortest_edge:
            return height, width
        scale = size.shortest_edge / shorter
        return max(1, round(height * scale)), max(1, round(width * scale))
    if size.height is not None and size.width is not None:
        return size.height, size.width
    raise ValueError(f"`size` must give `shortest_edge`, or `height` and `width`; got {size}.")


class WEDepthImageProcessorKwargs(ImagesKwargs, total=False):
    """WEDepth's own settings: `max_pixels`, the largest image (height x width) processed (0: any size), and
    `training_camera`, the camera the model was trained with (for `focal_length` in post-processing)."""

    max_pixels: int
    training_camera: dict


class WEDepthImageProcessor(PilBackend):
    r"""
    Prepares images for [`WEDepthForDepthEstimation`] and post-processes its depth.

    Any image is converted to three-channel RGB by `to_rgb_array`'s rules: grayscale is replicated, RGBA/LA are
    composited over white, 16-bit images are scaled to the 8-bit range (not clipped), floats in [0, 1] or [0, 255] are
    read as such; NaN, inf and out-of-range values are errors. Images are processed at a bounded resolution: by default
    the shorter side is brought down to 480 (NYU-Depth v2's 480x640; a training run records its own resolution in
    the exported `preprocessor_config.json`), keeping the aspect ratio; smaller images keep their size, so NYU and
    KITTI evaluation images are not resized. `post_process_depth_estimation` returns depth at the original size.

    Args:
        do_resize (`bool`, *optional*, defaults to `True`): bring images to `size` before normalising.
        size (`dict[str, int]`, *optional*, defaults to `{"shortest_edge": 480}`): `shortest_edge` resizes down only,
            keeping the aspect ratio; `height` and `width` resize to exactly that size.
        do_rescale (`bool`, *optional*, defaults to `True`): multiply by `rescale_factor` (1/255).
        do_normalize (`bool`, *optional*, defaults to `True`): normalise with the ImageNet mean and std.
        max_pixels (`int`, *optional*, defaults to 50,000,000): an image (PIL or array) of more pixels is refused with
            a ValueError before it is converted (`check_pixel_budget`); 0 accepts any size. Saved in
            `preprocessor_config.json`.
        training_camera (`dict`, *optional*): the camera of the training images, `{"focal_length": pixels at the
            model's input resolution, "image_size": [height, width], "source": text}`, written by `wedepth train` and
            `wedepth convert-original` (NYU-Depth v2: 518.8579 px at 480x640); None where it is not known.
            `post_process_depth_estimation(..., focal_length=...)` rescales depth from this camera to the user's.
    """

    valid_kwargs = WEDepthImageProcessorKwargs
    model_input_names = ["pixel_values"]
    do_resize = True
    size = {"shortest_edge": DEFAULT_PROCESSING_SIZE}
    resample = PILImageResampling.BILINEAR
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    do_convert_rgb = True
    max_pixels = DEFAULT_MAX_PIXELS
    training_camera = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_training_camera(self.training_camera)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable dict with `image_processor_type`, and the remote-code `auto_map` in its per-backend form.

        A folder holding only the image processor then loads with `AutoImageProcessor.from_pretrained`, by class name
        where wedepth_hf is imported, and as remote code (`trust_remote_code=True`) where it is not. The reference is
        written as `{"pil": "image_processing_wedepth.WEDepthImageProcessor"}`, the backend this class is (and is
        registered for), rather than as the legacy plain string: from a plain string transformers' pipeline derives a
        "...VideoProcessor" reference that no class answers, and would ask whether to run remote code even where
        wedepth_hf is imported; from the per-backend form it derives none.
        """
        output = super().to_dict()
        output["image_processor_type"] = type(self).__name__
        reference = (output.get("auto_map") or {}).get("AutoImageProcessor")
        if isinstance(reference, str):
            output["auto_map"]["AutoImageProcessor"] = {"pil": reference}
        return output

    def _validate_preprocess_kwargs(self, **kwargs: Any) -> None:
        if kwargs.get("do_resize") and not kwargs.get("size"):
            raise ValueError(
                "`do_resize=True` needs a `size`, e.g. {'shortest_edge': 480} or {'height': 480, 'width': 640}."
            )
        check_max_pixels(kwargs.get("max_pixels", self.max_pixels))
        super()._validate_preprocess_kwargs(**kwargs)

    def _prepare_images_structure(self, images: Any, expected_ndims: int = 3) -> list[Any]:
        """Flat list of single images: a 2-D array is one grayscale image, a 3-D array one image, a 4-D one a batch."""
        images = self.fetch_images(images)
        if is_pil_image(images):
            return [images]
        if isinstance(images, (np.ndarray, torch.Tensor)):
            if images.ndim in (2, 3):
                return [images]
            if images.ndim == 4:
                return list(images)
            raise ValueError(
                f"An image array must have 2 (grayscale), 3 (one image) or 4 (a batch) dimensions; got shape "
                f"{tuple(images.shape)}."
            )
        if isinstance(images, (list, tuple)):
            return [image for item in images for image in self._prepare_images_structure(item)]
        raise ValueError(f"Images must be PIL images, NumPy arrays or torch tensors; got {type(images).__name__}.")

    def process_image(
        self,
        image: Any,
        do_convert_rgb: bool | None = None,
        input_data_format: Any = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **kwargs: Any,
    ) -> np.ndarray:
        """One image of at most `max_pixels` pixels -> (3, H, W) float32 in the 0-255 range, channels first."""
        data_format = None if input_data_format is None else str(getattr(input_data_format, "value", input_data_format))
        return np.ascontiguousarray(np.moveaxis(to_rgb_array(image, data_format, max_pixels), -1, 0))

    def _preprocess(
        self,
        images: list[np.ndarray],
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | None,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | list[float] | None,
        image_std: float | list[float] | None,
        return_tensors: str | TensorType | None,
        **kwargs: Any,
    ) -> BatchFeature:
        processed = []
        for image in images:
            if do_resize:
                height, width = processing_resolution(image.shape[1], image.shape[2], size)
                if (height, width) != image.shape[1:]:
                    image = _resize(image, height, width)
            if do_rescale:
                image = self.rescale(image, rescale_factor)
            if do_normalize:
                image = self.normalize(image, image_mean, image_std)
            processed.append(image.astype(np.float32))
        if return_tensors is not None and len({image.shape for image in processed}) > 1:
            raise ValueError(
                "Images of different sizes cannot be stacked into one tensor: "
                f"{sorted({image.shape[1:] for image in processed})}. Process them one at a time, or set "
                "`do_resize=True` with a fixed `size`."
            )
        return BatchFeature(data={"pixel_values": processed}, tensor_type=return_tensors)

    def post_process_depth_estimation(
        self,
        outputs: Any,
        target_sizes: torch.Tensor | list[tuple[int, int]] | None = None,
        focal_length: float | Sequence[float | None] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Depth maps at the original image sizes, for the training camera or, with `focal_length`, for the user's.

        Args:
            outputs: the model output (anything with `predicted_depth` of shape (B, H, W)).
            target_sizes: (height, width) of each original image; `None` keeps the model's size.
            focal_length: the horizontal focal length, in pixels at each original image's resolution (one number for
                all images, or one per image, None for an image whose camera is unknown). The depth is rescaled from
                the training camera to it (`canonical_depth_scale`); needs `target_sizes` and a `training_camera`.
                None: no rescaling, which is right for images taken like the training images.

        Returns:
            One `{"predicted_depth": (height, width) tensor}` per image, metric depth in metres.
        """
        predicted_depth = outputs["predicted_depth"] if isinstance(outputs, dict) else outputs.predicted_depth
        if target_sizes is not None and len(predicted_depth) != len(target_sizes):
            raise ValueError(
                f"Got {len(target_sizes)} target sizes for {len(predicted_depth)} depth maps; pass one per image."
            )
        focal_lengths = self._focal_lengths(focal_length, len(predicted_depth), target_sizes)
        results = []
        for index, depth in enumerate(predicted_depth):
            if target_sizes is not None:
                target = tuple(int(value) for value in target_sizes[index])
                if focal_lengths[index] is not None:
                    scale = canonical_depth_scale(
                        focal_lengths[index], target[1], depth.shape[-1], self.training_camera["focal_length"]
                    )
                    depth = depth * scale if scale != 1.0 else depth
                if tuple(depth.shape[-2:]) != target:
                    depth = F.interpolate(depth[None, None], size=target, mode="bilinear", align_corners=False)[0, 0]
            results.append({"predicted_depth": depth})
        return results

    def _focal_lengths(
        self, focal_length: float | Sequence[float | None] | None, count: int, target_sizes: Any
    ) -> list[float | None]:
        """One focal length (or None) per depth map, after checking that they can be used."""
        if focal_length is None:
            return [None] * count
        focal_lengths = list(focal_length) if isinstance(focal_length, (list, tuple)) else [focal_length] * count
        if len(focal_lengths) != count:
            raise ValueError(f"Got {len(focal_lengths)} focal lengths for {count} depth maps; pass one per image.")
        if all(value is None for value in focal_lengths):
            return focal_lengths
        if target_sizes is None:
            raise ValueError(
                "`focal_length` is in pixels at the original image's resolution: pass `target_sizes` with it."
            )
        if self.training_camera is None:
            raise ValueError(
                "This image processor records no `training_camera`, so depth cannot be rescaled to another focal "
                "length; set `processor.training_camera` (see the docstring) or leave `focal_length` out."
            )
        return focal_lengths

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> BatchFeature:
        """`preprocess`; a `processing_size=N` keyword is short for `size={"shortest_edge": N}` (None: no resize)."""
        if "processing_size" in kwargs:
            size = kwargs.pop("processing_size")
            kwargs.update(do_resize=size is not None, size={"shortest_edge": size} if size is not None else None)
        return super().__call__(images, *args, **kwargs)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PROCESSING_SIZE",
    "WEDepthImageProcessor",
    "canonical_depth_scale",
    "check_max_pixels",
    "check_pixel_budget",
    "check_training_camera",
    "processing_resolution",
    "to_rgb_array",
]
