"""How long the emotion timeline of a 10-minute recording takes, and how much memory it needs; prints its figures.

    python bench/bench_timeline.py [--model checkpoints/default] [--minutes 10] [--repeats 2]

The recording is built from the example clips (examples/, real speech), one after another in random order with
pauses of 0.3 to 3 s and a faint room noise, written as the largest common upload: 16-bit 48 kHz stereo WAV
(about 115 MB for 10 minutes). Measured: decoding it (`load_audio`), then `ser.timeline.timeline` split into its
steps (speech detection, windows through the model), the whole `timeline_file`, and the peak memory the process
grew by. The issue's target: 10 minutes in at most 15 s on a 2-core machine.
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import ser
import ser.timeline
import ser.vad
from ser.audio import AUDIO_EXTENSIONS, trim_silence

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RATE, CHANNELS = 48000, 2


def write_recording(path: Path, minutes: float, seed: int = 0) -> int:
    """Example speech with pauses, as 16-bit 48 kHz stereo WAV, written block by block (bounded memory); returns
    how many clips it holds."""
    rng = np.random.default_rng(seed)
    files = sorted(f for f in EXAMPLES.iterdir() if f.suffix.lower() in AUDIO_EXTENSIONS)
    clips = [trim_silence(ser.load_audio(f, RATE), 30.0) for f in files]
    if not clips:
        raise SystemExit(f"error: no example clips in {EXAMPLES}")
    total, written, count = int(minutes * 60 * RATE), 0, 0
    with sf.SoundFile(path, "w", RATE, CHANNELS, subtype="PCM_16") as f:
        while written < total:
            pause = np.zeros(int(rng.uniform(0.3, 3.0) * RATE), np.float32)
            block = np.concatenate([clips[rng.integers(len(clips))], pause])[: total - written]
            block = block + 1e-3 * rng.standard_normal(len(block)).astype(np.float32)  # about -60 dBFS of room noise
            f.write(np.stack([block, 0.9 * block], axis=1))
            written += len(block)
            count += 1
    return count


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats: int):
    """(result, best wall-clock seconds, CPU seconds of that run) over `repeats` runs."""
    best, cpu, out = float("inf"), 0.0, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        if time.perf_counter() - start < best:
            best, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return out, best, cpu


def measure(model_name: str | None = None, minutes: float = 10.0, repeats: int = 2, log=print) -> dict:
    """Every figure below, printed as it comes and returned as a dict (`bench/run_all.py` keeps it)."""
    model = ser.load_model(model_name)
    cfg = model.feature_config
    log(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work on the machine slows every "
        f"figure); the timeline runs on one torch thread; model: {model_name or 'checkpoints/default'}")  # fmt: skip
    out = {"minutes": minutes}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.wav"
        clips = write_recording(path, minutes)
        size = path.stat().st_size / 1e6
        log(f"recording: {minutes:g} min of 16-bit {RATE // 1000} kHz stereo WAV, {size:.0f} MB\n")
        log("                                          wall s   CPU s")
        base = rss_mb()
        tl, wall, cpu = timed(lambda: ser.timeline.timeline_file(model, path), repeats)
        out["total_s"], out["total_cpu_s"] = wall, cpu
        log(f"timeline_file: file to segments (total)  {wall:6.2f}  {cpu:6.2f}   target: wall <= 15 s on 2 cores")
        out["growth_mb"] = growth = rss_mb() - base
        audio, wall, cpu = timed(lambda: ser.load_audio(path, cfg.sample_rate), repeats)
        out["decode_s"] = wall
        log(f"  decoding to {cfg.sample_rate // 1000} kHz mono (load_audio)     {wall:6.2f}  {cpu:6.2f}")
        with ser.timeline.one_thread():  # as the timeline runs it
            _, wall, cpu = timed(lambda: ser.timeline.speech_frames(audio, cfg.sample_rate), repeats)
        out["speech_detection_s"] = wall
        log(f"  speech detection (ser.vad, 2 s blocks)  {wall:6.2f}  {cpu:6.2f}")
        tl, wall, cpu = timed(lambda: ser.timeline.timeline(model, audio, cfg.sample_rate), repeats)
        out["array_s"], out["windows"] = wall, tl.windows
        log(f"  timeline of the decoded array           {wall:6.2f}  {cpu:6.2f}   {tl.windows} windows of "
            f"{tl.window:g} s every {tl.step:g} s classified")  # fmt: skip
        log(f"\npeak memory growth of timeline_file: {growth:.0f} MB (process at {base:.0f} MB before)")
        silent = sum(s.end - s.start for s in tl.segments if s.label == ser.timeline.SILENCE)
        log(f"segments: {len(tl.segments)}; {silent:.0f} s of {tl.duration:.0f} s marked silence")
        # each example clip is one emotion: about one speech segment per clip is the ideal
        for cost in (ser.timeline.SWITCH_COST, 0.0):
            speech = [s for s in ser.timeline.merge_steps(tl.probs, tl.labels, tl.step, tl.duration, cost)
                      if s.label != ser.timeline.SILENCE]  # fmt: skip
            log(f"  switch cost {cost:g}: {len(speech)} segments of speech, {np.mean([s.end - s.start for s in speech]):.1f} s "
                f"on average, for {clips} clips")  # fmt: skip
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder or Hub id; default: the shipped model")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each measurement; the fastest is shown")
    args = parser.parse_args(argv)
    measure(args.model, args.minutes, args.repeats)


if __name__ == "__main__":
    main()
