"""Audit the installed, pinned dependencies with pip-audit.

Known vulnerabilities fail the check. When the vulnerability source cannot be reached (no
network, or a registry mirror without PyPI's JSON API), the audit is reported as not done and
does not fail: `make test` must pass on a machine without internet access.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "audit.json"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--skip-editable",
                "--timeout",
                "10",
                "--format",
                "json",
                "--output",
                str(report),
                "--progress-spinner",
                "off",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if not report.exists():
            reason = (result.stderr.strip().splitlines() or ["no report written"])[-1]
            print(f"dependency audit not done: the vulnerability source is unreachable ({reason})")
            return 0
        dependencies = json.loads(report.read_text())["dependencies"]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    unchecked = [d for d in dependencies if "skip_reason" in d]
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        print(f"VULNERABLE {dependency['name']} {dependency['version']}: {ids}")
    checked = len(dependencies) - len(unchecked)
    print(
        f"dependency audit: {checked} of {len(dependencies)} packages checked, "
        f"{len(vulnerable)} with known vulnerabilities"
        + (f", {len(unchecked)} not checkable here (source unreachable)" if unchecked else "")
    )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
