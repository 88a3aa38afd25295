"""Training: one model on speaker-disjoint data, speaker-fold cross-validation, and the checkpoint folder.

Runs on CPU by default, on CUDA when present, and under `torchrun` (DistributedDataParallel)
with no code change: every rank draws the same seeded epoch and trains on its own share of it.
"""

import copy
import dataclasses
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from . import augment, plots
from .augment import AugmentConfig
from .corpora import EMOTIONS
from .data import Clips, balanced_indices, crop, speaker_folds, split_by_speaker, validation_speakers
from .evaluate import clip_logits, evaluate_logits, fit_temperature, summarize_folds
from .features import FeatureConfig, power_to_log_mel, stft_power
from .model import ModelConfig, SERModel


@dataclass
class TrainConfig:
    epochs: int = 40  # one-cycle schedule length; about 10 min for the default model on a 2-core CPU
    # Epochs without a better validation UAR before stopping; 0 = run the whole schedule (stopping a
    # one-cycle schedule early leaves the learning rate high). Either way the best validation epoch is kept.
    patience: int = 0
    batch_size: int = 32  # small batches regularise; CPU throughput is flat above ~32
    lr: float = 2e-3  # peak of a one-cycle schedule for AdamW
    weight_decay: float = 0.05
    label_smoothing: float = 0.1  # acted labels are not certain; soft targets calibrate better
    mixup_alpha: float = 0.0  # > 0 turns mixup on; off by default: with the augmentation it underfit (README)
    # Per-step weight averaging; the averaged model is the one kept. The decay follows (1 + step) / (10 + step),
    # an average over about the last ninth of the steps, until it reaches this cap at step 1,790: a 40-epoch fit
    # on ~1,300-1,650 clips (1,640-2,080 steps) barely reaches it, so raising it changes little or nothing.
    ema_decay: float = 0.995
    # Room/noise/EQ/band-limit/codec/warp/speed/SpecAugment (AugmentConfig), and mixup if on. It trades a little
    # within-corpus accuracy for much better transfer to an unseen corpus (README, "Augmentation").
    augment: bool = True
    # Share of each corpus's speakers held out to pick the epoch and fit the temperature. 0 trains on every
    # speaker and keeps the last epoch; with --folds the temperature then comes from the folds' held-out speakers.
    val_fraction: float = 0.15
    epoch_size: int = 0  # clips drawn per epoch (class-balanced); 0 = the training set's size
    seed: int = 0
    widths: list = field(default_factory=lambda: list(ModelConfig(labels=[]).widths))
    hidden: int = 256
    dropout: float = 0.3
    norm: str = "band"  # see ModelConfig.norm
    threads: int = 0  # torch CPU threads; 0 = torch's default (all cores)


def _dist() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device() -> str:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def _batch(clips: Clips, idx: np.ndarray, fc: FeatureConfig, ac: AugmentConfig | None, rng, g, device) -> torch.Tensor:
    """Log-mel batch (B, n_mels, frames) of augmented fixed-length crops."""
    speeds = np.ones(len(idx))
    if ac is not None:
        speeds = np.where(rng.random(len(idx)) < ac.p_speed, rng.uniform(*ac.speed, len(idx)), 1.0)
    wave = torch.from_numpy(np.stack([crop(clips.audio[i], fc.clip_samples, rng, s) for i, s in zip(idx, speeds)]))
    if ac is None:
        return power_to_log_mel(stft_power(wave.to(device), fc), fc)
    wave = augment.gain_and_codec(
        augment.noise(augment.reverb(wave, fc.sample_rate, ac, g), fc.sample_rate, ac, g), ac, g
    )
    power = augment.channel(stft_power(wave, fc), fc.sample_rate, ac, g)
    return augment.spec_augment(power_to_log_mel(power, fc), ac, g).to(device)


def fit(
    train: Clips, val: Clips, cfg: TrainConfig, fc: FeatureConfig, labels: list[str] | None = None, log=print
) -> tuple[SERModel, dict]:
    """Train on `train`, early-stop and calibrate on `val` (disjoint speakers). Returns (model, history).

    With no `val` clips the whole schedule runs, the last weight-averaged model is kept and its temperature
    stays 1 (`calibrate_folds` can fit one from cross-validation)."""
    rank, world = _dist()
    device = _device()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    labels = labels or [e for e in _vocabulary_order(train.emotions)]
    model = SERModel(
        ModelConfig(
            labels=labels, features=fc, widths=cfg.widths, hidden=cfg.hidden, dropout=cfg.dropout, norm=cfg.norm
        )
    ).to(device)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    y = np.array([labels.index(e) for e in train.emotions])
    epoch_size = cfg.epoch_size or len(train)
    steps = math.ceil(epoch_size / cfg.batch_size)
    per_rank = max(1, cfg.batch_size // world)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.15)
    ac = AugmentConfig() if cfg.augment else None
    ema = copy.deepcopy(model).eval()  # weight average over steps: steadier validation, better generalisation
    best, step = {"uar": -1.0, "epoch": 0, "state": None}, 0
    history = []
    for epoch in range(cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])  # same draw on every rank
        order = balanced_indices(y, steps * cfg.batch_size, rng).reshape(steps, cfg.batch_size)
        rng_rank = np.random.default_rng([cfg.seed, epoch, rank])
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch * 101 + rank)
        net.train()
        t0, total = time.time(), 0.0
        bar = tqdm(
            order,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            leave=False,
            disable=True if rank != 0 or _WORKER["clips"] is not None else None,
            mininterval=1.0,
        )
        for batch_idx in bar:
            idx = batch_idx[rank * per_rank : (rank + 1) * per_rank]
            mel = _batch(train, idx, fc, ac, rng_rank, g, device)
            target = F.one_hot(torch.from_numpy(y[idx]), len(labels)).float().to(device)
            if ac is not None and cfg.mixup_alpha > 0:
                mel, target = augment.mixup(mel, target, cfg.mixup_alpha, g)
            target = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / len(labels)
            loss = torch.sum(-target * F.log_softmax(net(mel), dim=1), dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            _update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))  # short warm-up
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        row = {"epoch": epoch + 1, "loss": total / steps}
        if not len(val):
            history.append({**row, "seconds": time.time() - t0})
            if rank == 0:
                log(f"epoch {epoch + 1:3d}  loss {total / steps:.3f}  ({time.time() - t0:.0f} s)")
            best = {"uar": None, "epoch": epoch + 1, "state": ema.state_dict()}
            continue
        m = evaluate_logits(clip_logits(ema, val, device), val.emotions, labels)
        history.append({**row, "val_uar": m["uar"], "val_accuracy": m["accuracy"], "seconds": time.time() - t0})
        if rank == 0:
            log(
                f"epoch {epoch + 1:3d}  loss {total / steps:.3f}  val UAR {m['uar']:.3f}  acc {m['accuracy']:.3f}  ({time.time() - t0:.0f} s)"
            )
        if m["uar"] > best["uar"]:
            best = {"uar": m["uar"], "epoch": epoch + 1, "state": copy.deepcopy(ema.state_dict())}
        elif cfg.patience and epoch + 1 - best["epoch"] >= cfg.patience:
            break
    model.load_state_dict(best["state"])
    if len(val):
        target = torch.tensor([labels.index(e) for e in val.emotions])
        model.config.temperature = fit_temperature(clip_logits(model, val, device), target)
    model.to("cpu").eval()
    return model, {"history": history, "best_epoch": best["epoch"], "best_val_uar": best["uar"]}


@torch.no_grad()
def _update_ema(ema: SERModel, model: SERModel, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _vocabulary_order(emotions: list[str]) -> list[str]:
    return [e for e in EMOTIONS if e in set(emotions)]


def evaluate_split(model: SERModel, test: Clips, logits: torch.Tensor | None = None) -> dict:
    """Per-corpus metrics on `test`, with ECE before (T=1) and after the fitted temperature.

    `logits`: the model's uncalibrated logits on `test`, when already computed."""
    out = {}
    logits = clip_logits(model, test) if logits is None else logits
    for corpus in sorted(set(test.corpora)):
        idx = [i for i, c in enumerate(test.corpora) if c == corpus]
        truth = [test.emotions[i] for i in idx]
        m = evaluate_logits(logits[idx], truth, model.labels, model.config.temperature)
        m["ece_uncalibrated"] = evaluate_logits(logits[idx], truth, model.labels, 1.0)["ece"]
        out[corpus] = m
    return out


@dataclass
class Task:
    """One fit: indices into the clips for training, validation (best epoch, temperature) and test."""

    name: str
    train: list[int]
    val: list[int]
    test: list[int]
    labels: list[str] | None  # None: the training clips' own emotions
    test_speakers: list[str]
    trained_on: list[str]  # corpora of the training clips


def _task(name: str, clips: Clips, rest: list[int], test: list[int] | None, cfg: TrainConfig, labels=None) -> Task:
    """Train on `rest` minus its validation speakers (each corpus's last `val_fraction`), test on `test`
    (None: on the validation speakers)."""
    train, val = split_by_speaker(clips, validation_speakers(clips.subset(rest), cfg.val_fraction), rest)
    test = val if test is None else test
    speakers, corpora = sorted({clips.speakers[i] for i in test}), sorted({clips.corpora[i] for i in train})
    return Task(name, train, val, test, labels, speakers, corpora)


def final_task(clips: Clips, cfg: TrainConfig, log=print) -> Task:
    """The shipped model: every speaker but the validation ones, which are also its test set."""
    task = _task("final", clips, list(range(len(clips))), None, cfg)
    held = f"validation speakers {task.test_speakers}" if task.val else "every speaker, no validation speakers"
    log(f"final model: {len(task.train)} train clips; {held}")
    return task


def cv_tasks(clips: Clips, k: int, cfg: TrainConfig, log=print) -> list[Task]:
    """One task per speaker fold: test on the fold's speakers, train on the others (all corpora)."""
    tasks, labels = [], _vocabulary_order(clips.emotions)
    for i, held in enumerate(speaker_folds(clips, k)):
        rest, test = split_by_speaker(clips, held)
        t = _task(f"fold {i + 1}", clips, rest, test, cfg, labels)
        log(
            f"fold {i + 1}/{k}: test speakers {sorted(held)}; {len(t.train)} train / {len(t.val)} val / {len(test)} test clips"
        )
        tasks.append(t)
    return tasks


def loco_tasks(clips: Clips, cfg: TrainConfig, log=print) -> list[Task]:
    """One task per corpus: train on all the others, test on every clip of it (scored on the shared labels)."""
    tasks = []
    for corpus in sorted(set(clips.corpora)):
        rest = [i for i, c in enumerate(clips.corpora) if c != corpus]
        test = [i for i, c in enumerate(clips.corpora) if c == corpus]
        log(f"leave-one-corpus-out: train on {sorted(set(clips.corpora) - {corpus})}, test on {corpus}")
        tasks.append(_task(f"without {corpus}", clips, rest, test, cfg))
    return tasks


_WORKER: dict = {"clips": None}  # the clips a parallel worker process was started with


def _init_worker(clips: Clips) -> None:
    _WORKER["clips"] = clips


def _fit_task(task: Task, cfg: TrainConfig, fc: FeatureConfig, clips: Clips | None = None, log=None) -> tuple:
    """(task, model, history, per-corpus test metrics) for one task."""
    clips = clips if clips is not None else _WORKER["clips"]
    log = log or (lambda msg: print(f"[{task.name}] {msg}", flush=True))
    t0 = time.time()
    model, history = fit(clips.subset(task.train), clips.subset(task.val), cfg, fc, task.labels, log)
    history["seconds"] = time.time() - t0
    return task, model, history, evaluate_split(model, clips.subset(task.test)) if task.test else {}


def check_jobs(jobs: int) -> None:
    """Parallel fits (`jobs` > 1) and torchrun's processes do not mix; say so before any process group starts."""
    if jobs > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--jobs runs fits in parallel processes; under torchrun leave it at 1")


def run_fits(clips: Clips, tasks: list[Task], cfg: TrainConfig, fc: FeatureConfig, jobs: int = 1, log=print) -> list:
    """Run every task, `jobs` at a time in separate processes that share the CPU threads between them.

    Fits are seeded: with the same threads per fit, the results do not depend on `jobs`.
    """
    check_jobs(jobs)
    if jobs <= 1 or len(tasks) <= 1:
        return [_fit_task(t, cfg, fc, clips, log) for t in tasks]
    jobs = min(jobs, len(tasks))
    worker_cfg = dataclasses.replace(cfg, threads=max(1, (cfg.threads or torch.get_num_threads()) // jobs))
    log(f"running {len(tasks)} fits, {jobs} at a time with {worker_cfg.threads} thread(s) each")
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started its thread pool
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(clips,)) as pool:
        return list(pool.map(_fit_task, tasks, [worker_cfg] * len(tasks), [fc] * len(tasks)))


def calibrate_folds(results: list[tuple], clips: Clips, log=print) -> float:
    """Temperature from cross-validation, for models trained without validation speakers.

    Each fold model gets the temperature fitted on the other folds' test logits (so its reported ECE is
    measured on speakers its temperature never saw) and its test metrics are recomputed with it; the
    return value is fitted on every fold's test logits, for the model trained on all speakers.
    """
    logits, targets = [], []
    for task, model, _, _ in results:
        logits.append(clip_logits(model, clips.subset(task.test)))
        targets.append(torch.tensor([model.labels.index(clips.emotions[i]) for i in task.test]))
    for k, (task, model, history, _) in enumerate(results):
        others = [i for i in range(len(results)) if i != k]
        model.config.temperature = fit_temperature(
            torch.cat([logits[i] for i in others]), torch.cat([targets[i] for i in others])
        )
        results[k] = (task, model, history, evaluate_split(model, clips.subset(task.test), logits[k]))
    temperature = fit_temperature(torch.cat(logits), torch.cat(targets))
    log(f"temperature {temperature:.3f}, fitted on the {sum(len(t) for t in targets)} cross-validation test clips")
    return temperature


def summarize_cross_validation(results: list[tuple], log=print) -> dict:
    """Per corpus: mean, spread and pooled confusion over the folds' test results (`run_fits` output)."""
    per_corpus: dict[str, list] = {}
    for task, _, _, tested in results:
        for corpus, m in tested.items():
            m["test_speakers"] = sorted(s for s in task.test_speakers if s.startswith(corpus + ":"))
            per_corpus.setdefault(corpus, []).append(m)
            log(f"{task.name} {corpus}: UAR {m['uar']:.3f}  accuracy {m['accuracy']:.3f}")
    return {corpus: {**summarize_folds(ms), "fold_results": ms} for corpus, ms in per_corpus.items()}


def summarize_cross_corpus(results: list[tuple], log=print) -> dict:
    """Per held-out corpus: what the model was trained on and its metrics there (`run_fits` output)."""
    out = {}
    for task, _, _, tested in results:
        (corpus,) = tested
        out[corpus] = {"trained_on": task.trained_on, **tested[corpus]}
        log(f"  {corpus}: UAR {out[corpus]['uar']:.3f} on {len(out[corpus]['labels'])} shared classes")
    return out


def save_checkpoint(model: SERModel, out: Path, cfg: TrainConfig, data_args: list[str], metrics: dict) -> None:
    """Write the checkpoint folder: weights + config, metrics.json, train_config.json, confusion PNGs, model card."""
    from .card import render_card

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("confusion_matrix*.png"):
        stale.unlink()
    (out / "README.md").write_text(render_card(model, metrics, data_args, cfg.augment))
    model.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    resolved = {"data": data_args, **asdict(cfg), "features": asdict(model.feature_config)}
    (out / "train_config.json").write_text(json.dumps(resolved, indent=2))
    results = metrics.get("cross_validation") or metrics.get("validation", {})
    for corpus, m in results.items():
        title = f"{corpus}: held-out speakers" + (f" ({m['folds']} folds)" if "folds" in m else "")
        plots.save(
            plots.confusion(np.array(m["confusion"]), m["labels"], title), out / f"confusion_matrix_{corpus}.png"
        )
