"""Corpus file-name parsers, `scan`, and the speaker-independent splits built on them."""

from pathlib import Path

import numpy as np
import pytest

from ser.corpora import EMOTIONS, PARSERS, parse_data_arg, scan
from ser.data import Clips, speaker_folds, split_by_speaker, validation_speakers


@pytest.mark.parametrize(
    "corpus,path,expected",
    [
        ("ravdess", "Actor_12/03-01-05-01-02-01-12.flac", ("angry", "12")),
        ("ravdess", "03-01-01-01-01-01-01.wav", ("neutral", "01")),
        ("ravdess", "03-01-02-02-01-02-07.wav", ("calm", "07")),
        ("ravdess", "03-01-08-02-02-02-24.wav", ("surprised", "24")),
        ("ravdess", "03-02-05-01-02-01-12.wav", None),  # song channel
        ("ravdess", "03-01-09-01-02-01-12.wav", None),  # no emotion 09
        ("ravdess", "03-01-05-01-02-01.wav", None),
        ("emodb", "03a01Wa.wav", ("angry", "03")),
        ("emodb", "16b10Td.flac", ("sad", "16")),
        ("emodb", "08a02Fa.wav", ("happy", "08")),
        ("emodb", "11b03Ec.wav", ("disgust", "11")),
        ("emodb", "09a05Ab.wav", ("fearful", "09")),
        ("emodb", "10a07Na.wav", ("neutral", "10")),
        ("emodb", "03a04Lc.wav", None),  # boredom is outside the vocabulary
        ("emodb", "03c01Wa.wav", None),
        ("cremad", "1001_DFA_ANG_XX.wav", ("angry", "1001")),
        ("cremad", "1091_IEO_SAD_HI.flac", ("sad", "1091")),
        ("cremad", "1022_ITS_FEA_LO.wav", ("fearful", "1022")),
        ("cremad", "1022_ITS_HAP_MD.wav", ("happy", "1022")),
        ("cremad", "1022_ITS_NEU_XX.wav", ("neutral", "1022")),
        ("cremad", "1001_DFA_BOR_XX.wav", None),
        ("tess", "OAF_angry/OAF_back_angry.wav", ("angry", "OAF")),
        ("tess", "YAF_dog_ps.wav", ("surprised", "YAF")),
        ("tess", "YAF_dog_fear.wav", ("fearful", "YAF")),
        ("tess", "OAF_bite_neutral.wav", ("neutral", "OAF")),
        ("tess", "OAF_bite_Sad.wav", ("sad", "OAF")),
        ("tess", "OAF_back_bored.wav", None),
        ("tess", "ZAF_back_angry.wav", None),
        ("savee", "DC_sa01.wav", ("sad", "DC")),
        ("savee", "DC_su12.wav", ("surprised", "DC")),
        ("savee", "KL_a03.wav", ("angry", "KL")),
        ("savee", "JE_n30.wav", ("neutral", "JE")),
        ("savee", "JK/su05.wav", ("surprised", "JK")),
        ("savee", "JK/f01.wav", ("fearful", "JK")),
        ("savee", "other/su05.wav", None),  # no speaker in the name or the folder
        ("savee", "XX_sa01.wav", None),
        ("folder", "happy/alice_01.wav", ("happy", "alice")),
        ("folder", "sad/bob/x.wav", ("sad", "bob")),
        ("folder", "Anger/carol-take2.flac", ("angry", "carol")),
        ("folder", "session1/surprise/dan/t.wav", ("surprised", "dan")),
        ("folder", "misc/alice_01.wav", None),
        ("folder", "alice_01.wav", None),
    ],
)
def test_parsers_on_real_style_names(corpus, path, expected):
    assert PARSERS[corpus](Path(path)) == expected


def test_every_parsed_emotion_is_in_the_vocabulary():
    names = [f"03-01-{e:02d}-01-01-01-01.wav" for e in range(1, 9)]
    assert [PARSERS["ravdess"](Path(n))[0] for n in names] == list(EMOTIONS)


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_scan_prefixes_speakers_with_corpus_and_reports_unknown_names(tmp_path):
    _touch(tmp_path, "Actor_01/03-01-05-01-02-01-01.wav", "Actor_02/03-01-03-02-01-01-02.WAV",
           "Actor_02/03-02-03-02-01-01-02.wav", "Actor_02/notes.wav", "README.txt")  # fmt: skip

    items, skipped = scan(tmp_path, "ravdess")

    assert [(i.emotion, i.speaker, i.corpus) for i in items] == [("angry", "ravdess:01", "ravdess"),
                                                                  ("happy", "ravdess:02", "ravdess")]  # fmt: skip
    assert sorted(p.name for p in skipped) == ["03-02-03-02-01-01-02.wav", "notes.wav"]  # not README.txt: not audio


def test_scan_folder_layout_reads_paths_relative_to_root(tmp_path):
    root = tmp_path / "happy" / "data"  # an emotion word above the root must not count
    _touch(root, "sad/bob/x.wav", "angry/alice_01.flac", "loose.wav")

    items, skipped = scan(root, "folder")

    assert {(i.emotion, i.speaker) for i in items} == {("sad", "folder:bob"), ("angry", "folder:alice")}
    assert [p.name for p in skipped] == ["loose.wav"]


def test_parse_data_arg(tmp_path):
    assert parse_data_arg(f"emodb={tmp_path}") == ("emodb", tmp_path)
    assert parse_data_arg(str(tmp_path)) == ("folder", tmp_path)
    with pytest.raises(ValueError, match="unknown corpus 'iemocap'.*ravdess"):
        parse_data_arg(f"iemocap={tmp_path}")
    with pytest.raises(ValueError, match="not found"):
        parse_data_arg(f"ravdess={tmp_path / 'missing'}")
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="not found"):
        parse_data_arg(f"ravdess={tmp_path / 'file.wav'}")


def clips_for(speakers_by_corpus: dict[str, list[str]], per_speaker: int = 2) -> Clips:
    speakers, corpora = [], []
    for corpus, names in speakers_by_corpus.items():
        for s in names:
            speakers += [f"{corpus}:{s}"] * per_speaker
            corpora += [corpus] * per_speaker
    n = len(speakers)
    emotions = [EMOTIONS[i % 4] for i in range(n)]
    return Clips([np.zeros(10, np.float32)] * n, emotions, speakers, corpora, [f"{i}.wav" for i in range(n)])


RAVDESS = [f"{a:02d}" for a in range(1, 25)]


def test_ravdess_five_folds_are_the_readme_actor_blocks():
    folds = speaker_folds(clips_for({"ravdess": RAVDESS[:20]}), 5)
    assert folds == [{f"ravdess:{a:02d}" for a in range(start, start + 4)} for start in (1, 5, 9, 13, 17)]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_are_disjoint_and_cover_every_speaker_of_every_corpus(k):
    clips = clips_for({"ravdess": RAVDESS, "emodb": ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"],
                       "cremad": [str(a) for a in range(1001, 1006)]})  # fmt: skip
    folds = speaker_folds(clips, k)
    assert len(folds) == k
    assert set().union(*folds) == set(clips.speakers)
    assert sum(len(f) for f in folds) == len(set(clips.speakers))
    for fold in folds:  # every corpus is represented in every fold
        assert {s.split(":")[0] for s in fold} == {"ravdess", "emodb", "cremad"}


def test_folds_need_at_least_k_speakers_per_corpus():
    with pytest.raises(ValueError, match="tess has 2 speakers"):
        speaker_folds(clips_for({"ravdess": RAVDESS, "tess": ["OAF", "YAF"]}), 3)


@pytest.mark.parametrize("fraction", [0.1, 0.15, 0.3])
def test_validation_speakers_and_split_never_overlap(fraction):
    clips = clips_for({"ravdess": RAVDESS, "emodb": ["03", "08", "09", "10", "11"], "savee": ["DC", "JE", "JK"]})
    held = validation_speakers(clips, fraction)
    train, val = (clips.subset(idx) for idx in split_by_speaker(clips, held))

    assert set(train.speakers).isdisjoint(val.speakers)
    assert set(val.speakers) == held
    assert len(train) + len(val) == len(clips)
    assert sorted(train.paths + val.paths) == sorted(clips.paths)
    for corpus in ("ravdess", "emodb", "savee"):  # at least one held out from each corpus, never all
        n = len({s for s in held if s.startswith(corpus + ":")})
        assert 1 <= n < len({s for s in clips.speakers if s.startswith(corpus + ":")})


def test_validation_needs_two_speakers():
    with pytest.raises(ValueError, match="at least 2"):
        validation_speakers(clips_for({"tess": ["OAF"]}), 0.15)


def test_speaker_ids_do_not_collide_across_corpora():
    clips = clips_for({"ravdess": ["03", "08"], "emodb": ["03", "08"]})
    held = validation_speakers(clips, 0.5)
    assert held == {"ravdess:08", "emodb:08"}
    val = clips.subset(split_by_speaker(clips, held)[1])
    assert set(val.corpora) == {"ravdess", "emodb"} and len(val) == 4
