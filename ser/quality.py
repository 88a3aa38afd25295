"""Input quality: plain-words caveats about a recording that can be analysed but may mislead.

Unusable audio (silent, too short, damaged) is not judged here: `audio.prepare` and `audio.load_audio`
raise `AudioError` for it. These checks only warn.
"""

import numpy as np

from .audio import SILENCE_DBFS, peak_dbfs
from .features import FeatureConfig
from .vad import speech_probabilities, speech_share

CLIP_LEVEL = 0.99  # a sample at or above 99 % of full scale has hit the converter's ceiling
# Clipped when more than 1 sample in 1000 sits at the ceiling: an unclipped voice normalised to full scale
# touches it far less often, a clipped one spends whole flattened wave crests there.
CLIP_FRACTION = 1e-3
QUIET_DBFS = -30.0  # a voice near a microphone peaks around -12 to -3 dBFS; below -30 noise weighs heavily
# Not speech when the voice detector (ser.vad) hears speech in under 5 % of the clip. `python bench/bench_vad.py`
# (200 random clips per corpus, trimmed as an analysis trims them): real speech flagged 2 of 945 clips (0.2 %, two
# ASED takes); white, pink and brown noise, tones, chords, hum, noise bursts at -40 to -3 dBFS flagged 713 of 720;
# synthetic melodies 67 of 90 and real music (Gradio's sax.wav) 3 of 14 windows: a melodic line can sound like a
# voice to it, so music often goes unflagged.
MIN_SPEECH_FRACTION = 0.05
# The notes, as templates that the offline page fills too (ser.words.templates).
TOO_LOUD = (
    "Too loud: the sound is distorted ({percent} % of it hit the loudest level the microphone can record). "
    "Move back from the microphone or turn its volume down, then record again."
)
VERY_QUIET = (
    "Very quiet: the voice is faint, so any background noise counts for more. "
    "Speak closer to the microphone or turn its volume up."
)
NOT_SPEECH = (
    "This does not sound like someone talking (a voice detector heard speech in {percent} % of it). "
    "The model only judges voices, so its answer means little here. Record someone speaking."
)


def clipped_fraction(audio: np.ndarray) -> float:
    """Share of samples (samples,) at or above `CLIP_LEVEL` of full scale."""
    return float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if audio.size else 0.0


def check_quality(audio: np.ndarray, cfg: FeatureConfig, speech: np.ndarray | None = None) -> list[str]:
    """Caveats about mono audio (samples,) at `cfg.sample_rate`, each one sentence for the user.

    Checks for clipping, a very quiet recording, and input that does not sound like speech (judged on its first
    `cfg.max_seconds`). Whether a recording was cut to the model's maximum is decided in `inference.analyse`.
    `speech`: `vad.speech_probabilities` of those first seconds, if already computed.
    """
    notes = []
    clipped = clipped_fraction(audio)
    if clipped > CLIP_FRACTION:
        notes.append(TOO_LOUD.format(percent=f"{100 * clipped:.1f}"))
    peak = peak_dbfs(audio)
    if SILENCE_DBFS <= peak < QUIET_DBFS:
        notes.append(VERY_QUIET)
    limit = int(cfg.max_seconds * cfg.sample_rate)
    if peak >= SILENCE_DBFS:
        share = speech_share(speech_probabilities(audio[:limit], cfg.sample_rate) if speech is None else speech)
        if share < MIN_SPEECH_FRACTION:
            notes.append(NOT_SPEECH.format(percent=f"{100 * share:.0f}"))
    return notes
