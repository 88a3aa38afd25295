"""The "Live" tab: a streaming microphone, judged about twice a second (`ser.live`): the bars, averaged over the
last few seconds (`ser.live.RecentAverage`), a rolling spectrogram, and how far behind real time the answer is. Its
own input and its own slots, apart from the analyses': one per visitor, held while the stream sends sound
(`streams.StreamSlots`)."""

import gradio as gr

from ser import plots
from ser.audio import AudioError
from ser.live import SHOW_SECONDS, SMOOTH_SECONDS, LiveFrame, LiveSession, RecentAverage

from .serving import discard_upload
from .streams import StreamSlots
from .views import Page

TITLE = "Live"
LIVE_EVERY = 0.5  # seconds of microphone sound per live update: "about twice a second"
LIVE_STREAMS = 8  # live microphones at once, one per visitor: each holds its slot while it streams (~20 ms a chunk)
LIVE_LIMIT = 300  # seconds a live stream may run before it stops, so that no visitor keeps a slot for good
LIVE_IDLE = 5.0  # seconds without a chunk after which a stream loses its slot and is closed (it sends 2 a second)
# Gradio runs this many streams at once: the slots, and a few more that are only told that every slot is taken.
LIVE_EVENTS = LIVE_STREAMS + 4
SLOTS = StreamSlots(LIVE_STREAMS, LIVE_IDLE, LIVE_LIMIT)


def live_delay(frame: LiveFrame, average: RecentAverage, shown: dict | None) -> str:
    """How far behind real time the answer is, and why there are no bars when there are none."""
    words = f"{frame.behind:.1f} s behind real time"
    if shown is not None:
        return words
    if not average.heard_speech:
        return f"{words} · listening for a voice"
    return f"{words} · no speech in the last {average.seconds:g} s"


def build(page: Page) -> None:
    """The tab's components; each chunk of the stream updates the bars, the spectrogram and the delay, and a new
    recording starts afresh."""
    state = gr.State(None)  # this visitor's (ser.live.LiveSession, RecentAverage), for one stream
    model = page.model
    gr.Markdown(
        f"Press **Record** and talk: every {LIVE_EVERY:g} s the model judges the last "
        f"{model.feature_config.clip_seconds:g} s, and the bars show the average of its answers over the last "
        f"{SMOOTH_SECONDS:g} s, so they follow the voice rather than every syllable. The picture of the sound rolls along. "
        "Nothing is kept: each piece of sound is deleted once heard.",
        elem_classes="step",
    )
    audio = gr.Audio(sources=["microphone"], streaming=True, type="filepath", label="Live microphone",
                     elem_id="live-audio")  # fmt: skip
    delay = gr.Markdown("", elem_id="live-delay")
    bars = gr.Label(label=f"Emotion over the last {SMOOTH_SECONDS:g} s (average)", elem_id="live-bars")
    spectrogram = gr.Image(label=f"The last {SHOW_SECONDS:g} s, as the model reads it (low pitch at the bottom)",
                           interactive=False, elem_id="live-spectrogram")  # fmt: skip

    def on_chunk(path, stream, request: gr.Request):
        if not path:
            return stream, gr.skip(), gr.skip(), gr.skip()
        if (refused := SLOTS.enter(request.session_hash)) is not None:
            discard_upload(path)
            return stream, None, None, f"⚠️ {refused}"
        session, average = stream or (LiveSession(model), RecentAverage())
        try:
            frame = session.feed_file(path)
        except AudioError as e:
            return (session, average), None, None, f"⚠️ {e.plain}"
        finally:
            discard_upload(path)
        shown = average.add(frame.probs, session.received)
        mel = plots.mel_image(frame.mel, model.feature_config)
        return (session, average), shown, mel, live_delay(frame, average, shown)

    audio.start_recording(lambda: None, outputs=[state], api_visibility="private", queue=False)
    audio.stream(on_chunk, inputs=[audio, state], outputs=[state, bars, spectrogram, delay], stream_every=LIVE_EVERY,
                 time_limit=LIVE_LIMIT, concurrency_id="live", concurrency_limit=LIVE_EVENTS, show_progress="hidden",
                 api_visibility="private")  # fmt: skip
