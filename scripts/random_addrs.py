#!/usr/bin/env python3
"""Write a wrk Lua file with a fixed, seeded list of public addresses.

Usage: random_addrs.py OUT.lua [KEY [COUNT]]

COUNT (default 20,000) random globally routable addresses, 80 % IPv4 and 20 % IPv6 (in
2000::/3), always the same ones, as the Lua table `addrs`; with KEY, also
the Lua string `key`. The load scripts share it so that every server they
compare sees the same addresses (a larger COUNT begins with the same ones).
"""
import ipaddress
import random
import sys

count = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
rng = random.Random(20261204)
addrs = []
while len(addrs) < count:
    if rng.random() < 0.8:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
    else:
        ip = ipaddress.IPv6Address((0x2 << 124) | rng.getrandbits(125) & ((1 << 125) - 1))
    if ip.is_global:
        addrs.append(str(ip))
with open(sys.argv[1], "w") as out:
    out.write("addrs = {" + ",".join(f'"{a}"' for a in addrs) + "}\n")
    if len(sys.argv) > 2 and sys.argv[2]:
        out.write(f'key = "{sys.argv[2]}"\n')
