"""Model cards and Hub uploads for WEDepth checkpoints.

`render_model_card` fills the package's `templates/model_card.md` (a `string.Template`) with Hub metadata (pipeline
tag, library, license, base models, datasets, tags, `model-index`), the command and configuration that trained the
model. No string it is given can leave its place in the card: code blocks get a fence longer than any backtick run
inside, and one-line fields (title, lists, table cells) lose their line breaks and HTML.
`update_model_card_results` rewrites only the results of an existing card (its `model-index` and the results table
between the card's result markers). `push_folder_to_hub` uploads an exported model folder in one commit.
"""

from __future__ import annotations

import json
import re
import shlex
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData
from transformers.utils import logging

from .constants import METRIC_DISPLAY_NAMES


logger = logging.get_logger(__name__)

DEFAULT_TEMPLATE = "templates/model_card.md"
"""The model card template, package data of wedepth_hf (read with importlib.resources, so it works from a wheel)."""
DEFAULT_TAGS = ("depth-estimation", "wedepth", "metric-depth")
DEFAULT_IGNORE_PATTERNS = ("checkpoints/*", "data/*", "*/checkpoints/*", "*/data/*", ".*", "*/.*")
TASK_TYPE = "depth-estimation"
# The results markers count only as whole lines, so that marker text inside a code block or a value cannot match.
_RESULTS_BLOCK = re.compile(
    r"(^<!-- wedepth-results-start -->\n).*?(\n<!-- wedepth-results-end -->$)", re.DOTALL | re.MULTILINE
)


class HubUploadError(RuntimeError):
    """An upload to the Hub failed; the message says how to retry from the local folder that was kept."""


@dataclass
class DatasetReference:
    """How a dataset appears in the `model-index`: a display name, the Hub dataset id/type, and the split."""

    name: str
    type: str
    split: str | None = None


def _dataset_reference(name: str, dataset_types: Mapping[str, str] | None, split: str | None) -> DatasetReference:
    """The `model-index` dataset entry of a display name."""
    return DatasetReference(name=name, type=(dataset_types or {}).get(name, name), split=split)


def build_eval_results(
    results: Mapping[str, Mapping[str, float]],
    *,
    dataset_types: Mapping[str, str] | None = None,
    dataset_split: str | None = None,
) -> list[EvalResult]:
    """`EvalResult`s (one per dataset and metric) for the `model-index` of a card.

    Args:
        results: {dataset display name: {metric key (abs_rel, ..., delta3): value}}.
        dataset_types: optional {dataset display name: Hub dataset id}; the display name is used otherwise.
        dataset_split: the split the results were measured on (e.g. "validation", "test").
    """
    eval_results = []
    for dataset_name, metrics in results.items():
        if not metrics:
            raise ValueError(f"No metrics given for dataset {dataset_name!r}; pass a non-empty metrics dict.")
        reference = _dataset_reference(dataset_name, dataset_types, dataset_split)
        for key, value in metrics.items():
            eval_results.append(
                EvalResult(
                    task_type=TASK_TYPE,
                    task_name="Depth Estimation",
                    dataset_type=reference.type,
                    dataset_name=reference.name,
                    dataset_split=reference.split,
                    metric_type=key,
                    metric_name=METRIC_DISPLAY_NAMES.get(key, key),
                    metric_value=round(float(value), 4),
                )
            )
    return eval_results


def _one_line(text: str) -> str:
    """`text` on one line (every run of whitespace, line breaks included, as one space) with HTML escaped: it cannot
    start a heading, a block or an HTML comment of its own."""
    return " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _longest_backtick_run(text: str) -> int:
    """The length of the longest run of backticks in `text` (0 when there is none)."""
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def code_fence(content: str) -> str:
    """A backtick fence longer than any backtick run in `content` (at least three): nothing inside closes it."""
    return "`" * max(3, _longest_backtick_run(content) + 1)


def _inline_code(value: str) -> str:
    """`value` as inline code on one line, delimited by more backticks than it holds."""
    value = " ".join(str(value).split())
    ticks = "`" * (_longest_backtick_run(value) + 1)
    padding = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{padding}{value}{padding}{ticks}"


def results_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table of {dataset: metrics}, one row per dataset, metric columns in the usual order."""
    if not results:
        return "No evaluation has been run yet."
    keys = [key for key in METRIC_DISPLAY_NAMES if any(key in metrics for metrics in results.values())]
    keys += sorted({key for metrics in results.values() for key in metrics} - set(keys))
    lines = ["| dataset | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for dataset_name, metrics in results.items():
        cells = [f"{metrics[key]:.4f}" if key in metrics else "-" for key in keys]
        lines.append(f"| {_one_line(dataset_name).replace('|', '&#124;')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def vfm_storage_text(config: Any, include_vfm: bool) -> str:
    """The model card's sentence on whether a folder holds its frozen VFM, and which VFM it needs if not."""
    if include_vfm:
        return "The folder is self-contained: it holds the frozen VFM's weights too."
    revision = f" at revision `{config.vfm_revision}`" if config.vfm_revision else ""
    return (
        f"The folder holds only what was trained: the frozen VFM, `{config.vfm_pretrained_name_or_path}`{revision}, "
        f"is not copied into it; `from_pretrained` loads it from there (or from the Hub cache) and checks its "
        f"fingerprint `{config.vfm_fingerprint}`."
    )


def _list_text(values: Iterable[str], empty: str) -> str:
    """Values as inline code, comma separated, or `empty` when there are none."""
    values = list(values)
    return ", ".join(_inline_code(value) for value in values) if values else empty


def _template(template_path: str | Path | None) -> str:
    """The card template: the given file, or the package's `templates/model_card.md`."""
    if template_path is None:
        return resources.files("wedepth_hf").joinpath(DEFAULT_TEMPLATE).read_text(encoding="utf-8")
    if not Path(template_path).is_file():
        raise FileNotFoundError(f"Model card template {template_path} not found.")
    return Path(template_path).read_text(encoding="utf-8")


def render_model_card(
    *,
    model_name: str,
    results: Mapping[str, Mapping[str, float]] | None = None,
    repo_id: str | None = None,
    base_models: Iterable[str] = (),
    datasets: Iterable[str] = (),
    dataset_types: Mapping[str, str] | None = None,
    results_split: str | None = "validation",
    license: str = "apache-2.0",
    tags: Iterable[str] = DEFAULT_TAGS,
    training_command: list[str] | str | None = None,
    training_config: Mapping[str, Any] | None = None,
    model_description: str = "",
    selection_text: str = "",
    template_path: str | Path | None = None,
) -> ModelCard:
    """Render the WEDepth model card (README.md) with Hub metadata.

    Every argument is data: the command and configuration sit in code blocks whose fences nothing inside can close,
    and the title, description and other text fields are put on one line with HTML escaped, so no value can add
    front matter, headings or results markers.

    Args:
        model_name: the card's title and the `model-index` name (line breaks become spaces).
        results: {dataset display name: metrics} written to `model-index` and the results table.
        repo_id: Hub id shown in the usage snippet (defaults to `model_name`).
        base_models: Hub ids of the pretrained models this one starts from (VFM, encoder, or a WEDepth checkpoint).
        datasets: Hub dataset ids for the `datasets` metadata (local names are better left out).
        dataset_types: {display name: Hub dataset id} for the `model-index` dataset types.
        results_split: the split the results were measured on.
        license: the license identifier of the metadata.
        tags: metadata tags.
        training_command: the command that trained the model (argv list, joined with `shlex`, or a string).
        training_config: the resolved training configuration, written as YAML.
        model_description: a free-text paragraph (architecture, sizes).
        selection_text: how the exported weights were chosen (e.g. best validation AbsRel at step N).
        template_path: a `string.Template` markdown file; defaults to the package's `templates/model_card.md`.
    """
    model_name = " ".join(str(model_name).split())
    results = {name: dict(metrics) for name, metrics in (results or {}).items()}
    base_models, datasets = list(base_models), list(datasets)
    eval_results = build_eval_results(results, dataset_types=dataset_types, dataset_split=results_split)
    card_data = _card_metadata(model_name, base_models, datasets, eval_results, license, tags)
    text = string.Template(_template(template_path)).substitute(
        metadata=card_data.to_yaml().strip(),
        model_name=_one_line(model_name),
        repo_id=json.dumps(repo_id or model_name),
        model_description=_one_line(model_description),
        datasets_text=_list_text(datasets or (dataset_types or {}).keys(), "not recorded"),
        base_models_text=_list_text(base_models, "none (random initialisation)"),
        selection_text=_one_line(selection_text or "the weights at the end of training"),
        results_table=results_table(results),
        **_training_fields(training_command, training_config),
    )
    return ModelCard(text)


def _card_metadata(
    model_name: str,
    base_models: list[str],
    datasets: list[str],
    eval_results: list[EvalResult],
    license: str,
    tags: Iterable[str],
) -> ModelCardData:
    """The card's Hub metadata (its front matter): task, library, license, base models, datasets, tags and the
    `model-index` results; empty lists are left out."""
    return ModelCardData(
        pipeline_tag=TASK_TYPE,
        library_name="transformers",
        license=license,
        base_model=base_models or None,
        datasets=datasets or None,
        tags=list(tags),
        model_name=model_name,
        eval_results=eval_results or None,
    )


def _training_fields(
    training_command: list[str] | str | None, training_config: Mapping[str, Any] | None
) -> dict[str, str]:
    """The template fields of the card's training section: the command (an argv list joined with `shlex`) and the
    configuration as YAML, each with a code fence that nothing inside it can close."""
    if isinstance(training_command, list):
        training_command = shlex.join(training_command)
    training_command = training_command or "(not recorded)"
    config_text = yaml.safe_dump(dict(training_config or {}), sort_keys=False).strip()
    return {
        "command_fence": code_fence(training_command),
        "training_command": training_command,
        "config_fence": code_fence(config_text),
        "training_config": config_text,
    }


def _existing_results(card: ModelCard) -> dict[str, dict[str, float]]:
    """{dataset name: metrics} read back from a card's `model-index`."""
    existing: dict[str, dict[str, float]] = {}
    for result in card.data.eval_results or []:
        existing.setdefault(result.dataset_name, {})[result.metric_type] = float(result.metric_value)
    return existing


def update_model_card_results(
    card_path: str | Path,
    results: Mapping[str, Mapping[str, float]],
    *,
    dataset_types: Mapping[str, str] | None = None,
    dataset_split: str | None = None,
    model_name: str | None = None,
    replace_all: bool = False,
) -> ModelCard:
    """Rewrite the results of an existing model card: its `model-index` and its results table, nothing else.

    Results for the datasets named in `results` replace those already in the card; other datasets' results are kept
    unless `replace_all`. The model-index name is kept (or set to `model_name`, or the folder name when missing).

    Args:
        card_path: the README.md to update (a card written by `render_model_card`, or any card with front matter).
        results: {dataset display name: {abs_rel, sq_rel, rmse, rmse_log, log10, silog, delta1, delta2, delta3}}.
        dataset_types: {display name: Hub dataset id} for the `model-index` dataset types.
        dataset_split: the split these results were measured on (e.g. "test").
        model_name: the `model-index` name, when the card has none yet.
        replace_all: drop every earlier result instead of merging.
    """
    card_path = Path(card_path)
    if not card_path.is_file():
        raise FileNotFoundError(f"No model card at {card_path}; write one with `render_model_card` first.")
    card = ModelCard.load(card_path)
    previous = [] if replace_all else list(card.data.eval_results or [])
    kept = [result for result in previous if result.dataset_name not in results]
    new = build_eval_results(results, dataset_types=dataset_types, dataset_split=dataset_split)
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name or card_path.resolve().parent.name
    merged = _existing_results(card)
    content = str(card)
    if _RESULTS_BLOCK.search(content):
        content = _RESULTS_BLOCK.sub(lambda match: match.group(1) + results_table(merged) + match.group(2), content)
    updated = ModelCard(content)
    updated.save(card_path)
    return updated


def _files_to_upload(folder: Path, ignore_patterns: Iterable[str]) -> list[str]:
    """Relative paths of the files under `folder` that match none of `ignore_patterns`, sorted."""
    patterns = list(ignore_patterns)
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not any(fnmatch(relative, pattern) for pattern in patterns):
            files.append(relative)
    return files


def retry_command(folder: str | Path, repo_id: str, *, revision: str | None = None, private: bool = False) -> str:
    """The shell command that uploads `folder` to `repo_id` again (the `hf` CLI of huggingface_hub)."""
    command = ["hf", "upload", repo_id, str(folder), ".", "--repo-type", "model"]
    if revision:
        command += ["--revision", revision]
    if private:
        command += ["--private"]
    return shlex.join(command)


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload WEDepth model",
    ignore_patterns: Iterable[str] = DEFAULT_IGNORE_PATTERNS,
) -> str:
    """Upload an exported model folder to the Hub model repo `repo_id` in a single commit; return the commit URL.

    The repo (and the `revision` branch) is created when missing. Files matching `ignore_patterns` (training
    checkpoints, generated data, hidden files) are not sent. One `HfApi.create_commit` holds every file, so a failed
    upload leaves the repo as it was. On failure raises `HubUploadError` naming the command that retries it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot upload {folder}: no such folder.")
    files = _files_to_upload(folder, ignore_patterns)
    if not files:
        raise ValueError(f"Nothing to upload in {folder} (every file matches the ignore patterns {ignore_patterns}).")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
        commit = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message,
            repo_type="model",
            revision=revision,
        )
    except Exception as error:
        raise HubUploadError(
            f"Uploading {folder} to the Hub repo {repo_id} failed ({type(error).__name__}: {error}). The local folder "
            f"is kept; retry with:\n  {retry_command(folder, repo_id, revision=revision, private=private)}\nor in "
            f"Python: wedepth_hf.hub.push_folder_to_hub({str(folder)!r}, {repo_id!r}"
            + (f", revision={revision!r}" if revision else "")
            + ")"
        ) from error
    url = getattr(commit, "commit_url", None) or str(commit)
    logger.info("Uploaded %d files from %s to %s: %s", len(files), folder, repo_id, url)
    return url


__all__ = [
    "DEFAULT_TEMPLATE",
    "HubUploadError",
    "build_eval_results",
    "code_fence",
    "push_folder_to_hub",
    "render_model_card",
    "results_table",
    "retry_command",
    "update_model_card_results",
    "vfm_storage_text",
]
