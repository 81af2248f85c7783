#!/usr/bin/python3
"""Summary of bench/fs/run.sh's measurements (results.jsonl, one object per line:
case, op, rep, bytes, seconds).

Prints a table of median, min and max throughput per case and operation, then
the ratios of medians libdcp/torch and libdcp/raw (> 1: libdcp is faster),
each with the range of the same ratio taken repetition by repetition (the
cases of one repetition ran back to back). Writes everything as JSON to --out.
"""
import argparse
import json
import statistics
import sys

OPS = ["save", "load_warm", "load_cold"]
LABELS = {
    "dcp1": "libdcp, dcp --ranks 1 (4 I/O threads)",
    "dcp4": "libdcp, dcp --ranks 4 (4 I/O threads each)",
    "torch": "torch 1.13 DCP, a file per item",
    "torch1f": "torch 1.13 DCP, single_file_per_rank",
    "raw1": "raw: dd, 1 stream + fsync",
    "raw4": "raw: dd, 4 streams + fsync",
}
DCP_CASES = ["dcp1", "dcp4"]
TORCH_CASES = ["torch", "torch1f"]
RAW_CASES = ["raw1", "raw4"]


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"summarize.py: {path} line {n} is not JSON ({e}): rerun run.sh")
    return rows


def stats(rows):
    """{(case, op): {...}} with per-repetition throughputs in MB/s (10^6 B/s)."""
    groups = {}
    for r in rows:
        if r["seconds"] <= 0:
            continue
        groups.setdefault((r["case"], r["op"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        tp = [r["bytes"] / r["seconds"] / 1e6 for r in rs]
        secs = [r["seconds"] for r in rs]
        out[key] = {
            "case": key[0],
            "op": key[1],
            "n": len(rs),
            "bytes": rs[0]["bytes"],
            "seconds_median": statistics.median(secs),
            "seconds_min": min(secs),
            "seconds_max": max(secs),
            "mb_per_s_median": statistics.median(tp),
            "mb_per_s_min": min(tp),
            "mb_per_s_max": max(tp),
            "per_rep": {r["rep"]: r["bytes"] / r["seconds"] / 1e6 for r in rs},
        }
    return out


def ratio(st, a, b, op):
    x, y = st.get((a, op)), st.get((b, op))
    if x is None or y is None:
        return None
    paired = [x["per_rep"][k] / y["per_rep"][k] for k in x["per_rep"] if k in y["per_rep"]]
    return {
        "op": op,
        "libdcp": a,
        "baseline": b,
        "ratio_of_medians": x["mb_per_s_median"] / y["mb_per_s_median"],
        "per_rep_min": min(paired) if paired else None,
        "per_rep_max": max(paired) if paired else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", action="append", default=[], help="KEY=VALUE for the summary")
    a = ap.parse_args()

    meta = dict(m.split("=", 1) for m in a.meta)
    st = stats(load(a.results))
    cases = [c for c in LABELS if any((c, op) in st for op in OPS)]
    ops = [op for op in OPS if any((c, op) in st for c in cases)]

    print()
    print(f"MB/s (10^6 bytes/s), median [min-max] of {meta.get('reps', '?')} repetitions, "
          f"{meta.get('bytes', '?')} bytes each, on {meta.get('fstype', '?')} "
          f"({meta.get('device', '?')})")
    head = f"{'case':<44}" + "".join(f"{op:>24}" for op in ops)
    print(head)
    print("-" * len(head))
    for c in cases:
        line = f"{LABELS[c]:<44}"
        for op in ops:
            s = st.get((c, op))
            cell = "-" if s is None else (f"{s['mb_per_s_median']:.0f} "
                                         f"[{s['mb_per_s_min']:.0f}-{s['mb_per_s_max']:.0f}]")
            line += f"{cell:>24}"
        print(line)

    ratios = []
    for base_cases, what in ((TORCH_CASES, "torch"), (RAW_CASES, "raw")):
        print()
        print(f"libdcp/{what}: ratio of median throughputs (> 1: libdcp faster) "
              f"[range of the per-repetition ratios]")
        print(f"{'':<20}" + "".join(f"{op:>22}" for op in ops))
        for d in DCP_CASES:
            for b in base_cases:
                line = f"{d + '/' + b:<20}"
                for op in ops:
                    r = ratio(st, d, b, op)
                    if r is None:
                        line += f"{'-':>22}"
                        continue
                    ratios.append(r)
                    line += f"{r['ratio_of_medians']:>9.2f} [{r['per_rep_min']:.2f}-{r['per_rep_max']:.2f}]"
                print(line)

    summary = {
        "meta": meta,
        "units": "throughput in 10^6 bytes per second; seconds of the timed call",
        "cases": {c: LABELS[c] for c in cases},
        "results": [{k: v for k, v in s.items() if k != "per_rep"} | {
            "per_rep_mb_per_s": [s["per_rep"][k] for k in sorted(s["per_rep"])]}
                    for s in st.values()],
        "ratios": ratios,
    }
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=1)
    print()
    print(f"summary written to {a.out}")


if __name__ == "__main__":
    main()
