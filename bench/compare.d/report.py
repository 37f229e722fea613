#!/usr/bin/env python3
"""Turns the measurements bench/compare recorded (one JSON object a line)
into medians, ratios and goals: a table on stdout, a JSON file and a PNG
plot of inbox throughput against concurrency, drawn by gnuplot.

  report.py RECORDS OUT_JSON OUT_PNG META_JSON
"""
import json
import statistics
import subprocess
import sys
from collections import defaultdict

NAMES = {"taxiway": "taxiway", "opentaxii": "OpenTAXII", "ceiling": "ceiling"}


def main():
    records_path, out_json, out_png, meta = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    records = [json.loads(line) for line in open(records_path) if line.strip()]
    runs = defaultdict(list)
    for record in records:
        if "good" in record:
            # Answers that were not what was asked for do not count.
            record["rate"] = record["good"] / record["seconds"]
        concurrency = record["concurrency"] if record["measure"] in ("inbox", "window") else None
        runs[record["measure"], record["server"], concurrency].append(record)

    def median(measure, server, concurrency=None, field="rate"):
        return statistics.median(r[field] for r in runs[measure, server, concurrency])

    def peak_mb(measure, server, concurrency=None):
        return max(r["peak_rss_kb"] for r in runs[measure, server, concurrency]) / 1024

    def memory_mb(measure, server):
        return runs[measure, server, None][0]["rss_kb"] / 1024

    concurrencies = sorted({c for (m, _, c) in runs if m == "inbox"})
    inbox = {
        server: {c: median("inbox", server, c) for c in concurrencies}
        for server in ("taxiway", "opentaxii", "ceiling")
    }
    poll = {server: median("full_poll", server, field="seconds") for server in ("taxiway", "opentaxii", "ceiling")}
    poll_run = runs["full_poll", "taxiway", None][0]
    window_c = max(c for (m, _, c) in runs if m == "window")
    window = {server: median("window", server, window_c) for server in ("taxiway", "opentaxii")}
    amqp = {server: median("amqp", server) for server in ("lapin", "taxiway")}
    top = max(concurrencies)
    # Flat: polling the whole feed grows taxiway by less than half of what
    # it sends, so it never holds the result (a server building each
    # response in memory grows by a response or more).
    poll_growth_mb = peak_mb("full_poll", "taxiway") - memory_mb("filled_rss", "taxiway")
    poll_mb = poll_run["bytes"] / 1e6
    memory = {
        server: {
            "idle_mb": memory_mb("idle_rss", server),
            f"inbox_c{top}_peak_mb": peak_mb("inbox", server, top),
            "full_poll_peak_mb": peak_mb("full_poll", server),
            f"window_c{window_c}_peak_mb": peak_mb("window", server, window_c),
        }
        for server in ("taxiway", "opentaxii")
    }
    goals = [
        (f"inbox c{top} >= 100x OpenTAXII", inbox["taxiway"][top] / inbox["opentaxii"][top], 100, "x"),
        (f"inbox c{top} >= 50% of the hyper ceiling", inbox["taxiway"][top] / inbox["ceiling"][top], 0.5, "%"),
        ("full poll >= 50x OpenTAXII", poll["opentaxii"] / poll["taxiway"], 50, "x"),
        ("full poll >= 50% of the static ceiling", poll["ceiling"] / poll["taxiway"], 0.5, "%"),
        ("full poll memory flat (growth < half the bytes sent)", poll_growth_mb / poll_mb, 0.5, "<"),
        (f"recent window c{window_c} >= 100x OpenTAXII", window["taxiway"] / window["opentaxii"], 100, "x"),
        ("inbox to AMQP >= 80% of the lapin ceiling", amqp["taxiway"] / amqp["lapin"], 0.8, "%"),
        ("idle RSS < 30 MB", memory["taxiway"]["idle_mb"], 30, "MB"),
        (f"RSS under inbox c{top} < 100 MB", memory["taxiway"][f"inbox_c{top}_peak_mb"], 100, "MB"),
    ]

    print(f"\n{meta['title']}")
    print(f"{'':34} {'taxiway':>10} {'OpenTAXII':>10} {'ceiling':>10} {'tw/OT':>8} {'tw/ceil':>8}")

    def row(label, tw, ot, ceiling, ratio_ot, ratio_ceiling, fmt):
        cells = [format(v, fmt) if v is not None else "" for v in (tw, ot, ceiling)]
        ratios = [f"{v:.1f}x" if v is not None and v >= 10 else f"{v:.2f}" if v is not None else ""
                  for v in (ratio_ot, ratio_ceiling)]
        print(f"{label:34} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} {ratios[0]:>8} {ratios[1]:>8}")

    for c in concurrencies:
        tw, ot, ceiling = (inbox[s][c] for s in ("taxiway", "opentaxii", "ceiling"))
        row(f"inbox c{c} (messages/s)", tw, ot, ceiling, tw / ot, tw / ceiling, ".0f")
    row(f"full poll, {poll_run['blocks']} blocks (s)", poll["taxiway"], poll["opentaxii"], poll["ceiling"],
        poll["opentaxii"] / poll["taxiway"], poll["ceiling"] / poll["taxiway"], ".3f")
    row(f"recent 10 blocks c{window_c} (polls/s)", window["taxiway"], window["opentaxii"], None,
        window["taxiway"] / window["opentaxii"], None, ".0f")
    row("inbox to AMQP (messages/s)", amqp["taxiway"], None, amqp["lapin"], None,
        amqp["taxiway"] / amqp["lapin"], ".0f")
    for key in memory["taxiway"]:
        row(f"RSS {key.removesuffix('_mb').replace('_', ' ')} (MB)", memory["taxiway"][key],
            memory["opentaxii"][key], None, None, None, ".1f")
    for record in records:
        bad = record.get("answers", 0) - record.get("good", 0) + record.get("socket_errors", 0)
        if bad:
            print(f"warning: {bad} bad answers or socket errors in {record['measure']} of {record['server']}"
                  f" at concurrency {record['concurrency']}, round {record['round']}")
    print("(the full poll's ratios are OpenTAXII's or the ceiling's time over taxiway's;"
          " the inbox and AMQP ceilings are hyper and lapin)")
    print()
    for label, value, threshold, unit in goals:
        passed = value < threshold if unit in ("<", "MB") else value >= threshold
        shown = {"x": f"{value:.1f}x", "%": f"{value:.0%}", "<": f"{value:.2f}", "MB": f"{value:.1f} MB"}[unit]
        print(f"{'PASS' if passed else 'FAIL'}  {label:52} {shown}")

    result = dict(
        meta,
        inbox_messages_per_second={NAMES[s]: {str(c): v for c, v in by_c.items()} for s, by_c in inbox.items()},
        full_poll_seconds={NAMES[s]: v for s, v in poll.items()},
        full_poll={key: poll_run[key] for key in ("blocks", "requests", "bytes")},
        full_poll_rss_growth_mb=poll_growth_mb,
        recent_window_polls_per_second={NAMES[s]: v for s, v in window.items()},
        amqp_messages_per_second=amqp,
        memory_mb={NAMES[s]: v for s, v in memory.items()},
        goals=[
            {"goal": label, "value": value,
             "pass": value < threshold if unit in ("<", "MB") else value >= threshold}
            for label, value, threshold, unit in goals
        ],
        records=records,
    )
    with open(out_json, "w") as out:
        json.dump(result, out, indent=1)
    plot(out_png, meta["title"], concurrencies, inbox, window_c, window)
    print(f"\nresults: {out_json}\nplot:    {out_png}")


def plot(path, title, concurrencies, inbox, window_c, window):
    lines = [
        "set terminal pngcairo size 900,560",
        f"set output '{path}'",
        f"set title \"{title}\" noenhanced",
        "set logscale xy 2",
        "set logscale y 10",
        f"set xtics ({', '.join(str(c) for c in concurrencies)})",
        "set xlabel 'requests in flight'",
        "set ylabel 'requests per second'",
        "set xrange [0.8:45]",
        "set key below",
        "set grid",
    ]
    series = [
        ("ceiling: hyper, fixed status", [(c, inbox["ceiling"][c]) for c in concurrencies], "lp dt 2 pt 1"),
        ("taxiway inbox", [(c, inbox["taxiway"][c]) for c in concurrencies], "lp pt 7"),
        ("OpenTAXII inbox", [(c, inbox["opentaxii"][c]) for c in concurrencies], "lp pt 5"),
        ("taxiway poll, recent 10", [(window_c, window["taxiway"])], "p pt 9 ps 2"),
        ("OpenTAXII poll, recent 10", [(window_c, window["opentaxii"])], "p pt 11 ps 2"),
    ]
    for n, (_, points, _) in enumerate(series):
        lines.append(f"$s{n} << EOD")
        lines.extend(f"{x} {y}" for x, y in points)
        lines.append("EOD")
    lines.append("plot " + ", ".join(
        f"$s{n} using 1:2 with {style} title '{name}'" for n, (name, _, style) in enumerate(series)
    ))
    subprocess.run(["gnuplot"], input="\n".join(lines) + "\n", text=True, check=True)


if __name__ == "__main__":
    main()
