"""The "My voice" tab: a visitor records a few sentences in their ordinary voice, and from then on the voice
listener judges each of their recordings against them (`ser.voice.Reference`, kind "voice") instead of against the
voices it learnt from. The recordings' voice features live in the visitor's session (`serving.RecentResults`);
the recordings themselves are deleted once read, like every upload.
"""

import gradio as gr
import numpy as np

from ser.voice import ADAPT_K

from . import serving
from .views import Page

TITLE = "My voice"
KEEP = 5  # the latest recordings a visitor's voice is made of


def gain_text(page: Page) -> str:
    """How much tuning helped on corpora neither listener heard, from the model's metrics ('' if unmeasured)."""
    v = page.metrics.get("voice", {})
    plain = [m["uar"] for m in v.get("fused_loco", {}).values()]
    tuned = [
        m.get("fused", m["voice"])["uar"] for m in v.get("adapted", {}).get("voice", {}).get("corpora", {}).values()
    ]
    if not plain or not tuned:
        return ""
    return (
        f" On voices in three languages it never heard, tuning to {ADAPT_K} recordings of each speaker made the "
        f"answer right {np.mean(tuned):.0%} of the time on average, against {np.mean(plain):.0%} without."
    )


def status(recent) -> str:
    n = len(recent.voice) if recent else 0
    if recent is not None and recent.reference is not None:
        return f"**Tuned to your voice** from {recent.reference.n} recordings. Every analysis above now uses them."
    return f"{n} of {ADAPT_K} recordings so far." if n else "Not tuned yet: the app compares you with other voices."


def build(page: Page) -> None:
    model = page.model
    if model.voice is None or "voice" not in model.voice.adapted:
        gr.Markdown("This model has no voice listener to tune.", elem_id="my-voice-status")
        return
    gr.Markdown(
        f"Record {ADAPT_K} short sentences in your ordinary voice, one at a time, pressing **Add this recording** "
        "after each. Any mood will do. From then on, the voice listener compares each of your recordings with your "
        "own voice instead of with the voices it learnt from." + gain_text(page) + " It assumes that every "
        "recording is you, with the same microphone: press **Forget my voice** before someone else speaks."
    )
    audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="One sentence", elem_id="my-voice-input")
    with gr.Row():
        add = gr.Button("Add this recording", variant="primary", elem_id="my-voice-add")
        forget = gr.Button("Forget my voice", elem_id="my-voice-forget")
    shown = gr.Markdown(status(None), elem_id="my-voice-status")

    def on_add(path, recent):
        recent = recent or serving.RecentResults()
        result = serving.analyse_upload(model, path, keep=page.clips, wait=serving.BUSY_SECONDS)
        if result.error:
            return None, status(recent) + f"\n\n⚠️ {result.error}", recent
        if result.analysis.voice_features is None:
            return (
                None,
                status(recent) + "\n\n⚠️ That was too short to learn your voice from: say a whole sentence.",
                recent,
            )
        recent.voice = (recent.voice + [result.analysis.voice_features])[-KEEP:]
        if len(recent.voice) >= ADAPT_K:
            recent.reference = model.voice.reference("voice", np.stack(recent.voice))
        return None, status(recent), recent

    def on_forget(recent):
        if recent is not None:
            recent.voice, recent.reference = [], None
        return status(recent), recent

    add.click(
        on_add, [audio, page.recent], [audio, shown, page.recent], concurrency_id="analysis", api_visibility="private"
    )
    forget.click(on_forget, [page.recent], [shown, page.recent], api_visibility="private", queue=False)
