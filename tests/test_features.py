"""The log-mel front end: shapes, batching, finiteness, the dB floor, gain invariance and frequency mapping."""

import numpy as np
import pytest
import torch
from conftest import speech_like, write

from ser.features import FeatureConfig, log_mel_spectrogram, mel_frequencies
from ser.hub import load_model
from ser.inference import analyse, analyse_file
from ser.model import ModelConfig, SERModel

CFG = FeatureConfig()
SR = CFG.sample_rate


def tone(freq: float, seconds: float = 0.5, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


@pytest.mark.parametrize("samples", [400, 1599, 1600, 1601, 8000, 16159, 16160, 48000])
def test_shape_is_n_mels_by_samples_over_hop_plus_one(samples):
    mel = log_mel_spectrogram(speech_like(samples / SR + 0.01)[:samples], CFG)
    assert mel.dtype == torch.float32
    assert mel.shape == (CFG.n_mels, samples // CFG.hop_length + 1)


@pytest.mark.parametrize("n_mels,hop", [(40, 160), (80, 320), (128, 100)])
def test_shape_follows_the_config_not_module_defaults(n_mels, hop):
    cfg = FeatureConfig(n_mels=n_mels, hop_length=hop)
    mel = log_mel_spectrogram(speech_like(1.0), cfg)
    assert mel.shape == (n_mels, SR // hop + 1)
    assert mel_frequencies(cfg).shape == (n_mels,)


def test_batch_equals_each_clip_alone():
    clips = np.stack([speech_like(1.0, seed=s, f0=100 + 60 * s, energy=0.05 + 0.3 * s) for s in range(3)])
    batch = log_mel_spectrogram(clips, CFG)
    assert batch.shape == (3, CFG.n_mels, SR // CFG.hop_length + 1)
    for i, clip in enumerate(clips):
        torch.testing.assert_close(batch[i], log_mel_spectrogram(clip, CFG), atol=1e-3, rtol=0)


def test_numpy_and_torch_inputs_agree():
    x = speech_like(0.5)
    torch.testing.assert_close(log_mel_spectrogram(x, CFG), log_mel_spectrogram(torch.from_numpy(x), CFG))
    # float64 arrays are accepted and give the same features
    torch.testing.assert_close(log_mel_spectrogram(x.astype(np.float64), CFG), log_mel_spectrogram(x, CFG))


@pytest.mark.parametrize(
    "audio",
    [np.zeros(SR, np.float32), 1e-9 * speech_like(1.0), speech_like(1.0), np.sign(speech_like(1.0))],
    ids=["digital-silence", "near-silence", "speech", "clipped"],
)
def test_values_are_finite_and_floored_at_peak_minus_top_db(audio):
    mel = log_mel_spectrogram(audio, CFG)
    assert torch.isfinite(mel).all()
    assert mel.min() >= mel.max() - CFG.top_db - 1e-3


def test_floor_is_reached_exactly_when_the_dynamic_range_exceeds_top_db():
    audio = np.concatenate([tone(440), np.zeros(SR // 2, np.float32)])  # a tone, then digital silence
    for top_db in (CFG.top_db, 40.0):
        mel = log_mel_spectrogram(audio, FeatureConfig(top_db=top_db))
        assert (mel.max() - mel.min()).item() == pytest.approx(top_db, abs=1e-4)


def model(norm: str = "band") -> SERModel:
    return SERModel(ModelConfig(labels=["neutral", "angry"], widths=[8, "M"], hidden=8, norm=norm))


@pytest.mark.parametrize("norm", ["band", "global"])
@pytest.mark.parametrize("gain", [0.05, 0.5, 3.0])
def test_gain_shifts_db_uniformly_and_the_model_input_is_gain_invariant(gain, norm):
    x = speech_like(1.0, seed=7)
    mel, louder = log_mel_spectrogram(x, CFG), log_mel_spectrogram(gain * x, CFG)

    shift = 20 * np.log10(gain)
    torch.testing.assert_close(louder - mel, torch.full_like(mel, shift), atol=2e-3, rtol=0)
    normalize = model(norm).normalize
    torch.testing.assert_close(normalize(louder[None]), normalize(mel[None]), atol=1e-3, rtol=0)
    assert not torch.allclose(
        normalize(louder[None]), normalize(log_mel_spectrogram(speech_like(1.0, seed=8), CFG)[None])
    )


def test_normalize_removes_the_mean_and_scales_to_unit_std():
    mel = log_mel_spectrogram(np.stack([speech_like(1.0, seed=1), speech_like(1.5, seed=2)[:SR]]), CFG)
    band, flat = model("band").normalize(mel), model("global").normalize(mel)
    torch.testing.assert_close(band.mean(dim=-1), torch.zeros(2, CFG.n_mels), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.mean(dim=(-2, -1)), torch.zeros(2), atol=1e-4, rtol=0)
    assert flat.mean(dim=-1).abs().max() > 0.1  # global keeps the spectral envelope that band removes
    for norm in (band, flat):
        torch.testing.assert_close(norm.std(dim=(-2, -1)), torch.ones(2), atol=1e-3, rtol=0)


def test_mel_band_centres_rise_within_fmin_fmax():
    centres = mel_frequencies(CFG)
    assert (np.diff(centres) > 0).all()
    assert CFG.fmin < centres[0] and centres[-1] < CFG.fmax


@pytest.mark.parametrize("band", [0, 3, 10, 20, 31, 45, 63])
def test_a_tone_at_a_band_centre_peaks_in_that_band(band):
    freq = mel_frequencies(CFG)[band]
    mel = log_mel_spectrogram(tone(freq), CFG)
    assert mel.mean(dim=1).argmax().item() == band


@pytest.mark.parametrize("freq", [130.0, 300.0, 440.0, 1000.0, 2500.0, 4000.0, 7000.0])
def test_a_tone_peaks_in_the_band_nearest_its_frequency(freq):
    centres = mel_frequencies(CFG)
    peak = log_mel_spectrogram(tone(freq), CFG).mean(dim=1).argmax().item()
    nearest = int(np.abs(centres - freq).argmin())
    # between two centres a triangular filter pair nearly ties, so allow the neighbour on the tone's side
    assert peak == nearest or (abs(peak - nearest) == 1 and (centres[peak] - freq) * (centres[nearest] - freq) < 0)


# ----------------------------------------------------------------------------- the analysis path: audio -> model input


def test_a_file_and_the_same_array_give_the_same_analysis(tmp_path, model_dir):
    model = load_model(model_dir)
    x = speech_like(1.5, sr=48000, seed=4)
    from_file = analyse_file(model, write(tmp_path / "x.wav", x, 48000, "FLOAT"))
    from_array = analyse(model, x, 48000)

    np.testing.assert_array_equal(from_file.mel, from_array.mel)
    assert from_file.probs == from_array.probs and from_file.notes == from_array.notes == []
    assert list(from_file.probs) == model.labels and sum(from_file.probs.values()) == pytest.approx(1, abs=1e-5)
    # the mel is exactly what the model read, made from exactly the audio it carries
    mel = log_mel_spectrogram(from_file.audio, from_file.features)
    np.testing.assert_array_equal(from_file.mel, mel.numpy())
    assert from_file.probs == dict(zip(model.labels, model.probabilities(mel).tolist()))
    assert from_file.label == max(from_file.probs, key=from_file.probs.get)


def test_truncated_means_more_sound_than_the_model_takes_not_a_longer_file():
    fc = FeatureConfig(max_seconds=2.0)
    model = SERModel(ModelConfig(labels=["neutral", "angry"], features=fc, widths=[8, "M"], hidden=8))
    pad = np.zeros(SR, np.float32)
    padded = analyse(model, np.concatenate([pad, speech_like(1.9), pad]), SR)  # 3.9 s file, 1.9 s of sound
    assert not padded.truncated and padded.notes == []
    long = analyse(model, np.concatenate([pad, speech_like(3.0), pad]), SR)
    assert long.truncated and len(long.audio) == 2 * SR
    assert len(long.notes) == 1 and "Only the first 2 seconds were listened to" in long.notes[0]
