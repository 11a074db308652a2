"""ONNX Runtime against PyTorch: float32 forward latency of one WEDepth preset at one size, on the CPU or (with
`--device cuda` and onnxruntime-gpu) on a GPU.

The model has random weights (speed does not depend on them). It is exported with `wedepth_hf.onnx_export.export_onnx`
(the graph `wedepth export onnx` writes), then both run in one process, alternately (PyTorch, ONNX Runtime, PyTorch,
...) after warm-up, with the same thread count; the median of `--repeats` runs each is reported, so that a shared,
noisy machine affects both alike: the ratio is the number to read. The largest relative depth difference between the
two on the timed input is recorded too.

    python benchmarks/onnx_speed.py --preset small --size 480x640 --repeats 5 --threads 2
    python benchmarks/onnx_speed.py --preset large --device cuda --repeats 20   # benchmarks/gpu.sh runs this

On CUDA both sides are timed to the end of the GPU's work (`torch.cuda.synchronize`; ONNX Runtime returns its output
to the host, which waits for it), and ONNX Runtime runs with its CUDAExecutionProvider only.
"""

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation
from wedepth_hf.onnx_export import WEDepthOnnxModel, export_onnx


def time_alternately(runners: dict[str, object], pixel_values: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Seconds of each runner's forward, `repeats` times each, interleaved, after one warm-up run each."""
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for runner in runners.values():
        runner(pixel_values)
    for _ in range(repeats):
        for name, runner in runners.items():
            synchronize(pixel_values.device)
            start = time.perf_counter()
            runner(pixel_values)
            synchronize(pixel_values.device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Export, time, and write the JSON (and print its summary)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="a WEDepthConfig preset (small, base, large)")
    parser.add_argument("--size", default="480x640", help="HEIGHTxWIDTH of the input")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (needs onnxruntime-gpu)")
    parser.add_argument("--output", default=None, help="default: benchmarks/results/onnx_speed_<preset>_<device>.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    providers = ["CUDAExecutionProvider"] if device.type == "cuda" else None
    if providers and providers[0] not in onnxruntime.get_available_providers():
        parser.error(f"this onnxruntime has no CUDAExecutionProvider ({onnxruntime.get_available_providers()})")
    height, width = (int(side) for side in args.size.split("x"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation(WEDepthConfig.from_preset(args.preset)).eval()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_onnx(model, Path(folder) / "model.onnx")
        export_seconds = time.perf_counter() - start
        graph = WEDepthOnnxModel.from_pretrained(path, providers=providers, threads=args.threads)
        pixel_values = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1)).to(device)
        model.to(device)

        def run_torch(inputs: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return model(pixel_values=inputs).predicted_depth

        def run_onnxruntime(inputs: torch.Tensor) -> torch.Tensor:
            return graph(pixel_values=inputs).predicted_depth.to(device)

        expected, depth = run_torch(pixel_values), run_onnxruntime(pixel_values)
        seconds = time_alternately({"torch": run_torch, "onnxruntime": run_onnxruntime}, pixel_values, args.repeats)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    result = {
        "settings": {
            "preset": args.preset,
            "size": [height, width],
            "batch": 1,
            "dtype": "float32",
            "threads": args.threads,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "repeats": args.repeats,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
            "note": "CPU shared with other processes; runs alternate, so both sides see the same load",
        },
        "export_seconds": round(export_seconds, 1),
        "median_seconds": {name: round(value, 4) for name, value in medians.items()},
        "seconds": {name: [round(value, 4) for value in values] for name, values in seconds.items()},
        "onnxruntime_over_torch": round(medians["onnxruntime"] / medians["torch"], 3),
        "max_relative_depth_difference": float(((depth - expected).abs() / expected.abs()).max()),
    }
    output = Path(args.output or f"benchmarks/results/onnx_speed_{args.preset}_{device.type}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("median_seconds", "onnxruntime_over_torch")}))


if __name__ == "__main__":
    main()
