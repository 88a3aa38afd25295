"""Shared fixtures: synthetic speech-like audio written to tmp_path, and a small saved model."""

import numpy as np
import pytest
import soundfile as sf

from ser.features import FeatureConfig
from ser.model import ModelConfig, SERModel


def speech_like(seconds: float = 2.0, sr: int = 16000, f0: float = 140.0, energy: float = 0.3,
                vibrato: float = 0.0, seed: int = 0, syllable_hz: float = 4.0) -> np.ndarray:  # fmt: skip
    """A voiced, syllable-modulated harmonic signal with a pitch contour and a little breath noise.

    f0 and energy set the 'emotion': e.g. high, fast, loud for anger; low, slow, soft for sadness.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t) + vibrato * np.sin(2 * np.pi * 6 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * syllable_hz * t), 0, None) ** 0.5
    audio = energy * envelope * voiced / 3 + 0.003 * rng.standard_normal(len(t))
    return audio.astype(np.float32)


def write(path, audio: np.ndarray, sr: int = 16000, subtype: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype=subtype)
    return path


@pytest.fixture
def wav(tmp_path):
    """A 2 s speech-like WAV at 16 kHz."""
    return write(tmp_path / "speech.wav", speech_like())


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A small randomly initialised model saved as a checkpoint folder (config.json + model.safetensors)."""
    path = tmp_path_factory.mktemp("model")
    torch_seed = 0
    import torch

    torch.manual_seed(torch_seed)
    labels = ["neutral", "happy", "sad", "angry"]
    SERModel(ModelConfig(labels=labels, features=FeatureConfig(), widths=[8, "M", 16, "M"], hidden=16)).save_pretrained(
        path
    )
    return path
