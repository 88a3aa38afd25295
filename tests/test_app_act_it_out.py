"""The "Act it out" tab (`ser.app.act_it_out`): a round, hard mode, and the class tally kept in the session. The game's
rules are `ser.classroom`'s (tests/test_classroom.py); a whole lesson in Chromium is tests/test_classroom_browser.py."""

import random

from conftest import LABELS, speech_like, write

from ser import classroom
from ser.app.act_it_out import emotion_words, game_chart, outcome_markdown, tally_markdown, task_markdown
from ser.app.views import RIGHT, WRONG


def probs_for(top: str) -> dict[str, float]:
    return {e: 0.7 if e == top else 0.1 for e in LABELS}


def test_a_round_of_act_it_out():
    game = classroom.Game(LABELS, random.Random(1)).next_round()
    asked = game.round.emotion
    task = task_markdown(game)
    assert f"sounds **{emotion_words(asked)}**" in task and game.round.sentence in task
    other = next(e for e in LABELS if e != asked)

    game.play(probs_for(asked))
    assert game.tally == {asked: (1, 1)} and RIGHT in outcome_markdown(game)
    assert game_chart(game) == probs_for(asked)  # the bars of the try
    game.play(probs_for(other))
    assert game.tally == {asked: (2, 1)}
    text = outcome_markdown(game)
    assert WRONG in text and f"heard **{emotion_words(other)}**" in text and f"acted **{asked}**" in text
    game.play(None, problem="The recording is silent.")
    assert game.tally == {asked: (2, 1)} and "silent" in outcome_markdown(game)  # not a try
    assert game_chart(game) is None

    tally = tally_markdown(game)
    assert f"| {emotion_words(asked)} | 2 | 1 |" in tally and "| **all** | 2 | 1 |" in tally
    first = game.round
    game.next_round()
    assert game.round.emotion != first.emotion and game.tally == {asked: (2, 1)}  # the tally stays
    assert game.heard is None and "Record the sentence" in outcome_markdown(game)


def test_hard_mode_hides_the_answer_until_the_class_has_guessed():
    game = classroom.Game(LABELS, random.Random(2)).next_round()
    asked = game.round.emotion
    heard = next(e for e in LABELS if e != asked)
    game.play(probs_for(heard), hard=True)
    text = outcome_markdown(game)
    assert "Recorded" in text and heard not in text and "%" not in text
    assert game_chart(game) is None and game.tally == {}  # nothing shown or counted yet
    game.reveal()
    assert game.tally == {asked: (1, 0)} and game_chart(game) == probs_for(heard)
    assert f"The class guessed **{heard}**: right!" in outcome_markdown(game, guess=heard)
    assert "not this time" in outcome_markdown(game, guess=asked)
    game.reveal()  # pressed twice: counted once
    assert game.tally == {asked: (1, 0)}
    game.play(None, hard=True, problem="too short")  # a failed try needs no guessing
    assert game.revealed and game.tally == {asked: (1, 0)}


def test_the_games_handlers_keep_the_tally_in_the_session(handlers, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    fns = handlers
    game, task, *_ = fns["on_next"](None)
    assert "so that it sounds" in task
    out = fns["on_try"](str(write(tmp_path / "gradio" / "1" / "a.wav", speech_like())), game, False)
    game, _, outcome, tally, guess, reveal, chart = out
    assert "The model heard" in outcome and sum(t for t, _ in game.tally.values()) == 1
    assert "| **all** | 1 |" in tally and not guess["visible"] and not reveal["visible"] and chart == game.heard
    assert not (tmp_path / "gradio" / "1" / "a.wav").exists(), "a game recording is deleted once analysed"
    game, _, outcome, _, guess, reveal, chart = fns["on_try"](
        str(write(tmp_path / "gradio" / "2" / "b.wav", speech_like(f0=220))), game, True
    )
    assert "Recorded" in outcome and guess["visible"] and reveal["visible"] and chart is None  # hidden until guessed
    game, _, outcome, tally, guess, _, chart = fns["on_reveal"](game, "sad")
    assert "The class guessed **sad**" in outcome and "| **all** | 2 |" in tally and not guess["visible"]
    assert chart == game.heard and max(chart, key=chart.get) in outcome
    game, *_, tally, _, _, _ = fns["on_reset"](game)
    assert game.tally == {} and "no tries yet" in tally
