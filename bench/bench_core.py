"""Speed and size of the ser pipeline on this machine; prints its figures.

    python bench/bench_core.py [--model checkpoints/default] [--runs 100]

Measures, on synthetic audio (no corpus needed):
- feature extraction (decode-free: array -> log-mel) in clips/s for 3 s clips;
- training throughput (augmentation + features + forward/backward/step) in clips/s, and the time
  that implies for one epoch over 1,000 clips; then the same with one single-threaded process per
  thread side by side, as `train.py --jobs N` runs fits;
- per-clip inference latency for a 3 s clip (features + model), median and p95 over many runs;
- model file size, and the same latency/size for VGG-16 and VGG-19 (the standard configurations,
  random weights, 3x224x224 input) that the seed literature used.
"""

import argparse
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.augment import AugmentConfig  # noqa: E402
from ser.data import Clips  # noqa: E402
from ser.features import log_mel_spectrogram  # noqa: E402
from ser.hub import load_model  # noqa: E402
from ser.training import _batch  # noqa: E402

VGG_CFGS = {  # torchvision's configurations "D" and "E"
    "VGG-16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "VGG-19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg(cfg: list, n_classes: int = 8) -> nn.Module:
    layers, in_ch = [], 3
    for w in cfg:
        if w == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = w
    head = [
        nn.AdaptiveAvgPool2d(7),
        nn.Flatten(),
        nn.Linear(512 * 49, 4096),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(4096, n_classes),
    ]
    return nn.Sequential(*layers, *head).eval()


def timed(fn, runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ms(xs: list[float]) -> str:
    return f"median {1000 * statistics.median(xs):.1f} ms, p95 {1000 * np.percentile(xs, 95):.1f} ms"


def training_throughput(model_id: str | None, runs: int, threads: int = 0) -> float:
    """Training clips/s of the model's architecture: augmentation + features + forward/backward/step."""
    if threads:
        torch.set_num_threads(threads)
    model, _ = load_model(model_id)
    fc, rng = model.feature_config, np.random.default_rng(0)
    clips = Clips(
        [(0.1 * rng.standard_normal(int(3.5 * fc.sample_rate))).astype(np.float32) for _ in range(64)],
        ["neutral"] * 64,
        ["s"] * 64,
        ["synthetic"] * 64,
        [""] * 64,
    )
    model.train()
    opt = torch.optim.AdamW(model.parameters())
    g = torch.Generator().manual_seed(0)

    def step():
        mel = _batch(clips, rng.integers(0, 64, 32), fc, AugmentConfig(), rng, g, "cpu")
        loss = model(mel).logsumexp(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return 32 / statistics.median(timed(step, runs, warmup=2))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder or Hub id (default: shipped checkpoint)")
    p.add_argument("--runs", type=int, default=100)
    args = p.parse_args(argv)
    model, _ = load_model(args.model)
    fc = model.feature_config
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(3 * fc.sample_rate)).astype(np.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    t = timed(lambda: log_mel_spectrogram(clip, fc), args.runs)
    print(f"feature extraction, 3 s clip: {1 / statistics.median(t):.0f} clips/s ({ms(t)})")

    t = timed(lambda: model.predict_proba(clip), args.runs)
    print(f"inference, 3 s clip (features + model): {ms(t)}  [target <= 20 ms]")

    threads = torch.get_num_threads()
    rate = training_throughput(args.model, max(5, args.runs // 10))
    print(
        f"training, batches of 32 x 3 s with augmentation, 1 process x {threads} threads: {rate:.0f} clips/s "
        f"-> one epoch over 1,000 clips {1000 / rate:.0f} s  [target <= 60 s]"
    )
    if threads > 1:  # what `train.py --jobs N` does: N fits side by side, the threads shared between them
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(threads, mp_context=context) as pool:
            rates = list(
                pool.map(
                    training_throughput, [args.model] * threads, [max(5, args.runs // 10)] * threads, [1] * threads
                )
            )
        print(
            f"training, {threads} processes x 1 thread side by side (train.py --jobs {threads}): "
            f"{sum(rates):.0f} clips/s in all, {sum(rates) / rate:.2f}x one process"
        )

    folder = Path(args.model) if args.model and Path(args.model).is_dir() else None
    from ser.hub import DEFAULT_MODEL

    weights = (folder or DEFAULT_MODEL) / "model.safetensors"
    ours_mb = weights.stat().st_size / 2**20 if weights.exists() else float("nan")
    n_ours = sum(p.numel() for p in model.parameters())
    mel = log_mel_spectrogram(clip, fc)[None]
    with torch.inference_mode():
        ours = timed(lambda: model(mel), args.runs)
    print(f"\nours: {n_ours / 1e6:.2f} M parameters, {ours_mb:.1f} MB file, model-only {ms(ours)}  [target <= 5 MB]")
    x = torch.randn(1, 3, 224, 224)
    for name, cfg in VGG_CFGS.items():
        net = vgg(cfg)
        n = sum(p.numel() for p in net.parameters())
        with torch.inference_mode():
            lat = timed(lambda net=net: net(x), max(5, args.runs // 10), warmup=2)
        print(
            f"{name}: {n / 1e6:.1f} M parameters ({4 * n / 2**20:.0f} MB as float32), {ms(lat)}; "
            f"ours is {n / n_ours:.0f}x smaller and {statistics.median(lat) / statistics.median(ours):.0f}x faster"
        )


if __name__ == "__main__":
    main()
