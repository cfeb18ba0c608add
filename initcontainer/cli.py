"""`fsm-init`: parse, then plan and apply (or dry-run, or clean up). Exit codes: 0 done,
1 the kernel/image cannot do it (message says what is missing), 2 invalid option (named)."""

from __future__ import annotations

import sys

from .apply import RedirectError
from .options import OptionsError, build_parser, parse_options
from .redirect import run

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point (`fsm-init = initcontainer.cli:main`)."""
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        build_parser().print_help()
        return 0
    try:
        opts = parse_options(args)
    except OptionsError as exc:
        print(f"fsm-init: invalid option {exc.option}: {exc.reason}", file=sys.stderr)
        return 2
    try:
        print(run(opts))
    except RedirectError as exc:
        print(f"fsm-init: error: {exc}", file=sys.stderr)
        print(
            "fsm-init: nothing was changed" if not opts.cleanup else "fsm-init: cleanup incomplete",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
