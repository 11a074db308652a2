"""wedepth_hf against the authors' released WEDepth code, on the same weights, in one process.

The authors' model is built from a checkout of their repository (github book-book24/WEDepth), imported unchanged and
patched at runtime by `tests/fixtures/official_harness.py`, the harness that wrote the parity fixtures: import stubs for
torchvision and the CUDA extension, the pure-PyTorch multi-scale deformable attention (`grid_sample`, the CUDA kernel's
arithmetic), attribute aliases, prompt masks sized for the input, the decoder width, Swin builders without downloads.
It is built with a preset's architecture (small: DINOv2-S stage ends [2, 5, 8, 11], Swin-T, prompts of width 192,
decoder 128; large: their `configs/nyu.json`, DINOv2-L, Swin-B, decoder 256), every tensor redrawn from a seeded
generator (the harness's `reinit_`), and converted into `WEDepthForDepthEstimation` with
`wedepth_hf.conversion.convert_original_checkpoint`. Both must give the same depth before anything is timed.

Then, alternating (theirs, ours, theirs, ...) after a warm-up, each timed separately:
- forward: one eval forward in `torch.inference_mode()`;
- training step: train mode, forward, SILog loss (theirs: their `util/loss.py`; ours: the model's), backward, one
  AdamW step over the trainable parameters (same hyperparameters for both; `--optimizer foreach` by default, the
  implementation torch's AdamW picks on CUDA, where the authors train; on CPU torch's default is a per-tensor loop
  that costs both models the same seconds per step and would only blur the ratio).
Medians, the ratio of medians and the median of paired ratios (ours / theirs) are reported; on a shared machine the
paired ratio is the number to read. `--profile` adds per-module forward times and the top ops of both.

`--device cuda` runs both on a GPU (timed regions end in `torch.cuda.synchronize()`; each model's peak allocated
memory for a forward and a training step is recorded); `--dtype bfloat16|float16` runs forward and training step
under autocast (the parity check stays float32, TF32 off); `--sdpa-report` profiles one forward of each and records
the attention ops and kernels that ran (flash, memory-efficient, cuDNN or math SDPA). On CUDA the authors' model uses
the harness's `grid_sample` deformable attention, not their compiled kernel. `benchmarks/gpu.sh` runs it on a GPU.

Setting up (the authors' code needs timm, einops, sympy and openpyxl; none of them is a dependency of wedepth_hf):

    git clone https://github.com/book-book24/WEDepth OFFICIAL_REPO && git -C OFFICIAL_REPO checkout a8a09ac
    python -m venv VENV && VENV/bin/pip install torch==2.13.0 transformers==5.24.0 safetensors numpy sympy einops \
        openpyxl pillow huggingface_hub accelerate datasets pyyaml && VENV/bin/pip install --no-deps timm
    VENV/bin/pip install --no-deps -e .          # or PYTHONPATH=<this repository>
    VENV/bin/python benchmarks/vs_official.py --official OFFICIAL_REPO --presets small --threads 2
    VENV/bin/python benchmarks/vs_official.py --official OFFICIAL_REPO --presets large --sizes 480x640 --threads 2
"""

import argparse
import contextlib
import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests" / "fixtures"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import official_harness as harness  # noqa: E402  (installs the harness's import stubs first)
import torch  # noqa: E402
from inference_speed import alternate, parse_size, profile_forward  # noqa: E402

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation  # noqa: E402
from wedepth_hf.conversion import convert_original_checkpoint  # noqa: E402


# The authors' Swin builders (their module/encoder.py) for the encoders of the presets.
OFFICIAL_SWIN_BUILDERS = {
    "microsoft/swin-tiny-patch4-window7-224": "swin_tiny",
    "microsoft/swin-small-patch4-window7-224": "swin_small",
    "microsoft/swin-base-patch4-window7-224": "swin_base",
}
OFFICIAL_DECODER_WIDTH = 256
"""The width their `WEDepth.__init__` hard-codes; any other preset width goes through the harness's factory."""
DATASET = "NYUDataset"
PARITY_TOLERANCE = 1e-3
"""Largest depth difference allowed between the two models, relative to the largest depth (float32, eval)."""
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ATTENTION_NAME = re.compile(r"scaled_dot_product|flash|fmha|sdpa|efficient_attention|attention", re.IGNORECASE)
"""Profiler names of SDPA ops and kernels (flash, memory-efficient `fmha`, cuDNN `sdpa`, math)."""


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work, so that a timed region ends when its kernels do (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synced(run: Callable[[], None], device: torch.device) -> Callable[[], None]:
    """`run`, synchronized before and after, so that a timer around it measures its device time too."""

    def wrapped() -> None:
        synchronize(device)
        run()
        synchronize(device)

    return wrapped


def peak_memory(run: Callable[[], None], device: torch.device) -> dict[str, float] | None:
    """Peak allocated CUDA memory of one `run()` in MiB: in all, and above what was allocated before it (the other
    model, the weights and optimizer state stay resident). None off CUDA."""
    if device.type != "cuda":
        return None
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak_allocated_mib": peak / 2**20, "peak_above_resident_mib": (peak - before) / 2**20}


def attention_kernels(run: Callable[[], None], device: torch.device) -> dict[str, dict[str, int]]:
    """The SDPA ops (CPU side) and attention kernels (device side) that one `run()` launched, with their counts.

    Each call's backend is one `aten::_scaled_dot_product_*` op (flash, efficient, cudnn, attention_math, ...);
    `aten::scaled_dot_product_attention` itself is counted twice for a call whose inputs autocast casts."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        run()
        synchronize(device)
    found: dict[str, dict[str, int]] = {"ops": {}, "kernels": {}}
    for event in profiler.key_averages():
        if ATTENTION_NAME.search(event.key):
            side = "ops" if event.device_type == torch.autograd.DeviceType.CPU else "kernels"
            found[side][event.key] = found[side].get(event.key, 0) + event.count
    return found


def move_masks_(official: torch.nn.Module, device: torch.device) -> None:
    """Moves the harness's prompt masks (plain attributes of their `partition_enhance`, not buffers) to `device`."""
    enhancer = official.partition_enhance
    for name, value in list(vars(enhancer).items()):
        if name.startswith("mask_") and torch.is_tensor(value):
            setattr(enhancer, name, value.to(device))


def official_config(official_root: Path, config: WEDepthConfig, vfm_folder: str) -> dict[str, Any]:
    """The authors' `configs/nyu.json` with the model section of the preset `config`."""
    if (
        config.decoder_ffn_dim != 2 * config.decoder_hidden_size
        or config.head_hidden_size * 2 != config.decoder_hidden_size
    ):
        raise ValueError("The authors' decoder has an FFN of twice its width and heads of half its width.")
    with open(official_root / "WEDepth" / "configs" / "nyu.json") as handle:
        values = json.load(handle)
    values["model"].update(
        prompt_num=config.prompt_num,
        prompt_dim=config.prompt_dim,
        out_dim=config.prompt_dim,
        token_dim=config.vfm_config.hidden_size,
        dino_type=vfm_folder,
        layer_idx=list(config.vfm_stage_layers),
        encoder_name=OFFICIAL_SWIN_BUILDERS[config.encoder_pretrained_name_or_path],
        patch_size=config.vfm_config.patch_size,
        ext_num=config.extraction_depth,
        inj_num=config.injection_depth,
        dropout=0.0,
    )
    return values


def build_pair(
    namespace: Any, official_root: Path, preset: str, height: int, width: int, seed: int, device: torch.device
) -> tuple[torch.nn.Module, WEDepthForDepthEstimation, dict[str, Any]]:
    """The authors' model of `preset` with seeded random weights, and the same weights converted into wedepth_hf,
    both on `device`."""
    config = WEDepthConfig.from_preset(preset)
    patch = config.vfm_config.patch_size
    harness.DECODER_WIDTH["hidden"] = (
        None if config.decoder_hidden_size == OFFICIAL_DECODER_WIDTH else config.decoder_hidden_size
    )
    harness.STATE["n_token_override"] = (height // patch) * (width // patch) + 1
    harness.STATE["run_dtype"] = torch.float32
    harness.seed_everything(seed)
    with tempfile.TemporaryDirectory() as vfm_folder:
        # A config-only folder: the harness builds their DINOv2 from it with random weights.
        harness.save_dino_folder(vfm_folder, config.vfm_config.to_dict(), with_weights=False)
        values = official_config(official_root, config, vfm_folder)
        official = namespace.M.WEDepth(values)
    harness.reinit_(official, seed, {})
    official.eval()
    state_dict = {key: tensor.detach().clone() for key, tensor in official.state_dict().items()}
    ours = convert_original_checkpoint(state_dict, values, vfm_config=config.vfm_config)
    for field in (
        "prompt_num",
        "prompt_dim",
        "prompt_attention_heads",
        "vfm_stage_layers",
        "decoder_hidden_size",
        "decoder_ffn_dim",
        "decoder_layers",
        "head_hidden_size",
    ):
        if getattr(ours.config, field) != getattr(config, field):
            raise RuntimeError(
                f"The converted model's {field} is {getattr(ours.config, field)}, the preset's "
                f"{getattr(config, field)}."
            )
    official.to(device)
    move_masks_(official, device)
    return official, ours.to(device).eval(), values


def official_forward(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Their forward, as their train.py calls it (the second argument only gives the output size)."""
    return model(pixel_values, pixel_values[:, :1], DATASET)[:, 0]


def ours_forward(model: WEDepthForDepthEstimation, pixel_values: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=pixel_values).predicted_depth


def check_parity(official: torch.nn.Module, ours: WEDepthForDepthEstimation, pixel_values: torch.Tensor) -> float:
    """Largest depth difference of the two models relative to the largest depth, in float32 with TF32 off; raises
    above the tolerance."""
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            theirs = official_forward(official, pixel_values)
            mine = ours_forward(ours, pixel_values)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    difference = ((mine - theirs).abs().max() / theirs.abs().max()).item()
    if not difference <= PARITY_TOLERANCE:
        raise RuntimeError(f"The two models disagree: max |ours - theirs| / max |theirs| = {difference:.3g}.")
    return difference


def make_optimizer(model: torch.nn.Module, implementation: str) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, the authors' hyperparameters (lr 2e-4, weight decay 0.01)."""
    options = {"foreach": {"foreach": True}, "fused": {"fused": True}, "for-loop": {"foreach": False}}[implementation]
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    return torch.optim.AdamW(trainable, lr=2e-4, betas=(0.9, 0.999), weight_decay=0.01, **options)


def training_steps(
    official: torch.nn.Module,
    ours: WEDepthForDepthEstimation,
    pixel_values: torch.Tensor,
    labels: torch.Tensor,
    args: argparse.Namespace,
) -> dict[str, Callable[[], None]]:
    """One training step of each model (train mode, forward and SILog under `args.dtype` autocast, backward, AdamW;
    a gradient scaler for float16), as callables."""
    import util.loss as official_loss  # their util/loss.py, importable once the harness put their code on the path

    device, dtype = pixel_values.device, DTYPES[args.dtype]
    silog = official_loss.SiLogLoss()
    valid = labels[:, None] > ours.config.min_depth
    optimizers = {
        "official": make_optimizer(official, args.optimizer),
        "wedepth_hf": make_optimizer(ours, args.optimizer),
    }
    scalers = {
        name: torch.amp.GradScaler(device.type, enabled=dtype == torch.float16) for name in ("official", "wedepth_hf")
    }

    def update(name: str, loss: torch.Tensor) -> None:
        scalers[name].scale(loss).backward()
        scalers[name].step(optimizers[name])
        scalers[name].update()
        optimizers[name].zero_grad(set_to_none=True)

    def official_step() -> None:
        official.train()
        with autocast(device, dtype):
            prediction = official(pixel_values, valid.to(torch.uint8), DATASET)
            loss = silog(prediction, labels[:, None], valid)
        update("official", loss)

    def ours_step() -> None:
        ours.train()
        with autocast(device, dtype):
            loss = ours(pixel_values=pixel_values, labels=labels).loss
        update("wedepth_hf", loss)

    return {"official": official_step, "wedepth_hf": ours_step}


def print_run(name: str, result: dict[str, Any]) -> None:
    """One line: both medians, the ratio of medians and the median paired ratio, and the peaks where measured."""
    line = (
        f"  {name}: official {result['median_s']['official']:.3f} s, wedepth_hf "
        f"{result['median_s']['wedepth_hf']:.3f} s, ratio {result['ratio_of_medians']:.2f} "
        f"(paired {result['median_paired_ratio']:.2f})"
    )
    if result.get("peak_memory"):
        line += ", peak MiB " + ", ".join(
            f"{model} {memory['peak_allocated_mib']:.0f} (+{memory['peak_above_resident_mib']:.0f})"
            for model, memory in result["peak_memory"].items()
        )
    print(line, flush=True)


def time_pair(runs: dict[str, Callable[[], None]], args: argparse.Namespace, repeats: int) -> dict[str, Any]:
    """Alternating timings of both runs (synchronized on CUDA), then each run's peak memory (CUDA only)."""
    device = torch.device(args.device)
    result = alternate({name: synced(run, device) for name, run in runs.items()}, args.warmup, repeats, args.timer)
    if device.type == "cuda":
        result["peak_memory"] = {name: peak_memory(run, device) for name, run in runs.items()}
    return result


def measure(namespace: Any, args: argparse.Namespace, preset: str, size: str) -> dict[str, Any]:
    """Parity, then forward (and training step) times of both models for one preset and size; the models are
    freed on return."""
    height, width = parse_size(size)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    official, ours, _ = build_pair(namespace, args.official, preset, height, width, args.seed, device)
    generator = torch.Generator().manual_seed(args.seed)
    pixel_values = torch.randn(args.batch_size, 3, height, width, generator=generator).to(device)
    row: dict[str, Any] = {
        "preset": preset,
        "size": size,
        "batch_size": args.batch_size,
        "parity_max_relative_difference": check_parity(official, ours, pixel_values),
    }
    print(f"{preset} {size}: same depth within {row['parity_max_relative_difference']:.2e} of the largest", flush=True)

    def forward_of(model: torch.nn.Module, forward: Callable) -> Callable[[], None]:
        def run() -> None:
            model.eval()
            with torch.inference_mode(), autocast(device, dtype):
                forward(model, pixel_values)

        return run

    forwards = {"official": forward_of(official, official_forward), "wedepth_hf": forward_of(ours, ours_forward)}
    row["forward"] = time_pair(forwards, args, args.repeats)
    print_run("forward", row["forward"])
    if args.sdpa_report:
        row["sdpa"] = {name: attention_kernels(run, device) for name, run in forwards.items()}
        for name, found in row["sdpa"].items():
            for side, counts in found.items():
                for key, count in counts.items():
                    print(f"  {name} attention {side[:-1]}: {key[:120]} x{count}")
    if args.profile:
        official.eval()
        row["profile"] = {
            "official": profile_forward(official, lambda: official_forward(official, pixel_values)),
            "wedepth_hf": profile_forward(ours, lambda: ours_forward(ours, pixel_values)),
        }
    if not args.skip_train:
        train_pixels = torch.randn(args.train_batch_size, 3, height, width, generator=generator).to(device)
        labels = (torch.rand(args.train_batch_size, height, width, generator=generator) * 9.5 + 0.5).to(device)
        steps = training_steps(official, ours, train_pixels, labels, args)
        row["training_step"] = time_pair(steps, args, args.train_repeats)
        row["training_step"]["batch_size"] = args.train_batch_size
        print_run("training step", row["training_step"])
    return row


def parse_arguments() -> argparse.Namespace:
    """The command line; usage errors exit 2 with one line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, type=Path, help="root of the authors' repository (holds WEDepth/)")
    parser.add_argument("--presets", nargs="+", default=["small"], choices=["small", "base", "large"])
    parser.add_argument("--sizes", nargs="+", default=["480x640"], help="HxW, one run per preset and size")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward")
    parser.add_argument("--train-batch-size", type=int, default=2, help="images per training step")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (median reported)")
    parser.add_argument("--train-repeats", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--timer",
        default="wall",
        choices=["wall", "cpu"],
        help="wall clock, or process CPU time (steadier on a shared CPU; use with --threads 1)",
    )
    parser.add_argument(
        "--optimizer",
        default="foreach",
        choices=["foreach", "fused", "for-loop"],
        help="AdamW implementation, the same for both models",
    )
    parser.add_argument("--device", default="cpu", help="torch device of both models (cpu, cuda, cuda:1, ...)")
    parser.add_argument(
        "--dtype", default="float32", choices=list(DTYPES), help="autocast dtype of forward and training step"
    )
    parser.add_argument("--skip-train", action="store_true", help="forward only")
    parser.add_argument("--profile", action="store_true", help="also profile one forward of each model")
    parser.add_argument(
        "--sdpa-report", action="store_true", help="record the attention ops and kernels of one forward of each"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/vs_official.json")
    args = parser.parse_args()
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device}: not a torch device; use cpu, cuda or cuda:N.")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device here; use --device cpu.")
    if device.type == "cuda" and args.timer == "cpu":
        parser.error("--timer cpu does not count GPU time; use --timer wall with --device cuda.")
    return args


def main() -> None:
    """Build, check parity, time forward and training step per (preset, size); print and write the JSON."""
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    namespace = harness.import_official(str(args.official))
    rows = [measure(namespace, args, preset, size) for preset in args.presets for size in args.sizes]

    print("\n| preset | size | run | official s | wedepth_hf s | ratio of medians | median paired ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        for run in ("forward", "training_step"):
            if run in row:
                result = row[run]
                print(
                    f"| {row['preset']} | {row['size']} | {run.replace('_', ' ')} | "
                    f"{result['median_s']['official']:.3f} | {result['median_s']['wedepth_hf']:.3f} | "
                    f"{result['ratio_of_medians']:.2f} | {result['median_paired_ratio']:.2f} |"
                )
    for row in rows:
        for name, profile in row.get("profile", {}).items():
            print(f"\nProfile of {name} ({row['preset']}, {row['size']}, {profile['forward_s']:.3f} s):")
            for module, seconds in list(profile["modules_s"].items())[:10]:
                print(f"  {seconds:8.3f} s  {module}")
            for op in profile["top_ops"][:10]:
                print(f"  {op['self_cpu_ms']:8.1f} ms  {op['op']} x{op['calls']}")

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    settings.update(torch=torch.__version__, harness_patches=dict(harness.PATCHES))
    if torch.device(args.device).type == "cuda":
        settings.update(cuda=torch.version.cuda, gpu=torch.cuda.get_device_name(torch.device(args.device)))
    output.write_text(json.dumps({"settings": settings, "results": rows}, indent=2))
    print(f"\nWrote {output}")


if __name__ == "__main__":
    main()
