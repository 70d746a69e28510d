"""`--help`, `plugins` and `validate` must not import torch, diffusers or timm."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "timm", "torchvision", "sklearn")

PROBE = """
import sys
from cxrbench import cli
try:
    code = cli.main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
sys.exit(0 if code in (0, None) else 3)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["plugins"], ["validate", str(REPO / "benchmarks" / "smoke.yaml")],
     ["validate", str(REPO / "benchmarks" / "kermany-32-learned.yaml")]],
    ids=["help", "plugins", "validate-smoke", "validate-learned"],
)
def test_cli_light_commands_do_not_import_heavy_modules(argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout or out.stdout.strip().endswith("HEAVY="), out.stdout
