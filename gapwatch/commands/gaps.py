"""``gapwatch gaps``: print the open and confirmed gaps of a running monitor.

Reads ``GET /gaps`` page by page (standard library HTTP, no extra dependency) and prints a
table, or the gaps as a JSON array with ``--json``. Exit status: 0 when it could read the
monitor, 2 when it could not (unreachable, refused token, bad answer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from gapwatch.commands.gaptable import render_gaps, summarize

PAGE_LIMIT = 1000
MAX_PAGES = 100  # 100k gaps: far beyond what a table is useful for; stops a cursor loop


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``gaps`` sub-command."""
    parser = subparsers.add_parser(
        "gaps",
        help="print the open and confirmed gaps of a running monitor",
        description=__doc__,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8571", help="the monitor's base URL")
    parser.add_argument(
        "--state",
        action="append",
        help="states to show (repeatable; default: open and confirmed)",
    )
    parser.add_argument("--topic", help="only this topic")
    parser.add_argument("--json", action="store_true", help="print a JSON array instead")
    parser.add_argument(
        "--token", help="bearer token (default: $GAPWATCH_HTTP_TOKEN)", default=None
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.set_defaults(handler=run)


def fetch_gaps(
    url: str,
    *,
    states: list[str],
    topic: str | None = None,
    token: str | None = None,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Every gap in ``states`` from the monitor at ``url``, newest first (follows cursors)."""
    gaps: list[dict[str, Any]] = []
    params: list[tuple[str, str]] = [("limit", str(PAGE_LIMIT))]
    params += [("state", state) for state in states]
    if topic:
        params.append(("topic", topic))
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        query = params + ([("cursor", cursor)] if cursor else [])
        request = urllib.request.Request(
            url.rstrip("/") + "/gaps?" + urllib.parse.urlencode(query),
            headers={"Accept": "application/json"},
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
        gaps.extend(body["gaps"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return gaps


def run(args: argparse.Namespace) -> int:
    """Handler of ``gapwatch gaps``."""
    token = args.token or os.environ.get("GAPWATCH_HTTP_TOKEN")
    states = args.state or ["open", "confirmed"]
    try:
        gaps = fetch_gaps(
            args.url, states=states, topic=args.topic, token=token, timeout=args.timeout
        )
    except urllib.error.HTTPError as exc:
        print(f"gapwatch gaps: {args.url} answered {exc.code} {exc.reason}", file=sys.stderr)
        return 2
    except urllib.error.URLError as exc:
        print(f"gapwatch gaps: cannot reach {args.url}: {_reason(exc.reason)}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as exc:
        print(f"gapwatch gaps: cannot read {args.url}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(gaps, indent=2))
    else:
        print(render_gaps(gaps))
        print(summarize(gaps))
    return 0


def _reason(reason: object) -> str:
    # urllib wraps the socket's error: "[Errno 111] Connection refused" says less than
    # "connection refused" to someone who mistyped a port.
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)
