"""Synthetic RGB-D scenes: determinism, exact planar z-depth, sane ranges, the dataset and the NYU file layout."""

import numpy as np
import pytest
import torch
from PIL import Image

from wedepth_hf.data.synthetic import (
    MAX_SCENE_DEPTH,
    NYU_FX,
    SEEDS_PER_DATASET,
    Box,
    Material,
    Room,
    Sphere,
    SyntheticDepthDataset,
    SyntheticScene,
    camera_rays,
    camera_rotation,
    nyu_intrinsics,
    render_scene,
    render_synthetic_sample,
    sample_scene,
    write_synthetic_nyu_layout,
)


H, W = 48, 64


def _plain() -> Material:
    return Material(kind="plain", scale=1.0, color1=np.array([0.5, 0.5, 0.5]), color2=np.array([0.2, 0.2, 0.2]))


def _scene(rotation: np.ndarray, room: Room, boxes=(), spheres=()) -> SyntheticScene:
    """A hand-built scene with plain materials and fixed lights."""
    return SyntheticScene(
        rotation=rotation,
        room=room,
        boxes=list(boxes),
        spheres=list(spheres),
        materials=[_plain() for _ in range(6 + len(boxes) + len(spheres))],
        point_light=np.array([0.0, 2.0, 1.0]),
        point_intensity=1.0,
        sun_direction=np.array([0.0, -1.0, 0.0]),
        sun_intensity=0.3,
        camera_light_intensity=0.5,
        ambient=0.2,
        noise_std=0.0,
        noise_seed=0,
    )


def _far_room(front: float) -> Room:
    """Side walls, floor and ceiling far enough that every ray of the NYU camera hits the front wall first."""
    return Room(left=10.0, right=10.0, floor=-10.0, ceiling=10.0, back=1.0, front=front)


def test_sample_format_and_nyu_intrinsics() -> None:
    sample = render_synthetic_sample(7, height=H, width=W)
    assert set(sample) == {"image", "depth", "focal", "id"}
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, H, W)
    assert sample["depth"].dtype == torch.float32 and sample["depth"].shape == (H, W)
    assert sample["id"] == "synthetic/000007"
    assert sample["focal"] == pytest.approx(NYU_FX * W / 640)
    assert nyu_intrinsics(480, 640) == (518.8579, 519.4696, 325.58, 253.74)
    assert nyu_intrinsics(240, 320)[0] == pytest.approx(259.42895, abs=1e-9)


def test_same_seed_is_bit_identical_and_seeds_differ() -> None:
    first, again = render_synthetic_sample(3, H, W), render_synthetic_sample(3, H, W)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["depth"], again["depth"])
    other = render_synthetic_sample(4, H, W)
    assert not torch.equal(first["depth"], other["depth"])
    assert not torch.equal(first["image"], other["image"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_depth_range_and_image_content_are_sane(seed: int) -> None:
    sample = render_synthetic_sample(seed, H, W)
    depth, image = sample["depth"], sample["image"].float()
    assert torch.isfinite(depth).all()
    assert depth.min() > 0.3 and depth.max() <= MAX_SCENE_DEPTH
    assert depth.max() - depth.min() > 1.0, "a room seen from inside spans more than a metre of depth"
    assert 20 < image.mean() < 235 and image.std() > 10, "neither black, white nor flat"


def test_frontal_wall_has_its_distance_as_depth_everywhere() -> None:
    """Planar z-depth, not ray length: the ray length to a frontal wall grows towards the image corners."""
    out = render_scene(_scene(camera_rotation(0.0, 0.0, 0.0), _far_room(3.25)), H, W)
    assert (out["surface"] == 5).all()
    assert (out["depth"] == np.float32(3.25)).all()


def test_frontal_box_face_has_its_exact_depth() -> None:
    box = Box(center=np.array([0.0, 0.0, 2.5]), half=np.array([0.4, 0.3, 0.5]), yaw=0.0)
    out = render_scene(_scene(camera_rotation(0.0, 0.0, 0.0), _far_room(6.0), boxes=[box]), H, W)
    on_box = out["surface"] == 6
    assert on_box.sum() > 50
    assert (out["depth"][on_box] == np.float32(2.0)).all()
    assert (out["depth"][~on_box] == np.float32(6.0)).all()


def test_turned_camera_sees_a_wall_at_the_analytic_planar_depth() -> None:
    """Camera yawed/pitched/rolled: on the wall z_world = Z, depth(u, v) = Z / (n_cam . ((u-cx)/fx, (v-cy)/fy, 1))."""
    rotation = camera_rotation(0.2, -0.1, 0.05)
    out = render_scene(_scene(rotation, _far_room(4.0)), H, W)
    fx, fy, cx, cy = nyu_intrinsics(H, W)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    normal_in_camera = rotation.T @ np.array([0.0, 0.0, 1.0])
    expected = 4.0 / (normal_in_camera[0] * (u - cx) / fx + normal_in_camera[1] * (v - cy) / fy + normal_in_camera[2])
    np.testing.assert_allclose(out["depth"], expected, rtol=1e-6)
    ray_length = expected * np.sqrt(((u - cx) / fx) ** 2 + ((v - cy) / fy) ** 2 + 1.0)
    assert np.abs(ray_length - expected).max() > 0.5, "the test must be able to tell depth from ray length"


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_every_pixel_back_projects_onto_its_surface(seed: int) -> None:
    """X = depth * ((u-cx)/fx, (v-cy)/fy, 1) in camera coordinates lies on the surface the pixel shows."""
    scene = sample_scene(seed)
    out = render_scene(scene, H, W)
    points = (camera_rays(H, W) * out["depth"].reshape(-1, 1).astype(np.float64)) @ scene.rotation.T
    surface = out["surface"].reshape(-1)
    room = scene.room
    planes = [(0, -room.left), (0, room.right), (1, room.floor), (1, room.ceiling), (2, -room.back), (2, room.front)]
    for index, (axis, coordinate) in enumerate(planes):
        np.testing.assert_allclose(points[surface == index, axis], coordinate, atol=1e-5)
    for offset, box in enumerate(scene.boxes):
        c, s = np.cos(box.yaw), np.sin(box.yaw)
        axes = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        local = (points[surface == 6 + offset] - box.center) @ axes
        np.testing.assert_allclose(np.max(np.abs(local) / box.half, axis=1), 1.0, atol=1e-4)
    for offset, sphere in enumerate(scene.spheres):
        on_sphere = points[surface == 6 + len(scene.boxes) + offset]
        np.testing.assert_allclose(np.linalg.norm(on_sphere - sphere.center, axis=1), sphere.radius, atol=1e-5)
    assert len(scene.boxes) + len(scene.spheres) > 0 and (surface >= 6).any(), "objects are in view"


def test_sphere_occludes_the_wall_behind_it() -> None:
    sphere = Sphere(center=np.array([0.0, 0.0, 3.0]), radius=0.5)
    out = render_scene(_scene(camera_rotation(0.0, 0.0, 0.0), _far_room(5.0), spheres=[sphere]), H, W)
    on_sphere = out["surface"] == 6
    assert on_sphere.sum() > 20
    assert out["depth"][on_sphere].min() == pytest.approx(2.5, abs=0.01)
    assert (out["depth"][on_sphere] < 3.0).all() and (out["depth"][~on_sphere] == np.float32(5.0)).all()


def test_room_must_contain_the_camera() -> None:
    with pytest.raises(ValueError, match="inside the room"):
        Room(left=1.0, right=1.0, floor=-1.0, ceiling=1.0, back=-0.5, front=3.0)
    with pytest.raises(ValueError, match="inside the room"):
        Room(left=1.0, right=1.0, floor=0.2, ceiling=1.0, back=0.5, front=3.0)


def test_dataset_renders_by_derived_seed_and_applies_the_transform() -> None:
    dataset = SyntheticDepthDataset(3, seed=2, height=H, width=W)
    assert len(dataset) == 3
    sample = dataset[1]
    expected = render_synthetic_sample(2 * SEEDS_PER_DATASET + 1, H, W)
    assert sample["id"] == expected["id"] == f"synthetic/{2 * SEEDS_PER_DATASET + 1:06d}"
    assert torch.equal(sample["depth"], expected["depth"])
    assert dataset[-1]["id"] == dataset[2]["id"]
    assert dataset[0]["id"] != SyntheticDepthDataset(3, seed=3, height=H, width=W)[0]["id"]
    with pytest.raises(IndexError):
        dataset[3]
    marked = SyntheticDepthDataset(2, height=H, width=W, transform=lambda s: {**s, "depth": s["depth"] * 2})
    assert torch.equal(marked[0]["depth"], render_synthetic_sample(0, H, W)["depth"] * 2)
    with pytest.raises(ValueError, match="num_samples"):
        SyntheticDepthDataset(0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticDepthDataset(2, seed=-1)


def test_nyu_layout_round_trips_through_png(tmp_path) -> None:
    paths = write_synthetic_nyu_layout(tmp_path / "synth", 2, 1, seed=1, height=H, width=W)
    assert paths["root"] == tmp_path / "synth"
    train_lines = paths["train"].read_text().splitlines()
    val_lines = paths["val"].read_text().splitlines()
    assert paths["train"] == tmp_path / "synth" / "train.txt" and paths["val"] == tmp_path / "synth" / "val.txt"
    assert len(train_lines) == 2 and len(val_lines) == 1
    assert train_lines[0].split()[:2] == ["train/scene_000/rgb_00000.png", "train/scene_000/sync_depth_00000.png"]
    assert val_lines[0].split()[:2] == ["val/scene_000/rgb_00000.png", "val/scene_000/sync_depth_00000.png"]
    seeds = [SEEDS_PER_DATASET + 0, SEEDS_PER_DATASET + 1, SEEDS_PER_DATASET + 2]  # train 0, 1 then val 0
    for line, seed in zip(train_lines + val_lines, seeds):
        rgb_path, depth_path, focal = line.split()
        sample = render_synthetic_sample(seed, H, W)
        assert float(focal) == sample["focal"]
        with Image.open(paths["root"] / rgb_path) as rgb:
            assert rgb.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(rgb), sample["image"].permute(1, 2, 0).numpy())
        with Image.open(paths["root"] / depth_path) as depth:
            assert depth.mode == "I;16"
            millimetres = np.asarray(depth).astype(np.int64)
        expected = np.rint(sample["depth"].numpy().astype(np.float64) * 1000.0).astype(np.int64)
        np.testing.assert_array_equal(millimetres, expected)
        assert millimetres.min() > 0


def test_nyu_layout_is_read_by_the_nyu_dataset(tmp_path) -> None:
    from wedepth_hf.data import NYUDepthDataset

    paths = write_synthetic_nyu_layout(tmp_path, 1, 1, height=H, width=W)
    sample = NYUDepthDataset(paths["root"], paths["val"])[0]
    rendered = render_synthetic_sample(1, H, W)
    assert torch.equal(sample["image"], rendered["image"])
    assert torch.allclose(sample["depth"], rendered["depth"], atol=5e-4)
    assert sample["focal"] == pytest.approx(rendered["focal"])


def test_nyu_layout_rejects_empty_requests(tmp_path) -> None:
    with pytest.raises(ValueError, match="num_train"):
        write_synthetic_nyu_layout(tmp_path, 0, 0)
