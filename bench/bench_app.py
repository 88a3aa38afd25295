"""Round-trip latency and throughput of the app's `/predict` API through gradio_client; prints its figures.

    python bench/bench_app.py [--model checkpoints/default] [--requests 50] [--clients 8]

Starts `python app.py` in a subprocess (as a Space does) and measures, for a 3 s clip:
- time from process start to serving the page;
- latency of `/predict` (upload + queue + decode + quality check + model + reply), p50/p95, one client;
- throughput and latency with 8 concurrent clients, and failed requests (target: none);
- for reference, the browser's second step (the views registered as pictures), timed in-process.
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


def concurrent(url: str, clips: list[Path], n_clients: int) -> tuple[list[tuple[float, bool]], float]:
    """Each of `n_clients` clients (its own session) sends its share of `clips` in turn; (results, wall seconds)."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(n_clients)]
    results: list[tuple[float, bool]] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for path in clips[k::n_clients]:
            r = call(clients[k], path)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, time.perf_counter() - t


def figures_step(model_name: str, clip: Path, runs: int = 10) -> list[float]:
    """Seconds to draw and encode the picture views, in-process: the browser's second step after its analysis."""
    import app

    result = app.analyse_upload(load_model(model_name), str(clip))
    pictures = [name for name, view in app.VIEWS.items() if view.picture]
    times = []
    for _ in range(runs + 1):  # the first draw loads fonts
        t = time.perf_counter()
        for fig in app.render(result, pictures):
            fig.savefig(os.devnull, format="webp")  # what gr.Plot does with each
        times.append(time.perf_counter() - t)
    return times[1:]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder or Hub id (default: the shipped checkpoint)")
    p.add_argument("--requests", type=int, default=50, help="requests with one client")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=10, help="requests per client in the concurrent run")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_app_") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    from gradio_client import Client

    model = args.model or str(DEFAULT_MODEL)
    if args.model is None and not (DEFAULT_MODEL / "model.safetensors").exists():
        model = str(tmp / "random-model")
        SERModel(ModelConfig(labels=EMOTIONS)).save_pretrained(model)
        print("no checkpoints/default: using a randomly initialised model of the default architecture")
    n_files = 3 + args.requests + args.clients * args.per_client
    clips = [write(tmp / f"clip{i}.wav", speech_like(3.0, f0=120 + i % 80, seed=i)) for i in range(n_files)]
    warm, single, many = clips[:3], clips[3 : 3 + args.requests], clips[3 + args.requests :]

    proc, url, ready = start_app(model, tmp)
    try:
        print(f"python app.py: serving after {ready:.1f} s  [target <= 10 s]; {os.cpu_count()} CPU cores")
        client = Client(url, verbose=False)
        for path in warm:  # first-call JIT compiling and caches
            call(client, path)
        one = [call(client, path) for path in single]
        print(f"/predict, 3 s clip, 1 client, {len(one)} requests: {ms([t for t, _ in one])}  [target p95 <= 300 ms]")
        results, wall = concurrent(url, many, args.clients)
        print(
            f"/predict, {args.clients} concurrent clients, {len(results)} requests: "
            f"{len(results) / wall:.1f} requests/s, latency {ms([t for t, _ in results])}"
        )
        failed = sum(1 for _, ok in one + results if not ok)
        print(f"failed requests: {failed} of {len(one) + len(results)}  [target 0]")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"figures step (browser only, after /predict), in-process: {ms(figures_step(model, clips[0]))}")


if __name__ == "__main__":
    main()
