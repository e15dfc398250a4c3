"""scripts/fuzz_cli.py, briefly: random flags and damaged files never give a traceback (issue 18).

The README's reliability section quotes a long run of the same script (10,000 cases and more).
"""

import os
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_fuzzing_the_cli_briefly_finds_no_failure(cache):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz_cli.py"), "--seconds", "25", "--seed", "7",
                        "--subprocess", "2"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MNISTDIFF_CACHE": str(cache)})
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0 and ", failures: 0 " in summary, r.stdout[-3000:] + r.stderr[-3000:]
    tried = int(summary.split("cases tried: ")[1].split(",")[0])
    assert tried >= 10, summary  # a few hundred on an idle 2-core machine
    assert "2 of 2 run again as real processes ended the same" in summary, summary
