"""The app as a whole: the page built from its rooms and the registry of views, the rooms' independence, `app.py`'s
model loading, and `python app.py` serving `/predict`, `/timeline` and `/explain` to gradio_client."""

import ast
import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import LABELS, MIN_FONT_PT, PAGE_JARGON, PAGE_JARGON_WORDS, speech_like, talk_pause_talk, write
from PIL import Image

import app
import ser.hub
from ser import plots
from ser.app import TABS, mcp_tools, page, serving
from ser.app.about import confusion_figures, how_good_figure
from ser.app.analyse import START
from ser.app.how_it_works import STEP_TEXT, STEP_VIEWS
from ser.app.serving import RecentResults, Result, analyse_upload
from ser.app.streams import Stream, StreamSlots
from ser.app.views import DPI, FIGURE_WIDTH, VIEWS, render
from ser.audio import too_long_error
from ser.hub import ModelError, load_model
from ser.timeline import SILENCE

ROOT = Path(app.__file__).resolve().parent
PICTURES = [n for n, v in VIEWS.items() if v.picture]


# ----------------------------------------------------------------------------- the registry of views


def test_every_view_renders_nothing_yet_an_error_and_an_analysis(two_listener_dir, tmp_path):
    """The contract a new view signs: a value for the empty Result, an error, and an analysis (by a model with both
    listeners, so that their views have something to show); no figure left open."""
    loud = write(tmp_path / "loud.wav", np.clip(speech_like() * 8, -1, 1))
    model = load_model(two_listener_dir)
    analysed = analyse_upload(model, str(loud), over_time=True)  # as the page analyses: with the timeline
    before = set(plt.get_fignums())
    for name, view in VIEWS.items():
        empty, failed, shown = (view.render(r) for r in (Result(), Result(error="x"), analysed))
        assert shown not in (None, ""), name
        if name != "verdict":
            assert empty in (None, "") and failed in (None, ""), name
    assert VIEWS["verdict"].render(Result()) == START and "Cannot analyse" in VIEWS["verdict"].render(Result(error="x"))
    assert set(plt.get_fignums()) == before


def test_pictures_are_phone_width_figures_that_do_not_stay_open(two_listener_dir, wav):
    model = load_model(two_listener_dir)  # both listeners: every picture has something to draw
    result = analyse_upload(model, str(wav), over_time=True)  # as the page analyses: with the timeline
    before = set(plt.get_fignums())
    figs = render(result, PICTURES)
    assert len(figs) == len(PICTURES) and all(isinstance(f, plt.Figure) for f in figs)
    assert all(f.get_figwidth() <= FIGURE_WIDTH for f in figs)
    assert set(plt.get_fignums()) == before


def test_every_picture_has_readable_text(two_listener_dir, tmp_path):
    """The smallest text of every picture, so that the browser test can tell its size on screen."""
    model, recent = load_model(two_listener_dir), RecentResults()
    recent.show(analyse_upload(model, str(write(tmp_path / "x.wav", speech_like(1.5)))))
    shown = recent.show(analyse_upload(model, str(write(tmp_path / "voice.wav", speech_like(2.0, f0=160)))))
    figures = {n: v.render(shown) for n, v in VIEWS.items() if v.picture}
    figures = {n: f for n, f in figures.items() if f is not None}  # some views need more than one analysis
    assert {"log_mel", *(set(STEP_VIEWS) - {"answer"}), "compare_log_mel", "compare_probabilities"} <= set(figures)
    metrics = json.loads((ROOT / "checkpoints" / "default" / "metrics.json").read_text())
    figures["how good"] = how_good_figure(metrics)
    figures.update({f"confusion {i}": f for i, f in enumerate(confusion_figures(metrics))})
    for name, fig in figures.items():
        assert plots.smallest_text(fig) >= MIN_FONT_PT, name
        assert fig.dpi == DPI, name  # what Gradio saves at, and what the browser test assumes


def test_messages_the_app_writes_are_plain():
    live = StreamSlots(8, 5, 300)
    live.streams = {"a": Stream(None, 0.0, 0.0)}
    said = (START, serving.GONE, serving.NO_AUDIO, serving.BUSY, serving.NOT_UPLOADED, live.full(10.0),
            too_long_error("x", 3600, 5).plain)  # fmt: skip
    for message in (*said, *[t for pair in STEP_TEXT.values() for t in pair]):
        assert not any(w in message for w in ("UAR", "F1", "dBFS", "upload folder", "server")), message


DEJAVU = (
    Path(plots.matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
)  # what Debian's Chromium falls back to


def texts_of(value) -> list[str]:
    """The words a view's value shows: Markdown, a Label's emotions, a picture's every text, a table's cells."""
    if isinstance(value, plt.Figure):
        value.canvas.draw()
        return [t.get_text() for t in value.findobj(plots.matplotlib.text.Text)]
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list):
        return [str(cell) for row in value for cell in row]
    return [str(getattr(value, "value", value) or "")]


def page_texts(demo, shown: Result) -> list[str]:
    """Every text the page holds outside the folded technical details, and every view's text for `shown`."""
    config = demo.get_config_file()
    curious = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "curious")

    def inside(node, within=False):
        within = within or node["id"] == curious
        yield node["id"], within
        for child in node.get("children", []):
            yield from inside(child, within)

    hidden = {i for i, within in inside(config["layout"]) if within}
    texts = []
    for c in config["components"]:
        if c["id"] in hidden:
            continue
        props = c["props"]
        texts += [props.get("label") or "", *(props.get("sample_labels") or []), *(props.get("headers") or [])]
        texts += [props["value"]] if isinstance(props.get("value"), str) else []
    for view in VIEWS.values():
        texts += texts_of(view.render(shown))
    return texts


def test_the_page_speaks_plainly_and_every_mark_has_a_glyph(tmp_path):
    """What a visitor reads, from the page's words to the pictures' labels, holds no jargon (the technical tables may,
    under "For the curious"), and every character is in DejaVu Sans, so nothing shows as an empty box where no
    colour-emoji font is installed (as the emoji faces did)."""
    from fontTools.ttLib import TTFont

    from ser.app import live
    from ser.app.act_it_out import outcome_markdown, tally_markdown, task_markdown
    from ser.classroom import Game
    from ser.live import LiveFrame, RecentAverage

    model = ser.hub.load_model(None)  # the shipped model: its metrics, its examples, its eight emotions
    demo = page.build_demo(model)
    recent = RecentResults()
    examples = sorted((ROOT / "examples").glob("*.flac"))
    for clip in examples[:2]:
        shown = recent.show(analyse_upload(model, str(clip), keep=examples, over_time=True))
    assert shown.previous is not None and shown.timeline is not None and shown.intended
    texts = page_texts(demo, shown)
    texts += texts_of(how_good_figure(json.loads((ROOT / "checkpoints" / "default" / "metrics.json").read_text())))
    game = Game(list(model.labels)).next_round()
    texts += [task_markdown(game), outcome_markdown(game.play(shown.analysis.probs, hard=True)), tally_markdown(game)]
    texts += [outcome_markdown(game.reveal(), guess="sad"), tally_markdown(game)]
    frame = LiveFrame(None, np.zeros((64, 10)), 0.2, 0.0)
    texts += [live.live_delay(frame, RecentAverage(), None)]
    text = "\n".join(texts)
    assert "Right answers on voices" in text and "The whole recording" in text and "Say “" in text  # all gathered
    found = [w for w in PAGE_JARGON if w in text] + [w for w in PAGE_JARGON_WORDS if w in text.lower()]
    found += re.findall(r"filter \d+|in the last 0 s", text)
    assert not found, found
    glyphs = TTFont(DEJAVU).getBestCmap()
    assert not {ch for ch in text if ord(ch) > 127 and ord(ch) not in glyphs and ch != "\ufe0f"}


# ----------------------------------------------------------------------------- the page and its rooms


def test_the_page_is_built_from_the_rooms_and_the_registry(demo):
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {"verdict", "notes", "probabilities", "scores", "waveform", "log-mel"} <= ids
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == [t.TITLE for t in TABS] == ["How it works", "Compare two voices", "Over time", "Why?",
                                               "Live", "Act it out", "My voice", "About the model"]  # fmt: skip
    assert {v.tab for v in VIEWS.values()} - {None} <= set(tabs)  # every view has a place on the page
    (predict,) = [d for d in config["dependencies"] if d["api_name"] == "predict"]
    by_id = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    assert [by_id[i] for i in predict["outputs"]] == ["verdict", "scores", "notes"]  # gradio_client relies on it
    assert predict["targets"] == []  # API only: the page's own events keep the session's results
    assert all(by_id[i] for i in predict["inputs"] + predict["outputs"])  # no gr.State: API calls keep nothing


def imported(path: Path, package: str) -> set[str]:
    """Every module a file may import, by full name: in `package`, `from .views import X` gives `package.views` and
    `package.views.X` (X may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = ".".join(filter(None, [package if node.level else "", node.module]))
            names |= {module} | {f"{module}.{a.name}" for a in node.names}
    return names


def test_the_rooms_stand_apart_and_the_library_never_needs_gradio():
    """What docs/architecture.md promises: a tab (and the MCP tools) imports the registry, serving and `ser`, never
    another room or the page; no module of `ser` outside `ser.app` imports Gradio or the app."""
    rooms = {m.__name__ for m in TABS} | {"ser.app.analyse", "ser.app.page", "ser.app.mcp_tools"}
    for tab in [*TABS, mcp_tools]:
        names = imported(Path(tab.__file__), "ser.app")
        others = {n for n in names for r in rooms - {tab.__name__} if n == r or n.startswith(r + ".")}
        assert not others, f"{tab.__name__} imports {others}"
    for path in (ROOT / "ser").glob("*.py"):
        names = imported(path, "ser")
        assert not [n for n in names if n.split(".")[0] in ("gradio", "app") or n.startswith("ser.app")], path.name


# ----------------------------------------------------------------------------- app.py: the model, with its fallback


def test_unusable_ser_model_falls_back_with_a_visible_notice(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(ser.hub, "DEFAULT_MODEL", Path(model_dir))  # the shipped model
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    demo, model = app.load_app("runs/heldot", fallback=True)  # as SER_MODEL on a Space
    assert model.source_dir == Path(model_dir)
    config = json.dumps(demo.get_config_file(), default=str)
    assert "Model notice" in config and "runs/heldot" in config and "shipped model instead" in config
    notice = next(c["props"]["value"] for c in demo.get_config_file()["components"] if "Model notice" in str(c))
    assert notice.endswith(".") and "\n" not in notice  # whole sentences, never cut mid-word


def test_missing_model_given_on_the_command_line_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SER_MODEL", raising=False)
    with pytest.raises(SystemExit) as e:
        app.main(["--model", str(tmp_path / "nope")])
    message = str(e.value)  # ModelError's own one-line wording, not a traceback
    assert message.startswith("error: ") and str(tmp_path / "nope") in message and "\n" not in message
    with pytest.raises(ModelError):
        app.load_app(str(tmp_path / "nope"))  # no fallback unless asked for


# ----------------------------------------------------------------------------- `python app.py` + gradio_client


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def picture_width(plot: dict) -> int:
    """Width in pixels of the image in a gr.Plot's API value (a data URL)."""
    header, data = plot["plot"].split(",", 1)
    assert header.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(data))).width


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    """`python app.py` serving the test model on a free port; yields (a gradio_client Client, Gradio's upload folder)."""
    from gradio_client import Client

    port, uploads = _free_port(), tmp_path_factory.mktemp("served") / "gradio"
    env = {**os.environ, "SER_MODEL": str(model_dir), "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(uploads)}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        url, deadline, client = f"http://127.0.0.1:{port}/", time.monotonic() + 120, None
        while client is None:
            assert proc.poll() is None, f"app.py exited: {proc.stdout.read()}"
            try:
                client = Client(url, verbose=False)
            except Exception:  # not serving yet
                assert time.monotonic() < deadline, "app.py did not start"
                time.sleep(0.5)
        yield client, uploads
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def kept_uploads(uploads: Path) -> list[Path]:
    """Files left in Gradio's upload folder, but for its copies of the example clips (kept to serve them)."""
    examples = {p.name for p in page.EXAMPLES.iterdir()}
    return [p for p in uploads.rglob("*") if p.is_file() and p.name not in examples]


def test_python_app_serves_predict_to_gradio_client(served, tmp_path):
    from gradio_client import handle_file

    client, uploads = served
    verdict, label, notes = client.predict(
        handle_file(str(write(tmp_path / "a.wav", speech_like(3.0)))), api_name="/predict"
    )
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert sorted(confidences) == sorted(LABELS) and sum(confidences.values()) == pytest.approx(1, abs=1e-4)
    assert label["label"] == max(confidences, key=confidences.get)
    assert label["label"].capitalize() in verdict and notes == ""
    assert not kept_uploads(uploads), "the upload was kept after the request"

    verdict, label, _ = client.predict(
        handle_file(str(write(tmp_path / "s.wav", np.zeros(16000)))), api_name="/predict"
    )
    assert "could not hear anything" in verdict and not label.get("confidences")

    # 11 minutes of 16-bit 48 kHz stereo: 127 MB, over the 120 MiB limit that fits 10 minutes (115 MB)
    big = write(tmp_path / "big.wav", np.zeros((48000 * 660, 2), np.int16), 48000, subtype="PCM_16")
    with pytest.raises(ValueError, match="maximum file size"):
        client.predict(handle_file(str(big)), api_name="/predict")


def test_python_app_serves_timeline_and_explain_to_gradio_client(served, tmp_path):
    from gradio_client import handle_file

    client, uploads = served
    segments, picture = client.predict(handle_file(str(talk_pause_talk(tmp_path))), api_name="/timeline")
    assert segments["headers"] == ["from (s)", "to (s)", "emotion", "confidence (%)"]
    rows = segments["data"]
    assert rows[0][0] == 0 and rows[-1][1] == pytest.approx(11.0)
    assert any(r[2] == SILENCE and r[0] <= 5.5 < r[1] for r in rows)  # the pause
    assert {r[2] for r in rows} - {SILENCE} <= set(LABELS) and len({r[2] for r in rows} - {SILENCE}) >= 1
    assert picture["type"] == "matplotlib" and picture_width(picture) > 300

    voice = handle_file(str(write(tmp_path / "voice.wav", speech_like(3.0))))
    top, picture, notes = client.predict(voice, None, api_name="/explain")
    assert top in LABELS and picture_width(picture) > 300 and notes == ""
    other = next(k for k in LABELS if k != top)
    assert client.predict(voice, other, api_name="/explain")[0] == other
    with pytest.raises(Exception, match="this model knows neutral, happy, sad, angry"):
        client.predict(voice, "bored", api_name="/explain")
    with pytest.raises(Exception, match="could not hear anything"):
        client.predict(handle_file(str(write(tmp_path / "s.wav", np.zeros(16000)))), api_name="/timeline")
    assert not kept_uploads(uploads), "an upload was kept after the request"
