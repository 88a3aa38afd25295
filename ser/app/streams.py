"""The live view's slots: who may stream to it, one stream per visitor, idle streams closed (`StreamSlots`).

Apart from the analyses' lanes in `serving`: a stream holds its slot while it sends sound, and each chunk is judged
by the live tab's own handler.
"""

import asyncio
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio.from_thread

from . import serving


@dataclass
class Stream:
    event: Any  # Gradio's queue event of the stream
    started: float  # time.monotonic()
    last: float  # when its last chunk came


class StreamSlots:
    """Who may stream to the live view: at most `size` streams at once, and one per visitor session (a new stream
    of the same session takes its slot over). A stream that has sent nothing for `idle` seconds loses its slot and
    is closed, so that an abandoned or silent stream holds nothing for long; a visitor who finds every slot taken is
    told when one frees at the latest (each stream runs `limit` seconds at most).

    Gradio holds an event, and one of its workers, for a stream until the stream ends; it closes one only when no
    chunk came for its whole time limit. Here a stream is closed as Gradio's own close route does it.
    """

    def __init__(self, size: int, idle: float, limit: float):
        self.size, self.idle, self.limit = size, idle, limit
        self.lock = threading.Lock()
        self.streams: dict[str, Stream] = {}  # session -> its stream
        self.loop: asyncio.AbstractEventLoop | None = None  # Gradio's, where streams are closed
        self.watch: threading.Thread | None = None

    def enter(self, session: str) -> str | None:
        """For each chunk's handler, with its visitor's `session` hash: None if this stream may go on; else, in plain
        words, why not and when to try again, and the stream ends after this answer. Gradio names the stream's event
        only to a stream's first chunk; a chunk of a stream never seen to begin (outside Gradio's queue, or from
        before a restart) goes on."""
        event, now = serving.current_event(), time.monotonic()
        if event is not None:
            try:
                self.loop = anyio.from_thread.run_sync(asyncio.get_running_loop)  # the loop of Gradio's worker thread
            except RuntimeError:  # not one of Gradio's worker threads: streams are only closed by Gradio then
                pass
        with self.lock:
            self.expire(now)
            mine = self.streams.get(session)
            if event is not None and mine is not None and mine.event is not event:  # the visitor's new stream
                self.close(mine.event)
                del self.streams[session]
                mine = None
            if mine is None and event is None:
                return None
            if mine is None and len(self.streams) >= self.size:
                event.run_time = math.inf  # Gradio ends the stream once this chunk is answered
                return self.full(now)
            if mine is None:
                mine = self.streams[session] = Stream(event, now, now)
            mine.last = now
            if self.watch is None:
                self.watch = threading.Thread(target=self.run, daemon=True, name="live-slots")
                self.watch.start()
        return None

    def full(self, now: float) -> str:
        wait = max(5.0, min(s.started + self.limit for s in self.streams.values()) - now)
        when = f"{math.ceil(wait / 60)} minutes" if wait > 90 else f"{math.ceil(wait / 5) * 5:.0f} seconds"
        return (f"All {self.size} live microphones are in use. Try again in about {when}, or record a clip at the top "
                "of the page.")  # fmt: skip

    def expire(self, now: float) -> None:
        """Free the slots of streams silent for `idle` seconds or past `limit`, and close those streams."""
        for session, stream in list(self.streams.items()):
            if now - stream.last > self.idle or now - stream.started > self.limit or stream.event.closed:
                del self.streams[session]
                self.close(stream.event)

    def close(self, event: Any) -> None:
        def close():  # what Gradio's /stream/{event_id}/close route does
            event.run_time, event.closed = math.inf, True
            event.signal.set()

        try:
            self.loop.call_soon_threadsafe(close)
        except (AttributeError, RuntimeError):  # no loop yet, or the server has stopped
            pass

    def run(self) -> None:
        """Expire idle streams even when no chunk comes at all (a daemon thread's target)."""
        while True:
            time.sleep(self.idle / 2)
            with self.lock:
                self.expire(time.monotonic())
