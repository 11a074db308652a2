"""Evaluate a depth checkpoint on one dataset of the community protocols: `wedepth evaluate`, as a script.

    python examples/evaluate.py --model PATH_OR_ID --dataset nyu --data_root DATA/nyu [--flip_tta] [--output r.json]
    accelerate launch --num_processes 4 examples/evaluate.py --model ... --dataset kitti --data_root DATA/kitti

`wedepth evaluate --help` lists every option. Exit status: 0 done; 1 a runtime error (one line); 2 a usage error;
130 stopped by Ctrl-C. `--debug` shows the traceback of an error instead of its one line.
"""

from wedepth_hf.evaluation import main


if __name__ == "__main__":
    raise SystemExit(main())
