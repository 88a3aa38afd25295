"""The microphone path, measured: unseen actors' clips played into Chromium's microphone and recorded in the app.

    python train.py --data ravdess=../shared/data/ravdess --data emodb=../shared/data/emodb \
        --out runs/heldout --threads 1                        # holds out RAVDESS actors 18-20 (10 min)
    python bench/bench_mic.py --model runs/heldout --per-class 8                        # raw microphone
    python bench/bench_mic.py --model runs/heldout --per-class 8 --browser-processing   # browser defaults

The clips come from the RAVDESS actors the model never trained on: its validation speakers, read from the
checkpoint's metrics.json (train.py's default --val-fraction holds out actors 18-20). The shipped model trains on
every actor, so it cannot be measured this way; the command above trains one with the shipped recipe that holds
them out. For each clip, Debian's Chromium plays a WAV (silence, the clip, silence) into a fake microphone and the
app records it as it would a visitor's voice: through the browser's capture and the recording's encoding,
analysed when recording stops. The app asks the browser for the raw signal (RAW_MIC in ser/app/browser.py); --browser-processing
leaves the browser's default gain control, noise suppression and echo cancellation on, to measure what they cost.
The same clip is also analysed straight from its file.
Prints one line per clip, then the agreement between the two, the UAR of each (on the clips' true labels) and how
the captured audio differs from the file (gain, and the correlation after alignment). Needs /usr/bin/chromium and
playwright; takes about 6 s per clip on the 2-core machine.
"""

import argparse
import json
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ser.app import build_demo, launch, serving
from ser.audio import load_audio
from ser.corpora import parse_ravdess
from ser.evaluate import metrics
from ser.hub import load_model
from ser.inference import analyse

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=4, help="clips per emotion (default 4: 32 clips)")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument(
        "--model",
        required=True,
        help="checkpoint folder whose metrics.json names RAVDESS validation speakers (actors it never trained on)",
    )
    p.add_argument(
        "--browser-processing",
        action="store_true",
        help="leave the browser's gain control, noise suppression and echo cancellation on (the app turns them off)",
    )
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    model = load_model(args.model)
    unseen = unseen_actors(Path(args.model))
    if not unseen:
        sys.exit(
            f"error: {args.model} names no RAVDESS validation speakers in its metrics.json, so every actor may be in "
            "its training data; train one that holds some out (the first command in this script's help)"
        )
    clips = pick_clips(Path(args.data_dir) / "ravdess", unseen, args.per_class)
    heard = []  # the Result of every analysis the server ran
    inner = serving.analyse_upload
    serving.analyse_upload = lambda *a, **k: heard.append(inner(*a, **k)) or heard[-1]
    demo = build_demo(model, examples=None)
    port = free_port()
    launch(demo, raw_mic=not args.browser_processing, server_port=port, prevent_thread_lock=True, quiet=True)
    rows = []
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            sr = model.feature_config.sample_rate
            for path, emotion in clips:
                audio = load_audio(path, sr)
                direct = analyse(model, audio, sr).label
                wav = Path(tmp) / "mic.wav"
                sf.write(wav, np.concatenate([np.zeros(sr // 2), audio, np.zeros(4 * sr)]), sr, subtype="PCM_16")
                n = len(heard)
                record(
                    pw,
                    f"http://127.0.0.1:{port}/",
                    wav,
                    seconds=len(audio) / sr + 1.0,
                    until=lambda n=n: len(heard) > n,
                )
                result = heard[-1]
                mic = result.analysis.label if result.analysis else f"error: {result.error}"
                gain, corr = compare(audio, result.analysis.audio) if result.analysis else (np.nan, np.nan)
                rows.append((emotion, direct, mic, gain, corr))
                print(
                    f"{path.name}  {emotion:9s}  file -> {direct:9s}  mic -> {mic:9s}  gain {gain:+5.1f} dB  r {corr:.2f}"
                )
    finally:
        demo.close()
    summarize(rows, model.labels, unseen)


def unseen_actors(checkpoint: Path) -> set[str]:
    """RAVDESS actor numbers among the checkpoint's validation speakers ("ravdess:18" -> "18")."""
    try:
        training = json.loads((checkpoint / "metrics.json").read_text())["training"]
    except (OSError, KeyError, ValueError):
        return set()
    return {s.split(":", 1)[1] for s in training.get("validation_speakers", []) if s.startswith("ravdess:")}


def pick_clips(folder: Path, unseen: set[str], per_class: int) -> list[tuple[Path, str]]:
    """`per_class` clips of each emotion from the unseen actors, spread over them, in a fixed order."""
    by_emotion: dict[str, list[Path]] = {}
    for f in sorted(folder.rglob("*.flac")):
        parsed = parse_ravdess(f)
        if parsed is not None and parsed[1] in unseen:
            by_emotion.setdefault(parsed[0], []).append(f)
    rng = np.random.default_rng(0)
    return [(f, e) for e, files in sorted(by_emotion.items()) for f in rng.permutation(files)[:per_class].tolist()]


def record(pw, url: str, wav: Path, seconds: float, until) -> None:
    """Open the app in a Chromium whose microphone plays `wav`, record for `seconds`, wait for the analysis."""
    mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + mic)
    try:
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.goto(url)
        page.locator("#audio-input button.record-button").click()
        page.wait_for_timeout(int(seconds * 1000))
        page.locator("#audio-input button.stop-button").click()
        for _ in range(300):
            if until():
                return
            page.wait_for_timeout(100)
        raise RuntimeError("the app analysed nothing within 30 s of the recording stopping")
    finally:
        browser.close()


def compare(source: np.ndarray, captured: np.ndarray) -> tuple[float, float]:
    """(gain in dB of the captured audio over the source, correlation of the two after the best alignment)."""
    n = len(source) + len(captured)
    xc = np.fft.irfft(np.fft.rfft(captured, n) * np.conj(np.fft.rfft(source, n)), n)
    lag = int(np.argmax(np.abs(xc)))
    lag = lag - n if lag > len(captured) else lag
    a = captured[max(lag, 0) : max(lag, 0) + len(source)]
    b = source[max(-lag, 0) : max(-lag, 0) + len(a)]
    a, b = a[: len(b)], b[: len(a)]
    corr = abs(float(np.corrcoef(a, b)[0, 1])) if len(a) > 1 else 0.0  # polarity may flip
    gain = 20 * np.log10((np.std(a) + 1e-9) / (np.std(b) + 1e-9))
    return float(gain), corr


def summarize(rows, labels: list[str], unseen: set[str]) -> None:
    truth = [r[0] for r in rows]
    direct, mic = [r[1] for r in rows], [r[2] for r in rows]
    present = [lab for lab in labels if lab in set(truth)]
    agree = np.mean([d == m for d, m in zip(direct, mic)])
    print(f"\n{len(rows)} clips of RAVDESS actors {sorted(unseen)} (never trained on), {len(present)} emotions")
    print(f"same label from the file and from the browser recording: {agree:.0%}")
    print(f"UAR from the files: {metrics(truth, direct, present)['uar']:.1%}")
    print(f"UAR through the browser microphone: {metrics(truth, mic, present)['uar']:.1%}")
    gains, corrs = np.array([r[3] for r in rows]), np.array([r[4] for r in rows])
    print(f"captured vs file: median gain {np.median(gains):+.1f} dB, median correlation {np.median(corrs):.2f}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
