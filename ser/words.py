"""The answer in plain words: the sentences the app (`ser/app/analyse.py`, the microphone help in
`ser/app/browser.py`) and the offline page (`ser/offline.py` writes them into it) both say, kept here once.

Each is a template with {named} blanks that are filled with numbers already formatted (`percent`), so the page's
script fills them exactly as Python does. The messages about unusable audio and the notes on its quality are
templates of the same kind in their own modules (`audio`, `quality`, `inference`); `templates` gathers them all.
"""

from string import Formatter

INTRO = (
    "How does a voice sound: happy, sad, angry...? Speak or upload a clip and see the sound the way the model sees "
    "it. A teaching demo trained on actors: it guesses how a voice *sounds*, not how someone feels."
)
CANNOT = "Cannot analyse this"  # the heading above any reason an input cannot be analysed

# The verdict (ser/app/analyse.py `verdict`): which of the confidence words of ser.card applies decides the sentence.
HEADING = "{top}: {p1}"
UNSURE_CLOSE = "**{top}** ({p1}) and **{second}** ({p2}) are close"
UNSURE_FLAT = "no emotion stands out (the highest is {p1})"
UNSURE = "**The model is unsure**: {why}. Treat this as a guess."
LEANING = (
    "The model leans towards **{top}** ({p1}; next: {second}, {p2}). It sounds sure, but on voices and languages "
    "it never heard, answers this sure were right only {tenths} times in 10."
)
SURE = "The model is **{sure}** this voice sounds **{top}** ({p1}; next: {second}, {p2})."

# What each listener heard (ser/app/analyse.py `listeners`).
LISTENER_NAMES = {"cnn": "the picture listener", "voice": "the voice listener"}
HEARD = "{listener} heard **{label}** ({p})"
AGREE = "Two listeners voted and agree: {heard}."
DISAGREE = (
    "Two listeners voted and **disagree**: {heard}. The answer above weighs both. The picture listener (it reads "
    "the picture of the sound) learnt from English and German actors; the voice listener from many voices in five "
    "languages."
)

BARS_TITLE = "How likely each emotion is"
# The picture beside the answer, under its title.
PICTURE_TITLE = "The sound as the model sees it"
PICTURE_CAPTION = (
    "What the model reads: time runs left to right, low to high pitch goes bottom to top, and brighter means louder."
)

# When the microphone cannot start, by the browser's name for what went wrong (ser/app/browser.py `MIC_HELP`).
MIC = {
    "insecure": "The microphone only works when the page address starts with https:// (or http://localhost on "
    "the computer running the app). Ask whoever set up the app to serve it over https.",
    "NotAllowedError": "The microphone is blocked. Click the lock or microphone icon next to the page address, "
    "allow the microphone, then press Record again.",
    "SecurityError": "The microphone is blocked for this page. Allow it in the browser's site settings, "
    "then press Record again.",
    "NotFoundError": "No microphone was found. Plug one in or switch it on, then press Record again.",
    "NotReadableError": "The microphone is busy or not working. Close other apps that use it (such as video "
    "calls), then press Record again.",
}
MIC_OTHER = "The microphone could not start ({name}). Check that it is plugged in and allowed, then press Record again."


class _Blanks(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, **values) -> str:
    """`template` with the blanks named in `values` filled and the others left as they are, for the page to fill."""
    return Formatter().vformat(template, (), _Blanks(values))


def templates() -> dict:
    """Every template the offline page needs, by name: these and the messages and notes of `audio`, `quality` and
    `inference`."""
    from . import audio, inference, quality

    own = dict(intro=INTRO, cannot=CANNOT, bars_title=BARS_TITLE, heading=HEADING, unsure_close=UNSURE_CLOSE, unsure_flat=UNSURE_FLAT, unsure=UNSURE,
               leaning=LEANING, sure=SURE, listener_names=LISTENER_NAMES, heard=HEARD, agree=AGREE, disagree=DISAGREE,
               picture_title=PICTURE_TITLE, picture_caption=PICTURE_CAPTION, mic=MIC, mic_other=MIC_OTHER)  # fmt: skip
    return own | {
        "silent": audio.SILENT,
        "too_short": audio.TOO_SHORT,
        "unreadable": audio.UNREADABLE,
        "empty": audio.EMPTY,
        "no_sound": audio.NO_SOUND,
        "too_big": audio.TOO_BIG,
        "too_loud": quality.TOO_LOUD,
        "very_quiet": quality.VERY_QUIET,
        "not_speech": quality.NOT_SPEECH,
        "only_first": inference.ONLY_FIRST,
        "only_picture": inference.ONLY_PICTURE,
    }
