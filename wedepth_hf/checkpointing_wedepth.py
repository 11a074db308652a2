"""Checkpoint storage of WEDepth models: the frozen VFM by reference.

The frozen DINOv2 is most of a WEDepth checkpoint (1.2 GB for DINOv2-L) and is the same in every WEDepth model built
on it. So a checkpoint may leave it out: its config then records the VFM's source (Hub id or folder), the Hub commit
and a fingerprint of the weights, and loading fetches the VFM from there and checks it. `WEDepthCheckpointMixin`
gives `WEDepthForDepthEstimation` that behaviour (VFM-free `save_pretrained`/`from_pretrained`, sharing one loaded VFM
between models, building a fresh model from pretrained backbones) on top of `PreTrainedModel`'s. This file imports
only torch, transformers and its sibling configuration file (it travels to the Hub as remote code).
"""

import contextlib
import copy
import hashlib
import importlib
import json
import logging as std_logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn
from transformers import AutoConfig, Dinov2Model, PreTrainedConfig
from transformers.modeling_utils import load_state_dict
from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file, logging
from transformers.utils.hub import resolve_revision

from .configuration_wedepth import WEDepthConfig


logger = logging.get_logger(__name__)

_Model = TypeVar("_Model", bound="WEDepthCheckpointMixin")

_SUPPORTED_VFM_ATTENTION = ("sdpa", "eager")
"""The VFM attention implementations the prompted stages are tested with (`prompted_attention` calls them unmasked)."""


_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "proxies")
"""`from_pretrained` arguments that say how to reach the Hub; they apply to the VFM's source too (`revision` and
`subfolder` do not: they name the WEDepth repo's, and the VFM's revision is the recorded one)."""


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """ "sha256:<hex>" over a state dict, in name order: every name, dtype, shape and the raw bytes.

    The same weights give the same fingerprint on any machine and device; any change of a value, dtype or shape
    (including a cast) gives another one.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return f"sha256:{digest.hexdigest()}"


def vfm_fingerprint(vfm: nn.Module) -> str:
    """The `state_fingerprint` of a VFM's state dict: what `WEDepthConfig.vfm_fingerprint` records."""
    return state_fingerprint(vfm.state_dict())


def load_vfm_with_record(name_or_path: str, **hub_kwargs: Any) -> tuple[Dinov2Model, dict[str, str | None]]:
    """A DINOv2 checkpoint and the config fields that record where its weights come from: the Hub id (or the folder,
    made absolute), the commit the Hub revision resolved to (the model is loaded from that very commit), and the
    weights' fingerprint."""
    local = Path(name_or_path)
    commit = None
    if not local.is_dir():
        resolved = resolve_revision(
            name_or_path,
            hub_kwargs.get("revision"),
            token=hub_kwargs.get("token"),
            local_files_only=hub_kwargs.get("local_files_only", False),
            cache_dir=hub_kwargs.get("cache_dir"),
        )
        commit = getattr(resolved, "resolved", None) or (
            resolved if resolved is not None and re.fullmatch(r"[0-9a-f]{40}", resolved) else None
        )
    vfm = Dinov2Model.from_pretrained(name_or_path, **{**hub_kwargs, "revision": commit or hub_kwargs.get("revision")})
    record = {
        "vfm_pretrained_name_or_path": str(local.resolve()) if local.is_dir() else name_or_path,
        "vfm_revision": commit,
        "vfm_fingerprint": vfm_fingerprint(vfm),
    }
    return vfm, record


def check_vfm_attention(attention: str | None) -> None:
    """Raise unless the VFM's attention implementation is one the prompted stages are tested with (None: default)."""
    if attention is not None and attention not in _SUPPORTED_VFM_ATTENTION:
        raise ValueError(
            f"The prompted VFM stages are built and tested with {_SUPPORTED_VFM_ATTENTION} attention, not "
            f"{attention!r}; load with `attn_implementation='sdpa'` (the default) or 'eager'."
        )


def _describe_source(config: WEDepthConfig) -> str:
    """The recorded VFM source, for messages: "<Hub id or folder>[ at revision <commit>]"."""
    revision = f" at revision {config.vfm_revision}" if config.vfm_revision else ""
    return f"{config.vfm_pretrained_name_or_path}{revision}"


def load_vfm_source(config: WEDepthConfig, **hub_kwargs: Any) -> Dinov2Model:
    """The frozen VFM a VFM-free WEDepth checkpoint refers to, loaded from its recorded source and revision (through
    the Hub cache like any `from_pretrained`) and checked against the recorded fingerprint."""
    if config.vfm_pretrained_name_or_path is None:
        raise ValueError("This WEDepth config records no VFM source; pass `vfm=` (a loaded Dinov2Model).")
    try:
        vfm = Dinov2Model.from_pretrained(
            config.vfm_pretrained_name_or_path,
            revision=config.vfm_revision,
            attn_implementation=config.vfm_config._attn_implementation,
            **{key: value for key, value in hub_kwargs.items() if key in _HUB_KWARGS},
        )
    except OSError as error:
        raise OSError(
            f"This WEDepth checkpoint does not include its frozen VFM; it needs {_describe_source(config)}, which "
            f"could not be loaded ({error}). Make it reachable (network access, the Hub cache, or the recorded "
            "folder), or pass an already-loaded model: from_pretrained(..., vfm=Dinov2Model.from_pretrained(...))."
        ) from error
    check_vfm(vfm, config)
    return vfm


def check_vfm(vfm: nn.Module, config: WEDepthConfig) -> None:
    """Raise unless `vfm` is a `Dinov2Model` whose weights have the fingerprint `config` records."""
    if not isinstance(vfm, Dinov2Model):
        raise TypeError(f"`vfm` must be a transformers Dinov2Model, got {type(vfm).__name__}.")
    if config.vfm_fingerprint is None:
        raise ValueError("This WEDepth config records no VFM fingerprint, so no VFM can be checked against it.")
    actual = vfm_fingerprint(vfm)
    if actual != config.vfm_fingerprint:
        raise ValueError(
            f"The VFM is not the one this WEDepth checkpoint was trained with ({_describe_source(config)}): its "
            f"weights' fingerprint is {actual}, the recorded one {config.vfm_fingerprint}. A different checkpoint, "
            "revision or dtype gives a different VFM; load the recorded one (in float32 as saved)."
        )


def _saved_weights(name_or_path: str | os.PathLike, hub_kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a `save_pretrained` folder (or Hub repo) holds: one safetensors file or its shards."""
    single = cached_file(name_or_path, SAFE_WEIGHTS_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    files = [single] if single is not None else []
    if not files:
        index = cached_file(name_or_path, SAFE_WEIGHTS_INDEX_NAME, **hub_kwargs)
        shards = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
        files = [cached_file(name_or_path, shard, **hub_kwargs) for shard in shards]
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(load_state_dict(file))
    return weights


_LOADING_LOGGER = "transformers.modeling_utils"
"""The logger of transformers' loading report (missing, unexpected and mismatched tensors)."""


@contextlib.contextmanager
def _held_log_records(name: str) -> Iterator[list[std_logging.LogRecord]]:
    """Hold back what the logger `name` logs inside the block: the records are collected in the yielded list, for the
    caller to emit (`_emit`) or to replace by an error that says what they would have."""
    records: list[std_logging.LogRecord] = []

    def hold(record: std_logging.LogRecord) -> bool:
        records.append(record)
        return False

    target = std_logging.getLogger(name)
    target.addFilter(hold)
    try:
        yield records
    finally:
        target.removeFilter(hold)


def _emit(records: list[std_logging.LogRecord]) -> None:
    """Log held records as they would have been logged."""
    for record in records:
        std_logging.getLogger(record.name).handle(record)


def _loading_problem(info: Mapping[str, Any], ignore_mismatched_sizes: bool) -> str | None:
    """What makes a loaded WEDepth model unusable, from transformers' loading info: tensors whose shapes do not fit
    the config (unless the caller asked to ignore that), and any frozen-VFM tensor the checkpoint did not provide,
    which would be randomly initialised. None when there is nothing."""
    mismatched = sorted((name, tuple(saved), tuple(expected)) for name, saved, expected in info["mismatched_keys"])
    if mismatched and not ignore_mismatched_sizes:
        name, saved, expected = mismatched[0]
        return (
            f"{len(mismatched)} tensor(s) of the checkpoint do not have the shapes its config gives the model (e.g. "
            f"{name}: {saved} in the checkpoint, {expected} in the model); its weights and config.json do not belong "
            "together."
        )
    absent = sorted(
        {key for key in info["missing_keys"] if key.startswith("vfm.")}
        | {name for name, _, _ in mismatched if name.startswith("vfm.")}
    )
    if absent:
        return (
            f"The checkpoint does not provide {len(absent)} of the frozen VFM's tensors (e.g. {absent[0]}), and the "
            "VFM is never initialised at random. A folder saved with include_vfm=False says so in its config.json "
            '("vfm_in_checkpoint": false) and gets its VFM from the recorded source; otherwise use a complete folder.'
        )
    return None


def _target_dtype(requested: Any) -> torch.dtype | None:
    """The dtype `from_pretrained(dtype=requested)` gives the weights: None for "auto" (the checkpoint's own) or a
    per-module dict (left to transformers), the default dtype for None."""
    if requested is None:
        return torch.get_default_dtype()
    if isinstance(requested, torch.dtype):
        return requested
    if isinstance(requested, str) and requested != "auto" and isinstance(getattr(torch, requested, None), torch.dtype):
        return getattr(torch, requested)
    return None


def _check_same_vfm(vfm: nn.Module, verified: Mapping[str, torch.Tensor]) -> None:
    """Raise unless every tensor of the loaded `vfm` equals the verified one of that name (cast to its dtype)."""
    for name, tensor in vfm.state_dict().items():
        reference = verified.get(name)
        if reference is None or not torch.equal(tensor, reference.to(tensor.device, tensor.dtype)):
            raise ValueError(f"The loaded VFM's tensor {name} is not the verified VFM's; nothing of it may differ.")


class _LoadPlan(NamedTuple):
    """How `WEDepthCheckpointMixin.from_pretrained` calls `PreTrainedModel.from_pretrained`, and what it checks and
    casts afterwards (`cast_to`: the dtype asked for, applied after the VFM's fingerprint is checked)."""

    arguments: tuple[Any, ...]
    kwargs: dict[str, Any]
    config: WEDepthConfig
    verified_state: dict[str, torch.Tensor] | None
    cast_to: torch.dtype | None


def _checkpoint_config(
    name_or_path: str | os.PathLike | None, config: Any, hub_kwargs: dict[str, Any]
) -> PreTrainedConfig:
    """The config a checkpoint is loaded with: a config instance as it is (under remote code, Auto classes hold
    another copy of the config class), else the one read from `config` (a path) or from the checkpoint."""
    if not isinstance(config, PreTrainedConfig):
        config = WEDepthConfig.from_pretrained(config if config is not None else name_or_path, **hub_kwargs)
    return config


def _plan_complete_load(
    name_or_path: str | os.PathLike | None, model_args: tuple[Any, ...], config: Any, kwargs: dict[str, Any]
) -> _LoadPlan:
    """Loading a checkpoint that includes its VFM: with a fingerprint to check, the checkpoint is loaded in its own
    dtype, checked, then cast as asked. Takes the dtype arguments out of `kwargs`."""
    requested = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
    target = _target_dtype(requested)
    cast_after_check = config.vfm_fingerprint is not None and target is not None
    kwargs["dtype"] = "auto" if cast_after_check else requested
    return _LoadPlan((name_or_path, *model_args), kwargs, config, None, target if cast_after_check else None)


def _plan_vfm_free_load(
    name_or_path: str | os.PathLike | None,
    model_args: tuple[Any, ...],
    config: Any,
    kwargs: dict[str, Any],
    hub_kwargs: dict[str, Any],
    vfm: Dinov2Model | None,
) -> _LoadPlan:
    """Loading a VFM-free checkpoint: its saved weights completed with the verified VFM's (`vfm`, or the recorded
    source), passed as a `state_dict`, with the config fields among `kwargs` applied to the config."""
    if "state_dict" in kwargs:
        raise ValueError("A VFM-free checkpoint is loaded from its folder; `state_dict=` cannot be combined.")
    weights = _saved_weights(name_or_path, hub_kwargs)
    if vfm is not None:
        check_vfm(vfm, config)
    source = vfm if vfm is not None else load_vfm_source(config, **hub_kwargs)
    verified_state = source.state_dict()
    weights.update({f"vfm.{name}": tensor for name, tensor in verified_state.items()})
    loading = {key: value for key, value in kwargs.items() if key not in hub_kwargs and key != "config"}
    config_overrides = {key: loading.pop(key) for key in list(loading) if key in WEDepthConfig.__annotations__}
    config = type(config).from_dict({**config.to_dict(), **config_overrides})
    kwargs = {**loading, "config": config, "state_dict": weights}
    return _LoadPlan((None, *model_args), kwargs, config, verified_state, None)


def _load_with_problems_raised(
    load: Any, plan: _LoadPlan, ignore_mismatched_sizes: bool, name_or_path: str | os.PathLike | None
) -> tuple[Any, dict[str, Any]]:
    """The model and loading info from `load` (`PreTrainedModel.from_pretrained`) as planned. transformers' report of
    missing or mismatched tensors is held back while the problems it shows are turned into one error; it is logged
    as usual when the model is loaded."""
    records: list[std_logging.LogRecord] = []
    try:
        with _held_log_records(_LOADING_LOGGER) as records:
            model, info = load(*plan.arguments, output_loading_info=True, ignore_mismatched_sizes=True, **plan.kwargs)
    except BaseException:
        _emit(records)
        raise
    problem = _loading_problem(info, ignore_mismatched_sizes)
    if problem is not None:
        raise ValueError(f"{name_or_path}: {problem}")
    _emit(records)
    return model, info


def _verify_loaded_vfm(model: Any, plan: _LoadPlan, name_or_path: str | os.PathLike | None) -> None:
    """Raise unless the loaded model's VFM is the verified one (VFM-free checkpoint) or, where the config records a
    fingerprint, has it (on the checkpoint's own bytes, before any cast)."""
    config = plan.config
    if plan.verified_state is not None:
        _check_same_vfm(model.vfm, plan.verified_state)
    elif config.vfm_fingerprint is not None:
        actual = vfm_fingerprint(model.vfm)
        if actual != config.vfm_fingerprint:
            source = f" ({_describe_source(config)})" if config.vfm_pretrained_name_or_path else ""
            raise ValueError(
                f"{name_or_path}: its frozen VFM is not the one its config records{source}: the "
                f"weights' fingerprint is {actual}, the recorded one "
                f"{config.vfm_fingerprint}. Its VFM tensors were changed, or saved after the VFM was modified or "
                "cast; use the folder as it was saved."
            )


def _pretrained_encoder(
    config: WEDepthConfig, encoder_source: str, hub_kwargs: dict[str, Any]
) -> tuple[PreTrainedConfig, Mapping[str, torch.Tensor]]:
    """The architecture and weights of the encoder at `encoder_source`: a Swin state-dict file converted for
    `config.encoder_config`, or a transformers backbone checkpoint (with WEDepth's training recipe)."""
    if os.path.isfile(encoder_source):
        # A Swin-repository / timm state dict for the config's own Swin. Imported by name: a relative import
        # statement would make transformers ship conversion.py (and the package it needs) with the remote code.
        conversion = importlib.import_module(".conversion", __package__)
        encoder_config = copy.deepcopy(config.encoder_config)
        encoder_config.out_features = [name for name in encoder_config.stage_names if name != "stem"]
        encoder_state, _ = conversion.load_swin_checkpoint(encoder_source, encoder_config)
        return encoder_config, encoder_state
    encoder_config = AutoConfig.from_pretrained(encoder_source, **hub_kwargs)
    if type(encoder_config) not in MODEL_FOR_BACKBONE_MAPPING:
        raise ValueError(
            f"{encoder_source} is a {type(encoder_config).__name__} checkpoint, which has no transformers "
            "backbone; WEDepth's encoder must be a backbone with four stages (e.g. Swin, ConvNeXt, ResNet)."
        )
    encoder_config.out_features = [name for name in encoder_config.stage_names if name != "stem"]
    # The checkpoint gives the architecture; the training recipe (stochastic depth, LayerNorm eps) stays
    # WEDepth's.
    for recipe_key in ("drop_path_rate", "layer_norm_eps"):
        setattr(encoder_config, recipe_key, getattr(config.encoder_config, recipe_key))
    # The backbone class itself, not AutoBackbone.from_pretrained, which cannot read local folders.
    backbone_class = MODEL_FOR_BACKBONE_MAPPING[type(encoder_config)]
    encoder = backbone_class.from_pretrained(encoder_source, config=encoder_config, **hub_kwargs)
    return encoder.config, encoder.state_dict()


def _backbones_config(
    config: WEDepthConfig,
    vfm_config: PreTrainedConfig,
    encoder_config: PreTrainedConfig,
    encoder_source: str,
    vfm_record: dict[str, str | None],
) -> WEDepthConfig:
    """`config` with the pretrained VFM's and encoder's architectures and sources (default VFM stage ends when the
    VFM's depth differs from the config's)."""
    values = config.to_dict()
    for key in ("vfm_config", "encoder_config", "model_type", "transformers_version", "architectures", "auto_map"):
        values.pop(key, None)
    if vfm_config.num_hidden_layers != config.vfm_config.num_hidden_layers:
        values["vfm_stage_layers"] = None
    values.update(
        vfm_config=vfm_config.to_dict(),
        encoder_config=encoder_config.to_dict(),
        encoder_pretrained_name_or_path=encoder_source,
        **vfm_record,
    )
    return WEDepthConfig(**values)


class WEDepthCheckpointMixin:
    """How a WEDepth model is stored and loaded with its frozen VFM by reference (mixed into a `PreTrainedModel`).

    `save_pretrained(include_vfm=False)` writes every weight but the VFM's and records where the VFM comes from;
    `from_pretrained` loads such a folder (or a complete one) and always verifies the VFM it ends up with;
    `from_pretrained(vfm=...)` and `attach_vfm` share one loaded VFM between models; `from_pretrained_backbones`
    builds a fresh model for training from pretrained VFM and encoder checkpoints; `record_vfm_source` records the
    source of a VFM loaded otherwise. The model must have `vfm`, `encoder` and `freeze_vfm()`.
    """

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike | None,
        *model_args: Any,
        vfm: Dinov2Model | None = None,
        **kwargs: Any,
    ) -> Any:
        """`PreTrainedModel.from_pretrained`, for self-contained and VFM-free checkpoints, with the frozen VFM verified,
        then frozen again (loading re-creates every parameter with `requires_grad=True`).

        A folder written with `save_pretrained(include_vfm=False)` holds every weight but the frozen VFM's; its
        config records the VFM's source, revision and fingerprint. The VFM is then loaded from that source, as any
        `from_pretrained` would (Hub cache, `local_files_only`, `token`, `cache_dir` apply), and checked against the
        fingerprint; an unreachable source or a mismatch raises, and nothing is re-initialised.

        Whatever the config says about where the VFM is, the VFM the model ends up with is checked: a checkpoint that
        does not provide every VFM tensor is an error (the VFM is never initialised at random), and where the config
        records a fingerprint, the loaded VFM must have it (checked on the checkpoint's own bytes, before the cast to
        `dtype`). A tensor whose shape does not fit the config is an error too (unless `ignore_mismatched_sizes`).

        Args:
            vfm: an already-loaded `Dinov2Model` to use as the frozen VFM, shared, not copied: after a fingerprint
                check it becomes this model's `vfm`, so several WEDepth models (e.g. NYU and KITTI) hold one set of
                VFM weights. It must be on the device and in the dtype the model is loaded to.
        """
        hub_kwargs = {key: kwargs[key] for key in (*_HUB_KWARGS, "revision", "subfolder") if key in kwargs}
        config = _checkpoint_config(pretrained_model_name_or_path, kwargs.get("config"), hub_kwargs)
        ignore_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
        output_loading_info = kwargs.pop("output_loading_info", False)
        if config.vfm_in_checkpoint:
            plan = _plan_complete_load(pretrained_model_name_or_path, model_args, config, kwargs)
        else:
            plan = _plan_vfm_free_load(pretrained_model_name_or_path, model_args, config, kwargs, hub_kwargs, vfm)
        load = super().from_pretrained
        model, info = _load_with_problems_raised(load, plan, ignore_mismatched_sizes, pretrained_model_name_or_path)
        _verify_loaded_vfm(model, plan, pretrained_model_name_or_path)
        if plan.cast_to is not None and model.dtype != plan.cast_to:
            model.to(plan.cast_to)
            model.config.dtype = plan.cast_to
        if not plan.config.vfm_in_checkpoint:
            model.config._name_or_path = str(pretrained_model_name_or_path)
        if vfm is not None:
            model.attach_vfm(vfm, verified=not plan.config.vfm_in_checkpoint)
        model.freeze_vfm()
        return (model, info) if output_loading_info else model

    def attach_vfm(self, vfm: Dinov2Model, verified: bool = False) -> None:
        """Use `vfm` (a loaded `Dinov2Model`, shared, not copied) as this model's frozen VFM.

        Its weights must equal the VFM this model holds (or, with `verified=True`, already passed `check_vfm`); it
        must be on this model's device and in its dtype.
        """
        if not isinstance(vfm, Dinov2Model):
            raise TypeError(f"`vfm` must be a transformers Dinov2Model, got {type(vfm).__name__}.")
        if not verified and vfm_fingerprint(vfm) != vfm_fingerprint(self.vfm):
            raise ValueError("The given `vfm` differs from the VFM stored in this checkpoint; it cannot replace it.")
        reference = (
            self.encoder.embeddings.patch_embeddings.projection.weight
            if hasattr(self.encoder, "embeddings")
            else next(self.encoder.parameters())
        )
        weight = vfm.embeddings.patch_embeddings.projection.weight
        if (weight.device, weight.dtype) != (reference.device, reference.dtype):
            raise ValueError(
                f"The shared VFM is on {weight.device} in {weight.dtype}, the model on {reference.device} in "
                f"{reference.dtype}; load both to the same device and dtype."
            )
        check_vfm_attention(vfm.config._attn_implementation)
        self.vfm = vfm
        self.freeze_vfm()

    def record_vfm_source(self, name_or_path: str, **hub_kwargs: Any) -> None:
        """Record that this model's VFM is the DINOv2 at `name_or_path` (Hub id or folder), after checking that its
        weights are exactly that checkpoint's, so that `save_pretrained(include_vfm=False)` can refer to it (e.g. for
        a model converted from the authors' code, whose VFM is `facebook/dinov2-large`)."""
        _, record = load_vfm_with_record(name_or_path, **hub_kwargs)
        if record["vfm_fingerprint"] != vfm_fingerprint(self.vfm):
            raise ValueError(f"This model's VFM is not {name_or_path}: their weights differ.")
        for key, value in record.items():
            setattr(self.config, key, value)

    def save_pretrained(
        self, save_directory: str | os.PathLike, *args: Any, include_vfm: bool = True, **kwargs: Any
    ) -> Any:
        """`PreTrainedModel.save_pretrained` (safetensors, config, remote code).

        With `include_vfm=False`, every weight but the frozen VFM's is written, and the config records the VFM's
        source, revision and fingerprint, which `from_pretrained` loads and checks: for DINOv2-L, 1.2 GB less per
        checkpoint. It needs a VFM whose source was recorded when its weights were loaded (`from_pretrained_backbones`,
        a VFM-free checkpoint, or `record_vfm_source`) and that still matches it.

        With the VFM included, `from_pretrained` checks it against the recorded fingerprint; a VFM that no longer has
        it (modified, or cast to another dtype) is saved with no fingerprint in the folder's config, and a warning.
        """
        if not include_vfm:
            if self.config.vfm_pretrained_name_or_path is None or self.config.vfm_fingerprint is None:
                raise ValueError(
                    "This model's VFM has no recorded source (it was not loaded by from_pretrained_backbones or from a "
                    "VFM-free checkpoint), so a VFM-free folder could not be loaded again: save with include_vfm=True, "
                    "or call model.record_vfm_source('facebook/dinov2-...') first."
                )
            if vfm_fingerprint(self.vfm) != self.config.vfm_fingerprint:
                raise ValueError(
                    f"This model's VFM no longer matches its recorded source ({_describe_source(self.config)}): it was "
                    f"modified or cast. Save with include_vfm=True."
                )
            state_dict = kwargs.pop("state_dict", None)
            state_dict = self.state_dict() if state_dict is None else state_dict
            kwargs["state_dict"] = {name: tensor for name, tensor in state_dict.items() if not name.startswith("vfm.")}
        previous = (self.config.vfm_in_checkpoint, self.config.vfm_fingerprint)
        if include_vfm and self.config.vfm_fingerprint is not None:
            given = kwargs.get("state_dict")
            saved = self.vfm.state_dict() if given is None else {k[4:]: v for k, v in given.items() if k[:4] == "vfm."}
            if state_fingerprint(saved) != self.config.vfm_fingerprint:
                logger.warning(
                    "The VFM saved to %s no longer has the fingerprint recorded for %s (it was modified or cast), so "
                    "the folder's config records none and loading it cannot check its VFM.",
                    save_directory,
                    _describe_source(self.config),
                )
                self.config.vfm_fingerprint = None
        self.config.vfm_in_checkpoint = include_vfm
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.config.vfm_in_checkpoint, self.config.vfm_fingerprint = previous

    @classmethod
    def from_pretrained_backbones(
        cls: type[_Model],
        config: WEDepthConfig | str = "large",
        vfm_name_or_path: str | None = None,
        encoder_name_or_path: str | None = None,
        **hub_kwargs: Any,
    ) -> _Model:
        """A fresh model for training: pretrained VFM and encoder weights, new modules randomly initialised.

        Args:
            config: a `WEDepthConfig` or a preset name ("small", "base", "large"). Its VFM architecture, and its encoder
                architecture when the encoder comes from a transformers checkpoint, are replaced by those of the
                pretrained checkpoints; all other fields are kept, including the encoder's `drop_path_rate` and
                `layer_norm_eps` (the authors' Swin recipe, not the checkpoint's).
            vfm_name_or_path: Hub id or local folder of a DINOv2 checkpoint. Defaults to
                `config.vfm_pretrained_name_or_path`.
            encoder_name_or_path: Hub id or local folder of the encoder checkpoint (e.g. a Swin classification
                model), or a local `.pth`/`.pt`/`.bin`/`.safetensors` file with a Swin state dict in the Swin
                repository's or timm's layout (e.g. the authors' starting point `swin_base_patch4_window7_224.pth`).
                Such a file is read without running code and converted for `config.encoder_config`, whose
                architecture it must have (`wedepth_hf.conversion.load_swin_checkpoint`). Defaults to
                `config.encoder_pretrained_name_or_path`.
            hub_kwargs: passed to every `from_pretrained` call (`revision`, `token`, `cache_dir`, ...).
        """
        if isinstance(config, str):
            config = WEDepthConfig.from_preset(config)
        vfm_source = vfm_name_or_path or config.vfm_pretrained_name_or_path
        encoder_source = encoder_name_or_path or config.encoder_pretrained_name_or_path
        if not vfm_source or not encoder_source:
            raise ValueError(
                "Pass `vfm_name_or_path` and `encoder_name_or_path` (Hub ids or local folders), or a config that "
                "records them (`WEDepthConfig.from_preset(...)`)."
            )
        encoder_source = os.fspath(encoder_source)
        if not os.path.isfile(encoder_source) and encoder_source.endswith((".pth", ".pt", ".bin", ".safetensors")):
            raise FileNotFoundError(f"No encoder checkpoint file at {encoder_source}.")
        vfm, vfm_record = load_vfm_with_record(vfm_source, **hub_kwargs)
        encoder_config, encoder_state = _pretrained_encoder(config, encoder_source, hub_kwargs)
        model = cls(_backbones_config(config, vfm.config, encoder_config, encoder_source, vfm_record))
        model.vfm.load_state_dict(vfm.state_dict(), strict=True)
        model.encoder.load_state_dict(encoder_state, strict=True)
        model.freeze_vfm()
        return model


__all__ = [
    "WEDepthCheckpointMixin",
    "check_vfm",
    "check_vfm_attention",
    "load_vfm_source",
    "load_vfm_with_record",
    "state_fingerprint",
    "vfm_fingerprint",
]
