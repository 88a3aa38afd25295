"""Time and peak memory of decoding a decompression bomb: a small FLAC of constant 96 kHz sound that decodes to an
hour (as in issue 19: 1.1 MB, 18 s and 3.1 GB per analysis when the whole file was decoded). Prints its figures.

    python bench/bench_decode.py [--minutes 60] [--skip-whole]

The bomb is written with libsndfile's FLAC encoder, as any recorder or converter would write it. Each case runs
in a fresh process, after a warm-up decode of a tiny file (the first call imports parts of librosa); its peak
resident memory (VmHWM) is reported next to its resident memory before the case, and the difference is what
decoding cost:
- whole:     load_audio(path), everything decoded (what the app did before max_seconds);
- analysis:  load_audio(path, max_seconds=decode_seconds(cfg)), what one analysis decodes (40 s by default);
- timeline:  stream_audio(path, block_seconds=30, max_seconds=600), ten minutes in blocks, as a timeline reads;
- duration:  audio_duration(path), the header only.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent


def write_bomb(path: Path, minutes: float, rate: int = 96000) -> Path:
    block = np.full(2**20, 0.25, np.float32)  # constant sound: FLAC stores each frame in a few bytes
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        left = int(minutes * 60 * rate)
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    return path


def _memory_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(case: str, path: str) -> None:
    """Run one case in this process and print its figures as JSON."""
    from ser.audio import audio_duration, decode_seconds, load_audio, stream_audio
    from ser.features import FeatureConfig

    cfg = FeatureConfig()
    with tempfile.TemporaryDirectory() as tmp:  # first calls import and compile parts of librosa: not measured
        warm = write_bomb(Path(tmp) / "warm.flac", 0.01)
        load_audio(warm, cfg.sample_rate, max_seconds=0.3)
        list(stream_audio(warm, cfg.sample_rate, block_seconds=0.1))
    base = _memory_mb("VmRSS")
    start = time.perf_counter()
    if case == "whole":
        seconds = len(load_audio(path, cfg.sample_rate)) / cfg.sample_rate
    elif case == "analysis":
        seconds = len(load_audio(path, cfg.sample_rate, max_seconds=decode_seconds(cfg))) / cfg.sample_rate
    elif case == "timeline":
        blocks = stream_audio(path, cfg.sample_rate, block_seconds=30, max_seconds=600)
        seconds = sum(len(b) for b in blocks) / cfg.sample_rate
    elif case == "duration":
        seconds = audio_duration(path)
    else:
        raise ValueError(case)
    took = time.perf_counter() - start
    print(
        json.dumps({"case": case, "audio_s": seconds, "time_s": took, "base_mb": base, "peak_mb": _memory_mb("VmHWM")})
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the bomb (default 60)")
    parser.add_argument("--skip-whole", action="store_true", help="skip decoding the whole file (slow, GBs)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        bomb = write_bomb(Path(tmp) / "bomb.flac", args.minutes)
        made = time.perf_counter() - start
        print(
            f"bomb: {args.minutes:g} min of constant 96 kHz sound, {bomb.stat().st_size / 1e6:.2f} MB FLAC ({made:.0f} s to write)"
        )
        print(f"{'case':10s} {'audio s':>8s} {'time s':>7s} {'peak RSS MB':>12s} {'over import MB':>15s}")
        cases = ["duration", "analysis", "timeline"] + ([] if args.skip_whole else ["whole"])
        for case in cases:
            cmd = [sys.executable, __file__, "--child", case, str(bomb)]
            run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if run.returncode != 0:
                print(f"{case:10s} failed: {run.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            print(
                f"{case:10s} {r['audio_s']:8.0f} {r['time_s']:7.2f} {r['peak_mb']:12.0f} {r['peak_mb'] - r['base_mb']:15.0f}"
            )


if __name__ == "__main__":
    main()
