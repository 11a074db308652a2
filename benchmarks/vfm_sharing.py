"""Disk and memory of VFM-free checkpoints: folder sizes, and two models loaded separately against sharing one VFM.

Offline stand-ins for the Hub checkpoints: a DINOv2 and a Swin of the preset's architectures with random weights are
saved to `--workdir` and used as the pretrained sources (sizes do not depend on the values). Two WEDepth models (new
modules drawn with different seeds, as an NYU and a KITTI model would differ) are built from them with
`from_pretrained_backbones` and saved self-contained and VFM-free. Then, each in a fresh subprocess, the two models
are loaded (a) from their self-contained folders, (b) from their VFM-free folders, each fetching its VFM, and (c)
from their VFM-free folders with the second given the first one's VFM (`vfm=`). Read from /proc/self/status: the
resident memory (VmRSS) once every weight has been read (memory-mapped weights count only then) and freed memory
returned to the system, and the peak (VmHWM). The distinct parameter storage of the two models is counted by
`data_ptr`.

    python benchmarks/vfm_sharing.py --preset large --workdir /tmp/vfm_sharing \
        --output benchmarks/results/vfm_sharing_cpu.json
"""

import argparse
import ctypes
import gc
import json
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoBackbone, Dinov2Model, SwinForImageClassification

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation


LOAD_CASES = {
    "separate_full": "a = M.from_pretrained(FULL_A); b = M.from_pretrained(FULL_B)",
    "separate_vfm_free": "a = M.from_pretrained(FREE_A); b = M.from_pretrained(FREE_B)",
    "shared_vfm": "a = M.from_pretrained(FREE_A); b = M.from_pretrained(FREE_B, vfm=a.vfm)",
}


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def memory_status() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def prepare(preset: str, workdir: Path) -> dict[str, Path]:
    """The stand-in sources and the two models' folders (built once, reused on a second run)."""
    folders = {name: workdir / name for name in ("vfm", "encoder", "full_a", "full_b", "free_a", "free_b")}
    if all((folder / "config.json").exists() for folder in folders.values()):
        return folders
    config = WEDepthConfig.from_preset(preset)
    torch.manual_seed(0)
    Dinov2Model(config.vfm_config).save_pretrained(folders["vfm"])
    encoder_config = AutoBackbone.from_config(config.encoder_config).config
    SwinForImageClassification(encoder_config).save_pretrained(folders["encoder"])
    for suffix, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        model = WEDepthForDepthEstimation.from_pretrained_backbones(
            config, vfm_name_or_path=str(folders["vfm"]), encoder_name_or_path=str(folders["encoder"])
        )
        model.save_pretrained(folders[f"full_{suffix}"])
        model.save_pretrained(folders[f"free_{suffix}"], include_vfm=False)
        del model
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="large", choices=["small", "base", "large"])
    parser.add_argument("--workdir", type=Path, required=True, help="where the stand-in sources and models go")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/vfm_sharing_cpu.json"))
    parser.add_argument("--load-child", choices=sorted(LOAD_CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    folders = prepare(args.preset, args.workdir)

    if args.load_child:
        baseline = memory_status()
        names = {
            f"{kind.upper()}_{suffix.upper()}": str(folders[f"{kind}_{suffix}"])
            for kind in ("full", "free")
            for suffix in ("a", "b")
        }
        scope = {"M": WEDepthForDepthEstimation, **names}
        exec(LOAD_CASES[args.load_child], scope)
        models = (scope["a"], scope["b"])
        # Read every weight once, as a forward would: weights still memory-mapped from a file count only once read.
        with torch.no_grad():
            for model in models:
                for parameter in model.parameters():
                    parameter.sum()
        # Memory the loaders freed goes back to the system before reading the resident size (glibc keeps it otherwise).
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        distinct = {p.data_ptr(): p.numel() * p.element_size() for model in models for p in model.parameters()}
        print(
            json.dumps(
                {
                    "baseline": baseline,
                    "loaded": memory_status(),
                    "vfm_shared": models[0].vfm is models[1].vfm,
                    "parameter_mib": sum(distinct.values()) / 2**20,
                }
            )
        )
        return

    results = {
        "preset": args.preset,
        "torch": torch.__version__,
        "folder_bytes": {name: folder_bytes(folders[name]) for name in ("full_a", "free_a")},
        "weights_bytes": {name: (folders[name] / "model.safetensors").stat().st_size for name in ("full_a", "free_a")},
        "loading": {},
    }
    for case in LOAD_CASES:
        child = subprocess.run(
            [sys.executable, __file__, "--preset", args.preset, "--workdir", str(args.workdir), "--load-child", case],
            capture_output=True,
            text=True,
            check=True,
        )
        results["loading"][case] = json.loads(child.stdout.strip().splitlines()[-1])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")

    full, free = results["folder_bytes"]["full_a"], results["folder_bytes"]["free_a"]
    print(
        f"{args.preset}: self-contained folder {full / 2**20:.1f} MiB, VFM-free {free / 2**20:.1f} MiB "
        f"({free / full:.2f}x)"
    )
    print("| two models loaded | parameters MiB | resident MiB (before loading) | peak MiB | VFM shared |")
    print("|---|---|---|---|---|")
    for case, measured in results["loading"].items():
        print(
            f"| {case} | {measured['parameter_mib']:.0f} | {measured['loaded']['VmRSS']:.0f} "
            f"({measured['baseline']['VmRSS']:.0f}) | {measured['loaded']['VmHWM']:.0f} | {measured['vfm_shared']} |"
        )
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
