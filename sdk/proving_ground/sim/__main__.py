"""``python -m proving_ground.sim pusht demos|campaign``: PushT as a robot (docs/simulation.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from proving_ground.client.api import ProvingGroundClient
from proving_ground.client.errors import ProvingGroundError
from proving_ground.client.outbox import Outbox
from proving_ground.sim.runner import record_demonstrations, run_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proving_ground.sim", description=__doc__)
    parser.add_argument("env", choices=["pusht"])
    parser.add_argument("mode", choices=["demos", "campaign"])
    parser.add_argument("--url", default=os.environ.get("PG_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("PG_API_KEY"), required=False)
    parser.add_argument("--outbox", type=Path, default=Path("var/sim-outbox"))
    parser.add_argument("--operator", default="OP-EXPERT", help="operator pseudonym")
    parser.add_argument("--max-steps", type=int, default=300)
    demos = parser.add_argument_group("demos")
    demos.add_argument("--session", metavar="CODE", help="record into this open session")
    demos.add_argument("--task-version", help="open a teleop session on this task version")
    demos.add_argument("--protocol", help="... against this collection protocol")
    demos.add_argument("--count", type=int, default=3)
    demos.add_argument("--noise", type=float, default=0.05)
    demos.add_argument("--seed", type=int, default=0)
    campaign = parser.add_argument_group("campaign")
    campaign.add_argument("--campaign", help="the campaign's id")
    campaign.add_argument("--max-trials", type=int)
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("--key (or PG_API_KEY) is required")
    client = ProvingGroundClient(args.url, args.key)
    outbox = Outbox(args.outbox)
    try:
        if args.mode == "demos":
            record_demonstrations(
                client,
                outbox=outbox,
                count=args.count,
                session=args.session,
                task_version=args.task_version,
                protocol=args.protocol,
                operator=args.operator,
                noise=args.noise,
                seed=args.seed,
                max_steps=args.max_steps,
            )
        else:
            if not args.campaign:
                parser.error("campaign needs --campaign")
            run_campaign(
                client,
                args.campaign,
                outbox=outbox,
                operator=args.operator,
                max_steps=args.max_steps,
                max_trials=args.max_trials,
            )
    except (ProvingGroundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
