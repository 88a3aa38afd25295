"""The "Act it out" tab: a game for a class (`ser.classroom.Game`). The app picks an emotion and a sentence, a
student says it that way, the model says what it heard; the class tally counts the tries. In hard mode the class
guesses the model's answer before it is shown. Each recording takes the one analysis path
(`serving.analyse_upload`) and is deleted once heard; the game lives in the browser session only."""

from typing import Any

import gradio as gr

from ser import classroom

from . import serving
from .views import RIGHT, WRONG, Page, icon

TITLE = "Act it out"


def emotion_words(emotion: str) -> str:
    return f"{icon(emotion)}{emotion}"


def task_markdown(game: classroom.Game) -> str:
    r = game.round
    return f"## Say “{r.sentence}”\n## so that it sounds **{emotion_words(r.emotion)}**" if r else ""


def outcome_markdown(game: classroom.Game, guess: str | None = None) -> str:
    """What the model heard, and whether it is the emotion asked for (or, in hard mode, a call to guess first)."""
    if game.problem:
        return f"⚠️ {game.problem}"
    if game.heard is None:
        return "Record the sentence (press the microphone button, then Record), and the model will say what it heard."
    if not game.revealed:
        return (
            "## Recorded!\nClass: what will the model say? Choose your guess below, then press **Show what the "
            "model heard**."
        )
    probs, asked = game.heard, game.round.emotion
    top = max(probs, key=probs.get)
    head = f"## {RIGHT if top == asked else WRONG} The model heard **{emotion_words(top)}** ({probs[top]:.0%})"
    if top == asked:
        words = f"You acted **{asked}**, and the model heard it."
    else:
        words = f"You acted **{asked}**; the model gave it {probs.get(asked, 0):.0%}. Try again, a bit stronger?"
    if guess:
        words += f" The class guessed **{guess}**: {'right!' if guess == top else 'not this time.'}"
    return f"{head}\n{words}"


def tally_markdown(game: classroom.Game) -> str:
    """The class tally as a table: per emotion asked, the tries and how many the model heard right."""
    rows = classroom.tally_rows(game.tally, game.labels)
    if not rows:
        return "**Class tally**: no tries yet."
    lines = [f"| {emotion_words(e) if e != 'all' else '**all**'} | {tries} | {hits} |" for e, tries, hits in rows]
    return "**Class tally**\n\n| emotion asked | tries | heard right |\n|---|---|---|\n" + "\n".join(lines)


def game_chart(game: classroom.Game) -> dict[str, float] | None:
    """The last try's probabilities as bars (a `gr.Label`), once revealed."""
    if game.heard is None or not game.revealed:
        return None
    return dict(game.heard)


def components(labels: list[str]) -> dict[str, Any]:
    """The tab's components, by name."""
    g: dict[str, Any] = {"state": gr.State(None)}  # this class's classroom.Game: in their browser session only
    gr.Markdown(
        "One student acts, the class watches. The app picks an emotion and a sentence: say the sentence so that it "
        "sounds that way, and see if the model hears it. The tally counts the class's tries (it is kept only in "
        "this browser tab and is gone when you close it).",
        elem_classes="step",
    )
    g["task"] = gr.Markdown("", elem_id="game-task")
    with gr.Row():
        g["next"] = gr.Button("New emotion and sentence", elem_id="game-next", min_width=200)
        g["hard"] = gr.Checkbox(
            label="Hard mode: the class guesses before seeing the answer", elem_id="game-hard", min_width=200
        )
    g["audio"] = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Act it out", elem_id="game-audio")
    g["outcome"] = gr.Markdown("", elem_id="game-outcome")
    g["guess"] = gr.Radio(labels, label="The class guesses the model will say:", visible=False, elem_id="game-guess")
    g["reveal"] = gr.Button("Show what the model heard", variant="primary", visible=False, elem_id="game-reveal")
    with gr.Row(equal_height=False):  # the answer beside the tally on a projector, above it on a phone
        with gr.Column(scale=3, min_width=320):
            g["chart"] = gr.Label(label="What the model heard", show_heading=False, elem_id="game-chart")
        with gr.Column(scale=2, min_width=280):
            g["tally"] = gr.Markdown("", elem_id="game-tally")
            g["reset"] = gr.Button("Start a new class tally", size="sm", elem_id="game-reset")
    return g


def build(page: Page) -> None:
    """The tab; a round on page load and on request, each recording analysed and scored."""
    model, g = page.model, components(list(page.model.labels))

    def shown(game: classroom.Game, guess: str | None = None) -> tuple:
        hidden = not game.revealed
        return (game, task_markdown(game), outcome_markdown(game, guess), tally_markdown(game),
                gr.update(visible=hidden, value=None) if hidden else gr.update(visible=False),
                gr.update(visible=hidden), game_chart(game))  # fmt: skip

    def started(game: classroom.Game | None) -> classroom.Game:
        return game or classroom.Game(list(model.labels)).next_round()

    def on_next(game):
        return shown(started(game).next_round())

    def on_try(path, game, hard):
        result = serving.analyse_upload(model, path, keep=page.clips)
        heard = dict(result.analysis.probs) if result.analysis else None
        return shown(started(game).play(heard, hard, result.error))

    def on_reveal(game, guess):
        return shown(started(game).reveal(), guess)

    def on_reset(game):
        game = started(game)
        game.tally = {}
        return shown(game)

    outputs = [g[n] for n in ("state", "task", "outcome", "tally", "guess", "reveal", "chart")]
    private = dict(api_visibility="private", outputs=outputs)
    page.demo.load(on_next, inputs=[g["state"]], queue=False, **private)
    g["next"].click(on_next, inputs=[g["state"]], **private).then(
        lambda: None, outputs=[g["audio"]], api_visibility="private"
    )
    for event in (g["audio"].stop_recording, g["audio"].upload):
        event(on_try, inputs=[g["audio"], g["state"], g["hard"]], concurrency_id="analysis", **private)
    g["reveal"].click(on_reveal, inputs=[g["state"], g["guess"]], **private)
    g["reset"].click(on_reset, inputs=[g["state"]], **private)
