"""The analyse room (`ser.app.analyse`): the verdict in words, the notes, the probabilities as bars and the log-mel
beside the input; the example clips offered, and what an example's verdict says."""

import dataclasses
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import speech_like, write

from ser import plots
from ser.app import build_demo
from ser.app.analyse import log_mel_chart, notes, verdict
from ser.app.serving import Result, analyse_upload
from ser.app.views import RIGHT, WRONG, probability_values
from ser.features import FeatureConfig, log_mel_spectrogram
from ser.hub import load_model
from ser.inference import Analysis


def result_with(probs: dict[str, float]) -> Result:
    audio, mel = np.zeros(16000, np.float32), np.zeros((64, 101), np.float32)
    return Result(Analysis(audio, mel, probs, truncated=False, features=FeatureConfig()))


def config_text(model, examples) -> str:
    return json.dumps(build_demo(model, examples=examples).get_config_file(), default=str, ensure_ascii=False)


def test_speech_gives_verdict_scores_and_no_notes(model, wav):
    result = analyse_upload(model, str(wav))
    assert result.error is None and result.analysis.notes == []
    probs = probability_values(result)
    assert list(probs) == model.labels and abs(sum(probs.values()) - 1) < 1e-5
    top = max(probs, key=probs.get)
    assert f"{top.capitalize()}: {probs[top]:.0%}" in verdict(result)
    assert notes(result) == ""
    assert wav.exists(), "files outside Gradio's upload folder are never deleted"


def test_a_clipped_recordings_note_is_shown(model, tmp_path):
    result = analyse_upload(model, str(write(tmp_path / "loud.wav", np.clip(speech_like() * 8, -1, 1))))
    assert notes(result) == f"- ⚠️ {result.analysis.notes[0]}" and "Too loud" in notes(result)


def test_log_mel_figure_is_the_models_input(model, wav):
    result = analyse_upload(model, str(wav))
    mel = log_mel_chart(result)
    image, colorbar = mel.axes[0].images[0], mel.axes[1]
    expected = log_mel_spectrogram(result.analysis.audio, model.feature_config).numpy()
    np.testing.assert_array_equal(np.asarray(image.get_array()), expected)
    assert mel.axes[0].get_xlabel() == "seconds" and mel.axes[0].get_ylabel() == "pitch (Hz)"
    assert [t.get_text() for t in colorbar.get_yticklabels()] == ["quiet", "loud"]  # words, not decibels


def test_probability_chart_sorted_highlighted_with_percentages(model, wav):
    """The library's bar chart (the page shows the same numbers as Gradio's own bars, `probability_values`)."""
    ax = plots.probabilities(analyse_upload(model, str(wav)).analysis.probs).axes[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert len(widths) == len(model.labels) and widths == sorted(widths)  # barh draws bottom-up: top class last
    colors = [bar.get_facecolor() for bar in ax.patches]
    assert colors[-1] != colors[0] and colors[-1][:3] == pytest.approx(plt.matplotlib.colors.to_rgb(plots.HIGHLIGHT))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(model.labels) and all(t.endswith("%") for t in texts)


@pytest.mark.parametrize(
    ("probs", "words"),
    [
        ({"angry": 0.9, "sad": 0.05, "happy": 0.03, "neutral": 0.02}, "confident"),
        ({"angry": 0.55, "sad": 0.25, "happy": 0.1, "neutral": 0.1}, "fairly sure"),
        ({"angry": 0.36, "sad": 0.30, "happy": 0.2, "neutral": 0.14}, "unsure"),  # small margin
        ({"angry": 0.30, "sad": 0.10, "happy": 0.3 - 1e-3, "neutral": 0.3 + 1e-3}, "unsure"),  # low top
        ({"angry": 0.38, "sad": 0.22, "happy": 0.2, "neutral": 0.2}, "no emotion stands out"),  # low top, clear margin
    ],
)
def test_confidence_in_words(probs, words):
    text = verdict(result_with(probs))
    assert words in text
    assert ("unsure" in text) == (words in ("unsure", "no emotion stands out"))


# ----------------------------------------------------------------------------- example clips


def test_examples_appear_when_the_folder_has_audio(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # Gradio copies examples to its cache
    write(tmp_path / "ex" / "calm_voice.wav", speech_like())
    (tmp_path / "ex" / "README.md").write_text("not audio")
    assert "calm_voice" in config_text(model, tmp_path / "ex")
    assert "Example clips" not in config_text(model, tmp_path / "empty")


def test_examples_of_training_speakers_are_never_offered(model, tmp_path, monkeypatch):
    """The model's metrics.json names its training speakers; their clips are left out of the page."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    for name in ("happy_actor19_male.wav", "sad_actor20_female.wav", "angry_actor03_male.wav"):
        write(tmp_path / "ex" / name, speech_like())
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps({"training": {"train_speakers": ["ravdess:03", "emodb:03"]}}))
    config = config_text(load_model(folder), tmp_path / "ex")
    assert "happy — male voice, English" in config and "sad — female voice, English" in config
    assert "angry — male voice" not in config and "angry_actor03" not in config
    assert "may have heard these actors" not in config

    (folder / "metrics.json").write_text(json.dumps({"training": {}}))  # an older model: it cannot be checked
    config = config_text(load_model(folder), tmp_path / "ex")
    assert "angry — male voice, English" in config and "may have heard these actors" in config


def test_an_example_clip_says_what_the_actor_meant_and_whether_the_model_heard_it(model, tmp_path):
    clip = write(tmp_path / "examples" / "sad_ravdess-19_male.flac", speech_like(2.0, f0=110, energy=0.1))
    copy = tmp_path / "gradio" / "3f2a" / clip.name  # Gradio serves a copy of the clip, under its own name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(clip.read_bytes())
    result = analyse_upload(model, str(copy), keep=[clip])
    top = max(result.analysis.probs, key=result.analysis.probs.get)
    assert result.intended == "sad" and "The actor was asked to sound **sad**" in verdict(result)
    assert (RIGHT in verdict(result)) == (top == "sad")
    missed = dataclasses.replace(result, intended=next(e for e in model.labels if e != top))
    assert f"{WRONG} the model heard **{top}** instead" in verdict(missed)
    mine = write(tmp_path / "mine" / clip.name, speech_like(2.0))  # an example's name, other sound: not claimed
    assert "asked to sound" not in verdict(analyse_upload(model, str(mine), keep=[clip]))
