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
    """(title, analysis) of the visitor's analysis before this one, if any, and of this one. A title says which
    recording it was and how long before the other, so "before" is never a riddle:
    "before: your recording, 1 min earlier · sad 52%"."""
    earlier = ""
    if result.previous_at is not None and result.at is not None:
        earlier = f", {ago(result.at - result.previous_at)} earlier"
    pairs = [
        ("before", result.previous, f"{result.previous_name or 'the recording before'}{earlier}"),
        ("now", result.analysis, result.name or "this recording"),
    ]
    return [(f"{when}: {name} · {a.label} {a.probs[a.label]:.0%}", a) for when, a, name in pairs if a is not None]


def ago(seconds: float) -> str:
    """12 -> "12 s", 95 -> "2 min": how long before, in words a class reads at a glance."""
    return f"{max(0, round(seconds))} s" if seconds < 60 else f"{round(seconds / 60)} min"


def compare_log_mel_chart(result: Result) -> plt.Figure | None:
    shown = compared(result)
    draw = lambda a: plots.compare_log_mels([(t, b.mel) for t, b in shown], a.features)
    return figure_view(draw)(result)


def compare_probability_chart(result: Result) -> plt.Figure | None:
    shown = [(t.split(":")[0], b.probs) for t, b in compared(result)]  # "before", "now": the titles above say more
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
