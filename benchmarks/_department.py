"""A simulated department system (``adapter/simulator/departments``) served in a process of its
own, so that neither its CPU nor its memory is counted against the adapter::

    .venv/bin/python benchmarks/_department.py police

It prints ``READY <url>`` once it accepts connections and serves until SIGTERM. The API key
is the simulator's (``adapter.simulator.departments.API_KEY``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapter.simulator.departments import DepartmentSimulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("department")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with DepartmentSimulator(args.department, auth="api_key") as department:
        print(f"READY {department.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
