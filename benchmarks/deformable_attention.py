"""Time the two deformable-attention implementations ("gather" and "grid_sample") of the pixel decoder.

For a preset (default "small", random weights) on a fixed random image (default 480x640): the whole model's forward
in eval mode without autograd, and a training step's forward + SILog loss + backward in train mode, once with each
`deformable_attention_implementation`; and the same two for the pixel decoder's deformable layers alone, on the
decoder tokens that image gives (where the implementations differ). Both models are built from the same seed, so they
hold the same weights; the script also reports the largest difference of their depths.

Time: median over `--repeats` runs after `--warmup` runs, wall-clock or, with `--timer cpu`, process CPU time
(steadier on a shared machine). The implementations alternate run by run, in the order A B B A A B ..., so that a
neighbour's load that changes over time hits both alike.

    python benchmarks/deformable_attention.py --timer cpu --output benchmarks/results/deformable_attention_cpu.json
"""

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation
from wedepth_hf.configuration_wedepth import DEFORMABLE_ATTENTION_IMPLEMENTATIONS


def timed(function: Callable[[], object], clock: Callable[[], float]) -> float:
    """Seconds one call of `function` takes by `clock`."""
    start = clock()
    function()
    return clock() - start


def build(preset: str, implementation: str) -> WEDepthForDepthEstimation:
    """The preset's model with random weights from seed 0 and the given deformable attention implementation."""
    torch.manual_seed(0)
    return WEDepthForDepthEstimation(
        WEDepthConfig.from_preset(preset, deformable_attention_implementation=implementation)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timer", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.timer == "wall" else time.process_time

    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(args.batch_size, 3, args.height, args.width, generator=generator)
    labels = torch.rand(args.batch_size, args.height, args.width, generator=generator) * 9 + 1
    models = {name: build(args.preset, name) for name in DEFORMABLE_ATTENTION_IMPLEMENTATIONS}

    # The decoder tokens of this image, for the deformable layers alone.
    reference = models["gather"].eval()
    captured: dict[str, object] = {}
    decoder = reference.pixel_decoder
    original = decoder.deformable_layers

    def capture(tokens: torch.Tensor, spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        captured.update(tokens=tokens.detach(), spatial_shapes=spatial_shapes)
        return original(tokens, spatial_shapes)

    decoder.deformable_layers = capture
    with torch.no_grad():
        depths = {}
        for name, model in models.items():
            depths[name] = model.eval()(pixel_values).predicted_depth
    del decoder.deformable_layers
    tokens, spatial_shapes = captured["tokens"], captured["spatial_shapes"]

    def model_forward(model: WEDepthForDepthEstimation) -> Callable[[], object]:
        def run() -> None:
            model.eval()
            with torch.no_grad():
                model(pixel_values)

        return run

    def model_step(model: WEDepthForDepthEstimation) -> Callable[[], object]:
        def run() -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            model(pixel_values, labels=labels).loss.backward()

        return run

    def layers_forward(model: WEDepthForDepthEstimation) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                model.pixel_decoder.deformable_layers(tokens, spatial_shapes)

        return run

    def layers_step(model: WEDepthForDepthEstimation) -> Callable[[], object]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            model.pixel_decoder.deformable_layers(tokens.requires_grad_(), spatial_shapes).square().mean().backward()

        return run

    cases = {
        "deformable_layers_forward": layers_forward,
        "deformable_layers_forward_backward": layers_step,
        "model_forward": model_forward,
        "model_forward_backward": model_step,
    }
    results: dict[str, dict[str, float]] = {}
    for case, make in cases.items():
        runs = {name: make(model) for name, model in models.items()}
        for _ in range(args.warmup):
            for run in runs.values():
                run()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for repeat in range(args.repeats):
            order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
            for name in order:
                times[name].append(timed(runs[name], clock))
        results[case] = {f"{name}_s": round(statistics.median(values), 4) for name, values in times.items()}
        results[case]["grid_sample_over_gather"] = round(results[case]["grid_sample_s"] / results[case]["gather_s"], 3)

    difference = (depths["gather"] - depths["grid_sample"]).abs()
    report = {
        "preset": args.preset,
        "input": [args.batch_size, 3, args.height, args.width],
        "decoder_spatial_shapes": spatial_shapes,
        "device": "cpu",
        "threads": args.threads,
        "timer": args.timer,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "max_relative_depth_difference": (difference / depths["gather"]).max().item(),
        "median_seconds": results,
    }
    text = json.dumps(report, indent=1)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
