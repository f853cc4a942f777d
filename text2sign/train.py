"""Train one run (one variant × one seed) with DeepSpeed: ZeRO 0–3, bf16, EMA, exact resume.

Reads top to bottom: setup distributed → claim the run dir (lock + config hash) → data → model →
DeepSpeed engine → resume → train loop (NaN guard, signals, EMA, metrics, checkpoints) → samples
→ summary and status.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from text2sign import atomic, checkpoint, distributed
from text2sign.config import Config
from text2sign.data import open_dataset
from text2sign.data.stream import MicroBatchSampler, step_generator
from text2sign.engine import (
    build_optimizer,
    deepspeed_config,
    gathered_weights,
    maybe_compile,
    optimizer_label,
)
from text2sign.errors import EXIT_FAILURE, EXIT_OK, EXIT_REQUEUE, UsageError
from text2sign.metadata import collect_metadata
from text2sign.modeling import build_model
from text2sign.models.ema import EMA
from text2sign.models.text_encoder import build_text_encoder
from text2sign.run_report import Progress, print_startup, write_summary
from text2sign.rundir import RunDir, Stopwatch, now_iso
from text2sign.runlock import RunLock, job_identity
from text2sign.sampling import SampleWriter, make_diffusion
from text2sign.telemetry import Telemetry
from text2sign.writers import CSVWriter, JSONLWriter, MetricsLogger, TensorBoardWriter

STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class StopFlag:
    """Set by SIGUSR2/SIGTERM; the loop finishes the current step, checkpoints and exits 75.

    USR2 is SLURM's "time limit ahead" (``--signal``) or a preemption notice: the run ends
    PREEMPTED and the job layer requeues it. SIGTERM is ``scancel`` (or SLURM ending the job): the
    run ends CANCELLED, checkpointed, and is never requeued by us (the job layer may refine the
    state to TIMEOUT or PREEMPTED from SLURM's own view of the job).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        for s in STOP_SIGNALS:
            signal.signal(s, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def outcome(self, step: int) -> tuple[str, str, str]:
        """(state, cause, reason) of a run stopped by this flag at ``step``."""
        if self.signum == signal.SIGTERM:
            return ("CANCELLED", "cancel",
                    f"SIGTERM at step {step} (scancel or SLURM ending the job); checkpointed, "
                    "not requeued: --resume-study continues it")  # fmt: skip
        sig = signal.Signals(self.signum).name if self.signum else "a peer rank's signal"
        return "PREEMPTED", "signal", f"{sig} at step {step}; checkpointed, requeue to resume"


def total_steps(cfg: Config, per_epoch_micro: int) -> int:
    steps = cfg.train.epochs * per_epoch_micro // cfg.train.grad_accum
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


def train(cfg: Config, run_dir: Path) -> int:
    """Run (or resume) training; return the process exit code (see text2sign.errors).

    Every way the run ends is written to status.json by rank 0 (state, cause, one-line reason):
    a start-up error (exit 2) and a crash as FAILED, a NaN as FAILED at its step, a signal as
    PREEMPTED or CANCELLED. What kills the process outright (SIGKILL, OOM) the launcher writes.
    """
    stop = StopFlag()
    env = distributed.init()
    _quiet_libraries()
    run = RunDir(run_dir)
    lock = distributed.on_main_then_all(lambda: _claim(run, cfg), lambda: None)
    try:
        if run.completed:
            if env.is_main:
                print(f"[text2sign] {run_dir}: already COMPLETED; nothing to do", flush=True)
            return EXIT_OK
        return _train(cfg, run, env, stop)
    except BaseException as e:
        if env.is_main and not run.ended:  # unless this attempt already said how it ended
            cause = "usage" if isinstance(e, UsageError) else "crash"
            run.write_status("FAILED", reason=_one_line(e), cause=cause)
        raise
    finally:
        if lock is not None:
            lock.release()


def _claim(run: RunDir, cfg: Config) -> RunLock:
    """Rank 0: hold the run dir for this trainer (exit 2 if another holds it), then check that
    it holds this config (exit 2 if not). Nothing is written into a run dir we do not own."""
    lock = RunLock(run.path).acquire(since=now_iso())
    try:
        run.prepare(cfg)
    except BaseException:
        lock.release()
        raise
    return lock


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    detail = text[-1] if text else ""
    return detail if isinstance(e, UsageError) else f"{type(e).__name__}: {detail}".rstrip(": ")


def _train(cfg: Config, run: RunDir, env, stop: StopFlag) -> int:
    torch.manual_seed(cfg.train.seed)  # model init is identical on every rank and every resume

    # -- 1. data (rank 0 decodes the cache once; the others then memory-map it) ---------------
    data_kwargs = dict(
        num_frames=cfg.data.num_frames,
        size=cfg.data.image_size,
        val_fraction=cfg.data.val_fraction,
        cache_dir=cfg.data.cache_dir,
        strict=cfg.data.strict,
        seed=cfg.data.split_seed,
    )
    train_ds, val_ds = distributed.on_main_then_all(
        lambda: open_dataset(cfg.data.root, **data_kwargs)
    )
    micro_per_epoch = MicroBatchSampler(
        len(train_ds), batch_size=cfg.train.batch_size, rank=0, world_size=env.world_size, seed=0
    ).per_epoch
    n_steps = total_steps(cfg, micro_per_epoch)

    # -- 2. model (the tiny tokenizer/encoder is built and saved once, then loaded by all) -----
    captions = sorted(set(train_ds.captions) | set(val_ds.captions))
    distributed.on_main_then_all(
        lambda: build_text_encoder(cfg.text.encoder, max_tokens=cfg.text.max_tokens,
                                   captions=captions, save_dir=run.text_encoder),
        lambda: None,
    )  # fmt: skip
    built = build_model(cfg, run.path, captions)
    built.text.to(env.device)
    counts = built.parameter_counts()

    # -- 3. DeepSpeed engine --------------------------------------------------------------------
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
    dtype = torch.bfloat16 if cfg.train.precision == "bf16" else torch.float32
    diffusion = make_diffusion(cfg)
    ema = EMA.from_engine(engine, cfg.ema.decay, cfg.ema.update_every) if cfg.ema.enabled else None

    # -- 4. resume (same world size only: see checkpoint.check_world_size) ----------------------
    step = 0
    tag = run.latest_checkpoint()
    if tag is not None:
        checkpoint.check_world_size(run.checkpoints, tag, env.world_size)
        client = checkpoint.load(
            engine, run.checkpoints, tag, rank=env.rank, config_hash=cfg.hash()
        )
        step = int(client["step"])
        if ema is not None:
            ema.load_state_dict(client["ema"])

    # -- 5. outputs (rank 0 writes shared files; every attempt restarts them at ``step``) ------
    telemetry_csv = (
        run.gpu_memory_csv if env.is_main else run.path / f"gpu_memory.rank{env.rank}.csv"
    )
    telemetry = Telemetry(
        telemetry_csv, interval_s=cfg.telemetry.interval_s, device=env.device, rank=env.rank
    )
    telemetry.step = step
    telemetry.start()
    logger = MetricsLogger([])
    if env.is_main:
        logger = MetricsLogger(
            [
                CSVWriter(run.metrics_csv, resume_step=step),
                JSONLWriter(run.metrics_jsonl, resume_step=step),
                TensorBoardWriter(run.tb, every=cfg.train.log_every, resume_step=step),
            ]
        )
        meta = collect_metadata(env, telemetry, counts, run_dir=run.path)
        meta["resumed_from_step"] = step if tag is not None else None
        meta["optimizer"] = optimizer_label(optimizer)
        atomic.write_json(run.metadata, meta)
        run.write_status("RUNNING", step=step, total=n_steps, start=True, **job_identity())
        print_startup(cfg, env, counts, n_steps, step, micro_per_epoch)
    sampler = SampleWriter(cfg, diffusion, val_ds, run, logger.tensorboard) if env.is_main else None
    progress = Progress(n_steps, step, env.is_main)

    sampler_stream = MicroBatchSampler(
        len(train_ds), batch_size=cfg.train.batch_size, rank=env.rank,
        world_size=env.world_size, seed=cfg.train.seed, start=step * cfg.train.grad_accum,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        train_ds, batch_sampler=sampler_stream, num_workers=cfg.data.num_workers,
        collate_fn=_collate, persistent_workers=cfg.data.num_workers > 0,
    )  # fmt: skip
    batches = iter(loader)

    # -- 6. train loop ----------------------------------------------------------------------------
    clock = Stopwatch()
    last_ckpt = step
    engine.train()
    exit_code, final_state, cause, reason = EXIT_OK, "COMPLETED", "", ""
    try:
        while step < n_steps:
            t0 = time.perf_counter()
            micro_losses = []
            for micro in range(cfg.train.grad_accum):
                batch = next(batches)
                g = step_generator(cfg.train.seed, env.rank, step, micro)
                loss = _micro_step_loss(engine, built, diffusion, batch, g, cfg, env.device, dtype)
                if cfg.train.nan_at_step == step + 1:
                    loss = loss * float("nan")  # fault injection (train.nan_at_step), for tests
                # NaN guard, before any backward/optimizer step, agreed on by all ranks.
                if distributed.all_reduce_max(0.0 if torch.isfinite(loss) else 1.0) > 0:
                    raise _NonFinite(step + 1)
                engine.backward(loss)
                engine.step()
                micro_losses.append(loss.item())
            step += 1
            telemetry.step = step
            if ema is not None:
                ema.update(engine, step)
            dt = time.perf_counter() - t0
            peak, reserved, kind = telemetry.window_peak()
            # One collective for the step's statistics: mean loss, max peak memory, any stop.
            stats = distributed.all_gather_floats(
                [sum(micro_losses) / len(micro_losses), float(peak), 1.0 if stop.signum else 0.0]
            )  # (world, 3)
            loss_value = stats[:, 0].mean().item()
            peak = int(stats[:, 1].max().item())
            stopping = stats[:, 2].max().item() > 0
            samples = cfg.train.batch_size * cfg.train.grad_accum * env.world_size
            epoch, _ = sampler_stream.position(step * cfg.train.grad_accum)
            logger.log(
                step,
                {
                    "epoch": epoch,
                    "loss": loss_value,
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": _grad_norm(engine),
                    "samples_per_s": samples / dt,
                    "step_time_s": dt,
                    "peak_memory_bytes": peak,
                    "peak_reserved_bytes": reserved,
                    "memory_kind": kind,
                    "wall_time_s": clock.elapsed(),
                },
            )
            progress.update(step, loss_value, samples / dt, cfg.train.log_every)
            if cfg.train.sample_every and step % cfg.train.sample_every == 0:
                _write_samples(sampler, engine, ema, step, cfg)
            if step % cfg.train.checkpoint_every == 0 or step == n_steps or stopping:
                _save(engine, run, step, ema, cfg, env, sampler_stream)
                last_ckpt = step
            if stopping and step < n_steps:
                final_state, cause, reason = stop.outcome(step)
                exit_code = EXIT_REQUEUE
                break
        else:
            if step != last_ckpt:
                _save(engine, run, step, ema, cfg, env, sampler_stream)
            if cfg.train.num_samples:
                _write_samples(sampler, engine, ema, step, cfg)
    except _NonFinite as e:
        exit_code, final_state, cause = EXIT_FAILURE, "FAILED", "nonfinite"
        reason = (
            f"non-finite loss at step {e.step}; last good checkpoint: {run.latest_checkpoint()}"
        )
    finally:
        telemetry.stop()

    # -- 7. summary + status ------------------------------------------------------------------
    if env.is_main:
        logger.close()
        write_summary(run, cfg, env, counts, clock.elapsed(), telemetry, step)
        run.write_status(final_state, step=step, total=n_steps, reason=reason, cause=cause)
        meta.update(ended_at=now_iso(), wall_time_s=round(clock.elapsed(), 3))
        atomic.write_json(run.metadata, meta)
        print(f"[text2sign] {final_state} at step {step}/{n_steps} {reason}".rstrip(), flush=True)
    if env.is_main and final_state == "COMPLETED" and cfg.eval.enabled:
        _evaluate_at_end(run, cfg)
    if final_state == "FAILED":
        print(f"text2sign: error: {reason}", file=sys.stderr, flush=True)
    distributed.barrier()
    return exit_code


def _evaluate_at_end(run: RunDir, cfg: Config) -> None:
    """Rank 0, after training: evaluation metrics + TensorBoard HParams. Never fails the run."""
    from text2sign.evaluate import evaluate, format_metrics, log_hparams

    try:
        result = evaluate(run.path)
        summary = json.loads(run.summary.read_text())
        log_hparams(run.path, cfg, result, summary.get("final_loss"))
        print(format_metrics(result), flush=True)
    except Exception as e:  # a broken metric must not turn a trained run into a failed one
        print(f"[text2sign] evaluation failed: {type(e).__name__}: {e}", flush=True)


def _quiet_libraries() -> None:
    """Batch logs stay readable: no per-file progress bars from transformers, DS at warnings."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(logging.WARNING)


class _NonFinite(Exception):
    def __init__(self, step: int) -> None:
        self.step = step


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "video": torch.stack([it["video"] for it in items]),  # (B, T, C, H, W)
        "caption": [it["caption"] for it in items],
        "index": [it["index"] for it in items],
    }


def _micro_step_loss(
    engine, built, diffusion, batch, g, cfg: Config, device, dtype
) -> torch.Tensor:
    """Diffusion MSE (ε or v) on one micro-batch; all randomness drawn from the step generator ``g``."""
    x0 = batch["video"].to(device)  # (B, T, C, H, W) in [-1, 1]
    b = x0.shape[0]
    drop = torch.rand(b, generator=g) < cfg.text.caption_dropout  # caption dropout for CFG
    captions = ["" if d else c for c, d in zip(batch["caption"], drop.tolist(), strict=True)]
    high = cfg.diffusion.high_noise_prob if cfg.diffusion.timestep_sampling == "high_noise" else 0.0
    t = diffusion.sample_timesteps(b, g, device, high_noise_prob=high)  # (B,)
    noise = torch.randn(x0.shape, generator=g).to(device)  # (B, T, C, H, W)
    text = built.encode(captions, device)
    return diffusion.training_loss(lambda x_t, tt: engine(x_t.to(dtype), tt, **text), x0, t, noise)


def _write_samples(sampler, engine, ema, step: int, cfg: Config) -> None:
    """Collective (ZeRO-3 gathers the weights on every rank); rank 0 samples and writes."""
    if ema is not None:
        weights, kind = ema.full_state_dict(), "ema"
    else:
        weights, kind = gathered_weights(engine.module, cfg.train.zero_stage), "raw"
    if sampler is not None:
        sampler.write(step, weights, kind)
    distributed.barrier()


def _grad_norm(engine) -> float:
    gn = engine.get_global_grad_norm()
    if gn is None:
        return float("nan")
    return float(gn.item() if torch.is_tensor(gn) else gn)


def _save(engine, run: RunDir, step: int, ema, cfg: Config, env, stream) -> None:
    epoch, pos = stream.position(step * cfg.train.grad_accum)
    client = {
        "step": step,
        "epoch": epoch,
        "data_position": pos,
        "micro_batches_consumed": step * cfg.train.grad_accum,
        "config_hash": cfg.hash(),
        "ema": ema.state_dict() if ema is not None else None,
        "world_size": env.world_size,
    }
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    checkpoint.save(engine, run.checkpoints, step=step, rank=env.rank, client_state=client,
                    keep=cfg.train.keep_checkpoints)  # fmt: skip
