"""The page: a title, the analyse room (the input and the answer beside it), then one tab per room in TABS, and how
it is served.

A tab is a module with a `TITLE` and a `build(page)` that makes its components and wires its events inside its
tab; it may add views to the registry (`views.VIEWS`) and place them with `views.place`. Tabs depend on the registry,
on `serving` and on `ser`, never on each other. A new tab is one new module and one line in TAB_MODULES.
"""

import importlib
from pathlib import Path

import gradio as gr

from ser import words
from ser.model import SERModel

from . import analyse, mcp_tools, serving, views
from .browser import CSS, FOLD_EXAMPLES, MIC_HELP, RAW_MIC, THEME
from .offline_page import OfflinePage

# The tabs in the page's order, each a module of ser/app/; their pictures are drawn in this order too.
TAB_MODULES = [
    "how_it_works",
    "compare",
    "over_time",
    "why",
    "live",
    "act_it_out",
    "my_voice",
    "about",
]
TABS = [importlib.import_module(f"{__package__}.{name}") for name in TAB_MODULES]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The tabs' least width: beside the input and the answer (320 px each) from about 1,400 px of screen, below them on a
# 1280 px laptop, where the tabs' pictures get the whole width.
TABS_WIDTH = 680


def build_demo(
    model: SERModel, notice: str | None = None, source: str | None = None, examples: Path | None = EXAMPLES
) -> gr.Blocks:
    """The Blocks app for a loaded model; `notice` (e.g. that another model was asked for) is shown at the top."""
    # Uploads are deleted once analysed, and what no request reads is swept (ser/app/uploads.py, started by `launch`).
    with gr.Blocks(title="Speech emotion recognition", analytics_enabled=False) as demo:
        gr.Markdown(f"# Speech emotion recognition\n{words.INTRO}")
        if notice:
            gr.Markdown(f"⚠️ **Model notice:** {notice}", elem_classes="notice", elem_id="notice")
        recent = gr.State(None, time_to_live=serving.SESSION_SECONDS)  # this visitor's serving.RecentResults
        page = views.Page(model, demo, source=source, examples=examples, recent=recent)
        # One row: the input, the answer, the tabs. Each column keeps its least width, so a projector shows all three
        # side by side (the active tab's result on the first screen), a laptop puts the tabs below the answer, and a
        # phone stacks them.
        with gr.Row(equal_height=False, elem_id="lesson"):
            triggers = analyse.build(page)
            with gr.Column(scale=4, min_width=TABS_WIDTH, elem_id="tabs-column"):
                with gr.Tabs(overflow_behavior="wrap"):  # on a phone, every tab stays in sight (no "..." menu)
                    for tab in TABS:
                        with gr.Tab(tab.TITLE, id=tab.__name__.rsplit(".", 1)[-1]):  # its module's name
                            tab.build(page)
        views.wire(page, triggers)
        mcp_tools.build(page)  # the analyses as MCP tools, for assistants
        demo.load(None, js=FOLD_EXAMPLES)
    demo.offline_page = OfflinePage(model.source_dir)  # made and served by `launch`
    return demo


def launch(demo: gr.Blocks, raw_mic: bool = True, offline: bool = True, **kwargs):
    """Queue and serve with the app's limits and look; kwargs go to `Blocks.launch` (server_port, quiet...).

    `raw_mic=False` leaves the browser's microphone processing on (see `browser.RAW_MIC`); `offline=False` serves no
    offline page at /offline (`offline_page`), which is otherwise made in the background once per model.
    """
    head = (RAW_MIC if raw_mic else "") + MIC_HELP
    site = getattr(demo, "offline_page", None)
    if offline and site is not None:
        site.start()
        app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
        app_kwargs["routes"] = [*app_kwargs.get("routes", []), site.route()]  # FastAPI(routes=...): Gradio's app
        kwargs["app_kwargs"] = app_kwargs
    return serving.serve(demo, theme=THEME, css=CSS, head=head, **kwargs)
