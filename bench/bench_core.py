"""Speed and size of the ser pipeline in-process; prints its figures (`bench/run_all.py` records them).

    python bench/bench_core.py [--model checkpoints/default] [--quick]

On a real 3 s speech clip cut from examples/ (no corpus needed):
- log-mel feature throughput;
- inference per clip (log-mel + model), median and p95, and the same pipeline with the standard VGG-16 and
  VGG-19 (torchvision's configurations "D" and "E", built here in torch with random weights: the seed literature
  fed them the log-mel resized to a 3x224x224 image), as ratios measured in the same run;
- where the time of one analysis goes (each step `ser.analyse_file` calls, timed where it calls it), and the
  page's pictures, which `/predict` never draws;
- training speed of the default model: steps/s of `ser.training.fit` on synthetic clips with the default
  `TrainConfig`, extrapolated to its step budget (and the measured time of the shipped fit, when its
  metrics.json records one);
- model file size and parameter count, and the whole checkpoint folder's size;
- the two-listener answer per 3 s clip on one thread (`ser.analyse` on an array: CNN, voice encoder, head,
  fusion), and the voice listener's own share, when the checkpoint has one.
"""

import argparse
import dataclasses
import functools
import inspect
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F

import ser
import ser.inference
from ser import plots
from ser.audio import AUDIO_EXTENSIONS, trim_silence
from ser.data import Clips
from ser.encoder import mel_power, preprocess
from ser.hub import DEFAULT_MODEL
from ser.training import TrainConfig, fit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLIP_SECONDS = 3.0
VGG_CFGS = {  # torchvision's configurations "D" (VGG-16) and "E" (VGG-19): conv widths and "M" max-pools
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


# ----------------------------------------------------------------------------- inputs


def speech(sample_rate: int = 16000) -> np.ndarray:
    """The example clips' speech, silent ends trimmed, one after another: (samples,) float32 at `sample_rate`."""
    files = sorted(p for p in EXAMPLES.glob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise SystemExit(f"error: no example clips in {EXAMPLES}; the benchmarks cut their 3 s clips from them")
    return np.concatenate([trim_silence(ser.load_audio(f, sample_rate), 30.0) for f in files])


def speech_clips(n: int, seconds: float = CLIP_SECONDS, sample_rate: int = 16000) -> list[np.ndarray]:
    """`n` different clips of real speech, each `seconds` long: windows at different offsets, a little dither each,
    so that no two files are alike (Gradio names an upload by its content)."""
    source, size = speech(sample_rate), int(seconds * sample_rate)
    starts = np.linspace(0, len(source) - size, num=max(n, 2)).astype(int)
    rng = np.random.default_rng(0)
    return [(source[s : s + size] + 1e-4 * rng.standard_normal(size)).astype(np.float32) for s in starts[:n]]


def summary(seconds: list[float]) -> dict:
    """Median and p95 in ms of a list of durations in seconds."""
    return {"median_ms": 1000 * statistics.median(seconds), "p95_ms": 1000 * float(np.percentile(seconds, 95))}


def timed(fn, runs: int, warmup: int = 3, clock=time.perf_counter) -> list[float]:
    """Seconds each of `runs` calls of `fn` took, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = clock()
        fn()
        out.append(clock() - t)
    return out


# ----------------------------------------------------------------------------- inference and VGG


def vgg(widths: list, n_classes: int) -> nn.Module:
    """A standard VGG (conv 3x3 + ReLU stacks, 2x2 max-pools, 4096-4096 classifier) with random weights."""
    layers, in_ch = [], 3
    for w in widths:
        if w == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = w
    head = [nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout()]
    head += [nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, n_classes)]
    return nn.Sequential(*layers, *head).eval()


def as_image(mel: torch.Tensor) -> torch.Tensor:
    """A log-mel (n_mels, frames) as the 3x224x224 image a VGG takes, (1, 3, 224, 224)."""
    return F.interpolate(mel[None, None], size=(224, 224), mode="bilinear").expand(1, 3, 224, 224)


def parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def inference(model: ser.SERModel, clip: np.ndarray, runs: int) -> dict:
    """Per-clip latency of log-mel + model for ours and for VGG-16/19 on the same clip, and the ratios."""
    fc = model.feature_config
    ours = timed(lambda: model.probabilities(ser.log_mel_spectrogram(clip, fc)), runs)
    result = {"ours": {**summary(ours), "parameters": parameters(model)}}
    for name, widths in VGG_CFGS.items():
        net = vgg(widths, len(model.labels))
        with torch.inference_mode():
            lat = timed(lambda net=net: net(as_image(ser.log_mel_spectrogram(clip, fc))), max(3, runs // 20), 1)
        result[name] = {
            **summary(lat),
            "parameters": parameters(net),
            "float32_mb": 4 * parameters(net) / 2**20,
            "slower": statistics.median(lat) / statistics.median(ours),
            "larger": parameters(net) / parameters(model),
        }
    return result


def features(clip: np.ndarray, fc: ser.FeatureConfig, runs: int) -> dict:
    t = timed(lambda: ser.log_mel_spectrogram(clip, fc), runs)
    return {**summary(t), "clips_per_s": 1 / statistics.median(t)}


# ----------------------------------------------------------------------------- where the time of one analysis goes


def stages(model: ser.SERModel, clip: np.ndarray, runs: int) -> dict:
    """CPU milliseconds per analysis (median over `runs`) of each step `ser.analyse_file` takes, and the pictures.

    Every function `ser.inference` imports from elsewhere is timed where `analyse` calls it (so a step added
    there is counted with no change here); the model's `probabilities` likewise. "other" is the rest. CPU time
    of this thread, not wall time: other processes on the machine do not inflate it, and it adds up to the
    server's CPU time per request that bench_app.py measures.
    """
    totals: dict[str, list[float]] = defaultdict(list)

    def timer(name, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name][-1] += time.thread_time() - t

        return wrapped

    names = [
        n for n, f in vars(ser.inference).items() if inspect.isfunction(f) and f.__module__ != ser.inference.__name__
    ]
    saved = {n: vars(ser.inference)[n] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.wav"
        sf.write(path, clip, model.feature_config.sample_rate, subtype="PCM_16")  # what a browser uploads
        try:
            for n in names:
                setattr(ser.inference, n, timer(n, saved[n]))
            model.probabilities = timer("model", model.probabilities)
            listener = ["voice features", "voice head"] if model.voice is not None else []
            if listener:
                model.voice.features = timer("voice features", model.voice.features)
                model.voice.probabilities = timer("voice head", model.voice.probabilities)
            for _ in range(runs + 3):
                for key in [*names, "model", *listener, "analysis"]:
                    totals[key].append(0.0)
                t = time.thread_time()
                analysis = ser.analyse_file(model, path)
                totals["analysis"][-1] = time.thread_time() - t
        finally:
            for n, f in saved.items():
                setattr(ser.inference, n, f)
            del model.probabilities
            if listener:
                del model.voice.features, model.voice.probabilities
    median = {k: 1000 * statistics.median(v[3:]) for k, v in totals.items() if any(v[3:])}
    median["other"] = max(0.0, median["analysis"] - sum(v for k, v in median.items() if k != "analysis"))
    median["pictures (page only)"] = 1000 * statistics.median(
        timed(lambda: draw(analysis), max(3, runs // 10), 1, clock=time.thread_time)
    )
    return median


def draw(a: ser.Analysis) -> None:
    """The page's three pictures, encoded as Gradio encodes a plot (not part of /predict)."""
    for fig in (
        plots.probabilities(a.probs),
        plots.waveform(a.audio, a.features.sample_rate),
        plots.log_mel(a.mel, a.features),
    ):
        fig.savefig(os.devnull, format="webp")
        plots.plt.close(fig)


# ----------------------------------------------------------------------------- training


def training(steps: int, folder: Path | None) -> dict:
    """Steps/s of `fit` with the default TrainConfig on synthetic clips, and the default budget extrapolated.

    Also the shipped fit's own time when the checkpoint's metrics.json records it (`final_fit_seconds`).
    """
    cfg = TrainConfig()
    fc, rng = cfg.model.features, np.random.default_rng(0)
    source = speech(fc.sample_rate)
    n, size = 64, int(3.5 * fc.sample_rate)
    starts = rng.integers(0, len(source) - size, n)
    emotions = ["neutral", "happy", "sad", "angry"]
    clips = Clips([source[s : s + size] for s in starts], [emotions[i % 4] for i in range(n)],
                  [f"s{i % 8}" for i in range(n)], ["synthetic"] * n, [""] * n)  # fmt: skip
    short = dataclasses.replace(cfg, epochs=1, steps_per_epoch=2)
    fit(clips, clips.subset([]), short, fc, log=lambda m: None)  # warm-up: first-call allocations
    timed_cfg = dataclasses.replace(cfg, epochs=1, steps_per_epoch=steps)
    t = time.perf_counter()
    fit(clips, clips.subset([]), timed_cfg, fc, log=lambda m: None)
    rate = steps / (time.perf_counter() - t)
    result = {
        "steps_measured": steps,
        "steps_per_s": rate,
        "budget_steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "extrapolated_seconds": cfg.steps / rate,
        "torch_threads": torch.get_num_threads(),
    }
    metrics = (folder or DEFAULT_MODEL) / "metrics.json"
    if metrics.is_file():
        recorded = json.loads(metrics.read_text()).get("training", {}).get("final_fit_seconds")
        result["final_fit_seconds"] = recorded
    return result


def model_file(model: ser.SERModel) -> dict:
    folder = model.source_dir or DEFAULT_MODEL
    weights = folder / "model.safetensors"
    return {
        "file_mb": weights.stat().st_size / 2**20,
        "parameters": parameters(model),
        "path": str(weights),
        "folder_mb": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20,
        "voice_parameters": parameters(model.voice.encoder) + model.voice.head.weight.size if model.voice else 0,
    }


def two_listeners(model: ser.SERModel, clip: np.ndarray, runs: int) -> dict:
    """Milliseconds per 3 s clip on one torch thread: the whole answer (`ser.analyse` of an array at the model's
    rate), the voice listener alone (front end, encoder, head) and its LSTM alone (3 layers stepped through the
    clip's ~300 frames: one 1024 x 256 matrix-vector product per frame and layer, which no batching can share);
    {} for a CNN-only model."""
    if model.voice is None:
        return {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sr = model.feature_config.sample_rate
        whole = timed(lambda: ser.analyse(model, clip, sr), runs)
        voice = timed(lambda: model.voice.probabilities(model.voice.features(clip)), runs)
        cfg = model.voice.encoder.cfg
        mel = mel_power(preprocess(clip, cfg), cfg)
        lstm = timed(lambda: model.voice.encoder.pooled([mel]), runs)
    finally:
        torch.set_num_threads(threads)
    return {"analysis": summary(whole), "voice_listener": summary(voice), "lstm": summary(lstm), "frames": len(mel),
            "threads": 1}  # fmt: skip


def onnx_graph(model: ser.SERModel, clip: np.ndarray, runs: int) -> dict:
    """The exported graph (`python -m ser export`): its size, and milliseconds per 3 s clip in onnxruntime on one
    thread beside `ser.analyse` on one torch thread, on the same clip in the same run."""
    from ser.export import export, run, session

    with tempfile.TemporaryDirectory() as tmp:
        path = export(model, Path(tmp) / "model.onnx")
        size_mb = path.stat().st_size / 1e6
        sess = session(path, threads=1)
        ort = timed(lambda: run(sess, clip), runs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sr = model.feature_config.sample_rate
        pytorch = timed(lambda: ser.analyse(model, clip, sr), runs)
    finally:
        torch.set_num_threads(threads)
    return {"file_mb": size_mb, "onnxruntime": summary(ort), "pytorch": summary(pytorch), "threads": 1}


def measure(model_name: str | None, quick: bool = False, log=print) -> dict:
    """Every in-process figure, as one dict (see `bench/run_all.py` for its place in the results file)."""
    runs = 20 if quick else 200
    model = ser.load_model(model_name)
    clip = speech_clips(1)[0]
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {runs} runs per figure")
    out = {"clip_seconds": CLIP_SECONDS, "torch_threads": torch.get_num_threads(), "model": model_file(model)}
    out["features"] = features(clip, model.feature_config, runs)
    log(f"log-mel, 3 s clip: {out['features']['clips_per_s']:.0f} clips/s")
    out["inference"] = inference(model, clip, runs)
    log("inference, 3 s clip: " + json.dumps(out["inference"], default=round))
    out["two_listeners"] = two_listeners(model, clip, max(10, runs // 4))
    log("two listeners, 3 s clip, 1 thread: " + json.dumps(out["two_listeners"], default=round))
    out["onnx"] = onnx_graph(model, clip, max(10, runs // 4))
    log("ONNX graph, 3 s clip, 1 thread: " + json.dumps(out["onnx"], default=round))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))  # as app.py runs analyses: two at a time, the cores split between them
    out["stages_ms"], out["stages_threads"] = stages(model, clip, runs), torch.get_num_threads()
    torch.set_num_threads(threads)
    log("where one analysis goes (ms): " + json.dumps(out["stages_ms"], default=round))
    out["training"] = training(5 if quick else 40, model.source_dir)
    log(f"training: {out['training']['steps_per_s']:.2f} steps/s -> {out['training']['extrapolated_seconds']:.0f} s")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder or Hub id (default: the shipped checkpoint)")
    p.add_argument("--quick", action="store_true", help="a few runs of each: checks the script, noisy figures")
    args = p.parse_args(argv)
    print(json.dumps(measure(args.model, args.quick), indent=2))


if __name__ == "__main__":
    main()
