"""Gradio app: record or upload speech, see what the model hears and which emotion it reads.

Thin by design: every number and picture comes from `ser`; this file wires components to it. One clip's way:
`analyse_upload` runs `ser.analyse_file` once (for the page, `ser.timeline.analyse_over_time`: the same analysis
and the whole recording's timeline from one decoding) and wraps its `Analysis` (or why there is none) in a
`Result`; every view renders from that `Result`.

Adding a view (a timeline, a saliency heatmap, ...) is one function and one entry in `VIEWS`:

    @figure_view                                   # drawn with matplotlib from the Analysis (else: Result -> value)
    def timeline(a: Analysis) -> plt.Figure:
        return plots.timeline(...)

    VIEWS["timeline"] = View(timeline, lambda: gr.Plot(show_label=False, elem_id="timeline"), tab="Timeline",
                             picture=True)

The page layout, the outputs of every event, the Clear button and the tabs are all built from `VIEWS`, so there
are no positional tuples to keep in step. A view's function must also accept the empty `Result()` (nothing
analysed yet, or cleared) and a `Result` with only an `error`: it returns its component's resting value then.
Views with `picture=True` are drawn in a second step after the answer is on screen, one at a time (pyplot is not
thread-safe). The `/predict` API returns the views named in `API`, in that order; gradio_client users rely on it;
`/timeline` and `/explain` likewise return TIMELINE_API and EXPLAIN_API. The Live tab has its own input (a streaming
microphone) and components, like the game's tab.

    python app.py                 # serves on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
    SER_MODEL=user/name python app.py   # another checkpoint folder, or a Hugging Face Hub id or URL
"""

import argparse
import contextvars
import ctypes
import filecmp
import functools
import json
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np
import torch
from gradio.utils import get_upload_folder
from huggingface_hub import ModelCard
from huggingface_hub import logging as hf_logging

from ser import card, classroom, plots, walkthrough
from ser.audio import AUDIO_EXTENSIONS, AudioError
from ser.explain import explain
from ser.hub import ModelError, load_model
from ser.inference import Analysis, analyse, analyse_file
from ser.live import SHOW_SECONDS, LiveFrame, LiveSession
from ser.model import SERModel
from ser.timeline import Timeline, analyse_over_time

log = logging.getLogger("app")
PYPLOT = threading.Lock()  # pyplot's figure registry is not thread-safe (the warm-up may overlap a first request)

EXAMPLES = Path(__file__).resolve().parent / "examples"
CONCURRENCY = 2  # a free CPU Space has 2 cores: more parallel analyses only slow each other down
QUEUE_SIZE = 32  # requests waiting beyond this are refused at once instead of timing out
# An API call waits at most this long for one of the CONCURRENCY analysis slots, then is answered BUSY: under a
# burst, a quick "try again" rather than a wait that grows with the crowd (the page's visitors see their place in
# Gradio's queue instead, and wait).
BUSY_SECONDS = 1.5
# Right and wrong marks from the fonts every system has (DejaVu, Liberation, Segoe, San Francisco): the emoji
# ✅ and ❌ need a colour-emoji font, which a classroom's Linux machine may lack (they show as empty boxes).
RIGHT, WRONG = "✓", "✗"
BUSY = "The server is busy with other analyses: try again in a few seconds."
# Every analysis, whichever event asks for it, runs on these threads, first come first served. Besides keeping the
# cores from being oversubscribed, only these threads ever hold the memory numpy and torch allocate per thread: run
# on any of Gradio's 40 worker threads, a server's RSS grew 145 MB over 176 requests at 32 clients and stayed there.
ANALYSES = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="analysis")
# The C library keeps the memory a burst of requests freed; it is handed back once analyses have been idle this long
# (server RSS 12 s after 500 requests at 8 and 32 clients: 34 MB over its start without, 15 MB with).
IDLE_TRIM_SECONDS = 10.0
# Ten minutes of the largest common recording, 16-bit 48 kHz stereo WAV (115 MB, 110 MiB); compressed files this size
# last hours, and the timeline reads only their first TIMELINE_SECONDS.
MAX_FILE_SIZE = "120mb"  # Gradio counts mb as MiB: 126 MB
TIMELINE_SECONDS = 600  # the timeline follows 10 minutes at most: about 15 s on 2 cores (bench/bench_timeline.py)
LIVE_EVERY = 0.5  # seconds of microphone sound per live update: "about twice a second"
LIVE_STREAMS = 8  # live microphones at once: each holds its slot while it streams; a chunk costs ~20 ms of CPU
LIVE_LIMIT = 300  # seconds a live stream may run before it stops, so that no visitor keeps a slot for good
SESSION_SECONDS = 600  # a visitor's recent results stay this long after their last analysis (API calls keep none)
RECENT = 2  # results kept per visitor: enough to answer Analyse pressed again on an upload already deleted
UNSURE_TOP, UNSURE_MARGIN = 0.40, 0.15  # below this top probability, or margin to the runner-up, we say "unsure"
CONFIDENT_TOP = 0.70
EMOJI = {
    "neutral": "😐",
    "calm": "😌",
    "happy": "😄",
    "sad": "😢",
    "angry": "😠",
    "fearful": "😨",
    "disgust": "🤢",
    "surprised": "😲",
}
START = "Record a short sentence (2 to 10 seconds) or upload a clip, then press **Analyse**."
GONE = "Recordings are deleted as soon as they are analysed, so this one is gone: record or upload it again."
NO_AUDIO = "No audio yet: record with the microphone or upload a file, then press **Analyse**."
FIGURE_WIDTH = 6.4  # inches; see `figure_view`
THEME = gr.themes.Soft(text_size="lg")  # large text: read from the back of a classroom and on a phone
CSS = """
#verdict h2 {font-size: 2rem; margin: 0.2em 0}
.notice {border-left: 4px solid #f08c00; padding-left: 0.6em}
/* Pictures fill the width they are given (a projector's column, a phone's screen), never taller than the screen */
.matplotlib img {width: 100%; height: auto; max-height: 80vh}
.confusion .matplotlib img {max-width: 900px; max-height: none}
/* On a big screen (a projector), the verdict, the chart and the spectrogram share the first screen */
@media (min-width: 1500px) and (min-height: 900px) {
  #probabilities .matplotlib img {max-height: 40vh}
  #log-mel .matplotlib img {max-height: 28vh}
}
/* Never break a word: long table rows scroll sideways instead */
.prose table {display: block; overflow-x: auto; width: max-content; max-width: 100%; border: none}
.prose td, .prose th, .prose p, .prose li {word-break: normal; overflow-wrap: normal; hyphens: manual}
.prose td, .prose th {font-size: max(14px, 1em)}
#mic-message {position: fixed; top: 0; left: 0; right: 0; z-index: 1000; display: flex; gap: 1em;
  align-items: center; padding: 0.8em 1em; background: #fff3bf; color: #222; border-bottom: 3px solid #f08c00;
  font-size: 1.1rem}
#mic-message[hidden] {display: none}
#mic-message button {min-width: 44px; min-height: 44px; font-size: 1.2rem}
/* Phones: every button, tab and switch is at least 44 px each way, so a finger can hit it */
@media (max-width: 640px) {
  button, [role="tab"], label:has(input[type="checkbox"]), label:has(input[type="radio"]) {
    min-height: 44px; min-width: 44px
  }
  button svg {max-width: 28px; max-height: 28px}
}
"""
# Browsers run gain control, noise suppression and echo cancellation on microphone audio by default. They reshape
# the loudness contour and spectrum the model reads (it was trained on unprocessed audio, with its own noise and
# room augmentation) and cost it 8 UAR points in bench/bench_mic.py, so the app asks for the raw signal.
RAW_MIC = """<script>
(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return;
  const get = md.getUserMedia.bind(md);
  const raw = { autoGainControl: false, noiseSuppression: false, echoCancellation: false };
  md.getUserMedia = (c) =>
    get(c && c.audio ? { ...c, audio: c.audio === true ? raw : { ...raw, ...c.audio } } : c);
})();
</script>"""


# Pressing Record with no microphone, with the microphone blocked, or on a page served over plain http (browsers
# allow microphones only on https:// and localhost) otherwise does nothing: say what happened and what to do.
MIC_HELP = """<script>
(() => {
  const also = " You can still upload a recording or click an example.";
  const why = {
    insecure: "The microphone only works when the page address starts with https:// (or http://localhost on "
      + "the computer running the app). Ask whoever set up the app to serve it over https.",
    NotAllowedError: "The microphone is blocked. Click the lock or microphone icon next to the page address, "
      + "allow the microphone, then press Record again.",
    SecurityError: "The microphone is blocked for this page. Allow it in the browser's site settings, "
      + "then press Record again.",
    NotFoundError: "No microphone was found. Plug one in or switch it on, then press Record again.",
    NotReadableError: "The microphone is busy or not working. Close other apps that use it (such as video "
      + "calls), then press Record again.",
  };
  const show = (text) => {
    let box = document.getElementById("mic-message");
    if (!box) {
      box = document.createElement("div");
      box.id = "mic-message";
      box.setAttribute("role", "alert");
      box.innerHTML = '<span></span><button type="button" aria-label="Close this message">✕</button>';
      box.querySelector("button").onclick = () => { box.hidden = true; };
      document.body.appendChild(box);
    }
    box.querySelector("span").textContent = text + also;
    box.hidden = false;
  };
  const hide = () => { const box = document.getElementById("mic-message"); if (box) box.hidden = true; };
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) {  // an insecure origin has no navigator.mediaDevices at all
    document.addEventListener("click", (e) => {
      if (e.target.closest && e.target.closest(".record-button, [aria-label='Record audio']")) show(why.insecure);
    }, true);
    return;
  }
  const get = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => get(c).then((stream) => { hide(); return stream; }, (err) => {
    show(why[err && err.name] || `The microphone could not start (${err && err.name}). Check that it is `
      + "plugged in and allowed, then press Record again.");
    throw err;
  });
})();
</script>"""


@dataclass
class Result:
    """One input's analysis, or why there is none: what every view renders. Neither set: nothing analysed yet."""

    analysis: Analysis | None = None
    error: str | None = None  # one line for the user
    model: SERModel | None = None  # the model that made `analysis`, for views that look inside it
    previous: Analysis | None = None  # the visitor's analysis before this one, for comparing two voices
    timeline: Timeline | None = None  # the whole recording over time, when the page asked for it
    why: str | None = None  # the emotion the "Why this emotion?" view explains; None: the most probable one
    intended: str | None = None  # the emotion the actor meant, when the input is one of the example clips


# ----------------------------------------------------------------------------- the one analysis path


class RecentResults:
    """One visitor's last few results by upload path, and the one on their screen; kept in their session's state.

    Uploads are deleted as soon as they are read; Gradio names an upload by a hash of its content, so pressing
    Analyse again on the same upload (or a second event for it) is answered from here.
    """

    def __init__(self, size: int = RECENT):
        self.size, self.items, self.shown = size, OrderedDict(), Result()
        self.before: Analysis | None = None  # the last two analyses shown, for comparing two voices; Clear keeps them
        self.now: Analysis | None = None

    def show(self, result: Result) -> Result:
        """Put `result` on screen, paired with the analysis shown before it (the same clip again changes nothing)."""
        if result.analysis is not None and result.analysis is not self.now:
            self.before, self.now = self.now, result.analysis
        if result.analysis is not None:
            result = replace(result, previous=self.before)
        self.shown = result
        return result

    def get(self, key: str) -> Result | None:
        if key in self.items:
            self.items.move_to_end(key)
        return self.items.get(key)

    def put(self, key: str, result: Result) -> None:
        self.items[key] = result
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def example_copied(path: str, keep: Collection[Path]) -> Path | None:
    """The example clip in `keep` that `path` is Gradio's copy of (the same name and the same bytes), else None."""
    p = Path(path)
    return next((k for k in keep if p.name == k.name and p.is_file() and filecmp.cmp(p, k, shallow=False)), None)


def discard_upload(path: str, keep: Collection[Path] = ()) -> None:
    """Delete a file Gradio stored for this request, unless it is a copy of one of the example clips in `keep`."""
    p = Path(path)
    if Path(get_upload_folder()).resolve() not in p.resolve().parents or not p.is_file():
        return
    if example_copied(path, keep) is not None:
        return  # Gradio copies each example to its cache once and hands out that copy on every click
    p.unlink(missing_ok=True)
    try:
        p.parent.rmdir()  # Gradio's per-upload folder
    except OSError:
        pass


def analyse_upload(
    model: SERModel,
    path: str | None,
    recent: RecentResults | None = None,
    keep: Collection[Path] = (),
    wait: float | None = None,
    over_time: bool = False,
    progress: Callable[[float], None] | None = None,
) -> Result:
    """Analyse an uploaded or recorded file with `ser.analyse_file`, then delete the upload (never files in `keep`).

    Never raises for bad input: the reason is in `Result.error`. With `recent`, a path analysed before is
    answered from there, and the result is kept there. Analyses run CONCURRENCY at a time (`analyse_in_turn`);
    with `wait`, one that has not started within `wait` seconds is answered BUSY. `over_time`: also the timeline
    of the whole recording (`ser.timeline.analyse_over_time`), reporting its progress to `progress(fraction)`.
    """
    if not path:
        return Result(error=NO_AUDIO)
    try:
        if recent is not None and (cached := recent.get(path)) is not None:
            return cached
        try:
            how = functools.partial(analyse_over_time, max_seconds=TIMELINE_SECONDS, progress=progress)
            analysed = analyse_in_turn(model, path, wait, how if over_time else analyse_file)
            if analysed is None:
                return Result(error=BUSY)
            analysis, over = analysed if over_time else (analysed, None)
            clip = example_copied(path, keep)  # an example: the emotion its actor meant is known
            intended = classroom.parse_example(clip).emotion if clip else None
            result = Result(analysis, model=model, timeline=over, intended=intended)
        except AudioError as e:
            if recent is not None and (cached := recent.get(path)) is not None:  # analysed and deleted meanwhile
                return cached
            if not Path(path).exists():
                return Result(error=GONE)
            log.info("not analysed: %s", e)  # the host's log gets the technical detail; the visitor, plain words
            result = Result(error=e.plain)
        if recent is not None:
            recent.put(path, result)
        return result
    finally:
        discard_upload(path, keep)


class MemoryTrim:
    """Gives the memory that a burst of requests freed back to the system once analyses have been idle a while."""

    def __init__(self, idle_seconds: float = IDLE_TRIM_SECONDS):
        self.idle_seconds, self.last, self.due = idle_seconds, time.monotonic(), False

    def touch(self) -> None:
        """An analysis is starting: trim after the next idle stretch."""
        self.last, self.due = time.monotonic(), True

    def run(self) -> None:
        """Trim after each idle stretch, forever (a daemon thread's target); returns at once without glibc."""
        try:
            trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError, TypeError):  # musl, macOS, Windows: their allocators do this themselves
            return
        while True:
            time.sleep(self.idle_seconds / 2)
            if self.due and time.monotonic() - self.last > self.idle_seconds:
                self.due = False
                trim(0)


TRIM = MemoryTrim()


def analyse_in_turn(model: SERModel, path: str, wait: float | None = None, how: Callable = analyse_file) -> Any:
    """`how(model, path)` (`analyse_file`) on one of the ANALYSES threads; None if none was free within `wait`
    seconds (None: no limit)."""
    TRIM.touch()
    job = ANALYSES.submit(how, model, path)
    try:
        return job.result(timeout=wait)
    except TimeoutError:
        return None if job.cancel() else job.result()  # cancelled while still waiting, or it has just started


def as_sentence(message: str) -> str:
    """One line, capitalised, ending with a full stop."""
    message = " ".join(message.split())  # one line, even if a decoder's own message had several
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


# ----------------------------------------------------------------------------- views of a Result


def verdict(result: Result) -> str:
    """The top emotion and the model's confidence in words (Markdown)."""
    if result.error:
        return f"### ⚠️ Cannot analyse this\n{result.error}"
    if result.analysis is None:
        return START
    probs = sorted(result.analysis.probs.items(), key=lambda kv: kv[1], reverse=True)
    (top, p1), (second, p2) = probs[0], probs[1] if len(probs) > 1 else ("", 0.0)
    head = f"## {EMOJI[top] + ' ' if top in EMOJI else ''}{top.capitalize()}: {p1:.0%}"
    if p1 < UNSURE_TOP or p1 - p2 < UNSURE_MARGIN:
        if p1 - p2 < UNSURE_MARGIN:
            why = f"**{top}** ({p1:.0%}) and **{second}** ({p2:.0%}) are close"
        else:
            why = f"no emotion stands out (the highest is {p1:.0%})"
        words = f"**The model is unsure**: {why}. Treat this as a guess."
    elif p1 >= CONFIDENT_TOP:
        words = f"The model is **confident** this voice sounds **{top}** ({p1:.0%}; next: {second}, {p2:.0%})."
    else:
        words = f"The model is **fairly sure** this voice sounds **{top}** ({p1:.0%}; next: {second}, {p2:.0%})."
    if result.intended:
        right = (
            f"{RIGHT} the model got it right."
            if result.intended == top
            else f"{WRONG} the model heard **{top}** instead."
        )
        words += f"\n\nThe actor was asked to sound **{result.intended}**: {right}"
    return f"{head}\n{words}"


def notes(result: Result) -> str:
    """The analysis' caveats about the input as a Markdown list ('' when there are none)."""
    return "\n".join(f"- ⚠️ {n}" for n in result.analysis.notes) if result.analysis else ""


def scores(result: Result) -> dict[str, float] | None:
    """All class probabilities, the value of the `gr.Label` output."""
    return dict(result.analysis.probs) if result.analysis else None


def figure_view(draw: Callable[[Analysis], plt.Figure]) -> Callable[[Result], plt.Figure | None]:
    """A view drawn with matplotlib from the analysis (None without one), sized for phones and out of pyplot."""

    @functools.wraps(draw)
    def view(result: Result) -> plt.Figure | None:
        if result.analysis is None:
            return None
        with PYPLOT:
            fig = draw(result.analysis)
            plt.close(fig)  # leaves pyplot's registry; Gradio still renders it, then it is garbage-collected
        # Narrower than the library's default: a phone shrinks each picture to its width, so fewer inches
        # keep the labels legible there; on a projector it is the same text size in a smaller picture.
        fig.set_size_inches(min(fig.get_figwidth(), FIGURE_WIDTH), fig.get_figheight())
        return fig

    return view


@figure_view
def probability_chart(a: Analysis) -> plt.Figure:
    return plots.probabilities(a.probs)


@figure_view
def waveform_chart(a: Analysis) -> plt.Figure:
    cut = f" (first {a.features.max_seconds:g} s)" if a.truncated else ""
    return plots.waveform(a.audio, a.features.sample_rate, title=f"Waveform of the analysed sound{cut}")


@figure_view
def log_mel_chart(a: Analysis) -> plt.Figure:
    return plots.log_mel(a.mel, a.features)


# "How it works": the steps from sound to answer, each drawn from what the model's own functions computed


@figure_view
def stft_chart(a: Analysis) -> plt.Figure:
    slices = (
        f"{1000 * a.features.n_fft / a.features.sample_rate:g} ms slices, {a.features.frames_per_second:g} a second"
    )
    return plots.spectrogram(walkthrough.power_spectrogram(a), a.features, title=f"Frequencies over time ({slices})")


@figure_view
def mel_scale_chart(a: Analysis) -> plt.Figure:
    return plots.mel_power(walkthrough.mel_power(a), a.features, title=f"{a.features.n_mels} mel bands")


@figure_view
def decibel_chart(a: Analysis) -> plt.Figure:
    return plots.log_mel(a.mel, a.features, title="In decibels: what the model reads")


def layers_chart(result: Result) -> plt.Figure | None:
    """The most active feature maps of the first and last conv block of the model that made the analysis."""
    if result.analysis is None or result.model is None:
        return None
    maps = walkthrough.layer_maps(result.model, result.analysis)
    return figure_view(lambda a: plots.feature_maps(maps, title="Where each filter lights up"))(result)


# "Compare two voices": this visitor's analysis before this one (if any) and this one


def compared(result: Result) -> list[tuple[str, Analysis]]:
    pairs = [("before", result.previous), ("now", result.analysis)]
    return [(f"{name}: {a.label} {a.probs[a.label]:.0%}", a) for name, a in pairs if a is not None]


def compare_log_mel_chart(result: Result) -> plt.Figure | None:
    shown = compared(result)
    draw = lambda a: plots.compare_log_mels([(t, b.mel) for t, b in shown], a.features)
    return figure_view(draw)(result)


def compare_probability_chart(result: Result) -> plt.Figure | None:
    shown = [(t.split(":")[0], b.probs) for t, b in compared(result)]
    return figure_view(lambda a: plots.compare_probabilities(shown, title="Emotion probabilities"))(result)


# "Over time" and "Why this emotion?"


def timeline_chart(result: Result) -> plt.Figure | None:
    """The whole recording: waveform above the emotion probabilities over time (`ser.timeline`)."""
    over = result.timeline
    cut = f" (first {over.duration / 60:g} min)" if over is not None and over.truncated else ""
    return figure_view(lambda a: plots.timeline(over, title=f"Emotion over time{cut}"))(result) if over else None


def segments_table(result: Result) -> list[list] | None:
    """The timeline's segments as rows: from (s), to (s), emotion or silence, confidence (%, empty for silence)."""
    if result.timeline is None:
        return None
    return [[round(s.start, 1), round(s.end, 1), s.label, None if s.confidence is None else round(100 * s.confidence)]
            for s in result.timeline.segments]  # fmt: skip


def why_choice(result: Result) -> gr.Dropdown | None:
    """The emotion explained: the most probable one after each analysis; the visitor may choose another."""
    if result.analysis is None:
        return None
    return gr.Dropdown(choices=list(result.analysis.probs), value=result.why or result.analysis.label)


def why_chart(result: Result) -> plt.Figure | None:
    """The log-mel with the parts that pushed the model towards the emotion explained (`ser.explain`)."""
    if result.analysis is None or result.model is None:
        return None
    explained = explain(result.model, result.analysis.mel, result.why)
    return figure_view(lambda a: plots.saliency(explained, a.features))(result)


# ----------------------------------------------------------------------------- the registry of views


@dataclass(frozen=True)
class View:
    """One way of showing a Result: `render` gives the value of the component that `component` builds."""

    render: Callable[[Result], Any]
    component: Callable[[], gr.components.Component]  # called where the view sits; may add a caption around it
    tab: str | None = None  # None: in the answer column beside the input; else the title of its tab
    picture: bool = False  # drawn after the answer is shown, one at a time (matplotlib), rather than with it


def scores_component() -> gr.Label:
    with gr.Accordion("Scores as text", open=False):
        return gr.Label(label="Emotion scores", show_heading=False, elem_id="scores")


def log_mel_component() -> gr.Plot:
    plot = gr.Plot(label="Log-mel spectrogram", elem_id="log-mel", show_label=False)
    gr.Markdown(
        "What the model reads: time runs left to right, low to high pitch goes bottom to top, and brighter means "
        "louder. **How it works** (below) shows how it is made, step by step.",
        elem_classes="caption",
    )
    return plot


def captioned(title: str, text: str, elem_id: str) -> Callable[[], gr.Plot]:
    """A picture with a heading and two or three plain sentences above it."""

    def component() -> gr.Plot:
        gr.Markdown(f"### {title}\n{text}", elem_classes="step")
        return gr.Plot(label=title, elem_id=elem_id, show_label=False)

    return component


STEPS, COMPARE = "How it works", "Compare two voices"
OVER_TIME, WHY = "Over time", "Why this emotion?"
# How it works, on the visitor's own recording: each step one picture, in words a 14-year-old can follow.
STEP_TEXT = {
    "waveform": (
        "1. What the microphone measures",
        "A microphone measures how the air pressure wobbles, thousands of times a second. Loud sounds make big "
        "wobbles; silence is a flat line. The silence at the start and end is cut off first.",
    ),
    "stft": (
        "2. Frequencies over time",
        "The sound is cut into short slices, and for each slice the computer measures how much of every pitch, "
        "from low to high, it holds (a *short-time Fourier transform*). A voice makes stripes: the lowest is the "
        "pitch you speak at, the ones above are its overtones. Most of the picture looks dark, because a few loud "
        "moments outshine everything else.",
    ),
    "mel_scale": (
        "3. The mel scale: pitch as we hear it",
        "We hear the step from 100 to 200 Hz as big as the step from 1,000 to 2,000 Hz. So the pitches are grouped "
        "into bands that are narrow for low pitches and wide for high ones (the *mel scale*). The low part, where "
        "voices carry most, now gets more room.",
    ),
    "decibels": (
        "4. Loudness as we hear it: decibels",
        "A sound ten times as strong only sounds a bit louder to us. Measuring loudness in *decibels* (dB, a "
        "logarithm) shows quiet details next to loud ones, as our ears do. This picture is exactly what the model "
        "reads.",
    ),
    "layers": (
        "5. What the network's layers respond to",
        "The network slides small filters over the picture, layer after layer. Each filter lights up (yellow) "
        "where it finds its pattern. The first layer's filters react to small details; each layer halves the "
        "picture, so the last layer's filters react to bigger patterns, like a rising pitch or a loud burst. Shown: "
        "the four filters of each layer that lit up most for this voice.",
    ),
    "answer": (
        "6. The answer",
        "The last layer's responses are averaged over time and turned into one score per emotion, scaled so that "
        "they add up to 100 %. The highest score is the model's answer; when no score stands out, it is a guess.",
    ),
}
STEP_VIEWS = {"waveform": waveform_chart, "stft": stft_chart, "mel_scale": mel_scale_chart,
              "decibels": decibel_chart, "layers": layers_chart, "answer": probability_chart}  # fmt: skip

VIEWS: dict[str, View] = {
    "verdict": View(verdict, lambda: gr.Markdown(START, label="Verdict", elem_id="verdict")),
    "notes": View(notes, lambda: gr.Markdown("", label="Input quality notes", elem_id="notes")),
    "probabilities": View(
        probability_chart,
        lambda: gr.Plot(label="Emotion probabilities", elem_id="probabilities", show_label=False),
        picture=True,
    ),
    "log_mel": View(log_mel_chart, log_mel_component, picture=True),
    "scores": View(scores, scores_component),
    **{
        name: View(
            draw,
            captioned(*STEP_TEXT[name], "waveform" if name == "waveform" else f"step-{name}"),
            tab=STEPS,
            picture=True,
        )
        for name, draw in STEP_VIEWS.items()
    },  # fmt: skip
    "compare_log_mel": View(
        compare_log_mel_chart,
        captioned(
            "Two voices side by side",
            "Your analysis before this one, above this one: say the same sentence twice with two different "
            "emotions, or let two people say it, and see what changes in the picture and in the answer.",
            "compare-log-mel",
        ),
        tab=COMPARE,
        picture=True,
    ),
    "compare_probabilities": View(
        compare_probability_chart,
        lambda: gr.Plot(label="Emotion probabilities, both voices", elem_id="compare-probabilities", show_label=False),
        tab=COMPARE,
        picture=True,
    ),
    "timeline": View(
        timeline_chart,
        captioned(
            "The whole recording, emotion by emotion",
            "The model hears a few seconds at a time, so it listens again every half second along the recording "
            f"(up to {TIMELINE_SECONDS // 60} minutes). Each colour is one emotion's share; grey stretches hold no "
            "speech and are not judged.",
            "timeline",
        ),
        tab=OVER_TIME,
        picture=True,
    ),
    "segments": View(
        segments_table,
        lambda: gr.Dataframe(
            headers=["from (s)", "to (s)", "emotion", "confidence (%)"],
            label="Segments",
            datatype=["number", "number", "str", "number"],
            interactive=False,
            elem_id="segments",
            max_height=400,
        ),  # fmt: skip
        tab=OVER_TIME,
    ),
    "why_class": View(
        why_choice,
        lambda: gr.Dropdown(choices=[], label="Explain the emotion", allow_custom_value=True, elem_id="why-class"),
        tab=WHY,
    ),
    "why": View(
        why_chart,
        captioned(
            "Why this emotion?",
            "The spectrogram the model read, in grey, with the parts that pushed it towards the emotion above in "
            "colour. Choose another emotion to see what spoke for it.",
            "why",
        ),
        tab=WHY,
        picture=True,
    ),
}
TIMELINE_API = ("segments", "timeline")  # what /timeline returns, in this order: (Dataframe value, Plot)
EXPLAIN_API = ("why_class", "why")  # what /explain returns, in this order: (the emotion explained, Plot)
API = ("verdict", "scores", "notes")  # what /predict returns, in this order: (Markdown, Label value, Markdown)


def render(result: Result, names: Iterable[str]) -> list:
    """The values of the named views for one Result, in the order of `names`."""
    return [VIEWS[n].render(result) for n in names]


# ----------------------------------------------------------------------------- About the model


def checkpoint_files(model: SERModel) -> dict[str, Path]:
    """The model card (README.md), metrics.json and train_config.json in the model's folder, those that exist.

    A Hub model's folder is its download in the Hugging Face cache (see `ser.hub.fetch`).
    """
    folder = model.source_dir
    names = ("metrics.json", "README.md", "train_config.json")
    return {n: folder / n for n in names if folder is not None and (folder / n).is_file()}


def model_metrics(model: SERModel) -> dict:
    """The model's metrics.json ({} when its folder has none)."""
    path = checkpoint_files(model).get("metrics.json")
    return json.loads(path.read_text()) if path else {}


def confusion_figures(metrics: dict) -> list[plt.Figure]:
    """One row-normalised confusion matrix per tested corpus (cross-validation, else validation)."""
    source, kind = (
        (metrics["cross_validation"], "all folds")
        if metrics.get("cross_validation")
        else (metrics.get("validation", {}), "validation speakers")
    )
    figs = []
    with PYPLOT:
        for corpus, m in source.items():
            if "confusion" in m and "labels" in m:
                figs.append(plots.confusion(np.array(m["confusion"]), m["labels"], title=f"{corpus} ({kind}), %"))
                plt.close(figs[-1])
    return figs


def about_markdown(model: SERModel, source: str | None, files: dict[str, Path]) -> tuple[str, str, dict]:
    """(summary Markdown, model card body, metrics) of the loaded checkpoint, coping with missing files.

    The summary's text and tables come from `ser.card`, the same functions that wrote the model card.
    """
    body = ModelCard.load(files["README.md"]).text.strip() if "README.md" in files else ""
    metrics = json.loads(files["metrics.json"].read_text()) if "metrics.json" in files else {}
    data = json.loads(files["train_config.json"].read_text()).get("data", []) if "train_config.json" in files else []
    md = [
        "### What it predicts",
        f"{card.summary(model)} Model: `{source or 'checkpoints/default'}`.",
        "### Training data",
        card.training_data(data) if data else "Not documented: this checkpoint has no train_config.json.",
        "### Test results (speaker-independent)",
        card.results_markdown(metrics, level=4)
        if metrics
        else "This checkpoint has no metrics.json, so its accuracy is unknown: treat its answers as untested.",
        "### Limitations",
        card.limitations(),
    ]
    return "\n\n".join(md), body, metrics


# ----------------------------------------------------------------------------- Act it out


def emotion_words(emotion: str) -> str:
    return f"{EMOJI.get(emotion, '')} {emotion}".strip()


def task_markdown(game: classroom.Game) -> str:
    r = game.round
    return f"## Say “{r.sentence}”\n## so that it sounds **{emotion_words(r.emotion)}**" if r else ""


def outcome_markdown(game: classroom.Game, guess: str | None = None) -> str:
    """What the model heard, and whether it is the emotion asked for (or, in hard mode, a call to guess first)."""
    if game.problem:
        return f"⚠️ {game.problem}"
    if game.heard is None:
        return "Record the sentence (press the microphone button, then Record), and the model will say what it heard."
    if not game.revealed:
        return (
            "## 🤫 Recorded!\nClass: what will the model say? Choose your guess below, then press **Show what the "
            "model heard**."
        )
    probs, asked = game.heard, game.round.emotion
    top = max(probs, key=probs.get)
    head = f"## {RIGHT if top == asked else WRONG} The model heard **{emotion_words(top)}** ({probs[top]:.0%})"
    if top == asked:
        words = f"You acted **{asked}**, and the model heard it."
    else:
        words = f"You acted **{asked}**; the model gave it {probs.get(asked, 0):.0%}. Try again, a bit stronger?"
    if guess:
        words += f" The class guessed **{guess}**: {'right!' if guess == top else 'not this time.'}"
    return f"{head}\n{words}"


def tally_markdown(game: classroom.Game) -> str:
    """The class tally as a table: per emotion asked, the tries and how many the model heard right."""
    rows = classroom.tally_rows(game.tally, game.labels)
    if not rows:
        return "**Class tally**: no tries yet."
    lines = [f"| {emotion_words(e) if e != 'all' else '**all**'} | {tries} | {hits} |" for e, tries, hits in rows]
    return "**Class tally**\n\n| emotion asked | tries | heard right |\n|---|---|---|\n" + "\n".join(lines)


def game_chart(game: classroom.Game) -> plt.Figure | None:
    """The bar chart of the last try, once revealed."""
    if game.heard is None or not game.revealed:
        return None
    with PYPLOT:
        fig = plots.probabilities(game.heard, title="What the model heard")
        plt.close(fig)
    fig.set_size_inches(min(fig.get_figwidth(), FIGURE_WIDTH), fig.get_figheight())  # as `figure_view`
    return fig


def game_tab(labels: list[str]) -> dict[str, Any]:
    """The Act it out tab's components."""
    g: dict[str, Any] = {"state": gr.State(None)}  # this class's classroom.Game: in their browser session only
    gr.Markdown(
        "One student acts, the class watches. The app picks an emotion and a sentence: say the sentence so that it "
        "sounds that way, and see if the model hears it. The tally counts the class's tries (it is kept only in "
        "this browser tab and is gone when you close it).",
        elem_classes="step",
    )
    g["task"] = gr.Markdown("", elem_id="game-task")
    with gr.Row():
        g["next"] = gr.Button("New emotion and sentence", elem_id="game-next", min_width=200)
        g["hard"] = gr.Checkbox(
            label="Hard mode: the class guesses before seeing the answer", elem_id="game-hard", min_width=200
        )
    g["audio"] = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Act it out", elem_id="game-audio")
    g["outcome"] = gr.Markdown("", elem_id="game-outcome")
    g["guess"] = gr.Radio(labels, label="The class guesses the model will say:", visible=False, elem_id="game-guess")
    g["reveal"] = gr.Button("Show what the model heard", variant="primary", visible=False, elem_id="game-reveal")
    with gr.Row(equal_height=False):  # the answer beside the tally on a projector, above it on a phone
        with gr.Column(scale=3, min_width=320):
            g["chart"] = gr.Plot(label="What the model heard", show_label=False, elem_id="game-chart")
        with gr.Column(scale=2, min_width=280):
            g["tally"] = gr.Markdown("", elem_id="game-tally")
            g["reset"] = gr.Button("Start a new class tally", size="sm", elem_id="game-reset")
    return g


def wire_game(model: SERModel, g: dict, keep: Collection[Path], demo: gr.Blocks) -> None:
    """A round on page load and on request; each recording analysed (the one analysis path) and scored."""

    def shown(game: classroom.Game, guess: str | None = None) -> tuple:
        hidden = not game.revealed
        return (game, task_markdown(game), outcome_markdown(game, guess), tally_markdown(game),
                gr.update(visible=hidden, value=None) if hidden else gr.update(visible=False),
                gr.update(visible=hidden))  # fmt: skip

    def started(game: classroom.Game | None) -> classroom.Game:
        return game or classroom.Game(list(model.labels)).next_round()

    def on_next(game):
        return shown(started(game).next_round())

    def on_try(path, game, hard):
        result = analyse_upload(model, path, keep=keep)
        heard = dict(result.analysis.probs) if result.analysis else None
        return shown(started(game).play(heard, hard, result.error))

    def on_reveal(game, guess):
        return shown(started(game).reveal(), guess)

    def on_reset(game):
        game = started(game)
        game.tally = {}
        return shown(game)

    def on_chart(game):
        return game_chart(game) if game else None

    outputs = [g[n] for n in ("state", "task", "outcome", "tally", "guess", "reveal")]
    chart = dict(fn=on_chart, inputs=[g["state"]], outputs=[g["chart"]], api_visibility="private",
                 concurrency_id="figures", concurrency_limit=1, show_progress="hidden")  # fmt: skip
    private = dict(api_visibility="private", outputs=outputs)
    demo.load(on_next, inputs=[g["state"]], queue=False, **private)
    g["next"].click(on_next, inputs=[g["state"]], **private).then(lambda: None, outputs=[g["audio"]]).then(**chart)
    for event in (g["audio"].stop_recording, g["audio"].upload):
        event(on_try, inputs=[g["audio"], g["state"], g["hard"]], concurrency_id="analysis", **private).then(**chart)
    g["reveal"].click(on_reveal, inputs=[g["state"], g["guess"]], **private).then(**chart)
    g["reset"].click(on_reset, inputs=[g["state"]], **private)


# ----------------------------------------------------------------------------- Live


def live_tab() -> dict[str, Any]:
    """The Live tab's components: a streaming microphone, the bars, a rolling spectrogram, and the delay."""
    v: dict[str, Any] = {"state": gr.State(None)}  # this visitor's ser.live.LiveSession, for one stream
    gr.Markdown(
        f"Press **Record** and talk: every {LIVE_EVERY:g} s the model judges the last few seconds, and the "
        "spectrogram rolls along. Nothing is kept: each piece of sound is deleted once heard.",
        elem_classes="step",
    )
    v["audio"] = gr.Audio(sources=["microphone"], streaming=True, type="filepath", label="Live microphone",
                          elem_id="live-audio")  # fmt: skip
    v["delay"] = gr.Markdown("", elem_id="live-delay")
    v["bars"] = gr.Label(label="Emotion in the last few seconds", elem_id="live-bars")
    v["spectrogram"] = gr.Image(label=f"The last {SHOW_SECONDS:g} s, as the model reads it (low pitch at the bottom)",
                                interactive=False, elem_id="live-spectrogram")  # fmt: skip
    return v


def live_delay(frame: LiveFrame) -> str:
    words = f"{frame.behind:.1f} s behind real time"
    return words if frame.probs else f"{words} · no speech in the last {frame.listened:.0f} s"


def wire_live(model: SERModel, v: dict) -> None:
    """Each chunk of the stream updates the bars, the spectrogram and the delay; a new recording starts afresh."""

    def on_chunk(path, session):
        if not path:
            return session, gr.skip(), gr.skip(), gr.skip()
        session = session or LiveSession(model)
        try:
            frame = session.feed_file(path)
        except AudioError as e:
            return session, None, None, f"⚠️ {e.plain}"
        finally:
            discard_upload(path)
        return session, frame.probs, plots.mel_image(frame.mel, model.feature_config), live_delay(frame)

    v["audio"].start_recording(lambda: None, outputs=[v["state"]], api_visibility="private", queue=False)
    v["audio"].stream(on_chunk, inputs=[v["audio"], v["state"]],
                      outputs=[v["state"], v["bars"], v["spectrogram"], v["delay"]],
                      stream_every=LIVE_EVERY, time_limit=LIVE_LIMIT, concurrency_id="live",
                      concurrency_limit=LIVE_STREAMS, show_progress="hidden", api_visibility="private")  # fmt: skip


# ----------------------------------------------------------------------------- the interface


def build_demo(
    model: SERModel, notice: str | None = None, source: str | None = None, examples: Path | None = EXAMPLES
) -> gr.Blocks:
    """The Blocks app for a loaded model; `notice` (e.g. that another model was asked for) is shown at the top."""
    # Uploads are deleted by the handler; delete_cache sweeps anything a request never reached (e.g. an
    # abandoned upload) after 5 minutes.
    with gr.Blocks(title="Speech emotion recognition", analytics_enabled=False, delete_cache=(300, 300)) as demo:
        gr.Markdown(
            "# Speech emotion recognition\nHow does a voice sound: happy, sad, angry...? Speak or upload a "
            "clip and see the sound the way the model sees it. A teaching demo trained on actors: it guesses "
            "how a voice *sounds*, not how someone feels."
        )
        if notice:
            gr.Markdown(f"⚠️ **Model notice:** {notice}", elem_classes="notice", elem_id="notice")
        ui: dict[str, Any] = {"recent": gr.State(None, time_to_live=SESSION_SECONDS)}  # this visitor's RecentResults
        with gr.Row(equal_height=False):
            with gr.Column(min_width=320):
                ui["audio"] = gr.Audio(
                    sources=["microphone", "upload"], type="filepath", label="Your voice", elem_id="audio-input"
                )
                ui["button"] = gr.Button("Analyse", variant="primary", size="lg", elem_id="analyse")
                ui["examples"], ui["clips"] = example_clips(examples, ui["audio"], model, model_metrics(model))
            with gr.Column(min_width=320):
                ui.update({n: v.component() for n, v in VIEWS.items() if v.tab is None})
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone, every tab stays in sight (no "..." menu)
            for tab in dict.fromkeys(v.tab for v in VIEWS.values() if v.tab):
                with gr.Tab(tab):
                    ui.update({n: v.component() for n, v in VIEWS.items() if v.tab == tab})
            with gr.Tab("Live", id="live"):
                live = live_tab()
            with gr.Tab("Act it out", id="game"):
                game = game_tab(list(model.labels))
            with gr.Tab("About the model", id="about"):
                about_tab(model, source)
        wire(model, ui)
        wire_game(model, game, ui["clips"], demo)
        wire_live(model, live)
    return demo


def example_clips(
    folder: Path | None, audio: gr.Audio, model: SERModel, metrics: dict
) -> tuple[gr.helpers.Examples | None, list[Path]]:
    """Clickable examples from the audio files in `folder`, each labelled with the emotion its speaker intended and
    the voice, in the model's label order, and the files. A speaker the model was trained on is never offered."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in AUDIO_EXTENSIONS) if folder else []
    files_of_model = checkpoint_files(model)
    data = (
        json.loads(files_of_model["train_config.json"].read_text()).get("data")
        if "train_config.json" in files_of_model
        else None
    )
    trained_on = classroom.train_speakers(metrics, data)
    offered, withheld = classroom.split_examples([classroom.parse_example(p) for p in files], trained_on)
    if withheld:
        log.warning(
            "examples of speakers the model was trained on are not offered: %s", [e.path.name for e in withheld]
        )
    if not offered:
        return None, []
    order = {e: i for i, e in enumerate(model.labels)}
    offered.sort(key=lambda e: (order.get(e.emotion, len(order)), e.path.name))
    examples = gr.Examples(
        [[str(e.path)] for e in offered],
        inputs=[audio],
        cache_examples=False,  # Spaces would cache them; the views need a fresh run
        label="Examples: click one. Each says the emotion the actor was asked to show: does the model hear it?",
        example_labels=[e.label for e in offered],
        examples_per_page=len(offered),
        elem_id="examples",
    )
    if trained_on is None:
        gr.Markdown(
            "⚠️ This model does not say which voices it learned from, so it may have heard these actors before. "
            "If so, it does better on them than it would on a new voice.",
            elem_classes="notice",
        )
    return examples, [e.path for e in offered]


def plain_about(model: SERModel, metrics: dict) -> tuple[str, str]:
    """The About tab in words a 14-year-old can follow: (what it does and how good it is, why actors and what never)."""
    what = (
        "### What it does\nIt listens to how a voice *sounds* (high or low, loud or soft, fast or slow, smooth or "
        "rough), not to the words, and picks the closest of its "
        f"{len(model.labels)} emotions: {', '.join(model.labels)}.\n\n### How good is it?\n"
        + classroom.how_good(metrics)
    )
    why = f"### Actors are not everyday life\n{classroom.ACTED_SPEECH}\n\n### Never use it to judge people\n{classroom.NEVER}"
    return what, why


def how_good_figure(metrics: dict) -> plt.Figure | None:
    """The About tab's one picture: how often the model is right per emotion, on actors it never trained on."""
    if (best := classroom.best_tested(metrics)) is None:
        return None
    corpus, recall = best
    with PYPLOT:
        fig = plots.right_per_emotion(
            recall, 1 / len(recall), title=f"Right answers on new actors ({classroom.corpus_name(corpus)})"
        )
        plt.close(fig)
    return fig


def about_tab(model: SERModel, source: str | None) -> None:
    """In plain words: what the model does, how good it is (one picture), why acted speech differs, what never to
    use it for. For the curious: labels, training data, speaker-independent results, confusion matrices,
    limitations and the model card, from `ser.card`."""
    summary, body, metrics = about_markdown(model, source, checkpoint_files(model))
    what, why = plain_about(model, metrics)
    gr.Markdown(what, elem_id="about-plain")
    if (fig := how_good_figure(metrics)) is not None:
        gr.Plot(fig, show_label=False, elem_id="how-good")
    gr.Markdown(why, elem_id="about-why")
    with gr.Accordion("For the curious: the technical details", open=False, elem_id="curious"):
        gr.Markdown(summary, elem_id="about")
        with gr.Row():
            for fig in confusion_figures(metrics):
                gr.Plot(fig, show_label=False, min_width=700, elem_classes="confusion")
        if body:
            with gr.Accordion("Full model card", open=False):
                gr.Markdown(body)


def wire(model: SERModel, ui: dict) -> None:
    """Every way in (Analyse, end of a recording, an upload, an example) runs the one analysis, then the pictures.

    The page's events keep this visitor's recent results in their session. `/predict`, the API, is a separate
    endpoint that keeps nothing: API clients open a session per request, and results kept for each would pile up.
    """
    answer = [n for n, v in VIEWS.items() if not v.picture]
    # Pictures beside the answer first, then those in the tabs: the first screen does not wait for the walk-through.
    pictures = [[n for n, v in VIEWS.items() if v.picture and (v.tab is None) == first] for first in (True, False)]

    def on_analyse(path, recent, progress=gr.Progress()):  # noqa: B008 (Gradio's way to ask for a progress bar)
        recent = recent or RecentResults()
        report = progress_reporter(progress, "Following the whole recording")
        # examples are analysed, never deleted
        recent.show(analyse_upload(model, path, recent, keep=ui["clips"], over_time=True, progress=report))
        return *render(recent.shown, answer), recent

    def on_pictures(recent, names):
        return render(recent.shown if recent else Result(), names)

    def on_why(label, recent):
        return VIEWS["why"].render(replace(recent.shown if recent else Result(), why=label or None))

    def on_timeline(path, progress=gr.Progress()):  # noqa: B008
        report = progress_reporter(progress, "Following the whole recording")
        result = analyse_upload(model, path, keep=ui["clips"], wait=BUSY_SECONDS, over_time=True, progress=report)
        if result.error:
            raise gr.Error(result.error, print_exception=False)
        return render(result, TIMELINE_API)

    def on_explain(path, label):
        result = analyse_upload(model, path, keep=ui["clips"], wait=BUSY_SECONDS)  # and the upload is gone
        if label and label not in model.labels:
            raise gr.Error(f"No emotion '{label}': this model knows {', '.join(model.labels)}.", print_exception=False)
        if result.error:
            raise gr.Error(result.error, print_exception=False)
        explained = replace(result, why=label or result.analysis.label)
        return explained.why, *render(explained, ["why"])  # the emotion's name, not the page's list of choices

    def on_predict(path):
        return render(analyse_upload(model, path, keep=ui["clips"], wait=BUSY_SECONDS), API)

    def on_clear(recent):
        if recent:
            recent.shown = Result()
        return render(Result(), VIEWS)

    analysis = dict(
        fn=on_analyse,
        inputs=[ui["audio"], ui["recent"]],
        outputs=[*(ui[n] for n in answer), ui["recent"]],
        concurrency_id="analysis",
        api_visibility="private",
    )
    drawing = [
        dict(
            fn=functools.partial(on_pictures, names=names),
            inputs=[ui["recent"]],
            outputs=[ui[n] for n in names],
            api_visibility="private",
            concurrency_id="figures",
            concurrency_limit=1,  # pyplot is not thread-safe, and Gradio renders the figures after we return them
            show_progress="hidden",
        )
        for names in pictures
        if names
    ]
    for event in (ui["button"].click, ui["audio"].stop_recording, ui["audio"].upload):
        functools.reduce(lambda e, step: e.then(**step), drawing, event(**analysis))
    if ui["examples"] is not None:
        functools.reduce(lambda e, step: e.then(**step), drawing, ui["examples"].load_input_event.then(**analysis))
    ui["audio"].clear(
        on_clear, inputs=[ui["recent"]], outputs=[ui[n] for n in VIEWS], api_visibility="private", queue=False
    )
    gr.on(  # no trigger on the page: an API-only endpoint, returning the views in API
        triggers=[],
        fn=on_predict,
        inputs=[ui["audio"]],
        outputs=[ui[n] for n in API],
        api_name="predict",
        api_description="Emotion of one audio file: verdict, all class probabilities, input-quality notes.",
        # Its own group, so calls are not held in Gradio's queue behind the page's events: each waits for its turn
        # to be analysed itself, at most BUSY_SECONDS (analyse_upload), and no more than QUEUE_SIZE wait so.
        concurrency_id="api",
        concurrency_limit=QUEUE_SIZE,
    )
    ui["why_class"].input(on_why, inputs=[ui["why_class"], ui["recent"]], outputs=[ui["why"]],
                          api_visibility="private", concurrency_id="figures", concurrency_limit=1)  # fmt: skip
    api = dict(triggers=[], concurrency_id="api", concurrency_limit=QUEUE_SIZE)  # as /predict
    gr.on(fn=on_timeline, inputs=[ui["audio"]], outputs=[ui[n] for n in TIMELINE_API], api_name="timeline",
          api_description=f"Emotion over time of one audio file (its first {TIMELINE_SECONDS // 60} minutes): "
          "segments [from s, to s, emotion or 'silence', confidence %] and the picture.", **api)  # fmt: skip
    gr.on(fn=on_explain, inputs=[ui["audio"], ui["why_class"]], outputs=[ui[n] for n in EXPLAIN_API],
          api_name="explain", api_description="Why this emotion: the emotion explained (the most probable one unless "
          "one is given) and the log-mel picture with the parts that pushed the model towards it.", **api)  # fmt: skip


def progress_reporter(progress: gr.Progress, desc: str) -> Callable[[float], None]:
    """`progress(fraction)` callable from another thread (the analysis pool): Gradio finds the event to update in
    context variables, which threads do not inherit, so each call runs in a copy of this thread's context."""
    context = contextvars.copy_context()
    return lambda fraction: context.run(progress, fraction, desc=desc)


def launch(demo: gr.Blocks, raw_mic: bool = True, **kwargs):
    """Queue and serve with the app's limits; kwargs go to `Blocks.launch` (server_port, prevent_thread_lock...).

    `raw_mic=False` leaves the browser's microphone processing on (see RAW_MIC).
    """
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    # One analysis per core: CONCURRENCY analyses each using every core would fight over them (on 2 busy cores,
    # a model pass took 5 times longer with 2 torch threads than with 1).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY))
    head = (RAW_MIC if raw_mic else "") + MIC_HELP
    return demo.launch(max_file_size=MAX_FILE_SIZE, theme=THEME, css=CSS, head=head, **kwargs)


def warm_up(model: SERModel) -> None:
    """Run one analysis and draw every view, so the first visitor does not wait for JIT compiling and font loading."""
    cfg = model.feature_config
    noise = 0.1 * np.random.default_rng(0).standard_normal(cfg.sample_rate).astype(np.float32)
    render(Result(analyse(model, noise, cfg.sample_rate)), VIEWS)


def load_app(name: str | None, fallback: bool = False) -> tuple[gr.Blocks, SERModel]:
    """Load the model once and build the app around it. `name`: checkpoint folder, Hub id or URL, or None for
    the shipped one. Raises `ModelError` if it cannot be loaded, unless `fallback`: then the page serves the
    shipped model and says so at the top (for SER_MODEL on a Space, where a failed start shows visitors nothing).
    """
    try:
        model = load_model(name)
    except ModelError as e:
        if not fallback or not name:
            raise
        notice = (
            f"The model '{name}' could not be loaded, so this page uses the shipped model instead. "
            f"The reason: {as_sentence(str(e))}"
        )
        log.warning(notice)
        model = load_model(None)
        return build_demo(model, notice), model
    return build_demo(model, source=name), model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=None,
        help="checkpoint folder, or Hub id or URL; without it $SER_MODEL is used, and if that cannot be loaded, "
        "the shipped checkpoints/default with a notice on the page",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hf_logging.disable_propagation()  # huggingface_hub prints its own messages; through the root logger too, twice
    try:
        if args.model:
            demo, model = load_app(args.model)
        else:
            demo, model = load_app(os.environ.get("SER_MODEL") or None, fallback=True)
    except ModelError as e:
        sys.exit(f"error: {e}")
    threading.Thread(target=warm_up, args=(model,), daemon=True).start()
    threading.Thread(target=TRIM.run, daemon=True).start()
    launch(demo)


if __name__ == "__main__":
    main()
