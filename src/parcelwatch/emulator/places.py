"""Where emulated parcels go: real cities with postal codes and their standard UTC offsets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["EU_HUBS", "EU_PLACES", "US_HUBS", "US_PLACES", "Place"]


@dataclass(frozen=True, slots=True)
class Place:
    city: str
    state: str | None
    postal_code: str
    country_code: str
    utc_offset_minutes: int  # standard time; the emulator ignores daylight saving

    @property
    def tz(self) -> timezone:
        return timezone(timedelta(minutes=self.utc_offset_minutes))

    def local(self, moment: datetime) -> datetime:
        """`moment` (aware) as wall-clock time here, still aware."""
        return moment.astimezone(self.tz)

    @property
    def offset_text(self) -> str:
        """`-05:00` style."""
        sign = "-" if self.utc_offset_minutes < 0 else "+"
        minutes = abs(self.utc_offset_minutes)
        return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


US_PLACES = (
    Place("NEW YORK", "NY", "10001", "US", -300),
    Place("BROOKLYN", "NY", "11201", "US", -300),
    Place("RICHMOND", "VA", "23227", "US", -300),
    Place("ATLANTA", "GA", "30303", "US", -300),
    Place("HERNANDO", "FL", "34442", "US", -300),
    Place("CHICAGO", "IL", "60607", "US", -360),
    Place("CEDAR RAPIDS", "IA", "52404", "US", -360),
    Place("AUSTIN", "TX", "78701", "US", -360),
    Place("DENVER", "CO", "80202", "US", -420),
    Place("PHOENIX", "AZ", "85004", "US", -420),
    Place("FRESNO", "CA", "93706", "US", -480),
    Place("SEATTLE", "WA", "98101", "US", -480),
    Place("PORTLAND", "OR", "97201", "US", -480),
    Place("BLUE POINT", "NY", "11715", "US", -300),
)

US_HUBS = (
    Place("MEMPHIS", "TN", "38118", "US", -360),
    Place("LOUISVILLE", "KY", "40209", "US", -300),
    Place("INDIANAPOLIS", "IN", "46241", "US", -300),
    Place("DALLAS", "TX", "75261", "US", -360),
    Place("KEASBEY", "NJ", "08832", "US", -300),
)

EU_PLACES = (
    Place("AMSTERDAM", None, "1043 AG", "NL", 60),
    Place("BONN", None, "53113", "DE", 60),
    Place("BERLIN", None, "10115", "DE", 60),
    Place("MUNICH", None, "80331", "DE", 60),
    Place("HAMBURG", None, "20095", "DE", 60),
    Place("PARIS", None, "75001", "FR", 60),
    Place("BRUSSELS", None, "1000", "BE", 60),
    Place("MILANO", None, "20121", "IT", 60),
    Place("MADRID", None, "28001", "ES", 60),
    Place("LONDON", None, "EC1A 1BB", "GB", 0),
)

EU_HUBS = (
    Place("LEIPZIG", None, "04435", "DE", 60),
    Place("BRUSSELS AIRPORT", None, "1930", "BE", 60),
    Place("EAST MIDLANDS", None, "DE74 2TR", "GB", 0),
)
