"""Peak memory and speed of `wedepth predict` on videos: a long clip against a short one, each in a fresh process.

The clips are generated (640x480 at 10 fps, a moving smooth pattern, H.264) and the model is a tiny random WEDepth
saved to a temporary folder: what is measured is the streaming pipeline (decode, predict in batches, encode, write
per-frame depth), whose peak must not grow with the clip's length. Each run is `wedepth predict CLIP` in its own
Python process, which reports its own peak RSS (VmHWM from /proc/self/status; `ru_maxrss` of a child would keep the
parent's RSS at the fork) and the wall time of the command; frames per second = frames / that time (model loading
included).

    python benchmarks/video_memory.py --output benchmarks/results/video_memory_cpu.json
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np


HEIGHT, WIDTH, FPS = 480, 640, 10
# The tests' tiny random WEDepth (a few thousand parameters per part): `save_tiny_model` of tests/helpers.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# Runs `wedepth predict` in this process and prints its peak RSS and wall time as JSON on the last line.
_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from wedepth_hf import cli
    start = time.perf_counter()
    status = cli.main(sys.argv[1:])
    seconds = time.perf_counter() - start
    peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"status": status, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}))
    """
)


def write_clip(path: Path, seconds: int) -> int:
    """Encode a `seconds`-long 640x480 clip at 10 fps whose smooth pattern moves from frame to frame; returns the
    frame count."""
    import av

    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    count = seconds * FPS
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(count):
            phase = index / FPS
            channels = [np.sin(cols / (40 + 10 * c) + phase * (c + 1)) + np.cos(rows / 55 - phase) for c in range(3)]
            frame = ((np.stack(channels, axis=-1) + 2) * 63.75).clip(0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return count


def run_predict(clip: Path, model: Path, output: Path, save_depth: str, args: argparse.Namespace) -> dict:
    """`wedepth predict CLIP` in a fresh process: its exit status, wall seconds and peak RSS."""
    arguments = [*("predict", str(clip), "--model", str(model), "--output_dir", str(output)), "--no_progress"]
    arguments += ["--save_depth", save_depth, "--batch_size", str(args.batch_size), "--dtype", "float32"]
    if args.processing_size is not None:
        arguments += ["--processing_size", str(args.processing_size)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, *arguments], env=environment, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wedepth predict failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure the short and the long clip with each per-frame output and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, nargs=2, default=[2, 20], metavar=("SHORT", "LONG"))
    parser.add_argument("--save_depth", nargs="+", default=["png", "npz"], choices=["png", "npz", "none"])
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--processing_size", type=int, default=None, help="passed on (default: the model's, 480)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()
    from helpers import save_tiny_model

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        save_tiny_model(root / "model")
        clips = {seconds: root / f"clip_{seconds}s.mp4" for seconds in args.seconds}
        frames = {seconds: write_clip(path, seconds) for seconds, path in clips.items()}
        for save_depth in args.save_depth:
            for seconds, clip in clips.items():
                output = root / f"out_{save_depth}_{seconds}"
                run = run_predict(clip, root / "model", output, save_depth, args)
                run.update(clip_seconds=seconds, frames=frames[seconds], save_depth=save_depth)
                run["frames_per_second"] = frames[seconds] / run["seconds"]
                results.append(run)
                print(json.dumps(run), flush=True)
    peaks = {(run["save_depth"], run["clip_seconds"]): run["peak_rss_mib"] for run in results}
    short, long = args.seconds
    ratios = {save_depth: peaks[save_depth, long] / peaks[save_depth, short] for save_depth in args.save_depth}
    report = {
        "what": f"wedepth predict on {WIDTH}x{HEIGHT} clips at {FPS} fps, tiny random WEDepth, fresh process each",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads},
        "batch_size": args.batch_size,
        "processing_size": args.processing_size,
        "runs": results,
        "peak_ratio_long_over_short": ratios,
    }
    print(json.dumps(ratios))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
