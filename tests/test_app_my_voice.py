"""The "My voice" tab: three recordings make a reference, every later analysis of this visitor uses it,
and Forget my voice drops it."""

import shutil

import pytest
from conftest import speech_like, write

import ser
from ser.app import build_demo
from ser.app.serving import RecentResults


@pytest.fixture(scope="module")
def tuned_handlers(two_listener_dir):
    demo = build_demo(ser.load_model(two_listener_dir), examples=None)
    return {f.name: f.fn for f in demo.fns.values()}


def upload(tmp_path, k: int) -> str:
    """A recording as Gradio hands it over: a file the handler may delete."""
    return str(write(tmp_path / f"take{k}.wav", speech_like(1.6, f0=150 + 20 * k, seed=k)))


def test_three_recordings_tune_every_later_analysis_and_forget_undoes_it(tuned_handlers, tmp_path):
    add, forget, analyse = tuned_handlers["on_add"], tuned_handlers["on_forget"], tuned_handlers["on_analyse"]
    recent = RecentResults()
    for k in range(2):
        _, shown, recent = add(upload(tmp_path, k), recent)
        assert f"{k + 1} of 3" in shown and recent.reference is None
    _, shown, recent = add(upload(tmp_path, 2), recent)
    assert "Tuned to your voice" in shown and recent.reference.n == 3
    clip = upload(tmp_path, 9)
    kept = shutil.copy(clip, tmp_path / "kept.wav")
    verdict, *_ = analyse(clip, recent)
    assert any("Tuned to your voice from 3 recordings" in n for n in recent.shown.analysis.notes)
    shown, recent = forget(recent)
    assert recent.reference is None and "Not tuned" in shown
    analyse(str(kept), recent)
    assert not any("Tuned" in n for n in recent.shown.analysis.notes)


def test_too_short_a_recording_is_not_counted(tuned_handlers, tmp_path):
    _, shown, recent = tuned_handlers["on_add"](str(write(tmp_path / "short.wav", speech_like(0.7))), None)
    assert "too short" in shown and recent.voice == []
