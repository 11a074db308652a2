"""The browser demo page of `wedepth demo` and `examples/app.py`: a Gradio app over the package's own prediction,
colour map, 16-bit depth PNG and point-cloud writers, so that the page shows what `wedepth predict` writes.

Gradio is the optional extra `[demo]`, imported only when a page is built. The page never reaches the network: Gradio's
analytics, version check and Hugging Face telemetry are off, there is no share link, no server-side rendering, and
the fonts and scripts are served from the installed package.
"""

import argparse
import contextlib
import functools
import math
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.utils import logging

from .camera import CameraRequest, image_intrinsics
from .command_logging import CommandError, one_line
from .image_processing_wedepth import DEFAULT_MAX_PIXELS, check_pixel_budget
from .inference import predict_images
from .predict import resolve_device, resolve_dtype
from .prediction_inputs import LoadedModel, load_image, load_models, read_image_size
from .video import depth_video
from .visualization import depth_color_image, point_colours, save_depth_png, save_point_cloud_ply


logger = logging.get_logger(__name__)

DEMO_EXTRA_HINT = 'pip install "wedepth_hf[demo]"'
"""How to install what the page needs; every message about a missing Gradio ends with it."""
VIEW_MAX_POINTS = 150_000
"""The most points the interactive 3D view gets (every n-th row and column); the PLY download has every pixel."""
OUTPUT_MAX_AGE_SECONDS = 3600
"""A request's files are removed from the page's temporary folder after an hour (Gradio serves its own copies)."""
DEFAULT_MAX_FRAMES = 300
"""The most frames of an uploaded clip the video tab predicts."""
CLOSE_TIMEOUT_SECONDS = 10.0
"""How long Ctrl-C waits for the page's server to stop before the command ends regardless."""
MAX_UPLOAD_SIZE = "500mb"
"""The largest file the page accepts (an image or a short clip)."""
_OFFLINE_SETTINGS = {"share": False, "ssr_mode": False, "mcp_server": False}
"""No share link (a tunnel), no server-side rendering (a Node process), no MCP server."""
_LAUNCH_SETTINGS = {**_OFFLINE_SETTINGS, "inbrowser": False, "quiet": True, "prevent_thread_lock": True}
"""How the page is served: offline, no browser opened, quietly, returning at once (`launch_demo` waits for Ctrl-C)."""
_MODEL_QUEUE = "model"
"""The Gradio queue of every event that runs the model: one prediction at a time, image or video."""
_SAMPLE_POINTS = (("centre", 0.5, 0.5), ("upper left", 0.25, 0.25), ("upper right", 0.75, 0.25))
_SAMPLE_POINTS += (("lower left", 0.25, 0.75), ("lower right", 0.75, 0.75))


def import_gradio() -> Any:
    """Gradio, imported with its analytics, version check and the Hub's telemetry switched off; an ImportError that
    says how to install it when it is missing or broken."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        import gradio
    except ImportError as error:
        raise ImportError(f"The demo page needs Gradio ({error}): {DEMO_EXTRA_HINT}") from error
    return gradio


def depth_summary(depth: np.ndarray) -> list[list[str]]:
    """The page's depth table: rows of (what, pixel "x, y" or "", depth in metres) for the minimum, median and maximum
    and five sample pixels (the centre and the centres of the four quarters)."""
    height, width = depth.shape
    low_row, low_col = np.unravel_index(int(np.argmin(depth)), depth.shape)
    high_row, high_col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    rows = [
        ["minimum", f"{low_col}, {low_row}", f"{depth[low_row, low_col]:.3f}"],
        ["median", "", f"{float(np.median(depth)):.3f}"],
        ["maximum", f"{high_col}, {high_row}", f"{depth[high_row, high_col]:.3f}"],
    ]
    for name, across, down in _SAMPLE_POINTS:
        col, row = min(int(across * width), width - 1), min(int(down * height), height - 1)
        rows.append([name, f"{col}, {row}", f"{depth[row, col]:.3f}"])
    return rows


def depth_at(depth: np.ndarray | None, x: int, y: int) -> str:
    """The readout of a click on the colour depth image at pixel (x, y): the depth there, or why there is none."""
    if depth is None:
        return "Predict an image first, then click on its depth map."
    height, width = depth.shape
    if not (0 <= x < width and 0 <= y < height):
        return f"Pixel ({x}, {y}) is outside the {width}x{height} depth map (on the legend); click on the map."
    return f"Depth at pixel ({x}, {y}): {depth[y, x]:.3f} m"


def checked_focal_length(value: float | None) -> float | None:
    """The focal-length field: None when 0 or empty (the model's own camera), else a finite positive number of
    pixels, or a ValueError that says what to enter."""
    if value is None or value == 0:
        return None
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"The focal length must be a positive number of pixels at the image's resolution, or 0; got {value}."
        )
    return float(value)


def write_view_cloud(
    path: Path, depth: np.ndarray, colours: np.ndarray, intrinsics: tuple[float, float, float, float]
) -> int:
    """The interactive view's point cloud: every n-th row and column (at most `VIEW_MAX_POINTS` points), turned half
    a turn about the optical axis (x and y negated) so that the viewer's right-handed, y-up axes show it upright and
    unmirrored from its camera; the same points in metres as the download's otherwise. Returns the point count."""
    fx, fy, cx, cy = intrinsics
    height, width = depth.shape
    stride = max(1, math.ceil(math.sqrt(height * width / VIEW_MAX_POINTS)))
    # Reversed rows and columns: pixel (u, v) becomes (W-1-u, H-1-v), and the principal point (W-1-cx, H-1-cy), which
    # negates every x and y exactly; taking every stride-th pixel divides the pixel coordinates, hence the
    # intrinsics, by the stride.
    view_depth = np.ascontiguousarray(depth[::-1, ::-1][::stride, ::stride])
    view_colours = np.ascontiguousarray(colours[::-1, ::-1][::stride, ::stride])
    view_cx, view_cy = (width - 1 - cx) / stride, (height - 1 - cy) / stride
    return save_point_cloud_ply(path, view_depth, view_colours, (fx / stride, fy / stride, view_cx, view_cy))


class DepthDemo:
    """What the page does, apart from its layout: predict an uploaded image or clip with one loaded model and write
    the files the page shows and offers, each request in a new sub-folder of a temporary folder of its own."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: torch.device,
        dtype: torch.dtype,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_frames: int = DEFAULT_MAX_FRAMES,
    ) -> None:
        self.loaded, self.device, self.dtype = loaded, device, dtype
        self.max_pixels, self.max_frames = max_pixels, max_frames
        self.output_root = Path(tempfile.mkdtemp(prefix="wedepth-demo-"))
        self._remove_outputs = weakref.finalize(self, shutil.rmtree, self.output_root, ignore_errors=True)

    def _request_folder(self) -> Path:
        """A new folder for one request's files, after removing those of requests older than
        `OUTPUT_MAX_AGE_SECONDS` (Gradio served its own copies of them long ago)."""
        now = time.time()
        for folder in self.output_root.iterdir():
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another request
                if now - folder.stat().st_mtime > OUTPUT_MAX_AGE_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.output_root))

    def _predict(self, image: Image.Image, focal_length: float | None) -> np.ndarray:
        """Metric depth (H, W) in metres at the image's size; predicted again in float32 when autocast gave a
        non-finite value (`predict_images`, as in `wedepth predict`), and refused when float32 does too."""
        depth = predict_images(
            self.loaded.model,
            self.loaded.processor,
            [image],
            self.device,
            self.dtype,
            flip_tta=False,
            max_pixels=self.max_pixels,
            focal_lengths=[focal_length],
            labels=["the image"],
        )[0].numpy()
        if not np.isfinite(depth).all():
            raise ValueError("The predicted depth has non-finite values (NaN or infinite) even in float32; not shown.")
        return depth

    def predict_image(
        self, path: str | None, focal_length: float | None
    ) -> tuple[Image.Image, str, list[list[str]], list[str], np.ndarray]:
        """The page's image prediction: (colour depth with its legend, the 3D view's PLY, the depth table, the
        downloads [16-bit millimetre PNG, full PLY], the depth in metres for the click readout)."""
        if not path:
            raise ValueError("Upload an image first.")
        focal = checked_focal_length(focal_length)
        source = Path(path)
        check_pixel_budget(*read_image_size(source), self.max_pixels, name=source.name)
        image = load_image(source)
        depth = self._predict(image, focal)
        camera = CameraRequest(focal_length=focal)
        intrinsics = image_intrinsics(self.loaded.processor, image, camera, camera.focal_for(image))
        colours = point_colours(image)
        folder = self._request_folder()
        png_path, ply_path, view_path = (folder / f"{source.stem}{end}" for end in ("_depth.png", ".ply", "_view.ply"))
        save_depth_png(depth, png_path)
        save_point_cloud_ply(ply_path, depth, colours, intrinsics)
        write_view_cloud(view_path, depth, colours, intrinsics)
        return depth_color_image(depth), str(view_path), depth_summary(depth), [str(png_path), str(ply_path)], depth

    def predict_video(self, path: str | None) -> str:
        """The page's video prediction: the colour depth video of an uploaded clip (its first `max_frames` frames),
        written by `wedepth_hf.video.depth_video`."""
        if not path:
            raise ValueError("Upload a video first.")
        destination = self._request_folder() / f"{Path(path).stem}_depth.mp4"
        try:
            written = depth_video(
                self.loaded,
                path,
                destination,
                device=self.device,
                dtype=self.dtype,
                batch_size=4,
                depth_range=None,
                focal_length=None,
                max_frames=self.max_frames,
            )
        except (ImportError, CommandError) as error:
            raise ValueError(one_line(error)) from error
        return str(written)


def _shown_errors(gradio: Any, handler: Any) -> Any:
    """`handler` with the errors a visitor causes (a missing upload, a refused image or clip, a bad focal length)
    shown on the page as Gradio errors, in one line."""

    @functools.wraps(handler)
    def wrapped(*args: Any) -> Any:
        try:
            return handler(*args)
        except (ValueError, OSError) as error:
            raise gradio.Error(one_line(error)) from error

    return wrapped


_INTRODUCTION = (
    "Metric depth from one image with WEDepth. Upload a photo; give its focal length in pixels, at the photo's "
    "resolution, if you know it (0: the camera the model was trained with). Click on the colour depth to read the "
    "depth there."
)


def _image_tab(gradio: Any, demo: DepthDemo) -> None:
    """The image tab: upload and focal length; colour depth, click readout, 3D view, depth table and downloads."""
    depth_state = gradio.State(None)
    with gradio.Row():
        with gradio.Column():
            image = gradio.Image(
                type="filepath", image_mode=None, sources=["upload", "clipboard"], label="Image", elem_id="input-image"
            )
            focal = gradio.Number(
                value=0, minimum=0, label="Focal length in pixels (0: the model's camera)", elem_id="focal"
            )
            button = gradio.Button("Predict depth", variant="primary", elem_id="predict-image")
        with gradio.Column():
            color = gradio.Image(type="pil", format="png", label="Depth (metres)", interactive=False, elem_id="depth")
            readout = gradio.Textbox(label="Depth under the click", interactive=False, elem_id="depth-readout")
    with gradio.Row():
        view = gradio.Model3D(
            label="3D points (drag to turn)",
            display_mode="point_cloud",
            clear_color=(0.1, 0.1, 0.12, 1.0),
            camera_position=(-90, 90, None),
            elem_id="points",
        )
        with gradio.Column():
            table = gradio.Dataframe(
                headers=["", "pixel (x, y)", "depth (m)"], label="Depth values", interactive=False, elem_id="table"
            )
            downloads = gradio.File(label="Downloads: 16-bit depth PNG (millimetres), PLY", elem_id="downloads")
    button.click(
        _shown_errors(gradio, demo.predict_image),
        inputs=[image, focal],
        outputs=[color, view, table, downloads, depth_state],
        concurrency_id=_MODEL_QUEUE,
    )

    def read_depth(depth: np.ndarray | None, event: gradio.SelectData) -> str:
        """The click readout: the depth at the clicked pixel of the colour depth."""
        return depth_at(depth, *event.index)

    color.select(read_depth, inputs=[depth_state], outputs=[readout])


def _video_tab(gradio: Any, demo: DepthDemo) -> None:
    """The video tab: upload a short clip, get its colour depth video."""
    gradio.Markdown(
        f"The colour depth of a short clip (its first {demo.max_frames} frames), with a colour scale fixed over the "
        "clip. Needs PyAV on the server."
    )
    with gradio.Row():
        clip = gradio.Video(label="Clip", sources=["upload"], elem_id="input-video")
        result = gradio.Video(label="Depth video", interactive=False, elem_id="depth-video")
    button = gradio.Button("Predict depth video", variant="primary", elem_id="predict-video")
    button.click(
        _shown_errors(gradio, demo.predict_video), inputs=[clip], outputs=[result], concurrency_id=_MODEL_QUEUE
    )


def build_demo(
    model_name_or_path: str,
    device: str = "auto",
    dtype: str | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    title: str = "WEDepth: metric depth from one image",
) -> Any:
    """The demo page as a `gradio.Blocks` (launch it with `launch_demo`) for a WEDepth folder or Hub id, loaded with
    `load_models` on `device` (`auto`, `cpu`, `cuda`, ...) and predicting under `dtype` (default: as `wedepth predict`).

    Raises ImportError (with the install command) without Gradio, before the model is loaded.
    """
    gradio = import_gradio()
    torch_device = resolve_device(device)
    loaded = load_models([model_name_or_path], torch_device)[0]
    demo = DepthDemo(loaded, torch_device, resolve_dtype(dtype, torch_device), max_frames=max_frames)
    with gradio.Blocks(
        title="WEDepth", analytics_enabled=False, delete_cache=(OUTPUT_MAX_AGE_SECONDS, OUTPUT_MAX_AGE_SECONDS)
    ) as blocks:
        gradio.Markdown(f"## {title}\n\n{_INTRODUCTION}\n\nModel: `{model_name_or_path}`")
        with gradio.Tab("Image"):
            _image_tab(gradio, demo)
        with gradio.Tab("Video"):
            _video_tab(gradio, demo)
    return blocks


def launch_demo(blocks: Any, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page on http://host:port until Ctrl-C (raised as KeyboardInterrupt once the server is closed), one
    prediction at a time (`_MODEL_QUEUE`), with nothing that reaches the network (no share link, no server-side
    rendering, no MCP server)."""
    blocks.queue(default_concurrency_limit=1)
    blocks.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_SIZE, **_LAUNCH_SETTINGS)
    logger.info("The demo page is served on http://%s:%d (Ctrl-C stops it).", host, port)
    try:
        while blocks.is_running:
            time.sleep(0.5)
    finally:
        _close_within(blocks, CLOSE_TIMEOUT_SECONDS)


def _close_within(blocks: Any, seconds: float) -> None:
    """Close the page's server, waiting at most `seconds`: Gradio's close joins its worker threads, and one still busy
    (a request being processed when Ctrl-C came) would keep the command from ending; after that long the process ends
    at once, with Ctrl-C's exit status 130, and says so."""
    closer = threading.Thread(target=blocks.close, kwargs={"verbose": False}, name="close the demo page", daemon=True)
    closer.start()
    closer.join(seconds)
    if closer.is_alive():
        logger.warning("The page's server did not stop within %g s (a request still running); ending it.", seconds)
        os._exit(130)


def run_demo(args: argparse.Namespace) -> int:
    """`wedepth demo` with parsed arguments (model, host, port, device, dtype, max_frames): serve the page until
    Ctrl-C. A missing Gradio, a model that does not load and a port that is taken raise `CommandError`."""
    try:
        blocks = build_demo(args.model, args.device, args.dtype, max_frames=args.max_frames)
    except ImportError as error:
        raise CommandError(one_line(error)) from error
    try:
        launch_demo(blocks, args.host, args.port)
    except OSError as error:
        raise CommandError(
            f"Cannot serve the page on {args.host}:{args.port} ({one_line(error)}); give another --port."
        ) from error
    return 0


__all__ = [
    "DEMO_EXTRA_HINT",
    "DepthDemo",
    "build_demo",
    "checked_focal_length",
    "depth_at",
    "depth_summary",
    "import_gradio",
    "launch_demo",
    "run_demo",
    "write_view_cloud",
]
