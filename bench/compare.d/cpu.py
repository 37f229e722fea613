#!/usr/bin/env python3
"""CPU time (user and system) of processes, for bench/compare: what each
side of a measurement spent, so that a rate can be set against what the
machine had to give.

  cpu.py of PID...      prints the CPU seconds the processes and their
                        children (for gunicorn: master and workers) have
                        used so far, summed
  cpu.py run CMD...     runs CMD and prints its output, its last line (a
                        JSON object) with "client_cpu_s" added: the CPU
                        seconds CMD and what it waited for used
"""
import json
import os
import pathlib
import subprocess
import sys

from rss import tree

TICKS = os.sysconf("SC_CLK_TCK")


def seconds(pid):
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    # utime and stime, the 14th and 15th fields of the line.
    return (int(fields[11]) + int(fields[12])) / TICKS


def main():
    command, *rest = sys.argv[1:]
    if command == "of":
        print(f"{sum(seconds(member) for pid in rest for member in tree(int(pid))):.3f}")
        return
    if command != "run":
        sys.exit("usage: cpu.py of PID... | cpu.py run CMD...")
    before = os.times()
    finished = subprocess.run(rest, stdout=subprocess.PIPE, text=True)
    after = os.times()
    lines = finished.stdout.splitlines()
    for line in lines[:-1]:
        print(line)
    if finished.returncode != 0 or not lines:
        print("\n".join(lines[-1:]))
        sys.exit(finished.returncode or 1)
    used = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    last = json.loads(lines[-1])
    last["client_cpu_s"] = round(used, 3)
    print(json.dumps(last))


if __name__ == "__main__":
    main()
