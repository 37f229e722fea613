#!/usr/bin/env python3
"""Turns the measurements bench/compare recorded (one JSON object a line)
into medians, ratios and goals: a table on stdout, a JSON file and a PNG
plot of throughput against concurrency, drawn by gnuplot.

  report.py RECORDS OUT_JSON OUT_PNG META_JSON
"""
import json
import statistics
import subprocess
import sys
from collections import defaultdict

NAMES = {"taxiway": "taxiway", "opentaxii": "OpenTAXII", "ceiling": "ceiling", "durable": "durable ceiling",
         "lapin": "lapin"}
INBOX_SERVERS = ("taxiway", "opentaxii", "ceiling", "durable")


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

    concurrencies = sorted({c for (m, _, c) in runs if m == "inbox"})
    top = max(concurrencies)
    window_c = max(c for (m, _, c) in runs if m == "window")
    inbox = {s: {c: median("inbox", s, c) for c in concurrencies} for s in INBOX_SERVERS}

    def cpu_us(measure, server, concurrency=None, field="server_cpu_s", per="good"):
        """Median CPU microseconds per answer (or message) of one side."""
        values = [r[field] * 1e6 / r[per] for r in runs[measure, server, concurrency]
                  if r.get(field) is not None and r.get(per)]
        return statistics.median(values) if values else None

    inbox_cpu = {s: cpu_us("inbox", s, top) for s in INBOX_SERVERS}
    poll = {s: median("full_poll", s, field="seconds") for s in ("taxiway", "opentaxii", "ceiling")}
    poll_run = runs["full_poll", "taxiway", None][0]
    window = {s: median("window", s, window_c) for s in ("taxiway", "opentaxii")}
    amqp = {s: median("amqp", s) for s in ("lapin", "taxiway")}
    amqp_cpu = {
        "lapin publisher": cpu_us("amqp", "lapin", field="client_cpu_s", per="messages"),
        "broker, lapin run": cpu_us("amqp", "lapin", field="broker_cpu_s", per="messages"),
        "taxiway": cpu_us("amqp", "taxiway", per="messages"),
        "HTTP load generator": cpu_us("amqp", "taxiway", field="client_cpu_s", per="messages"),
        "broker, taxiway run": cpu_us("amqp", "taxiway", field="broker_cpu_s", per="messages"),
    }
    cores = int(meta.get("cores", 1))
    # What bounds the forward rate whatever taxiway does: every message
    # costs the broker what it cost with bare lapin, the load generator
    # what it cost, and taxiway at least a durable inbox (the durable
    # ceiling) and a publish (what bare lapin spent): all on these cores.
    least = [amqp_cpu["broker, lapin run"], amqp_cpu["HTTP load generator"], inbox_cpu["durable"],
             amqp_cpu["lapin publisher"]]
    amqp_bound = cores * 1e6 / sum(least) if None not in least else None
    # Flat: polling the whole feed, after polling a tenth of it twice and
    # before any other load, grows taxiway by less than a quarter of the
    # extra bytes sent; a server that held the result would grow by them all.
    *_, small, large = runs["scaling_poll", "taxiway", None]
    scaling = (large["peak_rss_kb"] - small["peak_rss_kb"]) * 1024 / (large["bytes"] - small["bytes"])
    # Peaks are the highest of all rounds, each round after earlier loads.
    memory = {
        s: {
            "idle": runs["idle_rss", s, None][0]["rss_kb"] / 1024,
            f"inbox c{top} peak": peak_mb("inbox", s, top),
            "full poll peak": peak_mb("full_poll", s),
            f"window c{window_c} peak": peak_mb("window", s, window_c),
        }
        for s in ("taxiway", "opentaxii")
    }

    def at_least(value, threshold, shown):
        return {"value": value, "pass": value >= threshold, "shown": shown}

    def below(value, threshold, shown):
        return {"value": value, "pass": value < threshold, "shown": shown}

    goals = {}
    ratio = inbox["taxiway"][top] / inbox["opentaxii"][top]
    goals[f"inbox c{top} >= 100x OpenTAXII"] = at_least(ratio, 100, f"{ratio:.1f}x")
    ratio = inbox["taxiway"][top] / inbox["ceiling"][top]
    durable_share = inbox["durable"][top] / inbox["ceiling"][top]
    goals[f"inbox c{top} >= 50% of the hyper ceiling"] = at_least(
        ratio, 0.5, f"{ratio:.0%} (a bare durable commit: {durable_share:.0%})")
    ratio = poll["opentaxii"] / poll["taxiway"]
    static_ratio = poll["opentaxii"] / poll["ceiling"]
    goals["full poll >= 50x OpenTAXII"] = at_least(
        ratio, 50, f"{ratio:.1f}x (the static body: {static_ratio:.1f}x)")
    ratio = poll["ceiling"] / poll["taxiway"]
    goals["full poll >= 50% of the static ceiling"] = at_least(ratio, 0.5, f"{ratio:.0%}")
    goals["full poll memory flat (10x blocks: < 1/4 of extra bytes)"] = below(
        scaling, 0.25, f"{scaling:.2f} MB/MB")
    ratio = window["taxiway"] / window["opentaxii"]
    goals[f"recent window c{window_c} >= 100x OpenTAXII"] = at_least(ratio, 100, f"{ratio:.1f}x")
    ratio = amqp["taxiway"] / amqp["lapin"]
    bound = "" if amqp_bound is None else f" (CPU bound: {amqp_bound / amqp['lapin']:.0%})"
    goals["inbox to AMQP >= 80% of the lapin ceiling"] = at_least(ratio, 0.8, f"{ratio:.0%}{bound}")
    value = memory["taxiway"]["idle"]
    goals["idle RSS < 30 MB"] = below(value, 30, f"{value:.1f} MB")
    value = memory["taxiway"][f"inbox c{top} peak"]
    goals[f"RSS under inbox c{top} < 100 MB"] = below(value, 100, f"{value:.1f} MB")

    print(f"\n{meta['title']}")
    print(f"{'':34} {'taxiway':>10} {'OpenTAXII':>10} {'ceiling':>10} {'durable':>10}"
          f" {'tw/OT':>8} {'tw/ceil':>8} {'tw/dur':>8}")

    def row(label, values, ratios, fmt):
        values, ratios = list(values), list(ratios)
        values += [None] * (4 - len(values))
        ratios += [None] * (3 - len(ratios))
        cells = [format(v, fmt) if v is not None else "" for v in values]
        shown = ["" if r is None else f"{r:.1f}x" if r >= 10 else f"{r:.2f}" for r in ratios]
        print(f"{label:34} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} {cells[3]:>10}"
              f" {shown[0]:>8} {shown[1]:>8} {shown[2]:>8}")

    for c in concurrencies:
        tw, ot, ceiling, durable = (inbox[s][c] for s in INBOX_SERVERS)
        row(f"inbox c{c} (messages/s)", (tw, ot, ceiling, durable), (tw / ot, tw / ceiling, tw / durable), ".0f")
    row(f"inbox c{top} CPU (us/message)", (inbox_cpu[s] for s in INBOX_SERVERS), (), ".0f")
    row(f"full poll, {poll_run['blocks']} blocks (s)", (poll["taxiway"], poll["opentaxii"], poll["ceiling"]),
        (poll["opentaxii"] / poll["taxiway"], poll["ceiling"] / poll["taxiway"]), ".3f")
    row(f"recent 10 blocks c{window_c} (polls/s)", (window["taxiway"], window["opentaxii"], None),
        (window["taxiway"] / window["opentaxii"], None), ".0f")
    row("inbox to AMQP (messages/s)", (amqp["taxiway"], None, amqp["lapin"]),
        (None, amqp["taxiway"] / amqp["lapin"]), ".0f")
    for key in memory["taxiway"]:
        row(f"RSS {key} (MB)", (memory["taxiway"][key], memory["opentaxii"][key], None), (None, None), ".1f")
    shown = ", ".join(f"{name} {value:.0f}" for name, value in amqp_cpu.items() if value is not None)
    print(f"AMQP CPU (us/message): {shown}")
    if amqp_bound is not None:
        print(f"AMQP forward rate bound on {cores} cores (broker + load generator + durable inbox +"
              f" publish, each at its least): {amqp_bound:.0f} messages/s")
    print(f"taxiway RSS peak polling {small['blocks']} blocks in full: {small['peak_rss_kb'] / 1024:.1f} MB,"
          f" {large['blocks']} blocks: {large['peak_rss_kb'] / 1024:.1f} MB")
    print("Ratios are of throughput (for the full poll, the other's time over taxiway's); the inbox")
    print("ceiling is hyper answering a fixed status, the durable one hyper committing each body to")
    print("SQLite (WAL, full sync, group commit) first; the poll ceiling hyper replaying taxiway's")
    print("responses, the AMQP ceiling bare lapin; gunicorn's RSS and CPU are its master's and")
    print("workers' summed.")
    for record in records:
        bad = record.get("answers", 0) - record.get("good", 0) + record.get("socket_errors", 0)
        if bad:
            print(f"warning: {bad} bad answers or socket errors in {record['measure']} of {record['server']}"
                  f" at concurrency {record['concurrency']}, round {record['round']}")
    print()
    for label, goal in goals.items():
        print(f"{'PASS' if goal['pass'] else 'FAIL'}  {label:58} {goal['shown']}")

    result = dict(
        meta,
        inbox_messages_per_second={NAMES[s]: {str(c): v for c, v in by_c.items()} for s, by_c in inbox.items()},
        full_poll_seconds={NAMES[s]: v for s, v in poll.items()},
        full_poll={key: poll_run[key] for key in ("blocks", "requests", "bytes")},
        full_poll_memory={
            "blocks": [small["blocks"], large["blocks"]],
            "bytes": [small["bytes"], large["bytes"]],
            "taxiway_peak_mb": [small["peak_rss_kb"] / 1024, large["peak_rss_kb"] / 1024],
            "growth_per_extra_byte": scaling,
        },
        recent_window_polls_per_second={NAMES[s]: v for s, v in window.items()},
        inbox_cpu_us_per_message={NAMES[s]: v for s, v in inbox_cpu.items()},
        amqp_messages_per_second={NAMES[s]: v for s, v in amqp.items()},
        amqp_cpu_us_per_message=amqp_cpu,
        amqp_cpu_bound_messages_per_second=amqp_bound,
        memory_mb={NAMES[s]: v for s, v in memory.items()},
        goals={label: {"value": g["value"], "pass": g["pass"]} for label, g in goals.items()},
        records=records,
    )
    with open(out_json, "w") as out:
        json.dump(result, out, indent=1)
    plot(out_png, meta["title"], concurrencies, inbox, window_c, window)
    print(f"\nresults: {out_json}\nplot:    {out_png}")


def plot(path, title, concurrencies, inbox, window_c, window):
    lines = [
        "set terminal pngcairo size 1000,560",
        f"set output '{path}'",
        f"set title \"{title}\" noenhanced",
        "set logscale x 2",
        "set logscale y 10",
        "set xrange [0.8:45]",
        f"set xtics ({', '.join(str(c) for c in concurrencies)})",
        "set xlabel 'requests in flight'",
        "set ylabel 'requests per second'",
        "set key outside right top vertical",
        "set grid",
    ]
    series = [
        ("ceiling: hyper, fixed status", [(c, inbox["ceiling"][c]) for c in concurrencies], "lp dt 2 pt 1"),
        ("ceiling: hyper, durable commit", [(c, inbox["durable"][c]) for c in concurrencies], "lp dt 3 pt 2"),
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
