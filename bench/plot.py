#!/usr/bin/env python3
"""plot.py - draw the benchmark's key figures with gnuplot, as SVG files the
README shows.

usage: bench/plot.py OUTDIR [bench/results.json] [bench/serve-results.json]

From `make bench` (results.json): restore against guest memory size,
reset against pages dirtied, resident memory per ready sandbox. From
`make bench-serve` (serve-results.json): requests/s and latency per strategy.
A file that is absent is skipped; a figure whose rows are absent is skipped
with a message. Only gnuplot draws; this script only selects the rows."""
import json
import os
import subprocess
import sys


def rows_of(part):
    return {r["name"]: r["values"] for r in part.get("rows", [])}


def datablock(name, header, lines):
    out = ["$%s << EOD" % name, "# " + header]
    out += [" ".join(str(v) for v in line) for line in lines]
    out.append("EOD")
    return "\n".join(out)


def gnuplot(script, path):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("plot: wrote", path)


COMMON = """set terminal svg size 760,520 dynamic font "sans,12" background "white"
set output "%s"
set key below
set grid
"""


def series_plot(out, title, xlabel, ylabel, xs, series, logx=True, logy=True, xscale=1.0):
    """One line per (label, values); values < 0 are missing."""
    blocks, plots = [], []
    for i, (label, values) in enumerate(series):
        pts = [(x * xscale, v) for x, v in zip(xs, values) if v is not None and v >= 0]
        if not pts:
            continue
        blocks.append(datablock("d%d" % i, label, pts))
        plots.append('$d%d using 1:2 with linespoints lw 2 title "%s"' % (i, label))
    if not plots:
        print("plot: no data for", out, file=sys.stderr)
        return
    s = COMMON % out + "\n".join(blocks) + "\n"
    s += 'set title "%s"\nset xlabel "%s"\nset ylabel "%s"\n' % (title, xlabel, ylabel)
    if logx:
        s += "set logscale x 2\n"
    if logy:
        s += "set logscale y 10\n"
    s += "set xtics (%s)\n" % ", ".join('"%g" %g' % (x * xscale, x * xscale) for x in xs)
    lo, hi = min(xs) * xscale, max(xs) * xscale
    s += "set xrange [%g:%g]\n" % ((lo / 1.5, hi * 1.5) if logx else (lo - 1, hi + 1))
    s += "plot " + ", ".join(plots) + "\n"
    gnuplot(s, out)


def bench_figures(outdir, results):
    kvm = results.get("kvm", {})
    rows, sizes = rows_of(kvm), kvm.get("sizes_mib", [])
    where = kvm.get("where", "")
    note = " (KVM test VM: ratios only)" if "VM" in where else ""
    want = [
        ("cold create from ELF (VM + load + guest init)", "cold create from the ELF"),
        ("restore from file (open + VM + decompress + state)", "restore from the file"),
        ("restore from template, copy, pooled", "restore from a template onto a pooled VM"),
        ("restore from template, cow, pooled", "the same, copy-on-write"),
        ("pool: one VM made ahead (memory mapped, not faulted in)", "one pooled VM made ahead"),
        ("ready pool: take (no KVM call, no copy)", "take from a ready pool"),
    ]
    series_plot(os.path.join(outdir, "restore.svg"), "Getting a sandbox, by guest memory size" + note,
                "guest memory (MiB)", "time (us)", sizes,
                [(label, rows.get(name)) for name, label in want if name in rows])
    pages = [1, 10, 100]
    series = []
    for k, size in enumerate(sizes):
        vals = [rows.get("reset after a call dirtying %d pages (copy)" % p, [None] * len(sizes))[k]
                for p in pages]
        series.append(("%d MiB guest" % size, vals))
    vals = [rows.get("reset after a call dirtying %d pages (cow)" % p, [None] * len(sizes))[1]
            for p in pages]
    series.append(("16 MiB guest, copy-on-write", vals))
    series_plot(os.path.join(outdir, "reset.svg"), "Reset after a request, by pages it dirtied" + note,
                "pages dirtied by the request", "time (us)", pages, series, logx=True)
    kib = 1.0 / 1024
    res = [
        ("ready sandbox: guest memory resident", "resident per ready sandbox"),
        ("  its working set (template pages included)", "its working set"),
        ("  its template's non-zero pages", "its template's non-zero pages"),
    ]
    series = [("guest memory size", [s * 1024.0 for s in sizes])]
    series += [(label, [v * kib if v is not None and v >= 0 else -1 for v in rows[name]])
               for name, label in res if name in rows]
    series_plot(os.path.join(outdir, "resident.svg"), "Memory a ready sandbox keeps resident" + note,
                "guest memory (MiB)", "KiB", sizes, series)


def serve_figures(outdir, serve):
    runs = serve.get("runs", serve) if isinstance(serve, dict) else serve
    if not runs:
        print("plot: no runs in the serve results", file=sys.stderr)
        return
    guests = sorted({r["guest"] for r in runs})
    strategies = [s for s in ("new", "restore", "reuse") if any(r["strategy"] == s for r in runs)]
    lines = []
    for s in strategies:
        line = [s]
        for g in guests:
            r = next((r for r in runs if r["guest"] == g and r["strategy"] == s), None)
            line += [r["requests_per_s"] if r else 0, r["p50_ms"] if r else 0, r["p99_ms"] if r else 0]
        lines.append(line)
    block = datablock("d", "strategy then per guest: requests_per_s p50_ms p99_ms", lines)
    base = COMMON + block + """
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
"""
    out = os.path.join(outdir, "serve-throughput.svg")
    plots = ", ".join('$d using %d:xtic(1) title "%s"' % (2 + 3 * i, g) for i, g in enumerate(guests))
    gnuplot(base % out + 'set title "snapbox serve: requests/s by strategy (wrk, 50 connections)"\n'
            'set ylabel "requests/s"\nset logscale y 10\nplot ' + plots + "\n", out)
    out = os.path.join(outdir, "serve-latency.svg")
    plots = ", ".join('$d using %d:xtic(1) title "%s p50", $d using %d title "%s p99"'
                      % (3 + 3 * i, g, 4 + 3 * i, g) for i, g in enumerate(guests))
    gnuplot(base % out + 'set title "snapbox serve: latency by strategy"\n'
            'set ylabel "ms"\nset logscale y 10\nplot ' + plots + "\n", out)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    for path in argv[2:]:
        if not os.path.exists(path):
            print("plot: %s: absent, skipped" % path, file=sys.stderr)
            continue
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict) and "kvm" in data:
            bench_figures(outdir, data)
        else:
            serve_figures(outdir, data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
