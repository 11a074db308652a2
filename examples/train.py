"""Train WEDepth: `accelerate launch examples/train.py --config examples/configs/nyu.yaml [--key value ...]`.

Every setting of the YAML file can be overridden on the command line (e.g. `--output_dir runs/nyu
--max_train_steps 1000`); `python examples/train.py ...` runs on one device. The logic lives in
`wedepth_hf.training`; see that module and the configs in examples/configs/ for the settings.

Options are spelled in full (no abbreviations). Exit status: 0 done; 1 the upload failed, or the output folder or
checkpoint cannot be used (the message says what to do); 2 a bad command line; 130 stopped by Ctrl-C, after saving a
checkpoint (the message gives the command that resumes).
"""

import sys

from wedepth_hf.training import main


if __name__ == "__main__":
    sys.exit(main())
