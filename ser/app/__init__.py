"""The app's page, built from small rooms; `app.py` loads the model, builds the page and serves it.

    serving.py       the one analysis path (`analyse_upload` -> `Result`), the quick and long lanes, BUSY, the
                     queue's limits, the memory trim, each visitor's recent results, live slots, API-only endpoints
    uploads.py       how long an uploaded file lives: counted per path, deleted once read, orphans swept under a cap
    views.py         the registry of views (`VIEWS`: a Result -> a component's value), `Page`, and the wiring that
                     shows every analysis in every view
    page.py          the page: the analyse room, then one tab per module named in TAB_MODULES; `launch`
    browser.py       theme, style sheet and the page's scripts (raw microphone, microphone help)
    offline_page.py  /offline: the offline page (`ser.offline`) for the app's model, made in the background, cached
    offline/         that page's files: index.html, offline.js, onnxruntime-web (vendor/, from npm)
    analyse.py       the input, the answer beside it, the example clips, /predict
    how_it_works.py, compare.py, over_time.py (/timeline), why.py (/explain), live.py, act_it_out.py, about.py:
                     one tab each
    mcp_tools.py     the analyses as MCP tools for assistants (emotion_of_recording, emotion_over_time), JSON

Importing `ser` never imports Gradio; importing `ser.app` does. docs/architecture.md has the whole house.
"""

from .page import TABS, build_demo, launch
from .serving import TRIM
from .views import VIEWS, warm_up

__all__ = ["TABS", "TRIM", "VIEWS", "build_demo", "launch", "warm_up"]
