"""The parcel carriers parcelwatch knows: their codes, names, ShipEngine codes and public
tracking pages. A shipment's `carrier` is one of these codes.

A carrier is who moves the parcel; the providers (`carriers/providers.py`) are the APIs
asked. A direct provider's code is also a carrier code listed here."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["CARRIERS", "CarrierInfo", "carrier_info", "public_tracking_url"]


@dataclass(frozen=True, slots=True)
class CarrierInfo:
    code: str
    name: str
    shipengine_code: str
    tracking_url: str  # with {number}

    def url_for(self, tracking_number: str) -> str:
        return self.tracking_url.format(number=quote(tracking_number))


_ALL = (
    CarrierInfo(
        "usps",
        "USPS",
        "usps",
        "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
    ),
    CarrierInfo("ups", "UPS", "ups", "https://www.ups.com/track?tracknum={number}"),
    CarrierInfo("fedex", "FedEx", "fedex", "https://www.fedex.com/fedextrack/?trknbr={number}"),
    CarrierInfo(
        "dhl",
        "DHL",
        "dhl_express",
        "https://www.dhl.com/global-en/home/tracking.html?tracking-id={number}",
    ),
    CarrierInfo(
        "canada_post",
        "Canada Post",
        "canada_post",
        "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={number}",
    ),
    CarrierInfo(
        "royal_mail",
        "Royal Mail",
        "royal_mail",
        "https://www.royalmail.com/track-your-item#/tracking-results/{number}",
    ),
    CarrierInfo("ontrac", "OnTrac", "ontrac", "https://www.ontrac.com/tracking/?number={number}"),
    CarrierInfo("lasership", "LaserShip", "lasership", "https://www.lasership.com/track/{number}"),
    CarrierInfo(
        "purolator_ca",
        "Purolator",
        "purolator_ca",
        "https://www.purolator.com/en/shipping/tracker?pin={number}",
    ),
    CarrierInfo(
        "australia_post",
        "Australia Post",
        "australia_post",
        "https://auspost.com.au/mypost/track/#/details/{number}",
    ),
    CarrierInfo(
        "dhl_ecommerce",
        "DHL eCommerce",
        "dhl_ecommerce",
        "https://webtrack.dhlecs.com/?trackingnumber={number}",
    ),
    CarrierInfo(
        "amazon_shipping",
        "Amazon Shipping",
        "amazon_shipping",
        "https://track.amazon.com/tracking/{number}",
    ),
)

CARRIERS: dict[str, CarrierInfo] = {info.code: info for info in _ALL}


def carrier_info(code: str) -> CarrierInfo | None:
    return CARRIERS.get(code)


def public_tracking_url(carrier: str, tracking_number: str) -> str | None:
    info = CARRIERS.get(carrier)
    return info.url_for(tracking_number) if info else None
