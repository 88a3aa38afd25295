"""Live mode: the emotion of the last few seconds of a microphone stream, updated as its chunks arrive.

A browser streams the recording in chunks (the app asks Gradio for one every half second); each is uploaded as a
small WAV file, then handed to the app's handler. Gradio runs one handler at a time per stream and keeps only the
newest chunk that arrived meanwhile, so chunks never queue up on the server: when it falls behind, older chunks
are skipped. `LiveSession.feed` keeps only the newest SHOW_SECONDS and judges only the newest listening window,
so the work per chunk is bounded too. `RecentAverage` averages the answers of the last few seconds, which is what
the page shows: a steady voice then reads as steady.

How far behind real time the answer is: `behind` is the age of the newest sound in the answer when the answer is
ready, measured from when its chunk reached the server (its file's time). It counts the wait for the handler and
the analysis; not the half second a chunk takes to record, nor the trips over the network.
"""

import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from .audio import AudioError, load_piece, to_model_rate
from .features import log_mel_spectrogram
from .model import SERModel
from .vad import FRAME_SECONDS, SPEECH_THRESHOLD, speech_probabilities

SHOW_SECONDS = 6.0  # the rolling spectrogram shows this much: a sentence or two
# The longest chunk taken from a file: the page sends half a second at a time, so 10 times that is a stream that fell
# behind; more is refused before it is decoded (a tiny FLAC can claim an hour at 96 kHz: 3 GB as float32).
CHUNK_SECONDS = 5.0


@dataclass
class LiveFrame:
    """What the live view shows after one chunk."""

    probs: dict[str, float] | None  # label -> probability of the newest listening window; None: no speech in it
    mel: np.ndarray  # (n_mels, frames) log-mel in dB of the newest SHOW_SECONDS (silence before the stream began)
    behind: float  # seconds from the newest sound reaching the server to this answer (see the module docstring)
    listened: float  # seconds of sound the verdict is about (at most the model's clip_seconds)


class LiveSession:
    """One microphone stream: a resampler that carries over between chunks, and the newest SHOW_SECONDS of sound."""

    def __init__(self, model: SERModel, clock=time.time):  # wall-clock time, as file times are
        self.model, self.clock = model, clock
        cfg = model.feature_config
        self.buffer = np.zeros(int(SHOW_SECONDS * cfg.sample_rate), np.float32)  # the newest audio, at model rate
        self.rate: int | None = None
        self.resampler: soxr.ResampleStream | None = None
        self.received = 0.0  # seconds of audio received so far

    def feed(self, chunk: np.ndarray, rate: int, arrived: float | None = None) -> LiveFrame:
        """Take the next chunk (samples,) or (samples, channels) at `rate` Hz, which reached the server at `arrived`
        (the clock's time; default: now), and judge the newest audio.

        Raises `AudioError` for a rate outside 8 to 96 kHz, a rate that changes mid-stream, or NaN samples.
        Resampled to the model's rate by one resampler for the whole stream, so chunks join without clicks.
        """
        arrived = self.clock() if arrived is None else arrived
        cfg = self.model.feature_config
        if self.rate is not None and rate != self.rate:
            raise AudioError(
                "The microphone changed its settings while recording. Press Record again.",
                f"sample rate changed from {self.rate} Hz to {rate} Hz mid-stream",
                "the microphone stream",
            )
        mono = to_model_rate(chunk, rate, rate, name="the microphone stream")  # mono float32, checked; same rate
        if self.resampler is None:
            self.rate, self.resampler = rate, soxr.ResampleStream(rate, cfg.sample_rate, 1, dtype="float32")
        new = self.resampler.resample_chunk(mono)[-len(self.buffer) :]
        self.buffer = np.concatenate([self.buffer[len(new) :], new])
        self.received += len(mono) / rate

        heard = min(self.received, cfg.clip_seconds)
        window = self.buffer[len(self.buffer) - int(heard * cfg.sample_rate) :]
        probs = None
        if len(window) >= cfg.min_samples:
            speech = (speech_probabilities(window, cfg.sample_rate) >= SPEECH_THRESHOLD).sum() * FRAME_SECONDS
            if speech >= cfg.min_seconds:  # as in the timeline: less speech than this is not judged
                p = self.model.probabilities(log_mel_spectrogram(window, cfg)).tolist()
                probs = dict(zip(self.model.labels, p))
        mel = log_mel_spectrogram(self.buffer, cfg).numpy()
        return LiveFrame(probs, mel, max(0.0, self.clock() - arrived), heard)

    def feed_file(self, path: str | os.PathLike) -> LiveFrame:
        """`feed` a chunk uploaded as an audio file; it reached the server when the file was written.

        Decoded by the bounded reader uploads take (`audio.load_piece`): a chunk longer than CHUNK_SECONDS is
        refused before it costs more than that much sound, whatever length its header claims.
        """
        try:
            arrived = Path(path).stat().st_mtime
            chunk, rate = load_piece(path, CHUNK_SECONDS)
        except (AudioError, OSError) as e:
            raise AudioError(
                "A piece of the microphone's sound could not be read. Press Record again.",
                f"cannot read a chunk: {e.detail if isinstance(e, AudioError) else ' '.join(str(e).split())}",
                "the microphone stream",
            ) from None
        return self.feed(chunk, rate, arrived=arrived)


# The live bars average the answers of this many seconds of sound: judged one half second at a time, a steady angry
# voice flickered between two close emotions about 8 times in 12 s; averaged over 4 s it changed once in 24 s, and a
# real change of voice still shows within a few seconds.
SMOOTH_SECONDS = 4.0
# Answers an average needs before it is shown: one alone, judged on the first second or two of a voice, is often a
# near tie (disgust 40 %, angry 39 %) that the next answer overturns.
MIN_ANSWERS = 2


class RecentAverage:
    """The mean of a stream's answers over its last `seconds` of sound, so that the class sees the voice change,
    not every syllable."""

    def __init__(self, seconds: float = SMOOTH_SECONDS):
        self.seconds = seconds
        self.judged: deque[tuple[float, dict[str, float]]] = deque()  # (stream time, probabilities), oldest first
        self.heard_speech = False  # any answer at all since the stream began

    def add(self, probs: dict[str, float] | None, at: float) -> dict[str, float] | None:
        """Take one answer (None: no speech was judged) given when the stream held `at` seconds of sound; return
        the mean of the answers of the last `seconds`, or None when fewer than MIN_ANSWERS of them heard speech."""
        if probs is not None:
            self.judged.append((at, probs))
            self.heard_speech = True
        while self.judged and self.judged[0][0] <= at - self.seconds:
            self.judged.popleft()
        if len(self.judged) < MIN_ANSWERS:
            return None
        return {k: float(np.mean([p[k] for _, p in self.judged])) for k in self.judged[-1][1]}
