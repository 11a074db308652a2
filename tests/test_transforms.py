"""DepthAugmentation: exact identity/flip, nearest depth without invented values, joint geometry, reproducibility."""

import pytest
import torch

from wedepth_hf.data.synthetic import render_synthetic_sample
from wedepth_hf.data.transforms import DepthAugmentation


OFF = {
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
NO_CHANGE = {
    "flip": False,
    "angle": 0.0,
    "scale": 1.0,
    "shift_x": 0.0,
    "shift_y": 0.0,
    "brightness": 1.0,
    "contrast": 1.0,
    "saturation": 1.0,
    "hue": 0.0,
    "gamma": 1.0,
}


def _sample(height: int = 24, width: int = 32, name: str = "scene/rgb_0.png") -> dict:
    """Random image; depth with all-distinct values, so any interpolated value would be detected."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    depth = (torch.randperm(height * width, generator=generator).float() * 0.01 + 0.5).reshape(height, width)
    return {"image": image, "depth": depth, "focal": 259.42895, "id": name}


def _with(**changes) -> dict:
    return {**OFF, **changes}


def test_all_strengths_zero_is_the_identity_bit_for_bit() -> None:
    sample = _sample()
    out = DepthAugmentation(**OFF)(sample)
    assert torch.equal(out["image"], sample["image"]) and torch.equal(out["depth"], sample["depth"])
    assert out["focal"] == sample["focal"] and out["id"] == sample["id"]


def test_flip_only_is_an_exact_mirror() -> None:
    sample = _sample()
    out = DepthAugmentation(**_with(flip=1.0))(sample)
    assert torch.equal(out["image"], torch.flip(sample["image"], dims=[-1]))
    assert torch.equal(out["depth"], torch.flip(sample["depth"], dims=[-1]))
    assert out["focal"] == sample["focal"]
    half = DepthAugmentation(**_with(flip=0.5))
    flipped = [half.draw(f"id{i}")["flip"] for i in range(64)]
    assert 10 < sum(flipped) < 54


def test_input_sample_is_not_modified() -> None:
    sample = _sample()
    image, depth = sample["image"].clone(), sample["depth"].clone()
    DepthAugmentation(flip=1.0, rotation=10.0)(sample)
    assert torch.equal(sample["image"], image) and torch.equal(sample["depth"], depth)


@pytest.mark.parametrize("name", ["a", "b", "c", "d"])
def test_warped_depth_only_holds_input_values_or_zero(name: str) -> None:
    sample = _sample(name=name)
    augment = DepthAugmentation(**_with(flip=0.5, rotation=30.0, scale=0.4, translation=0.3))
    out = augment(sample)
    params = augment.draw(name)
    values = out["depth"].flatten()
    known = torch.isin(values, sample["depth"].flatten())
    assert bool((known | (values == 0)).all()), "depth must be copied (nearest), never interpolated"
    assert (values == 0).any(), "pixels from outside the frame are 0 (no measurement)"
    assert known.sum() > values.numel() // 4
    assert not torch.equal(out["depth"], sample["depth"])
    assert out["focal"] == pytest.approx(sample["focal"] * params["scale"])
    assert out["image"].dtype == torch.uint8 and out["image"].shape == sample["image"].shape


def test_integer_shift_moves_image_and_depth_together_exactly() -> None:
    sample = _sample()
    out = DepthAugmentation.apply(sample, {**NO_CHANGE, "shift_x": 8 / 32, "shift_y": -4 / 24})
    assert torch.equal(out["depth"][:-4, 8:], sample["depth"][4:, :-8])
    assert torch.equal(out["image"][:, :-4, 8:], sample["image"][:, 4:, :-8])
    assert (out["depth"][-4:] == 0).all() and (out["depth"][:, :8] == 0).all()
    assert (out["image"][:, -4:] == 0).all() and (out["image"][:, :, :8] == 0).all()


def test_quarter_turn_is_clockwise_and_exact_on_a_square() -> None:
    sample = _sample(height=9, width=9)
    out = DepthAugmentation.apply(sample, {**NO_CHANGE, "angle": 90.0})
    assert torch.equal(out["depth"], torch.rot90(sample["depth"], k=-1, dims=(0, 1)))
    assert torch.equal(out["image"], torch.rot90(sample["image"], k=-1, dims=(1, 2)))


def test_zoom_keeps_depth_values_and_scales_the_focal() -> None:
    """Scale 2 about the centre: output column x shows input column cx + (x - cx) / 2, with the same depth."""
    width = 33
    columns = torch.arange(width, dtype=torch.float32) + 1.0
    sample = {"image": torch.zeros(3, 5, width, dtype=torch.uint8), "depth": columns.repeat(5, 1), "focal": 100.0, "id": "z"}
    out = DepthAugmentation.apply(sample, {**NO_CHANGE, "scale": 2.0})
    expected = 16.0 + (torch.arange(width, dtype=torch.float32) - 16.0) / 2.0 + 1.0
    assert (out["depth"][2] - expected).abs().max() <= 0.5
    assert out["focal"] == 200.0


def test_image_and_depth_are_warped_jointly() -> None:
    """Blocks whose image value encodes their depth: away from block edges the two still agree after a warp."""
    blocks = torch.arange(16, dtype=torch.float32).reshape(4, 4).repeat_interleave(12, 0).repeat_interleave(12, 1)
    sample = {"image": (blocks * 15).to(torch.uint8).expand(3, -1, -1).clone(), "depth": blocks + 1.0, "id": "j"}
    augment = DepthAugmentation(**_with(flip=0.5, rotation=20.0, scale=0.2, translation=0.1))
    for epoch in range(3):
        augment.set_epoch(epoch)
        out = augment(sample)
        depth = out["depth"][None, None]
        interior = (torch.nn.functional.max_pool2d(depth, 5, 1, 2) == -torch.nn.functional.max_pool2d(-depth, 5, 1, 2))
        interior = interior[0, 0] & (out["depth"] > 0)
        assert interior.sum() > 300
        difference = out["image"][0].float()[interior] - (out["depth"][interior] - 1.0) * 15
        assert difference.abs().max() <= 1.0


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


def test_photometric_jitter_changes_only_the_image() -> None:
    sample = _sample()
    augment = DepthAugmentation(**_with(brightness=0.3, contrast=0.3, saturation=0.3, gamma=0.3, hue=0.2))
    out = augment(sample)
    assert torch.equal(out["depth"], sample["depth"])
    assert out["image"].dtype == torch.uint8 and out["image"].shape == sample["image"].shape
    assert not torch.equal(out["image"], sample["image"])


def test_brightness_alone_multiplies_the_image() -> None:
    sample = _sample()
    augment = DepthAugmentation(**_with(brightness=0.5))
    factor = augment.draw(sample["id"])["brightness"]
    expected = (sample["image"].float() / 255 * factor).clamp(0, 1) * 255
    assert (augment(sample)["image"].float() - expected).abs().max() <= 0.51


def test_saturation_and_hue_keep_gray_pixels_gray() -> None:
    gray = torch.arange(0, 240, 10, dtype=torch.uint8).reshape(1, 4, 6).expand(3, -1, -1).clone()
    sample = {"image": gray, "depth": torch.ones(4, 6), "id": "g"}
    out = DepthAugmentation.apply(sample, {**NO_CHANGE, "saturation": 1.7, "hue": 0.3})
    assert (out["image"].int() - gray.int()).abs().max() <= 1
    colour = torch.tensor([200, 40, 40], dtype=torch.uint8)[:, None, None].expand(3, 4, 6).clone()
    shifted = DepthAugmentation.apply({**sample, "image": colour}, {**NO_CHANGE, "hue": 1 / 3})["image"]
    assert shifted[1, 0, 0] > shifted[0, 0, 0], "a third of a turn moves red towards green"


def test_full_size_synthetic_sample_keeps_only_its_own_depth_values() -> None:
    sample = render_synthetic_sample(0, 240, 320)
    out = DepthAugmentation(flip=1.0, rotation=5.0, scale=0.1, translation=0.1, seed=1)(sample)
    assert out["image"].shape == (3, 240, 320) and out["depth"].shape == (240, 320)
    values = out["depth"].flatten()
    assert bool((torch.isin(values, sample["depth"].flatten()) | (values == 0)).all())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flip": 1.5}, "flip"),
        ({"rotation": -1.0}, "rotation"),
        ({"scale": 1.0}, "scale"),
        ({"brightness": float("nan")}, "brightness"),
        ({"hue": 0.7}, "hue"),
        ({"gamma": -0.1}, "gamma"),
    ],
)
def test_invalid_strengths_are_rejected(kwargs: dict, message: str) -> None:
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
