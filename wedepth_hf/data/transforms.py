"""Training augmentations for depth samples (the WEDepth/iDisc recipe), torch only and reproducible per sample.

`DepthAugmentation` follows the authors' `dataset/dataset.py` (`transform_train`): a horizontal flip, then a random
number of distinct operations drawn by weight (photometric ones on the image, geometric ones on image and depth
together), each applied separately in the order drawn. Its random numbers come from a `torch.Generator` seeded with a
hash of (seed, epoch, sample id), never from the global RNG, so DataLoader workers, several processes and resumed runs
all draw the same augmentation for the same sample in the same epoch.
"""

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F


# The operations, in the order of the authors' augmentation space. "identity" draws an operation slot that changes
# nothing, so that (with the count distribution) part of the samples keep fewer real operations.
OPERATIONS: tuple[str, ...] = (
    "identity",
    "brightness",
    "contrast",
    "saturation",
    "gamma",
    "hue",
    "translation",
    "scale",
    "rotation",
)
# The authors' weights (nyu.json and kitti.json): every operation above 1 (identity is 1 in their code).
DEFAULT_OP_WEIGHTS: dict[str, float] = {name: 1.0 for name in OPERATIONS}
# Probabilities of drawing 1, 2, 3, 4 operations (the authors' `transform_train`).
DEFAULT_NUM_OPS_PROBS: tuple[float, ...] = (0.3, 0.4, 0.2, 0.1)
# Operations of the authors' augmentation space with weight 0 in both their configs: never drawn there, not implemented.
UNIMPLEMENTED_OPERATIONS: tuple[str, ...] = ("sharpness", "posterize", "solarize", "equalize", "autocontrast")

# ITU-R BT.601 luma weights (as used for grayscale in PIL and torchvision).
_LUMA = (0.299, 0.587, 0.114)

OpValue = float | tuple[float, float] | None


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One float uniform in [low, high] from `generator` (always consumes exactly one draw)."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _categorical(generator: torch.Generator, weights: Sequence[float]) -> int:
    """An index drawn with probability proportional to `weights` (one draw); zero-weight indices are never drawn."""
    target = _uniform(generator, 0.0, 1.0) * sum(weights)
    cumulative = 0.0
    for index, weight in enumerate(weights):
        cumulative += weight
        if weight > 0 and target < cumulative:
            return index
    return max(index for index, weight in enumerate(weights) if weight > 0)  # float round-off at the very top


def _check_number(name: str, value: Any, upper: float, inclusive: bool, meaning: str) -> float:
    """`value` as a float if it is a finite number in [0, upper] (or [0, upper)); a ValueError saying why otherwise."""
    valid = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not valid or value < 0.0 or value > upper or (value == upper and not inclusive):
        interval = f"[0, {upper}]" if inclusive else f"[0, {upper})"
        raise ValueError(f"`{name}` must be a number in {interval} ({meaning}); got {value!r}.")
    return float(value)


def resolve_op_weights(op_weights: Mapping[str, float] | None) -> dict[str, float]:
    """`DEFAULT_OP_WEIGHTS` with the weights given in `op_weights` replacing theirs, checked (clear errors)."""
    if op_weights is not None and not isinstance(op_weights, Mapping):
        raise ValueError(f"`op_weights` must map operation names to weights, got {type(op_weights).__name__}.")
    weights = dict(DEFAULT_OP_WEIGHTS)
    for name, weight in (op_weights or {}).items():
        if name not in weights:
            hint = (
                f" ({name} is in the authors' augmentation space with weight 0 in their configs; not implemented)"
                if name in UNIMPLEMENTED_OPERATIONS
                else ""
            )
            raise ValueError(f"Unknown augmentation operation {name!r}{hint}; choose among {', '.join(OPERATIONS)}.")
        weights[name] = _check_number(f"op_weights[{name!r}]", weight, math.inf, False, "a relative weight")
    if not any(weights.values()):
        raise ValueError("At least one augmentation operation needs a positive weight (`identity` draws no change).")
    return weights


def check_num_ops_probs(num_ops_probs: Sequence[float], op_weights: Mapping[str, float]) -> tuple[float, ...]:
    """`num_ops_probs` (probabilities of drawing 1, 2, ... operations) as a tuple, after checking that they sum to 1
    and that no count with a positive probability exceeds the number of operations with a positive weight."""
    if isinstance(num_ops_probs, (str, bytes)) or not isinstance(num_ops_probs, Sequence) or not num_ops_probs:
        raise ValueError(f"`num_ops_probs` must be a non-empty list of probabilities, got {num_ops_probs!r}.")
    probs = tuple(
        _check_number(f"num_ops_probs[{index}]", value, 1.0, True, "a probability")
        for index, value in enumerate(num_ops_probs)
    )
    if abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(
            f"`num_ops_probs` must sum to 1 (entry i: probability of drawing i + 1 operations); got {probs}."
        )
    most = max(count for count, prob in enumerate(probs, start=1) if prob > 0)
    available = sum(1 for weight in op_weights.values() if weight > 0)
    if most > available:
        raise ValueError(
            f"`num_ops_probs` gives a positive probability to drawing {most} distinct operations, but only {available} "
            f"have a positive weight; shorten `num_ops_probs` or give more operations a weight."
        )
    return probs


class DepthAugmentation:
    """The authors' training augmentation: flip, then a random number of distinct random operations, in order.

    Per sample: with probability `flip` it is mirrored left-right (exactly, with `torch.flip`). Then the number of
    operations is drawn from `num_ops_probs` (entry i: probability of i + 1 operations; the authors' 0.3, 0.4, 0.2,
    0.1), and that many DISTINCT operations are drawn without replacement, each with probability proportional to its
    weight among those not drawn yet (`op_weights` over `OPERATIONS`; ops not named keep `DEFAULT_OP_WEIGHTS`, the
    authors' 1; weight 0 = never drawn). They are applied one after the other, in the order drawn:

    - identity: nothing (its slot makes fewer real operations more likely);
    - brightness, contrast, saturation: factor 10 ** U(-strength, strength); the image is multiplied by it, blended
      with its mean luma, or blended with its per-pixel luma (torchvision's `adjust_*` semantics), clamped to [0, 1];
    - gamma: image ** U(1 - gamma, 1 + gamma) (gain 1);
    - hue: the HSV hue shifted by U(-hue, hue) turns (torchvision's `adjust_hue`);
    - translation: int(width * U(-t, t)) and int(height * U(-t, t)) pixels (positive: right / down);
    - scale: zoom by U(1, 1 + scale) about the centre (zoom in only), the sample's "focal" multiplied by it;
    - rotation: U(-rotation, rotation) degrees about the centre, positive clockwise as displayed.

    Each geometric operation is its own warp: the image bicubic, the depth NEAREST, so every output depth value is an
    input depth value, or 0 ("no measurement", as in the datasets' PNGs; the loss ignores it) where the pixel comes
    from outside the frame; outside image pixels are black. Depth values are NOT rescaled: zooming by s about the
    centre is what a focal length s times longer sees from the same place. Every operation maps the uint8 (3, H, W)
    image to a uint8 image (rounded), as the authors' PIL operations do; drawn operations whose parameters are neutral
    (strength 0) change nothing, bit for bit. The authors' sharpness, posterize, solarize, equalize and autocontrast
    (weight 0 in their configs) are not implemented.

    Randomness depends only on (seed, epoch, sample["id"]) (two samples with the same id get the same draw): call
    `set_epoch` at the start of every epoch. With DataLoader `persistent_workers=True` the workers keep the copy they
    started with, so set the epoch before the workers start or use non-persistent workers.
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
        op_weights: Mapping[str, float] | None = None,
        num_ops_probs: Sequence[float] = DEFAULT_NUM_OPS_PROBS,
        seed: int = 0,
    ) -> None:
        self.flip = _check_number("flip", flip, 1.0, True, "a probability")
        self.rotation = _check_number("rotation", rotation, 180.0, True, "degrees")
        self.scale = _check_number("scale", scale, 1.0, True, "the largest zoom is 1 + scale")
        self.translation = _check_number("translation", translation, 1.0, True, "a fraction of the image size")
        self.brightness = _check_number("brightness", brightness, 1.0, True, "log10 of the largest factor")
        self.contrast = _check_number("contrast", contrast, 1.0, True, "log10 of the largest factor")
        self.saturation = _check_number("saturation", saturation, 1.0, True, "log10 of the largest factor")
        self.gamma = _check_number("gamma", gamma, 1.0, False, "the exponent 1 - gamma must stay positive")
        self.hue = _check_number("hue", hue, 0.5, True, "a fraction of a full turn")
        self.op_weights = resolve_op_weights(op_weights)
        self.num_ops_probs = check_num_ops_probs(num_ops_probs, self.op_weights)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"`seed` must be an int, got {seed!r}.")
        self.seed = seed
        self.epoch = 0

    def __repr__(self) -> str:
        """The constructor call that rebuilds this transform (plus the current epoch)."""
        names = (
            "flip",
            "rotation",
            "scale",
            "translation",
            "brightness",
            "contrast",
            "saturation",
            "gamma",
            "hue",
            "op_weights",
            "num_ops_probs",
        )
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

    def draw(self, sample_id: str) -> dict[str, Any]:
        """The random parameters for `sample_id` in the current epoch (the same every time they are drawn):
        {"flip": bool, "ops": [(operation name, value), ...] in the order they are applied}; `apply` documents the
        values."""
        generator = self.generator_for(sample_id)
        flip = _uniform(generator, 0.0, 1.0) < self.flip
        count = 1 + _categorical(generator, self.num_ops_probs)
        names = list(self.op_weights)
        weights = list(self.op_weights.values())
        ops: list[tuple[str, OpValue]] = []
        for _ in range(count):
            index = _categorical(generator, weights)
            weights[index] = 0.0  # without replacement: the operations of one sample are distinct
            ops.append((names[index], self._draw_value(names[index], generator)))
        return {"flip": flip, "ops": ops}

    def _draw_value(self, name: str, generator: torch.Generator) -> OpValue:
        """The random parameter of operation `name` (the distributions of the class docstring)."""
        if name == "identity":
            return None
        if name in ("brightness", "contrast", "saturation"):
            strength = getattr(self, name)
            return 10.0 ** _uniform(generator, -strength, strength)
        if name == "gamma":
            return _uniform(generator, 1.0 - self.gamma, 1.0 + self.gamma)
        if name == "hue":
            return _uniform(generator, -self.hue, self.hue)
        if name == "translation":
            return (
                _uniform(generator, -self.translation, self.translation),
                _uniform(generator, -self.translation, self.translation),
            )
        if name == "scale":
            return _uniform(generator, 1.0, 1.0 + self.scale)
        return _uniform(generator, -self.rotation, self.rotation)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """A new, augmented sample (the input is left untouched), with the parameters `draw(sample["id"])`."""
        _validated(sample)
        return self.apply(sample, self.draw(str(sample["id"])))

    @staticmethod
    def apply(sample: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
        """A new sample transformed with explicit parameters, the form `draw` returns: "flip" (bool, applied first)
        and "ops", a list of (name, value) applied in order: identity None; brightness, contrast, saturation, gamma
        factors (1 = unchanged); hue in turns; translation (fx, fy), shifting by int(width * fx), int(height * fy)
        pixels; scale, a zoom factor about the centre; rotation in degrees, clockwise. Keys other than image, depth
        and focal are kept. The flip is exact; neutral values change nothing."""
        image, depth = _validated(sample)
        focal = sample.get("focal")
        if params["flip"]:
            image, depth = torch.flip(image, dims=[-1]), torch.flip(depth, dims=[-1])
        height, width = depth.shape
        for name, value in params["ops"]:
            if name not in OPERATIONS:
                raise ValueError(f"Unknown augmentation operation {name!r}; choose among {', '.join(OPERATIONS)}.")
            if name == "translation":
                image, depth = _warp(image, depth, shift_x=int(width * value[0]), shift_y=int(height * value[1]))
            elif name == "scale":
                image, depth = _warp(image, depth, zoom=float(value))
                if focal is not None:
                    focal = float(focal) * float(value)
            elif name == "rotation":
                image, depth = _warp(image, depth, angle=float(value))
            elif name != "identity":
                image = _PHOTOMETRIC[name](image, float(value))
        result = dict(sample)
        result.update(image=image, depth=depth)
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


def _warp(
    image: torch.Tensor,
    depth: torch.Tensor,
    *,
    angle: float = 0.0,
    zoom: float = 1.0,
    shift_x: int = 0,
    shift_y: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotates by `angle` degrees (clockwise) and zooms by `zoom` about the centre, then shifts by whole pixels, as
    torchvision's `affine`: image bicubic, depth nearest, zeros from outside the frame. Neutral values: no change."""
    if angle == 0.0 and zoom == 1.0 and shift_x == 0 and shift_y == 0:
        return image, depth
    height, width = depth.shape
    radians = math.radians(angle)
    # Inverse map in pixel units: input = centre + R(-angle) (output - centre - shift) / zoom.
    cos, sin = math.cos(radians) / zoom, math.sin(radians) / zoom
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
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
        image[None].to(torch.float32), grid, mode="bicubic", padding_mode="zeros", align_corners=True
    )[0]
    warped_depth = F.grid_sample(depth[None, None], grid, mode="nearest", padding_mode="zeros", align_corners=True)[
        0, 0
    ]
    return warped_image.round().clamp(0, 255).to(torch.uint8), warped_depth


def _to_unit(image: torch.Tensor) -> torch.Tensor:
    """A uint8 image as float32 in [0, 1]."""
    return image.to(torch.float32) / 255.0


def _to_uint8(values: torch.Tensor) -> torch.Tensor:
    """A [0, 1] float image back to uint8 (rounded, clamped)."""
    return (values * 255.0).round().clamp(0, 255).to(torch.uint8)


def _grayscale(values: torch.Tensor) -> torch.Tensor:
    """(1, H, W) BT.601 luma of a (3, H, W) float image."""
    weights = torch.tensor(_LUMA, dtype=values.dtype, device=values.device)
    return (values * weights[:, None, None]).sum(dim=0, keepdim=True)


def _blend(values: torch.Tensor, other: torch.Tensor | float, factor: float) -> torch.Tensor:
    """factor * values + (1 - factor) * other, clamped to [0, 1] (torchvision's `_blend`)."""
    return (factor * values + (1.0 - factor) * other).clamp(0.0, 1.0)


def _adjust_brightness(image: torch.Tensor, factor: float) -> torch.Tensor:
    """The image multiplied by `factor` (blended with black), clamped."""
    return image if factor == 1.0 else _to_uint8(_blend(_to_unit(image), 0.0, factor))


def _adjust_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """The image blended with the mean of its grayscale version by `factor`, clamped."""
    if factor == 1.0:
        return image
    values = _to_unit(image)
    return _to_uint8(_blend(values, _grayscale(values).mean(), factor))


def _adjust_saturation(image: torch.Tensor, factor: float) -> torch.Tensor:
    """The image blended with its per-pixel grayscale version by `factor`, clamped."""
    if factor == 1.0:
        return image
    values = _to_unit(image)
    return _to_uint8(_blend(values, _grayscale(values), factor))


def _adjust_gamma(image: torch.Tensor, gamma: float) -> torch.Tensor:
    """image ** gamma on [0, 1] values (gain 1)."""
    return image if gamma == 1.0 else _to_uint8(_to_unit(image) ** gamma)


def _rgb_to_hsv(values: torch.Tensor) -> torch.Tensor:
    """(3, H, W) HSV, hue in turns [0, 1), of a (3, H, W) RGB float image in [0, 1]."""
    red, green, blue = values.unbind(0)
    largest, smallest = values.max(dim=0).values, values.min(dim=0).values
    chroma = largest - smallest
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    saturation = torch.where(largest > 0, chroma / torch.where(largest > 0, largest, torch.ones_like(largest)), 0.0)
    sector = torch.where(
        largest == red,
        ((green - blue) / safe_chroma) % 6.0,
        torch.where(largest == green, (blue - red) / safe_chroma + 2.0, (red - green) / safe_chroma + 4.0),
    )
    hue = torch.where(chroma > 0, sector / 6.0, 0.0) % 1.0
    return torch.stack([hue, saturation, largest])


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] of a (3, H, W) HSV image, hue in turns."""
    hue, saturation, value = hsv.unbind(0)
    sector = hue * 6.0
    index = torch.floor(sector)
    fraction = sector - index
    index = index.long() % 6
    p = value * (1.0 - saturation)
    q = value * (1.0 - saturation * fraction)
    t = value * (1.0 - saturation * (1.0 - fraction))
    # Per sector 0..5, (red, green, blue) = (v,t,p), (q,v,p), (p,v,t), (p,q,v), (t,p,v), (v,p,q).
    red = torch.stack([value, q, p, p, t, value])
    green = torch.stack([t, value, value, q, p, p])
    blue = torch.stack([p, p, t, value, value, q])
    pick = index[None]
    return torch.cat([red.gather(0, pick), green.gather(0, pick), blue.gather(0, pick)])


def _adjust_hue(image: torch.Tensor, turns: float) -> torch.Tensor:
    """The HSV hue shifted by `turns` of a full turn (saturation and value kept)."""
    if turns == 0.0:
        return image
    hsv = _rgb_to_hsv(_to_unit(image))
    hsv[0] = (hsv[0] + turns) % 1.0
    return _to_uint8(_hsv_to_rgb(hsv))


_PHOTOMETRIC = {
    "brightness": _adjust_brightness,
    "contrast": _adjust_contrast,
    "saturation": _adjust_saturation,
    "gamma": _adjust_gamma,
    "hue": _adjust_hue,
}
