"""Image processor for WEDepth.

Turns PIL images, NumPy arrays or torch tensors (RGB, RGBA, grayscale, 8- or 16-bit, any size) into ImageNet-normalised
`pixel_values`, and resizes predicted depth back to the original image size. It uses the PIL/NumPy backend only, so it
works without torchvision. This file imports only torch, numpy (a transformers dependency) and transformers (it travels
to the Hub as remote code; NumPy is a hard dependency of transformers and the array type of its PIL backend).
"""

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
from transformers.utils import TensorType, logging


logger = logging.get_logger(__name__)

_CHANNEL_COUNTS = (1, 3, 4)


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
        return np.repeat(np.asarray(image, dtype=np.float32)[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "P") and (image.mode != "P" or "transparency" in image.info):
        # Transparent pixels are composited over white, as transformers' `convert_to_rgb` does.
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _rgb_array_from_array(array: np.ndarray, input_data_format: str | None) -> np.ndarray:
    """(H, W, 3) float32 in the 0-255 range from a (H, W), (H, W, C) or (C, H, W) array with C in {1, 3, 4}."""
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
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
    channels = array.shape[-1]
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
    if channels == 4:
        scale = 255.0 if array[..., 3].max(initial=0) > 1.0 else 1.0
        alpha = array[..., 3:] / scale
        array = array[..., :3] * alpha + (scale * (1.0 - alpha))
    elif channels == 1:
        array = np.repeat(array, 3, axis=2)
    return array


class WEDepthImageProcessor(PilBackend):
    r"""
    Prepares images for [`WEDepthForDepthEstimation`] and post-processes its depth.

    Any image is converted to three-channel RGB: grayscale is replicated, RGBA/LA are composited over white, 16-bit
    images are scaled to the 8-bit range (not clipped). By default the image keeps its size, as in the evaluation
    protocols of NYU-Depth v2 and KITTI (the model takes any height and width); set `do_resize=True` and `size` (e.g.
    `{"shortest_edge": 480}` or `{"height": 480, "width": 640}`) to bound the cost on large photos.

    Args:
        do_resize (`bool`, *optional*, defaults to `False`): resize to `size` before normalising.
        size (`dict[str, int]`, *optional*): target size when resizing.
        resample (`PILImageResampling`, *optional*, defaults to `BILINEAR`): resampling filter.
        do_rescale (`bool`, *optional*, defaults to `True`): multiply by `rescale_factor` (1/255).
        do_normalize (`bool`, *optional*, defaults to `True`): normalise with the ImageNet mean and std.
    """

    model_input_names = ["pixel_values"]
    do_resize = False
    size = None
    resample = PILImageResampling.BILINEAR
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    do_convert_rgb = True

    def to_dict(self) -> dict[str, Any]:
        """Serialisable dict without `auto_map` and `image_processor_type`: the class is found through the model's
        `config.json` (registered Auto class, or its `auto_map` entry for remote code).

        With either key here, transformers' pipeline derives a video-processor reference from it and, finding no
        local class for that, asks whether to run remote code even when wedepth_hf is imported.
        """
        output = super().to_dict()
        output.pop("auto_map", None)
        output.pop("image_processor_type", None)
        return output

    def _validate_preprocess_kwargs(self, **kwargs: Any) -> None:
        if kwargs.get("do_resize") and not kwargs.get("size"):
            raise ValueError(
                "`do_resize=True` needs a `size`, e.g. {'shortest_edge': 480} or {'height': 480, 'width': 640}."
            )
        super()._validate_preprocess_kwargs(**kwargs)

    def _prepare_images_structure(self, images: Any, expected_ndims: int = 3) -> list[Any]:
        """Flat list of single images. A 2-D array is one grayscale image, a 3-D array one image, a 4-D array a batch."""
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
        self, image: Any, do_convert_rgb: bool | None = None, input_data_format: Any = None, **kwargs: Any
    ) -> np.ndarray:
        """One image -> (3, H, W) float32 in the 0-255 range, channels first."""
        if is_pil_image(image):
            if image.width == 0 or image.height == 0:
                raise ValueError(f"Got an empty image of size {image.width}x{image.height}.")
            array = _rgb_array_from_pil(image)
        elif isinstance(image, (np.ndarray, torch.Tensor)):
            array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
            if array.size == 0:
                raise ValueError(f"Got an empty image of shape {array.shape}.")
            data_format = None if input_data_format is None else str(getattr(input_data_format, "value", input_data_format))
            array = _rgb_array_from_array(array, data_format)
        else:
            raise ValueError(f"Images must be PIL images, NumPy arrays or torch tensors; got {type(image).__name__}.")
        return np.ascontiguousarray(np.moveaxis(array, -1, 0))

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
                image = self.resize(image=image, size=size, resample=resample)
            if do_rescale:
                image = self.rescale(image, rescale_factor)
            if do_normalize:
                image = self.normalize(image, image_mean, image_std)
            processed.append(image.astype(np.float32))
        if return_tensors is not None and len({image.shape for image in processed}) > 1:
            raise ValueError(
                f"Images of different sizes cannot be stacked into one tensor: {sorted({image.shape[1:] for image in processed})}. "
                f"Process them one at a time, or set `do_resize=True` with a fixed `size`."
            )
        return BatchFeature(data={"pixel_values": processed}, tensor_type=return_tensors)

    def post_process_depth_estimation(
        self, outputs: Any, target_sizes: torch.Tensor | list[tuple[int, int]] | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """Depth maps at the original image sizes.

        Args:
            outputs: the model output (anything with `predicted_depth` of shape (B, H, W)).
            target_sizes: (height, width) of each original image; `None` keeps the model's size.

        Returns:
            One `{"predicted_depth": (height, width) tensor}` per image, metric depth in metres.
        """
        predicted_depth = outputs["predicted_depth"] if isinstance(outputs, dict) else outputs.predicted_depth
        if target_sizes is not None and len(predicted_depth) != len(target_sizes):
            raise ValueError(
                f"Got {len(target_sizes)} target sizes for {len(predicted_depth)} depth maps; pass one per image."
            )
        results = []
        for index, depth in enumerate(predicted_depth):
            if target_sizes is not None:
                target = tuple(int(value) for value in target_sizes[index])
                if tuple(depth.shape[-2:]) != target:
                    depth = F.interpolate(depth[None, None], size=target, mode="bilinear", align_corners=False)[0, 0]
            results.append({"predicted_depth": depth})
        return results


__all__ = ["WEDepthImageProcessor"]
