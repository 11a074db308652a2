"""Train WEDepth: `accelerate launch examples/train.py --config examples/configs/nyu.yaml [--key value ...]`.

Every setting of the YAML file can be overridden on the command line (e.g. `--output_dir runs/nyu
--max_train_steps 1000`); `python examples/train.py ...` runs on one device. The logic lives in
`wedepth_hf.training`; see that module and the configs in examples/configs/ for the settings.
"""

import sys

from wedepth_hf.training import main


if __name__ == "__main__":
    sys.exit(main())
