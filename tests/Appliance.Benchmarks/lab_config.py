#!/usr/bin/python3
"""Writes a benchmark's variant of a shipped lab config: lab_config.py SRC DST [KEY=JSON ...].

Each KEY=JSON pair is set in the config's "dataPlane" section (for example workerCpu=1,
rawVxlanTransmit=false, xdpReceive=true). The shipped configs are JSON with // comments, so the keys
are inserted as text at the start of the section (or a section is added) rather than re-serialised.
"""
import json
import re
import sys

if len(sys.argv) < 3:
    sys.exit("usage: lab_config.py SRC DST [KEY=JSON ...]")
src, dst, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
keys = ""
for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key):
        sys.exit(f"lab_config.py: '{pair}' is not KEY=JSON")
    keys += f"{json.dumps(key)}: {json.dumps(json.loads(value))}, "
text = open(src).read()
section = re.search(r"\"dataPlane\"\s*:\s*\{", text)
if section:
    text = text[:section.end()] + " " + keys + text[section.end():]
elif keys:
    text = text.replace("{", "{ \"dataPlane\": { " + keys.rstrip(", ") + " },", 1)
open(dst, "w").write(text)
