#!/usr/bin/env python3
"""Resident memory of a server, its child processes included (for
gunicorn: the master and its workers, whose RSS are summed, shared pages
counted in each).

  rss.py PID                 prints the current total in KB
  rss.py PID --peak FILE     samples every 20 ms until killed, keeping the
                             highest total so far in FILE
"""
import argparse
import os
import pathlib
import time


def tree(pid):
    pids = [pid]
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = task.read_text().split()
        except FileNotFoundError:
            continue  # a thread that ended between the listing and now
        for child in children:
            pids.extend(tree(int(child)))
    return pids


def resident_kb(pid):
    total = 0
    for member in tree(pid):
        try:
            status = pathlib.Path(f"/proc/{member}/status").read_text()
        except FileNotFoundError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("--peak")
    args = parser.parse_args()
    if not args.peak:
        print(resident_kb(args.pid))
        return
    peak, out = 0, pathlib.Path(args.peak)
    while True:
        now = resident_kb(args.pid)
        if now > peak:
            peak = now
            # Renamed into place: the kill that ends sampling can come mid-write.
            out.with_suffix(".tmp").write_text(f"{peak}\n")
            os.replace(out.with_suffix(".tmp"), out)
        time.sleep(0.02)


if __name__ == "__main__":
    main()
