"""Shared fixtures: synthetic speech-like audio written to tmp_path, and a small saved model."""

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.encoder import EncoderConfig
from ser.features import FeatureConfig
from ser.hub import DEFAULT_MODEL, load_model
from ser.model import ModelConfig, SERModel
from ser.voice import VoiceHead, save_voice

LABELS = ["neutral", "happy", "sad", "angry"]  # the small test model's (model_dir)


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


def reference_clips() -> list[np.ndarray]:
    """Three speech-like clips at 16 kHz for the voice encoder's parity test (tests/fixtures/encoder_reference.npz):
    a plain one, a quiet one with a 0.6 s pause (raised in loudness, the pause cut), and a low one with vibrato."""
    pause = 0.001 * np.random.default_rng(3).standard_normal(9600).astype(np.float32)
    return [
        speech_like(2.5, f0=140.0, seed=1),
        np.concatenate(
            [speech_like(1.5, f0=220.0, energy=0.03, seed=2), pause, speech_like(1.5, f0=200.0, energy=0.03, seed=4)]
        ),
        speech_like(3.0, f0=110.0, vibrato=0.05, seed=5, syllable_hz=3.0),
    ]


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
    SERModel(ModelConfig(labels=LABELS, features=FeatureConfig(), widths=[8, "M", 16, "M"], hidden=16)).save_pretrained(
        path
    )
    return path


@pytest.fixture(scope="session")
def two_listener_dir(model_dir, tmp_path_factory):
    """The small test CNN with a voice listener: the shipped encoder and a random head over the CNN's labels."""
    folder = tmp_path_factory.mktemp("two")
    for f in Path(model_dir).iterdir():
        shutil.copy2(f, folder / f.name)
    shutil.copy2(DEFAULT_MODEL / "encoder.safetensors", folder / "encoder.safetensors")
    labels = json.loads((folder / "config.json").read_text())["labels"]
    cfg, rng = EncoderConfig(), np.random.default_rng(0)
    head = VoiceHead(labels, np.zeros(cfg.dim, np.float32), np.full(cfg.dim, 0.05, np.float32),
                     rng.standard_normal((len(labels), cfg.dim)).astype(np.float32) * 0.1, np.zeros(len(labels), np.float32))  # fmt: skip
    adapted = {kind: (VoiceHead(labels, np.zeros(cfg.dim, np.float32), np.ones(cfg.dim, np.float32),
                                rng.standard_normal((len(labels), cfg.dim)).astype(np.float32), np.zeros(len(labels), np.float32)),
                      np.full(cfg.dim, 0.05, np.float32)) for kind in ("voice", "batch")}  # fmt: skip
    save_voice(folder, head, cfg, 0.5, 1.0, {"trained_on": ["test"]}, adapted)
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    """The small test model, loaded as the app loads one."""
    return load_model(model_dir)


@pytest.fixture(scope="module")
def demo(model):
    """The page for the small test model, without example clips (built, not served)."""
    from ser.app import build_demo

    return build_demo(model, examples=None)


@pytest.fixture(scope="module")
def handlers(demo) -> dict:
    """The page's event handlers by name, to call as plain functions (`on_analyse`: what Analyse runs)."""
    return {f.name: f.fn for f in demo.fns.values()}


def talk_pause_talk(folder, name: str = "talk.wav"):
    """4 s of speech, a 3 s pause, 4 s of a lower voice: a recording with a timeline to follow."""
    pause = 1e-4 * np.random.default_rng(9).standard_normal(3 * 16000).astype(np.float32)
    return write(folder / name, np.concatenate([speech_like(4.0), pause, speech_like(4.0, f0=110, seed=2)]))


# ----------------------------------------------------------------------------- unusable files, shared by test modules


def cut_file(path, keep: float):
    """Keep only the first `keep` share of a file's bytes, as an interrupted copy would."""
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def garbage_after(path, start: int = 200):
    """Random bytes from `start` on: the header survives, the audio frames do not."""
    raw = bytearray(path.read_bytes())
    raw[start:] = np.random.default_rng(0).bytes(len(raw) - start)
    path.write_bytes(bytes(raw))
    return path


def streamed_wav(path):
    """A WAV as live recorders write it before they know the length: data size 0xFFFFFFFF."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data") + 4
    raw[at : at + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw))
    return path


def random_bytes_file(folder):
    """5000 random bytes named voice.m4a: no decoder reads it."""
    (folder / "voice.m4a").write_bytes(np.random.default_rng(1).bytes(5000))
    return folder / "voice.m4a"


def with_sample(value, folder, name):
    x = speech_like(1.0)
    x[5000:5010] = value
    return write(folder / name, x, 16000, "FLOAT")


def file_with(folder, name, content: bytes | None):
    """folder/name holding `content`; a folder of that name when `content` is None."""
    path = folder / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return path


# case -> (make the file in a folder, a word its one-line error must contain)
UNUSABLE_FILES = {
    "empty": (lambda d: file_with(d, "empty.wav", b""), "empty"),
    "text named .wav": (lambda d: file_with(d, "notes.wav", b"RIFF? no, a shopping list\n" * 50), "cannot decode"),
    "random bytes .m4a": (random_bytes_file, "cannot decode"),
    "FLAC cut to its header": (lambda d: cut_file(write(d / "cut.flac", speech_like(2.0)), 0.05), "damaged"),
    "WAV cut to its header": (lambda d: cut_file(write(d / "cut.wav", speech_like(2.0)), 0.001), "cut short"),
    "WAV cut short": (lambda d: cut_file(write(d / "cut2.wav", speech_like(2.0)), 0.1), "cut short"),
    "FLAC with garbage body": (lambda d: garbage_after(write(d / "bad.flac", speech_like(2.0))), "damaged"),
    "short WAV streamed (no size)": (
        lambda d: streamed_wav(write(d / "live.wav", speech_like(0.3))),
        "needs at least 0.5 seconds",
    ),
    "too short": (lambda d: write(d / "short.wav", speech_like(0.3)), "needs at least 0.5 seconds"),
    "pure silence": (lambda d: write(d / "silence.wav", np.zeros(16000, np.float32)), "could not hear anything"),
    "near silence": (lambda d: write(d / "hiss.wav", 1e-5 * speech_like(1.0)), "could not hear anything"),
    "NaN samples": (lambda d: with_sample(np.nan, d, "nan.wav"), "NaN"),
    "inf samples": (lambda d: with_sample(np.inf, d, "inf.wav"), "infinite"),
    "folder": (lambda d: file_with(d, "dir.wav", None), "folder"),
}


# ----------------------------------------------------------------------------- the app, served in this process


@pytest.fixture(scope="module")
def app_server(model_dir, tmp_path_factory):
    """The app with the small test model (no example clips), served in this process on a free port, as `python
    app.py` serves it; yields (url, Gradio's upload folder)."""
    import socket

    from ser.app import build_demo, launch

    uploads = tmp_path_factory.mktemp("served") / "gradio"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(uploads))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo = build_demo(load_model(model_dir), examples=None)
        launch(demo, server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/", uploads
        finally:
            demo.close()


# Words a visitor should never meet outside "For the curious" (the technical details): the names of corpora and
# studies, and the terms of the trade that the page replaces with plain ones or explains where it uses them. The
# app's page (tests/test_app.py) and the offline page (tests/test_offline.py) are held to them.
PAGE_JARGON = ("RAVDESS", "CREMA", "EmoDB", "Cao et al", "UAR", "F1", "dBFS", "ECE", "STFT")
PAGE_JARGON_WORDS = ("log-mel", "model input", "hz, mel", "hz (mel)", "db below", "fourier", "logarithm", "layer 5 of",
                     "filters)", "amplitude", "scores as text", "speaker-independent", "spectrogram", "corpus",
                     "cross-validation")  # fmt: skip


# ----------------------------------------------------------------------------- real-browser tests

CHROMIUM = "/usr/bin/chromium"  # Debian's package: never a downloaded browser
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
MIN_FONT_PT = 13  # the smallest text in any picture: 18 px at Gradio's 100 dpi, >= 14 px down to 78 % of that size


@pytest.fixture(scope="module")
def playwright():
    """Playwright driving Debian's Chromium; skips without it, except under CI=true, where it fails."""
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"CI=true but there is no Chromium at {CHROMIUM}: apt-get install chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); browser tests need it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("the playwright package is not installed (pip install -r requirements-test.txt)")
    with sync_playwright() as p:
        yield p


# ----------------------------------------------------------------------------- a decompression bomb


def utf8_frame_number(n: int) -> bytes:
    """FLAC's frame numbers are UTF-8 coded; three bytes cover the 5,274 frames of an hour at 96 kHz."""
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | n >> 6, 0x80 | n & 0x3F])
    assert n < 0x10000
    return bytes([0xE0 | n >> 12, 0x80 | (n >> 6) & 0x3F, 0x80 | n & 0x3F])


def flac_crc(data: bytes, poly: int, bits: int) -> int:
    crc, top, mask = 0, 1 << (bits - 1), (1 << bits) - 1
    for byte in data:
        crc ^= byte << (bits - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


def constant_flac(path, seconds: float, rate: int, value: int = 8000):
    """A valid mono 16-bit FLAC of constant sound, written frame by frame: an hour at 96 kHz is 77 kB and takes
    half a second to make (libsndfile would take ~20 s to encode it). Frames of 65535 samples, one CONSTANT
    subframe each, with the format's CRC-8 header and CRC-16 footer checks."""
    total, block = int(seconds * rate), 65535
    streaminfo = struct.pack(">HH", block, block) + bytes(6)  # block sizes; frame sizes unknown
    streaminfo += ((rate << 44) | (15 << 36) | total).to_bytes(8, "big") + bytes(16)  # mono, 16 bit; no MD5
    out = [b"fLaC", bytes([0x80, 0, 0, len(streaminfo)]), streaminfo]
    for i, start in enumerate(range(0, total, block)):
        number = utf8_frame_number(i)
        # sync, fixed blocking; size stored after the header, rate from STREAMINFO; mono, 16 bit
        header = b"\xff\xf8\x70\x08" + number + struct.pack(">H", min(block, total - start) - 1)
        frame = header + bytes([flac_crc(header, 0x07, 8)]) + b"\x00" + struct.pack(">h", value)
        out.append(frame + struct.pack(">H", flac_crc(frame, 0x8005, 16)))
    path.write_bytes(b"".join(out))
    return path
