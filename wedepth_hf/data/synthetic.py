"""Procedural indoor RGB-D scenes: exact metric depth without any download, for tests, smoke runs and demos.

A scene is a closed box room (floor, ceiling, four walls) with boxes and spheres standing in it, seen by a pinhole
camera with NYU-Depth v2 intrinsics scaled to the output size. Every pixel is ray cast (vectorised NumPy, no
per-pixel Python) against every surface and keeps the nearest hit; the depth is the planar z-depth along the optical
axis (camera rays are parametrised with a unit z component, so the ray parameter *is* the z-depth), not the distance
along the ray. Surfaces carry procedural textures whose size is fixed in metres (so texture frequency in the image
grows with distance), are lit by a ceiling point light, a directional light, a dim light at the camera and ambient
light (Lambertian), and the camera looks slightly down, so floor/ceiling perspective, shading falloff and texture
scale all carry depth cues a small network can learn from.

Everything is deterministic given the seed (a `numpy.random.Generator` seeded with it): the same seed gives
bit-identical output on every call.
"""

import colorsys
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.utils import logging

from ..constants import MAX_UINT16_DEPTH_METRES, NYU_CX, NYU_CY, NYU_FX, NYU_FY, NYU_SIZE


logger = logging.get_logger(__name__)

# NYU-Depth v2 (Kinect) colour intrinsics at 640x480 are scaled linearly to the output size.
NYU_HEIGHT, NYU_WIDTH = NYU_SIZE

# Rooms are shrunk (about the camera) until no visible point is deeper than this: NYU's evaluation range is 0-10 m.
MAX_SCENE_DEPTH = 9.5
# `SyntheticDepthDataset(seed=s)` renders sample i with seed s * SEEDS_PER_DATASET + i (requires i < this).
SEEDS_PER_DATASET = 1_000_000

_TEXTURES = ("plain", "checker", "stripes", "noise")
_NOISE_WAVES = 6


def _matmul(vectors: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, K) @ (K, M) for tiny K, M without BLAS (whose threads only add overhead for such shapes)."""
    return np.einsum("nk,km->nm", vectors, matrix.astype(vectors.dtype, copy=False))


@dataclass
class Material:
    """A procedural texture: `kind` in plain/checker/stripes/noise, a size in metres, two linear-RGB albedos."""

    kind: str
    scale: float
    color1: np.ndarray
    color2: np.ndarray
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    stripe_direction: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    wave_vectors: np.ndarray = field(default_factory=lambda: np.zeros((_NOISE_WAVES, 3)))
    wave_phases: np.ndarray = field(default_factory=lambda: np.zeros(_NOISE_WAVES))

    def albedo(self, coords: np.ndarray) -> np.ndarray:
        """(N, 3) float32 linear albedo at (N, 3) float32 texture coordinates in metres (surface-local; flat faces
        have their normal axis zeroed, so checkers and stripes are 2-D patterns on them)."""
        f32 = np.float32
        q = coords / f32(self.scale) + self.offset.astype(f32)
        if self.kind == "plain":
            mix = np.zeros(len(coords), dtype=f32)
        elif self.kind == "checker":
            mix = np.floor(q).sum(axis=1) % f32(2.0)
        elif self.kind == "stripes":
            mix = np.floor(_matmul(q, self.stripe_direction.astype(f32)[:, None])[:, 0]) % f32(2.0)
        elif self.kind == "noise":
            waves = np.sin(_matmul(coords, self.wave_vectors.T.astype(f32)) + self.wave_phases.astype(f32))
            mix = np.clip(f32(0.5) + waves.sum(axis=1) / f32(2.0 * np.sqrt(_NOISE_WAVES)), f32(0.0), f32(1.0))
        else:
            raise ValueError(f"Unknown texture kind {self.kind!r}; expected one of {_TEXTURES}.")
        color1, color2 = self.color1.astype(f32), self.color2.astype(f32)
        return color1 * (f32(1.0) - mix[:, None]) + color2 * mix[:, None]


@dataclass
class Room:
    """An axis-aligned box room around the camera (world frame: x right, y up, z forward; camera at the origin)."""

    left: float
    right: float
    floor: float
    ceiling: float
    back: float
    front: float

    def __post_init__(self) -> None:
        """The camera (origin) must be strictly inside, or some rays would see nothing."""
        inside = min(self.left, self.right, -self.floor, self.ceiling, self.back, self.front) > 0.0
        if not inside:
            raise ValueError(
                f"The camera at the origin must be inside the room: left, right, ceiling, back and front must be "
                f"positive and floor negative; got {self}."
            )


@dataclass
class Box:
    """A box with half-extents `half` (x, y, z), centred at `center`, turned by `yaw` radians about the vertical."""

    center: np.ndarray
    half: np.ndarray
    yaw: float


@dataclass
class Sphere:
    """A sphere of `radius` metres centred at `center`."""

    center: np.ndarray
    radius: float


@dataclass
class SyntheticScene:
    """Everything `render_scene` needs; `sample_scene` draws one at random, tests build simple ones by hand.

    `rotation` maps camera coordinates (x right, y down, z forward) to world coordinates (x right, y up, z forward).
    `materials` has one entry per surface in render order: the six room planes (left, right, floor, ceiling, back,
    front), then `boxes`, then `spheres`.
    """

    rotation: np.ndarray
    room: Room
    boxes: list[Box]
    spheres: list[Sphere]
    materials: list[Material]
    point_light: np.ndarray
    point_intensity: float
    sun_direction: np.ndarray
    sun_intensity: float
    camera_light_intensity: float
    ambient: float
    noise_std: float
    noise_seed: int

    @property
    def num_surfaces(self) -> int:
        """Six room planes plus one surface per box and per sphere."""
        return 6 + len(self.boxes) + len(self.spheres)


def nyu_intrinsics(height: int, width: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of the NYU-Depth v2 camera scaled from 640x480 to `width` x `height` (fx 259.42895 at 320)."""
    sx, sy = width / NYU_WIDTH, height / NYU_HEIGHT
    return NYU_FX * sx, NYU_FY * sy, NYU_CX * sx, NYU_CY * sy


def camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: y flipped (image y is down, world y is up), then roll, pitch (positive = up), yaw."""
    flip = np.diag([1.0, -1.0, 1.0])
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    roll_m = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    pitch_m = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    yaw_m = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    return yaw_m @ pitch_m @ roll_m @ flip


@lru_cache(maxsize=8)
def camera_rays(height: int, width: int) -> np.ndarray:
    """(H*W, 3) camera-frame ray directions ((u - cx)/fx, (v - cy)/fy, 1), pixel centres at integer (u, v).

    Cached per size and returned read-only."""
    fx, fy, cx, cy = nyu_intrinsics(height, width)
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    rays = rays.reshape(-1, 3)
    rays.flags.writeable = False
    return rays


def _yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about the world's vertical (y) axis; its columns are a turned box's local axes in world coordinates."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _room_planes(room: Room) -> list[tuple[int, float, float]]:
    """(axis, coordinate, inward normal sign) of the six room planes in render order."""
    return [
        (0, -room.left, 1.0),
        (0, room.right, -1.0),
        (1, room.floor, 1.0),
        (1, room.ceiling, -1.0),
        (2, -room.back, 1.0),
        (2, room.front, -1.0),
    ]


def _hit_plane(directions: np.ndarray, axis: int, coordinate: float) -> np.ndarray:
    """Ray parameter of rays from the origin hitting the plane {x[axis] = coordinate}; inf where missed or behind."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = coordinate / directions[:, axis]
    return np.where(np.isfinite(t) & (t > 0.0), t, np.inf)


def _hit_box(directions: np.ndarray, box: Box) -> np.ndarray:
    """Ray parameter of the first hit of rays from the origin on a turned box (slab method); inf where missed.

    Only rays through the box's bounding sphere are tested against the slabs."""
    t = np.full(len(directions), np.inf)
    candidates = np.flatnonzero(
        np.isfinite(_hit_sphere(directions, Sphere(box.center, float(np.linalg.norm(box.half)))))
    )
    if len(candidates) == 0:
        return t
    axes = _yaw_matrix(box.yaw)
    origin = -(box.center @ axes)
    local = _matmul(directions[candidates], axes)
    near = np.full(len(candidates), -np.inf)
    far = np.full(len(candidates), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(3):
            t1 = (-box.half[axis] - origin[axis]) / local[:, axis]
            t2 = (box.half[axis] - origin[axis]) / local[:, axis]
            near = np.fmax(near, np.fmin(t1, t2))
            far = np.fmin(far, np.fmax(t1, t2))
    t[candidates] = np.where((near <= far) & (near > 0.0), near, np.inf)
    return t


def _hit_sphere(directions: np.ndarray, sphere: Sphere) -> np.ndarray:
    """Ray parameter of the first hit of rays from the origin on a sphere (nearer root); inf where missed."""
    a = np.einsum("ij,ij->i", directions, directions)
    b = _matmul(directions, sphere.center[:, None])[:, 0]
    c = sphere.center @ sphere.center - sphere.radius**2
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t = (b - root) / a
    return np.where((disc >= 0.0) & (t > 0.0), t, np.inf)


def _surface_geometry(scene: SyntheticScene, index: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normals, texture coordinates) of surface `index` at world `points`; normals face into the room / outwards."""
    room_planes = _room_planes(scene.room)
    if index < 6:
        axis, _, sign = room_planes[index]
        normals = np.zeros_like(points)
        normals[:, axis] = sign
        coords = points.copy()
        coords[:, axis] = 0.0
        return normals, coords
    index -= 6
    if index < len(scene.boxes):
        box = scene.boxes[index]
        axes = _yaw_matrix(box.yaw)
        local = _matmul(points - box.center, axes)
        face = np.argmax(np.abs(local) / box.half, axis=1)
        rows = np.arange(len(points))
        local_normals = np.zeros_like(local)
        local_normals[rows, face] = np.sign(local[rows, face])
        coords = local.copy()
        coords[rows, face] = 0.0
        return _matmul(local_normals, axes.T), coords
    sphere = scene.spheres[index - len(scene.boxes)]
    offsets = points - sphere.center
    return offsets / sphere.radius, offsets


def _shade(scene: SyntheticScene, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N,) float32 Lambertian irradiance: ambient + ceiling point light + directional light + dim camera light."""
    f32 = np.float32
    to_light = scene.point_light.astype(f32) - points
    light_dist = np.sqrt(np.einsum("ij,ij->i", to_light, to_light))
    point_term = np.maximum(np.einsum("ij,ij->i", normals, to_light) / light_dist, f32(0.0))
    point_term *= f32(scene.point_intensity) / (f32(1.0) + (light_dist / f32(3.0)) ** 2)
    sun_term = f32(scene.sun_intensity) * np.maximum(
        _matmul(normals, -scene.sun_direction.astype(f32)[:, None])[:, 0], f32(0.0)
    )
    cam_dist = np.sqrt(np.einsum("ij,ij->i", points, points))
    cam_term = np.maximum(-np.einsum("ij,ij->i", normals, points) / cam_dist, f32(0.0))
    cam_term *= f32(scene.camera_light_intensity) / (f32(1.0) + (cam_dist / f32(2.5)) ** 2)
    return f32(scene.ambient) + point_term + sun_term + cam_term


def render_scene(scene: SyntheticScene, height: int = 240, width: int = 320) -> dict[str, np.ndarray]:
    """Ray casts `scene`: {"image": (H, W, 3) uint8, "depth": (H, W) float32 z-depth in metres,
    "surface": (H, W) int64 index of the visible surface (render order of `SyntheticScene.materials`)}."""
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}.")
    if len(scene.materials) != scene.num_surfaces:
        raise ValueError(f"The scene has {scene.num_surfaces} surfaces but {len(scene.materials)} materials.")
    rays = camera_rays(height, width)
    directions = _matmul(rays, scene.rotation.T)
    hits = [_hit_plane(directions, axis, coord) for axis, coord, _ in _room_planes(scene.room)]
    hits += [_hit_box(directions, box) for box in scene.boxes]
    hits += [_hit_sphere(directions, sphere) for sphere in scene.spheres]
    hit_t = np.stack(hits)
    surface = np.argmin(hit_t, axis=0)
    depth = hit_t[surface, np.arange(len(surface))]
    points = directions * depth[:, None]
    # Group pixels by surface once (stable sort), then shade each surface on its contiguous slice.
    order = np.argsort(surface, kind="stable")
    bounds = np.searchsorted(surface[order], np.arange(scene.num_surfaces + 1))
    sorted_points = points[order]
    albedo = np.empty(points.shape, dtype=np.float32)
    normals = np.empty(points.shape, dtype=np.float32)
    for index, material in enumerate(scene.materials):
        start, stop = bounds[index], bounds[index + 1]
        if start == stop:
            continue
        surface_normals, coords = _surface_geometry(scene, index, sorted_points[start:stop])
        normals[start:stop] = surface_normals
        albedo[start:stop] = material.albedo(coords.astype(np.float32))
    radiance = albedo * _shade(scene, sorted_points.astype(np.float32), normals)[:, None]
    exposure = 0.85 / max(float(np.percentile(radiance[::7].max(axis=1), 97.0)), 1e-6)
    noise_rng = np.random.default_rng(scene.noise_seed)
    noise = noise_rng.standard_normal(radiance.shape, dtype=np.float32) * np.float32(scene.noise_std)
    srgb = np.clip(radiance * np.float32(exposure), 0.0, 1.0) ** np.float32(1.0 / 2.2) + noise
    image = np.empty((len(points), 3), dtype=np.uint8)
    image[order] = np.clip(np.rint(srgb * np.float32(255.0)), 0, 255).astype(np.uint8)
    return {
        "image": image.reshape(height, width, 3),
        "depth": depth.astype(np.float32).reshape(height, width),
        "surface": surface.reshape(height, width),
    }


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A linear-RGB albedo from a random hue, saturation and value."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.8), rng.uniform(0.25, 0.95))
    return np.array([r, g, b]) ** 2.2


def _random_material(rng: np.random.Generator, scale_range: tuple[float, float]) -> Material:
    """A random texture; sizes in metres within `scale_range`, a second colour near or far from the first."""
    kind = _TEXTURES[int(rng.choice(len(_TEXTURES), p=[0.15, 0.3, 0.3, 0.25]))]
    scale = float(rng.uniform(*scale_range))
    color1 = _random_color(rng)
    color2 = _random_color(rng) if rng.uniform() < 0.5 else color1 * rng.uniform(0.3, 0.7)
    direction = rng.standard_normal(3)
    frequencies = rng.uniform(0.5, 2.5, size=(_NOISE_WAVES, 1)) * 2.0 * np.pi / scale
    waves = rng.standard_normal((_NOISE_WAVES, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)
    return Material(
        kind=kind,
        scale=scale,
        color1=color1,
        color2=color2,
        offset=rng.uniform(0.0, 1.0, size=3),
        stripe_direction=direction / np.linalg.norm(direction),
        wave_vectors=waves * frequencies,
        wave_phases=rng.uniform(0.0, 2.0 * np.pi, size=_NOISE_WAVES),
    )


def _max_visible_depth(room: Room, rotation: np.ndarray) -> float:
    """Largest camera z-depth of any point of the room box (attained at a corner: z is linear, the box convex)."""
    corners = np.array(
        [
            [x, y, z]
            for x in (-room.left, room.right)
            for y in (room.floor, room.ceiling)
            for z in (-room.back, room.front)
        ]
    )
    return float((corners @ rotation)[:, 2].max())


def _free_distance(room: Room, azimuth: float) -> float:
    """Horizontal distance from the camera to the nearest wall along `azimuth` (radians from +z towards +x)."""
    dx, dz = np.sin(azimuth), np.cos(azimuth)
    candidates = []
    if dx > 1e-9:
        candidates.append(room.right / dx)
    if dx < -1e-9:
        candidates.append(-room.left / dx)
    if dz > 1e-9:
        candidates.append(room.front / dz)
    if dz < -1e-9:
        candidates.append(-room.back / dz)
    return min(candidates)


def _sample_objects(rng: np.random.Generator, room: Room, yaw: float) -> tuple[list[Box], list[Sphere]]:
    """3-8 boxes and spheres, standing on the floor or lifted, placed in the camera's view where they fit."""
    boxes: list[Box] = []
    spheres: list[Sphere] = []
    num_objects = int(rng.integers(3, 9))
    for _ in range(num_objects):
        azimuth = yaw + float(rng.uniform(-0.55, 0.55))
        free = _free_distance(room, azimuth)
        is_box = bool(rng.uniform() < 0.65)
        if is_box:
            half = rng.uniform([0.1, 0.1, 0.1], [0.5, 0.6, 0.5])
            bound = float(np.hypot(half[0], half[2]))
            lifted = rng.uniform() < 0.2
            center_y = room.floor + half[1] + (float(rng.uniform(0.6, 1.2)) if lifted else 0.0)
            center_y = min(center_y, room.ceiling - half[1] - 0.05)
        else:
            bound = float(rng.uniform(0.1, 0.45))
            lifted = rng.uniform() < 0.3
            center_y = room.floor + bound + (float(rng.uniform(0.3, 1.2)) if lifted else 0.0)
            center_y = min(center_y, room.ceiling - bound - 0.05)
        low, high = bound + 1.2, free - bound - 0.05
        if high <= low:
            continue
        distance = float(rng.uniform(low, high))
        center = np.array([distance * np.sin(azimuth), center_y, distance * np.cos(azimuth)])
        if is_box:
            boxes.append(Box(center=center, half=half, yaw=float(rng.uniform(-np.pi, np.pi))))
        else:
            spheres.append(Sphere(center=center, radius=bound))
    return boxes, spheres


def sample_scene(seed: int) -> SyntheticScene:
    """Draws a random room (3-8 m deep before fitting into `MAX_SCENE_DEPTH`), camera pose, objects, materials and
    lights."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}.")
    rng = np.random.default_rng(seed)
    yaw = float(rng.uniform(-0.5, 0.5))
    rotation = camera_rotation(yaw, float(rng.uniform(-0.3, 0.05)), float(rng.uniform(-0.05, 0.05)))
    camera_height = float(rng.uniform(1.0, 1.7))
    room = Room(
        left=float(rng.uniform(1.0, 3.5)),
        right=float(rng.uniform(1.0, 3.5)),
        floor=-camera_height,
        ceiling=float(rng.uniform(2.4, 3.2)) - camera_height,
        back=float(rng.uniform(0.5, 3.0)),
        front=float(rng.uniform(3.0, 8.0)),
    )
    shrink = min(1.0, MAX_SCENE_DEPTH / _max_visible_depth(room, rotation))
    room = Room(**{name: value * shrink for name, value in vars(room).items()})

    boxes, spheres = _sample_objects(rng, room, yaw)
    materials = [_random_material(rng, (0.3, 1.0)) for _ in range(6)]
    materials += [_random_material(rng, (0.08, 0.4)) for _ in range(len(boxes) + len(spheres))]
    light = np.array(
        [rng.uniform(-room.left, room.right), room.ceiling - rng.uniform(0.1, 0.5), rng.uniform(0.3, room.front)]
    )
    sun = rng.standard_normal(3)
    sun[1] = -abs(sun[1]) - 0.5
    return SyntheticScene(
        rotation=rotation,
        room=room,
        boxes=boxes,
        spheres=spheres,
        materials=materials,
        point_light=light,
        point_intensity=float(rng.uniform(0.8, 2.0)),
        sun_direction=sun / np.linalg.norm(sun),
        sun_intensity=float(rng.uniform(0.0, 0.6)),
        camera_light_intensity=float(rng.uniform(0.3, 0.9)),
        ambient=float(rng.uniform(0.1, 0.3)),
        noise_std=float(rng.uniform(0.5, 2.5)) / 255.0,
        noise_seed=int(rng.integers(0, 2**63 - 1)),
    )


def render_synthetic_sample(seed: int, height: int = 240, width: int = 320) -> dict[str, Any]:
    """A depth SAMPLE of the random scene `seed`: {"image": uint8 (3, H, W), "depth": float32 (H, W) z-depth in
    metres (every pixel valid, at most `MAX_SCENE_DEPTH`, typically 1-9 m), "focal": fx of the scaled NYU camera,
    "id": "synthetic/<seed>"}."""
    rendered = render_scene(sample_scene(seed), height, width)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(rendered["image"].transpose(2, 0, 1))),
        "depth": torch.from_numpy(rendered["depth"]),
        "focal": nyu_intrinsics(height, width)[0],
        "id": f"synthetic/{seed:06d}",
    }


def _dataset_seed(seed: int, index: int) -> int:
    """Render seed of sample `index` of the dataset with seed `seed` (disjoint between dataset seeds)."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}.")
    if not 0 <= index < SEEDS_PER_DATASET:
        raise ValueError(f"Synthetic sample indices must lie in [0, {SEEDS_PER_DATASET}), got {index}.")
    return seed * SEEDS_PER_DATASET + index


@dataclass(eq=False)
class SyntheticDepthDataset(torch.utils.data.Dataset):
    """`num_samples` procedural RGB-D samples rendered on the fly; sample i is the scene with seed
    `seed * SEEDS_PER_DATASET + i` (its id says which), so any worker or process reproduces it. `transform`
    (a callable sample -> sample, e.g. `DepthAugmentation`) is applied last."""

    num_samples: int
    _: KW_ONLY
    seed: int = 0
    height: int = 240
    width: int = 320
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        """Refuse a sample count, seed or size that cannot be rendered."""
        if not 0 < self.num_samples <= SEEDS_PER_DATASET:
            raise ValueError(f"num_samples must lie in [1, {SEEDS_PER_DATASET}], got {self.num_samples}.")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}.")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"height and width must be positive, got {self.height}x{self.width}.")

    def __len__(self) -> int:
        """Number of samples."""
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Renders sample `index` (negative indices count from the end) and applies the transform."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"Index {index} is out of range for a dataset of {self.num_samples} samples.")
        sample = render_synthetic_sample(_dataset_seed(self.seed, index % self.num_samples), self.height, self.width)
        return self.transform(sample) if self.transform is not None else sample


def _write_split(root: Path, split: str, seeds: range, height: int, width: int) -> Path:
    """Renders `seeds` into root/split/scene_XXX/{rgb,sync_depth}_00000.png and writes root/split.txt."""
    lines = []
    for scene_index, seed in enumerate(seeds):
        sample = render_synthetic_sample(seed, height, width)
        depth = sample["depth"].numpy()
        if float(depth.max()) > MAX_UINT16_DEPTH_METRES:
            raise RuntimeError(
                f"Synthetic scene {seed} has depth {float(depth.max()):.3f} m, beyond what a uint16 millimetre PNG "
                f"holds ({MAX_UINT16_DEPTH_METRES} m); this is a bug in the renderer."
            )
        scene_dir = f"{split}/scene_{scene_index:03d}"
        (root / scene_dir).mkdir(parents=True, exist_ok=True)
        rgb_rel, depth_rel = f"{scene_dir}/rgb_00000.png", f"{scene_dir}/sync_depth_00000.png"
        Image.fromarray(sample["image"].permute(1, 2, 0).numpy(), mode="RGB").save(root / rgb_rel, compress_level=1)
        millimetres = np.rint(depth.astype(np.float64) * 1000.0).astype(np.uint16)
        Image.fromarray(millimetres).save(root / depth_rel, compress_level=1)
        lines.append(f"{rgb_rel} {depth_rel} {sample['focal']!r}\n")
    list_file = root / f"{split}.txt"
    list_file.write_text("".join(lines))
    return list_file


_SYNTHETIC_SCENE = re.compile(r"scene_\d{3,}")
_SYNTHETIC_FILES = frozenset({"rgb_00000.png", "sync_depth_00000.png"})


def foreign_synthetic_entries(root: str | Path) -> list[str]:
    """The entries of `root` that `write_synthetic_nyu_layout` does not write (it writes over the files it does):
    anything but train.txt, val.txt and train/, val/ of scene_XXX folders with its two images each."""
    root = Path(root)
    foreign = []
    for entry in sorted(root.iterdir()):
        if entry.name in ("train.txt", "val.txt") and entry.is_file() and not entry.is_symlink():
            continue
        if entry.name not in ("train", "val") or entry.is_symlink() or not entry.is_dir():
            foreign.append(entry.name)
            continue
        for scene in sorted(entry.iterdir()):
            if scene.is_symlink() or not scene.is_dir() or not _SYNTHETIC_SCENE.fullmatch(scene.name):
                foreign.append(f"{entry.name}/{scene.name}")
                continue
            foreign += [
                f"{entry.name}/{scene.name}/{item.name}"
                for item in sorted(scene.iterdir())
                if item.name not in _SYNTHETIC_FILES or item.is_symlink() or not item.is_file()
            ]
    return foreign


def write_synthetic_nyu_layout(
    root: str | Path, num_train: int, num_val: int, *, seed: int = 0, height: int = 240, width: int = 320
) -> dict[str, Path]:
    """Writes a synthetic dataset in the NYU-Depth v2 list layout that `NYUDepthDataset` reads:
    root/{train,val}/scene_XXX/rgb_00000.png (8-bit RGB) and sync_depth_00000.png (uint16 millimetres), and
    root/train.txt, root/val.txt with lines "rgb_path depth_path focal". Train sample i uses render seed
    `seed * SEEDS_PER_DATASET + i`, validation sample j `... + num_train + j` (disjoint scenes).
    Returns {"train": train.txt, "val": val.txt, "root": root}."""
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError(f"num_train and num_val must be non-negative and not both 0, got {num_train}, {num_val}.")
    if num_train + num_val > SEEDS_PER_DATASET:
        raise ValueError(f"At most {SEEDS_PER_DATASET} samples per seed, got {num_train + num_val}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    first = _dataset_seed(seed, 0)
    train = _write_split(root, "train", range(first, first + num_train), height, width)
    val = _write_split(root, "val", range(first + num_train, first + num_train + num_val), height, width)
    logger.info("Wrote %d train and %d val synthetic samples under %s.", num_train, num_val, root)
    return {"train": train, "val": val, "root": root}
