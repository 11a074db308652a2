"""Tests of the depth outputs: uint16 millimetre PNGs, the colour map with its legend, and PLY point clouds."""

import math

import numpy as np
import pytest
from PIL import Image

from wedepth_hf import visualization
from wedepth_hf.visualization import (
    colorize_depth,
    colormap_lookup_table,
    default_intrinsics,
    depth_color_image,
    depth_to_uint16_millimetres,
    load_depth_png,
    read_point_cloud_ply,
    save_depth_png,
    save_point_cloud_ply,
)


LUMA = np.array([0.299, 0.587, 0.114])


def test_colormap_brightness_orders_depths() -> None:
    luminance = colormap_lookup_table().astype(np.float64) @ LUMA
    assert np.all(np.diff(luminance) >= 0)
    assert luminance[-1] - luminance[0] > 150
    depth = np.linspace(1.0, 5.0, 40)[None, :].repeat(3, axis=0)
    row_luminance = colorize_depth(depth)[0].astype(np.float64) @ LUMA
    assert np.all(np.diff(row_luminance) >= 0) and row_luminance[-1] > row_luminance[0] + 150


def test_colorize_marks_invalid_pixels_black() -> None:
    depth = np.full((4, 5), 2.0)
    depth[0, 0], depth[1, 1], depth[2, 2] = np.nan, 0.0, np.inf
    depth[3, 4] = 3.0
    colors = colorize_depth(depth)
    assert colors[0, 0].tolist() == colors[1, 1].tolist() == colors[2, 2].tolist() == [0, 0, 0]
    assert colors[3, 4].sum() > 0 and colors[0, 1].sum() > 0


def test_color_image_has_a_legend_in_metres() -> None:
    depth = np.linspace(0.5, 8.0, 100 * 120).reshape(100, 120)
    image = depth_color_image(depth, legend_width=90)
    assert image.size == (120 + 90, 100)
    pixels = np.asarray(image)
    assert np.array_equal(pixels[:, :120], colorize_depth(depth))
    legend = pixels[:, 120:]
    # The bar holds the colour map's darkest and brightest colours; the labels add black text pixels.
    table = colormap_lookup_table()
    flat = legend.reshape(-1, 3)
    assert (flat == table[0]).all(axis=1).any() and (flat == table[-1]).all(axis=1).any()
    text_area = legend[:, 30:]
    assert (text_area.sum(axis=2) < 100).sum() > 20
    assert (text_area.sum(axis=2) == 765).mean() > 0.5


def test_uint16_millimetres_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.1, 60.0, size=(17, 23)).astype(np.float32)
    path = tmp_path / "d.png"
    save_depth_png(depth, path)
    with Image.open(path) as image:
        assert image.mode in ("I;16", "I;16B", "I")
        assert image.size == (23, 17)
    assert np.abs(load_depth_png(path) - depth).max() <= 0.0005 + 1e-6


def test_uint16_clips_far_depth_and_warns(monkeypatch) -> None:
    messages = []
    monkeypatch.setattr(visualization.logger, "warning", lambda message, *args: messages.append(message % args))
    depth = np.array([[1.0, 70.0], [np.nan, -1.0]])
    millimetres = depth_to_uint16_millimetres(depth)
    assert millimetres.tolist() == [[1000, 65535], [0, 0]]
    assert any("clipped" in message and "1 pixels" in message for message in messages)
    assert any("no valid depth" in message and "2 pixels" in message for message in messages)


def test_default_intrinsics_are_a_60_degree_field_of_view() -> None:
    fx, fy, cx, cy = default_intrinsics(480, 640)
    assert fx == fy
    assert math.isclose(2 * math.degrees(math.atan(640 / 2 / fx)), 60.0)
    assert (cx, cy) == (319.5, 239.5)


def test_point_cloud_follows_the_pinhole_model(tmp_path) -> None:
    depth = np.array([[1.0, 2.0, 0.0], [np.nan, 4.0, 5.0]], dtype=np.float32)
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = tmp_path / "cloud.ply"
    count = save_point_cloud_ply(path, depth, image, (2.0, 4.0, 1.0, 0.5))
    assert count == 4
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert "element vertex 4" in header and "format binary_little_endian 1.0" in header
    points = read_point_cloud_ply(path)
    # Pixel (row 1, column 2), depth 5: x = (2 - 1) * 5 / 2 = 2.5, y = (1 - 0.5) * 5 / 4 = 0.625.
    last = points[-1]
    assert (float(last["x"]), float(last["y"]), float(last["z"])) == (2.5, 0.625, 5.0)
    assert (last["red"], last["green"], last["blue"]) == tuple(image[1, 2])
    # Pixel (row 0, column 0), depth 1: x = -0.5, y = -0.125.
    assert (float(points[0]["x"]), float(points[0]["y"]), float(points[0]["z"])) == (-0.5, -0.125, 1.0)


def test_point_cloud_rejects_mismatched_image(tmp_path) -> None:
    with pytest.raises(ValueError, match="matching the depth map"):
        save_point_cloud_ply(tmp_path / "x.ply", np.ones((2, 3)), np.zeros((3, 2, 3), np.uint8), (1.0, 1.0, 0.0, 0.0))
