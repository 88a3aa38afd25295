"""Screen a training recipe on the measure that matters: leave-one-corpus-out UAR, paired with a baseline.

    python bench/screen.py --name masked --jobs 2 --set epochs=8
    python bench/screen.py --name union --jobs 2 --set epochs=8 --set mask_absent_classes=false

Loads the five corpora from ../shared/data, trains one model per held-out corpus on the other four (`--holdout`
picks some) and prints each held-out corpus's UAR on its own classes, their mean and the lowest, as one JSON line
appended to `--log` (default bench/results/screens_loco.jsonl). `--set NAME=VALUE` overrides a TrainConfig field;
dotted names reach the model and augmentation settings (`--set model.hidden=128`, `--set augment.p_noise=0.3`);
VALUE is JSON. Compare recipes with the same budget, seed and threads per fit.
"""

import argparse
import json
import time
from pathlib import Path

from ser.data import load_corpus
from ser.training import TrainConfig, loco_tasks, run_fits, set_setting

CORPORA = ("ravdess", "emodb", "ased", "nemo", "emospeech")


def configured(overrides: list[str]) -> TrainConfig:
    cfg = TrainConfig()
    for item in overrides:
        dotted, value = item.split("=", 1)
        try:
            set_setting(cfg, dotted, json.loads(value))
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
    return cfg


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="label of this recipe in the log")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--holdout", nargs="+", default=list(CORPORA), choices=CORPORA)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="CPU threads shared by the parallel fits")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--log", default="bench/results/screens_loco.jsonl")
    args = p.parse_args(argv)
    cfg = configured([f"threads={args.threads}", *args.set])
    clips = None
    for c in CORPORA:
        part = load_corpus(Path(args.data_dir) / c, c, cfg.model.features, Path(".cache/ser"), log=lambda m: None)
        clips = part if clips is None else clips + part
    tasks = [t for t in loco_tasks(clips, cfg, log=lambda m: None) if t.name.split()[-1] in args.holdout]
    t0 = time.time()
    results = run_fits(clips, tasks, cfg, cfg.model.features, args.jobs)
    uar = {c: round(m["uar"], 4) for r in results for c, m in r.tested.items()}
    row = {
        "name": args.name,
        "set": args.set,
        "steps": cfg.steps,
        "loco_uar": uar,
        "mean": round(sum(uar.values()) / len(uar), 4),
        "lowest": min(uar.values()),
        "minutes": round((time.time() - t0) / 60, 1),
    }
    print(json.dumps(row), flush=True)
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
