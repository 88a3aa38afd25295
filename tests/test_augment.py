"""Augmentations keep shapes, stay finite, and do what they say on synthetic audio."""

import numpy as np
import torch
from conftest import speech_like

from ser import augment
from ser.augment import AugmentConfig
from ser.data import Clips, crop, played_at
from ser.features import FeatureConfig, stft_power
from ser.training import _batch

FC = FeatureConfig()


def _wave(n=4, seconds=1.0):
    return torch.from_numpy(np.stack([speech_like(seconds, seed=i) for i in range(n)]))


def test_noise_is_added_at_the_requested_snr():
    wave, g = _wave(), torch.Generator().manual_seed(0)
    cfg = AugmentConfig(p_noise=1.0, snr_db=(10.0, 10.0))
    noisy = augment.noise(wave, FC.sample_rate, cfg, g)
    snr = 10 * torch.log10(wave.pow(2).mean(1) / (noisy - wave).pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 10.0), atol=0.2)


def test_probability_zero_leaves_the_signal_alone():
    wave, g = _wave(), torch.Generator().manual_seed(0)
    off = AugmentConfig(p_noise=0, p_reverb=0, p_codec=0, gain_db=0, p_eq=0, p_bandlimit=0, p_warp=0)
    assert torch.allclose(augment.noise(wave, FC.sample_rate, off, g), wave)
    assert torch.allclose(augment.reverb(wave, FC.sample_rate, off, g), wave)
    assert torch.allclose(augment.gain_and_codec(wave, off, g), wave, atol=1e-6)
    power = stft_power(wave, FC)
    assert torch.allclose(augment.channel(power, FC.sample_rate, off, g), power, rtol=1e-5, atol=1e-8)


def test_reverb_spreads_energy_later_in_time():
    click = torch.zeros(1, 16000)
    click[0, 100] = 1.0
    wet = augment.reverb(click, FC.sample_rate, AugmentConfig(p_reverb=1.0, rt60=(0.5, 0.5)), torch.Generator())
    assert wet[0, 2000:].abs().max() > 1e-3 * wet.abs().max()  # a tail long after the click
    assert wet[0, :100].abs().max() < 1e-5 * wet.abs().max()  # and nothing before it


def test_band_limiting_removes_high_frequencies():
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32))
    power = stft_power(wave, FC)
    cfg = AugmentConfig(p_eq=0, p_bandlimit=1.0, lowpass_hz=(3400.0, 3400.0), p_warp=0)
    out = augment.channel(power, FC.sample_rate, cfg, torch.Generator())
    high = slice(int(5000 / 8000 * (power.shape[1] - 1)), None)
    assert (out[:, high].mean() / power[:, high].mean()) < 1e-4
    assert torch.allclose(out[:, 25:60], power[:, 25:60], rtol=0.01)  # 1-2.4 kHz passes


def test_spec_augment_masks_and_keeps_shape():
    mel = torch.randn(3, 64, 200)
    out = augment.spec_augment(mel, AugmentConfig(freq_masks=1, freq_mask_bands=8, time_masks=1), torch.Generator())
    assert out.shape == mel.shape and torch.isfinite(out).all() and not torch.equal(out, mel)


def test_crop_loops_short_clips_and_changes_speed():
    rng = np.random.default_rng(0)
    short = np.arange(100, dtype=np.float32)
    assert len(crop(short, 1000, rng)) == 1000
    ramp = np.linspace(0, 1, 48000, dtype=np.float32)
    fast = crop(ramp, 16000, rng, speed=1.1)
    assert len(fast) == 16000 and np.allclose(np.diff(fast).mean(), 1.1 * np.diff(ramp).mean(), rtol=1e-3)


def test_played_at_raises_pitch_and_tempo_together_and_keeps_the_original():
    sr = 16000
    tone = np.sin(2 * np.pi * 200 * np.arange(sr) / sr).astype(np.float32)
    kept = tone.copy()
    for speed in (0.8, 1.25):
        out = played_at(tone, speed, sr)
        spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
        assert len(out) == round(sr / speed) and abs(np.argmax(spectrum) * sr / len(out) - 200 * speed) < 2
    assert played_at(tone, 1.0, sr) is tone and np.array_equal(tone, kept)


def test_augmented_training_batch_is_finite_log_mel():
    clips = Clips([speech_like(1.5, seed=i) for i in range(4)], ["sad"] * 4, ["a"] * 4, ["x"] * 4, [""] * 4)
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    mel = _batch(clips, np.arange(4), FC, AugmentConfig(), rng, g, "cpu")
    assert mel.shape == (4, FC.n_mels, FC.clip_samples // FC.hop_length + 1) and torch.isfinite(mel).all()
