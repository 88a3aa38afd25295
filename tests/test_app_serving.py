"""The app's one analysis path (`ser.app.serving`): bad and odd input told in one line, uploads never kept, the busy
answer under a crowd, the memory trim, and each visitor's recent results."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import LABELS, speech_like, write

from ser.app import serving
from ser.app.analyse import verdict
from ser.app.serving import RecentResults, Result, analyse_upload
from ser.app.views import VIEWS, render
from ser.features import FeatureConfig
from ser.model import ModelConfig, SERModel

PICTURES = [n for n, v in VIEWS.items() if v.picture]


@pytest.fixture(scope="module")
def strict_model():
    """A model whose own limits (1 s to 4 s) differ from the module defaults, to prove the app reads them."""
    fc = FeatureConfig(min_seconds=1.0, max_seconds=4.0)
    return SERModel(ModelConfig(labels=LABELS, features=fc, widths=[8, "M"], hidden=8))


# ----------------------------------------------------------------------------- input quality


def test_no_audio(model):
    for missing in (None, ""):
        result = analyse_upload(model, missing)
        assert result.error == serving.NO_AUDIO and result.analysis is None
        assert render(result, PICTURES) == [None] * len(PICTURES)
        assert "No audio" in verdict(result)


def test_too_short_uses_the_models_minimum(strict_model, tmp_path):
    path = write(tmp_path / "short.wav", speech_like(0.8))
    result = analyse_upload(strict_model, str(path))
    assert result.analysis is None and "needs at least 1 second of sound" in result.error
    assert "\n" not in result.error and "Cannot analyse" in verdict(result)


def test_silence(model, tmp_path):
    result = analyse_upload(model, str(write(tmp_path / "silent.wav", np.zeros(32000, np.float32))))
    assert result.analysis is None and "could not hear anything" in result.error


def test_clipped_is_analysed_with_a_warning(model, tmp_path):
    loud = np.clip(speech_like() * 8, -1, 1)
    result = analyse_upload(model, str(write(tmp_path / "loud.wav", loud)))
    assert result.analysis is not None
    assert len(result.analysis.notes) == 1 and "Too loud" in result.analysis.notes[0]


def test_very_quiet_is_analysed_with_a_warning(model, tmp_path):
    quiet = speech_like() * 0.02  # peaks near -40 dBFS
    result = analyse_upload(model, str(write(tmp_path / "quiet.wav", quiet)))
    assert result.analysis is not None
    assert len(result.analysis.notes) == 1 and "Very quiet" in result.analysis.notes[0]


def test_very_long_analyses_the_models_maximum(strict_model, tmp_path):
    result = analyse_upload(strict_model, str(write(tmp_path / "long.wav", speech_like(6.0))))
    assert result.analysis is not None and result.analysis.truncated
    assert len(result.analysis.notes) == 1 and "Only the first 4 seconds" in result.analysis.notes[0]
    assert len(result.analysis.audio) == 4 * strict_model.feature_config.sample_rate
    assert "first 4 s" in VIEWS["waveform"].render(result).axes[0].get_title()


@pytest.mark.parametrize(
    ("content", "reason"), [(b"", "is empty"), (b"RIFF not really a wave file" * 50, "not a sound file we can open")]
)
def test_damaged_file_gives_one_line(model, tmp_path, content, reason):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    result = analyse_upload(model, str(path))
    assert result.analysis is None and reason in result.error
    assert "\n" not in result.error and str(tmp_path) not in result.error  # the file's name, not the server path


@pytest.mark.parametrize(("suffix", "subtype"), [(".flac", None), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")])
def test_compressed_formats(model, tmp_path, suffix, subtype):
    path = write(tmp_path / f"speech{suffix}", speech_like(), subtype=subtype)
    result = analyse_upload(model, str(path))
    assert result.error is None and list(result.analysis.probs) == model.labels


def test_ten_minutes_of_the_largest_common_format_fit_the_upload_limit():
    from gradio.utils import _parse_file_size

    ten_minutes = 10 * 60 * 48000 * 2 * 2 + 44  # 16-bit 48 kHz stereo WAV
    assert ten_minutes <= _parse_file_size(serving.MAX_FILE_SIZE) < 2 * ten_minutes
    assert serving.TIMELINE_SECONDS >= 600


# ----------------------------------------------------------------------------- uploads are not kept


def test_uploads_are_deleted_once_read_and_reanalysis_still_works(model, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    upload = write(tmp_path / "gradio" / "0123abcd" / "speech.wav", speech_like())
    recent = RecentResults()
    first = analyse_upload(model, str(upload), recent)
    assert first.analysis is not None and not upload.exists() and not upload.parent.exists()
    assert analyse_upload(model, str(upload), recent) is first  # Analyse pressed again
    assert analyse_upload(model, str(upload), RecentResults()).error == serving.GONE  # another visitor
    assert analyse_upload(model, str(upload)).error == serving.GONE  # the API keeps nothing: says why


def test_example_clips_are_never_deleted_and_uploads_always_are(model, tmp_path, monkeypatch):
    """The examples are served from their folder; a file in the upload folder is an upload, even with an example's
    name and bytes, and goes once read (unless it is itself one of the clips kept)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    example = write(tmp_path / "examples" / "example.wav", speech_like())
    assert analyse_upload(model, str(example), keep=[example]).analysis is not None and example.exists()
    copy = write(tmp_path / "gradio" / "feed" / "example.wav", speech_like())  # an upload of the example
    analyse_upload(model, str(copy), keep=[example])
    assert not copy.exists()
    kept = write(tmp_path / "gradio" / "clips" / "example.wav", speech_like())
    analyse_upload(model, str(kept), keep=[kept])
    assert kept.exists()


# ----------------------------------------------------------------------------- under a crowd


def test_api_calls_are_told_busy_when_no_analysis_starts_in_time(model, tmp_path, monkeypatch):
    """With every analysis thread taken, an API call is answered BUSY in one line and its upload deleted; the page's
    analyses (no `wait`) wait their turn instead."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    release = threading.Event()
    for _ in range(serving.CONCURRENCY):
        serving.ANALYSES.submit(release.wait)
    upload = write(tmp_path / "gradio" / "b1" / "speech.wav", speech_like())
    page_upload = write(tmp_path / "gradio" / "b2" / "speech.wav", speech_like(seed=1))
    with ThreadPoolExecutor(1) as visitor:
        try:
            busy = analyse_upload(model, str(upload), wait=0.1)
            page = visitor.submit(analyse_upload, model, str(page_upload))
            time.sleep(0.5)
            assert not page.done(), "the page's analysis waits for a free thread"
        finally:
            release.set()
        assert page.result(timeout=120).analysis is not None
    assert busy.error == serving.BUSY and busy.analysis is None and not upload.exists()
    said = verdict(busy)
    assert "busy" in said and "try again" in said and said.count("\n") == 1


def test_memory_is_trimmed_once_after_each_idle_stretch(monkeypatch):
    calls = []

    class Libc:
        def malloc_trim(self, pad):
            calls.append(pad)

    monkeypatch.setattr(serving.ctypes, "CDLL", lambda name: Libc())
    trim = serving.MemoryTrim(idle_seconds=0.05)
    threading.Thread(target=trim.run, daemon=True).start()
    time.sleep(0.3)
    assert calls == [], "nothing analysed yet: nothing to give back"
    trim.touch()
    time.sleep(0.3)
    assert calls == [0], "one trim after the stretch, not one every poll"


# ----------------------------------------------------------------------------- each visitor's results


def test_recent_results_are_bounded():
    recent = RecentResults(size=2)
    for key in "abc":
        recent.put(key, Result(error=key))
    assert recent.get("a") is None and recent.get("b").error == "b" and recent.get("c").error == "c"


def test_each_visitor_keeps_their_own_recent_results(handlers, tmp_path, monkeypatch):
    """The page's analysis keeps results in the visitor's session: a busy stranger never evicts them."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    on_analyse = handlers["on_analyse"]  # what the Analyse button runs
    mine = write(tmp_path / "gradio" / "a1" / "mine.wav", speech_like())
    first, *_, alice = on_analyse(str(mine), None)
    stranger = None
    for i in range(3 * serving.RECENT):
        *_, stranger = on_analyse(str(write(tmp_path / "gradio" / f"b{i}" / "x.wav", speech_like(seed=i))), stranger)
    assert not mine.exists() and stranger is not alice
    again, *_ = on_analyse(str(mine), alice)  # Analyse pressed again on the upload, deleted since
    assert again == first and "%" in again
    assert on_analyse(str(mine), stranger)[0].endswith(serving.GONE)
    assert len(stranger.items) == serving.RECENT  # bounded
