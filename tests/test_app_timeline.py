"""The app's "Over time", "Why this emotion?" and "Live" views: as functions, in the page's layout, and through
the `/timeline` and `/explain` API endpoints with gradio_client against the running app."""

import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import speech_like, write
from PIL import Image

import app
from ser.hub import load_model
from ser.timeline import SILENCE

RATE = 16000
LABELS = ["neutral", "happy", "sad", "angry"]
# Gradio's queue statistics trip pandas 3 deprecation warnings: not ours, and noise in the report.


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


def talk_pause_talk(tmp_path, name: str = "talk.wav"):
    pause = 1e-4 * np.random.default_rng(9).standard_normal(3 * RATE).astype(np.float32)
    return write(tmp_path / name, np.concatenate([speech_like(4.0), pause, speech_like(4.0, f0=110, seed=2)]))


# ----------------------------------------------------------------------------- the views


def test_the_page_analysis_brings_the_timeline_and_its_views(model, tmp_path):
    result = app.analyse_upload(model, str(talk_pause_talk(tmp_path)), over_time=True)
    assert result.analysis is not None and result.timeline is not None
    rows = app.segments_table(result)
    assert [r[2] for r in rows] == [s.label for s in result.timeline.segments]
    assert rows[0][0] == 0 and rows[-1][1] == pytest.approx(11.0)
    assert any(r[2] == SILENCE and r[3] is None for r in rows) and all(r[3] is None or 0 < r[3] <= 100 for r in rows)
    fig = app.timeline_chart(result)
    wave, probs = fig.axes[:2]
    assert probs.get_xlim() == pytest.approx((0, 11.0)) and probs.get_ylabel() == "probability (%)"
    assert fig.get_figwidth() <= app.FIGURE_WIDTH and not plt.get_fignums()
    assert app.analyse_upload(model, str(talk_pause_talk(tmp_path, "again.wav"))).timeline is None  # only if asked


def test_why_explains_the_top_emotion_or_the_one_chosen(model, wav):
    result = app.analyse_upload(model, str(wav))
    top = result.analysis.label
    choice = app.why_choice(result)
    assert choice.value == top and [c[0] for c in choice.choices] == LABELS
    assert app.why_chart(result).axes[0].get_title().startswith(f"Brighter: this part pushed the model towards '{top}'")
    other = next(k for k in LABELS if k != top)
    chosen = app.why_chart(app.replace(result, why=other))
    assert f"towards '{other}'" in chosen.axes[0].get_title()
    for nothing in (app.Result(), app.Result(error="x")):
        assert app.why_chart(nothing) is None and app.why_choice(nothing) is None
        assert app.timeline_chart(nothing) is None and app.segments_table(nothing) is None


def test_choosing_an_emotion_redraws_only_the_why_picture(model, wav, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo = app.build_demo(model, examples=None)
    fns = {f.name: f.fn for f in demo.fns.values()}
    *_, recent = fns["on_analyse"](str(wav), None)
    other = next(k for k in LABELS if k != recent.shown.analysis.label)
    fig = fns["on_why"](other, recent)
    assert f"towards '{other}'" in fig.axes[0].get_title()


def test_the_page_shows_the_timelines_progress(model, monkeypatch, tmp_path):
    """The analysis runs on the app's own threads; its progress still reaches the page's progress bar."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    on_analyse = next(f.fn for f in app.build_demo(model, examples=None).fns.values() if f.name == "on_analyse")
    seen = []
    *_, recent = on_analyse(str(talk_pause_talk(tmp_path)), None, lambda fraction, desc: seen.append((fraction, desc)))
    assert recent.shown.timeline is not None and seen and seen[-1] == (1.0, "Following the whole recording")
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_the_page_has_the_tabs_endpoints_and_live_stream(model):
    demo = app.build_demo(model, examples=None)
    config = demo.get_config_file()
    by_id = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert {app.OVER_TIME, app.WHY, "Live"} <= set(tabs)
    deps = {d["api_name"]: d for d in config["dependencies"] if d["api_name"]}
    assert [by_id[i] for i in deps["timeline"]["outputs"]] == ["segments", "timeline"]
    assert [by_id[i] for i in deps["explain"]["outputs"]] == ["why-class", "why"]
    assert [by_id[i] for i in deps["explain"]["inputs"]] == ["audio-input", "why-class"]
    assert deps["timeline"]["targets"] == deps["explain"]["targets"] == []  # API only, like /predict
    (stream,) = [d for d in config["dependencies"] if any(t[1] == "stream" for t in d["targets"])]
    assert stream["stream_every"] == app.LIVE_EVERY == 0.5 and stream["time_limit"] == app.LIVE_LIMIT
    (chunk,) = [f for f in demo.fns.values() if f.name == "on_chunk"]
    assert chunk.concurrency_limit == app.LIVE_STREAMS and chunk.concurrency_id == "live"  # not the analyses' slots
    live = next(c for c in config["components"] if c["props"].get("elem_id") == "live-audio")
    assert live["props"]["streaming"] and live["props"]["sources"] == ["microphone"]


def test_ten_minutes_of_the_largest_common_format_fit_the_upload_limit():
    from gradio.utils import _parse_file_size

    ten_minutes = 10 * 60 * 48000 * 2 * 2 + 44  # 16-bit 48 kHz stereo WAV
    assert ten_minutes <= _parse_file_size(app.MAX_FILE_SIZE) < 2 * ten_minutes
    assert app.TIMELINE_SECONDS >= 600


# ----------------------------------------------------------------------------- /timeline and /explain, served


def picture_width(plot: dict) -> int:
    """Width in pixels of the image in a gr.Plot's API value (a data URL)."""
    header, data = plot["plot"].split(",", 1)
    assert header.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(data))).width


def test_timeline_and_explain_through_gradio_client(app_server, tmp_path):
    from gradio_client import Client, handle_file

    url, uploads = app_server
    client = Client(url, verbose=False)
    segments, picture = client.predict(handle_file(str(talk_pause_talk(tmp_path))), api_name="/timeline")
    assert segments["headers"] == ["from (s)", "to (s)", "emotion", "confidence (%)"]
    rows = segments["data"]
    assert rows[0][0] == 0 and rows[-1][1] == pytest.approx(11.0)
    assert any(r[2] == SILENCE and r[0] <= 5.5 < r[1] for r in rows)  # the pause
    assert {r[2] for r in rows} - {SILENCE} <= set(LABELS) and len({r[2] for r in rows} - {SILENCE}) >= 1
    assert picture["type"] == "matplotlib" and picture_width(picture) > 300

    voice = handle_file(str(write(tmp_path / "voice.wav", speech_like(3.0))))
    top, picture = client.predict(voice, None, api_name="/explain")
    assert top in LABELS and picture_width(picture) > 300
    other = next(k for k in LABELS if k != top)
    assert client.predict(voice, other, api_name="/explain")[0] == other
    with pytest.raises(Exception, match="this model knows neutral, happy, sad, angry"):
        client.predict(voice, "bored", api_name="/explain")
    with pytest.raises(Exception, match="could not hear anything"):
        client.predict(handle_file(str(write(tmp_path / "s.wav", np.zeros(RATE)))), api_name="/timeline")
    assert not [p for p in uploads.rglob("*.wav") if p.is_file()], "an upload was kept after the request"
