"""The offline page at /offline: `ser.offline`'s static folder for the app's own model, in which the model runs in
the visitor's browser.

Making it exports the model (some 20 s of CPU), so `start` runs `python -m ser offline` in a subprocess at a lower
priority and start-up does not wait; it is cached under .cache/ser/offline/, keyed by the checkpoint's files and the
code that makes the page, so a restart serves it at once. Until it is ready, /offline says so in plain words (never
a 404). `route` is the Starlette mount that `page.launch` hands to Gradio's FastAPI app (`app_kwargs`).
"""

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

import ser
from ser.offline import MODEL, PAGE

log = logging.getLogger("app")

PATH = "/offline"  # where the app serves the page; the link under the input points here
CACHE = Path(".cache/ser/offline")
NICE = 10  # the export runs this much nicer than the app: visitors' analyses keep their cores
KEEP = 3  # finished pages kept in the cache (one per model or version of the code), the newest
PREPARING = "The offline page is being prepared. Reload this page in a few seconds."
FAILED = "The offline page could not be made for this model. The app itself works as usual."
NO_FOLDER = "There is no offline page for this model: it was not loaded from a folder."


def key(checkpoint: Path) -> str:
    """A digest of what the page is made from: the checkpoint's files, the page's files and the library's code."""
    digest = hashlib.sha256()
    code = Path(ser.__file__).parent
    files = (
        [f for f in sorted(checkpoint.iterdir()) if f.is_file()] + sorted(PAGE.rglob("*")) + sorted(code.glob("*.py"))
    )
    for f in files:
        if f.is_file():
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def message(text: str, reload: bool = False) -> HTMLResponse:
    """A plain page with one sentence, never cached (it changes once the page is ready); `reload`: every 5 s."""
    body = (
        '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        + '<meta http-equiv="refresh" content="5">' * reload
        + "<title>Offline page</title>"
        '<body style="font: 20px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem">'
        f"<p id=message>{text}</p></body></html>"
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


class OfflinePage:
    """The offline page for one checkpoint folder: made once (`start`), then served (`route`)."""

    _making: dict[Path, threading.Thread] = {}  # one making per page in this process, whichever app asked
    _failed: set[Path] = set()
    _lock = threading.Lock()

    def __init__(self, checkpoint: Path | None, cache: Path = CACHE):
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.cache = Path(cache)
        self.folder = self.cache / key(self.checkpoint) if self.checkpoint is not None else None
        self.files = StaticFiles(directory=self.folder, html=True, check_dir=False) if self.folder else None

    @property
    def ready(self) -> bool:
        return self.folder is not None and (self.folder / MODEL).is_file()

    def start(self) -> threading.Thread | None:
        """Make the page in the background unless it is made or being made; returns the thread making it."""
        if self.folder is None or self.ready:
            return None
        with self._lock:
            making = self._making.get(self.folder)
            if making is None or (not making.is_alive() and self.folder not in self._failed):
                making = threading.Thread(target=self._make, daemon=True, name="offline-page")
                self._making[self.folder] = making
                making.start()
        return making

    def _make(self) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        sweep(self.cache)
        tmp = Path(tempfile.mkdtemp(dir=self.cache, prefix=".making-"))
        started = time.monotonic()
        here = str(Path(ser.__file__).parents[1])  # the subprocess imports this very `ser`
        env = os.environ | {
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
        }
        command = [sys.executable, "-m", "ser", "offline", str(tmp), "--model", str(self.checkpoint)]
        making = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        with contextlib.suppress(AttributeError, OSError):  # lowered once started (no preexec_fn: threads)
            os.setpriority(os.PRIO_PROCESS, making.pid, NICE)
        _, said = making.communicate()
        if making.returncode != 0:
            self._failed.add(self.folder)
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning("the offline page could not be made: %s", (said.strip().splitlines() or ["?"])[-1])
            return
        try:
            tmp.rename(self.folder)  # at once: a request finds the whole page or none of it
            self.folder.chmod(0o755)  # mkdtemp's folder is its owner's only
        except OSError:  # another process made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("the offline page is ready at %s/ (made in %.0f s)", PATH, time.monotonic() - started)

    async def __call__(self, scope, receive, send) -> None:
        """The page's files once it is made; until then, one plain sentence."""
        if self.ready:
            return await self.files(scope, receive, send)
        if self.folder is None:
            response = message(NO_FOLDER)
        elif self.folder in self._failed:
            response = message(FAILED)
        else:
            response = message(PREPARING, reload=True)
        await response(scope, receive, send)

    def route(self) -> Mount:
        return Mount(PATH, app=self, name="offline")


def sweep(cache: Path) -> None:
    """Keep the KEEP newest pages; remove half-made ones left by a process that stopped (older than an hour)."""
    pages = sorted((p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
    stale = [p for p in cache.glob(".making-*") if time.time() - p.stat().st_mtime > 3600]
    for p in pages[KEEP:] + stale:
        shutil.rmtree(p, ignore_errors=True)
