"""Augmentations that imitate other voices, microphones and rooms, on batches in torch.

Order follows the physical chain: room (reverb) -> background noise -> gain -> codec on the
waveform; microphone EQ, band-limiting and a vocal-tract-length warp on the power spectrogram;
SpecAugment masks on the log-mel. Speed perturbation happens when cropping (`data.crop`).
"""

from dataclasses import dataclass

import torch


@dataclass
class AugmentConfig:
    p_reverb: float = 0.3  # synthetic room impulse responses
    rt60: tuple[float, float] = (0.15, 0.7)  # seconds; living room to classroom
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)  # white/pink/brown noise at a random SNR
    gain_db: float = 6.0
    p_codec: float = 0.1  # 8-bit mu-law quantisation, like telephone audio
    p_eq: float = 0.5
    eq_db: float = 6.0  # random smooth microphone response, +-eq_db
    p_bandlimit: float = 0.25
    lowpass_hz: tuple[float, float] = (3400.0, 7000.0)
    highpass_hz: tuple[float, float] = (60.0, 300.0)
    p_warp: float = 0.3
    warp: tuple[float, float] = (0.9, 1.1)  # frequency-axis scaling (vocal tract length)
    p_speed: float = 0.5
    speed: tuple[float, float] = (0.9, 1.1)
    freq_masks: int = 2
    freq_mask_bands: int = 8
    time_masks: int = 2
    time_mask_fraction: float = 0.08


def _uniform(lo: float, hi: float, n: int, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _chosen(p: float, n: int, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=g) < p).float()


def reverb(wave: torch.Tensor, sr: int, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Convolve with exponentially decaying noise (a diffuse room tail) plus the direct path."""
    b, n = wave.shape
    pick = _chosen(cfg.p_reverb, b, g)[:, None]
    length = int(cfg.rt60[1] * sr)
    t = torch.arange(length) / sr
    rt60 = _uniform(*cfg.rt60, b, g)[:, None]
    rir = torch.randn(b, length, generator=g) * torch.exp(-6.9 * t / rt60) * 0.3
    rir[:, 0] = 1.0
    size = n + length
    wet = torch.fft.irfft(torch.fft.rfft(wave, size) * torch.fft.rfft(rir, size), size)[:, :n]
    wet = wet * (wave.std(dim=1, keepdim=True) / (wet.std(dim=1, keepdim=True) + 1e-8))
    return pick * wet + (1 - pick) * wave


def noise(wave: torch.Tensor, sr: int, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Add white (beta=0), pink (1) or brown (2) noise at a random SNR."""
    b, n = wave.shape
    spec = torch.fft.rfft(torch.randn(b, n, generator=g))
    freqs = torch.fft.rfftfreq(n, 1 / sr).clamp(min=20.0)
    beta = torch.randint(0, 3, (b, 1), generator=g).float()
    colored = torch.fft.irfft(spec * freqs ** (-beta / 2), n)
    snr = _uniform(*cfg.snr_db, b, g)[:, None]
    signal_power = wave.pow(2).mean(dim=1, keepdim=True)
    scale = torch.sqrt(signal_power / (colored.pow(2).mean(dim=1, keepdim=True) + 1e-12) / 10 ** (snr / 10))
    return wave + _chosen(cfg.p_noise, b, g)[:, None] * scale * colored


def gain_and_codec(wave: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    b = wave.shape[0]
    wave = wave * 10 ** (_uniform(-cfg.gain_db, cfg.gain_db, b, g)[:, None] / 20)
    mu = 255.0
    peak = wave.abs().amax(dim=1, keepdim=True) + 1e-8
    x = wave / peak
    coded = torch.sign(x) * torch.log1p(mu * x.abs()) / torch.log1p(torch.tensor(mu))
    coded = torch.round(coded * 127) / 127
    decoded = torch.sign(coded) * ((1 + mu) ** coded.abs() - 1) / mu * peak
    pick = _chosen(cfg.p_codec, b, g)[:, None]
    return pick * decoded + (1 - pick) * wave


def channel(power: torch.Tensor, sr: int, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Microphone EQ, band-limiting and frequency warping on a power spectrogram (B, F, T)."""
    b, n_freq, _ = power.shape
    hz = torch.linspace(0, sr / 2, n_freq)
    # Smooth EQ: three random cosines over log-frequency, in dB.
    logf = torch.log2(hz.clamp(min=50.0) / 50.0)[None, :]
    phases = torch.rand(b, 3, 1, generator=g) * 6.283
    rates = torch.rand(b, 3, 1, generator=g) * 0.8 + 0.1
    amps = (torch.rand(b, 3, 1, generator=g) * 2 - 1) * cfg.eq_db / 2
    eq_db = (amps * torch.cos(rates * 6.283 * logf[:, None, :] + phases)).sum(dim=1)  # (B, F)
    eq_db = eq_db * _chosen(cfg.p_eq, b, g)[:, None]
    # Band-limiting: steep roll-off outside [highpass, lowpass].
    low = _uniform(*cfg.lowpass_hz, b, g)[:, None]
    high = _uniform(*cfg.highpass_hz, b, g)[:, None]
    band_db = -60.0 * (torch.sigmoid((hz - low) / 100) + torch.sigmoid((high - hz) / 20))
    band_db = band_db * _chosen(cfg.p_bandlimit, b, g)[:, None]
    power = power * 10 ** ((eq_db + band_db) / 10)[:, :, None]
    # Vocal tract length warp: read bin f from bin f * alpha (linear interpolation).
    alpha = torch.where(_chosen(cfg.p_warp, b, g) > 0, _uniform(*cfg.warp, b, g), torch.ones(b))
    src = (torch.arange(n_freq)[None, :] * alpha[:, None]).clamp(max=n_freq - 1)  # (B, F)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=n_freq - 1)
    w = (src - lo)[:, :, None]
    gather = lambda idx: torch.gather(power, 1, idx[:, :, None].expand_as(power))  # noqa: E731
    return (1 - w) * gather(lo) + w * gather(hi)


def spec_augment(mel: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Mask random mel bands and time spans (B, n_mels, T), filled with each clip's mean."""
    b, n_mels, n_frames = mel.shape
    mel = mel.clone()
    fill = mel.mean(dim=(1, 2))
    for _ in range(cfg.freq_masks):
        width = torch.randint(0, cfg.freq_mask_bands + 1, (b,), generator=g)
        start = (torch.rand(b, generator=g) * (n_mels - width)).long()
        band = torch.arange(n_mels)[None, :]
        mask = (band >= start[:, None]) & (band < (start + width)[:, None])
        mel = torch.where(mask[:, :, None], fill[:, None, None], mel)
    max_t = int(cfg.time_mask_fraction * n_frames)
    for _ in range(cfg.time_masks):
        width = torch.randint(0, max_t + 1, (b,), generator=g)
        start = (torch.rand(b, generator=g) * (n_frames - width)).long()
        frame = torch.arange(n_frames)[None, :]
        mask = (frame >= start[:, None]) & (frame < (start + width)[:, None])
        mel = torch.where(mask[:, None, :], fill[:, None, None], mel)
    return mel
