"""Speech emotion recognition: a VGG-style CNN on log-mel spectrograms."""

from .audio import AudioError, load_audio
from .corpora import EMOTIONS
from .features import FeatureConfig, log_mel_spectrogram
from .hub import load_model
from .inference import analyse, predict_file
from .model import ModelConfig, SERModel

__all__ = [
    "AudioError",
    "EMOTIONS",
    "FeatureConfig",
    "ModelConfig",
    "SERModel",
    "analyse",
    "load_audio",
    "load_model",
    "log_mel_spectrogram",
    "predict_file",
]
