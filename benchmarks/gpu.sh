#!/usr/bin/env bash
# The GPU benchmarks of wedepth_hf, for a one-GPU CUDA machine without network. Each step has a time limit; all
# limits together come to under 9 minutes, so the script ends within that even where every step runs to its limit.
#
#     bash benchmarks/gpu.sh /path/to/WEDepth        # the authors' repository checkout, commit a8a09ac
#
# Run from the repository root, with wedepth_hf importable and a CUDA build of torch installed; the authors' code
# also needs timm, einops, sympy and openpyxl (benchmarks/vs_official.py's docstring). Nothing is installed or
# downloaded. Each step is guarded: one that fails or runs past its time limit is reported and the next one runs.
#   1. the machine: nvidia-smi -L, torch, CUDA and cuDNN versions;
#   2. large preset against the authors' code on the same weights (benchmarks/vs_official.py): bf16-autocast forward
#      (batch 1) and training step (batch 8, AdamW fused, bf16 autocast) at 480x640, peak memory of each model, and
#      the SDPA ops and kernels of one forward of each -> results/vs_official_large_bf16_cuda.json;
#   3. if step 2 failed: the SDPA kernels of one large bf16 forward of wedepth_hf alone -> results/sdpa_large_cuda.json;
#   4. ONNX Runtime CUDA against PyTorch (benchmarks/onnx_speed.py), small and large preset, when onnxruntime-gpu is
#      installed -> results/onnx_speed_{small,large}_cuda.json.
# The log goes to results/gpu_cuda.log. Environment: PYTHON (default python), DEVICE (default cuda).
set -u

OFFICIAL="${1:-}"
PYTHON="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
RESULTS=benchmarks/results
LOG="$RESULTS/gpu_cuda.log"
THREADS="$(nproc)"
FAILED=""

if [ -z "$OFFICIAL" ] || [ ! -d "$OFFICIAL/WEDepth" ]; then
    echo "usage: bash benchmarks/gpu.sh OFFICIAL_REPO  (the authors' repository root, the folder holding WEDepth/)" >&2
    exit 2
fi
if [ ! -f benchmarks/vs_official.py ]; then
    echo "Run this from the wedepth_hf repository root (benchmarks/vs_official.py not found)." >&2
    exit 2
fi
export OFFICIAL PYTHON DEVICE RESULTS THREADS
export HF_HUB_OFFLINE=1  # nothing is downloaded: a missing file fails at once instead of waiting on the network
export PYTHONUNBUFFERED=1  # the log keeps Python's lines in order with the step lines
mkdir -p "$RESULTS"
exec > >(tee "$LOG") 2>&1

# step NAME SECONDS COMMAND...: runs COMMAND (a program or one of the functions below) under a time limit; a failure is reported and recorded, not fatal.
step() {
    local name="$1" limit="$2" start="$SECONDS" status
    shift 2
    echo
    echo "== $name (limit ${limit} s)"
    if declare -F "$1" >/dev/null; then
        timeout --kill-after=20 "$limit" bash -c "$(declare -f "$1"); $1"
    else
        timeout --kill-after=20 "$limit" "$@"
    fi
    status=$?
    if [ "$status" -eq 0 ]; then
        echo "-- $name: done in $((SECONDS - start)) s"
    else
        [ "$status" -eq 124 ] && echo "-- $name: stopped at its ${limit} s limit" || echo "-- $name: FAILED (exit $status)"
        FAILED="$FAILED
  $name (exit $status)"
    fi
    return "$status"
}

machine() {
    date -u
    nvidia-smi -L || echo "nvidia-smi not found"
    "$PYTHON" - "$DEVICE" <<'EOF'
import sys

import torch

device = torch.device(sys.argv[1])
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device: install a CUDA build of torch, or check the driver (nvidia-smi).")
print(f"{device}: {torch.cuda.get_device_name(device)}, {torch.cuda.get_device_properties(device).total_memory / 2**30:.1f} GiB")
EOF
}

official_checks() {
    local commit top
    "$PYTHON" -c "import timm, einops, sympy" 2>/dev/null \
        || echo "WARNING: the authors' code needs timm, einops and sympy, not all importable here: step 2 will fail."
    top="$(git -C "$OFFICIAL" rev-parse --show-toplevel 2>/dev/null)"
    if [ "$top" != "$(cd "$OFFICIAL" && pwd -P)" ]; then
        echo "The authors' code: $OFFICIAL (not a git checkout; its commit cannot be checked, a8a09ac expected)"
        return 0
    fi
    commit="$(git -C "$OFFICIAL" rev-parse HEAD)"
    echo "The authors' code: $OFFICIAL at commit $commit"
    case "$commit" in
        a8a09ac*) ;;
        *) echo "WARNING: the parity fixtures and tests/fixtures/official_harness.py were written for commit a8a09ac" ;;
    esac
}

sdpa_alone() {
    "$PYTHON" - "$DEVICE" "$RESULTS/sdpa_large_cuda.json" <<'EOF'
import json
import re
import sys

import torch

from wedepth_hf import WEDepthConfig, WEDepthForDepthEstimation

device, output = torch.device(sys.argv[1]), sys.argv[2]
model = WEDepthForDepthEstimation(WEDepthConfig.from_preset("large")).to(device).eval()
pixel_values = torch.randn(1, 3, 480, 640, device=device)
pattern = re.compile(r"scaled_dot_product|flash|fmha|sdpa|efficient_attention|attention", re.IGNORECASE)
activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
    model(pixel_values=pixel_values)
    torch.cuda.synchronize(device)
    with torch.profiler.profile(activities=activities) as profiler:
        model(pixel_values=pixel_values)
        torch.cuda.synchronize(device)
found = {"ops": {}, "kernels": {}}
for event in profiler.key_averages():
    if pattern.search(event.key):
        side = "ops" if event.device_type == torch.autograd.DeviceType.CPU else "kernels"
        found[side][event.key] = found[side].get(event.key, 0) + event.count
for side, counts in found.items():
    for name, count in counts.items():
        print(f"  {side[:-1]}: {name[:120]} x{count}")
settings = {"preset": "large", "size": "480x640", "dtype": "bfloat16", "torch": torch.__version__,
            "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(device)}
with open(output, "w") as handle:
    json.dump({"settings": settings, "wedepth_hf": found}, handle, indent=2)
print(f"Wrote {output}")
EOF
}

onnx_cuda() {
    if ! "$PYTHON" -c "import onnxruntime, sys; sys.exit('CUDAExecutionProvider' not in onnxruntime.get_available_providers())" 2>/dev/null; then
        echo "onnxruntime-gpu is not installed (no CUDAExecutionProvider): ONNX Runtime CUDA skipped."
        return 0
    fi
    if ! "$PYTHON" benchmarks/onnx_speed.py --help 2>/dev/null | grep -q -- "--device"; then
        echo "benchmarks/onnx_speed.py has no --device option: ONNX Runtime CUDA skipped."
        return 1
    fi
    local preset status=0
    for preset in small large; do
        echo "-- $preset"
        "$PYTHON" benchmarks/onnx_speed.py --device "$DEVICE" --preset "$preset" --size 480x640 --repeats 10 \
            --threads "$THREADS" --output "$RESULTS/onnx_speed_${preset}_cuda.json" || status=$?
    done
    return "$status"
}

step "1. machine" 30 machine || { echo "No usable CUDA device: stopping."; exit 1; }
official_checks
echo "Their deformable attention: the harness (tests/fixtures/official_harness.py) replaces their compiled CUDA"
echo "extension (WEDepth/module/ops) with its pure-PyTorch grid_sample path, on this GPU too; their CUDA kernel is"
echo "not compiled or timed here (building it needs nvcc and a harness that keeps it, neither of which this script has)."

step "2. large preset against the authors' code, bf16 autocast" 300 \
    "$PYTHON" benchmarks/vs_official.py --official "$OFFICIAL" --device "$DEVICE" --dtype bfloat16 \
    --presets large --sizes 480x640 --batch-size 1 --repeats 10 --train-batch-size 8 --train-repeats 5 --warmup 2 \
    --optimizer fused --sdpa-report --threads "$THREADS" --output "$RESULTS/vs_official_large_bf16_cuda.json" \
    || step "3. SDPA kernels of wedepth_hf alone (step 2 failed)" 80 sdpa_alone

step "4. ONNX Runtime CUDA against PyTorch" 120 onnx_cuda

echo
if [ -n "$FAILED" ]; then
    echo "Finished with failures:$FAILED"
    echo "Log: $LOG"
    exit 1
fi
echo "All steps done. Results: $RESULTS/*_cuda.json; log: $LOG"
