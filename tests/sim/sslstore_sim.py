#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The SSL Store WBAPI simulator (HTTPS on 127.0.0.1) for p11enroll's tests.

It behaves as docs/protocol-sslstore.md describes (quoted section names and
OQ-n, its open question n, refer to it): JSON over POST under /rest/…, credentials inside the body,
business errors as HTTP 200 with AuthResponse.isError, real certificates from
the submitted CSR signed by tests/sim/simca.py.  A scenario (JSON, file at
start-up or POST /_sim/scenario) makes it misbehave like the real service on a
bad day.

Usage:
  /usr/bin/python3 tests/sim/sslstore_sim.py --dir DIR [--partner-code 12345678]
      [--auth-token-file FILE] [--scenario FILE.json] [--port 0]

Files in DIR: ca/ (the test CA; ca/root.pem is TLS trust and issuing root),
auth.token (0600, written only without --auth-token-file), url, pid, and
ready (written last).  One log line per request on stderr; the token is never
logged and is redacted in /_sim/stats.

Decisions ("Open questions and decisions", stricter reading taken)
---------------------------------------------------------------------
OQ-1  Dates: "MM/dd/yyyy HH:mm:ss" in UTC for both members of each pair,
      "01/01/1900 00:00:00" when unset.  Requests may use "/Date(ms)/", bare
      milliseconds, ISO-8601 or "MM/dd/yyyy[ HH:mm:ss]".
OQ-2  Renewal: missing organisation/contact/DomainName/DNSNames data is NOT
      inherited from the related order; the renewal is validated like a new
      order (scenario renewal_inherit=true fills the gaps instead).  No days
      are carried over.  The related order must exist and not be Cancelled.
OQ-3  Download: leaf + intermediate, intermediate FIRST (a client picking by
      position gets the CA certificate); root only with download_root.  Leaf
      named "<cn with . -> _, * -> STAR>.crt", intermediate "intermediate1.crt",
      root "root.crt".  ReturnPKCS7Cert adds nothing.
OQ-4  organizationlist: flat {PartnerCode, AuthToken} and the wrapped
      AuthRequest form are both accepted ("Credentials": clients send both).
OQ-5  Bad credentials, unknown ids, business errors: HTTP 200 + isError.
      Unparseable JSON, wrong Content-Type, missing Content-Length: HTTP 400
      (411/413) with an isError body.  Wrong method: 405, unknown path: 404.
OQ-6  PartnerOrderID: 8 digits, new on every order and reissue.
      TheSSLStoreOrderID: a string of digits (a JSON number in download
      answers only with download_id_as_number).  In requests both id fields
      must be JSON strings.
OQ-7  Message is null on success and a one-element array on error
      (message_as_string makes it a bare string).
OQ-8  MajorStatus: Initial, Pending, Active, Cancelled.  MinorStatus: "",
      PENDING_REISSUE, REJECTED (vendor rejection), REFUNDED, REVOKED.
      dcvMethod EMAIL/HTTP/HTTPS/CNAME, dcvStatus Pending/Validated.
OQ-9  ApproverEmail: DigiCert takes exactly one address (no commas); Sectigo
      and legacy codes take a comma-separated list; every address must be in
      the approver list of one of the order's domains and every domain must
      be covered by one address (case-insensitive, blanks around commas
      trimmed).  Not required when a DCV indicator is true or for DigiCert
      existing-organisation orders, but checked whenever present.
OQ-10 sectigoevssl is EV (jurisdiction country required).
      digi_securesite_pro_flex requires TSSOrganizationId.  ValidityPeriod
      must be one of 1,3,6,12,24,36,48,60 months (DigiCert also 72); 13, 365
      etc. are refused (scenario validity_months[_digicert] overrides).
OQ-11 Validity in order objects is the ValidityPeriod in months.
OQ-12 Non-ASCII characters in any request string are refused
      (allow_non_ascii lifts that).  Request bodies must be UTF-8.
OQ-13 OrganizationInfo only (OrganisationInfo is an unknown, ignored member).
      SignatureHashAlgorithm must be PREFER_SHA2, REQUIRE_SHA2 or PREFER_SHA1
      ("SHA2-256" is refused).  Product query answers spell the wildcard flag
      "isWlidcard" (the vendor storefront's spelling) only.
OQ-14 refundrequest = revocation request: the order becomes Cancelled (and the
      certificate is marked revoked) when the refund is approved — at the
      first look after refund_delay_seconds, or after cancelled_after_refund
      further status/refundstatus polls (-1 = never).
      certificaterevokerequest revokes without refund (Cancelled/REVOKED),
      flat answer.
OQ-15 A repeated non-empty CustomOrderID is REFUSED (isError); a client that
      lost a neworder answer must look the order up with status by
      CustomOrderID.  Reissue ignores the CustomOrderID it is sent.
OQ-16 PageNumber is 1-based; 0 or negative is refused; PageSize 1..100
      (default 100 when only PageNumber is sent); neither = all orders.
OQ-17 Sectigo multi-domain products include 3 names; more need
      ReserveSANCount >= names - 3.  DigiCert products need no reservation.
      Single-domain products accept only the CN and its www/base twin.
OQ-18 During a reissue MajorStatus stays Active with MinorStatus
      PENDING_REISSUE; download keeps returning the old certificate until the
      new one is issued (new SerialNumber, MinorStatus "").
Sandbox vs production ("Where the API is"): one instance simulates one environment with one
credential set; run two instances (different --partner-code/--auth-token-file)
to test that credentials do not cross over.
Other strict choices: names must be public-looking DNS names (no IPs, no
single labels, no reserved TLDs such as .local/.internal/.test — knob
allow_reserved_tld); wildcards only on wildcard products (single-domain
wildcard products need a "*." CN); DomainName, if sent, must equal the CSR's
CN; the CSR must have a CN and a valid signature; DNSNames must be a JSON
array; country codes must be two letters; at most one DCV indicator;
WebServerType must be from "Placing an order"; credentials in the query string or in
Authorization/credential headers are refused; IsUsedForTokenSystem=true is
refused; isRenewalOrder=false with RelatedTheSSLStoreOrderID is refused.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import http.server
import io
import json
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import zipfile

sys.dont_write_bytecode = True          # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simca import ALLOWED_KEYS, SimCA, key_kind, pem  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

DEFAULT_PARTNER = "12345678"
DEFAULT_TOKEN = "sim-auth-token-0001"
MAX_BODY = 1 << 20
UNSET_DATE = "01/01/1900 00:00:00"

# ---------------------------------------------------------------- catalogue

DEFAULT_MONTHS = [1, 3, 6, 12, 24, 36, 48, 60]
DIGICERT_MONTHS = DEFAULT_MONTHS + [72]

ORG_OV = ["OrganizationInfo.OrganizationName", "OrganizationInfo.OrganizationAddress.AddressLine1",
          "OrganizationInfo.OrganizationAddress.Region", "OrganizationInfo.OrganizationAddress.PostalCode",
          "OrganizationInfo.OrganizationAddress.Country", "OrganizationInfo.OrganizationAddress.Phone"]
ORG_DIGICERT = ORG_OV + ["OrganizationInfo.OrganizationAddress.LocalityName"]
ADMIN_DIGICERT = ["AdminContact.FirstName", "AdminContact.LastName", "AdminContact.Phone", "AdminContact.Email"]
CONTACTS_LEGACY = ADMIN_DIGICERT + ["TechnicalContact.FirstName", "TechnicalContact.LastName",
                                    "TechnicalContact.Phone", "TechnicalContact.Email"]
JURISDICTION = ["OrganizationInfo.JurisdictionCountry"]
LOCALITY = ["OrganizationInfo.OrganizationAddress.LocalityName"]

# family: (vendor, validation, multi-domain, required members, DNSNames required)
# Required members follow "Placing an order" and docs/providers-sslstore.md's product table.
FAMILIES = {
    "sectigo_dv": ("Sectigo", "DV", False, ["AdminContact.Email"], False),
    "sectigo_dv_mdc": ("Sectigo", "DV", True, ["AdminContact.Email"], True),
    "sectigo_ov": ("Sectigo", "OV", False, ["AdminContact.Email"] + ORG_OV, False),
    "sectigo_ov_mdc": ("Sectigo", "OV", True, ["AdminContact.Email"] + ORG_OV, True),
    "sectigo_enterprisepro": ("Sectigo", "OV", False, ["AdminContact.FirstName"] + ORG_OV, False),
    "sectigo_ev": ("Sectigo", "EV", False, ["AdminContact.Email"] + ORG_OV + JURISDICTION, False),
    "sectigo_ev_mdc": ("Sectigo", "EV", True, ["AdminContact.Email"] + ORG_OV + JURISDICTION, True),
    "digicert_dv": ("DigiCert", "DV", False, ["TechnicalContact.Email"], True),
    "digicert_dv_md": ("DigiCert", "DV", True, ["TechnicalContact.Email"], True),
    "digicert_ov": ("DigiCert", "OV", True, ADMIN_DIGICERT + ORG_DIGICERT, True),
    "digicert_ev": ("DigiCert", "EV", True, ADMIN_DIGICERT + ["AdminContact.Title"] + ORG_DIGICERT, True),
    "digicert_eo_only": ("DigiCert", "OV", True, [], True),
    "legacy_dv": ("Sectigo", "DV", False, CONTACTS_LEGACY, False),
    "legacy_dv_mdc": ("Sectigo", "DV", True, CONTACTS_LEGACY, True),
    "legacy_ov": ("Sectigo", "OV", False, CONTACTS_LEGACY + ORG_OV, False),
    "legacy_ov_mdc": ("Sectigo", "OV", True, CONTACTS_LEGACY + ORG_OV + LOCALITY, True),
    "legacy_ev": ("Sectigo", "EV", False, CONTACTS_LEGACY + ORG_OV + JURISDICTION + LOCALITY, False),
    "legacy_ev_mdc": ("Sectigo", "EV", True, CONTACTS_LEGACY + ORG_OV + JURISDICTION + LOCALITY, True),
    "digicert_legacy_md": ("DigiCert", "DV", True, CONTACTS_LEGACY + JURISDICTION, True),
}

# code: (family, product name)
PRODUCTS = {
    "positivessl": ("sectigo_dv", "PositiveSSL"),
    "positivesslwildcard": ("sectigo_dv", "PositiveSSL Wildcard"),
    "sectigossl": ("sectigo_dv", "Sectigo SSL"),
    "sectigowildcard": ("sectigo_dv", "Sectigo Wildcard SSL"),
    "positivemdcssl": ("sectigo_dv_mdc", "PositiveSSL Multi-Domain"),
    "positivemdcwildcard": ("sectigo_dv_mdc", "PositiveSSL Multi-Domain Wildcard"),
    "sectigodvucc": ("sectigo_dv_mdc", "Sectigo DV UCC"),
    "sectigouccwildcard": ("sectigo_dv_mdc", "Sectigo UCC Wildcard"),
    "sectigoovssl": ("sectigo_ov", "Sectigo OV SSL"),
    "sectigoovwildcard": ("sectigo_ov", "Sectigo OV Wildcard SSL"),
    "comodopremiumssl": ("sectigo_ov", "Comodo Premium SSL"),
    "comodopremiumwildcard": ("sectigo_ov", "Comodo Premium Wildcard SSL"),
    "instantssl": ("sectigo_ov", "InstantSSL"),
    "instantsslpro": ("sectigo_ov", "InstantSSL Pro"),
    "enterpriseprowc": ("sectigo_ov", "Enterprise Pro Wildcard"),
    "sectigomdc": ("sectigo_ov_mdc", "Sectigo Multi-Domain OV"),
    "sectigomdcwildcard": ("sectigo_ov_mdc", "Sectigo Multi-Domain OV Wildcard"),
    "enterprisepro": ("sectigo_enterprisepro", "Enterprise Pro"),
    "positiveevssl": ("sectigo_ev", "PositiveSSL EV"),
    "enterpriseproev": ("sectigo_ev", "Enterprise Pro EV"),
    "sectigoevssl": ("sectigo_ev", "Sectigo EV SSL"),
    "positiveevmdc": ("sectigo_ev_mdc", "PositiveSSL EV Multi-Domain"),
    "sectigoevmdc": ("sectigo_ev_mdc", "Sectigo EV Multi-Domain"),
    "enterpriseproevmdc": ("sectigo_ev_mdc", "Enterprise Pro EV Multi-Domain"),
    "digi_rapidssl": ("digicert_dv", "RapidSSL"),
    "digi_rapidssl_wc": ("digicert_dv", "RapidSSL Wildcard"),
    "digi_ssl_dv_geotrust_flex": ("digicert_dv_md", "GeoTrust DV SSL"),
    "digi_ssl123_flex": ("digicert_dv_md", "GeoTrust SSL123"),
    "digi_securesite_flex": ("digicert_ov", "Secure Site"),
    "digi_ssl_basic": ("digicert_ov", "Basic SSL"),
    "digi_sslwebserver_flex": ("digicert_ov", "SSL Web Server"),
    "digi_truebizid_flex": ("digicert_ov", "TrueBizID"),
    "digi_securesite_ev_flex": ("digicert_ev", "Secure Site EV"),
    "digi_ssl_ev_basic": ("digicert_ev", "Basic SSL EV"),
    "digi_sslwebserver_ev_flex": ("digicert_ev", "SSL Web Server EV"),
    "digi_truebizid_ev_flex": ("digicert_ev", "TrueBizID EV"),
    "digi_securesite_pro_ev_flex": ("digicert_ev", "Secure Site Pro EV"),
    "digi_securesite_pro_flex": ("digicert_eo_only", "Secure Site Pro"),
    "essentialssl": ("legacy_dv", "EssentialSSL"),
    "essentialwildcard": ("legacy_dv", "EssentialSSL Wildcard"),
    "comododvucc": ("legacy_dv_mdc", "Comodo DV UCC"),
    "comodossl": ("legacy_ov", "Comodo SSL"),
    "comodowildcard": ("legacy_ov", "Comodo Wildcard SSL"),
    "elitessl": ("legacy_ov", "EliteSSL"),
    "enterprisessl": ("legacy_ov", "EnterpriseSSL"),
    "comodomdc": ("legacy_ov_mdc", "Comodo Multi-Domain SSL"),
    "comodomdcwildcard": ("legacy_ov_mdc", "Comodo Multi-Domain Wildcard SSL"),
    "comodoucc": ("legacy_ov_mdc", "Comodo UCC"),
    "comodouccwildcard": ("legacy_ov_mdc", "Comodo UCC Wildcard"),
    "comodoevssl": ("legacy_ev", "Comodo EV SSL"),
    "comodoevmdc": ("legacy_ev_mdc", "Comodo EV Multi-Domain SSL"),
    "digi_quickssl_md": ("digicert_legacy_md", "QuickSSL Multi-Domain"),
}
# DigiCert OV/EV codes that also exist as "-EO" (existing organisation) in
# templates; the order itself carries the code without the suffix ("Placing an order").
EO_CAPABLE = {"digicert_ov", "digicert_ev", "digicert_eo_only"}
SECTIGO_MDC_BASE_NAMES = 3
MAX_NAMES = 250


def is_wildcard_product(code):
    return "wildcard" in code or code.endswith("_wc") or code.endswith("prowc")


def product_info(code):
    """dict describing a catalogue code, or None."""
    if code not in PRODUCTS:
        return None
    family, name = PRODUCTS[code]
    vendor, validation, multi, required, need_dns = FAMILIES[family]
    return {"code": code, "family": family, "name": name, "vendor": vendor, "validation": validation,
            "multi": multi, "required": required, "need_dns": need_dns,
            "wildcard": is_wildcard_product(code), "digicert": vendor == "DigiCert"}


WEB_SERVER_TYPES = [
    "aol", "apachessl", "apacheraven", "apachessleay", "iis", "iis4", "iis5", "c2net", "Ibmhttp",
    "Ibminternet", "Iplanet", "Dominogo4625", "Dominogo4626", "Domino", "Netscape", "NetscapeFastTrack",
    "zeusv3", "Other", "apacheopenssl", "apache2", "apacheapachessl", "cobaltseries", "covalentserver",
    "cpanel", "ensim", "hsphere", "ipswitch", "plesk", "tomcat", "WebLogic", "website", "webstar",
    "sapwebserver", "webten", "redhat", "reven", "r3ssl", "quid", "oracle", "javawebserver", "cisco3000",
    "citrix"]
WEB_SERVER_TYPES_LC = {w.lower() for w in WEB_SERVER_TYPES}
HASH_ALGORITHMS = {"PREFER_SHA2", "REQUIRE_SHA2", "PREFER_SHA1"}

# DigiCert organisations for "-EO" orders ("Approvers"): one active, two not.
ORGANIZATIONS = [
    {"Name": "Example Corp", "AssumedName": "", "Address": "1 Example Way", "Address2": "", "City": "Austin",
     "State": "TX", "Zip": "78701", "Country": "us", "Organization_Phone": "+1 512 555 0100",
     "Status": "active", "TSSOrganizationId": 204518, "VendorOrganizationId": 1190442,
     "ApproversContact": None,
     "OrganizationContact": {"Email": "legal@example.com", "Firstname": "Sam", "Lastname": "Lee",
                             "JobTitle": "Counsel", "Phone": "+1 512 555 0101", "Phone_Extension": "",
                             "Username": "slee"}},
    {"Name": "Pending Vetting Ltd", "AssumedName": "", "Address": "2 Queue Street", "Address2": "",
     "City": "Leeds", "State": "West Yorkshire", "Zip": "LS1 1AA", "Country": "gb",
     "Organization_Phone": "+44 113 000 0000", "Status": "pending", "TSSOrganizationId": 204519,
     "VendorOrganizationId": 1190443, "ApproversContact": None,
     "OrganizationContact": {"Email": "it@example.co.uk", "Firstname": "Alex", "Lastname": "Moor",
                             "JobTitle": "IT", "Phone": "+44 113 000 0001", "Phone_Extension": "",
                             "Username": "amoor"}},
    {"Name": "Dormant Holdings Inc", "AssumedName": "", "Address": "3 Old Road", "Address2": "",
     "City": "Reno", "State": "NV", "Zip": "89501", "Country": "us", "Organization_Phone": "+1 775 555 0100",
     "Status": "inactive", "TSSOrganizationId": 204520, "VendorOrganizationId": 1190444,
     "ApproversContact": None,
     "OrganizationContact": {"Email": "ops@example.net", "Firstname": "Kim", "Lastname": "Ray",
                             "JobTitle": "Ops", "Phone": "+1 775 555 0101", "Phone_Extension": "",
                             "Username": "kray"}},
]

# Every knob a scenario may set (unknown names are refused to catch typos).
KNOBS = {
    "pending_polls", "initial_polls", "issue_after_seconds", "stuck", "dcv_required", "active_immediately",
    "vendor_reject", "reject", "http_429", "http_5xx", "order_5xx_after_create", "drop_after_create",
    "slow_ms", "drop_connection", "malformed_body", "oversized_body", "wrong_key", "leaf_seconds",
    "leaf_days", "query_fail_pages", "query_lag", "cancelled_after_refund", "refund_delay_seconds",
    "renewal_inherit", "download_root", "download_order", "download_id_as_number", "message_as_string",
    "require_tech_title", "allow_non_ascii", "allow_reserved_tld", "validity_months",
    "validity_months_digicert",
    # drop_after_process: any call is carried out, then the connection closes
    # without an answer (a lost answer); plan_days: a new order's plan
    # (OrderExpiryDateInUTC) ends this many days after purchase, whatever
    # the validity (plan vs certificate expiry, with leaf_days)
    "drop_after_process", "plan_days",
}
# {"burst": N, "window_s": W, "retry_after": S}: a neworder beyond N accepted
# within W seconds answers 429 with Retry-After S (counted as rate_limited).
KNOBS.add("neworder_burst")

RESERVED_TLDS = {"local", "localhost", "internal", "invalid", "test", "lan", "home", "corp", "intranet",
                 "private", "localdomain", "example"}
TWO_LEVEL_SUFFIXES = {"co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au",
                      "co.jp", "co.nz", "com.br", "co.in", "co.za", "com.cn", "com.mx"}
ROLE_MAILBOXES = ["admin", "administrator", "hostmaster", "postmaster", "webmaster"]
LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


# ---------------------------------------------------------------- helpers

class ApiError(Exception):
    """A business error: HTTP 200 with isError (extra members merged in)."""

    def __init__(self, message, extra=None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class HttpError(Exception):
    """A protocol-level error answered with a non-200 status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def fmt_date(dt):
    return dt.strftime("%m/%d/%Y %H:%M:%S") if dt else UNSET_DATE


def parse_date(value, field):
    """Request dates: /Date(ms)/, milliseconds, ISO-8601, MM/dd/yyyy[ HH:mm:ss]."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ApiError(f"{field} is not a valid date.")
    if isinstance(value, (int, float)):
        return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=value)
    if not isinstance(value, str):
        raise ApiError(f"{field} is not a valid date.")
    m = re.fullmatch(r"/Date\((-?\d+)([+-]\d{4})?\)/", value.strip())
    if m:
        return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=int(m.group(1)))
    if re.fullmatch(r"-?\d+", value.strip()):
        return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=int(value))
    for f in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y"):
        try:
            return datetime.datetime.strptime(value.strip(), f)
        except ValueError:
            pass
    try:
        dt = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(f"{field} is not a valid date.") from None
    if dt.tzinfo:
        dt = dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return dt


def add_months(dt, months):
    month = dt.month - 1 + months
    year = dt.year + month // 12
    month = month % 12 + 1
    days = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31,
            30, 31][month - 1]
    return dt.replace(year=year, month=month, day=min(dt.day, days))


def redact(body):
    """A copy of a request body without the auth token (for /_sim/stats)."""
    if isinstance(body, dict):
        return {k: ("<redacted>" if k == "AuthToken" else redact(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [redact(v) for v in body]
    return body


def has_non_ascii(value):
    if isinstance(value, str):
        return any(ord(c) > 127 for c in value)
    if isinstance(value, dict):
        return any(has_non_ascii(v) for v in value.values())
    if isinstance(value, list):
        return any(has_non_ascii(v) for v in value)
    return False


# Field access: absent, null and "" all mean "not given" ("Placing an order"), but a present
# value of the wrong JSON type is an error — a strict API would not coerce.

def get_str(body, key, where=""):
    v = body.get(key) if isinstance(body, dict) else None
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ApiError(f"{where}{key} must be a string.")
    return v.strip()


def get_bool(body, key):
    v = body.get(key)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ApiError(f"{key} must be true or false.")
    return v


def get_int(body, key, default=None):
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(f"{key} must be an integer.")
    return v


def get_obj(body, key):
    v = body.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ApiError(f"{key} must be an object.")
    return v


def get_path(body, path):
    """'A.B.C' string member, "" when absent; type-checked on the way."""
    parts = path.split(".")
    cur = body
    for i, p in enumerate(parts[:-1]):
        cur = get_obj(cur, p) if isinstance(cur, dict) else {}
    return get_str(cur, parts[-1], ".".join(parts[:-1]) + "." if len(parts) > 1 else "")


def fill_missing(dst, src):
    """Members absent, null or "" in dst taken from src, recursively."""
    for k, v in src.items():
        if v is None:
            continue
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            dst[k] = fill_missing(dict(dst[k]), v)
        elif dst.get(k) in (None, "", [], {}):
            dst[k] = v
    return dst


def normalise_name(name):
    return name.strip().lower().rstrip(".")


def check_dns_name(name, wildcard_ok, allow_reserved):
    """Refuse what a public CA refuses: IPs, single labels, reserved TLDs,
    malformed labels, and wildcards where the product has none."""
    if not name:
        raise ApiError("Empty domain name.")
    if len(name) > 253:
        raise ApiError(f"Domain name too long: {name}.")
    labels = name.split(".")
    if labels[0] == "*":
        if not wildcard_ok:
            raise ApiError(f"Wildcard domain {name} is not allowed for this product.")
        labels = labels[1:]
    if len(labels) < 2:
        raise ApiError(f"{name} is not a fully qualified domain name.")
    for label in labels:
        if not LABEL_RE.match(label):
            raise ApiError(f"Invalid domain name: {name}.")
    if labels[-1].isdigit() or re.fullmatch(r"[0-9.]+", ".".join(labels)):
        raise ApiError(f"IP addresses are not allowed: {name}.")
    if not allow_reserved and labels[-1] in RESERVED_TLDS:
        raise ApiError(f"Domain {name} uses a reserved or internal top-level domain.")


def registrable_domain(name):
    labels = name.lower().lstrip("*.").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in TWO_LEVEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def approver_list(domain):
    """The five role addresses of the registrable domain ("Approvers"; sim choice)."""
    base = registrable_domain(domain)
    return [f"{box}@{base}" for box in ROLE_MAILBOXES], base


def parse_csr(text):
    """PEM with CRLF/LF/no line breaks inside, or bare base64 DER ("Placing an order")."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError("CSR is required.")
    t = text.strip()
    m = re.fullmatch(r"-----BEGIN (NEW )?CERTIFICATE REQUEST-----(.*?)-----END (NEW )?CERTIFICATE REQUEST-----",
                     t, re.S)
    if m:
        b64 = m.group(2)
    elif "-----" in t:
        raise ApiError("Invalid CSR.")
    else:
        b64 = t
    b64 = re.sub(r"\s+", "", b64)
    if not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", b64):
        raise ApiError("Invalid CSR.")
    try:
        der = base64.b64decode(b64, validate=True)
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise ApiError("Invalid CSR.") from None
    if not csr.is_signature_valid:
        raise ApiError("Invalid CSR: bad signature.")
    kind = key_kind(csr.public_key())
    if kind not in ALLOWED_KEYS:
        raise ApiError(f"CSR key type {kind[0]} {kind[1]} is not accepted; allowed: RSA 2048, 3072, 4096, "
                       "EC P-256, P-384.")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or not cns[0].value.strip():
        raise ApiError("CSR has no common name.")
    return csr, der


def csr_cn(csr):
    return normalise_name(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def path_matches(path, endpoints):
    """A knob's "endpoints": full paths or suffixes ("neworder", "order/status")."""
    if not endpoints:
        return True
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    for e in endpoints:
        e = e.rstrip("/")
        if path == e or (not e.startswith("/") and path.endswith("/" + e)):
            return True
    return False


# ---------------------------------------------------------------- the order

class Order:
    """One order.  Lifecycle knobs are captured when the order (or reissue)
    is placed so that later scenario changes affect only new orders."""

    def __init__(self, sim, oid, partner_oid, req, product, csr, csr_der, names, dcv_method, approver, eo_org):
        self.id = oid
        self.partner_order_id = partner_oid
        self.custom_order_id = get_str(req, "CustomOrderID")
        self.vendor_order_id = ""
        self.product = product
        self.req = req
        self.csr, self.csr_der = csr, csr_der
        self.cn = csr_cn(csr)
        self.names = names
        self.dcv_method = dcv_method
        self.approver = approver
        self.eo_org = eo_org
        self.months = req["ValidityPeriod"]
        self.server_count = get_int(req, "ServerCount", 1)
        self.purchase = utcnow()
        self.order_expiry = add_months(self.purchase, self.months)
        if sim.scenario.get("plan_days") is not None:
            self.order_expiry = self.purchase + datetime.timedelta(days=float(sim.scenario["plan_days"]))
        self.major, self.minor = "Pending", ""
        self.query_view = ("Pending", "")
        self.cert = None
        self.cert_issued = False
        self.notes = []
        self.auth_comments = ""
        self.rejected = False
        self.dcv_completed = False
        self.dcv_token = secrets.token_hex(5)
        self.is_renewal = get_bool(req, "isRenewalOrder")
        self.related_id = get_str(req, "RelatedTheSSLStoreOrderID")
        self.reissues = 0
        self.revoked = False
        self.refund_id = ""
        self.refund_at = None
        self.refund_polls_left = 0
        self.refund_delay = 0
        self.refund_approved = False
        self.refund_reason = ""
        self.polls = 0
        self.poll_date = None
        self.capture_lifecycle(sim.scenario)

    def capture_lifecycle(self, sc):
        self.initial_polls = int(sc.get("initial_polls") or 0)
        self.pending_polls = int(sc.get("pending_polls") or 0)
        delay = sc.get("issue_after_seconds")
        self.issue_at = utcnow() + datetime.timedelta(seconds=delay) if delay else None
        self.stuck = bool(sc.get("stuck"))
        self.dcv_required = bool(sc.get("dcv_required"))
        self.vendor_reject = sc.get("vendor_reject") or None
        self.polls = 0

    @property
    def reissuing(self):
        return self.minor == "PENDING_REISSUE"

    @property
    def in_flight(self):
        return (self.major in ("Initial", "Pending") and not self.rejected) or self.reissuing


# ---------------------------------------------------------------- simulator

class Simulator:
    def __init__(self, folder, partner_code, token, scenario):
        self.folder = folder
        self.partner_code = partner_code
        self.token = token
        self.ca = SimCA(os.path.join(folder, "ca"), label="SSL Store")
        self.scenario = {}
        self.merge_scenario(scenario or {})
        self.lock = threading.RLock()
        self.orders = {}            # TheSSLStoreOrderID -> Order
        self.next_order_id = 4518230
        self.next_partner_id = 88213467
        self.next_vendor_id = 163004512
        self.next_refund_id = 73310
        self.reset_stats()

    # ---- scenario

    def merge_scenario(self, update):
        if not isinstance(update, dict):
            raise HttpError(400, "scenario must be a JSON object")
        unknown = set(update) - KNOBS
        if unknown:
            raise HttpError(400, f"unknown scenario knob(s): {', '.join(sorted(unknown))}")
        for k, v in update.items():
            if v is None:
                self.scenario.pop(k, None)
            else:
                self.scenario[k] = v

    def take(self, name, path=None):
        """Consume one use of a fault knob if it applies to path.
        true = on until switched off; N or {"count": N} = the next N times
        ({"count": -1} = unlimited; a dict without count means once)."""
        v = self.scenario.get(name)
        if v is None or v is False or v == 0:
            return None
        if v is True:
            return {}
        if isinstance(v, int):
            v = {"count": v}
            self.scenario[name] = v
        if not isinstance(v, dict):
            return v
        if path is not None and not path_matches(path, v.get("endpoints")):
            return None
        count = v.get("count", 1)
        if count == 0:
            return None
        if count > 0:
            if count == 1:
                self.scenario.pop(name, None)
            else:
                v["count"] = count - 1
        return v

    # ---- stats

    def reset_stats(self):
        self.orders_placed = 0
        self.rate_limited = 0
        self.calls = {}
        self.last_request = {}
        # every neworder/reissue request, faulted ones included: its CustomOrderID
        self.placements = []
        # status/download lookups by a CustomOrderID no order holds (client errors)
        self.unknown_custom_lookups = 0

    def note_placement(self, path, raw):
        if path not in ("/rest/order/neworder", "/rest/order/reissue"):
            return
        try:
            body = json.loads(raw.decode("utf-8")) if isinstance(raw, bytes) else raw
        except (UnicodeDecodeError, ValueError):
            body = None
        cid = body.get("CustomOrderID") if isinstance(body, dict) else None
        self.placements.append({"path": path, "CustomOrderID": cid if isinstance(cid, str) else ""})

    def stats(self):
        return {
            "orders_placed": self.orders_placed,
            "rate_limited": getattr(self, "rate_limited", 0),
            "calls": dict(self.calls),
            "orders": [{"TheSSLStoreOrderID": o.id, "PartnerOrderID": o.partner_order_id,
                        "CustomOrderID": o.custom_order_id, "ProductCode": o.product["code"],
                        "MajorStatus": o.major, "MinorStatus": o.minor, "DomainName": o.cn,
                        "DNSNames": o.names, "IsRenewal": o.is_renewal, "RelatedOrderID": o.related_id,
                        "reissues": o.reissues, "SerialNumber": self.serial(o), "revoked": o.revoked,
                        "RefundRequestID": o.refund_id, "isRefundApproved": o.refund_approved}
                       for o in sorted(self.orders.values(), key=lambda o: int(o.id))],
            "last_request": dict(self.last_request),
            "placements": list(self.placements),
            "unknown_custom_lookups": self.unknown_custom_lookups,
            "scenario": self.scenario,
        }

    # ---- ids and lookups

    def new_partner_order_id(self):
        self.next_partner_id += secrets.randbelow(7) + 1
        return str(self.next_partner_id)

    def find_order(self, body, allow_custom=True):
        """By TheSSLStoreOrderID or CustomOrderID ("Order identifiers"); both must agree."""
        oid = get_str(body, "TheSSLStoreOrderID")
        cid = get_str(body, "CustomOrderID") if allow_custom else ""
        if not oid and not cid:
            raise ApiError("TheSSLStoreOrderID or CustomOrderID is required.")
        if oid:
            o = self.orders.get(oid)
            if o is None:
                raise ApiError(f"Invalid TheSSLStoreOrderID: {oid}.")
            if cid and cid != o.custom_order_id:
                raise ApiError("TheSSLStoreOrderID and CustomOrderID do not belong to the same order.")
            return o
        for o in self.orders.values():
            if o.custom_order_id and o.custom_order_id == cid:
                return o
        self.unknown_custom_lookups += 1
        raise ApiError(f"Invalid CustomOrderID: {cid}.")

    # ---- the state machine

    def set_status(self, o, major, minor):
        o.major, o.minor = major, minor
        # query_lag: /order/query keeps showing what it showed before ("Listing orders")
        if not self.scenario.get("query_lag"):
            o.query_view = (major, minor)

    def advance(self, o, status_poll=False, refund_poll=False):
        now = utcnow()
        if status_poll:
            o.poll_date = now
        if o.refund_id and not o.refund_approved:
            if o.refund_polls_left >= 0 and now >= o.refund_at + datetime.timedelta(seconds=o.refund_delay):
                if o.refund_polls_left == 0:
                    self.approve_refund(o)
                elif status_poll or refund_poll:
                    o.refund_polls_left -= 1
            return
        if not o.in_flight:
            return
        if status_poll:
            o.polls += 1
        if o.vendor_reject:
            # A rejected order never issues: it waits after_polls polls, then fails.
            if o.polls > int(o.vendor_reject.get("after_polls", 0)):
                self.vendor_rejects(o)
            return
        if o.polls <= o.initial_polls + o.pending_polls:
            if not o.reissuing:
                self.set_status(o, "Initial" if 0 < o.polls <= o.initial_polls or
                                (o.polls == 0 and o.initial_polls) else "Pending", "")
            return
        if o.stuck or (o.issue_at and now < o.issue_at) or (o.dcv_required and not o.dcv_completed):
            if o.major == "Initial":
                self.set_status(o, "Pending", "")
            return
        self.issue(o)

    def vendor_rejects(self, o):
        vr = o.vendor_reject
        text = vr.get("message") or "the value of the 'apprepcountryname' argument is invalid!"
        msg = f"ErrorCode:{vr.get('code', -9009)}|Message:Vendor returns error:{text}"
        o.rejected = True
        o.auth_comments = msg
        o.notes.append({"Comments": msg, "DateAdded": fmt_date(utcnow())})
        if vr.get("mode") == "cancelled":
            self.set_status(o, "Cancelled", "REJECTED")
        else:
            self.set_status(o, "Pending" if not o.reissuing else "Active", "REJECTED")

    def issue(self, o):
        """Sign the CSR ("Renewal or reissue"): certificate end <= 397 days and
        <= the order's expiry unless leaf_seconds/leaf_days say otherwise."""
        now = utcnow()
        wrong = self.take("wrong_key") is not None
        if self.scenario.get("leaf_seconds"):
            seconds = int(self.scenario["leaf_seconds"])
        elif self.scenario.get("leaf_days"):
            seconds = int(float(self.scenario["leaf_days"]) * 86400)
        else:
            seconds = int(min(o.order_expiry - now, datetime.timedelta(days=397)).total_seconds())
        o.cert = self.ca.issue(o.csr, seconds=max(seconds, 1), dns_names=o.names, wrong_key=wrong)
        o.cert_issued = True
        if not o.vendor_order_id:
            self.next_vendor_id += 1
            o.vendor_order_id = str(self.next_vendor_id)
        o.dcv_completed = True
        self.set_status(o, "Active", "")

    def approve_refund(self, o):
        o.refund_approved = True
        if o.cert is not None:
            o.revoked = True
        self.set_status(o, "Cancelled", "REFUNDED")

    def serial(self, o):
        return format(o.cert.serial_number, "X") if o.cert is not None else ""

    # ---- response building

    def auth_response(self, ctx, error=None):
        if error is None:
            message = None
        elif self.scenario.get("message_as_string"):
            message = error
        else:
            message = [error]
        return {"isError": error is not None, "Message": message, "Timestamp": fmt_date(utcnow()),
                "ReplayToken": ctx.get("replay", ""), "InvokingPartnerCode": ctx.get("partner", "")}

    def dcv_entries(self, o):
        out = []
        validated = "Validated" if (o.cert_issued and not o.reissuing) or o.dcv_completed else "Pending"
        for name in o.names:
            e = {"domain": name, "dcvMethod": o.dcv_method, "dcvStatus": validated, "FileName": None,
                 "FileContents": None, "DNSName": None, "DNSEntry": None, "PollStatus": "",
                 "LastPollDate": o.poll_date.strftime("%Y-%m-%dT%H:%M:%S") if o.poll_date else ""}
            if o.dcv_method in ("HTTP", "HTTPS"):
                e["FileName"], e["FileContents"] = self.auth_file(o)
            elif o.dcv_method == "CNAME":
                e["DNSName"], e["DNSEntry"] = self.cname_record(o, name)
            out.append(e)
        return out

    def auth_file(self, o):
        md5 = hashlib.md5(o.csr_der).hexdigest().upper()
        sha = hashlib.sha256(o.csr_der).hexdigest().upper()
        vendor = "digicert.com" if o.product["digicert"] else "sectigo.com"
        return f"{md5}.txt", f"{sha}\n{vendor}\n{o.dcv_token}"

    def cname_record(self, o, domain):
        md5 = hashlib.md5(o.csr_der).hexdigest()
        sha = hashlib.sha256(o.csr_der).hexdigest()
        vendor = "dcv.digicert.com" if o.product["digicert"] else "sectigo.com"
        host = domain[2:] if domain.startswith("*.") else domain
        return f"_{md5}.{host}", f"{sha[:32]}.{sha[32:]}.{o.dcv_token}.{vendor}"

    @staticmethod
    def contact(obj):
        keys = ["FirstName", "LastName", "SubjectFirstName", "SubjectLastName", "Phone", "Fax", "Email", "Title",
                "OrganizationName", "AddressLine1", "AddressLine2", "City", "Region", "PostalCode", "Country"]
        return {k: (obj.get(k) if isinstance(obj.get(k), str) else "") for k in keys}

    def order_object(self, ctx, o, view=None):
        """The full order object ("Order status") — the reference client dereferences many members."""
        major, minor = view or (o.major, o.minor)
        cert = o.cert
        org = get_obj(o.req, "OrganizationInfo")
        addr = get_obj(org, "OrganizationAddress")
        if o.eo_org:
            org_name, country, state = o.eo_org["Name"], o.eo_org["Country"].upper(), o.eo_org["State"]
            locality, phone, street, postal = (o.eo_org["City"], o.eo_org["Organization_Phone"],
                                               o.eo_org["Address"], o.eo_org["Zip"])
        else:
            org_name, country, state = (org.get("OrganizationName") or "", addr.get("Country") or "",
                                        addr.get("Region") or "")
            locality, phone, street, postal = (addr.get("LocalityName") or addr.get("City") or "",
                                               addr.get("Phone") or "", addr.get("AddressLine1") or "",
                                               addr.get("PostalCode") or "")
        file_name, file_content = self.auth_file(o) if o.dcv_method in ("HTTP", "HTTPS") else ("", "")
        cname_name, cname_value = self.cname_record(o, o.cn) if o.dcv_method == "CNAME" else ("", "")
        start = cert.not_valid_before if cert is not None else None
        end = cert.not_valid_after if cert is not None else None
        return {
            "AuthResponse": self.auth_response(ctx),
            "PartnerOrderID": o.partner_order_id,
            "CustomOrderID": o.custom_order_id,
            "TheSSLStoreOrderID": o.id,
            "VendorOrderID": o.vendor_order_id,
            "RefundRequestID": o.refund_id,
            "isRefundApproved": o.refund_approved,
            "TinyOrderLink": "",
            "OrderStatus": {"isTinyOrder": False, "isTinyOrderClaimed": False, "MajorStatus": major,
                            "MinorStatus": minor, "AuthenticationStatuses": [],
                            "AuthenticationComments": o.auth_comments, "OrderNotes": list(o.notes),
                            "DomainAuthVettingStatus": self.dcv_entries(o)},
            "OrderAmount": "0.00",
            "PurchaseDate": fmt_date(o.purchase), "PurchaseDateInUTC": fmt_date(o.purchase),
            "CertificateStartDate": fmt_date(start), "CertificateStartDateInUTC": fmt_date(start),
            "CertificateEndDate": fmt_date(end), "CertificateEndDateInUTC": fmt_date(end),
            "OrderExpiryDate": fmt_date(o.order_expiry), "OrderExpiryDateInUTC": fmt_date(o.order_expiry),
            "PollDate": fmt_date(o.poll_date), "PollDateInUTC": fmt_date(o.poll_date), "PollStatus": "",
            "CommonName": o.cn,
            "DNSNames": ",".join(o.names),
            "SANCount": len(o.names),
            "ServerCount": o.server_count,
            "Validity": o.months,
            "Organization": org_name, "OrganizationalUnit": "", "State": state, "Country": country,
            "Locality": locality, "OrganizationPhone": phone, "OrganizationAddress": street,
            "OrganizationPostalcode": postal, "DUNS": org.get("DUNS") or "",
            "WebServerType": get_str(o.req, "WebServerType") or "Other",
            "ApproverEmail": o.approver,
            "ProductCode": o.product["code"],
            "ProductName": o.product["name"],
            "AdminContact": self.contact(get_obj(o.req, "AdminContact")),
            "TechnicalContact": self.contact(get_obj(o.req, "TechnicalContact")),
            "ReissueSuccessCode": "",
            "AuthFileName": file_name, "AuthFileContent": file_content,
            "CNAMEAuthName": cname_name, "CNAMEAuthValue": cname_value,
            "CustomerLoginName": "", "CustomerPassword": "", "CustomerID": 0,
            "Token": "", "TokenID": "", "TokenCode": "",
            "SiteSealurl": "",
            "SignatureEncryptionAlgorithm": "RSA" if key_kind(o.csr.public_key())[0] == "rsa" else "ECC",
            "SignatureHashAlgorithm": get_str(o.req, "SignatureHashAlgorithm") or "PREFER_SHA2",
            "VendorName": "DIGICERT" if o.product["digicert"] else "COMODO",
            "SubVendorName": "",
            "SerialNumber": self.serial(o),
            "TSSOrganizationId": o.eo_org["TSSOrganizationId"] if o.eo_org else 0,
            "wildcardSANCount": sum(1 for n in o.names if n.startswith("*.")),
        }

    # ---- request validation shared by neworder / reissue

    def validity_months(self, product):
        if product["digicert"] and self.scenario.get("validity_months_digicert"):
            return list(self.scenario["validity_months_digicert"])
        if self.scenario.get("validity_months"):
            return list(self.scenario["validity_months"])
        return DIGICERT_MONTHS if product["digicert"] else DEFAULT_MONTHS

    def order_names(self, product, cn, dns_names, reserve):
        """CN first, then the requested SANs; product rules of "Placing an order"/OQ-17."""
        allow_reserved = bool(self.scenario.get("allow_reserved_tld"))
        names = []
        for n in [cn] + dns_names:
            if n not in names:
                names.append(n)
        wildcard_ok = product["wildcard"]
        for n in names:
            check_dns_name(n, wildcard_ok, allow_reserved)
        if product["wildcard"] and not product["multi"] and not cn.startswith("*."):
            raise ApiError(f"Product {product['code']} requires a wildcard common name (*.domain).")
        if not product["multi"]:
            twin = cn[4:] if cn.startswith("www.") else ("www." + cn if not cn.startswith("*.") else cn[2:])
            extra = [n for n in names if n not in (cn, twin)]
            if extra:
                raise ApiError(f"Product {product['code']} is a single-domain product; DNSNames may only "
                               f"contain the common name (got {', '.join(extra)}).")
        if len(names) > MAX_NAMES:
            raise ApiError(f"Too many domain names ({len(names)}); at most {MAX_NAMES}.")
        if product["multi"] and not product["digicert"] and len(names) > SECTIGO_MDC_BASE_NAMES + reserve:
            raise ApiError(f"Product {product['code']} includes {SECTIGO_MDC_BASE_NAMES} domains; "
                           f"{len(names)} requested needs ReserveSANCount >= "
                           f"{len(names) - SECTIGO_MDC_BASE_NAMES}.")
        return names

    def dns_list(self, body):
        v = body.get("DNSNames")
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ApiError("DNSNames must be an array of strings.")
        out = []
        for x in v:
            x = normalise_name(x)
            if not x:
                raise ApiError("DNSNames contains an empty entry.")
            out.append(x)
        return out

    def dcv_method(self, body):
        flags = [("HTTP", get_bool(body, "FileAuthDVIndicator")),
                 ("HTTPS", get_bool(body, "HTTPSFileAuthDVIndicator")),
                 ("CNAME", get_bool(body, "CNAMEAuthDVIndicator"))]
        chosen = [m for m, on in flags if on]
        if len(chosen) > 1:
            raise ApiError("Only one domain control validation method may be requested.")
        return chosen[0] if chosen else "EMAIL"

    def check_approvers(self, product, names, value, required):
        """The "Approvers" rules, applied server-side [sim choice]; returns the normalised value."""
        if not value:
            if required:
                raise ApiError("ApproverEmail is required for e-mail domain control validation.")
            return ""
        if product["digicert"]:
            if "," in value:
                raise ApiError("DigiCert products accept exactly one approver e-mail address.")
            addr = value.strip().lower()
            allowed, _ = approver_list(names[0])
            if addr not in allowed:
                raise ApiError(f"Approver email {addr} is not valid for {names[0]}; allowed: "
                               f"{', '.join(allowed)}.")
            return addr
        addrs = [a.strip().lower() for a in value.split(",")]
        if any(not a for a in addrs):
            raise ApiError("ApproverEmail contains an empty address.")
        lists = {n: approver_list(n)[0] for n in names}
        for a in addrs:
            if not any(a in lst for lst in lists.values()):
                raise ApiError(f"Approver email {a} is not valid for any domain of the order.")
        for n, lst in lists.items():
            if not any(a in lst for a in addrs):
                raise ApiError(f"No approver email given for {n}; allowed: {', '.join(lst)}.")
        return ",".join(addrs)

    def check_common_fields(self, body):
        if not self.scenario.get("allow_non_ascii") and has_non_ascii(body):
            raise ApiError("Request contains non-ASCII characters.")
        web = get_str(body, "WebServerType")
        if web and web.lower() not in WEB_SERVER_TYPES_LC:
            raise ApiError(f"Invalid WebServerType: {web}.")
        sha = get_str(body, "SignatureHashAlgorithm")
        if sha and sha not in HASH_ALGORITHMS:
            raise ApiError(f"Invalid SignatureHashAlgorithm: {sha}.")

    def check_contacts_and_org(self, body, product, eo):
        for where in ("AdminContact", "TechnicalContact"):
            c = get_obj(body, where)
            for k in ("FirstName", "LastName", "Phone", "Email", "Title", "Country", "OrganizationName",
                      "AddressLine1", "City", "Region", "PostalCode"):
                get_str(c, k, where + ".")
            email = get_str(c, "Email", where + ".")
            if email and not EMAIL_RE.match(email):
                raise ApiError(f"{where}.Email is not a valid e-mail address.")
            country = get_str(c, "Country", where + ".")
            if country and not re.fullmatch(r"[A-Za-z]{2}", country):
                raise ApiError(f"{where}.Country must be a two-letter country code.")
        org = get_obj(body, "OrganizationInfo")
        addr = get_obj(org, "OrganizationAddress")
        for path, v in (("OrganizationInfo.OrganizationAddress.Country", get_str(addr, "Country")),
                        ("OrganizationInfo.JurisdictionCountry", get_str(org, "JurisdictionCountry"))):
            if v and not re.fullmatch(r"[A-Za-z]{2}", v):
                raise ApiError(f"{path} must be a two-letter country code.")
        if eo:
            return
        required = list(product["required"])
        if self.scenario.get("require_tech_title") and product["family"] == "digicert_ev":
            required.append("TechnicalContact.Title")
        for path in required:
            if not get_path(body, path):
                raise ApiError(f"{path} is required for product {product['code']}.")

    def eo_organization(self, body, product):
        tss = get_int(body, "TSSOrganizationId", 0)
        if product["family"] not in EO_CAPABLE:
            if tss:
                raise ApiError(f"TSSOrganizationId is not valid for product {product['code']}.")
            return None
        if not tss:
            if product["family"] == "digicert_eo_only":
                raise ApiError(f"TSSOrganizationId is required for product {product['code']}.")
            return None
        for org in ORGANIZATIONS:
            if org["TSSOrganizationId"] == tss:
                if org["Status"] != "active":
                    raise ApiError(f"Organization {tss} is not active.")
                return org
        raise ApiError(f"Invalid TSSOrganizationId: {tss}.")

    # ---------------------------------------------------------- handlers

    def h_approverlist(self, ctx, body):
        code = get_str(body, "ProductCode")
        base_code = code[:-3] if code.endswith("-EO") else code   # sent as configured, -EO too ("Approvers")
        if not code or product_info(base_code) is None:
            raise ApiError(f"Invalid ProductCode: {code}.", {"ApproverEmailList": []})
        domain = normalise_name(get_str(body, "DomainName"))
        try:
            check_dns_name(domain, True, bool(self.scenario.get("allow_reserved_tld")))
        except ApiError as e:
            raise ApiError(e.message, {"ApproverEmailList": []}) from None
        emails, base = approver_list(domain)
        return {"AuthResponse": self.auth_response(ctx), "ApproverEmailList": emails, "baseDomainName": base}

    def h_neworder(self, ctx, body):
        code = get_str(body, "ProductCode")
        if not code:
            raise ApiError("ProductCode is required.")
        if code.endswith("-EO"):
            raise ApiError(f"Invalid ProductCode: {code} (send the code without the -EO suffix).")
        product = product_info(code)
        if product is None:
            raise ApiError(f"Invalid ProductCode: {code}.")
        self.check_common_fields(body)
        custom = get_str(body, "CustomOrderID")
        if custom and any(o.custom_order_id == custom for o in self.orders.values()):
            raise ApiError(f"CustomOrderID {custom} already exists.")
        is_renewal = get_bool(body, "isRenewalOrder")
        related_id = get_str(body, "RelatedTheSSLStoreOrderID")
        if is_renewal:
            body = self.renewal_body(body, related_id)
        elif related_id:
            raise ApiError("RelatedTheSSLStoreOrderID is only valid with isRenewalOrder true.")
        months = get_int(body, "ValidityPeriod")
        if months is None:
            raise ApiError("ValidityPeriod is required.")
        allowed = self.validity_months(product)
        if months not in allowed:
            raise ApiError(f"Invalid ValidityPeriod {months} (months); allowed for {code}: "
                           f"{', '.join(str(m) for m in allowed)}.")
        server_count = get_int(body, "ServerCount", 1)
        if server_count < 1:
            raise ApiError("ServerCount must be at least 1.")
        for k in ("ReserveSANCount", "WildcardReserveSANCount", "RenewalDays"):
            if (get_int(body, k, 0) or 0) < 0:
                raise ApiError(f"{k} must not be negative.")
        for k in ("isCUOrder", "isTrialOrder", "AddInstallationSupport", "CertTransparencyIndicator",
                  "isPKCS10", "AutoWWW"):
            get_bool(body, k)
        csr, der = parse_csr(body.get("CSR"))
        cn = csr_cn(csr)
        domain = normalise_name(get_str(body, "DomainName"))
        if domain and domain != cn:
            raise ApiError(f"DomainName {domain} does not match the CSR common name {cn}.")
        eo_org = self.eo_organization(body, product)
        self.check_contacts_and_org(body, product, eo_org is not None)
        dns = self.dns_list(body)
        if product["need_dns"] and not dns:
            raise ApiError(f"DNSNames is required for product {code}.")
        names = self.order_names(product, cn, dns, get_int(body, "ReserveSANCount", 0) or 0)
        if get_bool(body, "AutoWWW"):
            # AutoWWW: a single-domain product also secures the www twin of its name
            if product["multi"]:
                raise ApiError(f"AutoWWW is only offered for single-domain products, not {code}.")
            if not cn.startswith("*."):
                twin = cn[4:] if cn.startswith("www.") else "www." + cn
                if twin not in names:
                    names.append(twin)
        method = self.dcv_method(body)
        approver = self.check_approvers(product, names, get_str(body, "ApproverEmail"),
                                        required=method == "EMAIL" and eo_org is None)
        if ctx.get("validate_only"):
            # /order/validate: every check of neworder, no order, nothing charged
            return {"AuthResponse": self.auth_response(ctx)}
        reject = self.take("reject")
        if reject is not None:
            text = (reject.get("message") if isinstance(reject, dict) else None) or "Order rejected."
            code_no = reject.get("code") if isinstance(reject, dict) else None
            raise ApiError(f"ErrorCode:{code_no}|Message:{text}" if code_no is not None else text)
        # Create the order.
        body = dict(body, ValidityPeriod=months)
        oid = str(self.next_order_id)
        self.next_order_id += 1
        o = Order(self, oid, self.new_partner_order_id(), body, product, csr, der, names, method, approver,
                  eo_org)
        o.is_renewal, o.related_id = is_renewal, related_id
        self.orders[oid] = o
        self.orders_placed += 1
        ctx["created"] = o
        if o.initial_polls:
            self.set_status(o, "Initial", "")
        if self.scenario.get("active_immediately"):
            self.issue(o)
        return self.order_object(ctx, o)

    def h_validate(self, ctx, body):
        """The parameter dry run: neworder's checks without an order."""
        ctx["validate_only"] = True
        return self.h_neworder(ctx, body)

    def renewal_body(self, body, related_id):
        """A renewal is a new order linked to an existing one ("Renewal or reissue")."""
        if not related_id:
            raise ApiError("RelatedTheSSLStoreOrderID is required for a renewal order.")
        related = self.orders.get(related_id)
        if related is None:
            raise ApiError(f"Invalid RelatedTheSSLStoreOrderID: {related_id}.")
        if related.major == "Cancelled":
            raise ApiError(f"Order {related_id} is cancelled and cannot be renewed.")
        if not self.scenario.get("renewal_inherit"):
            return body
        # OQ-2, lenient variant: fill what the client left out.
        merged = fill_missing(dict(body), {k: related.req.get(k) for k in (
            "OrganizationInfo", "AdminContact", "TechnicalContact", "WebServerType", "SignatureHashAlgorithm")})
        if not merged.get("DNSNames"):
            merged["DNSNames"] = list(related.names)
        if not merged.get("ApproverEmail") and related.approver:
            merged["ApproverEmail"] = related.approver
        if not merged.get("TSSOrganizationId") and related.eo_org:
            merged["TSSOrganizationId"] = related.eo_org["TSSOrganizationId"]
        return merged

    def h_reissue(self, ctx, body):
        if not get_str(body, "TheSSLStoreOrderID"):
            raise ApiError("TheSSLStoreOrderID is required.")
        o = self.find_order(body, allow_custom=False)    # its CustomOrderID is ignored ("Order identifiers")
        self.advance(o)
        if o.major != "Active" or o.reissuing:
            raise ApiError(f"Order {o.id} cannot be reissued in status {o.major}"
                           f"{'/' + o.minor if o.minor else ''}.")
        if o.refund_id:
            raise ApiError(f"Order {o.id} has a refund request and cannot be reissued.")
        self.check_common_fields(body)
        for k in ("isWildCard", "PreferEnrollmentLink", "isRenewalOrder", "CertTransparencyIndicator"):
            get_bool(body, k)
        csr, der = parse_csr(body.get("CSR"))
        cn = csr_cn(csr)
        names = self.reissue_names(body, o, cn)
        names = self.order_names(o.product, cn, [n for n in names if n != cn],
                                 get_int(body, "ReserveSANCount", 0) or 0)
        method = self.dcv_method(body)
        given = get_str(body, "ApproverEmails")
        approver = self.check_approvers(o.product, names, given or o.approver,
                                        required=method == "EMAIL" and o.eo_org is None)
        o.csr, o.csr_der, o.cn, o.names, o.dcv_method, o.approver = csr, der, cn, names, method, approver
        o.partner_order_id = self.new_partner_order_id()
        o.reissues += 1
        o.dcv_completed = False
        o.dcv_token = secrets.token_hex(5)
        o.capture_lifecycle(self.scenario)
        self.set_status(o, "Active", "PENDING_REISSUE")
        if self.scenario.get("active_immediately"):
            self.issue(o)
        return self.order_object(ctx, o)

    def reissue_names(self, body, o, cn):
        """Full DNSNames list, else the old names edited by Add/Delete/EditSAN."""
        if body.get("DNSNames") is not None:
            names = self.dns_list(body)
        else:
            names = list(o.names)
            for key in ("DeleteSAN", "EditSAN", "AddSAN"):
                pairs = body.get(key)
                if pairs is None:
                    continue
                if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
                    raise ApiError(f"{key} must be an array of {{OldValue, NewValue}} objects.")
                for p in pairs:
                    old = normalise_name(get_str(p, "OldValue", key + "."))
                    new = normalise_name(get_str(p, "NewValue", key + "."))
                    if key in ("DeleteSAN", "EditSAN"):
                        if old not in names:
                            raise ApiError(f"{key}: {old} is not on the order.")
                        names.remove(old)
                    if key in ("EditSAN", "AddSAN"):
                        if not new:
                            raise ApiError(f"{key}: NewValue is required.")
                        names.append(new)
        if cn not in names:
            names.insert(0, cn)
        return names

    def h_status(self, ctx, body):
        o = self.find_order(body)
        self.advance(o, status_poll=True)
        return self.order_object(ctx, o)

    def downloadable(self, o):
        self.advance(o)
        if o.cert is None or o.major not in ("Active", "Cancelled"):
            raise ApiError(f"Certificate for order {o.id} is not issued yet.")

    def chain_files(self, o):
        """OQ-3 ("Downloading"): not leaf-first by default, so position pickers break."""
        leaf_name = o.cn.replace("*", "STAR").replace(".", "_") + ".crt"
        leaf = {"FileName": leaf_name, "FileContent": pem(o.cert)}
        inter = {"FileName": "intermediate1.crt", "FileContent": pem(self.ca.intermediate)}
        root = {"FileName": "root.crt", "FileContent": pem(self.ca.root)}
        order = self.scenario.get("download_order") or "intermediate_first"
        files = {"leaf_first": [leaf, inter], "leaf_last": [inter, leaf]}.get(order, [inter, leaf])
        if self.scenario.get("download_root"):
            files = [root] + files if order == "root_first" else files + [root]
        return files

    def download_common(self, ctx, o):
        start, end = o.cert.not_valid_before, o.cert.not_valid_after
        oid = int(o.id) if self.scenario.get("download_id_as_number") else o.id
        return {"AuthResponse": self.auth_response(ctx), "PartnerOrderID": o.partner_order_id,
                "TheSSLStoreOrderID": oid, "VendorOrderID": o.vendor_order_id,
                "CertificateStatus": o.major, "ValidationStatus": "Validated",
                "CertificateStartDate": fmt_date(start), "CertificateStartDateInUTC": fmt_date(start),
                "CertificateEndDate": fmt_date(end), "CertificateEndDateInUTC": fmt_date(end)}

    def h_download(self, ctx, body):
        o = self.find_order(body)
        get_bool(body, "ReturnPKCS7Cert")
        self.downloadable(o)
        return dict(self.download_common(ctx, o), Certificates=self.chain_files(o))

    def h_downloadaszip(self, ctx, body):
        o = self.find_order(body)
        self.downloadable(o)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in self.chain_files(o):
                z.writestr(f["FileName"], f["FileContent"])
        return dict(self.download_common(ctx, o), Zip=base64.b64encode(buf.getvalue()).decode(), pkcs7zip="")

    def h_query(self, ctx, body):
        page = get_int(body, "PageNumber")
        size = get_int(body, "PageSize")
        if page is not None and page < 1:
            raise ApiError("PageNumber must be 1 or greater.")
        if size is not None and not 1 <= size <= 100:
            raise ApiError("PageSize must be between 1 and 100.")
        start, end = parse_date(body.get("StartDate"), "StartDate"), parse_date(body.get("EndDate"), "EndDate")
        exp_from = parse_date(body.get("CertificateExpireFromDate"), "CertificateExpireFromDate")
        exp_to = parse_date(body.get("CertificateExpireToDate"), "CertificateExpireToDate")
        domain = normalise_name(get_str(body, "DomainName"))
        product = get_str(body, "ProductCode")
        get_str(body, "SubUserID")
        out = []
        for o in sorted(self.orders.values(), key=lambda o: int(o.id)):    # stable order
            self.advance(o)
            if start and o.purchase < start or end and o.purchase > end:
                continue
            cert_end = o.cert.not_valid_after if o.cert is not None else None
            if (exp_from or exp_to) and cert_end is None:
                continue
            if exp_from and cert_end < exp_from or exp_to and cert_end > exp_to:
                continue
            if domain and domain not in o.names:
                continue
            if product and product != "0" and product != o.product["code"]:
                continue
            out.append(o)
        if page is not None or size is not None:
            page, size = page or 1, size or 100
            out = out[(page - 1) * size:page * size]
        lag = bool(self.scenario.get("query_lag"))
        return [self.order_object(ctx, o, o.query_view if lag else None) for o in out]

    def h_refundrequest(self, ctx, body):
        o = self.find_order(body)
        self.advance(o)
        reason = get_str(body, "RefundReason")
        if o.major == "Cancelled":
            raise ApiError(f"Order {o.id} is already cancelled.")
        if o.refund_id:
            raise ApiError(f"A refund request ({o.refund_id}) already exists for order {o.id}.")
        self.next_refund_id += 1
        o.refund_id = str(self.next_refund_id)
        o.refund_at = utcnow()
        o.refund_reason = reason
        o.refund_delay = float(self.scenario.get("refund_delay_seconds") or 0)
        car = self.scenario.get("cancelled_after_refund")
        o.refund_polls_left = int(car) if car is not None and car is not False else 0
        return self.order_object(ctx, o)

    def h_refundstatus(self, ctx, body):
        o = self.find_order(body)
        if not o.refund_id:
            raise ApiError(f"No refund request exists for order {o.id}.")
        self.advance(o, refund_poll=True)
        return self.order_object(ctx, o)

    def h_certificaterevokerequest(self, ctx, body):
        o = self.find_order(body)
        self.advance(o)
        if o.cert is None:
            raise ApiError(f"Order {o.id} has no issued certificate.")
        if o.revoked or o.major == "Cancelled":
            raise ApiError(f"Order {o.id} is already cancelled or revoked.")
        serial = get_str(body, "SerialNumber").replace(":", "").upper().lstrip("0")
        if serial and serial != self.serial(o).lstrip("0"):
            raise ApiError("SerialNumber does not match the order's certificate.")
        o.revoked = True
        self.set_status(o, "Cancelled", "REVOKED")
        return self.auth_response(ctx)

    def h_organizationlist(self, ctx, body):
        return {"AuthResponse": self.auth_response(ctx), "OrganizationList": ORGANIZATIONS}

    def h_product_query(self, ctx, body):
        code = get_str(body, "ProductCode")
        ptype = get_int(body, "ProductType", 0)
        get_bool(body, "NeedSortedList")
        types = {"DV": 1, "EV": 2, "OV": 3}
        out = []
        for c in sorted(PRODUCTS):
            p = product_info(c)
            if code and code != c:
                continue
            if ptype and not (ptype == types[p["validation"]] or (ptype == 4 and p["wildcard"])
                              or (ptype == 7 and p["multi"])):
                continue
            out.append({
                "AuthResponse": self.auth_response(ctx), "ProductCode": c, "ProductName": p["name"],
                "VendorName": "DIGICERT" if p["digicert"] else "COMODO", "ProductType": types[p["validation"]],
                "CanbeReissued": True, "ReissueDays": 30, "IsSanEnable": p["multi"], "isNoOfServerFree": True,
                "IsCompetitiveUpgradeSupported": False, "isWlidcard": p["wildcard"],
                "MinSan": SECTIGO_MDC_BASE_NAMES if p["multi"] and not p["digicert"] else (1 if p["multi"] else 0),
                "MaxSan": MAX_NAMES if p["multi"] else 0,
                "PricingInfo": [{"NumberOfMonths": m, "NumberOfServer": 1, "Price": 10.0 * max(1, m // 12),
                                 "PricePerAdditionalSAN": 5.0 if p["multi"] else 0.0,
                                 "PricePerAdditionalServer": 0.0, "SRP": 20.0 * max(1, m // 12)}
                                for m in self.validity_months(p)]})
        return out

    def h_health_validate(self, ctx, body):
        return dict(self.auth_response(ctx), Status="Active")

    def h_health_status(self, ctx, body):
        return {"isError": False, "Message": None, "Timestamp": fmt_date(utcnow()), "Status": "Active"}

    # ---------------------------------------------------------- control API

    def control_order(self, oid, body):
        """POST /_sim/order/<id>: force fields for a test."""
        o = self.orders.get(oid)
        if o is None:
            raise HttpError(404, f"no order {oid}")
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        known = {"MajorStatus", "status", "MinorStatus", "OrderExpiryDateInUTC", "expiry", "expiry_in_days",
                 "dcv_completed", "issue", "isRefundApproved", "pending_polls", "stuck"}
        unknown = set(body) - known
        if unknown:
            raise HttpError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            if "pending_polls" in body:
                o.pending_polls = o.polls + int(body["pending_polls"]) - o.initial_polls
            if "stuck" in body:
                o.stuck = bool(body["stuck"])
            if body.get("dcv_completed"):
                o.dcv_completed = True
            if body.get("issue"):
                self.issue(o)
            major = body.get("MajorStatus", body.get("status"))
            if major is not None:
                if major == "Active" and o.cert is None:
                    self.issue(o)
                self.set_status(o, major, body.get("MinorStatus", "" if major != o.major else o.minor))
            elif "MinorStatus" in body:
                self.set_status(o, o.major, body["MinorStatus"])
            expiry = body.get("OrderExpiryDateInUTC", body.get("expiry"))
            if expiry is not None:
                o.order_expiry = parse_date(expiry, "expiry")
            if body.get("expiry_in_days") is not None:
                o.order_expiry = utcnow() + datetime.timedelta(days=float(body["expiry_in_days"]))
            if body.get("isRefundApproved") and o.refund_id:
                self.approve_refund(o)
        except (ApiError, ValueError, TypeError) as e:
            raise HttpError(400, str(e)) from None
        return {"ok": True, "order": self.order_object({"partner": self.partner_code}, o)}


# Route table: path (no trailing slash) -> (handler name, response shape, auth form).
# shape: "nested" = AuthResponse inside an object, "array" = bare array of
# objects, "flat" = the answer is the AuthResponse.  auth: "nested" =
# AuthRequest block, "flat" = top-level credentials, "either" = both (OQ-4).
ROUTES = {
    "/rest/order/approverlist": ("h_approverlist", "nested", "nested"),
    "/rest/order/neworder": ("h_neworder", "nested", "nested"),
    "/rest/order/reissue": ("h_reissue", "nested", "nested"),
    "/rest/order/status": ("h_status", "nested", "nested"),
    "/rest/order/download": ("h_download", "nested", "nested"),
    "/rest/order/downloadaszip": ("h_downloadaszip", "nested", "nested"),
    "/rest/order/query": ("h_query", "array", "nested"),
    "/rest/order/refundrequest": ("h_refundrequest", "nested", "nested"),
    "/rest/order/refundstatus": ("h_refundstatus", "nested", "nested"),
    "/rest/order/certificaterevokerequest": ("h_certificaterevokerequest", "flat", "nested"),
    "/rest/order/validate": ("h_validate", "nested", "nested"),
    "/rest/digicert/organizationlist": ("h_organizationlist", "nested", "either"),
    "/rest/product/query": ("h_product_query", "array", "nested"),
    "/rest/health/validate": ("h_health_validate", "flat", "flat"),
}
GET_ROUTES = {"/rest/health/status": "h_health_status"}
CREDENTIAL_HEADERS = {"authorization", "partnercode", "authtoken", "x-partner-code", "x-auth-token",
                      "x-partnercode", "x-authtoken", "x-api-key", "api-key"}


def error_body(shape, auth, extra=None):
    if shape == "flat":
        return auth
    obj = dict({"AuthResponse": auth}, **(extra or {}))
    return [obj] if shape == "array" else obj


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 60

    def log_message(self, fmt, *args):       # our own one-line log instead
        pass

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    @property
    def sim(self):
        return self.server.sim

    def log(self, status, is_error="-", note=""):
        path = self.path.split("?", 1)[0]
        sys.stderr.write(f"sslstore-sim: {self.command} {path} -> {status} isError={is_error}"
                         f"{' ' + note if note else ''}\n")
        sys.stderr.flush()

    def send_bytes(self, status, data, ctype="application/json; charset=utf-8", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status, obj, headers=None):
        self.send_bytes(status, json.dumps(obj).encode(), headers=headers)

    def drop(self):
        """Close the TCP connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HttpError(411, "Content-Length required")
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "GET":
                return b""
            raise HttpError(411, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if n > MAX_BODY:
            raise HttpError(413, "request body too large")
        return self.rfile.read(n)

    # ---- control API

    def control(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        sim = self.sim
        try:
            raw = self.read_body()
            body = json.loads(raw) if raw.strip() else {}
            with sim.lock:
                if self.command == "GET" and path == "/_sim/stats":
                    out = sim.stats()
                elif self.command == "POST" and path == "/_sim/scenario":
                    sim.merge_scenario(body)
                    out = {"ok": True, "scenario": sim.scenario}
                elif self.command == "POST" and path == "/_sim/reset-stats":
                    sim.reset_stats()
                    out = {"ok": True}
                elif self.command == "POST" and path.startswith("/_sim/order/"):
                    out = sim.control_order(path[len("/_sim/order/"):], body)
                else:
                    raise HttpError(404, "no such control endpoint")
            self.send_json(200, out)
            self.log(200)
        except json.JSONDecodeError:
            self.send_json(400, {"ok": False, "error": "body is not JSON"})
            self.log(400)
        except HttpError as e:
            self.send_json(e.status, {"ok": False, "error": e.message})
            self.log(e.status)

    # ---- the API

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        if self.path.startswith("/_sim/"):
            return self.control()
        path, _, query = self.path.partition("?")
        path = path.rstrip("/") if path != "/" else path     # both slash forms ("Where the API is")
        sim = self.sim
        with sim.lock:
            sim.calls[path] = sim.calls.get(path, 0) + 1
        if path in GET_ROUTES or path in ROUTES:
            want = "GET" if path in GET_ROUTES else "POST"
            if self.command != want:
                self.read_body_quietly()
                self.send_json(405, {"Message": f"The requested resource does not support http method "
                                                f"'{self.command}'."}, headers={"Allow": want})
                return self.log(405)
        else:
            self.read_body_quietly()
            self.send_json(404, {"Message": "No HTTP resource was found that matches the request URI."})
            return self.log(404)
        if self.pre_faults(path):
            return
        try:
            raw = self.read_body()
        except HttpError as e:
            self.close_connection = True
            return self.send_error_json(e.status, e.message, ROUTES.get(path, (None, "flat"))[1])
        with sim.lock:
            sim.note_placement(path, raw)
        if path in GET_ROUTES:
            return self.finish_answer(path, 200, getattr(sim, GET_ROUTES[path])({}, {}), False)
        handler, shape, auth_form = ROUTES[path]
        ctype = self.headers.get("Content-Type", "")
        media, _, params = ctype.partition(";")
        if media.strip().lower() != "application/json" or \
                (params.strip() and params.strip().lower().replace(" ", "") not in ("charset=utf-8",)):
            return self.send_error_json(400, "Content-Type must be application/json (charset utf-8).", shape)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            with sim.lock:
                sim.last_request[path] = raw[:4096].decode("utf-8", "replace")
            return self.send_error_json(400, "The request body is not valid JSON.", shape)
        if not isinstance(body, dict):
            return self.send_error_json(400, "The request body must be a JSON object.", shape)
        if self.query_fault(path, body):
            return
        with sim.lock:
            sim.last_request[path] = redact(body)
            ctx = self.auth_context(body, auth_form)
            if ctx.get("error"):
                status, obj = 200, error_body(shape, sim.auth_response(ctx, ctx["error"]),
                                              {"ApproverEmailList": []} if handler == "h_approverlist" else None)
                is_error = True
            else:
                try:
                    obj, is_error = getattr(sim, handler)(ctx, body), False
                except ApiError as e:
                    obj, is_error = error_body(shape, sim.auth_response(ctx, e.message), e.extra), True
                status = 200
            if ctx.get("created") is not None and self.post_create_faults(path):
                return
        self.finish_answer(path, status, obj, is_error)

    def read_body_quietly(self):
        try:
            raw = self.read_body()
        except HttpError:
            self.close_connection = True
            return
        path = self.path.partition("?")[0].rstrip("/")
        with self.sim.lock:
            self.sim.note_placement(path, raw)

    def send_error_json(self, status, message, shape):
        auth = {"isError": True, "Message": [message], "Timestamp": fmt_date(utcnow()), "ReplayToken": "",
                "InvokingPartnerCode": ""}
        self.send_json(status, error_body(shape or "flat", auth))
        self.log(status, True)

    def auth_context(self, body, form):
        """Credentials only in the body ("Where the API is", "Credentials"): never in URL or headers."""
        sim = self.sim
        req = body.get("AuthRequest")
        if form == "flat" or (form == "either" and req is None):
            req = body
        ctx = {"partner": "", "replay": ""}
        if not isinstance(req, dict):
            ctx["error"] = "AuthRequest is required."
            return ctx
        partner, token = req.get("PartnerCode"), req.get("AuthToken")
        replay = req.get("ReplayToken")
        ctx["partner"] = partner if isinstance(partner, str) else ""
        ctx["replay"] = replay if isinstance(replay, str) else ""
        query = self.path.partition("?")[2]
        if query:
            ctx["error"] = "Credentials and parameters are not accepted in the URL."
        elif any(h.lower() in CREDENTIAL_HEADERS for h in self.headers.keys()):
            ctx["error"] = "Credentials are not accepted in HTTP headers."
        elif not isinstance(partner, str) or not isinstance(token, str) or not partner or not token:
            ctx["error"] = "PartnerCode and AuthToken are required."
        elif req.get("IsUsedForTokenSystem") is True:
            ctx["error"] = "Token system authentication is not enabled for this partner."
        elif not (hmac.compare_digest(partner.encode(), sim.partner_code.encode())
                  and hmac.compare_digest(token.encode(), sim.token.encode())):
            ctx["error"] = "Invalid Partner Code or Auth Token."
        return ctx

    # ---- fault injection

    def burst_limit(self, path):
        """neworder_burst: a sliding window of accepted placements (caller holds sim.lock)."""
        knob = self.sim.scenario.get("neworder_burst")
        if not isinstance(knob, dict) or not path.endswith("/neworder"):
            return None
        now = time.monotonic()
        sim = self.sim
        sim.burst_calls = [t for t in getattr(sim, "burst_calls", []) if now - t < float(knob.get("window_s", 10))]
        if len(sim.burst_calls) >= int(knob.get("burst", 16)):
            sim.rate_limited = getattr(sim, "rate_limited", 0) + 1
            return {"retry_after": knob.get("retry_after", 1)}
        sim.burst_calls.append(now)
        return None

    def pre_faults(self, path):
        """Faults that hit before the request is processed (no side effect)."""
        sim = self.sim
        with sim.lock:
            slow = sim.scenario.get("slow_ms")
            delay = 0
            if isinstance(slow, (int, float)) and not isinstance(slow, bool):
                delay = slow
            elif isinstance(slow, dict):
                knob = sim.take("slow_ms", path)
                delay = knob.get("ms", 0) if knob else 0
            drop = sim.take("drop_connection", path)
            r429 = None if drop is not None else sim.take("http_429", path)
            if r429 is None and drop is None:
                r429 = self.burst_limit(path)
            r5xx = None if drop is not None or r429 is not None else sim.take("http_5xx", path)
        if delay:
            time.sleep(delay / 1000.0)
        if drop is not None:
            self.read_body_quietly()
            self.drop()
            self.log("-", note="fault=drop_connection")
            return True
        if r429 is not None:
            self.read_body_quietly()
            retry = str(r429.get("retry_after", 1))
            self.send_bytes(429, b"Too Many Requests", "text/plain; charset=utf-8", {"Retry-After": retry})
            self.log(429, note="fault=http_429")
            return True
        if r5xx is not None:
            self.read_body_quietly()
            status = int(r5xx.get("status", 500))
            self.send_bytes(status, b"<html><body><h1>Server Error</h1></body></html>", "text/html")
            self.log(status, note="fault=http_5xx")
            return True
        return False

    def query_fault(self, path, body):
        """query_fail_pages: each listed page fails once with a 5xx."""
        if path != "/rest/order/query":
            return False
        sim = self.sim
        with sim.lock:
            pages = sim.scenario.get("query_fail_pages") or []
            page = body.get("PageNumber") if isinstance(body.get("PageNumber"), int) else 1
            if page not in pages:
                return False
            pages.remove(page)
        self.send_bytes(503, b"<html><body><h1>503 Service Unavailable</h1></body></html>", "text/html")
        self.log(503, note=f"fault=query_fail_pages page={page}")
        return True

    def post_create_faults(self, path):
        """neworder created an order, then the answer is lost (unknown outcome)."""
        sim = self.sim
        if sim.take("drop_after_create", path) is not None:
            self.drop()
            self.log("-", note="fault=drop_after_create")
            return True
        if sim.take("order_5xx_after_create", path) is not None:
            self.send_bytes(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")
            self.log(500, note="fault=order_5xx_after_create")
            return True
        return False

    def finish_answer(self, path, status, obj, is_error):
        sim = self.sim
        with sim.lock:
            dropped = sim.take("drop_after_process", path)
            malformed = None if dropped is not None else sim.take("malformed_body", path)
            oversized = None if malformed is not None or dropped is not None else \
                sim.take("oversized_body", path)
        if dropped is not None:
            self.drop()
            self.log("-", note="fault=drop_after_process")
            return
        data = json.dumps(obj).encode()
        note = ""
        if malformed is not None:
            data = data[:max(1, len(data) // 2)]      # truncated JSON, still labelled as JSON
            note = "fault=malformed_body"
        elif oversized is not None:
            size = int(oversized.get("bytes", 16 << 20))
            pad = "x" * max(0, size - len(data))
            target = obj[0] if isinstance(obj, list) and obj else obj
            if isinstance(target, dict):
                target["Padding"] = pad
                data = json.dumps(obj).encode()
            else:
                data = data + b" " * len(pad)
            note = "fault=oversized_body"
        self.send_bytes(status, data)
        self.log(status, is_error, note)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, sim, ssl_ctx):
        self.sim = sim
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # TLS handshake in the worker thread, so a stalled client cannot
        # block the accept loop.
        request.settimeout(60)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            sys.stderr.write(f"sslstore-sim: TLS handshake failed: {e}\n")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def write_atomic(path, text, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="The SSL Store WBAPI simulator")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--partner-code", default=DEFAULT_PARTNER)
    ap.add_argument("--auth-token-file")
    ap.add_argument("--scenario")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    for stale in ("ready", "url", "pid"):
        try:
            os.unlink(os.path.join(args.dir, stale))
        except FileNotFoundError:
            pass
    if args.auth_token_file:
        with open(args.auth_token_file) as f:
            token = f.read().strip()
        if not token:
            ap.error("auth token file is empty")
    else:
        token = DEFAULT_TOKEN
        write_atomic(os.path.join(args.dir, "auth.token"), token, 0o600)
    scenario = {}
    if args.scenario:
        with open(args.scenario) as f:
            scenario = json.load(f)
    try:
        sim = Simulator(args.dir, args.partner_code, token, scenario)
    except HttpError as e:
        ap.error(e.message)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2          # TLS 1.2 or newer ("Where the API is")
    ctx.load_cert_chain(sim.ca.tls_cert_path, sim.ca.tls_key_path)
    server = Server(("127.0.0.1", args.port), sim, ctx)
    port = server.server_address[1]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    write_atomic(os.path.join(args.dir, "url"), f"https://127.0.0.1:{port}")
    write_atomic(os.path.join(args.dir, "pid"), f"{os.getpid()}")
    write_atomic(os.path.join(args.dir, "ready"), "ready\n")
    sys.stderr.write(f"sslstore-sim: listening on https://127.0.0.1:{port} (partner {args.partner_code})\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    sys.stderr.write("sslstore-sim: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
