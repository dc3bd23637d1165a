"""Run one command and report what it cost, measured from a process small enough not to
distort it::

    python -S benchmarks/_launch.py OUTPUT_FILE -- COMMAND ARGS...

Prints one JSON line: exit code, wall seconds from fork to exit, user + system CPU seconds
and the peak resident set (``ru_maxrss``, KiB) of COMMAND, from ``os.wait4``.

Why a launcher: Linux keeps a process's RSS high-water mark across ``execve`` and counts the
memory of the process it was forked (or vforked) from, so a command started straight from the
harness (~100 MiB of imports) would report at least the harness's size. Forked from this
small process, the command's ``ru_maxrss`` is its own.
"""

import json
import os
import sys
import time


def main() -> None:
    output, separator, command = sys.argv[1], sys.argv[2], sys.argv[3:]
    if separator != "--" or not command:
        sys.exit("usage: _launch.py OUTPUT_FILE -- COMMAND ARGS...")
    out = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.dup2(out, 1)
        os.dup2(out, 2)
        try:
            os.execv(command[0], command)  # noqa: S606 - the command is the bench's own
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "exit": os.waitstatus_to_exitcode(status),
                "seconds": seconds,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "rss_kib": usage.ru_maxrss,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
