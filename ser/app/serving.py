"""Serving: the one analysis path of the app, and what keeps it fair and small under a crowd.

Owns `Result` (one input's analysis, or why there is none: what every view renders), `analyse_upload` (an upload to a
`Result` through `ser`, the upload deleted once read), the two lanes of analysis threads (quick analyses, and long
timelines at a lower priority, so that neither starves the other) and the BUSY answer, the queue's limits, the memory
trim after a burst, the idle sessions that Gradio would keep for nothing, each visitor's recent results, the live
streams' slots, and the API-only endpoints' settings. It builds no component and knows no tab. How long an uploaded
file lives is `uploads`' business.
"""

import contextvars
import ctypes
import datetime
import filecmp
import functools
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from gradio import processing_utils
from gradio.context import LocalContext
from gradio.exceptions import InvalidPathError
from gradio.mcp import GradioMCPServer
from gradio.state_holder import StateHolder

from ser import audio, classroom
from ser.audio import AudioError, audio_duration
from ser.inference import Analysis, adapted, analyse_file
from ser.model import SERModel
from ser.timeline import Timeline, analyse_over_time

from . import uploads

log = logging.getLogger("app")

CONCURRENCY = 2  # a free CPU Space has 2 cores: more parallel analyses only slow each other down
QUEUE_SIZE = 32  # requests waiting beyond this are refused at once instead of timing out
# What an API client is promised: its answer, or BUSY, within PROMISE_SECONDS (p95; bench/bench_app.py). The server
# keeps ANSWER_SECONDS of it from when the request reached Gradio's queue: an analysis that would end later, given
# the analyses ahead of it and how long analyses have been taking, is answered BUSY at once, before it starts; the
# rest is for the upload before and the answer's trip back. (Waiting only for a free thread, as before, never
# answered BUSY at 32 clients: most of a request's time was spent in Gradio's queue, before that wait began.)
PROMISE_SECONDS = 2.0
ANSWER_SECONDS = 1.5
START_SECONDS = 0.1  # an analysis with a free thread starts within this, however long it takes
BUSY_SECONDS = 1.5  # a /timeline call whose analysis has not started within this is answered BUSY
BUSY = "The app is busy with other people's recordings: try again in a few seconds."
# Recordings longer than this are followed over time in the long lane (a 10-minute file takes ~15 s); shorter ones,
# and every analysis of a single clip, in the quick lane (a second or two at most).
LONG_SECONDS = 30.0
LONG_NICE = 10  # the long lane's threads run this much nicer: a quick analysis beside two timelines keeps its core
# The C library keeps the memory a burst of requests freed; it is handed back once analyses have been idle this long
# (server RSS 12 s after 500 requests at 8 and 32 clients: 34 MB over its start without, 15 MB with).
IDLE_TRIM_SECONDS = 10.0
MAX_FILE_BYTES = audio.MAX_FILE_BYTES  # ten minutes of 48 kHz stereo WAV (see there)
MAX_FILE_SIZE = f"{MAX_FILE_BYTES // 1024**2}mb"  # as Gradio takes it: it counts mb as MiB
TIMELINE_SECONDS = 600  # the timeline follows 10 minutes at most: about 15 s on 2 cores (bench/bench_timeline.py)
SESSION_SECONDS = 600  # a visitor's recent results stay this long after their last analysis (API calls keep none)
# Gradio keeps every session (a page load, or an API client: one per call for scripts that make a client per call),
# each with its copy of every component's settings, until it has seen 10,000: for this page about 160 KB a session
# (server RSS +240 MiB per 1,500 calls in new sessions before this: bench/results/soak_before_forgetting_sessions.json),
# so 1.6 GB that a Space held for nothing. `forget_idle_sessions` forgets a session that holds nothing (no state, no
# component changed: Gradio makes the same one again at its next event) once idle this long, and a closed tab's
# session once idle CLOSED_SESSION_SECONDS (Gradio's own hour for the tab to come back; a reloaded page starts a new
# session).
CLEAN_SESSION_SECONDS = 10.0
CLOSED_SESSION_SECONDS = 3600.0
RECENT = 2  # results kept per visitor: enough to answer Analyse pressed again on an upload already deleted
GONE = "Recordings are deleted as soon as they are analysed, so this one is gone: record or upload it again."
RECORDING = "audio.wav"  # the name Gradio's page gives every microphone recording it uploads
NO_AUDIO = "No audio yet: record with the microphone or upload a file, then press **Analyse**."
NOT_UPLOADED = "Send the recording itself: upload the sound file, then try again."


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
    """The example clip in `keep` that `path` is (the clip itself, or a file with its name and bytes), else None."""
    p = Path(path)
    return next((k for k in keep if p.name == k.name and p.is_file() and filecmp.cmp(p, k, shallow=False)), None)


def input_name(path: str, clip: Path | None = None) -> str:
    """The input as the visitor knows it: the example's label, "your recording" (the browser names every recording
    audio.wav), or the uploaded file's name."""
    if clip is not None:
        return classroom.parse_example(clip).label
    return "your recording" if Path(path).name == RECORDING else Path(path).name


def discard_upload(path: str, keep: Collection[Path] = ()) -> None:
    """The request that brought `path` has read it: delete it once every upload of it has been read
    (`uploads.uploaded_file_read`). Only files in Gradio's upload folder are deleted, and never one in `keep`."""
    if Path(path).resolve() not in {Path(k).resolve() for k in keep}:
        uploads.uploaded_file_read(path)


def analyse_upload(
    model: SERModel,
    path: str | None,
    recent: RecentResults | None = None,
    keep: Collection[Path] = (),
    wait: float | None = None,
    over_time: bool = False,
    progress: Callable[[float], None] | None = None,
    answer_by: float | None = None,
) -> Result:
    """Analyse an uploaded or recorded file with `ser.analyse_file`, then delete the upload (never files in `keep`).

    Never raises for bad input: the reason is in `Result.error`. With `recent`, a path analysed before is answered
    from there (the file is not read again), and the result is kept there. `over_time`: also the timeline of the
    whole recording (`ser.timeline.analyse_over_time`), reporting its progress to `progress(fraction)`; a recording
    longer than LONG_SECONDS is followed in the long lane. An API call is answered BUSY when its analysis has not
    started within `wait` seconds, or cannot end by `answer_by` (time.monotonic(); see ANSWER_SECONDS).
    """
    if not path:
        return Result(error=NO_AUDIO)
    if recent is not None and (cached := recent.get(path)) is not None:
        return cached
    try:
        result = _analysed(model, path, keep, wait, over_time, progress, answer_by, getattr(recent, "reference", None))
    finally:
        discard_upload(path, keep)
    if result.error == GONE and recent is not None and (cached := recent.get(path)) is not None:
        return cached  # analysed and deleted meanwhile, by this visitor's other event
    if recent is not None and result.error not in (BUSY, GONE):
        recent.put(path, result)
    return result


def _analysed(model, path, keep, wait, over_time, progress, answer_by, reference=None) -> Result:
    clip = example_copied(path, keep)  # an example: the emotion its actor meant is known
    try:
        if over_time:
            how = functools.partial(analyse_over_time, max_seconds=TIMELINE_SECONDS, progress=progress)
            long = (audio_duration(path) or 0) > LONG_SECONDS
            analysed = analyse_in_turn(model, path, wait, how, lane=LONG if long else QUICK, answer_by=answer_by)
        else:
            analysed = analyse_in_turn(model, path, wait, analyse_file, answer_by=answer_by)
        if analysed is None:
            return Result(error=BUSY)
        analysis, over = analysed if over_time else (analysed, None)
        if reference is not None and analysis.voice_features is not None:  # tuned to this visitor (my_voice tab)
            analysis = adapted(model, analysis, reference)
            analysis.notes.append(
                f"Tuned to your voice from {reference.n} recordings: the voice listener compared this one with "
                "them. If someone else is speaking, press Forget my voice in the My voice tab."
            )
        intended = classroom.parse_example(clip).emotion if clip else None
        return Result(analysis, model=model, timeline=over, intended=intended, name=input_name(path, clip),
                      at=time.time())  # fmt: skip
    except (AudioError, OSError) as e:
        if not Path(path).exists():
            example = Path(path).name in {k.name for k in keep}
            log.warning("%s was gone when its analysis began: %s", "an example clip" if example else "a file", path)
            return Result(error=GONE)
        if not isinstance(e, AudioError):
            raise
        log.info("not analysed: %s", e)  # the host's log gets the technical detail; the visitor, plain words
        return Result(error=e.plain)


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


@dataclass
class Job:
    """One piece of work in a lane, and how many callers wait for it (a shared job is cancelled by its last one)."""

    future: Future
    started: threading.Event = field(default_factory=threading.Event)
    waiters: int = 1


def job_name(fn: Callable) -> str:
    """What a job does, by its function's name (a functools.partial's too): how long it usually takes is kept so."""
    return getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "job")


class Lane:
    """Threads that run one kind of analysis, first come first served, and what they know of their own load.

    Every analysis runs on a lane's threads. Besides keeping the cores from being oversubscribed, only these
    threads ever hold the memory numpy and torch allocate per thread: run on any of Gradio's 40 worker threads, a
    server's RSS grew 145 MB over 176 requests at 32 clients and stayed there. `nice` lowers the threads' priority
    (Linux), so that work in another lane comes first when both want a core. Identical concurrent jobs (the same
    file and the same analysis: a class sending one clip) run once, for all of them.
    """

    def __init__(self, name: str, threads: int = CONCURRENCY, nice: int = 0):
        self.threads, self.nice = threads, nice
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=name, initializer=self._lower_priority)
        self.lock = threading.Lock()
        self.jobs: dict[Any, Job] = {}  # key -> the job not yet done
        self.pending = 0  # jobs submitted and not done
        self.usual: dict[str, float] = {}  # what -> seconds a job of it has been taking (exponential average)

    def _lower_priority(self) -> None:
        if self.nice and sys.platform == "linux":  # a thread is a task of its own there
            tid = threading.get_native_id()
            try:
                os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)
            except OSError:
                pass

    def expected_end(self, what: str) -> float:
        """When a job of `what` submitted now would end (time.monotonic()), from the jobs ahead and usual times;
        now, when a thread is free (it starts at once: nothing would make it sooner)."""
        with self.lock:
            rounds = self.pending // self.threads
        return time.monotonic() + (rounds + 1) * self.usual.get(what, 0.0) if rounds else time.monotonic()

    def submit(self, fn: Callable, *args, key: Any = None) -> Job:
        """Run `fn(*args)` on a thread of this lane; with `key`, join the job of that key if one is not done yet."""
        what = job_name(fn)

        def run(job: Job) -> Any:
            job.started.set()
            start = time.monotonic()
            try:
                return fn(*args)
            finally:
                took = time.monotonic() - start
                with self.lock:
                    self.usual[what] = took if what not in self.usual else 0.8 * self.usual[what] + 0.2 * took

        def done(job: Job) -> None:
            with self.lock:
                self.pending -= 1
                if key is not None and self.jobs.get(key) is job:
                    del self.jobs[key]

        if (job := self.join(key)) is not None:
            return job
        with self.lock:
            job = Job(Future())
            job.future = self.pool.submit(run, job)
            self.pending += 1
            if key is not None:
                self.jobs[key] = job
        job.future.add_done_callback(lambda _: done(job))
        return job

    def join(self, key: Any) -> Job | None:
        """The job of `key` not done yet, now with one more caller waiting for it; None if there is none."""
        with self.lock:
            if key is not None and (job := self.jobs.get(key)) is not None:
                job.waiters += 1
                return job
        return None

    def give_up(self, job: Job) -> bool:
        """A caller stops waiting for `job`; True if it had not started (it is cancelled once no caller waits)."""
        with self.lock:
            job.waiters -= 1
            if job.started.is_set():
                return False
            last = job.waiters == 0
        if last:
            job.future.cancel()  # outside the lock: a cancelled future runs its done callback at once
        return True


QUICK = Lane("analysis")  # single clips: /predict, /explain, the page's analyses of short recordings
LONG = Lane("timeline", nice=LONG_NICE)  # long recordings followed over time: /timeline, the page's long uploads
ANALYSES = QUICK.pool  # the quick lane's threads, for work that must run beside the analyses (e.g. drawing)


def analyse_in_turn(model: SERModel, path: str, wait: float | None = None, how: Callable = analyse_file,
                    lane: Lane = QUICK, answer_by: float | None = None) -> Any:  # fmt: skip
    """`how(model, path)` (`analyse_file`) on one of `lane`'s threads; None (BUSY) when it has not started within
    `wait` seconds, or when it would not end by `answer_by` (time.monotonic()). None for both: no limit."""
    TRIM.touch()
    what = job_name(how)
    key = (os.path.abspath(path), what) if how is analyse_file else None  # the same file, the same way: one job
    job = lane.join(key)
    if job is None and answer_by is not None and lane.expected_end(what) > answer_by:
        return None  # no use starting what cannot be answered in time: say so now
    job = job or lane.submit(how, model, path, key=key)
    limits = [] if wait is None else [wait]
    if answer_by is not None:  # the latest start that ends in time, or at once
        limits.append(max(answer_by - time.monotonic() - lane.usual.get(what, 0.0), START_SECONDS))
    if limits and not job.started.wait(max(0.0, min(limits))) and lane.give_up(job):
        return None
    return job.future.result()


def in_turn(fn: Callable, *args) -> Any:
    """`fn(*args)` on one of the quick lane's threads, in turn with the analyses (e.g. an explanation and its
    picture: work that costs what an analysis does, and allocates as much)."""
    TRIM.touch()
    return QUICK.submit(fn, *args).future.result()


def request_arrival() -> float:
    """When the request being handled reached Gradio's queue (time.monotonic()); now, outside Gradio's queue."""
    event = current_event()
    return event.enqueue_time if event is not None else time.monotonic()


def current_event() -> Any:
    """The Gradio queue event being handled in this thread, or None (a handler called directly, as tests do)."""
    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    return queue.event_ids_to_events.get(event_id) if queue is not None and event_id else None


def progress_reporter(progress: gr.Progress, desc: str) -> Callable[[float], None]:
    """`progress(fraction)` callable from another thread (the analysis pool): Gradio finds the event to update in
    context variables, which threads do not inherit, so each call runs in a copy of this thread's context."""
    context = contextvars.copy_context()
    return lambda fraction: context.run(progress, fraction, desc=desc)


def api_endpoint(fn: Callable, inputs: list, outputs: list, name: str, description: str) -> None:
    """An endpoint for gradio_client only (no trigger on the page), such as `/predict`. API clients open a session
    per request, so it keeps nothing in one. Its own group, so calls are not held in Gradio's queue behind the page's
    events: each is answered in time or told BUSY (`analyse_upload`'s `answer_by` and `wait`), and no more than
    QUEUE_SIZE wait so. Not an MCP tool (`tools_only`): it answers pictures and Markdown, which an assistant cannot
    use; `mcp_tools` has the tools."""
    fn.mcp_tool = False
    gr.on(triggers=[], fn=fn, inputs=inputs, outputs=outputs, api_name=name, api_description=description,
          concurrency_id="api", concurrency_limit=QUEUE_SIZE)  # fmt: skip


# ----------------------------------------------------------------------------- serving


def refuse_plainly() -> None:
    """Refuse a file that was not uploaded (a server path sent as the audio) with a plain gr.Error.

    Gradio checks every input file before any handler runs, and refuses one outside its upload folder with an
    `InvalidPathError` that it prints with a traceback, while the client gets `{"error": null}`; there is no hook
    for it, so its check is wrapped (once per process) to raise the same refusal in plain words and log one line.
    """
    check = processing_utils._check_allowed
    if getattr(check, "plain", False):
        return

    @functools.wraps(check)
    def plain(path, check_in_upload_folder):
        try:
            return check(path, check_in_upload_folder)
        except InvalidPathError as e:
            log.info("refused: %s", e)
            raise gr.Error(NOT_UPLOADED, print_exception=False) from None

    plain.plain = True
    processing_utils._check_allowed = plain


def tools_only() -> None:
    """Leave the endpoints marked `mcp_tool = False` (`api_endpoint`'s) out of Gradio's MCP server.

    Gradio makes every documented endpoint a tool, and its one switch, `api_visibility="undocumented"`, would also
    take them off the page's API list, where gradio_client users find them; so the MCP server's own list of tools
    (which its tool listing, calls and schema all read) is filtered, once per process.
    """
    listed = GradioMCPServer.get_tool_to_endpoint
    if getattr(listed, "tools_only", False):
        return

    @functools.wraps(listed)
    def tools(server: GradioMCPServer) -> dict[str, str]:
        fn = lambda endpoint: getattr(server.get_block_fn_from_endpoint_name(endpoint), "fn", None)
        return {tool: e for tool, e in listed(server).items() if getattr(fn(e), "mcp_tool", True)}

    tools.tools_only = True
    GradioMCPServer.get_tool_to_endpoint = tools


def pending(holder: StateHolder) -> dict[str, set]:
    """Gradio's queue's events per session, queued or running (an empty set once they are done)."""
    return getattr(getattr(holder.blocks, "_queue", None), "pending_event_ids_session", {})


def idle_sessions(holder: StateHolder) -> list[str]:
    """The sessions of `holder` to forget (see CLEAN_SESSION_SECONDS): those that hold nothing and have been idle
    CLEAN_SESSION_SECONDS, and closed tabs' idle CLOSED_SESSION_SECONDS; never one with an event queued or running."""
    if getattr(holder, "blocks", None) is None:  # not serving a page yet
        return []
    now, busy = datetime.datetime.now(), pending(holder)
    default = holder.blocks.default_config.blocks
    forget = []
    for sid, session in list(holder.session_data.items()):
        used = holder.time_last_used.get(sid)
        idle = (now - used).total_seconds() if used else 0.0
        if busy.get(sid) or idle <= min(CLEAN_SESSION_SECONDS, CLOSED_SESSION_SECONDS):
            continue
        blocks = session.blocks_config.blocks
        unchanged = (
            not session.state_data
            and len(blocks) == len(default)
            and all(blocks.get(k) is v for k, v in default.items())
        )
        if (unchanged and idle > CLEAN_SESSION_SECONDS) or (session.is_closed and idle > CLOSED_SESSION_SECONDS):
            forget.append(sid)
    return forget


def forget_idle_sessions() -> None:
    """Make Gradio's expiry of session state, which runs every second on the server's event loop, also forget
    `idle_sessions` (once per process). On the event loop, no event can be looking its session up meanwhile."""
    expire = StateHolder.delete_all_expired_state
    if getattr(expire, "forgets", False):
        return

    @functools.wraps(expire)
    def expire_and_forget(holder: StateHolder) -> None:
        expire(holder)
        forget = idle_sessions(holder)
        with holder.lock:
            for sid in forget:
                holder.session_data.pop(sid, None)
                holder.time_last_used.pop(sid, None)
                pending(holder).pop(sid, None)  # the queue's empty set for it, which it never drops either
        if forget:
            log.debug("forgot %d idle sessions; %d kept", len(forget), len(holder.session_data))

    expire_and_forget.forgets = True
    StateHolder.delete_all_expired_state = expire_and_forget


def serve(demo: gr.Blocks, **kwargs):
    """Queue and serve `demo` with the app's limits; kwargs go to `Blocks.launch` (theme, server_port, ...).

    Uploads are counted and swept by `uploads` (the sweeper is `demo.sweeper`, started here). The MCP server
    (`mcp_tools`, at /gradio_api/mcp/) is on unless `mcp_server=False` or GRADIO_MCP_SERVER=false, Gradio's own
    switch, whose default (off) is turned round here."""
    kwargs.setdefault("mcp_server", os.environ.get("GRADIO_MCP_SERVER", "true").lower() == "true")
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    # One analysis per core: CONCURRENCY analyses each using every core would fight over them (on 2 busy cores,
    # a model pass took 5 times longer with 2 torch threads than with 1).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY))
    refuse_plainly()
    tools_only()
    forget_idle_sessions()
    uploads.record_uploads(demo)
    demo.sweeper = uploads.Sweeper(demo)
    threading.Thread(target=demo.sweeper.run, daemon=True, name="sweeper").start()
    return demo.launch(max_file_size=MAX_FILE_SIZE, **kwargs)
