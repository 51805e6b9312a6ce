#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Self-test of certinext_sim.py: starts it on loopback, talks HTTPS to it
with its root as trust, and checks the behaviours docs/protocol-certinext.md
describes plus the simulator's own decisions (certinext_sim.py's docstring).

Run: /usr/bin/python3 tests/sim/test_certinext_sim.py   (meson suite "sim")
"""
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "certinext_sim.py")
ACCOUNT = "5550001234"
KEY = "sim-access-key-0001"
EMAIL = "pki-bot@example.net"


def auth_key(access_key, ts, txn):
    """Lower-case hex SHA-256 of accessKey || ts || txn ("Request envelope")."""
    return hashlib.sha256((access_key + ts + txn).encode()).hexdigest()


def new_txn():
    return str(secrets.randbelow(9 * 10 ** 17) + 10 ** 17)


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def make_meta(access_key=KEY, account=ACCOUNT, oauth=False):
    ts, txn = now_ts(), new_txn()
    return {"ver": "1.0", "ts": ts, "txn": txn, "accountNumber": account,
            "authKey": "" if oauth else auth_key(access_key, ts, txn)}


def make_key(kind="p256"):
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "p521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind == "rsa2048":
        return rsa.generate_private_key(65537, 2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def make_csr(cn, sans=None, kind="p256", key=None, digest=None):
    key = key or make_key(kind)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans is None:
        sans = [cn]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), False)
    if kind == "ed25519":
        algorithm = None
    elif digest is not None:
        algorithm = digest
    else:
        algorithm = hashes.SHA384() if kind == "p384" else hashes.SHA512() if kind == "p521" else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def order_body(domain, csr, product="842", **over):
    od = {
        "productCode": product, "accountingModel": "2", "saveAndHold": "0", "emailNotifications": "0",
        "requestorInformation": {"requestorName": "Edge Fleet PKI", "requestorIsdCode": "1",
                                 "requestorMobileNumber": "", "requestorEmail": EMAIL},
        "subscriptionDetails": {"validity": "1", "autoRenew": "0", "renewCriteria": "30"},
        "certificateInformation": {"domainName": domain, "additionalDomains": [domain], "autoSecureWWW": "0"},
        "technicalPointOfContact": {"tpcName": "Edge Fleet PKI", "tpcEmail": EMAIL, "tpcIsdCode": "1",
                                    "tpcMobileNumber": ""},
        "csr": csr,
        "agreementDetails": {"acceptAgreement": "1", "signerName": "Edge Fleet PKI", "signerPlace": "Lisbon",
                             "signerIP": "198.51.100.23"},
        "additionalInformation": {"remarks": "Enrolled by p11enroll self-test"},
    }
    od.update(over)
    return {"orderDetails": od}


def unique_domain(prefix="host"):
    return f"{prefix}-{secrets.token_hex(4)}.example.net"


class Sim:
    """A running simulator in a temporary folder."""

    def __init__(self, *args):
        self.tmp = tempfile.TemporaryDirectory(prefix="certinext-sim-")
        self.dir = self.tmp.name
        self.log = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen(["/usr/bin/python3", SIM, "--dir", self.dir, "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(self.dir, "ready")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("simulator did not start: " + self.stderr())
            time.sleep(0.05)
        with open(os.path.join(self.dir, "url")) as f:
            self.url = f.read()
        self.base = self.url[:-len("/emSignHub-API")]
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca", "root.pem"))

    def stderr(self):
        self.log.flush()
        with open(os.path.join(self.dir, "stderr.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM; returns the exit code (the simulator must stop by itself)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        code = self.proc.returncode
        self.tmp.cleanup()
        return code

    # -- raw HTTP
    def http(self, url, data=None, headers=None, method="POST", timeout=20):
        """(status, headers, body bytes); urllib raises only for transport errors."""
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def call(self, endpoint, payload=None, meta=None, headers=None, oauth_token=None):
        body = dict(payload or {})
        body["meta"] = meta if meta is not None else make_meta(oauth=oauth_token is not None)
        h = {"Content-Type": "application/json"}
        if oauth_token:
            h["Authorization"] = "Bearer " + oauth_token
        h.update(headers or {})
        status, _, raw = self.http(f"{self.url}/{endpoint}", json.dumps(body).encode(), h)
        return status, json.loads(raw)

    def ok(self, endpoint, payload=None, **kw):
        status, out = self.call(endpoint, payload, **kw)
        assert status == 200 and out["meta"]["status"] == "1", (endpoint, status, out)
        return out

    # -- control API
    def control(self, path, obj=None):
        data = None if obj is None else json.dumps(obj).encode()
        status, _, raw = self.http(f"{self.base}/_sim/{path}", data, method="GET" if obj is None else "POST")
        assert status == 200, (path, status, raw)
        return json.loads(raw)

    def scenario(self, **knobs):
        return self.control("scenario", knobs)

    # -- order helpers
    def place(self, domain=None, kind="p256", product="842", **over):
        domain = domain or unique_domain()
        csr, key = make_csr(domain, kind=kind)
        out = self.ok("GenerateOrderSSL", order_body(domain, csr, product, **over))
        return out["orderDetails"]["orderNumber"], key, domain

    def track(self, number):
        return self.ok("TrackOrder", {"orderDetails": {"orderNumber": number}})["orderDetails"]

    def certificate(self, number):
        return self.ok("GetCertificate", {"orderDetails": {"orderNumber": number,
                                                           "requestorEmail": EMAIL}})["certificateDetails"]


def all_strings(value, allow=()):
    """Every scalar a string (null allowed), except keys listed in allow."""
    if isinstance(value, dict):
        return all(k in allow or all_strings(v, allow) for k, v in value.items())
    if isinstance(value, list):
        return all(all_strings(v, allow) for v in value)
    return value is None or isinstance(value, str)


class Base(unittest.TestCase):
    sim_args = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.sim_args)

    @classmethod
    def tearDownClass(cls):
        code = cls.sim.stop()
        if code != 0:
            raise AssertionError(f"simulator exited {code} on SIGTERM")

    def setUp(self):
        self.sim.control("scenario/reset", {})
        # Most tests place orders quickly; only the rate-limit test wants the limit.
        self.sim.scenario(rate_limit_burst=0)

    def assertFail(self, out, code, message=None, status=200, got_status=200):
        self.assertEqual(got_status, status, out)
        self.assertEqual(out["meta"]["status"], "0", out)
        self.assertEqual(out["meta"]["errorCode"], code, out)
        if message is not None:
            self.assertIn(message, out["meta"]["errorMessage"], out)


class TestAuth(Base):
    def test_vectors_of_the_notes(self):
        self.assertEqual(auth_key("demo-access-key-123", "2026-05-12T09:41:07+00:00", "482913657120394857"),
                         "d6200a2f0218247d48333c7456ba1db949f632c8e6937b07ed626f7f93afaf78")
        self.assertEqual(auth_key("Zx9-Example-Key", "2026-05-12T15:11:07+05:30", "7305518842019934"),
                         "94cb8a66386c06a0eca3af3fac854f98610cf377b65f00f2e30c742d4ead35c3")
        mac = hmac.new(b"demo-access-key-123", b"2026-05-12T09:41:07+00:00482913657120394857",
                       hashlib.sha256).hexdigest()
        self.assertTrue(mac.startswith("3f5570") and mac.endswith("0ac7"))

    def wrong(self, meta):
        status, out = self.sim.call("ValidateCredentials", meta=meta)
        self.assertFail(out, "EMS-001", got_status=status)
        self.assertEqual(out["meta"]["txn"], meta["txn"] if isinstance(meta.get("txn"), str) else "")

    def test_good_key_and_txn_echo(self):
        meta = make_meta()
        out = self.sim.ok("ValidateCredentials", meta=meta)
        self.assertEqual(out["meta"]["txn"], meta["txn"])
        self.assertEqual(out["meta"]["errorCode"], "")
        # +05:30 offsets are fine too ("Request envelope")
        ts = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=5, minutes=30))) \
            .strftime("%Y-%m-%dT%H:%M:%S+05:30")
        txn = new_txn()
        self.sim.ok("ValidateCredentials", meta={"ver": "1.0", "ts": ts, "txn": txn, "accountNumber": ACCOUNT,
                                                 "authKey": auth_key(KEY, ts, txn)})

    def test_wrong_variants_refused(self):
        def variant(fn):
            meta = make_meta()
            meta["authKey"] = fn(meta)
            self.wrong(meta)
        message = lambda m: (KEY + m["ts"] + m["txn"]).encode()  # noqa: E731
        variant(lambda m: hmac.new(KEY.encode(), (m["ts"] + m["txn"]).encode(), hashlib.sha256).hexdigest())
        variant(lambda m: hmac.new(KEY.encode(), message(m), hashlib.sha256).hexdigest())
        variant(lambda m: hashlib.sha256(message(m)).hexdigest().upper())
        variant(lambda m: base64.b64encode(hashlib.sha256(message(m)).digest()).decode())
        variant(lambda m: hashlib.sha256((m["ts"] + m["txn"] + KEY).encode()).hexdigest())
        variant(lambda m: hashlib.sha256((KEY + ACCOUNT + m["ts"] + m["txn"]).encode()).hexdigest())
        variant(lambda m: auth_key("another-key", m["ts"], m["txn"]))

    def test_meta_rules(self):
        meta = make_meta()
        meta["ver"] = "1.1"
        self.wrong(meta)
        meta = make_meta(account="5550009999")
        self.wrong(meta)
        ts, txn = now_ts().replace("+00:00", "Z"), new_txn()
        self.wrong({"ver": "1.0", "ts": ts, "txn": txn, "accountNumber": ACCOUNT, "authKey": auth_key(KEY, ts, txn)})
        ts, txn = now_ts(), "a1b2c3d4e5"
        self.wrong({"ver": "1.0", "ts": ts, "txn": txn, "accountNumber": ACCOUNT, "authKey": auth_key(KEY, ts, txn)})
        meta = make_meta()
        del meta["ver"]
        self.wrong(meta)
        meta = make_meta()
        meta["extra"] = "x"
        self.wrong(meta)
        # a repeated txn is refused even with a correct hash (reject_duplicate_txn)
        meta = make_meta()
        self.sim.ok("ValidateCredentials", meta=meta)
        self.wrong(meta)
        # access-key mode sends no Authorization header ("OAuth")
        status, out = self.sim.call("ValidateCredentials", headers={"Authorization": "Bearer x"})
        self.assertFail(out, "EMS-001", got_status=status)

    def test_configurable_bad_auth(self):
        self.sim.scenario(bad_auth_code="EMS-777", bad_auth_http=401)
        meta = make_meta()
        meta["authKey"] = "0" * 64
        status, out = self.sim.call("ValidateCredentials", meta=meta)
        self.assertFail(out, "EMS-777", status=401, got_status=status)

    def test_clock_skew_switch(self):
        old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)) \
            .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        txn = new_txn()
        meta = {"ver": "1.0", "ts": old, "txn": txn, "accountNumber": ACCOUNT, "authKey": auth_key(KEY, old, txn)}
        self.sim.ok("ValidateCredentials", meta=dict(meta))
        self.sim.scenario(strict_ts_skew_s=300)
        meta["txn"] = new_txn()
        meta["authKey"] = auth_key(KEY, old, meta["txn"])
        self.wrong(meta)

    def test_transport_rules(self):
        status, _, _ = self.sim.http(f"{self.sim.url}/CreateProduct", b"{}", {"Content-Type": "application/json"})
        self.assertEqual(status, 404)
        status, _, _ = self.sim.http(f"{self.sim.url}//TrackOrder", b"{}", {"Content-Type": "application/json"})
        self.assertEqual(status, 404)
        status, _, _ = self.sim.http(f"{self.sim.url}/trackorder", b"{}", {"Content-Type": "application/json"})
        self.assertEqual(status, 404)
        status, headers, _ = self.sim.http(f"{self.sim.url}/TrackOrder", method="GET")
        self.assertEqual(status, 405)
        body = json.dumps({"meta": make_meta()}).encode()
        status, _, _ = self.sim.http(f"{self.sim.url}/ValidateCredentials", body, {"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, _, _ = self.sim.http(f"{self.sim.url}/ValidateCredentials", b"{nope",
                                     {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        # a known endpoint that is not simulated is not a 404
        status, out = self.sim.call("GetFieldDetails", {"productDetails": {"productCode": "842"}})
        self.assertFail(out, "EMS-SIM-199", got_status=status)


class TestOrdering(Base):
    def test_dv_order_issued_with_real_chain(self):
        domain = unique_domain("shop")
        csr, key = make_csr(domain)
        out = self.sim.ok("GenerateOrderSSL", order_body(domain, csr))
        od = out["orderDetails"]
        self.assertRegex(od["orderNumber"], r"^[1-9][0-9]{9}$")
        self.assertRegex(od["requestNumber"], r"^[1-9][0-9]{9}$")
        self.assertTrue(od["trackingURL"].endswith(od["orderNumber"]))
        self.assertTrue(all_strings(out))
        track = self.sim.track(od["orderNumber"])
        self.assertTrue(all_strings(track))
        self.assertEqual(track["certificateStatusId"], "20")
        self.assertEqual(track["subscriberAgreement"]["status"], "1")
        self.assertIsNone(track["revocationDetails"])
        cd = self.sim.certificate(od["orderNumber"])
        self.assertTrue(all_strings(cd))
        leaf = x509.load_pem_x509_certificate(cd["endEntityCertificate"].encode())
        inter = x509.load_pem_x509_certificate(cd["caCertificate"].encode())
        root = x509.load_pem_x509_certificate(cd["rootCertificate"].encode())
        with open(os.path.join(self.sim.dir, "ca", "root.pem"), "rb") as f:
            self.assertEqual(root, x509.load_pem_x509_certificate(f.read()))
        inter.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
        root.public_key().verify(inter.signature, inter.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        self.assertEqual(leaf.public_key().public_bytes(serialization.Encoding.DER, spki),
                         key.public_key().public_bytes(serialization.Encoding.DER, spki))
        serial = format(leaf.serial_number, "X")
        self.assertEqual(cd["ceritficateSerialNumber"], serial if len(serial) % 2 == 0 else "0" + serial)
        self.assertEqual(cd["expiryDate"], leaf.not_valid_after.strftime("%Y-%m-%d"))
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), [domain])
        self.assertEqual(self.sim.track(od["orderNumber"])["certificateStatusId"], "20")

    def test_rsa_2048_and_p384(self):
        number, key, _ = self.sim.place(kind="rsa2048")
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        leaf = x509.load_pem_x509_certificate(self.sim.certificate(number)["endEntityCertificate"].encode())
        self.assertEqual(leaf.public_key().key_size, 2048)
        number, _, _ = self.sim.place(kind="p384")
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")

    def test_pending_for_n_polls(self):
        self.sim.scenario(pending_polls=3)
        number, _, _ = self.sim.place()
        for _ in range(3):
            t = self.sim.track(number)
            self.assertEqual((t["certificateStatusId"], t["certificateStatus"]), ("24", "Pending for Approver"))
            status, out = self.sim.call("GetCertificate", {"orderDetails": {"orderNumber": number,
                                                                            "requestorEmail": EMAIL}})
            self.assertFail(out, "EMS-SIM-110", got_status=status)
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        self.sim.scenario(pending_polls=1, pending_status_id="16")
        number, _, _ = self.sim.place()
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "16")
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")

    def test_failure_status(self):
        self.sim.scenario(fail_status_id="14")
        number, _, _ = self.sim.place()
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "14")

    def order_fails(self, body, code, message=None):
        status, out = self.sim.call("GenerateOrderSSL", body)
        self.assertFail(out, code, message, got_status=status)
        return out

    def test_ems_codes(self):
        domain = unique_domain()
        csr, _ = make_csr(domain)
        self.order_fails(order_body(domain, csr, product="999"), "EMS-1162", "Invalid Product Code")
        self.order_fails(order_body(domain, csr, product="149"), "EMS-1162")     # Private PKI
        body = order_body(domain, csr)
        del body["orderDetails"]["additionalInformation"]
        self.order_fails(body, "EMS-918", "Additional Information cannot be empty")
        body = order_body(domain, csr)
        body["orderDetails"]["additionalInformation"]["remarks"] = ""
        self.order_fails(body, "EMS-918", "Additional Information cannot be empty")
        body = order_body(domain, csr)
        body["orderDetails"]["agreementDetails"]["signerIP"] = "127.0.0.1"
        self.order_fails(body, "EMS-1091", "Invalid Signer IP")
        body["orderDetails"]["agreementDetails"]["signerIP"] = "10.1.2.3"
        self.order_fails(body, "EMS-1091")
        # unknown order number and a request number both answer EMS-943
        status, out = self.sim.call("TrackOrder", {"orderDetails": {"orderNumber": "1234567890"}})
        self.assertFail(out, "EMS-943", got_status=status)
        out = self.sim.ok("GenerateOrderSSL", order_body(domain, csr))
        status, again = self.sim.call("TrackOrder", {"orderDetails": {
            "orderNumber": out["orderDetails"]["requestNumber"]}})
        self.assertFail(again, "EMS-943", got_status=status)
        # the same CSR again, and the same key in a fresh CSR
        self.order_fails(order_body(domain, csr), "EMS-1099")
        _, key = make_csr("x.example.net")
        d2 = unique_domain()
        first, _ = make_csr(d2, key=key)
        self.sim.ok("GenerateOrderSSL", order_body(d2, first))
        d3 = unique_domain()
        second, _ = make_csr(d3, key=key)
        self.order_fails(order_body(d3, second), "EMS-1099")

    def test_ov_ev_organisation(self):
        domain = unique_domain("ov")
        csr, _ = make_csr(domain)
        ov = order_body(domain, csr, product="846",
                        organizationDetails={"preVetting": "1", "organizationNumber": "5550009999",
                                             "streetAddress": "1 Main St", "city": "Austin", "state": "TX",
                                             "country": "US"})
        ov["orderDetails"]["certificateInformation"].update(locality="Austin", postalCode="78701")
        self.order_fails(ov, "EMS-1073", "Invalid Organization Number")
        ov["orderDetails"]["organizationDetails"]["organizationNumber"] = "5550004567"
        del ov["orderDetails"]["certificateInformation"]["postalCode"]
        self.order_fails(ov, "EMS-918", "Postal Code cannot be empty")
        ov["orderDetails"]["certificateInformation"]["postalCode"] = "78701"
        number = self.sim.ok("GenerateOrderSSL", ov)["orderDetails"]["orderNumber"]
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        # EV needs more: the first missing member is named
        domain = unique_domain("ev")
        csr, _ = make_csr(domain)
        ev = order_body(domain, csr, product="850", organizationDetails=dict(ov["orderDetails"]["organizationDetails"]))
        ev["orderDetails"]["certificateInformation"].update(locality="Austin", postalCode="78701")
        self.order_fails(ev, "EMS-918", "Street Address 2 cannot be empty")
        # OV without organizationDetails at all
        domain = unique_domain("ov")
        csr, _ = make_csr(domain)
        self.order_fails(order_body(domain, csr, product="846"), "EMS-918", "Organization Details")

    def test_key_types(self):
        for kind in ("p521", "ed25519"):
            domain = unique_domain(kind)
            csr, _ = make_csr(domain, kind=kind)
            out = self.order_fails(order_body(domain, csr), "", "Invalid key size")
            self.assertEqual(out["meta"]["errorMessage"], "Invalid key size")
        self.sim.scenario(key_size_code="EMS-1234", key_reject_ems939=["ed25519"])
        domain = unique_domain()
        csr, _ = make_csr(domain, kind="ed25519")
        self.order_fails(order_body(domain, csr), "EMS-939", "Something went Wrong")
        csr, _ = make_csr(domain, kind="p521")
        self.order_fails(order_body(domain, csr), "EMS-1234", "Invalid key size")
        # P-256 signed with SHA-384 is refused (project policy: SHA-256 for P-256)
        csr, _ = make_csr(domain, digest=hashes.SHA384())
        self.order_fails(order_body(domain, csr), "EMS-100", "signature algorithm")

    def test_field_rules(self):
        domain = unique_domain()
        csr, _ = make_csr(domain)
        body = order_body(domain, csr)
        body["orderDetails"]["subscriptionDetails"]["validity"] = 1       # a number, not a string
        self.order_fails(body, "EMS-SIM-101")
        self.order_fails(order_body("other.example.net", csr), "EMS-100", "common name")
        body = order_body(domain, csr)
        body["orderDetails"]["csr"] = csr.replace("\n", "\r\n")
        self.order_fails(body, "EMS-100")
        body = order_body(domain, csr)
        body["orderDetails"]["certificateInformation"]["additionalDomains"] = [domain, "api.example.net"]
        self.order_fails(body, "EMS-SIM-102", "UCC")
        body = order_body(domain, csr)
        del body["orderDetails"]["requestorInformation"]["requestorEmail"]
        self.order_fails(body, "EMS-918", "Requestor Email cannot be empty")
        # wildcard rules
        wc = "*." + unique_domain("wc")
        wcsr, _ = make_csr(wc)
        self.order_fails(order_body(wc, wcsr, product="842"), "EMS-SIM-102", "wildcard")
        self.order_fails(order_body(domain, csr, product="843"), "EMS-SIM-102")
        number = self.sim.ok("GenerateOrderSSL", order_body(wc, wcsr, product="843"))["orderDetails"]["orderNumber"]
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        # UCC needs additionalDomains; extra names there are then fine
        d1, d2 = unique_domain("a"), unique_domain("b")
        ucsr, _ = make_csr(d1, sans=[d1, d2])
        body = order_body(d1, ucsr, product="844")
        del body["orderDetails"]["certificateInformation"]["additionalDomains"]
        self.order_fails(body, "EMS-918", "Additional Domains")
        body["orderDetails"]["certificateInformation"]["additionalDomains"] = [d1, d2]
        number = self.sim.ok("GenerateOrderSSL", body)["orderDetails"]["orderNumber"]
        self.sim.track(number)
        leaf = x509.load_pem_x509_certificate(self.sim.certificate(number)["endEntityCertificate"].encode())
        self.assertEqual(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                         .value.get_values_for_type(x509.DNSName), [d1, d2])
        # wildcard UCC failed live with EMS-918 (unexplored family)
        self.order_fails(order_body(wc, wcsr, product="845"), "EMS-918")

    def test_rate_limit(self):
        self.sim.scenario(rate_limit_burst=16)
        results = []
        for _ in range(16):
            domain = unique_domain("burst")
            csr, _ = make_csr(domain)
            status, out = self.sim.call("GenerateOrderSSL", order_body(domain, csr))
            results.append((status, out["meta"]["status"]))
        self.assertEqual(results[:15], [(200, "1")] * 15)
        self.assertEqual(results[15], (200, "0"))
        self.assertFail(out, "", "Inactive Account User.")
        self.sim.ok("ValidateCredentials")

    def test_credits(self):
        self.sim.scenario(credits=1)
        self.sim.place()
        domain = unique_domain()
        csr, _ = make_csr(domain)
        self.order_fails(order_body(domain, csr), "", "Insufficient Credits")

    def test_reject_knob(self):
        self.sim.scenario(reject={"code": "EMS-1162", "message": "Invalid Product Code"})
        domain = unique_domain()
        csr, _ = make_csr(domain)
        self.order_fails(order_body(domain, csr), "EMS-1162", "Invalid Product Code")
        self.sim.ok("GenerateOrderSSL", order_body(domain, csr))     # only the next one

    def test_draft(self):
        domain = unique_domain("draft")
        csr, _ = make_csr(domain)
        out = self.sim.ok("GenerateOrderSSL", order_body(domain, csr, saveAndHold="1"))
        self.assertEqual(list(out["orderDetails"]), ["requestNumber"])
        status, out2 = self.sim.call("TrackOrder", {"orderDetails": {"orderNumber": out["orderDetails"]["requestNumber"]}})
        self.assertFail(out2, "EMS-943", got_status=status)
        report = self.sim.ok("GetOrderReport", {"searchCriteria": {"pageNumber": "1", "pageSize": "500"}})
        rows = [r for r in report["orderDetails"]["ordersArray"] if r["requestNumber"] == out["orderDetails"]["requestNumber"]]
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["orderNumber"], rows[0]["orderStatus"], rows[0]["certificateStatus"]),
                         ("", "On Hold", "Pending for Approver"))

    def test_agreement_and_reject_order(self):
        number, _, _ = self.sim.place()
        status, out = self.sim.call("AgreementAcceptance", {"agreementDetails": {
            "requestorEmail": EMAIL, "orderNumber": number, "acceptAgreement": "1", "signerName": "X",
            "signerPlace": "Lisbon", "signerIP": "203.0.113.9"}})
        self.assertFail(out, "EMS-1082", got_status=status)
        self.sim.scenario(pending_polls=5)
        number, _, _ = self.sim.place()
        self.sim.ok("RejectOrder", {"orderDetails": {"orderNumber": number, "rejectRemarks": "superseded"}})
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "13")


class TestFaults(Base):
    def test_429_and_5xx(self):
        self.sim.scenario(http_429={"count": 1, "retry_after": 7, "endpoints": ["TrackOrder"]})
        number, _, _ = self.sim.place()
        status, headers, _ = self.sim.http(f"{self.sim.url}/TrackOrder", json.dumps(
            {"meta": make_meta(), "orderDetails": {"orderNumber": number}}).encode(),
            {"Content-Type": "application/json"})
        self.assertEqual((status, headers["Retry-After"]), (429, "7"))
        self.sim.track(number)
        self.sim.scenario(http_5xx={"count": 2, "status": 503})
        for _ in range(2):
            status, _ = self.sim.call("ValidateCredentials")
            self.assertEqual(status, 503)
        self.sim.ok("ValidateCredentials")

    def test_unknown_outcome_creates_exactly_one_order(self):
        self.sim.control("reset-stats", {})
        self.sim.scenario(order_5xx_after_create=1)
        domain = unique_domain("unknown")
        csr, _ = make_csr(domain)
        status, out = self.sim.call("GenerateOrderSSL", order_body(domain, csr))
        self.assertEqual(status, 500)
        stats = self.sim.control("stats")
        self.assertEqual(stats["orders_placed"], 1)
        self.assertEqual(stats["calls"]["GenerateOrderSSL"], 1)
        self.assertEqual(stats["orders"][0]["domainName"], domain)
        self.assertEqual(stats["last_request"]["GenerateOrderSSL"]["orderDetails"]["csr"], csr)
        # a blind retry of the same CSR is a duplicate
        status, out = self.sim.call("GenerateOrderSSL", order_body(domain, csr))
        self.assertFail(out, "EMS-1099", got_status=status)
        self.assertEqual(self.sim.control("stats")["orders_placed"], 1)
        # drop after create: no answer at all, but the order exists
        self.sim.scenario(drop_after_create=1)
        with self.assertRaises((urllib.error.URLError, http.client.HTTPException, ConnectionError, ssl.SSLError)):
            self.sim.place()
        self.assertEqual(self.sim.control("stats")["orders_placed"], 2)

    def test_drop_malformed_oversized_slow(self):
        self.sim.scenario(drop_connection={"count": 1, "endpoints": ["ValidateCredentials"]})
        with self.assertRaises((urllib.error.URLError, http.client.HTTPException, ConnectionError, ssl.SSLError)):
            self.sim.call("ValidateCredentials")
        self.sim.ok("ValidateCredentials")
        self.sim.scenario(malformed_body={"count": 1})
        status, _, raw = self.sim.http(f"{self.sim.url}/ValidateCredentials",
                                       json.dumps({"meta": make_meta()}).encode(),
                                       {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(raw)
        self.sim.scenario(oversized_body={"count": 1, "bytes": 3 << 20})
        status, _, raw = self.sim.http(f"{self.sim.url}/ValidateCredentials",
                                       json.dumps({"meta": make_meta()}).encode(),
                                       {"Content-Type": "application/json"})
        self.assertEqual((status, len(raw)), (200, 3 << 20))
        self.sim.scenario(slow_ms={"ms": 400, "endpoints": ["ValidateCredentials"], "count": 1})
        start = time.monotonic()
        self.sim.ok("ValidateCredentials")
        self.assertGreaterEqual(time.monotonic() - start, 0.39)
        # the control API is not blocked by a slow answer (threaded server)
        self.sim.scenario(slow_ms={"ms": 1500, "endpoints": ["ValidateCredentials"], "count": 1})
        import threading
        t = threading.Thread(target=lambda: self.sim.ok("ValidateCredentials"))
        t.start()
        time.sleep(0.2)
        start = time.monotonic()
        self.sim.control("stats")
        self.assertLess(time.monotonic() - start, 1.0)
        t.join()

    def test_lost_answer_and_keep_alive(self):
        number, _, _ = self.sim.place()
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        # drop_after_process: carried out (GetCertificate 20 -> 9), answer lost
        self.sim.scenario(drop_after_process={"count": 1, "endpoints": ["GetCertificate"]},
                          cert_status_after_download_9=True)
        with self.assertRaises((urllib.error.URLError, http.client.HTTPException, ConnectionError, ssl.SSLError)):
            self.sim.certificate(number)
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "9")
        self.assertIn("dropped-after-process", self.sim.stderr())
        # keep_alive: no "Connection: close", a second request on the same connection
        self.sim.scenario(keep_alive=True)
        conn = http.client.HTTPSConnection(self.sim.base.split("//")[1], context=self.sim.ctx, timeout=10)
        for _ in range(2):
            conn.request("POST", "/emSignHub-API/ValidateCredentials", json.dumps({"meta": make_meta()}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertNotEqual((r.getheader("Connection") or "").lower(), "close")
            r.read()
        conn.close()

    def test_leaf_expired(self):
        self.sim.scenario(leaf_expired=True)
        number, _, _ = self.sim.place()
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        status, out = self.sim.call("GetCertificate", {"orderDetails": {"orderNumber": number,
                                                                         "requestorEmail": EMAIL}})
        self.assertEqual(out["meta"]["status"], "0", out)
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "12")
        self.sim.scenario(leaf_expired="download")
        number, _, _ = self.sim.place()
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        leaf = x509.load_pem_x509_certificate(self.sim.certificate(number)["endEntityCertificate"].encode())
        self.assertLess(leaf.not_valid_after_utc if hasattr(leaf, "not_valid_after_utc")
                        else leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc),
                        datetime.datetime.now(datetime.timezone.utc))

    def test_certificate_text_variants(self):
        self.sim.scenario(bare_base64=True, crlf=True, empty_root=True, cert_status_after_download_9=True,
                          wrong_key=True)
        number, key, _ = self.sim.place()
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        cd = self.sim.certificate(number)
        self.assertEqual(cd["rootCertificate"], "")
        self.assertNotIn("BEGIN", cd["endEntityCertificate"])
        leaf = x509.load_der_x509_certificate(base64.b64decode(cd["endEntityCertificate"]))
        self.assertNotEqual(leaf.public_key().public_numbers(), key.public_key().public_numbers())
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "9")
        self.sim.scenario(bare_base64=False)
        cd = self.sim.certificate(number)
        self.assertIn("-----\r\n", cd["caCertificate"])

    def test_short_lived_leaf_expires(self):
        self.sim.scenario(leaf_seconds=1)
        number, _, _ = self.sim.place()
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")
        time.sleep(1.2)
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "12")


class TestDcv(Base):
    def dcv(self, endpoint, number, domain, method="1", **extra):
        return self.sim.call(endpoint, {"dcvDetails": {"requestorEmail": EMAIL, "orderNumber": number,
                                                       "domainName": domain, "dcvMethod": method, **extra}})

    def test_dns_flow(self):
        self.sim.scenario(dcv_required=True, dcv_slot_polls=1, getdcv_ems956_polls=1)
        d1, d2 = unique_domain("a"), unique_domain("b")
        csr, _ = make_csr(d1, sans=[d1, d2])
        body = order_body(d1, csr, product="844")
        body["orderDetails"]["certificateInformation"]["additionalDomains"] = [d1, d2]
        number = self.sim.ok("GenerateOrderSSL", body)["orderDetails"]["orderNumber"]
        t = self.sim.track(number)
        self.assertEqual(t["certificateStatusId"], "24")
        self.assertNotIn("domainVerification", t)
        status, out = self.dcv("GetDcv", number, d1)
        self.assertFail(out, "EMS-956", got_status=status)                 # slot not there yet
        t = self.sim.track(number)
        dv = t["domainVerification"]
        self.assertEqual((dv["status"], dv[d1]["dcvStatus"], dv[d2]["dcvStatus"]), ("0", "0", "0"))
        status, out = self.dcv("GetDcv", number, d1)
        self.assertFail(out, "EMS-956", got_status=status)                 # the EMS-956 window
        out = self.dcv("GetDcv", number, d1)[1]
        self.assertEqual(out["meta"]["status"], "1")
        self.assertRegex(out["dcvDetails"]["token"], r"^[0-9a-f]{32}$")
        self.assertIsNone(out["dcvDetails"]["fileName"])
        # VerifyDcv without GetDcv for that domain does not validate it
        status, out = self.dcv("VerifyDcv", number, d2)
        self.assertFail(out, "EMS-SIM-105", got_status=status)
        http_out = self.dcv("GetDcv", number, d2, method="2")[1]
        self.assertTrue(http_out["dcvDetails"]["fileName"].endswith(".txt"))
        self.assertEqual(self.dcv("VerifyDcv", number, d1)[1]["meta"]["status"], "1")
        self.assertEqual(self.dcv("VerifyDcv", number, d2, method="2")[1]["meta"]["status"], "1")
        t = self.sim.track(number)
        dv = t["domainVerification"]
        self.assertEqual((dv["status"], dv[d1]["dcvStatus"], dv[d1]["dcvMethod"]), ("1", "1", "DNS TXT Record"))
        self.assertEqual(t["certificateStatusId"], "24")
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "20")

    def test_dcv_failure_and_wrong_requests(self):
        self.sim.scenario(dcv_required=True, dcv_fail=True)
        number, _, domain = self.sim.place()
        self.sim.track(number)
        status, out = self.dcv("GetDcv", number, "other.example.net")
        self.assertFail(out, "EMS-SIM-104", got_status=status)
        status, out = self.sim.call("GetDcv", {"dcvDetails": {"requestorEmail": "x@example.org",
                                                              "orderNumber": number, "domainName": domain,
                                                              "dcvMethod": "1"}})
        self.assertFail(out, "EMS-SIM-103", got_status=status)
        mails = self.dcv("GetDcv", number, domain, method="3")[1]["dcvDetails"]["dcvEmails"]
        self.assertIn(f"admin@{domain}", mails)
        self.assertEqual(self.dcv("VerifyDcv", number, domain, method="3", dcvEmail=mails[0])[1]["meta"]["status"], "1")
        t = self.sim.track(number)
        self.assertEqual((t["domainVerification"]["status"], t["domainVerification"][domain]["dcvStatus"]), ("2", "2"))
        self.assertEqual(self.sim.track(number)["certificateStatusId"], "24")

    def test_cached_dcv(self):
        self.sim.scenario(dcv_required=True, dcv_cached_domains=["cached.example.net"])
        number, _, _ = self.sim.place(domain="cached.example.net")
        t = self.sim.track(number)
        self.assertEqual((t["certificateStatusId"], t["domainVerification"]["status"]), ("20", "1"))


class TestRevocationAndReport(Base):
    def revoke(self, number, reason):
        return self.sim.call("RevokeOrder", {"revocationDetails": {
            "orderNumber": number, "requestorEmail": EMAIL, "revokeReasonId": reason,
            "revokeRemarks": "key rotated by p11enroll"}})

    def test_revoke(self):
        self.sim.scenario(pending_polls=1)
        number, _, _ = self.sim.place()
        status, out = self.revoke(number, "4")
        self.assertFail(out, "EMS-SIM-121", got_status=status)          # not issued yet
        self.sim.track(number)
        self.sim.track(number)
        for reason in ("0", "2", "6", "10"):
            status, out = self.revoke(number, reason)
            self.assertFail(out, "EMS-SIM-120", got_status=status)
        self.assertEqual(self.revoke(number, "4")[1]["meta"]["status"], "1")
        t = self.sim.track(number)
        self.assertEqual(t["certificateStatusId"], "22")
        rd = t["revocationDetails"]
        self.assertEqual((rd["revokeRequestStatusId"], rd["revokeReasonId"]), ("2", "4"))
        self.assertTrue(rd["revokeProcessedDate"])
        status, out = self.revoke(number, "4")
        self.assertFail(out, "EMS-SIM-122", "already revoked", got_status=status)
        status, out = self.sim.call("GetCertificate", {"orderDetails": {"orderNumber": number, "requestorEmail": EMAIL}})
        self.assertFail(out, "EMS-SIM-110", got_status=status)

    def test_revoke_initiated_first(self):
        self.sim.scenario(revoke_initiated_first=1)
        number, _, _ = self.sim.place()
        self.sim.track(number)
        self.assertEqual(self.revoke(number, "1")[1]["meta"]["status"], "1")
        t = self.sim.track(number)
        self.assertEqual((t["certificateStatusId"], t["revocationDetails"]["revokeRequestStatusId"]), ("20", "1"))
        t = self.sim.track(number)
        self.assertEqual((t["certificateStatusId"], t["revocationDetails"]["revokeRequestStatusId"]), ("22", "2"))

    def test_order_report_paging(self):
        mine = set()
        for _ in range(3):
            number, _, _ = self.sim.place()
            self.sim.track(number)
            mine.add(number)
        first = self.sim.ok("GetOrderReport", {"searchCriteria": {"pageNumber": "1", "pageSize": "2"}})
        od = first["orderDetails"]
        self.assertIsInstance(od["noOfPages"], int)
        self.assertIsInstance(od["totalNoOfResults"], int)
        self.assertIsInstance(od["pageSize"], int)
        self.assertEqual(od["currentPage"], "1")
        total = od["totalNoOfResults"]
        self.assertEqual(od["noOfPages"], (total + 1) // 2)
        rows = []
        for page in range(1, od["noOfPages"] + 1):
            out = self.sim.ok("GetOrderReport", {"searchCriteria": {"pageNumber": str(page), "pageSize": "2"}})
            self.assertEqual(out["orderDetails"]["currentPage"], str(page))
            self.assertTrue(all_strings(out["orderDetails"]["ordersArray"]))
            rows += out["orderDetails"]["ordersArray"]
        self.assertEqual(len(rows), total)
        self.assertEqual(len({r["requestNumber"] for r in rows}), total)
        by_number = {r["orderNumber"]: r for r in rows}
        for number in mine:
            self.assertEqual(by_number[number]["certificateStatusId"], "20")
            self.assertRegex(by_number[number]["certificateSerialNumber"], r"^[0-9A-F]+$")
            self.assertNotIn("endEntityCertificate", by_number[number])
        today = datetime.datetime.now(datetime.timezone.utc).date()
        since = self.sim.ok("GetOrderReport", {"searchCriteria": {
            "orderDateFrom": today.isoformat(), "pageNumber": "1", "pageSize": "500"}})
        self.assertEqual(since["orderDetails"]["totalNoOfResults"], total)
        empty = self.sim.ok("GetOrderReport", {"searchCriteria": {
            "orderDateFrom": (today + datetime.timedelta(days=1)).isoformat(), "pageNumber": "1", "pageSize": "100"}})
        self.assertEqual(empty["orderDetails"], {"noOfPages": 0, "totalNoOfResults": 0, "pageSize": 0,
                                                 "currentPage": "1", "ordersArray": []})
        status, out = self.sim.call("GetOrderReport", {"searchCriteria": {"pageNumber": "1", "pageSize": "501"}})
        self.assertFail(out, "EMS-SIM-140", got_status=status)
        status, out = self.sim.call("GetOrderReport", {"searchCriteria": {"pageNumber": 1, "pageSize": "10"}})
        self.assertFail(out, "EMS-SIM-101", got_status=status)
        status, out = self.sim.call("GetOrderReport", {"searchCriteria": {
            "orderDateFrom": today.isoformat() + "T00:00:00Z", "pageNumber": "1", "pageSize": "10"}})
        self.assertFail(out, "EMS-SIM-140", got_status=status)

    def test_products_and_control(self):
        out = self.sim.ok("GetProductDetails", {"productDetails": {}})
        cats = {c["categoryName"]: c for c in out["productDetails"]}
        ssl_products = {p["productCode"]: p["productName"] for p in cats["SSL/TLS Certificates"]["products"]}
        self.assertTrue(ssl_products["842"].startswith("DV SSL"))
        self.assertIn("149", [p["productCode"] for p in cats["Private PKI"]["products"]])
        self.assertTrue(all_strings(out))
        self.sim.scenario(products_need_group=True)
        self.assertEqual(self.sim.ok("GetProductDetails", {"productDetails": {}})["productDetails"], [])
        self.assertTrue(self.sim.ok("GetProductDetails", {"productDetails": {"groupNumber": "5550009876"}})
                        ["productDetails"])
        # forcing a state through the control API
        self.sim.scenario(pending_polls=10)
        number, _, _ = self.sim.place()
        forced = self.sim.control(f"order/{number}", {"certificateStatusId": "22"})
        self.assertEqual(forced["certificateStatusId"], "22")
        self.assertEqual(self.sim.track(number)["revocationDetails"]["revokeRequestStatusId"], "2")
        stats = self.sim.control("stats")
        self.assertIn(number, [o["orderNumber"] for o in stats["orders"]])
        self.assertGreaterEqual(stats["calls"]["TrackOrder"], 1)
        self.sim.control("reset-stats", {})
        self.assertEqual(self.sim.control("stats")["orders_placed"], 0)
        status, _, _ = self.sim.http(f"{self.sim.base}/_sim/scenario", b'{"no_such_knob": 1}')
        self.assertEqual(status, 400)


class TestProductionOAuth(Base):
    """Production personality, own access key file, OAuth mode."""

    @classmethod
    def setUpClass(cls):
        cls.keydir = tempfile.TemporaryDirectory()
        key_file = os.path.join(cls.keydir.name, "key")
        secret_file = os.path.join(cls.keydir.name, "secret")
        with open(key_file, "w") as f:
            f.write("unused-in-oauth\n")
        with open(secret_file, "w") as f:
            f.write("s3cret-value\n")
        cls.sim_args = ("--personality", "production", "--access-key-file", key_file,
                        "--oauth-client-id", "client-one", "--oauth-client-secret-file", secret_file,
                        "--account", "5550007777")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.keydir.cleanup()

    def token(self, secret="s3cret-value", content_type="application/x-www-form-urlencoded"):
        with open(os.path.join(self.sim.dir, "oauth_url")) as f:
            url = f.read()
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "client-one",
                                       "client_secret": secret}).encode()
        status, _, raw = self.sim.http(url, form, {"Content-Type": content_type})
        return status, json.loads(raw)

    def call(self, endpoint, payload=None, token=None, auth_key=""):
        meta = make_meta(account="5550007777", oauth=True)
        meta["authKey"] = auth_key
        return self.sim.call(endpoint, payload, meta=meta, oauth_token=token)

    def test_oauth_token_and_expiry(self):
        status, tok = self.token()
        self.assertEqual(status, 200)
        self.assertEqual(tok["token_type"], "Bearer")
        self.assertIsInstance(tok["expires_in"], int)
        status, out = self.call("ValidateCredentials", token=tok["access_token"])
        self.assertEqual((status, out["meta"]["status"]), (200, "1"))
        status, out = self.call("ValidateCredentials")
        self.assertFail(out, "EMS-001", status=401, got_status=status)
        status, out = self.call("ValidateCredentials", token="not-a-token")
        self.assertFail(out, "EMS-001", status=401, got_status=status)
        status, out = self.call("ValidateCredentials", token=tok["access_token"], auth_key="ab" * 32)
        self.assertFail(out, "EMS-001", status=401, got_status=status)
        self.assertEqual(self.token(secret="wrong")[0], 401)
        self.assertEqual(self.token(content_type="application/json")[0], 400)
        self.sim.scenario(oauth_expires_in=1)
        status, tok = self.token()
        self.assertEqual(tok["expires_in"], 1)
        time.sleep(1.1)
        status, out = self.call("ValidateCredentials", token=tok["access_token"])
        self.assertFail(out, "EMS-001", "expired", status=401, got_status=status)
        stats = self.sim.control("stats")
        self.assertGreaterEqual(stats["token_requests"], 4)
        self.assertEqual(stats["last_request"]["oauth_token"]["client_secret"], "<redacted>")

    def test_production_catalogue(self):
        status, tok = self.token()
        domain = unique_domain()
        csr, _ = make_csr(domain)
        # 842 is OV in production: a DV-style body lacks the organisation
        status, out = self.call("GenerateOrderSSL", order_body(domain, csr, product="842"), token=tok["access_token"])
        self.assertFail(out, "EMS-918", "Organization Details", got_status=status)
        status, out = self.call("GenerateOrderSSL", order_body(domain, csr, product="850"), token=tok["access_token"])
        self.assertFail(out, "EMS-1162", got_status=status)
        status, out = self.call("GenerateOrderSSL", order_body(domain, csr, product="838"), token=tok["access_token"])
        self.assertEqual(out["meta"]["status"], "1", out)

    def test_files(self):
        self.assertFalse(os.path.exists(os.path.join(self.sim.dir, "access.key")))
        with open(os.path.join(self.sim.dir, "pid")) as f:
            self.assertEqual(int(f.read()), self.sim.proc.pid)
        self.assertRegex(self.sim.url, r"^https://127\.0\.0\.1:[0-9]+/emSignHub-API$")


class TestDefaultFiles(unittest.TestCase):
    def test_default_access_key_file_and_sigterm(self):
        sim = Sim()
        try:
            path = os.path.join(sim.dir, "access.key")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            with open(path) as f:
                self.assertEqual(f.read().strip(), KEY)
            self.assertFalse(os.path.exists(os.path.join(sim.dir, "oauth_url")))
            self.assertNotIn(KEY, sim.stderr())
        finally:
            self.assertEqual(sim.stop(), 0)


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
