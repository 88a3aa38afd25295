"""The files the app is handed, and how long they live: each upload is deleted once the request it came with has
read it, and a sweeper deletes what no request read and keeps the upload folder under a cap.

Gradio names an upload by its content (a folder named by the SHA-256 of its bytes), so visitors who send the same
clip share one path, and the first analysis used to delete it under the others. `Uploads` counts the uploads of each
path: it takes the place of Gradio's record of uploaded files (`Blocks.upload_file_set`, which its upload route
adds to), and a file is deleted when the last request that brought it has read it.

Gradio's own sweep (`delete_cache`) is not used: in gradio 6.31 it iterates the live set that the upload route adds
to, so an upload during a pass raises "Set changed size during iteration", which ends its task for good, and it has
no cap. `Sweeper` works on copies, survives any error, and only ever deletes inside the upload folder. The example
clips are never there: they are served from their own folder (`gr.set_static_paths`).

MCP clients cannot upload with a request: they name a file by URL. `handed_file` turns that URL into a file in the
upload folder, counted like an upload, so that it lives and goes as one does.
"""

import base64
import binascii
import logging
import mimetypes
import os
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

import gradio as gr
from gradio.utils import get_upload_folder

from ser.audio import TOO_BIG

log = logging.getLogger("app")

SWEEP_SECONDS = 30.0  # how often the sweeper looks
# A file no request has read after this long is an orphan: an upload that never reached an analysis (a closed tab,
# a script), or a picture Gradio cached to send. The page analyses an upload at once, but a crowd can keep it
# waiting in the queue for a minute or two.
ORPHAN_SECONDS = 300.0
# The upload folder's cap: past it, the oldest files go first, orphans or not. Well above what a full queue holds
# (32 requests of a few MB each), well below a small server's disk; a burst of large uploads that nothing reads
# (126 MB each, ~240 MB/s) overshoots it for at most one sweep.
CAP_BYTES = 2 * 1024**3
FILE_ROUTE = "/gradio_api/file="  # Gradio serves a file it stored at http://HOST/gradio_api/file=PATH
HOW_TO_SEND = (
    "upload the file to this app (POST it to /gradio_api/upload, or use Gradio's upload_file_to_gradio tool) and "
    "send the URL of what it stored, or send a data:audio/...;base64 URL"
)


def _key(path: str | os.PathLike) -> str:
    return os.path.abspath(path)  # as Gradio writes the paths it hands out (gradio.utils.abspath)


class Uploads(set):
    """Gradio's record of uploaded files, counting how many times each path was uploaded and not yet read.

    Gradio's upload route calls `update` with the paths it stored; `read` is called once by each request that
    brought one of them. A set, as Gradio expects, of the paths not yet deleted.
    """

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.unread: dict[str, int] = {}

    def update(self, *groups: Iterable[str]) -> None:
        with self.lock:
            for path in (_key(p) for group in groups for p in group):
                self.unread[path] = self.unread.get(path, 0) + 1
                set.add(self, path)

    def read(self, path: str | os.PathLike) -> bool:
        """One request has read its upload of `path`: True when no other upload of it is left to read (delete it).
        A path never recorded (the upload predates the server, or the call is not through Gradio) counts as one."""
        path = _key(path)
        with self.lock:
            left = self.unread.get(path, 1) - 1
            if left > 0:
                self.unread[path] = left
                return False
            self.unread.pop(path, None)
            set.discard(self, path)
            return True

    def forget(self, paths: Iterable[str]) -> None:
        with self.lock:
            for path in paths:
                self.unread.pop(path, None)
                set.discard(self, path)

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self)


UPLOADS = Uploads()  # one ledger for every app this process serves: paths are unique to their upload folder


def inside_uploads(path: str | os.PathLike) -> bool:
    """Whether `path` lies in Gradio's upload folder (the only place the app ever deletes from)."""
    folder = _key(get_upload_folder())
    return os.path.commonpath([folder, _key(path)]) == folder and _key(path) != folder


def delete(path: str | os.PathLike) -> None:
    """Delete a file in the upload folder, and its per-upload folder if that is left empty."""
    p = Path(path)
    if not inside_uploads(p):
        return
    p.unlink(missing_ok=True)
    if inside_uploads(p.parent):
        try:
            p.parent.rmdir()  # Gradio's per-upload folder
        except OSError:
            pass


def uploaded_file_read(path: str | os.PathLike) -> None:
    """The request that brought `path` has read it: delete it unless another upload of it is still to be read."""
    if inside_uploads(path) and UPLOADS.read(path):
        delete(path)


class NotHanded(ValueError):
    """A file named by URL that the app cannot take; `str(e)` says why and what to do, in one plain line."""


def handed_file(url: str, max_bytes: int) -> str:
    """The file an API caller names by URL (MCP clients can only name one), as a path in the upload folder that is
    deleted once read (`uploaded_file_read`) and swept if never read:

    - a file this app stored: the path its upload route answered, or that path as a URL (`FILE_ROUTE`, what Gradio's
      upload_file_to_gradio tool gives); it was counted when uploaded;
    - a `data:...;base64,` URL, written there.

    Other addresses are not fetched: a Space would download whatever size a stranger names, from wherever.
    Raises `NotHanded` for anything else, a file gone or more than `max_bytes`.
    """
    url = (url or "").strip()
    stored = unquote(url.split(FILE_ROUTE, 1)[1]) if FILE_ROUTE in url else url
    if stored and inside_uploads(stored):
        if not os.path.isfile(stored):
            raise NotHanded("That file is gone: files are deleted once analysed, and unread ones after a few "
                            "minutes. Upload it again.")  # fmt: skip
        return _key(stored)
    if url.startswith("data:"):
        return _stored(*_decoded(url, max_bytes))
    if url.startswith(("http://", "https://")):  # not fetched: a stranger's URL could name any size, or any host
        raise NotHanded(f"This app does not fetch recordings from other addresses: {HOW_TO_SEND}.")
    raise NotHanded(f"No recording at '{url[:80]}': {HOW_TO_SEND}." if url else f"No recording: {HOW_TO_SEND}.")


def _too_big(size: int, max_bytes: int) -> NotHanded:
    return NotHanded(TOO_BIG.format(mb=f"{size / 1024**2:.0f}", max_mb=f"{max_bytes / 1024**2:.0f}"))


def _decoded(url: str, max_bytes: int) -> tuple[bytes, str]:
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise NotHanded("A data: URL must hold base64, as data:audio/wav;base64,UklGR...")
    if (size := len(payload) * 3 // 4) > max_bytes:
        raise _too_big(size, max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise NotHanded("This data: URL is not valid base64: encode the whole file again.") from None
    mime = header[len("data:") : -len(";base64")].split(";")[0].lower()
    return data, "recording" + (mimetypes.guess_extension(mime) or (".wav" if "wav" in mime else ""))


def _stored(data: bytes, name: str) -> str:
    """`data` written in a folder of its own in the upload folder (`delete` takes both) and counted as an upload."""
    folder = Path(get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = _key(folder / name)
    Path(path).write_bytes(data)
    UPLOADS.update([path])
    return path


def record_uploads(demo: gr.Blocks) -> None:
    """Make `demo`'s upload route count into UPLOADS, and turn Gradio's own sweep off (see the module docstring)."""
    demo.temp_file_sets = [UPLOADS if s is demo.upload_file_set else s for s in demo.temp_file_sets]
    demo.upload_file_set = UPLOADS
    demo.delete_cache = None


class Sweeper:
    """Deletes, every `every` seconds, the files `demo` was handed or cached that have been there more than `age`
    seconds, then the oldest ones while they add up to more than `cap` bytes; at shutdown, all of them.

    It works on copies of Gradio's sets, so uploads may arrive during a pass; a pass that fails is logged and the
    next one runs as usual. Only files inside the upload folder are ever deleted.
    """

    def __init__(self, demo: gr.Blocks, every: float | None = None, age: float | None = None, cap: int | None = None):
        """`every`, `age` and `cap` default to SWEEP_SECONDS, ORPHAN_SECONDS and CAP_BYTES as they are now."""
        self.demo = demo
        self.every = SWEEP_SECONDS if every is None else every
        self.age = ORPHAN_SECONDS if age is None else age
        self.cap = CAP_BYTES if cap is None else cap
        self.passes = 0  # sweeps done, for tests that wait for one

    def run(self) -> None:
        """Sweep while `demo` is served, then once more with no age limit (a daemon thread's target)."""
        served = False
        while True:
            time.sleep(self.every)
            if not self.demo.is_running and served:
                self.sweep(age=0)
                return
            served = served or self.demo.is_running
            if served:
                self.sweep()

    def sweep(self, age: float | None = None) -> int:
        """One pass; returns the number of files deleted. Never raises."""
        try:
            return self._sweep(self.age if age is None else age)
        except Exception:  # a pass that fails must not end the sweeping: the next one tries again
            log.exception("sweeping the upload folder failed; the next sweep runs in %g s", self.every)
            return 0
        finally:
            self.passes += 1

    def _known(self) -> set[str]:
        sets = [UPLOADS.snapshot()] + [s.copy() for s in self.demo.temp_file_sets if s is not UPLOADS]
        kept = {p for block in list(self.demo.blocks.values()) for p in getattr(block, "keep_in_cache", ())}
        return {p for files in sets for p in files} - kept

    def _sweep(self, age: float) -> int:
        now, files, gone = time.time(), [], set()
        for path in self._known():
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                gone.add(path)
                continue
            if inside_uploads(path):
                files.append((info.st_ctime, info.st_size, path))
        files.sort()  # oldest first
        doomed = {path for ctime, _, path in files if now - ctime > age}
        total = sum(size for _, size, path in files if path not in doomed)
        for _, size, path in files:
            if total <= self.cap:
                break
            if path not in doomed:
                doomed.add(path)
                total -= size
        for path in doomed:
            delete(path)
        self._forget(gone | doomed)
        if doomed:
            log.info("swept %d files from the upload folder (%d MB left)", len(doomed), total // 10**6)
        return len(doomed)

    def _forget(self, paths: set[str]) -> None:
        UPLOADS.forget(paths)
        for files in self.demo.temp_file_sets:
            if files is not UPLOADS:
                files.difference_update(paths)
