"""`make bench`: run every benchmark in turn; each prints its figures and writes bench/results/<name>.json.

Usage: python -m bench.run [NAME ...]   (default: all of BENCHMARKS, in order)
"""

from __future__ import annotations

import importlib
import sys
import time

# Ordered cheapest first; names are modules of this package exposing main() -> int.
BENCHMARKS = ["admission", "redirect", "ebpf", "certs", "rollout"]


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or BENCHMARKS
    failed = []
    for name in names:
        if name not in BENCHMARKS:
            print(f"bench: unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})", file=sys.stderr)
            return 2
        try:
            module = importlib.import_module(f"bench.{name}")
        except ImportError as exc:
            print(f"bench: bench.{name} cannot be imported: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        print(f"== bench.{name}", flush=True)
        started = time.monotonic()
        rc = module.main([])
        print(f"== bench.{name}: exit {rc} in {time.monotonic() - started:.1f}s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
