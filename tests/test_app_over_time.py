"""The "Over time" tab (`ser.app.over_time`): the page's analysis brings the whole recording's timeline, shown as a
picture and a table, with its progress on the page; `/timeline` is the same for API clients (served: test_app.py)."""

import matplotlib.pyplot as plt
import pytest
from conftest import talk_pause_talk

from ser.app.over_time import segments_table, timeline_chart
from ser.app.serving import Result, analyse_upload
from ser.app.views import FIGURE_WIDTH
from ser.timeline import SILENCE


def test_the_page_analysis_brings_the_timeline_and_its_views(model, tmp_path):
    result = analyse_upload(model, str(talk_pause_talk(tmp_path)), over_time=True)
    assert result.analysis is not None and result.timeline is not None
    rows = segments_table(result)
    assert [r[2] for r in rows] == [s.label for s in result.timeline.segments]
    assert rows[0][0] == 0 and rows[-1][1] == pytest.approx(11.0)
    assert any(r[2] == SILENCE and r[3] is None for r in rows) and all(r[3] is None or 0 < r[3] <= 100 for r in rows)
    before = set(plt.get_fignums())
    fig = timeline_chart(result)
    wave, probs = fig.axes[:2]
    assert probs.get_xlim() == pytest.approx((0, 11.0)) and probs.get_ylabel() == "how likely (%)"
    assert fig.get_figwidth() <= FIGURE_WIDTH and set(plt.get_fignums()) == before
    assert analyse_upload(model, str(talk_pause_talk(tmp_path, "again.wav"))).timeline is None  # only if asked
    for nothing in (Result(), Result(error="x")):
        assert timeline_chart(nothing) is None and segments_table(nothing) is None


def test_the_page_shows_the_timelines_progress(handlers, monkeypatch, tmp_path):
    """The analysis runs on the app's own threads; its progress still reaches the page's progress bar."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    seen = []
    progress = lambda fraction, desc: seen.append((fraction, desc))
    *_, recent = handlers["on_analyse"](str(talk_pause_talk(tmp_path)), None, progress)
    assert recent.shown.timeline is not None and seen and seen[-1] == (1.0, "Following the whole recording")
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_timeline_is_an_api_endpoint_of_the_segments_and_the_picture(demo):
    config = demo.get_config_file()
    by_id = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    (timeline,) = [d for d in config["dependencies"] if d["api_name"] == "timeline"]
    assert [by_id[i] for i in timeline["inputs"]] == ["audio-input"]
    assert [by_id[i] for i in timeline["outputs"]] == ["segments", "timeline"]
    assert timeline["targets"] == []  # API only, like /predict
