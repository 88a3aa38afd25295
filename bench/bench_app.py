"""Round-trip latency and throughput of the app's `/predict` API through gradio_client; prints its figures.

    python bench/bench_app.py [--model checkpoints/default] [--requests 50] [--clients 8]

Starts `python app.py` in a subprocess (as a Space does) and measures, for a 3 s clip:
- time from process start to serving the page;
- latency of `/predict` (upload + queue + decode + quality check + model + reply), p50/p95, one client;
- throughput and latency with 8 concurrent clients, and failed requests (target: none);
- for reference, the browser's second step (the three figures), timed in-process.
Every request sends a different clip: the app remembers recent uploads, and a repeat would measure that.
Without --model and without checkpoints/default, a randomly initialised model of the default size stands in
(same computation, meaningless answers).
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import speech_like, write  # noqa: E402

from ser.corpora import EMOTIONS  # noqa: E402
from ser.hub import DEFAULT_MODEL, load_model  # noqa: E402
from ser.model import ModelConfig, SERModel  # noqa: E402


def ms(xs: list[float]) -> str:
    return f"p50 {1000 * statistics.median(xs):.0f} ms, p95 {1000 * np.percentile(xs, 95):.0f} ms, max {1000 * max(xs):.0f} ms"


def start_app(model: str, tmp: Path) -> tuple[subprocess.Popen, str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SER_MODEL": model, "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(tmp / "gradio")}
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/"
    while True:
        if proc.poll() is not None:
            sys.exit(f"app.py exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return proc, url, time.perf_counter() - t
        except OSError:
            time.sleep(0.05)


def call(client, path: Path) -> tuple[float, bool]:
    """(seconds, ok) for one /predict round trip."""
    from gradio_client import handle_file

    t = time.perf_counter()
    try:
        verdict, label, _ = client.predict(handle_file(str(path)), api_name="/predict")
        ok = bool(label and label.get("confidences")) and "Cannot analyse" not in verdict
    except Exception as e:
        print(f"  failed: {type(e).__name__}: {e}")
        ok = False
    return time.perf_counter() - t, ok


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder or Hub id (default: the shipped checkpoint)")
    p.add_argument("--requests", type=int, default=50, help="requests with one client")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=10, help="requests per client in the concurrent run")
    args = p.parse_args(argv)
    from gradio_client import Client

    tmp = Path(tempfile.mkdtemp(prefix="bench_app_"))
    model = args.model
    if model is None and not (DEFAULT_MODEL / "model.safetensors").exists():
        model = str(tmp / "random-model")
        SERModel(ModelConfig(labels=EMOTIONS)).save_pretrained(model)
        print("no checkpoints/default: using a randomly initialised model of the default architecture")
    n_files = 3 + args.requests + args.clients * args.per_client
    clips = [write(tmp / f"clip{i}.wav", speech_like(3.0, f0=120 + i % 80, seed=i)) for i in range(n_files)]

    proc, url, ready = start_app(model or str(DEFAULT_MODEL), tmp)
    try:
        print(f"python app.py: serving after {ready:.1f} s  [target <= 10 s]; {os.cpu_count()} CPU cores")
        client = Client(url, verbose=False)
        for path in clips[:3]:  # warm-up: first-call JIT compiling and caches
            call(client, path)
        single = [call(client, path) for path in clips[3 : 3 + args.requests]]
        lat = [t for t, _ in single]
        print(f"/predict, 3 s clip, 1 client, {len(lat)} requests: {ms(lat)}  [target p95 <= 300 ms]")

        rest = clips[3 + args.requests :]
        clients = [Client(url, verbose=False) for _ in range(args.clients)]
        results: list[tuple[float, bool]] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for path in rest[k :: args.clients]:
                r = call(clients[k], path)
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        lat = [r[0] for r in results]
        failed = sum(1 for _, ok in single + results if not ok)
        print(
            f"/predict, {args.clients} concurrent clients, {len(results)} requests: {len(results) / wall:.1f} requests/s, "
            f"latency {ms(lat)}"
        )
        print(f"failed requests: {failed} of {len(single) + len(results)}  [target 0]")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    import app  # the browser's second step, not part of /predict: the three figures

    m, _ = load_model(model)
    result = app.analyse_upload(m, str(clips[0]))
    app.figures(result, m)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        figs = app.figures(result, m)
        for f in figs:  # what gr.Plot does with each
            f.savefig(os.devnull, format="webp")
        times.append(time.perf_counter() - t)
    print(f"figures step (browser only, after /predict), in-process: {ms(times)}")


if __name__ == "__main__":
    main()
