"""The "Compare two voices" tab: this visitor's analysis before this one (if any) beside this one, as log-mel
spectrograms on one time axis and as probabilities (`serving.RecentResults` keeps the pair)."""

import gradio as gr
import matplotlib.pyplot as plt

from ser import plots
from ser.inference import Analysis

from .serving import Result
from .views import VIEWS, Page, View, captioned, figure_view, place

TITLE = "Compare two voices"


def compared(result: Result) -> list[tuple[str, Analysis]]:
    pairs = [("before", result.previous), ("now", result.analysis)]
    return [(f"{name}: {a.label} {a.probs[a.label]:.0%}", a) for name, a in pairs if a is not None]


def compare_log_mel_chart(result: Result) -> plt.Figure | None:
    shown = compared(result)
    draw = lambda a: plots.compare_log_mels([(t, b.mel) for t, b in shown], a.features)
    return figure_view(draw)(result)


def compare_probability_chart(result: Result) -> plt.Figure | None:
    shown = [(t.split(":")[0], b.probs) for t, b in compared(result)]
    return figure_view(lambda a: plots.compare_probabilities(shown, title="Emotion probabilities"))(result)


VIEWS["compare_log_mel"] = View(
    compare_log_mel_chart,
    captioned(
        "Two voices side by side",
        "Your analysis before this one, above this one: say the same sentence twice with two different "
        "emotions, or let two people say it, and see what changes in the picture and in the answer.",
        "compare-log-mel",
    ),
    tab=TITLE,
    picture=True,
)
VIEWS["compare_probabilities"] = View(
    compare_probability_chart,
    lambda: gr.Plot(label="Emotion probabilities, both voices", elem_id="compare-probabilities", show_label=False),
    tab=TITLE,
    picture=True,
)


def build(page: Page) -> None:
    place(page, TITLE)
