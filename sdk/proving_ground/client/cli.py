"""The robot client's command line: ``proving-ground`` (or ``python -m proving_ground.client``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from proving_ground.client.api import ProvingGroundClient
from proving_ground.client.errors import ProvingGroundError
from proving_ground.client.outbox import Outbox
from proving_ground.client.transfer import MiB

# --- Progress on a terminal -----------------------------------------------------------------


class TerminalProgress:
    """An ``on_progress`` callback drawing a one-line bar on stderr when it is a terminal,
    and printing nothing otherwise (logs and cron mails stay clean)."""

    def __init__(self, label: str = "upload", stream: Any = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, sent_bytes: int, total_bytes: int) -> None:
        if not self.enabled:
            return
        fraction = sent_bytes / total_bytes if total_bytes else 1.0
        bar = "#" * int(fraction * 30)
        end = "\n" if sent_bytes >= total_bytes else ""
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {sent_bytes / MiB:8.1f}/{total_bytes / MiB:.1f} MiB"
            f" {fraction:4.0%}{end}"
        )
        self.stream.flush()


# --- Command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="proving-ground", description="Proving Ground robot client."
    )
    parser.add_argument("--url", default=os.environ.get("PG_URL", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--key", default=os.environ.get("PG_API_KEY"), help="robot API key (or PG_API_KEY)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="check this client against the server")
    pending = commands.add_parser("pending", help="list what an outbox has not uploaded yet")
    pending.add_argument("outbox")
    flush = commands.add_parser("flush", help="upload an outbox's pending recordings")
    flush.add_argument("outbox")
    flush.add_argument(
        "--session",
        help="the session (id, or code from its console) for recordings not bound to one yet "
        "(bound ones go to their own)",
    )
    upload = commands.add_parser("upload", help="create and upload one episode file")
    upload.add_argument("file")
    upload.add_argument(
        "--session", required=True, help="the session: its id, or the code its console shows"
    )
    upload.add_argument("--condition")
    upload.add_argument("--wait", action="store_true", help="wait until processed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    if args.command == "pending":
        for path in Outbox(args.outbox).pending():
            print(path)
        return 0
    if not args.key:
        parser.error("--key (or PG_API_KEY) is required")
    client = ProvingGroundClient(args.url, args.key)
    try:
        if args.command == "version":
            print(json.dumps(client.check_version(), indent=1))
        elif args.command == "flush":
            failed = 0
            session = client.session_id(args.session) if args.session else None
            for result in Outbox(args.outbox).flush(
                client,
                session,
                on_progress=lambda path, sent, total: TerminalProgress(path.name)(sent, total),
            ):
                failed += not result.ok
                print(f"{result.path.name}\t{result.state or '-'}\t{result.error or ''}")
            return 1 if failed else 0
        elif args.command == "upload":
            episode = client.upload_episode(
                args.file,
                client.session_id(args.session),
                condition=args.condition,
                on_progress=TerminalProgress(Path(args.file).name),
            )
            if args.wait:
                episode = client.wait_until_processed(episode["id"])
            print(json.dumps(episode, indent=1))
    except (ProvingGroundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
