"""Audio in: every common file format, sample format, channel count and rate becomes mono float32 at the
model's rate; every unusable file becomes one `AudioError` with a one-line message, and is left untouched."""

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speech_like, write

from ser.audio import AudioError, find_audio, load_audio, load_clip, prepare, to_model_rate
from ser.features import FeatureConfig, log_mel_spectrogram
from ser.inference import analyse, predict_file
from ser.model import SERModel

SR = 16000
CFG = FeatureConfig()
HAS_MP3 = "MP3" in sf.available_formats()


def tone(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def dominant_hz(audio: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sr)[spectrum.argmax()])


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# (extension, libsndfile subtype, whether decoding is exact up to the sample format)
FORMATS = [
    ("wav", "PCM_16", True),
    ("wav", "PCM_32", True),
    ("wav", "FLOAT", True),
    ("flac", "PCM_16", True),
    ("flac", "PCM_24", True),
    ("ogg", "VORBIS", False),
    pytest.param(
        "mp3", "MPEG_LAYER_III", False, marks=pytest.mark.skipif(not HAS_MP3, reason="libsndfile without MP3")
    ),
]


@pytest.mark.parametrize("ext,subtype,lossless", FORMATS)
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_formats_and_channels_become_mono_at_model_rate(tmp_path, ext, subtype, lossless, channels):
    if ext == "mp3" and channels > 2:
        pytest.skip("MP3 holds at most two channels")
    rate, seconds = 44100, 0.6
    gains = np.linspace(0.2, 0.6, channels)  # different level per channel: the mono mix is their mean
    frames = np.stack([g * tone(1000, seconds, rate, 1.0) for g in gains], axis=1)
    path = write(tmp_path / f"x.{ext}", frames, rate, subtype)

    audio = load_audio(path, SR)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - seconds * SR) <= (1 if lossless else 0.1 * SR)  # codecs pad a frame or two
    assert dominant_hz(audio) == pytest.approx(1000, abs=30)
    middle = audio[len(audio) // 4 : 3 * len(audio) // 4]
    assert np.abs(middle).max() == pytest.approx(gains.mean(), rel=0.02 if lossless else 0.2)


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2])
def test_any_rate_resamples_to_model_rate_with_right_duration_and_pitch(tmp_path, rate, channels):
    seconds = 0.75
    mono = tone(440, seconds, rate)
    path = write(tmp_path / "x.flac", np.stack([mono] * channels, axis=1) if channels > 1 else mono, rate)

    audio = load_audio(path, SR)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - len(mono) * SR / rate) <= 1
    assert dominant_hz(audio) == pytest.approx(440, abs=5)  # a wrong rate would shift the pitch


@pytest.mark.parametrize("rate", [4000, 200000])
def test_sample_rate_outside_supported_range_is_an_audio_error(tmp_path, rate):
    path = write(tmp_path / "x.wav", tone(440, 0.5, rate) if rate < 100000 else tone(440, 0.1, rate), rate)
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(path, SR)


@pytest.mark.parametrize("dtype,scale,offset", [(np.int16, 2**15, 0), (np.int32, 2**31, 0), (np.uint8, 2**7, 2**7)])
def test_to_model_rate_scales_integer_arrays_to_unit_range(dtype, scale, offset):
    x = speech_like(0.3, seed=1)  # peaks well below full scale
    ints = np.round(x.astype(np.float64) * scale + offset).astype(dtype)

    out = to_model_rate(ints, SR, SR)

    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, x, atol=1 / scale)


def test_to_model_rate_full_scale_ints_stay_within_unit_range():
    for dtype in (np.int16, np.int32, np.uint8):
        info = np.iinfo(dtype)
        out = to_model_rate(np.array([info.min, info.max] * 200, dtype=dtype), SR, SR)
        assert out.min() == -1.0 and 0.99 < out.max() <= 1.0


def test_to_model_rate_averages_channels_in_either_layout():
    left, right = speech_like(0.3, seed=1), speech_like(0.3, seed=2)
    expected = (left + right) / 2
    np.testing.assert_allclose(to_model_rate(np.stack([left, right]), SR, SR), expected, atol=1e-7)  # (ch, n)
    np.testing.assert_allclose(to_model_rate(np.stack([left, right], axis=1), SR, SR), expected, atol=1e-7)  # (n, ch)
    stereo16 = (np.stack([left, right], axis=1) * 32767).astype(np.int16)  # what Gradio hands the app
    out = to_model_rate(stereo16, 48000, SR)
    assert out.dtype == np.float32 and out.shape == (round(len(left) * SR / 48000),)


def test_to_model_rate_rejects_non_finite_and_odd_shapes():
    x = speech_like(0.3)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[10] = bad
        with pytest.raises(AudioError, match="NaN or infinite"):
            to_model_rate(y, SR, SR)
    with pytest.raises(AudioError, match="shape"):
        to_model_rate(np.zeros((2, 3, 400), np.float32), SR, SR)


@pytest.mark.parametrize("rate,subtype", [(SR, "FLOAT"), (44100, "FLOAT"), (22050, "PCM_16")])
def test_file_and_same_array_give_identical_features(tmp_path, rate, subtype):
    x = speech_like(1.2, sr=rate, seed=3)
    path = write(tmp_path / "x.wav", x, rate, subtype)
    as_read = sf.read(path, dtype="int16" if subtype == "PCM_16" else "float32")[0]  # the array a caller would hold

    from_file = log_mel_spectrogram(load_audio(path, SR), CFG)
    from_array = log_mel_spectrogram(to_model_rate(as_read, rate, SR), CFG)

    assert torch.equal(from_file, from_array)
    if rate == SR:
        assert torch.equal(from_file, log_mel_spectrogram(x, CFG))


def test_predict_file_equals_analyse_on_the_array(tmp_path, model_dir):
    model = SERModel.from_pretrained(model_dir)
    x = speech_like(1.5, sr=48000, seed=4)
    path = write(tmp_path / "x.wav", x, 48000, "FLOAT")

    from_file = predict_file(model, path)
    from_array = analyse(model, x, 48000).probs

    assert list(from_file) == model.labels
    assert from_file == pytest.approx(from_array, abs=1e-6)
    assert sum(from_file.values()) == pytest.approx(1.0, abs=1e-5)


def test_analyse_reports_truncation_of_long_input(model_dir):
    model = SERModel.from_pretrained(model_dir)
    cfg = model.feature_config
    long = np.tile(speech_like(1.0), int(cfg.max_seconds) + 5)

    result = analyse(model, long, SR)

    assert result.truncated and len(result.audio) == int(cfg.max_seconds * SR)
    assert result.mel.shape == (cfg.n_mels, len(result.audio) // cfg.hop_length + 1)
    assert not analyse(model, speech_like(2.0), SR).truncated


def test_prepare_trims_silent_ends_cuts_to_max_and_never_modifies_input():
    cfg = FeatureConfig(max_seconds=2.0)
    speech = speech_like(3.0, seed=5)
    padded = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(SR, np.float32)])
    before = padded.copy()

    out = prepare(padded, cfg)

    assert np.array_equal(padded, before)
    assert len(out) == 2 * SR
    assert np.abs(out[:160]).max() > 0  # leading second of digital silence is gone


def test_find_audio_expands_folders_recursively_and_keeps_files_in_order(tmp_path):
    a = write(tmp_path / "d" / "b.wav", speech_like(0.1))
    b = write(tmp_path / "d" / "sub" / "a.FLAC", speech_like(0.1))
    (tmp_path / "d" / "notes.txt").write_text("not audio")
    single = write(tmp_path / "z.ogg", speech_like(0.1))

    found = find_audio([single, tmp_path / "d"])

    assert found == [single, a, b]


# --- unusable input: one AudioError with a one-line message, file untouched --------------------------------------


def _truncate(src, keep: float):
    raw = src.read_bytes()
    src.write_bytes(raw[: int(len(raw) * keep)])
    return src


def _corrupt(src, start: int = 200):
    """Random bytes from `start` on: the header survives, the audio frames do not."""
    raw = bytearray(src.read_bytes())
    raw[start:] = np.random.default_rng(0).bytes(len(raw) - start)
    src.write_bytes(bytes(raw))
    return src


def _streamed(src):
    """A WAV as live recorders write it before they know the length: data size 0xFFFFFFFF."""
    raw = bytearray(src.read_bytes())
    at = raw.index(b"data") + 4
    raw[at : at + 4] = b"\xff\xff\xff\xff"
    src.write_bytes(bytes(raw))
    return src


def _empty(d):
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


def _text(d):
    (d / "notes.wav").write_text("RIFF? no, a shopping list\n" * 50)
    return d / "notes.wav"


def _random_bytes(d):
    (d / "voice.m4a").write_bytes(np.random.default_rng(1).bytes(5000))
    return d / "voice.m4a"


def _folder(d):
    (d / "dir.wav").mkdir()
    return d / "dir.wav"


def _with(value, d, name):
    x = speech_like(1.0)
    x[5000:5010] = value
    return write(d / name, x, SR, "FLOAT")


# case -> (make the file in a folder, a word the message must contain)
BAD = {
    "empty": (_empty, "empty"),
    "text named .wav": (_text, "cannot decode"),
    "random bytes .m4a": (_random_bytes, "cannot decode"),
    "FLAC cut to its header": (lambda d: _truncate(write(d / "cut.flac", speech_like(2.0)), 0.05), "damaged"),
    "WAV cut to its header": (lambda d: _truncate(write(d / "cut.wav", speech_like(2.0)), 0.001), "cut short"),
    "WAV cut short": (lambda d: _truncate(write(d / "cut2.wav", speech_like(2.0)), 0.1), "cut short"),
    "FLAC with garbage body": (lambda d: _corrupt(write(d / "bad.flac", speech_like(2.0))), "damaged"),
    "short WAV streamed (no size)": (lambda d: _streamed(write(d / "live.wav", speech_like(0.3))), "at least 0.5 s"),
    "too short": (lambda d: write(d / "short.wav", speech_like(0.3)), "at least 0.5 s"),
    "pure silence": (lambda d: write(d / "silence.wav", np.zeros(SR, np.float32)), "silent"),
    "near silence": (lambda d: write(d / "hiss.wav", 1e-5 * speech_like(1.0)), "silent"),
    "NaN samples": (lambda d: _with(np.nan, d, "nan.wav"), "NaN"),
    "inf samples": (lambda d: _with(np.inf, d, "inf.wav"), "infinite"),
    "folder": (_folder, "folder"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_unusable_files_raise_one_line_audio_error_and_are_left_unchanged(tmp_path, case):
    make, expected = BAD[case]
    path = make(tmp_path)
    before = digest(path) if path.is_file() else None

    with pytest.raises(AudioError) as err:
        load_clip(path, CFG)

    message = str(err.value)
    assert message and "\n" not in message and "Traceback" not in message
    assert expected.lower() in message.lower()
    assert path.name in message  # says which file
    if before is not None:
        assert digest(path) == before


def test_missing_file_is_an_audio_error(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_undecodable_format_says_what_to_install_or_convert(tmp_path):
    message = str(pytest.raises(AudioError, load_audio, _random_bytes(tmp_path)).value)
    assert "WAV" in message and "ffmpeg" in message


@pytest.mark.parametrize("ext", ["flac", "wav", "ogg"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files_either_decode_what_is_there_or_raise_audio_error(tmp_path, ext, keep):
    path = _truncate(write(tmp_path / f"x.{ext}", speech_like(2.0)), keep)
    try:
        audio = load_clip(path, CFG)
    except AudioError as e:
        assert "\n" not in str(e)
    else:
        assert audio.dtype == np.float32 and np.isfinite(audio).all() and len(audio) <= 2 * SR


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_formats_libsndfile_cannot_read_fall_back_to_ffmpeg(tmp_path):
    path = tmp_path / "x.m4a"
    cmd = [
        "ffmpeg",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:a",
        "aac",
        str(path),
    ]
    subprocess.run(cmd, check=True, timeout=60)
    audio = load_audio(path, SR)
    assert abs(len(audio) - SR) < 0.1 * SR
    assert dominant_hz(audio) == pytest.approx(440, abs=10)


def test_concurrent_decodes_leave_stderr_where_it_was(tmp_path):
    """Decoding silences the C decoders' chatter on fd 2; threads decoding at once (the app) must restore it."""
    good, bad = write(tmp_path / "ok.wav", speech_like(1.0)), _random_bytes(tmp_path)
    before = os.fstat(2)

    def work(i):
        for _ in range(15):
            load_audio(good)
            with pytest.raises(AudioError):
                load_audio(bad)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))

    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
