"""Audio in: every common file format, sample format, channel count and rate becomes mono float32 at the
model's rate; every unusable file becomes one `AudioError` with a one-line message, and is left untouched."""

import hashlib
import os
import shutil
import subprocess
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import UNUSABLE_FILES, constant_flac, cut_file, random_bytes_file, speech_like, streamed_wav, write

from ser.audio import (
    AudioError,
    audio_duration,
    decode_seconds,
    find_audio,
    load_audio,
    load_clip,
    prepare,
    stream_audio,
    to_model_rate,
)
from ser.features import FeatureConfig, log_mel_spectrogram

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


@pytest.mark.parametrize("case", list(UNUSABLE_FILES))
def test_unusable_files_raise_one_line_audio_error_and_are_left_unchanged(tmp_path, case):
    make, expected = UNUSABLE_FILES[case]
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
    message = str(pytest.raises(AudioError, load_audio, random_bytes_file(tmp_path)).value)
    assert "WAV" in message and "ffmpeg" in message


# What a copy cut at 53 % of its bytes gives, per format: the header's length and what the data holds.
CUT = [
    ("wav", r"is incomplete.* \(cut short: its header promises 3\.00 s but the file holds 1\.[0-9]{2} s\)"),
    ("aiff", r"is incomplete.* \(cut short: its header promises 3\.00 s but the file holds 1\.[0-9]{2} s\)"),
    (
        "flac",
        r"only its first 1\.[0-9] seconds can be read.* \(its header promises 3\.00 s but only the first 1\.[0-9]{2} s decode",
    ),
    pytest.param(
        "mp3",
        r"is incomplete.* \(cut short: its header promises 3\.00 s but the file holds 1\.[0-9]{2} s\)",
        marks=pytest.mark.skipif(not HAS_MP3, reason="libsndfile without MP3"),
    ),
]


@pytest.mark.parametrize("ext,message", CUT)
def test_a_file_holding_less_than_its_header_promises_is_cut_short(tmp_path, ext, message):
    path = cut_file(write(tmp_path / f"x.{ext}", speech_like(3.0)), 0.53)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path, SR)
    assert "\n" not in str(err.value) and path.name in str(err.value)
    with pytest.raises(AudioError, match="cut short"):  # whatever reads it: the stream too
        list(stream_audio(path, SR))
    assert audio_duration(path) == pytest.approx(3.0)  # what the header claims


def test_a_cut_file_still_gives_the_part_that_is_there_when_only_that_is_asked_for(tmp_path):
    path = cut_file(write(tmp_path / "x.wav", speech_like(3.0)), 0.53)  # holds 1.59 s of 3
    whole = write(tmp_path / "whole.wav", speech_like(3.0))
    np.testing.assert_array_equal(load_audio(path, SR, max_seconds=1.0), load_audio(whole, SR)[:SR])


def test_a_cut_ogg_decodes_what_is_there_since_ogg_states_no_length(tmp_path):
    """Ogg has no length field: libsndfile reads the length from the last page present, so a cut copy is a shorter
    file, not a damaged one."""
    path = cut_file(write(tmp_path / "x.ogg", speech_like(3.0)), 0.53)
    audio = load_audio(path, SR)
    assert 0.5 * SR < len(audio) < 2.0 * SR and np.isfinite(audio).all()
    assert audio_duration(path) == pytest.approx(len(audio) / SR, abs=0.01)


def test_a_streamed_wav_without_a_size_reads_what_is_there(tmp_path):
    assert len(load_audio(streamed_wav(write(tmp_path / "live.wav", speech_like(1.0))), SR)) == SR


def m4a(path, seconds: float, freq: int = 440):
    """An AAC file made by ffmpeg (a format libsndfile does not read)."""
    cmd = ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}"]
    subprocess.run([*cmd, "-c:a", "aac", str(path)], check=True, timeout=60)
    return path


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_formats_libsndfile_cannot_read_fall_back_to_ffmpeg_and_stop_at_max_seconds(tmp_path):
    path = m4a(tmp_path / "x.m4a", 3)
    audio = load_audio(path, SR)
    assert abs(len(audio) - 3 * SR) < 0.1 * SR
    assert dominant_hz(audio) == pytest.approx(440, abs=10)
    assert audio_duration(path) == pytest.approx(3, abs=0.1)  # ffmpeg's probe
    start = load_audio(path, SR, max_seconds=1.0)
    assert len(start) == SR  # the same samples, but for the resampler's ringing at the cut (ffmpeg gives 44.1 kHz)
    np.testing.assert_allclose(start[: -SR // 20], audio[: SR - SR // 20], atol=1e-6)
    np.testing.assert_allclose(np.concatenate(list(stream_audio(path, SR, block_seconds=0.7))), audio, atol=1e-6)


def test_concurrent_decodes_leave_stderr_where_it_was(tmp_path):
    """Decoding silences the C decoders' chatter on fd 2; threads decoding at once (the app) must restore it."""
    good, bad = write(tmp_path / "ok.wav", speech_like(1.0)), random_bytes_file(tmp_path)
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


# --- long files: decode only what is used, whatever the header says ---------------------------------------------


@pytest.fixture(scope="module")
def hour_at_96k(tmp_path_factory):
    """A decompression bomb: 77 kB of FLAC that decodes to an hour of 96 kHz audio (1.3 GB as float32)."""
    return constant_flac(tmp_path_factory.mktemp("bomb") / "hour.flac", 3600, 96000)


def test_the_bomb_is_what_it_claims(hour_at_96k):
    assert hour_at_96k.stat().st_size < 100_000
    info = sf.info(hour_at_96k)
    assert (info.samplerate, info.channels, info.frames) == (96000, 1, 3600 * 96000)
    with sf.SoundFile(hour_at_96k) as f:  # the end decodes too: a whole file, not a cut one
        f.seek(f.frames - 1000)
        assert np.all(f.read(dtype="int16") == 8000)


def test_max_seconds_decodes_only_the_start_of_a_long_file_in_bounded_memory(hour_at_96k):
    tracemalloc.start()
    try:
        audio = load_audio(hour_at_96k, SR, max_seconds=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert audio.dtype == np.float32 and audio.shape == (30 * SR,)
    assert np.allclose(audio[SR:-SR], 8000 / 32768, atol=1e-4)  # resampling rings only at the cut edges
    # 30 s at 96 kHz is 11.5 MB of float32; the whole hour would be 1,382 MB
    assert peak < 64e6, f"peak {peak / 1e6:.0f} MB"
    assert audio_duration(hour_at_96k) == 3600.0


def test_stream_audio_yields_blocks_at_the_model_rate_in_bounded_memory(hour_at_96k):
    tracemalloc.start()
    try:
        sizes, peak = [], 0
        for block in stream_audio(hour_at_96k, SR, block_seconds=2.0, max_seconds=9.0):
            assert block.dtype == np.float32 and block.ndim == 1 and np.isfinite(block).all()
            sizes.append(len(block))
            peak = max(peak, tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert sizes == [2 * SR] * 4 + [SR]
    assert peak < 32e6, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("rate,channels", [(44100, 2), (16000, 1), (8000, 3)])
def test_stream_audio_blocks_join_into_what_load_audio_returns(tmp_path, rate, channels):
    x = np.stack([speech_like(3.3, sr=rate, seed=c) for c in range(channels)], axis=1)
    path = write(tmp_path / "x.flac", x, rate)
    blocks = list(stream_audio(path, SR, block_seconds=0.7))
    assert [len(b) for b in blocks[:-1]] == [int(0.7 * SR)] * (len(blocks) - 1)
    np.testing.assert_allclose(np.concatenate(blocks), load_audio(path, SR), atol=1e-6)
    first = list(stream_audio(path, SR, block_seconds=0.7, max_seconds=1.0))
    np.testing.assert_allclose(np.concatenate(first), load_audio(path, SR, max_seconds=1.0), atol=1e-6)


def test_the_rate_is_checked_before_anything_is_decoded(tmp_path):
    path = write(tmp_path / "x.wav", tone(440, 0.1, 200000), 200000)
    with pytest.raises(AudioError, match="sample rate 200000 Hz"):
        next(stream_audio(path, SR))


def test_audio_duration_reads_headers_and_says_none_when_it_cannot(tmp_path):
    assert audio_duration(write(tmp_path / "a.wav", speech_like(1.5))) == 1.5
    assert audio_duration(write(tmp_path / "a.flac", speech_like(2.0, sr=44100), 44100)) == pytest.approx(2.0)
    assert audio_duration(random_bytes_file(tmp_path)) is None
    assert audio_duration(tmp_path / "missing.wav") is None


def test_load_clip_decodes_the_models_maximum_plus_a_lead_of_silence(tmp_path):
    cfg = FeatureConfig(max_seconds=2.0)
    lead = np.zeros(3 * SR, np.float32)
    path = write(tmp_path / "x.wav", np.concatenate([lead, speech_like(4.0)]))
    clip = load_clip(path, cfg)
    assert decode_seconds(cfg) > 2.0 + 3.0 and len(clip) == 2 * SR


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg guesses a format from the name; without it, no guess"
)
def test_random_bytes_named_aac_are_not_a_sound_file(tmp_path):
    """ffmpeg takes them for an AAC stream of 0 Hz: that is no sound, not an unusual setting."""
    path = tmp_path / "voice.aac"
    path.write_bytes(np.random.default_rng(1).bytes(20000))
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert e.value.plain.startswith("This is not a sound file we can open"), e.value.plain


def test_a_file_deleted_while_it_is_checked_is_simply_not_there(tmp_path, monkeypatch):
    """Another request may delete an upload between two looks at it: never a FileNotFoundError."""
    path = write(tmp_path / "soon_gone.wav", speech_like())
    stat = Path.stat

    def vanishing(self, *a, **k):
        if self == path:
            self.unlink(missing_ok=True)
        return stat(self, *a, **k)

    monkeypatch.setattr(Path, "stat", vanishing)
    with pytest.raises(AudioError, match="There is no file here"):
        load_audio(path)
