"""Saving predicted depth: lossless uint16 millimetre PNGs, colour maps with a legend in metres, PLY point clouds.

Everything here works on NumPy arrays and PIL images, so the command line (`wedepth predict`) and user code share one
implementation. The colour map is a small lookup table defined below (no matplotlib).
"""

import contextlib
import math
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from transformers.utils import logging

from .constants import MAX_UINT16_DEPTH_METRES
from .image_processing_wedepth import to_rgb_array


logger = logging.get_logger(__name__)

#: Default horizontal field of view (degrees) used for point clouds when no intrinsics are given.
DEFAULT_HORIZONTAL_FOV_DEGREES = 60.0

# Anchor colours of the depth colour map, from the smallest to the largest depth: dark blue-violet through blue,
# teal and green to yellow. Their luminance strictly increases, so brightness alone orders depths (far = bright).
_COLORMAP_ANCHORS = np.array(
    [
        [48, 4, 80],
        [62, 50, 140],
        [40, 100, 160],
        [30, 145, 150],
        [60, 185, 110],
        [150, 215, 60],
        [250, 235, 40],
    ],
    dtype=np.float64,
)


def colormap_lookup_table(num_colors: int = 256) -> np.ndarray:
    """The depth colour map as a (num_colors, 3) uint8 table, linearly interpolated between the anchor colours."""
    positions = np.linspace(0.0, 1.0, len(_COLORMAP_ANCHORS))
    samples = np.linspace(0.0, 1.0, num_colors)
    channels = [np.interp(samples, positions, _COLORMAP_ANCHORS[:, channel]) for channel in range(3)]
    return np.clip(np.round(np.stack(channels, axis=1)), 0, 255).astype(np.uint8)


def _depth_range(depth: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite positive depths; (0, 1) when there is none, a widened range when all are equal."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if valid.size == 0:
        return 0.0, 1.0
    low, high = float(valid.min()), float(valid.max())
    if high - low < 1e-6:
        high = low + max(1e-3, abs(low) * 1e-3)
    return low, high


def colorize_depth(
    depth: np.ndarray, min_depth: float | None = None, max_depth: float | None = None, num_colors: int = 256
) -> np.ndarray:
    """Colour a (H, W) depth map in metres: (H, W, 3) uint8. Invalid pixels (non-finite or <= 0) are black.

    Depths are mapped linearly from `min_depth` (darkest) to `max_depth` (brightest); by default the range of the
    map's valid depths.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"A depth map must be 2-D (height, width); got shape {depth.shape}.")
    auto_low, auto_high = _depth_range(depth)
    low = auto_low if min_depth is None else float(min_depth)
    high = auto_high if max_depth is None else float(max_depth)
    if not high > low:
        raise ValueError(f"Need min_depth < max_depth for the colour map, got {low} and {high}.")
    table = colormap_lookup_table(num_colors)
    valid = np.isfinite(depth) & (depth > 0)
    normalised = np.clip((np.where(valid, depth, low) - low) / (high - low), 0.0, 1.0)
    colors = table[np.round(normalised * (num_colors - 1)).astype(np.int64)]
    colors[~valid] = 0
    return colors


def _tick_values(low: float, high: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [low, high], always including both ends."""
    span = high - low
    raw_step = span / max(1, max_ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(factor * magnitude for factor in (1, 2, 5, 10) if factor * magnitude >= raw_step)
    first = math.ceil(low / step) * step
    ticks = [low]
    value = first
    while value < high - 0.25 * step:
        if value > low + 0.25 * step:
            ticks.append(value)
        value += step
    ticks.append(high)
    return ticks


def _format_metres(value: float, span: float) -> str:
    """A tick label in metres with as many decimals as the legend's span needs."""
    decimals = 0 if span >= 20 else 1 if span >= 2 else 2 if span >= 0.2 else 3
    return f"{value:.{decimals}f} m"


def depth_color_image(
    depth: np.ndarray, min_depth: float | None = None, max_depth: float | None = None, legend_width: int = 90
) -> Image.Image:
    """The colour-mapped depth with a legend bar on its right: tick labels in metres, near at the top.

    The result is `legend_width` pixels wider than the depth map and as tall as it (at least 64 pixels tall, the
    map is padded with white below when it is shorter).
    """
    depth = np.asarray(depth, dtype=np.float64)
    colors = colorize_depth(depth, min_depth, max_depth)
    auto_low, auto_high = _depth_range(depth)
    low = auto_low if min_depth is None else float(min_depth)
    high = auto_high if max_depth is None else float(max_depth)
    height, width = depth.shape
    canvas_height = max(height, 64)
    canvas = Image.new("RGB", (width + legend_width, canvas_height), (255, 255, 255))
    canvas.paste(Image.fromarray(colors), (0, 0))

    margin = 8
    bar_left, bar_right = width + 6, width + 6 + max(6, legend_width // 6)
    bar_top, bar_bottom = margin, canvas_height - margin
    bar_height = bar_bottom - bar_top
    table = colormap_lookup_table()
    rows = np.linspace(0, len(table) - 1, bar_height).round().astype(np.int64)
    bar = np.repeat(table[rows][:, None, :], bar_right - bar_left, axis=1)
    canvas.paste(Image.fromarray(bar), (bar_left, bar_top))

    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.rectangle((bar_left - 1, bar_top - 1, bar_right, bar_bottom), outline=(0, 0, 0))
    label_rows: list[int] = []
    for value in _tick_values(low, high, max_ticks=max(2, min(6, bar_height // 14))):
        row = bar_top + round((value - low) / (high - low) * (bar_height - 1))
        is_end = value in (low, high)
        if not is_end and any(abs(row - other) < 12 for other in (*label_rows, bar_top, bar_bottom - 1)):
            continue
        label_rows.append(row)
        draw.line((bar_right, row, bar_right + 4, row), fill=(0, 0, 0))
        label = _format_metres(value, high - low)
        text_top = min(max(row - 5, 0), canvas_height - 11)
        draw.text((bar_right + 6, text_top), label, fill=(0, 0, 0), font=font)
    return canvas


def depth_to_uint16_millimetres(depth: np.ndarray, name: str = "depth") -> np.ndarray:
    """Metres -> uint16 millimetres, rounded. Depths above 65.535 m are clipped (logged, with the count).

    Non-finite or non-positive depths become 0, the datasets' "no measurement" value, with a logged warning.
    """
    depth = np.asarray(depth, dtype=np.float64)
    invalid = ~np.isfinite(depth) | (depth <= 0)
    if invalid.any():
        logger.warning("%s: %d pixels have no valid depth (non-finite or <= 0); written as 0.", name, invalid.sum())
    too_far = ~invalid & (depth > MAX_UINT16_DEPTH_METRES)
    if too_far.any():
        logger.warning(
            "%s: %d pixels are beyond %g m, the largest depth a uint16 millimetre PNG holds; they are clipped to it.",
            name,
            too_far.sum(),
            MAX_UINT16_DEPTH_METRES,
        )
    millimetres = np.round(np.clip(np.where(invalid, 0.0, depth), 0.0, MAX_UINT16_DEPTH_METRES) * 1000.0)
    return millimetres.astype(np.uint16)


def temporary_path_beside(path: Path) -> Path:
    """A new, unused name beside `path` for a file that will replace it (or be removed)."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file whose content replaces `path` only when the block completes.

    The data goes to a new temporary file beside `path` (created exclusively, so no existing file or link is opened),
    is flushed to disk, and is renamed over `path`. An error (a full disk, an interrupt) leaves `path` as it was and
    removes the temporary file; a symbolic link at `path` is replaced by the file, and its target is never written.
    """
    path = Path(path)
    temporary = temporary_path_beside(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_together(writers: Mapping[str | Path, Callable[[BinaryIO], object]]) -> None:
    """Write several files so that they change together: all new, or (after an error) all as they were.

    Each writer fills a new temporary file beside its path (created exclusively), which is flushed to disk; only when
    every one is complete are they renamed over their paths. An error while writing (a full disk, an interrupt)
    leaves every path untouched and removes the temporary files. The renames come last, one system call each, and
    allocate no file data: only a crash between two of them could leave some paths new and others old. A symbolic link
    at a path is replaced by the file, and its target is never written.
    """
    pending: list[tuple[Path, Path]] = []
    try:
        for path, write in writers.items():
            temporary = temporary_path_beside(Path(path))
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            pending.append((temporary, Path(path)))
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, path in pending:
            os.replace(temporary, path)
    except BaseException:
        for temporary, _ in pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        raise


def save_image(image: Image.Image, path: str | Path) -> None:
    """Write a PIL image as PNG, atomically (`atomic_output`)."""
    with atomic_output(path) as handle:
        image.save(handle, format="PNG")


def save_depth_png(depth: np.ndarray, path: str | Path) -> None:
    """Write a (H, W) depth map in metres as a lossless 16-bit PNG of millimetres (read back with `/ 1000`),
    atomically."""
    save_image(Image.fromarray(depth_to_uint16_millimetres(depth, name=str(path))), path)


def load_depth_png(path: str | Path) -> np.ndarray:
    """Read a uint16 millimetre depth PNG back as float32 metres."""
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.float32) / 1000.0


def default_intrinsics(height: int, width: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a pinhole camera with a 60-degree horizontal field of view, square pixels, and the
    principal point at the image centre ((width - 1) / 2, (height - 1) / 2), in pixels."""
    focal = width / (2.0 * math.tan(math.radians(DEFAULT_HORIZONTAL_FOV_DEGREES) / 2.0))
    return focal, focal, (width - 1) / 2.0, (height - 1) / 2.0


def flying_pixels(depth: np.ndarray, max_relative_jump: float) -> np.ndarray:
    """Boolean mask of "flying pixels": pixels whose depth differs from one of their four neighbours' by more than
    `max_relative_jump` times the smaller of the two, i.e. pixels on a depth discontinuity, whose depth the network
    blends between the two surfaces and which float between them in a point cloud."""
    if not max_relative_jump > 0:
        raise ValueError(f"The largest relative depth jump must be > 0, got {max_relative_jump!r}.")
    depth = np.asarray(depth, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        vertical = np.abs(np.diff(depth, axis=0)) > max_relative_jump * np.minimum(depth[:-1], depth[1:])
        horizontal = np.abs(np.diff(depth, axis=1)) > max_relative_jump * np.minimum(depth[:, :-1], depth[:, 1:])
    mask = np.zeros(depth.shape, dtype=bool)
    mask[:-1] |= vertical
    mask[1:] |= vertical
    mask[:, :-1] |= horizontal
    mask[:, 1:] |= horizontal
    return mask


Intrinsics = tuple[float, float, float, float]
"""(fx, fy, cx, cy) of a pinhole camera, in pixels."""


def depth_to_points(
    depth: np.ndarray, image: np.ndarray, intrinsics: Intrinsics, max_relative_jump: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Back-project a depth map (z, metres) through a pinhole camera (fx, fy, cx, cy): (N, 3) float32 points and
    (N, 3) uint8 colours.

    Pixel (row v, column u) with depth z gives x = (u - cx) * z / fx, y = (v - cy) * z / fy (x right, y down,
    z forward). Only pixels with a finite depth > 0 give a point, in row-major order; with `max_relative_jump`, not
    the `flying_pixels` either.
    """
    fx, fy, cx, cy = intrinsics
    depth = np.asarray(depth, dtype=np.float64)
    image = np.asarray(image)
    if image.shape[:2] != depth.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"The image must be (H, W, 3) matching the depth map {depth.shape}; got {image.shape}.")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"Focal lengths must be positive, got fx={fx}, fy={fy}.")
    keep = np.isfinite(depth) & (depth > 0)
    if max_relative_jump is not None:
        keep &= ~flying_pixels(depth, max_relative_jump)
    rows, cols = np.nonzero(keep)
    z = depth[rows, cols]
    points = np.stack(((cols - cx) * z / fx, (rows - cy) * z / fy, z), axis=1).astype(np.float32)
    return points, image[rows, cols].astype(np.uint8)


def write_point_cloud_ply(
    file: BinaryIO, depth: np.ndarray, image: np.ndarray, intrinsics: Intrinsics, max_relative_jump: float | None = None
) -> int:
    """Write the coloured point cloud of `depth_to_points` (without flying pixels when `max_relative_jump` is
    given) to an open binary file as a binary little-endian PLY; returns the point count.

    Vertex properties: float x, y, z (metres) and uchar red, green, blue.
    """
    points, colors = depth_to_points(depth, image, intrinsics, max_relative_jump)
    fx, fy, cx, cy = intrinsics
    vertex = np.empty(
        len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )
    vertex["x"], vertex["y"], vertex["z"] = points[:, 0], points[:, 1], points[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment WEDepth point cloud, pinhole fx={fx} fy={fy} cx={cx} cy={cy}\n"
        f"element vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    file.write(header.encode("ascii"))
    file.write(vertex.tobytes())
    return len(points)


def save_point_cloud_ply(
    path: str | Path,
    depth: np.ndarray,
    image: np.ndarray,
    intrinsics: Intrinsics,
    max_relative_jump: float | None = None,
) -> int:
    """Write the coloured point cloud of `depth_to_points` as a binary little-endian PLY (`write_point_cloud_ply`),
    atomically; returns the point count."""
    with atomic_output(path) as handle:
        return write_point_cloud_ply(handle, depth, image, intrinsics, max_relative_jump)


def point_colours(image: Image.Image) -> np.ndarray:
    """An image's colours for its point cloud: (H, W, 3) uint8 RGB, read by the image processor's rules
    (`to_rgb_array`: 16-bit and float images scaled, grayscale replicated, alpha over white)."""
    return np.clip(np.round(to_rgb_array(image)), 0, 255).astype(np.uint8)


def read_point_cloud_ply(path: str | Path) -> np.ndarray:
    """Read a PLY written by `save_point_cloud_ply` as a structured array (x, y, z, red, green, blue)."""
    data = Path(path).read_bytes()
    marker = b"end_header\n"
    end = data.index(marker) + len(marker)
    header = data[:end].decode("ascii")
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path} is not a binary little-endian PLY written by save_point_cloud_ply.")
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    count = int(next(line.split()[-1] for line in header.splitlines() if line.startswith("element vertex")))
    return np.frombuffer(data[end:], dtype=dtype, count=count)


__all__ = [
    "DEFAULT_HORIZONTAL_FOV_DEGREES",
    "Intrinsics",
    "MAX_UINT16_DEPTH_METRES",
    "atomic_output",
    "colorize_depth",
    "colormap_lookup_table",
    "default_intrinsics",
    "depth_color_image",
    "depth_to_points",
    "depth_to_uint16_millimetres",
    "flying_pixels",
    "load_depth_png",
    "read_point_cloud_ply",
    "save_depth_png",
    "save_image",
    "point_colours",
    "save_point_cloud_ply",
    "temporary_path_beside",
    "write_point_cloud_ply",
    "write_together",
]
