"""The "Why this emotion?" tab (`ser.app.why`): the parts of the log-mel that pushed the model towards the top emotion
or the one chosen; `/explain` is the same for API clients (served: test_app.py)."""

from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
from conftest import LABELS, speech_like, write

from ser.app.serving import Result, analyse_upload
from ser.app.why import why_chart, why_choice


def test_why_explains_the_top_emotion_or_the_one_chosen(model, wav):
    result = analyse_upload(model, str(wav))
    top = result.analysis.label
    choice = why_choice(result)
    assert choice.value == top and [c[0] for c in choice.choices] == LABELS
    title = why_chart(result).axes[0].get_title().replace("\n", " ")  # wrapped to a phone's width
    assert title.startswith(f"Brighter: this part pushed the model towards '{top}'")
    other = next(k for k in LABELS if k != top)
    chosen = why_chart(replace(result, why=other))
    assert f"towards '{other}'" in chosen.axes[0].get_title().replace("\n", " ")
    for nothing in (Result(), Result(error="x")):
        assert why_chart(nothing) is None and why_choice(nothing) is None


def test_choosing_an_emotion_redraws_only_the_why_picture(handlers, wav, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    *_, recent = handlers["on_analyse"](str(wav), None)
    other = next(k for k in LABELS if k != recent.shown.analysis.label)
    fig = handlers["on_why"](other, recent)
    assert f"towards '{other}'" in fig.axes[0].get_title()


def test_explain_names_the_emotion_it_explains_and_refuses_one_the_model_lacks(handlers, tmp_path):
    on_explain = handlers["on_explain"]
    voice = write(tmp_path / "voice.wav", speech_like(3.0))
    top, picture, notes = on_explain(str(voice), None)
    assert top in LABELS and picture.type == "matplotlib" and picture.plot.startswith("data:image/") and notes == ""
    other = next(k for k in LABELS if k != top)
    assert on_explain(str(voice), other)[0] == other
    with pytest.raises(gr.Error, match="this model knows neutral, happy, sad, angry"):
        on_explain(str(voice), "bored")


def test_explain_says_when_the_input_does_not_sound_like_speech(handlers, tmp_path):
    noise = write(tmp_path / "noise.wav", 0.3 * np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32))
    _, picture, notes = handlers["on_explain"](str(noise))  # the emotion is optional
    assert picture is not None and "does not sound like someone talking" in notes


def test_explain_is_an_api_endpoint_of_the_emotion_the_picture_and_the_notes(demo):
    config = demo.get_config_file()
    by_id = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    (explain,) = [d for d in config["dependencies"] if d["api_name"] == "explain"]
    assert [by_id[i] for i in explain["inputs"]] == ["audio-input", "why-class"]
    assert [by_id[i] for i in explain["outputs"]] == ["why-class", "why", "notes"]
    assert explain["targets"] == []  # API only, like /predict
    (label,) = [
        p for p in demo.get_api_info()["named_endpoints"]["/explain"]["parameters"] if p["parameter_name"] == "label"
    ]
    assert label["parameter_has_default"] and label["python_type"]["type"] == f"Literal{LABELS!r}".replace(", ", ", ")
