"""Emotion over time: the model's window slid along a whole recording, with silence marked instead of classified.

    audio -> model rate, mono -> speech detector (ser.vad) -> windows of the model's training length every
    HOP_SECONDS; those holding enough speech -> log-mel -> model, in batches -> each half-second step gets the mean
    probabilities of the windows over it -> the most likely emotion path, where a change of emotion must be earned
    (SWITCH_COST) -> segments

Each window is analysed exactly as a clip of that length would be on its own (its own log-mel floor and
normalisation), so a step's probabilities are an average of ordinary verdicts, and a window is never fed audio the
model would not see in a single clip.
"""

import contextlib
import copy
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .audio import SILENCE_DBFS, peak_dbfs, silent_error, stream_audio, to_model_rate, too_short_error
from .encoder import encoder_features
from .features import log_mel_spectrogram
from .inference import Analysis, analyse
from .model import SERModel
from .vad import FRAME, FRAME_SECONDS, SPEECH_THRESHOLD, VAD_RATE, block_speech_probabilities
from .voice import ADAPT_K, fuse_log_probs

HOP_SECONDS = 0.5  # a new window every half second: emotions in speech change over seconds, not faster
SPEECH_SHARE = 0.25  # a step is speech when the detector hears speech in at least a quarter of it
BATCH = 16  # windows per forward pass: as fast as 4 to 32 (one thread), and the first block's output stays ~20 MB
SILENCE = "silence"  # the label of steps with too little speech to judge
# The speech detector scales its input to one peak level. Over a whole recording, one shout would make a quiet
# speaker elsewhere too faint for it (a calm RAVDESS voice 40 dB below an angry one went unheard), so it judges
# each ~2 s on its own level. Pure noise stays unheard at any level; restarting costs it 256 ms of lead-in a block.
VAD_BLOCK_SECONDS = 2.0
# A new segment must be earned: the step path maximises the summed log-probabilities of its emotions minus this
# much per change (Viterbi). Steps are means of overlapping windows, so neighbours are alike, and the top two
# emotions often trade places by a few points: one 0.5 s step would split a stretch in three. With 2 nats, an
# emotion must beat the one around it by e^4 (about 55x) summed over its stretch to interrupt it (two changes),
# e.g. 2 s of 40 % against 15 %; it then starts where the evidence says. 0 gives the per-step top emotion.
SWITCH_COST = 2.0
# The voice listener's windows: its recurrent encoder costs about 8 times the CNN per second of audio, so it hears
# 3 s windows side by side (every 3 s, not every 0.5 s; whole 32 ms detector frames, so 3.008 s at 16 kHz, which
# lets its pause cut reuse the recording's speech frames): a 10-minute file costs it a few seconds on one core.
VOICE_SECONDS = 3.0
STREAM_BLOCK_SECONDS = 30.0  # files are decoded this much at a time: bounds the decoder's memory, not the result's


@dataclass
class Segment:
    """A stretch where neighbouring steps agree: one emotion (or silence) from `start` to `end` seconds."""

    start: float
    end: float
    label: str  # an emotion of the model's, or SILENCE
    confidence: float | None  # mean probability of `label` over the stretch; None for silence

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Timeline:
    """Class probabilities over a whole recording, step by step, and the segments they form."""

    labels: list[str]  # the model's classes, the columns of `probs`
    step: float  # seconds per row of `probs`: row i covers [i * step, (i + 1) * step)
    probs: np.ndarray  # (steps, n_classes) mean probabilities of the windows over each step; NaN where silence
    speech: np.ndarray  # (steps,) share of each step the speech detector judged speech, in [0, 1]
    envelope: np.ndarray  # (bins, 2) the waveform's min and max per `envelope_step` seconds, for drawing
    envelope_step: float
    duration: float  # seconds of audio
    window: float  # seconds of audio per window
    windows: int  # windows classified (the others held too little speech)
    segments: list[Segment]
    truncated: bool = False  # the recording was longer, and only its first `duration` seconds were analysed


def window_starts(samples: int, window: int, hop: int) -> np.ndarray:
    """Start samples of windows of `window` samples every `hop`, the last one ending where the audio ends."""
    if samples <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, samples - window + 1, hop)
    return starts if starts[-1] == samples - window else np.append(starts, samples - window)


def speech_seconds(frames: np.ndarray, starts: np.ndarray, ends: np.ndarray, rate: int) -> np.ndarray:
    """Seconds of speech between sample positions `starts` and `ends`, from the detector's speech frames (bool)."""
    cumulative = np.concatenate([[0], np.cumsum(frames)])
    frame = FRAME_SECONDS * rate  # samples per detector frame
    first = np.clip(np.floor(starts / frame).astype(int), 0, len(frames))
    last = np.clip(np.ceil(ends / frame).astype(int), 0, len(frames))
    return (cumulative[last] - cumulative[first]) * FRAME_SECONDS


def frame_samples(rate: int) -> int:
    """Samples per detector frame (`FRAME_SECONDS`) at `rate`."""
    return round(FRAME * rate / VAD_RATE)


def speech_frames(audio: np.ndarray, rate: int) -> np.ndarray:
    """Whether each `FRAME_SECONDS` frame of mono audio (samples,) is speech, (frames,) bool, judged in blocks of
    VAD_BLOCK_SECONDS each at its own level (see there)."""
    frame = frame_samples(rate)  # blocks hold whole frames
    block = int(VAD_BLOCK_SECONDS * rate) // frame * frame
    probs = block_speech_probabilities([audio[i : i + block] for i in range(0, len(audio), block)], rate)
    return np.concatenate(probs) >= SPEECH_THRESHOLD


@contextlib.contextmanager
def one_thread():
    """Torch on one thread in this block (this thread's setting, restored after). On a busy 2-core machine two
    threads wait for each other at every operation: a window took 10 to 22 ms instead of 4, and speech detection,
    ~19,000 tiny recurrent steps per 10 minutes, 15 to 40 s instead of 0.8 s (bench/bench_timeline.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fast_copy(model: SERModel) -> SERModel:
    """The model with its weights in channels-last order, which oneDNN's CPU convolutions run about 1.5x faster
    (same results to float rounding). A copy: the caller's model is shared and saved as it is."""
    return copy.deepcopy(model).to(memory_format=torch.channels_last).eval()


def classify_windows(
    model: SERModel, audio: np.ndarray, starts: np.ndarray, window: int, progress: Callable[[float], None] | None
) -> np.ndarray:
    """Probabilities (windows, n_classes) of the windows audio[s : s + window] for s in `starts`, in batches."""
    fast, out = fast_copy(model), []
    for i in range(0, len(starts), BATCH):
        batch = np.stack([audio[s : s + window] for s in starts[i : i + BATCH]])  # (B, window)
        out.append(fast.probabilities(log_mel_spectrogram(batch, model.feature_config)).numpy())
        if progress is not None:
            progress(min(i + BATCH, len(starts)) / len(starts))
    return np.concatenate(out) if out else np.zeros((0, len(model.labels)), np.float32)


def timeline(
    model: SERModel,
    audio: np.ndarray,
    rate: int,
    window_seconds: float | None = None,
    hop_seconds: float = HOP_SECONDS,
    progress: Callable[[float], None] | None = None,
    name: str = "audio",
) -> Timeline:
    """Emotion over time of an array (samples,) or (samples, channels) at any rate from 8 to 96 kHz.

    window_seconds: audio per verdict, by default the clip length the model was trained on; a recording shorter
    than one window is one window. Windows holding less speech than the model's `min_seconds` are not classified,
    and steps with little speech are marked silence. `progress(fraction)` is called after each batch.
    Raises `AudioError` (one line, naming `name`) for silent, too short or damaged audio.
    """
    cfg = model.feature_config
    mono = to_model_rate(audio, rate, cfg.sample_rate, name=name)
    if peak_dbfs(mono) < SILENCE_DBFS:
        raise silent_error(name)
    if len(mono) < cfg.min_samples:
        raise too_short_error(name, len(mono) / cfg.sample_rate, cfg)
    sr, duration = cfg.sample_rate, len(mono) / cfg.sample_rate
    window = min(round((window_seconds or cfg.clip_seconds) * sr), len(mono))
    hop = round(hop_seconds * sr)
    with one_thread():
        frames = speech_frames(mono, sr)  # (detector frames,)
        starts = window_starts(len(mono), window, hop)
        judged = speech_seconds(frames, starts, starts + window, sr) >= cfg.min_seconds
        probs = classify_windows(model, mono, starts[judged], window, progress)

    step_starts = np.arange(math.ceil(len(mono) / hop)) * hop
    step_ends = np.minimum(step_starts + hop, len(mono))
    speech = np.clip(speech_seconds(frames, step_starts, step_ends, sr) * sr / (step_ends - step_starts), 0.0, 1.0)
    step_probs = mean_over_steps(probs, starts[judged], window, hop, len(step_starts))
    if model.voice is not None:
        with one_thread():
            step_probs = with_voice(model, mono, frames, step_probs, hop)
    step_probs[speech < SPEECH_SHARE] = np.nan

    segments = merge_steps(step_probs, model.labels, hop_seconds, duration, SWITCH_COST)
    bins = cfg.hop_length  # one envelope bin per spectrogram frame (10 ms): finer than any screen shows 10 minutes
    return Timeline(list(model.labels), hop_seconds, step_probs, speech, envelope(mono, bins), bins / sr, duration,
                    window / sr, int(judged.sum()), segments)  # fmt: skip


def with_voice(model: SERModel, mono: np.ndarray, frames: np.ndarray, cnn: np.ndarray, hop: int) -> np.ndarray:
    """The steps' CNN probabilities (steps, n_classes) fused with the voice listener's, heard in VOICE_SECONDS
    windows side by side; steps no voice window judged (too little speech) keep the CNN's."""
    voice, sr = model.voice, model.feature_config.sample_rate
    frame = frame_samples(sr)
    window = min(round(VOICE_SECONDS * sr / frame) * frame, len(mono))  # whole detector frames
    starts = window_starts(len(mono), window, window)
    judged = starts[speech_seconds(frames, starts, starts + window, sr) >= voice.min_seconds]
    if not len(judged):
        return cnn
    # The pause cut reuses the recording's speech frames (judged in VAD_BLOCK_SECONDS blocks, not per window) where
    # a window starts on a frame: all but the last.
    flags = [frames[s // frame : -(-(s + window) // frame)].astype(np.float32) if s % frame == 0 else None
             for s in judged]  # fmt: skip
    feats = encoder_features(voice.encoder, [mono[s : s + window] for s in judged], speech=flags)
    # Each window compared with the whole recording's voice (one speaker, mostly), when there are enough windows.
    tuned = "voice" in voice.adapted and len(feats) > ADAPT_K
    head = voice.log_probabilities(feats, voice.reference("voice", feats) if tuned else None)
    cols = [voice.labels.index(lab) if lab in voice.labels else None for lab in model.labels]
    p = np.stack([np.exp(head[:, c]) if c is not None else np.full(len(head), 1e-12) for c in cols], axis=1)
    heard = mean_over_steps(p, judged, window, hop, len(cnn))
    both = ~np.isnan(heard).any(axis=1) & ~np.isnan(cnn).any(axis=1)
    out = cnn.copy()
    logs = [np.log(np.clip(x[both], 1e-12, 1.0)) for x in (cnn, heard)]
    out[both] = np.exp(fuse_log_probs(*logs, voice.fusion_weight, voice.temperature))
    return out


def mean_over_steps(probs: np.ndarray, starts: np.ndarray, window: int, hop: int, steps: int) -> np.ndarray:
    """(steps, n_classes): for each step of `hop` samples, the mean probabilities (windows, n_classes) of the windows
    (starting at `starts`, `window` samples long) that contain the step's centre; NaN where none does."""
    centres = (np.arange(steps) + 0.5) * hop
    total, count = np.zeros((steps, probs.shape[1])), np.zeros(steps)
    for s, p in zip(starts, probs):
        over = slice(np.searchsorted(centres, s), np.searchsorted(centres, s + window))
        total[over] += p
        count[over] += 1
    with np.errstate(invalid="ignore"):  # 0 / 0: no window over the step
        return total / count[:, None]


def envelope(audio: np.ndarray, bins: int) -> np.ndarray:
    """(ceil(samples / bins), 2): the min and max of mono audio (samples,) in each run of `bins` samples."""
    padded = np.pad(audio, (0, -len(audio) % bins)).reshape(-1, bins)
    return np.stack([padded.min(axis=1), padded.max(axis=1)], axis=1)


def smooth_path(probs: np.ndarray, switch_cost: float) -> np.ndarray:
    """(steps,) class indices maximising sum(log probs[t, path[t]]) - switch_cost * (number of changes): Viterbi
    over steps (steps, n_classes) of one stretch of speech. switch_cost 0 gives each step's own top class."""
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    score, back = logp[0].copy(), np.zeros(probs.shape, dtype=np.int64)
    for t in range(1, len(probs)):
        best = int(np.argmax(score))
        stay, switch = score, score[best] - switch_cost  # arrive from the same class, or from the best one
        back[t] = np.where(stay >= switch, np.arange(len(score)), best)
        score = np.maximum(stay, switch) + logp[t]
    path = np.zeros(len(probs), dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(len(probs) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def merge_steps(
    probs: np.ndarray, labels: list[str], step: float, duration: float, switch_cost: float = SWITCH_COST
) -> list[Segment]:
    """Segments in time order: runs of silence (NaN rows), and in each stretch of speech between them the runs of
    `smooth_path`'s emotions."""
    names = [SILENCE] * len(probs)
    speech = ~np.isnan(probs).any(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2]):  # each stretch of speech on its own
        for t, k in enumerate(smooth_path(probs[start:end], switch_cost), start):
            names[t] = labels[k]
    segments, first = [], 0
    for i in range(1, len(names) + 1):
        if i == len(names) or names[i] != names[first]:
            label = names[first]
            confidence = None if label == SILENCE else float(np.mean(probs[first:i, labels.index(label)]))
            segments.append(Segment(first * step, min(i * step, duration), label, confidence))
            first = i
    return segments


def timeline_file(
    model: SERModel,
    path: str | os.PathLike,
    max_seconds: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> Timeline:
    """`timeline` of an audio file (any format `load_audio` reads), of its first `max_seconds` if given.

    Raises `AudioError` with a one-line reason.
    """
    return analyse_over_time(model, path, max_seconds, progress, clip=False)[1]


def analyse_over_time(
    model: SERModel,
    path: str | os.PathLike,
    max_seconds: float | None = None,
    progress: Callable[[float], None] | None = None,
    clip: bool = True,
) -> tuple[Analysis | None, Timeline]:
    """`analyse_file`'s Analysis (of the model's `max_seconds`, as always; None unless `clip`) and the `timeline`
    of the whole file, or of its first `max_seconds` if given, from one decoding. Raises `AudioError`."""
    cfg, name = model.feature_config, f"'{path}'"
    # Decoded block by block at the model's rate (a 48 kHz stereo file is never held whole), stopping a second past
    # the limit: enough to tell that there was more.
    blocks = stream_audio(path, cfg.sample_rate, STREAM_BLOCK_SECONDS, None if max_seconds is None else max_seconds + 1)
    audio = np.concatenate(list(blocks))
    limit = len(audio) if max_seconds is None else int(max_seconds * cfg.sample_rate)
    analysis = analyse(model, audio, cfg.sample_rate, name=name) if clip else None
    over_time = timeline(model, audio[:limit], cfg.sample_rate, progress=progress, name=name)
    over_time.truncated = len(audio) > limit
    return analysis, over_time
