"""One speaker fold of the 5-fold cross-validation, with training settings changed: how recipes were compared.

    python bench/one_fold.py --fold 1 --set epochs=40 --set mixup_alpha=0 --set threads=1

Loads RAVDESS and EmoDB from ../shared/data (as train.py does), trains on the fold's training speakers and prints
the fold's per-corpus UAR. `--set NAME=VALUE` overrides a TrainConfig field (VALUE is JSON, e.g. widths=[16,"M",32]),
`--feature NAME=VALUE` a FeatureConfig field (e.g. n_mels=128) and `--augment NAME=VALUE` an AugmentConfig field
(e.g. p_noise=0.25). `--seeds 0 1` trains once per seed and also prints the UAR of the seeds' averaged logits
(an ensemble). `--trace-test` also prints the test speakers' UAR after every epoch (a diagnostic of how
well the validation speakers pick the epoch; never used to pick it).
A single fold moves by a few points with the thread count alone; compare recipes with the same `threads`.
"""

import argparse
import dataclasses
import functools
import itertools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import training  # noqa: E402
from ser.augment import AugmentConfig  # noqa: E402
from ser.data import load_corpus  # noqa: E402
from ser.evaluate import clip_logits, evaluate_logits  # noqa: E402
from ser.features import FeatureConfig  # noqa: E402
from ser.training import TrainConfig, cv_tasks, run_fits  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fold", type=int, required=True, help="1-5")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--feature", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--augment", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--trace-test", action="store_true", help="print test UAR after every epoch too")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="one fit per seed, then their ensemble")
    p.add_argument("--data-dir", default="../shared/data")
    args = p.parse_args(argv)
    if args.trace_test and args.seeds and len(args.seeds) > 1:
        p.error("--trace-test traces one fit; give it a single seed")
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    features = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.feature)}
    augments = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.augment)}
    cfg, fc = TrainConfig(**overrides), FeatureConfig(**features)
    training.AugmentConfig = functools.partial(AugmentConfig, **augments)  # the fit runs in this process
    clips = load_corpus(Path(args.data_dir) / "ravdess", "ravdess", fc, ".cache/ser")
    clips = clips + load_corpus(Path(args.data_dir) / "emodb", "emodb", fc, ".cache/ser")
    task = cv_tasks(clips, 5, cfg)[args.fold - 1]
    if args.trace_test:
        _trace_test(clips.subset(task.test), cfg.epochs)
    test, logits = clips.subset(task.test), []
    for seed in args.seeds or [cfg.seed]:
        ((_, model, history, tested),) = run_fits(clips, [task], dataclasses.replace(cfg, seed=seed), fc)
        logits.append(clip_logits(model, test))
        print(
            f"fold {args.fold} {json.dumps(overrides)} {json.dumps(features)} {json.dumps(augments)}"
            f"{f' seed {seed}' if args.seeds else ''}: {_uar(tested)} (best epoch {history['best_epoch']}, {history['seconds']:.0f} s)",
            flush=True,
        )
    if len(logits) > 1:
        mean = torch.stack(logits).mean(dim=0)
        tested = {
            c: evaluate_logits(mean[idx], [test.emotions[i] for i in idx], model.labels) for c, idx in _by_corpus(test)
        }
        print(f"fold {args.fold} ensemble of seeds {args.seeds} (mean logits): {_uar(tested)}")


def _by_corpus(clips) -> list[tuple[str, list[int]]]:
    return [(c, [i for i, x in enumerate(clips.corpora) if x == c]) for c in sorted(set(clips.corpora))]


def _uar(tested: dict) -> str:
    return ", ".join(f"{corpus} UAR {m['uar']:.3f}" for corpus, m in tested.items())


def _trace_test(test, epochs: int) -> None:
    """Wrap the per-epoch validation pass so that it scores the same (EMA) model on `test` too, labelled by epoch.

    `fit` calls `clip_logits` once per epoch on the validation speakers, then once more with the kept epoch's
    weights (for the temperature); `evaluate_split` scores the test set itself afterwards and is not traced.
    """
    inner, calls = training.clip_logits, itertools.count(1)

    def clip_logits(model, clips, device="cpu"):
        logits = inner(model, clips, device)
        n = next(calls)
        if n <= epochs + 1:
            scored = inner(model, test, device)
            for corpus, idx in _by_corpus(test):
                m = evaluate_logits(scored[idx], [test.emotions[i] for i in idx], model.labels)
                label = f"epoch {n}" if n <= epochs else "kept epoch"
                print(f"  test {corpus} UAR {m['uar']:.3f} ({label})", flush=True)
        return logits

    training.clip_logits = clip_logits


if __name__ == "__main__":
    main()
