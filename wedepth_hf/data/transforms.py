"""Training augmentations for depth samples (the WEDepth/iDisc recipe), torch only and reproducible per sample.

`DepthAugmentation` applies one joint geometric warp to image and depth (flip, rotation, scale, translation) and
photometric jitter to the image only. Its random numbers come from a `torch.Generator` seeded with a hash of
(seed, epoch, sample id), never from the global RNG, so DataLoader workers, several processes and resumed runs all
draw the same augmentation for the same sample in the same epoch.
"""

import hashlib
import math
from typing import Any

import torch
import torch.nn.functional as F


# ITU-R BT.601 luma weights (as used for grayscale in PIL and torchvision).
_LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ and back; a hue shift is a rotation of the (I, Q) chroma plane.
_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One float uniform in [low, high] from `generator` (always consumes exactly one draw)."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _grayscale(image: torch.Tensor) -> torch.Tensor:
    """(1, H, W) BT.601 luma of a (3, H, W) float image."""
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device)
    return (image * weights[:, None, None]).sum(dim=0, keepdim=True)


def _shift_hue(image: torch.Tensor, turns: float) -> torch.Tensor:
    """Rotates the chroma of a (3, H, W) float RGB image by `turns` of a full turn in YIQ space (luma kept)."""
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)
    angle = 2.0 * math.pi * turns
    rotate = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, math.cos(angle), -math.sin(angle)], [0.0, math.sin(angle), math.cos(angle)]],
        dtype=torch.float64,
    )
    matrix = (torch.linalg.inv(to_yiq) @ rotate @ to_yiq).to(dtype=image.dtype, device=image.device)
    return torch.einsum("ij,jhw->ihw", matrix, image)


class DepthAugmentation:
    """Random flip/rotation/scale/translation of image and depth together, and photometric jitter of the image.

    Geometry: with probability `flip` the sample is mirrored left-right (exactly, with `torch.flip`); then one affine
    warp about the image centre rotates by an angle uniform in +-`rotation` degrees (positive = clockwise as
    displayed), scales by a factor uniform in 1 +- `scale` and shifts by up to +-`translation` of the width/height
    (`apply` documents the parameters). The image is resampled bilinearly, the
    depth by NEAREST neighbour: every output depth value is an input depth value, or 0 ("no measurement", as in the
    datasets' PNGs) where the pixel comes from outside the frame. Depth values are NOT divided by the scale factor:
    zooming the image by s about the centre is what a focal length s times longer would see from the same place, so
    the depth is unchanged and the sample's "focal" is multiplied by s instead (iDisc/AdaBins likewise keep depth
    under small random scaling). Image pixels from outside the frame are black.

    Photometry (image only), in this fixed order: brightness (multiply by b), contrast (blend with the mean luma by
    c), saturation (blend with the per-pixel luma by s), hue (rotate the chroma by h turns), gamma (raise to g);
    b, c, s, g uniform in 1 +- their strength, h uniform in +-`hue`. The image stays uint8 (3, H, W).

    A strength of 0 disables its part; with all strengths 0 the transform returns the sample unchanged (bit-exact).
    Randomness depends only on (seed, epoch, sample["id"]) (two samples with the same id get the same draw): call
    `set_epoch` at the start of every epoch. With
    DataLoader `persistent_workers=True` the workers keep the copy they started with, so set the epoch before the
    workers start or use non-persistent workers.
    """

    def __init__(
        self,
        *,
        flip: float = 0.5,
        rotation: float = 5.0,
        scale: float = 0.1,
        translation: float = 0.1,
        brightness: float = 0.1,
        contrast: float = 0.1,
        saturation: float = 0.1,
        gamma: float = 0.1,
        hue: float = 0.1,
        seed: int = 0,
    ) -> None:
        # name -> (value, largest allowed value, whether that value itself is allowed, what the value means)
        limits = {
            "flip": (flip, 1.0, True, "a probability"),
            "rotation": (rotation, 180.0, True, "degrees"),
            "scale": (scale, 1.0, False, "the zoom factor 1 - scale must stay positive"),
            "translation": (translation, 1.0, True, "a fraction of the image size"),
            "brightness": (brightness, 1.0, True, "the factor 1 - brightness must not be negative"),
            "contrast": (contrast, 1.0, True, "the factor 1 - contrast must not be negative"),
            "saturation": (saturation, 1.0, True, "the factor 1 - saturation must not be negative"),
            "gamma": (gamma, 1.0, False, "the exponent 1 - gamma must stay positive"),
            "hue": (hue, 0.5, True, "a fraction of a full turn"),
        }
        for name, (value, upper, inclusive, meaning) in limits.items():
            valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not valid or value < 0.0 or value > upper or (value == upper and not inclusive):
                interval = f"[0, {upper}]" if inclusive else f"[0, {upper})"
                raise ValueError(f"`{name}` must be a number in {interval} ({meaning}); got {value!r}.")
        if not isinstance(seed, int):
            raise ValueError(f"`seed` must be an int, got {seed!r}.")
        self.flip = float(flip)
        self.rotation = float(rotation)
        self.scale = float(scale)
        self.translation = float(translation)
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.saturation = float(saturation)
        self.gamma = float(gamma)
        self.hue = float(hue)
        self.seed = seed
        self.epoch = 0

    def __repr__(self) -> str:
        """The constructor call that rebuilds this transform (plus the current epoch)."""
        names = ("flip", "rotation", "scale", "translation", "brightness", "contrast", "saturation", "gamma", "hue")
        arguments = ", ".join(f"{name}={getattr(self, name)}" for name in names)
        return f"{type(self).__name__}({arguments}, seed={self.seed}) [epoch {self.epoch}]"

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose augmentations `__call__` draws (each epoch sees different ones)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"`epoch` must be a non-negative int, got {epoch!r}.")
        self.epoch = epoch

    def generator_for(self, sample_id: str) -> torch.Generator:
        """The CPU generator of `sample_id` in the current epoch, seeded from sha256 of "seed:epoch:id"."""
        digest = hashlib.sha256(f"{self.seed}:{self.epoch}:{sample_id}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))

    def draw(self, sample_id: str) -> dict[str, float | bool]:
        """The random parameters for `sample_id` in the current epoch (the same every time they are drawn)."""
        generator = self.generator_for(sample_id)
        return {
            "flip": _uniform(generator, 0.0, 1.0) < self.flip,
            "angle": _uniform(generator, -self.rotation, self.rotation),
            "scale": _uniform(generator, 1.0 - self.scale, 1.0 + self.scale),
            "shift_x": _uniform(generator, -self.translation, self.translation),
            "shift_y": _uniform(generator, -self.translation, self.translation),
            "brightness": _uniform(generator, 1.0 - self.brightness, 1.0 + self.brightness),
            "contrast": _uniform(generator, 1.0 - self.contrast, 1.0 + self.contrast),
            "saturation": _uniform(generator, 1.0 - self.saturation, 1.0 + self.saturation),
            "hue": _uniform(generator, -self.hue, self.hue),
            "gamma": _uniform(generator, 1.0 - self.gamma, 1.0 + self.gamma),
        }

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """A new, augmented sample (the input is left untouched), with the parameters `draw(sample["id"])`."""
        _validated(sample)
        return self.apply(sample, self.draw(str(sample["id"])))

    @staticmethod
    def apply(sample: dict[str, Any], params: dict[str, float | bool]) -> dict[str, Any]:
        """A new sample transformed with explicit parameters, the keys `draw` returns: flip (bool), angle (degrees,
        clockwise), scale (zoom factor about the centre), shift_x / shift_y (fractions of width / height, positive
        moves the content right / down), brightness, contrast, saturation, gamma (factors, 1 = unchanged), hue
        (turns). Keys other than image, depth and focal are kept. The flip is exact; the warp is skipped when the
        angle is 0, the scale 1 and there is no shift."""
        image, depth = _validated(sample)
        focal = sample.get("focal")
        if params["flip"]:
            image, depth = torch.flip(image, dims=[-1]), torch.flip(depth, dims=[-1])
        if params["angle"] != 0.0 or params["scale"] != 1.0 or params["shift_x"] != 0.0 or params["shift_y"] != 0.0:
            image, depth = _warp(image, depth, params)
            if focal is not None:
                focal = float(focal) * float(params["scale"])
        result = dict(sample)
        result.update(image=_jitter(image, params), depth=depth)
        if focal is not None:
            result["focal"] = focal
        return result


def _validated(sample: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample's image and depth after checking they form a valid depth SAMPLE; clear errors otherwise."""
    if not isinstance(sample, dict) or not {"image", "depth", "id"} <= sample.keys():
        keys = sorted(sample) if isinstance(sample, dict) else type(sample).__name__
        raise ValueError(f"DepthAugmentation expects a sample dict with 'image', 'depth' and 'id'; got {keys}.")
    image, depth = sample["image"], sample["depth"]
    name = sample["id"]
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        described = (image.dtype, tuple(image.shape)) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"Sample {name}: 'image' must be a torch.uint8 tensor of shape (3, H, W), got {described}.")
    if not isinstance(depth, torch.Tensor) or depth.dtype != torch.float32 or depth.shape != image.shape[1:]:
        described = (depth.dtype, tuple(depth.shape)) if isinstance(depth, torch.Tensor) else type(depth).__name__
        raise ValueError(
            f"Sample {name}: 'depth' must be a torch.float32 tensor of shape {tuple(image.shape[1:])} "
            f"(the image's height and width), got {described}."
        )
    return image, depth


def _warp(image: torch.Tensor, depth: torch.Tensor, params: dict[str, float | bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotates/scales/shifts about the centre: image bilinear, depth nearest, zeros from outside the frame."""
    height, width = depth.shape
    angle = math.radians(float(params["angle"]))
    scale = float(params["scale"])
    # Inverse map in pixel units: input = centre + R(-angle) (output - centre - shift) / scale.
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    shift_x, shift_y = float(params["shift_x"]) * width, float(params["shift_y"]) * height
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64, device=depth.device),
        torch.arange(width, dtype=torch.float64, device=depth.device),
        indexing="ij",
    )
    dx, dy = xs - centre_x - shift_x, ys - centre_y - shift_y
    source_x = centre_x + cos * dx + sin * dy
    source_y = centre_y - sin * dx + cos * dy
    # grid_sample's align_corners=True coordinates: -1 and 1 are the centres of the first and last pixel.
    grid_x = source_x * (2.0 / max(width - 1, 1)) - 1.0
    grid_y = source_y * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1).to(torch.float32)[None]
    warped_image = F.grid_sample(
        image[None].to(torch.float32), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )[0]
    warped_depth = F.grid_sample(
        depth[None, None], grid, mode="nearest", padding_mode="zeros", align_corners=True
    )[0, 0]
    return warped_image.round().clamp(0, 255).to(torch.uint8), warped_depth


def _jitter(image: torch.Tensor, params: dict[str, float | bool]) -> torch.Tensor:
    """Brightness, contrast, saturation, hue, gamma (fixed order) on a uint8 image; parts at identity are skipped,
    and an image no part touches is returned as it is."""
    brightness, contrast, saturation = float(params["brightness"]), float(params["contrast"]), float(params["saturation"])
    hue, gamma = float(params["hue"]), float(params["gamma"])
    if (brightness, contrast, saturation, hue, gamma) == (1.0, 1.0, 1.0, 0.0, 1.0):
        return image
    values = image.to(torch.float32) / 255.0
    if brightness != 1.0:
        values = (values * brightness).clamp(0.0, 1.0)
    if contrast != 1.0:
        mean = _grayscale(values).mean()
        values = ((values - mean) * contrast + mean).clamp(0.0, 1.0)
    if saturation != 1.0:
        gray = _grayscale(values)
        values = ((values - gray) * saturation + gray).clamp(0.0, 1.0)
    if hue != 0.0:
        values = _shift_hue(values, hue).clamp(0.0, 1.0)
    if gamma != 1.0:
        values = values**gamma
    return (values * 255.0).round().to(torch.uint8)
