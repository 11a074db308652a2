"""Writing a model folder as a whole: into a fresh temporary sibling, swapped in for the old folder when complete.

`wedepth convert-original` (`conversion.export_converted_folder`) and the training export (`<output_dir>/model`)
write their folders with `write_folder`, so that an interrupted or failed write never leaves a half-written folder,
and nothing but the folder they replace is ever deleted. Which folder may be replaced is decided by
`check_output_folder`: a new or empty folder always; with `overwrite`, a folder that holds a WEDepth model and nothing
else; never a folder that is or contains the working directory or one of the run's inputs (checkpoint, configs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from transformers.utils import logging


logger = logging.get_logger(__name__)

# A folder is written as `<parent>/.<name>.<random>.partial/new` and renamed to `<parent>/<name>`; the folder it
# replaces is moved to `.../old` first and deleted once the new one is in place.
STAGING_SUFFIX = ".partial"
# The files `save_pretrained` of a WEDepth model and its image processor, and a model card, write.
_MODEL_FILE = re.compile(
    r"^(config\.json|preprocessor_config\.json|README\.md|model\.safetensors\.index\.json|"
    r"model(-\d{5}-of-\d{5})?\.safetensors)$"
)
# The remote code `save_pretrained` copies next to the weights: modules of this package.
_REMOTE_CODE_FILES = frozenset(path.name for path in Path(__file__).parent.glob("*.py"))
_MODEL_TYPE = "wedepth"
_LISTED_NAMES = 5


class OutputFolderError(ValueError):
    """An output folder that cannot be written as asked (it holds other files, the working directory or an input);
    the message says what to do."""


def listed_names(names: list[str], separator: str = ", ") -> str:
    """A few names for a one-line message, with how many more there are."""
    shown = separator.join(names[:_LISTED_NAMES])
    return shown + (f" and {len(names) - _LISTED_NAMES} more" if len(names) > _LISTED_NAMES else "")


def contained_input(folder: Path, protected: Iterable[str | Path] = ()) -> str | None:
    """What of the working directory and the existing `protected` paths the resolved `folder` is or contains ("the
    working directory", "the input <path>"), by resolved and by lexical path; None when nothing."""
    inputs = [("the working directory", Path.cwd())]
    inputs += [(f"the input {path}", Path(path)) for path in protected if os.path.lexists(path)]
    for label, path in inputs:
        if _contains(folder, path.resolve()) or _contains(folder, Path(os.path.abspath(path))):
            return label
    return None


def foreign_entries(folder: Path, extra_files: Collection[str] = ()) -> list[str]:
    """The entries of `folder` that a WEDepth model folder does not hold: anything but regular files named as
    `save_pretrained`, the image processor and the model card name them, or as `extra_files`."""
    return sorted(
        entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else "")
        for entry in folder.iterdir()
        if entry.is_symlink()
        or not entry.is_file()
        or not (_MODEL_FILE.match(entry.name) or entry.name in _REMOTE_CODE_FILES or entry.name in extra_files)
    )


def holds_wedepth_config(folder: Path) -> bool:
    """Whether `folder/config.json` is a regular file holding a WEDepth config (`model_type` "wedepth")."""
    config = folder / "config.json"
    if config.is_symlink() or not config.is_file():
        return False
    try:
        content = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get("model_type") == _MODEL_TYPE


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_folder(
    folder: str | Path,
    *,
    overwrite: bool,
    protected: Iterable[str | Path] = (),
    extra_files: Collection[str] = (),
    overwrite_option: str = "overwrite=True",
) -> Path:
    """The resolved path `write_folder` would write, or an `OutputFolderError` saying why it may not.

    Refused: a symbolic link, a file, the root folder, a folder that is or contains the working directory or one of
    the `protected` paths (those that exist), a non-empty folder without `overwrite`, and with it a folder that holds
    anything a WEDepth model folder does not (`foreign_entries`). `overwrite_option` names the option in the message.
    """
    given = Path(folder)
    if given.is_symlink():
        raise OutputFolderError(f"{folder} is a symbolic link; give a real folder (the link is left as it is).")
    target = given.resolve()
    if not target.name:
        raise OutputFolderError(f"{folder} is the root folder; give a folder to write the model into.")
    if target.exists() and not target.is_dir():
        raise OutputFolderError(f"{folder} is a file; give a folder for the model.")
    if not target.is_dir():
        return target
    label = contained_input(target, protected)
    if label is not None:
        shown = folder if Path(folder) == target else f"{folder} ({target})"
        raise OutputFolderError(
            f"{shown} is or contains {label}, which is never replaced; give a new or empty folder elsewhere."
        )
    if not any(target.iterdir()):
        return target
    foreign = foreign_entries(target, extra_files)
    if foreign:
        raise OutputFolderError(
            f"{folder} holds files other than a WEDepth model's ({listed_names(foreign)}); only a folder holding a "
            "WEDepth model and nothing else is replaced. Give a new or empty folder."
        )
    if not holds_wedepth_config(target):
        raise OutputFolderError(
            f"{folder} holds no WEDepth model (no config.json of model_type '{_MODEL_TYPE}'); only a folder holding a "
            "WEDepth model and nothing else is replaced. Give a new or empty folder."
        )
    if not overwrite:
        raise OutputFolderError(f"{folder} already holds a WEDepth model; pass {overwrite_option} to replace it.")
    return target


def write_folder(
    folder: str | Path,
    write: Callable[[Path], None],
    *,
    overwrite: bool,
    protected: Iterable[str | Path] = (),
    extra_files: Collection[str] = (),
    overwrite_option: str = "overwrite=True",
) -> Path:
    """Create or replace `folder` with what `write(staging)` writes into a fresh folder beside it; returns its path.

    `check_output_folder` decides (before writing and again before the swap) whether `folder` may be replaced. The
    new folder is renamed into place, the old one moved aside first and deleted only once the new one is there; a
    failure or an interrupt leaves the old folder as it was and deletes only the partial new one. Nothing outside
    `folder` and the staging folder this call creates is ever deleted.
    """
    protected = list(protected)
    options = dict(protected=protected, extra_files=extra_files, overwrite_option=overwrite_option)
    target = check_output_folder(folder, overwrite=overwrite, **options)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=STAGING_SUFFIX, dir=target.parent))
    new, old = staging / "new", staging / "old"
    try:
        new.mkdir()
        write(new)
        check_output_folder(folder, overwrite=overwrite, **options)
        _swap(new, target, old)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        if old.exists():
            logger.error("The folder that %s replaces is kept at %s.", target, old)
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        shutil.rmtree(staging)
    except OSError as error:
        logger.warning("Wrote %s, but could not delete the folder it replaced at %s (%s).", target, old, error)
    return target


def _swap(new: Path, target: Path, old: Path) -> None:
    """Rename `new` to `target`, moving an existing `target` to `old` first and back if the rename fails."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise


__all__ = [
    "OutputFolderError",
    "check_output_folder",
    "contained_input",
    "foreign_entries",
    "holds_wedepth_config",
    "listed_names",
    "write_folder",
]
