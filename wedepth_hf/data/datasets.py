"""Depth datasets that read the community's on-disk layouts, and the batching helpers shared by training and evaluation.

Every dataset returns a SAMPLE dict: {"image": uint8 (3, H, W) RGB, "depth": float32 (H, W) metres with 0 where
there is no measurement, "focal": float pixels, "id": the image's relative path}.

Layouts read here:
- The BTS/NYU/KITTI *list layout* (`DepthListDataset`): a text file with one line "<rgb> <depth> <focal>" per sample,
  paths relative to an image root and a depth root. This is the layout of the BTS/NeWCRFs/iDisc NYU-Depth v2 and
  KITTI Eigen split files (a preprocessed form of both datasets, not their original releases). The zero-shot sets
  of `wedepth_hf.evaluation` are read in the same list layout, with a per-dataset depth decoding.
- A Hugging Face `datasets` dataset with an image column and a depth column (`HFDepthDataset`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.utils import logging

from ..constants import HYPERSIM_FOCAL, KB_CROP_SIZE, KITTI_FOCAL, NYU_FOCAL
from ..image_processing_wedepth import DEFAULT_MAX_PIXELS, check_max_pixels, check_pixel_budget


if TYPE_CHECKING:
    from typing_extensions import Unpack


logger = logging.get_logger(__name__)


DEPTH_DECODINGS: tuple[str, ...] = ("auto", "png", "sunrgbd_png", "npy", "hypersim_distance")
LIST_LAYOUT = "'<rgb> <depth> <focal>' (or '<rgb> <depth>' when the dataset has a default focal)"

Entry = tuple[str, str | None, float | None]


class BadSampleError(ValueError):
    """A sample that does not load or does not pass the checks (an unreadable or 8-bit depth file, a depth map of
    another size, NaN depth...); the message names the file. The `wedepth` commands report it in one line."""


class MissingSampleFileError(BadSampleError, FileNotFoundError):
    """A bad sample whose file does not exist (a `FileNotFoundError` too)."""


def bad_sample_message(error: BadSampleError) -> str:
    """The one line that says what is wrong with a bad sample. A `DataLoader` worker re-raises the error with the
    worker's traceback in its message; the line is then that traceback's last one, without the class name."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    return text.strip().splitlines()[-1].split(": ", 1)[-1]


class PathOutsideRootError(ValueError):
    """A list line names a file outside the folder its paths are relative to, and the user did not allow that."""


def locate_list_file(split_file: str | Path, data_root: str | Path | None) -> Path | None:
    """The list file the readers open for `split_file`: the path as given when it is a file, else the one inside
    `data_root`; None when neither exists."""
    split_file = Path(split_file)
    candidates = [split_file] if data_root is None else [split_file, Path(data_root) / split_file]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


class RootContainment:
    """Checks that paths read relative to a folder stay inside it, links followed (a list line `../../x.png`, or a link
    that leads out, is a `PathOutsideRootError`), unless `allow_outside`. Each folder is resolved once, so checking
    the tens of thousands of lines of a training list costs a fraction of a second."""

    def __init__(self, root: str | Path, allow_outside: bool) -> None:
        self.root = Path(root)
        self.allow_outside = allow_outside
        self._resolved_root = os.path.realpath(self.root)
        self._inside_prefix = os.path.join(self._resolved_root, "")
        self._resolved_folders: dict[str, str] = {}

    def check(self, relative: str, source: str) -> None:
        """Raise a `PathOutsideRootError` naming `source` (where the path was read) when `relative` leaves the root."""
        if self.allow_outside:
            return
        folder, name = os.path.split(os.path.join(self.root, relative))
        if folder not in self._resolved_folders:
            self._resolved_folders[folder] = os.path.realpath(folder)
        resolved = os.path.normpath(os.path.join(self._resolved_folders[folder], name))
        if os.path.islink(resolved):
            resolved = os.path.realpath(resolved)
        if resolved != self._resolved_root and not resolved.startswith(self._inside_prefix):
            raise PathOutsideRootError(
                f"{source}: {relative} leads to {resolved}, outside {self.root}, which its paths are relative to. "
                f"Move the file inside it, or allow paths outside the root (allow_paths_outside_root: true, "
                f"--allow_paths_outside_root)."
            )


def kb_crop_box(height: int, width: int, crop_size: tuple[int, int] = KB_CROP_SIZE) -> tuple[int, int]:
    """(top, left) of the KB crop: the bottom `crop_size[0]` rows, horizontally centred: top = H - h,
    left = (W - w) // 2. Raises a ValueError for images smaller than the crop."""
    crop_height, crop_width = crop_size
    if height < crop_height or width < crop_width:
        raise ValueError(
            f"The KB crop needs an image of at least {crop_height}x{crop_width}; got {height}x{width}. Disable kb_crop "
            f"or pass a smaller kb_crop_size."
        )
    return height - crop_height, (width - crop_width) // 2


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of uint8 RGB images, (B, 3, H, W) or (3, H, W), exactly as `WEDepthImageProcessor`:
    (x / 255 - IMAGENET_DEFAULT_MEAN) / IMAGENET_DEFAULT_STD in float32, on the images' device."""
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"Expected RGB images of shape (3, H, W) or (B, 3, H, W); got {tuple(images.shape)}.")
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, dtype=torch.float32, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD, dtype=torch.float32, device=images.device).view(3, 1, 1)
    return (images.to(torch.float32) * (1 / 255) - mean) / std


def collate_depth_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack SAMPLEs into {"pixel_values" (B, 3, H, W) normalised, "labels" (B, H, W) metres, "focal" (B,), "ids"}."""
    if not samples:
        raise ValueError("Cannot collate an empty list of samples.")
    sizes = {tuple(sample["image"].shape[-2:]) for sample in samples}
    if len(sizes) > 1:
        raise ValueError(
            f"Samples of different sizes cannot be stacked into one batch: {sorted(sizes)} (ids "
            f"{[sample['id'] for sample in samples]}). Use batch_size=1, crop/resize them to one size in the "
            f"dataset's transform, or evaluate with `evaluate_depth_model`, which groups images by size."
        )
    return {
        "pixel_values": normalize_images(torch.stack([sample["image"] for sample in samples])),
        "labels": torch.stack([sample["depth"].to(torch.float32) for sample in samples]),
        "focal": torch.tensor([float(sample["focal"]) for sample in samples], dtype=torch.float32),
        "ids": [sample["id"] for sample in samples],
    }


def read_rgb(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """uint8 (3, H, W) RGB tensor from an image file of at most `max_pixels` pixels (0: any size), checked on the
    file's header before it is decoded (`check_pixel_budget`); FileNotFoundError / ValueError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    try:
        with Image.open(path) as image:
            check_pixel_budget(image.height, image.width, max_pixels)
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"Cannot read image file {path}: {error}") from error
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _read_png_values(path: Path, max_pixels: int) -> np.ndarray:
    """Raw values of a single-channel 16-bit PNG of at most `max_pixels` pixels (0: any) as float64; ValueError naming
    the file for other images (an 8-bit PNG holds 256 levels: a picture of depth, not raw depth units)."""
    with Image.open(path) as image:
        check_pixel_budget(image.height, image.width, max_pixels, name=f"Depth file {path}")
        if image.mode in ("L", "LA", "P", "1"):
            raise ValueError(
                f"Depth file {path} is an 8-bit PNG (mode {image.mode!r}), which holds only 256 levels: a picture of "
                f"depth, not depth. Expected a single-channel 16-bit PNG (mode I;16) of raw depth units (depth_scale "
                f"per metre, e.g. millimetres)."
            )
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(
                f"Depth file {path} has image mode {image.mode!r}; expected a single-channel 16-bit PNG (mode I;16)."
            )
        return np.asarray(image, dtype=np.float64)


def hypersim_distance_to_depth(distance: np.ndarray, focal: float = HYPERSIM_FOCAL) -> np.ndarray:
    """Planar depth (z) from HyperSim's distance-to-camera-centre maps.

    HyperSim stores, per pixel, the Euclidean distance from the camera centre. With the principal point at the image
    centre and pixel centres at (u + 0.5, v + 0.5), z = distance * f / sqrt(f^2 + x^2 + y^2) where x, y are the pixel
    centre's offsets from the image centre. f is 886.81 px for the 768x1024 release; pass a focal scaled with the
    width for resized maps.
    """
    height, width = distance.shape
    x = np.arange(width, dtype=np.float64) + 0.5 - width / 2
    y = np.arange(height, dtype=np.float64) + 0.5 - height / 2
    radius = np.sqrt(focal**2 + x[None, :] ** 2 + y[:, None] ** 2)
    return distance * (focal / radius)


def read_depth(
    path: Path,
    *,
    depth_scale: float,
    decoding: str = "auto",
    focal: float | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """float32 (H, W) depth in metres, 0 where unmeasured, from a depth file; an image file (PNG, TIFF) of more than
    `max_pixels` pixels (0: any size) is refused before it is decoded.

    Decodings:
        "auto": ".png" -> "png"; ".npy" -> "npy"; ".tif"/".tiff" -> a float image (mode F) in metres / depth_scale.
        "png": single-channel 16-bit PNG, value / depth_scale (NYU mm: 1000; KITTI: 256; vKITTI2 cm: 100).
        "sunrgbd_png": SUN RGB-D's 16-bit PNG whose bits are rotated by 3: mm = (v >> 3) | (v << 13) & 0xFFFF,
            then / depth_scale (1000).
        "npy": a float array (H, W) or (H, W, 1), metres * depth_scale (1 for DIODE). For DIODE, a sibling
            "<name>_depth_mask.npy" next to "<name>_depth.npy" is applied (mask 0 -> depth 0) when present.
        "hypersim_distance": like "npy" or "png", then distance-to-centre -> planar depth with `focal`
            (see `hypersim_distance_to_depth`).
    """
    if decoding not in DEPTH_DECODINGS:
        raise ValueError(f"Unknown depth decoding {decoding!r}; choose one of {', '.join(DEPTH_DECODINGS)}.")
    if not path.is_file():
        raise FileNotFoundError(f"Depth file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False).astype(np.float64)
            if values.ndim == 3 and values.shape[-1] == 1:
                values = values[..., 0]
            if path.name.endswith("_depth.npy"):
                mask_path = path.with_name(path.name[: -len("_depth.npy")] + "_depth_mask.npy")
                if mask_path.is_file():
                    values = np.where(np.load(mask_path, allow_pickle=False) > 0, values, 0.0)
        elif suffix in (".tif", ".tiff"):
            with Image.open(path) as image:
                check_pixel_budget(image.height, image.width, max_pixels, name=f"Depth file {path}")
                values = np.asarray(image, dtype=np.float64)
        elif suffix == ".png":
            values = _read_png_values(path, max_pixels)
            if decoding == "sunrgbd_png":
                raw = values.astype(np.uint32)
                values = (((raw >> 3) | (raw << 13)) & 0xFFFF).astype(np.float64)
        else:
            raise ValueError(f"Depth file {path} has an unsupported extension; expected .png, .npy or .tif.")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, ValueError) and str(path) in str(error):
            raise
        raise ValueError(f"Cannot read depth file {path}: {error}") from error
    if values.ndim != 2:
        raise ValueError(f"Depth file {path} holds an array of shape {values.shape}; expected (H, W) or (H, W, 1).")
    values = values / depth_scale
    if decoding == "hypersim_distance":
        values = hypersim_distance_to_depth(values, HYPERSIM_FOCAL if focal is None else focal)
    return values.astype(np.float32)


def _check_sample(sample: dict[str, Any], source: str, max_depth: float | None, allow_empty_depth: bool) -> None:
    """ValueError naming `source` for a depth of another size than the image, NaN/inf depth or, unless
    `allow_empty_depth`, no valid pixel."""
    image_size, depth_size = tuple(sample["image"].shape[-2:]), tuple(sample["depth"].shape)
    if image_size != depth_size:
        raise ValueError(f"{source}: depth map of size {depth_size} for an image of size {image_size}.")
    depth = sample["depth"]
    if not bool(torch.isfinite(depth).all()):
        raise ValueError(f"{source}: the depth map contains NaN or infinite values.")
    if allow_empty_depth:
        return
    valid = depth > 0
    if max_depth is not None:
        valid &= depth < max_depth
    if not bool(valid.any()):
        limit = f" below max_depth={max_depth}" if max_depth is not None else ""
        raise ValueError(f"{source}: the depth map has no valid (positive{limit}) pixel.")


def _check_depth_scale(depth_scale: float) -> None:
    """Refuse a depth scale (raw depth units per metre) that is not a positive finite number."""
    if depth_scale <= 0 or not math.isfinite(depth_scale):
        raise ValueError(f"depth_scale must be a positive number (raw units per metre); got {depth_scale}.")


class SampleReading(TypedDict, total=False):
    """The keyword arguments every depth dataset of this module takes, with their defaults in `_RobustDepthDataset`:
    what a bad sample does, the transform, the KB crop and what makes a depth map valid (see `DepthListDataset`)."""

    on_bad_sample: str
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None
    kb_crop: bool
    kb_crop_size: tuple[int, int]
    max_depth: float | None
    allow_empty_depth: bool


class _RobustDepthDataset(Dataset):
    """Shared bad-sample policy: raise (a `BadSampleError`), or replace a bad sample by the next good one and count it
    in `skipped`. With `allow_empty_depth` (evaluation) a depth map without a valid pixel is returned as it is, for
    the evaluator to skip and count, rather than being a bad sample. Its arguments are `SampleReading`'s."""

    def __init__(
        self,
        *,
        on_bad_sample: str = "raise",
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        kb_crop: bool = False,
        kb_crop_size: tuple[int, int] = KB_CROP_SIZE,
        max_depth: float | None = None,
        allow_empty_depth: bool = False,
    ) -> None:
        if on_bad_sample not in ("raise", "skip"):
            raise ValueError(f"on_bad_sample must be 'raise' or 'skip'; got {on_bad_sample!r}.")
        self.on_bad_sample = on_bad_sample
        self.transform = transform
        self.kb_crop = kb_crop
        self.kb_crop_size = tuple(kb_crop_size)
        self.max_depth = max_depth
        self.allow_empty_depth = allow_empty_depth
        self.skipped = 0
        self.skipped_ids: list[str] = []

    def _load(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def _source(self, index: int) -> str:
        raise NotImplementedError

    def _load_checked(self, index: int) -> dict[str, Any]:
        """One sample, checked and KB-cropped (when enabled), before the transform."""
        sample = self._load(index)
        _check_sample(sample, self._source(index), self.max_depth, self.allow_empty_depth)
        if self.kb_crop:
            height, width = sample["image"].shape[-2:]
            crop_height, crop_width = self.kb_crop_size
            top, left = kb_crop_box(height, width, self.kb_crop_size)
            sample["image"] = sample["image"][:, top : top + crop_height, left : left + crop_width].contiguous()
            sample["depth"] = sample["depth"][top : top + crop_height, left : left + crop_width].contiguous()
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            try:
                sample = self._load_checked(candidate)
            except (FileNotFoundError, ValueError) as error:
                if self.on_bad_sample == "raise":
                    error_class = MissingSampleFileError if isinstance(error, FileNotFoundError) else BadSampleError
                    raise error_class(str(error)) from error
                self.skipped += 1
                self.skipped_ids.append(self._source(candidate))
                logger.warning("Skipping bad sample %s: %s", self._source(candidate), error)
                continue
            return self.transform(sample) if self.transform is not None else sample
        raise ValueError(f"Every sample of this dataset is bad (last: {self._source(index)}); see the warnings above.")


class DepthListDataset(_RobustDepthDataset):
    """RGB + depth pairs from a list file in the BTS/NYU/KITTI list layout.

    Each line is "<rgb_rel_path> <depth_rel_path> <focal>" (paths relative to `image_root` and `depth_root`, a
    leading "/" allowed as in the BTS NYU files). Lines whose depth is `None` are test images without ground truth:
    they are dropped, counted in `num_without_depth` and logged. Lines with two fields use `default_focal`.

    Args:
        data_root: root directory; `image_root`/`depth_root` default to it, and relative ones are taken inside it.
        split_file: the list file (relative paths are looked up in `data_root` first), or a sequence of
            (rgb, depth, focal) entries.
        depth_scale: raw depth value per metre (1000 for millimetre PNGs, 256 for KITTI).
        default_focal: focal length for lines without one (None: such lines are an error).
        on_bad_sample: "raise" (ValueError/FileNotFoundError naming the file) or "skip" (return the next good sample,
            count it in `skipped`; do not use "skip" for evaluation, where a substitute would be scored twice).
        transform: callable SAMPLE -> SAMPLE applied last (augmentations).
        kb_crop: apply the KB crop (bottom 352 rows, centred 1216 columns) to image and depth (KITTI training).
        max_depth: a depth map must have a pixel in (0, max_depth) to be valid (None: any positive pixel).
        depth_decoding: see `read_depth` ("auto", "png", "sunrgbd_png", "npy", "hypersim_distance").
        allow_empty_depth: return a depth map without a valid pixel as it is (evaluation, which skips and counts
            it) instead of treating it as a bad sample.
        allow_paths_outside_root: accept entries that lead outside `image_root` / `depth_root` (by `..` or a link);
            by default such an entry is a `PathOutsideRootError` when the dataset is made.
        max_pixels: the largest image or depth map read (height x width; 0: any), checked before it is decoded: a
            larger one is a bad sample.
    """

    def __init__(
        self,
        data_root: str | Path,
        split_file: str | Path | Sequence[Entry],
        *,
        depth_scale: float,
        image_root: str | Path | None = None,
        depth_root: str | Path | None = None,
        default_focal: float | None = None,
        depth_decoding: str = "auto",
        allow_paths_outside_root: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **reading: Unpack[SampleReading],
    ) -> None:
        super().__init__(**reading)
        _check_depth_scale(depth_scale)
        if depth_decoding not in DEPTH_DECODINGS:
            raise ValueError(f"Unknown depth decoding {depth_decoding!r}; choose one of {', '.join(DEPTH_DECODINGS)}.")
        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise FileNotFoundError(f"Data root not found or not a directory: {self.data_root}")
        self.image_root = self.data_root / image_root if image_root is not None else self.data_root
        self.depth_root = self.data_root / depth_root if depth_root is not None else self.data_root
        for name, root in (("image_root", self.image_root), ("depth_root", self.depth_root)):
            if not root.is_dir():
                raise FileNotFoundError(f"{name} not found or not a directory: {root} (relative to {self.data_root}).")
        check_max_pixels(max_pixels)
        self.max_pixels = max_pixels
        self.depth_scale = float(depth_scale)
        self.default_focal = default_focal
        self.depth_decoding = depth_decoding
        if isinstance(split_file, (str, Path)):
            self.split_file: Path | None = self._find_split_file(Path(split_file))
            entries = self._parse_split_file(self.split_file)
        else:
            self.split_file = None
            entries = list(split_file)
        self.entries = self._entries_with_depth(entries)
        self._check_entries_inside_roots(allow_paths_outside_root)

    def _check_entries_inside_roots(self, allow_outside: bool) -> None:
        """Every image path inside `image_root` and depth path inside `depth_root` (links followed), unless allowed."""
        source = str(self.split_file or "entries")
        images = RootContainment(self.image_root, allow_outside)
        depths = RootContainment(self.depth_root, allow_outside)
        for rgb, depth, _ in self.entries:
            images.check(rgb, source)
            depths.check(depth, source)

    def _entries_with_depth(self, entries: list[Entry]) -> list[tuple[str, str, float]]:
        """The entries with ground truth, each with a focal length; lines without depth are dropped and counted."""
        source = self.split_file or "entries"
        self.num_without_depth = sum(1 for _, depth, _ in entries if depth is None)
        if self.num_without_depth:
            logger.info("%s: dropped %d lines without ground truth ('None' depth).", source, self.num_without_depth)
        with_depth: list[tuple[str, str, float]] = []
        for rgb, depth, focal in entries:
            if depth is None:
                continue
            if focal is None and self.default_focal is None:
                raise ValueError(
                    f"{source}: sample {rgb} has no focal length and this dataset has no default; expected lines "
                    f"{LIST_LAYOUT}, or pass default_focal."
                )
            with_depth.append((rgb, depth, float(self.default_focal if focal is None else focal)))
        if not with_depth:
            raise ValueError(f"{source} lists no sample with ground truth; expected lines {LIST_LAYOUT}.")
        return with_depth

    def _find_split_file(self, split_file: Path) -> Path:
        """The list file, taken as given or inside data_root; FileNotFoundError saying both places otherwise."""
        located = locate_list_file(split_file, self.data_root)
        if located is not None:
            return located
        raise FileNotFoundError(
            f"List file not found: {split_file} (also looked in {self.data_root}); expected a text file with lines "
            f"{LIST_LAYOUT}."
        )

    def _parse_split_file(self, path: Path) -> list[Entry]:
        """(rgb, depth or None, focal or None) per non-empty line; ValueError with file, line and expected layout."""
        entries: list[Entry] = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            focal: float | None = None
            if len(fields) == 3:
                try:
                    focal = float(fields[2])
                except ValueError:
                    focal = math.nan
                if not math.isfinite(focal) or focal <= 0:
                    raise ValueError(
                        f"{path}, line {number}: the focal length {fields[2]!r} is not a positive number; expected "
                        f"lines {LIST_LAYOUT}."
                    )
            elif len(fields) != 2:
                raise ValueError(
                    f"{path}, line {number}: got {len(fields)} fields in {line!r}; expected lines {LIST_LAYOUT}."
                )
            depth = None if fields[1] == "None" else fields[1].lstrip("/")
            entries.append((fields[0].lstrip("/"), depth, focal))
        return entries

    def __len__(self) -> int:
        return len(self.entries)

    def _source(self, index: int) -> str:
        rgb, depth, _ = self.entries[index]
        return f"{self.image_root / rgb} / {self.depth_root / depth}"

    def _load(self, index: int) -> dict[str, Any]:
        rgb, depth_path, focal = self.entries[index]
        try:
            image = read_rgb(self.image_root / rgb, self.max_pixels)
            depth = read_depth(
                self.depth_root / depth_path,
                depth_scale=self.depth_scale,
                decoding=self.depth_decoding,
                focal=focal,
                max_pixels=self.max_pixels,
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error} (listed in {self.split_file or 'the entries'}; image paths are relative to "
                f"{self.image_root}, depth paths to {self.depth_root}; expected lines {LIST_LAYOUT})"
            ) from error
        return {"image": image, "depth": torch.from_numpy(depth), "focal": focal, "id": rgb}


class NYUDepthDataset(DepthListDataset):
    """NYU-Depth v2 in the BTS list layout: "scene/rgb_00045.jpg scene/sync_depth_00045.png 518.8579",
    millimetre uint16 depth PNGs (depth_scale 1000), default focal 518.8579. This is the preprocessed Eigen-split
    release used by BTS/NeWCRFs/iDisc (480x640), not the original .mat file."""

    def __init__(self, data_root: str | Path, split_file: str | Path | Sequence[Entry], **kwargs: Any) -> None:
        kwargs.setdefault("depth_scale", 1000.0)
        kwargs.setdefault("default_focal", NYU_FOCAL)
        super().__init__(data_root, split_file, **kwargs)


class KITTIDepthDataset(DepthListDataset):
    """KITTI (Eigen split) in the BTS list layout: "<raw image path> <projected ground-truth path> <focal>", images
    under `image_root` (the KITTI raw data), depth under `depth_root` (the annotated depth, uint16 PNG / 256);
    depth `None` marks test images without ground truth. `kb_crop=True` (training) crops image and depth to the
    352x1216 KB crop; evaluation datasets keep the full size (the evaluator crops and pastes back)."""

    def __init__(
        self,
        data_root: str | Path,
        split_file: str | Path | Sequence[Entry],
        *,
        image_root: str | Path | None = None,
        depth_root: str | Path | None = None,
        kb_crop: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("depth_scale", 256.0)
        kwargs.setdefault("default_focal", KITTI_FOCAL)
        super().__init__(data_root, split_file, image_root=image_root, depth_root=depth_root, kb_crop=kb_crop, **kwargs)


def _is_saved_dataset(path: Path) -> bool:
    """True for a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _load_hf_dataset(dataset_or_name: Any, split: str) -> Any:
    """A `datasets.Dataset` from a Dataset, a DatasetDict, a `save_to_disk` folder, or a Hub id / loadable folder."""
    import datasets

    source = dataset_or_name
    if isinstance(source, (str, Path)):
        path = Path(source)
        source = datasets.load_from_disk(str(path)) if path.is_dir() and _is_saved_dataset(path) else None
        if source is None:
            return datasets.load_dataset(str(dataset_or_name), split=split)
    if isinstance(source, datasets.DatasetDict):
        if split not in source:
            raise ValueError(f"Split {split!r} not found in {dataset_or_name}; available: {sorted(source)}.")
        return source[split]
    if isinstance(source, datasets.Dataset):
        return source
    raise TypeError(
        f"Expected a datasets.Dataset, DatasetDict, folder or Hub id; got {type(dataset_or_name).__name__}."
    )


class HFDepthDataset(_RobustDepthDataset):
    """A Hugging Face `datasets` dataset with an image column and a depth column, as depth SAMPLEs.

    The depth column may hold float depth in metres (a TIFF mode F image, as in the common NYU mirror with columns
    `image`/`depth_map`, or a float array; `depth_scale` None or 1) or integer depth (a 16-bit PNG or integer
    array), which needs `depth_scale` (raw units per metre).

    Args:
        dataset_or_name: a `datasets.Dataset`/`DatasetDict`, a folder written by `save_to_disk`, or a Hub id or local
            folder that `datasets.load_dataset` reads.
        split: the split to use (ignored for a plain `Dataset`).
        focal_column: column with per-sample focal lengths (else `default_focal`, NaN if None: unknown).
        Other arguments as `DepthListDataset`.
    """

    def __init__(
        self,
        dataset_or_name: Any,
        split: str = "validation",
        *,
        image_column: str = "image",
        depth_column: str = "depth_map",
        depth_scale: float | None = None,
        default_focal: float | None = None,
        focal_column: str | None = None,
        **reading: Unpack[SampleReading],
    ) -> None:
        super().__init__(**reading)
        self.dataset = _load_hf_dataset(dataset_or_name, split)
        self.name = str(dataset_or_name) if isinstance(dataset_or_name, (str, Path)) else "dataset"
        columns = self.dataset.column_names
        missing = [name for name in (image_column, depth_column, focal_column) if name and name not in columns]
        if missing:
            raise ValueError(
                f"{self.name} has no column(s) {missing}; its columns are {self.dataset.column_names}. Pass "
                f"image_column/depth_column/focal_column."
            )
        if depth_scale is not None:
            _check_depth_scale(depth_scale)
        self.image_column = image_column
        self.depth_column = depth_column
        self.depth_scale = depth_scale
        self.focal_column = focal_column
        self.default_focal = default_focal

    def __len__(self) -> int:
        return len(self.dataset)

    def _source(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def _depth_array(self, value: Any, index: int) -> np.ndarray:
        """Depth in metres from a PIL image or array cell."""
        array = np.asarray(value)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim != 2:
            raise ValueError(
                f"{self._source(index)}: depth of shape {array.shape}; expected a single-channel (H, W) map."
            )
        if np.issubdtype(array.dtype, np.integer):
            if self.depth_scale is None:
                raise ValueError(
                    f"{self._source(index)}: the depth column holds integers ({array.dtype}); pass depth_scale "
                    f"(raw units per metre, e.g. 1000 for millimetres)."
                )
            return (array.astype(np.float64) / self.depth_scale).astype(np.float32)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{self._source(index)}: depth of dtype {array.dtype}; expected float metres or integers.")
        scale = 1.0 if self.depth_scale is None else self.depth_scale
        return (array.astype(np.float64) / scale).astype(np.float32)

    def _load(self, index: int) -> dict[str, Any]:
        row = self.dataset[index]
        image = row[self.image_column]
        if isinstance(image, Image.Image):
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        else:
            rgb = np.asarray(image)
            if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
                raise ValueError(
                    f"{self._source(index)}: image of shape {rgb.shape} {rgb.dtype}; expected uint8 (H, W, 3) RGB."
                )
        focal = row[self.focal_column] if self.focal_column else self.default_focal
        return {
            "image": torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous(),
            "depth": torch.from_numpy(self._depth_array(row[self.depth_column], index)),
            "focal": float("nan") if focal is None else float(focal),
            "id": f"{self.name}/{index}",
        }


__all__ = [
    "DEPTH_DECODINGS",
    "KB_CROP_SIZE",
    "KITTI_FOCAL",
    "NYU_FOCAL",
    "BadSampleError",
    "DepthListDataset",
    "HFDepthDataset",
    "KITTIDepthDataset",
    "MissingSampleFileError",
    "NYUDepthDataset",
    "PathOutsideRootError",
    "RootContainment",
    "SampleReading",
    "bad_sample_message",
    "collate_depth_samples",
    "hypersim_distance_to_depth",
    "kb_crop_box",
    "locate_list_file",
    "normalize_images",
    "read_depth",
    "read_rgb",
]
