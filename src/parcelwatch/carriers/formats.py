"""The tracking number formats of the catalog's carriers: a pattern and, where the carrier
has one, a check digit, for every family `detect` recognises.

The definitions follow jkeen/tracking_number_data (`couriers/*.json`, the data behind the
`tracking-numbers` package, which stopped at its 2022 copy and lacks the DHL eCommerce,
LaserShip, Purolator, Canada Post, UPS waybill, Amazon TBC/TBM/C and OnTrac D families).
They are written out here, one `NumberFormat` per family, against the normalized number
(upper-case letters and digits, nothing else), so a number printed with spaces anywhere
is the same number. A format without a check digit (`checked=False`) is recognised by its
pattern alone: `detect` says so in the candidate's reason.

Two families of two carriers can fit one number (a FedEx Ground Economy number is also a
USPS IMpb, USPS delivering it; a 12-digit number can satisfy FedEx's and Purolator's
checks at once). Every format a number fits is reported; nothing here picks one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["FORMATS", "NumberFormat"]


@dataclass(frozen=True, slots=True)
class NumberFormat:
    carrier: str  # catalog code
    name: str  # the family, as a person would say it: "UPS waybill"
    pattern: re.Pattern[str]  # full match on the normalized number
    check: Callable[[str], bool] | None = None  # the check digit, on the normalized number
    # the letters it starts with are this carrier's own ("TBA", "1LS7"): enough, with the
    # pattern, to take the number from free text when it has no check digit
    own_prefix: bool = False

    @property
    def checked(self) -> bool:
        return self.check is not None

    def fits(self, number: str) -> bool:
        return self.pattern.fullmatch(number) is not None and (
            self.check is None or self.check(number)
        )


def _value(character: str) -> int:
    """A character's value in UPS-style check digits: digits as such, letters (ord - 3) % 10."""
    return int(character) if character.isdigit() else (ord(character) - 3) % 10


def _mod10(serial: str, check: str, *, rightmost: int, other: int) -> bool:
    """Weighted mod 10 (GS1 style), weights alternating from the rightmost serial character."""
    total = sum(
        _value(c) * (rightmost if i % 2 == 0 else other) for i, c in enumerate(reversed(serial))
    )
    return check.isdigit() and (10 - total % 10) % 10 == int(check)


def _gs1(serial: str, check: str) -> bool:
    return _mod10(serial, check, rightmost=3, other=1)


def _mod7(serial: str, check: str) -> bool:
    return int(serial) % 7 == int(check)


def _luhn(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        digit = int(c) * (2 if i % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


_FEDEX_WEIGHTS = (3, 1, 7)


def _fedex12(digits: str) -> bool:
    """FedEx Express: weights 3, 1, 7 from the left over 11 digits, sum mod 11 mod 10."""
    total = sum(int(c) * _FEDEX_WEIGHTS[i % 3] for i, c in enumerate(digits[:11]))
    return total % 11 % 10 == int(digits[11])


_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def _s10(number: str) -> bool:
    """UPU S10: two letters, 8 digits, a check digit, the country's two letters."""
    total = sum(int(c) * w for c, w in zip(number[2:10], _S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    return check == int(number[10])


_IMPB_BODY = re.compile(r"9[1-5]\d{20}|9[1-5]\d{24}")


def _usps_impb(number: str) -> bool:
    """A USPS IMpb body (22 or 26 digits, application identifier 91-95), GS1 check digit."""
    return _IMPB_BODY.fullmatch(number) is not None and _gs1(number[:-1], number[-1])


def _usps_routed(number: str) -> bool:
    """`420` + ZIP (5 or 9 digits, or 5 and a 4-digit routing number) + an IMpb body."""
    return any(_usps_impb(number[3 + skip :]) for skip in (5, 9))


def _usps_91(number: str) -> bool:
    """USPS 91: an IMpb body, or its 20-digit form printed without the `91`."""
    if len(number) == 20:
        return _gs1("91" + number[:-1], number[-1])
    return _usps_impb(number)


def _smartpost(number: str) -> bool:
    """FedEx Ground Economy (SmartPost): a USPS IMpb with service code 29 and SCNC 61,
    whole (`92…`), behind `420` + ZIP, or printed without the `92`."""
    for body in (number, "92" + number, number[8:], number[12:]):
        if body.startswith("926129") and _usps_impb(body):
            return True
    return False


def _digits(count: str) -> re.Pattern[str]:
    return re.compile(rf"\d{{{count}}}")


# A UPU S10 number belongs to the postal operator of its country suffix.
_S10_COUNTRIES = {
    "US": "usps",
    "CA": "canada_post",
    "GB": "royal_mail",
    "AU": "australia_post",
    "DE": "dhl",
}


def _s10_formats() -> Sequence[NumberFormat]:
    return [
        NumberFormat(
            carrier, f"UPU S10 ({country})", re.compile(rf"[A-Z]{{2}}\d{{9}}{country}"), _s10
        )
        for country, carrier in _S10_COUNTRIES.items()
    ]


FORMATS: tuple[NumberFormat, ...] = (
    # UPS
    NumberFormat(
        "ups",
        "UPS 1Z",
        re.compile(r"1Z[A-Z0-9]{16}"),
        lambda n: _mod10(n[2:17], n[17], rightmost=1, other=2),
    ),
    NumberFormat(
        "ups",
        "UPS waybill",
        re.compile(r"[KJV]\d{10}"),
        lambda n: _mod10(n[1:10], n[10], rightmost=1, other=2),
    ),
    # USPS
    NumberFormat("usps", "USPS 20", _digits("20"), lambda n: _gs1(n[:19], n[19]) or _usps_91(n)),
    NumberFormat("usps", "USPS IMpb", re.compile(r"9[1-5]\d{20}|9[1-5]\d{24}"), _usps_impb),
    NumberFormat("usps", "USPS IMpb with ZIP", re.compile(r"420\d{27}|420\d{31}"), _usps_routed),
    *_s10_formats(),
    # FedEx
    NumberFormat("fedex", "FedEx Express (12 digits)", _digits("12"), _fedex12),
    NumberFormat("fedex", "FedEx Ground (15 digits)", _digits("15"), lambda n: _gs1(n[:14], n[14])),
    NumberFormat(
        "fedex", "FedEx Ground SSCC-18", re.compile(r"00\d{16}"), lambda n: _gs1(n[:17], n[17])
    ),
    NumberFormat(
        "fedex",
        "FedEx Ground 96 (22 digits)",
        re.compile(r"96\d{20}"),
        lambda n: _gs1(n[7:21], n[21]),
    ),
    NumberFormat(
        "fedex", "FedEx (34 digits)", re.compile(r"(?:96|10)\d{32}"), lambda n: _fedex12(n[-12:])
    ),
    NumberFormat(
        "fedex",
        "FedEx Ground Economy (SmartPost, delivered by USPS)",
        re.compile(r"\d{20}|\d{22}|\d{30}|\d{34}"),
        _smartpost,
    ),
    # DHL Express
    NumberFormat("dhl", "DHL Express (10 digits)", _digits("10"), lambda n: _mod7(n[:9], n[9])),
    NumberFormat("dhl", "DHL Express (11 digits)", _digits("11"), lambda n: _mod7(n[:10], n[10])),
    NumberFormat("dhl", "DHL Express piece ID", re.compile(r"J[A-Z]{2,3}\d{9,10}")),
    # DHL eCommerce
    NumberFormat(
        "dhl_ecommerce",
        "DHL eCommerce",
        re.compile(r"(?:GM|LX|RX|UV|CN|SG|TH|IN|HK|MY)\d{10,39}|GM(?=[A-Z]*\d)[A-Z0-9]{16,38}"),
        own_prefix=True,
    ),
    NumberFormat("dhl_ecommerce", "DHL eCommerce (14 digits)", _digits("14")),
    # Canada Post
    NumberFormat(
        "canada_post", "Canada Post (16 digits)", _digits("16"), lambda n: _gs1(n[:15], n[15])
    ),
    # Purolator
    NumberFormat("purolator_ca", "Purolator (12 digits)", re.compile(r"[0-5]\d{11}"), _luhn),
    NumberFormat("purolator_ca", "Purolator (3 letters + 9 digits)", re.compile(r"[A-Z]{3}\d{9}")),
    # LaserShip
    NumberFormat("lasership", "LaserShip L", re.compile(r"L[A-Z]\d{8}")),
    NumberFormat(
        "lasership", "LaserShip 1LS7 (15)", re.compile(r"1LS7[12]\d{10}"), own_prefix=True
    ),
    NumberFormat(
        "lasership",
        "LaserShip 1LS7 (18)",
        re.compile(r"1LS7[12]\d{2}01[1-4]\d{6}1"),
        own_prefix=True,
    ),
    NumberFormat("lasership", "LaserShip 1LSCX", re.compile(r"1LSCX[A-Z0-9]{10}"), own_prefix=True),
    # OnTrac
    NumberFormat(
        "ontrac",
        "OnTrac C",
        re.compile(r"C\d{14}"),
        lambda n: _mod10("4" + n[1:14], n[14], rightmost=2, other=1),
    ),
    NumberFormat(
        "ontrac",
        "OnTrac D",
        re.compile(r"D\d{14}"),
        lambda n: _mod10("5" + n[1:14], n[14], rightmost=2, other=1),
    ),
    # Amazon
    NumberFormat(
        "amazon_shipping",
        "Amazon Logistics (TBA/TBC/TBM)",
        re.compile(r"TB[ACM]\d{12}"),
        own_prefix=True,
    ),
    NumberFormat("amazon_shipping", "Amazon international (C + 10 digits)", re.compile(r"C\d{10}")),
)
