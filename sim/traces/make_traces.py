#!/usr/bin/python3
"""Synthetic network traces for ee-sim and ee-link, from the assumptions stated in TRACES below.

    /usr/bin/python3 sim/traces/make_traces.py            # rewrites sim/traces/<name>.{up,down}[.csv]
    /usr/bin/python3 sim/traces/make_traces.py --out DIR  # somewhere else

Every trace is a rate process sampled every 100 ms (the CSV rows) and the same process quantised into
1500-byte delivery opportunities (the Mahimahi files). The script is deterministic: the same file comes out
every run (numpy's PCG64 with a fixed seed per trace and direction).

The same script converts public traces into the two forms ee-sim and ee-link read:

    make_traces.py convert --from norway   LOG      OUT.csv [--rtt-ms 100] [--mahimahi OUT]
    make_traces.py convert --from cooked   FILE     OUT.csv [--rtt-ms 80]  [--mahimahi OUT]
    make_traces.py convert --from ucc      FILE.csv OUT.csv --column UL_bitrate [--mahimahi OUT]
    make_traces.py convert --from csv      FILE.csv ignored --mahimahi OUT   # our CSV to Mahimahi

(see sim/traces/README.md for what each input format is).
"""
import argparse
import math
import os
import sys

import numpy as np

STEP_S = 0.1  # CSV row spacing
PACKET_BYTES = 1500
MAHIMAHI_BUDGET_BYTES = 190_000  # each Mahimahi file stays under ~200 KB; it loops, so a shorter one is fine

# name -> assumptions. Rates are Mbit/s means over the trace; rtt in ms; loss per packet.
TRACES = {
    "wifi-steady": dict(
        about="802.11ac, strong signal, idle channel; the cloud one metro hop away: a constant link",
        duration_s=60, up_mbps=40, down_mbps=60, rtt_ms=5, loss=0.0, kind="constant"),
    "lte-fading": dict(
        about="LTE, pedestrian to slow vehicular: log-normal shadowing (4 dB, 3 s correlation) times a fast "
              "1.5 dB term per 100 ms; HARQ hides radio loss",
        duration_s=300, up_mbps=8, down_mbps=20, rtt_ms=50, loss=0.0, kind="fading",
        shadow_db=4.0, corr_s=3.0, fast_db=1.5),
    "3g-hspa": dict(
        about="3G HSPA, commuting: 5 dB shadowing with 5 s correlation, 1.5 dB fast term, long RTT and some "
              "residual loss",
        duration_s=300, up_mbps=1.0, down_mbps=3.0, rtt_ms=150, loss=0.005, kind="fading",
        shadow_db=5.0, corr_s=5.0, fast_db=1.5),
    "lte-outages": dict(
        about="LTE with coverage holes: 2 dB fading, then outages (zero capacity) starting 10 s in and every "
              "Exp(30 s) after, each Exp(3 s) long, clipped to [1, 8] s",
        duration_s=300, up_mbps=10, down_mbps=25, rtt_ms=60, loss=0.0, kind="outages",
        shadow_db=2.0, corr_s=3.0, fast_db=1.0, first_outage_s=10, outage_every_s=30, outage_mean_s=3),
    "step-change": dict(
        about="a link that degrades halfway: the rate drops to a quarter and the RTT triples at 10 s "
              "(handover from Wi-Fi to a loaded cell), then it loops",
        duration_s=20, up_mbps=16, down_mbps=20, rtt_ms=30, loss=0.0, kind="step",
        step_at_s=10, rate_factor_after=0.25, rtt_factor_after=3.0),
}


def rate_series(spec, mean_mbps, rng):
    """Rate per 100 ms step in Mbit/s, scaled so its mean is mean_mbps (outages stay at zero)."""
    n = int(round(spec["duration_s"] / STEP_S))
    kind = spec["kind"]
    if kind == "constant":
        return np.full(n, float(mean_mbps))
    if kind == "step":
        at = int(round(spec["step_at_s"] / STEP_S))
        r = np.ones(n)
        r[at:] = spec["rate_factor_after"]
        return r * mean_mbps / r.mean()
    # AR(1) shadowing in dB with the stated correlation time, plus an independent fast term.
    a = math.exp(-STEP_S / spec["corr_s"])
    shadow = np.empty(n)
    shadow[0] = rng.normal(0, spec["shadow_db"])
    innovations = rng.normal(0, spec["shadow_db"] * math.sqrt(1 - a * a), n)
    for i in range(1, n):
        shadow[i] = a * shadow[i - 1] + innovations[i]
    db = shadow + rng.normal(0, spec["fast_db"], n)
    r = np.clip(10 ** (db / 10), 0.1, 5.0)  # no radio link sits below a tenth or above five times its mean
    if kind == "outages":
        t, up = spec["first_outage_s"], np.ones(n, dtype=bool)
        while t < spec["duration_s"]:
            length = float(np.clip(rng.exponential(spec["outage_mean_s"]), 1, 8))
            up[int(t / STEP_S):int((t + length) / STEP_S)] = False
            t += length + rng.exponential(spec["outage_every_s"])
        r = np.where(up, r, 0.0)
    return r * mean_mbps / r.mean()


def rtt_series(spec):
    n = int(round(spec["duration_s"] / STEP_S))
    rtt = np.full(n, float(spec["rtt_ms"]))
    if spec["kind"] == "step":
        rtt[int(round(spec["step_at_s"] / STEP_S)):] *= spec["rtt_factor_after"]
    return rtt


def write_csv(path, mbps, rtt_ms, loss):
    with open(path, "w") as f:
        f.write("t_s,bandwidth_mbps,rtt_ms,loss\n")
        for i, (b, r, l) in enumerate(zip(mbps, rtt_ms, loss)):
            f.write(f"{i * STEP_S:.1f},{b:.4f},{r:.1f},{l:g}\n")


def opportunities(mbps, step_s, duration_ms):
    """Millisecond timestamps of 1500-byte opportunities for a piecewise-constant rate (one value per step).

    The opportunity stamped m carries what the link sends during (m-1, m] ms. The last line must be the
    period, so a trace that ends in an outage gets one opportunity at its very end.
    """
    per_ms = np.repeat(np.asarray(mbps) * 1e6 / 8 / 1000, int(round(step_s * 1000)))[:duration_ms]
    per_ms = np.concatenate([per_ms, np.full(max(0, duration_ms - len(per_ms)), per_ms[-1])])
    cum = np.floor(np.cumsum(per_ms) / PACKET_BYTES).astype(np.int64)  # opportunities by the end of each ms
    counts = np.diff(np.concatenate([[0], cum]))
    stamps = np.repeat(np.arange(1, duration_ms + 1), counts)
    if len(stamps) == 0 or stamps[-1] != duration_ms:
        stamps = np.append(stamps, duration_ms)
    return stamps


def write_mahimahi(path, mbps, step_s, max_s):
    """Writes the longest whole-second prefix (at most max_s) whose file fits the size budget."""
    stamps = opportunities(mbps, step_s, int(max_s) * 1000)
    line_bytes = np.cumsum(np.char.str_len(stamps.astype(str)) + 1)
    for seconds in range(int(max_s), 0, -1):
        end_ms = seconds * 1000
        keep = int(np.searchsorted(stamps, end_ms, side="right"))
        closing = 0 if keep and stamps[keep - 1] == end_ms else len(str(end_ms)) + 1
        if (line_bytes[keep - 1] if keep else 0) + closing <= MAHIMAHI_BUDGET_BYTES:
            prefix = stamps[:keep] if not closing else np.append(stamps[:keep], end_ms)
            with open(path, "w") as f:
                f.write("\n".join(map(str, prefix)) + "\n")
            return seconds
    raise SystemExit(f"{path}: even one second of this trace exceeds {MAHIMAHI_BUDGET_BYTES} bytes")


def make(out_dir):
    for index, (name, spec) in enumerate(TRACES.items()):
        rtt = rtt_series(spec)
        loss = np.full(len(rtt), spec["loss"])
        for d, (direction, mean) in enumerate((("up", spec["up_mbps"]), ("down", spec["down_mbps"]))):
            rng = np.random.default_rng(1000 + 10 * index + d)
            mbps = rate_series(spec, mean, rng)
            write_csv(os.path.join(out_dir, f"{name}.{direction}.csv"), mbps, rtt, loss)
            seconds = write_mahimahi(os.path.join(out_dir, f"{name}.{direction}"), mbps, STEP_S,
                                     spec["duration_s"])
            print(f"{name}.{direction}: mean {mbps.mean():.2f} Mbit/s, CSV {spec['duration_s']} s, "
                  f"Mahimahi {seconds} s")


# ---- conversion of public traces -------------------------------------------------------------------------

def read_norway(path):
    """Riiser et al. 3G/HSDPA logs (and the Ghent 4G logs in the same layout): whitespace-separated
    `unix_s ms_since_start lat lon bytes elapsed_ms` per line -> (start times s, Mbit/s) per line's interval."""
    t, out_t, out_mbps = 0.0, [], []
    for line in open(path):
        f = line.split()
        if len(f) < 6:
            continue
        received, elapsed_ms = float(f[4]), float(f[5])
        if elapsed_ms <= 0:
            continue
        out_t.append(t)
        out_mbps.append(received * 8 / elapsed_ms / 1000)
        t += elapsed_ms / 1000
    return out_t, out_mbps


def read_cooked(path):
    """Two columns `time_s bandwidth_mbps` (Pensieve's "cooked" traces of the Norway and FCC sets)."""
    rows = [tuple(map(float, line.split()[:2])) for line in open(path) if line.strip()]
    t0 = rows[0][0]
    return [t - t0 for t, _ in rows], [b for _, b in rows]


def read_ucc(path, column):
    """UCC / Raca et al. 4G and 5G datasets: CSV with a header, one row a second, rates in kbit/s in
    columns such as DL_bitrate and UL_bitrate."""
    import csv
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or column not in rows[0]:
        raise SystemExit(f"{path}: no column {column!r}; columns are {list(rows[0]) if rows else []}")
    mbps = []
    for r in rows:
        try:
            mbps.append(float(r[column]) / 1000)
        except ValueError:
            mbps.append(0.0)  # the datasets write '-' for a second without a sample
    return [float(i) for i in range(len(mbps))], mbps


def read_our_csv(path):
    t, mbps, rtt = [], [], []
    with open(path) as f:
        next(f)
        for line in f:
            a, b, c, _ = line.split(",")
            t.append(float(a))
            mbps.append(float(b))
            rtt.append(float(c))
    return t, mbps, rtt


def convert(args):
    if args.source == "csv":
        t, mbps, _ = read_our_csv(args.input)
    else:
        if args.source == "norway":
            t, mbps = read_norway(args.input)
        elif args.source == "cooked":
            t, mbps = read_cooked(args.input)
        else:
            t, mbps = read_ucc(args.input, args.column)
        if not t:
            raise SystemExit(f"{args.input}: no samples")
        with open(args.output, "w") as f:
            f.write("t_s,bandwidth_mbps,rtt_ms,loss\n")
            for ti, b in zip(t, mbps):
                f.write(f"{ti:.3f},{max(b, 0.0):.4f},{args.rtt_ms:g},{args.loss:g}\n")
    if args.mahimahi:
        # Resample the (possibly irregular) steps onto 1 ms, then quantise.
        period_ms = int(round((2 * t[-1] - t[-2]) * 1000)) if len(t) > 1 else 1000
        ms = np.arange(period_ms) / 1000.0
        per_ms = np.asarray(mbps)[np.searchsorted(t, ms, side="right") - 1]
        stamps = opportunities(per_ms, 0.001, period_ms)
        with open(args.mahimahi, "w") as f:
            f.write("\n".join(map(str, stamps)) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)), help="output directory")
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("convert", help="convert a public trace to our CSV (and optionally Mahimahi)")
    c.add_argument("--from", dest="source", required=True, choices=["norway", "cooked", "ucc", "csv"])
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--column", default="UL_bitrate", help="ucc: the rate column (kbit/s)")
    c.add_argument("--rtt-ms", type=float, default=50.0, help="RTT to write (the public sets have none)")
    c.add_argument("--loss", type=float, default=0.0)
    c.add_argument("--mahimahi", help="also write a Mahimahi trace here")
    args = p.parse_args()
    if args.command == "convert":
        convert(args)
    else:
        make(args.out)


if __name__ == "__main__":
    sys.exit(main())
