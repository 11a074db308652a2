"""The pipeline of `wedepth predict`: find the input images, read their sizes and pixels, load the models, predict
same-size images in batches, and write each image's depth PNG, colour map and point cloud together.

`wedepth_hf.cli` parses the command line and calls `run_predict`; a mistake on the command line raises `UsageError`
(before any model is loaded), a model that does not load raises `CommandError`, and an input that fails is logged with
its file and skipped (the exit status is then 1).
"""

import argparse
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers.utils import logging

from .camera import CameraRequest, FocalLength, image_intrinsics
from .command_logging import CommandError, UsageError
from .inference import batches_by_size, predict_images
from .onnx_export import load_onnx_models
from .prediction_inputs import (
    InputImage,
    LoadedModel,
    collect_inputs,
    load_image,
    load_models,
)
from .video import check_video_arguments, predict_videos, split_video_inputs, video_settings
from .visualization import (
    atomic_output,
    depth_color_image,
    depth_to_uint16_millimetres,
    point_colours,
    write_point_cloud_ply,
    write_together,
)


logger = logging.get_logger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA if available, else MPS if available, else CPU; anything else is checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available here; use --device cpu or auto.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError(f"--device {name}: MPS is not available here; use --device cpu or auto.")
    return device


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (x86 AVX512-BF16 or AMX, Arm's BF16 extension), where
    bfloat16 autocast is faster than float32; elsewhere bfloat16 is emulated, and slower."""
    try:
        if platform.machine().lower() in ("aarch64", "arm64"):
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch build without these probes: assume no
        return False


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """`--dtype`: the named dtype; by default bfloat16 on a CPU with native bfloat16, float32 elsewhere."""
    if name is not None:
        return DTYPES[name]
    if device.type == "cpu" and cpu_has_native_bfloat16():
        logger.info("This CPU has native bfloat16: predicting under bfloat16 autocast (--dtype float32 to opt out).")
        return torch.bfloat16
    return torch.float32


def _write_outputs(
    item: InputImage,
    image: Image.Image,
    depth: torch.Tensor,
    output_dir: Path,
    args: argparse.Namespace,
    intrinsics: tuple[float, float, float, float],
) -> bool:
    """The depth PNG, the colour map and, with --save_ply, the point cloud of one image (through `intrinsics`),
    written together (`write_together`: all new, or after an error all as they were); returns whether they were
    written.

    A depth map with a non-finite value is not depth (`predict_images` has already predicted it again in float32
    when autocast was on): nothing is written for it, and neither when writing fails (a full disk); both are logged
    with the file.
    """
    depth_array = depth.numpy()
    non_finite = int(np.count_nonzero(~np.isfinite(depth_array)))
    if non_finite:
        logger.error(
            "%s: the predicted depth has %d non-finite values (NaN or infinite) of %d; nothing written for it.",
            item.path,
            non_finite,
            depth_array.size,
        )
        return False
    depth_path = output_dir / f"{item.output_stem}_depth.png"
    depth_png = Image.fromarray(depth_to_uint16_millimetres(depth_array, name=str(depth_path)))
    color = depth_color_image(depth_array)
    writers = {
        depth_path: lambda handle: depth_png.save(handle, format="PNG"),
        output_dir / f"{item.output_stem}_depth_color.png": lambda handle: color.save(handle, format="PNG"),
    }
    if args.save_ply:
        colours = point_colours(image)
        writers[output_dir / f"{item.output_stem}.ply"] = lambda handle: write_point_cloud_ply(
            handle, depth_array, colours, intrinsics, max_relative_jump=args.drop_flying_pixels
        )
    try:
        write_together(writers)
    except OSError as error:
        logger.error(
            "%s: cannot write its outputs to %s (%s); none of them was changed.",
            item.path,
            output_dir,
            error.strerror or error,
        )
        return False
    return True


def prepare_output_dirs(folders: Sequence[Path]) -> None:
    """Create the output folders and check that files can be written there, before any model is loaded; a problem
    (a file in the way, a read-only folder, a parent that cannot be created) ends the run with one line."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(folder / ".wedepth-write-check"):
                pass
            (folder / ".wedepth-write-check").unlink()
        except OSError as error:
            reason = error.strerror or error
            raise UsageError(
                f"--output_dir {folder}: cannot write there ({reason}); give a folder you can write to."
            ) from error


def _predict_and_write(
    models: Sequence[LoadedModel],
    model_dirs: Sequence[Path],
    loaded: Sequence[tuple[InputImage, Image.Image]],
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
) -> int:
    """Predict and write one batch; returns the number of its inputs whose outputs were not all written.

    Every model predicts the batch first. When that fails (an image the processor refuses, too little memory, ...),
    its images are tried one by one, so that every failure is reported with its file and the other images are still
    written.
    """
    focals = _image_focal_lengths(loaded, args)
    try:
        depths = [
            predict_images(
                model_item.model,
                model_item.processor,
                [image for _, image in loaded],
                device,
                dtype,
                args.flip_tta,
                args.processing_size,
                args.max_pixels,
                _model_focal_lengths(model_item, focals),
                labels=[str(item.path) for item, _ in loaded],
            )
            for model_item in models
        ]
    except (ValueError, RuntimeError, MemoryError, OSError) as error:
        if len(loaded) == 1:
            item = loaded[0][0]
            logger.error("%s: prediction failed (%s: %s); skipped.", item.path, type(error).__name__, error)
            return 1
        return sum(_predict_and_write(models, model_dirs, [pair], args, device, dtype) for pair in loaded)
    failures = 0
    for index, (item, image) in enumerate(loaded):
        written = [
            _write_outputs(
                item,
                image,
                model_depths[index],
                model_dir,
                args,
                _intrinsics(model_item, focals[index], image, args),
            )
            for model_item, model_depths, model_dir in zip(models, depths, model_dirs)
        ]
        failures += not all(written)
    return failures


def _model_focal_lengths(model_item: LoadedModel, focals: Sequence[FocalLength | None]) -> list[float | None] | None:
    """The focal lengths in pixels for `predict_images`, or None when no image has one or the model records no
    training camera to rescale from (`check_training_cameras` allows that only for --intrinsics)."""
    if getattr(model_item.processor, "training_camera", None) is None or all(focal is None for focal in focals):
        return None
    return [focal and focal.pixels for focal in focals]


def check_training_cameras(models: Sequence[LoadedModel], camera: CameraRequest) -> None:
    """Refuse a focal length for a model that records no training camera to rescale its depth from; with
    --intrinsics, such a model's depth is written as predicted (said once), and the intrinsics serve the PLY."""
    unknown = [item.name for item in models if getattr(item.processor, "training_camera", None) is None]
    if not unknown or camera == CameraRequest():
        return
    if camera.intrinsics is not None:
        logger.warning(
            "%s records no training camera: its depth is not rescaled to --intrinsics' fx (the point clouds use them).",
            ", ".join(unknown),
        )
        return
    raise CommandError(
        f"{', '.join(unknown)} records no training camera (its preprocessor_config.json has no `training_camera`), so "
        "its depth cannot be rescaled to your camera's focal length; leave out --focal_length and --fov, or add the "
        'camera it was trained with, e.g. "training_camera": {"focal_length": 518.8579, "image_size": [480, 640]}.'
    )


def _image_focal_lengths(
    loaded: Sequence[tuple[InputImage, Image.Image]], args: argparse.Namespace
) -> list[FocalLength | None]:
    """Each image's focal length by --focal_length / --fov / --intrinsics; with `auto`, which EXIF tag gave it, or
    (once per run) that images without one keep the training camera's depth."""
    focals = []
    for item, image in loaded:
        focal = args.camera.focal_for(image)
        if args.camera.auto and focal is not None:
            logger.info("%s: focal length %.1f px, from %s.", item.path, focal.pixels, focal.source)
        elif args.camera.auto and not args.reported_missing_exif:
            args.reported_missing_exif = True
            logger.warning(
                "%s: no EXIF focal length (FocalLengthIn35mmFilm, or FocalLength with FocalPlaneXResolution); its "
                "depth, and that of any other such image, is not corrected (the training camera is assumed).",
                item.path,
            )
        focals.append(focal)
    return focals


def _intrinsics(
    model_item: LoadedModel, focal: FocalLength | None, image: Image.Image, args: argparse.Namespace
) -> tuple[float, float, float, float]:
    """The point-cloud intrinsics of one image and model by the command's options (`image_intrinsics`)."""
    return image_intrinsics(model_item.processor, image, args.camera, focal, args.processing_size)


def _camera_request(args: argparse.Namespace) -> CameraRequest:
    """The camera the options describe; --fx --fy --cx --cy are the older spelling of --intrinsics."""
    old_spelling = (args.fx, args.fy, args.cx, args.cy)
    if any(value is not None for value in old_spelling):
        if any(value is None for value in old_spelling):
            raise UsageError("give all four of --fx --fy --cx --cy, or none (the default intrinsics are then used).")
        if args.intrinsics is not None:
            raise UsageError("give --intrinsics or --fx --fy --cx --cy, not both.")
        args.intrinsics = old_spelling
    given = [name for name in ("focal_length", "fov", "intrinsics") if getattr(args, name) is not None]
    if len(given) > 1:
        raise UsageError(f"give one of --focal_length, --fov and --intrinsics, not {' and '.join(given)}.")
    auto = args.focal_length == "auto"
    return CameraRequest(
        focal_length=None if auto else args.focal_length, auto=auto, fov=args.fov, intrinsics=args.intrinsics
    )


def _check_arguments(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """The device and dtype to predict with, after the checks of the options that argparse cannot make alone."""
    args.camera = _camera_request(args)
    args.reported_missing_exif = False
    device = resolve_device(args.device)
    if getattr(args, "backend", "torch") == "onnxruntime":
        if args.dtype not in (None, "float32") or device.type not in ("cpu", "cuda"):
            raise UsageError(
                "--backend onnxruntime runs float32 graphs on cpu or cuda; leave out --dtype and --device."
            )
        return device, torch.float32
    return device, resolve_dtype(args.dtype, device)


def _predict_batches(
    models: Sequence[LoadedModel],
    model_dirs: Sequence[Path],
    images: Sequence[InputImage],
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[int, int]:
    """Decode, predict and write the images batch by batch, with a progress bar; returns (written, failed)."""
    written = failures = 0
    progress = tqdm(total=len(images), desc="wedepth predict", unit="image", disable=args.no_progress)
    for batch in batches_by_size(images, lambda item: item.size, args.batch_size):
        loaded: list[tuple[InputImage, Image.Image]] = []
        for item in batch:
            try:
                loaded.append((item, load_image(item.path)))
            except Exception as error:  # noqa: BLE001 - any undecodable file is reported and skipped
                logger.error("%s: cannot decode the image (%s: %s); skipped.", item.path, type(error).__name__, error)
                failures += 1
        if loaded:
            batch_failures = _predict_and_write(models, model_dirs, loaded, args, device, dtype)
            failures += batch_failures
            written += len(loaded) - batch_failures
        progress.update(len(batch))
    progress.close()
    return written, failures


def _model_labels(names: Sequence[str]) -> list[str]:
    """Output sub-folder names for several models: the last part of each name, made unique with a suffix."""
    labels: list[str] = []
    for name in names:
        base = Path(name.rstrip("/")).name or "model"
        label, count = base, 1
        while label in labels:
            count += 1
            label = f"{base}_{count}"
        labels.append(label)
    return labels


def run_predict(args: argparse.Namespace) -> int:
    """`wedepth predict` with parsed arguments: returns the exit status (0 if every image was written, 1 otherwise).

    Raises `UsageError` for a mistake on the command line (found before any model is loaded) and `CommandError` when
    no input is left to predict or a model does not load.
    """
    device, dtype = _check_arguments(args)
    image_inputs, videos = split_video_inputs(args.inputs, args.frames_as_video)
    check_video_arguments(args, videos)
    images, failures = collect_inputs(image_inputs, args.max_pixels) if image_inputs else ([], 0)
    if not images and not videos:
        raise CommandError(f"{failures} input(s) failed; none is left to predict.")
    output_dir = Path(args.output_dir)
    labels = _model_labels(args.model)
    model_dirs = [output_dir / label if len(labels) > 1 else output_dir for label in labels]
    prepare_output_dirs(model_dirs)
    onnx = getattr(args, "backend", "torch") == "onnxruntime"
    models = load_onnx_models(args.model, device) if onnx else load_models(args.model, device)
    check_training_cameras(models, args.camera)
    written, batch_failures = _predict_batches(models, model_dirs, images, args, device, dtype) if images else (0, 0)
    failures += batch_failures
    if videos:
        settings = video_settings(args)
        failures += predict_videos(models, model_dirs, videos, settings, device, dtype)
    if failures:
        logger.error("%d input(s) failed; %d image(s) were written to %s.", failures, written, output_dir)
        return 1
    return 0


__all__ = [
    "DTYPES",
    "cpu_has_native_bfloat16",
    "depth_to_uint16_millimetres",
    "prepare_output_dirs",
    "resolve_device",
    "resolve_dtype",
    "run_predict",
]
