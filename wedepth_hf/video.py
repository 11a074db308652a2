"""Depth for video: `wedepth predict clip.mp4` (and a folder of frames with `--frames_as_video`) and `depth_video`.

A clip is decoded, predicted in batches and encoded as a stream: memory holds one batch (and, while the colour range
is being fixed, the frames of the clip's first second), never the whole clip. The outputs are a colour depth video at
the source's frame rate with a legend in metres, whose colour range is the same for every frame, per-frame depth
(16-bit millimetre PNGs or one float16 `.npz`) and point clouds of chosen frames. Decoding and encoding use PyAV, the
optional extra `[video]`, imported only when a video is processed.
"""

import argparse
import contextlib
import functools
import glob
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import chain, islice
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers.utils import logging

from .camera import CameraRequest, FocalLength, image_intrinsics
from .command_logging import CommandError, UsageError
from .image_processing_wedepth import check_pixel_budget
from .inference import predict_images
from .prediction_inputs import IMAGE_EXTENSIONS, LoadedModel, load_image, read_image_size, unique_output_stems
from .visualization import (
    atomic_output,
    depth_color_image,
    point_colours,
    save_depth_png,
    save_point_cloud_ply,
    temporary_path_beside,
)


logger = logging.get_logger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
"""File extensions that `wedepth predict` reads as videos."""
DEFAULT_FRAME_FOLDER_FPS = Fraction(10)
"""The frame rate of the colour video of a folder of frames when `--fps` is not given."""
RANGE_SECONDS = 1
"""Without `--depth_range`, the colour range is fixed from the depth of the clip's first this many seconds ..."""
RANGE_MAX_FRAMES = 30
"""... and of at most this many frames (the frames held in memory until the range is fixed)."""
SAVE_DEPTH_CHOICES = ("png", "npz", "none")
"""How `--save_depth` writes per-frame depth."""
INSTALL_HINT = 'pip install "wedepth_hf[video]"'
"""What a user without PyAV runs."""
# Browsers play H.264 in yuv420p; MPEG-4 part 2 (which every FFmpeg build encodes) is the fallback.
_ENCODERS = ("libx264", "mpeg4")
_ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "fast"}, "mpeg4": {"qscale": "2"}}
_LEGEND_BACKGROUND = 255


def require_av() -> ModuleType:
    """The `av` module (PyAV); an ImportError whose one line says how to install it when it is missing."""
    try:
        import av
    except ImportError as error:
        raise ImportError(f"Reading and writing video needs PyAV: {INSTALL_HINT}.") from error
    return av


@dataclass(frozen=True)
class VideoInput:
    """A clip to predict: a video file, or a folder of frames (`--frames_as_video`), and its output name stem."""

    path: Path
    output_stem: str

    @property
    def is_frame_folder(self) -> bool:
        """Whether the clip is a folder of image files (one frame each, in name order)."""
        return self.path.is_dir()


@dataclass
class VideoSettings:
    """How a clip is predicted and what is written besides its colour video (`wedepth predict`'s video options)."""

    batch_size: int = 4
    depth_range: tuple[float, float] | None = None
    camera: CameraRequest = field(default_factory=CameraRequest)
    save_depth: str = "none"
    ply_frames: frozenset[int] = frozenset()
    drop_flying_pixels: float | None = None
    frame_folder_fps: Fraction = DEFAULT_FRAME_FOLDER_FPS
    max_frames: int | None = None
    flip_tta: bool = False
    processing_size: int | None = None
    max_pixels: int | None = None
    progress: bool = False


@dataclass
class Clip:
    """An open clip: its frame rate, its frame count where the container knows it, and its frames (RGB, decoded
    one at a time as they are iterated)."""

    fps: Fraction
    frame_count: int | None
    frames: Iterator[Image.Image]


def is_video_file(path: Path) -> bool:
    """Whether `path` names a video file by its extension (`VIDEO_EXTENSIONS`)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def parse_depth_range(text: str) -> tuple[float, float]:
    """An argparse type: `MIN,MAX` in metres, 0 <= MIN < MAX."""
    parts = text.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX in metres (e.g. 0.5,10), got {text!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 <= low < high):
        raise argparse.ArgumentTypeError(f"expected finite 0 <= MIN < MAX, got {text!r}")
    return low, high


def parse_frame_list(text: str) -> frozenset[int]:
    """An argparse type: comma-separated frame numbers >= 0 (the first frame is 0)."""
    try:
        frames = frozenset(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frame numbers like 0,10,20, got {text!r}") from None
    if any(frame < 0 for frame in frames):
        raise argparse.ArgumentTypeError(f"frame numbers start at 0, got {text!r}")
    return frames


def parse_fps(text: str) -> Fraction:
    """An argparse type: a frame rate > 0, as a number or a fraction (10, 29.97, 30000/1001)."""
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a frame rate such as 10 or 30000/1001, got {text!r}") from None
    if fps <= 0:
        raise argparse.ArgumentTypeError(f"expected a frame rate > 0, got {text!r}")
    return fps


def split_video_inputs(inputs: Sequence[str], frames_as_video: bool) -> tuple[list[str], list[VideoInput]]:
    """(the inputs left for the image path, the clips): video files, named directly or matched by a glob pattern, are
    clips, and so are folders when `frames_as_video` is set; the other inputs stay as given (a pattern's other
    matches as their paths), for the image path to expand and check."""
    images: list[str] = []
    videos: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir() and frames_as_video or path.is_file() and is_video_file(path):
            videos.setdefault(path.resolve(), path)
        elif path.exists() or not glob.has_magic(item):
            images.append(item)
        else:
            matches = sorted(Path(match) for match in glob.glob(item, recursive=True) if Path(match).is_file())
            for match in matches:
                if is_video_file(match):
                    videos.setdefault(match.resolve(), match)
                else:
                    images.append(str(match))
            if not matches:
                images.append(item)
    paths = list(videos.values())
    return images, [VideoInput(path, stem) for path, stem in zip(paths, unique_output_stems(paths))]


class VideoError(ValueError):
    """A clip that cannot be read or predicted; its message is one line that names the clip and says what to do."""


@contextlib.contextmanager
def open_clip(av: ModuleType, source: Path, settings: VideoSettings) -> Iterator[Clip]:
    """The clip at `source`: a video file, decoded with PyAV, or a folder of frames at `settings.frame_folder_fps`."""
    if source.is_dir():
        yield _frame_folder_clip(source, settings)
        return
    try:
        container = av.open(str(source))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{source}: cannot read the video ({error}); give a playable video file.") from error
    with container:
        if not container.streams.video:
            raise VideoError(f"{source}: the file has no video stream.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise VideoError(f"{source}: the video does not say its frame rate; convert it to a constant rate first.")
        _check_frame_size(source, stream.height, stream.width, settings.max_pixels)
        yield Clip(Fraction(fps), stream.frames or None, _decoded_frames(av, container, stream, source))


def _check_frame_size(source: Path, height: int, width: int, max_pixels: int | None) -> None:
    """Refuse, before decoding, a clip whose frames are over the `--max_pixels` budget."""
    try:
        check_pixel_budget(height, width, max_pixels or 0, name=str(source), setting="--max_pixels")
    except ValueError as error:
        raise VideoError(str(error)) from error


def _decoded_frames(av: ModuleType, container: Any, stream: Any, source: Path) -> Iterator[Image.Image]:
    """The video's frames as RGB images, one at a time; a decoding error names the clip and the frame."""
    index = 0
    try:
        for frame in container.decode(stream):
            if index == 0 and getattr(frame, "rotation", 0):
                logger.warning(
                    "%s: the video asks to be shown rotated by %s degrees; its depth is written as stored, unrotated.",
                    source,
                    frame.rotation,
                )
            yield frame.to_image()
            index += 1
    except av.FFmpegError as error:
        raise VideoError(f"{source}: cannot decode frame {index} ({error}); the clip is damaged.") from error


def _frame_folder_clip(folder: Path, settings: VideoSettings) -> Clip:
    """A folder of image files as a clip: one frame per file, in name order, all of one size."""
    files = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise VideoError(f"{folder}: the folder has no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return Clip(settings.frame_folder_fps, len(files), _folder_frames(files, settings.max_pixels))


def _folder_frames(files: Sequence[Path], max_pixels: int | None) -> Iterator[Image.Image]:
    """The frames of a frame folder, decoded one at a time; each frame's size is read from its header first, and a
    frame over the `--max_pixels` budget, or of another size than the first, is an error before it is decoded."""
    first_size: tuple[int, int] | None = None
    for path in files:
        try:
            size = read_image_size(path)
            if first_size is None:
                first_size = size
                _check_frame_size(path, *size, max_pixels)
            elif size != first_size:
                raise VideoError(
                    f"{path}: the frame is {size[1]}x{size[0]}, the folder's first frame "
                    f"{first_size[1]}x{first_size[0]}; the frames of one video must all have one size."
                )
            image = load_image(path)
        except VideoError:
            raise
        except Exception as error:  # noqa: BLE001 - any undecodable frame ends the clip with its name
            raise VideoError(f"{path}: cannot decode the frame ({type(error).__name__}: {error}).") from error
        yield image


def _predict(
    model: LoadedModel,
    frames: list[Image.Image],
    focal: float | None,
    device: torch.device,
    dtype: torch.dtype,
    settings: VideoSettings,
    labels: Sequence[str] | None = None,
) -> torch.Tensor:
    """(B, H, W) depth of same-size frames by `predict_images`, rescaled to the camera of focal length `focal`
    (pixels) when the model records its training camera; `labels` name the frames in its warnings."""
    rescale = focal is not None and getattr(model.processor, "training_camera", None) is not None
    return predict_images(
        model.model,
        model.processor,
        frames,
        device,
        dtype,
        settings.flip_tta,
        settings.processing_size,
        settings.max_pixels,
        [focal] * len(frames) if rescale else None,
        labels,
    )


def _depth_batches(
    model: LoadedModel,
    frames: Iterator[Image.Image],
    focal: float | None,
    device: torch.device,
    dtype: torch.dtype,
    settings: VideoSettings,
) -> Iterator[tuple[list[Image.Image], np.ndarray]]:
    """(frames, their depth (B, H, W) float32) batch by batch. A frame whose depth under a reduced-precision
    autocast is not finite is predicted again in float32 (`predict_images`)."""
    start = 0
    while batch := list(islice(frames, settings.batch_size)):
        labels = [f"frame {start + index}" for index in range(len(batch))]
        yield batch, _predict(model, batch, focal, device, dtype, settings, labels).numpy()
        start += len(batch)


def _clip_focal(camera: CameraRequest, first_frame: Image.Image, source: Path) -> FocalLength | None:
    """The clip's focal length in pixels by the camera request, judged on its first frame (`auto` reads the EXIF of
    a frame folder's first image; a video file has none), logged with its source."""
    focal = camera.focal_for(first_frame)
    if focal is not None:
        logger.info("%s: focal length %.1f px, from %s.", source, focal.pixels, focal.source)
        return focal
    if camera.auto:
        logger.warning("%s: no EXIF focal length; its depth is not corrected (the training camera is assumed).", source)
    return None


def _first_frames_range(
    batches: Iterator[tuple[list[Image.Image], np.ndarray]], frame_count: int, source: Path
) -> tuple[list[tuple[list[Image.Image], np.ndarray]], tuple[float, float]]:
    """Predict the first `frame_count` frames (whole batches, held) and fix the colour range from their valid depth:
    (the held batches, (min, max) metres)."""
    held: list[tuple[list[Image.Image], np.ndarray]] = []
    lows: list[float] = []
    highs: list[float] = []
    seen = 0
    for frames, depths in batches:
        held.append((frames, depths))
        for depth in depths[: max(0, frame_count - seen)]:
            valid = depth[np.isfinite(depth) & (depth > 0)]
            if valid.size:
                lows.append(float(valid.min()))
                highs.append(float(valid.max()))
        seen += len(frames)
        if seen >= frame_count:
            break
    if not lows:
        raise VideoError(f"{source}: no valid depth in the first frames to fix the colour range; give --depth_range.")
    low, high = min(lows), max(highs)
    return held, (low, high if high - low >= 1e-6 else low + max(1e-3, low * 1e-3))


def _colour_frame(depth: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    """The colour depth map with its legend for the fixed range, padded with white to an even width and height
    (what yuv420p needs)."""
    image = np.asarray(depth_color_image(depth, *depth_range))
    return np.pad(
        image,
        ((0, image.shape[0] % 2), (0, image.shape[1] % 2), (0, 0)),
        constant_values=_LEGEND_BACKGROUND,
    )


def video_encoder(av: ModuleType) -> str:
    """The encoder of the colour videos: H.264 (libx264, plays in browsers) where PyAV offers it, else MPEG-4."""
    available = set(av.codecs_available)
    for name in _ENCODERS:
        if name in available:
            return name
    raise CommandError(f"This PyAV build encodes neither H.264 nor MPEG-4; reinstall it: {INSTALL_HINT}.")


@contextlib.contextmanager
def colour_video_writer(av: ModuleType, destination: Path, fps: Fraction) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that appends an RGB frame (H, W, 3) uint8, even-sized, to an MP4 at `fps`; the file replaces
    `destination` when the block completes, and is removed after an error."""
    codec = video_encoder(av)
    temporary = temporary_path_beside(destination)
    container = av.open(str(temporary), "w", format="mp4", options={"movflags": "+faststart"})
    streams: list[Any] = []

    def write(rgb: np.ndarray) -> None:
        """Encode one frame (the first one fixes the video's size)."""
        if not streams:
            stream = container.add_stream(codec, rate=fps, options=_ENCODER_OPTIONS[codec])
            stream.height, stream.width = rgb.shape[:2]
            stream.pix_fmt = "yuv420p"
            streams.append(stream)
        container.mux(streams[0].encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))

    try:
        yield write
        if streams:
            container.mux(streams[0].encode(None))
        container.close()
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(Exception):
            container.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def npz_depth_writer(path: Path) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that appends one (H, W) depth map to `path`, an `.npz` holding `depth`, float16 (frames, H, W).

    The frames go to a raw temporary file as they come; at the end the archive is written from it (its `.npy` header
    needs the frame count), so memory holds one frame whatever the clip's length. The archive replaces `path` when the
    block completes; after an error `path` is as it was.
    """
    raw = temporary_path_beside(path)
    shape: list[tuple[int, int]] = []
    count = 0
    try:
        with open(raw, "xb") as handle:

            def append(depth: np.ndarray) -> None:
                """Write one frame's depth as little-endian float16."""
                nonlocal count
                if not shape:
                    shape.append(depth.shape)
                handle.write(np.ascontiguousarray(depth, dtype="<f2").tobytes())
                count += 1

            yield append
        with atomic_output(path) as output, zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("depth.npy", "w", force_zip64=True) as member, open(raw, "rb") as frames:
                header = {"descr": "<f2", "fortran_order": False, "shape": (count, *shape[0]) if shape else (0, 0, 0)}
                np.lib.format.write_array_header_1_0(member, header)
                shutil.copyfileobj(frames, member, 1 << 20)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(raw)


class _FrameOutputs:
    """The per-frame outputs of one clip beside `prefix` (`<prefix>_depth/000000.png` or `<prefix>_depth.npz`, and
    `<prefix>_frame000010.ply` for the chosen frames); their writers close with `stack`."""

    def __init__(
        self,
        prefix: Path,
        settings: VideoSettings,
        intrinsics: Callable[[Image.Image], tuple[float, float, float, float]],
    ) -> None:
        self.prefix = prefix
        self.settings = settings
        self.intrinsics = intrinsics
        self.png_folder = prefix.parent / f"{prefix.name}_depth"
        self.append_npz: Callable[[np.ndarray], None] | None = None
        self.plys_written: set[int] = set()

    def open(self, stack: contextlib.ExitStack) -> None:
        """Create the PNG folder, or start the `.npz` (completed, or removed after an error, as `stack` closes)."""
        if self.settings.save_depth == "png":
            self.png_folder.mkdir(exist_ok=True)
        elif self.settings.save_depth == "npz":
            npz = self.prefix.parent / f"{self.prefix.name}_depth.npz"
            self.append_npz = stack.enter_context(npz_depth_writer(npz))

    def write(self, index: int, frame: Image.Image, depth: np.ndarray) -> None:
        """Write frame `index`'s depth (and its point cloud when it is a chosen frame)."""
        if self.settings.save_depth == "png":
            save_depth_png(depth, self.png_folder / f"{index:06d}.png")
        elif self.append_npz is not None:
            self.append_npz(depth)
        if index in self.settings.ply_frames:
            save_point_cloud_ply(
                self.prefix.parent / f"{self.prefix.name}_frame{index:06d}.ply",
                depth,
                point_colours(frame),
                self.intrinsics(frame),
                self.settings.drop_flying_pixels,
            )
            self.plys_written.add(index)


def write_clip(
    model: LoadedModel,
    source: Path,
    destination: Path,
    prefix: Path,
    settings: VideoSettings,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[int, int]:
    """Predict the clip at `source` and write its colour depth video to `destination` and its per-frame outputs
    beside `prefix` (`settings`); returns (frames written, problems logged: frames with non-finite depth, chosen PLY
    frames past the clip's end). Raises `VideoError` for a clip that cannot be read."""
    av = require_av()
    with open_clip(av, source, settings) as clip:
        frames = clip.frames if settings.max_frames is None else islice(clip.frames, settings.max_frames)
        first = next(frames, None)
        if first is None:
            raise VideoError(f"{source}: the clip has no frames.")
        focal = _clip_focal(settings.camera, first, source)
        batches = _depth_batches(model, chain([first], frames), focal and focal.pixels, device, dtype, settings)
        held: list[tuple[list[Image.Image], np.ndarray]] = []
        depth_range = settings.depth_range
        if depth_range is None:
            range_frames = min(RANGE_MAX_FRAMES, max(1, int(np.ceil(clip.fps * RANGE_SECONDS))))
            held, depth_range = _first_frames_range(batches, range_frames, source)
            logger.info("%s: colour range %.3f-%.3f m, from its first %d frame(s).", source, *depth_range, range_frames)
        # The point clouds' camera is the one the depth was rescaled to: the clip's focal length, else the model's
        # training camera at the frame's resolution, else a 60-degree view (as `wedepth predict` on an image).
        intrinsics = functools.partial(
            image_intrinsics,
            model.processor,
            camera=settings.camera,
            focal=focal,
            processing_size=settings.processing_size,
        )
        outputs = _FrameOutputs(prefix, settings, intrinsics)
        total = clip.frame_count if settings.max_frames is None else min(settings.max_frames, clip.frame_count or 0)
        count, problems = _write_frames(av, chain(held, batches), destination, clip.fps, depth_range, outputs, total)
    missing = sorted(settings.ply_frames - outputs.plys_written)
    if missing:
        logger.error("%s: --ply_frames %s are past the clip's last frame, %d.", source, missing, count - 1)
    return count, problems + bool(missing)


def _write_frames(
    av: ModuleType,
    batches: Iterable[tuple[list[Image.Image], np.ndarray]],
    destination: Path,
    fps: Fraction,
    depth_range: tuple[float, float],
    outputs: "_FrameOutputs",
    total: int | None,
) -> tuple[int, int]:
    """Encode the colour frames and write the per-frame outputs of the predicted batches as they come; returns
    (frames written, frames with non-finite depth). The colour video and the `.npz` replace their files only when
    every frame is written."""
    count = problems = 0
    with contextlib.ExitStack() as stack:
        write_colour = stack.enter_context(colour_video_writer(av, destination, fps))
        outputs.open(stack)
        progress = stack.enter_context(
            tqdm(total=total or None, desc=destination.name, unit="frame", disable=not outputs.settings.progress)
        )
        for frames, depths in batches:
            for frame, depth in zip(frames, depths):
                problems += _count_non_finite(destination, count, depth)
                write_colour(_colour_frame(depth, depth_range))
                outputs.write(count, frame, depth)
                count += 1
            progress.update(len(frames))
    return count, problems


def _count_non_finite(source: Path, index: int, depth: np.ndarray) -> int:
    """1 (and an error logged) when frame `index`'s depth has non-finite values, else 0."""
    non_finite = int(np.count_nonzero(~np.isfinite(depth)))
    if non_finite:
        logger.error(
            "%s: frame %d has %d non-finite depth values; they are black in the video, 0 in the PNG, NaN in the npz.",
            source,
            index,
            non_finite,
        )
    return int(non_finite > 0)


def depth_video(
    model: LoadedModel,
    source: str | Path,
    destination: str | Path,
    *,
    device: torch.device,
    dtype: torch.dtype,
    batch_size: int = 4,
    depth_range: tuple[float, float] | None = None,
    focal_length: float | None = None,
    max_frames: int | None = None,
) -> Path:
    """Read the clip at `source` (a video file, or a folder of frames at 10 fps), write its colour depth video (MP4,
    same frame rate, legend in metres) at `destination` and return it.

    The colour range is `depth_range` (metres), else fixed from the first second; `focal_length` is the camera's, in
    pixels at the clip's resolution; `max_frames` stops after that many frames. Raises `VideoError` (one line) for a
    clip that cannot be read and ImportError without PyAV.
    """
    if focal_length is not None and getattr(model.processor, "training_camera", None) is None:
        raise ValueError(
            f"{model.name} records no training camera, so its depth cannot be rescaled to a focal length; leave "
            "focal_length out."
        )
    destination = Path(destination)
    camera = CameraRequest(focal_length=focal_length)
    settings = VideoSettings(batch_size=batch_size, depth_range=depth_range, camera=camera, max_frames=max_frames)
    write_clip(model, Path(source), destination, destination.with_suffix(""), settings, device, dtype)
    return destination


def video_settings(args: argparse.Namespace) -> VideoSettings:
    """The `VideoSettings` of `wedepth predict`'s parsed arguments (after `args.camera` is set)."""
    return VideoSettings(
        batch_size=args.batch_size,
        depth_range=args.depth_range,
        camera=args.camera,
        save_depth=args.save_depth or "png",
        ply_frames=args.ply_frames or frozenset(),
        drop_flying_pixels=args.drop_flying_pixels,
        frame_folder_fps=args.fps or DEFAULT_FRAME_FOLDER_FPS,
        flip_tta=args.flip_tta,
        processing_size=args.processing_size,
        max_pixels=args.max_pixels,
        progress=not args.no_progress,
    )


def check_video_arguments(args: argparse.Namespace, videos: Sequence[VideoInput]) -> None:
    """Before any model is loaded: video options without a clip to apply to are a `UsageError`, `--fps` without a
    folder of frames too, and clips without PyAV a `CommandError` that says how to install it."""
    given = [name for name in ("depth_range", "save_depth", "ply_frames", "fps") if getattr(args, name) is not None]
    if given and not videos:
        options = ", ".join(f"--{name}" for name in given)
        raise UsageError(
            f"{options} apply to videos; no input is a video file or a folder given with --frames_as_video."
        )
    if args.fps is not None and not any(video.is_frame_folder for video in videos):
        raise UsageError(
            "--fps sets the frame rate of a folder of frames (--frames_as_video); video files keep theirs."
        )
    if videos and args.save_ply:
        logger.warning("--save_ply writes the point clouds of images; choose a video's frames with --ply_frames.")
    if videos:
        try:
            require_av()
        except ImportError as error:
            raise CommandError(str(error)) from error


def predict_videos(
    models: Sequence[LoadedModel],
    model_dirs: Sequence[Path],
    videos: Sequence[VideoInput],
    settings: VideoSettings,
    device: torch.device,
    dtype: torch.dtype,
) -> int:
    """Write every clip's outputs with every model (into its output folder); returns the number of clips that failed
    or had a problem. A clip that fails is logged in one line and skipped."""
    failures = 0
    for video in videos:
        for model, folder in zip(models, model_dirs):
            destination = folder / f"{video.output_stem}_depth_color.mp4"
            try:
                frames, problems = write_clip(
                    model, video.path, destination, folder / video.output_stem, settings, device, dtype
                )
            except VideoError as error:
                logger.error("%s Skipped.", error)
                failures += 1
                continue
            except (ValueError, RuntimeError, MemoryError, OSError) as error:
                if isinstance(error, CommandError):
                    raise
                logger.error("%s: prediction failed (%s: %s); skipped.", video.path, type(error).__name__, error)
                failures += 1
                continue
            logger.info("%s: %d frame(s); depth video %s.", video.path, frames, destination)
            failures += bool(problems)
    return failures


__all__ = [
    "DEFAULT_FRAME_FOLDER_FPS",
    "INSTALL_HINT",
    "RANGE_MAX_FRAMES",
    "RANGE_SECONDS",
    "SAVE_DEPTH_CHOICES",
    "VIDEO_EXTENSIONS",
    "Clip",
    "VideoError",
    "VideoInput",
    "VideoSettings",
    "check_video_arguments",
    "colour_video_writer",
    "depth_video",
    "is_video_file",
    "npz_depth_writer",
    "open_clip",
    "parse_depth_range",
    "parse_fps",
    "parse_frame_list",
    "predict_videos",
    "require_av",
    "split_video_inputs",
    "video_encoder",
    "video_settings",
    "write_clip",
]
