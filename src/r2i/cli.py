"""The `r2i` command line. Every subcommand and flag is defined here; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import json
import sys
import time

from r2i.schema import ACT_MODES


def _train_config(args: argparse.Namespace, extra: list[str]):
    """The config `r2i train` would run: the saved one of an existing --logdir (resume) or preset ← overrides."""
    from pathlib import Path

    from r2i import config as cfgmod
    from r2i import distributed
    from r2i.run import CONFIG_FILE, load_config

    if getattr(args, "handler", None) is _train and not (args.help_config or args.print_config):
        distributed.initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    overrides = cfgmod.parse_overrides(extra)
    for flag, key in (("env", "env.id"), ("steps", "run.steps"), ("logdir", "logdir"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = str(value)
    saved = Path(args.logdir or "") / CONFIG_FILE
    if args.logdir and args.preset is None and saved.is_file():
        # `r2i train --logdir DIR` resumes with the run's own config (plus any overrides given, e.g. --steps).
        config = cfgmod.apply_overrides(load_config(args.logdir), overrides)
        cfgmod.validate(config)
    else:
        config = cfgmod.make_config(args.preset or "default", overrides)
    if getattr(args, "handler", None) is _train and not (args.help_config or args.print_config):
        from r2i.threads import limit_cpu_threads

        limit_cpu_threads(config.run.cpu_threads)  # before anything starts JAX's backends (the logdir broadcast does)
    if not config.logdir:
        slug = "".join(c if c.isalnum() else "-" for c in config.env.id).strip("-")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        logdir = distributed.broadcast_json(f"runs/{args.preset or 'default'}-{slug}-{stamp}")  # process 0's
        config = cfgmod.apply_overrides(config, {"logdir": logdir})
    return config


def _train(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i import config as cfgmod
    from r2i.run import format_result, train

    config = _train_config(args, extra)
    if args.help_config:
        print(f"# resolved for --preset {args.preset or 'default'} and the overrides given")
        print("\n".join(cfgmod.describe_config(config)))
        return 0
    if args.print_config:
        print(cfgmod.dump_yaml(config), end="")
        return 0
    result = train(config, force=args.force, quiet=args.quiet)
    from r2i import distributed

    if not distributed.is_main():  # process 0 reports for the whole run
        return 130 if result["stopped_early"] else 0
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if not k.startswith(("train/", "model/", "actor/",
                                                                                "critic/"))}))
    else:
        print(format_result(result, config.logdir))
    if result["stopped_early"]:
        print(f"r2i: run the same command again to resume (--logdir {config.logdir})", file=sys.stderr)
        return 128 + (result.get("signal") or 2)  # the shell's convention: 130 after SIGINT, 143 after SIGTERM
    return 0


def _eval(args: argparse.Namespace, extra: list[str]) -> int:
    import jax

    from r2i.api import load
    from r2i.errors import ConfigError
    from r2i.run import evaluate

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if args.video and not args.video.lower().endswith((".gif", ".mp4")):
        raise ConfigError(f"--video {args.video!r} must end in .gif or .mp4")
    policy = load(args.logdir, args.step)

    frames = [] if args.video else None
    mode = args.mode or policy.config.run.eval_mode
    result = evaluate(policy.agent, policy.params, policy.config, args.episodes, mode, jax.random.key(args.seed),
                      frames=frames)
    result["eval/mode"] = mode
    if args.step is not None:
        result["env_steps"] = args.step
    if args.video:
        from r2i.video import episode_grid, write_video

        result["video"] = str(write_video(args.video, episode_grid(frames), fps=args.fps))
    print(json.dumps(result))
    return 0


def _plot(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i import plot

    if args.sweep:
        out = plot.plot_sweep(args.sweep, args.out or str(args.sweep[0]).rsplit(".", 1)[0] + ".png")
    else:
        if not args.runs:
            from r2i.errors import ConfigError

            raise ConfigError("r2i plot needs run directories (or --sweep CSV)")
        keys = args.keys.split(",") if args.keys else None
        out = plot.plot_runs(args.runs, args.out or "curves.png", keys=keys, smooth=args.smooth)
    print(out)
    return 0


def _doctor(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i import config as cfgmod
    from r2i.doctor import report

    print(report(args.preset, args.logdir, cfgmod.parse_overrides(extra)))
    return 0


def _check_env(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i import config as cfgmod
    from r2i.envs import describe_env
    from r2i.errors import ConfigError

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    options = {k: cfgmod.yaml.safe_load(v) for k, v in cfgmod.parse_overrides(extra).items()}
    print(describe_env(args.env_id, seed=args.seed, episodes=args.episodes, **options))
    return 0


def _sweep(args: argparse.Namespace, extra: list[str]) -> int:
    from pathlib import Path

    from r2i import config as cfgmod
    from r2i import plot
    from r2i.errors import ConfigError
    from r2i.sweep import pack, plan, sweep

    overrides = [f"{k}={v}" for k, v in cfgmod.parse_overrides(extra).items()]
    csv_path = Path(args.csv or f"benchmarks/results/{args.suite}.csv")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    carry = Path(args.carry) if args.carry else None
    if args.status:
        from r2i.sweep_status import format_table, status

        runs = plan(args.suite, args.settings.split(","), args.models.split(","), seeds, overrides)
        print(format_table(status(runs, Path(args.root), args.preset, csv_path, carry)))
        return 0
    if args.pack:
        if carry is None:
            raise ConfigError("r2i sweep --pack needs --carry DIR: the directory the archives go to")
        runs = plan(args.suite, args.settings.split(","), args.models.split(","), seeds, overrides)
        for archive in pack(runs, Path(args.root), carry, args.preset, csv_path):
            print(f"{archive} ({archive.stat().st_size / 2**20:.1f} MiB)")
        return 0
    sweep(args.suite, args.settings.split(","), args.models.split(","), seeds,
          preset=args.preset, root=Path(args.root), csv_path=csv_path, jobs=args.jobs, extra=overrides, carry=carry)
    print(plot.plot_sweep(csv_path, csv_path.with_suffix(".png")))
    return 0


def _bench_scan(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i.bench import scan
    from r2i.bench.common import parse_ints

    scan.run(parse_ints(args.B), parse_ints(args.T), parse_ints(args.P), args.repeats, tuple(args.methods.split(",")))
    return 0


def _bench_train(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i import config as cfgmod
    from r2i.bench import train
    from r2i.bench.common import parse_ints
    from r2i.errors import ConfigError

    variants = dict(train.parse_variant(v) for v in args.variant or [])
    if len(variants) != len(args.variant or []):
        raise ConfigError("--variant names must differ from each other")
    train.run(args.models.split(","), args.size, parse_ints(args.B), parse_ints(args.T), args.repeats,
              cfgmod.parse_overrides(extra), variants)
    return 0


def _bench_solve(args: argparse.Namespace, extra: list[str]) -> int:
    from pathlib import Path

    from r2i import config as cfgmod
    from r2i.bench import solve
    from r2i.bench.common import parse_ints

    overrides = [f"{k}={v}" for k, v in cfgmod.parse_overrides(extra).items()]
    root = Path(args.root or f"benchmarks/runs/solve-{time.strftime('%Y%m%d-%H%M%S')}")
    solve.run(parse_ints(args.seeds), root, args.preset, args.threshold, args.eval_every, args.jobs, overrides,
              csv_path=Path(args.csv) if args.csv else None, to_budget=args.to_budget)
    return 0


def _bench_eval(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i.api import load
    from r2i.bench import eval_round
    from r2i.bench.common import parse_ints

    envs = parse_ints(args.envs)
    eval_round.check_counts(args.episodes, envs, args.repeats)
    policy = load(args.logdir)
    eval_round.run(policy.agent, policy.params, policy.config, args.logdir, args.episodes, envs, args.repeats, args.mode)
    return 0


def _bench_gpu(args: argparse.Namespace, extra: list[str]) -> int:
    from r2i.bench import gpu

    print(f"r2i: wrote {gpu.run(args.out, repeats=args.repeats, budget_s=args.budget_s)}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from r2i.config import preset_names  # YAML and the config schema only: `r2i --help` stays instant

    parser = argparse.ArgumentParser(prog="r2i", description="Recall to Imagine: model-based RL with S5 world models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train an agent (default: the CPU preset on a built-in memory task)",
        description="Train an agent. Any config key can be overridden as `--model.ssm.layers 5` or "
        "`model.ssm.layers=5`; `--help-config` lists them all. Re-running with the same --logdir resumes.",
    )
    train.add_argument("--preset", help=f"YAML preset: {', '.join(preset_names())} (default: default, or the saved "
                       "config when --logdir is a run)")
    train.add_argument("--env", help="environment id (config env.id), e.g. popgym:RepeatPreviousEasy")
    train.add_argument("--steps", type=int, help="env steps to train for (config run.steps)")
    train.add_argument("--logdir", help="run directory; an existing one is resumed")
    train.add_argument("--seed", type=int, help="seed (config seed)")
    train.add_argument("--force", action="store_true", help="resume even if the config differs from the saved one")
    train.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    train.add_argument("--help-config", action="store_true",
                       help="list every config key with its value for this --preset and overrides, its doc, and exit")
    train.add_argument("--print-config", action="store_true",
                       help="print the resolved config as YAML (what config.yaml will hold) and exit")
    train.add_argument("--json", action="store_true", help="print the final result as one JSON line")
    multi = train.add_argument_group("several processes / hosts (README: Multi-host training)")
    multi.add_argument("--coordinator", help="HOST:PORT of process 0 (env JAX_COORDINATOR_ADDRESS)")
    multi.add_argument("--num-processes", type=int, help="processes in the run (env JAX_NUM_PROCESSES)")
    multi.add_argument("--process-id", type=int, help="this process's index, 0 … n-1 (env JAX_PROCESS_ID)")
    multi.add_argument("--distributed", action="store_true",
                       help="join a multi-process run detected by JAX (SLURM, Open MPI, Kubernetes, Cloud TPU)")
    train.set_defaults(handler=_train, extra_ok=True)

    ev = commands.add_parser("eval", help="evaluate the latest checkpoint of a run")
    ev.add_argument("--logdir", required=True, help="run directory")
    ev.add_argument("--step", type=int, help="the checkpoint or snapshot (run.snapshot_every) of this env step "
                    "instead of the latest checkpoint")
    ev.add_argument("--episodes", type=int, default=32, help="episodes to run")
    ev.add_argument("--mode", choices=ACT_MODES,
                    help="greedy: most likely action, sampled latent (DreamerV3's evaluation); sample: both drawn; "
                    "deterministic: most likely latent and action (default: the run's run.eval_mode)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the policy's sampling")
    ev.add_argument("--video", help="write the episodes (eval envs side by side) to this .gif or .mp4 (MP4 needs "
                    "pip install 'r2i[video]'); image environments only")
    ev.add_argument("--fps", type=float, default=15.0, help="frames per second of --video")
    ev.set_defaults(handler=_eval)

    plot = commands.add_parser("plot", help="PNG learning curves of runs, or the figure of a sweep CSV")
    plot.add_argument("runs", nargs="*", help="run directories")
    plot.add_argument("--out", help="output PNG (default curves.png, or the CSV's name with .png)")
    plot.add_argument("--keys", help="comma-separated metric keys (default: returns and success rates)")
    plot.add_argument("--smooth", type=float, default=0.0, help="moving-average weight in [0, 1)")
    plot.add_argument("--sweep", nargs="+", metavar="CSV",
                      help="sweep CSVs (suite,setting,model,seed,env_steps,success,wall_s); several: a line per model "
                      "and CSV")
    plot.set_defaults(handler=_plot)

    doctor = commands.add_parser(
        "doctor", help="backend, devices, dtypes, free RAM and disk vs the replay estimate",
        description="Check this machine against a run's needs; config overrides (e.g. replay.capacity=5e5) apply as "
        "for `r2i train`.")
    doctor.add_argument("--preset", default="default", help="preset whose replay size to check")
    doctor.add_argument("--logdir", default="runs", help="where runs would be written (for free disk space)")
    doctor.set_defaults(handler=_doctor, extra_ok=True)

    check = commands.add_parser("check-env", help="validate an environment and show what the agent will see")
    check.add_argument("env_id", help="environment id, e.g. r2i:memory_length/10, gym:CartPole-v1, bsuite:memory_len/0")
    check.add_argument("--episodes", type=int, default=3, help="random-action episodes to run")
    check.add_argument("--seed", type=int, default=0, help="env seed")
    check.set_defaults(handler=_check_env, extra_ok=True)

    sweep = commands.add_parser(
        "sweep",
        help="memory sweeps (BSuite memory_len / discounting_chain, POPGym), S3M vs GRU; resumable",
        description="Run `r2i train` for every (setting, model, seed), skipping finished runs and resuming interrupted "
        "ones; append a row per run to the CSV and redraw its figure. Extra key=value overrides apply to every run.",
    )
    sweep.add_argument("--suite", required=True, help="memory_len, discounting_chain or popgym")
    sweep.add_argument("--settings", required=True, help="memory lengths, delays (1,3,10,30,100) or POPGym env names")
    sweep.add_argument("--models", default="s3m,gru", help="sequence models")
    sweep.add_argument("--seeds", default="0,1", help="seeds")
    sweep.add_argument("--preset", default="bsuite_cpu", help="preset every run starts from")
    sweep.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    sweep.add_argument("--root", default="benchmarks/runs", help="directory of the run directories")
    sweep.add_argument("--csv", help="results CSV (default benchmarks/results/<suite>.csv)")
    sweep.add_argument("--carry", help="directory of run-state archives: a run with no checkpoint under --root resumes "
                       "from its archive there (runs longer than one machine's session)")
    sweep.add_argument("--pack", action="store_true", help="write each unfinished run's resume state to --carry and "
                       "exit (commit those archives to continue the runs on another machine)")
    sweep.add_argument("--status", action="store_true", help="print where each run stands (training, stopped, packed, "
                       "solved, ...; env steps, budget, last and best evaluation, CSV row) and exit; trains nothing")
    sweep.set_defaults(handler=_sweep, extra_ok=True)

    bench = commands.add_parser("bench", help="benchmarks that print JSON lines")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    scan = benches.add_parser("scan", help="associative vs sequential reset-aware linear recurrence")
    scan.add_argument("--B", default="4,16", help="batch sizes, comma-separated")
    scan.add_argument("--T", default="64,256,1024,4096", help="sequence lengths, comma-separated")
    scan.add_argument("--P", default="128,512", help="state sizes, comma-separated")
    scan.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up run")
    scan.add_argument("--methods", default="sequential,associative", help="which scan implementations to time")
    scan.set_defaults(handler=_bench_scan)
    btrain = benches.add_parser("train", help="the whole agent update, S3M vs GRU at the same sizes")
    btrain.add_argument("--size", default="cpu", help="'cpu' (default preset) or 'popgym_released' (the official R2I "
                        "POPGym config as released on its main branch; not the popgym preset)")
    btrain.add_argument("--B", default="4", help="batch sizes, comma-separated")
    btrain.add_argument("--T", default="64,256,1024", help="sequence lengths, comma-separated")
    btrain.add_argument("--models", default="s3m,gru", help="sequence models to time")
    btrain.add_argument("--repeats", type=int, default=3, help="timed updates after one warm-up update")
    btrain.add_argument("--variant", action="append", metavar="NAME:OVERRIDES",
                        help="also time the update with these key=value overrides (space-separated), e.g. "
                        "'full:model.head_inputs=full'; repeatable; a summary line gives each variant's time over the "
                        "base's. key=value arguments outside --variant apply to every update")
    btrain.set_defaults(handler=_bench_train, extra_ok=True)
    bsolve = benches.add_parser("solve", help="time from `r2i train` to a solved task, per seed (default preset)")
    bsolve.add_argument("--seeds", default="0,1,2,3,4", help="seeds, comma-separated")
    bsolve.add_argument("--preset", default="default", help="preset to train")
    bsolve.add_argument("--threshold", type=float, default=0.95, help="eval/success that counts as solved")
    bsolve.add_argument("--eval-every", type=int, default=1000, help="env steps between evaluation rounds")
    bsolve.add_argument("--jobs", type=int, default=1, help="seeds trained at once (>1 shares the CPU)")
    bsolve.add_argument("--root", help="directory of the run directories (default benchmarks/runs/solve-<time>)")
    bsolve.add_argument("--csv", help="also append one row per finished seed, with its overrides and commit, to this CSV "
                        "(e.g. benchmarks/results/default_seeds.csv)")
    bsolve.add_argument("--to-budget", action="store_true", help="train every seed to the preset's run.steps instead "
                        "of stopping at the threshold: also times the whole run and reports its final success")
    bsolve.set_defaults(handler=_bench_solve, extra_ok=True)
    beval = benches.add_parser("eval", help="one evaluation round of a trained run, for several env.eval_envs")
    beval.add_argument("--logdir", required=True, help="run directory (its latest checkpoint is evaluated)")
    beval.add_argument("--episodes", type=int, default=100, help="episodes per round")
    beval.add_argument("--envs", default="4,50,100", help="numbers of evaluation envs side by side, comma-separated")
    beval.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    beval.add_argument("--mode", choices=ACT_MODES, help="how the policy acts (default: the run's run.eval_mode)")
    beval.set_defaults(handler=_bench_eval)
    bgpu = benches.add_parser("gpu", help="the prepared GPU check: scan, acting, update S3M vs GRU (< 10 min)")
    bgpu.add_argument("--out", help="JSON-lines file (default benchmarks/results/gpu_<device>_<time>.jsonl)")
    bgpu.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up run")
    bgpu.add_argument("--budget-s", type=float, default=480.0,
                      help="no update configuration is started after this many seconds")
    bgpu.set_defaults(handler=_bench_gpu)
    return parser


def main(argv: list[str] | None = None) -> int:
    from r2i import allocator

    allocator.configure()  # before JAX starts its threads and allocates (see r2i/allocator.py)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "extra_ok", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from r2i.errors import R2IError
    from r2i.runtime import enable_compilation_cache
    from r2i.signals import StopRequested

    enable_compilation_cache()
    try:
        return args.handler(args, extra)
    except KeyboardInterrupt:
        return 130
    except StopRequested as stop:  # r2i sweep / bench solve: their trainings were stopped cleanly
        print(f"r2i: {stop}; the trainings it had started wrote checkpoints and exited", file=sys.stderr)
        return 128 + (stop.signum or 2)
    except R2IError as error:  # input errors are one line that names the fix, not a traceback
        print(f"r2i: error: {error}", file=sys.stderr)
        return 2
    except (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError) as error:
        # a path given on the command line that cannot be used: say which, without a traceback
        print(f"r2i: error: {error.strerror}: {error.filename}; check the path and its permissions", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
