"""Screen speaker calibration on leave-one-corpus-out models: does a reference from the same voice help?

    python bench/calibration_screen.py --models runs/five.models

Needs the five leave-one-corpus-out models of a `train.py ... --cross-corpus` run, as saved in its `<out>.state`
folder (`without-<corpus>.done.safetensors`; copy them out before the run ends and removes that folder). For each
held-out corpus and each of its speakers, the model's logits are shifted by the speaker's reference logits minus
the model's typical ones, in three settings:
- none: the logits as they are (the LOCO figure);
- neutral x2: the reference is the mean logits of two of the speaker's neutral clips (calm where the corpus has no
  neutral), which are then left out of the test; "typical" is the mean over the training corpora's neutral clips.
  This is what a visitor can give: a sentence or two in a neutral voice.
- all other clips: the reference is the mean logits of every other clip of the speaker (leave-one-out; the rest of
  a long recording), "typical" the mean over the training clips. Optimistic: these corpora give every speaker all
  emotions in equal measure, which no visitor does.
Prints UAR per corpus and setting, on the same clips within each corpus (speakers with fewer than 3 neutral clips
are left out of all three), and appends the result to bench/results/five_corpora/calibration_screen.jsonl.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ser.data import load_corpus
from ser.evaluate import clip_logits, evaluate_logits
from ser.model import ModelConfig, SERModel
from ser.resume import load_state, unprefixed

CORPORA = ("ravdess", "emodb", "ased", "nemo", "emospeech")


def load_fit(path: Path) -> SERModel:
    tensors, meta = load_state(path)
    model = SERModel(ModelConfig(**meta["config"]))
    model.load_state_dict(unprefixed("model", tensors))
    return model.eval()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="runs/five.models")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--log", default="bench/results/five_corpora/calibration_screen.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    clips = {c: load_corpus(Path(args.data_dir) / c, c, ModelConfig([]).features, Path(".cache/ser"), log=lambda m: None)
             for c in CORPORA}  # fmt: skip
    rows = {}
    for held in CORPORA:
        model = load_fit(Path(args.models) / f"without-{held}.done.safetensors")
        train_logits = torch.cat([clip_logits(model, clips[c]) for c in CORPORA if c != held])
        train_emotions = [e for c in CORPORA if c != held for e in clips[c].emotions]
        test = clips[held]
        logits = clip_logits(model, test)
        ref_class = "neutral" if "neutral" in test.emotions else "calm"
        typical_ref = train_logits[[i for i, e in enumerate(train_emotions) if e == ref_class]].mean(0)
        typical_all = train_logits.mean(0)
        out = {"none": [], "neutral x2": [], "all other clips": []}
        truth = []
        rng = np.random.default_rng(0)
        for speaker in sorted(set(test.speakers)):
            idx = [i for i, s in enumerate(test.speakers) if s == speaker]
            refs = [i for i in idx if test.emotions[i] == ref_class]
            if len(refs) < 3:
                continue
            chosen = set(rng.choice(refs, size=2, replace=False).tolist())
            rest = [i for i in idx if i not in chosen]
            ref_shift = logits[sorted(chosen)].mean(0) - typical_ref
            for i in rest:
                others = [j for j in idx if j != i]
                out["none"].append(logits[i])
                out["neutral x2"].append(logits[i] - ref_shift)
                out["all other clips"].append(logits[i] - (logits[others].mean(0) - typical_all))
                truth.append(test.emotions[i])
        rows[held] = {
            k: round(evaluate_logits(torch.stack(v), truth, model.labels)["uar"], 4) for k, v in out.items()
        } | {"clips": len(truth)}
        print(held, rows[held], flush=True)
    mean = {
        k: round(float(np.mean([r[k] for r in rows.values()])), 4) for k in ("none", "neutral x2", "all other clips")
    }
    print("mean", mean)
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a") as f:
        f.write(json.dumps({"models": args.models, "per_corpus": rows, "mean": mean}) + "\n")


if __name__ == "__main__":
    main()
