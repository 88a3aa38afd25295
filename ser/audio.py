"""Audio in: decode any common file to mono float32 at the model's rate, and check it is usable.

Files are only ever read. Every problem is raised as `AudioError` with a one-line message that
says what was wrong and what to do about it.
"""

import contextlib
import os
import shutil
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import audioread
import librosa
import numpy as np
import soundfile as sf
import soxr

from .features import FeatureConfig

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aif", ".aiff")
LEAD_SECONDS = 10.0  # silence before the first sound that an analysis still decodes past (see decode_seconds)
SILENCE_DBFS = -60.0  # a peak below this is treated as silence: nothing to analyse
MIN_RATE, MAX_RATE = 8000, 96000
# Decoding reads this many samples (frames x channels) at a time and averages the channels at once, so a block
# costs at most 4 MiB of float32 whatever channel count a header claims; and at most BLOCK_FRAMES frames.
BLOCK_VALUES, BLOCK_FRAMES = 2**20, 2**16
# A WAV data size this large is a placeholder: recorders that stream (browsers among them) write 0xFFFFFFFF, or that
# less the header's bytes (0xFFFFFFD3 from Chromium's live chunks), before they know the length.
STREAMING_SIZE = 0xFFFFFFFF - 0xFFFF
CUT_TOLERANCE_SECONDS = 0.05  # codecs may end a frame or two off their header's count: more missing is a cut

# The plain words of the commonest refusals, as templates that the offline page fills too (ser.words.templates).
SILENT = "We could not hear anything. Check that the microphone is on and not muted, then record again."
TOO_SHORT = (
    "This is too short: the model needs at least {min_seconds} second{s} of sound, and this has only {seconds}. "
    "Say a whole sentence and record again."
)
UNREADABLE = "This is not a sound file we can open, or it is damaged. Save it as a WAV or MP3 file and try again."
EMPTY = "This file is empty. Record it or save it again."
NO_SOUND = "This file holds no sound. Record it or save it again."
TOO_BIG = "This file is too big ({mb} MB): send one of {max_mb} MB at most, e.g. the part you want analysed."
# The largest file the app (an upload, or a file handed to an MCP tool) and the offline page take: ten minutes of
# the largest common recording, 16-bit 48 kHz stereo WAV (115 MB, 110 MiB); compressed files this size last hours,
# and the timeline reads only their first minutes.
MAX_FILE_BYTES = 120 * 1024**2  # 126 MB


class AudioError(ValueError):
    """Audio that cannot be used, said two ways. `plain`: what is wrong and what to do, in words a 14-year-old
    follows and no jargon (the app shows it). `str(e)`: the one line the CLI and logs print, the input's `name`,
    then `plain`, then the technical `detail` in brackets for whoever has to dig further."""

    def __init__(self, plain: str, detail: str = "", name: str = ""):
        self.plain, self.detail, self.name = plain, detail, name
        super().__init__(f"{name}: " * bool(name) + plain + f" ({detail})" * bool(detail))


def silent_error(name: str) -> AudioError:
    return AudioError(
        SILENT,
        f"loudest point below {SILENCE_DBFS:.0f} dBFS",
        name,
    )


def too_short_error(name: str, seconds: float, cfg: FeatureConfig) -> AudioError:
    plural = "s" * (cfg.min_seconds != 1)
    return AudioError(
        TOO_SHORT.format(min_seconds=f"{cfg.min_seconds:g}", s=plural, seconds=f"{seconds:.2g}"),
        f"{seconds:.2f} s of sound; min_seconds is {cfg.min_seconds:g}",
        name,
    )


def damaged_error(name: str, detail: str, readable: float | None = None) -> AudioError:
    start = "This file is damaged or cut short"
    if readable:
        start += f": only its first {readable:.1f} seconds can be read"
    return AudioError(f"{start}. Copy it or save it again.", detail, name)


def _quoted(path) -> str:
    return f"'{path}'"


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


class _Reader:
    """An audio file opened for reading from the start in blocks: libsndfile when it knows the format (WAV, FLAC,
    OGG, MP3, AIFF), else ffmpeg through audioread. Nothing is decoded until `blocks` is iterated."""

    def __init__(self, path: Path):
        self.path, self.declared, self.kind, self._sf, self._ar, self._sf_error = path, None, None, None, None, ""
        try:
            with _quiet_c_stderr():
                self._sf = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:  # a format libsndfile does not read
            self._sf_error = str(e).strip().removeprefix("Error : ").rstrip(".")
            self._open_audioread()
        else:
            self.rate, self.channels, self.kind = self._sf.samplerate, self._sf.channels, self._sf.format
            # libsndfile counts WAV/AIFF frames from the bytes present; FLAC and MP3 headers state their own
            self.declared = _pcm_declared_frames(path)
            if self.declared is None and self.kind in ("FLAC", "MP3"):
                self.declared = self._sf.frames
        if not MIN_RATE <= self.rate <= MAX_RATE:  # before decoding anything: the rate bounds what a read costs
            self.close()
            raise rate_error(_quoted(path), self.rate)

    def _open_audioread(self):
        try:
            self._ar = audioread.audio_open(str(self.path))
        except Exception as e:  # audioread raises a zoo of types; all mean "could not decode"
            raise self._undecodable(e) from None
        self.rate, self.channels = int(self._ar.samplerate or 0), int(self._ar.channels or 0)
        if self.rate <= 0 or self.channels <= 0:  # ffmpeg guessed a format from random bytes, but found no sound
            self.close()
            raise AudioError(
                UNREADABLE,
                f"cannot decode: ffmpeg finds no audio stream in it ({self.rate} Hz, {self.channels} channels)",
                _quoted(self.path),
            )

    def _undecodable(self, e: Exception) -> AudioError:
        name = _quoted(self.path)
        if type(e).__name__ == "NoBackendError" and shutil.which("ffmpeg") is None:
            return AudioError(
                "This kind of file cannot be opened here. Save it as a WAV or MP3 file and try again.",
                f"cannot decode: libsndfile does not read it ({self._sf_error}); install ffmpeg to read more formats",
                name,
            )
        if type(e).__name__ == "NoBackendError":
            return AudioError(
                UNREADABLE,
                "cannot decode: neither libsndfile nor ffmpeg reads it",
                name,
            )
        return damaged_error(name, f"cannot decode: {str(e).strip() or type(e).__name__}")

    def blocks(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """Mono float32 blocks (frames,) at `self.rate`, at most `max_frames` in all, each at most `BLOCK_VALUES`
        samples before the channels are averaged. Raises `AudioError` when the data ends before the header said."""
        held, want = 0, max_frames if max_frames is not None else np.inf
        try:
            if self._sf is not None:
                step = max(1, min(BLOCK_FRAMES, BLOCK_VALUES // self.channels))
                while held < want:
                    asked = int(min(step, want - held))
                    block = self._sf_read(asked)
                    held += len(block)
                    if len(block):
                        yield block
                    if len(block) < asked:  # the end of the file
                        break
            else:
                for block in self._audioread_blocks():
                    block = block[: int(min(len(block), want - held))]
                    held += len(block)
                    yield block
                    if held >= want:
                        break
        except _Damaged as e:
            raise self._broken(held + self._decodable_from(held), max_frames, str(e)) from None
        if (promised := self._promised(max_frames)) is not None and held < promised - self._tolerance:
            raise AudioError(
                "This file is incomplete: it stops part-way, as if copying or saving it was interrupted. "
                "Copy it or save it again.",
                f"cut short: its header promises {promised / self.rate:.2f} s but the file holds {held / self.rate:.2f} s",
                _quoted(self.path),
            )

    def _sf_read(self, frames: int) -> np.ndarray:
        try:
            with _quiet_c_stderr():  # per block: a long stream must not hold fd 2 for minutes
                data = self._sf.read(frames, dtype="float32", always_2d=True)  # (frames, channels)
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:  # a frame that does not decode
            raise _Damaged(str(e).strip().removeprefix("Error : ").rstrip(".") or "decoding failed") from None
        return data.mean(axis=1) if self.channels > 1 else data[:, 0]

    def _audioread_blocks(self) -> Iterator[np.ndarray]:
        rest = b""  # audioread hands out bytes of 16-bit PCM, not always whole frames
        try:
            for buf in self._ar:
                buf = rest + bytes(buf)
                whole = len(buf) - len(buf) % (2 * self.channels)
                buf, rest = buf[:whole], buf[whole:]
                data = np.frombuffer(buf, "<i2").reshape(-1, self.channels).astype(np.float32) / 32768
                if len(data):
                    yield data.mean(axis=1) if self.channels > 1 else data[:, 0]
        except Exception as e:  # ffmpeg gave up part-way
            raise _Damaged(str(e).strip() or type(e).__name__) from None

    def _decodable_from(self, start: int) -> int:
        """How many frames after `start` still decode, read in small steps (a failed read returns nothing)."""
        count = 0
        try:
            if self._sf is None:
                return 0
            self._sf.seek(start)
            while count < BLOCK_FRAMES and len(block := self._sf_read(4096)):
                count += len(block)
        except (_Damaged, sf.LibsndfileError, RuntimeError, ValueError):
            pass
        return count

    @property
    def claimed_seconds(self) -> float | None:
        """Seconds of audio the file claims (its header, libsndfile's count or ffmpeg's probe), before decoding;
        None when it does not say."""
        if self._sf is not None:
            frames = self._sf.frames if self.declared is None else self.declared
            return frames / self.rate if frames > 0 else None
        seconds = float(getattr(self._ar, "duration", 0) or 0)
        return seconds if seconds > 0 else None

    @property
    def _tolerance(self) -> float:
        return CUT_TOLERANCE_SECONDS * self.rate

    def _promised(self, max_frames: int | None) -> int | None:
        """Frames the header promises of the part asked for; None when it does not say."""
        if self.declared is None:
            return None
        return self.declared if max_frames is None else min(self.declared, max_frames)

    def _broken(self, held: int, max_frames: int | None, reason: str) -> AudioError:
        """The error for a stream that stopped decoding after `held` frames."""
        kind = f"{self.kind}: " if self.kind else ""
        if held == 0:
            return damaged_error(_quoted(self.path), f"cannot decode: {kind}{reason}")
        promised = self._promised(max_frames)
        said = f"its header promises {promised / self.rate:.2f} s but " if promised and promised > held else ""
        detail = f"{said}only the first {held / self.rate:.2f} s decode; {kind}{reason}"
        return damaged_error(_quoted(self.path), detail, readable=held / self.rate)

    def close(self):
        for f in (self._sf, self._ar):
            if f is not None:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Damaged(Exception):
    """A stream that stopped decoding part-way (internal; becomes an AudioError that says how far it got)."""


def _checked(path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        info = path.stat()  # once: a file deleted meanwhile is "not here", never a FileNotFoundError
    except (FileNotFoundError, NotADirectoryError):
        raise AudioError(
            "There is no file here. Check the file's name and folder.", "file not found", _quoted(path)
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError("This is a folder, not a sound file. Choose one sound file.", "a folder", _quoted(path))
    if info.st_size == 0:
        raise AudioError(EMPTY, "0 bytes", _quoted(path))
    return path


def load_audio(path: str | os.PathLike, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """Read an audio file as mono float32 at `sample_rate`, shape (samples,).

    Any channel count is averaged to mono; any rate is resampled (soxr high quality). With `max_seconds`, only
    that much from the start is decoded and resampled, so memory and time stay bounded whatever length the file
    claims (a small FLAC of constant sound can hold hours). Raises `AudioError` for a file that cannot be used,
    including one whose header promises more audio than it holds (of the part asked for).
    """
    path = _checked(path)
    with _Reader(path) as reader:
        max_frames = None if max_seconds is None else int(np.ceil(max_seconds * reader.rate))
        parts = list(reader.blocks(max_frames))
        rate = reader.rate
    if not parts:
        raise no_sound_error(_quoted(path))
    audio = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return to_model_rate(audio, rate, sample_rate, name=_quoted(path))


def load_piece(path: str | os.PathLike, max_seconds: float) -> tuple[np.ndarray, int]:
    """A short recording, such as a piece of a live stream, as mono float32 (samples,) at its own rate, and that rate.

    Refused with `AudioError` when it holds more than `max_seconds`: at once when its header says so, and otherwise
    once `max_seconds` have been decoded, so memory and time stay bounded whatever the file claims (a small FLAC of
    constant sound can hold an hour at 96 kHz). The same reader and checks as `load_audio`, without resampling.
    """
    path = _checked(path)
    with _Reader(path) as reader:
        rate, limit = reader.rate, int(np.ceil(max_seconds * reader.rate))
        claimed = reader.claimed_seconds
        if claimed is not None and claimed * rate > limit + reader._tolerance:
            raise too_long_error(_quoted(path), claimed, max_seconds)
        parts = list(reader.blocks(limit + 1))
    held = sum(len(p) for p in parts)
    if held > limit:
        raise too_long_error(_quoted(path), None, max_seconds)
    if not held:
        raise no_sound_error(_quoted(path))
    audio = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if not np.isfinite(audio).all():
        raise not_finite_error(_quoted(path))
    return audio, rate


def stream_audio(
    path: str | os.PathLike, sample_rate: int = 16000, block_seconds: float = 30.0, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Yield a long recording as consecutive mono float32 blocks (samples,) at `sample_rate`, `block_seconds` each
    (the last one shorter), decoding and resampling as it goes: memory stays bounded by the block size.

    Together the blocks equal `load_audio(path, sample_rate, max_seconds)` to float rounding (one resampler runs
    across block edges). Problems with the file raise `AudioError`, possibly after some blocks were yielded (a file that
    ends before its header said is found out when the stream gets there).
    """
    path = _checked(path)
    block = max(1, int(round(block_seconds * sample_rate)))
    with _Reader(path) as reader:
        rate = reader.rate
        max_frames = None if max_seconds is None else int(np.ceil(max_seconds * rate))
        stream = None if rate == sample_rate else soxr.ResampleStream(rate, sample_rate, 1, "float32", quality="HQ")
        pending, count, total = [], 0, 0
        for part in reader.blocks(max_frames):
            if not np.isfinite(part).all():
                raise not_finite_error(_quoted(path))
            part = stream.resample_chunk(part) if stream is not None else part
            pending.append(part)
            count += len(part)
            total += len(part)
            while count >= block:
                joined = np.concatenate(pending)
                yield np.ascontiguousarray(joined[:block])
                pending, count = [joined[block:]], count - block
        if stream is not None:
            pending.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        rest = np.concatenate(pending) if pending else np.zeros(0, np.float32)
        if total == 0 and not len(rest):
            raise no_sound_error(_quoted(path))
        if len(rest):
            yield np.ascontiguousarray(rest, dtype=np.float32)


def audio_duration(path: str | os.PathLike) -> float | None:
    """Seconds of audio in a file, from its header (libsndfile) or ffmpeg's probe, without decoding it; None when
    neither can tell (unreadable file, or a stream that does not state its length).

    This is what the header claims: `load_audio` and `stream_audio` raise `AudioError` if the data ends sooner.
    (Ogg files state no length; libsndfile reads it from their last page, so a cut Ogg looks whole.)
    """
    try:
        with _Reader(_checked(path)) as reader:
            return reader.claimed_seconds
    except AudioError:
        return None


def rate_error(name: str, rate: int) -> AudioError:
    return AudioError(
        f"This recording was made with an unusual setting ({rate:,} measurements a second) that we cannot use. "
        "Record it again with an ordinary microphone or app.",
        f"sample rate {rate} Hz; {MIN_RATE // 1000} kHz to {MAX_RATE // 1000} kHz are supported",
        name,
    )


def too_long_error(name: str, seconds: float | None, max_seconds: float) -> AudioError:
    held = f"{seconds:.0f} s" if seconds is not None else "more"
    return AudioError(
        f"This piece of sound is too long: we take at most {max_seconds:g} seconds at a time. Record a shorter one.",
        f"too long: {held}; at most {max_seconds:g} s is decoded",
        name,
    )


def not_finite_error(name: str) -> AudioError:
    return AudioError(
        "This recording is damaged: it holds values that are not sound. Save it again from the app that made it.",
        "NaN or infinite samples",
        name,
    )


def no_sound_error(name: str) -> AudioError:
    return AudioError(NO_SOUND, "no audio samples", name)


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
        raise AudioError(
            "This is not sound the model can use.",
            f"expected mono or multi-channel audio, got an array of shape {audio.shape}",
            name,
        )
    if not np.isfinite(audio).all():
        raise not_finite_error(name)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise rate_error(name, rate)
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
        raise silent_error(name)
    trimmed = trim_silence(audio, cfg.trim_db)
    if len(trimmed) < cfg.min_samples:
        raise too_short_error(name, len(trimmed) / cfg.sample_rate, cfg)
    return trimmed[: int(cfg.max_seconds * cfg.sample_rate)].copy()


def trim_silence(audio: np.ndarray, top_db: float) -> np.ndarray:
    """Drop leading and trailing audio quieter than the clip's peak minus `top_db` dB."""
    _, (start, end) = librosa.effects.trim(audio, top_db=top_db, frame_length=512, hop_length=128)
    return audio[start:end]


def load_clip(path: str | os.PathLike, cfg: FeatureConfig) -> np.ndarray:
    """`load_audio` then `prepare`: a file as the model hears it (training reads its clips this way)."""
    audio = load_audio(path, cfg.sample_rate, max_seconds=decode_seconds(cfg))
    return prepare(audio, cfg, name=_quoted(path))


def decode_seconds(cfg: FeatureConfig) -> float:
    """How much of a file's start an analysis can use: `cfg.max_seconds` of sound after up to `LEAD_SECONDS` of
    silence (which `prepare` trims). Pass it as `load_audio(..., max_seconds=)` to decode no more than that."""
    return cfg.max_seconds + LEAD_SECONDS


def _pcm_declared_frames(path: Path) -> int | None:
    """Frames a WAV or AIFF header declares; libsndfile quietly reports only the frames present, so a cut copy
    looks whole to it. None for other formats, or a size left as a streaming placeholder."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:  # deleted since libsndfile opened it: its frames are all there is to go by
        return None
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        block, pos = None, 12
        while pos + 8 <= len(head):
            chunk, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
            if chunk == b"fmt " and pos + 22 <= len(head):
                block = struct.unpack("<H", head[pos + 20 : pos + 22])[0]  # bytes per frame
            if chunk == b"data":  # 0, or 4 GiB less what the header took: a streaming recorder's placeholder
                return size // block if block and 0 < size < STREAMING_SIZE else None
            pos += 8 + size + (size & 1)
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        pos = 12
        while pos + 8 <= len(head):
            chunk, size = head[pos : pos + 4], struct.unpack(">I", head[pos + 4 : pos + 8])[0]
            if chunk == b"COMM" and pos + 14 <= len(head):
                return struct.unpack(">I", head[pos + 10 : pos + 14])[0] or None
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
