"""The "Compare two voices" tab (`ser.app.compare`): the visitor's analysis before this one beside this one."""

import numpy as np
from conftest import speech_like, write

from ser.app.compare import compare_log_mel_chart, compare_probability_chart
from ser.app.serving import RecentResults, Result, analyse_upload


def test_the_previous_analysis_is_shown_beside_the_current_one(model, tmp_path):
    recent = RecentResults()
    first = recent.show(analyse_upload(model, str(write(tmp_path / "a.wav", speech_like(1.0))), recent))
    assert first.previous is None
    fig = compare_log_mel_chart(first)
    assert len([ax for ax in fig.axes if ax.images]) == 1  # one voice so far: shown alone
    second = recent.show(analyse_upload(model, str(write(tmp_path / "b.wav", speech_like(2.0, f0=220))), recent))
    assert second.previous is first.analysis
    again = recent.show(analyse_upload(model, str(tmp_path / "b.wav"), recent))  # Analyse pressed again
    assert again.analysis is second.analysis and again.previous is first.analysis
    recent.show(Result())  # Clear, then an error: the pair stays for the next voice
    recent.show(Result(error="silent"))
    third = recent.show(analyse_upload(model, str(write(tmp_path / "c.wav", speech_like(1.5, f0=90))), recent))
    assert third.previous is second.analysis

    fig = compare_log_mel_chart(third)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["before", "now"]
    np.testing.assert_array_equal(panels[0].images[0].get_array(), second.analysis.mel - second.analysis.mel.max())
    np.testing.assert_array_equal(panels[1].images[0].get_array(), third.analysis.mel - third.analysis.mel.max())
    assert panels[0].get_xlim() == panels[1].get_xlim()  # one time axis for both
    ax = compare_probability_chart(third).axes[0]
    assert len(ax.patches) == 2 * len(model.labels)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before", "now"]
    widths = {round(p.get_width(), 6) for p in ax.patches}
    assert {round(100 * v, 6) for v in third.analysis.probs.values()} <= widths
    assert compare_log_mel_chart(Result()) is None and compare_probability_chart(Result()) is None


def test_the_page_keeps_each_visitors_pair(handlers, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    on_analyse = handlers["on_analyse"]
    *_, recent = on_analyse(str(write(tmp_path / "gradio" / "1" / "a.wav", speech_like())), None)
    *_, recent = on_analyse(str(write(tmp_path / "gradio" / "2" / "b.wav", speech_like(f0=250))), recent)
    assert recent.shown.previous is recent.before is not None and recent.shown.analysis is recent.now
