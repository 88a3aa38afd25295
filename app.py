"""Gradio app: record or upload speech, see what the model hears and which emotion it reads.

The entry point, and the one Hugging Face Spaces runs: load the model (with the app's fallback), build the page,
serve it. The page is built in `ser.app`, one module per tab (docs/architecture.md); every number and picture
comes from `ser`.

    python app.py                 # serves on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
    SER_MODEL=user/name python app.py   # another checkpoint folder, or a Hugging Face Hub id or URL
"""

import argparse
import logging
import os
import sys
import threading

import gradio as gr
from huggingface_hub import logging as hf_logging

from ser.app import TRIM, build_demo, launch, warm_up
from ser.hub import ModelError, load_model
from ser.model import SERModel

log = logging.getLogger("app")


def as_sentence(message: str) -> str:
    """One line, capitalised, ending with a full stop."""
    message = " ".join(message.split())  # one line, even if a decoder's own message had several
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def load_app(name: str | None, fallback: bool = False) -> tuple[gr.Blocks, SERModel]:
    """Load the model once and build the app around it. `name`: checkpoint folder, Hub id or URL, or None for
    the shipped one. Raises `ModelError` if it cannot be loaded, unless `fallback`: then the page serves the
    shipped model and says so at the top (for SER_MODEL on a Space, where a failed start shows visitors nothing).
    """
    try:
        model = load_model(name)
    except ModelError as e:
        if not fallback or not name:
            raise
        notice = (
            f"The model '{name}' could not be loaded, so this page uses the shipped model instead. "
            f"The reason: {as_sentence(str(e))}"
        )
        log.warning(notice)
        model = load_model(None)
        return build_demo(model, notice), model
    return build_demo(model, source=name), model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=None,
        help="checkpoint folder, or Hub id or URL; without it $SER_MODEL is used, and if that cannot be loaded, "
        "the shipped checkpoints/default with a notice on the page",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hf_logging.disable_propagation()  # huggingface_hub prints its own messages; through the root logger too, twice
    try:
        if args.model:
            demo, model = load_app(args.model)
        else:
            demo, model = load_app(os.environ.get("SER_MODEL") or None, fallback=True)
    except ModelError as e:
        sys.exit(f"error: {e}")
    threading.Thread(target=warm_up, args=(model,), daemon=True).start()
    threading.Thread(target=TRIM.run, daemon=True).start()
    launch(demo)


if __name__ == "__main__":
    main()
