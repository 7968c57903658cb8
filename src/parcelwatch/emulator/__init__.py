"""The carrier emulator: USPS, UPS, FedEx, DHL and ShipEngine on their real wire formats."""

from parcelwatch.emulator.app import create_emulator_app, emulator_state
from parcelwatch.emulator.clock import EmulatorClock
from parcelwatch.emulator.config import EmulatorConfig, ScenarioError, load_scenario
from parcelwatch.emulator.storylines import Storyline, find_number
from parcelwatch.emulator.webhooks import send_shipengine_webhook

__all__ = [
    "EmulatorClock",
    "EmulatorConfig",
    "ScenarioError",
    "Storyline",
    "create_emulator_app",
    "emulator_state",
    "find_number",
    "load_scenario",
    "send_shipengine_webhook",
]
