"""The authors' evaluation protocol: their six test sets read, prepared and scored as their code does.

The reference numbers come from the authors' own code: `tests/fixtures/official_eval_harness.py` ran their dataset
classes, `util/metric.py` and the validation loop of `train.py` with the tiny golden model
(`tests/fixtures/official_nyu_s0_56x90`) over the folders `tests/fixtures/authors_eval_data.py` generates: set "s0"
is committed (`tests/fixtures/authors_eval_s0/`), set "s1" (another seed, other frame sizes) is generated here.
"""

import copy
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.authors_eval_data import content_sha256, generate
from fixtures.golden import load_fixture_model
from helpers import assert_refused, run_python, run_two_processes, run_wedepth
from PIL import Image

from wedepth_hf.constants import AUTHORS_METRIC_NAMES
from wedepth_hf.data.authors import AUTHORS_DATASETS, AuthorsEvaluationDataset, authors_prepare, decode_authors_depth
from wedepth_hf.evaluation import SUITES, evaluate_authors_dataset, evaluate_depth_model
from wedepth_hf.metrics import compute_authors_metrics


FIXTURES = Path(__file__).parent / "fixtures"
S0 = FIXTURES / "authors_eval_s0"


@functools.cache
def their_results(name: str) -> dict:
    """The authors' loop's results on set "s0" or "s1" (`official_eval_harness.py`'s JSON)."""
    path = S0 / "authors_metrics.json" if name == "s0" else FIXTURES / "authors_eval_s1_metrics.json"
    return json.loads(path.read_text())


THEIR_NAMES = {
    "abs_rel": "abs_rel",
    "sq_rel": "sq_rel",
    "rmse": "rmse",
    "rmse_log": "rmse_log",
    "log10": "log10",
    "silog_authors": "silog",
    "delta1": "d1",
    "delta2": "d2",
    "delta3": "d3",
}
"""Our metric name -> the key of their `eval_depth`."""


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_fixture_model(FIXTURES / "official_nyu_s0_56x90")[0].eval()


@pytest.fixture(scope="module")
def s1_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Set s1, generated again; its files must be the ones the authors' code scored."""
    root = tmp_path_factory.mktemp("authors_eval_s1")
    golden = their_results("s1")
    generate(root, golden["seed"], golden["variant"])
    # What a reader decodes, not the files' bytes, which depend on the zlib build that compressed the PNGs.
    assert content_sha256(root) == golden["content_sha256"], "the generator no longer writes what their code scored"
    return root


def assert_matches_their_loop(name: str, ours: dict[str, float], num_images: int, golden: dict, dtype: str) -> None:
    """The same images scored, and every metric as their loop's.

    float64 (their model and ours in float64): every metric within 1e-6 relative; what remains is their float32
    accumulators. float32: the continuous metrics within 1e-5 relative; d1-d3 may differ by the pixels whose ratio
    lies within 1e-5 of a threshold (`near_delta_thresholds`, recorded by the harness): a float32 prediction that
    differs from theirs by rounding may count such a pixel on the other side. No pixel may flip anywhere else.
    """
    theirs = golden["float64_datasets" if dtype == "float64" else "datasets"][name]
    assert num_images == theirs["nsamples"], name
    scored = [row for row in theirs["per_image"] if not row["skipped"]]
    for metric in AUTHORS_METRIC_NAMES:
        expected = theirs["metrics"][THEIR_NAMES[metric]]
        tolerance = (1e-6 if dtype == "float64" else 1e-5) * abs(expected)
        if dtype == "float32" and metric.startswith("delta"):
            level = int(metric[-1]) - 1
            tolerance += sum(row["near_delta_thresholds"][level] / row["num_valid"] for row in scored) / len(scored)
        assert abs(ours[metric] - expected) <= tolerance, (name, metric, ours[metric], expected)


@pytest.mark.parametrize("name", list(AUTHORS_DATASETS))
def test_committed_set_scores_as_their_loop_in_float64(model: torch.nn.Module, name: str) -> None:
    result = evaluate_authors_dataset(
        copy.deepcopy(model).double(), AuthorsEvaluationDataset(name, S0 / name), progress=False
    )
    assert_matches_their_loop(name, result.metrics, result.num_images, their_results("s0"), "float64")
    assert 0.0 < result.metrics["delta1"] < 1.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(AUTHORS_DATASETS))
def test_generated_second_set_scores_as_their_loop(model: torch.nn.Module, s1_root: Path, name: str, dtype) -> None:
    network = copy.deepcopy(model).to(getattr(torch, dtype))
    result = evaluate_authors_dataset(network, AuthorsEvaluationDataset(name, s1_root / name), progress=False)
    assert_matches_their_loop(name, result.metrics, result.num_images, their_results("s1"), dtype)


def test_their_loops_skips_and_files_are_reproduced(s1_root: Path) -> None:
    """The lines their loaders drop and the images their loop skips are the ones dropped and skipped here."""
    for root, golden in ((S0, their_results("s0")), (s1_root, their_results("s1"))):
        for name in AUTHORS_DATASETS:
            dataset = AuthorsEvaluationDataset(name, root / name)
            theirs = golden["datasets"][name]
            assert len(dataset) == theirs["num_loaded"], name
            assert [entry[0] for entry in dataset.entries] == [row["image"] for row in theirs["per_image"]], name
            for index, row in enumerate(theirs["per_image"]):
                assert int(dataset[index]["mask"].sum()) == row["num_valid"], (name, row["image"])


@pytest.mark.slow
def test_paper_suite_on_two_processes_writes_the_table_and_their_numbers(tmp_path: Path, model) -> None:
    model.save_pretrained(tmp_path / "model")
    output = tmp_path / "paper.json"
    arguments = [
        "--model",
        str(tmp_path / "model"),
        "--suite",
        "paper",
        "--data_root",
        str(S0),
        "--output",
        str(output),
    ]
    completed = run_two_processes("evaluate.py", arguments, cwd=tmp_path, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["protocol"] == "authors" and list(report["silog"]) == ["silog_authors"]
    assert list(report["results"]) == list(SUITES["paper"]) and report["missing"] == {}
    for name in SUITES["paper"]:
        results, num_images = report["results"][name], report["num_images"][name]
        assert_matches_their_loop(name, results, num_images, their_results("s0"), "float32")
    table = output.with_suffix(".md").read_text()
    assert table.splitlines()[0].startswith("| dataset | abs_rel |") and "silog_authors" in table
    assert "| ddad | " in table and "| ddad | " in completed.stderr


def test_a_missing_dataset_folder_is_a_row_of_the_table_not_a_crash(tmp_path: Path, model) -> None:
    model.save_pretrained(tmp_path / "model")
    shutil.copytree(S0 / "ibims", tmp_path / "data" / "ibims1_core_raw")  # the authors' folder name is found too
    output = tmp_path / "out" / "nyu_suite.json"
    command = [sys.executable, "-m", "wedepth_hf", "evaluate", "--model", str(tmp_path / "model"), "--suite"]
    command += ["paper_nyu", "--data_root", str(tmp_path / "data"), "--output", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(output.read_text())
    assert list(report["results"]) == ["ibims"] and set(report["missing"]) == {"nyu", "sunrgbd"}
    table = output.with_suffix(".md").read_text()
    assert f"| nyu (not found: {tmp_path / 'data' / 'nyu'}) | - |" in table
    results, num_images = report["results"]["ibims"], report["num_images"]["ibims"]
    assert_matches_their_loop("ibims", results, num_images, their_results("s0"), "float32")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--dataset", "nyu", "--protocol", "authors", "--crop", "garg"], "--crop: not part of the authors' protocol"),
        (["--dataset", "diode_indoor", "--protocol", "authors"], "--protocol authors covers the authors' test sets"),
        (["--suite", "paper", "--dataset", "nyu"], "--suite evaluates every dataset of the suite"),
        (["--suite", "paper", "--protocol", "community"], "uses the authors' protocol"),
        ([], "give --dataset (or --suite)"),
    ],
)
def test_usage_errors_are_one_line_before_anything_loads(tmp_path: Path, arguments: list[str], message: str) -> None:
    command = [sys.executable, "-m", "wedepth_hf", "evaluate", "--model", "no/such-model", "--data_root", "."]
    completed = subprocess.run(command + arguments, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert completed.returncode == 2
    assert message in completed.stderr and "Traceback" not in completed.stderr


def test_processes_that_formed_no_group_are_refused(tmp_path: Path, model) -> None:
    """Launched as 2 processes without a process group (accelerate on a CPU without ACCELERATE_USE_CPU), each would
    score every image and write the same report: refused with the command that works."""
    model.save_pretrained(tmp_path / "model")
    arguments = ["evaluate", "--model", str(tmp_path / "model"), "--suite", "paper", "--data_root", str(S0)]
    completed = run_wedepth(arguments, tmp_path, WORLD_SIZE="2", ACCELERATE_USE_CPU="false")
    assert_refused(completed, 2, "launched as 2 processes, but they formed no process group")
    assert "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2" in completed.stderr


def test_the_authors_protocol_takes_no_community_crop(model) -> None:
    dataset = AuthorsEvaluationDataset("ibims", S0 / "ibims")
    with pytest.raises(ValueError, match="leave crop=None"):
        evaluate_depth_model(model, dataset, protocol="authors", min_depth=0.01, max_depth=10.0, crop="eigen_nyu")
    with pytest.raises(ValueError, match="Unknown protocol"):
        evaluate_depth_model(model, dataset, protocol="paper", min_depth=0.01, max_depth=10.0)
    with pytest.raises(TypeError, match=r"AuthorsEvaluationDataset\(name, data_root"):
        evaluate_authors_dataset(model, "ibims")


# ---- the pieces, on hand-made inputs ---------------------------------------------------------------------------------


def test_authors_metrics_are_their_formulas_and_skip_under_ten_pixels() -> None:
    generator = np.random.default_rng(0)
    gt = generator.uniform(0.5, 10.0, size=(4, 5))
    pred = gt * generator.uniform(0.7, 1.4, size=(4, 5))
    mask = np.ones((4, 5), dtype=bool)
    mask[0, :] = False  # 15 pixels
    metrics = compute_authors_metrics(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(mask))
    p, g = pred[mask], gt[mask]
    d = np.log(p) - np.log(g)
    assert metrics["silog_authors"] == pytest.approx(np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2), rel=1e-12)
    assert metrics["abs_rel"] == pytest.approx(np.mean(np.abs(p - g) / g), rel=1e-12)
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((p - g) ** 2)), rel=1e-12)
    assert metrics["delta1"] == pytest.approx(np.mean(np.maximum(p / g, g / p) < 1.25), rel=1e-12)
    mask[1, :] = False
    mask[2, 1:] = False  # 9 pixels
    assert compute_authors_metrics(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(mask)) is None


def test_depth_decodings_use_their_float32_arithmetic() -> None:
    millimetres = np.array([[0, 1, 4500, 8191]], dtype=np.uint16)
    rotated = ((millimetres.astype(np.uint32) << 3) | (millimetres.astype(np.uint32) >> 13)).astype(np.uint16)
    sunrgbd = decode_authors_depth(rotated, AUTHORS_DATASETS["sunrgbd"])
    assert sunrgbd.dtype == np.float32 and np.array_equal(sunrgbd, millimetres.astype(np.float32) / np.float32(1000))
    raw = np.array([[0, 1, 13107, 65535]], dtype=np.uint16)
    ibims = decode_authors_depth(raw, AUTHORS_DATASETS["ibims"])
    assert ibims.dtype == np.float32 and np.array_equal(ibims, raw.astype(np.float32) * np.float32(50.0 / 65535))
    assert ibims[0, 3] == pytest.approx(50.0, rel=1e-6)


def test_ddad_camera_09_loses_its_bottom_rows_and_small_frames_are_refused() -> None:
    image = np.zeros((1050, 1928, 3), dtype=np.uint8)
    depth = np.full((1050, 1928), 20.0, dtype=np.float32)
    resized, gt, mask = authors_prepare("ddad", image, depth, "root/scene/CAMERA_09/0001.png")
    assert resized.shape == (580, 1280, 3) and gt.shape == mask.shape == (870, 1920)
    assert mask[:730].all() and not mask[730:].any()
    assert authors_prepare("ddad", image, depth, "root/scene/CAMERA_01/0001.png")[2].all()
    with pytest.raises(ValueError, match="columns 8:1928"):
        authors_prepare("ddad", image[:, :1920], depth[:, :1920], "frame.png")


def test_their_loaders_skips_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    (root / "2011_09_26").mkdir(parents=True)
    Image.fromarray(np.zeros((375, 1242, 3), dtype=np.uint8)).save(root / "2011_09_26" / "a.png")
    Image.fromarray(np.full((375, 1242), 2560, dtype=np.uint16)).save(root / "a_depth.png")
    lines = ["2011_09_26/a.png a_depth.png 721.5377", "2011_09_26/b.png None 721.5377", "2011_09_26/c.png nope.png 1"]
    (root / "kitti_eigen_test.txt").write_text("\n".join(lines) + "\n")
    dataset = AuthorsEvaluationDataset("kitti", root)
    assert [entry[0] for entry in dataset.entries] == ["2011_09_26/a.png"] and dataset.num_skipped_lines == 2
    sample = dataset[0]
    assert sample["image"].shape == (3, 352, 1216) and sample["depth"].shape == (352, 1216)
    assert float(sample["depth"][0, 0]) == 10.0
    with pytest.raises(FileNotFoundError, match="reads 'nyu_test.txt' from the dataset folder"):
        AuthorsEvaluationDataset("nyu", root)
    (root / "ddad_val.txt").write_text("2011_09_26/a.png a_depth.png\n")
    with pytest.raises(FileNotFoundError, match="ddad_intrinsics.json"):
        AuthorsEvaluationDataset("ddad", root)


def test_a_missing_opencv_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"pip install 'wedepth_hf\[eval\]'"):
        AuthorsEvaluationDataset("sunrgbd", S0 / "sunrgbd")


def test_in_training_validation_computes_what_wedepth_evaluate_computes(tmp_path: Path) -> None:
    """`eval_protocol: authors` validation is `evaluate_authors_dataset` on the same images, in float32 even when the
    training runs under bf16 autocast (which moves these metrics by far more than 1e-6). The training runs in a fresh
    process: accelerate keeps one precision per process."""
    from wedepth_hf import WEDepthForDepthEstimation

    data = tmp_path / "nyu"
    shutil.copytree(S0 / "nyu", data)
    lines = [line for line in (data / "nyu_test.txt").read_text().splitlines() if line.split()[1] != "None"]
    (data / "train.txt").write_text(lines[0] + "\n")
    (data / "val.txt").write_text("\n".join(lines[1:]) + "\n")
    code = f"""
        import json
        from helpers import make_tiny_config
        from wedepth_hf.training import TrainingConfig, train

        skip = ("model_type", "transformers_version", "architectures", "auto_map", "_name_or_path")
        model_config = {{k: v for k, v in make_tiny_config().to_dict().items() if k not in skip}}
        config = TrainingConfig(
            output_dir="run", preset=None, pretrained_backbones=False, model_config=model_config, dataset="nyu",
            data_root={str(data)!r}, train_split_file="train.txt", val_split_file="val.txt", augment=False,
            per_device_train_batch_size=1, max_train_steps=1, eval_steps=1, eval_protocol="authors",
            mixed_precision="bf16", checkpointing_steps=None, log_with="none",
        )
        print(json.dumps(train(config).eval_history[-1]))
    """
    completed = run_python(code, tmp_path, PYTHONPATH=str(Path(__file__).parent))
    assert completed.returncode == 0, completed.stderr[-3000:]
    validation = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(validation) == {"step", *AUTHORS_METRIC_NAMES}
    model = WEDepthForDepthEstimation.from_pretrained(tmp_path / "run" / "model")
    expected = evaluate_authors_dataset(model, AuthorsEvaluationDataset("nyu", data, "val.txt"), progress=False)
    assert expected.num_images == 1 and expected.num_skipped == 1  # the second image has 9 valid pixels
    for metric in AUTHORS_METRIC_NAMES:
        assert validation[metric] == pytest.approx(expected.metrics[metric], rel=1e-6), metric
