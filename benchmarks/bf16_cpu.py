"""bfloat16 against float32 inference on the CPU: time of `wedepth predict`'s model step, and the depth difference.

`wedepth predict` runs under bfloat16 autocast by default on CPUs with native bfloat16 (AVX512-BF16, AMX, Arm BF16;
`--dtype float32` opts out). This script measures what that buys and costs:

- time: `wedepth_hf.inference.predict_images` (the step `wedepth predict` runs per batch: image processing, forward,
  resizing the depth to the image) on one photo, float32 and bfloat16 alternately after a warm-up, median of
  `--repeats`; and once the whole command (`wedepth predict`, model loading and PNG writing included) per dtype;
- depth difference, |bf16 - fp32| / fp32 per pixel (mean and max): on that photo, and on the golden inputs of the
  parity fixture (`tests/fixtures/official_nyu_s0_56x90`: the authors' seeded weights, converted).

The photo is `--image`, or by default a procedural indoor scene (`wedepth_hf.data.synthetic`, seed 7) rendered at
480x640 and saved as JPEG next to the results. The model is the `--preset` with seeded random weights (no trained
checkpoint is published), saved to a temporary folder for the command.

    python benchmarks/bf16_cpu.py --preset small --repeats 5 --threads 2
"""

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from inference_speed import alternate
from PIL import Image

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation, WEDepthImageProcessor
from wedepth_hf.inference import predict_images
from wedepth_hf.predict import cpu_has_native_bfloat16


REPOSITORY = Path(__file__).resolve().parents[1]
PARITY_FIXTURE = REPOSITORY / "tests" / "fixtures" / "official_nyu_s0_56x90"


def relative_difference(low: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Mean and max over pixels of |low - reference| / reference (depths are positive)."""
    difference = ((low.double() - reference.double()).abs() / reference.double()).flatten()
    return {"mean": difference.mean().item(), "max": difference.max().item()}


def parity_fixture_difference() -> dict[str, float]:
    """bf16 autocast against float32 on the parity fixture's model and inputs."""
    from safetensors.torch import load_file

    sys.path.insert(0, str(REPOSITORY / "tests" / "fixtures"))
    from golden import load_fixture_model

    model, _ = load_fixture_model(PARITY_FIXTURE)
    pixel_values = load_file(str(PARITY_FIXTURE / "inputs.safetensors"))["pixel_values"].float()
    with torch.inference_mode():
        reference = model(pixel_values).predicted_depth
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(pixel_values).predicted_depth
    return relative_difference(low, reference)


def synthetic_photo(path: Path, height: int, width: int) -> Path:
    """A procedural indoor scene rendered at height x width, saved as JPEG (quality 92)."""
    from wedepth_hf.data.synthetic import render_synthetic_sample

    image = render_synthetic_sample(7, height, width)["image"].permute(1, 2, 0).numpy()
    Image.fromarray(image).save(path, quality=92)
    return path


def time_command(model_dir: Path, image: Path, output_dir: Path, dtype: str, threads: int) -> float:
    """Seconds of one whole `wedepth predict` run in a fresh process (imports excluded, loading included)."""
    code = (
        "import sys, time, torch; torch.set_num_threads(int(sys.argv[1])); from wedepth_hf import cli; "
        "start = time.perf_counter(); code = cli.main(sys.argv[2:]); print(time.perf_counter() - start); "
        "sys.exit(code)"
    )
    command = [
        sys.executable,
        "-c",
        code,
        str(threads),
        "predict",
        str(image),
        "--model",
        str(model_dir),
        "--output-dir",
        str(output_dir),
        "--device",
        "cpu",
        "--dtype",
        dtype,
        "--no-progress",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"wedepth predict --dtype {dtype} failed:\n{completed.stderr[-3000:]}")
    return float(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure, print, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=["small", "base", "large"])
    parser.add_argument("--image", type=Path, help="a photo (default: a synthetic indoor scene, 480x640 JPEG)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/results/bf16_cpu.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    image_path = args.image or synthetic_photo(output.with_name("bf16_cpu_photo.jpg"), 480, 640)
    photo = Image.open(image_path).convert("RGB")
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation(WEDepthConfig.from_preset(args.preset)).eval()
    processor = WEDepthImageProcessor()
    device = torch.device("cpu")

    depths: dict[str, torch.Tensor] = {}

    def run(name: str, dtype: torch.dtype) -> Callable[[], None]:
        def step() -> None:
            depths[name] = predict_images(model, processor, [photo], device, dtype, False)

        return step

    timing = alternate(
        {"float32": run("float32", torch.float32), "bfloat16": run("bfloat16", torch.bfloat16)},
        args.warmup,
        args.repeats,
    )
    result = {
        "cpu_has_native_bfloat16": cpu_has_native_bfloat16(),
        "image": str(image_path),
        "image_size": f"{photo.height}x{photo.width}",
        "model_step_times_s": timing["times_s"],
        "model_step_median_s": timing["median_s"],
        "model_step_ratio_bf16_over_fp32": timing["ratio_of_medians"],
        "model_step_median_paired_ratio": timing["median_paired_ratio"],
        "photo_depth_difference": relative_difference(depths["bfloat16"], depths["float32"]),
        "parity_fixture_depth_difference": parity_fixture_difference(),
    }
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / "model"
        model.save_pretrained(model_dir)
        processor.save_pretrained(model_dir)
        command = {
            name: time_command(model_dir, image_path, Path(folder) / name, name, args.threads)
            for name in ("float32", "bfloat16")
        }
    result["command_s"] = command
    result["command_ratio_bf16_over_fp32"] = command["bfloat16"] / command["float32"]
    result["settings"] = {**{key: str(value) for key, value in vars(args).items()}, "torch": torch.__version__}

    print(
        f"model step at {result['image_size']}: float32 {result['model_step_median_s']['float32']:.3f} s, "
        f"bfloat16 {result['model_step_median_s']['bfloat16']:.3f} s, ratio "
        f"{result['model_step_ratio_bf16_over_fp32']:.2f} (paired {result['model_step_median_paired_ratio']:.2f})"
    )
    print(
        f"whole command: float32 {command['float32']:.2f} s, bfloat16 {command['bfloat16']:.2f} s, ratio "
        f"{result['command_ratio_bf16_over_fp32']:.2f}"
    )
    for key in ("photo_depth_difference", "parity_fixture_depth_difference"):
        print(f"{key}: mean {result[key]['mean']:.2%}, max {result[key]['max']:.2%}")
    output.write_text(json.dumps(result, indent=2))
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
