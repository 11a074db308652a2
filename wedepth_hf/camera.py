"""The user's camera for metric depth: focal lengths from a number, a field of view or a photo's EXIF, the training
cameras of NYU-Depth v2 and KITTI, and the intrinsics of point clouds.

A WEDepth model learns the camera of its training images; `WEDepthImageProcessor.post_process_depth_estimation`
rescales its depth to another focal length (the canonical-camera transform). This module finds that focal length for
`wedepth predict --focal_length PX|auto` and `--fov DEG`.
"""

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from transformers.image_utils import SizeDict

from .constants import KB_CROP_SIZE, KITTI_FOCAL, NYU_FOCAL, NYU_SIZE
from .image_processing_wedepth import processing_resolution
from .visualization import default_intrinsics


_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_LENGTH_35MM = 0xA405
_FOCAL_PLANE_X_RESOLUTION = 0xA20E
_FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
# FocalPlaneResolutionUnit: 2 inch, 3 centimetre, 4 millimetre, 5 micrometre (EXIF 2.3; 1 is "no unit").
_MILLIMETRES_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
"""The diagonal of a 36x24 mm frame, against which EXIF's 35 mm-equivalent focal length is defined."""

NYU_TRAINING_CAMERA: dict[str, Any] = {
    "focal_length": NYU_FOCAL,
    "image_size": list(NYU_SIZE),
    "source": "NYU-Depth v2 (Kinect colour camera, fx at 640x480)",
}
# KITTI's five recording days have fx of 707.05-721.54 px; a training run records the median of its own list's focal
# lengths (`median_training_camera`). A converted KITTI checkpoint records the value of the community's KITTI
# evaluation, since the authors' repository ships no training list to take the median of.
KITTI_TRAINING_CAMERA: dict[str, Any] = {
    "focal_length": KITTI_FOCAL,
    "image_size": list(KB_CROP_SIZE),
    "source": "KITTI (fx of the 2011_09_26 drives, the community's KITTI focal, at the KB-cropped 352x1216)",
}


@dataclass(frozen=True)
class FocalLength:
    """A horizontal focal length in pixels at an image's resolution, and where it came from (for the log)."""

    pixels: float
    source: str


def focal_from_fov(width: int, fov_degrees: float) -> float:
    """The focal length in pixels of a pinhole camera whose horizontal field of view over `width` pixels is
    `fov_degrees`: width / (2 tan(fov / 2))."""
    if not 0 < fov_degrees < 180:
        raise ValueError(f"A horizontal field of view is between 0 and 180 degrees, got {fov_degrees:g}.")
    return width / (2.0 * math.tan(math.radians(fov_degrees) / 2.0))


def _positive_number(value: Any) -> float | None:
    """An EXIF rational or number as a float when it is finite and > 0, else None (a missing or zero tag)."""
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def focal_from_exif(image: Image.Image) -> FocalLength | None:
    """The focal length of a photo from its EXIF, at the image's resolution, or None when the EXIF does not give it.

    `FocalLengthIn35mmFilm` first: the lens's focal length on a 36x24 mm frame of the same field of view, measured
    along the diagonal, so f_px = f_35 * (image diagonal in pixels) / 43.27 mm; it is the same whichever way the
    photo is rotated. Otherwise `FocalLength` in millimetres with the sensor's pixel density
    (`FocalPlaneXResolution` per `FocalPlaneResolutionUnit`), where the camera records it. A focal length in
    millimetres alone is not enough: without the sensor's size it is no number of pixels.
    """
    exif = image.getexif()
    tags = {**exif, **exif.get_ifd(_EXIF_IFD)}
    diagonal = math.hypot(image.width, image.height)
    focal_35 = _positive_number(tags.get(_FOCAL_LENGTH_35MM))
    if focal_35 is not None:
        pixels = focal_35 * diagonal / FULL_FRAME_DIAGONAL_MM
        return FocalLength(pixels, f"EXIF FocalLengthIn35mmFilm ({focal_35:g} mm)")
    focal_mm = _positive_number(tags.get(_FOCAL_LENGTH))
    density = _positive_number(tags.get(_FOCAL_PLANE_X_RESOLUTION))
    unit = _MILLIMETRES_PER_UNIT.get(tags.get(_FOCAL_PLANE_RESOLUTION_UNIT, 2))
    if focal_mm is not None and density is not None and unit is not None:
        pixels = focal_mm * density / unit
        return FocalLength(pixels, f"EXIF FocalLength ({focal_mm:g} mm) and FocalPlaneXResolution")
    return None


def median_training_camera(
    focal_lengths: Iterable[float | None], image_size: tuple[int, int] | None, source: str
) -> dict[str, Any] | None:
    """The training camera of a data set: the median of its samples' focal lengths (pixels at `image_size`, the size
    its images reach the model, where known), or None when it has none."""
    values = [float(value) for value in focal_lengths if value is not None and math.isfinite(float(value))]
    if not values:
        return None
    camera: dict[str, Any] = {"focal_length": statistics.median(values), "source": source}
    if image_size is not None:
        camera["image_size"] = [int(image_size[0]), int(image_size[1])]
    return camera


def principal_point(height: int, width: int) -> tuple[float, float]:
    """The image centre, (cx, cy) = ((width - 1) / 2, (height - 1) / 2) in pixel coordinates: the principal point
    assumed when none is given."""
    return (width - 1) / 2.0, (height - 1) / 2.0


@dataclass(frozen=True)
class CameraRequest:
    """What the user said of the camera: a focal length in pixels, `auto` (each photo's EXIF), a horizontal field of
    view in degrees, or full pinhole intrinsics (fx, fy, cx, cy); at most one of them, or nothing."""

    focal_length: float | None = None
    auto: bool = False
    fov: float | None = None
    intrinsics: tuple[float, float, float, float] | None = None

    def focal_for(self, image: Image.Image) -> FocalLength | None:
        """The focal length of `image` (at its resolution) by this request, or None when it gives none for it."""
        if self.intrinsics is not None:
            return FocalLength(self.intrinsics[0], "--intrinsics fx")
        if self.focal_length is not None:
            return FocalLength(self.focal_length, "--focal_length")
        if self.fov is not None:
            return FocalLength(focal_from_fov(image.width, self.fov), f"--fov {self.fov:g}")
        if self.auto:
            return focal_from_exif(image)
        return None


def point_cloud_intrinsics(
    request: CameraRequest,
    focal: FocalLength | None,
    height: int,
    width: int,
    training_focal: float | None,
    default_focal: float,
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a point cloud, in pixels at the image's resolution: the given intrinsics; else the image's
    focal length with the principal point at the centre; else the training camera's focal scaled to the image
    (`training_focal`, which is what uncorrected depth assumes); else `default_focal`."""
    if request.intrinsics is not None:
        return request.intrinsics
    cx, cy = principal_point(height, width)
    known = (focal.pixels if focal is not None else None, training_focal)
    fx = next((value for value in known if value is not None), default_focal)
    return fx, fx, cx, cy


def image_intrinsics(
    processor: object,
    image: Image.Image,
    camera: CameraRequest,
    focal: FocalLength | None,
    processing_size: int | None = None,
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of an image's point cloud: as `camera` gives them, from the image's focal length, or the
    training camera's focal length brought to the image's resolution (what uncorrected depth assumes), or a
    60-degree view (`point_cloud_intrinsics`). `processing_size` as in `predict_images`."""
    training_focal = None
    training_camera = getattr(processor, "training_camera", None)
    size = getattr(processor, "size", None)
    if training_camera is not None and size is not None:
        resize = getattr(processor, "do_resize", True) and processing_size != 0
        if processing_size:
            size = SizeDict(shortest_edge=processing_size)
        _, processed_width = processing_resolution(image.height, image.width, size) if resize else image.size[::-1]
        training_focal = training_camera["focal_length"] * image.width / processed_width
    default_focal = default_intrinsics(image.height, image.width)[0]
    return point_cloud_intrinsics(camera, focal, image.height, image.width, training_focal, default_focal)


__all__ = [
    "image_intrinsics",
    "FULL_FRAME_DIAGONAL_MM",
    "KITTI_TRAINING_CAMERA",
    "NYU_TRAINING_CAMERA",
    "CameraRequest",
    "FocalLength",
    "focal_from_exif",
    "focal_from_fov",
    "median_training_camera",
    "point_cloud_intrinsics",
    "principal_point",
]
