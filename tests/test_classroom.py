"""The classroom features as plain functions: example clips, "How it works", "Compare two voices", "Act it out",
and the About tab in plain words."""

import dataclasses
import json
import random
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import MIN_FONT_PT, speech_like, write

import app
from ser import card, classroom, plots, walkthrough
from ser.features import FeatureConfig, power_to_log_mel
from ser.hub import load_model
from ser.inference import analyse_file

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["neutral", "happy", "sad", "angry"]
JARGON = ("UAR", "F1", "dBFS", "±", "ECE", "fold", "mel", "log", "train.py", "speaker-independent")


@pytest.fixture(autouse=True)
def close_figures():
    """These tests hold the figures they make (the app hands its own to Gradio, which closes them); close them
    after each test, so that the app tests' check that no figure is left open sees only the app's."""
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def analysed(model, tmp_path_factory):
    path = write(tmp_path_factory.mktemp("clip") / "voice.wav", speech_like(2.0, f0=160))
    return app.analyse_upload(model, str(path))


# ----------------------------------------------------------------------------- example clips


@pytest.mark.parametrize(
    ("name", "emotion", "voice", "speaker", "label"),
    [
        ("happy_nemo-IC0_female.ogg", "happy", "female", "nemo:IC0", "happy — female voice, Polish (nEMO)"),
        ("sad_emodb-03_male.wav", "sad", "male", "emodb:03", "sad — male voice, German (EmoDB)"),
        ("happy_actor19_male.flac", "happy", "male", "ravdess:19", "happy — male voice, English (RAVDESS)"),
        ("calm_actor07.wav", "calm", None, "ravdess:07", "calm — speaker 07, English (RAVDESS)"),
        ("calm_voice.wav", "calm", None, None, "calm_voice"),
        ("example_voice.wav", None, None, None, "example_voice"),
    ],
)
def test_an_example_is_labelled_from_its_name(name, emotion, voice, speaker, label):
    e = classroom.parse_example(Path(name))
    assert (e.emotion, e.voice, e.speaker, e.label) == (emotion, voice, speaker, label)


def test_examples_of_training_speakers_are_never_offered(model, tmp_path, monkeypatch):
    """The model's metrics.json names its training speakers; their clips are left out of the page."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    for name in ("happy_actor19_male.wav", "sad_actor20_female.wav", "angry_actor03_male.wav"):
        write(tmp_path / "ex" / name, speech_like())
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps({"training": {"train_speakers": ["ravdess:03", "emodb:03"]}}))
    trained = load_model(folder)
    config = json.dumps(
        app.build_demo(trained, examples=tmp_path / "ex").get_config_file(), default=str, ensure_ascii=False
    )
    assert "happy — male voice, English (RAVDESS)" in config and "sad — female voice, English (RAVDESS)" in config
    assert "angry — male voice" not in config and "angry_actor03" not in config
    assert "may have heard these actors" not in config

    (folder / "metrics.json").write_text(json.dumps({"training": {}}))  # an older model: it cannot be checked
    config = json.dumps(
        app.build_demo(load_model(folder), examples=tmp_path / "ex").get_config_file(), default=str, ensure_ascii=False
    )
    assert "angry — male voice, English (RAVDESS)" in config and "may have heard these actors" in config


def test_an_example_clip_says_what_the_actor_meant_and_whether_the_model_heard_it(model, tmp_path):
    clip = write(tmp_path / "examples" / "sad_ravdess-19_male.flac", speech_like(2.0, f0=110, energy=0.1))
    copy = tmp_path / "gradio" / "3f2a" / clip.name  # Gradio serves a copy of the clip, under its own name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(clip.read_bytes())
    result = app.analyse_upload(model, str(copy), keep=[clip])
    top = max(result.analysis.probs, key=result.analysis.probs.get)
    assert result.intended == "sad" and "The actor was asked to sound **sad**" in app.verdict(result)
    assert (app.RIGHT in app.verdict(result)) == (top == "sad")
    missed = dataclasses.replace(result, intended=next(e for e in model.labels if e != top))
    assert f"{app.WRONG} the model heard **{top}** instead" in app.verdict(missed)
    mine = write(tmp_path / "mine" / clip.name, speech_like(2.0))  # an example's name, other sound: not claimed
    assert "asked to sound" not in app.verdict(app.analyse_upload(model, str(mine), keep=[clip]))


def test_split_examples():
    examples = [classroom.parse_example(Path(n)) for n in ("a_actor01_male.wav", "b_actor02_male.wav", "c.wav")]
    assert classroom.split_examples(examples, None) == (examples, [])
    assert classroom.split_examples(examples, {"ravdess:02"}) == ([examples[0], examples[2]], [examples[1]])
    assert classroom.train_speakers({"training": {"train_speakers": ["x:1"]}}) == {"x:1"}
    assert classroom.train_speakers({}) is None


def shipped_examples_heard_in_training(checkpoint: Path, examples: Path) -> list[str]:
    """The example clips whose speaker the checkpoint was trained on; fails if its metrics cannot tell."""
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    config = checkpoint / "train_config.json"
    trained_on = classroom.train_speakers(metrics, json.loads(config.read_text())["data"] if config.exists() else None)
    if trained_on is None:
        pytest.fail(
            f"{checkpoint / 'metrics.json'} has no training.train_speakers, so nobody can check that the example "
            "clips are voices the model never heard: ship a model trained with train.py's --exclude (it writes "
            "the list), e.g. the command in train.py's docstring"
        )
    clips = [classroom.parse_example(p) for p in sorted(examples.iterdir()) if p.suffix in (".flac", ".ogg", ".wav")]
    assert clips and all(c.speaker for c in clips), "every shipped example names its speaker"
    _, heard = classroom.split_examples(clips, trained_on)
    return [c.path.name for c in heard]


def test_no_shipped_example_is_a_voice_the_shipped_model_trained_on():
    assert shipped_examples_heard_in_training(ROOT / "checkpoints" / "default", ROOT / "examples") == []


def test_the_examples_readme_says_what_the_shipped_model_hears_in_each_clip():
    """examples/README.md's table of the shipped model's answers is current (a new model must rewrite it)."""
    rows = re.findall(
        r"^\| (\S+\.flac) \| (\w+) \| (\w+) \(([\d.]+)%\)", (ROOT / "examples" / "README.md").read_text(), re.M
    )
    clips = sorted(p.name for p in (ROOT / "examples").iterdir() if p.suffix == ".flac")
    assert sorted(r[0] for r in rows) == clips
    model = load_model(None)
    for name, meant, heard, percent in rows:
        analysis = analyse_file(model, ROOT / "examples" / name)
        assert (meant, analysis.label) == (classroom.parse_example(Path(name)).emotion, heard), name
        assert 100 * analysis.probs[heard] == pytest.approx(float(percent), abs=0.05), name


def test_the_examples_check_catches_a_training_speaker(tmp_path):
    """The check above against fake metrics: it can fail."""
    write(tmp_path / "examples" / "happy_actor19_male.flac", speech_like(0.6))
    write(tmp_path / "examples" / "sad_actor20_female.flac", speech_like(0.6))
    (tmp_path / "metrics.json").write_text(json.dumps({"training": {"train_speakers": ["ravdess:01", "ravdess:20"]}}))
    assert shipped_examples_heard_in_training(tmp_path, tmp_path / "examples") == ["sad_actor20_female.flac"]
    (tmp_path / "metrics.json").write_text(json.dumps({"training": {"train_speakers": ["ravdess:01"]}}))
    assert shipped_examples_heard_in_training(tmp_path, tmp_path / "examples") == []
    (tmp_path / "train_config.json").write_text(json.dumps({"data": ["ravdess=x", "emodb=y"]}))
    (tmp_path / "metrics.json").write_text(json.dumps({"training": {"validation_speakers": []}}))  # every speaker
    assert shipped_examples_heard_in_training(tmp_path, tmp_path / "examples") == [
        "happy_actor19_male.flac", "sad_actor20_female.flac"]  # fmt: skip
    (tmp_path / "train_config.json").unlink()
    (tmp_path / "metrics.json").write_text(json.dumps({"training": {}}))
    with pytest.raises(pytest.fail.Exception, match="no training.train_speakers"):
        shipped_examples_heard_in_training(tmp_path, tmp_path / "examples")


# ----------------------------------------------------------------------------- How it works


def test_each_step_is_what_the_models_own_functions_computed(model, analysed):
    a, cfg = analysed.analysis, analysed.analysis.features
    power = walkthrough.power_spectrogram(a)
    assert power.shape == (cfg.n_fft // 2 + 1, a.mel.shape[1])
    mel_power = walkthrough.mel_power(a)
    assert mel_power.shape == a.mel.shape
    # the log of step 3 is step 4, the model's input
    np.testing.assert_allclose(power_to_log_mel(torch.from_numpy(power), cfg).numpy(), a.mel, atol=1e-4)

    stft = app.stft_chart(analysed).axes[0]
    np.testing.assert_allclose(np.asarray(stft.images[0].get_array()), power / power.max(), rtol=1e-6)
    assert stft.get_ylabel() == "frequency (Hz)" and stft.images[0].get_extent()[3] == cfg.sample_rate / 2
    assert "25 ms" in stft.get_title()
    mel = app.mel_scale_chart(analysed).axes[0]
    np.testing.assert_allclose(np.asarray(mel.images[0].get_array()), mel_power / mel_power.max(), rtol=1e-6)
    db = app.decibel_chart(analysed)
    np.testing.assert_array_equal(np.asarray(db.axes[0].images[0].get_array()), a.mel)
    assert db.axes[1].get_ylabel() == "dB"


def test_the_mel_axis_is_labelled_up_to_the_top_band():
    fig = plots.log_mel(np.zeros((64, 100)), FeatureConfig())
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:2] == ["100", "250"] and labels[-1] == "7.8k"
    assert ax.get_yticks()[-1] == pytest.approx(64, abs=0.1)  # the top edge of the highest band
    assert all(0 <= y <= 64 for y in ax.get_yticks())


def test_layers_show_the_most_active_feature_maps_of_the_first_and_last_block(model, analysed):
    a = analysed.analysis
    blocks = model.block_outputs(torch.from_numpy(a.mel))
    assert len(blocks) == sum(w != "M" for w in model.config.widths)
    last_relu = max(i for i, layer in enumerate(model.features) if isinstance(layer, torch.nn.ReLU))
    with torch.inference_mode():  # the last block's output: what the head reads (after a max-pool, if any)
        x = model.features[: last_relu + 1](model.normalize(torch.from_numpy(a.mel)[None]).unsqueeze(1))[0]
    torch.testing.assert_close(blocks[-1], x)
    assert blocks[0].shape[1:] == a.mel.shape
    (first_name, first, first_ch), (last_name, last, last_ch) = walkthrough.layer_maps(model, a)
    assert first.shape == (walkthrough.MAPS_SHOWN, *a.mel.shape) and "layer 1 of 2" in first_name
    means = blocks[0].mean(dim=(1, 2))
    assert means[first_ch[0]] == means.max() and list(means[first_ch]) == sorted(means[first_ch], reverse=True)
    assert last.shape[0] == min(walkthrough.MAPS_SHOWN, blocks[-1].shape[0]) and "16 filters" in last_name

    fig = app.layers_chart(analysed)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == len(first) + len(last)
    np.testing.assert_array_equal(np.asarray(images[0].get_array()), first[0])
    assert fig.axes[0].get_title() == f"filter {first_ch[0] + 1}"
    assert app.layers_chart(app.Result(a)) is None  # no model: nothing to look inside


def test_every_picture_has_readable_text(model, analysed, tmp_path):
    """The smallest text of every picture, so that the browser test can tell its size on screen."""
    recent = app.RecentResults()
    recent.show(app.analyse_upload(model, str(write(tmp_path / "x.wav", speech_like(1.5)))))
    shown = recent.show(analysed)
    figures = {n: v.render(shown) for n, v in app.VIEWS.items() if v.picture}
    figures = {n: f for n, f in figures.items() if f is not None}  # some views need more than one analysis
    assert {"probabilities", "log_mel", *app.STEP_VIEWS, "compare_log_mel", "compare_probabilities"} <= set(figures)
    metrics = json.loads((ROOT / "checkpoints" / "default" / "metrics.json").read_text())
    figures["how good"] = app.how_good_figure(metrics)
    figures.update({f"confusion {i}": f for i, f in enumerate(app.confusion_figures(metrics))})
    for name, fig in figures.items():
        assert plots.smallest_text(fig) >= MIN_FONT_PT, name
        assert fig.dpi == 100, name  # what Gradio saves at, and what the browser test assumes


# ----------------------------------------------------------------------------- Compare two voices


def test_the_previous_analysis_is_shown_beside_the_current_one(model, tmp_path):
    recent = app.RecentResults()
    first = recent.show(app.analyse_upload(model, str(write(tmp_path / "a.wav", speech_like(1.0))), recent))
    assert first.previous is None
    fig = app.compare_log_mel_chart(first)
    assert len([ax for ax in fig.axes if ax.images]) == 1  # one voice so far: shown alone
    second = recent.show(app.analyse_upload(model, str(write(tmp_path / "b.wav", speech_like(2.0, f0=220))), recent))
    assert second.previous is first.analysis
    again = recent.show(app.analyse_upload(model, str(tmp_path / "b.wav"), recent))  # Analyse pressed again
    assert again.analysis is second.analysis and again.previous is first.analysis
    recent.show(app.Result())  # Clear, then an error: the pair stays for the next voice
    recent.show(app.Result(error="silent"))
    third = recent.show(app.analyse_upload(model, str(write(tmp_path / "c.wav", speech_like(1.5, f0=90))), recent))
    assert third.previous is second.analysis

    fig = app.compare_log_mel_chart(third)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["before", "now"]
    np.testing.assert_array_equal(panels[0].images[0].get_array(), second.analysis.mel - second.analysis.mel.max())
    np.testing.assert_array_equal(panels[1].images[0].get_array(), third.analysis.mel - third.analysis.mel.max())
    assert panels[0].get_xlim() == panels[1].get_xlim()  # one time axis for both
    ax = app.compare_probability_chart(third).axes[0]
    assert len(ax.patches) == 2 * len(model.labels)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before", "now"]
    widths = {round(p.get_width(), 6) for p in ax.patches}
    assert {round(100 * v, 6) for v in third.analysis.probs.values()} <= widths
    assert app.compare_log_mel_chart(app.Result()) is None and app.compare_probability_chart(app.Result()) is None


def test_the_page_keeps_each_visitors_pair(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo = app.build_demo(model, examples=None)
    on_analyse = next(f.fn for f in demo.fns.values() if f.name == "on_analyse")
    *_, recent = on_analyse(str(write(tmp_path / "gradio" / "1" / "a.wav", speech_like())), None)
    *_, recent = on_analyse(str(write(tmp_path / "gradio" / "2" / "b.wav", speech_like(f0=250))), recent)
    assert recent.shown.previous is recent.before is not None and recent.shown.analysis is recent.now


# ----------------------------------------------------------------------------- Act it out


def test_rounds_use_the_models_emotions_and_never_repeat_one():
    rng, last = random.Random(0), None
    seen = set()
    for _ in range(60):
        r = classroom.pick_round(LABELS, rng, last)
        assert r.emotion in LABELS and r.sentence in classroom.SENTENCES
        assert last is None or (r.emotion != last.emotion and r.sentence != last.sentence)
        seen.add(r.emotion)
        last = r
    assert seen == set(LABELS)
    assert classroom.pick_round(["sad"], rng, last).emotion == "sad"  # one emotion: it repeats


def test_scoring_and_tally():
    r = classroom.Round("sad", classroom.SENTENCES[0])
    assert classroom.is_hit(r, {"sad": 0.5, "happy": 0.3, "angry": 0.2})
    assert not classroom.is_hit(r, {"sad": 0.3, "happy": 0.5, "angry": 0.2})
    tally = classroom.add_try({}, "sad", True)
    tally2 = classroom.add_try(classroom.add_try(tally, "sad", False), "happy", True)
    assert tally == {"sad": (1, 1)}  # left as it was
    assert tally2 == {"sad": (2, 1), "happy": (1, 1)}
    assert classroom.tally_rows(tally2, LABELS) == [["happy", 1, 1], ["sad", 2, 1], ["all", 3, 2]]
    assert classroom.tally_rows({}, LABELS) == []


def probs_for(top: str) -> dict[str, float]:
    return {e: 0.7 if e == top else 0.1 for e in LABELS}


def test_a_round_of_act_it_out():
    game = classroom.Game(LABELS, random.Random(1)).next_round()
    asked = game.round.emotion
    task = app.task_markdown(game)
    assert f"sounds **{app.emotion_words(asked)}**" in task and game.round.sentence in task
    other = next(e for e in LABELS if e != asked)

    game.play(probs_for(asked))
    assert game.tally == {asked: (1, 1)} and app.RIGHT in app.outcome_markdown(game)
    assert isinstance(app.game_chart(game), plt.Figure)
    game.play(probs_for(other))
    assert game.tally == {asked: (2, 1)}
    text = app.outcome_markdown(game)
    assert app.WRONG in text and f"heard **{app.emotion_words(other)}**" in text and f"acted **{asked}**" in text
    game.play(None, problem="The recording is silent.")
    assert game.tally == {asked: (2, 1)} and "silent" in app.outcome_markdown(game)  # not a try
    assert app.game_chart(game) is None

    tally = app.tally_markdown(game)
    assert f"| {app.emotion_words(asked)} | 2 | 1 |" in tally and "| **all** | 2 | 1 |" in tally
    first = game.round
    game.next_round()
    assert game.round.emotion != first.emotion and game.tally == {asked: (2, 1)}  # the tally stays
    assert game.heard is None and "Record the sentence" in app.outcome_markdown(game)


def test_hard_mode_hides_the_answer_until_the_class_has_guessed():
    game = classroom.Game(LABELS, random.Random(2)).next_round()
    asked = game.round.emotion
    heard = next(e for e in LABELS if e != asked)
    game.play(probs_for(heard), hard=True)
    text = app.outcome_markdown(game)
    assert "Recorded" in text and heard not in text and "%" not in text
    assert app.game_chart(game) is None and game.tally == {}  # nothing shown or counted yet
    game.reveal()
    assert game.tally == {asked: (1, 0)} and isinstance(app.game_chart(game), plt.Figure)
    assert f"The class guessed **{heard}**: right!" in app.outcome_markdown(game, guess=heard)
    assert "not this time" in app.outcome_markdown(game, guess=asked)
    game.reveal()  # pressed twice: counted once
    assert game.tally == {asked: (1, 0)}
    game.play(None, hard=True, problem="too short")  # a failed try needs no guessing
    assert game.revealed and game.tally == {asked: (1, 0)}


def test_the_games_handlers_keep_the_tally_in_the_session(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo = app.build_demo(model, examples=None)
    fns = {f.name: f.fn for f in demo.fns.values()}
    game, task, *_ = fns["on_next"](None)
    assert "so that it sounds" in task
    out = fns["on_try"](str(write(tmp_path / "gradio" / "1" / "a.wav", speech_like())), game, False)
    game, _, outcome, tally, guess, reveal = out
    assert "The model heard" in outcome and sum(t for t, _ in game.tally.values()) == 1
    assert "| **all** | 1 |" in tally and not guess["visible"] and not reveal["visible"]
    assert not (tmp_path / "gradio" / "1" / "a.wav").exists(), "a game recording is deleted once analysed"
    game, _, outcome, _, guess, reveal = fns["on_try"](
        str(write(tmp_path / "gradio" / "2" / "b.wav", speech_like(f0=220))), game, True
    )
    assert "Recorded" in outcome and guess["visible"] and reveal["visible"] and fns["on_chart"](game) is None
    game, _, outcome, tally, guess, _ = fns["on_reveal"](game, "sad")
    assert "The class guessed **sad**" in outcome and "| **all** | 2 |" in tally and not guess["visible"]
    assert isinstance(fns["on_chart"](game), plt.Figure)
    game, *_, tally, _, _ = fns["on_reset"](game)
    assert game.tally == {} and "no tries yet" in tally


# ----------------------------------------------------------------------------- plain words

METRICS = {
    "cross_validation": {
        "ravdess": {
            "uar": {"mean": 0.61, "std": 0.04},
            "accuracy": {"mean": 0.6, "std": 0.05},
            "labels": LABELS * 2,
            "pooled_per_class_recall": {e: 0.5 for e in LABELS},
            "folds": 5,
            "macro_f1": 0.5,
        },
    },  # fmt: skip
    "leave_one_corpus_out": {
        "emodb": {"uar": 0.42, "accuracy": 0.45, "labels": LABELS, "trained_on": ["ravdess"]},
        "nemo": {"uar": 0.31, "accuracy": 0.35, "labels": LABELS, "trained_on": ["ravdess"]},
    },
    "excluded_speakers_test": {"ravdess": {"n": 120, "accuracy": 0.55, "uar": 0.5, "labels": LABELS * 2}},
}


def test_the_about_tab_speaks_plainly_and_keeps_the_tables_for_the_curious(model):
    what, why = app.plain_about(model, METRICS)
    assert "about **6 in 10**" in what and "guessing would get 1 in 8" in what and "RAVDESS" in what
    assert "66 of 120" in what and "from 3 in 10 to 4 in 10" in what
    assert "41 times in 100" in what and "Cao et al. 2014" in what
    assert classroom.ACTED_SPEECH in why and "Never use it" in why
    for word in JARGON:
        assert word not in what + why, word
    summary, _, _ = app.about_markdown(model, None, {})
    assert "UAR" not in summary  # no metrics: the tables are absent, and so is the jargon
    config = json.dumps(app.build_demo(model, examples=None).get_config_file(), default=str, ensure_ascii=False)
    assert "For the curious" in config
    assert "no test results" in app.plain_about(model, {})[0]
    fig = app.how_good_figure(METRICS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][::-1] == LABELS and len(ax.patches) == len(LABELS)
    assert ax.lines[0].get_xdata()[0] == pytest.approx(100 / len(LABELS))  # guessing
    assert app.how_good_figure({}) is None
    assert "(RAVDESS)" in ax.get_title()  # the corpus's name, not its id
    alike = {
        **METRICS,
        "leave_one_corpus_out": {c: {**m, "uar": 0.4} for c, m in METRICS["leave_one_corpus_out"].items()},
    }
    assert "about **4 in 10** right on average." in app.plain_about(model, alike)[0]  # no "from 4 in 10 to 4 in 10"


def test_messages_the_app_writes_are_plain():
    for message in (app.START, app.GONE, app.NO_AUDIO, *[t for pair in app.STEP_TEXT.values() for t in pair]):
        assert not any(w in message for w in ("UAR", "F1", "dBFS", "upload folder", "server")), message


def test_confusion_matrix_is_a_labelled_heatmap_of_percentages():
    cm = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])
    fig = plots.confusion(cm, ["a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["80", "20", "0", "50", "50", "0", "0", "0", "0"]
    assert ax.images[0].get_cmap().name == "cividis"  # colour-blind safe
    assert plots.smallest_text(fig) >= MIN_FONT_PT
    assert "%" in fig.axes[1].get_ylabel()


def test_card_tables_are_still_the_technical_source(model, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    summary, _, _ = app.about_markdown(model, None, {"metrics.json": tmp_path / "metrics.json"})
    assert card.results_markdown(METRICS, level=4) in summary
