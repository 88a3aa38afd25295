r"""Analysis: from a file or an array to calibrated emotion probabilities, with what the model heard and caveats.

The one path every caller takes (the CLI, the app, Python users):

    audio (any rate, any channels) -> model rate, mono -> quality notes -> prepare (trim silence, cut to the
    model's maximum) -> log-mel -> CNN -> probabilities
                                  \-> voice encoder -> voice head -> probabilities  (when the model has one)
    -> the two fused (ser.voice.fuse)
"""

import os
from dataclasses import dataclass, field, replace

import numpy as np

from .audio import audio_duration, decode_seconds, load_audio, prepare, to_model_rate, trim_silence
from .features import FeatureConfig, log_mel_spectrogram
from .model import SERModel
from .quality import check_quality
from .vad import speech_probabilities
from .voice import Reference, fuse

# The notes an analysis adds, as templates that the offline page fills too (ser.words.templates).
ONLY_FIRST = (
    "Only the first {max_seconds} seconds were listened to: the recording has {seconds} seconds of sound, and the "
    "model takes {max_seconds} at most. To hear another part, cut it out and upload that part."
)
ONLY_PICTURE = (
    "Only the picture listener answered: the voice listener needs at least {min_seconds} second of speech. "
    "Record a longer sentence to hear both."
)


@dataclass
class Analysis:
    """Everything known about one input: what the model heard, what it answered, and what to beware of."""

    audio: np.ndarray  # (samples,) the clip the model heard: mono, at features.sample_rate, silence trimmed, cut
    mel: np.ndarray  # (n_mels, frames) its log-mel in dB, exactly the model's input
    probs: dict[str, float]  # label -> calibrated probability, summing to 1, in the model's label order: the answer
    truncated: bool  # the input held more sound than the model's max_seconds, and only the start was analysed
    features: FeatureConfig  # the settings `audio` and `mel` were made with (the model's own)
    notes: list[str] = field(default_factory=list)  # plain-words caveats about the input, one sentence or two each
    # Each listener's own probabilities: "cnn" (the picture listener) always; "voice" (the pretrained voice
    # encoder's head) when the model has one and the clip is long enough. `probs` fuses them.
    listeners: dict[str, dict[str, float]] = field(default_factory=dict)
    voice_features: np.ndarray | None = (
        None  # (dim,) what the voice listener's encoder made of the clip, if it heard it
    )

    @property
    def label(self) -> str:
        """The most probable emotion."""
        return max(self.probs, key=self.probs.get)


def analyse(
    model: SERModel,
    audio: np.ndarray,
    rate: int,
    name: str = "audio",
    full_seconds: float | None = None,
    reference: Reference | None = None,
) -> Analysis:
    """Analyse an array (samples,) or (samples, channels), ints or floats, at any rate from 8 to 96 kHz.

    `name` says what the audio is in error messages; `full_seconds`, the length of the recording `audio` was
    cut from (a file decoded only as far as the analysis reads); `reference`, recordings of the same voice or place
    that the voice listener adapts to (`Voice.reference`). Raises `AudioError` (one line) for silent, too short or
    damaged audio; audio that can be analysed but may mislead (clipped, very quiet, too long) gets `notes`.
    """
    cfg = model.feature_config
    mono = to_model_rate(audio, rate, cfg.sample_rate, name=name)
    clip = prepare(mono, cfg, name=name)
    # Quality is judged on what the model hears; how much was cut off is judged here, once. The voice detector
    # runs once, for the quality check and the voice listener's pause cut.
    speech = speech_probabilities(clip, cfg.sample_rate)  # `prepare` has refused silence
    notes = check_quality(clip, cfg, speech)
    limit = int(cfg.max_seconds * cfg.sample_rate)
    sound = len(trim_silence(mono, cfg.trim_db)) if len(clip) == limit else len(clip)
    if len(clip) == limit and full_seconds and full_seconds * cfg.sample_rate > len(mono):
        sound = max(sound, int(full_seconds * cfg.sample_rate))  # the rest of the file was not even decoded
    truncated = sound > limit
    if truncated:
        notes.append(ONLY_FIRST.format(max_seconds=f"{cfg.max_seconds:g}", seconds=f"{sound / cfg.sample_rate:.0f}"))
    mel = log_mel_spectrogram(clip, cfg)
    probs = dict(zip(model.labels, model.probabilities(mel).tolist()))  # the very mel the app draws: computed once
    listeners, features = {"cnn": probs}, None
    voice = model.voice
    if voice is not None and len(clip) >= voice.min_seconds * cfg.sample_rate:
        heard = (
            clip
            if voice.encoder.cfg.sample_rate == cfg.sample_rate
            else to_model_rate(clip, cfg.sample_rate, voice.encoder.cfg.sample_rate)
        )
        features = voice.features(heard, speech if heard is clip else None)
        listeners["voice"] = voice.probabilities(features, reference)
        probs = fuse(probs, listeners["voice"], voice.fusion_weight, voice.temperature)
    elif voice is not None:
        notes.append(ONLY_PICTURE.format(min_seconds=f"{voice.min_seconds:g}"))
    return Analysis(clip, mel.numpy(), probs, truncated, cfg, notes, listeners, features)


def analyse_file(model: SERModel, path: str | os.PathLike, reference: Reference | None = None) -> Analysis:
    """Analyse an audio file (any format `load_audio` reads). Raises `AudioError` with a one-line reason."""
    cfg = model.feature_config
    audio = load_audio(path, cfg.sample_rate, max_seconds=decode_seconds(cfg))  # bounded whatever the header says
    return analyse(model, audio, cfg.sample_rate, f"'{path}'", audio_duration(path), reference)


def adapted(model: SERModel, analysis: Analysis, reference: Reference) -> Analysis:
    """The same analysis with the voice listener adapted to `reference` (no new decoding or encoding): its
    probabilities and the fused answer recomputed. Unchanged when the voice listener did not hear the clip."""
    voice = model.voice
    if voice is None or analysis.voice_features is None:
        return analysis
    heard = voice.probabilities(analysis.voice_features, reference)
    listeners = {**analysis.listeners, "voice": heard}
    probs = fuse(listeners["cnn"], heard, voice.fusion_weight, voice.temperature)
    return replace(analysis, probs=probs, listeners=listeners)
