"""The "Over time" tab: the whole recording, emotion by emotion (`ser.timeline`), as a picture and a table of
segments; and `/timeline`, the same for API clients. The page's analysis brings the timeline along
(`serving.analyse_upload(over_time=True)`), so the tab only shows it."""

import gradio as gr
import matplotlib.pyplot as plt

from ser import plots

from . import serving
from .serving import TIMELINE_SECONDS, Result
from .views import VIEWS, Page, View, captioned, figure_view, place, render

TITLE = "Over time"
API = ("segments", "timeline")  # what /timeline returns, in this order: (Dataframe value, Plot)


def timeline_chart(result: Result) -> plt.Figure | None:
    """The whole recording: waveform above the emotion probabilities over time (`ser.timeline`)."""
    over = result.timeline
    cut = f" (first {over.duration / 60:g} min)" if over is not None and over.truncated else ""
    return figure_view(lambda a: plots.timeline(over, title=f"Emotion over time{cut}"))(result) if over else None


def segments_table(result: Result) -> list[list] | None:
    """The timeline's segments as rows: from (s), to (s), emotion or silence, confidence (%, empty for silence)."""
    if result.timeline is None:
        return None
    return [[round(s.start, 1), round(s.end, 1), s.label, None if s.confidence is None else round(100 * s.confidence)]
            for s in result.timeline.segments]  # fmt: skip


VIEWS["timeline"] = View(
    timeline_chart,
    captioned(
        "The whole recording, emotion by emotion",
        "The model hears a few seconds at a time, so it listens again every half second along the recording "
        f"(up to {TIMELINE_SECONDS // 60} minutes); the second listener, where there is one, every 3 s. Each colour "
        "is one emotion's share; grey stretches hold no speech. The answer at the top judges the whole recording at "
        "once, so it can be surer, or even different.",
        "timeline",
    ),
    tab=TITLE,
    picture=True,
)
VIEWS["segments"] = View(
    segments_table,
    lambda: gr.Dataframe(
        headers=["from (s)", "to (s)", "emotion", "confidence (%)"],
        label="Segments",
        datatype=["number", "number", "str", "number"],
        interactive=False,
        elem_id="segments",
        max_height=400,
        wrap=True,  # on a phone, a long header takes two lines rather than being cut
    ),  # fmt: skip
    tab=TITLE,
)


def build(page: Page) -> None:
    """The tab's views, and `/timeline`."""
    place(page, TITLE)

    def on_timeline(path, progress=gr.Progress()):  # noqa: B008 (Gradio's way to ask for a progress bar)
        report = serving.progress_reporter(progress, "Following the whole recording")
        result = serving.analyse_upload(page.model, path, keep=page.clips, wait=serving.BUSY_SECONDS, over_time=True,
                                        progress=report)  # fmt: skip
        if result.error:
            raise gr.Error(result.error, print_exception=False)
        return render(result, API)

    serving.api_endpoint(on_timeline, [page.audio], [page.placed[n] for n in API], "timeline",
                         f"Emotion over time of one audio file (its first {TIMELINE_SECONDS // 60} minutes): "
                         "segments [from s, to s, emotion or 'silence', confidence %] and the picture.")  # fmt: skip
