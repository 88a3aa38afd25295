"""Speech emotion recognition: a VGG-style CNN on log-mel spectrograms.

>>> import ser
>>> model = ser.load_model()  # the shipped model; or a checkpoint folder, a Hub id or a Hub URL
>>> analysis = ser.analyse_file(model, "voice.wav")
>>> analysis.label, analysis.probs, analysis.notes
"""

from .audio import AudioError, load_audio
from .corpora import EMOTIONS
from .features import FeatureConfig, log_mel_spectrogram
from .hub import ModelError, load_model
from .inference import Analysis, analyse, analyse_file
from .model import ModelConfig, SERModel

__all__ = [
    "EMOTIONS",
    "Analysis",
    "AudioError",
    "FeatureConfig",
    "ModelConfig",
    "ModelError",
    "SERModel",
    "analyse",
    "analyse_file",
    "load_audio",
    "load_model",
    "log_mel_spectrogram",
]
