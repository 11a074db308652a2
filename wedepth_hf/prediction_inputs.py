"""What prediction reads: the input image files (found, given distinct output names, sized from their headers,
decoded with their EXIF orientation) and the models with their image processors.

Shared by `wedepth predict` (`wedepth_hf.predict`), its video inputs (`wedepth_hf.video`), the demo and
`wedepth export onnx`.
"""

import glob
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps
from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation
from transformers.utils import logging

from .command_logging import CommandError, UsageError
from .configuration_wedepth import WEDepthConfig
from .image_processing_wedepth import WEDepthImageProcessor, check_pixel_budget
from .inference import MODEL_LOADING_ERRORS, model_loading_failure
from .modeling_wedepth import WEDepthForDepthEstimation, vfm_fingerprint


logger = logging.get_logger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# EXIF orientations that swap width and height (transposed / rotated by 90 degrees).
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


@dataclass
class InputImage:
    """One input file, the output name stem it gets, and its (height, width) after EXIF orientation."""

    path: Path
    output_stem: str
    size: tuple[int, int]


def expand_inputs(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Image files from files, folders (their image files, sorted, not recursive) and glob patterns.

    Returns the files (each once, in the order given) and an error message for every input that matched nothing.
    """
    files: list[Path] = []
    errors: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        """Append a file once, whichever input names it first."""
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            files.append(path)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                errors.append(f"{item}: folder has no image files ({', '.join(IMAGE_EXTENSIONS)}).")
            for candidate in found:
                add(candidate)
        elif path.is_file():
            add(path)
        elif glob.has_magic(item):
            found = sorted(Path(match) for match in glob.glob(item, recursive=True) if Path(match).is_file())
            if not found:
                errors.append(f"{item}: pattern matches no file.")
            for candidate in found:
                add(candidate)
        else:
            errors.append(f"{item}: no such file or folder.")
    return files, errors


def unique_output_stems(files: Sequence[Path]) -> list[str]:
    """Output name stems, unique among `files`: the file's stem, suffixed with its extension where two files differ
    only by extension, then, where names still collide, prefixed with as many parent folder names as make them
    unique (joined with "__")."""
    keys = [path.resolve().with_suffix("") for path in files]
    key_counts: dict[Path, int] = defaultdict(int)
    for key in keys:
        key_counts[key] += 1
    bases = [
        f"{path.stem}_{path.suffix.lstrip('.').lower()}" if key_counts[key] > 1 else path.stem
        for path, key in zip(files, keys)
    ]
    folders = [[part for part in key.parent.parts if part not in (key.anchor, "")] for key in keys]
    stems = list(bases)
    depth = 0
    while True:
        groups: dict[str, list[int]] = defaultdict(list)
        for index, stem in enumerate(stems):
            groups[stem].append(index)
        colliding = [index for indices in groups.values() if len(indices) > 1 for index in indices]
        if not colliding:
            return stems
        depth += 1
        if depth > max(len(folders[index]) for index in colliding):
            names = sorted({str(files[index]) for index in colliding})
            raise ValueError(f"Cannot give these inputs distinct output names: {names}. Rename or move one of them.")
        for index in colliding:
            stems[index] = "__".join([*folders[index][-depth:], bases[index]])


def read_image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image after its EXIF orientation, from the header only (nothing is decoded)."""
    with warnings.catch_warnings():
        # `--max_pixels` is checked on this size next; Pillow's decompression-bomb warning would only say it first
        # (its hard limit, twice `Image.MAX_IMAGE_PIXELS`, still applies).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    with image:
        width, height = image.size
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return height, width


def load_image(path: Path) -> Image.Image:
    """The fully decoded image, EXIF orientation applied, in its own mode (16-bit and float images stay so: the image
    processor reads them by its rules); raises on a truncated or corrupt file."""
    with Image.open(path) as image:
        image.load()
        return ImageOps.exif_transpose(image)


@dataclass
class LoadedModel:
    """One `--model` of `wedepth predict`: its name, the model and its image processor."""

    name: str
    model: torch.nn.Module
    processor: object


def load_processor(name: str, model: torch.nn.Module) -> object:
    """The image processor of the checkpoint `name`, or `WEDepthImageProcessor()` (with a warning) where it has none;
    a processor without a training camera takes the one the model's config records."""
    try:
        processor = AutoImageProcessor.from_pretrained(name)
    except (OSError, ValueError) as error:
        logger.warning("No image processor found with %r (%s); using WEDepthImageProcessor().", name, error)
        processor = WEDepthImageProcessor()
    if getattr(processor, "training_camera", None) is None and getattr(model.config, "training_camera", None):
        processor.training_camera = model.config.training_camera
    return processor


def load_models(names: Sequence[str], device: torch.device) -> list[LoadedModel]:
    """The models (eval mode, on `device`) and their image processors. WEDepth models whose frozen VFMs are the same
    weights share one VFM in memory; a checkpoint without a processor config gets `WEDepthImageProcessor()`. (The
    exported ONNX graphs of `--backend onnxruntime` load with `wedepth_hf.onnx_export.load_onnx_models`.)"""
    shared_vfms: dict[str, torch.nn.Module] = {}
    loaded: list[LoadedModel] = []
    for name in names:
        try:
            config = AutoConfig.from_pretrained(name)
            fingerprint = config.vfm_fingerprint if isinstance(config, WEDepthConfig) else None
            if fingerprint in shared_vfms:
                model = AutoModelForDepthEstimation.from_pretrained(name, vfm=shared_vfms[fingerprint])
            else:
                model = AutoModelForDepthEstimation.from_pretrained(name)
        except MODEL_LOADING_ERRORS as error:
            raise CommandError(model_loading_failure(name, error)) from error
        if isinstance(model, WEDepthForDepthEstimation) and len(names) > 1:
            fingerprint = fingerprint or vfm_fingerprint(model.vfm)
            if fingerprint in shared_vfms and model.vfm is not shared_vfms[fingerprint]:
                model.attach_vfm(shared_vfms[fingerprint], verified=True)
            shared_vfms.setdefault(fingerprint, model.vfm)
        loaded.append(LoadedModel(name, model, load_processor(name, model)))
    # Moving a model moves its (possibly shared) VFM in place, so shared VFMs stay shared on the device.
    for item in loaded:
        item.model.to(device).eval()
    return loaded


def collect_inputs(inputs: Sequence[str], max_pixels: int) -> tuple[list[InputImage], int]:
    """The input images with their output stems and sizes, and the number of inputs that failed (unreadable, or over
    `max_pixels`: logged and skipped). An input that names nothing, or two that cannot get distinct output names, is
    a `UsageError`."""
    files, errors = expand_inputs(inputs)
    if errors:
        raise UsageError(" ".join(errors))
    try:
        stems = unique_output_stems(files)
    except ValueError as error:
        raise UsageError(str(error)) from error
    images: list[InputImage] = []
    for path, stem in zip(files, stems):
        if stem != path.stem:
            logger.warning("%s: another input has the same name; its outputs are named %s_*.", path, stem)
        try:
            size = read_image_size(path)
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported and skipped
            logger.error("%s: cannot read the image (%s: %s); skipped.", path, type(error).__name__, error)
            continue
        try:
            check_pixel_budget(*size, max_pixels, name=str(path), setting="--max_pixels")
        except ValueError as error:  # a decompression bomb, or a genuine image over the limit: refused undecoded
            logger.error("%s Skipped.", error)
            continue
        images.append(InputImage(path, stem, size))
    return images, len(files) - len(images)


__all__ = [
    "IMAGE_EXTENSIONS",
    "InputImage",
    "LoadedModel",
    "collect_inputs",
    "expand_inputs",
    "load_image",
    "load_models",
    "load_processor",
    "read_image_size",
    "unique_output_stems",
]
