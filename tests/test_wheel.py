"""The package as users install it: a built wheel, installed without `-e`, used from a folder outside the checkout."""

import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from helpers import REPO


def _run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    completed = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, f"{command}\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    return completed


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the wheel installed (its dependencies come from the test's own environment)."""
    root = tmp_path_factory.mktemp("wheel")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "dist"),
            "-q",
        ],
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("wedepth_hf-*.whl")
    venv.EnvBuilder(with_pip=False).create(root / "env")
    python = root / "env" / "bin" / "python"
    _see_running_packages(python)
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)]
    _run(install, cwd=root)
    return root


def _see_running_packages(python: Path) -> None:
    """Let the environment of `python` import the packages of the interpreter running the tests (torch,
    transformers, pip...), whether that is a system interpreter or a virtual environment: `system_site_packages`
    would give the base interpreter's packages, which a virtual environment does not have. A `.pth` file in its
    site-packages lists the running interpreter's site-packages folders; their own `.pth` files (the checkout's
    editable install among them) are not read, so `wedepth_hf` comes from the wheel alone."""
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=python.parent
    ).stdout.strip()
    folders = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    listed = [folder for folder in dict.fromkeys(folders) if Path(folder).is_dir()]
    (Path(purelib) / "running_interpreter_packages.pth").write_text("".join(f"{folder}\n" for folder in listed))


@pytest.mark.slow
def test_the_wheel_trains_evaluates_and_predicts_outside_the_checkout(installed: Path) -> None:
    bin_dir = installed / "env" / "bin"
    work = installed / "work"
    work.mkdir()
    where = _run([str(bin_dir / "python"), "-c", "import wedepth_hf; print(wedepth_hf.__file__)"], cwd=work)
    assert str(installed / "env") in where.stdout and str(REPO) not in where.stdout

    # Four synthetic training steps by the bundled config's name, with the export and its card.
    _run(
        [
            str(bin_dir / "wedepth"),
            "train",
            "--config",
            "synthetic",
            "--output_dir",
            "run",
            "--max_train_steps",
            "4",
            "--synthetic_num_train",
            "8",
            "--synthetic_num_val",
            "4",
            "--eval_steps",
            "4",
            "--checkpointing_steps",
            "4",
            "--log_with",
            "none",
        ],
        cwd=work,
    )
    model = work / "run" / "model"
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= {
        path.name for path in model.iterdir()
    }
    assert "wedepth train --config training_config.yaml" in (model / "README.md").read_text()

    # `wedepth evaluate` on NYU-layout data, and `python -m wedepth_hf predict` on one of its images.
    _run(
        [
            str(bin_dir / "python"),
            "-c",
            "from wedepth_hf.data import write_synthetic_nyu_layout; "
            "write_synthetic_nyu_layout('nyu', 0, 2, seed=7, height=64, width=96)",
        ],
        cwd=work,
    )
    evaluated = _run(
        [
            str(bin_dir / "wedepth"),
            "evaluate",
            "--model",
            str(model),
            "--dataset",
            "nyu",
            "--data_root",
            "nyu",
            "--split_file",
            "val.txt",
            "--output",
            "results.json",
        ],
        cwd=work,
    )
    assert "images used: 2" in evaluated.stderr and (work / "results.json").is_file()
    image = next((work / "nyu").rglob("rgb_*.png"))
    _run(
        [
            str(bin_dir / "python"),
            "-m",
            "wedepth_hf",
            "predict",
            str(image),
            "--model",
            str(model),
            "--output-dir",
            "depth",
            "--no-progress",
        ],
        cwd=work,
    )
    assert (work / "depth" / f"{image.stem}_depth.png").is_file()
