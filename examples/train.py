"""Train WEDepth from a source checkout: `accelerate launch examples/train.py --config nyu [--key value ...]`.

The same as `wedepth train ...` (one process) and `accelerate launch -m wedepth_hf train ...` (several); the logic
lives in `wedepth_hf.training`. `--config` takes a bundled config by name (synthetic, nyu, kitti: the files in
wedepth_hf/configs/) or a path to a YAML file, and every setting can be overridden on the command line (e.g.
`--output_dir runs/nyu --max_train_steps 1000`).

Options are spelled in full (no abbreviations). Exit status: 0 done; 1 the upload failed, or the output folder or
checkpoint cannot be used (the message says what to do); 2 a bad command line; 130 stopped by Ctrl-C, after saving a
checkpoint (the message gives the command that resumes). `--debug` shows the traceback of an error instead of its
one line.
"""

from wedepth_hf.training import main


if __name__ == "__main__":
    raise SystemExit(main())
