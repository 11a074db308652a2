"""Time and peak memory of one WEDepth training step with the VFM frozen (the method) against the VFM unfrozen.

A step is forward + SILog loss + backward + AdamW step over the trainable parameters, on a fixed random batch
(default 2 x 3 x 240 x 320, random weights). Cases: each preset x {VFM frozen, VFM unfrozen} x {without, with
`model.activation_checkpointing_enable()`, of which `gradient_checkpointing_enable()` is a deprecated alias}.

In both the frozen and the unfrozen case the VFM stays in eval mode (no dropout / drop-path; `model.train()` keeps
it so), so the two differ only in what the gradient costs: unfrozen, `requires_grad=True` on every VFM parameter,
which adds the VFM's weight gradients and their AdamW updates (the gradient through the VFM to the prompts is needed
in both cases). Gradient checkpointing recomputes the prompted VFM stages (and transformers' own checkpointed
modules, e.g. the Swin encoder) in the backward pass instead of keeping their activations.

Each case runs in its own subprocess, so peak memory is per case: on CPU the child's peak RSS
(VmHWM of /proc/self/status, which includes the weights, gradients and optimizer state), on CUDA
`torch.cuda.max_memory_allocated`. Time: median over `--repeats` steps after `--warmup` steps, wall-clock or, with
`--timer cpu`, process CPU time (steadier on a shared machine; use with `--threads 1`).

    python benchmarks/train_step.py --presets small large --repeats 2 --threads 2
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, or VmHWM: the peak RSS of this process's own address space), MiB.

    `ru_maxrss` is not used: after fork + exec it keeps the parent's RSS at the fork.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} (peak memory on CPU needs Linux).")


def run_case(preset: str, unfrozen: bool, checkpointing: bool, args: argparse.Namespace) -> dict:
    """Runs in the subprocess: build, warm up, time the steps, report peak memory."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = WEDepthForDepthEstimation(WEDepthConfig.from_preset(preset)).to(device)
    model.train()  # the VFM stays frozen and in eval mode
    if unfrozen:
        model.vfm.requires_grad_(True)  # still in eval mode: only the gradient cost differs
    if checkpointing:
        # `gradient_checkpointing_enable` is its deprecated alias in transformers 5.
        model.activation_checkpointing_enable()
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, weight_decay=0.01)
    height, width = args.height, args.width
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(args.batch_size, 3, height, width, generator=generator).to(device)
    labels = (torch.rand(args.batch_size, height, width, generator=generator) * 8 + 0.5).to(device)
    clock = time.process_time if args.timer == "cpu" else time.perf_counter

    def step() -> float:
        """One training step; its duration in seconds."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = clock()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(pixel_values=pixel_values, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return clock() - start

    rss_before = status_mib("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.repeats)]
    result = {
        "preset": preset,
        "vfm": "unfrozen" if unfrozen else "frozen",
        "gradient_checkpointing": checkpointing,
        "trainable_parameters": sum(parameter.numel() for parameter in trainable),
        "times_s": times,
        "median_s": statistics.median(times),
    }
    if device.type == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["peak_mib"] = status_mib("VmHWM")
        result["rss_before_training_mib"] = rss_before
    return result


def main() -> None:
    """Run every case in its own subprocess, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "large"], choices=["small", "base", "large"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per case (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per case first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timer", default="wall", choices=["wall", "cpu"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="autocast dtype of the forward (float32: no autocast)",
    )
    parser.add_argument("--output", default="benchmarks/results/train_step.json")
    parser.add_argument("--case", nargs=3, metavar=("PRESET", "VFM", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        preset, vfm, checkpointing = args.case
        print(json.dumps(run_case(preset, vfm == "unfrozen", checkpointing == "on", args)))
        return

    results = []
    forwarded = [
        f"--{key.replace('_', '-')}={value}"
        for key, value in vars(args).items()
        if key in ("batch_size", "height", "width", "repeats", "warmup", "threads", "timer", "device", "dtype")
    ]
    for preset in args.presets:
        for checkpointing in ("off", "on"):
            for vfm in ("frozen", "unfrozen"):
                command = [sys.executable, __file__, "--case", preset, vfm, checkpointing, *forwarded]
                completed = subprocess.run(command, capture_output=True, text=True, check=False)
                if completed.returncode != 0:
                    raise RuntimeError(
                        f"Case {preset}/{vfm}/checkpointing {checkpointing} failed:\n{completed.stderr[-3000:]}"
                    )
                result = json.loads(completed.stdout.strip().splitlines()[-1])
                results.append(result)
                print(
                    f"{preset:>6} vfm {vfm:>8} checkpointing {checkpointing:>3}: {result['median_s']:.2f} s, "
                    f"peak {result['peak_mib']:.0f} MiB",
                    flush=True,
                )

    def find(preset: str, vfm: str, checkpointing: bool) -> dict:
        """The result of one case."""
        return next(
            r for r in results if (r["preset"], r["vfm"], r["gradient_checkpointing"]) == (preset, vfm, checkpointing)
        )

    summary = {}
    for preset in args.presets:
        unfrozen = find(preset, "unfrozen", False)
        frozen = find(preset, "frozen", False)
        frozen_checkpointed = find(preset, "frozen", True)
        summary[preset] = {
            "time_frozen_over_unfrozen": frozen["median_s"] / unfrozen["median_s"],
            "peak_memory_frozen_over_unfrozen": frozen["peak_mib"] / unfrozen["peak_mib"],
            "peak_memory_frozen_checkpointed_over_unfrozen": frozen_checkpointed["peak_mib"] / unfrozen["peak_mib"],
            "time_frozen_checkpointed_over_unfrozen": frozen_checkpointed["median_s"] / unfrozen["median_s"],
        }

    print("\n| preset | VFM | checkpointing | step s | peak MiB | trainable params |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['preset']} | {r['vfm']} | {'on' if r['gradient_checkpointing'] else 'off'} | {r['median_s']:.2f} | "
            f"{r['peak_mib']:.0f} | {r['trainable_parameters'] / 1e6:.1f}M |"
        )
    print(
        "\n| preset | time frozen/unfrozen | peak frozen/unfrozen | peak frozen+ckpt/unfrozen "
        "| time frozen+ckpt/unfrozen |"
    )
    print("|---|---|---|---|---|")
    for preset, ratios in summary.items():
        print(
            f"| {preset} | {ratios['time_frozen_over_unfrozen']:.2f} | "
            f"{ratios['peak_memory_frozen_over_unfrozen']:.2f} | "
            f"{ratios['peak_memory_frozen_checkpointed_over_unfrozen']:.2f} | "
            f"{ratios['time_frozen_checkpointed_over_unfrozen']:.2f} |"
        )

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in vars(args).items() if key != "case"}
    settings["torch"] = torch.__version__
    output.write_text(json.dumps({"settings": settings, "results": results, "ratios": summary}, indent=2))
    print(f"\nWrote {output}")


if __name__ == "__main__":
    main()
