"""Train a speech-emotion model and write a checkpoint folder.

    python train.py --data ravdess=../shared/data/ravdess --data emodb=../shared/data/emodb \
        --out checkpoints/default --folds 5 --cross-corpus --jobs 2 --val-fraction 0

Under torchrun the same command trains with DistributedDataParallel:
    torchrun --nproc_per_node 2 train.py --data ...
"""

import argparse
import shlex
import sys
import time
from dataclasses import fields
from pathlib import Path

from ser.corpora import parse_data_arg
from ser.data import Clips, load_corpus
from ser.features import FeatureConfig
from ser.hub import ModelError, push
from ser.training import (
    TrainConfig,
    _dist,
    calibrate_folds,
    check_jobs,
    cv_tasks,
    evaluate_split,
    final_task,
    loco_tasks,
    run_fits,
    save_checkpoint,
    summarize_cross_corpus,
    summarize_cross_validation,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="training corpus: ravdess, emodb, cremad, tess, savee or folder (root/<emotion>/...); repeatable",
    )
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--folds", type=int, default=0, help="speaker-fold cross-validation before the final fit (0: none)")
    p.add_argument(
        "--cross-corpus", action="store_true", help="also train on all corpora but one and test on it, for each"
    )
    p.add_argument(
        "--test", action="append", default=[], metavar="NAME=PATH", help="extra corpus to test the final model on"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="fits (folds, cross-corpus runs, final model) to run at once in separate processes, sharing the CPU threads",
    )
    p.add_argument("--cache-dir", default=".cache/ser", help="decoded-audio cache ('' to disable)")
    p.add_argument("--push-to-hub", metavar="USER/NAME", help="upload the checkpoint folder after training")
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="room/noise/microphone/voice augmentation and mixup (default on; --no-augment turns it off)",
    )
    for f in fields(TrainConfig):
        if f.name != "augment":
            kind = str if f.name == "widths" else type(f.default) if f.default is not None else int
            p.add_argument(
                f"--{f.name.replace('_', '-')}",
                type=kind,
                default=None,
                help=f"default {getattr(TrainConfig(), f.name)}",
            )
    return p


def _load(args_data: list[str], fc: FeatureConfig, cache_dir: str) -> Clips:
    clips = None
    for arg in args_data:
        name, root = parse_data_arg(arg)
        part = load_corpus(root, name, fc, cache_dir or None)
        print(f"{name}: {len(part)} clips, {len(set(part.speakers))} speakers, emotions {sorted(set(part.emotions))}")
        clips = part if clips is None else clips + part
    return clips


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if isinstance(overrides.get("widths"), str):
        overrides["widths"] = [w if w == "M" else int(w) for w in overrides["widths"].split(",")]
    cfg = TrainConfig(**{**overrides, "augment": args.augment})
    fc = FeatureConfig()
    try:
        check_jobs(args.jobs)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rank, _ = _dist()
    log = print if rank == 0 else (lambda *a, **k: None)
    try:
        clips = _load(args.data, fc, args.cache_dir)
        tests = _load(args.test, fc, args.cache_dir) if args.test else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = {"command": "python train.py " + shlex.join(sys.argv[1:] if argv is None else argv)}
    t0 = time.time()
    try:  # problems with the plan (too few speakers for the folds) are one-line errors; bugs in a fit are not
        final = final_task(clips, cfg, log)
        cv = cv_tasks(clips, args.folds, cfg, log) if args.folds else []
        loco = loco_tasks(clips, cfg, log) if args.cross_corpus and len(set(clips.corpora)) > 1 else []
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = run_fits(clips, [final, *cv, *loco], cfg, fc, args.jobs, log)  # the longest fit first
    cv_results = results[1 : 1 + len(cv)]
    if cv and not final.val:  # no validation speakers: calibrate on the folds' held-out speakers instead
        results[0][1].config.temperature = calibrate_folds(cv_results, clips, log)
    elif not final.val:
        log("no validation speakers and no --folds: the temperature stays 1 (uncalibrated)")
    if cv:
        metrics["cross_validation"] = summarize_cross_validation(cv_results, log)
    if loco:
        metrics["leave_one_corpus_out"] = summarize_cross_corpus(results[1 + len(cv) :], log)
    _, model, history, metrics["validation"] = results[0]
    final_seconds = history.pop("seconds")
    if tests is not None:
        metrics["test"] = evaluate_split(model, tests)
    metrics["training"] = {
        **history,
        "final_fit_seconds": final_seconds,
        "all_fits_seconds": time.time() - t0,
        "jobs": args.jobs,
        "train_clips": len(final.train),
        "validation_speakers": final.test_speakers,
        "temperature": model.config.temperature,
        "temperature_fitted_on": "validation speakers"
        if final.val
        else "cross-validation test speakers"
        if cv
        else "nothing (uncalibrated)",
    }
    if rank != 0:
        return 0
    out = Path(args.out)
    save_checkpoint(model, out, cfg, args.data, metrics)
    for corpus, m in metrics.get("cross_validation", {}).items():
        print(
            f"cross-validation {corpus}: UAR {m['uar']['mean']:.3f} ± {m['uar']['std']:.3f}  accuracy {m['accuracy']['mean']:.3f}"
        )
    for corpus, m in metrics.get("leave_one_corpus_out", {}).items():
        print(f"cross-corpus -> {corpus}: UAR {m['uar']:.3f} ({len(m['labels'])} classes)")
    print(f"wrote {out} (final fit {metrics['training']['final_fit_seconds']:.0f} s)")
    if args.push_to_hub:
        try:
            print(f"pushed to {push(out, args.push_to_hub)}")
        except ModelError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
