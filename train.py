"""Train a speech-emotion model and write a checkpoint folder.

The shipped model (checkpoints/default): the CNN on RAVDESS (but actors 19 and 20) and EmoDB, then the voice
listener's head on all five corpora, calibrated on the three the CNN never heard, and both listeners measured on 5
speaker folds of every corpus. About 75 min on 2 cores (the CNN and its five fold fits, two at a time, 49 min; the
voice features of the clips and of their four speed copies, about 13 min the first time; then the heads and the
folds' measures, about 15 min):

    python train.py --recipe checkpoints/default/train_config.json --jobs 2 --out runs/shipped

which is the same as spelling out the recipe that file records:

    python train.py --data ravdess=../shared/data/ravdess --data emodb=../shared/data/emodb \\
        --data ased=../shared/data/ased --data nemo=../shared/data/nemo --data emospeech=../shared/data/emospeech \\
        --cnn-corpora ravdess,emodb --exclude ravdess:19,ravdess:20 --encoder checkpoints/default/encoder.safetensors \\
        --epochs 24 --model.features.clip-seconds 3 --threads 1 --folds 5 --jobs 2 --out runs/shipped

Every TrainConfig field is a flag (`--lr 1e-3`); the model's, the augmentation's and the voice head's fields too,
with their prefix (`--model.hidden 128`, `--augment.p-noise 0.3`, `--head.C 0.3`); lists, tuples and dicts are JSON
(`--model.widths '[16, "M", 32]'`). Under torchrun the CNN trains with DistributedDataParallel:
`torchrun --nproc_per_node 2 train.py ...`.
"""

import argparse
import dataclasses
import functools
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import torch

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
from ser.voice_training import train_voice

NOT_FLAGS = {"labels", "temperature"}  # set by the data and by calibration
# train.py's own options that a recipe (train_config.json's "args") records beside the TrainConfig.
RECIPE_ARGS = ("data", "cnn_corpora", "exclude", "encoder", "folds", "cross_corpus", "test")


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
        "--recipe",
        metavar="FILE",
        help="a checkpoint's train_config.json: its data, options and settings, which other flags override",
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="NAME=PATH",
        help=f"training corpus, NAME one of {', '.join(PARSERS)} (folder: root/<emotion>/...); repeatable",
    )
    p.add_argument(
        "--cnn-corpora",
        default="",
        metavar="NAMES",
        help="comma-separated --data corpora the CNN trains on (default: all); the voice head always uses all",
    )
    p.add_argument(
        "--encoder",
        default="",
        metavar="PATH",
        help="add the voice listener: an encoder.safetensors, resemblyzer's pretrained.pt, or 'resemblyzer' "
        "(the installed wheel's); without it the model is the CNN alone",
    )
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument(
        "--folds", type=int, default=None, help="speaker-fold cross-validation before the final fit (0: none)"
    )
    p.add_argument(
        "--cross-corpus", action="store_true", help="also train on all corpora but one and test on it, for each"
    )
    p.add_argument(
        "--exclude",
        default="",
        metavar="SPEAKERS",
        help="comma-separated speakers (corpus:id) kept out of the final model's training, e.g. ravdess:19,ravdess:20",
    )
    p.add_argument("--test", action="append", metavar="NAME=PATH", help="extra corpus to test the final model on")
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


def apply_recipe(args: argparse.Namespace) -> TrainConfig:
    """The recipe's TrainConfig (or the defaults), and its train.py options wherever no flag gave one."""
    if not args.recipe:
        args.folds, args.test = args.folds or 0, args.test or []
        return TrainConfig()
    saved = json.loads(Path(args.recipe).read_text())
    recipe = saved.pop("args", {"data": saved.get("data", [])})
    for name in RECIPE_ARGS:
        if getattr(args, name) in (None, "", [], False) and name in recipe:
            setattr(args, name, recipe[name])
    args.folds, args.test = args.folds or 0, args.test or []
    saved.pop("data", None)
    return TrainConfig(**saved)


def recipe_of(args: argparse.Namespace) -> dict:
    """train.py's options of this run, as the recipe records them."""
    return {name: getattr(args, name) for name in RECIPE_ARGS}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig with every flag that was given applied, nested ones included (over the recipe's, if any)."""
    cfg = apply_recipe(args)
    for dotted, value in vars(args).items():
        if value is None or not any(f.name == dotted.split(".")[0] for f in dataclasses.fields(cfg)):
            continue
        set_setting(cfg, dotted, value)
    if args.no_augment:
        cfg.augment = None
    cfg.head.check()
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


def cnn_data(clips: Clips, names: str, exclude: set[str]) -> tuple[Clips, list[str]]:
    """The clips of the corpora the CNN trains on (`--cnn-corpora`; all when empty), and their names."""
    corpora = sorted(set(clips.corpora))
    wanted = [n.strip() for n in names.split(",") if n.strip()] or corpora
    unknown = [n for n in wanted if n not in corpora]
    if unknown:
        raise ValueError(
            f"--cnn-corpora names {', '.join(unknown)}, which no --data gives; the data has {', '.join(corpora)}"
        )
    bad = sorted(set(exclude) - set(clips.speakers))
    if bad:
        raise ValueError(f"speakers to exclude {bad} are not in the data; ids look like {clips.speakers[0]}")
    return clips.subset([i for i, c in enumerate(clips.corpora) if c in wanted]), wanted


def prepare_state(args: argparse.Namespace, cfg: TrainConfig) -> Path:
    """The folder where this run's fits save their state after every epoch (`<out>.state`), checked against
    `--resume`: a new run never mixes with an old one's state, and a resumed run must be the same run. The voice
    head's settings may differ: the head trains after the fits, in seconds, and never from a saved state."""
    state_dir = Path(args.out).with_name(Path(args.out).name + ".state")
    this = json.loads(json.dumps({**resolved_config(cfg, args.data), "args": recipe_of(args)}))
    saved = state_dir / "run.json"
    if args.resume and saved.exists():
        without_head = lambda run: {k: v for k, v in run.items() if k != "head"}
        if without_head(json.loads(saved.read_text())) != without_head(this):
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
    try:
        cfg = config_from_args(args)
        if not args.data:
            raise ValueError("no training data: give --data NAME=PATH (repeatable) or --recipe FILE")
        check_jobs(args.jobs)  # before main_process() starts torchrun's process group
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log = functools.partial(print, flush=True) if main_process() else (lambda *a, **k: None)
    if cfg.threads:  # for the whole run, not only the fits: on a busy machine idle threads spin and slow the rest
        torch.set_num_threads(cfg.threads)
    try:
        data_report: dict = {}
        clips = load(args.data, cfg, args.cache_dir, data_report)
        tests = load(args.test, cfg, args.cache_dir) if args.test else None
        exclude = {s.strip() for s in args.exclude.split(",") if s.strip()}
        cnn_clips, cnn_corpora = cnn_data(clips, args.cnn_corpora, exclude)
        todo = plan(cnn_clips, cfg, args.folds, args.cross_corpus, exclude & set(cnn_clips.speakers), log)
    except ValueError as e:  # bad input or a plan that cannot work; bugs inside a fit keep their traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:  # under torchrun every rank would race for the state; such runs start afresh
        state_dir = prepare_state(args, cfg) if int(os.environ.get("WORLD_SIZE", "1")) == 1 else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = run(cnn_clips, todo, cfg, tests, args.jobs, log, state_dir)
    if not main_process():
        return 0
    result.metrics["data"] = data_report
    result.metrics["command"] = "python train.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    if args.encoder:
        result.metrics["voice"] = train_voice(
            clips,
            result.model,
            cnn_corpora,
            args.encoder,
            out,
            cfg.head,
            exclude,
            args.cache_dir or None,
            log,
            result.folds,
        )
        result.metrics["training"]["temperature"] = result.model.config.temperature
        result.metrics["training"]["temperature_fitted_on"] = (
            "corpora it never heard: " + ", ".join(result.metrics["voice"]["unseen_corpora"])
            if result.metrics["voice"]["unseen_corpora"]
            else result.metrics["training"]["temperature_fitted_on"]
        )
    save_checkpoint(result.model, out, cfg, args.data, result.metrics, recipe_of(args))
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
