"""The offline page: a folder of static files in which the model runs in the visitor's browser, so that no
recording leaves their device.

    python -m ser offline site/                  # the shipped model; --model for another
    python -m http.server -d site/ 8000          # or any static host; then open http://localhost:8000/

`build` copies the page (`ser/app/offline/`: index.html, offline.js and onnxruntime-web's files, vendored from npm),
exports the model as one ONNX graph (`ser.export`, the analysis from 16 kHz samples on) to model.onnx, and writes
into index.html what the page needs to answer as the app does: the graph's metadata (labels, thresholds), the app's
words as templates (`ser.words.templates`, with what is fixed for this model already filled) and the picture's
colours. The page decodes and resamples in the browser, checks for silence and shortness and words the notes itself.
The app serves the same folder at /offline (`ser/app/offline_page.py`).
"""

import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np

from . import plots, words
from .audio import MAX_FILE_BYTES, decode_seconds
from .export import export, metadata
from .hub import load_model
from .model import SERModel

PAGE = Path(__file__).resolve().parent / "app" / "offline"  # the page's source: its files and vendored scripts
# Copied as they are; index.html is written with the model's settings in it.
COPIED = ["offline.js", "vendor/ort.wasm.min.js", "vendor/ort-wasm-simd-threaded.mjs",
          "vendor/ort-wasm-simd-threaded.wasm.gz", "vendor/LICENSE"]  # fmt: skip
MODEL = "model.onnx"
SETTINGS = '<script type="application/json" id="settings">null</script>'  # where index.html takes its settings


def settings(model: SERModel) -> dict:
    """What the page reads from index.html: the graph's metadata plus how much of a file to decode, the words, the
    picture's colours."""
    meta = metadata(model) | {"decode_seconds": decode_seconds(model.feature_config), "max_file_bytes": MAX_FILE_BYTES}
    said, fill = words.templates(), words.fill  # the blanks fixed for this model filled; the page fills the rest
    said["too_short"] = fill(
        said["too_short"], min_seconds=f"{meta['min_seconds']:g}", s="s" * (meta["min_seconds"] != 1)
    )
    said["too_big"] = fill(said["too_big"], max_mb=f"{MAX_FILE_BYTES / 1024**2:.0f}")
    said["only_first"] = fill(said["only_first"], max_seconds=f"{meta['max_seconds']:g}")
    said["only_picture"] = fill(said["only_picture"], min_seconds=f"{meta.get('voice_min_seconds', 0):g}")
    if meta["confident_share"] is not None:
        said["leaning"] = fill(said["leaning"], tenths=round(10 * meta["confident_share"]))
    levels = matplotlib.colormaps[plots.LOG_MEL_COLOURS](np.linspace(0, 1, 256))[:, :3]
    return {"model": meta, "words": said, "colours": {"picture": np.round(255 * levels).astype(int).tolist()}}


def page_html(model: SERModel) -> str:
    """index.html with the model's settings in it."""
    html = (PAGE / "index.html").read_text()
    assert SETTINGS in html, "ser/app/offline/index.html lost its settings script"
    data = json.dumps(settings(model), separators=(",", ":")).replace("</", "<\\/")  # never ends the <script>
    return html.replace(SETTINGS, SETTINGS.replace("null", data))


def build(model: SERModel | str | Path | None, out_dir: str | Path) -> Path:
    """Write the offline page for `model` (a loaded model, or a checkpoint folder or Hub id as `load_model` takes;
    None: the shipped one) into `out_dir`: index.html, offline.js, vendor/ and model.onnx. Returns `out_dir`.
    Raises `ExportError` for a model the graph cannot represent, `ModelError` for one that cannot be loaded."""
    model = model if isinstance(model, SERModel) else load_model(model)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"'{out}' is a file: give a folder for the offline page")
    (out / "vendor").mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copyfile(PAGE / name, out / name)
    export(model, out / MODEL)
    (out / "index.html").write_text(page_html(model))
    return out
