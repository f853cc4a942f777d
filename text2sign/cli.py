"""``python -m text2sign``: train, sample, data, config, doctor.

Every user-facing error (config, data, run dir, usage) is one line on stderr and exit code 2; see
``text2sign.errors`` for all exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from text2sign.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError

SYNTH_FORMATS = ("gif", "mp4", "webm", "frames", "how2sign", "phoenix")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line + exit 2, like every other usage error
        raise UsageError(f"{self.prog}: {message}")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="base YAML (default: packaged base)")
    p.add_argument("--profile", default="tiny", help="size preset: tiny | full")
    p.add_argument("--variant", default="baseline", help="ablation variant overlay")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set train.lr=3e-4 (repeatable)")  # fmt: skip


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None,
                   help="cuda | cuda:N | cpu (default: CUDA when there is one; under torchrun "
                        "each rank takes LOCAL_RANK mod the visible devices and samples its share)")  # fmt: skip


def _inference_env(requested: str | None):
    """torch.distributed under torchrun (no DeepSpeed), CPU threads from the allocation, and the
    device: ``requested`` (validated) or this rank's default. Returns (device, is_main)."""
    import torch

    from text2sign.runtime import distributed, threads

    env = distributed.init(deepspeed_backend=False)
    threads.apply()
    if requested is None:
        return env.device, env.is_main
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise UsageError(f"--device {requested!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {requested}: no CUDA device is visible to this process")
    if device.type == "cuda" and device.index is None:
        device = env.device
    return device, env.is_main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="text2sign", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train one run (resumes when the run dir has a checkpoint)")
    _add_config_args(p)
    p.add_argument("--run-dir", type=Path, required=True)

    p = sub.add_parser("sample", help="sample a video for a caption from a run's latest checkpoint")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--caption", required=True)
    p.add_argument(
        "--out", type=Path, default=None, help="GIF path (default: RUN/samples/cli_*.gif)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: config)")
    p.add_argument("--guidance-scale", type=float, default=None)
    _add_device_arg(p)

    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    q = dsub.add_parser("synth", help="generate the embedded synthetic dataset")
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--num", type=int, default=384)
    q.add_argument("--frames", type=int, default=8)
    q.add_argument("--size", type=int, default=32)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--signers", type=int, default=None,
                   help="signers (default 32: the validation split then has enough for a test)")  # fmt: skip
    q.add_argument("--format", default="gif", choices=SYNTH_FORMATS,
                   help="gif | mp4 | webm | frames: a flat folder (+ manifest.csv); how2sign | "
                        "phoenix: laid out as those datasets ship (docs/data.md)")  # fmt: skip
    q = dsub.add_parser(
        "person",
        help="clips of a real person (skimage's astronaut) under known "
        "camera motions, captioned with the motion: a folder dataset",
    )
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--frames", type=int, default=8)
    q.add_argument("--size", type=int, default=64)
    q.add_argument("--signers", type=int, default=3, help="each a small offset of every path")
    q = dsub.add_parser("check", help="counts, frame statistics and bad entries of a dataset")
    q.add_argument("root", type=Path, help="a dataset folder or a manifest (.csv, .jsonl)")
    q.add_argument("--strict", action="store_true", help="bad entries are an error (exit 2)")
    for name, text in (
        (
            "prepare",
            "decode a dataset (a shard of it) into the cache and estimate "
            "its keypoints: a task of the prepare stage",
        ),
        ("keypoints", "MediaPipe keypoints of every reference clip (cached)"),
    ):
        q = dsub.add_parser(name, help=text)
        q.add_argument("root", help="dataset folder or manifest (sets data.root)")
        _add_config_args(q)
        q.add_argument("--workers", type=int, default=None, help="default: the allocation's CPUs")
        if name == "keypoints":
            q.add_argument("--split", choices=("all", "train", "val"), default="all")
            continue
        q.add_argument("--task", type=int, default=0, help="this shard (0-based)")
        q.add_argument("--tasks", type=int, default=None, help="shards (default prepare.tasks)")
        q.add_argument("--no-keypoints", action="store_true", help="decode only")
    q = dsub.add_parser("import", help="write a manifest over How2Sign or PHOENIX-2014T")
    isub = q.add_subparsers(dest="dataset", required=True, parser_class=_Parser)
    r = isub.add_parser("how2sign", help="how2sign_realigned_<split>.csv + clips (or raw videos)")
    r.add_argument("--csv", type=Path, required=True, help="how2sign_realigned_<split>.csv")
    group = r.add_mutually_exclusive_group(required=True)
    group.add_argument("--clips", type=Path, help="folder of <SENTENCE_NAME>.mp4 sentence clips")
    group.add_argument("--raw", type=Path, help="folder of <VIDEO_NAME>.mp4 raw videos (cut)")
    r.add_argument("--out", type=Path, default=Path("how2sign.csv"), help="manifest to write")
    r = isub.add_parser("phoenix", help="PHOENIX-2014T frame folders + corpus of a split")
    r.add_argument("--root", type=Path, required=True, help="the PHOENIX-2014-T folder")
    r.add_argument("--split", default="train", help="train | dev | test")
    r.add_argument("--text", default="translation", choices=("translation", "orth"),
                   help="the caption: the German translation or the glosses")  # fmt: skip
    r.add_argument("--out", type=Path, default=None, help="manifest (default phoenix-SPLIT.csv)")
    for r in isub.choices.values():
        r.add_argument("--force", action="store_true", help="replace an existing --out file")
        r.add_argument("--strict", action="store_true", help="bad rows are an error (exit 2)")

    p = sub.add_parser("config", help="print the resolved config (or the key reference)")
    _add_config_args(p)
    p.add_argument("--keys", action="store_true", help="print every key with default and meaning")
    p.add_argument(
        "--markdown", action="store_true", help="with --keys: docs/configuration.md's table"
    )

    p = sub.add_parser("evaluate", help="sample validation clips and measure every metric")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--num-videos", type=int, default=None, help="default: eval.num_videos")
    _add_device_arg(p)

    p = sub.add_parser("collect", help="comparison tables + report of a study's runs")
    p.add_argument("study", type=Path, help="results/<study>")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots in report.md")
    p.add_argument("--no-html", action="store_true", help="no report.html")
    p.add_argument(
        "--video-seed",
        type=int,
        default=None,
        metavar="K",
        help="report.html shows seed K's videos (default: each point's lowest DTW-MJE)",
    )

    sub.add_parser("doctor", help="versions, GPUs (torch + NVML), DeepSpeed accelerator, paths")
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from text2sign.config import load_config
    from text2sign.training.train import train

    cfg = load_config(
        profile=args.profile,
        variant=args.variant,
        config_file=args.config,
        overrides=args.overrides,
    )
    return train(cfg, args.run_dir)


def _cmd_sample(args: argparse.Namespace) -> int:
    from text2sign.evaluation.inference import sample_shared
    from text2sign.evaluation.sampling import (
        initial_noise,
        load_run_for_sampling,
        make_diffusion,
        slug,
        write_gif,
    )

    device, is_main = _inference_env(args.device)
    cfg, built, kind = load_run_for_sampling(args.run_dir)
    videos = sample_shared(
        built, make_diffusion(cfg), [args.caption], initial_noise(cfg, 1, args.seed), cfg=cfg,
        device=device, steps=args.steps, guidance_scale=args.guidance_scale,
    )  # fmt: skip
    if not is_main:
        return EXIT_OK
    out = args.out or args.run_dir / "samples" / f"cli_{slug(args.caption)}_seed{args.seed}.gif"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_gif(out, videos[0])
    print(f"{out} ({kind} weights, {videos.shape[1]} frames {videos.shape[2]}x{videos.shape[3]}, "
          f"sampled on {device})")  # fmt: skip
    return EXIT_OK


def _cmd_synth(args: argparse.Namespace) -> int:
    from text2sign.data import shaped
    from text2sign.data.synth import generate

    if args.num < 1:
        raise UsageError(f"data synth: --num must be >= 1, got {args.num}")
    synth = dict(frames=args.frames, size=args.size, seed=args.seed)
    if args.signers is not None:
        synth["num_signers"] = args.signers
    if args.format == "how2sign":
        csv_path, clips = shaped.write_how2sign(args.out, args.num, **synth)
        print(f"wrote {args.num} How2Sign-shaped clips: {csv_path}, {clips}")
    elif args.format == "phoenix":
        corpus = shaped.write_phoenix(args.out, args.num, **synth)
        print(f"wrote {args.num} PHOENIX-shaped clips: {args.out} ({corpus.name})")
    else:
        names = generate(args.out, args.num, fmt=args.format, **synth)
        print(f"wrote {len(names)} {args.format} clips to {args.out} (+ manifest.csv)")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from text2sign.data.importers import import_how2sign, import_phoenix
    from text2sign.data.manifest import check_manifest_name

    out = check_manifest_name(args.out or Path(f"phoenix-{args.split}.csv"))
    if out.exists() and not args.force:
        raise UsageError(f"data import: {out} exists; pass --force to replace it")
    if args.dataset == "how2sign":
        n = import_how2sign(args.csv, out, clips=args.clips, raw=args.raw, strict=args.strict)
    else:
        n = import_phoenix(args.root, args.split, out, text=args.text, strict=args.strict)
    print(f"wrote {out}: {n} rows (use it as data.root; nothing was copied)")
    return EXIT_OK


def _cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        return _cmd_synth(args)
    if args.data_command == "import":
        return _cmd_import(args)
    if args.data_command == "person":
        from text2sign.data.person import write_folder

        if min(args.frames, args.size, args.signers) < 1:
            raise UsageError("data person: --frames, --size and --signers must be >= 1")
        names = write_folder(args.out, frames=args.frames, size=args.size, signers=args.signers)
        print(f"wrote {len(names)} clips of a real person to {args.out}")
        return EXIT_OK
    if args.data_command in ("prepare", "keypoints"):
        return _cmd_prepare(args)
    from text2sign.data.check import check_report

    print(check_report(args.root, strict=args.strict, progress=True))
    return EXIT_OK


def _cmd_prepare(args: argparse.Namespace) -> int:
    """``data prepare`` (one shard) and ``data keypoints`` (everything, or one split)."""
    from text2sign.config import load_config
    from text2sign.pose import dataset
    from text2sign.pose import env as pose_env
    from text2sign.runtime import threads

    cfg = load_config(profile=args.profile, variant=args.variant, config_file=args.config,
                      overrides=[*args.overrides, f"data.root={args.root}"])  # fmt: skip
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"data {args.data_command}: --workers must be >= 1, got {args.workers}")
    workers = args.workers or threads.allocation()[0]
    if args.data_command == "keypoints" and args.split != "all":
        done, out, asked = dataset.split_keypoints(cfg, pose_env.find(), workers=workers,
                                                   split=args.split)  # fmt: skip
        print(dataset.keypoints_line(done, out, asked))
        return EXIT_FAILURE if done.failed else EXIT_OK
    keypoints = args.data_command == "keypoints" or not args.no_keypoints
    tasks = getattr(args, "tasks", None) or cfg.prepare.tasks
    task = getattr(args, "task", 0)
    env = pose_env.find() if keypoints and not dataset.exact(cfg) else None
    p = dataset.prepare(cfg, env, task=task, tasks=tasks, workers=workers, keypoints=keypoints)
    limit = cfg.prepare.max_failed_share
    print(dataset.summary(p, task=task, tasks=tasks, limit=limit))
    return EXIT_FAILURE if p.failed_share > limit else EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    from text2sign.config import dump_yaml, load_config
    from text2sign.config_docs import describe_fields

    if args.keys and args.markdown:
        from text2sign.config_docs import reference_markdown

        print(reference_markdown(), end="")
        return EXIT_OK
    if args.keys:
        for key, default, desc in describe_fields():
            print(f"{key:32s} {default:26s} {desc}")
        return EXIT_OK
    cfg = load_config(
        profile=args.profile,
        variant=args.variant,
        config_file=args.config,
        overrides=args.overrides,
    )
    print(f"# config hash {cfg.hash()}")
    print(dump_yaml(cfg), end="")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from text2sign.evaluation.evaluate import evaluate, format_metrics

    device, is_main = _inference_env(args.device)
    result = evaluate(args.run_dir, num_videos=args.num_videos, device=device)
    if is_main:
        print(format_metrics(result))
        print(
            f"inference on {result['inference_device']}, {len(result['inference_ranks'])} rank(s)"
        )
    return EXIT_OK


def _cmd_collect(args: argparse.Namespace) -> int:
    from text2sign.study.collect import collect

    collect(args.study, plots=not args.no_plots, html=not args.no_html, video_seed=args.video_seed)
    print((args.study / "comparison_table.md").read_text(), end="")
    print(f"tables and report: {args.study}/comparison_table.{{csv,md,tex}}, "
          f"{args.study}/comparison_long.csv, {args.study}/report.md"
          + ("" if args.no_html else f", {args.study}/report.html"))  # fmt: skip
    return EXIT_OK


def _cmd_doctor(_: argparse.Namespace) -> int:
    from text2sign.doctor import report

    print(report())
    return EXIT_OK


COMMANDS = {"train": _cmd_train, "sample": _cmd_sample, "data": _cmd_data, "config": _cmd_config,
            "collect": _cmd_collect, "evaluate": _cmd_evaluate, "doctor": _cmd_doctor}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"text2sign: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Destroy torch.distributed's group before exit: left to interpreter shutdown, its threads
    were seen to abort the process ('terminate called without an active exception', exit -6)
    after a clean one-line error."""
    if "torch" not in sys.modules:  # the command never imported torch
        return
    from text2sign.runtime.distributed import shutdown

    shutdown()


if __name__ == "__main__":
    sys.exit(main())
