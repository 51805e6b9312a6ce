#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A local simulator of the CERTInext (eMudhra emSignHub) REST API v1.

Behaves as docs/protocol-certinext.md describes (quoted section names below
refer to it) and validates every request as strictly as that description
allows.  HTTPS on 127.0.0.1 only, with the test CA of simca.py, which
also issues the certificates (root -> intermediate -> leaf from the CSR).

Run with Debian's interpreter (python3-cryptography 38):

    /usr/bin/python3 tests/sim/certinext_sim.py --dir DIR [--account N]
        [--access-key-file F] [--personality sandbox|production]
        [--scenario F.json] [--oauth-client-id ID --oauth-client-secret-file F]
        [--port 0]

Files in DIR: ca/ (root.pem = TLS trust and issuing root), access.key (only
when --access-key-file is not given), url, oauth_url (OAuth mode), pid, and
ready (written last, once the socket listens).  tests/sim/README.md documents
the control API (/_sim/...) and the scenario knobs (DEFAULT_SCENARIO below).

Decisions ("open question N" is item N of "Open questions and decisions";
the stricter reading was taken wherever the description leaves a choice):

 D1  ts must be YYYY-MM-DDTHH:MM:SS followed by a numeric +HH:MM/-HH:MM
     offset; "Z", fractions and missing offsets are refused ("Request envelope": the
     client and the live scripts never send "Z").  Clock skew is checked only
     when strict_ts_skew_s > 0.
 D2  txn must be 1-19 ASCII digits (the client draws from [1, 10^18]; the
     scripts send 16 digits).  A txn already seen is refused
     (reject_duplicate_txn, default on), also on a retry of the same body.
 D3  meta must hold exactly ver, ts, txn, accountNumber, authKey, all strings;
     a missing, extra or non-string member is a credential failure.
 D4  Bad credentials: HTTP 200 + status "0" + bad_auth_code (default
     EMS-001, a fixture code - flagged as invented) in access-key mode
     (bad_auth_http can make it 401/403); HTTP 401 + meta failure in OAuth
     mode.  In access-key mode an Authorization header is refused (the client
     never sends one, "OAuth"); in OAuth mode authKey must be "".
 D5  Every scalar in a request body must be a JSON string ("Request envelope"); numbers,
     booleans and nulls are refused with EMS-SIM-101.
 D6  Missing required members answer EMS-918 "<Field> cannot be empty"
     (the only live example of that code is the remarks message; the code is
     taken to be the generic "required member missing" code - inferred).
 D7  Codes the description does not record ("Errors") are invented and carry the prefix
     EMS-SIM-nnn so nobody mistakes them for real ones (table ERRORS).
     "Invalid key size" and "Insufficient Credits" carry errorCode "" by
     default (key_size_code knob), as recorded live.
 D8  EMS-1099 scope (open question 10): the same public key again is a duplicate, not just
     identical CSR bytes (duplicate_csr_scope "key"; "csr" for bytes).
 D9  CSR: exactly one PEM block "BEGIN CERTIFICATE REQUEST" with "\\n" line
     breaks and lines <= 76 columns; valid self-signature; key RSA
     2048/3072/4096, P-256 or P-384; signature sha256WithRSAEncryption,
     ecdsa-with-SHA256 (P-256) or ecdsa-with-SHA384 (P-384) only; CN equal to
     domainName (case-insensitive); only DNS SANs, each one of the order's
     names.  The leaf carries domainName + additionalDomains.
 D10 Wildcard products need domainName "*.<at least two labels>"; other
     products refuse any "*".  Non-UCC products accept additionalDomains
     only when it repeats domainName (or, with autoSecureWWW "1", its
     www./bare counterpart).  Families whose live drafts failed with EMS-918
     (DV wildcard UCC, OV wildcard UCC, EV UCC) answer EMS-918 while
     refuse_unexplored_families is on (default).
 D11 OV/EV member placement (open question 13): certificateInformation.locality,
     .postalCode, .companyRegistrationNumber (EV); organizationDetails
     .streetAddress, .city, .state, .country, .streetAddress2 (EV, non-empty);
     orderDetails.contractSignerInfo and .certificateApproverInfo (EV), each
     with name, email, isdCode, mobileNumber, designation, employeeID.
     An unknown organizationNumber answers EMS-1073 for every family.
 D12 signerIP must be IPv4 text; 127.0.0.1 answers EMS-1091 (live) and so do
     all loopback, unspecified, RFC 1918, link-local, multicast and reserved
     addresses (open question 15, stricter).  Documentation ranges (192.0.2/24,
     198.51.100/24, 203.0.113/24) are accepted.
 D13 requestorEmail: any registered unless requestor_emails lists them; on
     GetCertificate, RevokeOrder, SubmitCSR, GetDcv and VerifyDcv it must
     equal the order's requestor e-mail (case-insensitive), else EMS-SIM-103
     (open question 16, stricter).
 D14 Lifecycle advances only on TrackOrder polls (never on a clock):
     without DCV an order is issued on poll pending_polls+1; with DCV the
     poll that first shows the aggregate "1" is still pending and issuance
     follows pending_polls+1 polls later.  GetCertificate on anything not in
     {7, 9, 15, 20, 23} answers EMS-SIM-110 (also for 22 and 12).
 D15 Revocation (open question 17): reasons 1, 3, 4, 5, 9 only (EMS-SIM-120); only an
     issued order can be revoked (EMS-SIM-121); a second RevokeOrder of a
     revoked or revocation-initiated order answers status "0" EMS-SIM-122
     "Certificate already revoked".  Synchronous unless
     revoke_initiated_first (N TrackOrder polls show revokeRequestStatusId
     "1" first).
 D16 GetOrderReport: pageNumber/pageSize required, digit strings >= 1,
     pageSize <= report_max_page_size (500); orderDateFrom/orderDateTill
     YYYY-MM-DD only, inclusive, compared with the UTC creation date; rows
     oldest first; drafts included; tags always [] unless report_tags
     (open question 11: nobody may rely on the round trip); empty result = status "1",
     noOfPages 0, pageSize 0.
 D17 DCV: the domainVerification keys are the names as ordered (a wildcard
     keeps its "*."); the TXT owner name is not checked (no DNS); validation
     succeeds only when VerifyDcv follows a GetDcv for the same domain and
     method.  GetDcv answers EMS-956 while the slot is not visible, during
     the getdcv_ems956_polls window (counted in GetDcv calls per order), and
     for orders that need no DCV.
 D18 Fault knobs without "endpoints" apply to every emSignHub-API endpoint;
     the OAuth token endpoint is hit only when "oauth_token" is listed.
     drop/429/5xx/malformed/oversized act before processing (no side
     effect); order_5xx_after_create and drop_after_create act after the
     order exists.  Counted knobs default to count 1; slow_ms is unlimited.
 D19 orders_placed counts every order created, drafts included.
 D20 A draft (saveAndHold "1") may omit csr; SubmitCSR with the draft's
     requestNumber in orderNumber attaches one.  Placed orders need csr.
 D21 Requests need Content-Type application/json (415), a Content-Length
     (411) of at most 1 MiB (413), no query string (400), method POST (405).
"""
import argparse
import dataclasses
import datetime
import hashlib
import hmac
import ipaddress
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
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

sys.dont_write_bytecode = True   # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simca import SimCA, key_kind, pem  # noqa: E402

API_PREFIX = "/emSignHub-API/"
OAUTH_PATH = "/oauth/token"
CONTROL_PREFIX = "/_sim/"
MAX_REQUEST = 1 << 20
DEFAULT_ACCOUNT = "5550001234"
DEFAULT_ACCESS_KEY = "sim-access-key-0001"

# ---------------------------------------------------------------- catalogue

@dataclasses.dataclass(frozen=True)
class Product:
    code: str
    name: str
    family: str          # DV, OV, EV, PRIVATE
    wildcard: bool = False
    ucc: bool = False

    @property
    def unexplored(self):
        """Families whose live drafts failed with EMS-918 ("Errors")."""
        return self.ucc and (self.wildcard or self.family == "EV")


def _ssl_products(first_dv, first_ov, first_ev):
    out = []
    for i, (wc, ucc) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        suffix = " Wildcard" * wc + " UCC" * ucc
        out.append(Product(str(first_dv + i), f"DV SSL{suffix} 1 Year", "DV", wc, ucc))
        out.append(Product(str(first_ov + i), f"OV SSL{suffix} 1 Year", "OV", wc, ucc))
    out.append(Product(str(first_ev), "EV SSL 1 Year", "EV"))
    out.append(Product(str(first_ev + 1), "EV SSL UCC 1 Year", "EV", False, True))
    return sorted(out, key=lambda p: int(p.code))


# "Products and key types": sandbox 842 is DV, production 842 is OV.
CATALOGUE = {
    "sandbox": _ssl_products(842, 846, 850) + [
        Product("149", "Sandbox emSign Intranet SSL 1 Year", "PRIVATE")],
    "production": _ssl_products(838, 842, 846) + [
        Product("100", "emSign Intranet SSL 1 Year", "PRIVATE"),
        Product("104", "IGTF Host 1 Year", "PRIVATE")],
}

# ------------------------------------------------------------------ statuses

CERT_STATUS = {
    "1": "Setup Pending", "2": "Pending for Approver", "3": "Under Discrepancy",
    "4": "Approved", "5": "Rejected", "6": "Pending for Second Approver",
    "7": "Approved by Second Approver", "8": "Rejected by Second Approver",
    "9": "Certificate Downloaded", "12": "Certificate Expired",
    "13": "Rejected due to Order Cancellation", "14": "Auto Rejected",
    "15": "Order Auto Approved", "16": "Pending for LRA", "17": "Approved by LRA",
    "18": "Rejected by LRA", "19": "Invalid Configuration", "20": "Certificate Generated",
    "21": "Download Rejected", "22": "Certificate Revoked", "23": "Rekey Approved",
    "24": "Pending for Approver",
}
ORDER_STATUS = {"1": "Order Placed", "2": "Accepted", "3": "In Progress", "4": "Rejected",
                "5": "Cancelled", "6": "Fulfilled", "7": "On Hold"}
ISSUED = {"7", "9", "15", "20", "23"}
PENDING = {"1", "2", "4", "6", "16", "17", "24"}
REVOKE_REASONS = {"1", "3", "4", "5", "9"}
REVOKE_STATUS = {"1": "Revoke Initiated", "2": "Revoked"}
DCV_METHOD_LABEL = {"1": "DNS TXT Record", "2": "HTTP File", "3": "Email"}

# Endpoints that exist on the real API but are not simulated ("The calls"):
# they answer a meta failure, not 404, because the name is known.
NOT_SIMULATED = {"GenerateOrderPrivatePKI", "GenerateOrderSMIME", "GenerateOrderSignature",
                 "SubmitDocument", "GetGroupDetails", "GetGroupDetailsV2",
                 "GetOrganizationDetails", "GetDomainDetails", "GetFieldDetails", "RejectRequest"}

# ------------------------------------------------------------------- errors

# Codes "Errors" records (live or fixture), then the simulator's own.
ERRORS = {
    "required": ("EMS-918", "{} cannot be empty"),
    "remarks": ("EMS-918", "Additional Information cannot be empty"),
    "something": ("EMS-939", "Something went Wrong"),
    "not_found": ("EMS-943", "Order not found."),
    "dcv_not_ready": ("EMS-956", "Invalid Request for this API"),
    "org": ("EMS-1073", "Invalid Organization Number"),
    "agreement_signed": ("EMS-1082", "Agreement already signed"),
    "signer_ip": ("EMS-1091", "Invalid Signer IP"),
    "duplicate_csr": ("EMS-1099", "CSR already used in another order"),
    "product": ("EMS-1162", "Invalid Product Code"),
    "csr": ("EMS-100", "Invalid CSR. {}"),
    "rate_limit": ("", "Inactive Account User."),
    "credits": ("", "Insufficient Credits"),
    "key_size": (None, "Invalid key size"),             # code from the key_size_code knob
    # Invented (EMS-SIM-*): the real answers are not recorded.
    "bad_json": ("EMS-SIM-100", "Request body is not valid JSON: {}"),
    "bad_value": ("EMS-SIM-101", "Invalid value for {}"),
    "domain": ("EMS-SIM-102", "Invalid Domain Name: {}"),
    "email": ("EMS-SIM-103", "Requestor email does not match the order"),
    "dcv_request": ("EMS-SIM-104", "Invalid DCV request: {}"),
    "dcv_no_challenge": ("EMS-SIM-105", "DCV challenge was not requested for this domain and method"),
    "not_downloadable": ("EMS-SIM-110", "Certificate is not available for download"),
    "revoke_reason": ("EMS-SIM-120", "Invalid Revoke Reason"),
    "not_revocable": ("EMS-SIM-121", "Order is not in a revocable state"),
    "already_revoked": ("EMS-SIM-122", "Certificate already revoked"),
    "not_cancellable": ("EMS-SIM-130", "Order cannot be cancelled in its current state"),
    "search": ("EMS-SIM-140", "Invalid search criteria: {}"),
    "group": ("EMS-SIM-150", "Invalid Group Number"),
    "csr_present": ("EMS-SIM-160", "CSR already submitted for this order"),
    "requestor": ("EMS-SIM-170", "Requestor email is not registered in this account"),
    "not_simulated": ("EMS-SIM-199", "Endpoint exists on CERTInext but is not simulated"),
}


class ApiError(Exception):
    """A business failure: HTTP 200 (unless http says otherwise) + meta status "0"."""

    def __init__(self, kind, *args, code=None, http=200, headers=None):
        default_code, text = ERRORS[kind]
        self.code = default_code if code is None else code
        self.message = text.format(*args) if args else text.replace(": {}", "").replace(" {}", "")
        self.http = http
        self.headers = headers or {}
        super().__init__(self.message)

    @classmethod
    def raw(cls, code, message, http=200, headers=None):
        err = cls("something", http=http, headers=headers)
        err.code, err.message = code, message
        return err


class AfterCreate(Exception):
    """Raised by GenerateOrderSSL after the order exists: answer 5xx or drop."""

    def __init__(self, action, status=500):
        self.action, self.status = action, status
        super().__init__(action)


# ----------------------------------------------------------------- scenario

DEFAULT_SCENARIO = {
    # lifecycle
    "pending_polls": 0, "pending_status_id": "24", "fail_status_id": None,
    "leaf_days": 90, "leaf_seconds": None, "wrong_key": False,
    "cert_status_after_download_9": False, "revoke_initiated_first": False,
    # DCV
    "dcv_required": False, "dcv_slot_polls": 0, "getdcv_ems956_polls": 0,
    "dcv_verify_polls": 0, "dcv_aggregate_lag_polls": 0, "dcv_fail": False,
    "dcv_cache": False, "dcv_cached_domains": [],
    # dcv_extra_domains: once a domain has been verified, TrackOrder lists this
    # many more (validated) names than the order had when it was placed
    "dcv_extra_domains": 0,
    # ordering rules
    "reject": None, "rate_limit_burst": 16, "rate_limit_window_s": 10, "credits": None,
    "key_size_code": "", "key_reject_ems939": [], "duplicate_csr_scope": "key",
    "refuse_unexplored_families": True, "organizations": ["5550004567"],
    "groups": None, "requestor_emails": None,
    # auth
    "bad_auth_code": "EMS-001", "bad_auth_http": 200, "strict_ts_skew_s": 0,
    "reject_duplicate_txn": True, "oauth_expires_in": 3600, "oauth_revoke_next": 0,
    # certificate text
    "empty_root": False, "bare_base64": False, "crlf": False,
    # listing and catalogue
    "report_max_page_size": 500, "report_empty_as_failure": False, "report_tags": False,
    "products_need_group": False,
    # faults (robustness, not fidelity)
    "http_429": None, "http_5xx": None, "order_5xx_after_create": None,
    "drop_after_create": None, "slow_ms": None, "drop_connection": None,
    "malformed_body": None, "oversized_body": None,
    # keep_alive: answers keep the connection open (HTTP/1.1 persistent), so a
    # client may reuse it; drop_after_process: the call is carried out, then
    # the connection closes without an answer (a lost answer, any endpoint)
    "keep_alive": False, "drop_after_process": None,
    # leaf_expired: the certificate issued has already expired (TrackOrder
    # shows it issued on the poll that issues it, then 12; GetCertificate
    # refuses it, or with "download" hands it out all the same)
    "leaf_expired": False,
}
# Per-order behaviour by domainName, for fleets of mixed outcomes:
# {"a.example.com": {"pending_polls": N, "fail_status_id": "18",
#                    "reject": {"code": ..., "message": ...}}}
DEFAULT_SCENARIO["domain_overrides"] = {}


class Scenario:
    """The live scenario: defaults, the --scenario file, then control updates."""

    def __init__(self, base=None):
        self.lock = threading.Lock()
        self.base = dict(DEFAULT_SCENARIO)
        if base:
            self._check(base)
            self.base.update(base)
        self.data = dict(self.base)

    @staticmethod
    def _check(update):
        if not isinstance(update, dict):
            raise ValueError("a scenario is a JSON object")
        unknown = sorted(set(update) - set(DEFAULT_SCENARIO))
        if unknown:
            raise ValueError("unknown scenario knobs: " + ", ".join(unknown))

    def merge(self, update):
        self._check(update)
        with self.lock:
            self.data.update(update)
            return dict(self.data)

    def reset(self):
        with self.lock:
            self.data = dict(self.base)
            return dict(self.data)

    def snapshot(self):
        with self.lock:
            return dict(self.data)

    def __getitem__(self, key):
        with self.lock:
            return self.data[key]

    def consume(self, knob):
        """Counts a plain-number knob down; True while it was above zero."""
        with self.lock:
            left = int(self.data.get(knob) or 0)
            if left > 0:
                self.data[knob] = left - 1
            return left > 0

    def take(self, knob, endpoint, unlimited=False):
        """The knob's settings if it applies to this endpoint now, consuming
        one from its count.  A bare number means {"count": number}."""
        with self.lock:
            value = self.data.get(knob)
            if value is None or value is False or value == 0:
                return None
            spec = dict(value) if isinstance(value, dict) else {"count": 1 if value is True else value}
            if not _endpoint_matches(spec.get("endpoints"), endpoint):
                return None
            if "count" not in spec and unlimited:
                return spec
            count = spec.get("count", 1)
            if not isinstance(count, int) or count <= 0:
                return None
            spec["count"] = count - 1
            self.data[knob] = spec if isinstance(value, dict) else count - 1
            return spec


def _endpoint_matches(endpoints, endpoint):
    if endpoints:
        return endpoint in endpoints
    return endpoint != "oauth_token"


# -------------------------------------------------------------------- state

@dataclasses.dataclass
class Dcv:
    """DCV bookkeeping of one domain of one order."""
    status: str = "0"
    method: str = ""           # method of the last GetDcv
    challenged: set = dataclasses.field(default_factory=set)   # methods GetDcv answered
    verify_poll: int = None    # TrackOrder poll count when VerifyDcv was accepted
    token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    verified_date: str = ""


@dataclasses.dataclass
class Order:
    seq: int
    request_number: str
    order_number: str          # "" for drafts
    product: Product
    body: dict                 # the orderDetails as received
    domain: str
    names: list                # domainName + additionalDomains, deduplicated
    requestor_name: str
    requestor_email: str
    created: datetime.datetime
    csr: x509.CertificateSigningRequest = None
    csr_pem: str = ""
    cert_status: str = "24"
    order_status: str = "2"
    agreement_signed: bool = True
    polls: int = 0
    ready_poll: int = 0        # poll at which the order became ready to issue
    dcv: dict = None           # domain -> Dcv, None when no DCV is needed
    dcv_slot_poll: int = None  # poll at which domainVerification appeared
    dcv_all_valid_poll: int = None
    dcv_aggregate: str = "0"
    getdcv_calls: int = 0
    cert: x509.Certificate = None
    revocation: dict = None
    revoke_poll: int = None
    forced: bool = False

    @property
    def dcv_done(self):
        return self.dcv is None or self.dcv_aggregate == "1"


class Store:
    """Orders, used keys, seen txns, OAuth tokens and statistics."""

    def __init__(self):
        self.lock = threading.RLock()
        self.orders = []
        self.by_order = {}
        self.by_request = {}
        self.used_csr = set()
        self.txns = set()
        self.tokens = {}
        self.rate_calls = []
        self.validated_domains = set()
        self.numbers = set()
        self.reset_stats()

    def reset_stats(self):
        with self.lock:
            self.calls = {}
            self.token_requests = 0
            self.rate_limited = 0
            self.last_request = {}
            self.stats_from = len(self.orders)

    def new_number(self):
        while True:
            n = str(secrets.randbelow(9 * 10 ** 9) + 10 ** 9)
            if n not in self.numbers:
                self.numbers.add(n)
                return n

    def add(self, order):
        self.orders.append(order)
        self.by_request[order.request_number] = order
        if order.order_number:
            self.by_order[order.order_number] = order

    def stats(self):
        with self.lock:
            recent = self.orders[self.stats_from:]
            return {
                "orders_placed": len(recent),
                "calls": dict(self.calls),
                "token_requests": self.token_requests,
                "rate_limited": getattr(self, "rate_limited", 0),
                "orders": [{"orderNumber": o.order_number, "requestNumber": o.request_number,
                            "domainName": o.domain, "productCode": o.product.code,
                            "status": o.cert_status, "created": _iso(o.created)} for o in recent],
                "last_request": dict(self.last_request),
            }


# ------------------------------------------------------------------ helpers

def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _date(t):
    return t.strftime("%Y-%m-%d")


def _cert_not_after(cert):
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _serial_hex(cert):
    text = format(cert.serial_number, "X")
    return text if len(text) % 2 == 0 else "0" + text


def get_obj(parent, key, label=None, required=True):
    value = parent.get(key)
    if value is None:
        if required:
            raise ApiError("required", label or key)
        return None
    if not isinstance(value, dict):
        raise ApiError("bad_value", label or key)
    return value


def get_str(parent, key, label=None, required=True, allow_empty=False, choices=None, pattern=None):
    """A string member; EMS-918 when a required one is missing or empty."""
    value = parent.get(key)
    if value is None or (value == "" and not allow_empty):
        if required:
            raise ApiError("required", label or key)
        return None
    if not isinstance(value, str):
        raise ApiError("bad_value", label or key)
    if choices is not None and value not in choices:
        raise ApiError("bad_value", label or key)
    if pattern is not None and value and not re.fullmatch(pattern, value):
        raise ApiError("bad_value", label or key)
    return value


def get_str_list(parent, key, label=None, required=True):
    value = parent.get(key)
    if value is None or value == []:
        if required:
            raise ApiError("required", label or key)
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError("bad_value", label or key)
    return value


EMAIL_RE = r"[^@\s]+@[^@\s]+\.[^@\s]+"
DIGITS_RE = r"[0-9]+"


def check_scalars(value, path="body"):
    """D5: every scalar is a string (objects and arrays may nest)."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_scalars(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_scalars(v, f"{path}[{i}]")
    elif not isinstance(value, str):
        raise ApiError("bad_value", f"{path} (scalars are JSON strings)")


_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def check_hostname(name, wildcard_ok):
    """Lower-case DNS name with >= 2 labels; "*." only leftmost and only if allowed."""
    if name != name.lower() or len(name) > 253 or name.endswith("."):
        raise ApiError("domain", name)
    labels = name.split(".")
    if labels[0] == "*":
        if not wildcard_ok:
            raise ApiError("domain", f"{name} (wildcard not allowed for this product)")
        labels = labels[1:]
    if len(labels) < 2 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise ApiError("domain", name)
    if labels[-1].isdigit():
        raise ApiError("domain", name)


def www_counterpart(name):
    return name[4:] if name.startswith("www.") else "www." + name


_PEM_CSR_RE = re.compile(
    r"-----BEGIN CERTIFICATE REQUEST-----\n((?:[A-Za-z0-9+/=]{1,76}\n)+)"
    r"-----END CERTIFICATE REQUEST-----\n?")

_CSR_SIG = {
    ("rsa", 2048): SignatureAlgorithmOID.RSA_WITH_SHA256,
    ("rsa", 3072): SignatureAlgorithmOID.RSA_WITH_SHA256,
    ("rsa", 4096): SignatureAlgorithmOID.RSA_WITH_SHA256,
    ("ec", "secp256r1"): SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    ("ec", "secp384r1"): SignatureAlgorithmOID.ECDSA_WITH_SHA384,
}


def _kind_label(kind):
    """"rsa6144", "secp521r1", "ed25519", ... for key_reject_ems939."""
    if kind[0] == "rsa":
        return f"rsa{kind[1]}"
    if kind[0] == "ec":
        return str(kind[1]).lower()
    return kind[0].lower().lstrip("_").replace("publickey", "")   # "_Ed25519PublicKey" -> "ed25519"


def parse_csr(text, scenario):
    """D9: the CSR, or an ApiError naming what is wrong with it."""
    if not _PEM_CSR_RE.fullmatch(text):
        raise ApiError("csr", "PEM armour, line breaks or base64 body not as expected")
    try:
        csr = x509.load_pem_x509_csr(text.encode())
        kind = key_kind(csr.public_key())
    except (ValueError, TypeError) as e:
        raise ApiError("csr", f"cannot be parsed ({e})")
    if kind not in _CSR_SIG:
        # Some rejected types answered EMS-939 live (which ones is open question 14).
        if _kind_label(kind) in {k.lower() for k in scenario["key_reject_ems939"]}:
            raise ApiError("something")
        raise ApiError("key_size", code=scenario["key_size_code"])
    if not csr.is_signature_valid:
        raise ApiError("csr", "signature does not verify")
    if csr.signature_algorithm_oid != _CSR_SIG[kind]:
        raise ApiError("csr", "signature algorithm not allowed for this key")
    return csr


def csr_dns_names(csr):
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    if any(not isinstance(g, x509.DNSName) for g in san):
        raise ApiError("csr", "only DNS names are allowed in subjectAltName")
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)]


def csr_common_name(csr):
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise ApiError("csr", "exactly one common name required")
    return cns[0].value


def csr_identity(csr, scope):
    if scope == "csr":
        return "csr:" + hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest()
    spki = csr.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return "key:" + hashlib.sha256(spki).hexdigest()


_BLOCKED_NETS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4")]


def check_signer_ip(text):
    """D12: IPv4 text, no loopback/private/reserved address."""
    try:
        ip = ipaddress.IPv4Address(text)
    except ValueError:
        raise ApiError("signer_ip")
    if any(ip in net for net in _BLOCKED_NETS):
        raise ApiError("signer_ip")


def check_email(value, label):
    if not re.fullmatch(EMAIL_RE, value):
        raise ApiError("bad_value", label)


# ---------------------------------------------------------------- lifecycle

class Lifecycle:
    """Moves orders along; called with the store lock held."""

    def __init__(self, sim):
        self.sim = sim

    @property
    def sc(self):
        return self.sim.scenario

    def refresh_expiry(self, o):
        if o.cert_status in ISSUED and o.cert is not None and _cert_not_after(o.cert) <= _now():
            o.cert_status = "12"

    def poll(self, o):
        """One TrackOrder poll (D14)."""
        o.polls += 1
        self.advance_revocation(o)
        self.refresh_expiry(o)
        if o.forced or o.cert_status not in PENDING:
            return
        if not o.dcv_done:
            self.advance_dcv(o)
            if o.dcv_done:
                o.ready_poll = o.polls   # issuance follows on a later poll
            return
        over = (self.sc["domain_overrides"] or {}).get(o.domain, {})
        if o.polls - o.ready_poll <= over.get("pending_polls", self.sc["pending_polls"]):
            o.cert_status = str(self.sc["pending_status_id"])
            return
        if over.get("fail_status_id", self.sc["fail_status_id"]):
            o.cert_status, o.order_status = str(over.get("fail_status_id", self.sc["fail_status_id"])), "4"
            return
        self.issue(o)

    def advance_dcv(self, o):
        if o.dcv_slot_poll is None:
            if o.polls <= self.sc["dcv_slot_polls"]:
                return
            o.dcv_slot_poll = o.polls
        fail = self.sc["dcv_fail"]
        for name, d in o.dcv.items():
            if d.status == "0" and d.verify_poll is not None \
                    and o.polls - d.verify_poll > self.sc["dcv_verify_polls"]:
                failing = fail is True or (isinstance(fail, list) and name in fail)
                d.status = "2" if failing else "1"
                d.verified_date = "" if failing else _now().strftime("%Y-%m-%d %H:%M:%S")
        states = {d.status for d in o.dcv.values()}
        if "2" in states:
            o.dcv_aggregate = "2"
        elif states == {"1"}:
            if o.dcv_all_valid_poll is None:
                o.dcv_all_valid_poll = o.polls
            if o.polls - o.dcv_all_valid_poll >= self.sc["dcv_aggregate_lag_polls"]:
                o.dcv_aggregate = "1"
                self.sim.store.validated_domains.update(o.dcv)

    def issue(self, o):
        sc = self.sc
        o.cert = self.sim.ca.issue(o.csr, days=sc["leaf_days"], seconds=sc["leaf_seconds"],
                                   dns_names=o.names, wrong_key=bool(sc["wrong_key"]),
                                   expired=bool(sc["leaf_expired"]))
        o.cert_status, o.order_status = "20", "6"

    def force(self, o, update):
        """Control API: set a state and keep it (the lifecycle stops moving it)."""
        status = update.get("certificateStatusId")
        if status is not None:
            status = str(status)
            if status not in CERT_STATUS:
                raise ValueError(f"unknown certificateStatusId {status}")
            if (status in ISSUED or status in {"22", "12"}) and o.cert is None and o.csr is not None:
                self.issue(o)
            if status == "22" and o.revocation is None:
                self.revoke_now(o, str(update.get("revokeReasonId", "4")))
            o.cert_status = status
        if "orderStatusId" in update:
            o.order_status = str(update["orderStatusId"])
        if "dcvStatus" in update and o.dcv:
            for d in o.dcv.values():
                d.status = str(update["dcvStatus"])
            o.dcv_aggregate = str(update["dcvStatus"])
        o.forced = True

    def revoke_now(self, o, reason):
        o.revocation = {"revokeRequestStatusId": "2", "revokeRequestStatus": REVOKE_STATUS["2"],
                        "revokeReasonId": reason,
                        "revokeProcessedDate": _now().strftime("%Y-%m-%dT%H:%M:%SZ")}
        o.cert_status = "22"

    def advance_revocation(self, o):
        if o.revocation and o.revocation["revokeRequestStatusId"] == "1":
            if o.polls - o.revoke_poll > int(self.sc["revoke_initiated_first"]):
                self.revoke_now(o, o.revocation["revokeReasonId"])


# --------------------------------------------------------- endpoint families

class AccountApi:
    """ValidateCredentials and GetProductDetails."""

    def __init__(self, sim):
        self.sim = sim

    def validate_credentials(self, body):
        return {}

    def get_product_details(self, body):
        details = get_obj(body, "productDetails")
        group = get_str(details, "groupNumber", required=False)
        if group is not None:
            self.sim.check_group(group)
        elif self.sim.scenario["products_need_group"]:
            return {"productDetails": []}
        categories = [("SSL/TLS Certificates", "3", [p for p in self.sim.products if p.family != "PRIVATE"]),
                      ("Private PKI", "8", [p for p in self.sim.products if p.family == "PRIVATE"])]
        return {"productDetails": [
            {"categoryName": name, "categoryID": cid, "currencyType": "USD",
             "products": [{"productCode": p.code, "productName": p.name,
                           "productTypeID": {"DV": "13", "OV": "14", "EV": "15"}.get(p.family, "41")}
                          for p in products]}
            for name, cid, products in categories]}


class OrderApi:
    """GenerateOrderSSL, SubmitCSR, AgreementAcceptance, RejectOrder."""

    def __init__(self, sim):
        self.sim = sim

    @property
    def sc(self):
        return self.sim.scenario

    # -- GenerateOrderSSL
    def generate_order_ssl(self, body):
        sim, sc = self.sim, self.sc
        sim.rate_limit()
        rejection = sc.take("reject", "GenerateOrderSSL")
        if not rejection:
            rejection = self.domain_override(body, "reject")
        if rejection:
            code = str(rejection.get("code", ""))
            known = {c: m for c, m in ERRORS.values() if c}
            raise ApiError.raw(code, str(rejection.get("message", known.get(code, "Order rejected"))))
        od = get_obj(body, "orderDetails", "Order Details")
        product = sim.product(get_str(od, "productCode", "Product Code"))
        info = get_obj(od, "additionalInformation", "Additional Information", required=False)
        if info is None or not get_str(info, "remarks", required=False):
            raise ApiError("remarks")
        get_str_list(info, "tags", required=False)
        if product.unexplored and sc["refuse_unexplored_families"]:
            raise ApiError("remarks")
        for key, choices in (("accountingModel", {"1", "2"}), ("saveAndHold", {"0", "1"}),
                             ("emailNotifications", {"0", "1"})):
            get_str(od, key, required=False, choices=choices)
        draft = od.get("saveAndHold") == "1"
        requestor = self.requestor(od)
        self.subscription(od)
        cert_info = get_obj(od, "certificateInformation", "Certificate Information")
        self.agreement(od)
        self.contact(od)
        self.delegation(od)
        self.organization(od, product, cert_info)
        names = self.domains(cert_info, product)
        csr_pem = get_str(od, "csr", "CSR", required=not draft)
        csr = self.check_csr(csr_pem, names) if csr_pem else None
        with sim.store.lock:
            if csr is not None and csr_identity(csr, sc["duplicate_csr_scope"]) in sim.store.used_csr:
                raise ApiError("duplicate_csr")
            if not draft:
                sim.spend_credit()
            order = self.create(od, product, names, requestor, csr, csr_pem, draft)
        after = sc.take("order_5xx_after_create", "GenerateOrderSSL")
        if after:
            raise AfterCreate("5xx", int(after.get("status", 500)))
        if sc.take("drop_after_create", "GenerateOrderSSL"):
            raise AfterCreate("drop")
        if draft:
            return {"orderDetails": {"requestNumber": order.request_number}}
        return {"orderDetails": {"requestNumber": order.request_number,
                                 "orderNumber": order.order_number,
                                 "trackingURL": sim.tracking_url(order)}}

    def domain_override(self, body, knob):
        od = body.get("orderDetails") if isinstance(body, dict) else None
        ci = od.get("certificateInformation") if isinstance(od, dict) else None
        domain = ci.get("domainName") if isinstance(ci, dict) else None
        return (self.sc["domain_overrides"] or {}).get(domain, {}).get(knob) if isinstance(domain, str) else None

    def requestor(self, od):
        ri = get_obj(od, "requestorInformation", "Requestor Information")
        name = get_str(ri, "requestorName", "Requestor Name")
        email = get_str(ri, "requestorEmail", "Requestor Email")
        check_email(email, "requestorEmail")
        get_str(ri, "requestorIsdCode", "Requestor ISD Code", pattern=DIGITS_RE)
        get_str(ri, "requestorMobileNumber", "Requestor Mobile Number", allow_empty=True, pattern=DIGITS_RE)
        get_str(ri, "requestorDesignation", required=False)
        registered = self.sc["requestor_emails"]
        if registered is not None and email.lower() not in {e.lower() for e in registered}:
            raise ApiError("requestor")
        return name, email

    def subscription(self, od):
        sd = get_obj(od, "subscriptionDetails", "Subscription Details")
        get_str(sd, "validity", "Validity", choices={"1", "2", "3"})
        get_str(sd, "autoRenew", "Auto Renew", choices={"0", "1"})
        get_str(sd, "renewCriteria", "Renew Criteria", choices={"30", "60"})

    def agreement(self, od):
        ad = get_obj(od, "agreementDetails", "Agreement Details")
        get_str(ad, "acceptAgreement", "Accept Agreement", choices={"1"})
        get_str(ad, "signerName", "Signer Name")
        get_str(ad, "signerPlace", "Signer Place")
        check_signer_ip(get_str(ad, "signerIP", "Signer IP"))

    def contact(self, od):
        tpc = get_obj(od, "technicalPointOfContact", required=False)
        if tpc is None:
            return
        for key in ("tpcName", "tpcEmail", "tpcIsdCode", "tpcMobileNumber"):
            get_str(tpc, key, required=False, allow_empty=True)
        if tpc.get("tpcEmail"):
            check_email(tpc["tpcEmail"], "tpcEmail")

    def delegation(self, od):
        dl = get_obj(od, "delegationInformation", required=False)
        if dl is not None:
            self.sim.check_group(get_str(dl, "groupNumber", "Group Number"))

    def organization(self, od, product, cert_info):
        org = get_obj(od, "organizationDetails", "Organization Details",
                      required=product.family in ("OV", "EV"))
        if org is None:
            return
        get_str(org, "preVetting", required=False, choices={"0", "1"})
        number = get_str(org, "organizationNumber", "Organization Number",
                         required=product.family in ("OV", "EV"))
        if number is not None and number not in self.sc["organizations"]:
            raise ApiError("org")
        if product.family == "DV":
            return
        get_str(cert_info, "locality", "Locality")
        get_str(cert_info, "postalCode", "Postal Code")
        for key in ("streetAddress", "city", "state", "country"):
            get_str(org, key, key[0].upper() + key[1:])
        if product.family == "EV":
            get_str(org, "streetAddress2", "Street Address 2")
            get_str(cert_info, "companyRegistrationNumber", "Company Registration Number")
            for block in ("contractSignerInfo", "certificateApproverInfo"):
                person = get_obj(od, block)
                for key in ("name", "email", "isdCode", "mobileNumber", "designation", "employeeID"):
                    get_str(person, key, f"{block}.{key}")
                check_email(person["email"], f"{block}.email")

    def domains(self, ci, product):
        """D10: the order's names, domainName first."""
        domain = get_str(ci, "domainName", "Domain Name")
        check_hostname(domain, product.wildcard)
        if product.wildcard and not domain.startswith("*."):
            raise ApiError("domain", f"{domain} (this product needs a *.domain name)")
        www = get_str(ci, "autoSecureWWW", required=False, choices={"0", "1"}) == "1"
        extra = get_str_list(ci, "additionalDomains", "Additional Domains", required=product.ucc) or []
        names = [domain]
        for name in extra:
            check_hostname(name, product.wildcard)
            if not product.ucc and name != domain and not (www and name == www_counterpart(domain)):
                raise ApiError("domain", f"{name} (additional domains need a UCC product)")
            if name not in names:
                names.append(name)
        if www and not domain.startswith("*.") and www_counterpart(domain) not in names:
            names.append(www_counterpart(domain))
        return names

    def check_csr(self, text, names):
        csr = parse_csr(text, self.sc)
        if csr_common_name(csr).lower() != names[0]:
            raise ApiError("csr", "common name does not match domainName")
        for name in csr_dns_names(csr):
            if name not in names:
                raise ApiError("csr", f"subjectAltName {name} is not one of the ordered domains")
        return csr

    def create(self, od, product, names, requestor, csr, csr_pem, draft):
        store = self.sim.store
        order = Order(seq=len(store.orders), request_number=store.new_number(),
                      order_number="" if draft else store.new_number(), product=product, body=od,
                      domain=names[0], names=names, requestor_name=requestor[0],
                      requestor_email=requestor[1], created=_now(), csr=csr, csr_pem=csr_pem or "")
        if draft:
            order.cert_status, order.order_status = "2", "7"
        elif self.sc["dcv_required"] and product.family == "DV":
            order.dcv = self.dcv_slots(names)
            if all(d.status == "1" for d in order.dcv.values()):
                order.dcv_aggregate = "1"    # cached DCV: straight to issuance
        if csr is not None:
            store.used_csr.add(csr_identity(csr, self.sc["duplicate_csr_scope"]))
        store.add(order)
        return order

    def dcv_slots(self, names):
        cached = set(self.sc["dcv_cached_domains"] or [])
        if self.sc["dcv_cache"]:
            cached |= self.sim.store.validated_domains
        return {n: Dcv(status="1" if n in cached else "0") for n in names}

    # -- SubmitCSR
    def submit_csr(self, body):
        od = get_obj(body, "orderDetails", "Order Details")
        number = get_str(od, "orderNumber", "Order Number")
        email = get_str(od, "requestorEmail", "Requestor Email")
        text = get_str(od, "csr", "CSR")
        with self.sim.store.lock:
            order = self.sim.store.by_order.get(number) or self.sim.store.by_request.get(number)
            if order is None:
                raise ApiError("not_found")
            self.sim.check_requestor(order, email)
            if order.csr is not None:
                raise ApiError("csr_present")
            csr = self.check_csr(text, order.names)
            ident = csr_identity(csr, self.sc["duplicate_csr_scope"])
            if ident in self.sim.store.used_csr:
                raise ApiError("duplicate_csr")
            self.sim.store.used_csr.add(ident)
            order.csr, order.csr_pem = csr, text
        return {}

    # -- AgreementAcceptance
    def agreement_acceptance(self, body):
        ad = get_obj(body, "agreementDetails", "Agreement Details")
        email = get_str(ad, "requestorEmail", "Requestor Email")
        number = get_str(ad, "orderNumber", "Order Number")
        get_str(ad, "acceptAgreement", "Accept Agreement", choices={"1"})
        get_str(ad, "signerName", "Signer Name")
        get_str(ad, "signerPlace", "Signer Place")
        check_signer_ip(get_str(ad, "signerIP", "Signer IP"))
        with self.sim.store.lock:
            order = self.sim.find_order(number)
            self.sim.check_requestor(order, email)
            if order.agreement_signed:
                raise ApiError("agreement_signed")
            order.agreement_signed = True
        return {}

    # -- RejectOrder
    def reject_order(self, body):
        od = get_obj(body, "orderDetails", "Order Details")
        number = get_str(od, "orderNumber", "Order Number")
        get_str(od, "rejectRemarks", required=False)
        with self.sim.store.lock:
            order = self.sim.find_order(number)
            if order.cert_status not in PENDING:
                raise ApiError("not_cancellable")
            order.cert_status, order.order_status = "13", "5"
        return {}


class TrackingApi:
    """TrackOrder, GetCertificate, GetOrderReport."""

    def __init__(self, sim):
        self.sim = sim

    def track_order(self, body):
        od = get_obj(body, "orderDetails", "Order Details")
        number = get_str(od, "orderNumber", "Order Number")
        with self.sim.store.lock:
            order = self.sim.find_order(number)
            self.sim.lifecycle.poll(order)
            return {"orderDetails": self.describe(order)}

    def describe(self, o):
        out = {
            "orderNumber": o.order_number,
            "trackingUrl": self.sim.tracking_url(o),
            "orderStatusId": o.order_status, "orderStatus": ORDER_STATUS.get(o.order_status, ""),
            "certificateStatusId": o.cert_status, "certificateStatus": CERT_STATUS.get(o.cert_status, ""),
            "certificateExpiryDate": _date(_cert_not_after(o.cert)) if o.cert else None,
            "requestorInformation": {"requestorName": o.requestor_name, "requestorEmail": o.requestor_email},
            "subscriberAgreement": {"status": "1" if o.agreement_signed else "0",
                                    "consentSentTo": o.requestor_email},
            "revocationDetails": dict(o.revocation) if o.revocation else None,
            "csr": o.csr_pem,
        }
        if o.dcv is not None and (o.dcv_slot_poll is not None or o.dcv_aggregate == "1"):
            dv = {"status": o.dcv_aggregate}
            for name, d in o.dcv.items():
                dv[name] = {"dcvMethod": DCV_METHOD_LABEL.get(d.method, ""), "dcvStatus": d.status,
                            "status": "1", "verifiedDate": d.verified_date, "caaStatus": "1"}
            if any(d.verify_poll is not None for d in o.dcv.values()):
                for i in range(self.sim.scenario["dcv_extra_domains"]):
                    dv[f"extra{i}.{o.domain}"] = {"dcvMethod": DCV_METHOD_LABEL["1"], "dcvStatus": "1",
                                                  "status": "1", "verifiedDate": "", "caaStatus": "1"}
            out["domainVerification"] = dv
        return out

    def get_certificate(self, body):
        sim, sc = self.sim, self.sim.scenario
        od = get_obj(body, "orderDetails", "Order Details")
        number = get_str(od, "orderNumber", "Order Number")
        email = get_str(od, "requestorEmail", "Requestor Email")
        with sim.store.lock:
            order = sim.find_order(number)
            sim.check_requestor(order, email)
            if sc["leaf_expired"] != "download":
                sim.lifecycle.refresh_expiry(order)
            if order.cert_status not in ISSUED or order.cert is None:
                raise ApiError("not_downloadable")
            details = {
                "endEntityCertificate": self.cert_text(pem(order.cert)),
                "caCertificate": self.cert_text(pem(sim.ca.intermediate)),
                "rootCertificate": "" if sc["empty_root"] else self.cert_text(pem(sim.ca.root)),
                "expiryDate": _date(_cert_not_after(order.cert)),
                "ceritficateSerialNumber": _serial_hex(order.cert),
            }
            if sc["cert_status_after_download_9"] and order.cert_status == "20":
                order.cert_status = "9"
        return {"certificateDetails": details}

    def cert_text(self, text):
        sc = self.sim.scenario
        if sc["bare_base64"]:
            text = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        if sc["crlf"]:
            text = text.replace("\n", "\r\n")
        return text

    def get_order_report(self, body):
        sc = self.sim.scenario
        crit = get_obj(body, "searchCriteria", "Search Criteria")
        page = self.positive(crit, "pageNumber")
        size = self.positive(crit, "pageSize")
        if size > int(sc["report_max_page_size"]):
            raise ApiError("search", f"pageSize above {sc['report_max_page_size']}")
        since = self.date(crit, "orderDateFrom")
        till = self.date(crit, "orderDateTill")
        group = get_str(crit, "groupNumber", required=False)
        if group is not None:
            self.sim.check_group(group)
        filters = {k: get_str(crit, k, required=False)
                   for k in ("productCode", "domainName", "orderNumber", "orderStatusId")}
        with self.sim.store.lock:
            rows = []
            for o in self.sim.store.orders:
                day = o.created.date()
                if (since and day < since) or (till and day > till):
                    continue
                self.sim.lifecycle.refresh_expiry(o)
                row = self.row(o)
                if any(v is not None and row.get(k) != v for k, v in filters.items()):
                    continue
                rows.append(row)
        if not rows and sc["report_empty_as_failure"]:
            raise ApiError("search", "no records found")
        total = len(rows)
        pages = (total + size - 1) // size
        chunk = rows[(page - 1) * size: page * size]
        return {"orderDetails": {"noOfPages": pages, "totalNoOfResults": total,
                                 "pageSize": size if total else 0, "currentPage": str(page),
                                 "ordersArray": chunk}}

    @staticmethod
    def positive(crit, key):
        text = get_str(crit, key, key, pattern=DIGITS_RE)
        if int(text) < 1:
            raise ApiError("search", f"{key} must be >= 1")
        return int(text)

    @staticmethod
    def date(crit, key):
        text = get_str(crit, key, required=False)
        if text is None:
            return None
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise ApiError("search", f"{key} must be YYYY-MM-DD")

    def row(self, o):
        org = o.body.get("organizationDetails") or {}
        group = (o.body.get("delegationInformation") or {}).get("groupNumber", "")
        issued = o.cert is not None and o.cert_status in ISSUED | {"22", "12"}
        return {
            "orderNumber": o.order_number, "requestNumber": o.request_number,
            "certificateStatusId": o.cert_status, "certificateStatus": CERT_STATUS.get(o.cert_status, ""),
            "orderStatusId": o.order_status, "orderStatus": ORDER_STATUS.get(o.order_status, ""),
            "domainName": o.domain,
            "organizationName": "Simulated Organisation" if org.get("organizationNumber") else "",
            "groupNumber": group, "productCode": o.product.code,
            "certificateSerialNumber": _serial_hex(o.cert) if issued else "",
            "certificateExpiryDate": _date(_cert_not_after(o.cert)) if issued else "",
            "issuerCA": "" if not o.order_number else
            self.sim.ca.intermediate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            "certificateTrustType": "Public", "orderDate": _date(o.created), "expiresWithin": "",
            "tags": list((o.body.get("additionalInformation") or {}).get("tags") or [])
            if self.sim.scenario["report_tags"] else [],
            "customFields": [], "countryName": "",
        }


class DcvApi:
    """GetDcv and VerifyDcv ("Domain validation")."""

    def __init__(self, sim):
        self.sim = sim

    def lookup(self, body, verify):
        dd = get_obj(body, "dcvDetails", "DCV Details")
        email = get_str(dd, "requestorEmail", "Requestor Email")
        number = get_str(dd, "orderNumber", "Order Number")
        domain = get_str(dd, "domainName", "Domain Name")
        method = get_str(dd, "dcvMethod", "DCV Method")
        if method not in DCV_METHOD_LABEL:
            raise ApiError("dcv_request", "dcvMethod must be 1, 2 or 3")
        dcv_email = get_str(dd, "dcvEmail", "DCV Email", required=verify and method == "3")
        order = self.sim.find_order(number)
        self.sim.check_requestor(order, email)
        if order.dcv is None or order.cert_status not in PENDING or order.dcv_slot_poll is None \
                or order.dcv_done:
            raise ApiError("dcv_not_ready")
        if domain not in order.dcv:
            raise ApiError("dcv_request", f"{domain} is not a domain of this order")
        return order, domain, method, dcv_email

    def get_dcv(self, body):
        with self.sim.store.lock:
            order, domain, method, _ = self.lookup(body, verify=False)
            order.getdcv_calls += 1
            if order.getdcv_calls <= self.sim.scenario["getdcv_ems956_polls"]:
                raise ApiError("dcv_not_ready")
            d = order.dcv[domain]
            d.method = method
            d.challenged.add(method)
            base = domain[2:] if domain.startswith("*.") else domain
            return {"dcvDetails": {
                "token": d.token if method == "1" else None,
                "fileName": f"{d.token[:16]}.txt" if method == "2" else None,
                "fileContent": d.token if method == "2" else None,
                "dcvEmails": [f"{box}@{base}" for box in
                              ("admin", "administrator", "hostmaster", "postmaster", "webmaster")]
                if method == "3" else None}}

    def verify_dcv(self, body):
        with self.sim.store.lock:
            order, domain, method, dcv_email = self.lookup(body, verify=True)
            d = order.dcv[domain]
            if method not in d.challenged:
                raise ApiError("dcv_no_challenge")
            if method == "3":
                base = domain[2:] if domain.startswith("*.") else domain
                if dcv_email.split("@")[-1] != base:
                    raise ApiError("dcv_request", "dcvEmail is not one of the offered addresses")
            if d.status == "0":
                d.verify_poll = order.polls
        return {}


class RevocationApi:
    """RevokeOrder ("Revocation")."""

    def __init__(self, sim):
        self.sim = sim

    def revoke_order(self, body):
        rd = get_obj(body, "revocationDetails", "Revocation Details")
        number = get_str(rd, "orderNumber", "Order Number")
        email = get_str(rd, "requestorEmail", "Requestor Email")
        reason = get_str(rd, "revokeReasonId", "Revoke Reason")
        get_str(rd, "revokeRemarks", required=False)
        if reason not in REVOKE_REASONS:
            raise ApiError("revoke_reason")
        with self.sim.store.lock:
            order = self.sim.find_order(number)
            self.sim.check_requestor(order, email)
            if order.revocation is not None:
                raise ApiError("already_revoked")
            if order.cert_status not in ISSUED:
                raise ApiError("not_revocable")
            if self.sim.scenario["revoke_initiated_first"]:
                order.revocation = {"revokeRequestStatusId": "1", "revokeRequestStatus": REVOKE_STATUS["1"],
                                    "revokeReasonId": reason, "revokeProcessedDate": ""}
                order.revoke_poll = order.polls
            else:
                self.sim.lifecycle.revoke_now(order, reason)
        return {}


# ---------------------------------------------------------------- simulator

class Simulator:
    """Shared state plus the endpoint table."""

    def __init__(self, args, scenario, access_key, oauth_secret):
        self.args = args
        self.account = args.account
        self.access_key = access_key
        self.oauth_id = args.oauth_client_id
        self.oauth_secret = oauth_secret
        self.products = CATALOGUE[args.personality]
        self.scenario = scenario
        self.store = Store()
        self.ca = SimCA(os.path.join(args.dir, "ca"), label="CERTInext")
        self.lifecycle = Lifecycle(self)
        self.base_url = ""
        account, orders = AccountApi(self), OrderApi(self)
        tracking, dcv, revocation = TrackingApi(self), DcvApi(self), RevocationApi(self)
        self.endpoints = {
            "ValidateCredentials": account.validate_credentials,
            "GetProductDetails": account.get_product_details,
            "GenerateOrderSSL": orders.generate_order_ssl,
            "SubmitCSR": orders.submit_csr,
            "AgreementAcceptance": orders.agreement_acceptance,
            "RejectOrder": orders.reject_order,
            "TrackOrder": tracking.track_order,
            "GetCertificate": tracking.get_certificate,
            "GetOrderReport": tracking.get_order_report,
            "GetDcv": dcv.get_dcv,
            "VerifyDcv": dcv.verify_dcv,
            "RevokeOrder": revocation.revoke_order,
        }

    # -- shared checks used by several families
    def product(self, code):
        for p in self.products:
            if p.code == code and p.family != "PRIVATE":
                return p
        raise ApiError("product")

    def find_order(self, number):
        order = self.store.by_order.get(number)
        if order is None:
            raise ApiError("not_found")
        return order

    def check_requestor(self, order, email):
        if email.lower() != order.requestor_email.lower():
            raise ApiError("email")

    def check_group(self, group):
        groups = self.scenario["groups"]
        if not re.fullmatch(DIGITS_RE, group) or (groups is not None and group not in groups):
            raise ApiError("group")

    def tracking_url(self, order):
        return f"{self.base_url}/track/{order.order_number}" if order.order_number else ""

    def rate_limit(self):
        """The burst-th GenerateOrderSSL within the window is refused ("Rate limit
        and retries"); refused calls count too, so hammering keeps the limit up."""
        burst = self.scenario["rate_limit_burst"]
        window = float(self.scenario["rate_limit_window_s"])
        now = time.monotonic()
        with self.store.lock:
            calls = [t for t in self.store.rate_calls if now - t < window]
            calls.append(now)
            self.store.rate_calls = calls
            if burst and len(calls) >= int(burst):
                self.store.rate_limited = getattr(self.store, "rate_limited", 0) + 1
                raise ApiError("rate_limit")

    def spend_credit(self):
        credits = self.scenario["credits"]
        if credits is None:
            return
        if int(credits) <= 0:
            raise ApiError("credits")
        self.scenario.merge({"credits": int(credits) - 1})

    # -- authentication ("Request envelope", "OAuth")
    def authenticate(self, headers, body):
        sc = self.scenario
        if self.oauth_id:
            self.check_bearer(headers.get("Authorization"))   # the gateway answers before the API
        meta = body.get("meta")
        def bad(why, http=int(sc["bad_auth_http"])):
            return ApiError.raw(str(sc["bad_auth_code"]), f"Invalid credentials: {why}", http=http)

        if not isinstance(meta, dict):
            raise bad("meta")
        if set(meta) != {"ver", "ts", "txn", "accountNumber", "authKey"} \
                or not all(isinstance(v, str) for v in meta.values()):
            raise bad("meta (exactly ver, ts, txn, accountNumber, authKey as strings)")
        if meta["ver"] != "1.0":
            raise bad("meta.ver")
        ts = self.check_ts(meta["ts"], bad)
        if not re.fullmatch(r"[0-9]{1,19}", meta["txn"]):
            raise bad("meta.txn")
        if meta["accountNumber"] != self.account:
            raise bad("meta.accountNumber")
        authorization = headers.get("Authorization")
        if self.oauth_id:
            if meta["authKey"] != "":
                raise bad("meta.authKey must be empty with OAuth", http=401)
        else:
            if authorization is not None:
                raise bad("Authorization header (not used with an access key)")
            want = hashlib.sha256((self.access_key + meta["ts"] + meta["txn"]).encode()).hexdigest()
            if not hmac.compare_digest(want.encode(), meta["authKey"].encode()):
                raise bad("authKey")
        skew = sc["strict_ts_skew_s"]
        if skew and abs((_now() - ts).total_seconds()) > float(skew):
            raise bad("meta.ts (outside the allowed clock skew)")
        with self.store.lock:
            if sc["reject_duplicate_txn"] and meta["txn"] in self.store.txns:
                raise bad("meta.txn (already used)")
            self.store.txns.add(meta["txn"])

    @staticmethod
    def check_ts(text, bad):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}", text):
            raise bad("meta.ts")
        try:
            ts = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise bad("meta.ts")
        if abs(ts.utcoffset()) > datetime.timedelta(hours=14):
            raise bad("meta.ts")
        return ts

    def check_bearer(self, authorization):
        def reject(why):
            return ApiError.raw(str(self.scenario["bad_auth_code"]), f"Invalid credentials: {why}",
                                http=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not authorization or not authorization.startswith("Bearer "):
            raise reject("Authorization (Bearer token required)")
        token = authorization[len("Bearer "):]
        with self.store.lock:
            expiry = self.store.tokens.get(token)
        if expiry is None:
            raise reject("access token (unknown)")
        if time.monotonic() >= expiry:
            raise reject("access token (expired)")
        # Revoked at the gateway before its expiry (the client cannot know):
        # the next N calls with a live token are refused and it is forgotten.
        if self.scenario.consume("oauth_revoke_next"):
            with self.store.lock:
                self.store.tokens.pop(token, None)
            raise reject("access token (revoked)")

    def issue_token(self, form):
        """The client-credentials grant ("OAuth"); returns (http status, body)."""
        if form.get("grant_type") != ["client_credentials"]:
            return 400, {"error": "unsupported_grant_type"}
        cid, secret = form.get("client_id", [""]), form.get("client_secret", [""])
        if len(cid) != 1 or len(secret) != 1 or cid[0] != self.oauth_id \
                or not hmac.compare_digest(secret[0].encode(), self.oauth_secret.encode()):
            return 401, {"error": "invalid_client"}
        lifetime = int(self.scenario["oauth_expires_in"])
        token = secrets.token_urlsafe(32)
        with self.store.lock:
            self.store.tokens[token] = time.monotonic() + lifetime
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}


# ------------------------------------------------------------------- HTTP

def _meta(txn, error=None):
    return {"ver": "1.0", "ts": _iso(_now()), "txn": txn, "status": "0" if error else "1",
            "errorCode": error.code if error else "", "errorMessage": error.message if error else ""}


def _fail(txn, code, message):
    return {"meta": _meta(txn, ApiError.raw(code, message))}


class Handler(BaseHTTPRequestHandler):
    """Routes /emSignHub-API/<Name>, /oauth/token and /_sim/...; one request per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "certinext-sim"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass   # one line per request is written by log_request_line

    def log_request_line(self, endpoint, http, status="", code=""):
        sys.stderr.write(f"certinext-sim: {self.command} {endpoint} http={http} status={status} "
                         f"code={code}\n")
        sys.stderr.flush()

    @property
    def sim(self):
        return self.server.sim

    def do_POST(self):
        self.route()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_POST

    def route(self):
        self.close_connection = not self.sim.scenario["keep_alive"]
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        try:
            if path.startswith(CONTROL_PREFIX):
                ControlApi(self).handle(path[len(CONTROL_PREFIX):])
            elif path == OAUTH_PATH and self.sim.oauth_id:
                self.oauth()
            elif path.startswith(API_PREFIX) and (path[len(API_PREFIX):] in self.sim.endpoints
                                                  or path[len(API_PREFIX):] in NOT_SIMULATED):
                self.api(path[len(API_PREFIX):], split.query)
            else:
                # An unknown endpoint name answers 404 ("Where the API is"), as do "//Name" and other paths.
                self.discard_body()
                self.send_json(404, {"error": "Not Found", "message": "No such endpoint", "statusCode": 404})
                self.log_request_line(path, 404)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            pass

    # -- body helpers
    def read_body(self, limit=MAX_REQUEST):
        if self.headers.get("Transfer-Encoding"):
            raise HttpFail(411, "chunked bodies are not accepted; send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HttpFail(411, "Content-Length required")
        if int(length) > limit:
            raise HttpFail(413, "request body too large")
        return self.rfile.read(int(length))

    def discard_body(self):
        """Read what the client sent, so closing does not turn into a reset."""
        try:
            self.read_body()
        except HttpFail:
            pass

    def send_bytes(self, status, data, ctype="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def send_json(self, status, obj, headers=None):
        self.send_bytes(status, json.dumps(obj).encode(), headers=headers)

    def drop(self):
        """Close without a response (the server closes the socket after us)."""
        self.close_connection = True
        self.wfile.flush()

    # -- fault injection (D18)
    def slow_ms(self, endpoint):
        """slow_ms is a number (every API endpoint, every time) or
        {"ms": N, "endpoints": [...], "count": N (optional: unlimited)}."""
        sc = self.sim.scenario
        value = sc["slow_ms"]
        if not value:
            return 0
        if isinstance(value, dict):
            spec = sc.take("slow_ms", endpoint, unlimited=True)
            return float(spec.get("ms", 0)) if spec else 0
        return float(value) if _endpoint_matches(None, endpoint) else 0

    def faults(self, endpoint):
        sc = self.sim.scenario
        time.sleep(self.slow_ms(endpoint) / 1000)
        if sc.take("drop_connection", endpoint):
            self.drop()
            return "dropped"
        spec = sc.take("http_429", endpoint)
        if spec:
            headers = {"Retry-After": spec["retry_after"]} if spec.get("retry_after") is not None else {}
            self.send_json(429, _fail("", "", "Too Many Requests"), headers)
            return "429"
        spec = sc.take("http_5xx", endpoint)
        if spec:
            status = int(spec.get("status", 503))
            self.send_json(status, {"error": "Server Error", "message": "simulated failure",
                                    "statusCode": status})
            return str(status)
        if sc.take("malformed_body", endpoint):
            self.send_bytes(200, b'{"meta":{"ver":"1.0","status":"1","errorCode":"",')
            return "malformed"
        spec = sc.take("oversized_body", endpoint)
        if spec:
            size = int(spec.get("bytes", 8 << 20))
            head = b'{"meta":{"ver":"1.0","status":"1","errorCode":"","errorMessage":""},"padding":"'
            tail = b'"}'
            pad = max(0, size - len(head) - len(tail))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(head) + pad + len(tail)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(head)
            chunk = b"A" * 65536
            while pad > 0:
                self.wfile.write(chunk[:pad])
                pad -= min(pad, len(chunk))
            self.wfile.write(tail)
            return "oversized"
        return None

    # -- emSignHub-API
    def api(self, name, query):
        sim = self.sim
        try:
            if self.command != "POST":
                self.discard_body()
                raise HttpFail(405, "only POST is allowed")
            raw = self.read_body()
        except HttpFail as e:
            self.send_json(e.status, _fail("", "", e.message), {"Allow": "POST"} if e.status == 405 else None)
            self.log_request_line(name, e.status)
            return
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            parsed = None
        with sim.store.lock:
            sim.store.calls[name] = sim.store.calls.get(name, 0) + 1
            sim.store.last_request[name] = parsed if parsed is not None else raw.decode("utf-8", "replace")
        fault = self.faults(name)
        if fault:
            self.log_request_line(name, fault)
            return
        txn = ""
        try:
            if query:
                raise HttpFail(400, "no query string is used by this API")
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise HttpFail(415, "Content-Type must be application/json")
            if not isinstance(parsed, dict):
                raise ApiError("bad_json", "expected a JSON object", http=400)
            meta = parsed.get("meta")
            txn = meta.get("txn", "") if isinstance(meta, dict) and isinstance(meta.get("txn"), str) else ""
            sim.authenticate(self.headers, parsed)
            check_scalars({k: v for k, v in parsed.items() if k != "meta"})
            if name in NOT_SIMULATED:
                raise ApiError("not_simulated")
            result = sim.endpoints[name](parsed)
        except HttpFail as e:
            self.send_json(e.status, _fail(txn, "", e.message))
            self.log_request_line(name, e.status, "0")
            return
        except ApiError as e:
            self.send_json(e.http, {"meta": _meta(txn, e)}, e.headers)
            self.log_request_line(name, e.http, "0", e.code)
            return
        except AfterCreate as e:
            if e.action == "drop":
                self.drop()
                self.log_request_line(name, "dropped-after-create")
            else:
                self.send_json(e.status, {"error": "Internal Server Error",
                                          "message": "simulated failure after the order was created",
                                          "statusCode": e.status})
                self.log_request_line(name, f"{e.status}-after-create")
            return
        except Exception as e:  # a simulator bug must not look like a CA answer
            sys.stderr.write(f"certinext-sim: internal error in {name}: {e!r}\n")
            self.send_json(500, {"error": "Internal Server Error", "message": f"simulator bug: {e}",
                                 "statusCode": 500})
            self.log_request_line(name, 500)
            return
        if self.sim.scenario.take("drop_after_process", name):
            self.drop()
            self.log_request_line(name, "dropped-after-process")
            return
        self.send_json(200, {"meta": _meta(txn)} | result)
        self.log_request_line(name, 200, "1", "")

    # -- OAuth token endpoint ("OAuth")
    def oauth(self):
        sim = self.sim
        try:
            raw = self.read_body()
        except HttpFail as e:
            self.send_json(e.status, {"error": "invalid_request", "error_description": e.message})
            self.log_request_line("oauth_token", e.status)
            return
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        with sim.store.lock:
            sim.store.calls["oauth_token"] = sim.store.calls.get("oauth_token", 0) + 1
            sim.store.token_requests += 1
            # Never keep the secret, even in the test statistics.
            sim.store.last_request["oauth_token"] = {
                k: ("<redacted>" if k == "client_secret" else v[0] if len(v) == 1 else v) for k, v in form.items()}
        fault = self.faults("oauth_token")
        if fault:
            self.log_request_line("oauth_token", fault)
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if self.command != "POST":
            status, body = 405, {"error": "invalid_request"}
        elif ctype != "application/x-www-form-urlencoded":
            status, body = 400, {"error": "invalid_request",
                                 "error_description": "form-encoded body required"}
        else:
            status, body = sim.issue_token(form)
        self.send_json(status, body, {"Cache-Control": "no-store"})
        self.log_request_line("oauth_token", status)


class HttpFail(Exception):
    def __init__(self, status, message):
        self.status, self.message = status, message
        super().__init__(message)


class ControlApi:
    """/_sim/*: test control, not part of CERTInext (plain JSON, no auth)."""

    def __init__(self, handler):
        self.h = handler
        self.sim = handler.sim

    def handle(self, rest):
        h, sim = self.h, self.sim
        try:
            raw = h.read_body() if h.command == "POST" else b""
            update = json.loads(raw.decode()) if raw.strip() else {}
            if h.command == "GET" and rest == "stats":
                out = sim.store.stats()
            elif h.command == "GET" and rest == "scenario":
                out = sim.scenario.snapshot()
            elif h.command == "POST" and rest == "scenario":
                out = sim.scenario.merge(update)
            elif h.command == "POST" and rest == "scenario/reset":
                out = sim.scenario.reset()
                with sim.store.lock:
                    sim.store.rate_calls = []
            elif h.command == "POST" and rest == "reset-stats":
                sim.store.reset_stats()
                out = sim.store.stats()
            elif h.command == "POST" and rest.startswith("order/"):
                out = self.force(rest[len("order/"):], update)
            else:
                h.send_json(404, {"error": "unknown control path"})
                return
        except HttpFail as e:
            h.send_json(e.status, {"error": e.message})
            return
        except (ValueError, TypeError, KeyError) as e:
            h.send_json(400, {"error": str(e)})
            return
        h.send_json(200, out)

    def force(self, number, update):
        sim = self.sim
        if not isinstance(update, dict):
            raise ValueError("a JSON object is expected")
        with sim.store.lock:
            order = sim.store.by_order.get(number) or sim.store.by_request.get(number)
            if order is None:
                raise KeyError(f"no order {number}")
            sim.lifecycle.force(order, update)
            return TrackingApi(sim).describe(order)


class Server(ThreadingHTTPServer):
    """One thread per connection; the TLS handshake runs in that thread so a
    silent client cannot block accept()."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sim, context):
        self.sim = sim
        self.ssl_context = context
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            sys.stderr.write(f"certinext-sim: TLS handshake failed: {e}\n")
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


# -------------------------------------------------------------------- main

def _read_secret(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def _write(path, text, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(description="CERTInext API v1 simulator (loopback only)")
    p.add_argument("--dir", required=True)
    p.add_argument("--account", default=DEFAULT_ACCOUNT)
    p.add_argument("--access-key-file")
    p.add_argument("--personality", choices=sorted(CATALOGUE), default="sandbox")
    p.add_argument("--scenario")
    p.add_argument("--oauth-client-id")
    p.add_argument("--oauth-client-secret-file")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    if bool(args.oauth_client_id) != bool(args.oauth_client_secret_file):
        p.error("--oauth-client-id and --oauth-client-secret-file go together")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    for stale in ("ready", "url", "oauth_url", "pid"):
        try:
            os.unlink(os.path.join(args.dir, stale))
        except FileNotFoundError:
            pass
    if args.access_key_file:
        access_key = _read_secret(args.access_key_file)
    else:
        access_key = DEFAULT_ACCESS_KEY
        _write(os.path.join(args.dir, "access.key"), access_key + "\n", 0o600)
    secret = _read_secret(args.oauth_client_secret_file) if args.oauth_client_secret_file else None
    base = None
    if args.scenario:
        with open(args.scenario, encoding="utf-8") as f:
            base = json.load(f)
    try:
        scenario = Scenario(base)
    except ValueError as e:
        sys.exit(f"certinext-sim: {args.scenario}: {e}")

    sim = Simulator(args, scenario, access_key, secret)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(sim.ca.tls_cert_path, sim.ca.tls_key_path)
    server = Server(("127.0.0.1", args.port), sim, context)
    port = server.server_address[1]
    sim.base_url = f"https://127.0.0.1:{port}"

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()

    # No trailing newline: the files are read with $(cat ...) and by programs.
    _write(os.path.join(args.dir, "url"), f"{sim.base_url}/emSignHub-API")
    if args.oauth_client_id:
        _write(os.path.join(args.dir, "oauth_url"), f"{sim.base_url}{OAUTH_PATH}")
    _write(os.path.join(args.dir, "pid"), f"{os.getpid()}\n")
    _write(os.path.join(args.dir, "ready"), "ready\n")
    sys.stderr.write(f"certinext-sim: listening on {sim.base_url} ({args.personality}, account "
                     f"{args.account}, {'oauth' if args.oauth_client_id else 'access key'})\n")
    sys.stderr.flush()
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("certinext-sim: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
