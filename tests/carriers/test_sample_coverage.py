"""Every real carrier payload in the fixtures is exercised by a test (issue 3's bar), and the
fixtures are exact copies of shared/carrier-samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.carriers.conftest import SAMPLES

# The shared folder the fixtures are copied from, when it is laid beside the checkout.
SHARED = Path(__file__).resolve().parents[3] / "shared" / "carrier-samples"


def test_every_sample_payload_is_named_by_a_carrier_test() -> None:
    tests = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    samples = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.glob("*/*.json")}

    untested = sorted(
        name for name in samples if f'"{Path(name).parent}", "{Path(name).stem}"' not in tests
    )

    assert len(samples) == 25
    assert not untested, f"samples no test parses: {untested}"


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/carrier-samples is not beside the checkout")
def test_the_fixtures_are_exact_copies_of_every_shared_sample() -> None:
    shared = {p.relative_to(SHARED).as_posix() for p in SHARED.glob("*/*.json")}
    copies = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.glob("*/*.json")}

    assert shared == copies, f"missing copies: {sorted(shared - copies)}"
    changed = [n for n in sorted(shared) if (SHARED / n).read_bytes() != (SAMPLES / n).read_bytes()]
    assert not changed, f"copies that differ from shared/: {changed}"
