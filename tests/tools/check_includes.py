#!/usr/bin/env python3
"""Fails when a project include points up or sideways (DESIGN.md section 9).

Every `#include "x/..."` in src/<module>/ must name a module that <module> may depend on.
Daemons (server, client, mgmt, ...) share only proto/ and the layers below it.
"""
import pathlib
import re
import sys

LOW = {"common": set(), "env": {"common"}, "proto": {"common"}}
LOW["net"] = {"common", "env", "proto"}
SERVICE = LOW["net"] | {"net"}
ALLOWED = dict(LOW)
for daemon in ("server", "client", "mgmt", "bridge", "iscsi", "stat", "ctl", "cli", "tools",
               "local"):
    ALLOWED[daemon] = SERVICE

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main(src: pathlib.Path) -> int:
    bad = []
    checked = 0
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".h", ".cc", ".cpp", ".hpp"):
            continue
        module = path.relative_to(src).parts[0]
        allowed = ALLOWED.get(module)
        if allowed is None:
            bad.append(f"{path}: module '{module}' has no place in the dependency order")
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            checked += 1
            target = m.group(1)
            if "/" not in target:
                bad.append(f"{path}:{n}: include \"{target}\" must name its folder")
                continue
            dep = target.split("/", 1)[0]
            if dep != module and dep not in allowed:
                bad.append(f"{path}:{n}: {module} may not include {target}")
    for b in bad:
        print(b)
    print(f"checked {checked} includes, {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1])))
