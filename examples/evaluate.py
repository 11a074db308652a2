"""Evaluate a WEDepth checkpoint (folder or Hub id) on one dataset of the community protocols.

    python examples/evaluate.py --model PATH_OR_ID --dataset nyu --data_root DATA/nyu \
        [--split_file F] [--flip_tta] [--alignment none|median|least_squares|least_squares_disparity] \
        [--batch_size N] [--output results.json] [--update_model_card README.md] [--crop_on_kb_crop]

Datasets and their protocols: `wedepth_hf.evaluation.EVALUATION_DATASETS`. For `folder` give --depth_scale,
--min_depth, --max_depth, --crop; for `hf` (a `datasets` dataset) --data_root is the Hub id or folder, with --split,
--image_column, --depth_column (and --depth_scale for integer depth). Runs on several GPUs with `accelerate launch`.
For KB-crop datasets (KITTI & co.) the Garg/Eigen crop is computed on the full frame the prediction is pasted into;
--crop_on_kb_crop computes it on the 352x1216 KB crop instead, as the authors' evaluation code does.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import AutoModelForDepthEstimation

import wedepth_hf  # noqa: F401  (registers WEDepth with the Auto classes)
from wedepth_hf.evaluation import EVALUATION_DATASETS, build_evaluation_dataset, evaluate_depth_model, resolve_spec
from wedepth_hf.metrics import ALIGNMENTS, CROPS


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--dataset", required=True, choices=sorted(EVALUATION_DATASETS))
    parser.add_argument("--data_root", required=True, help="dataset root (for 'hf': Hub id or dataset folder)")
    parser.add_argument("--split_file", help="list file (default: the dataset's usual list file in data_root)")
    parser.add_argument("--image_root", help="image folder, relative to data_root (default: data_root)")
    parser.add_argument("--depth_root", help="depth folder, relative to data_root (default: data_root)")
    parser.add_argument("--flip_tta", action="store_true", help="average with the prediction of the flipped image")
    parser.add_argument("--alignment", default="none", choices=ALIGNMENTS)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--update_model_card", type=Path, help="write the results into this model card (README.md)")
    parser.add_argument("--depth_scale", type=float, help="raw depth units per metre (overrides the dataset's)")
    parser.add_argument("--min_depth", type=float, help="override the dataset's minimum valid depth")
    parser.add_argument("--max_depth", type=float, help="override the dataset's maximum valid depth")
    parser.add_argument("--crop", choices=("none", *CROPS), help="override the dataset's evaluation crop")
    parser.add_argument("--focal", type=float, help="focal length (px) for list lines without one")
    parser.add_argument("--kb_crop_size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=(352, 1216))
    parser.add_argument("--no_kb_crop", action="store_true", help="run the model on full images for KB-crop datasets")
    parser.add_argument(
        "--crop_on_kb_crop",
        action="store_true",
        help="score the KB-cropped maps, with the crop box computed from the KB crop's size (the authors' evaluation), "
        "instead of the prediction pasted into the full frame (the community standard, default)",
    )
    parser.add_argument("--split", default="validation", help="split of an 'hf' dataset")
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--depth_column", default="depth_map")
    return parser


def main() -> None:
    """Load the model and dataset, evaluate, print a table, write JSON and optionally the model card."""
    parser = build_parser()
    args = parser.parse_args()
    spec = resolve_spec(
        args.dataset,
        depth_scale=args.depth_scale,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        default_focal=args.focal,
        kb_crop=False if args.no_kb_crop else None,
    )
    if args.crop is not None:
        spec = dataclasses.replace(spec, crop=None if args.crop == "none" else args.crop)
    if args.crop_on_kb_crop and not spec.kb_crop:
        parser.error(f"--crop_on_kb_crop needs a KB-crop dataset; {args.dataset} is evaluated on full images here.")
    dataset = build_evaluation_dataset(
        spec,
        args.data_root,
        args.split_file,
        image_root=args.image_root,
        depth_root=args.depth_root,
        split=args.split,
        image_column=args.image_column,
        depth_column=args.depth_column,
    )
    accelerator = Accelerator()
    model = AutoModelForDepthEstimation.from_pretrained(args.model).to(accelerator.device)
    result = evaluate_depth_model(
        model,
        dataset,
        batch_size=args.batch_size,
        min_depth=spec.min_depth,
        max_depth=spec.max_depth,
        crop=spec.crop,
        kb_crop=spec.kb_crop,
        kb_crop_size=tuple(args.kb_crop_size),
        crop_on_kb_crop=args.crop_on_kb_crop,
        flip_tta=args.flip_tta,
        alignment=args.alignment,
        accelerator=accelerator,
        num_workers=args.num_workers,
    )
    if not accelerator.is_main_process:
        return
    from wedepth_hf.hub import results_table

    print(results_table({args.dataset: result.metrics}))
    print(f"images used: {result.num_images}, skipped (no valid pixel): {result.num_skipped}")
    settings = {**result.settings, "model": args.model, "dataset": args.dataset, "data_root": str(args.data_root),
                "split_file": args.split_file, "depth_scale": spec.depth_scale, "torch": torch.__version__}
    report = {"results": {args.dataset: result.metrics}, "num_images": {args.dataset: result.num_images},
              "num_skipped": {args.dataset: result.num_skipped}, "settings": settings}
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    if args.update_model_card is not None:
        from wedepth_hf.hub import update_model_card_results

        update_model_card_results(args.update_model_card, {args.dataset: result.metrics})


if __name__ == "__main__":
    main()
