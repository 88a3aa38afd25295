"""Feature parameters and the log-mel spectrogram: the one place both are defined.

Every consumer (training, evaluation, prediction, the app's picture) calls `log_mel_spectrogram`
with the `FeatureConfig` stored in the model, never these module defaults directly.
"""

from dataclasses import asdict, dataclass
from functools import lru_cache

import librosa
import numpy as np
import torch


@dataclass
class FeatureConfig:
    """Audio front-end settings. Saved inside every model's config.json and read back from it."""

    sample_rate: int = 16000  # speech carries little emotion above 8 kHz; the corpora are 16 kHz
    n_fft: int = 400  # 25 ms analysis window, the usual speech frame
    hop_length: int = 160  # 10 ms hop: 100 frames per second
    n_mels: int = 64  # enough resolution for pitch harmonics and formants, cheap for a CNN
    fmin: float = 50.0  # below the lowest male F0; drops mains hum and rumble
    fmax: float = 8000.0  # Nyquist at 16 kHz
    top_db: float = 80.0  # dynamic range kept below each clip's loudest bin (a fixed noise floor)
    clip_seconds: float = 2.0  # training crop (most corpus clips are 2-4 s); inference takes any length
    min_seconds: float = 0.5  # shorter audio carries too little prosody to judge
    max_seconds: float = 30.0  # longer input is cut to this for prediction
    trim_db: float = 30.0  # leading/trailing silence quieter than peak - trim_db is removed

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def min_samples(self) -> int:
        return int(round(self.min_seconds * self.sample_rate))

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=8)
def _mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """Slaney-normalised mel filterbank, shape (n_mels, n_fft // 2 + 1)."""
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(fb.astype(np.float32))


def mel_frequencies(cfg: FeatureConfig) -> np.ndarray:
    """Centre frequency in Hz of each mel band, shape (n_mels,), for plot axes."""
    return librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)[1:-1]


def stft_power(audio: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Power spectrogram of float audio (..., samples) -> (..., n_fft // 2 + 1, frames)."""
    shape = audio.shape
    audio = audio.reshape(-1, shape[-1])
    window = torch.hann_window(cfg.n_fft, device=audio.device)
    spec = torch.stft(audio, cfg.n_fft, cfg.hop_length, window=window, center=True, return_complex=True)
    power = spec.real**2 + spec.imag**2
    return power.reshape(*shape[:-1], *power.shape[-2:])


def power_to_mel(power: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Power spectrogram (..., n_freqs, frames) -> mel power (..., n_mels, frames), still on a linear scale."""
    fb = _mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax).to(power.device)
    return torch.matmul(fb, power)


def power_to_log_mel(power: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Power spectrogram (..., n_freqs, frames) -> log-mel in dB (..., n_mels, frames).

    Each clip is floored at its own maximum minus `top_db`, so digital silence and very quiet
    recordings share one floor instead of sitting at an arbitrary -100 dB.
    """
    db = 10.0 * torch.log10(power_to_mel(power, cfg).clamp(min=1e-10))
    peak = db.amax(dim=(-2, -1), keepdim=True)
    return torch.maximum(db, peak - cfg.top_db)


def log_mel_spectrogram(audio: np.ndarray | torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """The model's input: log-mel spectrogram in dB of mono audio at `cfg.sample_rate`.

    audio: (samples,) or (batch, samples) float in [-1, 1].
    Returns float32 (n_mels, frames) or (batch, n_mels, frames), frames = samples // hop_length + 1.
    """
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return power_to_log_mel(stft_power(audio.float(), cfg), cfg)
