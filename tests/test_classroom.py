"""The classroom's library side: example clips named for what they hold and never a voice the model trained on
(`ser.classroom`), the game's rounds and tally, and the pictures' labels (`ser.plots`). The tabs that show them are
tested in tests/test_app_*.py."""

import json
import random
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import LABELS, MIN_FONT_PT, speech_like, write

from ser import classroom, plots
from ser.features import FeatureConfig
from ser.hub import load_model
from ser.inference import analyse_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def close_figures():
    """These tests hold the figures `ser.plots` makes (the app takes its own out of pyplot); close them after
    each test, so that the app tests' checks that no figure is left open see only the app's."""
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- example clips


@pytest.mark.parametrize(
    ("name", "emotion", "voice", "speaker", "label"),
    [
        ("happy_nemo-IC0_female.ogg", "happy", "female", "nemo:IC0", "happy — female voice, Polish"),
        ("sad_emodb-03_male.wav", "sad", "male", "emodb:03", "sad — male voice, German"),
        ("happy_actor19_male.flac", "happy", "male", "ravdess:19", "happy — male voice, English"),
        ("calm_actor07.wav", "calm", None, "ravdess:07", "calm — speaker 07, English"),
        ("calm_emospeech-F1.wav", "calm", None, "emospeech:F1", "calm — speaker F1"),  # no one language
        ("calm_voice.wav", "calm", None, None, "calm_voice"),
        ("example_voice.wav", None, None, None, "example_voice"),
    ],
)
def test_an_example_is_labelled_from_its_name(name, emotion, voice, speaker, label):
    e = classroom.parse_example(Path(name))
    assert (e.emotion, e.voice, e.speaker, e.label) == (emotion, voice, speaker, label)


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


# ----------------------------------------------------------------------------- pictures


def overlapping(labels) -> list[tuple[str, str]]:
    """Pairs of neighbouring tick labels whose boxes on the drawn figure overlap."""
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_visible() and t.get_text()]
    return [(a, b) for (a, box_a), (b, box_b) in zip(boxes, boxes[1:]) if box_a.overlaps(box_b)]


@pytest.mark.parametrize("n_mels", [40, 64, 128])
def test_pitch_labels_reach_the_top_band_and_never_overlap(n_mels):
    """100, 250 and 500 Hz sit close on the mel scale: on a phone-sized picture their labels ran into each other."""
    cfg = FeatureConfig(n_mels=n_mels)
    mel = np.zeros((n_mels, 100))
    for fig in (
        plots.log_mel(mel, cfg),
        plots.mel_power(mel, cfg),
        plots.compare_log_mels([("a", mel), ("b", mel)], cfg),
    ):
        fig.canvas.draw()
        for ax in fig.axes[:-1]:  # the last is the colour bar
            labels = [t.get_text() for t in ax.get_yticklabels()]
            assert labels[-1].endswith("k"), labels  # the top: the highest band's top edge, in kHz
            assert ax.get_yticks()[-1] == pytest.approx(n_mels, abs=0.1)  # the top edge of the highest band
            assert list(ax.get_yticks()) == sorted(ax.get_yticks()) and all(0 <= y <= n_mels for y in ax.get_yticks())
            assert len(labels) >= 3 and not overlapping(ax.get_yticklabels()), labels
        plt.close(fig)
    old = plots.log_mel(mel, cfg)  # every candidate label, as before: the check above can fail
    plots.mel_ticks(old.axes[0], cfg, gap=0)
    old.canvas.draw()
    assert overlapping(old.axes[0].get_yticklabels())
    plt.close(old)


def test_confusion_matrix_is_a_labelled_heatmap_of_percentages():
    cm = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])
    fig = plots.confusion(cm, ["a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["80", "20", "0", "50", "50", "0", "0", "0", "0"]
    assert ax.images[0].get_cmap().name == "cividis"  # colour-blind safe
    assert plots.smallest_text(fig) >= MIN_FONT_PT
    assert "%" in fig.axes[1].get_ylabel()


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


def test_speakers_the_voice_listener_heard_count_as_heard_but_those_it_kept_out_do_not():
    """The shipped model's CNN heard RAVDESS 01-18 and EmoDB; its voice head all five corpora but RAVDESS 19-20. An
    ASED voice was heard (by the head), RAVDESS 19 was not (by either), so the examples and `evaluate` say so."""
    metrics = {"training": {"train_speakers": ["ravdess:01", "emodb:03"]}}
    voice = {"trained_on": ["ased", "emodb", "ravdess"], "excluded_speakers": ["ravdess:19", "ravdess:20"]}
    cnn_only = classroom.train_speakers(metrics)
    both = classroom.train_speakers(metrics, None, voice)
    assert not classroom.heard("ased:M01", "ased", cnn_only) and classroom.heard("ased:M01", "ased", both)
    assert classroom.heard("ravdess:01", "ravdess", both) and classroom.heard("ravdess:05", "ravdess", both)
    assert not classroom.heard("ravdess:19", "ravdess", both) and not classroom.heard("nemo:x", "nemo", both)
    assert classroom.train_speakers({}, None, voice) is None  # the CNN's speakers unknown: cannot tell
