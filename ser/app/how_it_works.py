"""The "How it works" tab: the steps from sound to answer on the visitor's own recording, each one picture drawn from
what the model's own functions computed (`ser.walkthrough`), in words a 14-year-old can follow."""

import gradio as gr
import matplotlib.pyplot as plt

from ser import plots, walkthrough
from ser.inference import Analysis

from .serving import Result
from .views import VIEWS, Page, View, captioned, drawn, figure_view, place, probability_values

TITLE = "How it works"


@figure_view
def waveform_chart(a: Analysis) -> plt.Figure:
    cut = f" (its first {a.features.max_seconds:g} s)" if a.truncated else ""
    return plots.waveform(a.audio, a.features.sample_rate, title=f"The sound wave{cut}")


@figure_view
def stft_chart(a: Analysis) -> plt.Figure:
    slices = f"{a.features.frames_per_second:g} slices a second"
    return plots.spectrogram(walkthrough.power_spectrogram(a), a.features, title=f"Pitches over time ({slices})")


@figure_view
def mel_scale_chart(a: Analysis) -> plt.Figure:
    return plots.mel_power(walkthrough.mel_power(a), a.features, title=f"{a.features.n_mels} pitch bands")


@figure_view
def decibel_chart(a: Analysis) -> plt.Figure:
    return plots.log_mel(a.mel, a.features, title="In decibels: what the model reads")


def layers_chart(result: Result) -> plt.Figure | None:
    """The most active feature maps of the first and last conv block of the model that made the analysis."""
    if result.analysis is None or result.model is None:
        return None
    maps = walkthrough.layer_maps(result.model, result.analysis)
    return figure_view(lambda a: plots.feature_maps(maps, title="Where filters light up"))(result)


STEP_TEXT = {
    "waveform": (
        "1. What the microphone measures",
        "A microphone measures how the air pressure wobbles, thousands of times a second. Loud sounds make big "
        "wobbles; silence is a flat line. The silence at the start and end is cut off first.",
    ),
    "stft": (
        "2. Pitches over time",
        "The sound is cut into short slices, and for each slice the computer measures how much of every pitch, from "
        "low to high, it holds. Pitch is counted in hertz (Hz): how many times a second the air wobbles. A voice "
        "makes stripes: the lowest is the pitch you speak at, the ones above are its overtones. Most of the picture "
        "looks dark, because a few loud "
        "moments outshine everything else.",
    ),
    "mel_scale": (
        "3. Pitch as we hear it",
        "We hear the step from 100 to 200 Hz as big as the step from 1,000 to 2,000 Hz. So the pitches are "
        "grouped into bands that are narrow for low pitches and wide for high ones (scientists call this the *mel "
        "scale*). The low part, where voices carry most, now gets more room.",
    ),
    "decibels": (
        "4. Loudness as we hear it: decibels",
        "A sound ten times as strong only sounds a bit louder to us. Measuring loudness in *decibels* (dB) "
        "counts each tenfold step in strength as the same step up, as our ears do, so quiet details show next to "
        "loud ones. This picture is exactly what the model reads.",
    ),
    "layers": (
        "5. What the network's layers respond to",
        "The network slides small filters over the picture, layer after layer. Each filter lights up (yellow) "
        "where it finds its pattern. The first layer's filters react to small details; each layer halves the "
        "picture, so the last layer's filters react to bigger patterns, like a rising pitch or a loud burst. "
        "Shown: the four filters of the first and of the last layer that lit up most for this voice.",
    ),
    "answer": (
        "6. The answer",
        "The last layer's responses are averaged over time and turned into one score per emotion, scaled so that "
        "they add up to 100 %. The highest score is the model's answer; when no score stands out, it is a guess.",
    ),
    "second_listener": (
        "7. A second listener votes",
        "Steps 1 to 6 are one listener. A second one hears the same voice another way: a network that first learnt "
        "to tell thousands of people apart by their voices, then learnt emotions from speakers of five languages. "
        "The answer in step 6 weighs both listeners' scores. Where their bars differ, they disagree.",
    ),
}


def listeners_chart(result: Result) -> plt.Figure | None:
    """Each listener's probabilities side by side (None for a one-listener model or a clip too short for two)."""
    a = result.analysis
    if a is None or len(a.listeners) < 2:
        return None
    names = {"cnn": "picture listener", "voice": "voice listener"}
    shown = [(names.get(k, k), p) for k, p in a.listeners.items()]
    return drawn(plots.compare_probabilities, shown, title="What each listener heard")


STEP_VIEWS = {"waveform": waveform_chart, "stft": stft_chart, "mel_scale": mel_scale_chart,
              "decibels": decibel_chart, "layers": layers_chart, "answer": probability_values,
              "second_listener": listeners_chart}  # fmt: skip
VIEWS.update({
    name: View(draw, captioned(*STEP_TEXT[name], "waveform" if name == "waveform" else f"step-{name}",
                               make=gr.Label if name == "answer" else gr.Plot), tab=TITLE, picture=name != "answer")
    for name, draw in STEP_VIEWS.items()
})  # fmt: skip


def build(page: Page) -> None:
    place(page, TITLE)
