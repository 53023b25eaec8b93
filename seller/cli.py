"""`seller` command line: `import` lives here; the other commands are loaded on demand.

Each lazy command is a module exposing `add_arguments(parser)` (or `add_parser(subparsers)`)
and `run(args) -> int`. Its module is imported only when that command runs, so `seller --help`
stays fast (no torch) and a build without, say, the training stack still imports data.
Exit codes: 0 ok, 1 the data or the run failed, 2 bad usage or a command not in this build.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# command path -> (module, one-line help)
LAZY = {
    ("train",): ("seller.train", "train the encoders and the MoE adapter"),
    ("fit",): ("seller.fit", "a model for your own store: recommender, mined references, adapter, evaluation"),
    ("references",): ("seller.references", "mine reference explanations from a store's own history"),
    ("explain",): ("seller.explain", "recommend items for a client and explain them"),
    ("evaluate",): ("seller.evaluate.runner", "text, grounding and utility evaluation"),
    ("bench", "rec"): ("seller.bench.rec", "recommender benchmark (HR/NDCG)"),
    ("bench", "llm"): ("seller.bench.llm", "LLM runtime benchmark"),
    ("bench", "train"): ("seller.bench.train", "training throughput benchmark"),
    ("bench", "app"): ("seller.bench.app", "app latency benchmark"),
    ("users",): ("seller.users", "accounts that may sign in to the app"),
}


def _version() -> str:
    from seller import __version__
    return __version__


def _add_import(sub) -> None:
    p = sub.add_parser("import", help="validate CSV/Parquet files and write a SELLER store",
                       description="Validate items, clients and events files (CSV or Parquet) "
                                   "and write a SELLER store folder (see README, data format).")
    p.add_argument("--items", required=True, help="items file (.csv or .parquet)")
    p.add_argument("--clients", required=True, help="clients file (.csv or .parquet)")
    p.add_argument("--events", required=True, help="events file (.csv or .parquet)")
    p.add_argument("--out", required=True, help="store folder to create")
    p.add_argument("--lenient", action="store_true",
                   help="import good rows; write rejected ones with reasons to rejects.csv")
    p.add_argument("--force", action="store_true",
                   help="replace an existing store at --out (atomically)")
    p.add_argument("--assume-utc", action="store_true",
                   help="read date-times without an offset as UTC instead of refusing them")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_import)


def _run_import(args) -> int:
    from seller.data.importer import DataValidationError, OutputExistsError, run_import

    try:
        summary = run_import(args.items, args.clients, args.events, args.out,
                             lenient=args.lenient, force=args.force, assume_utc=args.assume_utc,
                             progress=not args.no_progress)
    except OutputExistsError as e:
        print(f"seller import: {e}", file=sys.stderr)
        return 2
    except DataValidationError as e:
        print(f"seller import: {e}", file=sys.stderr)
        return 1
    for line in summary.lines():
        print(line)
    extra = f" (rejected rows: {summary.out / 'rejects.csv'})" if args.lenient else ""
    print(f"store written to {summary.out}{extra}")
    return 0


def _top_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(
        prog="seller", description="SELLER: sequence-aware, explainable recommendations "
                                   "for luxury clienteling.")
    parser.add_argument("--version", action="version", version=f"seller {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_import(sub)
    bench = None
    for path, (_, help_text) in LAZY.items():
        if len(path) == 1:
            sub.add_parser(path[0], help=help_text, add_help=False)
        else:
            if bench is None:
                bench = sub.add_parser("bench", help="benchmarks (JSON + markdown results)")
                bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH")
            bench_sub.add_parser(path[1], help=help_text, add_help=False)
    return parser, bench


def _run_lazy(path: tuple[str, ...], rest: list[str]) -> int:
    module_name = LAZY[path][0]
    prog = "seller " + " ".join(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            print(f"{prog}: not available in this build (module {module_name} is missing)",
                  file=sys.stderr)
        else:
            print(f"{prog}: needs the package {e.name!r}, which is not installed", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=prog, description=(module.__doc__ or "").strip() or None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
        args = parser.parse_args(rest)
    elif hasattr(module, "add_parser"):
        sub = parser.add_subparsers(dest="_command")
        module.add_parser(sub)
        args = parser.parse_args([path[-1], *rest])
    else:
        args = None
    if args is None or not hasattr(module, "run"):
        print(f"{prog}: not available in this build ({module_name} has no "
              "add_arguments/run entry point)", file=sys.stderr)
        return 2
    try:
        return int(module.run(args) or 0)
    except (LookupError, OSError, ValueError) as e:
        # The library's errors already name the id, key, path or width at fault: show that
        # one line, not a traceback (SELLER_DEBUG=1 keeps the traceback).
        if os.environ.get("SELLER_DEBUG"):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{prog}: {message}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Lazy commands bypass the top parser so their own parser sees every option (--help too).
    for path in LAZY:
        if tuple(argv[:len(path)]) == path:
            return _run_lazy(path, argv[len(path):])
    parser, bench = _top_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # no command, or "bench" without a benchmark
        (bench if args.command == "bench" else parser).print_help()
        return 2 if argv else 0
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
