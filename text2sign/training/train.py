"""Train one run (one variant × one seed) with DeepSpeed: ZeRO 0–3, bf16, EMA, exact resume.

The run's life, one function per phase (``_train`` lists them):

1. ``train``: distributed set-up, CPU threads from the allocation, claim the run dir (lock +
   config hash);
2. ``_set_up``: data, model, DeepSpeed engine, EMA;
3. ``_resume``: the latest checkpoint (same world size only);
4. ``_open_outputs``: telemetry, metric writers, metadata, status RUNNING;
5. ``_loop``: the steps (NaN guard, signals, EMA, metrics, samples, checkpoints);
6. ``_end_of_run``: summary and final status, then the evaluation shared by every rank.

What happens inside one step lives in :mod:`text2sign.training.step`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from text2sign import atomic
from text2sign.config import Config
from text2sign.data import open_dataset
from text2sign.data.stream import MicroBatchSampler, step_generator
from text2sign.errors import EXIT_FAILURE, EXIT_OK, EXIT_REQUEUE, UsageError
from text2sign.evaluation.sample_writer import SampleWriter
from text2sign.evaluation.sampling import make_diffusion
from text2sign.models.build import build_model
from text2sign.models.ema import EMA
from text2sign.models.text_encoder import build_text_encoder
from text2sign.run.metadata import collect_metadata
from text2sign.run.rundir import RunDir, Stopwatch, now_iso
from text2sign.run.runlock import claim, job_identity
from text2sign.run.summary import Progress, print_startup, write_summary
from text2sign.run.telemetry import Telemetry
from text2sign.run.writers import CSVWriter, JSONLWriter, MetricsLogger, TensorBoardWriter
from text2sign.runtime import distributed, process, threads
from text2sign.training import checkpoint, rung
from text2sign.training.engine import (
    build_optimizer,
    deepspeed_config,
    gathered_weights,
    maybe_compile,
    optimizer_label,
)
from text2sign.training.step import (
    NonFinite,
    StopFlag,
    collate,
    grad_norm,
    micro_step_loss,
    total_steps,
)


def train(cfg: Config, run_dir: Path) -> int:
    """Run (or resume) training; return the process exit code (see text2sign.errors).

    Every way the run ends is written to status.json by rank 0 (state, cause, one-line reason):
    a start-up error (exit 2) and a crash as FAILED, a NaN as FAILED at its step, a signal as
    PREEMPTED or CANCELLED. What kills the process outright (SIGKILL, OOM) the launcher writes.
    """
    stop = StopFlag()
    if cfg.train.deterministic:
        process.deterministic()
    env = distributed.init()
    cpus = threads.apply(cfg.data.num_workers)
    process.quiet_libraries()
    run = RunDir(run_dir)
    lock = distributed.on_main_then_all(lambda: claim(run, cfg), lambda: None)
    try:
        if run.completed and not rung.more_steps(run, cfg):
            if env.is_main:
                print(f"[text2sign] {run_dir}: already COMPLETED; nothing to train", flush=True)
            if cfg.eval.enabled and rung.stopped_at(run) is not None:
                rung.evaluate_rung(run, cfg, env, rung.stopped_at(run), missing_only=True)
            elif cfg.eval.enabled and not run.evaluated:
                _evaluate_at_end(run, cfg, env)  # the job that trained it ended before evaluating
            return EXIT_OK
        return _train(cfg, run, env, stop, cpus)
    except BaseException as e:
        if env.is_main and not run.ended:  # unless this attempt already said how it ended
            cause = "usage" if isinstance(e, UsageError) else "crash"
            run.write_status("FAILED", reason=process.one_line(e), cause=cause)
        raise
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: Config, run: RunDir, env, stop: StopFlag, cpus: threads.Threads) -> int:
    """The run's life: set up → resume → open the outputs → step loop → end of run."""
    s = _set_up(cfg, run, env)
    step, resumed = _resume(s)
    out = _open_outputs(s, step, resumed, cpus)
    end = _loop(s, out, step, stop)
    return _end_of_run(s, out, end)


@dataclass
class _Setup:
    """What the step loop works with, built once per attempt."""

    cfg: Config
    run: RunDir
    env: Any
    train_ds: Any
    val_ds: Any
    micro_per_epoch: int
    n_steps: int  # the final budget: the LR schedule and the data order never see a rung's
    target: int  # where this call stops: n_steps, or a rung's budget (halving.stop_at)
    built: Any
    counts: dict[str, int]
    engine: Any
    scheduler: Any
    optimizer: str  # what build_optimizer chose, for metadata.json
    diffusion: Any
    ema: EMA | None
    dtype: torch.dtype


@dataclass
class _Outputs:
    """Where the loop writes: metrics, telemetry, samples, progress; and its data stream."""

    telemetry: Telemetry
    logger: MetricsLogger
    meta: dict[str, Any]
    sampler: SampleWriter
    progress: Progress
    stream: MicroBatchSampler
    batches: Any
    clock: Stopwatch = field(default_factory=Stopwatch)


@dataclass
class _End:
    """How the loop ended: the step reached, the exit code and the status to write."""

    step: int
    exit_code: int = EXIT_OK
    state: str = "COMPLETED"
    cause: str = ""
    reason: str = ""


def _set_up(cfg: Config, run: RunDir, env) -> _Setup:
    """Data, model and DeepSpeed engine (+ EMA). Collective."""
    torch.manual_seed(cfg.train.seed)  # model init is identical on every rank and every resume

    # Data: rank 0 decodes the cache once; the others then memory-map it.
    data_kwargs = dict(
        num_frames=cfg.data.num_frames,
        size=cfg.data.image_size,
        val_fraction=cfg.data.val_fraction,
        cache_dir=cfg.data.cache_dir,
        strict=cfg.data.strict,
        seed=cfg.data.split_seed,
        frame_sampling=cfg.data.frame_sampling,
    )
    train_ds, val_ds = distributed.on_main_then_all(
        lambda: open_dataset(cfg.data.root, **data_kwargs)
    )
    micro_per_epoch = MicroBatchSampler(
        len(train_ds), batch_size=cfg.train.batch_size, rank=0, world_size=env.world_size, seed=0
    ).per_epoch
    n_steps = total_steps(cfg, micro_per_epoch)

    # Model: the tiny tokenizer/encoder is built and saved once, then loaded by all.
    captions = sorted(set(train_ds.captions) | set(val_ds.captions))
    distributed.on_main_then_all(
        lambda: build_text_encoder(cfg.text.encoder, max_tokens=cfg.text.max_tokens,
                                   captions=captions, save_dir=run.text_encoder),
        lambda: None,
    )  # fmt: skip
    built = build_model(cfg, run.path, captions)
    built.text.to(env.device)

    # DeepSpeed engine.
    import deepspeed

    maybe_compile(built.model, cfg)
    optimizer = build_optimizer(built.model, cfg, env.device)
    warmup = cfg.train.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )
    engine, _, _, _ = deepspeed.initialize(
        model=built.model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(cfg, env.world_size),
    )
    ema = EMA.from_engine(engine, cfg.ema.decay, cfg.ema.update_every) if cfg.ema.enabled else None
    return _Setup(
        cfg=cfg, run=run, env=env, train_ds=train_ds, val_ds=val_ds,
        micro_per_epoch=micro_per_epoch, n_steps=n_steps,
        target=min(n_steps, cfg.halving.stop_at or n_steps),
        built=built, counts=built.parameter_counts(), engine=engine, scheduler=scheduler,
        optimizer=optimizer_label(optimizer),
        diffusion=make_diffusion(cfg), ema=ema,
        dtype=torch.bfloat16 if cfg.train.precision == "bf16" else torch.float32,
    )  # fmt: skip


def _resume(s: _Setup) -> tuple[int, bool]:
    """(step to start from, whether a checkpoint was loaded). Same world size only."""
    tag = s.run.latest_checkpoint()
    if tag is None:
        return 0, False
    checkpoint.check_world_size(s.run.checkpoints, tag, s.env.world_size)
    client = checkpoint.load(
        s.engine, s.run.checkpoints, tag, rank=s.env.rank, config_hash=s.cfg.hash()
    )
    if s.ema is not None:
        s.ema.load_state_dict(client["ema"])
    return int(client["step"]), True


def _open_outputs(s: _Setup, step: int, resumed: bool, cpus: threads.Threads) -> _Outputs:
    """Telemetry, metric writers, metadata and status; every attempt restarts them at ``step``."""
    cfg, run, env = s.cfg, s.run, s.env
    telemetry_csv = (
        run.gpu_memory_csv if env.is_main else run.path / f"gpu_memory.rank{env.rank}.csv"
    )
    telemetry = Telemetry(
        telemetry_csv, interval_s=cfg.telemetry.interval_s, device=env.device, rank=env.rank
    )
    telemetry.step = step
    telemetry.start()
    logger, meta = MetricsLogger([]), {}
    per_rank = distributed.gather_to_main({"rank": env.rank, **cpus.to_json()})
    if env.is_main:  # rank 0 writes the shared files
        logger = MetricsLogger(
            [
                CSVWriter(run.metrics_csv, resume_step=step),
                JSONLWriter(run.metrics_jsonl, resume_step=step),
                TensorBoardWriter(run.tb, every=cfg.train.log_every, resume_step=step),
            ]
        )
        meta = collect_metadata(env, telemetry, s.counts, run_dir=run.path)
        meta["threads"] = cpus.to_json()
        meta["threads_per_rank"] = per_rank  # each rank's CPUs and threads (rank 0's above)
        meta["optimizer"] = s.optimizer
        meta["resumed_from_step"] = step if resumed else None
        atomic.write_json(run.metadata, meta)
        run.write_status("RUNNING", step=step, total=s.n_steps, start=True, **job_identity())
        print_startup(cfg, env, s.counts, s.n_steps, step, s.micro_per_epoch)
        print(f"[text2sign] CPU threads {cpus.torch} ({cpus.source}), "
              f"DataLoader workers {cpus.workers}", flush=True)  # fmt: skip
    stream = MicroBatchSampler(
        len(s.train_ds), batch_size=cfg.train.batch_size, rank=env.rank,
        world_size=env.world_size, seed=cfg.train.seed, start=step * cfg.train.grad_accum,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        s.train_ds, batch_sampler=stream, num_workers=cpus.workers, collate_fn=collate,
        persistent_workers=cpus.workers > 0,
        pin_memory=cfg.perf.pin_memory and torch.device(env.device).type == "cuda",
    )  # fmt: skip
    return _Outputs(
        telemetry=telemetry, logger=logger, meta=meta,
        sampler=SampleWriter(cfg, s.diffusion, s.val_ds, run, logger.tensorboard, env.device),
        progress=Progress(s.n_steps, step, env.is_main), stream=stream, batches=iter(loader),
    )  # fmt: skip


def _loop(s: _Setup, out: _Outputs, step: int, stop: StopFlag) -> _End:
    """Steps until the end, a stop signal (checkpoint, exit 75) or a non-finite loss."""
    cfg, env, engine = s.cfg, s.env, s.engine
    last_ckpt = step
    engine.train()
    try:
        while step < s.target:
            t0 = time.perf_counter()
            micro_losses = []
            for micro in range(cfg.train.grad_accum):
                batch = next(out.batches)
                g = step_generator(cfg.train.seed, env.rank, step, micro)
                loss = micro_step_loss(engine, s.built, s.diffusion, batch, g, cfg, env.device,
                                        s.dtype)  # fmt: skip
                if cfg.train.nan_at_step == step + 1:
                    loss = loss * float("nan")  # fault injection (train.nan_at_step), for tests
                # NaN guard, before any backward/optimizer step, agreed on by all ranks.
                if distributed.all_reduce_max(0.0 if torch.isfinite(loss) else 1.0) > 0:
                    raise NonFinite(step + 1)
                engine.backward(loss)
                engine.step()
                micro_losses.append(loss.item())
            step += 1
            out.telemetry.step = step
            if s.ema is not None:
                s.ema.update(engine, step)
            stopping = _log_step(s, out, step, micro_losses, time.perf_counter() - t0, stop)
            if cfg.train.sample_every and step % cfg.train.sample_every == 0:
                _write_samples(s, out, step)
            if step % cfg.train.checkpoint_every == 0 or step == s.target or stopping:
                _save(s, out, step)
                last_ckpt = step
            if stopping and step < s.target:
                state, cause, reason = stop.outcome(step)
                return _End(step, EXIT_REQUEUE, state, cause, reason)
        if step != last_ckpt:
            _save(s, out, step)
        if cfg.train.num_samples:
            _write_samples(s, out, step)
        if step < s.n_steps:  # a rung's budget: COMPLETED for this rung, resumable
            return _End(step, reason=f"rung budget reached: step {step} of {s.n_steps} "
                        "(halving.stop_at); resumable")  # fmt: skip
        return _End(step)
    except NonFinite as e:
        reason = (
            f"non-finite loss at step {e.step}; last good checkpoint: {s.run.latest_checkpoint()}"
        )
        return _End(step, EXIT_FAILURE, "FAILED", "nonfinite", reason)
    finally:
        out.telemetry.stop()


def _log_step(s: _Setup, out: _Outputs, step: int, micro_losses, dt: float, stop) -> bool:
    """One collective for the step's statistics (mean loss, max peak memory, any stop), then
    rank 0 logs them. Returns whether any rank was signalled to stop."""
    peak, reserved, kind = out.telemetry.window_peak()
    stats = distributed.all_gather_floats(
        [sum(micro_losses) / len(micro_losses), float(peak), 1.0 if stop.signum else 0.0]
    )  # (world, 3)
    loss_value = stats[:, 0].mean().item()
    samples = s.cfg.train.batch_size * s.cfg.train.grad_accum * s.env.world_size
    epoch, _ = out.stream.position(step * s.cfg.train.grad_accum)
    out.logger.log(
        step,
        {
            "epoch": epoch,
            "loss": loss_value,
            "lr": s.scheduler.get_last_lr()[0],
            "grad_norm": grad_norm(s.engine),
            "samples_per_s": samples / dt,
            "step_time_s": dt,
            "peak_memory_bytes": int(stats[:, 1].max().item()),
            "peak_reserved_bytes": reserved,
            "memory_kind": kind,
            "wall_time_s": out.clock.elapsed(),
        },
    )
    out.progress.update(step, loss_value, samples / dt, s.cfg.train.log_every)
    return stats[:, 2].max().item() > 0


def _end_of_run(s: _Setup, out: _Outputs, end: _End) -> int:
    """Summary and final status (rank 0), then the evaluation, shared by every rank."""
    cfg, run, env = s.cfg, s.run, s.env
    if env.is_main:
        out.logger.close()
        write_summary(run, cfg, env, s.counts, out.clock.elapsed(), out.telemetry, end.step)
        run.write_status(end.state, step=end.step, total=s.n_steps, reason=end.reason,
                         cause=end.cause)  # fmt: skip
        out.meta.update(ended_at=now_iso(), wall_time_s=round(out.clock.elapsed(), 3))
        atomic.write_json(run.metadata, out.meta)
        print(f"[text2sign] {end.state} at step {end.step}/{s.n_steps} {end.reason}".rstrip(),
              flush=True)  # fmt: skip
    if end.state == "FAILED":
        print(f"text2sign: error: {end.reason}", file=sys.stderr, flush=True)
    distributed.barrier()
    if end.state == "COMPLETED" and cfg.eval.enabled:
        if end.step < s.n_steps:
            rung.evaluate_rung(run, cfg, env, end.step)
        else:
            _evaluate_at_end(run, cfg, env)
    return end.exit_code


def _evaluate_at_end(run: RunDir, cfg: Config, env) -> None:
    """All ranks: evaluation metrics (each rank samples its share on its device) + HParams.

    Never fails the run: a failure is agreed by all ranks (see text2sign.evaluation.inference) and printed.
    After the last gather only rank 0 works (scoring), so no rank waits in a collective for it.
    """
    from text2sign.evaluation.evaluate import evaluate, format_metrics, log_hparams

    try:
        result = evaluate(run.path, num_videos=cfg.eval.num_videos, device=env.device)
        if result is not None:
            summary = json.loads(run.summary.read_text())
            log_hparams(run.path, cfg, result, summary.get("final_loss"))
            print(format_metrics(result), flush=True)
    except Exception as e:  # a broken metric must not turn a trained run into a failed one
        if env.is_main:
            print(f"[text2sign] evaluation failed: {type(e).__name__}: {e}", flush=True)


def _write_samples(s: _Setup, out: _Outputs, step: int) -> None:
    """Collective: every rank gets the full sampling weights (ZeRO-3 gathers them), samples its
    share of the captions on its device; rank 0 writes the GIFs."""
    if s.ema is not None:
        weights, kind = s.ema.full_state_dict(), "ema"
    else:
        weights, kind = gathered_weights(s.engine.module, s.cfg.train.zero_stage), "raw"
    out.sampler.write(step, weights, kind)


def _save(s: _Setup, out: _Outputs, step: int) -> None:
    cfg, env = s.cfg, s.env
    epoch, pos = out.stream.position(step * cfg.train.grad_accum)
    client = {
        "step": step,
        "epoch": epoch,
        "data_position": pos,
        "micro_batches_consumed": step * cfg.train.grad_accum,
        "config_hash": cfg.hash(),
        "ema": s.ema.state_dict() if s.ema is not None else None,
        "world_size": env.world_size,
    }
    s.run.checkpoints.mkdir(parents=True, exist_ok=True)
    checkpoint.save(s.engine, s.run.checkpoints, step=step, rank=env.rank, client_state=client,
                    keep=cfg.train.keep_checkpoints)  # fmt: skip
    if env.is_main:
        s.run.note_checkpoint(step)
