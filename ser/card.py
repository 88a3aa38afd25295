"""The model card (README.md of a checkpoint folder), written from the run's own metrics.

Each fact is written here once: the app's About tab shows the same summary, results tables, training data and
limitations by calling these functions on the checkpoint's metrics.json and train_config.json.
"""

from .corpora import LICENCES
from .model import SERModel

HUMANS_CREMAD = 0.409  # crowd raters naming the emotion a CREMA-D actor intended, voice only (Cao et al. 2014)

PROTOCOL = (
    "Speaker-independent only: no speaker is ever in both the training and the test data. Random clip-level "
    "splits leak the speaker and inflate accuracy by 5-20 points, which is why popular SER demos quoting 70-90 % "
    "do not survive a new voice. UAR is the unweighted average recall (mean of per-class recalls; chance = 1 / "
    "number of classes)."
)
INTENDED_USE = (
    "Demonstrations and teaching: showing what a spectrogram is and how a CNN reads emotion cues from a voice."
)
LIMITATIONS = [
    "Acted speech: actors portraying emotions, mostly exaggerated; real, spontaneous emotion is subtler.",
    "Few voices, sentences and languages: those of the training corpora above. Other languages, accents, ages and "
    "ways of speaking are untested.",
    "Recorded in studios: laptop microphones, rooms, and the noise suppression of phones, calls and conferencing "
    "apps shift the input, and accuracy on them is lower than any figure here.",
    "It judges how a voice sounds, not how a person feels. Never use it to decide about people: not for hiring, "
    "policing, health, education assessment or any other decision about a person.",
]


def corpora_of(data_args: list[str]) -> list[str]:
    """Corpus names of train.py's --data arguments (`NAME=PATH`, or a bare PATH for your own `folder`)."""
    return sorted({a.partition("=")[0] if "=" in a else "folder" for a in data_args})


def training_data(data_args: list[str]) -> str:
    """The training corpora with their licence and citation, one Markdown bullet each."""
    return "\n".join(f"- {LICENCES.get(c, c)}" for c in corpora_of(data_args))


def data_markdown(metrics: dict) -> str:
    """Clips and speakers of each training corpus, and what was left out, from metrics.json ('' if unrecorded)."""
    data = metrics.get("data") or {}
    rows = [[c, str(d["used"]), str(d["speakers"]), str(d["unusable_audio"]), str(d["unlabelled_or_other_emotion"])]
            for c, d in data.items()]  # fmt: skip
    header = [
        "corpus",
        "clips used",
        "speakers",
        "left out: too little sound, or unreadable",
        "left out: other emotion",
    ]
    return table(header, rows) if rows else ""


def limitations() -> str:
    return "\n".join(f"- {item}" for item in LIMITATIONS)


def summary(model: SERModel) -> str:
    """What the model predicts and what it reads, in two sentences."""
    fc = model.feature_config
    n_params = sum(p.numel() for p in model.parameters())
    return (
        f"Predicts one of **{', '.join(model.labels)}** from the sound of one voice (not the words). It reads a "
        f"{fc.n_mels}-band log-mel spectrogram of {fc.sample_rate / 1000:g} kHz audio "
        f"({1000 * fc.n_fft / fc.sample_rate:g} ms windows every {1000 * fc.hop_length / fc.sample_rate:g} ms), "
        f"{fc.min_seconds:g} to {fc.max_seconds:g} s of sound (longer input is cut), with a VGG-style CNN of "
        f"{n_params / 1e6:.2f} M parameters."
    )


VOICE_SOURCE = (
    "Resemblyzer 0.1.4's pretrained GE2E speaker encoder (Resemble.AI, Apache-2.0; "
    "https://github.com/resemble-ai/Resemblyzer), converted to float16 safetensors (`encoder.safetensors`) and "
    "re-implemented in `ser/encoder.py`; see NOTICE"
)


# The confidence words (the app's verdict, the offline page): below UNSURE_TOP, or within UNSURE_MARGIN of the
# runner-up, "unsure"; from CONFIDENT_TOP on, "confident" (where `may_say_confident`); between, "fairly sure".
UNSURE_TOP, UNSURE_MARGIN = 0.40, 0.15
CONFIDENT_TOP = 0.70  # the top probability from which the app may call an answer "confident"
# Confidence bins of the reliability table (`voice_training.reliability`), each with the word the app's verdict puts
# on its top probability (the app also says unsure when the runner-up is within UNSURE_MARGIN). The table shows
# whether "confident" is right at least 7 times in 10 on corpora never heard.
BINS = [(0.0, UNSURE_TOP, "unsure"), (UNSURE_TOP, 0.55, "fairly sure"), (0.55, CONFIDENT_TOP, "fairly sure"),
        (CONFIDENT_TOP, 1.01, "confident")]  # fmt: skip


def confident_share(metrics: dict) -> tuple[float, int] | None:
    """(share right, clips) of the answers at least CONFIDENT_TOP sure on corpora the model never heard, from the
    reliability table (None when it was not measured or no answer was that sure)."""
    rows = [r for r in (metrics.get("voice") or {}).get("reliability", []) if r["from"] >= CONFIDENT_TOP and r["n"]]
    if not rows:
        return None
    n = sum(r["n"] for r in rows)
    return sum(r["share_right"] * r["n"] for r in rows) / n, n


def may_say_confident(metrics: dict) -> bool:
    """Whether "confident" keeps its promise: answers that sure were right at least CONFIDENT_TOP of the time on
    corpora never heard (at least 30 of them). Unmeasured models keep the word, as before."""
    share = confident_share(metrics)
    return share is None or (share[0] >= CONFIDENT_TOP and share[1] >= 30)


def calibration_shown(metrics: dict) -> str:
    """Where the card shows what calibration does: the cross-validation's ECE column, the reliability table, or
    nowhere (then it says so)."""
    if (metrics.get("voice") or {}).get("reliability"):
        return "the reliability table below shows how often the answer, both listeners fused, was right at each level of confidence"
    if any("ece" in m for m in (metrics.get("cross_validation") or {}).values()):
        return "the ECE figures below show what that does for speakers it has not heard"
    return "how well that holds was not measured"


def cnn_corpora(metrics: dict) -> str:
    """' on RAVDESS and EmoDB'-style words for the CNN's training corpora when the voice head used more ('' if not)."""
    speakers = metrics.get("training", {}).get("train_speakers") or []
    names = sorted({s.split(":")[0] for s in speakers})
    everything = metrics.get("voice", {}).get("head_loco", {})
    return f" on {' and '.join(names)} only" if names and metrics.get("voice") and set(names) != set(everything) else ""


def voice_summary(model: SERModel) -> str:
    """The second listener in two sentences ('' for a CNN-only model)."""
    v = model.voice
    if v is None:
        return ""
    info = v.info
    speeds = info.get("speeds") or []
    copies = f", each also played at {', '.join(f'{f:g}' for f in speeds)} times its speed" if speeds else ""
    return (
        f"A second listener votes too: {VOICE_SOURCE}, frozen; its layers' mean and spread over the clip "
        f"({v.encoder.cfg.dim} numbers) feed a logistic-regression head trained on "
        f"{', '.join(info.get('trained_on', []))} ({info.get('train_clips', '?')} clips{copies}). The answer is the weighted "
        f"geometric mean of the two listeners' probabilities (head weight {v.fusion_weight:g}), calibrated "
        f"(T = {v.temperature:.2f}) on {', '.join(info.get('temperature_fitted_on', [])) or 'held-out corpora'}, "
        "corpora neither listener trained on."
    )


def voice_markdown(metrics: dict, level: int = 3) -> str:
    """The two listeners' speaker-independent figures and the reliability table, from metrics.json's `voice`."""
    v = metrics.get("voice")
    if not v:
        return ""
    h, out = "#" * level, []
    rows = []
    for c in v.get("unseen_corpora", []):
        cnn, head, fused = v["cnn_loco"][c], v["head_loco"][c], v["fused_loco"][c]
        rows.append([c, str(len(fused["labels"])), pct(cnn["uar"]), pct(head["uar"]), f"**{pct(fused['uar'])}**",
                     pct_or_na(sad_recall(fused))])  # fmt: skip
    for c, m in (v.get("excluded_speakers_test") or {}).items():
        rows.append([f"{c} speakers {', '.join(s.split(':')[1] for s in m['speakers'])}", str(len(m["fused"]["labels"])),
                     pct(m["cnn"]["uar"]), pct(m["voice"]["uar"]), f"**{pct(m['fused']['uar'])}**",
                     pct_or_na(sad_recall(m["fused"]))])  # fmt: skip
    if rows:
        uars = [v["fused_loco"][c]["uar"] for c in v.get("unseen_corpora", [])]
        mean_text = (
            f" Mean fused UAR over the corpora neither listener heard: **{pct(sum(uars) / len(uars))}**."
            if uars
            else ""
        )
        out += [
            f"{h} Two listeners on voices they never heard",
            table(["tested on", "classes", "CNN alone", "voice head alone", "fused", "sad recall (fused)"], rows),
            "UAR on each set's own classes. For a corpus, the voice head is one trained without that corpus; the "
            "CNN never trained on it either. The example speakers are out of both listeners' training." + mean_text,
        ]
    folds = v.get("cross_validation") or {}
    if folds:
        k = "/".join(sorted({str(m["fused"]["folds"]) for m in folds.values()}))
        rows = [[c, str(len(m["fused"]["labels"])), pct(m["cnn"]["uar"]), pct(m["voice"]["uar"]),
                 f"**{pct(m['fused']['uar'])}**", pct_or_na(sad_recall(m["fused"]))] for c, m in folds.items()]  # fmt: skip
        out += [
            f"{h} Two listeners on new speakers of every corpus ({k} speaker folds, mean ± std)",
            table(
                ["tested on", "classes", "CNN alone", "voice head alone", "fused", "sad recall (fused, pooled)"], rows
            ),
            "Each fold holds out a share of every corpus's speakers and repeats the recipe without them: the voice "
            "head trains on everyone else, in every corpus; on the CNN's own corpora the CNN is one trained on the "
            "other folds' speakers. On the other corpora the CNN is the shipped one, which never heard them, so "
            "these rows are new speakers of a language only the voice head has heard. Each CNN's temperature "
            "comes from corpora it never heard, never the one it is scored on. UAR on each corpus's own classes.",
        ]
        screens = {c: m["weight_screen"] for c, m in folds.items() if "weight_screen" in m}
        if screens:
            weights = list(next(iter(screens.values())))
            rows = [[w, *(pct(s[w]) for s in screens.values())] for w in weights]
            out += [
                f"Mean fused UAR over the folds by the voice head's weight (0: the CNN alone; 1: the head alone; this "
                f"model: {v.get('fusion_weight', '?')}), on the scale the app fuses at:",
                table(["head weight", *screens], rows),
            ]
    loco = v.get("head_loco") or {}
    if loco:
        rows = [[c, str(len(m["labels"])), pct(m["uar"]), pct_or_na(sad_recall(m))] for c, m in loco.items()]
        uars = [m["uar"] for m in loco.values()]
        out += [
            f"{h} The voice head alone, leave one corpus out",
            table(["held-out corpus", "classes", "UAR", "sad recall"], rows),
            f"Each row: a head trained on the other corpora. Mean {pct(sum(uars) / len(uars))}, lowest {pct(min(uars))}.",
        ]
    adapted = v.get("adapted") or {}
    if adapted:
        rows = []
        for a in adapted.values():
            for c, m in a["corpora"].items():
                plain = v.get("fused_loco", {}).get(c, {}).get("uar") if "fused" in m else v["head_loco"][c]["uar"]
                shown = m.get("fused", m["voice"])
                gain = f" ({100 * (shown['uar'] - plain):+.1f})" if plain is not None else ""
                rows.append([a["reference"] + (f" ({a['k']} recordings)" if a.get("k") else ""), c,
                             pct(plain) if plain is not None else "n/a", pct(shown["uar"]) + gain])  # fmt: skip
        out += [
            f"{h} Adapted to a voice or a place",
            table(["compared with", "tested on (never heard)", "UAR without", "UAR adapted"], rows),
            "The voice head standardises each clip's features by a reference set instead of the training set's: "
            "for a voice, other recordings of the same speaker (picked at random, never the clip itself, emotions "
            "as they fall); for a place, every clip of the held-out corpus at once. Fused with the CNN as usual.",
        ]
    rel = v.get("reliability") or []
    if rel:
        said = {"confident": "confident" if may_say_confident(metrics) else "leans towards (not called confident)"}
        word = lambda p: (w := next(w for lo, hi, w in BINS if lo <= p < hi)) and said.get(w, w)
        rows = [[f"{100 * r['from']:.0f}-{100 * r['to']:.0f} %", word(r["from"]), str(r["n"]),
                 "n/a" if r["share_right"] is None else pct(r["share_right"])] for r in rel]  # fmt: skip
        out += [
            f"{h} How often an answer is right, by its confidence",
            table(["top probability", "the app says", "clips", "share right"], rows),
            f"On {v.get('reliability_protocol', 'held-out corpora')}.",
        ]
    screen = v.get("weight_screen") or {}
    if screen:
        out.append("Mean fused UAR on those corpora by the head's weight (before calibration): "
                   + ", ".join(f"{w}: {pct(u)}" for w, u in screen.items()) + ".")  # fmt: skip
    return "\n\n".join(out)


# The README's results block, between these lines: `python -m ser card checkpoints/default --readme README.md`.
README_START = "<!-- results: written by python -m ser card checkpoints/default --readme README.md -->"
README_END = "<!-- end of results -->"
DESCRIBED = {"ravdess": "RAVDESS", "emodb": "EmoDB", "ased": "ASED, Amharic", "nemo": "nEMO, Polish",
             "emospeech": "Indian EmoSpeech, phones"}  # fmt: skip


def readme_results(metrics: dict) -> str:
    """The README's results: the two listeners on voices and corpora they never heard, on new speakers of every
    corpus (speaker folds), sad, and how often a sure answer was right; every figure from a two-listener run's
    metrics.json ('' for a run without the voice listener)."""
    v = metrics.get("voice")
    if not v:
        return ""
    name = lambda c: DESCRIBED.get(c, c)  # noqa: E731
    rows = []
    for c, m in (v.get("excluded_speakers_test") or {}).items():
        who = " and ".join(s.split(":")[1] for s in m["speakers"])
        rows.append([f"{name(c)} speakers {who} (the examples), {len(m['fused']['labels'])} emotions",
                     pct(m["cnn"]["uar"]), pct(m["voice"]["uar"]), f"**{pct(m['fused']['uar'])}**", "",
                     pct(1 / len(m["fused"]["labels"]))])  # fmt: skip
    adapted = v.get("adapted") or {}
    for c in v.get("unseen_corpora", []):
        fused = v["fused_loco"][c]
        kinds = [adapted[k]["corpora"][c] for k in ("voice", "batch") if c in adapted.get(k, {}).get("corpora", {})]
        rows.append([f"{name(c)}, {len(fused['labels'])} emotions, never heard", pct(v["cnn_loco"][c]["uar"]),
                     pct(v["head_loco"][c]["uar"]), f"**{pct(fused['uar'])}**",
                     " / ".join(pct(a.get("fused", a["voice"])["uar"]) for a in kinds), pct(1 / len(fused["labels"]))])  # fmt: skip
    header = ["tested on", "CNN alone", "voice listener alone", "**fused**", "adapted: voice / batch", "chance"]
    out = [table(header, rows)]
    folds = v.get("cross_validation") or {}
    if folds:
        k = next(iter(folds.values()))["fused"]["folds"]
        out.append(f"New speakers of the corpora it learnt from ({k} speaker folds), fused: "
                   + ", ".join(f"{name(c).split(',')[0]} {pct(m['fused']['uar']['mean'])}" for c, m in folds.items())
                   + ".")  # fmt: skip
    never = {c: sad_recall(v["fused_loco"][c]) for c in v.get("unseen_corpora", [])}
    never = {c: r for c, r in never.items() if r is not None}
    if never:
        worst = min(never, key=never.get)
        heard = sad_recall(folds[worst]["fused"]) if worst in folds else None
        out.append(f"Sad is the weak spot: found {pct(never[worst])} of the time in {name(worst).split(', ')[-1]} never "
                   f"heard" + (f", {pct(heard)} for new speakers once the voice listener has heard it" if heard is not None else "") + ".")  # fmt: skip
    share = confident_share(metrics)
    if share is not None:
        right, n = share
        why = ("" if may_say_confident(metrics) else ", so the app never says \"confident\""
               if right < CONFIDENT_TOP else ", too few for the app to say \"confident\"")  # fmt: skip
        out.append(f"Answers {100 * CONFIDENT_TOP:.0f} % sure or more on corpora never heard were right "
                   f"{round(right * n)} times in {n}{why}.")  # fmt: skip
    return "\n\n".join(out)


def write_readme_results(readme, metrics: dict) -> None:
    """Replace the README's results block (between README_START and README_END) with `readme_results(metrics)`."""
    from pathlib import Path

    path = Path(readme)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path} has no results block to replace: add a line {README_START} and a line "
                         f"{README_END} where the results go")  # fmt: skip
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    path.write_text(f"{head}{README_START}\n{readme_results(metrics)}\n{README_END}{tail}")


def sad_recall(m: dict) -> float | None:
    """Sad's recall in a set's scores (pooled over the folds, for a cross-validation); None if the set has no sad."""
    if "pooled_per_class_recall" in m:
        return m["pooled_per_class_recall"].get("sad")
    return m["per_class"]["sad"]["recall"] if "sad" in m["per_class"] else None


def pct_or_na(v: float | None) -> str:
    return "n/a" if v is None else pct(v)


def pct(v: float | dict) -> str:
    """A rate as a percentage; a {"mean", "std"} over folds as "mean ± std %"."""
    return f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f} %" if isinstance(v, dict) else f"{100 * v:.1f} %"


def mean(v: float | dict) -> float:
    return v["mean"] if isinstance(v, dict) else v


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def results_markdown(metrics: dict, level: int = 3) -> str:
    """The protocol and the speaker-independent results tables of a metrics.json, for any corpora it holds.

    `level` is the Markdown heading level of each table's title.
    """
    cv, loco, val = (metrics.get(k) or {} for k in ("cross_validation", "leave_one_corpus_out", "validation"))
    if not (cv or loco or val or metrics.get("voice")):
        return "The metrics file holds no test results."
    h, out = "#" * level, [PROTOCOL]
    if metrics.get("voice"):
        out.append(voice_markdown(metrics, level))
    if cv:
        folds = {m["folds"] for m in cv.values() if "folds" in m}
        ece = any("ece" in m for m in cv.values())
        rows = [
            [c, str(len(m["labels"])), pct(m["accuracy"]), pct(m["uar"])]
            + [pct(m["macro_f1"]) if "macro_f1" in m else "n/a"]
            + ([f"{mean(m['ece_uncalibrated']):.3f} → {mean(m['ece']):.3f}" if "ece" in m else "n/a"] if ece else [])
            for c, m in cv.items()
        ]
        header = ["corpus", "classes", "accuracy", "UAR", "macro-F1"] + (["ECE before → after calibration"] * ece)
        held_out = bool(metrics.get("training", {}).get("validation_speakers", True))
        out += [
            f"{h} {'The CNN alone, c' if metrics.get('voice') else 'C'}ross-validation over speaker folds "
            f"({'/'.join(map(str, sorted(folds))) or 'k'} folds, mean ± std)",
            table(header, rows),
            "Each fold trains a fresh model on the other folds' speakers "
            f"({'all the CNN' + chr(39) + 's corpora' if metrics.get('voice') else 'all corpora'}), "
            + (
                "keeps the epoch with the best UAR on held-out validation speakers, "
                if held_out
                else "runs the whole schedule on every training speaker and keeps the last weight-averaged model, "
            )
            + "and is tested on the fold's speakers. On a corpus that lacks some of the model's classes, the argmax "
            "is over the classes it has.",
        ]
    if loco:
        rows = [
            [" + ".join(m.get("trained_on", [])) or "the others", c, str(len(m["labels"]))]
            + [pct(m["accuracy"]), pct(m["uar"]), pct(m["chance_uar"]) if "chance_uar" in m else "n/a"]
            for c, m in loco.items()
        ]
        header = ["trained on", "tested on (all speakers)", "shared classes", "accuracy", "UAR", "chance UAR"]
        uars = [m["uar"] for m in loco.values()]
        spread = (
            f"Mean UAR over the {len(uars)} held-out corpora: **{pct(sum(uars) / len(uars))}**; lowest "
            f"{pct(min(uars))}. "
            if len(uars) > 1
            else ""
        )
        out += [
            f"{h} Unseen corpus (leave one corpus out)",
            table(header, rows),
            spread + "Each row is a fresh model of the same recipe trained on every other corpus and tested on all of "
            "the held-out corpus's clips, scored on the classes that corpus has. It is the closest measure here of "
            "how the model fares on a voice, language and microphone it has never heard.",
        ]
    unseen = metrics.get("excluded_speakers_test") or {}
    if unseen:
        speakers = ", ".join(metrics.get("training", {}).get("excluded_speakers", []))
        rows = [[c, str(m["n"]), str(len(m["labels"])), pct(m["accuracy"]), pct(m["uar"])] for c, m in unseen.items()]
        out += [
            f"{h} The CNN on voices it never heard",
            table(["corpus", "clips", "classes", "accuracy", "UAR"], rows),
            f"The speakers {speakers} were kept out of this model's training (their clips are the app's examples). "
            "Two voices are a small sample: read it next to the cross-validation above.",
        ]
    if val and not cv:
        out += [
            f"{h} Validation speakers of this model",
            table(["corpus", "accuracy", "UAR"], [[c, pct(m["accuracy"]), pct(m["uar"])] for c, m in val.items()]),
            "Early stopping and the temperature used these speakers, so the figures are optimistic; speaker-fold "
            "cross-validation of the same recipe (the command with `--folds 5`) is the fair within-corpus figure.",
        ]
    return "\n\n".join(out)


def details_markdown(metrics: dict, level: int = 3) -> str:
    """Per-class recall and confusion-matrix tables of each cross-validated and each held-out corpus."""
    out = []
    sources = [("cross_validation", "pooled over folds", "all folds' test clips"),
               ("leave_one_corpus_out", "held out, trained on the others", "every clip of the held-out corpus")]  # fmt: skip
    for key, recall_note, confusion_note in sources:
        for c, m in (metrics.get(key) or {}).items():
            if "per_class" in m or "pooled_per_class_recall" in m:
                recalls = m.get("pooled_per_class_recall") or {k: v["recall"] for k, v in m["per_class"].items()}
                out.append(
                    f"Per-class recall, {c} ({recall_note}): " + ", ".join(f"{k} {pct(v)}" for k, v in recalls.items())
                )
            if "confusion" in m:
                rows = [[f"**{lab}**", *map(str, m["confusion"][i])] for i, lab in enumerate(m["labels"])]
                out += [
                    f"Confusion matrix, {c} ({confusion_note}; rows true, columns predicted):",
                    table(["true \\ predicted", *m["labels"]], rows),
                ]
    return "\n\n".join([f"{'#' * level} Per-class results", *out]) if out else ""


def render_card(model: SERModel, metrics: dict, data_args: list[str], augmented: bool = True) -> str:
    """The model card: Hub metadata, then summary, training data, results, intended use and limitations."""
    corpora = corpora_of(data_args)
    training = metrics.get("training", {})
    yaml = [
        "---",
        "license: cc-by-nc-sa-4.0" if "ravdess" in corpora else "license: other",
        "library_name: ser",
        "pipeline_tag: audio-classification",
        "tags:",
        "- audio-classification",
        "- speech-emotion-recognition",
        "- pytorch",
        "datasets:",
        *[f"- {c}" for c in corpora],
        "metrics:",
        "- accuracy",
        "- recall",
        "- f1",
        "---",
    ]
    how = (
        ", with room, noise, microphone-EQ, band-limiting, codec, speed, frequency-warp and SpecAugment "
        "augmentation (settings in `train_config.json`)."
        if augmented
        else ", without augmentation."
    )
    sections = [
        "# Speech emotion recognition: a VGG-style CNN on log-mel spectrograms"
        + (", and a pretrained voice encoder" if model.voice is not None else ""),
        summary(model)
        + f" The CNN's probabilities are temperature-calibrated (T = {model.config.temperature:.2f}, fitted on "
        f"{training.get('temperature_fitted_on', 'validation speakers')}; {calibration_shown(metrics)}).",
        voice_summary(model),
        "## Training data",
        training_data(data_args),
        data_markdown(metrics),
        f"The CNN was trained from scratch{cnn_corpora(metrics)} with `{metrics.get('command', 'train.py')}`{how} "
        f"Clips with less than "
        f"{model.feature_config.min_seconds:g} s of sound after trimming silence are left out of training and testing, "
        "as the app refuses them (in Indian EmoSpeech, many single short words).",
        "## Evaluation",
        results_markdown(metrics, level=3),
        details_markdown(metrics, level=3),
        f"For reference: human raters of CREMA-D reach {pct(HUMANS_CREMAD)} from voice alone (Cao et al. 2014); a 2026 "
        "lightweight model reports "
        "UAR 0.652 on RAVDESS under strict speaker-independent partitioning.",
        "## Intended use",
        INTENDED_USE,
        "## Limitations",
        limitations(),
        "Every figure above comes from the training command quoted above; `metrics.json` holds them all.",
    ]
    return "\n".join(yaml) + "\n\n" + "\n\n".join(s for s in sections if s) + "\n"
