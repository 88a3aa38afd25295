"""The analyse room, at the top of the page: the input (microphone or upload, the Analyse button, the example clips)
and the answer beside it (the verdict in words, notes on the input, the probabilities and the log-mel spectrogram),
and `/predict`, the same answer for API clients.

Its views are in the registry like every tab's; `build` returns the events that analyse the input, which
`views.wire` connects to every view once the tabs are built.
"""

import functools
import json
from typing import Any

import gradio as gr
import matplotlib.pyplot as plt

from ser import classroom, plots
from ser.audio import AUDIO_EXTENSIONS
from ser.inference import Analysis

from . import serving
from .serving import Result
from .views import EMOJI, RIGHT, VIEWS, WRONG, Page, View, figure_view, place, probability_chart, render

UNSURE_TOP, UNSURE_MARGIN = 0.40, 0.15  # below this top probability, or margin to the runner-up, we say "unsure"
CONFIDENT_TOP = 0.70
START = "Record a short sentence (2 to 10 seconds) or upload a clip, then press **Analyse**."
API = ("verdict", "scores", "notes")  # what /predict returns, in this order: (Markdown, Label value, Markdown)


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
    if result.intended:
        right = (
            f"{RIGHT} the model got it right."
            if result.intended == top
            else f"{WRONG} the model heard **{top}** instead."
        )
        words += f"\n\nThe actor was asked to sound **{result.intended}**: {right}"
    return f"{head}\n{words}"


def notes(result: Result) -> str:
    """The analysis' caveats about the input as a Markdown list ('' when there are none)."""
    return "\n".join(f"- ⚠️ {n}" for n in result.analysis.notes) if result.analysis else ""


def scores(result: Result) -> dict[str, float] | None:
    """All class probabilities, the value of the `gr.Label` output."""
    return dict(result.analysis.probs) if result.analysis else None


@figure_view
def log_mel_chart(a: Analysis) -> plt.Figure:
    return plots.log_mel(a.mel, a.features)


def scores_component() -> gr.Label:
    with gr.Accordion("Scores as text", open=False):
        return gr.Label(label="Emotion scores", show_heading=False, elem_id="scores")


def log_mel_component() -> gr.Plot:
    plot = gr.Plot(label="Log-mel spectrogram", elem_id="log-mel", show_label=False)
    gr.Markdown(
        "What the model reads: time runs left to right, low to high pitch goes bottom to top, and brighter means "
        "louder. **How it works** (below) shows how it is made, step by step.",
        elem_classes="caption",
    )
    return plot


VIEWS["verdict"] = View(verdict, lambda: gr.Markdown(START, label="Verdict", elem_id="verdict"))
VIEWS["notes"] = View(notes, lambda: gr.Markdown("", label="Input quality notes", elem_id="notes"))
VIEWS["probabilities"] = View(
    probability_chart,
    lambda: gr.Plot(label="Emotion probabilities", elem_id="probabilities", show_label=False),
    picture=True,
)
VIEWS["log_mel"] = View(log_mel_chart, log_mel_component, picture=True)
VIEWS["scores"] = View(scores, scores_component)


def example_clips(page: Page) -> gr.helpers.Examples | None:
    """Clickable examples from the audio files in `page.examples`, each labelled with the emotion its speaker
    intended and the voice, in the model's label order; their files go to `page.clips`. A speaker the model was
    trained on is never offered."""
    folder, model = page.examples, page.model
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in AUDIO_EXTENSIONS) if folder else []
    config = page.files.get("train_config.json")
    trained_on = classroom.train_speakers(page.metrics, json.loads(config.read_text()).get("data") if config else None)
    offered, withheld = classroom.split_examples([classroom.parse_example(p) for p in files], trained_on)
    if withheld:
        serving.log.warning(
            "examples of speakers the model was trained on are not offered: %s", [e.path.name for e in withheld]
        )
    if not offered:
        return None
    order = {e: i for i, e in enumerate(model.labels)}
    offered.sort(key=lambda e: (order.get(e.emotion, len(order)), e.path.name))
    # Served from their own folder for the server's whole life: a copy in Gradio's upload folder would be swept
    # with the uploads (it was, 5 minutes after start-up, when Gradio's sweep deleted it).
    gr.set_static_paths([e.path for e in offered])
    examples = gr.Examples(
        [[str(e.path)] for e in offered],
        inputs=[page.audio],
        cache_examples=False,  # Spaces would cache them; the views need a fresh run
        label="Examples: click one. Each says the emotion the actor was asked to show: does the model hear it?",
        example_labels=[e.label for e in offered],
        examples_per_page=len(offered),
        elem_id="examples",
        api_visibility="private",  # the page's, not an API client's
    )
    examples.dataset.preprocess = functools.partial(chosen_example, examples.dataset.preprocess, len(offered))
    if trained_on is None:
        gr.Markdown(
            "⚠️ This model does not say which voices it learned from, so it may have heard these actors before. "
            "If so, it does better on them than it would on a new voice.",
            elem_classes="notice",
        )
    page.clips[:] = [e.path for e in offered]
    return examples


def chosen_example(preprocess, count: int, index: Any) -> Any:
    """The clicked example's index, checked before Gradio looks it up (an index from a script could be anything)."""
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        raise gr.Error(f"There is no example {index!r}: click one of the {count} examples.", print_exception=False)
    return preprocess(index)


def build(page: Page) -> list:
    """The input and the answer beside it, and `/predict`; returns the events that analyse the input."""
    with gr.Row(equal_height=False):
        with gr.Column(min_width=320):
            page.audio = gr.Audio(
                sources=["microphone", "upload"], type="filepath", label="Your voice", elem_id="audio-input"
            )
            button = gr.Button("Analyse", variant="primary", size="lg", elem_id="analyse")
            examples = example_clips(page)
        with gr.Column(min_width=320):
            place(page, None)

    def on_predict(path):
        answer_by = serving.request_arrival() + serving.ANSWER_SECONDS
        return render(serving.analyse_upload(page.model, path, keep=page.clips, answer_by=answer_by), API)

    serving.api_endpoint(on_predict, [page.audio], [page.placed[n] for n in API], "predict",
                         "Emotion of one audio file: verdict, all class probabilities, input-quality notes.")  # fmt: skip
    triggers = [button.click, page.audio.stop_recording, page.audio.upload]
    return triggers + ([examples.load_input_event.then] if examples is not None else [])
