"""Upgrade in place and rollback with two real offline bundles built from two commits
(issue 28): scripts/upgrade_smoke.sh builds the bundle of an earlier commit (cached in
dist/cache by commit) and of this tree, installs the first, makes data on SQLite and on
PostgreSQL (an alert acknowledged, a user, an imported camera with a password), installs
the second over it and checks that the data, config and keys are kept and the databases
were backed up and migrated; then it rolls back to the first release's files with the
backups restored and checks the old hub starts with the data.

Slow (the bundles are built and installed: minutes on 2 cores, more under load) and
needs what scripts/test.sh provides: the package registries for the build, Node for the
console, PostgreSQL on 127.0.0.1:5432 and Debian's python3 (3.11) as the target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_upgrade_in_place_then_rollback_with_two_real_bundles() -> None:
    env = dict(os.environ, CHECK_PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "upgrade_smoke.sh")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3600,
                          check=False)  # fmt: skip
    tail = f"{done.stdout[-6000:]}\n---- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0 and "upgrade_smoke: OK" in done.stdout, tail
    figures = json.loads(next(line for line in reversed(done.stdout.splitlines())
                              if line.startswith("{")))  # fmt: skip
    before, after = figures["revisions"].split(" -> ")
    assert before != after, f"the two bundles have the same migrations: {figures}"
