"""The `r2i` command line. Every subcommand and flag is defined here; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import sys


def _bench_scan(args: argparse.Namespace) -> int:
    from r2i.bench import scan
    from r2i.bench.common import parse_ints

    scan.run(parse_ints(args.B), parse_ints(args.T), parse_ints(args.P), args.repeats, tuple(args.methods.split(",")))
    return 0


def _bench_train(args: argparse.Namespace) -> int:
    from r2i.bench import train
    from r2i.bench.common import parse_ints

    train.run(args.models.split(","), args.size, parse_ints(args.B), parse_ints(args.T), args.repeats)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2i", description="Recall to Imagine: model-based RL with S5 world models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = commands.add_parser("bench", help="benchmarks that print JSON lines")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    scan = benches.add_parser("scan", help="associative vs sequential reset-aware linear recurrence")
    scan.add_argument("--B", default="4,16", help="batch sizes, comma-separated")
    scan.add_argument("--T", default="64,256,1024,4096", help="sequence lengths, comma-separated")
    scan.add_argument("--P", default="128,512", help="state sizes, comma-separated")
    scan.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up run")
    scan.add_argument("--methods", default="sequential,associative", help="which scan implementations to time")
    scan.set_defaults(handler=_bench_scan)
    train = benches.add_parser("train", help="the whole agent update, S3M vs GRU at the same sizes")
    train.add_argument("--size", default="cpu", help="'cpu' (default preset) or 'popgym' (reference POPGym config)")
    train.add_argument("--B", default="4", help="batch sizes, comma-separated")
    train.add_argument("--T", default="64,256,1024", help="sequence lengths, comma-separated")
    train.add_argument("--models", default="s3m,gru", help="sequence models to time")
    train.add_argument("--repeats", type=int, default=3, help="timed updates after one warm-up update")
    train.set_defaults(handler=_bench_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from r2i.runtime import enable_compilation_cache

    enable_compilation_cache()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except ValueError as error:  # input errors are reported as one line, not a traceback
        print(f"r2i: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
