"""The app's analyses as MCP tools for assistants: `emotion_of_recording` and `emotion_over_time`, served by Gradio's
MCP server at /gradio_api/mcp/ (`serving.serve` turns it on).

Each tool is a plain function that answers JSON text, not the page's pictures, and takes the page's path: the file
goes through `serving.analyse_upload` (the quick or the long lane, BUSY when it cannot be answered in time, deleted
once read), so a crowd of tool calls takes turns on the page's threads and is told BUSY rather than starving the
page's visitors. Bad input is refused with the page's own one plain line, as the tool's error. Their descriptions
say what an answer is worth, from the model's own metrics.json. Registered unqueued: Gradio's MCP server then calls
them directly, not through an HTTP client of its own and the page's queue; the lanes limit the work.

MCP clients name files by URL; `uploads.handed_file` turns one into an upload. The page's gradio_client endpoints
(/predict, /timeline, /explain: pictures and Markdown) are left out of the tools (`serving.tools_only`).
"""

import json
import math

import gradio as gr

from ser import card, classroom
from ser.audio import AUDIO_EXTENSIONS
from ser.inference import Analysis
from ser.model import SERModel
from ser.timeline import HOP_SECONDS, SILENCE, Timeline

from . import serving, uploads
from .serving import Result
from .views import Page

DIGITS = 4  # probabilities are rounded to this many decimals: finer than any difference that means something

# The tools' docstrings, in the form Gradio's MCP server reads (Args:, Returns:): the description's lines are joined,
# but an argument's description and each line under Returns: must be one line.
RECORDING = """Which emotion a voice sounds like in one recording: the most likely emotion, from the sound of the voice
(not its words), with every emotion's probability and notes on the input.

{limits} It hears the first {max_seconds:g} seconds of sound and needs {min_seconds:g} at least.

Args:
    audio: {audio}

Returns:
    JSON text: {{"label": the most likely emotion, one of {labels}; "probs": {{emotion: probability}}, summing to 1; "listeners": each listener's own probabilities, "cnn" (it reads a picture of the sound) and, when the model has one and the clip is long enough, "voice" (a pretrained voice encoder), which "probs" combines; "notes": caveats about the input in plain words; "seconds_heard"}}. A recording it cannot analyse (silent, too short, unreadable) gets one plain sentence as the tool's error, and a busy app says so: try again in a few seconds.
"""

OVER_TIME = """How the emotion of a voice changes along a whole recording (a talk, a call, a conversation): segments
where one emotion leads, and stretches of silence, with their start and end in seconds.

{limits} It follows the first {minutes:g} minutes, listening to {window:g} seconds at a time every {hop:g} seconds,
so each segment says less than a whole recording would; for one short clip, emotion_of_recording is surer.

Args:
    audio: {audio}

Returns:
    JSON text: {{"seconds": the length followed; "truncated": true when the recording was longer; "segments": [{{"start", "end" (seconds), "label": an emotion or "silence", "confidence": the mean probability of that emotion over the segment, "probs": {{emotion: mean probability}} (both null for silence)}}]}}. A recording it cannot analyse gets one plain sentence as the tool's error, and a busy app says so: try again in a few seconds.
"""

AUDIO = (
    "the recording, as a URL: upload the file first (POST it to http://HOST/gradio_api/upload, or use Gradio's "
    "upload_file_to_gradio tool) and send http://HOST/gradio_api/file=PATH for the PATH it answers; or a "
    "data:audio/wav;base64,... URL (other addresses are not fetched). Formats: {formats}; {mb:.0f} MB at most."
)


class Refusal(gr.Error):
    """The page's plain refusal, never printed with a traceback; its str is the message itself, which Gradio's MCP
    server sends as the tool's error (gr.Error's own str is the message's repr, in quotes)."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)

    def __str__(self) -> str:
        return self.message


def how_sure(metrics: dict) -> str:
    """How often the model is right on voices it never heard, in a sentence or two, from metrics.json (the About
    tab's figures: the fused answer on whole collections it never trained on, and its sure answers)."""
    voice = metrics.get("voice") or {}
    unheard = voice.get("fused_loco") or metrics.get("leave_one_corpus_out") or {}
    if not unheard:
        return "How often it is right was never measured for this model: treat every answer as a guess."
    uars = [classroom.mean_of(m["uar"]) for m in unheard.values()]
    words = (
        f"On recordings from collections it never trained on (other languages, other microphones) it named the "
        f"emotion meant about {classroom.in_tens(sum(uars) / len(uars))} times (each emotion counted alike)."
    )
    if (share := card.confident_share(metrics)) is not None:
        words += f" Even its answers {card.CONFIDENT_TOP:.0%} sure or more were right {classroom.in_tens(share[0])}."
    return words


def limits(metrics: dict) -> str:
    """What an answer is worth: acted speech, a guess, how often right, never about a person."""
    voices = ", ".join(classroom.corpus_name(c) for c in metrics.get("data") or {})
    return (
        f"A guess, for teaching: the model learned from acted speech ({voices or 'actors'} asked to show an "
        "emotion), so it judges how a voice sounds, not how a person feels, and everyday speech is subtler than "
        f"acting. {how_sure(metrics)} Never use it to decide anything about a person."
    )


def descriptions(model: SERModel, metrics: dict) -> tuple[str, str]:
    """The two tools' docstrings (Gradio's MCP server reads a tool's description and its argument's from them)."""
    cfg = model.feature_config
    audio = AUDIO.format(formats=", ".join(e[1:] for e in AUDIO_EXTENSIONS), mb=serving.MAX_FILE_BYTES / 1024**2)
    said = dict(limits=limits(metrics), audio=audio)
    return (
        RECORDING.format(**said, labels=", ".join(model.labels), max_seconds=cfg.max_seconds,
                         min_seconds=cfg.min_seconds),
        OVER_TIME.format(**said, minutes=serving.TIMELINE_SECONDS / 60, window=cfg.clip_seconds, hop=HOP_SECONDS),
    )  # fmt: skip


def rounded(probs: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), DIGITS) for k, v in probs.items()}


def recording_answer(a: Analysis) -> dict:
    """An analysis as JSON data: the keys of `python -m ser predict`'s lines, rounded, and the seconds heard."""
    return {"label": a.label, "probs": rounded(a.probs), "listeners": {k: rounded(p) for k, p in a.listeners.items()},
            "notes": a.notes, "seconds_heard": round(len(a.audio) / a.features.sample_rate, 2)}  # fmt: skip


def over_time_answer(t: Timeline) -> dict:
    """A timeline as JSON data: its segments, each with the mean probabilities of the steps it spans."""
    segments = []
    for s in t.segments:
        steps = t.probs[round(s.start / t.step) : math.ceil(s.end / t.step - 1e-6)]  # (steps, n_classes)
        probs = None if s.label == SILENCE else rounded(dict(zip(t.labels, steps.mean(axis=0).tolist())))
        segments.append({**s.to_dict(), "probs": probs})
    return {"seconds": round(t.duration, 2), "truncated": t.truncated, "segments": segments}


def analysed(page: Page, audio: str, over_time: bool) -> Result:
    """The page's analysis of the file named by `audio`, as a /predict or /timeline call gets it; raises `Refusal`."""
    try:
        path = uploads.handed_file(audio, serving.MAX_FILE_BYTES)
    except uploads.NotHanded as e:
        raise Refusal(str(e)) from None
    if over_time:
        result = serving.analyse_upload(page.model, path, keep=page.clips, wait=serving.BUSY_SECONDS, over_time=True)
    else:
        answer_by = serving.request_arrival() + serving.ANSWER_SECONDS
        result = serving.analyse_upload(page.model, path, keep=page.clips, answer_by=answer_by)
    if result.error:
        raise Refusal(result.error)
    return result


def build(page: Page) -> None:
    """The two tools, as API endpoints of the page (no component: Gradio's MCP server lists documented endpoints)."""

    def emotion_of_recording(audio: str) -> str:
        return json.dumps(recording_answer(analysed(page, audio, over_time=False).analysis))

    def emotion_over_time(audio: str) -> str:
        return json.dumps(over_time_answer(analysed(page, audio, over_time=True).timeline))

    emotion_of_recording.__doc__, emotion_over_time.__doc__ = descriptions(page.model, page.metrics)
    for tool in (emotion_of_recording, emotion_over_time):
        gr.api(tool, api_name=tool.__name__, queue=False)  # the tool's name is its function's
