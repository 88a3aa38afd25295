"""Training: one model on speaker-disjoint data, speaker-fold cross-validation, and the checkpoint folder.

Runs on CPU by default, on CUDA when present, and under `torchrun` (DistributedDataParallel)
with no code change: every rank draws the same seeded epoch and trains on its own share of it.
"""

import copy
import dataclasses
import json
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

from . import augment, plots, resume
from .augment import AugmentConfig
from .corpora import EMOTIONS
from .data import Clips, crop, speaker_folds, split_by_speaker, validation_speakers
from .evaluate import clip_logits, evaluate_logits, fit_temperature, summarize_cross_corpus, summarize_cross_validation
from .features import FeatureConfig, power_to_log_mel, stft_power
from .model import ModelConfig, SERModel
from .voice import HeadConfig


@dataclass
class TrainConfig:
    # A fixed budget of optimisation steps, whatever the data size: more corpora mean more variety per step, not
    # a longer fit. epochs * steps_per_epoch = 960 steps of 32 two-second crops (about 3 draws of each of ~10,000
    # clips), about 8 min alone on a 2-core CPU, so that the shipped command's 11 fits take about 1.5 h.
    epochs: int = 12  # one-cycle schedule length in epochs; an epoch is a logging, validation and resume point
    steps_per_epoch: int = 80
    batch_size: int = 32  # small batches regularise; CPU throughput is flat above ~32
    lr: float = 2e-3  # peak of a one-cycle schedule for AdamW
    weight_decay: float = 0.05
    label_smoothing: float = 0.1  # acted labels are not certain; soft targets calibrate better
    # Per-step weight averaging; the averaged model is the one kept. The decay follows (1 + step) / (10 + step),
    # an average over about the last ninth of the steps; the cap would act from step 1,790 (after the budget).
    ema_decay: float = 0.995
    # Sampling weight of each corpus (missing: 1). A batch draws a corpus with probability proportional to its
    # weight, then a class uniformly among the classes that corpus has, then a clip: no corpus dominates by size
    # and no class is rare because one corpus lacks it.
    corpus_weights: dict = field(default_factory=dict)
    # Restrict each clip's softmax to the classes its corpus has: a corpus without 'calm' then never teaches the
    # model that calm is unlikely for its language or microphone (README, "Training on five corpora").
    mask_absent_classes: bool = True
    # Share of each corpus's speakers held out to pick the epoch and fit the temperature. 0 trains on every
    # speaker and keeps the last epoch; with --folds the temperature then comes from the folds' held-out speakers.
    val_fraction: float = 0.0
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default (all cores)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(labels=[]))  # labels are set from the data
    # Room/noise/EQ/band-limit/codec/warp/speed/SpecAugment; None trains on clean crops only. It trades a little
    # within-corpus accuracy for much better transfer to an unseen corpus.
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    # The second listener's head (train.py --encoder): trained on every --data corpus, in seconds, after the CNN.
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self):  # read back from train_config.json
        if isinstance(self.model, dict):
            self.model = ModelConfig(**{"labels": [], **self.model})
        if isinstance(self.head, dict):
            self.head = HeadConfig(**self.head)
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()})

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def set_setting(cfg: TrainConfig, dotted: str, value) -> None:
    """Set one field of `cfg`, nested ones by dotted name ("lr", "model.hidden", "augment.p_noise"); JSON lists
    become tuples where the field is a tuple. Raises ValueError for a name that is no setting."""
    *parents, name = dotted.split(".")
    owner = cfg
    for part in parents:
        owner = getattr(owner, part, None)
    if owner is None or not hasattr(owner, name):
        raise ValueError(f"no setting '{dotted}'")
    setattr(owner, name, tuple(value) if isinstance(getattr(owner, name), tuple) else value)


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


def class_masks(clips: Clips, labels: list[str], restrict: bool) -> np.ndarray:
    """(N, n_labels) bool: the classes each clip's corpus has (all True when not `restrict`)."""
    has = {c: {e for e, k in zip(clips.emotions, clips.corpora) if k == c} for c in set(clips.corpora)}
    return np.array([[not restrict or lab in has[c] for lab in labels] for c in clips.corpora], dtype=bool)


def masked_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label-smoothed cross-entropy over the classes in `mask` only. logits (B, C), target (B,) ints, mask (B, C)."""
    logp = logits.masked_fill(~mask, float("-inf")).log_softmax(dim=1).masked_fill(~mask, 0.0)
    soft = mask.float() * smoothing / mask.sum(dim=1, keepdim=True)
    soft = soft + (1 - smoothing) * F.one_hot(target, logits.shape[1]).float()
    return -(soft * logp).sum(dim=1).mean()


def fit(
    train: Clips,
    val: Clips,
    cfg: TrainConfig,
    fc: FeatureConfig,
    labels: list[str] | None = None,
    log=print,
    on_epoch=None,
    state: Path | None = None,
) -> tuple[SERModel, dict]:
    """Train on `train` for `cfg.steps` steps, early-stop and calibrate on `val` (disjoint speakers).

    Returns (model, history). With no `val` clips the whole schedule runs, the last weight-averaged model is kept
    and its temperature stays 1 (`calibrate_folds` can fit one from cross-validation). `on_epoch(epoch, model,
    row)`, if given, is called after every epoch with the weight-averaged model and that epoch's history row.
    `state`: a file the fit saves itself to after every epoch and, when it exists, continues from."""
    rank, world = _dist()
    device = _device()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    labels = labels or _vocabulary_order(train.emotions)
    model = SERModel(dataclasses.replace(cfg.model, labels=list(labels), features=fc)).to(device)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    y = np.array([labels.index(e) for e in train.emotions])
    masks = torch.from_numpy(class_masks(train, labels, cfg.mask_absent_classes))
    weights = sampling_weights(train, cfg.corpus_weights)
    per_rank = max(1, cfg.batch_size // world)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    ac = cfg.augment
    ema = copy.deepcopy(model).eval()  # weight average over steps: steadier validation, better generalisation
    best, step, history, start = {"uar": -1.0, "epoch": 0, "state": None}, 0, [], 0
    if state is not None and state.exists():
        start, step, history, best = _restore_fit(state, model, ema, opt, sched)
        log(f"resuming after epoch {start} from {state}")
    for epoch in range(start, cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])  # same draw on every rank
        order = rng.choice(len(y), size=(cfg.steps_per_epoch, cfg.batch_size), replace=True, p=weights)
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
            target = torch.from_numpy(y[idx]).to(device)
            loss = masked_loss(net(mel), target, masks[idx].to(device), cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            _update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))  # short warm-up
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        row = {"epoch": epoch + 1, "loss": total / cfg.steps_per_epoch}
        if len(val):
            m = evaluate_logits(clip_logits(ema, val, device), val.emotions, labels)
            row.update(val_uar=m["uar"], val_accuracy=m["accuracy"])
            if m["uar"] > best["uar"]:
                best = {"uar": m["uar"], "epoch": epoch + 1, "state": copy.deepcopy(ema.state_dict())}
        else:
            best = {"uar": None, "epoch": epoch + 1, "state": ema.state_dict()}
        history.append({**row, "seconds": time.time() - t0})
        if rank == 0:
            val_text = f"  val UAR {row['val_uar']:.3f}  acc {row['val_accuracy']:.3f}" if len(val) else ""
            log(f"epoch {epoch + 1:3d}  loss {row['loss']:.3f}{val_text}  ({time.time() - t0:.0f} s)")
        if state is not None and rank == 0:
            _save_fit(state, model, ema, opt, sched, step, history, best)
        if on_epoch is not None:
            on_epoch(epoch + 1, ema, history[-1])
    model.load_state_dict(best["state"])
    if len(val):
        target = torch.tensor([labels.index(e) for e in val.emotions])
        model.config.temperature = fit_temperature(clip_logits(model, val, device), target)
    model.to("cpu").eval()
    return model, {"history": history, "best_epoch": best["epoch"], "best_val_uar": best["uar"]}


def _save_fit(path: Path, model, ema, opt, sched, step: int, history: list, best: dict) -> None:
    opt_tensors, opt_meta = resume.pack_optimizer(opt)
    tensors = {**resume.prefixed("model", model.state_dict()), **resume.prefixed("ema", ema.state_dict())}
    tensors.update(opt_tensors, rng=torch.get_rng_state())
    if best["uar"] is not None:  # with validation speakers, the best epoch's weights so far
        tensors.update(resume.prefixed("best", best["state"]))
    meta = {"step": step, "history": history, "best_uar": best["uar"], "best_epoch": best["epoch"]}
    resume.save_state(path, tensors, {**meta, **opt_meta, "scheduler": sched.state_dict()})


def _restore_fit(path: Path, model, ema, opt, sched) -> tuple[int, int, list, dict]:
    """Load what `_save_fit` wrote into the fresh objects; returns (epochs done, step, history, best)."""
    tensors, meta = resume.load_state(path)
    model.load_state_dict(resume.unprefixed("model", tensors))
    ema.load_state_dict(resume.unprefixed("ema", tensors))
    resume.unpack_optimizer(opt, tensors, meta)
    sched.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng"])
    history = meta["history"]
    if meta["best_uar"] is None:
        best = {"uar": None, "epoch": len(history), "state": ema.state_dict()}
    else:
        best = {"uar": meta["best_uar"], "epoch": meta["best_epoch"], "state": resume.unprefixed("best", tensors)}
    return len(history), meta["step"], history, best


def sampling_weights(clips: Clips, corpus_weights: dict[str, float]) -> np.ndarray:
    """Probability of drawing each clip: corpus in proportion to its weight (default 1), then each class the
    corpus has equally likely, then each of that class's clips equally likely. Shape (N,), sums to 1."""
    corpora, emotions = np.array(clips.corpora), np.array(clips.emotions)
    p = np.zeros(len(clips))
    names = sorted(set(clips.corpora))
    unknown = set(corpus_weights) - set(names)
    if unknown:
        raise ValueError(f"corpus_weights names {sorted(unknown)}, which are not in the training data {names}")
    for c in names:
        in_c = corpora == c
        classes = sorted(set(emotions[in_c]))
        for e in classes:
            cell = in_c & (emotions == e)
            p[cell] = corpus_weights.get(c, 1.0) / len(classes) / cell.sum()
    return p / p.sum()


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


@dataclass
class FitResult:
    """A finished task: its model, training history and per-corpus test metrics."""

    task: Task
    model: SERModel
    history: dict
    tested: dict  # corpus -> metrics (`evaluate_split`); {} when the task has no test clips


def _task(name: str, clips: Clips, rest: list[int], test: list[int] | None, cfg: TrainConfig, labels=None) -> Task:
    """Train on `rest` minus its validation speakers (each corpus's last `val_fraction`), test on `test`
    (None: on the validation speakers)."""
    train, val = split_by_speaker(clips, validation_speakers(clips.subset(rest), cfg.val_fraction), rest)
    test = val if test is None else test
    speakers, corpora = sorted({clips.speakers[i] for i in test}), sorted({clips.corpora[i] for i in train})
    return Task(name, train, val, test, labels, speakers, corpora)


def final_task(clips: Clips, cfg: TrainConfig, exclude: set[str] = frozenset(), log=print) -> Task:
    """The shipped model: every speaker but the validation ones (also its test set) and the `exclude`d ones
    (kept out of training entirely, e.g. the voices of the app's example clips)."""
    unknown = set(exclude) - set(clips.speakers)
    if unknown:
        raise ValueError(
            f"speakers to exclude {sorted(unknown)} are not in the data; ids look like {clips.speakers[0]}"
        )
    rest = [i for i, s in enumerate(clips.speakers) if s not in exclude]
    task = _task("final", clips, rest, None, cfg)
    held = f"validation speakers {task.test_speakers}" if task.val else "every speaker, no validation speakers"
    log(f"final model: {len(task.train)} train clips; {held}" + (f"; excluded {sorted(exclude)}" if exclude else ""))
    return task


def cv_tasks(clips: Clips, k: int, cfg: TrainConfig, log=print) -> list[Task]:
    """One task per speaker fold: test on the fold's speakers, train on the others (all corpora)."""
    tasks, labels = [], _vocabulary_order(clips.emotions)
    for i, held in enumerate(speaker_folds(clips, k)):
        rest, test = split_by_speaker(clips, held)
        t = _task(f"fold {i + 1}", clips, rest, test, cfg, labels)
        log(
            f"fold {i + 1}/{k}: {len(held)} test speakers; {len(t.train)} train / {len(t.val)} val / {len(test)} test clips"
        )
        tasks.append(t)
    return tasks


def loco_tasks(clips: Clips, cfg: TrainConfig, log=print) -> list[Task]:
    """One task per corpus: train on all the others, test on every clip of it (scored on its own classes)."""
    tasks = []
    for corpus in sorted(set(clips.corpora)):
        rest = [i for i, c in enumerate(clips.corpora) if c != corpus]
        test = [i for i, c in enumerate(clips.corpora) if c == corpus]
        classes = {clips.emotions[i] for i in test}
        if not classes & {clips.emotions[i] for i in rest}:
            raise ValueError(
                f"cannot test on {corpus} without it: none of its classes ({', '.join(sorted(classes))}) "
                "is in the other corpora"
            )
        log(f"leave-one-corpus-out: train on {sorted(set(clips.corpora) - {corpus})}, test on {corpus}")
        tasks.append(_task(f"without {corpus}", clips, rest, test, cfg))
    return tasks


_WORKER: dict = {"clips": None}  # the clips a parallel worker process was started with


def _init_worker(clips: Clips) -> None:
    _WORKER["clips"] = clips


def _fit_task(
    task: Task, cfg: TrainConfig, fc: FeatureConfig, clips: Clips | None = None, log=None, state_dir: Path | None = None
) -> FitResult:
    clips = clips if clips is not None else _WORKER["clips"]
    log = log or (lambda msg: print(f"[{task.name}] {msg}", flush=True))
    slug = task.name.replace(" ", "-")
    done = state_dir / f"{slug}.done.safetensors" if state_dir else None
    if done is not None and done.exists():  # finished before the run was interrupted
        tensors, meta = resume.load_state(done)
        model = SERModel(ModelConfig(**meta["config"]))
        model.load_state_dict(resume.unprefixed("model", tensors))
        model.eval()
        history = meta["history"]
        log("finished in an earlier run; loaded")
    else:
        t0 = time.time()
        state = state_dir / f"{slug}.safetensors" if state_dir else None
        model, history = fit(clips.subset(task.train), clips.subset(task.val), cfg, fc, task.labels, log, state=state)
        history["seconds"] = time.time() - t0
        if done is not None:
            resume.save_state(
                done, resume.prefixed("model", model.state_dict()), {"config": asdict(model.config), "history": history}
            )
            state.unlink(missing_ok=True)
    tested = evaluate_split(model, clips.subset(task.test)) if task.test else {}
    for corpus, m in tested.items():  # logged as each fit ends, so a long run's figures are never lost
        log(f"tested on {corpus}: UAR {m['uar']:.3f} ({len(m['labels'])} classes, {m['n']} clips)")
    return FitResult(task, model, history, tested)


def check_jobs(jobs: int) -> None:
    """Parallel fits (`jobs` > 1) and torchrun's processes do not mix; say so before any process group starts."""
    if jobs > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--jobs runs fits in parallel processes; under torchrun leave it at 1")


def run_fits(
    clips: Clips,
    tasks: list[Task],
    cfg: TrainConfig,
    fc: FeatureConfig,
    jobs: int = 1,
    log=print,
    state_dir: Path | None = None,
) -> list[FitResult]:
    """Run every task, `jobs` at a time in separate processes that share the CPU threads between them.

    Fits are seeded: with the same threads per fit, the results do not depend on `jobs`. With `state_dir`, each
    fit saves its state there after every epoch, and a fit already finished or begun there is continued.
    """
    check_jobs(jobs)
    if jobs <= 1 or len(tasks) <= 1:
        return [_fit_task(t, cfg, fc, clips, log, state_dir) for t in tasks]
    jobs = min(jobs, len(tasks))
    worker_cfg = dataclasses.replace(cfg, threads=max(1, (cfg.threads or torch.get_num_threads()) // jobs))
    log(f"running {len(tasks)} fits, {jobs} at a time with {worker_cfg.threads} thread(s) each")
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started its thread pool
    n = len(tasks)
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(clips,)) as pool:
        return list(pool.map(_fit_task, tasks, [worker_cfg] * n, [fc] * n, [None] * n, [None] * n, [state_dir] * n))


def calibrate_folds(results: list[FitResult], clips: Clips, log=print) -> float:
    """Temperature from cross-validation, for models trained without validation speakers.

    Each fold model gets the temperature fitted on the other folds' test logits (so its reported ECE is
    measured on speakers its temperature never saw) and its test metrics are recomputed with it; the
    return value is fitted on every fold's test logits, for the model trained on all speakers.
    """
    logits, targets = [], []
    for r in results:
        logits.append(clip_logits(r.model, clips.subset(r.task.test)))
        targets.append(torch.tensor([r.model.labels.index(clips.emotions[i]) for i in r.task.test]))
    for k, r in enumerate(results):
        others = [i for i in range(len(results)) if i != k]
        r.model.config.temperature = fit_temperature(
            torch.cat([logits[i] for i in others]), torch.cat([targets[i] for i in others])
        )
        r.tested = evaluate_split(r.model, clips.subset(r.task.test), logits[k])
    temperature = fit_temperature(torch.cat(logits), torch.cat(targets))
    log(f"temperature {temperature:.3f}, fitted on the {sum(len(t) for t in targets)} cross-validation test clips")
    return temperature


@dataclass
class Plan:
    """The fits of one training run: the model to ship, then the cross-validation and leave-one-corpus-out
    models of the same recipe that measure it."""

    final: Task
    cv: list[Task]
    loco: list[Task]
    exclude: list[str]


@dataclass
class RunResult:
    """What `run` produced: the model to ship and every figure about its recipe (the content of metrics.json)."""

    model: SERModel
    metrics: dict
    folds: list[FitResult] = field(default_factory=list)  # the cross-validation's fits, for the voice listener


def plan(
    clips: Clips, cfg: TrainConfig, folds: int = 0, cross_corpus: bool = False, exclude=frozenset(), log=print
) -> Plan:
    """The final model (every speaker but `exclude` and the validation ones), and optionally `folds`-fold speaker
    cross-validation and leave-one-corpus-out. Raises ValueError for a plan that cannot work (too few speakers)."""
    final = final_task(clips, cfg, set(exclude), log)
    cv = cv_tasks(clips, folds, cfg, log) if folds else []
    loco = loco_tasks(clips, cfg, log) if cross_corpus and len(set(clips.corpora)) > 1 else []
    return Plan(final, cv, loco, sorted(exclude))


def main_process() -> bool:
    """False on the ranks of a torchrun launch that neither log nor write files."""
    return _dist()[0] == 0


def run(
    clips: Clips,
    todo: Plan,
    cfg: TrainConfig,
    tests: Clips | None = None,
    jobs: int = 1,
    log=print,
    state_dir: Path | None = None,
) -> RunResult:
    """Run a `plan`'s fits, calibrate the final model (on its validation speakers, else on the cross-validation
    folds' test speakers) and gather the metrics. `state_dir`: where fits save and resume their state."""
    fc, t0 = cfg.model.features, time.time()
    final, cv = todo.final, todo.cv
    results = run_fits(clips, [final, *cv, *todo.loco], cfg, fc, jobs, log, state_dir)  # the longest fit first
    (final_fit,), cv_results, loco_results = results[:1], results[1 : 1 + len(cv)], results[1 + len(cv) :]
    model = final_fit.model
    if cv and not final.val:  # no validation speakers: calibrate on the folds' held-out speakers instead
        model.config.temperature = calibrate_folds(cv_results, clips, log)
    elif not final.val:
        log("no validation speakers and no --folds: the temperature stays 1 (uncalibrated)")
    metrics = {}
    if cv_results:
        metrics["cross_validation"] = summarize_cross_validation(cv_results, log)
    if loco_results:
        metrics["leave_one_corpus_out"] = summarize_cross_corpus(loco_results, log)
    metrics["validation"] = final_fit.tested
    history = dict(final_fit.history)
    final_seconds = history.pop("seconds")
    if tests is not None:
        metrics["test"] = evaluate_split(model, tests)
    if todo.exclude:  # voices the final model never heard: a small, honest check of the model itself
        metrics["excluded_speakers_test"] = evaluate_split(
            model, clips.subset([i for i, s in enumerate(clips.speakers) if s in set(todo.exclude)])
        )
    metrics["training"] = {
        **history,
        "final_fit_seconds": final_seconds,
        "all_fits_seconds": time.time() - t0,
        "jobs": jobs,
        "steps": cfg.steps,
        "train_clips": len(final.train),
        "train_speakers": sorted({clips.speakers[i] for i in final.train}),
        "excluded_speakers": todo.exclude,
        "validation_speakers": final.test_speakers,
        "temperature": model.config.temperature,
        "temperature_fitted_on": "validation speakers"
        if final.val
        else "cross-validation test speakers"
        if cv
        else "nothing (uncalibrated)",
    }
    return RunResult(model, metrics, cv_results)


def save_checkpoint(
    model: SERModel, out: Path, cfg: TrainConfig, data_args: list[str], metrics: dict, recipe: dict | None = None
) -> None:
    """Write the checkpoint folder: weights + config, metrics.json, train_config.json (with train.py's `recipe`
    options, so that `train.py --recipe` repeats the run), confusion PNGs, model card. The voice listener's files
    are written before, by `voice_training.train_voice`; without a `voice` section in `metrics` any stale ones go."""
    from .card import render_card
    from .voice import LISTENER_FILES, load_voice

    out.mkdir(parents=True, exist_ok=True)
    stale = list(out.glob("confusion_matrix*.png"))
    stale += [out / f for f in LISTENER_FILES if "voice" not in metrics and (out / f).exists()]
    for f in stale:
        f.unlink()
    model.voice = load_voice(out) if "voice" in metrics else None  # the card describes the listener as saved
    (out / "README.md").write_text(render_card(model, metrics, data_args, cfg.augment is not None))
    model.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "train_config.json").write_text(
        json.dumps({**resolved_config(cfg, data_args), **({"args": recipe} if recipe else {})}, indent=2)
    )
    shown = {
        c: (m["fused"], f"{c}: new speakers, both listeners ({m['fused']['folds']} folds)")
        for c, m in ((metrics.get("voice") or {}).get("cross_validation") or {}).items()
    }  # the app's answer
    for corpus, m in (metrics.get("cross_validation") or metrics.get("validation", {}) if not shown else {}).items():
        shown[corpus] = (m, f"{corpus}: held-out speakers" + (f" ({m['folds']} folds)" if "folds" in m else ""))
    for corpus, (m, title) in shown.items():
        plots.save(
            plots.confusion(np.array(m["confusion"]), m["labels"], title), out / f"confusion_matrix_{corpus}.png"
        )


def resolved_config(cfg: TrainConfig, data_args: list[str]) -> dict:
    """Every setting of a run, as written to train_config.json and read back by `TrainConfig(**...)`."""
    resolved = {"data": data_args, **asdict(cfg)}
    for derived in ("labels", "temperature"):  # set by the data and by calibration, recorded in config.json
        resolved["model"].pop(derived)
    return resolved
