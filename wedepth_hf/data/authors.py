"""The authors' six evaluation datasets, read and prepared as their `dataset/*.py` classes do in test mode.

WEDepth's released code scores NYU-Depth v2 and KITTI (in-domain) and SUN RGB-D, iBims-1, DDAD and Argoverse
(zero-shot) with one dataset class each. `AuthorsEvaluationDataset` reads a folder in that class's layout (its split
file and intrinsics file, its depth encoding, the lines it skips) and prepares every sample as the class does: the
image the model sees (cropped, or resized with OpenCV), the ground truth at its own size, and the valid mask (depth
range, evaluation box, DDAD's masked rows). `authors_prepare` is that preparation alone; in-training validation applies
it to the samples of the package's own readers, so that both score the same pixels.

The depth arithmetic is theirs too: float32 maps divided (or, for iBims-1, multiplied) by the dataset's scale, and
masks compared in float32. Departures, all where their code would stop: images are converted to RGB, blank split-file
lines are skipped, and a frame smaller than a dataset's crop is an error instead of a silently smaller crop.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..constants import (
    AUTHORS_DRIVING_CROP,
    AUTHORS_DRIVING_RESCALE,
    AUTHORS_NYU_CROP_SIZE,
    DDAD_MASKED_BOTTOM_ROWS,
    EIGEN_NYU_CROP,
    KB_CROP_SIZE,
    NYU_FOCAL,
)
from ..image_processing_wedepth import DEFAULT_MAX_PIXELS, check_max_pixels, check_pixel_budget
from ..metrics import crop_mask
from .datasets import BadSampleError, MissingSampleFileError, RootContainment, kb_crop_box


@dataclass(frozen=True)
class AuthorsDatasetSpec:
    """One of the authors' evaluation datasets: the facts their class hard-codes.

    Attributes:
        name: the package's name for it (`wedepth evaluate --dataset`).
        authors_class: the class in their `dataset/` package.
        split_file: the test list their class reads from the dataset folder ("<rgb> <depth> [...]" per line).
        intrinsics_file: the JSON of camera matrices (by image path) their class reads, or None.
        min_depth, max_depth: valid ground truth is min_depth < gt < max_depth; predictions are clamped to this range.
        depth_scale: raw units per metre; iBims-1 stores metres * 65535 / 50 and is multiplied by 50 / 65535.
        depth_encoding: "divide" (raw / depth_scale), "multiply" (raw * depth_scale) or "sunrgbd" (the release's
            bit rotation by 3, then / depth_scale).
        skip_missing_depth: lines whose depth file does not exist are skipped (KITTI's test list), not an error.
        uses_opencv: images are resized with OpenCV, as their class does.
    """

    name: str
    authors_class: str
    split_file: str
    intrinsics_file: str | None
    min_depth: float
    max_depth: float
    depth_scale: float
    depth_encoding: str = "divide"
    skip_missing_depth: bool = False
    uses_opencv: bool = False


AUTHORS_DATASETS: dict[str, AuthorsDatasetSpec] = {
    spec.name: spec
    for spec in (
        AuthorsDatasetSpec("nyu", "NYUDataset", "nyu_test.txt", None, 0.01, 10.0, 1000),
        AuthorsDatasetSpec(
            "kitti", "KITTIDataset", "kitti_eigen_test.txt", None, 0.01, 80.0, 256, skip_missing_depth=True
        ),
        AuthorsDatasetSpec(
            "sunrgbd", "SUNRGBDDataset", "sunrgbd_val.txt", None, 0.01, 8.0, 1000, "sunrgbd", uses_opencv=True
        ),
        AuthorsDatasetSpec("ibims", "iBimsDataset", "test.txt", None, 0.01, 10.0, 50.0 / 65535, "multiply"),
        AuthorsDatasetSpec(
            "ddad", "DDADDataset", "ddad_val.txt", "ddad_intrinsics.json", 0.01, 150.0, 256, uses_opencv=True
        ),
        AuthorsDatasetSpec(
            "argoverse", "ArgoverseDataset", "argo_val.txt", "argo_intrinsics.json", 0.01, 150.0, 256, uses_opencv=True
        ),
    )
}
"""The six datasets of the paper's tables, as the authors' classes define them."""

_DRIVING_LEFT = {"ddad": 8, "argoverse": 0}
"""The first column of the 1920-column crop of DDAD (1936-column frames) and Argoverse (1920)."""


def require_opencv() -> Any:
    """The `cv2` module; an ImportError that says how to install it when it is missing."""
    try:
        import cv2
    except ImportError as error:
        raise ImportError(
            "The authors' protocol resizes SUN RGB-D, DDAD and Argoverse images with OpenCV (INTER_LINEAR, "
            "fixed-point), which no other resize reproduces exactly. Install it with `pip install 'wedepth_hf[eval]'` "
            "(opencv-python-headless)."
        ) from error
    return cv2


def decode_authors_depth(raw: np.ndarray, spec: AuthorsDatasetSpec) -> np.ndarray:
    """float32 metres from a depth file's raw values, with the authors' float32 arithmetic."""
    if spec.depth_encoding == "sunrgbd":
        raw = np.asarray(raw, np.uint16)
        raw = np.bitwise_or(np.right_shift(raw, 3), np.left_shift(raw, 16 - 3))
        return raw.astype(np.single) / spec.depth_scale
    values = np.asarray(raw).astype(np.float32)
    if spec.depth_encoding == "multiply":
        return values * spec.depth_scale
    return values / spec.depth_scale


def _valid_range(depth: np.ndarray, spec: AuthorsDatasetSpec) -> np.ndarray:
    return np.logical_and(depth > spec.min_depth, depth < spec.max_depth)


def _eigen_box(mask: np.ndarray) -> np.ndarray:
    """The mask inside the Eigen box, in absolute rows and columns as their classes apply it."""
    top, bottom, left, right = EIGEN_NYU_CROP
    border = np.zeros_like(mask)
    border[top:bottom, left:right] = 1
    return np.logical_and(mask, border)


def _prepare_nyu_like(image: np.ndarray, depth: np.ndarray, spec: AuthorsDatasetSpec) -> tuple[np.ndarray, ...]:
    """NYU and iBims-1: the top-left 480x640 of image and depth, the Eigen box."""
    height, width = AUTHORS_NYU_CROP_SIZE
    depth = depth[:height, :width]
    return image[:height, :width], depth, _eigen_box(_valid_range(depth, spec))


def _prepare_kitti(image: np.ndarray, depth: np.ndarray, spec: AuthorsDatasetSpec) -> tuple[np.ndarray, ...]:
    """KITTI: the KB crop of image and depth (each from its own size), the Garg box computed on the crop."""
    crop_height, crop_width = KB_CROP_SIZE
    top, left = kb_crop_box(*image.shape[:2])
    image = image[top : top + crop_height, left : left + crop_width]
    top, left = kb_crop_box(*depth.shape)
    depth = depth[top : top + crop_height, left : left + crop_width]
    garg = crop_mask(crop_height, crop_width, "garg").numpy()
    return image, depth, np.logical_and(_valid_range(depth, spec), garg)


def _prepare_sunrgbd(image: np.ndarray, depth: np.ndarray, spec: AuthorsDatasetSpec) -> tuple[np.ndarray, ...]:
    """SUN RGB-D: resize to cover 480x640 (image INTER_LINEAR, depth INTER_NEAREST), centre crop, Eigen box."""
    cv2 = require_opencv()
    crop_height, crop_width = AUTHORS_NYU_CROP_SIZE
    height, width = crop_height, crop_width
    old_aspect = image.shape[1] / image.shape[0]
    if old_aspect < width / height:
        height = int(width / old_aspect)
    else:
        width = int(height * old_aspect)
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    image = image[top : top + crop_height, left : left + crop_width]
    depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    depth = depth[top : top + crop_height, left : left + crop_width]
    return image, depth, _eigen_box(_valid_range(depth, spec))


def _prepare_driving(
    image: np.ndarray, depth: np.ndarray, spec: AuthorsDatasetSpec, image_path: str
) -> tuple[np.ndarray, ...]:
    """DDAD and Argoverse: rows 180:1050 and 1920 columns; the image shrunk by 1.5 (INTER_LINEAR), the ground truth
    at the crop's size; DDAD's CAMERA_09 (named in the image's path) loses its bottom 140 rows."""
    cv2 = require_opencv()
    top, bottom, _, crop_width = AUTHORS_DRIVING_CROP
    left = _DRIVING_LEFT[spec.name]
    for what, array in (("image", image), ("depth map", depth)):
        if array.shape[0] < bottom or array.shape[1] < left + crop_width:
            raise ValueError(
                f"{spec.authors_class} crops rows {top}:{bottom} and columns {left}:{left + crop_width}; the {what} "
                f"of {image_path} is {array.shape[0]}x{array.shape[1]}. Give the dataset's full-size frames."
            )
    image = image[top:bottom, left : left + crop_width]
    new_size = (int(image.shape[1] / AUTHORS_DRIVING_RESCALE), int(image.shape[0] / AUTHORS_DRIVING_RESCALE))
    image = cv2.resize(image, new_size, interpolation=cv2.INTER_LINEAR)
    depth = depth[top:bottom, left : left + crop_width]
    mask = _valid_range(depth, spec)
    if spec.name == "ddad" and "CAMERA_09" in image_path:
        mask[mask.shape[0] - DDAD_MASKED_BOTTOM_ROWS :, :] = False
    return image, depth, mask


def authors_prepare(
    name: str, image: np.ndarray, depth: np.ndarray, image_path: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model input uint8 (h, w, 3), ground truth float32 (H, W), valid mask bool (H, W)) of one sample, as the
    authors' class for dataset `name` prepares it in test mode. `image_path` is the image's path as their class
    joins it (DDAD's camera is read from it)."""
    spec = AUTHORS_DATASETS[name]
    depth = np.asarray(depth, dtype=np.float32)
    if name in ("nyu", "ibims"):
        prepared = _prepare_nyu_like(image, depth, spec)
    elif name == "kitti":
        prepared = _prepare_kitti(image, depth, spec)
    elif name == "sunrgbd":
        prepared = _prepare_sunrgbd(image, depth, spec)
    else:
        prepared = _prepare_driving(image, depth, spec, image_path)
    image, depth, mask = prepared
    # Fresh C-contiguous copies: crops are views of (possibly read-only) decoded files, and tensors are made of them.
    return np.array(image, order="C"), np.array(depth, order="C"), np.array(mask, dtype=bool, order="C")


def prepared_sample(name: str, sample: dict[str, Any]) -> dict[str, Any]:
    """A SAMPLE of the package's readers ({"image" uint8 (3, H, W), "depth" float32 (H, W), ...}) prepared by
    `authors_prepare`: the model's input image, the ground truth and its "mask"."""
    image, depth, mask = authors_prepare(
        name, sample["image"].permute(1, 2, 0).numpy(), sample["depth"].numpy(), str(sample.get("id", ""))
    )
    return {
        **sample,
        "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
        "depth": torch.from_numpy(depth),
        "mask": torch.from_numpy(mask),
    }


class AuthorsPreparedDataset(Dataset):
    """Another dataset's SAMPLEs prepared as the authors' class for `name` prepares its own (`prepared_sample`)."""

    def __init__(self, dataset: Dataset, name: str) -> None:
        if name not in AUTHORS_DATASETS:
            raise ValueError(f"Unknown authors' dataset {name!r}; choose one of {', '.join(AUTHORS_DATASETS)}.")
        if AUTHORS_DATASETS[name].uses_opencv:
            require_opencv()
        self.dataset = dataset
        self.name = name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return prepared_sample(self.name, self.dataset[index])


def _read_image(path: Path, max_pixels: int) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an image file of at most `max_pixels` pixels (checked on its header; 0: any size)."""
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    with Image.open(path) as image:
        check_pixel_budget(image.height, image.width, max_pixels, name=f"Image file {path}")
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _read_raw_depth(path: Path, max_pixels: int) -> np.ndarray:
    """The raw values of a single-channel 16-bit depth PNG of at most `max_pixels` pixels (0: any size)."""
    if not path.is_file():
        raise FileNotFoundError(f"Depth file not found: {path}")
    with Image.open(path) as image:
        check_pixel_budget(image.height, image.width, max_pixels, name=f"Depth file {path}")
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(
                f"Depth file {path} has image mode {image.mode!r}; the authors' datasets store depth as single-channel "
                f"16-bit PNGs."
            )
        return np.asarray(image)


class AuthorsEvaluationDataset(Dataset):
    """One of the authors' six test sets, read from its folder exactly as their class reads it.

    Each item is {"image": uint8 (3, h, w), the model's input; "depth": float32 (H, W) ground truth in metres;
    "mask": bool (H, W) the pixels scored; "focal": the camera's focal length in pixels at the model's input when
    the layout gives it, else None; "id": the image's path in the split file}. The model's depth is wanted at the
    ground truth's size (H, W), which differs from the input's for DDAD and Argoverse.

    Args:
        name: "nyu", "kitti", "sunrgbd", "ibims", "ddad" or "argoverse" (`AUTHORS_DATASETS`).
        data_root: the dataset folder; every path in the split file is relative to it.
        split_file: the test list (default: the authors' file name inside `data_root`); a relative path is looked up
            in `data_root` first, then in the working directory.
        max_pixels: the largest image or depth map read (height x width; 0: any), checked before it is decoded.
        allow_paths_outside_root: accept list lines that lead outside `data_root` (by `..` or a link); by default
            such a line is a `PathOutsideRootError` when the dataset is made.

    A file that cannot be read as the layout says is a `BadSampleError` (a `MissingSampleFileError` when it does not
    exist) naming it: their loop stops on it too.
    """

    def __init__(
        self,
        name: str,
        data_root: str | Path,
        split_file: str | Path | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        allow_paths_outside_root: bool = False,
    ) -> None:
        if name not in AUTHORS_DATASETS:
            raise ValueError(f"Unknown authors' dataset {name!r}; choose one of {', '.join(AUTHORS_DATASETS)}.")
        self.spec = spec = AUTHORS_DATASETS[name]
        self.root = Path(data_root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Dataset folder not found: {self.root}")
        if spec.uses_opencv:
            require_opencv()
        split_path = self._split_path(split_file)
        focals = self._read_intrinsics()
        default_focal = NYU_FOCAL if name in ("nyu", "sunrgbd", "ibims") else None
        self.entries: list[tuple[str, str, float | None]] = []
        self.num_skipped_lines = 0
        for line in split_path.read_text().splitlines():
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{split_path}: line {line!r} has no depth path; expected '<rgb> <depth> [...]'.")
            rgb, depth = fields[0], fields[1]
            if depth == "None" or (spec.skip_missing_depth and not (self.root / depth).is_file()):
                self.num_skipped_lines += 1
                continue
            self.entries.append((rgb, depth, focals.get(rgb, default_focal)))
        if not self.entries:
            raise ValueError(f"{split_path} lists no image with ground truth.")
        check_max_pixels(max_pixels)
        self.max_pixels = max_pixels
        self.split_path = split_path
        self.split_file = str(split_file if split_file is not None else spec.split_file)
        containment = RootContainment(self.root, allow_paths_outside_root)
        for rgb, depth, _ in self.entries:
            containment.check(rgb, str(split_path))
            containment.check(depth, str(split_path))

    def _split_path(self, split_file: str | Path | None) -> Path:
        path = self.root / (split_file if split_file is not None else self.spec.split_file)
        if path.is_file():
            return path
        if split_file is not None and Path(split_file).is_file():
            return Path(split_file)
        raise FileNotFoundError(
            f"No test list {path}: the authors' {self.spec.authors_class} reads '{self.spec.split_file}' from the "
            f"dataset folder (lines '<rgb> <depth> [...]', paths relative to the folder). Pass split_file for another "
            f"name."
        )

    def _read_intrinsics(self) -> dict[str, float]:
        """{image path: focal length (px) at the model's input} from the layout's intrinsics file, if it has one."""
        if self.spec.intrinsics_file is None:
            return {}
        path = self.root / self.spec.intrinsics_file
        if not path.is_file():
            raise FileNotFoundError(
                f"No {path}: the authors' {self.spec.authors_class} reads the camera matrices from it (a JSON object "
                f"{{image path: 3x3 or 3x4 matrix}})."
            )
        try:
            matrices = json.loads(path.read_text())
            return {
                key: float(np.asarray(value, dtype=np.float64).squeeze()[0, 0]) / AUTHORS_DRIVING_RESCALE
                for key, value in matrices.items()
            }
        except (ValueError, TypeError, IndexError, AttributeError) as error:
            raise ValueError(f"{path} is not a JSON object of camera matrices: {error}") from error

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb, depth_path, focal = self.entries[index]
        try:
            image = _read_image(self.root / rgb, self.max_pixels)
            raw_depth = _read_raw_depth(self.root / depth_path, self.max_pixels)
        except FileNotFoundError as error:
            raise MissingSampleFileError(str(error)) from error
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            message = str(error) if str(self.root) in str(error) else f"{self.root / rgb}: {error}"
            raise BadSampleError(message) from error
        depth = decode_authors_depth(raw_depth, self.spec)
        image, depth, mask = authors_prepare(self.spec.name, image, depth, str(self.root / rgb))
        return {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "depth": torch.from_numpy(depth),
            "mask": torch.from_numpy(mask),
            "focal": focal,
            "id": rgb,
        }


__all__ = [
    "AUTHORS_DATASETS",
    "AuthorsDatasetSpec",
    "AuthorsEvaluationDataset",
    "AuthorsPreparedDataset",
    "authors_prepare",
    "decode_authors_depth",
    "prepared_sample",
    "require_opencv",
]
