"""The analyse room, at the top of the page: the input (microphone or upload, the Analyse button, the example clips)
and the answer beside it (the verdict in words, notes on the input, the probabilities as bars and the picture the
model reads), and `/predict`, the same answer for API clients.

Its views are in the registry like every tab's; `build` returns the events that analyse the input, which
`views.wire` connects to every view once the tabs are built.
"""

import functools
import json
from typing import Any

import gradio as gr
import matplotlib.pyplot as plt

from ser import card, classroom, plots, words
from ser.audio import AUDIO_EXTENSIONS
from ser.inference import Analysis

from . import serving
from .serving import Result
from .views import RIGHT, VIEWS, WRONG, Page, View, figure_view, icon, place, probability_values, render

# The confidence words, decided in one place (`confidence`) with the thresholds of ser.card (the offline page reads
# the same ones from the exported graph's metadata).
UNSURE_TOP, UNSURE_MARGIN, CONFIDENT_TOP = card.UNSURE_TOP, card.UNSURE_MARGIN, card.CONFIDENT_TOP
START = "Record a short sentence (2 to 10 seconds) or upload a clip, then press **Analyse**."
# The offline page (ser/app/offline_page.py serves it at /offline; relative, so it follows the app's root path).
OFFLINE = "Rather nothing left your device? Open the [offline page](offline/), where the model runs in your browser."
API = ("verdict", "scores", "notes")  # what /predict returns, in this order: (Markdown, Label value, Markdown)


def confidence(p1: float, p2: float, may_say_confident: bool = True) -> str:
    """ "unsure", "fairly sure", "confident" or "leaning" (as sure as "confident", from a model whose answers that
    sure were not right 7 times in 10 on voices it never heard), from the top probability `p1` and the
    runner-up's `p2`."""
    if p1 < UNSURE_TOP or p1 - p2 < UNSURE_MARGIN:
        return "unsure"
    if p1 >= CONFIDENT_TOP:
        return "confident" if may_say_confident else "leaning"
    return "fairly sure"


def verdict(result: Result) -> str:
    """The top emotion and the model's confidence in words (Markdown)."""
    if result.error:
        return f"### ⚠️ {words.CANNOT}\n{result.error}"
    if result.analysis is None:
        return START
    probs = sorted(result.analysis.probs.items(), key=lambda kv: kv[1], reverse=True)
    (top, p1), (second, p2) = probs[0], probs[1] if len(probs) > 1 else ("", 0.0)
    head = "## " + icon(top) + words.HEADING.format(top=top.capitalize(), p1=f"{p1:.0%}")
    metrics = model_metrics(result.model)
    if (sure := confidence(p1, p2, card.may_say_confident(metrics))) == "unsure":
        template = words.UNSURE_CLOSE if p1 - p2 < UNSURE_MARGIN else words.UNSURE_FLAT
        why = template.format(top=top, p1=f"{p1:.0%}", second=second, p2=f"{p2:.0%}")
        said = words.UNSURE.format(why=why)
    elif sure == "leaning":
        share, _ = card.confident_share(metrics)
        said = words.LEANING.format(top=top, p1=f"{p1:.0%}", second=second, p2=f"{p2:.0%}", tenths=round(10 * share))
    else:
        said = words.SURE.format(sure=sure, top=top, p1=f"{p1:.0%}", second=second, p2=f"{p2:.0%}")
    if result.intended:
        right = (
            f"{RIGHT} the model got it right."
            if result.intended == top
            else f"{WRONG} the model heard **{top}** instead."
        )
        said += f"\n\nThe actor was asked to sound **{result.intended}**: {right}"
    return f"{head}\n{said}"


LISTENER_NAMES = words.LISTENER_NAMES


def listeners(result: Result) -> str:
    """What each listener heard, in plain words, and whether they agree (Markdown; '' for a one-listener answer)."""
    a = result.analysis
    if a is None or len(a.listeners) < 2:
        return ""
    tops = {k: max(p, key=p.get) for k, p in a.listeners.items()}
    heard = [
        words.HEARD.format(listener=LISTENER_NAMES.get(k, k), label=tops[k], p=f"{a.listeners[k][tops[k]]:.0%}")
        for k in a.listeners
    ]
    if len(set(tops.values())) == 1:
        return words.AGREE.format(heard=" and ".join(heard))
    return words.DISAGREE.format(heard="; ".join(heard))


@functools.lru_cache(maxsize=8)
def metrics_at(folder) -> dict:
    path = folder / "metrics.json" if folder is not None else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else {}


def model_metrics(model) -> dict:
    """The metrics.json of the model that made an analysis ({} if none)."""
    return metrics_at(getattr(model, "source_dir", None))


def notes(result: Result) -> str:
    """The analysis' caveats about the input as a Markdown list ('' when there are none)."""
    return "\n".join(f"- ⚠️ {n}" for n in result.analysis.notes) if result.analysis else ""


@figure_view
def log_mel_chart(a: Analysis) -> plt.Figure:
    return plots.log_mel(a.mel, a.features)


def scores_component() -> gr.Label:
    """Every emotion's probability as bars: Gradio's own, drawn by the browser at the size of the page's text."""
    with gr.Column(elem_id="probabilities"):  # where the probabilities are shown, whatever draws them
        return gr.Label(label=words.BARS_TITLE, show_heading=False, elem_id="scores")


def log_mel_component() -> gr.Plot:
    plot = gr.Plot(label=words.PICTURE_TITLE, elem_id="log-mel", show_label=False)
    gr.Markdown(f"{words.PICTURE_CAPTION} **How it works** shows how it is made, step by step.", elem_classes="caption")
    return plot


VIEWS["verdict"] = View(verdict, lambda: gr.Markdown(START, label="Verdict", elem_id="verdict"))
VIEWS["listeners"] = View(listeners, lambda: gr.Markdown("", label="What each listener heard", elem_id="listeners"))
VIEWS["notes"] = View(notes, lambda: gr.Markdown("", label="Input quality notes", elem_id="notes"))
VIEWS["scores"] = View(probability_values, scores_component)
VIEWS["log_mel"] = View(log_mel_chart, log_mel_component, picture=True)


def example_clips(page: Page) -> gr.helpers.Examples | None:
    """Clickable examples from the audio files in `page.examples`, each labelled with the emotion its speaker
    intended and the voice, in the model's label order; their files go to `page.clips`. A speaker the model was
    trained on is never offered."""
    folder, model = page.examples, page.model
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in AUDIO_EXTENSIONS) if folder else []
    config = page.files.get("train_config.json")
    data = json.loads(config.read_text()).get("data") if config else None
    trained_on = classroom.train_speakers(page.metrics, data, model.voice.info if model.voice is not None else None)
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
    with gr.Accordion(f"Example clips ({len(offered)})", open=True, elem_id="examples-fold"):
        examples = gr.Examples(
            [[str(e.path)] for e in offered],
            inputs=[page.audio],
            cache_examples=False,  # Spaces would cache them; the views need a fresh run
            label="Click one. Each says the emotion the actor was asked to show: does the model hear it?",
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
    """The input and the answer beside it, as two columns of the row the page puts them in, and `/predict`; returns
    the events that analyse the input."""
    with gr.Column(scale=2, min_width=320, elem_id="input-column"):
        page.audio = gr.Audio(
            sources=["microphone", "upload"], type="filepath", label="Your voice", elem_id="audio-input"
        )
        button = gr.Button("Analyse", variant="primary", size="lg", elem_id="analyse")
        examples = example_clips(page)
        gr.Markdown(OFFLINE, elem_id="offline-link", elem_classes="caption")
    with gr.Column(scale=2, min_width=320, elem_id="answer-column"):
        place(page, None)

    def on_predict(path):
        answer_by = serving.request_arrival() + serving.ANSWER_SECONDS
        return render(serving.analyse_upload(page.model, path, keep=page.clips, answer_by=answer_by), API)

    serving.api_endpoint(on_predict, [page.audio], [page.placed[n] for n in API], "predict",
                         "Emotion of one audio file: verdict, all class probabilities, input-quality notes.")  # fmt: skip
    triggers = [button.click, page.audio.stop_recording, page.audio.upload]
    return triggers + ([examples.load_input_event.then] if examples is not None else [])
