"""Gradio app: record or upload speech, see what the model hears and which emotion it reads.

Thin by design: every number and picture comes from `ser`; this file wires components to it. One clip's way:
`analyse_upload` runs `ser.analyse_file` once and wraps its `Analysis` (or why there is none) in a `Result`;
every view renders from that `Result`.

Adding a view (a timeline, a saliency heatmap, ...) is one function and one entry in `VIEWS`:

    @figure_view                                   # drawn with matplotlib from the Analysis (else: Result -> value)
    def timeline(a: Analysis) -> plt.Figure:
        return plots.timeline(...)

    VIEWS["timeline"] = View(timeline, lambda: gr.Plot(show_label=False, elem_id="timeline"), tab="Timeline",
                             picture=True)

The page layout, the outputs of every event, the Clear button and the tabs are all built from `VIEWS`, so there
are no positional tuples to keep in step. A view's function must also accept the empty `Result()` (nothing
analysed yet, or cleared) and a `Result` with only an `error`: it returns its component's resting value then.
Views with `picture=True` are drawn in a second step after the answer is on screen, one at a time (pyplot is not
thread-safe). The `/predict` API returns the views named in `API`, in that order; gradio_client users rely on it.

    python app.py                 # serves on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
    SER_MODEL=user/name python app.py   # another checkpoint folder, or a Hugging Face Hub id or URL
"""

import argparse
import filecmp
import functools
import json
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np
import torch
from gradio.utils import get_upload_folder
from huggingface_hub import ModelCard
from huggingface_hub import logging as hf_logging

from ser import card, plots
from ser.audio import AUDIO_EXTENSIONS, AudioError
from ser.hub import ModelError, load_model
from ser.inference import Analysis, analyse, analyse_file
from ser.model import SERModel

log = logging.getLogger("app")
PYPLOT = threading.Lock()  # pyplot's figure registry is not thread-safe (the warm-up may overlap a first request)

EXAMPLES = Path(__file__).resolve().parent / "examples"
CONCURRENCY = 2  # a free CPU Space has 2 cores: more parallel analyses only slow each other down
QUEUE_SIZE = 32  # requests waiting beyond this are refused at once instead of timing out
# An API call waits at most this long for one of the CONCURRENCY analysis slots, then is answered BUSY: under a
# burst, a quick "try again" rather than a wait that grows with the crowd (the page's visitors see their place in
# Gradio's queue instead, and wait).
BUSY_SECONDS = 1.5
BUSY = "The server is busy with other analyses: try again in a few seconds."
# Every analysis, whichever event asks for it, runs on these threads, first come first served. Besides keeping the
# cores from being oversubscribed, only these threads ever hold the memory numpy and torch allocate per thread: run
# on any of Gradio's 40 worker threads, a server's RSS grew 145 MB over 176 requests at 32 clients and stayed there.
ANALYSES = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="analysis")
MAX_FILE_SIZE = "20mb"  # ~10 min of 16-bit mono WAV at 16 kHz, far more than the model's 30 s reads
SESSION_SECONDS = 600  # a visitor's recent results stay this long after their last analysis (API calls keep none)
RECENT = 2  # results kept per visitor: enough to answer Analyse pressed again on an upload already deleted
UNSURE_TOP, UNSURE_MARGIN = 0.40, 0.15  # below this top probability, or margin to the runner-up, we say "unsure"
CONFIDENT_TOP = 0.70
EMOJI = {
    "neutral": "😐",
    "calm": "😌",
    "happy": "😄",
    "sad": "😢",
    "angry": "😠",
    "fearful": "😨",
    "disgust": "🤢",
    "surprised": "😲",
}
START = "Record a short sentence (2 to 10 seconds) or upload a clip, then press **Analyse**."
GONE = "This upload is no longer on the server (uploads are deleted once analysed): record or upload it again."
NO_AUDIO = "No audio yet: record with the microphone or upload a file, then press **Analyse**."
FIGURE_WIDTH = 6.4  # inches; see `figure_view`
THEME = gr.themes.Soft(text_size="lg")  # large text: read from the back of a classroom and on a phone
CSS = "#verdict h2 {font-size: 2rem; margin: 0.2em 0} .notice {border-left: 4px solid #f08c00; padding-left: 0.6em}"
# Browsers run gain control, noise suppression and echo cancellation on microphone audio by default. They reshape
# the loudness contour and spectrum the model reads (it was trained on unprocessed audio, with its own noise and
# room augmentation) and cost it 8 UAR points in bench/bench_mic.py, so the app asks for the raw signal.
RAW_MIC = """<script>
(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return;
  const get = md.getUserMedia.bind(md);
  const raw = { autoGainControl: false, noiseSuppression: false, echoCancellation: false };
  md.getUserMedia = (c) =>
    get(c && c.audio ? { ...c, audio: c.audio === true ? raw : { ...raw, ...c.audio } } : c);
})();
</script>"""


@dataclass
class Result:
    """One input's analysis, or why there is none: what every view renders. Neither set: nothing analysed yet."""

    analysis: Analysis | None = None
    error: str | None = None  # one line for the user


# ----------------------------------------------------------------------------- the one analysis path


class RecentResults:
    """One visitor's last few results by upload path, and the one on their screen; kept in their session's state.

    Uploads are deleted as soon as they are read; Gradio names an upload by a hash of its content, so pressing
    Analyse again on the same upload (or a second event for it) is answered from here.
    """

    def __init__(self, size: int = RECENT):
        self.size, self.items, self.shown = size, OrderedDict(), Result()

    def get(self, key: str) -> Result | None:
        if key in self.items:
            self.items.move_to_end(key)
        return self.items.get(key)

    def put(self, key: str, result: Result) -> None:
        self.items[key] = result
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def discard_upload(path: str, keep: Collection[Path] = ()) -> None:
    """Delete a file Gradio stored for this request, unless it is a copy of one of the example clips in `keep`."""
    p = Path(path)
    if Path(get_upload_folder()).resolve() not in p.resolve().parents or not p.is_file():
        return
    if any(p.name == k.name and filecmp.cmp(p, k, shallow=False) for k in keep):
        return  # Gradio copies each example to its cache once and hands out that copy on every click
    p.unlink(missing_ok=True)
    try:
        p.parent.rmdir()  # Gradio's per-upload folder
    except OSError:
        pass


def analyse_upload(
    model: SERModel,
    path: str | None,
    recent: RecentResults | None = None,
    keep: Collection[Path] = (),
    wait: float | None = None,
) -> Result:
    """Analyse an uploaded or recorded file with `ser.analyse_file`, then delete the upload (never files in `keep`).

    Never raises for bad input: the reason is in `Result.error`. With `recent`, a path analysed before is
    answered from there, and the result is kept there. Analyses run CONCURRENCY at a time (`analyse_in_turn`);
    with `wait`, one that has not started within `wait` seconds is answered BUSY.
    """
    if not path:
        return Result(error=NO_AUDIO)
    try:
        if recent is not None and (cached := recent.get(path)) is not None:
            return cached
        try:
            analysis = analyse_in_turn(model, path, wait)
            if analysis is None:
                return Result(error=BUSY)
            result = Result(analysis)
        except AudioError as e:
            if recent is not None and (cached := recent.get(path)) is not None:  # analysed and deleted meanwhile
                return cached
            if not Path(path).exists():
                return Result(error=GONE)
            result = Result(error=as_sentence(str(e).replace(str(path), Path(path).name)))
        if recent is not None:
            recent.put(path, result)
        return result
    finally:
        discard_upload(path, keep)


def analyse_in_turn(model: SERModel, path: str, wait: float | None = None) -> Analysis | None:
    """`analyse_file` on one of the ANALYSES threads; None if none was free within `wait` seconds (None: no limit)."""
    job = ANALYSES.submit(analyse_file, model, path)
    try:
        return job.result(timeout=wait)
    except TimeoutError:
        return None if job.cancel() else job.result()  # cancelled while still waiting, or it has just started


def as_sentence(message: str) -> str:
    """One line, capitalised, ending with a full stop."""
    message = " ".join(message.split())  # one line, even if a decoder's own message had several
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


# ----------------------------------------------------------------------------- views of a Result


def verdict(result: Result) -> str:
    """The top emotion and the model's confidence in words (Markdown)."""
    if result.error:
        return f"### ⚠️ Cannot analyse this\n{result.error}"
    if result.analysis is None:
        return START
    probs = sorted(result.analysis.probs.items(), key=lambda kv: kv[1], reverse=True)
    (top, p1), (second, p2) = probs[0], probs[1] if len(probs) > 1 else ("", 0.0)
    head = f"## {EMOJI[top] + ' ' if top in EMOJI else ''}{top.capitalize()}: {p1:.0%}"
    if p1 < UNSURE_TOP or p1 - p2 < UNSURE_MARGIN:
        if p1 - p2 < UNSURE_MARGIN:
            why = f"**{top}** ({p1:.0%}) and **{second}** ({p2:.0%}) are close"
        else:
            why = f"no emotion stands out (the highest is {p1:.0%})"
        words = f"**The model is unsure**: {why}. Treat this as a guess."
    elif p1 >= CONFIDENT_TOP:
        words = f"The model is **confident** this voice sounds **{top}** ({p1:.0%}; next: {second}, {p2:.0%})."
    else:
        words = f"The model is **fairly sure** this voice sounds **{top}** ({p1:.0%}; next: {second}, {p2:.0%})."
    return f"{head}\n{words}"


def notes(result: Result) -> str:
    """The analysis' caveats about the input as a Markdown list ('' when there are none)."""
    return "\n".join(f"- ⚠️ {n}" for n in result.analysis.notes) if result.analysis else ""


def scores(result: Result) -> dict[str, float] | None:
    """All class probabilities, the value of the `gr.Label` output."""
    return dict(result.analysis.probs) if result.analysis else None


def figure_view(draw: Callable[[Analysis], plt.Figure]) -> Callable[[Result], plt.Figure | None]:
    """A view drawn with matplotlib from the analysis (None without one), sized for phones and out of pyplot."""

    @functools.wraps(draw)
    def view(result: Result) -> plt.Figure | None:
        if result.analysis is None:
            return None
        with PYPLOT:
            fig = draw(result.analysis)
            plt.close(fig)  # leaves pyplot's registry; Gradio still renders it, then it is garbage-collected
        # Narrower than the library's default: a phone shrinks each picture to its width, so fewer inches
        # keep the labels legible there; on a projector it is the same text size in a smaller picture.
        fig.set_size_inches(min(fig.get_figwidth(), FIGURE_WIDTH), fig.get_figheight())
        return fig

    return view


@figure_view
def probability_chart(a: Analysis) -> plt.Figure:
    return plots.probabilities(a.probs)


@figure_view
def waveform_chart(a: Analysis) -> plt.Figure:
    cut = f" (first {a.features.max_seconds:g} s)" if a.truncated else ""
    return plots.waveform(a.audio, a.features.sample_rate, title=f"Waveform of the analysed sound{cut}")


@figure_view
def log_mel_chart(a: Analysis) -> plt.Figure:
    return plots.log_mel(a.mel, a.features)


# ----------------------------------------------------------------------------- the registry of views


@dataclass(frozen=True)
class View:
    """One way of showing a Result: `render` gives the value of the component that `component` builds."""

    render: Callable[[Result], Any]
    component: Callable[[], gr.components.Component]  # called where the view sits; may add a caption around it
    tab: str | None = None  # None: in the answer column beside the input; else the title of its tab
    picture: bool = False  # drawn after the answer is shown, one at a time (matplotlib), rather than with it


def scores_component() -> gr.Label:
    with gr.Accordion("Scores as text", open=False):
        return gr.Label(label="Emotion scores", show_heading=False, elem_id="scores")


def waveform_component() -> gr.Plot:
    gr.Markdown(
        "The **waveform** is the sound pressure over time. The **log-mel spectrogram** is what the model actually "
        "reads: time runs left to right, pitch goes up (spaced like our hearing does), and brighter means louder. "
        "Silence at the ends is trimmed first."
    )
    return gr.Plot(label="Waveform", elem_id="waveform", show_label=False)


VIEWS: dict[str, View] = {
    "verdict": View(verdict, lambda: gr.Markdown(START, label="Verdict", elem_id="verdict")),
    "notes": View(notes, lambda: gr.Markdown("", label="Input quality notes", elem_id="notes")),
    "probabilities": View(
        probability_chart,
        lambda: gr.Plot(label="Emotion probabilities", elem_id="probabilities", show_label=False),
        picture=True,
    ),
    "scores": View(scores, scores_component),
    "waveform": View(waveform_chart, waveform_component, tab="What it hears", picture=True),
    "log_mel": View(
        log_mel_chart,
        lambda: gr.Plot(label="Log-mel spectrogram", elem_id="log-mel", show_label=False),
        tab="What it hears",
        picture=True,
    ),
}
API = ("verdict", "scores", "notes")  # what /predict returns, in this order: (Markdown, Label value, Markdown)


def render(result: Result, names: Iterable[str]) -> list:
    """The values of the named views for one Result, in the order of `names`."""
    return [VIEWS[n].render(result) for n in names]


# ----------------------------------------------------------------------------- About the model


def checkpoint_files(model: SERModel) -> dict[str, Path]:
    """The model card (README.md), metrics.json and train_config.json in the model's folder, those that exist.

    A Hub model's folder is its download in the Hugging Face cache (see `ser.hub.fetch`).
    """
    folder = model.source_dir
    names = ("metrics.json", "README.md", "train_config.json")
    return {n: folder / n for n in names if folder is not None and (folder / n).is_file()}


def confusion_figures(metrics: dict) -> list[plt.Figure]:
    """One row-normalised confusion matrix per tested corpus (cross-validation, else validation)."""
    source, kind = (
        (metrics["cross_validation"], "all folds")
        if metrics.get("cross_validation")
        else (metrics.get("validation", {}), "validation speakers")
    )
    figs = []
    with PYPLOT:
        for corpus, m in source.items():
            if "confusion" in m and "labels" in m:
                figs.append(plots.confusion(np.array(m["confusion"]), m["labels"], title=f"{corpus} ({kind})"))
                plt.close(figs[-1])
    return figs


def about_markdown(model: SERModel, source: str | None, files: dict[str, Path]) -> tuple[str, str, dict]:
    """(summary Markdown, model card body, metrics) of the loaded checkpoint, coping with missing files.

    The summary's text and tables come from `ser.card`, the same functions that wrote the model card.
    """
    body = ModelCard.load(files["README.md"]).text.strip() if "README.md" in files else ""
    metrics = json.loads(files["metrics.json"].read_text()) if "metrics.json" in files else {}
    data = json.loads(files["train_config.json"].read_text()).get("data", []) if "train_config.json" in files else []
    md = [
        "### What it predicts",
        f"{card.summary(model)} Model: `{source or 'checkpoints/default'}`.",
        "### Training data",
        card.training_data(data) if data else "Not documented: this checkpoint has no train_config.json.",
        "### Test results (speaker-independent)",
        card.results_markdown(metrics, level=4)
        if metrics
        else "This checkpoint has no metrics.json, so its accuracy is unknown: treat its answers as untested.",
        "### Limitations",
        card.limitations(),
    ]
    return "\n\n".join(md), body, metrics


# ----------------------------------------------------------------------------- the interface


def build_demo(
    model: SERModel, notice: str | None = None, source: str | None = None, examples: Path | None = EXAMPLES
) -> gr.Blocks:
    """The Blocks app for a loaded model; `notice` (e.g. that another model was asked for) is shown at the top."""
    # Uploads are deleted by the handler; delete_cache sweeps anything a request never reached (e.g. an
    # abandoned upload) after 5 minutes.
    with gr.Blocks(title="Speech emotion recognition", analytics_enabled=False, delete_cache=(300, 300)) as demo:
        gr.Markdown(
            "# Speech emotion recognition\nHow does a voice sound: happy, sad, angry...? Speak or upload a "
            "clip and see the sound the way the model sees it. A teaching demo trained on actors: it guesses "
            "how a voice *sounds*, not how someone feels."
        )
        if notice:
            gr.Markdown(f"⚠️ **Model notice:** {notice}", elem_classes="notice", elem_id="notice")
        ui: dict[str, Any] = {"recent": gr.State(None, time_to_live=SESSION_SECONDS)}  # this visitor's RecentResults
        with gr.Row(equal_height=False):
            with gr.Column(min_width=320):
                ui["audio"] = gr.Audio(
                    sources=["microphone", "upload"], type="filepath", label="Your voice", elem_id="audio-input"
                )
                ui["button"] = gr.Button("Analyse", variant="primary", size="lg", elem_id="analyse")
                ui["examples"], ui["clips"] = example_clips(examples, ui["audio"])
            with gr.Column(min_width=320):
                ui.update({n: v.component() for n, v in VIEWS.items() if v.tab is None})
        with gr.Tabs():
            for tab in dict.fromkeys(v.tab for v in VIEWS.values() if v.tab):
                with gr.Tab(tab):
                    ui.update({n: v.component() for n, v in VIEWS.items() if v.tab == tab})
            with gr.Tab("About the model", id="about"):
                about_tab(model, source)
        wire(model, ui)
    return demo


def example_clips(folder: Path | None, audio: gr.Audio) -> tuple[gr.helpers.Examples | None, list[Path]]:
    """Clickable examples from the audio files in `folder`, captioned by file name, and the files."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in AUDIO_EXTENSIONS) if folder else []
    if not files:
        return None, []
    examples = gr.Examples(
        [[str(p)] for p in files],
        inputs=[audio],
        cache_examples=False,  # Spaces would cache them; the views need a fresh run
        label="Examples: click one",
        example_labels=[p.stem for p in files],
    )
    return examples, files


def about_tab(model: SERModel, source: str | None) -> None:
    """The model's labels, training data, speaker-independent results, confusion matrices and limitations."""
    summary, body, metrics = about_markdown(model, source, checkpoint_files(model))
    gr.Markdown(summary, elem_id="about")
    with gr.Row():
        for fig in confusion_figures(metrics):
            gr.Plot(fig, show_label=False, min_width=360)
    if body:
        with gr.Accordion("Full model card", open=False):
            gr.Markdown(body)


def wire(model: SERModel, ui: dict) -> None:
    """Every way in (Analyse, end of a recording, an upload, an example) runs the one analysis, then the pictures.

    The page's events keep this visitor's recent results in their session. `/predict`, the API, is a separate
    endpoint that keeps nothing: API clients open a session per request, and results kept for each would pile up.
    """
    answer = [n for n, v in VIEWS.items() if not v.picture]
    pictures = [n for n, v in VIEWS.items() if v.picture]

    def on_analyse(path, recent):
        recent = recent or RecentResults()
        recent.shown = analyse_upload(model, path, recent, keep=ui["clips"])  # examples are analysed, never deleted
        return *render(recent.shown, answer), recent

    def on_pictures(recent):
        return render(recent.shown if recent else Result(), pictures)

    def on_predict(path):
        return render(analyse_upload(model, path, keep=ui["clips"], wait=BUSY_SECONDS), API)

    def on_clear(recent):
        if recent:
            recent.shown = Result()
        return render(Result(), VIEWS)

    analysis = dict(
        fn=on_analyse,
        inputs=[ui["audio"], ui["recent"]],
        outputs=[*(ui[n] for n in answer), ui["recent"]],
        concurrency_id="analysis",
        api_visibility="private",
    )
    drawing = dict(
        fn=on_pictures,
        inputs=[ui["recent"]],
        outputs=[ui[n] for n in pictures],
        api_visibility="private",
        concurrency_id="figures",
        concurrency_limit=1,  # pyplot is not thread-safe, and Gradio renders the figures after we return them
        show_progress="hidden",
    )
    for event in (ui["button"].click, ui["audio"].stop_recording, ui["audio"].upload):
        event(**analysis).then(**drawing)
    if ui["examples"] is not None:
        ui["examples"].load_input_event.then(**analysis).then(**drawing)
    ui["audio"].clear(
        on_clear, inputs=[ui["recent"]], outputs=[ui[n] for n in VIEWS], api_visibility="private", queue=False
    )
    gr.on(  # no trigger on the page: an API-only endpoint, returning the views in API
        triggers=[],
        fn=on_predict,
        inputs=[ui["audio"]],
        outputs=[ui[n] for n in API],
        api_name="predict",
        api_description="Emotion of one audio file: verdict, all class probabilities, input-quality notes.",
        # Its own group, so calls are not held in Gradio's queue behind the page's events: each waits for its turn
        # to be analysed itself, at most BUSY_SECONDS (analyse_upload), and no more than QUEUE_SIZE wait so.
        concurrency_id="api",
        concurrency_limit=QUEUE_SIZE,
    )


def launch(demo: gr.Blocks, raw_mic: bool = True, **kwargs):
    """Queue and serve with the app's limits; kwargs go to `Blocks.launch` (server_port, prevent_thread_lock...).

    `raw_mic=False` leaves the browser's microphone processing on (see RAW_MIC).
    """
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    # One analysis per core: CONCURRENCY analyses each using every core would fight over them (on 2 busy cores,
    # a model pass took 5 times longer with 2 torch threads than with 1).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY))
    head = RAW_MIC if raw_mic else None
    return demo.launch(max_file_size=MAX_FILE_SIZE, theme=THEME, css=CSS, head=head, **kwargs)


def warm_up(model: SERModel) -> None:
    """Run one analysis and draw every view, so the first visitor does not wait for JIT compiling and font loading."""
    cfg = model.feature_config
    noise = 0.1 * np.random.default_rng(0).standard_normal(cfg.sample_rate).astype(np.float32)
    render(Result(analyse(model, noise, cfg.sample_rate)), VIEWS)


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
    launch(demo)


if __name__ == "__main__":
    main()
