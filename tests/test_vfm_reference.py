"""Checkpoints without the frozen VFM: saved by reference (source, revision, fingerprint), verified, and shared."""

from pathlib import Path

import pytest
import torch
from helpers import make_tiny_config, run_python
from safetensors import safe_open
from transformers import Dinov2Config, Dinov2Model, SwinConfig, SwinForImageClassification

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor
from wedepth_hf.modeling_wedepth import vfm_fingerprint


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _tiny_vfm(seed: int) -> Dinov2Model:
    torch.manual_seed(seed)
    return Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=28))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DINOv2 and a tiny Swin classifier saved as `from_pretrained` folders."""
    folder = tmp_path_factory.mktemp("sources")
    _tiny_vfm(3).save_pretrained(folder / "vfm")
    torch.manual_seed(4)
    SwinForImageClassification(
        SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, num_labels=3)
    ).save_pretrained(folder / "encoder")
    return folder


def _model(sources: Path, seed: int, vfm: str | None = None) -> WEDepthForDepthEstimation:
    """A WEDepth model from the tiny pretrained backbones; `seed` draws its new modules."""
    torch.manual_seed(seed)
    model = WEDepthForDepthEstimation.from_pretrained_backbones(
        make_tiny_config(), vfm_name_or_path=vfm or str(sources / "vfm"), encoder_name_or_path=str(sources / "encoder")
    )
    return model.eval()


def _depth(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    pixel_values = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(pixel_values).predicted_depth


def _saved_keys(folder: Path) -> list[str]:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        return list(weights.keys())


def test_a_vfm_free_folder_holds_what_was_trained_and_loads_the_same_model(tmp_path: Path, sources: Path) -> None:
    model = _model(sources, seed=0)
    assert model.config.vfm_pretrained_name_or_path == str((sources / "vfm").resolve())
    assert model.config.vfm_fingerprint == vfm_fingerprint(Dinov2Model.from_pretrained(sources / "vfm"))
    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "free", include_vfm=False)
    free_keys, full_keys = _saved_keys(tmp_path / "free"), _saved_keys(tmp_path / "full")
    assert not any(key.startswith("vfm.") for key in free_keys)
    assert sorted(free_keys) == sorted(key for key in full_keys if not key.startswith("vfm."))
    vfm_bytes = sum(t.numel() * t.element_size() for t in model.vfm.state_dict().values())
    saved = (tmp_path / "full" / "model.safetensors").stat().st_size - (
        tmp_path / "free" / "model.safetensors"
    ).stat().st_size
    assert vfm_bytes <= saved < vfm_bytes + 16_384  # the VFM's tensors and their entries in the file header
    # The in-memory config is unchanged; only the saved one says the VFM is not in the folder.
    assert model.config.vfm_in_checkpoint
    loaded = WEDepthForDepthEstimation.from_pretrained(tmp_path / "free")
    assert not loaded.config.vfm_in_checkpoint and not loaded.training and not loaded.vfm.training
    assert not any(parameter.requires_grad for parameter in loaded.vfm.parameters())
    assert torch.equal(_depth(loaded), _depth(model))
    # Saved again, a loaded VFM-free model gives a self-contained folder or a VFM-free one.
    loaded.save_pretrained(tmp_path / "again")
    assert any(key.startswith("vfm.") for key in _saved_keys(tmp_path / "again"))
    assert WEDepthForDepthEstimation.from_pretrained(tmp_path / "again").config.vfm_in_checkpoint


def test_a_different_vfm_at_the_source_is_refused(tmp_path: Path, sources: Path) -> None:
    source = tmp_path / "vfm"
    _tiny_vfm(3).save_pretrained(source)
    _model(sources, seed=0, vfm=str(source)).save_pretrained(tmp_path / "free", include_vfm=False)
    _tiny_vfm(5).save_pretrained(source)  # same architecture, other weights
    with pytest.raises(ValueError, match="is not the one this WEDepth checkpoint was trained with.*fingerprint"):
        WEDepthForDepthEstimation.from_pretrained(tmp_path / "free")


def test_an_unreachable_source_is_an_error_that_says_what_to_do(tmp_path: Path, sources: Path) -> None:
    source = tmp_path / "vfm"
    _tiny_vfm(3).save_pretrained(source)
    _model(sources, seed=0, vfm=str(source)).save_pretrained(tmp_path / "free", include_vfm=False)
    source.rename(tmp_path / "moved")
    with pytest.raises(OSError, match=f"does not include its frozen VFM; it needs {source}.*vfm="):
        WEDepthForDepthEstimation.from_pretrained(tmp_path / "free")
    # The VFM can be given instead.
    loaded = WEDepthForDepthEstimation.from_pretrained(
        tmp_path / "free", vfm=Dinov2Model.from_pretrained(tmp_path / "moved")
    )
    assert torch.isfinite(_depth(loaded)).all()


def test_only_a_vfm_with_a_verified_source_is_left_out(tmp_path: Path, sources: Path) -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="no recorded source"):
        WEDepthForDepthEstimation(make_tiny_config()).save_pretrained(tmp_path / "random", include_vfm=False)
    model = _model(sources, seed=0)
    with torch.no_grad():
        model.vfm.embeddings.cls_token.add_(1.0)
    with pytest.raises(ValueError, match="no longer matches its recorded source"):
        model.save_pretrained(tmp_path / "modified", include_vfm=False)
    # A VFM whose weights are shown to be a checkpoint's gets that checkpoint as its source.
    unrecorded = WEDepthForDepthEstimation(make_tiny_config(vfm_config=_tiny_vfm(3).config.to_dict()))
    unrecorded.vfm.load_state_dict(_tiny_vfm(3).state_dict())
    unrecorded.record_vfm_source(str(sources / "vfm"))
    unrecorded.save_pretrained(tmp_path / "recorded", include_vfm=False)
    with pytest.raises(ValueError, match="is not .*their weights differ"):
        WEDepthForDepthEstimation(make_tiny_config()).record_vfm_source(str(sources / "vfm"))


def test_two_models_share_one_vfm(tmp_path: Path, sources: Path) -> None:
    _model(sources, seed=1).save_pretrained(tmp_path / "nyu", include_vfm=False)
    _model(sources, seed=2).save_pretrained(tmp_path / "kitti")  # self-contained: sharing works for those too
    nyu = WEDepthForDepthEstimation.from_pretrained(tmp_path / "nyu")
    kitti = WEDepthForDepthEstimation.from_pretrained(tmp_path / "kitti", vfm=nyu.vfm)
    assert kitti.vfm is nyu.vfm
    vfm_pointers = {p.data_ptr() for p in nyu.vfm.parameters()}
    assert vfm_pointers == {p.data_ptr() for p in kitti.vfm.parameters()}
    # Memory counted once: the two models' distinct parameter storage is two heads and one VFM.
    distinct = {p.data_ptr(): p.numel() for model in (nyu, kitti) for p in model.parameters()}
    vfm_size = sum(p.numel() for p in nyu.vfm.parameters())
    assert sum(distinct.values()) == sum(p.numel() for p in nyu.parameters()) * 2 - vfm_size
    assert torch.equal(_depth(kitti), _depth(WEDepthForDepthEstimation.from_pretrained(tmp_path / "kitti")))
    third = WEDepthForDepthEstimation.from_pretrained(tmp_path / "nyu", vfm=kitti.vfm)
    assert third.vfm is nyu.vfm and torch.equal(_depth(third), _depth(nyu))
    with pytest.raises(ValueError, match="is not the one this WEDepth checkpoint was trained with"):
        WEDepthForDepthEstimation.from_pretrained(tmp_path / "nyu", vfm=_tiny_vfm(9))
    with pytest.raises(ValueError, match="differs from the VFM stored in this checkpoint"):
        WEDepthForDepthEstimation.from_pretrained(tmp_path / "kitti", vfm=_tiny_vfm(9))
    with pytest.raises(ValueError, match="same device and dtype"):
        WEDepthForDepthEstimation.from_pretrained(tmp_path / "nyu", vfm=nyu.vfm, dtype=torch.bfloat16)


def _fake_hub_cache(cache: Path, repo_id: str, vfm: Dinov2Model) -> None:
    """`repo_id` in a Hugging Face cache layout, main pointing at COMMIT, as a download would leave it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    vfm.save_pretrained(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


def test_a_hub_source_is_recorded_with_its_commit_and_read_from_the_cache(
    tmp_path: Path, sources: Path, package_parent: str
) -> None:
    _fake_hub_cache(tmp_path / "cache", "org/dinov2-tiny", _tiny_vfm(3))
    result = run_python(
        f"""
        import sys
        sys.path.insert(0, {package_parent!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import torch
        from helpers import make_tiny_config
        from wedepth_hf import WEDepthForDepthEstimation
        model = WEDepthForDepthEstimation.from_pretrained_backbones(
            make_tiny_config(), vfm_name_or_path="org/dinov2-tiny", encoder_name_or_path={str(sources / "encoder")!r})
        print("SOURCE", model.config.vfm_pretrained_name_or_path, model.config.vfm_revision)
        model.save_pretrained({str(tmp_path / "free")!r}, include_vfm=False)
        loaded = WEDepthForDepthEstimation.from_pretrained({str(tmp_path / "free")!r}, local_files_only=True)
        x = torch.randn(1, 3, 40, 56)
        with torch.no_grad():
            print("SAME", torch.equal(loaded.eval()(x).predicted_depth, model.eval()(x).predicted_depth))
    """,
        cwd=tmp_path,
        HF_HUB_CACHE=str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr
    assert f"SOURCE org/dinov2-tiny {COMMIT}" in result.stdout and "SAME True" in result.stdout


def test_remote_code_and_the_pipeline_load_a_vfm_free_folder(tmp_path: Path, sources: Path) -> None:
    from PIL import Image
    from transformers import pipeline

    model = _model(sources, seed=0)
    model.save_pretrained(tmp_path / "free", include_vfm=False)
    WEDepthImageProcessor().save_pretrained(tmp_path / "free")
    image = Image.fromarray((torch.rand(40, 56, 3) * 255).byte().numpy())
    image.save(tmp_path / "image.png")
    expected = pipeline("depth-estimation", model=str(tmp_path / "free"), device="cpu")(image)["predicted_depth"]
    torch.save(expected, tmp_path / "expected.pt")
    result = run_python(
        f"""
        import torch
        from transformers import pipeline
        estimator = pipeline("depth-estimation", model={str(tmp_path / "free")!r}, trust_remote_code=True, device="cpu")
        assert "wedepth_hf" not in __import__("sys").modules
        depth = estimator({str(tmp_path / "image.png")!r})["predicted_depth"]
        print("SAME", torch.equal(depth, torch.load({str(tmp_path / "expected.pt")!r})))
    """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "SAME True" in result.stdout


@pytest.mark.parametrize("full", [False, True], ids=["default", "export_full_model"])
def test_training_exports_a_vfm_free_folder_unless_asked_for_a_full_one(
    tmp_path: Path, sources: Path, full: bool
) -> None:
    from helpers import tiny_model_config, tiny_training

    from wedepth_hf.training import train

    model_config = {
        key: value
        for key, value in tiny_model_config().items()
        if key not in ("vfm_config", "encoder_config", "vfm_stage_layers")
    }
    config = tiny_training(
        tmp_path / "run",
        preset="small",
        pretrained_backbones=True,
        model_config=model_config,
        vfm_name_or_path=str(sources / "vfm"),
        encoder_name_or_path=str(sources / "encoder"),
        export_full_model=full,
    )
    model_dir = train(config).model_dir
    assert any(key.startswith("vfm.") for key in _saved_keys(model_dir)) == full
    card = (model_dir / "README.md").read_text()
    if full:
        assert "self-contained" in card
    else:
        assert "holds only what was trained" in card and str((sources / "vfm").resolve()) in card
    loaded = WEDepthForDepthEstimation.from_pretrained(model_dir)
    assert torch.equal(
        loaded.vfm.embeddings.cls_token, Dinov2Model.from_pretrained(sources / "vfm").embeddings.cls_token
    )


def test_predict_runs_several_models_over_the_same_images_with_one_vfm(tmp_path: Path, sources: Path) -> None:
    from PIL import Image

    from wedepth_hf import cli
    from wedepth_hf.prediction_inputs import load_models
    from wedepth_hf.visualization import load_depth_png

    for name, seed, include_vfm in (("nyu", 1, False), ("kitti", 2, True)):
        _model(sources, seed=seed).save_pretrained(tmp_path / name, include_vfm=include_vfm)
        WEDepthImageProcessor().save_pretrained(tmp_path / name)
    models = load_models([str(tmp_path / "nyu"), str(tmp_path / "kitti")], torch.device("cpu"))
    assert models[1].model.vfm is models[0].model.vfm
    Image.fromarray((torch.rand(30, 40, 3) * 255).byte().numpy()).save(tmp_path / "room.png")
    command = [
        "predict",
        str(tmp_path / "room.png"),
        "--model",
        str(tmp_path / "nyu"),
        "--model",
        str(tmp_path / "kitti"),
        "--output-dir",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert cli.main(command) == 0
    for name in ("nyu", "kitti"):
        alone = tmp_path / f"alone_{name}"
        assert (
            cli.main(
                [
                    "predict",
                    str(tmp_path / "room.png"),
                    "--model",
                    str(tmp_path / name),
                    "--output-dir",
                    str(alone),
                    "--no-progress",
                ]
            )
            == 0
        )
        assert (
            load_depth_png(tmp_path / "out" / name / "room_depth.png") == load_depth_png(alone / "room_depth.png")
        ).all()
    assert not (
        load_depth_png(tmp_path / "out" / "nyu" / "room_depth.png")
        == load_depth_png(tmp_path / "out" / "kitti" / "room_depth.png")
    ).all()
