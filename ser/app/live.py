"""The "Live" tab: a streaming microphone, judged about twice a second (`ser.live`): the bars of the last few
seconds, a rolling spectrogram, and how far behind real time the answer is. Its own input and its own slots, apart
from the analyses': one per visitor, held while the stream sends sound (`serving.StreamSlots`)."""

import gradio as gr

from ser import plots
from ser.audio import AudioError
from ser.live import SHOW_SECONDS, LiveFrame, LiveSession

from .serving import StreamSlots, discard_upload
from .views import Page

TITLE = "Live"
LIVE_EVERY = 0.5  # seconds of microphone sound per live update: "about twice a second"
LIVE_STREAMS = 8  # live microphones at once, one per visitor: each holds its slot while it streams (~20 ms a chunk)
LIVE_LIMIT = 300  # seconds a live stream may run before it stops, so that no visitor keeps a slot for good
LIVE_IDLE = 5.0  # seconds without a chunk after which a stream loses its slot and is closed (it sends 2 a second)
# Gradio runs this many streams at once: the slots, and a few more that are only told that every slot is taken.
LIVE_EVENTS = LIVE_STREAMS + 4
SLOTS = StreamSlots(LIVE_STREAMS, LIVE_IDLE, LIVE_LIMIT)


def live_delay(frame: LiveFrame) -> str:
    words = f"{frame.behind:.1f} s behind real time"
    return words if frame.probs else f"{words} · no speech in the last {frame.listened:.0f} s"


def build(page: Page) -> None:
    """The tab's components; each chunk of the stream updates the bars, the spectrogram and the delay, and a new
    recording starts afresh."""
    state = gr.State(None)  # this visitor's ser.live.LiveSession, for one stream
    gr.Markdown(
        f"Press **Record** and talk: every {LIVE_EVERY:g} s the model judges the last few seconds, and the "
        "spectrogram rolls along. Nothing is kept: each piece of sound is deleted once heard.",
        elem_classes="step",
    )
    audio = gr.Audio(sources=["microphone"], streaming=True, type="filepath", label="Live microphone",
                     elem_id="live-audio")  # fmt: skip
    delay = gr.Markdown("", elem_id="live-delay")
    bars = gr.Label(label="Emotion in the last few seconds", elem_id="live-bars")
    spectrogram = gr.Image(label=f"The last {SHOW_SECONDS:g} s, as the model reads it (low pitch at the bottom)",
                           interactive=False, elem_id="live-spectrogram")  # fmt: skip
    model = page.model

    def on_chunk(path, session, request: gr.Request):
        if not path:
            return session, gr.skip(), gr.skip(), gr.skip()
        if (refused := SLOTS.enter(request.session_hash)) is not None:
            discard_upload(path)
            return session, None, None, f"⚠️ {refused}"
        session = session or LiveSession(model)
        try:
            frame = session.feed_file(path)
        except AudioError as e:
            return session, None, None, f"⚠️ {e.plain}"
        finally:
            discard_upload(path)
        return session, frame.probs, plots.mel_image(frame.mel, model.feature_config), live_delay(frame)

    audio.start_recording(lambda: None, outputs=[state], api_visibility="private", queue=False)
    audio.stream(on_chunk, inputs=[audio, state], outputs=[state, bars, spectrogram, delay], stream_every=LIVE_EVERY,
                 time_limit=LIVE_LIMIT, concurrency_id="live", concurrency_limit=LIVE_EVENTS, show_progress="hidden",
                 api_visibility="private")  # fmt: skip
