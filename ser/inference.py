"""Prediction: from a file or an array to calibrated emotion probabilities."""

import os
from dataclasses import dataclass

import numpy as np

from .audio import load_audio, prepare, to_model_rate
from .features import log_mel_spectrogram
from .model import SERModel


@dataclass
class Analysis:
    """Everything the app and CLI show for one input."""

    audio: np.ndarray  # (samples,) the clip the model heard: mono, model rate, silence trimmed, cut to max
    mel: np.ndarray  # (n_mels, frames) its log-mel in dB, exactly the model's input
    probs: dict[str, float]  # label -> calibrated probability, summing to 1, in the model's label order
    truncated: bool  # the input was longer than the model's max_seconds and was cut

    @property
    def label(self) -> str:
        return max(self.probs, key=self.probs.get)


def analyse(model: SERModel, audio: np.ndarray, rate: int, name: str = "audio") -> Analysis:
    """Analyse an array (samples,) or (samples, channels), ints or floats, at any rate 8-96 kHz.

    Raises `AudioError` for silence, too-short or damaged audio.
    """
    cfg = model.feature_config
    mono = to_model_rate(audio, rate, cfg.sample_rate, name=name)
    clip = prepare(mono, cfg, name=name)
    mel = log_mel_spectrogram(clip, cfg)
    probs = model.probabilities(mel).tolist()  # the same mel the app draws: computed once
    truncated = len(mono) > cfg.max_seconds * cfg.sample_rate and len(clip) >= int(cfg.max_seconds * cfg.sample_rate)
    return Analysis(clip, mel.numpy(), dict(zip(model.labels, probs)), truncated)


def predict_file(model: SERModel, path: str | os.PathLike) -> dict[str, float]:
    """Calibrated probabilities for one audio file. Raises `AudioError` with a one-line reason."""
    cfg = model.feature_config
    audio = load_audio(path, cfg.sample_rate)
    return analyse(model, audio, cfg.sample_rate, name=f"'{path}'").probs
