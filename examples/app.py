"""The demo page of `wedepth demo`, ready to be a Hugging Face Space: put this file and requirements.txt (with the
wedepth_hf wheel it names) in a Gradio Space, set the Space variable WEDEPTH_MODEL to a WEDepth checkpoint on the Hub,
and the Space serves the page. Locally: `python examples/app.py [MODEL]` serves it on http://127.0.0.1:7860.

The model is, in order: the first argument, $WEDEPTH_MODEL, or org/wedepth-nyu. The address and port are Gradio's own
variables, GRADIO_SERVER_NAME (a Space sets 0.0.0.0) and GRADIO_SERVER_PORT; $WEDEPTH_DEVICE picks the device
(default auto). docs/inference.md#demo-page has the details.
"""

import os
import sys

from wedepth_hf.demo import build_demo, launch_demo


DEFAULT_MODEL = "org/wedepth-nyu"


def main() -> int:
    """Build the page for the chosen model and serve it until Ctrl-C (exit status 130, as the `wedepth` command)."""
    model = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WEDEPTH_MODEL", DEFAULT_MODEL)
    blocks = build_demo(model, device=os.environ.get("WEDEPTH_DEVICE", "auto"))
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    try:
        launch_demo(blocks, host=host, port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
