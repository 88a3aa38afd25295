"""`python -m ser predict | evaluate | card | export | offline | push`: batch prediction, evaluation, the model card,
ONNX export and the offline page, Hub upload."""

import argparse
import contextlib
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import classroom, plots
from .audio import AudioError, find_audio
from .corpora import PARSERS, parse_data_arg
from .data import load_corpus
from .evaluate import evaluate_logits, listener_log_probs
from .hub import ModelError, load_model, push
from .inference import analyse_file
from .timeline import analyse_over_time
from .voice import MIN_SPREAD as MIN_BATCH


def first_sentence(note: str) -> str:
    """A note's first sentence, for the one-line table."""
    head, sep, _ = note.partition(". ")
    return head + "." if sep else note


def cmd_predict(args) -> int:
    model = load_model(args.model)
    files = find_audio(args.paths)
    if not files:
        print("error: no audio files found; give audio files or folders containing them", file=sys.stderr)
        return 2
    reference = batch_reference(model, files) if args.adapt else None
    failed = 0
    writer = csv.writer(sys.stdout) if args.format == "csv" else None
    if writer:
        writer.writerow(["path", "label", *model.labels, "notes", *(["segments"] if args.timeline else []), "error"])
    for path in files:
        try:
            if args.timeline:
                a, over_time = analyse_over_time(model, path)
                segments, error = over_time.segments, None
            else:
                a, segments, error = analyse_file(model, path, reference), None, None
        except AudioError as e:
            a, segments, error = None, None, str(e)
            failed += 1
        timed = {"segments": [s.to_dict() for s in segments]} if segments is not None else {}
        if args.format == "jsonl":
            row = (
                {"label": a.label, "probs": a.probs, "listeners": a.listeners, "notes": a.notes, **timed}
                if a
                else {"error": error}
            )
            print(json.dumps({"path": str(path), **row}), flush=True)
        elif writer:
            probs = [f"{a.probs[k]:.4f}" for k in model.labels] if a else [""] * len(model.labels)
            extra = [json.dumps(timed["segments"]) if timed else ""] if args.timeline else []
            writer.writerow([path, a.label if a else "", *probs, " ".join(a.notes) if a else "", *extra, error or ""])
        else:
            summary = f"{a.label:<10} {a.probs[a.label]:6.1%}" if a else f"error: {error}"
            notes = "".join(f"  note: {first_sentence(n)}" for n in a.notes) if a else ""
            print(f"{str(path):<50} {summary}{notes}", flush=True)
            for s in segments or []:
                shown = f"{s.label:<10} {s.confidence:6.1%}" if s.confidence is not None else s.label
                print(f"  {s.start:7.1f} - {s.end:7.1f} s  {shown}", flush=True)
    if failed:
        print(f"{failed} of {len(files)} file(s) could not be used", file=sys.stderr)
    return 1 if failed else 0


def batch_reference(model, files: list[Path]):
    """The voice features of every usable file, as one batch's Reference (`predict --adapt`). Raises ValueError
    when the model cannot adapt or too few files are usable."""
    if model.voice is None or "batch" not in model.voice.adapted:
        raise ValueError("--adapt needs a model with a voice listener that adapts to a batch (the shipped one does)")
    feats = []
    for path in files:
        with contextlib.suppress(AudioError):
            f = analyse_file(model, path).voice_features
            if f is not None:
                feats.append(f)
    if len(feats) < MIN_BATCH:
        raise ValueError(
            f"--adapt needs at least {MIN_BATCH} usable recordings from one place to compare with; "
            f"{len(feats)} of the {len(files)} file(s) are: give more, or leave out --adapt"
        )
    print(f"adapting to this batch: {len(feats)} recordings", file=sys.stderr)
    return model.voice.reference("batch", np.stack(feats))


def known_voices(model) -> set[str] | None:
    """The speakers the model was trained on ("corpus:speaker", or "corpus:*" for every one of a corpus), from the
    metrics.json and train_config.json in its folder; None when they do not say."""
    files = {n: model.source_dir / n for n in ("metrics.json", "train_config.json") if model.source_dir}
    read = {n: json.loads(f.read_text()) if f.is_file() else {} for n, f in files.items()}
    voice = model.voice.info if model.voice is not None else None
    return classroom.train_speakers(read.get("metrics.json", {}), read.get("train_config.json", {}).get("data"), voice)


def cmd_evaluate(args) -> int:
    model = load_model(args.model)
    fc = model.feature_config
    trained_on = known_voices(model)
    report = {"model": str(args.model or "default"), "protocol": "", "corpora": {}}
    for arg in args.data:
        corpus, root = parse_data_arg(arg)
        clips = load_corpus(root, corpus, fc, args.cache_dir, log=lambda m: print(m, file=sys.stderr))
        if args.speakers:
            held = set(args.speakers.split(","))
            keep = [i for i, s in enumerate(clips.speakers) if s in held or s.split(":", 1)[1] in held]
            if not keep:
                raise ValueError(
                    f"no {corpus} clips from speakers {args.speakers}; speaker ids look like {clips.speakers[0]}"
                )
            clips = clips.subset(keep)
        logps = listener_log_probs(model, clips, args.cache_dir)
        answer = logps.get("fused", logps["cnn"])
        m = evaluate_logits(torch.from_numpy(answer), clips.emotions, model.labels)
        if len(logps) > 1:
            m["listeners"] = {
                k: evaluate_logits(torch.from_numpy(v), clips.emotions, model.labels)
                for k, v in logps.items()
                if k != "fused"
            }
        known = [s for s in clips.speakers if trained_on and classroom.heard(s, corpus, trained_on)]
        m["clips_of_training_speakers"] = len(known) if trained_on is not None else None
        if known or trained_on is None:
            said = (
                f"{len(known)} of {len(clips.speakers)} {corpus} clips are of the {len(set(known))} speaker(s) the "
                "model was trained on"
                if known
                else f"the model does not say which speakers it was trained on, so some of these {corpus} clips may "
                "be of voices it knows"
            )
            print(f"warning: {said}: it knows their voices, so the figures below are higher than a new voice would "
                  "get; test on other speakers with --speakers", file=sys.stderr)  # fmt: skip
        report["corpora"][corpus] = m
        both = "".join(f"; {k} alone {v['uar']:.3f}" for k, v in m.get("listeners", {}).items())
        print(
            f"{corpus}: {m['n']} clips, {len(m['labels'])} classes  accuracy {m['accuracy']:.3f}  "
            f"UAR {m['uar']:.3f}  macro-F1 {m['macro_f1']:.3f}  (chance UAR {m['chance_uar']:.3f}{both})"
        )
        for lab, pc in m["per_class"].items():
            print(f"  {lab:<10} precision {pc['precision']:.3f}  recall {pc['recall']:.3f}  n={pc['support']}")
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            plots.save(
                plots.confusion(np.array(m["confusion"]), m["labels"], f"{corpus}"),
                Path(args.out) / f"confusion_{corpus}.png",
            )
    report["protocol"] = (
        "every clip of each corpus given" if not args.speakers else f"only speakers {args.speakers}"
    ) + "; labels the model knows but a corpus lacks are excluded from the argmax"
    if args.out:
        (Path(args.out) / "metrics.json").write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}/metrics.json and confusion PNGs")
    return 0


def cmd_card(args) -> int:
    """Write a checkpoint folder's model card (README.md) again from its metrics.json and train_config.json."""
    from .card import render_card

    folder = Path(args.checkpoint)
    model = load_model(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "train_config.json").read_text())
    augmented = config.get("augment") is not None
    (folder / "README.md").write_text(render_card(model, metrics, config.get("data", []), augmented))
    print(f"wrote {folder / 'README.md'}")
    if args.readme:
        from .card import write_readme_results

        try:
            write_readme_results(args.readme, metrics)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote the results in {args.readme}")
    return 0


def cmd_export(args) -> int:
    """One ONNX graph from 16 kHz samples to every listener's probabilities (ser.export), checked against PyTorch."""
    from .export import check, export

    model = load_model(args.checkpoint)
    out = export(model, args.out)
    worst = check(model, out)
    size = out.stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MiB); onnxruntime and PyTorch differ by {worst:.1e} at most on test audio")
    return 0


def cmd_offline(args) -> int:
    """The offline page (ser.offline): a static folder in which the model runs in the browser; its graph checked
    against PyTorch, as `export` checks it."""
    from .export import check
    from .offline import MODEL, build

    model = load_model(args.model)
    out = build(model, args.out)
    worst = check(model, out / MODEL)
    size = (out / MODEL).stat().st_size / 2**20
    print(f"wrote the offline page to {out} (model {size:.1f} MiB; it answers as PyTorch does, to {worst:.0e}); "
          f"serve the folder from any static host, e.g. python -m http.server -d {out}")  # fmt: skip
    return 0


def cmd_push(args) -> int:
    url = push(args.checkpoint, args.repo_id, private=args.private)
    print(f"pushed {args.checkpoint} to {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ser", description="Speech emotion recognition: predict, evaluate, push."
    )
    sub = p.add_subparsers(dest="command", required=True)
    model_help = (
        "checkpoint folder, or Hugging Face Hub id (user/name) or URL; default: the shipped checkpoints/default"
    )

    pr = sub.add_parser("predict", help="emotion probabilities for audio files or folders")
    pr.add_argument("paths", nargs="+", help="audio files, or folders searched recursively")
    pr.add_argument("--model", default=None, help=model_help)
    pr.add_argument("--format", choices=["jsonl", "csv", "table"], default="jsonl")
    pr.add_argument(
        "--timeline",
        action="store_true",
        help="also analyse the whole recording in windows over time: each jsonl line gets a 'segments' list "
        "(start and end in seconds, label: an emotion or 'silence', confidence)",
    )
    pr.add_argument(
        "--adapt",
        action="store_true",
        help="treat the files as one batch from one place (a class, a microphone, a room): the voice listener "
        "compares each with all of them, which helped on voices and rooms it never heard; needs at least "
        f"{MIN_BATCH} files, and assumes they are many speakers in many moods",
    )
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser("evaluate", help="accuracy, UAR, macro-F1 and confusion matrix on a labelled corpus")
    ev.add_argument("--model", default=None, help=model_help)
    ev.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help=f"corpus to test on, NAME one of {', '.join(PARSERS)} (folder: root/<emotion>/<speaker>/...); repeatable",
    )
    ev.add_argument(
        "--speakers",
        default="",
        help="comma-separated speaker ids to test on (e.g. 19,20): use the speakers the model was not trained on",
    )
    ev.add_argument("--out", default=None, help="folder for metrics.json and confusion-matrix PNGs")
    ev.add_argument("--cache-dir", default=".cache/ser", help="decoded-audio cache")
    ev.set_defaults(func=cmd_evaluate)

    ca = sub.add_parser("card", help="write a checkpoint's model card again from its metrics.json")
    ca.add_argument("checkpoint", help="checkpoint folder with metrics.json and train_config.json")
    ca.add_argument("--readme", metavar="FILE", help="also write its results into FILE's results block (README.md)")
    ca.set_defaults(func=cmd_card)

    ex = sub.add_parser("export", help="the model as one ONNX graph, from 16 kHz samples to probabilities")
    ex.add_argument("checkpoint", help="checkpoint folder, or Hub id or URL")
    ex.add_argument("out", help="the .onnx file to write")
    ex.set_defaults(func=cmd_export)

    of = sub.add_parser("offline", help="a static page in which the model runs in the browser (no recording is sent)")
    of.add_argument("out", help="the folder to write the page to (index.html, model.onnx, ...)")
    of.add_argument("--model", default=None, help=model_help)
    of.set_defaults(func=cmd_offline)

    pu = sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub")
    pu.add_argument("checkpoint", help="checkpoint folder (config.json + model.safetensors + model card)")
    pu.add_argument("repo_id", help="USER/NAME on the Hub")
    pu.add_argument("--private", action="store_true")
    pu.set_defaults(func=cmd_push)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ModelError, ValueError, AudioError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
