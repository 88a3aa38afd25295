"""Analysis: from a file or an array to calibrated emotion probabilities, with what the model heard and caveats.

The one path every caller takes (the CLI, the app, Python users):

    audio (any rate, any channels) -> model rate, mono -> quality notes -> prepare (trim silence, cut to the
    model's maximum) -> log-mel -> model -> probabilities
"""

import os
from dataclasses import dataclass, field

import numpy as np

from .audio import audio_duration, decode_seconds, load_audio, prepare, to_model_rate, trim_silence
from .features import FeatureConfig, log_mel_spectrogram
from .model import SERModel
from .quality import check_quality


@dataclass
class Analysis:
    """Everything known about one input: what the model heard, what it answered, and what to beware of."""

    audio: np.ndarray  # (samples,) the clip the model heard: mono, at features.sample_rate, silence trimmed, cut
    mel: np.ndarray  # (n_mels, frames) its log-mel in dB, exactly the model's input
    probs: dict[str, float]  # label -> calibrated probability, summing to 1, in the model's label order
    truncated: bool  # the input held more sound than the model's max_seconds, and only the start was analysed
    features: FeatureConfig  # the settings `audio` and `mel` were made with (the model's own)
    notes: list[str] = field(default_factory=list)  # plain-words caveats about the input, one sentence or two each

    @property
    def label(self) -> str:
        """The most probable emotion."""
        return max(self.probs, key=self.probs.get)


def analyse(
    model: SERModel, audio: np.ndarray, rate: int, name: str = "audio", full_seconds: float | None = None
) -> Analysis:
    """Analyse an array (samples,) or (samples, channels), ints or floats, at any rate from 8 to 96 kHz.

    `name` says what the audio is in error messages; `full_seconds`, the length of the recording `audio` was
    cut from (a file decoded only as far as the analysis reads). Raises `AudioError` (one line) for silent, too short or
    damaged audio; audio that can be analysed but may mislead (clipped, very quiet, too long) gets `notes`.
    """
    cfg = model.feature_config
    mono = to_model_rate(audio, rate, cfg.sample_rate, name=name)
    clip = prepare(mono, cfg, name=name)
    # Quality is judged on what the model hears; how much was cut off is judged here, once.
    notes = check_quality(clip, cfg)
    limit = int(cfg.max_seconds * cfg.sample_rate)
    sound = len(trim_silence(mono, cfg.trim_db)) if len(clip) == limit else len(clip)
    if len(clip) == limit and full_seconds and full_seconds * cfg.sample_rate > len(mono):
        sound = max(sound, int(full_seconds * cfg.sample_rate))  # the rest of the file was not even decoded
    truncated = sound > limit
    if truncated:
        notes.append(
            f"Only the first {cfg.max_seconds:g} seconds were listened to: the recording has "
            f"{sound / cfg.sample_rate:.0f} seconds of sound, and the model takes {cfg.max_seconds:g} at most. "
            "To hear another part, cut it out and upload that part."
        )
    mel = log_mel_spectrogram(clip, cfg)
    probs = model.probabilities(mel).tolist()  # the very mel the app draws: computed once
    return Analysis(clip, mel.numpy(), dict(zip(model.labels, probs)), truncated, cfg, notes)


def analyse_file(model: SERModel, path: str | os.PathLike) -> Analysis:
    """Analyse an audio file (any format `load_audio` reads). Raises `AudioError` with a one-line reason."""
    cfg = model.feature_config
    audio = load_audio(path, cfg.sample_rate, max_seconds=decode_seconds(cfg))  # bounded whatever the header says
    return analyse(model, audio, cfg.sample_rate, name=f"'{path}'", full_seconds=audio_duration(path))
