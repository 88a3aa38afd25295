"""Training data: decoded-audio cache, speaker-independent splits, and batches of fixed-length crops.

The cache holds each corpus's clips decoded, resampled and trimmed (`audio.load_clip`), so a second
run never decodes audio again. Log-mels are computed per batch in torch, after the waveform and
channel augmentations that must come before the spectrogram.
"""

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .audio import AudioError, load_clip
from .corpora import Item, scan
from .features import FeatureConfig


@dataclass
class Clips:
    """Decoded clips with their labels and speakers, all aligned by index."""

    audio: list[np.ndarray]
    emotions: list[str]
    speakers: list[str]
    corpora: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.audio)

    def subset(self, idx) -> "Clips":
        return Clips(
            *([getattr(self, f)[i] for i in idx] for f in ("audio", "emotions", "speakers", "corpora", "paths"))
        )

    def __add__(self, other: "Clips") -> "Clips":
        return Clips(
            self.audio + other.audio,
            self.emotions + other.emotions,
            self.speakers + other.speakers,
            self.corpora + other.corpora,
            self.paths + other.paths,
        )


def _cache_key(items: list[Item], cfg: FeatureConfig) -> str:
    h = hashlib.sha1(json.dumps([cfg.sample_rate, cfg.trim_db, cfg.min_seconds]).encode())
    for it in items:
        st = it.path.stat()
        h.update(f"{it.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{it.emotion}|{it.speaker}".encode())
    return h.hexdigest()[:16]


def load_corpus(root: Path, corpus: str, cfg: FeatureConfig, cache_dir: Path | None = None, log=print) -> Clips:
    """Scan, decode and cache a corpus. Unparseable or unusable files are reported and skipped."""
    items, skipped = scan(root, corpus)
    if skipped:
        log(f"{corpus}: skipped {len(skipped)} file(s) whose name gives no known emotion/speaker, e.g. {skipped[0]}")
    if not items:
        raise ValueError(f"no usable '{corpus}' files under '{root}'; check the NAME=PATH pair and the file names")
    cache = Path(cache_dir) / f"{corpus}-{_cache_key(items, cfg)}.npz" if cache_dir else None
    if cache and cache.exists():
        try:
            z = np.load(cache, allow_pickle=False)
            meta = json.loads(str(z["meta"]))
            audio = _from_pcm16(z["audio"], meta["lengths"])
            return Clips(audio, meta["emotions"], meta["speakers"], [corpus] * len(audio), meta["paths"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log(f"{corpus}: the decoded-audio cache '{cache}' is damaged ({type(e).__name__}); decoding again")
    kept, audio, bad = [], [], []
    for it in tqdm(items, desc=f"decoding {corpus}", unit="clip", leave=False):
        try:
            audio.append(load_clip(it.path, cfg))
            kept.append(it)
        except AudioError as e:
            bad.append(str(e))
    if not audio:
        raise ValueError(f"none of the {len(items)} '{corpus}' files under '{root}' could be used, e.g. {bad[0]}")
    if bad:
        log(f"{corpus}: skipped {len(bad)} unusable clip(s), e.g. {bad[0]}")
    # The cache keeps 16-bit PCM. Fresh decodes take the same rounding, so that a first run trains on exactly the
    # audio later runs read back: otherwise a fresh machine's first run drifts from every later one.
    pcm, lengths = _to_pcm16(audio), [len(a) for a in audio]
    audio = _from_pcm16(pcm, lengths)
    clips = Clips(
        audio, [i.emotion for i in kept], [i.speaker for i in kept], [corpus] * len(kept), [str(i.path) for i in kept]
    )
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = {"lengths": lengths, "emotions": clips.emotions, "speakers": clips.speakers, "paths": clips.paths}
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # one per process (torchrun ranks)
        np.savez(tmp, audio=pcm, meta=json.dumps(meta))
        tmp.replace(cache)  # atomic: an interrupted run never leaves a half-written cache
    return clips


def _to_pcm16(audio: list[np.ndarray]) -> np.ndarray:
    return np.round(np.clip(np.concatenate(audio), -1, 1) * 32767).astype(np.int16)


def _from_pcm16(pcm: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    return np.split(pcm.astype(np.float32) / 32767.0, np.cumsum(lengths)[:-1])


def speaker_folds(clips: Clips, k: int) -> list[set[str]]:
    """K disjoint speaker groups: each corpus's sorted speakers cut into k contiguous chunks.

    For RAVDESS actors 01-20 and k=5 this is {01-04}, {05-08}, ... as the corpus README recommends.
    """
    folds = [set() for _ in range(k)]
    for corpus in sorted(set(clips.corpora)):
        speakers = sorted({s for s, c in zip(clips.speakers, clips.corpora) if c == corpus})
        if len(speakers) < k:
            raise ValueError(f"{corpus} has {len(speakers)} speakers; cannot make {k} speaker-independent folds")
        for fold, chunk in zip(folds, np.array_split(np.array(speakers), k)):
            fold.update(chunk.tolist())
    return folds


def validation_speakers(clips: Clips, fraction: float) -> set[str]:
    """The last `fraction` of each corpus's sorted speakers (at least one), held out for early stopping.

    `fraction` 0 holds out nobody: the model then trains on every speaker (see `training.fit`)."""
    held = set()
    if fraction <= 0:
        return held
    for corpus in sorted(set(clips.corpora)):
        speakers = sorted({s for s, c in zip(clips.speakers, clips.corpora) if c == corpus})
        n = max(1, int(round(fraction * len(speakers))))
        if n >= len(speakers):
            raise ValueError(f"{corpus} has {len(speakers)} speaker(s); need at least 2 to hold one out for validation")
        held.update(speakers[-n:])
    return held


def split_by_speaker(clips: Clips, held: set[str], idx=None) -> tuple[list[int], list[int]]:
    """(indices of other speakers' clips, indices of `held` speakers' clips), among `idx` (default: all)."""
    idx = range(len(clips)) if idx is None else idx
    return [i for i in idx if clips.speakers[i] not in held], [i for i in idx if clips.speakers[i] in held]


def played_at(audio: np.ndarray, speed: float, sr: int = 16000) -> np.ndarray:
    """`audio` played `speed` times as fast (tempo and pitch together), by band-limited resampling (soxr)."""
    import librosa

    return audio if speed == 1.0 else librosa.resample(audio, orig_sr=sr, target_sr=round(sr / speed))


def crop(audio: np.ndarray, length: int, rng: np.random.Generator, speed: float = 1.0) -> np.ndarray:
    """A random `length`-sample window of `audio` played at `speed` (tempo and pitch together).

    Clips shorter than the window are looped; the random offset doubles as time-shift augmentation.
    """
    need = int(np.ceil(length * speed)) + 1
    if len(audio) < need:
        audio = np.tile(audio, need // len(audio) + 1)
    start = rng.integers(0, len(audio) - need + 1)
    seg = audio[start : start + need]
    if speed != 1.0:
        seg = np.interp(np.arange(length) * speed, np.arange(need), seg).astype(np.float32)
    return seg[:length]
