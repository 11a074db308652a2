"""DepthAugmentation: the authors' policy (flip, then 1-4 distinct weighted operations in order), the operations'
ranges and semantics, nearest depth without invented values, joint geometry, reproducibility."""

import colorsys
import math
from collections import Counter

import pytest
import torch

from wedepth_hf.data.synthetic import render_synthetic_sample
from wedepth_hf.data.transforms import DEFAULT_NUM_OPS_PROBS, OPERATIONS, DepthAugmentation


STRENGTHS_OFF = {
    "flip": 0.0,
    "rotation": 0.0,
    "scale": 0.0,
    "translation": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "gamma": 0.0,
    "hue": 0.0,
}


def _sample(height: int = 24, width: int = 32, name: str = "scene/rgb_0.png") -> dict:
    """Random image; depth with all-distinct values, so any interpolated value would be detected."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    depth = (torch.randperm(height * width, generator=generator).float() * 0.01 + 0.5).reshape(height, width)
    return {"image": image, "depth": depth, "focal": 259.42895, "id": name}


def _only(*names: str) -> dict[str, float]:
    """Operation weights: 1 for `names`, 0 for every other operation."""
    return {name: float(name in names) for name in OPERATIONS}


def _ops(*ops: tuple) -> dict:
    """Explicit parameters for `DepthAugmentation.apply`: no flip, then `ops` in order."""
    return {"flip": False, "ops": list(ops)}


# ---- the policy ----------------------------------------------------------------------------------------------------


def test_number_of_operations_follows_the_authors_distribution_and_ops_are_distinct() -> None:
    augment = DepthAugmentation(seed=1)
    draws = [augment.draw(f"img{i}")["ops"] for i in range(4000)]
    counts = Counter(len(ops) for ops in draws)
    for count, probability in enumerate(DEFAULT_NUM_OPS_PROBS, start=1):
        assert counts[count] / len(draws) == pytest.approx(probability, abs=0.03), counts
    assert set(counts) == {1, 2, 3, 4}
    assert all(len({name for name, _ in ops}) == len(ops) for ops in draws), "operations of a sample are distinct"
    # With the authors' weights (all 1) every operation is drawn, equally often.
    names = Counter(name for ops in draws for name, _ in ops)
    assert set(names) == set(OPERATIONS)
    mean = sum(names.values()) / len(names)
    assert all(abs(number - mean) < 0.1 * mean for number in names.values()), names


def test_operations_are_drawn_by_weight_without_replacement_and_zero_weights_never() -> None:
    weights = {**_only(), "identity": 1.0, "rotation": 2.0, "hue": 3.0}
    augment = DepthAugmentation(op_weights=weights, num_ops_probs=[0.0, 1.0], seed=2)
    pairs = Counter(tuple(name for name, _ in augment.draw(f"img{i}")["ops"]) for i in range(3000))
    assert {name for pair in pairs for name in pair} == {"identity", "rotation", "hue"}
    total = 6.0
    for (first, second), number in pairs.items():
        expected = weights[first] / total * weights[second] / (total - weights[first])
        assert number / 3000 == pytest.approx(expected, abs=0.03), (first, second, pairs)
    assert len(pairs) == 6


def test_operations_are_applied_one_after_the_other_in_the_drawn_order() -> None:
    sample = _sample()
    first, second = ("translation", (0.1, -0.05)), ("rotation", 20.0)
    both = DepthAugmentation.apply(sample, _ops(first, second))
    stepwise = DepthAugmentation.apply(DepthAugmentation.apply(sample, _ops(first)), _ops(second))
    assert torch.equal(both["image"], stepwise["image"]) and torch.equal(both["depth"], stepwise["depth"])
    reversed_order = DepthAugmentation.apply(sample, _ops(second, first))
    assert not torch.equal(both["depth"], reversed_order["depth"])


def test_drawn_values_lie_in_the_authors_ranges() -> None:
    augment = DepthAugmentation(seed=3)
    values: dict[str, list] = {name: [] for name in OPERATIONS}
    for i in range(3000):
        for name, value in augment.draw(f"img{i}")["ops"]:
            values[name].append(value)
    assert all(value is None for value in values["identity"])
    for name in ("brightness", "contrast", "saturation"):
        exponents = [math.log10(value) for value in values[name]]
        assert -0.1 <= min(exponents) < -0.09 and 0.09 < max(exponents) <= 0.1, name
        assert abs(sum(exponents) / len(exponents)) < 0.01, f"{name}: a log-uniform factor, centred on 1"
    assert 0.9 <= min(values["gamma"]) < 0.91 and 1.09 < max(values["gamma"]) <= 1.1
    assert -0.1 <= min(values["hue"]) < -0.09 and 0.09 < max(values["hue"]) <= 0.1
    assert 1.0 <= min(values["scale"]) < 1.01 and 1.09 < max(values["scale"]) <= 1.1, "zoom in only"
    assert -5.0 <= min(values["rotation"]) < -4.8 and 4.8 < max(values["rotation"]) <= 5.0
    shifts = [fraction for pair in values["translation"] for fraction in pair]
    assert -0.1 <= min(shifts) < -0.09 and 0.09 < max(shifts) <= 0.1


def test_flip_comes_first_with_its_probability() -> None:
    sample = _sample()
    out = DepthAugmentation(**{**STRENGTHS_OFF, "flip": 1.0}, op_weights=_only("identity"), num_ops_probs=[1.0])(sample)
    assert torch.equal(out["image"], torch.flip(sample["image"], dims=[-1]))
    assert torch.equal(out["depth"], torch.flip(sample["depth"], dims=[-1]))
    assert out["focal"] == sample["focal"]
    half = DepthAugmentation(flip=0.5)
    flipped = [half.draw(f"id{i}")["flip"] for i in range(400)]
    assert 160 < sum(flipped) < 240
    # Flip, then the shift: content moves right in the mirrored image.
    moved = DepthAugmentation.apply(sample, {"flip": True, "ops": [("translation", (0.25, 0.0))]})
    assert torch.equal(moved["depth"][:, 8:], torch.flip(sample["depth"], dims=[-1])[:, :-8])


def test_neutral_strengths_change_nothing_bit_for_bit() -> None:
    sample = _sample()
    augment = DepthAugmentation(**STRENGTHS_OFF)
    drawn = set()
    for name in (f"id{i}" for i in range(40)):
        out = augment({**sample, "id": name})
        drawn |= {op for op, _ in augment.draw(name)["ops"]}
        assert torch.equal(out["image"], sample["image"]) and torch.equal(out["depth"], sample["depth"])
        assert out["focal"] == sample["focal"]
    assert drawn == set(OPERATIONS)


def test_input_sample_is_not_modified() -> None:
    sample = _sample()
    image, depth = sample["image"].clone(), sample["depth"].clone()
    DepthAugmentation.apply(sample, {"flip": True, "ops": [("rotation", 10.0), ("hue", 0.2), ("scale", 1.1)]})
    assert torch.equal(sample["image"], image) and torch.equal(sample["depth"], depth)


# ---- geometric operations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "b", "c", "d"])
def test_geometric_ops_keep_depth_values_from_the_input_or_zero(name: str) -> None:
    sample = _sample(name=name)
    augment = DepthAugmentation(
        rotation=30.0,
        scale=0.4,
        translation=0.3,
        op_weights=_only("rotation", "scale", "translation"),
        num_ops_probs=[0.0, 0.0, 1.0],
    )
    out = augment(sample)
    values = out["depth"].flatten()
    known = torch.isin(values, sample["depth"].flatten())
    assert bool((known | (values == 0)).all()), "depth must be copied (nearest), never interpolated"
    assert (values == 0).any(), "pixels from outside the frame are 0 (no measurement)"
    assert known.sum() > values.numel() // 4
    zoom = dict(augment.draw(name)["ops"])["scale"]
    assert out["focal"] == pytest.approx(sample["focal"] * zoom)
    assert out["image"].dtype == torch.uint8 and out["image"].shape == sample["image"].shape


def test_translation_moves_image_and_depth_by_whole_pixels_truncated() -> None:
    sample = _sample()
    # int(32 * 0.26) = 8 pixels right, int(24 * -0.18) = -4 pixels (up): int() truncates towards 0, as the authors.
    out = DepthAugmentation.apply(sample, _ops(("translation", (0.26, -0.18))))
    assert torch.equal(out["depth"][:-4, 8:], sample["depth"][4:, :-8])
    assert torch.equal(out["image"][:, :-4, 8:], sample["image"][:, 4:, :-8])
    assert (out["depth"][-4:] == 0).all() and (out["depth"][:, :8] == 0).all()
    assert (out["image"][:, -4:] == 0).all() and (out["image"][:, :, :8] == 0).all()
    assert out["focal"] == sample["focal"]


def test_quarter_turn_is_clockwise_and_exact_on_a_square() -> None:
    sample = _sample(height=9, width=9)
    out = DepthAugmentation.apply(sample, _ops(("rotation", 90.0)))
    assert torch.equal(out["depth"], torch.rot90(sample["depth"], k=-1, dims=(0, 1)))
    assert torch.equal(out["image"], torch.rot90(sample["image"], k=-1, dims=(1, 2)))


def test_zoom_keeps_depth_values_and_scales_the_focal() -> None:
    """Scale 2 about the centre: output column x shows input column cx + (x - cx) / 2, with the same depth."""
    width = 33
    columns = torch.arange(width, dtype=torch.float32) + 1.0
    sample = {
        "image": torch.zeros(3, 5, width, dtype=torch.uint8),
        "depth": columns.repeat(5, 1),
        "focal": 100.0,
        "id": "z",
    }
    out = DepthAugmentation.apply(sample, _ops(("scale", 2.0)))
    expected = 16.0 + (torch.arange(width, dtype=torch.float32) - 16.0) / 2.0 + 1.0
    assert (out["depth"][2] - expected).abs().max() <= 0.5
    assert out["focal"] == 200.0


def test_image_and_depth_are_warped_jointly() -> None:
    """Blocks whose image value encodes their depth: away from block edges the two still agree after warps."""
    blocks = torch.arange(16, dtype=torch.float32).reshape(4, 4).repeat_interleave(12, 0).repeat_interleave(12, 1)
    sample = {"image": (blocks * 15).to(torch.uint8).expand(3, -1, -1).clone(), "depth": blocks + 1.0, "id": "j"}
    augment = DepthAugmentation(
        flip=0.5,
        rotation=20.0,
        scale=0.2,
        translation=0.1,
        op_weights=_only("rotation", "scale", "translation"),
        num_ops_probs=[0.0, 0.0, 1.0],
    )
    for epoch in range(3):
        augment.set_epoch(epoch)
        out = augment(sample)
        # Pixels whose 7x7 neighbourhood holds one depth value, away from the frame and from out-of-frame zeros.
        depth = torch.nn.functional.pad(out["depth"], (3, 3, 3, 3))[None, None]
        pool = torch.nn.functional.max_pool2d
        interior = (pool(depth, 7, 1) == -pool(-depth, 7, 1))[0, 0] & (out["depth"] > 0)
        assert interior.sum() > 200
        difference = out["image"][0].float()[interior] - (out["depth"][interior] - 1.0) * 15
        assert difference.abs().max() <= 1.0


def test_full_size_synthetic_sample_keeps_only_its_own_depth_values() -> None:
    sample = render_synthetic_sample(0, 240, 320)
    out = DepthAugmentation.apply(
        sample, {"flip": True, "ops": [("scale", 1.1), ("rotation", -5.0), ("translation", (0.1, 0.1))]}
    )
    assert out["image"].shape == (3, 240, 320) and out["depth"].shape == (240, 320)
    values = out["depth"].flatten()
    assert bool((torch.isin(values, sample["depth"].flatten()) | (values == 0)).all())


# ---- photometric operations ----------------------------------------------------------------------------------------


def _unit(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 255


def _luma(values: torch.Tensor) -> torch.Tensor:
    return 0.299 * values[0] + 0.587 * values[1] + 0.114 * values[2]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("brightness", 1.25, lambda x: (x * 1.25).clamp(0, 1)),
        ("brightness", 0.8, lambda x: x * 0.8),
        ("contrast", 1.2, lambda x: (1.2 * x - 0.2 * _luma(x).mean()).clamp(0, 1)),
        ("saturation", 0.7, lambda x: 0.7 * x + 0.3 * _luma(x)[None]),
        ("saturation", 1.4, lambda x: (1.4 * x - 0.4 * _luma(x)[None]).clamp(0, 1)),
        ("gamma", 1.1, lambda x: x**1.1),
        ("gamma", 0.9, lambda x: x**0.9),
    ],
)
def test_photometric_ops_follow_torchvision_semantics_on_the_image_only(name: str, value: float, expected) -> None:
    sample = _sample()
    out = DepthAugmentation.apply(sample, _ops((name, value)))
    assert torch.equal(out["depth"], sample["depth"]) and out["focal"] == sample["focal"]
    assert out["image"].dtype == torch.uint8
    assert (out["image"].float() - expected(_unit(sample["image"])) * 255).abs().max() <= 0.51


def test_hue_is_a_shift_of_the_hsv_hue_in_turns() -> None:
    sample = _sample(height=6, width=8)
    turns = 0.07
    out = DepthAugmentation.apply(sample, _ops(("hue", turns)))
    pixels = _unit(sample["image"]).reshape(3, -1).T.tolist()
    reference = []
    for red, green, blue in pixels:
        hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
        reference.append(colorsys.hsv_to_rgb((hue + turns) % 1.0, saturation, value))
    reference = torch.tensor(reference).T.reshape(3, 6, 8) * 255
    assert (out["image"].float() - reference).abs().max() <= 0.51
    red = torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None].expand(3, 2, 2).clone()
    green = DepthAugmentation.apply({**sample, "image": red, "depth": torch.ones(2, 2)}, _ops(("hue", 1 / 3)))["image"]
    assert green[:, 0, 0].tolist() == [0, 255, 0]
    gray = torch.arange(0, 240, 10, dtype=torch.uint8).reshape(1, 4, 6).expand(3, -1, -1).clone()
    kept = DepthAugmentation.apply({**sample, "image": gray, "depth": torch.ones(4, 6)}, _ops(("hue", 0.3)))["image"]
    assert torch.equal(kept, gray)


# ---- reproducibility -----------------------------------------------------------------------------------------------


def test_randomness_depends_only_on_seed_epoch_and_id() -> None:
    sample = _sample()
    torch.manual_seed(123)
    first = DepthAugmentation(seed=5)(sample)
    global_state = torch.get_rng_state()
    torch.manual_seed(999)
    fresh = DepthAugmentation(seed=5)  # e.g. a DataLoader worker's copy or a resumed run
    again = fresh(sample)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["depth"], again["depth"])
    torch.manual_seed(123)
    DepthAugmentation(seed=5)(sample)
    assert torch.equal(torch.get_rng_state(), global_state), "the global RNG is not used"
    fresh.set_epoch(1)
    assert fresh.draw(sample["id"]) != DepthAugmentation(seed=5).draw(sample["id"])
    assert DepthAugmentation(seed=6).draw(sample["id"]) != DepthAugmentation(seed=5).draw(sample["id"])
    assert DepthAugmentation(seed=5).draw("other") != DepthAugmentation(seed=5).draw(sample["id"])
    fresh.set_epoch(0)
    assert fresh.draw(sample["id"]) == DepthAugmentation(seed=5).draw(sample["id"])


def test_dataloader_workers_reproduce_the_main_process() -> None:
    from wedepth_hf.data.synthetic import SyntheticDepthDataset

    augment = DepthAugmentation(seed=3)
    augment.set_epoch(2)
    dataset = SyntheticDepthDataset(4, height=24, width=32, transform=augment)
    in_process = [dataset[i]["image"] for i in range(4)]
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    for expected, sample in zip(in_process, loader):
        assert torch.equal(sample["image"], expected)


# ---- errors --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flip": 1.5}, "flip"),
        ({"rotation": -1.0}, "rotation"),
        ({"scale": 1.5}, "scale"),
        ({"brightness": float("nan")}, "brightness"),
        ({"hue": 0.7}, "hue"),
        ({"gamma": 1.0}, "gamma"),
        ({"op_weights": {"sharpness": 1.0}}, "sharpness.*not implemented"),
        ({"op_weights": {"rotaton": 1.0}}, "Unknown augmentation operation 'rotaton'"),
        ({"op_weights": {"hue": -1.0}}, "op_weights\\['hue'\\]"),
        ({"op_weights": _only()}, "positive weight"),
        ({"num_ops_probs": [0.5, 0.4]}, "sum to 1"),
        ({"num_ops_probs": []}, "non-empty"),
        ({"op_weights": _only("identity", "hue"), "num_ops_probs": [0.5, 0.0, 0.5]}, "drawing 3 distinct"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DepthAugmentation(**kwargs)


def test_invalid_samples_are_rejected_with_the_sample_id() -> None:
    sample = _sample(name="bad/one.png")
    augment = DepthAugmentation()
    with pytest.raises(ValueError, match="bad/one.png.*uint8"):
        augment({**sample, "image": sample["image"].float()})
    with pytest.raises(ValueError, match="uint8"):
        augment({**sample, "image": sample["image"].permute(1, 2, 0)})
    with pytest.raises(ValueError, match="depth"):
        augment({**sample, "depth": sample["depth"][:-1]})
    with pytest.raises(ValueError, match="'id'"):
        augment({"image": sample["image"], "depth": sample["depth"]})
    with pytest.raises(ValueError, match="epoch"):
        augment.set_epoch(-1)
    with pytest.raises(ValueError, match="Unknown augmentation operation 'blur'"):
        DepthAugmentation.apply(sample, _ops(("blur", 1.0)))
