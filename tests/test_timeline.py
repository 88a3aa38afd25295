"""The emotion timeline: windows along a whole recording, silence marked, segments; and `predict --timeline`."""

import itertools
import json
import math

import librosa
import numpy as np
import pytest
import torch
from conftest import speech_like, write

from ser.audio import AudioError
from ser.cli import main as cli
from ser.features import FeatureConfig, log_mel_spectrogram
from ser.model import ModelConfig, SERModel
from ser.timeline import SILENCE, analyse_over_time, merge_steps, smooth_path, timeline, timeline_file, window_starts

RATE = 16000
LABELS = ["neutral", "happy", "sad", "angry"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SERModel(ModelConfig(labels=LABELS, features=FeatureConfig(), widths=[8, "M", 16, "M"], hidden=16)).eval()


def pause(seconds: float, seed: int = 9) -> np.ndarray:
    """Room noise about 70 dB below the voices: no speech in it."""
    return 1e-4 * np.random.default_rng(seed).standard_normal(int(seconds * RATE)).astype(np.float32)


def talk_pause_talk() -> np.ndarray:
    """4 s of one voice, 3 s of pause, 4 s of another voice: 11 s."""
    return np.concatenate([speech_like(4.0), pause(3.0), speech_like(4.0, f0=110, seed=2)])


def label_at(tl, seconds: float) -> str:
    return next(s.label for s in tl.segments if s.start <= seconds < s.end)


def test_steps_and_segments_cover_the_whole_recording(model):
    audio = talk_pause_talk()
    tl = timeline(model, audio, RATE)
    assert tl.duration == pytest.approx(11.0) and tl.step == 0.5 and tl.window == model.feature_config.clip_seconds
    assert tl.probs.shape == (22, len(LABELS)) and tl.labels == LABELS
    judged = ~np.isnan(tl.probs).any(axis=1)
    assert judged.any() and np.allclose(tl.probs[judged].sum(axis=1), 1, atol=1e-5)
    starts, ends = [s.start for s in tl.segments], [s.end for s in tl.segments]
    assert starts[0] == 0 and ends[-1] == pytest.approx(11.0) and starts[1:] == ends[:-1]  # no gaps, no overlaps
    assert all(a.label != b.label for a, b in zip(tl.segments, tl.segments[1:]))  # runs are merged
    for s in tl.segments:
        assert (s.confidence is None) == (s.label == SILENCE)
        assert s.label == SILENCE or (s.label in LABELS and 0 < s.confidence <= 1)
    assert len(tl.envelope) == math.ceil(len(audio) / model.feature_config.hop_length)
    assert tl.envelope[:, 0].min() == pytest.approx(audio.min()) and tl.envelope[:, 1].max() == pytest.approx(
        audio.max()
    )


def test_the_pause_is_silence_and_the_voices_are_judged(model):
    tl = timeline(model, talk_pause_talk(), RATE)
    assert label_at(tl, 5.5) == SILENCE  # the middle of the pause
    assert label_at(tl, 2.0) in LABELS and label_at(tl, 9.0) in LABELS
    assert np.isnan(tl.probs[11]).all() and not np.isnan(tl.probs[3]).any()  # steps [5.5, 6) and [1.5, 2)
    assert tl.speech[11] < 0.25 < tl.speech[3]


def test_a_quiet_voice_after_a_loud_one_is_still_heard(model):
    """The speech detector scales its input to one peak: over a whole recording, a shout would drown a quiet voice."""
    audio = np.concatenate([speech_like(3.0, energy=0.9), pause(2.0), 0.01 * speech_like(4.0, seed=3), pause(1.0)])
    tl = timeline(model, audio, RATE)
    assert label_at(tl, 7.0) in LABELS  # 40 dB quieter than the first voice
    assert label_at(tl, 4.0) == SILENCE


def test_each_step_is_the_mean_of_the_windows_over_it(model):
    """A window is judged exactly as that stretch alone would be; 3.5 s gives windows at 0 and 0.5 s."""
    audio = speech_like(3.5)
    tl = timeline(model, audio, RATE, window_seconds=3.0)
    first, second = (model.probabilities(log_mel_spectrogram(audio[s : s + 3 * RATE], model.feature_config)).numpy()
                     for s in (0, RATE // 2))  # fmt: skip
    assert tl.windows == 2
    np.testing.assert_allclose(tl.probs[0], first, atol=1e-5)  # step [0, 0.5): only the first window
    np.testing.assert_allclose(tl.probs[3], (first + second) / 2, atol=1e-5)  # step [1.5, 2): both
    np.testing.assert_allclose(tl.probs[6], second, atol=1e-5)  # step [3, 3.5): only the second


def test_a_recording_shorter_than_a_window_is_one_window(model):
    audio = speech_like(1.5)
    tl = timeline(model, audio, RATE)
    expected = model.probabilities(log_mel_spectrogram(audio, model.feature_config)).numpy()
    assert tl.windows == 1 and tl.probs.shape == (3, len(LABELS)) and tl.window == 1.5
    judged = ~np.isnan(tl.probs).any(axis=1)
    assert judged.any()
    np.testing.assert_allclose(tl.probs[judged], np.broadcast_to(expected, (judged.sum(), len(LABELS))), atol=1e-5)


def test_windows_without_speech_are_not_classified(model):
    audio = np.concatenate([pause(10.0), speech_like(3.0)])  # 13 s: windows start every 0.5 s up to 10 s
    fractions = []
    tl = timeline(model, audio, RATE, progress=fractions.append)
    assert len(window_starts(len(audio), 3 * RATE, RATE // 2)) == 21
    assert 1 <= tl.windows <= 8  # only those reaching into the speech (with at least 0.5 s of it)
    assert fractions and fractions[-1] == 1 and fractions == sorted(fractions)
    assert [s.label for s in tl.segments][0] == SILENCE and tl.segments[0].end >= 9.5


def test_a_flicker_does_not_split_a_stretch_but_a_real_change_does():
    labels = ["a", "b", "c"]
    steady = np.tile([0.5, 0.35, 0.15], (20, 1))  # 10 s of "a", "b" close behind
    flicker = steady.copy()
    flicker[7] = [0.35, 0.5, 0.15]  # for half a second "b" edges ahead
    assert [s.label for s in merge_steps(flicker, labels, 0.5, 10.0)] == ["a"]
    assert [s.label for s in merge_steps(flicker, labels, 0.5, 10.0, switch_cost=0)] == ["a", "b", "a"]
    change = steady.copy()
    change[10:] = [0.15, 0.2, 0.65]  # from 5 s on, clearly "c"
    assert [(s.label, s.start) for s in merge_steps(change, labels, 0.5, 10.0)] == [("a", 0.0), ("c", 5.0)]
    change[4:6] = np.nan  # a pause: each stretch of speech is smoothed on its own
    assert [s.label for s in merge_steps(change, labels, 0.5, 10.0)] == ["a", SILENCE, "a", "c"]


@pytest.mark.parametrize("seed", range(20))
def test_smooth_path_is_the_best_path(seed):
    """Against every path of 6 steps and 3 classes: the highest summed log-probability less the cost of changes."""
    rng = np.random.default_rng(seed)
    probs, cost = rng.dirichlet(np.ones(3), size=6), rng.choice([0.0, 0.5, 2.0])
    value = lambda path: np.log(probs[np.arange(6), path]).sum() - cost * np.count_nonzero(np.diff(path))
    best = max(itertools.product(range(3), repeat=6), key=lambda path: value(np.array(path)))
    assert value(smooth_path(probs, cost)) == pytest.approx(value(np.array(best)))
    if cost == 0:
        assert list(smooth_path(probs, cost)) == list(probs.argmax(axis=1))


def test_window_starts_reach_the_end():
    assert list(window_starts(10, 4, 3)) == [0, 3, 6]
    assert list(window_starts(11, 4, 3)) == [0, 3, 6, 7]  # the last window ends where the audio ends
    assert list(window_starts(3, 4, 3)) == [0]


def test_merge_steps_groups_agreeing_neighbours():
    probs = np.array([[0.7, 0.3], [0.6, 0.4], [np.nan, np.nan], [0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    segs = merge_steps(probs, ["calm", "angry"], 0.5, 2.9, switch_cost=0)  # each step its own top emotion
    assert [(s.start, s.end, s.label) for s in segs] == [
        (0.0, 1.0, "calm"), (1.0, 1.5, SILENCE), (1.5, 2.5, "angry"), (2.5, 2.9, "calm"),
    ]  # fmt: skip
    assert segs[0].confidence == pytest.approx(0.65) and segs[1].confidence is None
    assert segs[2].to_dict() == {"start": 1.5, "end": 2.5, "label": "angry", "confidence": 0.7}


def test_a_file_and_its_array_give_the_same_timeline(model, tmp_path):
    audio = talk_pause_talk()
    from_file = timeline_file(model, write(tmp_path / "talk.wav", audio, RATE, "FLOAT"))
    from_array = timeline(model, audio, RATE)
    assert from_file.segments == from_array.segments
    np.testing.assert_allclose(from_file.probs, from_array.probs, atol=1e-6)


def test_other_rates_and_stereo_are_read_at_the_models_rate(model):
    audio = talk_pause_talk()
    stereo = np.stack([audio, audio], axis=1)
    tl = timeline(model, librosa.resample(audio, orig_sr=RATE, target_sr=44100), 44100)
    assert tl.duration == pytest.approx(11.0, abs=0.01) and label_at(tl, 5.5) == SILENCE
    assert timeline(model, stereo, RATE).segments == timeline(model, audio, RATE).segments


def test_max_seconds_bounds_the_timeline(model, tmp_path):
    path = write(tmp_path / "long.wav", talk_pause_talk(), RATE)
    analysis, tl = analyse_over_time(model, path, max_seconds=5.0)
    assert tl.duration == pytest.approx(5.0) and tl.truncated and tl.segments[-1].end == pytest.approx(5.0)
    assert analysis.probs and list(analysis.probs) == LABELS
    _, whole = analyse_over_time(model, path)
    assert whole.duration == pytest.approx(11.0) and not whole.truncated


@pytest.mark.parametrize(
    ("audio", "reason"),
    [(np.zeros(5 * RATE, np.float32), "could not hear anything"), (speech_like(0.3), "needs at least 0.5 seconds")],
)
def test_unusable_audio_says_why(model, audio, reason):
    with pytest.raises(AudioError, match=reason):
        timeline(model, audio, RATE, name="'x.wav'")


def test_predict_timeline_adds_segments_to_each_line(model_dir, tmp_path, capsys):
    path = write(tmp_path / "talk.wav", talk_pause_talk(), RATE)
    assert cli(["predict", "--model", str(model_dir), "--timeline", str(path)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] in LABELS and sum(row["probs"].values()) == pytest.approx(1, abs=1e-4)
    segments = row["segments"]
    assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(11.0)
    assert all(set(s) == {"start", "end", "label", "confidence"} for s in segments)
    assert any(s["label"] == SILENCE and s["confidence"] is None and s["start"] <= 5.5 < s["end"] for s in segments)

    assert cli(["predict", "--model", str(model_dir), str(path)]) == 0
    assert "segments" not in json.loads(capsys.readouterr().out)  # only when asked for

    assert cli(["predict", "--model", str(model_dir), "--timeline", "--format", "table", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + len(segments) and any(line.endswith(SILENCE) for line in table[1:])
