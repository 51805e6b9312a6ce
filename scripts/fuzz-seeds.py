#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Captures the fuzz seeds of the CA targets from the simulators' real answers.

    /usr/bin/python3 scripts/fuzz-seeds.py [OUT [P11ENROLL]]
        OUT: tests/fuzz/corpus; P11ENROLL: a built p11enroll (for journal seeds)

Starts tests/sim/certinext_sim.py and tests/sim/sslstore_sim.py on loopback
(HTTPS, their own CA as trust), drives every answer shape through their
scenario/control API (issued, pending, refused with each error family, paged
reports, transport faults, chains in every form) and writes each answer as a
seed, so the seeds stay true when the simulators change. A seed is one
header line, then the body exactly as received:

    HTTP/<status> <endpoint> <placement 0|1> <replay token|-> <Retry-After|-> <content type|->

(tests/fuzz/answer.h reads it). Also writes the certificate chains the CAs
sent (corpus/chain), journals of a real enrolment stopped after each state
(corpus/journal, when a built p11enroll is named and SoftHSM2 is there) and,
when swtpm and the tpm2 OpenSSL provider are there,
a TSS2 key file made by a software TPM (corpus/tss2). Seed names say what
the answer is; files of a previous run with the prefix "sim-" are replaced.
"""
import datetime
import glob
import hashlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(SRC, "tests", "fuzz", "corpus")
P11ENROLL = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
EMAIL = "pki@example.com"
ACCOUNT = "5550001234"
PARTNER = "12345678"


class Sim:
    def __init__(self, kind, work):
        self.kind = kind
        self.dir = os.path.join(work, kind)
        os.makedirs(self.dir)
        self.log = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests", "sim", kind + "_sim.py"),
                                      "--dir", self.dir, "--port", "0"],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(self.dir, "ready")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(kind + " simulator did not start")
            time.sleep(0.05)
        with open(os.path.join(self.dir, "url")) as f:
            self.url = f.read().strip()
        self.base = self.url[:-len("/emSignHub-API")] if self.url.endswith("/emSignHub-API") else self.url
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca", "root.pem"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def http(self, url, body=None, method="POST"):
        """(status, headers, raw body); None for a transport failure."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
        except Exception:  # dropped connection and the like
            return None

    def control(self, path, obj=None):
        got = self.http(f"{self.base}/_sim/{path}", obj, "GET" if obj is None else "POST")
        if not got or got[0] != 200:
            raise RuntimeError(f"{self.kind} control {path}: {got}")
        return json.loads(got[2])


def write_seed(target, name, text):
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "sim-" + name), "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())


def answer_seed(target, name, got, endpoint, place, replay="-"):
    if got is None:
        head, raw = f"MAYBE_SENT {endpoint} {int(place)} {replay} - -", b""
    else:
        status, headers, raw = got
        ctype = (headers.get("Content-Type") or "-").replace(" ", "")
        retry = (headers.get("Retry-After") or "-").replace(" ", "_")
        head = f"HTTP/{status} {endpoint} {int(place)} {replay} {retry} {ctype}"
    write_seed(target, name, head.encode() + b"\n" + raw)


def csr_pem(cn, sans=None, kind="p256"):
    key = {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
           "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
           "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
           "rsa2048": lambda: rsa.generate_private_key(65537, 2048)}[kind]()
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in (sans or [cn])]), False)
    digest = hashes.SHA384() if kind == "p384" else hashes.SHA512() if kind == "p521" else hashes.SHA256()
    return b.sign(key, digest).public_bytes(serialization.Encoding.PEM).decode()


def domain(prefix="host"):
    return f"{prefix}-{secrets.token_hex(4)}.example.net"


# ------------------------------------------------------------------ CERTInext

class CertInext:
    def __init__(self, sim):
        self.sim = sim
        with open(os.path.join(sim.dir, "access.key")) as f:
            self.key = f.read().strip()

    def meta(self, key=None):
        ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        txn = str(secrets.randbelow(9 * 10 ** 17) + 10 ** 17)
        auth = hashlib.sha256(((key or self.key) + ts + txn).encode()).hexdigest()
        return {"ver": "1.0", "ts": ts, "txn": txn, "accountNumber": ACCOUNT, "authKey": auth}

    def call(self, endpoint, payload=None, key=None):
        body = dict(payload or {})
        body["meta"] = self.meta(key)
        return self.sim.http(f"{self.sim.url}/{endpoint}", body)

    def seed(self, name, endpoint, payload=None, place=False, key=None):
        got = self.call(endpoint, payload, key)
        answer_seed("certinext", name + ".json", got, endpoint, place)
        return json.loads(got[2]) if got and got[2][:1] == b"{" else None

    def scenario(self, **knobs):
        self.sim.control("scenario/reset", {})
        if knobs:
            self.sim.control("scenario", knobs)

    def order(self, cn=None, product="842", kind="p256", sans=None, **over):
        cn = cn or domain()
        od = {
            "productCode": product, "accountingModel": "2", "saveAndHold": "0", "emailNotifications": "0",
            "requestorInformation": {"requestorName": "PKI Automation", "requestorIsdCode": "1",
                                     "requestorMobileNumber": "", "requestorEmail": EMAIL},
            "subscriptionDetails": {"validity": "1", "autoRenew": "0", "renewCriteria": "30"},
            "certificateInformation": {"domainName": cn, "additionalDomains": sans or [cn],
                                       "autoSecureWWW": "0"},
            "technicalPointOfContact": {"tpcName": "PKI Automation", "tpcEmail": EMAIL, "tpcIsdCode": "1",
                                        "tpcMobileNumber": ""},
            "csr": csr_pem(cn, sans, kind),
            "agreementDetails": {"acceptAgreement": "1", "signerName": "PKI Automation",
                                 "signerPlace": "Austin", "signerIP": "203.0.113.10"},
            "additionalInformation": {"remarks": "p11enroll:fuzz-seed", "tags": ["p11enroll:fuzz-seed"]},
        }
        od.update(over)
        return {"orderDetails": od}

    def place(self, name=None, **kw):
        body = self.order(**kw)
        got = self.call("GenerateOrderSSL", body)
        if name:
            answer_seed("certinext", name + ".json", got, "GenerateOrderSSL", True)
        try:
            return json.loads(got[2])["orderDetails"]["orderNumber"]
        except (TypeError, ValueError, KeyError):
            return None

    def track(self, name, number):
        return self.seed(name, "TrackOrder", {"orderDetails": {"orderNumber": number}})

    def certificate(self, name, number):
        out = self.seed(name, "GetCertificate", {"orderDetails": {"orderNumber": number,
                                                                   "requestorEmail": EMAIL}})
        return out

    def dcv(self, name, endpoint, number, dom, method="1"):
        return self.seed(name, endpoint, {"dcvDetails": {"requestorEmail": EMAIL, "orderNumber": number,
                                                         "domainName": dom, "dcvMethod": method}})

    def run(self):
        self.scenario()
        self.seed("validate-ok", "ValidateCredentials")
        self.seed("validate-bad-key", "ValidateCredentials", key="wrong-key")
        self.scenario(bad_auth_http=401, bad_auth_code="EMS-002")
        self.seed("validate-bad-key-401", "ValidateCredentials", key="wrong-key")
        self.scenario()
        self.seed("products", "GetProductDetails", {"productDetails": {}})
        self.seed("products-group", "GetProductDetails", {"productDetails": {"groupNumber": "1"}})
        self.seed("products-refused", "GetProductDetails")
        self.scenario(products_need_group=True)
        self.seed("products-empty", "GetProductDetails", {"productDetails": {}})

        # placements: issued, and each family of refusal
        self.scenario(pending_polls=2)
        number = self.place("placed")
        self.track("track-pending", number)
        self.track("track-pending-2", number)
        self.track("track-issued", number)
        self.certificate("certificate-pem", number)
        self.seed("track-not-found", "TrackOrder", {"orderDetails": {"orderNumber": "999999999"}})
        self.seed("certificate-not-found", "GetCertificate",
                  {"orderDetails": {"orderNumber": "999999999", "requestorEmail": EMAIL}})
        self.scenario(pending_polls=5)
        pending = self.place()
        self.certificate("certificate-not-ready", pending)
        for code, message in (("EMS-1162", "Invalid Product Code"), ("EMS-1073", "Invalid Organization"),
                              ("EMS-1091", "Invalid signer IP"), ("EMS-918", "Remarks cannot be empty"),
                              ("EMS-1099", "Duplicate CSR"), ("EMS-939", "Something went Wrong"),
                              ("EMS-943", "Order not found"), ("EMS-1082", "Agreement already accepted"),
                              ("EMS-100", "Invalid CSR"), ("", "Insufficient Credits"),
                              ("", "Inactive Account User."), ("", "Invalid key size")):
            self.scenario(reject={"code": code, "message": message, "count": 1})
            self.place("refused-" + (code or message.split()[1].lower()).lower())
        self.scenario()
        self.place("refused-signer-ip-real", agreementDetails={"acceptAgreement": "1", "signerName": "x",
                                                               "signerPlace": "x", "signerIP": "127.0.0.1"})
        self.place("refused-product-real", product="999")
        self.place("refused-organization-real", product="843", organizationNumber="1")
        self.scenario(key_reject_ems939=["secp521r1"])
        self.place("refused-key-ems939", kind="p521")
        self.scenario(credits=0)
        self.place("refused-credits-real")
        self.scenario(rate_limit_burst=1)
        self.place()
        self.place("refused-rate-limit-real")
        self.scenario()
        cn = domain("dup")
        body = self.order(cn=cn)
        self.call("GenerateOrderSSL", body)
        answer_seed("certinext", "refused-duplicate-csr-real.json", self.call("GenerateOrderSSL", body),
                    "GenerateOrderSSL", True)
        body = self.order()
        del body["orderDetails"]["csr"]
        answer_seed("certinext", "refused-field-empty.json", self.call("GenerateOrderSSL", body),
                    "GenerateOrderSSL", True)
        # transport faults
        for knob, name in (("http_429", "http-429"), ("http_5xx", "http-503"), ("malformed_body", "malformed"),
                           ("order_5xx_after_create", "placed-then-500")):
            value = {"count": 1, "retry_after": "7"} if knob == "http_429" else \
                {"count": 1, "status": 503} if knob == "http_5xx" else True if knob != "malformed_body" else 1
            self.scenario(**{knob: value})
            body = self.order()
            answer_seed("certinext", name + ".json", self.call("GenerateOrderSSL", body), "GenerateOrderSSL", True)
        self.scenario(http_5xx={"count": 1, "status": 502})
        self.track("track-http-502", number)
        self.scenario()
        answer_seed("certinext", "unknown-endpoint-404.json", self.sim.http(f"{self.sim.url}/NoSuchEndpoint",
                                                                             {"meta": self.meta()}),
                    "NoSuchEndpoint", False)

        # certificate states and text variants
        for status_id, name in (("22", "revoked"), ("12", "expired"), ("13", "failed-13"), ("5", "failed-5"),
                                ("9", "issued-9"), ("7", "issued-7")):
            n = self.place()
            self.sim.control(f"order/{n}", {"certificateStatusId": status_id})
            self.track("track-" + name, n)
        self.scenario(fail_status_id="14")
        n = self.place()
        self.track("track-failed-14", n)
        self.scenario(revoke_initiated_first=2)
        n = self.place()
        self.track("track-issued-before-revoke", n)
        self.seed("revoke-ok", "RevokeOrder", {"revocationDetails": {
            "orderNumber": n, "requestorEmail": EMAIL, "revokeReasonId": "4", "revokeRemarks": "rotated"}})
        self.track("track-revoke-initiated", n)
        self.seed("revoke-again", "RevokeOrder", {"revocationDetails": {
            "orderNumber": n, "requestorEmail": EMAIL, "revokeReasonId": "4", "revokeRemarks": "rotated"}})
        for knobs, name in (({"bare_base64": True}, "certificate-bare-base64"),
                            ({"crlf": True}, "certificate-crlf"),
                            ({"empty_root": True}, "certificate-empty-root"),
                            ({"bare_base64": True, "crlf": True, "empty_root": True}, "certificate-bare-crlf-noroot"),
                            ({"wrong_key": True}, "certificate-wrong-key"),
                            ({"cert_status_after_download_9": True}, "certificate-then-9")):
            self.scenario(**knobs)
            n = self.place(kind="p384")
            self.track("track-" + name, n)
            out = self.certificate(name, n)
            if name == "certificate-then-9":
                self.track("track-after-download-9", n)
            if name == "certificate-bare-base64":  # the leaf as sent: no armour
                write_seed("chain", "certinext-" + name + ".b64",
                           out["certificateDetails"]["endEntityCertificate"])
            if name in ("certificate-crlf", "certificate-empty-root"):
                cd = out["certificateDetails"]
                write_seed("chain", "certinext-" + name + ".pem",
                           "".join(pem_text(cd[k]) for k in ("endEntityCertificate", "caCertificate",
                                                              "rootCertificate") if cd.get(k)))
        self.scenario()
        cd = self.certificate("certificate-pem-again", number)["certificateDetails"]
        leaf, cas, root = (pem_text(cd[k]) for k in ("endEntityCertificate", "caCertificate", "rootCertificate"))
        write_seed("chain", "certinext-leaf-first.pem", leaf + cas + root)
        write_seed("chain", "certinext-root-first.pem", root + cas + leaf)
        write_seed("chain", "certinext-no-leaf.pem", cas + root)

        # DCV
        self.scenario(dcv_required=True, dcv_slot_polls=1, getdcv_ems956_polls=1)
        d1, d2 = domain("a"), domain("b")
        n = self.place(cn=d1, product="844", sans=[d1, d2])
        self.track("track-dcv-no-slot", n)
        self.dcv("dcv-ems956", "GetDcv", n, d1)
        self.track("track-dcv-pending", n)
        self.dcv("dcv-ems956-again", "GetDcv", n, d1)
        self.dcv("dcv-token", "GetDcv", n, d1)
        self.dcv("dcv-file", "GetDcv", n, d2, method="2")
        self.dcv("dcv-emails", "GetDcv", n, d2, method="3")
        self.dcv("dcv-verify", "VerifyDcv", n, d1)
        self.dcv("dcv-verify-file", "VerifyDcv", n, d2, method="2")
        self.track("track-dcv-validated", n)
        self.scenario(dcv_required=True, dcv_fail=True)
        n = self.place()
        self.track("track-dcv-slot", n)
        self.dcv("dcv-wrong-domain", "GetDcv", n, "other.example.net")
        self.track("track-dcv-failed", n)

        # reports: paged, tags, empty
        self.scenario(report_tags=True)
        for _ in range(3):
            self.place()
        first = self.seed("report-page-1", "GetOrderReport",
                          {"searchCriteria": {"pageNumber": "1", "pageSize": "2"}})
        pages = int(first.get("noOfPages") or 1)
        self.seed("report-page-2", "GetOrderReport", {"searchCriteria": {"pageNumber": "2", "pageSize": "2"}})
        self.seed(f"report-page-{pages}", "GetOrderReport",
                  {"searchCriteria": {"pageNumber": str(pages), "pageSize": "2"}})
        self.seed("report-all", "GetOrderReport", {"searchCriteria": {"pageNumber": "1", "pageSize": "500"}})
        self.scenario()
        self.seed("report-no-tags", "GetOrderReport", {"searchCriteria": {"pageNumber": "1", "pageSize": "3"}})
        self.seed("report-page-too-big", "GetOrderReport",
                  {"searchCriteria": {"pageNumber": "1", "pageSize": "501"}})
        future = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
        crit = {"pageNumber": "1", "pageSize": "10", "orderDateFrom": future, "orderDateTill": future}
        self.seed("report-empty", "GetOrderReport", {"searchCriteria": crit})
        self.scenario(report_empty_as_failure=True)
        self.seed("report-empty-as-failure", "GetOrderReport", {"searchCriteria": crit})
        self.scenario()


def pem_text(text):
    """A certificate member as PEM (the CA may send bare base64 and CRLF)."""
    text = text.replace("\r\n", "\n")
    if "BEGIN" in text:
        return text if text.endswith("\n") else text + "\n"
    body = "".join(text.split())
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(body[i:i + 64] for i in range(0, len(body), 64)) + \
        "\n-----END CERTIFICATE-----\n"


# ------------------------------------------------------------------ The SSL Store

class SslStore:
    def __init__(self, sim):
        self.sim = sim
        with open(os.path.join(sim.dir, "auth.token")) as f:
            self.token = f.read().strip()
        self.n = 0

    def auth(self, token=None):
        self.n += 1
        return {"PartnerCode": PARTNER, "AuthToken": token or self.token, "ReplayToken": f"r{self.n}",
                "UserAgent": "p11enroll-fuzz-seeds", "IsUsedForTokenSystem": False}

    def scenario(self, **knobs):
        from_sim = self.sim.control("stats").get("scenario") or {}
        reset = {k: None for k in from_sim}
        if reset:
            self.sim.control("scenario", reset)
        if knobs:
            self.sim.control("scenario", knobs)

    def call(self, path, body, name=None, place=False, token=None, flat=False, replay_in_header=None,
             keep=None):
        body = dict(body)
        a = self.auth(token)
        if flat:
            body.update({"PartnerCode": a["PartnerCode"], "AuthToken": a["AuthToken"]})
        else:
            body["AuthRequest"] = a
        got = self.sim.http(self.sim.url + path, body)
        if keep and got and got[2][:1] == b"[":
            # the first `keep` entries of a long list: the same shape, and
            # libFuzzer's input size limit follows the largest seed
            got = (got[0], got[1], json.dumps(json.loads(got[2])[:keep]).encode())
        if name:
            answer_seed("sslstore", name + ".json", got, path, place,
                        replay_in_header or ("-" if flat else a["ReplayToken"]))
        try:
            return json.loads(got[2])
        except Exception:
            return None

    def order_body(self, product="positivessl", cn=None, sans=None, **extra):
        cn = cn or domain()
        body = {"CustomOrderID": "p11e-" + secrets.token_hex(8), "ProductCode": product, "ValidityPeriod": 12,
                "ServerCount": 1, "CSR": csr_pem(cn, sans), "DomainName": cn, "WebServerType": "Other",
                "DNSNames": sans or [cn], "isCUOrder": False, "isRenewalOrder": False, "isTrialOrder": False,
                "OrganizationInfo": {"OrganizationAddress": {}}, "TSSOrganizationId": 0,
                "AdminContact": {"Email": EMAIL}, "TechnicalContact": {},
                "ApproverEmail": "admin@" + ".".join(cn.split(".")[-2:]), "ReserveSANCount": 0, "FileAuthDVIndicator": False,
                "CNAMEAuthDVIndicator": False, "HTTPSFileAuthDVIndicator": False,
                "SignatureHashAlgorithm": "PREFER_SHA2"}
        body.update(extra)
        return body

    def place(self, name=None, token=None, **kw):
        out = self.call("/rest/order/neworder", self.order_body(**kw), name, place=True, token=token)
        return str(out["TheSSLStoreOrderID"]) if out and "TheSSLStoreOrderID" in out else None

    def status(self, name, oid):
        return self.call("/rest/order/status", {"TheSSLStoreOrderID": oid}, name)

    def download(self, name, oid):
        out = self.call("/rest/order/download", {"TheSSLStoreOrderID": oid}, name)
        if out and isinstance(out.get("Certificates"), list):
            write_seed("chain", "sslstore-" + name + ".pem",
                       "".join(pem_text(c["FileContent"]) for c in out["Certificates"]))
        return out

    def run(self):
        self.scenario()
        self.call("/rest/health/validate", {}, "validate-ok", flat=True)
        self.call("/rest/health/validate", {}, "validate-bad-token", flat=True, token="wrong")
        self.call("/rest/product/query", {}, "products-first-12", keep=12)
        self.call("/rest/digicert/organizationlist", {}, "orglist")
        d = domain()
        self.call("/rest/order/approverlist", {"ProductCode": "positivessl", "DomainName": d}, "approverlist")
        self.call("/rest/order/approverlist", {"ProductCode": "digi_rapidssl", "DomainName": d},
                  "approverlist-digicert")
        self.call("/rest/order/approverlist", {"ProductCode": "nosuch", "DomainName": d}, "approverlist-refused")

        # the life of an order: Initial, Pending, Active, download, refund
        self.scenario(initial_polls=1, pending_polls=1)
        oid = self.place("neworder")
        self.status("status-initial", oid)
        self.status("status-pending", oid)
        self.status("status-active", oid)
        self.download("download", oid)
        self.call("/rest/order/status", {"CustomOrderID": "p11e-nosuch"}, "status-custom-not-found")
        self.status("status-not-found", "999999999")
        self.download("download-not-found", "999999999")
        self.call("/rest/order/status", {"TheSSLStoreOrderID": oid}, "status-replay-mismatch",
                  replay_in_header="other-replay")
        self.scenario(pending_polls=5)
        pend = self.place("neworder-pending")
        self.download("download-not-ready", pend)
        self.scenario(cancelled_after_refund=1)
        self.call("/rest/order/refundrequest", {"TheSSLStoreOrderID": pend, "RefundReason": "key rotated"},
                  "refundrequest")
        self.call("/rest/order/refundstatus", {"TheSSLStoreOrderID": pend}, "refundstatus")
        self.status("status-cancelled", pend)
        self.call("/rest/order/refundstatus", {"TheSSLStoreOrderID": pend}, "refundstatus-approved")
        self.scenario(active_immediately=True)
        self.place("neworder-active")
        self.scenario(dcv_required=True)
        oid_dcv = self.place("neworder-dcv", CNAMEAuthDVIndicator=True, ApproverEmail="")
        self.status("status-dcv-cname", oid_dcv)
        oid_dcv = self.place(FileAuthDVIndicator=True, ApproverEmail="")
        self.status("status-dcv-file", oid_dcv)

        # chains in every order the CA may send them
        for knobs, name in (({"download_order": "leaf_first"}, "download-leaf-first"),
                            ({"download_order": "leaf_last"}, "download-leaf-last"),
                            ({"download_order": "root_first", "download_root": True}, "download-root-first"),
                            ({"download_root": True}, "download-with-root"),
                            ({"download_id_as_number": True}, "download-id-number"),
                            ({"wrong_key": True}, "download-wrong-key")):
            self.scenario(**knobs)
            o = self.place()
            self.status(None, o)
            self.download(name, o)
            if name == "download-id-number":
                self.status("status-id-number", o)

        # refusals: vendor, CA, credentials, message forms
        self.scenario(vendor_reject={"after_polls": 0, "mode": "minor", "message": "Domain blocked",
                                     "code": "-9009"})
        o = self.place()
        self.status("status-vendor-rejected", o)
        self.scenario(vendor_reject={"after_polls": 0, "mode": "cancelled", "message": "Fraud check",
                                     "code": "-9010"})
        o = self.place()
        self.status("status-vendor-cancelled", o)
        self.scenario(reject={"message": "Insufficient funds", "code": "-1", "count": 1})
        self.place("refused-funds")
        self.scenario(reject={"message": "Duplicate CustomOrderID", "code": "-1", "count": 1})
        self.place("refused-duplicate")
        self.scenario(message_as_string=True)
        self.place("refused-bad-product", product="nosuch")
        self.scenario()
        self.place("refused-bad-product-list", product="nosuch")
        self.place("refused-missing-approver", ApproverEmail="")
        self.place("refused-bad-token", token="wrong")
        self.place("refused-digicert-no-org", product="digi_ssl_basic")
        self.place("refused-csr", CSR="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")

        # the small text readers (sslstore_text): dates, notes, CSRs, approvers as sent
        st = self.status(None, oid) or {}
        for key in ("CertificateStartDateInUTC", "CertificateEndDateInUTC", "OrderExpiryDateInUTC",
                    "PurchaseDate", "CertificateEndDate"):
            if isinstance(st.get(key), str) and st[key]:
                write_seed("sslstore_text", "date-" + key, st[key])
        notes = (self.status(None, o) or {}).get("OrderStatus", {}).get("AuthenticationComments")
        if notes:
            write_seed("sslstore_text", "vendor-notes", notes)
        csr = csr_pem("www.example.com", ["www.example.com", "example.com"])
        write_seed("sslstore_text", "csr-pem", csr)
        write_seed("sslstore_text", "csr-crlf", csr.replace("\n", "\r\n"))
        write_seed("sslstore_text", "csr-bare-base64", "".join(csr.splitlines()[1:-1]))
        write_seed("sslstore_text", "approvers", " Admin@Example.com, ,hostmaster@example.com ")
        write_seed("sslstore_text", "product-eo", "digi_securesite_pro_flex-EO")

        # paged query
        for _ in range(3):
            self.place()
        self.call("/rest/order/query", {"PageNumber": 1, "PageSize": 2}, "query-page-1")
        self.call("/rest/order/query", {"PageNumber": 2, "PageSize": 2}, "query-page-2")
        self.call("/rest/order/query", {}, "query-all", keep=6)
        self.call("/rest/order/query", {"PageNumber": 0}, "query-refused")
        self.call("/rest/order/query", {"PageNumber": 999, "PageSize": 100}, "query-empty")
        self.scenario(query_fail_pages=[1])
        self.call("/rest/order/query", {"PageNumber": 1, "PageSize": 2}, "query-503")

        # transport faults
        for knobs, name in (({"http_429": {"count": 1, "retry_after": 5}}, "http-429"),
                            ({"http_5xx": {"count": 1, "status": 503}}, "http-503"),
                            ({"malformed_body": 1}, "malformed"),
                            ({"order_5xx_after_create": True}, "neworder-then-500")):
            self.scenario(**knobs)
            self.place(name)
        self.scenario(http_5xx={"count": 1, "status": 500})
        self.status("status-http-500", oid)
        self.scenario()
        got = self.sim.http(self.sim.url + "/rest/order/nosuch", {"AuthRequest": self.auth()})
        answer_seed("sslstore", "unknown-path-404.json", got, "/rest/order/nosuch", False, f"r{self.n}")
        got = self.sim.http(self.sim.url + "/rest/health/status", None, "GET")
        answer_seed("sslstore", "health-status.json", got, "/rest/health/status", False)


# ------------------------------------------------------------------ journals

def journal_seeds(sim, work, p11enroll):
    """Real journals: `p11enroll enroll` against the CERTInext simulator with a
    SoftHSM2 token, stopped by P11ENROLL_FAULT after each state, then run to
    the end, and once refused."""
    module = "/usr/lib/softhsm/libsofthsm2.so"
    if not p11enroll or not os.path.exists(module) or not shutil.which("softhsm2-util"):
        print("fuzz-seeds: no p11enroll/SoftHSM2: journal seeds not captured", file=sys.stderr)
        return
    base = os.path.join(work, "journal")
    os.makedirs(os.path.join(base, "tokens"))
    conf_hsm = os.path.join(base, "softhsm2.conf")
    with open(conf_hsm, "w") as f:
        f.write(f"directories.tokendir = {base}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=conf_hsm)
    pin = os.path.join(base, "pin")
    with open(os.open(pin, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("1234\n")

    def run(name, fault=None, scenario=None, fresh=True):
        state = os.path.join(base, "state")
        if fresh:  # a new token too: the CA refuses a key it has seen (EMS-1099)
            shutil.rmtree(state, ignore_errors=True)
            shutil.rmtree(os.path.join(base, "tokens"))
            os.makedirs(os.path.join(base, "tokens"))
            subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "edge", "--pin", "1234",
                            "--so-pin", "5678"], env=env, check=True, stdout=subprocess.DEVNULL)
        sim.control("scenario/reset", {})
        if scenario:
            sim.control("scenario", scenario)
        conf = os.path.join(base, "p.conf")
        with open(conf, "w") as f:
            f.write(f"""[agent]
state_dir = {state}
wait = 20s

[ca:sim]
type = certinext
api_url = {sim.url}
account_number = {ACCOUNT}
access_key_file = {sim.dir}/access.key
requestor_name = PKI Automation
requestor_email = {EMAIL}
signer_place = Austin
signer_ip = 203.0.113.10
default_product = 842
poll_interval = 1s
ca_bundle = {sim.dir}/ca/root.pem

[cert:web]
ca = sim
key = pkcs11:token=edge;object=web?module-path={module}&pin-source=file:{pin}
key_type = ec-p256
subject = CN=www.example.com
dns = www.example.com
cert_file = {base}/tls/cert.pem
fullchain_file = {base}/tls/fullchain.pem
""")
        e = dict(env)
        if fault:
            e["P11ENROLL_FAULT"] = fault
        subprocess.run([p11enroll, "-c", conf, "enroll", "web", "--wait", "3s"], env=e,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = os.path.join(state, "web.json")
        if os.path.exists(path):
            with open(path, "rb") as f:
                write_seed("journal", name + ".json", f.read())

    for step in ("key-generating", "key-ready", "csr-ready", "order-placing", "cert-issued", "installing",
                 "installed"):
        run(step, fault=step)
    run("order-pending", scenario={"pending_polls": 100})
    run("monitoring")
    run("renew-again", fresh=False)
    run("rejected", scenario={"reject": {"code": "EMS-1162", "message": "Invalid Product Code", "count": 1}})


# ------------------------------------------------------------------ TSS2

def tss2_seeds(work):
    """A key made by a software TPM through the tpm2 provider, if both exist."""
    if not shutil.which("swtpm") or not shutil.which("openssl"):
        print("fuzz-seeds: swtpm/openssl missing: no TSS2 seed made", file=sys.stderr)
        return
    state = os.path.join(work, "tpm")
    os.makedirs(state)
    sock = os.path.join(state, "tpm.sock")
    proc = subprocess.Popen(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                             "--server", f"type=unixio,path={sock}", "--ctrl", f"type=unixio,path={sock}.ctrl",
                             "--flags", "not-need-init,startup-clear"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        env = dict(os.environ, TPM2OPENSSL_TCTI=f"swtpm:path={sock}")
        for args, name in ((["-algorithm", "EC", "-pkeyopt", "group:P-256"], "ec-p256.pem"),
                           (["-algorithm", "RSA", "-pkeyopt", "bits:2048"], "rsa-2048.pem")):
            out = os.path.join(work, name)
            r = subprocess.run(["openssl", "genpkey", "-provider", "tpm2", "-provider", "default", *args,
                                "-out", out], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if r.returncode != 0 or not os.path.exists(out):
                print("fuzz-seeds: tpm2 provider key failed: " + r.stderr.decode(errors="replace")[:200],
                      file=sys.stderr)
                return
            with open(out, "rb") as f:
                write_seed("tss2", name, f.read())
    finally:
        proc.terminate()
        proc.wait()
    # the refusal path: a key in clear
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_seed("tss2", "clear-pkcs8.pem", key)


def main():
    for old in glob.glob(os.path.join(OUT, "*", "sim-*")):
        os.unlink(old)
    work = tempfile.mkdtemp(prefix="p11e-fuzz-seeds-")
    sims = []
    try:
        sim = Sim("certinext", work)
        sims.append(sim)
        CertInext(sim).run()
        journal_seeds(sim, work, P11ENROLL)
        sim = Sim("sslstore", work)
        sims.append(sim)
        SslStore(sim).run()
        tss2_seeds(work)
    finally:
        for s in sims:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    for target in sorted(os.listdir(OUT)):
        n = len(glob.glob(os.path.join(OUT, target, "sim-*")))
        if n:
            print(f"{target}: {n} seeds from the simulators")


if __name__ == "__main__":
    main()
