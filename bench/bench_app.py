"""The app under load: `python app.py` in a subprocess on 127.0.0.1, `/predict` through gradio_client; prints figures.

    python bench/bench_app.py [--model checkpoints/default] [--requests 2000] [--quick] [--crowd | --soak]

Measures, for real 3 s speech clips (16-bit WAV, as a browser uploads them):
- cold start: seconds from starting `python app.py` until it serves the page, and until it answers `/predict`;
- `/predict` at 1, 8 and 32 concurrent clients (each its own gradio_client session, sending its next clip as soon
  as the last is answered): latency p50/p95/max, requests/s, and how many were answered, told the server is busy,
  or failed; every level stops after `--requests` requests or `--seconds` seconds, whichever comes first;
- the server's CPU time per request, and its resident memory (RSS): after warm-up, after each level, its peak,
  and after resting `--rest` seconds;
- fairness: `/predict` at 4 clients while 2 clients loop `/timeline` on 10-minute recordings (its p95 should stay
  within the 2 s promise);
- `/explain` in a burst, 8 clients x 5 clips of 30 s: latency, and the server's RSS before, at its peak and after
  resting `--rest` seconds (it should come back within 50 MB);
- time: SOAK_ROUNDS rounds of SOAK_REQUESTS `/predict` calls at 8 clients, each call in a new session, with a rest
  after each: the server's RSS after each rest (it should stop growing after the first round).
`--crowd` measures only the fairness and `/explain` figures, `--soak` only the rounds.
Each client sends its own clips (identical clips from several clients are one file on the server, analysed once for
all of them, which would flatter the figures). Without --model and without checkpoints/default, a randomly initialised model of
the default size stands in (same computation, meaningless answers).
"""

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf
from bench_core import speech_clips
from gradio_client import Client, handle_file

from ser.corpora import EMOTIONS
from ser.hub import DEFAULT_MODEL
from ser.model import ModelConfig, SERModel

ROOT = Path(__file__).resolve().parent.parent
LEVELS = (1, 8, 32)
FILES_PER_CLIENT = 4
SOAK_CLIENTS = 8
SOAK_ROUNDS = 4  # of SOAK_REQUESTS, each followed by SOAK_REST_S of rest: ~4 min on 2 cores
SOAK_REQUESTS = 1500
SOAK_REST_S = 25.0  # beyond the app's idle times (serving.CLEAN_SESSION_SECONDS and IDLE_TRIM_SECONDS)


# ----------------------------------------------------------------------------- the server process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_app(model: str, tmp: Path, clip: Path, timeout: float = 300) -> tuple[subprocess.Popen, str, dict]:
    """Start `python app.py` serving `model`; (process, url, {serve_s, first_predict_s}) once it answers /predict."""
    port = free_port()
    env = {**os.environ, "SER_MODEL": model, "GRADIO_SERVER_PORT": str(port), "GRADIO_TEMP_DIR": str(tmp / "gradio")}
    env.pop("GRADIO_SERVER_NAME", None)  # app.py's own default: 127.0.0.1
    log = open(tmp / "app.log", "w")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url, times = f"http://127.0.0.1:{port}/", {}
    while "first_predict_s" not in times:
        if proc.poll() is not None:
            sys.exit(f"error: app.py exited: {(tmp / 'app.log').read_text()[-2000:]}")
        if time.perf_counter() - t > timeout:
            proc.kill()
            sys.exit(f"error: app.py did not answer within {timeout:.0f} s")
        try:
            if "serve_s" not in times:
                urllib.request.urlopen(url, timeout=1)
                times["serve_s"] = time.perf_counter() - t
            Client(url, verbose=False, ssl_verify=False).predict(handle_file(str(clip)), api_name="/predict")
            times["first_predict_s"] = time.perf_counter() - t
        except Exception:  # not listening yet, or still starting up
            time.sleep(0.05)
    return proc, url, times


def import_seconds(runs: int = 3) -> dict:
    """The floor under the cold start: seconds a fresh `python -c "import X"` takes, best of `runs`, for gradio,
    torch, and everything app.py imports."""
    out = {}
    for name, code in {"gradio": "import gradio", "torch": "import torch", "app": "import app"}.items():
        best = float("inf")
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
            best = min(best, time.perf_counter() - t)
        out[name] = best
    return out


# ----------------------------------------------------------------------------- clients


def client(url: str) -> Client:
    # ssl_verify=False: the app is plain HTTP on 127.0.0.1, so nothing is verified either way, but with the default
    # gradio_client builds an httpx client for each request that loads the CA bundle first (about 65 ms of CPU per
    # request, measured): on a 2-core machine that shares its cores with the server, the load test would mostly
    # measure its own client. A visitor's client runs on their own machine.
    return Client(url, verbose=False, ssl_verify=False)


def outcome(answer) -> str:
    """'ok' (scores), 'busy' (the server asked to try again) or 'failed: <first line of the verdict>'."""
    verdict, label, _ = answer
    if label and label.get("confidences"):
        return "ok"
    if "busy" in verdict.lower():
        return "busy"
    return "failed: " + verdict.strip().splitlines()[-1][:120]


def make_files(folder: Path, n_clients: int, clips: list[np.ndarray], sample_rate: int) -> list[list[Path]]:
    """FILES_PER_CLIENT different WAV files for each client, none shared between clients."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n_clients):
        own = []
        for j in range(FILES_PER_CLIENT):
            path = folder / f"client{k}_{j}.wav"
            sf.write(path, clips[(k * FILES_PER_CLIENT + j) % len(clips)], sample_rate, subtype="PCM_16")
            own.append(path)
        files.append(own)
    return files


def level(url: str, pid: int, files: list[list[Path]], requests: int, seconds: float, fresh: bool = False) -> dict:
    """`len(files)` clients sending until `requests` are answered or `seconds` pass; latency, outcomes, RSS peak.
    `fresh`: each request in a new session, as scripts that make a client per call send them."""
    clients = [client(url) for _ in files]
    tickets, lock = itertools.count(), threading.Lock()
    records: list[tuple[float, str]] = []
    deadline = time.perf_counter() + seconds

    def worker(k: int) -> None:
        for path in itertools.cycle(files[k]):
            if next(tickets) >= requests or time.perf_counter() > deadline:
                return
            if fresh:
                clients[k].reset_session()
            t = time.perf_counter()
            try:
                result = outcome(clients[k].predict(handle_file(str(path)), api_name="/predict"))
            except Exception as e:  # what the client raised is the failure
                result = f"failed: {type(e).__name__}: {' '.join(str(e).split())[:120]}"
            with lock:
                records.append((time.perf_counter() - t, result))

    cpu0 = cpu_seconds(pid)
    wall, peak = together(worker, range(len(files)), pid)
    return summarise(records, wall, cpu_seconds(pid) - cpu0, len(files)) | {"rss_peak_mb": peak}


def together(worker, args, pid: int) -> tuple[float, float]:
    """Run `worker(a)` for every `a` in `args` at once, sampling the server's RSS meanwhile: (wall seconds, peak
    MiB)."""
    peak, done = [rss_mb(pid)], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak.append(rss_mb(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(a,)) for a in args]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return wall, max(peak)


def summarise(records: list[tuple[float, str]], wall: float, cpu: float, n_clients: int) -> dict:
    def ms(xs: list[float], q: float) -> float | None:
        return 1000 * float(np.percentile(xs, q)) if xs else None

    every = [t for t, _ in records]
    answered = [t for t, r in records if r == "ok"]
    busy = [t for t, r in records if r == "busy"]
    failures = sorted({r for _, r in records if r.startswith("failed")})
    return {
        "clients": n_clients,
        "requests": len(records),
        "ok": len(answered),
        "busy": len(busy),
        "failed": len(records) - len(answered) - len(busy),
        "failures": failures[:5],
        "wall_s": wall,
        "requests_per_s": len(records) / wall,
        "answered_per_s": len(answered) / wall,
        "p50_ms": ms(every, 50),
        "p95_ms": ms(every, 95),
        "max_ms": ms(every, 100),
        "answered_p95_ms": ms(answered, 95),
        "busy_p95_ms": ms(busy, 95),
        "server_cpu_ms_per_request": 1000 * cpu / max(len(records), 1),
    }


# ----------------------------------------------------------------------------- fairness and /explain


def looping(url: str, api_name: str, args: list, stop: threading.Event, records: list) -> None:
    """One client calling `api_name` with `args` until `stop`; records (seconds, 'ok' | 'busy' | 'failed: ...')."""
    c = client(url)
    while not stop.is_set():
        t = time.perf_counter()
        try:
            c.predict(*args, api_name=api_name)
            result = "ok"
        except Exception as e:
            result = "busy" if "busy" in str(e).lower() else f"failed: {' '.join(str(e).split())[:120]}"
        records.append((time.perf_counter() - t, result))


def predict_beside_timelines(url: str, pid: int, tmp: Path, clips: list[np.ndarray], seconds: float) -> dict:
    """`/predict` at 4 clients for `seconds` while 2 clients loop `/timeline` on 10-minute recordings."""
    stop, timelines = threading.Event(), []
    for k in range(2):
        sf.write(tmp / f"ten_minutes_{k}.wav", np.tile(np.concatenate(clips[k::2]), 20)[: 600 * 16000], 16000)
    loops = [threading.Thread(target=looping, args=(url, "/timeline", [handle_file(str(tmp / f"ten_minutes_{k}.wav"))],
                                                    stop, timelines)) for k in range(2)]  # fmt: skip
    for th in loops:
        th.start()
    time.sleep(5)  # both timelines under way
    files = make_files(tmp / "beside", 4, clips, 16000)
    result = level(url, pid, files, 10**6, seconds)
    stop.set()
    for th in loops:
        th.join()
    result["timelines"] = {"calls": len(timelines), "ok": sum(r == "ok" for _, r in timelines),
                           "busy": sum(r == "busy" for _, r in timelines)}  # fmt: skip
    return result


def explain_burst(url: str, pid: int, tmp: Path, clips: list[np.ndarray], rest: float) -> dict:
    """8 clients each asking `/explain` about 5 clips of 30 s at once; latency and RSS before, peak, after `rest`."""
    files = [[tmp / f"explain_{k}_{j}.wav" for j in range(5)] for k in range(8)]
    for k, own in enumerate(files):
        for j, path in enumerate(own):
            sf.write(path, np.tile(clips[(5 * k + j) % len(clips)], 10), 16000, subtype="PCM_16")
    before, records = rss_mb(pid), []

    def worker(own: list[Path]) -> None:
        c = client(url)
        for path in own:
            t = time.perf_counter()
            try:
                c.predict(handle_file(str(path)), None, api_name="/explain")
                result = "ok"
            except Exception as e:
                result = "busy" if "busy" in str(e).lower() else f"failed: {' '.join(str(e).split())[:120]}"
            records.append((time.perf_counter() - t, result))

    wall, peak = together(worker, files, pid)
    time.sleep(rest)
    return summarise(records, wall, 0.0, len(files)) | {
        "rss_before_mb": before, "rss_peak_mb": peak, "rss_after_rest_mb": rss_mb(pid), "rest_s": rest}  # fmt: skip


def crowd(url: str, pid: int, tmp: Path, clips: list[np.ndarray], seconds: float, rest: float, log=print) -> dict:
    """The fairness and /explain figures; one dict (see `bench/run_all.py`)."""
    out = {"beside_timelines": predict_beside_timelines(url, pid, tmp, clips, seconds)}
    log(
        f"/predict at 4 clients beside 2 timelines: {json.dumps(out['beside_timelines'], default=lambda x: round(x, 1))}"
    )
    out["explain_burst"] = explain_burst(url, pid, tmp, clips, rest)
    log(
        f"/explain burst, 8 clients x 5 clips of 30 s: {json.dumps(out['explain_burst'], default=lambda x: round(x, 1))}"
    )
    return out


# ----------------------------------------------------------------------------- time


def soak(url: str, pid: int, tmp: Path, clips: list[np.ndarray], rounds: int, requests: int, rest: float,
         log=print) -> dict:  # fmt: skip
    """What hours of use do to the server's memory, in minutes: `rounds` rounds of `requests` /predict calls from
    SOAK_CLIENTS clients, each call in a new session (as scripts that make a client per call send them, the most a
    session-keeping server can be asked to keep), resting `rest` seconds after each (the app forgets idle sessions
    and trims its memory meanwhile). The server's RSS after each rest should stop growing after the first round."""
    files = make_files(tmp / "soak", SOAK_CLIENTS, clips, 16000)
    out = {"clients": SOAK_CLIENTS, "requests_per_round": requests, "rest_s": rest, "rss_before_mb": rss_mb(pid),
           "rounds": []}  # fmt: skip
    for r in range(rounds):
        result = level(url, pid, files, requests, 600, fresh=True)
        time.sleep(rest)
        out["rounds"].append(result | {"rss_after_rest_mb": rss_mb(pid)})
        log(f"soak round {r + 1} of {rounds}: {result['requests_per_s']:.1f} requests/s, {result['failed']} failed, "
            f"RSS peak {result['rss_peak_mb']:.0f} MiB, {out['rounds'][-1]['rss_after_rest_mb']:.0f} after the rest")  # fmt: skip
    return out


# ----------------------------------------------------------------------------- the whole run


def measure(model: str | None, requests: int, seconds: float, rest: float, log=print, only: str | None = None,
            soak_rounds: int = SOAK_ROUNDS, soak_requests: int = SOAK_REQUESTS) -> dict:  # fmt: skip
    """Cold start, then every level of LEVELS, then a rest, then `crowd`, then `soak`; one dict (see
    `bench/run_all.py`). `only`: "crowd" or "soak", cold start and that only."""
    with tempfile.TemporaryDirectory(prefix="bench_app_") as tmp:
        tmp = Path(tmp)
        if model is None and not (DEFAULT_MODEL / "model.safetensors").exists():
            model = str(tmp / "random-model")
            SERModel(ModelConfig(labels=EMOTIONS)).save_pretrained(model)
            log("no checkpoints/default: a randomly initialised model of the default architecture stands in")
        model = model or str(DEFAULT_MODEL)
        clips = speech_clips(max(LEVELS) * FILES_PER_CLIENT + 1)
        first = tmp / "first.wav"
        sf.write(first, clips[-1], 16000, subtype="PCM_16")
        out = {"imports_s": import_seconds()}
        proc, url, started = start_app(model, tmp, first)
        out |= started
        try:
            log(
                f"python app.py: serves after {out['serve_s']:.1f} s, answers /predict after {out['first_predict_s']:.1f} s"
            )
            warm = make_files(tmp / "warm", 1, clips[::-1], 16000)
            level(url, proc.pid, warm, 20, seconds)  # first-call allocations and caches
            out["rss_mb"] = {"after_warm_up": rss_mb(proc.pid)}
            out["levels"] = []
            for n in () if only else LEVELS:
                files = make_files(tmp / f"c{n}", n, clips, 16000)
                result = level(url, proc.pid, files, max(requests, 3 * n), seconds)  # 3 each at least
                out["levels"].append(result)
                out["rss_mb"][f"after_{n}_clients"] = rss_mb(proc.pid)
                log(json.dumps(result, default=lambda x: round(x, 1)))
            if not only:
                time.sleep(rest)
                out["rss_mb"]["after_rest"] = rss_mb(proc.pid)
                out["rss_mb"]["peak"] = max(r["rss_peak_mb"] for r in out["levels"])
                out["rest_s"] = rest
                log(f"server RSS (MiB): {json.dumps(out['rss_mb'], default=lambda x: round(x, 1))}")
            if only in (None, "crowd"):
                out["crowd"] = crowd(url, proc.pid, tmp, clips, min(seconds, 60), rest, log)
            if only in (None, "soak") and soak_rounds:
                out["soak"] = soak(url, proc.pid, tmp, clips, soak_rounds, soak_requests, SOAK_REST_S, log)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder or Hub id (default: the shipped checkpoint)")
    p.add_argument("--requests", type=int, default=2000, help="requests per level (default 2000)")
    p.add_argument("--seconds", type=float, default=600, help="time limit per level (default 600 s)")
    p.add_argument("--rest", type=float, default=60, help="seconds of rest before the last memory reading")
    p.add_argument(
        "--quick", action="store_true", help="40 requests per level (3 per client at least), 60 s limit, 5 s rest"
    )
    p.add_argument("--crowd", action="store_true", help="only /predict beside timelines and the /explain burst")
    p.add_argument("--soak", action="store_true", help="only the rounds of calls in new sessions (`soak`)")
    args = p.parse_args(argv)
    soak_rounds, soak_requests = SOAK_ROUNDS, SOAK_REQUESTS
    if args.quick:
        args.requests, args.seconds, args.rest = 40, 60, 5
        soak_rounds, soak_requests = 2, 40
    only = "crowd" if args.crowd else "soak" if args.soak else None
    out = measure(args.model, args.requests, args.seconds, args.rest, only=only, soak_rounds=soak_rounds,
                  soak_requests=soak_requests)  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
