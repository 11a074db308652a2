"""Inference latency and peak memory of WEDepth against transformers' Depth Anything V2 with the same DINOv2 size.

All models have random weights (speed does not depend on them). Latency: both models live in one process and are
timed interleaved (WEDepth, Depth Anything, WEDepth, ...) after warm-up, and the median of `--repeats` runs is
reported, so that a shared, noisy machine affects both alike; the ratio is the number to read. Peak memory: on CUDA
`torch.cuda.max_memory_allocated` of one forward; on CPU each (model, size) runs one forward in its own subprocess
that reports its peak RSS (VmHWM) and the increase over its RSS before the forward.

Depth Anything V2 needs sizes that are multiples of its patch size (14): it gets the input size rounded down to
a multiple of 14, exactly the size WEDepth feeds its own DINOv2 (e.g. 476x630 for 480x640).

    python benchmarks/inference_speed.py --presets small --sizes 480x640 240x320 --repeats 5 --threads 2
    python benchmarks/inference_speed.py --threads 1 --timer cpu   # steadier ratios on a busy machine
    python benchmarks/inference_speed.py --profile --presets small --sizes 480x640   # where the time goes
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation


# Depth Anything V2 checkpoints' architectures (depth-anything/Depth-Anything-V2-{Small,Base,Large}-hf config.json):
# the DINOv2 size, the backbone layers read by the neck, and the DPT neck/fusion widths.
DEPTH_ANYTHING_V2 = {
    "small": {
        "hidden_size": 384,
        "layers": 12,
        "heads": 6,
        "out_indices": [3, 6, 9, 12],
        "neck_hidden_sizes": [48, 96, 192, 384],
        "fusion_hidden_size": 64,
    },
    "base": {
        "hidden_size": 768,
        "layers": 12,
        "heads": 12,
        "out_indices": [3, 6, 9, 12],
        "neck_hidden_sizes": [96, 192, 384, 768],
        "fusion_hidden_size": 128,
    },
    "large": {
        "hidden_size": 1024,
        "layers": 24,
        "heads": 16,
        "out_indices": [5, 12, 18, 24],
        "neck_hidden_sizes": [256, 512, 1024, 1024],
        "fusion_hidden_size": 256,
    },
}


def build_depth_anything(preset: str) -> DepthAnythingForDepthEstimation:
    """Depth Anything V2 of the given DINOv2 size (relative-depth head, as the V2 Small/Base/Large checkpoints)."""
    spec = DEPTH_ANYTHING_V2[preset]
    backbone = Dinov2Config(
        hidden_size=spec["hidden_size"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        image_size=518,
        patch_size=14,
        out_indices=spec["out_indices"],
        apply_layernorm=True,
        reshape_hidden_states=False,
        attn_implementation="sdpa",
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=spec["hidden_size"],
        neck_hidden_sizes=spec["neck_hidden_sizes"],
        fusion_hidden_size=spec["fusion_hidden_size"],
        depth_estimation_type="relative",
    )
    return DepthAnythingForDepthEstimation(config)


def build_model(name: str) -> nn.Module:
    """`wedepth-<preset>` or `depth-anything-<preset>`, random weights, eval mode."""
    family, preset = name.rsplit("-", 1)
    torch.manual_seed(0)
    if family == "wedepth":
        model = WEDepthForDepthEstimation(WEDepthConfig.from_preset(preset))
    elif family == "depth-anything":
        model = build_depth_anything(preset)
    else:
        raise ValueError(f"Unknown model {name!r}.")
    return model.eval()


def model_input_size(name: str, height: int, width: int) -> tuple[int, int]:
    """WEDepth takes any size; Depth Anything gets the size rounded down to a multiple of 14."""
    if name.startswith("depth-anything"):
        return max(14, height // 14 * 14), max(14, width // 14 * 14)
    return height, width


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so that timings cover it; nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_forward(model: nn.Module, pixel_values: torch.Tensor, dtype: torch.dtype, timer: str = "wall") -> float:
    """Seconds of one forward pass (inference mode, autocast for bf16/fp16): wall-clock, or with `timer="cpu"` the
    process's CPU time, which other processes on a shared machine disturb far less (use it with one thread)."""
    device = pixel_values.device
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    clock = time.process_time if timer == "cpu" else time.perf_counter
    synchronize(device)
    start = clock()
    with torch.inference_mode(), autocast:
        model(pixel_values=pixel_values)
    synchronize(device)
    return clock() - start


def alternate(runs: dict[str, Callable[[], Any]], warmup: int, repeats: int, timer: str = "wall") -> dict[str, Any]:
    """Times two callables alternately (warm-up first); medians, and the second's time over the first's: the ratio
    of the medians, the paired ratios and their median. `benchmarks/vs_official.py` and `benchmarks/bf16_cpu.py`
    time with it.

    `timer`: "wall" (wall clock) or "cpu" (this process's CPU time, which other processes on a shared machine
    disturb far less; use it with one thread). The 1-minute load average is recorded before each pair of runs, so
    that disturbed pairs can be told apart.
    """
    clock = time.process_time if timer == "cpu" else time.perf_counter
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    load = []
    for _ in range(repeats):
        load.append(os.getloadavg()[0])
        for name, run in runs.items():
            start = clock()
            run()
            times[name].append(clock() - start)
    first, second = runs
    paired = [later / earlier for later, earlier in zip(times[second], times[first])]
    return {
        "load_average_1min": load,
        "times_s": times,
        "median_s": {name: statistics.median(values) for name, values in times.items()},
        "ratio_of_medians": statistics.median(times[second]) / statistics.median(times[first]),
        "median_paired_ratio": statistics.median(paired),
        "paired_ratios": paired,
    }


def count_flops(model: nn.Module, pixel_values: torch.Tensor) -> int:
    """Floating-point operations of one forward (matmuls, convolutions, attention), by torch's FLOP counter.

    Ops it does not count (grid_sample, element-wise ops, norms) cost time but no counted FLOPs, so the FLOP ratio is
    the floor the latency ratio can approach when both models run at the same FLOP rate.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(pixel_values=pixel_values)
    return counter.get_total_flops()


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (peak memory on CPU needs Linux).")


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def memory_child(name: str, height: int, width: int, device_name: str, dtype_name: str, threads: int) -> dict:
    """Runs in a subprocess: one forward; peak memory in MiB (CUDA allocator, or RSS on CPU).

    On CPU the peak is VmHWM, the high-water mark of this process's own address space (`ru_maxrss` would not do: after
    fork + exec it keeps the parent's RSS at the fork), reset after the model is built where the kernel allows, so
    `forward_increase_mib` is the forward's own peak above the built model.
    """
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    dtype = getattr(torch, dtype_name)
    model = build_model(name).to(device)
    pixel_values = torch.randn(1, 3, *model_input_size(name, height, width), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        timed_forward(model, pixel_values, dtype)
        peak = torch.cuda.max_memory_allocated(device)
        return {"peak_mib": peak / 2**20, "forward_increase_mib": (peak - before) / 2**20}
    before = _status_kib("VmRSS")
    peak_reset = reset_peak_rss()
    timed_forward(model, pixel_values, dtype)
    peak = _status_kib("VmHWM")
    result = {"peak_mib": peak / 1024, "model_rss_mib": before / 1024}
    if peak_reset:
        result["forward_increase_mib"] = max(0, peak - before) / 1024
    return result


def measure_memory(name: str, height: int, width: int, args: argparse.Namespace) -> dict:
    """Peak memory of one forward, measured in a fresh subprocess."""
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        name,
        f"{height}x{width}",
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--threads",
        str(args.threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Memory measurement of {name} at {height}x{width} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def profile_forward(model: nn.Module, forward: Callable[[], object], depth: int = 2) -> dict:
    """Where the time of `forward()` (a forward of `model`) goes: wall time per module of `model` (modules up to
    `depth` dots deep) and the top aten ops. Runs in inference mode."""
    totals: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = {}
    handles = []
    for module_name, module in model.named_modules():
        if module_name and module_name.count(".") < depth:
            handles.append(
                module.register_forward_pre_hook(
                    lambda _m, _i, key=module_name: starts.__setitem__(key, time.perf_counter())
                )
            )
            handles.append(
                module.register_forward_hook(
                    lambda _m, _i, _o, key=module_name: totals.__setitem__(
                        key, totals[key] + time.perf_counter() - starts[key]
                    )
                )
            )
    with torch.inference_mode():
        start = time.perf_counter()
        forward()
        total = time.perf_counter() - start
        for handle in handles:
            handle.remove()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            forward()
    ops = sorted(profiler.key_averages(), key=lambda event: -event.self_cpu_time_total)[:15]
    return {
        "forward_s": total,
        "modules_s": dict(sorted(totals.items(), key=lambda item: -item[1])),
        "top_ops": [
            {"op": event.key, "self_cpu_ms": event.self_cpu_time_total / 1e3, "calls": event.count} for event in ops
        ],
    }


def parse_size(text: str) -> tuple[int, int]:
    """ "480x640" -> (480, 640)."""
    height, width = text.lower().split("x")
    return int(height), int(width)


def main() -> None:
    """Parse the flags, time and measure every (preset, size), print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small"], choices=sorted(DEPTH_ANYTHING_V2))
    parser.add_argument("--sizes", nargs="+", default=["480x640", "240x320", "352x1216", "720x960"])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model and size (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per model and size first")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--timer",
        default="wall",
        choices=["wall", "cpu"],
        help="wall-clock, or process CPU time (steadier on a shared CPU; use with --threads 1)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--profile", action="store_true", help="also profile WEDepth per module and per op")
    parser.add_argument("--output", default="benchmarks/results/inference_speed.json")
    parser.add_argument("--memory-child", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_child:
        print(
            json.dumps(
                memory_child(
                    args.memory_child[0], *parse_size(args.memory_child[1]), args.device, args.dtype, args.threads
                )
            )
        )
        return

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    sizes = [parse_size(size) for size in args.sizes]
    rows = []
    for preset in args.presets:
        names = [f"wedepth-{preset}", f"depth-anything-{preset}"]
        models = {name: build_model(name).to(device) for name in names}
        for height, width in sizes:
            inputs = {name: torch.randn(1, 3, *model_input_size(name, height, width), device=device) for name in names}
            for _ in range(args.warmup):
                for name in names:
                    timed_forward(models[name], inputs[name], dtype, args.timer)
            times: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(args.repeats):
                for name in names:
                    times[name].append(timed_forward(models[name], inputs[name], dtype, args.timer))
            row = {
                "preset": preset,
                "size": f"{height}x{width}",
                "ratios": [a / b for a, b in zip(times[names[0]], times[names[1]])],
            }
            for name in names:
                row[name] = {
                    "median_s": statistics.median(times[name]),
                    "times_s": times[name],
                    "input": "x".join(map(str, inputs[name].shape[-2:])),
                    "gflops": count_flops(models[name], inputs[name]) / 1e9,
                }
                if not args.no_memory:
                    row[name].update(measure_memory(name, height, width, args))
            row["latency_ratio"] = row[names[0]]["median_s"] / row[names[1]]["median_s"]
            row["median_of_paired_ratios"] = statistics.median(row["ratios"])
            row["flop_ratio"] = row[names[0]]["gflops"] / row[names[1]]["gflops"]
            if not args.no_memory:
                row["peak_memory_ratio"] = row[names[0]]["peak_mib"] / row[names[1]]["peak_mib"]
            rows.append(row)
            print(
                f"{preset:>6} {height}x{width}: wedepth {row[names[0]]['median_s']:.3f} s, depth-anything "
                f"{row[names[1]]['median_s']:.3f} s, ratio {row['latency_ratio']:.2f} "
                f"(paired {row['median_of_paired_ratios']:.2f}, FLOP ratio {row['flop_ratio']:.2f})",
                flush=True,
            )
        if args.profile:
            height, width = sizes[0]
            model, pixel_values = models[names[0]], torch.randn(1, 3, height, width, device=device)
            profile = profile_forward(model, lambda: timed_forward(model, pixel_values, dtype))  # noqa: B023 (called here)
            rows.append({"preset": preset, "size": f"{height}x{width}", "profile": profile})
        del models

    print(
        "\n| preset | size | WEDepth s | DA-V2 s | latency ratio | paired ratio | FLOP ratio (GFLOPs) "
        "| WEDepth peak MiB | DA-V2 peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "profile" in row:
            continue
        wedepth, depth_anything = row[f"wedepth-{row['preset']}"], row[f"depth-anything-{row['preset']}"]
        memory = f"{wedepth['peak_mib']:.0f} | {depth_anything['peak_mib']:.0f}" if "peak_mib" in wedepth else "- | -"
        print(
            f"| {row['preset']} | {row['size']} | {wedepth['median_s']:.3f} | {depth_anything['median_s']:.3f} | "
            f"{row['latency_ratio']:.2f} | {row['median_of_paired_ratios']:.2f} | {row['flop_ratio']:.2f} "
            f"({wedepth['gflops']:.0f} / {depth_anything['gflops']:.0f}) | {memory} |"
        )
    for row in rows:
        if "profile" in row:
            print(f"\nProfile of wedepth-{row['preset']} at {row['size']} ({row['profile']['forward_s']:.3f} s):")
            for module, seconds in list(row["profile"]["modules_s"].items())[:12]:
                print(f"  {seconds:8.3f} s  {module}")
            for op in row["profile"]["top_ops"][:10]:
                print(f"  {op['self_cpu_ms']:8.1f} ms  {op['op']} x{op['calls']}")

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in vars(args).items() if key != "memory_child"}
    settings["torch"] = torch.__version__
    output.write_text(json.dumps({"settings": settings, "results": rows}, indent=2))
    print(f"\nWrote {output}")


if __name__ == "__main__":
    main()
