"""The offline page, measured in Debian's Chromium: how long from opening the page to the first answer, and how
long each further answer takes, the model running in the browser (onnxruntime-web, one thread); and what a visitor
downloads.

    python bench/bench_offline.py [--model CHECKPOINT] [--runs 3]

Makes the page (`ser.offline.build`) in a temporary folder, serves it with Python's static server on 127.0.0.1 and,
for each run, opens it in a fresh browser (nothing cached): the first example clip is chosen as soon as the page
can take it, and the time to first answer runs from opening the page until its verdict is on screen (the page and
onnxruntime-web fetched, its WebAssembly unzipped and compiled, the model loaded; the clip decoded and analysed).
Then the other seven examples, one after another: from choosing the file to the verdict on screen, and the model's
own share of that. Medians over the runs. Prints the figures and writes bench/results/offline.json. Needs
/usr/bin/chromium and playwright; about 20 s per run on the 2-core machine, after a minute making the page.
"""

import argparse
import datetime
import functools
import http.server
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
from pathlib import Path

from ser.hub import load_model
from ser.offline import MODEL, build

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "offline.json"
TIMEOUT_MS = 120_000


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def one_run(pw, url: str, clips: list[Path]) -> dict:
    """A fresh browser: the page opened, every clip answered in turn; the page's own clock (ms since opening)."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("document.documentElement.dataset.state == 'ready'", timeout=TIMEOUT_MS)
        answers = []
        for i, clip in enumerate(clips):
            page.set_input_files("#file", str(clip))
            page.wait_for_function(f"document.documentElement.dataset.analyses == '{i + 1}'", timeout=TIMEOUT_MS)
            assert page.evaluate("document.documentElement.dataset.state") == "answered", clip
            answers.append(page.evaluate("({...serLast.ms, at: serLast.at})"))
        ready = page.evaluate("({ready: serReadyAt, load: serLoadMs})")
        version = browser.version
    finally:
        browser.close()
    rest = answers[1:]
    return {
        "chromium": version,
        "page_ready_ms": ready["ready"],
        "model_load_ms": ready["load"],
        "first_answer_ms": answers[0]["at"],
        "first_clip_ms": answers[0]["answer"],
        "per_clip_ms": statistics.mean(a["answer"] for a in rest),
        "per_clip_model_ms": statistics.mean(a["model"] for a in rest),
    }


def measure(model_name: str | None, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    clips = sorted((ROOT / "examples").glob("*.flac"))
    with tempfile.TemporaryDirectory() as tmp:
        site = build(load_model(model_name), Path(tmp) / "site")
        sizes = {p.relative_to(site).as_posix(): p.stat().st_size / 2**20 for p in site.rglob("*") if p.is_file()}
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as pw:
                done = [one_run(pw, f"http://127.0.0.1:{server.server_address[1]}/", clips) for _ in range(runs)]
        finally:
            server.shutdown()
    figures = {k: statistics.median(r[k] for r in done) for k in done[0] if k != "chromium"}
    return {
        "clips": [c.name for c in clips],
        "runs": runs,
        "chromium": done[0]["chromium"],
        **figures,
        "model_mb": sizes[MODEL],
        "download_mb": sum(sizes.values()),
        "files_mb": sizes,
        "each_run": done,
    }


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {"cpus": os.cpu_count(), "cpu": cpu or platform.processor(), "python": platform.python_version(),
            "commit": commit.stdout.strip()}  # fmt: skip


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder or Hub id; default: the shipped model")
    p.add_argument("--runs", type=int, default=3, help="fresh browsers, each answering every example (default 3)")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    page = measure(args.model, args.runs)
    results = {
        "command": "python bench/bench_offline.py" + f" --model {args.model}" * bool(args.model),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average_before": load,
        "offline": page,
    }
    print(f"offline page ({page['chromium']}, medians of {page['runs']} fresh browsers, one thread):")
    print(f"  first answer {page['first_answer_ms'] / 1000:.1f} s after opening the page "
          f"(ready to take a clip at {page['page_ready_ms'] / 1000:.1f} s; the model loaded in "
          f"{page['model_load_ms'] / 1000:.1f} s of it; the first clip {page['first_clip_ms']:.0f} ms)")  # fmt: skip
    print(
        f"  each further clip {page['per_clip_ms']:.0f} ms from choosing it to its answer on screen "
        f"(the model {page['per_clip_model_ms']:.0f} ms of it), mean of the {len(page['clips']) - 1} after the first"
    )
    print(f"  model.onnx {page['model_mb']:.1f} MiB; the whole page {page['download_mb']:.1f} MiB to download")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
