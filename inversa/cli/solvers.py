"""`inversa solvers`: the registered solvers and their parameters with defaults."""

from __future__ import annotations

import json


def register(sub, common) -> None:
    p = sub.add_parser("solvers", parents=[common], help="list the solvers and their --param names with defaults",
                       description="Every registered solver with the parameters `--param KEY=VALUE` accepts and their "
                       "defaults, read from the solver classes.")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from inversa.params import format_solvers, solvers_json

    print(json.dumps(solvers_json(), indent=2) if args.json else format_solvers())
    return 0
