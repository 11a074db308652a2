"""Where a run stands (`TrainingState`, saved in every checkpoint as `training_state.json`) and what it produced
(`TrainingResult`, returned by `train`).

The state file holds exactly `SAVED_FIELDS`, in that order, as JSON: the format every checkpoint has had, so that
checkpoints written before `TrainingState` existed resume as they are. The loss and evaluation histories live in
the state while a run goes on but are not saved: a resumed run reports the steps it made itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# The fields of `TrainingState` that a checkpoint saves, in the order of the keys of `training_state.json`.
SAVED_FIELDS = (
    "global_step",
    "epoch",
    "batches_in_epoch",
    "best_metric",
    "best_step",
    "best_metrics",
    "train_shortest_edge",
)


@dataclass
class TrainingState:
    """The progress of a run: the optimizer steps made (`global_step`), the position in the data (`epoch`, and the
    micro-batches of it already seen), the best validation so far (metric, step, all metrics), the resolution of
    training (the shorter side of the first batch; the exported processor resizes to it) and the histories."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] | None = None
    train_shortest_edge: int | None = None
    # per optimizer step: {"step", "loss", "lr"}; per evaluation: {"step", <metric>: value}; not saved
    history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The saved fields (`SAVED_FIELDS`), as `training_state.json` holds them."""
        return {name: getattr(self, name) for name in SAVED_FIELDS}

    def to_json(self) -> str:
        """The text of `training_state.json`."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingState:
        """The state a checkpoint saved. A saved field that is missing keeps its default (a checkpoint from before
        it was recorded); keys that are not saved fields are ignored."""
        return cls(**{name: values[name] for name in SAVED_FIELDS if name in values})

    @classmethod
    def from_json(cls, text: str) -> TrainingState:
        """The state in the text of a `training_state.json`; a `ValueError` when it is not a JSON object."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"expected a JSON object of training state, got {type(values).__name__}")
        return cls.from_dict(values)

    def forget_best(self) -> None:
        """Start the best-model selection again (the exported best model was moved aside with an abandoned branch)."""
        self.best_metric, self.best_step, self.best_metrics = None, None, None

    def record_best(self, value: float, metrics: dict[str, float]) -> None:
        """Make the current step, with validation `metrics` (`value` the one that selects), the best one."""
        self.best_metric, self.best_step, self.best_metrics = value, self.global_step, metrics


@dataclass
class TrainingResult:
    """What a training run produced: the exported model folder, the step reached, the loss and evaluation history."""

    output_dir: Path
    model_dir: Path
    global_step: int
    history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    hub_url: str | None = None
    # errors of the validation samples left out as bad (`on_bad_sample: skip`; see `drop_bad_samples`)
    dropped_validation_samples: list[str] = field(default_factory=list)
