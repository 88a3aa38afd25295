"""Live mode: a microphone stream fed chunk by chunk, judged on its newest seconds, with its delay measured, and the
answers of the last few seconds averaged so that a steady voice reads as steady."""

import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from conftest import constant_flac, speech_like, write

from ser.audio import AudioError
from ser.features import FeatureConfig, log_mel_spectrogram
from ser.hub import load_model
from ser.live import CHUNK_SECONDS, SHOW_SECONDS, SMOOTH_SECONDS, LiveSession, RecentAverage
from ser.model import ModelConfig, SERModel

ROOT = Path(__file__).resolve().parents[1]
MIC = 48000  # what browsers record at
CHUNK = MIC // 2  # Gradio sends one every 0.5 s


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    labels = ["neutral", "happy", "sad", "angry"]
    return SERModel(ModelConfig(labels=labels, features=FeatureConfig(), widths=[8, "M", 16, "M"], hidden=16)).eval()


def voice(seconds: float) -> np.ndarray:
    """Speech-like sound as a browser sends it: 16-bit at 48 kHz."""
    return (soxr.resample(speech_like(seconds), 16000, MIC) * 32767).astype(np.int16)


def chunks(audio: np.ndarray, size: int = CHUNK):
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def test_the_newest_seconds_are_judged_as_one_clip(model):
    cfg, audio = model.feature_config, voice(5.0)
    session = LiveSession(model)
    frames = [session.feed(c, MIC) for c in chunks(audio)]
    assert frames[0].probs is None and frames[0].listened == 0.5  # 0.5 s holds too little speech to judge
    last = frames[-1]
    assert last.listened == cfg.clip_seconds and list(last.probs) == model.labels
    assert sum(last.probs.values()) == pytest.approx(1, abs=1e-5)
    # One resampler across chunks: the same as resampling the whole stream, so the verdict is that of its end.
    whole = soxr.resample((audio / 32768).astype(np.float32), MIC, cfg.sample_rate)
    newest = whole[-int(cfg.clip_seconds * cfg.sample_rate) :]
    expected = model.probabilities(log_mel_spectrogram(newest, cfg)).numpy()
    np.testing.assert_allclose(list(last.probs.values()), expected, atol=2e-3)
    assert last.mel.shape == (cfg.n_mels, int(SHOW_SECONDS * cfg.frames_per_second) + 1)


def test_silence_is_not_judged(model):
    session = LiveSession(model)
    hiss = (20 * np.random.default_rng(0).standard_normal(4 * MIC)).astype(np.int16)  # -64 dBFS of noise
    assert all(session.feed(c, MIC).probs is None for c in chunks(hiss))


def test_a_long_chunk_costs_no_more_than_a_short_one(model):
    """A server that fell behind gets more audio at once; it keeps only the newest SHOW_SECONDS."""
    session = LiveSession(model)
    frame = session.feed(voice(40.0), MIC)
    assert len(session.buffer) == SHOW_SECONDS * model.feature_config.sample_rate
    assert frame.listened == model.feature_config.clip_seconds and frame.probs is not None
    assert session.received == pytest.approx(40.0)


def test_behind_is_the_age_of_the_newest_sound_when_the_answer_is_ready(model):
    now = [1000.0]
    session = LiveSession(model, clock=lambda: now[0])
    assert session.feed(voice(0.5), MIC, arrived=999.3).behind == pytest.approx(0.7)
    assert session.feed(voice(0.5), MIC).behind == 0  # arrived now, answered at once by this clock


def test_a_chunk_file_is_dated_by_its_arrival(model, tmp_path):
    path = write(tmp_path / "audio.wav", voice(0.5), MIC, "PCM_16")
    os.utime(path, (time.time() - 2, time.time() - 2))  # it reached the server 2 s ago
    frame = LiveSession(model).feed_file(path)
    assert 2 <= frame.behind < 30 and frame.listened == 0.5


def test_broken_streams_say_why(model, tmp_path):
    session = LiveSession(model)
    session.feed(voice(0.5), MIC)
    with pytest.raises(AudioError, match="changed its settings while recording"):
        session.feed(voice(0.5), 44100)
    with pytest.raises(AudioError, match="NaN"):
        LiveSession(model).feed(np.full(1000, np.nan, np.float32), MIC)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not audio" * 20)
    with pytest.raises(AudioError, match="cannot read a chunk"):
        LiveSession(model).feed_file(tmp_path / "bad.wav")


def test_the_average_covers_the_last_seconds_of_sound():
    average = RecentAverage(seconds=2.0)
    assert average.add(None, 0.5) is None and not average.heard_speech  # nothing heard yet
    assert average.add({"a": 1.0, "b": 0.0}, 1.0) is None and average.heard_speech  # one answer is not shown alone
    assert average.add({"a": 0.0, "b": 1.0}, 1.5) == pytest.approx({"a": 0.5, "b": 0.5})
    assert average.add(None, 2.5) == pytest.approx({"a": 0.5, "b": 0.5})  # a pause: the last answers still count
    assert average.add({"a": 0.0, "b": 1.0}, 3.2) == pytest.approx({"a": 0.0, "b": 1.0})  # 1.0 is 2.2 s old: gone
    assert average.add(None, 5.5) is None and average.heard_speech  # no speech in the last 2 s


def top_changes(tops: list[str | None]) -> list[int]:
    """For each 10 s (20 answers) of a stream, how often its top emotion changed."""
    return [sum(a != b for a, b in zip(tops[i : i + 20], tops[i + 1 : i + 21])) for i in range(len(tops) - 20)]


def test_a_steady_voice_reads_steady():
    """A looped sad example (one actor, one sentence, as the class would hear a steady voice) through the shipped
    model: its answers half a second apart flip between close emotions; their average over SMOOTH_SECONDS changes
    at most once in any 10 s. (The clip is one the shipped model flickers on: on the angry one it is steady.)"""
    model = load_model(None)
    clip, rate = sf.read(ROOT / "examples" / "sad_ravdess-19_male.flac", dtype="float32")
    stream = (soxr.resample(np.tile(clip, 6), rate, MIC) * 32767).astype(np.int16)  # ~25 s, as a browser sends it
    session, average = LiveSession(model), RecentAverage()
    raw, shown = [], []
    for chunk in chunks(stream):
        probs = session.feed(chunk, MIC).probs
        smooth = average.add(probs, session.received)
        raw += [max(probs, key=probs.get)] if probs is not None else []
        shown += [max(smooth, key=smooth.get)] if smooth is not None else []
    assert len(shown) >= 40 and average.seconds == SMOOTH_SECONDS
    assert max(top_changes(raw)) >= 3, raw  # the flicker this is about
    assert max(top_changes(shown)) <= 1, shown


@pytest.mark.parametrize(
    "bomb",
    [
        lambda d: constant_flac(d / "hour.flac", 3600, 96000),  # 77 kB claiming an hour at 96 kHz: 1.3 GB as float32
        lambda d: write(d / "wide.flac", np.zeros((20 * 96000, 8), np.int16), 96000, "PCM_16"),  # 8 channels, 20 s
        lambda d: write(d / "long.ogg", voice(2 * CHUNK_SECONDS), MIC, "VORBIS"),  # no header count: decoded, cut
    ],
    ids=["hour at 96 kHz", "8 channels", "ogg"],
)
def test_a_chunk_longer_than_a_few_seconds_is_refused_before_it_costs_more(model, tmp_path, bomb):
    path = bomb(tmp_path)
    session, start = LiveSession(model), time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match="could not be read") as refused:
            session.feed_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "too long" in refused.value.detail
    assert peak < 64e6, f"peak {peak / 1e6:.0f} MB"  # CHUNK_SECONDS at 96 kHz is 2 MB of float32
    assert time.monotonic() - start < 30  # generous on a loaded machine; the bench measures it (well under 1 s)
    assert session.received == 0  # nothing was fed


def test_a_chunk_as_chromium_sends_it_is_taken(model, tmp_path):
    """Chromium's live chunks state a data size of 4 GiB less their header (0xFFFFFFD3): a placeholder, not a claim
    of 6 hours to refuse, nor a cut file."""
    path = write(tmp_path / "audio.wav", voice(0.5), MIC, "PCM_16")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    raw[at : at + 4] = (0xFFFFFFFF - 44).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    assert LiveSession(model).feed_file(path).listened == 0.5
