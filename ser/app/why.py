"""The "Why this emotion?" tab: the log-mel the model read, with the parts that pushed it towards an emotion
(`ser.explain`); the most probable one after each analysis, or the one the visitor chooses. And `/explain`, the same
for API clients."""

from dataclasses import replace

import gradio as gr
import matplotlib.pyplot as plt

from ser import plots
from ser.explain import explain

from . import serving
from .serving import Result
from .views import FIGURES, VIEWS, Page, View, captioned, figure_view, place, render

TITLE = "Why?"
API = ("why_class", "why")  # what /explain returns, in this order: (the emotion explained, Plot)


def why_choice(result: Result) -> gr.Dropdown | None:
    """The emotion explained: the most probable one after each analysis; the visitor may choose another."""
    if result.analysis is None:
        return None
    return gr.Dropdown(choices=list(result.analysis.probs), value=result.why or result.analysis.label)


def why_chart(result: Result) -> plt.Figure | None:
    """The log-mel with the parts that pushed the model towards the emotion explained (`ser.explain`)."""
    if result.analysis is None or result.model is None:
        return None
    explained = explain(result.model, result.analysis.mel, result.why)
    return figure_view(lambda a: plots.saliency(explained, a.features))(result)


VIEWS["why_class"] = View(
    why_choice,
    lambda: gr.Dropdown(choices=[], label="Explain the emotion", allow_custom_value=True, elem_id="why-class"),
    tab=TITLE,
)
VIEWS["why"] = View(
    why_chart,
    captioned(
        "Why this emotion?",
        "The picture of the sound that the model read, in grey, with the parts that pushed it towards the emotion "
        "above in colour. Choose another emotion to see what spoke for it.",
        "why",
    ),
    tab=TITLE,
    picture=True,
)


def build(page: Page) -> None:
    """The tab's views; choosing an emotion redraws only the picture, from the visitor's analysis on screen. And
    `/explain`."""
    place(page, TITLE)
    model, choice = page.model, page.placed["why_class"]

    def on_why(label, recent):
        return VIEWS["why"].render(replace(recent.shown if recent else Result(), why=label or None))

    picture = page.placed["why"]

    def drawn_explanation(result: Result) -> tuple:
        # the explanation and its picture, made and encoded beside the analyses (same threads, same memory)
        return result.why, picture.postprocess(VIEWS["why"].render(result)), render(result, ["notes"])[0]

    def on_explain(path, label=None):
        if label and label not in model.labels:
            if path:
                serving.discard_upload(path, page.clips)  # its request is over: the upload goes as if analysed
            raise gr.Error(f"No emotion '{label}': this model knows {', '.join(model.labels)}.", print_exception=False)
        answer_by = serving.request_arrival() + serving.ANSWER_SECONDS
        result = serving.analyse_upload(model, path, keep=page.clips, answer_by=answer_by)  # upload deleted
        if result.error:
            raise gr.Error(result.error, print_exception=False)
        return serving.in_turn(drawn_explanation, replace(result, why=label or result.analysis.label))

    choice.input(on_why, inputs=[choice, page.recent], outputs=[picture], api_visibility="private",
                 **FIGURES)  # fmt: skip
    choice.choices = [(label, label) for label in model.labels]  # what /explain takes, listed on the API page
    serving.api_endpoint(on_explain, [page.audio, choice], [*(page.placed[n] for n in API), page.placed["notes"]],
                         "explain", "Why this emotion: the emotion explained (the most probable one unless one is "
                         "given), the log-mel picture with the parts that pushed the model towards it, and notes on "
                         "the input (e.g. that it does not sound like speech).")  # fmt: skip
