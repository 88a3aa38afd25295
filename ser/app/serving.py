"""Serving: the one analysis path of the app, and what keeps it fair and small under a crowd.

Owns `Result` (one input's analysis, or why there is none: what every view renders), `analyse_upload` (an upload to a
`Result` through `ser`, the upload deleted once read), the pool of analysis threads and the BUSY answer, the queue's
limits, the memory trim after a burst, each visitor's recent results, and the API-only endpoints' settings. It
builds no component and knows no tab.
"""

import contextvars
import ctypes
import filecmp
import functools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from gradio.utils import get_upload_folder

from ser import classroom
from ser.audio import AudioError
from ser.inference import Analysis, adapted, analyse_file
from ser.model import SERModel
from ser.timeline import Timeline, analyse_over_time

log = logging.getLogger("app")

CONCURRENCY = 2  # a free CPU Space has 2 cores: more parallel analyses only slow each other down
QUEUE_SIZE = 32  # requests waiting beyond this are refused at once instead of timing out
# An API call waits at most this long for one of the CONCURRENCY analysis slots, then is answered BUSY: under a
# burst, a quick "try again" rather than a wait that grows with the crowd (the page's visitors see their place in
# Gradio's queue instead, and wait).
BUSY_SECONDS = 1.5
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
SESSION_SECONDS = 600  # a visitor's recent results stay this long after their last analysis (API calls keep none)
RECENT = 2  # results kept per visitor: enough to answer Analyse pressed again on an upload already deleted
GONE = "Recordings are deleted as soon as they are analysed, so this one is gone: record or upload it again."
RECORDING = "audio.wav"  # the name Gradio's page gives every microphone recording it uploads
NO_AUDIO = "No audio yet: record with the microphone or upload a file, then press **Analyse**."


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
    name: str | None = None  # the input as the visitor knows it: an example's label, a file's name, "your recording"
    at: float | None = None  # when it was analysed (time.time())
    previous_name: str | None = None  # `previous`'s name and time, so that Compare can say which recording it was
    previous_at: float | None = None


class RecentResults:
    """One visitor's last few results by upload path, and the one on their screen; kept in their session's state.

    Uploads are deleted as soon as they are read; Gradio names an upload by a hash of its content, so pressing
    Analyse again on the same upload (or a second event for it) is answered from here.
    """

    def __init__(self, size: int = RECENT):
        self.size, self.items, self.shown = size, OrderedDict(), Result()
        self.before: Analysis | None = None  # the last two analyses shown, for comparing two voices; Clear keeps them
        self.now: Analysis | None = None
        self.named: tuple[Result | None, Result | None] = (None, None)  # the Results that brought them (names, times)
        self.voice: list = []  # voice features of the recordings this visitor tuned the app to (my_voice tab)
        self.reference = None  # the ser.voice.Reference made from them, once there are enough

    def show(self, result: Result) -> Result:
        """Put `result` on screen, paired with the analysis shown before it (the same clip again changes nothing)."""
        if result.analysis is not None and result.analysis is not self.now:
            self.before, self.now = self.now, result.analysis
            self.named = (self.named[1], result)
        if result.analysis is not None:
            before = self.named[0] if self.before is not None else None
            result = replace(result, previous=self.before, previous_name=before and before.name,
                             previous_at=before and before.at)  # fmt: skip
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


def input_name(path: str, clip: Path | None = None) -> str:
    """The input as the visitor knows it: the example's label, "your recording" (the browser names every recording
    audio.wav), or the uploaded file's name."""
    if clip is not None:
        return classroom.parse_example(clip).label
    return "your recording" if Path(path).name == RECORDING else Path(path).name


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
            reference = getattr(recent, "reference", None)  # tuned to this visitor's voice (my_voice tab)
            if reference is not None and analysis.voice_features is not None:
                analysis = adapted(model, analysis, reference)
                analysis.notes.append(
                    f"Tuned to your voice from {reference.n} recordings: the voice listener compared this one with "
                    "them. If someone else is speaking, press Forget my voice in the Tune to my voice tab."
                )
            clip = example_copied(path, keep)  # an example: the emotion its actor meant is known
            intended = classroom.parse_example(clip).emotion if clip else None
            result = Result(analysis, model=model, timeline=over, intended=intended, name=input_name(path, clip),
                            at=time.time())  # fmt: skip
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


def progress_reporter(progress: gr.Progress, desc: str) -> Callable[[float], None]:
    """`progress(fraction)` callable from another thread (the analysis pool): Gradio finds the event to update in
    context variables, which threads do not inherit, so each call runs in a copy of this thread's context."""
    context = contextvars.copy_context()
    return lambda fraction: context.run(progress, fraction, desc=desc)


def api_endpoint(fn: Callable, inputs: list, outputs: list, name: str, description: str) -> None:
    """An endpoint for API clients only (no trigger on the page), such as `/predict`. API clients open a session per
    request, so it keeps nothing in one. Its own group, so calls are not held in Gradio's queue behind the page's
    events: each waits for its turn to be analysed itself, at most BUSY_SECONDS (`analyse_upload`'s `wait`), and no
    more than QUEUE_SIZE wait so."""
    gr.on(triggers=[], fn=fn, inputs=inputs, outputs=outputs, api_name=name, api_description=description,
          concurrency_id="api", concurrency_limit=QUEUE_SIZE)  # fmt: skip


def serve(demo: gr.Blocks, **kwargs):
    """Queue and serve `demo` with the app's limits; kwargs go to `Blocks.launch` (theme, server_port, ...)."""
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    # One analysis per core: CONCURRENCY analyses each using every core would fight over them (on 2 busy cores,
    # a model pass took 5 times longer with 2 torch threads than with 1).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY))
    return demo.launch(max_file_size=MAX_FILE_SIZE, **kwargs)
