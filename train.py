"""Train a speech-emotion model and write a checkpoint folder.

The shipped model (about 2 h on a 2-core CPU with --jobs 2; the final fit alone about 15 min):

    python train.py --data ravdess=../shared/data/ravdess --data emodb=../shared/data/emodb \\
        --data ased=../shared/data/ased --data nemo=../shared/data/nemo --data emospeech=../shared/data/emospeech \\
        --exclude ravdess:19,ravdess:20 --folds 5 --cross-corpus --jobs 2 --threads 2 --out checkpoints/default

Every TrainConfig field is a flag (`--lr 1e-3`); the model's and the augmentation's fields too, with their prefix
(`--model.hidden 128`, `--augment.p-noise 0.3`); lists, tuples and dicts are JSON (`--model.widths '[16, "M", 32]'`).
Under torchrun the same command trains with DistributedDataParallel: `torchrun --nproc_per_node 2 train.py ...`.
"""

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from ser.corpora import PARSERS, parse_data_arg, scan
from ser.data import Clips, load_corpus
from ser.hub import ModelError, push
from ser.training import (
    TrainConfig,
    check_jobs,
    main_process,
    plan,
    resolved_config,
    run,
    save_checkpoint,
    set_setting,
)

NOT_FLAGS = {"labels", "temperature", "features"}  # set by the data, by calibration, and by FeatureConfig's defaults


def add_config_flags(p: argparse.ArgumentParser, config, prefix: str = "") -> None:
    """One `--[prefix.]name` flag per dataclass field, recursing into nested dataclasses."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in NOT_FLAGS:
            continue
        if dataclasses.is_dataclass(value):
            add_config_flags(p, value, f"{prefix}{f.name}.")
            continue
        kind = json.loads if isinstance(value, list | tuple | dict) else type(value)
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(value, bool) else kind
        flag = f"--{prefix}{f.name.replace('_', '-')}"
        p.add_argument(flag, dest=f"{prefix}{f.name}", type=kind, default=None, help=f"default {json.dumps(value)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help=f"training corpus, NAME one of {', '.join(PARSERS)} (folder: root/<emotion>/...); repeatable",
    )
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--folds", type=int, default=0, help="speaker-fold cross-validation before the final fit (0: none)")
    p.add_argument(
        "--cross-corpus", action="store_true", help="also train on all corpora but one and test on it, for each"
    )
    p.add_argument(
        "--exclude",
        default="",
        metavar="SPEAKERS",
        help="comma-separated speakers (corpus:id) kept out of the final model's training, e.g. ravdess:19,ravdess:20",
    )
    p.add_argument(
        "--test", action="append", default=[], metavar="NAME=PATH", help="extra corpus to test the final model on"
    )
    p.add_argument("--jobs", type=int, default=1, help="fits to run at once in separate processes, sharing the threads")
    p.add_argument("--cache-dir", default=".cache/ser", help="decoded-audio cache ('' to disable)")
    p.add_argument("--push-to-hub", metavar="USER/NAME", help="upload the checkpoint folder after training")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a run that was killed: finished fits are loaded, the others go on from their last epoch",
    )
    p.add_argument("--no-augment", action="store_true", help="train on clean crops only (no room/noise/voice changes)")
    add_config_flags(p, TrainConfig())
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig with every flag that was given applied, nested ones included."""
    cfg = TrainConfig()
    for dotted, value in vars(args).items():
        if value is None or not any(f.name == dotted.split(".")[0] for f in dataclasses.fields(cfg)):
            continue
        set_setting(cfg, dotted, value)
    if args.no_augment:
        cfg.augment = None
    return cfg


def load(data_args: list[str], cfg: TrainConfig, cache_dir: str, report: dict | None = None) -> Clips:
    """Every --data corpus, decoded (or read from the cache) and joined; `report` gets each one's file counts."""
    clips = None
    for arg in data_args:
        name, root = parse_data_arg(arg)
        part = load_corpus(root, name, cfg.model.features, cache_dir or None)
        print(f"{name}: {len(part)} clips, {len(set(part.speakers))} speakers, emotions {sorted(set(part.emotions))}")
        if report is not None:
            named, unnamed = scan(root, name)
            report[name] = {"used": len(part), "speakers": len(set(part.speakers)), "unlabelled_or_other_emotion": len(unnamed), "unusable_audio": len(named) - len(part)}  # fmt: skip
        clips = part if clips is None else clips + part
    return clips


def prepare_state(args: argparse.Namespace, cfg: TrainConfig) -> Path:
    """The folder where this run's fits save their state after every epoch (`<out>.state`), checked against
    `--resume`: a new run never mixes with an old one's state, and a resumed run must be the same run."""
    state_dir = Path(args.out).with_name(Path(args.out).name + ".state")
    plan_args = {"folds": args.folds, "cross_corpus": args.cross_corpus, "exclude": args.exclude}
    this = json.loads(json.dumps({**resolved_config(cfg, args.data), **plan_args}))
    saved = state_dir / "run.json"
    if args.resume and saved.exists():
        if json.loads(saved.read_text()) != this:
            raise ValueError(
                f"the state in '{state_dir}' is from a run with other settings; delete it or repeat that run's command"
            )
    elif state_dir.exists() and not args.resume:
        raise ValueError(
            f"an interrupted run left its state in '{state_dir}': add --resume to continue it, or delete it"
        )
    elif args.resume:
        print(f"nothing to resume in '{state_dir}': starting from the beginning")
    state_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(this, indent=2))
    return state_dir


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        check_jobs(args.jobs)  # before main_process() starts torchrun's process group
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log = print if main_process() else (lambda *a, **k: None)
    try:
        data_report: dict = {}
        clips = load(args.data, cfg, args.cache_dir, data_report)
        tests = load(args.test, cfg, args.cache_dir) if args.test else None
        exclude = {s.strip() for s in args.exclude.split(",") if s.strip()}
        todo = plan(clips, cfg, args.folds, args.cross_corpus, exclude, log)
    except ValueError as e:  # bad input or a plan that cannot work; bugs inside a fit keep their traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:  # under torchrun every rank would race for the state; such runs start afresh
        state_dir = prepare_state(args, cfg) if int(os.environ.get("WORLD_SIZE", "1")) == 1 else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = run(clips, todo, cfg, tests, args.jobs, log, state_dir)
    if not main_process():
        return 0
    result.metrics["data"] = data_report
    result.metrics["command"] = "python train.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    save_checkpoint(result.model, out, cfg, args.data, result.metrics)
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)  # the run is complete: nothing left to resume
    for corpus, m in result.metrics.get("cross_validation", {}).items():
        print(f"cross-validation {corpus}: UAR {m['uar']['mean']:.3f} ± {m['uar']['std']:.3f}")
    for corpus, m in result.metrics.get("leave_one_corpus_out", {}).items():
        print(f"leave-one-corpus-out {corpus}: UAR {m['uar']:.3f} ({len(m['labels'])} classes)")
    print(f"wrote {out} (final fit {result.metrics['training']['final_fit_seconds']:.0f} s)")
    if args.push_to_hub:
        try:
            print(f"pushed to {push(out, args.push_to_hub)}")
        except ModelError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
