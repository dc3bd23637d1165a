"""The baseline: replay a recording (``_record.py``) through a bare ``requests.Session``::

    .venv/bin/python benchmarks/_replay.py RECORDING.jsonl --map OLD_BASE=NEW_BASE ... \
        [--match REGEX]

Same requests, same order, byte-identical bodies and the same headers, one keep-alive
``requests.Session`` (defaults untouched), sequential; each answer's body is read and nothing
else is done with it. ``--map`` rewrites the start of URLs (the servers of a rebuilt world
listen on new ports); ``--match`` replays only the requests whose ``METHOD URL`` matches.
Prints one JSON line: requests sent, answers whose status differs from the recording's, and
the seconds the loop took.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import time

import requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("recording")
    parser.add_argument("--map", action="append", default=[], help="OLD_BASE=NEW_BASE")
    parser.add_argument("--match", help="only requests whose 'METHOD URL' matches this")
    args = parser.parse_args()
    bases = [tuple(pair.split("=", 1)) for pair in args.map]
    match = re.compile(args.match) if args.match else None
    planned = []
    with open(args.recording) as recording:
        for line in recording:
            entry = json.loads(line)
            url = entry["url"]
            for old, new in bases:
                if url.startswith(old):
                    url = new + url[len(old) :]
                    break
            if match is not None and not match.search(f"{entry['method']} {url}"):
                continue
            body = base64.b64decode(entry["body"]) or None
            planned.append((entry["method"], url, entry["headers"], body, entry["status"]))

    differ = 0
    started = time.perf_counter()
    with requests.Session() as session:
        for method, url, headers, body, status in planned:
            response = session.request(method, url, headers=headers, data=body)
            response.content  # noqa: B018 - read the whole answer, as any client must
            differ += response.status_code != status
    seconds = time.perf_counter() - started
    print(json.dumps({"requests": len(planned), "status_differs": differ, "seconds": seconds}))


if __name__ == "__main__":
    main()
