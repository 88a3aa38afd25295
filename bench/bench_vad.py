"""How often the "does not sound like speech" note fires, on real speech and on sounds that are not speech; and
how long the voice detector takes. Prints its figures.

    python bench/bench_vad.py [--data ../shared/data] [--per-corpus 200] [--seed 0]

- Real speech: `--per-corpus` random clips of each corpus under --data (ravdess, emodb: FLAC; ased, nemo,
  emospeech: Ogg Opus), read and trimmed as an analysis does (`load_audio`, `prepare`); the share that
  `check_quality` would flag, per corpus. Clips `prepare` rejects (silent, too short) are left out and counted.
- Not speech: white, pink and brown noise, pure tones, chords, hum, noise bursts at a syllable rate, noise plus a
  tone and a synthetic "melody" of decaying harmonic notes: 10 seeds each, at three levels (-40, -20 and -3 dBFS
  peak) and three lengths (1, 3 and 10 s); plus the music files Gradio ships (sax.wav, cantina.wav) in 3 s
  windows, when installed.
- Speed: `speech_fraction` on a 3 s and a 30 s clip, median of 20 runs, one thread; and silero-vad's own
  frame-by-frame `audio_forward` on the 3 s clip.
"""

import argparse
import importlib.util
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ser.audio import AudioError, load_audio, prepare
from ser.features import FeatureConfig
from ser.quality import MIN_SPEECH_FRACTION
from ser.vad import speech_fraction

SR = 16000
CORPORA = ("ravdess", "emodb", "ased", "nemo", "emospeech")


def coloured_noise(n: int, exponent: float, rng) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def melody(n: int, rng) -> np.ndarray:
    out, step = np.zeros(n), int(rng.uniform(0.15, 0.6) * SR)
    for start in range(0, n, step):
        t, f0 = np.arange(min(step, n - start)) / SR, rng.uniform(100, 800)
        tilt = rng.uniform(0.5, 2)
        out[start : start + len(t)] = np.exp(-t * rng.uniform(1, 8)) * sum(
            np.sin(2 * np.pi * h * f0 * t) / h**tilt for h in range(1, 10)
        )
    return out


def not_speech(kind: str, n: int, rng) -> np.ndarray:
    t = np.arange(n) / SR
    if kind == "white noise":
        return rng.standard_normal(n)
    if kind == "pink noise":
        return coloured_noise(n, 1, rng)
    if kind == "brown noise":
        return coloured_noise(n, 2, rng)
    if kind == "tone":
        return np.sin(2 * np.pi * rng.uniform(80, 2000) * t)
    if kind == "chord":  # a major triad of harmonic tones
        f0 = rng.uniform(100, 500)
        return sum(
            np.sin(2 * np.pi * f0 * r * h * t + rng.uniform(0, 6)) / h for r in (1, 1.26, 1.5) for h in (1, 2, 3)
        )
    if kind == "mains hum":
        return sum(np.sin(2 * np.pi * rng.choice([50, 60]) * h * t) / h for h in range(1, 20))
    if kind == "noise bursts":  # noise switched on and off at a syllable rate
        return rng.standard_normal(n) * np.clip(np.sin(2 * np.pi * rng.uniform(2, 6) * t), 0, None)
    if kind == "noise + tone":
        return 0.3 * rng.standard_normal(n) + np.sin(2 * np.pi * rng.uniform(200, 1000) * t)
    if kind == "melody":
        return melody(n, rng)
    raise ValueError(kind)


def real_speech(data: Path, per_corpus: int, seed: int, cfg: FeatureConfig) -> None:
    rng = random.Random(seed)
    print(f"Real speech: {per_corpus} random clips per corpus from {data}, trimmed as an analysis does")
    flagged_all = kept_all = 0
    for corpus in CORPORA:
        files = sorted(p for p in (data / corpus).rglob("*") if p.suffix in (".flac", ".ogg", ".wav"))
        if not files:
            print(f"  {corpus:10s} not found, skipped")
            continue
        fractions, rejected = [], 0
        for path in rng.sample(files, min(per_corpus, len(files))):
            try:
                clip = prepare(load_audio(path, cfg.sample_rate), cfg)
            except AudioError:
                rejected += 1
                continue
            fractions.append(speech_fraction(clip, cfg.sample_rate))
        fractions = np.array(fractions)
        flagged = int(np.sum(fractions < MIN_SPEECH_FRACTION))
        flagged_all, kept_all = flagged_all + flagged, kept_all + len(fractions)
        print(
            f"  {corpus:10s} flagged {flagged:3d} of {len(fractions):3d} ({100 * flagged / len(fractions):4.1f} %); "
            f"speech fraction median {np.median(fractions):.2f}, 5th percentile {np.percentile(fractions, 5):.2f}"
            + (f"; {rejected} rejected by prepare (silent or too short)" if rejected else "")
        )
    if kept_all:
        print(f"  all        flagged {flagged_all} of {kept_all} ({100 * flagged_all / kept_all:.1f} %)")


def non_speech(seeds: int) -> None:
    print(f"Not speech: {seeds} seeds x 3 levels x 3 lengths per kind")
    kinds = ["white noise", "pink noise", "brown noise", "tone", "chord", "mains hum", "noise bursts"]
    kinds += ["noise + tone", "melody"]
    total = flagged_total = 0
    for kind in kinds:
        fractions = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            for seconds in (1.0, 3.0, 10.0):
                for peak_db in (-40, -20, -3):
                    x = not_speech(kind, int(seconds * SR), rng)
                    x = (10 ** (peak_db / 20) * x / np.abs(x).max()).astype(np.float32)
                    fractions.append(speech_fraction(x, SR))
        fractions = np.array(fractions)
        flagged = int(np.sum(fractions < MIN_SPEECH_FRACTION))
        total, flagged_total = total + len(fractions), flagged_total + flagged
        print(f"  {kind:13s} flagged {flagged:3d} of {len(fractions)}; highest speech fraction {fractions.max():.2f}")
    print(f"  all synthetic flagged {flagged_total} of {total} ({100 * flagged_total / total:.1f} %)")
    try:
        import gradio
    except ImportError:
        return
    assets = Path(gradio.__file__).parent / "media_assets" / "audio"
    for name in ("sax.wav", "cantina.wav"):
        if (assets / name).exists():
            x = load_audio(assets / name, SR)
            windows = [x[s : s + 3 * SR] for s in range(0, max(1, len(x) - 3 * SR + 1), SR)]
            fractions = np.array([speech_fraction(w, SR) for w in windows])
            flagged = int(np.sum(fractions < MIN_SPEECH_FRACTION))
            print(f"  music {name:11s} flagged {flagged} of {len(windows)} 3 s windows (1 s apart)")


def speed() -> None:
    torch.set_num_threads(1)
    x = np.random.default_rng(0).standard_normal(30 * SR).astype(np.float32) * 0.1
    speech_fraction(x[:SR], SR)  # load the model once
    for seconds in (3, 30):
        times = []
        for _ in range(20):
            start = time.perf_counter()
            speech_fraction(x[: seconds * SR], SR)
            times.append(time.perf_counter() - start)
        print(
            f"speech_fraction on a {seconds} s clip: {1000 * statistics.median(times):.1f} ms (median of 20, 1 thread)"
        )
    # the package's own frame-by-frame loop on the same 3 s, for comparison
    path = Path(importlib.util.find_spec("silero_vad").origin).parent / "data" / "silero_vad.jit"
    jit, clip = torch.jit.load(str(path), map_location="cpu"), torch.from_numpy(x[: 3 * SR])
    times = []
    for _ in range(20):
        start = time.perf_counter()
        jit.audio_forward(clip, SR)
        times.append(time.perf_counter() - start)
    print(f"silero-vad's own audio_forward on the 3 s clip: {1000 * statistics.median(times):.1f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--per-corpus", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"Note when the speech fraction is below {MIN_SPEECH_FRACTION:.0%}")
    speed()
    non_speech(args.seeds)
    real_speech(args.data, args.per_corpus, args.seed, FeatureConfig())


if __name__ == "__main__":
    main()
