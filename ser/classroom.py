"""Classroom activities as pure functions: the example clips a class may be shown, and the "Act it out" game.

Examples. A clip in `examples/` is named `<emotion>_<anything>.<ext>`, the emotion its speaker intended (one of
`ser.corpora.EMOTIONS`); `<emotion>_<corpus>-<speaker>_<male|female>.<ext>` also names the speaker (the shipped
clips: `happy_ravdess-20_female.flac`), and `<emotion>_actor<NN>_...` a RAVDESS actor. A clip whose speaker the
model was trained on would look far better than the model is on a new voice, so such clips are never offered:
the model's metrics.json lists its training speakers (`training.train_speakers`, ids as "corpus:speaker"), or else
its train_config.json names the corpora it trained on, every speaker of them (older checkpoints).

The game. The app picks an emotion and a sentence; a student says the sentence with that emotion; the model's top
emotion is a hit when it is the one asked for. The class tally maps each emotion to (tries, hits).

In plain words. How good the model is, told from its metrics.json for a 14-year-old; the technical tables stay in
`ser.card`.
"""

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .card import HUMANS_CREMAD, confident_share, corpora_of, may_say_confident
from .corpora import EMOTIONS

ACTOR = re.compile(r"_actor(\d+)(?:_(male|female))?(?:_|$)")  # a RAVDESS actor
SPEAKER = re.compile(r"_([a-z]+)-([A-Za-z0-9]+)(?:_(male|female))?(?:_|$)")  # any corpus: `_nemo-IC0_female`
# Short, everyday sentences whose words carry no emotion, so that only the voice can (RAVDESS's two statements first).
SENTENCES = (
    "Kids are talking by the door.",
    "Dogs are sitting by the door.",
    "The bus leaves at eight o'clock.",
    "I put the book on the table.",
    "We are having pasta for dinner.",
    "It is going to rain tomorrow.",
    "My phone is in my bag.",
    "The shop closes at six.",
)

Tally = dict[str, tuple[int, int]]  # emotion -> (tries, hits)
# The corpora as a student would describe them: who speaks and where they come from (the corpora's own names, such
# as RAVDESS, stay in the technical details).
CORPUS_WORDS = {
    "ravdess": ("English actors", "from Canada"),
    "emodb": ("German actors", "from Germany"),
    "ased": ("Amharic speakers", "from Ethiopia"),
    "nemo": ("Polish actors", "from Poland"),
    "emospeech": ("Indian speakers", "in English and Hindi"),
    "cremad": ("American actors", "from the USA"),
}
CORPUS_LANGUAGE = {"ravdess": "English", "emodb": "German", "ased": "Amharic", "nemo": "Polish", "cremad": "English"}
NEVER = (
    "It can only guess how a voice sounds, and it is often wrong. Never use it to decide anything about a person: "
    "not for marks, jobs, health, or whether someone is telling the truth."
)
ACTED_SPEECH = (
    "The model learned from actors who were asked to *show* an emotion, clearly and often more strongly than people "
    "do in everyday life. Real feelings are usually quieter, mixed, and hidden behind politeness, and everyday "
    "recordings have noise, other voices and phone microphones. So on a normal conversation the model is wrong "
    "more often than the numbers above say. And it can only hear how a voice *sounds*, never how someone *feels*."
)


# ----------------------------------------------------------------------------- example clips


@dataclass(frozen=True)
class Example:
    """An example clip and what its file name says about it."""

    path: Path
    emotion: str | None  # the emotion its speaker intended, when the name says
    voice: str | None = None  # "male" or "female", when the name says
    actor: str | None = None  # the speaker's id in their corpus, as in the name ("19", "IC0")
    corpus: str | None = None  # the corpus the clip comes from ("ravdess", "nemo")

    @property
    def speaker(self) -> str | None:
        """The speaker id as metrics.json writes it ("nemo:IC0"), or None when the name does not say."""
        return f"{self.corpus}:{self.actor}" if self.actor else None

    @property
    def label(self) -> str:
        """What the app's example button says, e.g. "happy — female voice, Polish"; else the file's name."""
        if not (self.emotion and self.actor):
            return self.path.stem
        language = CORPUS_LANGUAGE.get(self.corpus)
        who = f"{self.voice} voice" if self.voice else f"speaker {self.actor}"
        return f"{self.emotion} — {who}{', ' + language if language else ''}"


def parse_example(path: Path) -> Example:
    """An example from its file name: `happy_actor19_male.flac` -> (happy, male, "19"); `calm_x.wav` -> calm."""
    path = Path(path)
    emotion = path.stem.split("_")[0].lower()
    emotion = emotion if emotion in EMOTIONS else None
    if m := ACTOR.search(path.stem):
        return Example(path, emotion, m[2], m[1], "ravdess")
    if m := SPEAKER.search(path.stem):
        return Example(path, emotion, m[3], m[2], m[1])
    return Example(path, emotion)


def train_speakers(
    metrics: dict, data_args: list[str] | None = None, voice_info: dict | None = None
) -> set[str] | None:
    """The speakers a model was trained on: metrics.json's list, else every speaker ("<corpus>:*") of the corpora
    in train_config.json's `data` (`data_args`) when no speaker was held out; None when neither can tell.

    With a voice listener (`voice_info`, the rest of its voice.json), every speaker of the corpora its head trained
    on is added ("<corpus>:*"), less the speakers it kept out ("-<corpus>:<speaker>"): see `heard`."""
    training = metrics.get("training") or {}
    if training.get("train_speakers") is not None:
        cnn = set(training["train_speakers"])
    elif data_args and training.get("validation_speakers") == [] and not training.get("excluded_speakers"):
        cnn = {f"{c}:*" for c in corpora_of(data_args)}
    else:
        return None
    if not voice_info or not voice_info.get("trained_on"):
        return cnn
    kept_out = {f"-{s}" for s in voice_info.get("excluded_speakers", []) if s not in cnn}
    return cnn | {f"{c}:*" for c in voice_info["trained_on"]} | kept_out


def heard(speaker: str, corpus: str, trained_on: set[str]) -> bool:
    """Whether `train_speakers`' set says the model was trained on this speaker ("corpus:speaker")."""
    return speaker in trained_on or (f"{corpus}:*" in trained_on and f"-{speaker}" not in trained_on)


def split_examples(examples: list[Example], trained_on: set[str] | None) -> tuple[list[Example], list[Example]]:
    """(offered, withheld): withheld are the clips of a speaker the model was trained on.

    With `trained_on` unknown (None), every clip is offered; the app says that it cannot check them.
    """
    if trained_on is None:
        return list(examples), []
    was_heard = [e for e in examples if heard(e.speaker, e.corpus, trained_on)]
    return [e for e in examples if e not in was_heard], was_heard


# ----------------------------------------------------------------------------- "Act it out"


@dataclass(frozen=True)
class Round:
    """One turn of the game: say `sentence` so that it sounds `emotion`."""

    emotion: str
    sentence: str


def pick_round(labels: list[str], rng: random.Random, last: Round | None = None) -> Round:
    """A random emotion from the model's `labels` and a random sentence, never the same emotion twice running."""
    emotions = [e for e in labels if last is None or e != last.emotion] or list(labels)
    sentences = [s for s in SENTENCES if last is None or s != last.sentence]
    return Round(rng.choice(emotions), rng.choice(sentences))


def is_hit(round_: Round, probs: dict[str, float]) -> bool:
    """Did the model hear the emotion asked for, i.e. is it the most probable one?"""
    return max(probs, key=probs.get) == round_.emotion


def add_try(tally: Tally, emotion: str, hit: bool) -> Tally:
    """A new tally with one more try of `emotion` (and one more hit if `hit`); `tally` is left as it was."""
    tries, hits = tally.get(emotion, (0, 0))
    return {**tally, emotion: (tries + 1, hits + int(hit))}


@dataclass
class Game:
    """One class's game (the app keeps it in their browser session only): the round to act, the tally, the last try."""

    labels: list[str]  # the model's emotions: the ones a round may ask for
    rng: random.Random = field(default_factory=random.Random)
    round: Round | None = None
    tally: Tally = field(default_factory=dict)
    heard: dict[str, float] | None = None  # the last try's probabilities; None: no try yet, or it failed
    problem: str | None = None  # why the last try could not be analysed
    revealed: bool = True  # False in hard mode until the class has guessed what the model will say

    def next_round(self) -> "Game":
        """The next emotion and sentence to act; the tally stays."""
        self.round = pick_round(self.labels, self.rng, self.round)
        self.heard, self.problem, self.revealed = None, None, True
        return self

    def play(self, heard: dict[str, float] | None, hard: bool = False, problem: str | None = None) -> "Game":
        """Score a try of the round from the model's probabilities (None and `problem`: it could not be analysed,
        and does not count). In hard mode the try counts once it is revealed."""
        self.heard, self.problem, self.revealed = heard, problem, not hard or heard is None
        if heard is not None and self.revealed:
            self.tally = add_try(self.tally, self.round.emotion, is_hit(self.round, heard))
        return self

    def reveal(self) -> "Game":
        """Hard mode: show the try the class has been guessing about, and count it (once)."""
        if not self.revealed:
            self.revealed = True
            self.tally = add_try(self.tally, self.round.emotion, is_hit(self.round, self.heard))
        return self


def tally_rows(tally: Tally, labels: list[str]) -> list[list]:
    """Table rows [emotion, tries, hits] for the emotions tried, in the model's label order, then the total."""
    rows = [[e, *tally[e]] for e in labels if e in tally] + [[e, *t] for e, t in tally.items() if e not in labels]
    return rows + [["all", sum(r[1] for r in rows), sum(r[2] for r in rows)]] if rows else []


# ----------------------------------------------------------------------------- the model in plain words


def corpus_name(corpus: str) -> str:
    """Who speaks in a corpus, in a student's words ("ravdess" -> "English actors"), else its id."""
    return CORPUS_WORDS[corpus][0] if corpus in CORPUS_WORDS else corpus


def in_tens(rate: float) -> str:
    """0.61 -> "6 in 10"; below 1 in 10, "fewer than 1 in 10"."""
    return f"{round(10 * rate)} in 10" if rate >= 0.05 else "fewer than 1 in 10"


def mean_of(v: float | dict) -> float:
    return v["mean"] if isinstance(v, dict) else v


def how_good(metrics: dict) -> str:
    """How often the model is right on voices it has not heard, with guessing and people for scale (Markdown).

    Rates are UAR (each emotion counts the same), said as "about N in 10" for the emotion the actor meant.
    """
    cv, loco = metrics.get("cross_validation") or {}, metrics.get("leave_one_corpus_out") or {}
    unheard = metrics.get("excluded_speakers_test") or {}
    voice = metrics.get("voice") or {}
    if voice.get("fused_loco"):  # two listeners: their fused answer is what the page shows
        unheard = {c: m["fused"] for c, m in (voice.get("excluded_speakers_test") or {}).items()}
        loco = voice["fused_loco"]
    if not (cv or loco or unheard):
        return "This model has no test results, so nobody knows how often it is right: treat its answers as guesses."
    lines = []
    for corpus, m in cv.items():
        n = len(m["labels"])
        who, where = CORPUS_WORDS.get(corpus, (corpus, ""))
        lines.append(
            f"- **{who}** ({where + ', ' if where else ''}{n} emotions): about **{in_tens(mean_of(m['uar']))}** "
            f"right on actors it never trained on (guessing would get 1 in {n})."
        )
    for corpus, m in unheard.items():
        right = round(m["accuracy"] * m["n"])
        lines.append(
            f"- The **example clips'** actors ({corpus_name(corpus)}), never heard in training: {right} of {m['n']} "
            "right."
        )
    if loco:
        uars = [mean_of(m["uar"]) for m in loco.values()]
        low, high = in_tens(min(uars)), in_tens(max(uars))
        spread = f", from {low} to {high}" if low != high else ""
        lines.append(
            f"- A **whole collection it never trained on** (another language, other microphones): about "
            f"**{in_tens(sum(uars) / len(uars))}** right on average{spread}."
        )

    share = confident_share(metrics)
    if share is not None:
        word = (
            "so the page calls such answers **confident**"
            if may_say_confident(metrics)
            else ("so the page never calls an answer **confident**")
        )
        lines.append(
            f"- When it sounded sure (70 % or more), it was right **{in_tens(share[0])}** on those collections "
            f"({share[1]} such answers), {word}."
        )
    people = (
        "People find this hard too: when crowds listened to other actors without seeing them, they named the emotion "
        f"the actor meant only **{round(100 * HUMANS_CREMAD)} times in 100** (the study is in the technical details)."
    )
    return "\n".join(["Right answers on voices it has not heard:", *lines]) + "\n\n" + people


def best_tested(metrics: dict) -> tuple[str, dict[str, float]] | None:
    """The cross-validated corpus with the most emotions, and its per-emotion recall (the About tab's picture)."""
    cv = {c: m for c, m in (metrics.get("cross_validation") or {}).items() if "pooled_per_class_recall" in m}
    unheard = (metrics.get("voice") or {}).get("excluded_speakers_test") or {}
    if not cv and unheard:  # two listeners, no cross-validation: the example actors, whom neither listener heard
        corpus = max(unheard, key=lambda c: len(unheard[c]["fused"]["labels"]))
        return corpus, {k: v["recall"] for k, v in unheard[corpus]["fused"]["per_class"].items()}
    if not cv:
        return None
    corpus = max(cv, key=lambda c: len(cv[c]["labels"]))
    return corpus, cv[corpus]["pooled_per_class_recall"]
