"""Gradio app: record or upload speech, see what the model hears and which emotion it reads.

Thin by design: every number and picture comes from `ser`; this file wires components to it.
One analysis path (`analyse_upload`) fills a `Result`; each view (verdict, charts, tabs) renders from it,
so later views (timeline, heatmap, live mode) are one more function over the same `Result`.

    python app.py                 # serves on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
    SER_MODEL=user/name python app.py   # another checkpoint folder or Hugging Face Hub id
"""

import argparse
import filecmp
import json
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np
from gradio.utils import get_upload_folder

from ser import plots
from ser.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from ser.card import LICENCES
from ser.hub import ModelError, load_model
from ser.inference import Analysis, analyse
from ser.model import SERModel
from ser.quality import check_quality

log = logging.getLogger("app")
PYPLOT = threading.Lock()  # pyplot's figure registry is not thread-safe (the warm-up may overlap a first request)

EXAMPLES = Path(__file__).resolve().parent / "examples"
CONCURRENCY = 2  # a free CPU Space has 2 cores: more parallel analyses only slow each other down
QUEUE_SIZE = 32  # requests waiting beyond this are refused at once instead of timing out
MAX_FILE_SIZE = "20mb"  # ~10 min of 16-bit mono WAV at 16 kHz, far more than the model's 30 s reads
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
FIGURE_WIDTH = 6.4  # inches; see `figures`
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
    """One input's analysis and what to say about it: the state every view renders from."""

    analysis: Analysis | None = None
    notes: list[str] = field(default_factory=list)  # plain-words caveats about the input
    error: str | None = None  # why there is no analysis, one line for the user


# ----------------------------------------------------------------------------- the shared analysis path


class RecentResults:
    """The last few analyses, in memory, keyed by upload path.

    Uploads are deleted as soon as they are read; Gradio names an upload by a hash of its content, so
    pressing Analyse again on the same upload (or a second event for it) is answered from here.
    """

    def __init__(self, size: int = 8):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: str) -> Result | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: str, result: Result) -> None:
        with self.lock:
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
    model: SERModel, path: str | None, recent: RecentResults | None = None, keep: Collection[Path] = ()
) -> Result:
    """Decode a file, check its quality, predict: the one analysis every view and the API share.

    Never raises for bad input: the reason is in `Result.error`.
    """
    if not path:
        return Result(error=NO_AUDIO)
    try:
        return _analyse_file(model, path, recent)
    finally:
        discard_upload(path, keep)


def _analyse_file(model: SERModel, path: str, recent: RecentResults | None) -> Result:
    if recent is not None and (cached := recent.get(path)) is not None:
        return cached
    try:
        audio = load_audio(path, model.feature_config.sample_rate)
    except AudioError as e:
        if recent is not None and (cached := recent.get(path)) is not None:  # analysed and deleted meanwhile
            return cached
        if not Path(path).exists():
            return Result(error=GONE)
        result = Result(error=_sentence(str(e).replace(str(path), Path(path).name)))
    else:
        result = analyse_audio(model, audio)
    if recent is not None:
        recent.put(path, result)
    return result


def analyse_audio(model: SERModel, audio: np.ndarray) -> Result:
    """`analyse_upload` for mono audio (samples,) already at the model's sample rate."""
    cfg = model.feature_config
    notes = check_quality(audio, cfg)
    try:
        return Result(analyse(model, audio, cfg.sample_rate, name="the recording"), notes)
    except AudioError as e:
        return Result(error=_sentence(str(e)))


def _sentence(message: str) -> str:
    message = " ".join(message.split())  # one line, even if a decoder's own message had several
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


# ----------------------------------------------------------------------------- views of a Result


def verdict(result: Result) -> str:
    """The top emotion and the model's confidence in words (Markdown)."""
    if result.error:
        return f"### ⚠️ Cannot analyse this\n{result.error}"
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
    """Input-quality caveats as a Markdown list ('' when there are none)."""
    return "\n".join(f"- ⚠️ {n}" for n in result.notes)


def scores(result: Result) -> dict[str, float] | None:
    """All class probabilities, the value of the `gr.Label` output."""
    return dict(result.analysis.probs) if result.analysis else None


def figures(result: Result, model: SERModel) -> tuple[plt.Figure | None, plt.Figure | None, plt.Figure | None]:
    """(probability bars, waveform, log-mel) of what the model heard; Nones when there is no analysis."""
    a = result.analysis
    if a is None:
        return None, None, None
    cfg = model.feature_config
    title = "Waveform of the analysed sound" + (f" (first {cfg.max_seconds:g} s)" if a.truncated else "")
    with PYPLOT:
        figs = (
            plots.probabilities(a.probs),
            plots.waveform(a.audio, cfg.sample_rate, title=title),
            plots.log_mel(a.mel, cfg),
        )
    for f in figs:
        # Narrower than the library's default: a phone shrinks each picture to its width, so fewer inches
        # keep the labels legible there; on a projector it is the same text size in a smaller picture.
        f.set_size_inches(min(f.get_figwidth(), FIGURE_WIDTH), f.get_figheight())
        plt.close(f)  # leaves pyplot's registry; Gradio still renders it, then it is garbage-collected
    return figs


# ----------------------------------------------------------------------------- About the model


def model_files(model: SERModel, source: str | None) -> dict[str, Path]:
    """The checkpoint's metrics.json, README.md (model card) and train_config.json that exist."""
    names = ("metrics.json", "README.md", "train_config.json")
    if model.source_dir is not None:
        return {n: model.source_dir / n for n in names if (model.source_dir / n).is_file()}
    found = {}
    if source:  # a Hub id: the weights came from there, so the other files are one request away
        from huggingface_hub import hf_hub_download

        for n in names:
            try:
                found[n] = Path(hf_hub_download(source, n))
            except Exception:  # missing file or offline: the About tab says what it lacks
                pass
    return found


def card_section(card: str, title: str) -> str:
    """The body of the '## title' section of a Markdown model card ('' if absent)."""
    lines, out, inside = card.splitlines(), [], False
    for line in lines:
        if line.startswith("## "):
            inside = line[3:].strip().lower() == title.lower()
        elif inside:
            out.append(line)
    return "\n".join(out).strip()


def _pct(v) -> str:
    return f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f} %" if isinstance(v, dict) else f"{100 * v:.1f} %"


def results_markdown(metrics: dict) -> str:
    """Speaker-independent test results from a checkpoint's metrics.json, as Markdown tables."""
    cv, loco, val = (metrics.get(k, {}) for k in ("cross_validation", "leave_one_corpus_out", "validation"))
    out = [
        "No speaker in these tests was heard in training. UAR (unweighted average recall) is the mean of the "
        "per-emotion hit rates; guessing scores 1 / number of emotions."
    ]
    if cv:
        out += [
            "",
            "**Cross-validation over speaker folds** (mean ± std over folds)",
            "",
            "| corpus | emotions | accuracy | UAR | macro-F1 |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {c} | {len(m['labels'])} | {_pct(m['accuracy'])} | {_pct(m['uar'])} | "
            f"{_pct(m['macro_f1']) if 'macro_f1' in m else 'n/a'} |"
            for c, m in cv.items()
        ]
    if loco:
        out += [
            "",
            "**Unseen corpus** (trained on the others, tested on all its speakers)",
            "",
            "| tested on | trained on | accuracy | UAR |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {c} | {' + '.join(m.get('trained_on', []))} | {_pct(m['accuracy'])} | {_pct(m['uar'])} |"
            for c, m in loco.items()
        ]
    if val and not cv:
        out += ["", "**Held-out validation speakers**", "", "| corpus | accuracy | UAR |", "|---|---|---|"]
        out += [f"| {c} | {_pct(m['accuracy'])} | {_pct(m['uar'])} |" for c, m in val.items()]
    if not (cv or loco or val):
        out = ["The metrics file holds no test results."]
    return "\n".join(out)


def confusion_figures(metrics: dict) -> list[plt.Figure]:
    """One row-normalised confusion matrix per tested corpus (cross-validation, else validation)."""
    source, kind = (
        (metrics["cross_validation"], "all folds")
        if metrics.get("cross_validation")
        else (metrics.get("validation", {}), "validation speakers")
    )
    figs = []
    for corpus, m in source.items():
        if "confusion" in m and "labels" in m:
            figs.append(plots.confusion(np.array(m["confusion"]), m["labels"], title=f"{corpus} ({kind})"))
            plt.close(figs[-1])
    return figs


def about_markdown(model: SERModel, source: str | None, files: dict[str, Path]) -> tuple[str, str, dict]:
    """(summary Markdown, model card body, metrics) of the loaded checkpoint, coping with missing files."""
    cfg = model.feature_config
    card = files["README.md"].read_text(encoding="utf-8") if "README.md" in files else ""
    card_body = card.split("---", 2)[2].strip() if card.startswith("---") and card.count("---") >= 2 else card
    metrics = json.loads(files["metrics.json"].read_text()) if "metrics.json" in files else {}
    data = json.loads(files["train_config.json"].read_text()).get("data", []) if "train_config.json" in files else []
    corpora = sorted({d.partition("=")[0] if "=" in d else "folder" for d in data})
    training = card_section(card, "Training data") or "\n".join(f"- {LICENCES.get(c, c)}" for c in corpora)
    limits = card_section(card, "Limitations") or (
        "- Trained on acted emotions: real, spontaneous emotion is subtler.\n"
        "- Microphones, rooms and browser noise suppression change the sound and lower accuracy.\n"
        "- It judges how a voice sounds, not how a person feels: never use it to decide about people."
    )
    n_params = sum(p.numel() for p in model.parameters())
    md = [
        "### What it predicts",
        f"One of **{', '.join(model.labels)}**, from the sound of one voice (not the words).",
        f"It reads a {cfg.n_mels}-band log-mel spectrogram of {cfg.sample_rate // 1000} kHz audio "
        f"({1000 * cfg.n_fft / cfg.sample_rate:.0f} ms windows every "
        f"{1000 * cfg.hop_length / cfg.sample_rate:.0f} ms), "
        f"{cfg.min_seconds:g} to {cfg.max_seconds:g} s of sound, with a VGG-style CNN of {n_params / 1e6:.2f} M "
        f"parameters. Model: `{source or 'checkpoints/default'}`.",
        "### Training data",
        training or "Not documented: this checkpoint has no model card or training config.",
        "### Test results (speaker-independent)",
        results_markdown(metrics)
        if metrics
        else "This checkpoint has no metrics.json, so its accuracy is unknown: treat its answers as untested.",
        "### Limitations",
        limits,
    ]
    return "\n\n".join(md), card_body, metrics


# ----------------------------------------------------------------------------- the interface


def build_demo(
    model: SERModel, notice: str | None = None, source: str | None = None, examples: Path | None = EXAMPLES
) -> gr.Blocks:
    """The Blocks app for a loaded model; `notice` (e.g. a fallback warning) is shown at the top."""
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
        ui = {"state": gr.State(time_to_live=900)}  # this session's Result, in memory only, for the views
        with gr.Row(equal_height=False):
            with gr.Column(min_width=320):
                ui["audio"] = gr.Audio(
                    sources=["microphone", "upload"], type="filepath", label="Your voice", elem_id="audio-input"
                )
                ui["button"] = gr.Button("Analyse", variant="primary", size="lg", elem_id="analyse")
                ui["examples"], ui["clips"] = example_clips(examples, ui["audio"])
            with gr.Column(min_width=320):
                ui["verdict"] = gr.Markdown(START, label="Verdict", elem_id="verdict")
                ui["notes"] = gr.Markdown("", label="Input quality notes", elem_id="notes")
                ui["probs"] = gr.Plot(label="Emotion probabilities", elem_id="probabilities", show_label=False)
                with gr.Accordion("Scores as text", open=False):
                    ui["label"] = gr.Label(label="Emotion scores", show_heading=False, elem_id="scores")
        with gr.Tabs():
            with gr.Tab("What it hears", id="hears"):
                gr.Markdown(
                    "The **waveform** is the sound pressure over time. The **log-mel spectrogram** is what "
                    "the model actually reads: time runs left to right, pitch goes up (spaced like our hearing "
                    "does), and brighter means louder. Silence at the ends is trimmed first."
                )
                ui["wave"] = gr.Plot(label="Waveform", elem_id="waveform", show_label=False)
                ui["mel"] = gr.Plot(label="Log-mel spectrogram", elem_id="log-mel", show_label=False)
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
    summary, card, metrics = about_markdown(model, source, model_files(model, source))
    gr.Markdown(summary, elem_id="about")
    with gr.Row():
        for fig in confusion_figures(metrics):
            gr.Plot(fig, show_label=False, min_width=360)
    if card:
        with gr.Accordion("Full model card", open=False):
            gr.Markdown(card)


def wire(model: SERModel, ui: dict) -> None:
    """Every way in (Analyse, end of a recording, an upload, an example) runs the one analysis, then the views."""
    recent = RecentResults()

    def on_predict(path):
        result = analyse_upload(model, path, recent, keep=ui["clips"])  # examples are analysed, never deleted
        return verdict(result), scores(result), notes(result), result

    def on_figures(result):
        return figures(result or Result(error=NO_AUDIO), model)

    outputs = [ui["verdict"], ui["label"], ui["notes"], ui["state"]]
    analysis = dict(fn=on_predict, inputs=[ui["audio"]], outputs=outputs, concurrency_id="analysis")
    views = dict(
        fn=on_figures,
        inputs=[ui["state"]],
        outputs=[ui["probs"], ui["wave"], ui["mel"]],
        api_visibility="private",
        concurrency_id="figures",
        concurrency_limit=1,  # pyplot is not thread-safe, and Gradio renders the figures after we return them
        show_progress="hidden",
    )
    description = "Emotion of one audio file: verdict, all class probabilities, input-quality notes."
    ui["button"].click(**analysis, api_name="predict", api_description=description).then(**views)
    ui["audio"].stop_recording(**analysis, api_visibility="private").then(**views)
    ui["audio"].upload(**analysis, api_visibility="private").then(**views)
    if ui["examples"] is not None:
        ui["examples"].load_input_event.then(**analysis, api_visibility="private").then(**views)
    ui["audio"].clear(
        lambda: (START, None, "", None, None, None, None),
        outputs=[*outputs, ui["probs"], ui["wave"], ui["mel"]],
        api_visibility="private",
        queue=False,
    )


def launch(demo: gr.Blocks, raw_mic: bool = True, **kwargs):
    """Queue and serve with the app's limits; kwargs go to `Blocks.launch` (server_port, prevent_thread_lock...).

    `raw_mic=False` leaves the browser's microphone processing on (see RAW_MIC).
    """
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    head = RAW_MIC if raw_mic else None
    return demo.launch(max_file_size=MAX_FILE_SIZE, theme=THEME, css=CSS, head=head, **kwargs)


def warm_up(model: SERModel) -> None:
    """Run one analysis and its figures so the first visitor does not wait for JIT compiling and font loading."""
    cfg = model.feature_config
    noise = 0.1 * np.random.default_rng(0).standard_normal(cfg.sample_rate).astype(np.float32)
    figures(analyse_audio(model, noise), model)


def load_app(name: str | None) -> tuple[gr.Blocks, SERModel]:
    """Load the model once and build the app around it. `name`: checkpoint folder, Hub id, or None for the
    shipped one; a Hub model that cannot be fetched falls back to the shipped one with a notice on the page."""
    model, notice = load_model(name)
    if notice:
        log.warning(notice)
    return build_demo(model, notice, source=None if notice else name), model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("SER_MODEL") or None,
        help="checkpoint folder or Hub id (default: $SER_MODEL, else checkpoints/default)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        demo, model = load_app(args.model)
    except ModelError as e:
        sys.exit(f"error: {e}")
    threading.Thread(target=warm_up, args=(model,), daemon=True).start()
    launch(demo)


if __name__ == "__main__":
    main()
