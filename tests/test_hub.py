"""Model card rendering, `update_model_card_results`, and the Hub upload (create_commit mocked)."""

import ast
from pathlib import Path

import pytest
import yaml
from helpers import markdown_structure
from huggingface_hub import HfApi, ModelCard

from wedepth_hf.hub import HubUploadError, push_folder_to_hub, render_model_card, update_model_card_results


METRICS = {
    "abs_rel": 0.1234,
    "sq_rel": 0.05,
    "rmse": 0.4,
    "rmse_log": 0.15,
    "log10": 0.05,
    "silog": 12.0,
    "delta1": 0.85,
    "delta2": 0.95,
    "delta3": 0.99,
}


def _front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _index_results(metadata: dict) -> dict[str, dict[str, float]]:
    results = {}
    for entry in metadata["model-index"][0]["results"]:
        assert entry["task"]["type"] == "depth-estimation"
        results[entry["dataset"]["name"]] = {metric["type"]: metric["value"] for metric in entry["metrics"]}
    return results


def test_render_model_card_metadata_command_and_config(tmp_path: Path) -> None:
    card = render_model_card(
        model_name="wedepth-test",
        results={"nyu (validation)": METRICS},
        base_models=["facebook/dinov2-large", "microsoft/swin-base-patch4-window12-384-in22k"],
        datasets=["sayakpaul/nyu_depth_v2"],
        license="mit",
        training_command=["python", "examples/train.py", "--output_dir", "a dir"],
        training_config={"learning_rate": 2e-4, "vfm_stage_layers": [4, 11, 17, 23]},
    )
    card.save(tmp_path / "README.md")
    metadata = _front_matter(tmp_path / "README.md")
    assert metadata["pipeline_tag"] == "depth-estimation"
    assert metadata["library_name"] == "transformers"
    assert metadata["license"] == "mit"
    assert metadata["base_model"] == ["facebook/dinov2-large", "microsoft/swin-base-patch4-window12-384-in22k"]
    assert metadata["datasets"] == ["sayakpaul/nyu_depth_v2"]
    assert {"depth-estimation", "wedepth", "metric-depth"} <= set(metadata["tags"])
    assert _index_results(metadata) == {"nyu (validation)": METRICS}
    text = (tmp_path / "README.md").read_text()
    assert "python examples/train.py --output_dir 'a dir'" in text  # shlex-joined
    assert "learning_rate: 0.0002" in text and "$" not in text  # every placeholder filled
    assert "| nyu (validation) | 0.1234 |" in text


def test_render_without_results_or_base_models_omits_them(tmp_path: Path) -> None:
    render_model_card(model_name="random-init").save(tmp_path / "README.md")
    metadata = _front_matter(tmp_path / "README.md")
    assert "model-index" not in metadata and "base_model" not in metadata
    assert metadata["license"] == "apache-2.0"


def test_update_model_card_results_replaces_only_the_results(tmp_path: Path) -> None:
    card_path = tmp_path / "README.md"
    render_model_card(
        model_name="wedepth-test",
        results={"nyu (validation)": METRICS},
        base_models=["facebook/dinov2-small"],
        training_command="python examples/train.py --config x.yaml",
    ).save(card_path)
    body_before = card_path.read_text().split("<!-- wedepth-results-start -->")[0].split("---\n", 2)[2]
    test_metrics = {**METRICS, "abs_rel": 0.0987}
    update_model_card_results(card_path, {"NYU Eigen test": test_metrics}, dataset_split="test")
    metadata = _front_matter(card_path)
    assert _index_results(metadata) == {"nyu (validation)": METRICS, "NYU Eigen test": test_metrics}
    assert metadata["base_model"] == ["facebook/dinov2-small"]  # other metadata untouched
    assert metadata["model-index"][0]["name"] == "wedepth-test"
    text = card_path.read_text()
    assert text.split("<!-- wedepth-results-start -->")[0].split("---\n", 2)[2] == body_before
    assert "| NYU Eigen test | 0.0987 |" in text
    # Same dataset again: replaced, not duplicated.
    update_model_card_results(card_path, {"NYU Eigen test": METRICS})
    assert _index_results(_front_matter(card_path))["NYU Eigen test"] == METRICS
    assert card_path.read_text().count("| NYU Eigen test |") == 1


def test_update_model_card_results_on_a_plain_card(tmp_path: Path) -> None:
    card_path = tmp_path / "model" / "README.md"
    card_path.parent.mkdir()
    card_path.write_text("---\nlicense: apache-2.0\n---\n\n# Some model\n")
    update_model_card_results(card_path, {"kitti": METRICS})
    metadata = _front_matter(card_path)
    assert metadata["license"] == "apache-2.0"
    assert metadata["model-index"][0]["name"] == "model"
    assert _index_results(metadata) == {"kitti": METRICS}
    assert ModelCard.load(card_path).text.strip() == "# Some model"
    with pytest.raises(FileNotFoundError):
        update_model_card_results(tmp_path / "missing.md", {"kitti": METRICS})


def test_push_folder_sends_one_commit_without_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    (folder / "checkpoints" / "step_2").mkdir(parents=True)
    (folder / "checkpoints" / "step_2" / "model.safetensors").write_bytes(b"x")
    (folder / "config.json").write_text("{}")
    (folder / "README.md").write_text("card")
    calls: dict = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("repo", (repo_id, kw)))
    monkeypatch.setattr(
        HfApi,
        "create_commit",
        lambda self, repo_id, operations, **kw: calls.setdefault("commit", (repo_id, operations, kw)),
    )
    push_folder_to_hub(folder, "org/name", private=True)
    assert calls["repo"][0] == "org/name" and calls["repo"][1]["private"] is True
    assert calls["repo"][1]["exist_ok"] is True
    repo_id, operations, _ = calls["commit"]
    assert repo_id == "org/name"
    assert sorted(operation.path_in_repo for operation in operations) == ["README.md", "config.json"]


def test_failed_push_names_the_retry_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")

    def fail(self: HfApi, *args: object, **kwargs: object) -> None:
        raise ConnectionError("no network")

    branches = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, branch, **kw: branches.append(branch))
    monkeypatch.setattr(HfApi, "create_commit", fail)
    with pytest.raises(HubUploadError, match=r"hf upload org/name .*model \. --repo-type model --revision dev"):
        push_folder_to_hub(folder, "org/name", revision="dev")
    assert branches == ["dev"]
    assert (folder / "config.json").is_file()


def test_no_value_can_break_out_of_its_place_in_the_card(tmp_path: Path) -> None:
    """Backticks, line breaks, front-matter and heading markers, HTML and results markers in any value stay data."""
    marker = "<!-- wedepth-results-start -->"
    name = f"evil ``` name\n---\n# Injected title\n{marker}\n"
    config = {
        "data_root": f"/data/```\n# Config heading\n````\n---\n{marker}\n",
        "note": "`````` six backticks ~~~",
        "list": ["```", "~~~", "```yaml"],
    }
    command = "python examples/train.py --model_name '```\n# Command heading\n'"
    repo_id = 'org/"name"\n```\n# Repo heading'
    card_path = tmp_path / "README.md"
    render_model_card(
        model_name=name,
        repo_id=repo_id,
        results={"nyu\n# Table heading | x": METRICS},
        datasets=["org/``data``\n# Dataset heading"],
        training_command=command,
        training_config=config,
        model_description=f"Text\n# Description heading\n{marker}",
        selection_text="best\n---",
    ).save(card_path)

    card = ModelCard.load(card_path)
    one_line_name = " ".join(name.split())
    assert card.data.model_name == one_line_name and _front_matter(card_path)["license"] == "apache-2.0"
    headings, blocks = markdown_structure(card.text)
    assert len(headings) == 5 and headings[0].startswith("# evil ``` name --- # Injected title &lt;!--")
    assert headings[1:] == ["## Use", "## Training", "## Results", "## Citation"]
    by_info = {info: content for info, content in blocks}
    assert by_info["bash"] == command
    assert yaml.safe_load(by_info["yaml"]) == config
    call = ast.parse(by_info["python"]).body[1].value  # pipeline("depth-estimation", model=..., ...)
    assert ast.literal_eval(next(k.value for k in call.keywords if k.arg == "model")) == repo_id

    # The results markers inside values are not taken for the card's: an update rewrites the results only.
    update_model_card_results(card_path, {"NYU test": METRICS}, dataset_split="test")
    headings_after, blocks_after = markdown_structure(ModelCard.load(card_path).text)
    assert headings_after == headings and blocks_after == blocks
    assert "| NYU test | 0.1234 |" in card_path.read_text()
