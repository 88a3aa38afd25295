"""Audio in: decode any common file to mono float32 at the model's rate, and check it is usable.

Files are only ever read. Every problem is raised as `AudioError` with a one-line message that
says what was wrong and what to do about it.
"""

import contextlib
import os
import shutil
import struct
import threading
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from .features import FeatureConfig

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aif", ".aiff")
SILENCE_DBFS = -60.0  # a peak below this is treated as silence: nothing to analyse
MIN_RATE, MAX_RATE = 8000, 96000


# librosa's notices when it falls back to audioread; our own message says what happened. Filters set once here, since
# warnings.catch_warnings() is not thread-safe and the app decodes in several threads.
warnings.filterwarnings("ignore", message="PySoundFile failed", category=UserWarning)
warnings.filterwarnings("ignore", message=".*__audioread_load", category=FutureWarning)


class AudioError(ValueError):
    """Audio that cannot be used; the message is one line meant for the user."""


_QUIET = {"depth": 0, "saved": -1}  # nesting across threads: the first in redirects fd 2, the last out restores it
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_c_stderr():
    """Silence C-level stderr: libsndfile's mpg123 prints 'Cannot read next header ... Duh...' when probing a
    file that is not MP3, on top of the one-line message we give. Safe with concurrent decodes (the app's
    worker threads); other output to fd 2 during those milliseconds is dropped too."""
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            try:
                saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
            except OSError:  # no usable fd 2 (some embedded hosts): nothing to silence
                saved = -1
            else:
                os.dup2(devnull, 2)
                os.close(devnull)
            _QUIET["saved"] = saved
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0 and _QUIET["saved"] >= 0:
                os.dup2(_QUIET["saved"], 2)
                os.close(_QUIET["saved"])


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode with libsndfile (WAV/FLAC/OGG/MP3), falling back to ffmpeg via audioread."""
    try:
        with _quiet_c_stderr():
            data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data.T, rate
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:  # unknown format; truncated or malformed stream
        sf_error = str(e).strip().removeprefix("Error : ").rstrip(".")
    try:
        with _quiet_c_stderr():  # librosa probes with soundfile again first
            data, rate = librosa.load(path, sr=None, mono=False, dtype=np.float32)
        return np.atleast_2d(data), int(rate)
    except Exception as e:  # audioread raises a zoo of types; all mean "could not decode"
        try:  # libsndfile knows the format from the header, so the audio after it is damaged
            with _quiet_c_stderr():
                kind = sf.info(path).format
        except Exception:
            kind = None
        if kind:
            raise AudioError(
                f"cannot decode '{path}': the {kind} file is damaged or cut short ({sf_error}); copy or export it again"
            ) from None
        if type(e).__name__ == "NoBackendError" and shutil.which("ffmpeg") is None:
            raise AudioError(
                f"cannot decode '{path}': not a format soundfile reads; "
                "convert it to WAV/FLAC/OGG/MP3, or install ffmpeg to read other formats"
            ) from None
        if type(e).__name__ == "NoBackendError":
            raise AudioError(
                f"cannot decode '{path}': neither soundfile nor ffmpeg reads it ({sf_error}); convert it to WAV or FLAC"
            ) from None
        raise AudioError(
            f"cannot decode '{path}': the file is corrupt or not audio ({str(e).strip() or type(e).__name__})"
        ) from None


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Read an audio file as mono float32 at `sample_rate`, shape (samples,).

    Any channel count is averaged to mono; any rate is resampled (soxr high quality).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"file not found: '{path}'")
    if path.is_dir():
        raise AudioError(f"'{path}' is a folder; give an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"'{path}' is empty (0 bytes); record or export it again")
    data, rate = _decode(path)
    if data.size == 0:
        raise AudioError(f"'{path}' contains no audio samples; record or export it again")
    return to_model_rate(data, rate, sample_rate, name=str(path))


def to_model_rate(audio: np.ndarray, rate: int, sample_rate: int, name: str = "audio") -> np.ndarray:
    """Mono float32 at `sample_rate` from an array (samples,) or (channels, samples) of ints or floats.

    Integer arrays are scaled to [-1, 1] by their dtype's range.
    """
    audio = np.asarray(audio)
    if audio.dtype.kind in "iu":
        info = np.iinfo(audio.dtype)
        audio = (audio.astype(np.float32) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    audio = audio.astype(np.float32, copy=False)
    if audio.ndim == 2:  # Gradio/numpy convention is (samples, channels); soundfile's here is (channels, samples)
        audio = audio.mean(axis=0 if audio.shape[0] <= audio.shape[1] else 1)
    if audio.ndim != 1:
        raise AudioError(f"{name}: expected mono or multi-channel audio, got an array of shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name} contains NaN or infinite samples; the recording is damaged, export it again")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name} has a sample rate of {rate} Hz; use audio recorded at 8 kHz to 96 kHz")
    if rate != sample_rate:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(audio, dtype=np.float32)


def peak_dbfs(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20 * np.log10(peak) if peak > 0 else -np.inf


def prepare(audio: np.ndarray, cfg: FeatureConfig, name: str = "audio") -> np.ndarray:
    """Make loaded audio ready for the model: reject silence, trim silent ends, check length, cut to max.

    Returns a new array (the input is not modified). Level needs no normalising: the model
    normalises each utterance's spectrogram itself.
    """
    if peak_dbfs(audio) < SILENCE_DBFS:
        raise AudioError(
            f"{name} is silent (peak below {SILENCE_DBFS:.0f} dBFS); check the microphone and record again"
        )
    trimmed = trim_silence(audio, cfg.trim_db)
    seconds = len(trimmed) / cfg.sample_rate
    if len(trimmed) < cfg.min_samples:
        raise AudioError(
            f"{name} has {seconds:.2f} s of sound; the model needs at least {cfg.min_seconds:g} s, record a longer phrase"
        )
    return trimmed[: int(cfg.max_seconds * cfg.sample_rate)].copy()


def trim_silence(audio: np.ndarray, top_db: float) -> np.ndarray:
    """Drop leading and trailing audio quieter than the clip's peak minus `top_db` dB."""
    _, (start, end) = librosa.effects.trim(audio, top_db=top_db, frame_length=512, hop_length=128)
    return audio[start:end]


def load_clip(path: str | os.PathLike, cfg: FeatureConfig) -> np.ndarray:
    """`load_audio` then `prepare`: what prediction and training read from a file."""
    audio = load_audio(path, cfg.sample_rate)
    try:
        return prepare(audio, cfg, name=f"'{path}'")
    except AudioError:
        declared, held = _wav_declared_seconds(Path(path)), len(audio) / cfg.sample_rate
        if declared is not None and declared > held + 0.01:  # the real problem is an incomplete copy
            raise AudioError(
                f"'{path}' is cut short: its header promises {declared:.2f} s but the file holds {held:.2f} s; "
                "copy or export it again"
            ) from None
        raise


def _wav_declared_seconds(path: Path) -> float | None:
    """Duration a RIFF/WAVE header declares (libsndfile quietly reads only what is there); None if not a WAV
    or the size is a streaming placeholder."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, rate, block = 12, None, None
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk == b"fmt " and pos + 24 <= len(head):
            rate, block = (
                struct.unpack("<I", head[pos + 12 : pos + 16])[0],
                struct.unpack("<H", head[pos + 20 : pos + 22])[0],
            )
        if chunk == b"data":
            if not rate or not block or size in (0, 0xFFFFFFFF):
                return None
            return size / block / rate
        pos += 8 + size + (size & 1)
    return None


def find_audio(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (searched recursively for audio extensions), sorted, in input order."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            found.append(p)
    return found
