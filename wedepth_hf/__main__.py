"""`python -m wedepth_hf ...` is the `wedepth` command (e.g. under `accelerate launch -m wedepth_hf train ...`)."""

import sys

from .cli import main


sys.exit(main())
