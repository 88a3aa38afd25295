"""Corpora: one label vocabulary, and one small parser per naming convention.

Each parser maps a file path to (emotion, speaker) or None when the name does not follow the
convention or names an emotion outside the vocabulary. `scan` reports those files and skips them;
nothing is guessed.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from .audio import AUDIO_EXTENSIONS

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

# Spellings found in folder names and corpora, mapped onto the vocabulary.
ALIASES = {
    **{e: e for e in EMOTIONS},
    "neu": "neutral",
    "hap": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "ang": "angry",
    "anger": "angry",
    "fea": "fearful",
    "fear": "fearful",
    "dis": "disgust",
    "disgusted": "disgust",
    "surprise": "surprised",
    "sur": "surprised",
    "ps": "surprised",  # TESS "pleasant surprise"
}

Parsed = tuple[str, str] | None


def parse_ravdess(path: Path) -> Parsed:
    """`03-01-05-01-02-01-12.flac`: modality-channel-emotion-intensity-statement-repetition-actor."""
    m = re.fullmatch(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)", path.stem)
    if not m or m[2] != "01":  # 01 = speech; song clips are another task
        return None
    emotion = int(m[3])
    return (EMOTIONS[emotion - 1], m[7]) if 1 <= emotion <= 8 else None


def parse_emodb(path: Path) -> Parsed:
    """`03a01Wa.flac`: speaker, text code, German emotion initial, version. Boredom (L) has no label here."""
    m = re.fullmatch(r"(\d\d)([ab]\d\d)([WLEAFTN])([a-z])", path.stem)
    letters = {"W": "angry", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
    return (letters[m[3]], m[1]) if m and m[3] in letters else None


def parse_cremad(path: Path) -> Parsed:
    """`1001_DFA_ANG_XX.wav`: actor, sentence, emotion code, intensity."""
    m = re.fullmatch(r"(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_([A-Z]{2})", path.stem)
    return (ALIASES[m[3].lower()], m[1]) if m else None


def parse_tess(path: Path) -> Parsed:
    """`OAF_back_angry.wav` (speakers OAF and YAF; `ps` is pleasant surprise)."""
    m = re.fullmatch(r"([OY]AF)_[A-Za-z]+_([A-Za-z]+)", path.stem)
    return (ALIASES[m[2].lower()], m[1]) if m and m[2].lower() in ALIASES else None


def parse_savee(path: Path) -> Parsed:
    """`DC_sa01.wav` or `DC/sa01.wav`: speaker (DC, JE, JK, KL), emotion code, sentence number."""
    codes = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprised"}
    m = re.fullmatch(r"(?:(DC|JE|JK|KL)_)?(sa|su|[adfhn])(\d\d)", path.stem)
    speaker = m and (m[1] or (path.parent.name if path.parent.name in ("DC", "JE", "JK", "KL") else None))
    return (codes[m[2]], speaker) if m and speaker else None


def parse_ased(path: Path) -> Parsed:
    """`05Angry/a5-03-01-02-50.ogg`: emotion from the folder; speaker is the last field (sentence, repetition,
    gender, speaker). The gender code is not trusted for identity: a few clips carry the other one."""
    m = re.fullmatch(r"[a-zA-Z]\d-(\d\d)-(\d\d)-(\d\d)-(\d\d)", path.stem)
    folder = re.fullmatch(r"\d\d([A-Za-z]+)", path.parent.name)
    emotion = ALIASES.get(folder[1].lower()) if folder else None
    return (emotion, m[4]) if m and emotion else None


def parse_nemo(path: Path) -> Parsed:
    """`WR0_surprised_64.ogg`: speaker, emotion (anger, fear, happiness, neutral, sadness, surprised), number."""
    m = re.fullmatch(r"([A-Z]{2}\d)_([a-z]+)_(\d+)", path.stem)
    return (ALIASES[m[2]], m[1]) if m and m[2] in ALIASES else None


def parse_emospeech(path: Path) -> Parsed:
    """`bacho-safe-angry-1562996360436-<56 hex>.ogg`: keyword, environment, emotion, time (ms; `??` in six
    names), user hash (the speaker)."""
    m = re.fullmatch(r"([a-z]+)-([a-z]+)-([a-z]+)-([0-9?]+)-([0-9a-f]{56})", path.stem)
    return (ALIASES[m[3]], m[5]) if m and m[3] in ALIASES else None


def parse_folder(path: Path) -> Parsed:
    """Your own recordings: `root/<emotion>/<speaker>/<file>` or `root/<emotion>/<speaker>_<anything>.<ext>`.

    The speaker is what keeps evaluation honest: name it in a subfolder or as the file-name prefix.
    """
    parts = path.parts
    for i in (-3, -2):  # <emotion>/<speaker>/<file>, then <emotion>/<file>
        if len(parts) >= -i and parts[i].lower() in ALIASES:
            emotion = ALIASES[parts[i].lower()]
            speaker = parts[-2] if i == -3 else re.split(r"[_\-. ]", path.stem)[0]
            return (emotion, speaker) if speaker else None
    return None


PARSERS = {
    "ravdess": parse_ravdess,
    "emodb": parse_emodb,
    "cremad": parse_cremad,
    "tess": parse_tess,
    "savee": parse_savee,
    "ased": parse_ased,
    "nemo": parse_nemo,
    "emospeech": parse_emospeech,
    "folder": parse_folder,
}

# Licence and citation of each corpus, for model cards and the app (a model trained on them inherits their terms).
LICENCES = {
    "ravdess": "RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391), CC BY-NC-SA 4.0",
    "emodb": "EmoDB (Burkhardt et al. 2005, Interspeech), free for research use",
    "ased": "ASED v1 (Retta et al. 2023, ACM TALLIP), Amharic; no licence stated: research use, cite it",
    "nemo": "nEMO (Christop 2024, LREC-COLING), Polish, CC BY-NC-SA 4.0",
    "emospeech": "Indian EmoSpeech Command Dataset v1 (RakshakTeam 2019), English/Hindi, CC BY-NC-SA 4.0",
    "cremad": "CREMA-D (Cao et al. 2014), ODbL",
    "tess": "TESS (Dupuis & Pichora-Fuller 2010), CC BY-NC-ND 4.0",
    "savee": "SAVEE (Haq & Jackson 2009), free for research use",
    "folder": "your own recordings",
}


@dataclass(frozen=True)
class Item:
    path: Path
    emotion: str
    speaker: str  # prefixed with the corpus name, so speaker ids never collide across corpora
    corpus: str


def parse_data_arg(arg: str) -> tuple[str, Path]:
    """`NAME=PATH` (NAME one of PARSERS) or a bare PATH, treated as the `folder` layout."""
    name, sep, path = arg.partition("=")
    if not sep:
        name, path = "folder", arg
    if name not in PARSERS:
        raise ValueError(f"unknown corpus '{name}' in '{arg}'; use one of {', '.join(PARSERS)} as NAME=PATH")
    if not Path(path).is_dir():
        raise ValueError(f"corpus folder not found: '{path}' (from '{arg}')")
    return name, Path(path)


def scan(root: Path, corpus: str) -> tuple[list[Item], list[Path]]:
    """Every audio file under `root` parsed with the corpus's convention: (items, skipped paths)."""
    parse = PARSERS[corpus]
    items, skipped = [], []
    for path in sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        parsed = parse(path.relative_to(root)) if corpus == "folder" else parse(path)
        if parsed is None:
            skipped.append(path)
        else:
            items.append(Item(path, parsed[0], f"{corpus}:{parsed[1]}", corpus))
    return items, skipped
