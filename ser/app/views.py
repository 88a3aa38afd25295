"""The registry of views, and the wiring that shows every analysis in all of them.

A view is one way of showing a `Result`: a function from the `Result` to a component's value, and the component it
fills. The rooms (analyse, how_it_works, compare, over_time, why) each add their views to `VIEWS` when they are
imported; `place` builds a room's components where the room stands, and `wire` makes every analysis of the page's
input show in every placed view: the views that are not pictures with the answer, then the pictures, one drawing
at a time (pyplot is not thread-safe), those beside the answer first. Adding a view of a new `Analysis` field is one
function and one entry:

    @figure_view                              # drawn with matplotlib from the Analysis (else: Result -> value)
    def encoder_chart(a: Analysis) -> plt.Figure:         # e.g. a second listener's probabilities
        return plots.probabilities(a.encoder_probs, title="What the voice encoder heard")

    VIEWS["encoder"] = View(encoder_chart, lambda: gr.Plot(show_label=False, elem_id="encoder"), tab=TITLE,
                            picture=True)

A view's function must also accept the empty `Result()` (nothing analysed yet, or cleared) and a `Result` with only
an `error`: it returns its component's resting value then. Also here: `Page`, what every room may use, and the
marks and figure sizes the rooms share.
"""

import functools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np

from ser import plots
from ser.inference import Analysis, analyse
from ser.model import SERModel

from . import serving
from .browser import SHOW_VERDICT
from .serving import Result

PYPLOT = threading.Lock()  # pyplot's figure registry is not thread-safe (the warm-up may overlap a first request)
# The events that draw: one at a time, as pyplot is not thread-safe and Gradio renders the figures after we return.
FIGURES = dict(concurrency_id="figures", concurrency_limit=1)
FIGURE_WIDTH = plots.WIDTH  # inches: every picture is drawn for a phone's width (see ser.plots)
# Pictures are saved at this resolution: a projector shows them up to 1.7 times larger than a phone, still sharp.
DPI = 150
# Right and wrong marks from the fonts every system has (DejaVu, Liberation, Segoe, San Francisco): the emoji
# ✅ and ❌ need a colour-emoji font, which a classroom's Linux machine may lack (they show as empty boxes).
RIGHT, WRONG = "✓", "✗"


def icon(emotion: str) -> str:
    """A face for `emotion`, drawn by the page's style sheet (`browser.FACES`): emoji such as 🤢 need a colour-emoji
    font, which a classroom's Linux machine may lack. '' for an emotion without a face."""
    return (
        f'<span class="face face-{emotion}" role="img" title="{emotion}"></span>'
        if emotion in plots.EMOTION_COLORS
        else ""
    )


@dataclass(frozen=True)
class View:
    """One way of showing a Result: `render` gives the value of the component that `component` builds."""

    render: Callable[[Result], Any]
    component: Callable[[], gr.components.Component]  # called where the view sits; may add a caption around it
    tab: str | None = None  # None: in the answer column beside the input; else the title of its tab
    picture: bool = False  # drawn after the answer is shown, one at a time (matplotlib), rather than with it


VIEWS: dict[str, View] = {}  # filled by the rooms as they are imported, in the page's order (ser/app/page.py)


def render(result: Result, names: Iterable[str]) -> list:
    """The values of the named views for one Result, in the order of `names`."""
    return [VIEWS[n].render(result) for n in names]


def checkpoint_files(model: SERModel) -> dict[str, Path]:
    """The model card (README.md), metrics.json and train_config.json in the model's folder, those that exist.

    A Hub model's folder is its download in the Hugging Face cache (see `ser.hub.fetch`).
    """
    folder = model.source_dir
    names = ("metrics.json", "README.md", "train_config.json")
    return {n: folder / n for n in names if folder is not None and (folder / n).is_file()}


@dataclass
class Page:
    """What every room may use while the page is built: the model and what its folder says, the input that every
    view shows the analysis of, this visitor's state, and each placed view's component (in the page's order)."""

    model: SERModel
    demo: gr.Blocks
    source: str | None = None  # the name the model was loaded by; None: the shipped one
    examples: Path | None = None  # the folder of example clips to offer
    recent: gr.State | None = None  # this visitor's serving.RecentResults
    audio: gr.Audio | None = None  # the analysed input (the analyse room's)
    clips: list[Path] = field(default_factory=list)  # the example clips offered: analysed, never deleted
    placed: dict[str, gr.components.Component] = field(default_factory=dict)  # view name -> its component

    @functools.cached_property
    def files(self) -> dict[str, Path]:
        return checkpoint_files(self.model)

    @functools.cached_property
    def metrics(self) -> dict:
        """The model's metrics.json ({} when its folder has none)."""
        return json.loads(self.files["metrics.json"].read_text()) if "metrics.json" in self.files else {}


def place(page: Page, tab: str | None) -> None:
    """Build the components of the views that sit in `tab` (None: beside the input) here, in registry order."""
    page.placed.update({n: v.component() for n, v in VIEWS.items() if v.tab == tab})


# ----------------------------------------------------------------------------- pictures


def drawn(draw: Callable[..., plt.Figure], *args, **kwargs) -> plt.Figure:
    """`draw(*args, **kwargs)`'s figure at DPI, taken out of pyplot (Gradio still renders it, then it is
    garbage-collected)."""
    with PYPLOT, plt.rc_context({"figure.dpi": DPI}):  # a figure is saved at the dpi it was made with
        fig = draw(*args, **kwargs)
        plt.close(fig)
    return fig


def figure_view(draw: Callable[[Analysis], plt.Figure]) -> Callable[[Result], plt.Figure | None]:
    """A view drawn with matplotlib from the analysis (None without one), at DPI and out of pyplot."""

    @functools.wraps(draw)
    def view(result: Result) -> plt.Figure | None:
        return None if result.analysis is None else drawn(draw, result.analysis)

    return view


def probability_values(result: Result) -> dict[str, float] | None:
    """Every emotion's probability, the value of a `gr.Label` (beside the answer, and as How it works' last step)."""
    return dict(result.analysis.probs) if result.analysis else None


def captioned(title: str, text: str, elem_id: str, make: Callable[..., gr.components.Component] = gr.Plot):
    """A picture (or another component that `make` builds) with a heading and two or three plain sentences above it."""

    def component() -> gr.components.Component:
        gr.Markdown(f"### {title}\n{text}", elem_classes="step")
        return make(label=title, elem_id=elem_id, show_label=False)

    return component


# ----------------------------------------------------------------------------- every analysis in every view


def wire(page: Page, triggers: Iterable) -> None:
    """Each trigger (Analyse, end of a recording, an upload, an example) analyses `page.audio` once, with its
    timeline, keeps the result in this visitor's session and shows it in every placed view: those that are not
    pictures at once, then the pictures beside the answer, then those in the tabs (the first screen does not wait for
    the walk-through). Clearing the input puts every view at rest; the visitor's last two analyses stay for Compare.
    """
    model, ui = page.model, page.placed
    answer = [n for n in ui if not VIEWS[n].picture]
    pictures = [[n for n in ui if VIEWS[n].picture and (VIEWS[n].tab is None) == first] for first in (True, False)]

    def on_analyse(path, recent, progress=gr.Progress()):  # noqa: B008 (Gradio's way to ask for a progress bar)
        recent = recent or serving.RecentResults()
        report = serving.progress_reporter(progress, "Following the whole recording")
        # examples are analysed, never deleted
        recent.show(serving.analyse_upload(model, path, recent, keep=page.clips, over_time=True, progress=report))
        return *render(recent.shown, answer), recent

    def on_pictures(recent, names):
        values = render(recent.shown if recent else Result(), names)
        return values[0] if len(values) == 1 else values  # Gradio takes one output's value as is, not in a list

    def on_clear(recent):
        if recent:
            recent.shown = Result()
        return render(Result(), ui)

    analysis = dict(fn=on_analyse, inputs=[page.audio, page.recent], outputs=[*(ui[n] for n in answer), page.recent],
                    concurrency_id="analysis", api_visibility="private")  # fmt: skip
    drawing = [
        dict(
            fn=functools.partial(on_pictures, names=names),
            inputs=[page.recent],
            outputs=[ui[n] for n in names],
            api_visibility="private",
            show_progress="hidden",
            **FIGURES,
        )  # fmt: skip
        for names in pictures
        if names
    ]
    show = dict(fn=None, js=SHOW_VERDICT, queue=False)  # the verdict into sight, then the pictures
    for trigger in triggers:
        functools.reduce(lambda e, step: e.then(**step), [show, *drawing], trigger(**analysis))
    page.audio.clear(on_clear, inputs=[page.recent], outputs=list(ui.values()), api_visibility="private", queue=False)


def warm_up(model: SERModel) -> None:
    """Run one analysis and draw every view, so the first visitor does not wait for JIT compiling and font loading."""
    cfg = model.feature_config
    noise = 0.1 * np.random.default_rng(0).standard_normal(cfg.sample_rate).astype(np.float32)
    render(Result(analyse(model, noise, cfg.sample_rate)), VIEWS)
