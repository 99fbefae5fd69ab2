#!/usr/bin/env python3
"""Write a wrk Lua file with a fixed, seeded list of public addresses.

Usage: random_addrs.py OUT.lua [KEY]

20,000 random globally routable addresses, 80 % IPv4 and 20 % IPv6 (in
2000::/3), always the same ones, as the Lua table `addrs`; with KEY, also
the Lua string `key`. The load scripts share it so that every server they
compare sees the same addresses.
"""
import ipaddress
import random
import sys

rng = random.Random(20261204)
addrs = []
while len(addrs) < 20000:
    if rng.random() < 0.8:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
    else:
        ip = ipaddress.IPv6Address((0x2 << 124) | rng.getrandbits(125) & ((1 << 125) - 1))
    if ip.is_global:
        addrs.append(str(ip))
with open(sys.argv[1], "w") as out:
    out.write("addrs = {" + ",".join(f'"{a}"' for a in addrs) + "}\n")
    if len(sys.argv) > 2:
        out.write(f'key = "{sys.argv[2]}"\n')
