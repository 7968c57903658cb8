"""Explicit tables from each carrier's status codes to `ShipmentStatus`.

Every code a carrier documents is listed; nothing is guessed from text ("undeliverable" is
not "delivered"). A code no table maps becomes `UNKNOWN`: the raw code and text stay on the
event, and the miss is logged and counted in `parcelwatch_unknown_status_codes_total`.
Keys are compared case-insensitively with surrounding blanks removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parcelwatch.domain import ShipmentStatus as S
from parcelwatch.logs import get_logger
from parcelwatch.ops.metrics import UNKNOWN_STATUS_CODES

__all__ = [
    "DHL_STATUS_CODES",
    "FEDEX_DERIVED_CODES",
    "FEDEX_STATUS_CODES",
    "SHIPENGINE_DETAIL_CODES",
    "SHIPENGINE_STATUS_CODES",
    "UPS_STATUS_CODES",
    "UPS_STATUS_TYPES",
    "USPS_EVENT_CODES",
    "USPS_STATUS_CATEGORIES",
    "StatusTable",
    "lookup",
    "normalize_status",
]

log = get_logger(__name__)

StatusTable = Mapping[str, S]


def _key(code: str) -> str:
    return " ".join(code.split()).casefold()


def _table(entries: Mapping[str, S]) -> StatusTable:
    return {_key(code): status for code, status in entries.items()}


# USPS Tracking v3 `statusCategory` (the category usps.com shows above the scan list).
USPS_STATUS_CATEGORIES = _table(
    {
        "Pre-Shipment": S.INFO_RECEIVED,
        "Accepted": S.IN_TRANSIT,
        "In Transit": S.IN_TRANSIT,
        "In-Transit": S.IN_TRANSIT,
        "Out for Delivery": S.OUT_FOR_DELIVERY,
        "Delivered": S.DELIVERED,
        "Available for Pickup": S.AVAILABLE_FOR_PICKUP,
        "Delivery Attempt": S.DELIVERY_ATTEMPTED,
        "Delivery Attempt: Action Needed": S.DELIVERY_ATTEMPTED,
        "Alert": S.EXCEPTION,
    }
)

# USPS Product Tracking & Reporting event codes (`trackingEvents[].eventCode`).
USPS_EVENT_CODES = _table(
    {
        "01": S.DELIVERED,  # Delivered
        "02": S.DELIVERY_ATTEMPTED,  # Notice Left
        "03": S.IN_TRANSIT,  # Accepted / USPS in possession of item
        "04": S.EXCEPTION,  # Refused
        "05": S.EXCEPTION,  # Undeliverable as Addressed
        "06": S.IN_TRANSIT,  # Forwarded
        "07": S.IN_TRANSIT,  # Arrival at Unit / Arrived at Post Office
        "08": S.IN_TRANSIT,  # Missent (re-routed by USPS)
        "09": S.RETURNING_TO_SENDER,  # Return to Sender
        "10": S.IN_TRANSIT,  # Processed / Arrived at Regional Origin Facility
        "11": S.EXCEPTION,  # Dead Letter
        "14": S.AVAILABLE_FOR_PICKUP,  # Arrival at Pickup Point
        "15": S.IN_TRANSIT,  # Mis-shipped
        "16": S.AVAILABLE_FOR_PICKUP,  # Available for Pickup
        "17": S.DELIVERED,  # Picked Up by Agent
        "21": S.RETURNING_TO_SENDER,  # No Such Number
        "22": S.RETURNING_TO_SENDER,  # Insufficient Address
        "23": S.RETURNING_TO_SENDER,  # Moved, Left No Address
        "24": S.RETURNING_TO_SENDER,  # Forward Expired
        "25": S.RETURNING_TO_SENDER,  # Addressee Unknown
        "26": S.RETURNING_TO_SENDER,  # Vacant
        "27": S.RETURNING_TO_SENDER,  # Unclaimed
        "28": S.RETURNING_TO_SENDER,  # Deceased
        "29": S.RETURNING_TO_SENDER,  # Return to Sender, other
        "31": S.RETURNING_TO_SENDER,  # Return to Sender, not picked up
        "43": S.DELIVERED,  # Picked Up (at the Post Office)
        "44": S.RETURNING_TO_SENDER,  # Customer Recall
        "51": S.DELIVERY_ATTEMPTED,  # Business Closed
        "52": S.DELIVERY_ATTEMPTED,  # Notice Left (subset)
        "53": S.DELIVERY_ATTEMPTED,  # Receptacle Blocked
        "54": S.DELIVERY_ATTEMPTED,  # Notice Left (subset)
        "55": S.DELIVERY_ATTEMPTED,  # Receptacle Full / Item Oversized
        "56": S.DELIVERY_ATTEMPTED,  # No Secure Location Available
        "57": S.DELIVERY_ATTEMPTED,  # No Authorized Recipient Available
        "A1": S.IN_TRANSIT,  # Arrived at USPS Regional Facility
        "T1": S.IN_TRANSIT,  # Departed USPS Regional Facility
        "TL": S.IN_TRANSIT,  # In Transit to Next Facility
        "SF": S.IN_TRANSIT,  # Departed Post Office
        "OA": S.IN_TRANSIT,  # Origin Acceptance
        "OF": S.OUT_FOR_DELIVERY,  # Out for Delivery
        "GX": S.INFO_RECEIVED,  # Shipping Label Created, USPS Awaiting Item
        "MA": S.INFO_RECEIVED,  # Pre-Shipment Info Sent to USPS
        "80": S.IN_TRANSIT,  # Picked Up by Shipping Partner
        "81": S.IN_TRANSIT,  # Arrived at Shipping Partner Facility
        "82": S.IN_TRANSIT,  # Departed Shipping Partner Facility
    }
)

# UPS Track v1 `status.type` (currentStatus and activity): the primary table.
UPS_STATUS_TYPES = _table(
    {
        "M": S.INFO_RECEIVED,  # Manifest pickup: label created, UPS has not the package
        "MV": S.CANCELLED,  # Manifest / billing information voided
        "P": S.IN_TRANSIT,  # Pickup
        "I": S.IN_TRANSIT,  # In transit
        "O": S.OUT_FOR_DELIVERY,  # Out for delivery
        "X": S.EXCEPTION,  # Exception
        "RS": S.RETURNED,  # Returned to shipper
        "D": S.DELIVERED,  # Delivered
        "DO": S.DELIVERED,  # Delivered origin CFS (freight)
        "DD": S.DELIVERED,  # Delivered destination CFS (freight)
        "W": S.IN_TRANSIT,  # Warehousing
        "NA": S.UNKNOWN,  # Not available (UPS itself says it does not know)
    }
)

# UPS three-digit `status.statusCode`, only the codes that say more than the type (the
# ones equal to a type, such as 003 = M or 011 = D, are left to the type table).
UPS_STATUS_CODES = _table(
    {
        "017": S.AVAILABLE_FOR_PICKUP,  # Held for customer pickup
        "021": S.OUT_FOR_DELIVERY,  # On vehicle for delivery
        "022": S.DELIVERY_ATTEMPTED,  # First attempt made
        "023": S.DELIVERY_ATTEMPTED,  # Second attempt made
        "024": S.DELIVERY_ATTEMPTED,  # Final attempt made
        "033": S.RETURNING_TO_SENDER,  # Return to sender requested
        "034": S.RETURNED,  # Returned to sender
        "035": S.RETURNING_TO_SENDER,  # Returning to sender
        "036": S.RETURNING_TO_SENDER,  # Returning to sender: in transit
        "037": S.RETURNING_TO_SENDER,  # Returning to sender: left UPS facility
        "040": S.AVAILABLE_FOR_PICKUP,  # Delivered to UPS Access Point, awaiting pickup
    }
)

# FedEx Track v1 `latestStatusDetail.code` and `scanEvents[].eventType`.
FEDEX_STATUS_CODES = _table(
    {
        "AA": S.IN_TRANSIT,  # At airport
        "AC": S.IN_TRANSIT,  # At Canada Post facility
        "AD": S.IN_TRANSIT,  # At delivery
        "AE": S.IN_TRANSIT,  # Shipment arriving early
        "AF": S.IN_TRANSIT,  # At local FedEx facility
        "AO": S.IN_TRANSIT,  # Shipment arriving on time
        "AP": S.IN_TRANSIT,  # At pickup
        "AR": S.IN_TRANSIT,  # Arrived at FedEx location
        "AX": S.IN_TRANSIT,  # At USPS facility
        "CA": S.CANCELLED,  # Shipment cancelled
        "CC": S.IN_TRANSIT,  # Cleared customs
        "CD": S.EXCEPTION,  # Clearance delay
        "CH": S.IN_TRANSIT,  # Location changed
        "CP": S.IN_TRANSIT,  # Clearance in progress
        "DD": S.EXCEPTION,  # Delivery delay
        "DE": S.EXCEPTION,  # Delivery exception
        "DL": S.DELIVERED,  # Delivered
        "DP": S.IN_TRANSIT,  # Departed FedEx location
        "DR": S.IN_TRANSIT,  # Vehicle furnished but not used
        "DS": S.IN_TRANSIT,  # Vehicle dispatched
        "DY": S.EXCEPTION,  # Delay
        "EA": S.IN_TRANSIT,  # Enroute to airport
        "ED": S.IN_TRANSIT,  # Enroute to delivery
        "EO": S.IN_TRANSIT,  # Enroute to origin airport
        "EP": S.IN_TRANSIT,  # Enroute to pickup
        "FD": S.IN_TRANSIT,  # At FedEx destination
        "HL": S.AVAILABLE_FOR_PICKUP,  # Hold at location
        "HP": S.AVAILABLE_FOR_PICKUP,  # Ready for recipient pickup
        "IN": S.INFO_RECEIVED,  # Initiated
        "IT": S.IN_TRANSIT,  # In transit
        "IX": S.IN_TRANSIT,  # In transit (see details)
        "LO": S.IN_TRANSIT,  # Left origin
        "OC": S.INFO_RECEIVED,  # Shipment information sent to FedEx
        "OD": S.OUT_FOR_DELIVERY,  # On FedEx vehicle for delivery
        "OF": S.IN_TRANSIT,  # At FedEx origin facility
        "PD": S.EXCEPTION,  # Pickup delay
        "PF": S.IN_TRANSIT,  # Plane in flight
        "PL": S.IN_TRANSIT,  # Plane landed
        "PM": S.IN_TRANSIT,  # In progress
        "PU": S.IN_TRANSIT,  # Picked up
        "PX": S.IN_TRANSIT,  # Picked up (see details)
        "RS": S.RETURNING_TO_SENDER,  # Return to shipper
        "SE": S.EXCEPTION,  # Shipment exception
        "SF": S.IN_TRANSIT,  # At sort facility
        "SP": S.IN_TRANSIT,  # Split status
        "TR": S.IN_TRANSIT,  # Transfer
    }
)

# FedEx `derivedCode` / `derivedStatusCode`: the simplified status, used when the detailed
# code is not in the table above.
FEDEX_DERIVED_CODES = _table(
    {
        "IN": S.INFO_RECEIVED,  # Initiated (label created)
        "PU": S.IN_TRANSIT,  # Picked up
        "IT": S.IN_TRANSIT,  # In transit
        "RL": S.IN_TRANSIT,  # Running late (still moving; the detail says so)
        "OD": S.OUT_FOR_DELIVERY,  # Out for delivery
        "HP": S.AVAILABLE_FOR_PICKUP,  # Ready for pickup
        "DE": S.EXCEPTION,  # Delivery exception
        "DY": S.EXCEPTION,  # Delay
        "SE": S.EXCEPTION,  # Shipment exception
        "DL": S.DELIVERED,  # Delivered
        "RS": S.RETURNING_TO_SENDER,  # Return to shipper
        "CA": S.CANCELLED,  # Cancelled
    }
)

# DHL Shipment Tracking – Unified `statusCode`.
DHL_STATUS_CODES = _table(
    {
        "pre-transit": S.INFO_RECEIVED,
        "transit": S.IN_TRANSIT,
        "delivered": S.DELIVERED,
        "failure": S.EXCEPTION,
        "unknown": S.UNKNOWN,  # DHL itself says it does not know
    }
)

# ShipEngine `status_code`.
SHIPENGINE_STATUS_CODES = _table(
    {
        "UN": S.UNKNOWN,  # Unknown (ShipEngine itself says so)
        "NY": S.PENDING,  # Not yet in system
        "AC": S.IN_TRANSIT,  # Accepted
        "IT": S.IN_TRANSIT,  # In transit
        "AT": S.DELIVERY_ATTEMPTED,  # Delivery attempt
        "EX": S.EXCEPTION,  # Exception
        "SP": S.AVAILABLE_FOR_PICKUP,  # Delivered to a collection location (service point)
        "DE": S.DELIVERED,  # Delivered
    }
)

# ShipEngine `status_detail_code`: refines a non-final `status_code` where it says more.
SHIPENGINE_DETAIL_CODES = _table(
    {
        "SHIPMENT_CREATED": S.INFO_RECEIVED,
        "AWAITING_PICKUP_DROP_OFF": S.INFO_RECEIVED,
        "ELEC_ADVICE_RECD_BY_CARRIER": S.INFO_RECEIVED,
        "OUT_FOR_DELIVERY": S.OUT_FOR_DELIVERY,
        "ATTEMPTED_DELIVERY": S.DELIVERY_ATTEMPTED,
        "ATTEMPTED_DELIVERY_FINAL": S.DELIVERY_ATTEMPTED,
        "CUSTOMER_CARDED": S.DELIVERY_ATTEMPTED,
        "AWAITING_COLLECTION_FROM_PICKUP_POINT": S.AVAILABLE_FOR_PICKUP,
    }
)


def lookup(table: StatusTable, code: str | None) -> S | None:
    """The table's status for `code`, or None (no side effects)."""
    if not code:
        return None
    return table.get(_key(code))


def normalize_status(
    carrier: str,
    candidates: Sequence[tuple[StatusTable, str | None]],
    *,
    text: str | None = None,
) -> S:
    """The first candidate code its table maps; otherwise `UNKNOWN`, logged and counted.

    `candidates` goes from most to least specific, e.g. FedEx `[(codes, "FD"),
    (derived, "RL")]`. A candidate without a code is skipped."""
    for table, code in candidates:
        status = lookup(table, code)
        if status is not None:
            return status
    codes = [code for _table_, code in candidates if code]
    UNKNOWN_STATUS_CODES.labels(provider=carrier).inc()
    log.warning("unmapped carrier status", carrier=carrier, codes=codes, text=text)
    return S.UNKNOWN
