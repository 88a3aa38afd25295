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
    "short WAV streamed (no size)": (lambda d: streamed_wav(write(d / "live.wav", speech_like(0.3))), "at least 0.5 s"),
    "too short": (lambda d: write(d / "short.wav", speech_like(0.3)), "at least 0.5 s"),
    "pure silence": (lambda d: write(d / "silence.wav", np.zeros(16000, np.float32)), "silent"),
    "near silence": (lambda d: write(d / "hiss.wav", 1e-5 * speech_like(1.0)), "silent"),
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

    import app
    from ser.hub import load_model

    uploads = tmp_path_factory.mktemp("served") / "gradio"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(uploads))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo = app.build_demo(load_model(model_dir), examples=None)
        app.launch(demo, server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/", uploads
        finally:
            demo.close()
