"""Every real carrier payload in the fixtures is exercised by a parse test (issue 3's bar)."""

from __future__ import annotations

from pathlib import Path

from tests.carriers.conftest import SAMPLES

# Not a response: the body parcelwatch would send to register a ShipEngine webhook.
NOT_RESPONSES = {"shipengine/webhook-create-request.json"}


def test_every_sample_payload_is_named_by_a_carrier_test() -> None:
    tests = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    samples = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.glob("*/*.json")}

    untested = sorted(
        name
        for name in samples - NOT_RESPONSES
        if f'"{Path(name).parent}", "{Path(name).stem}"' not in tests
    )

    assert len(samples) == 25
    assert not untested, f"samples no test parses: {untested}"
