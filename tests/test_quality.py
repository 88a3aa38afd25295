"""Quality notes and the voice detector: sounds that are not speech get a plain-words note, speech does not."""

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import speech_like

from ser.audio import load_audio, prepare
from ser.features import FeatureConfig
from ser.quality import MIN_SPEECH_FRACTION, check_quality
from ser.vad import (
    FRAME,
    FRAME_SECONDS,
    VAD_RATE,
    _Detector,
    block_speech_probabilities,
    speech_fraction,
    speech_probabilities,
)

SR = 16000
CFG = FeatureConfig()
RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess" / "Actor_01"
NOT_SPEECH = "does not sound like someone talking"


def tone(freqs, seconds: float = 3.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)).astype(np.float32)


def noise(seconds: float = 3.0, seed: int = 0, level: float = 0.3) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SR))).clip(-1, 1).astype(np.float32)


NON_SPEECH = {
    "white noise": noise(),
    "quiet white noise": noise(level=0.003),
    "pure tone": tone([440]),
    "C major chord": tone([261.6, 329.6, 392.0]),
    "chord with harmonics": tone([f * h for f in (220.0, 277.2, 329.6) for h in (1, 2, 3)]),
}


@pytest.mark.parametrize("name", list(NON_SPEECH))
def test_sounds_that_are_not_speech_get_a_plain_words_note(name):
    notes = check_quality(prepare(NON_SPEECH[name], CFG), CFG)
    assert len([n for n in notes if NOT_SPEECH in n]) == 1
    (note,) = [n for n in notes if NOT_SPEECH in n]
    assert "\n" not in note and "Record someone speaking" in note


@pytest.mark.parametrize("seed", range(3))
def test_synthetic_voice_gets_no_note(seed):
    """conftest's `speech_like` (a voiced harmonic source in syllables) is heard as speech by the detector:
    speech fractions 0.9 and above at its default pitch. It stands in for real speech in the other tests."""
    clip = prepare(speech_like(2.0, seed=seed), CFG)
    assert speech_fraction(clip, SR) > 0.5
    assert check_quality(clip, CFG) == []


@pytest.mark.skipif(not RAVDESS.is_dir(), reason="the RAVDESS corpus is not beside the repo (../shared/data)")
def test_real_speech_gets_no_note():
    clips = sorted(RAVDESS.glob("*.flac"))[:8]
    for path in clips:
        clip = prepare(load_audio(path, SR), CFG)
        assert not [n for n in check_quality(clip, CFG) if NOT_SPEECH in n], path.name


def test_silence_is_left_to_prepare_not_called_non_speech():
    assert check_quality(np.zeros(SR, np.float32), CFG) == []


def test_speech_probabilities_shape_range_and_rate():
    x = speech_like(2.0)
    probs = speech_probabilities(x, SR)
    assert probs.shape == (int(np.ceil(len(x) / FRAME)),) and probs.dtype == np.float32
    assert ((0 <= probs) & (probs <= 1)).all()
    assert FRAME_SECONDS == FRAME / VAD_RATE == 0.032
    at_48k = speech_probabilities(speech_like(2.0, sr=48000), 48000)  # resampled to the detector's rate
    assert at_48k.shape == probs.shape
    assert abs(float(np.mean(at_48k >= 0.5)) - float(np.mean(probs >= 0.5))) < 0.1
    assert speech_probabilities(np.zeros(0, np.float32), SR).shape == (0,)


def test_level_does_not_decide_what_is_speech():
    x = speech_like(2.0)
    assert speech_fraction(0.01 * x, SR) == pytest.approx(speech_fraction(x, SR), abs=0.02)
    assert speech_fraction(noise(level=1.0), SR) < MIN_SPEECH_FRACTION


def test_detector_matches_silero_vads_own_frame_by_frame_loop():
    """ser.vad reorders the package's network for speed (front end on all frames at once); its probabilities
    must stay those of the package's own `audio_forward`, here and after any upgrade of silero-vad."""
    path = Path(importlib.util.find_spec("silero_vad").origin).parent / "data" / "silero_vad.jit"
    jit = torch.jit.load(str(path), map_location="cpu")
    x = np.concatenate([np.zeros(4000, np.float32), speech_like(2.0, seed=1), noise(1.0)])
    theirs = jit.audio_forward(torch.from_numpy(x), VAD_RATE).reshape(-1).numpy()
    ours = _Detector(jit)(torch.from_numpy(x)).numpy()
    assert ours.shape == theirs.shape and theirs.max() > 0.9 and theirs.min() < 0.1  # both kinds of frame
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_blocks_judged_side_by_side_are_judged_as_one_at_a_time():
    """The timeline's blocks share the detector's passes (`block_speech_probabilities`): each block still starts
    afresh at its own level, whatever its length, neighbours and rate."""
    blocks = [speech_like(2.0, seed=1), 0.01 * speech_like(2.0, seed=2), noise(0.7), speech_like(0.4, seed=3)]
    for rate, sized in ((SR, blocks), (8000, [b[::2] for b in blocks])):
        together = block_speech_probabilities(sized, rate, side_by_side=3)  # a group of 3, then one of 1
        alone = [speech_probabilities(b, rate) for b in sized]
        assert [len(p) for p in together] == [len(p) for p in alone]
        for t, a in zip(together, alone):
            np.testing.assert_allclose(t, a, atol=1e-5)
    assert max(alone[0]) > 0.9 and min(alone[2]) < 0.1  # both kinds of frame


def test_detector_is_thread_safe_and_leaves_torch_threads_alone():
    threads = torch.get_num_threads()
    inputs = [speech_like(1.5, seed=s) for s in range(4)] + [noise(1.5, seed=s) for s in range(4)]
    alone = [speech_fraction(x, SR) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda x: speech_fraction(x, SR), inputs * 3))
    assert together == alone * 3
    assert torch.get_num_threads() == threads  # importing silero_vad would have set it to 1
