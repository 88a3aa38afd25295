"""Every speed, size and load figure the project reports, into one results file; and the pages that show it.

    python bench/run_all.py            # about 16 min on the 2-core machine: writes bench/results/speed.json, then
                                       # bench/README.md (every figure) and the README's five-line summary
    python bench/run_all.py --quick    # a minute or two, noisy: checks the scripts, writes speed-quick.json and
                                       # prints its tables (a quick run is never published)
    python bench/run_all.py --table    # rewrites bench/README.md and the summary from speed.json, measuring nothing

The figures come from bench/bench_core.py (in-process: features, inference with VGG-16/19 ratios, where one
analysis spends its time, training speed, model size) and bench/bench_app.py (`python app.py` in a subprocess,
`/predict` through gradio_client at 1, 8 and 32 clients, 2,000 requests each: cold start, latency, throughput,
failures, server memory). Run it on an otherwise idle machine: the load average before and after is recorded.
"""

import argparse
import ast
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import bench_app
import bench_core
import bench_timeline
import gradio
import torch

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PAGE = BENCH / "README.md"  # every figure, written from the results file
README = BENCH.parent / "README.md"  # its five-line summary, between these two lines
SUMMARY_START = "<!-- speed summary: written by python bench/run_all.py --table from bench/results/speed.json -->"
SUMMARY_END = "<!-- end of speed summary -->"
# The targets of issue 19, on the 2-core machine.
TARGET_RATE_8 = 20.0  # requests/s at 8 clients
TARGET_P95_32 = 2000.0  # ms at 32 clients, unless the waiting ones are told "busy" fast
TARGET_RSS_GROWTH = 50.0  # MiB over all the requests, and back to the baseline after a rest
TARGET_SOAK_GROWTH = 25.0  # MiB of RSS, after a rest, from the soak's first round to its last: no growth with time
# The two-listeners issue's budgets: the fused answer per 3 s clip on one thread, and the checkpoint folder.
TARGET_FUSED_MS = 30.0
TARGET_FOLDER_MB = 12.0
TARGET_COLD_START_S = 8.0  # until `python app.py` serves the page
TARGET_TIMELINE_S = 15.0  # the timeline of a 10-minute recording, file to segments


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS)
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gradio": gradio.__version__,
        "commit": commit.stdout.strip(),
    }


def run(args: argparse.Namespace) -> dict:
    start, load = time.time(), os.getloadavg()[0]
    results = {
        "command": "python bench/run_all.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average_before": load,
    }
    print(f"== in-process figures (load average {load:.1f})", flush=True)
    results["core"] = bench_core.measure(args.model, quick=args.quick)
    print("== the timeline of a long recording", flush=True)
    results["timeline"] = bench_timeline.measure(
        args.model, minutes=2 if args.quick else 10, repeats=1 if args.quick else 2
    )
    print("== the app under load", flush=True)
    requests, seconds, rest = (40, 60, 5) if args.quick else (2000, 600, 60)
    soak = dict(soak_rounds=2, soak_requests=40) if args.quick else {}
    results["app"] = bench_app.measure(args.model, requests, seconds, rest, **soak)
    results["load_average_after"] = os.getloadavg()[0]
    results["seconds"] = time.time() - start
    return results


# ----------------------------------------------------------------------------- the Markdown table


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def level_row(lv: dict) -> list[str]:
    n = lv["clients"]
    text = (
        f"p50 {ms(lv['p50_ms'])}, p95 {ms(lv['p95_ms'])}; {lv['requests_per_s']:.1f} requests/s; "
        f"{lv['ok']:,} answered, {lv['busy']:,} told busy, {lv['failed']:,} failed of {lv['requests']:,}"
    )
    if lv["busy"]:
        text += f" (busy answers p95 {ms(lv['busy_p95_ms'])})"
    ok = lv["failed"] == 0
    target = "0 failed"
    if n == 8:
        ok, target = ok and lv["requests_per_s"] >= TARGET_RATE_8, f"0 failed, >= {TARGET_RATE_8:g} requests/s"
    if n == 32:  # busy answers count in the p95: every answer, analysis or "try again", within 2 s
        ok, target = ok and lv["p95_ms"] <= TARGET_P95_32, "0 failed; p95 <= 2 s, or a fast 'busy, try again'"
    return [f"`/predict`, {n} client{'s' if n > 1 else ''}", text, f"{target}: {mark(ok)}"]


def speed_rows(r: dict) -> list[list[str]]:
    core, app = r["core"], r["app"]
    inf, tr, size = core["inference"], core["training"], core["model"]
    rows = [
        ["Model file", f"{size['file_mb']:.1f} MB, {size['parameters'] / 1e6:.2f} M parameters", ""],
    ]
    if "folder_mb" in size:
        ok = size["folder_mb"] <= TARGET_FOLDER_MB
        rows.append(["Checkpoint folder (both listeners, card, metrics)", f"{size['folder_mb']:.1f} MB",
                     f"<= {TARGET_FOLDER_MB:g} MB: {mark(ok)}"])  # fmt: skip
    two = core.get("two_listeners") or {}
    if two:
        ok = two["analysis"]["median_ms"] <= TARGET_FUSED_MS
        rows.append([
            "Two listeners' answer per 3 s clip, 1 thread (`ser.analyse`: both listeners and the fusion)",
            f"median {ms(two['analysis']['median_ms'])}, p95 {ms(two['analysis']['p95_ms'])}; the voice listener "
            f"alone {ms(two['voice_listener']['median_ms'])}"
            + (f", of which its LSTM over the clip's {two['frames']} frames {ms(two['lstm']['median_ms'])}"
               if "lstm" in two else ""),  # fmt: skip
            f"<= {TARGET_FUSED_MS:g} ms: {mark(ok)}",
        ])  # fmt: skip
    if graph := core.get("onnx"):
        rows.append([
            "The ONNX graph (`python -m ser export`: every listener, front ends inside), per 3 s clip, 1 thread",
            f"{graph['file_mb']:.1f} MB; onnxruntime median {ms(graph['onnxruntime']['median_ms'])}, PyTorch "
            f"(`ser.analyse`) {ms(graph['pytorch']['median_ms'])} in the same run",
            "",
        ])  # fmt: skip
    rows += [
        ["Log-mel features of a 3 s clip", f"{core['features']['clips_per_s']:,.0f} clips/s", ""],
        [
            "Inference per 3 s clip (log-mel + model)",
            f"median {ms(inf['ours']['median_ms'])}, p95 {ms(inf['ours']['p95_ms'])}",
            "",
        ],
    ]
    for name, label in (("vgg16", "VGG-16"), ("vgg19", "VGG-19")):
        v = inf[name]
        rows.append([
            f"{label} on the same clip, same run (log-mel as a 224x224 image)",
            f"median {ms(v['median_ms'])}: {v['slower']:.0f}x slower; {v['larger']:.0f}x the parameters "
            f"({v['float32_mb']:.0f} MB as float32)",
            "",
        ])  # fmt: skip
    fit = f"{tr['extrapolated_seconds'] / 60:.0f} min, extrapolated from {tr['steps_per_s']:.2f} steps/s over "
    fit += f"{tr['steps_measured']} steps of `ser.training.fit` on synthetic clips"
    if tr.get("final_fit_seconds"):
        fit += f"; the shipped model's final fit took {tr['final_fit_seconds'] / 60:.0f} min (its metrics.json)"
    if tl := r.get("timeline"):
        rows.append([
            f"Emotion over time of a {tl['minutes']:g}-minute recording (`bench/bench_timeline.py`: 48 kHz stereo WAV, "
            "file to segments, 1 thread)",
            f"{tl['total_s']:.1f} s: decoding {tl['decode_s']:.1f} s, speech detection {tl['speech_detection_s']:.1f} s, "
            f"{tl['windows']:,} CNN windows and the voice listener {tl['array_s'] - tl['speech_detection_s']:.1f} s",
            f"<= {TARGET_TIMELINE_S:g} s: {mark(tl['total_s'] <= TARGET_TIMELINE_S)}" if tl["minutes"] == 10 else "",
        ])  # fmt: skip
    rows.append([f"Training with the default TrainConfig ({tr['budget_steps']:,} steps of {tr['batch_size']}; the shipped "
                 "recipe's own budget is in its train_config.json)", fit, ""])  # fmt: skip
    imports = app.get("imports_s")
    rows.append([
        "App cold start (`python app.py`)",
        f"serves the page after {app['serve_s']:.1f} s, answers `/predict` after {app['first_predict_s']:.1f} s"
        + (f"; a fresh Python only importing gradio takes {imports['gradio']:.1f} s, torch {imports['torch']:.1f} s, "
           f"all that app.py imports {imports['app']:.1f} s" if imports else ""),
        f"<= {TARGET_COLD_START_S:g} s: {mark(app['serve_s'] <= TARGET_COLD_START_S)}",
    ])  # fmt: skip
    rows += [level_row(lv) for lv in app["levels"]]
    rss = app["rss_mb"]
    total = sum(lv["requests"] for lv in app["levels"])
    grew = rss[f"after_{app['levels'][-1]['clients']}_clients"] - rss["after_warm_up"]
    rested = rss["after_rest"] - rss["after_warm_up"]
    rows.append([
        "Server memory (RSS)",
        f"{rss['after_warm_up']:.0f} MiB after warm-up; {grew:+.0f} MiB after {total:,} requests "
        f"(peak {rss['peak']:.0f}); {rested:+.0f} MiB after {app['rest_s']:.0f} s of rest",
        f"<= {TARGET_RSS_GROWTH:g} MiB growth, back to the baseline after a rest: "
        f"{mark(grew <= TARGET_RSS_GROWTH)} / {rested:+.0f} MiB",
    ])  # fmt: skip
    return rows + crowd_rows(app.get("crowd")) + soak_rows(app.get("soak"))


def soak_rows(soak: dict | None) -> list[list[str]]:
    """Memory over rounds of calls in new sessions (bench_app.soak): none in results measured before it was."""
    if not soak:
        return []
    rounds, (after, grew) = soak["rounds"], soak_memory(soak)
    total, failed = sum(r["requests"] for r in rounds), sum(r["failed"] for r in rounds)
    return [[
        f"Time: {len(rounds)} rounds of {soak['requests_per_round']:,} `/predict` calls at {soak['clients']} clients, "
        f"each call in a new session, {soak['rest_s']:.0f} s of rest after each: server memory (RSS) after each rest",
        f"{soak['rss_before_mb']:.0f} MiB before; " + ", ".join(f"{a:.0f}" for a in after)
        + f" MiB; {grew:+.0f} MiB from the first round to the last; {failed} failed of {total:,}",
        f"<= {TARGET_SOAK_GROWTH:g} MiB from the first round to the last: {mark(grew <= TARGET_SOAK_GROWTH)}",
    ]]  # fmt: skip


def crowd_rows(crowd: dict | None) -> list[list[str]]:
    """Fairness and /explain (bench_app.crowd): none in results measured before they were."""
    if not crowd:
        return []
    beside, burst = crowd["beside_timelines"], crowd["explain_burst"]
    tl = beside["timelines"]
    rested = burst["rss_after_rest_mb"] - burst["rss_before_mb"]
    return [
        [
            "`/predict`, 4 clients, while 2 clients loop `/timeline` on 10-minute recordings",
            f"p95 {ms(beside['p95_ms'])}; {beside['ok']} answered, {beside['busy']} busy, {beside['failed']} failed; "
            f"timelines: {tl['ok']} done, {tl['busy']} busy",
            f"p95 <= 2 s: {mark(beside['p95_ms'] <= TARGET_P95_32)}",
        ],
        [
            "`/explain` burst, 8 clients x 5 clips of 30 s: server memory (RSS)",
            f"{burst['rss_before_mb']:.0f} MiB before, peak {burst['rss_peak_mb']:.0f}, {rested:+.0f} MiB after "
            f"{burst['rest_s']:.0f} s of rest; p95 {ms(burst['p95_ms'])}, {burst['failed']} failed",
            f"back within {TARGET_RSS_GROWTH:g} MiB after a rest: {mark(rested <= TARGET_RSS_GROWTH)}",
        ],
    ]


def stage_rows(r: dict) -> list[list[str]]:
    """Where one /predict's server time goes: each step of the analysis, then Gradio and the transport."""
    stages, one = r["core"]["stages_ms"], r["app"]["levels"][0]
    names = {"load_audio": "decode the upload", "model": "model (the CNN)", "log_mel_spectrogram": "log-mel",
             "speech_probabilities": "speech detection (`ser.vad`, once for both listeners)",
             "voice features": "voice listener: its mel, the encoder's LSTM, the pooling",
             "voice head": "voice listener: its head"}  # fmt: skip
    rows = [[names.get(k, f"`{k}`"), ms(v)] for k, v in stages.items() if k not in ("analysis", "pictures (page only)")]
    rows.append(["**analysis in all** (`ser.analyse_file`)", f"**{ms(stages['analysis'])}**"])
    gradio_ms = one["server_cpu_ms_per_request"] - stages["analysis"]
    rows.append(["Gradio: upload, queue, events, JSON (server CPU per request at 1 client, less the analysis)",
                 ms(gradio_ms)])  # fmt: skip
    rows.append(["the page's three pictures (not drawn for `/predict`)", ms(stages["pictures (page only)"])])
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def table(r: dict) -> str:
    """The speed and load tables, from one results file."""
    m = r["machine"]
    lines = []
    if r["quick"]:
        lines.append("**A --quick run: a few requests per level, for checking the scripts, not for quoting.**\n")
    lines.append(
        f"`{r['command']}` on {r['date']}: {m['cpus']} CPU cores ({m['cpu']}), torch {m['torch']} with "
        f"{r['core']['torch_threads']} threads, gradio {m['gradio']}, commit {m['commit']}; load average "
        f"{r['load_average_before']:.1f} before, {r['load_average_after']:.1f} after. Clips are 3 s of real speech "
        "(examples/). The app is reached through gradio_client on 127.0.0.1, each client its own session.\n"
    )
    lines.append(markdown(["Measure", "Result", "Target"], speed_rows(r)))
    lines.append(
        f"\nWhere one `/predict` spends the server's CPU time (median ms; the analysis in-process with "
        f"{r['core']['stages_threads']} torch thread(s), as app.py runs it):\n"
    )
    lines.append(markdown(["Step", "Time"], stage_rows(r)))
    if (offline := RESULTS / "offline.json").is_file():
        lines.append("\n" + offline_table(json.loads(offline.read_text())))
    return "\n".join(lines)


def offline_table(o: dict) -> str:
    """The offline page's figures (`bench/bench_offline.py`, its own results file: it needs Chromium)."""
    f, m = o["offline"], o["machine"]
    head = (f"The offline page in Chromium {f['chromium']} (`{o['command']}` on {o['date']}, {m['cpus']} cores, "
            f"load average {o['load_average_before']:.1f}; medians of {f['runs']} fresh browsers, onnxruntime-web on "
            "one thread):\n")  # fmt: skip
    rows = [
        ["First answer after opening the page (the first example)", ms(f["first_answer_ms"])],
        ["of which loading the model", ms(f["model_load_ms"])],
        [
            "Each further example, choosing it to its answer (of which the model)",
            f"{ms(f['per_clip_ms'])} ({ms(f['per_clip_model_ms'])})",
        ],  # fmt: skip
        ["Download: the graph, and everything", f"{f['model_mb']:.1f} MiB, {f['download_mb']:.1f} MiB"],
    ]
    return head + markdown(["Measure", "Result"], rows)


def soak_memory(soak: dict) -> tuple[list[float], float]:
    """The server's RSS after each round's rest, and its change from the first round to the last (MiB)."""
    after = [r["rss_after_rest_mb"] for r in soak["rounds"]]
    return after, after[-1] - after[0]


def soak_summary(soak: dict | None) -> str:
    if not soak:
        return ""
    after, grew = soak_memory(soak)
    return f"; then {grew:+.0f} MiB across {len(after)} rounds of calls in new sessions"


def summary(r: dict) -> str:
    """The README's five lines: the figures a reader asks first, and where the rest are."""
    core, app, m = r["core"], r["app"], r["machine"]
    inf, size, levels = core["inference"], core["model"], {lv["clients"]: lv for lv in app["levels"]}
    total = sum(lv["requests"] for lv in app["levels"])
    failed = sum(lv["failed"] for lv in app["levels"])
    grew = app["rss_mb"][f"after_{max(levels)}_clients"] - app["rss_mb"]["after_warm_up"]
    return "\n".join([
        f"- The model: {size['file_mb']:.1f} MB, {size['parameters'] / 1e6:.2f} M parameters; a 3 s clip in "
        f"{ms(inf['ours']['median_ms'])} on {m['cpus']} CPU cores, {inf['vgg16']['slower']:.0f}x faster than VGG-16.",
        f"- `python app.py` serves the page after {app['serve_s']:.1f} s on {m['cpus']} otherwise idle cores (load "
        f"average {r['load_average_before']:.1f}) and answers `/predict` in {ms(levels[1]['p50_ms'])} (median) to one "
        "client.",
        f"- Under load: {levels[8]['requests_per_s']:.0f} requests/s to 8 clients, p95 {ms(levels[32]['p95_ms'])} to "
        f"32; {failed} failed of {total:,}.",
        f"- Server memory: {grew:+.0f} MiB over those requests (target <= {TARGET_RSS_GROWTH:g} MiB: "
        f"{mark(grew <= TARGET_RSS_GROWTH)})" + soak_summary(app.get("soak")) + ".",
        f"- Every figure, its target and where each request's time goes: [bench/README.md](bench/README.md) "
        f"({r['date'][:10]}).",
    ])  # fmt: skip


HEAD = """# Benchmarks

Every speed, size and load figure the project reports comes from a script in this folder. `python bench/run_all.py`
runs the three that the tables below need (about 16 minutes on the 2-core machine; run it on an otherwise idle one),
writes their figures to `bench/results/speed.json`, then this page and the README's summary; `python
bench/run_all.py --table` rewrites them from that file without measuring. This page is generated: edit
bench/run_all.py, not this file.
"""


def scripts() -> str:
    """Each script in bench/ with the first paragraph of its docstring."""
    rows = []
    for path in sorted(BENCH.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        rows.append([f"`{path.name}`", " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")])
    return markdown(["Script", "What it measures"], rows)


def page(r: dict) -> str:
    """bench/README.md: what is here, and every figure of one results file."""
    return f"{HEAD}\n## Speed, size and load\n\n{table(r)}\n\n## The scripts\n\n{scripts()}\n"


def publish(r: dict) -> None:
    """Write bench/README.md and the README's summary from a full run's results; print a quick run's tables."""
    if r["quick"]:
        print(table(r))
        return
    PAGE.write_text(page(r))
    text = README.read_text()
    if SUMMARY_START not in text or SUMMARY_END not in text:
        sys.exit(f"error: {README} has no speed summary to replace: put the two lines\n{SUMMARY_START}\n{SUMMARY_END}\n"
                 "where it belongs")  # fmt: skip
    before, rest = text.split(SUMMARY_START, 1)
    after = rest.split(SUMMARY_END, 1)[1]
    README.write_text(f"{before}{SUMMARY_START}\n{summary(r)}\n{SUMMARY_END}{after}")
    print(f"wrote {PAGE} and the speed summary in {README}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="a few requests per level: checks the scripts in a minute or two"
    )
    p.add_argument("--table", action="store_true", help="write bench/README.md and the README's summary from the "
                   "results file; measure nothing")  # fmt: skip
    p.add_argument("--results", type=Path, default=None, help="results file (default bench/results/speed.json, "
                   "or speed-quick.json with --quick)")  # fmt: skip
    p.add_argument("--model", default=None, help="checkpoint folder or Hub id (default: the shipped checkpoint)")
    args = p.parse_args(argv)
    path = args.results or RESULTS / ("speed-quick.json" if args.quick else "speed.json")
    if args.table:
        if not path.is_file():
            sys.exit(f"error: no results at {path}; run python bench/run_all.py first")
        publish(json.loads(path.read_text()))
        return
    results = run(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {path} in {results['seconds'] / 60:.1f} min\n")
    publish(results)


if __name__ == "__main__":
    main()
