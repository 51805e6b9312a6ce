#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Self-test of sslstore_sim.py: starts it on loopback in a temporary folder
and talks to it over HTTPS the way a client would (urllib + ssl)."""
import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True          # keep the source tree clean
sys.path.insert(0, HERE)
import sslstore_sim  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

PARTNER = "12345678"
TOKEN = "sim-auth-token-0001"
AUTH = {"PartnerCode": PARTNER, "AuthToken": TOKEN, "ReplayToken": "selftest-1", "UserAgent": "selftest",
        "IsUsedForTokenSystem": False}

OV_ORG = {"OrganizationName": "Example Widgets Ltd",
          "OrganizationAddress": {"AddressLine1": "12 Harbour Road", "Region": "Kent", "PostalCode": "CT1 1AA",
                                  "Country": "GB", "Phone": "+44 1227 000000", "LocalityName": "Canterbury"}}
DIGI_ADMIN = {"FirstName": "Dana", "LastName": "Rivera", "Phone": "+1 217 555 0101",
              "Email": "dana.rivera@example.com", "Title": "IT Director"}

_KEYS = {}


def make_key(kind):
    if kind not in _KEYS:
        _KEYS[kind] = {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
                       "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
                       "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
                       "rsa2048": lambda: rsa.generate_private_key(65537, 2048)}[kind]()
    return _KEYS[kind]


def make_csr(cn, sans=(), kind="p256", fresh=False):
    key = make_key(kind) if not fresh else ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    csr = b.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class SimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sslstore-sim-")
        cls.log = open(os.path.join(cls.dir, "stderr.log"), "w+")
        cls.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "sslstore_sim.py"),
                                     "--dir", cls.dir, "--port", "0"], stderr=cls.log)
        for _ in range(400):
            if os.path.exists(os.path.join(cls.dir, "ready")):
                break
            if cls.proc.poll() is not None:
                raise RuntimeError("simulator died: " + open(cls.log.name).read())
            time.sleep(0.05)
        else:
            raise RuntimeError("simulator did not start")
        with open(os.path.join(cls.dir, "url")) as f:
            cls.url = f.read().strip()
        cls.ctx = ssl.create_default_context(cafile=os.path.join(cls.dir, "ca", "root.pem"))

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tearDown(self):
        self.control("/_sim/scenario", {k: None for k in sslstore_sim.KNOBS})

    # ---- plumbing

    def raw(self, path, body=None, method="POST", headers=None):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        h = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def call(self, path, body=None, auth=True, method="POST", headers=None):
        body = dict(body or {})
        if auth:
            body.setdefault("AuthRequest", AUTH)
        status, hdrs, data = self.raw(path, body, method, headers)
        return status, json.loads(data)

    def ok(self, path, body=None):
        status, obj = self.call(path, body)
        self.assertEqual(status, 200, obj)
        if isinstance(obj, list):
            if not obj:
                return obj
            ar = obj[0]["AuthResponse"]
        else:
            ar = obj.get("AuthResponse", obj)
        self.assertFalse(ar["isError"], ar)
        self.assertIsNone(ar["Message"])
        return obj

    def refused(self, path, body, fragment=None, auth=True):
        status, obj = self.call(path, body, auth=auth)
        self.assertEqual(status, 200, obj)
        ar = obj[0]["AuthResponse"] if isinstance(obj, list) else obj.get("AuthResponse", obj)
        self.assertTrue(ar["isError"], obj)
        self.assertIsInstance(ar["Message"], list)
        self.assertGreaterEqual(len(ar["Message"]), 1)
        if fragment:
            self.assertIn(fragment.lower(), ar["Message"][0].lower())
        return obj

    def control(self, path, body=None):
        status, _, data = self.raw(path, body if body is not None else {}, "POST" if body is not None else "GET")
        self.assertEqual(status, 200, data)
        return json.loads(data)

    def stats(self):
        status, _, data = self.raw("/_sim/stats", None, "GET")
        return json.loads(data)

    def order_body(self, product="positivessl", cn=None, sans=None, kind="p256", **extra):
        cn = cn or f"{uuid.uuid4().hex[:8]}.example.com"
        csr, key = make_csr(cn, sans or [cn], kind)
        body = {"CustomOrderID": str(uuid.uuid4()), "ProductCode": product, "ValidityPeriod": 12,
                "ServerCount": 1, "CSR": csr, "DomainName": cn, "WebServerType": "Other",
                "DNSNames": sans or [cn], "isCUOrder": False, "isRenewalOrder": False, "isTrialOrder": False,
                "OrganizationInfo": {"OrganizationAddress": {}}, "TSSOrganizationId": 0,
                "AdminContact": {"Email": "pki@example.com"}, "TechnicalContact": {},
                "ApproverEmail": "admin@example.com", "ReserveSANCount": 0, "FileAuthDVIndicator": False,
                "CNAMEAuthDVIndicator": False, "HTTPSFileAuthDVIndicator": False,
                "SignatureHashAlgorithm": "PREFER_SHA2"}
        body.update(extra)
        body["_key"] = key
        return body

    def place(self, body):
        key = body.pop("_key", None)
        obj = self.ok("/rest/order/neworder", body)
        return obj, key

    def issue(self, oid):
        """Poll until Active (default scenario: the first status poll)."""
        for _ in range(5):
            st = self.ok("/rest/order/status", {"TheSSLStoreOrderID": oid})
            if st["OrderStatus"]["MajorStatus"] == "Active" and st["OrderStatus"]["MinorStatus"] == "":
                return st
        self.fail(f"order {oid} not issued: {st['OrderStatus']}")

    def leaf_of(self, download, key):
        certs = [x509.load_pem_x509_certificate(c["FileContent"].encode()) for c in download["Certificates"]]
        leaves = [c for c in certs if spki(c.public_key()) == spki(key.public_key())]
        self.assertEqual(len(leaves), 1)
        return leaves[0], certs

    # ---- tests

    def test_auth_bad_credentials(self):
        before = self.stats()["orders_placed"]
        body = self.order_body()
        body.pop("_key")
        bad = dict(AUTH, AuthToken="wrong-token")
        obj = self.refused("/rest/order/neworder", dict(body, AuthRequest=bad), "invalid")
        self.assertEqual(obj["AuthResponse"]["ReplayToken"], "selftest-1")
        self.refused("/rest/order/neworder", body, "AuthRequest", auth=False)
        self.refused("/rest/order/neworder", dict(body, AuthRequest={"PartnerCode": PARTNER}))
        self.refused("/rest/order/neworder", dict(body, AuthRequest=dict(AUTH, PartnerCode=12345678)))
        # Credentials anywhere but the body are refused, even when correct.
        status, obj = self.call(f"/rest/order/status?PartnerCode={PARTNER}&AuthToken={TOKEN}",
                                {"TheSSLStoreOrderID": "1"})
        self.assertTrue(obj["AuthResponse"]["isError"])
        status, obj = self.call("/rest/order/status", {"TheSSLStoreOrderID": "1"},
                                headers={"Authorization": "Bearer " + TOKEN})
        self.assertIn("header", obj["AuthResponse"]["Message"][0])
        # Query answers an array even for auth errors; approverlist keeps its list.
        obj = self.refused("/rest/order/query", {"AuthRequest": bad, "PageNumber": 1, "PageSize": 10})
        self.assertEqual(len(obj), 1)
        obj = self.refused("/rest/order/approverlist", {"AuthRequest": bad, "ProductCode": "positivessl",
                                                        "DomainName": "www.example.com"})
        self.assertEqual(obj["ApproverEmailList"], [])
        # Flat endpoint: credentials at the top level, flat answer.
        st, obj = self.call("/rest/health/validate", {"PartnerCode": PARTNER, "AuthToken": "nope"}, auth=False)
        self.assertTrue(obj["isError"])
        self.assertEqual(self.stats()["orders_placed"], before)
        with open(os.path.join(self.dir, "stderr.log")) as f:
            self.assertNotIn(TOKEN, f.read())
        self.assertNotIn(TOKEN, json.dumps(self.stats()))
        self.assertEqual(os.stat(os.path.join(self.dir, "auth.token")).st_mode & 0o777, 0o600)

    def test_health_products_organisations(self):
        status, _, data = self.raw("/rest/health/status/", None, "GET")
        self.assertEqual(status, 200)
        self.assertFalse(json.loads(data)["isError"])
        st, obj = self.call("/rest/health/validate/", {"PartnerCode": PARTNER, "AuthToken": TOKEN}, auth=False)
        self.assertFalse(obj["isError"])
        self.assertNotIn("AuthResponse", obj)
        self.assertEqual(self.raw("/rest/order/status", None, "GET")[0], 405)
        self.assertEqual(self.raw("/rest/order/nosuch", {"AuthRequest": AUTH})[0], 404)
        products = self.ok("/rest/product/query", {"ProductCode": "", "ProductType": 0})
        codes = {p["ProductCode"]: p for p in products}
        self.assertIn("positivessl", codes)
        self.assertIn(72, [pi["NumberOfMonths"] for pi in codes["digi_securesite_flex"]["PricingInfo"]])
        orgs = self.ok("/rest/digicert/organizationlist", {"PartnerCode": PARTNER, "AuthToken": TOKEN})
        statuses = {o["Status"] for o in orgs["OrganizationList"]}
        self.assertIn("active", statuses)
        self.assertTrue(statuses - {"active"})
        self.ok("/rest/digicert/organizationlist", {})        # wrapped form too
        # Wrong content type and broken JSON: 400 with an isError body.
        status, _, data = self.raw("/rest/order/status", b"{}", headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 400)
        status, _, data = self.raw("/rest/order/status", b"{not json")
        self.assertEqual(status, 400)
        self.assertTrue(json.loads(data)["AuthResponse"]["isError"])

    def test_approverlist(self):
        obj = self.ok("/rest/order/approverlist/", {"ProductCode": "digi_sslwebserver_flex-EO",
                                                    "DomainName": "*.shop.Example.org"})
        self.assertIn("admin@example.org", obj["ApproverEmailList"])
        self.assertEqual(obj["baseDomainName"], "example.org")
        obj = self.refused("/rest/order/approverlist", {"ProductCode": "nosuch", "DomainName": "example.org"})
        self.assertEqual(obj["ApproverEmailList"], [])

    def run_family(self, body, kind=None):
        obj, key = self.place(body)
        self.assertTrue(obj["TheSSLStoreOrderID"].isdigit())
        self.assertEqual(obj["OrderStatus"]["MajorStatus"], "Pending")
        self.assertEqual(obj["CustomOrderID"], body["CustomOrderID"])
        self.assertEqual(obj["VendorOrderID"], "")
        for k in ("AdminContact", "TechnicalContact", "ProductCode", "ApproverEmail", "WebServerType",
                  "Validity", "ServerCount", "SignatureHashAlgorithm", "CommonName", "PartnerOrderID",
                  "OrderExpiryDateInUTC"):
            self.assertIn(k, obj)
        self.refused("/rest/order/download", {"TheSSLStoreOrderID": obj["TheSSLStoreOrderID"]}, "not issued")
        st = self.issue(obj["TheSSLStoreOrderID"])
        self.assertTrue(st["SerialNumber"])
        dl = self.ok("/rest/order/download", {"TheSSLStoreOrderID": obj["TheSSLStoreOrderID"]})
        leaf, certs = self.leaf_of(dl, key)
        self.assertEqual(format(leaf.serial_number, "X"), st["SerialNumber"])
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(set(names.get_values_for_type(x509.DNSName)), set(st["DNSNames"].split(",")))
        return obj, key, dl

    def test_family_sectigo_dv_rsa(self):
        body = self.order_body("positivessl", kind="rsa2048")
        self.run_family(body)

    def test_family_sectigo_ov(self):
        self.run_family(self.order_body("sectigoovssl", OrganizationInfo=OV_ORG))
        body = self.order_body("sectigoovssl")
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "OrganizationName")

    def test_family_sectigo_ev(self):
        org = dict(OV_ORG, JurisdictionCountry="GB")
        self.run_family(self.order_body("positiveevssl", OrganizationInfo=org))
        body = self.order_body("sectigoevssl", OrganizationInfo=OV_ORG)
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "JurisdictionCountry")
        body = self.order_body("sectigoevmdc", OrganizationInfo=dict(org, JurisdictionCountry="Great Britain"))
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "two-letter")

    def test_family_digicert_ov_ev(self):
        cn = "secure.example.com"
        self.run_family(self.order_body("digi_sslwebserver_flex", cn=cn, sans=[cn, "login.example.com"],
                                        OrganizationInfo=OV_ORG, AdminContact=DIGI_ADMIN))
        self.run_family(self.order_body("digi_securesite_ev_flex", cn=cn, sans=[cn],
                                        OrganizationInfo=OV_ORG, AdminContact=DIGI_ADMIN, ValidityPeriod=72))
        no_title = {k: v for k, v in DIGI_ADMIN.items() if k != "Title"}
        body = self.order_body("digi_securesite_ev_flex", OrganizationInfo=OV_ORG, AdminContact=no_title)
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "AdminContact.Title")
        no_city = {"OrganizationName": "X", "OrganizationAddress": {
            k: v for k, v in OV_ORG["OrganizationAddress"].items() if k != "LocalityName"}}
        body = self.order_body("digi_truebizid_flex", OrganizationInfo=no_city, AdminContact=DIGI_ADMIN)
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "LocalityName")
        body = self.order_body("digi_sslwebserver_flex", OrganizationInfo=OV_ORG, AdminContact=DIGI_ADMIN,
                               DNSNames=[])
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "DNSNames")

    def test_family_digicert_eo(self):
        orgs = self.ok("/rest/digicert/organizationlist", {"PartnerCode": PARTNER, "AuthToken": TOKEN})
        active = [o for o in orgs["OrganizationList"] if o["Status"] == "active"][0]
        inactive = [o for o in orgs["OrganizationList"] if o["Status"] != "active"][0]
        body = self.order_body("digi_sslwebserver_flex", TSSOrganizationId=active["TSSOrganizationId"],
                               AdminContact={}, ApproverEmail=None)
        obj, _, _ = self.run_family(body)
        self.assertEqual(obj["TSSOrganizationId"], active["TSSOrganizationId"])
        for code, tss, frag in (("digi_sslwebserver_flex-EO", active["TSSOrganizationId"], "-EO"),
                                ("digi_sslwebserver_flex", inactive["TSSOrganizationId"], "not active"),
                                ("digi_sslwebserver_flex", 999, "TSSOrganizationId"),
                                ("digi_securesite_pro_flex", 0, "TSSOrganizationId"),
                                ("positivessl", active["TSSOrganizationId"], "TSSOrganizationId")):
            body = self.order_body(code, TSSOrganizationId=tss, AdminContact={}, ApproverEmail=None)
            body.pop("_key")
            self.refused("/rest/order/neworder", body, frag)

    def test_family_digicert_dv(self):
        body = self.order_body("digi_rapidssl", AdminContact={}, TechnicalContact={"Email": "tech@example.com"})
        self.run_family(body)
        body = self.order_body("digi_rapidssl", AdminContact={"Email": "pki@example.com"})
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "TechnicalContact.Email")

    def test_csr_forms_and_key_types(self):
        body = self.order_body("positivessl", kind="p521")
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "not accepted")
        body = self.order_body("positivessl")
        body.pop("_key")
        self.refused("/rest/order/neworder", dict(body, CSR="-----BEGIN CERTIFICATE REQUEST-----\nZm9v\n"
                                                            "-----END CERTIFICATE REQUEST-----\n"), "Invalid CSR")
        self.refused("/rest/order/neworder", dict(body, CSR=None), "CSR")
        # CRLF PEM and bare base64 DER are both accepted (P-384 key).
        pem_csr, _ = make_csr("crlf.example.com", ["crlf.example.com"], "p384")
        self.place(dict(body, CSR=pem_csr.replace("\n", "\r\n"), DomainName="crlf.example.com",
                        DNSNames=["crlf.example.com"], CustomOrderID=str(uuid.uuid4())))
        der_b64 = "".join(pem_csr.strip().splitlines()[1:-1])
        self.place(dict(body, CSR=der_b64, DomainName="crlf.example.com", DNSNames=["crlf.example.com"],
                        CustomOrderID=str(uuid.uuid4())))
        self.refused("/rest/order/neworder", dict(body, DomainName="other.example.com"), "does not match")

    def test_validation_rules(self):
        body = self.order_body("positivessl")
        body.pop("_key")
        for months in (13, 365, 72, 0):
            self.refused("/rest/order/neworder", dict(body, ValidityPeriod=months), "ValidityPeriod")
        self.refused("/rest/order/neworder", dict(body, ValidityPeriod="12"), "integer")
        self.refused("/rest/order/neworder", dict(body, ProductCode="nosuch"), "ProductCode")
        self.refused("/rest/order/neworder", dict(body, DNSNames=body["DNSNames"][0]), "array")
        self.refused("/rest/order/neworder", dict(body, DNSNames=[body["DomainName"], "other.example.net"]),
                     "single-domain")
        self.refused("/rest/order/neworder", dict(body, SignatureHashAlgorithm="SHA2-256"), "SignatureHash")
        self.refused("/rest/order/neworder", dict(body, FileAuthDVIndicator=True, CNAMEAuthDVIndicator=True),
                     "one domain control")
        wc = self.order_body("positivessl", cn="*.wild.example.com")
        wc.pop("_key")
        self.refused("/rest/order/neworder", wc, "wildcard")
        internal = self.order_body("positivessl", cn="host.internal")
        internal.pop("_key")
        self.refused("/rest/order/neworder", internal, "reserved")
        # Sectigo multi-domain: more than 3 names need reserved SANs.
        names = [f"n{i}.example.com" for i in range(5)]
        mdc = self.order_body("positivemdcssl", cn=names[0], sans=names)
        mdc.pop("_key")
        self.refused("/rest/order/neworder", mdc, "ReserveSANCount")
        self.ok("/rest/order/neworder", dict(mdc, ReserveSANCount=2))
        # Unused members may be absent, null or "" and unknown ones are ignored.
        loose = dict(body, CustomOrderID=str(uuid.uuid4()), DomainName=None, SpecialInstructions="",
                     ExtraProductCodes=None, PlatFormId="x", TechnicalContact=None)
        self.ok("/rest/order/neworder", loose)

    def test_approver_rules(self):
        body = self.order_body("positivessl", cn="www.example.org")
        body.pop("_key")
        self.refused("/rest/order/neworder", dict(body, ApproverEmail="admin@example.com"), "not valid")
        self.refused("/rest/order/neworder", dict(body, ApproverEmail=""), "ApproverEmail is required")
        # Sectigo multi-domain: every domain covered, a list is fine.
        mdc = self.order_body("positivemdcssl", cn="a.example.org", sans=["a.example.org", "b.example.net"])
        mdc.pop("_key")
        self.refused("/rest/order/neworder", dict(mdc, ApproverEmail="admin@example.org"), "b.example.net")
        self.ok("/rest/order/neworder", dict(mdc, ApproverEmail="admin@example.org, webmaster@example.net"))
        # DigiCert: exactly one address, from the CN's list.
        dg = self.order_body("digi_sslwebserver_flex", cn="x.example.org", OrganizationInfo=OV_ORG,
                             AdminContact=DIGI_ADMIN)
        dg.pop("_key")
        self.refused("/rest/order/neworder", dict(dg, ApproverEmail="admin@example.org,webmaster@example.org"),
                     "exactly one")
        self.refused("/rest/order/neworder", dict(dg, ApproverEmail="root@example.org"), "not valid")
        self.ok("/rest/order/neworder", dict(dg, ApproverEmail="admin@example.org"))
        # CNAME DCV needs no approver and returns the records.
        obj = self.ok("/rest/order/neworder", dict(body, CustomOrderID=str(uuid.uuid4()), ApproverEmail=None,
                                                   CNAMEAuthDVIndicator=True))
        self.assertTrue(obj["CNAMEAuthName"] and obj["CNAMEAuthValue"])
        dav = obj["OrderStatus"]["DomainAuthVettingStatus"]
        self.assertEqual(dav[0]["dcvMethod"], "CNAME")
        self.assertTrue(dav[0]["DNSName"] and dav[0]["DNSEntry"])
        obj = self.ok("/rest/order/neworder", dict(body, CustomOrderID=str(uuid.uuid4()), ApproverEmail=None,
                                                   FileAuthDVIndicator=True))
        self.assertTrue(obj["AuthFileName"])
        self.assertTrue(obj["OrderStatus"]["DomainAuthVettingStatus"][0]["FileContents"])

    def test_pending_then_active(self):
        self.control("/_sim/scenario", {"pending_polls": 2})
        obj, key = self.place(self.order_body())
        oid = obj["TheSSLStoreOrderID"]
        majors = [self.ok("/rest/order/status/", {"TheSSLStoreOrderID": oid})["OrderStatus"]["MajorStatus"]
                  for _ in range(3)]
        self.assertEqual(majors, ["Pending", "Pending", "Active"])
        # Lookup by CustomOrderID works too.
        st = self.ok("/rest/order/status", {"CustomOrderID": obj["CustomOrderID"]})
        self.assertEqual(st["TheSSLStoreOrderID"], oid)
        self.refused("/rest/order/status", {"TheSSLStoreOrderID": "999999999"}, "Invalid")
        # Download: leaf not first, the leaf is found by key.
        dl = self.ok("/rest/order/download", {"TheSSLStoreOrderID": oid})
        leaf, certs = self.leaf_of(dl, key)
        self.assertNotEqual(spki(certs[0].public_key()), spki(key.public_key()))
        self.control("/_sim/scenario", {"download_id_as_number": True, "download_root": True})
        dl = self.ok("/rest/order/download", {"TheSSLStoreOrderID": oid})
        self.assertEqual(dl["TheSSLStoreOrderID"], int(oid))
        self.assertEqual(len(dl["Certificates"]), 3)
        zipped = self.ok("/rest/order/downloadaszip", {"TheSSLStoreOrderID": oid})
        self.assertTrue(base64.b64decode(zipped["Zip"]).startswith(b"PK"))

    def test_initial_and_stuck(self):
        self.control("/_sim/scenario", {"initial_polls": 1, "stuck": True})
        obj, _ = self.place(self.order_body())
        self.assertEqual(obj["OrderStatus"]["MajorStatus"], "Initial")
        oid = obj["TheSSLStoreOrderID"]
        majors = [self.ok("/rest/order/status", {"TheSSLStoreOrderID": oid})["OrderStatus"]["MajorStatus"]
                  for _ in range(3)]
        self.assertEqual(majors, ["Initial", "Pending", "Pending"])
        self.control(f"/_sim/order/{oid}", {"MajorStatus": "Active"})
        self.assertEqual(self.ok("/rest/order/status", {"TheSSLStoreOrderID": oid})["OrderStatus"]["MajorStatus"],
                         "Active")

    def test_reissue(self):
        obj, key = self.place(self.order_body())
        oid, poid, cid = obj["TheSSLStoreOrderID"], obj["PartnerOrderID"], obj["CustomOrderID"]
        self.refused("/rest/order/reissue", {"TheSSLStoreOrderID": oid, "CSR": make_csr(obj["CommonName"])[0]},
                     "cannot be reissued")
        first = self.issue(oid)
        csr, new_key = make_csr(obj["CommonName"], [obj["CommonName"]], fresh=True)
        bare = "".join(csr.strip().splitlines()[1:-1])        # clients send it bare on reissue ("Placing an order")
        re1 = self.ok("/rest/order/reissue", {"TheSSLStoreOrderID": oid, "CustomOrderID": str(uuid.uuid4()),
                                              "CSR": bare, "WebServerType": "Other", "isRenewalOrder": False,
                                              "isWildCard": False, "ApproverEmails": "admin@example.com"})
        self.assertEqual(re1["TheSSLStoreOrderID"], oid)
        self.assertNotEqual(re1["PartnerOrderID"], poid)
        self.assertEqual(re1["CustomOrderID"], cid)
        self.assertEqual(re1["OrderStatus"]["MajorStatus"], "Active")
        self.assertEqual(re1["OrderStatus"]["MinorStatus"], "PENDING_REISSUE")
        self.refused("/rest/order/reissue", {"TheSSLStoreOrderID": oid, "CSR": csr}, "PENDING_REISSUE")
        # Until the new certificate is out, download returns the old one.
        dl = self.ok("/rest/order/download", {"TheSSLStoreOrderID": oid})
        self.leaf_of(dl, key)
        second = self.issue(oid)
        self.assertNotEqual(second["SerialNumber"], first["SerialNumber"])
        dl = self.ok("/rest/order/download", {"TheSSLStoreOrderID": oid})
        self.leaf_of(dl, new_key)
        entry = [o for o in self.stats()["orders"] if o["TheSSLStoreOrderID"] == oid][0]
        self.assertEqual(entry["reissues"], 1)
        self.assertEqual(entry["PartnerOrderID"], re1["PartnerOrderID"])

    def test_renewal(self):
        obj, _ = self.place(self.order_body())
        oid = obj["TheSSLStoreOrderID"]
        self.issue(oid)
        body = self.order_body(cn=obj["CommonName"], isRenewalOrder=True, RelatedTheSSLStoreOrderID=oid)
        new, _ = self.place(body)
        self.assertNotEqual(new["TheSSLStoreOrderID"], oid)
        entry = [o for o in self.stats()["orders"] if o["TheSSLStoreOrderID"] == new["TheSSLStoreOrderID"]][0]
        self.assertTrue(entry["IsRenewal"])
        self.assertEqual(entry["RelatedOrderID"], oid)
        bad = self.order_body(isRenewalOrder=True, RelatedTheSSLStoreOrderID="1")
        bad.pop("_key")
        self.refused("/rest/order/neworder", bad, "RelatedTheSSLStoreOrderID")
        self.refused("/rest/order/neworder", dict(bad, RelatedTheSSLStoreOrderID=None), "required")
        # Strict OQ-2 (docs/protocol-sslstore.md): an OV renewal without organisation data is refused.
        ov, _ = self.place(self.order_body("sectigoovssl", OrganizationInfo=OV_ORG))
        lean = self.order_body("sectigoovssl", cn=ov["CommonName"], isRenewalOrder=True,
                               RelatedTheSSLStoreOrderID=ov["TheSSLStoreOrderID"])
        lean.pop("_key")
        self.refused("/rest/order/neworder", lean, "OrganizationName")
        self.control("/_sim/scenario", {"renewal_inherit": True})
        self.ok("/rest/order/neworder", lean)

    def test_refund(self):
        obj, key = self.place(self.order_body())
        oid = obj["TheSSLStoreOrderID"]
        self.issue(oid)
        self.control("/_sim/scenario", {"cancelled_after_refund": 1})
        rf = self.ok("/rest/order/refundrequest", {"TheSSLStoreOrderID": oid, "RefundReason": "keyCompromise"})
        self.assertTrue(rf["RefundRequestID"])
        self.assertFalse(rf["isRefundApproved"])
        self.assertEqual(rf["OrderStatus"]["MajorStatus"], "Active")
        self.refused("/rest/order/refundrequest", {"TheSSLStoreOrderID": oid}, "already")
        self.assertEqual(self.ok("/rest/order/status", {"TheSSLStoreOrderID": oid})["OrderStatus"]["MajorStatus"],
                         "Active")
        st = self.ok("/rest/order/status", {"TheSSLStoreOrderID": oid})
        self.assertEqual(st["OrderStatus"]["MajorStatus"], "Cancelled")
        self.assertTrue(st["isRefundApproved"])
        rs = self.ok("/rest/order/refundstatus", {"TheSSLStoreOrderID": oid})
        self.assertTrue(rs["isRefundApproved"])
        self.leaf_of(self.ok("/rest/order/download", {"TheSSLStoreOrderID": oid}), key)   # issued, then cancelled
        self.refused("/rest/order/refundrequest", {"TheSSLStoreOrderID": oid}, "cancelled")
        self.refused("/rest/order/refundrequest", {"TheSSLStoreOrderID": "1"}, "Invalid")
        # certificaterevokerequest: flat answer.
        other, _ = self.place(self.order_body())
        self.issue(other["TheSSLStoreOrderID"])
        st, flat = self.call("/rest/order/certificaterevokerequest", {"TheSSLStoreOrderID": other["TheSSLStoreOrderID"]})
        self.assertFalse(flat["isError"])
        self.assertNotIn("AuthResponse", flat)

    def test_query_paging(self):
        for i in range(5):
            self.place(self.order_body("sectigossl"))
        q = {"ProductCode": "sectigossl", "PageSize": 2}
        self.control("/_sim/scenario", {"query_fail_pages": [2]})
        pages = []
        page = 1
        failures = 0
        while True:
            status, _, data = self.raw("/rest/order/query", dict(q, AuthRequest=AUTH, PageNumber=page))
            if status != 200:
                failures += 1
                self.assertEqual(page, 2)
                continue                                   # retry the same page
            items = json.loads(data)
            self.assertIsInstance(items, list)
            pages.append([o["TheSSLStoreOrderID"] for o in items])
            if len(items) < 2:
                break
            page += 1
        self.assertEqual(failures, 1)
        flat = [x for p in pages for x in p]
        self.assertEqual(len(flat), 5)
        self.assertEqual(flat, sorted(flat, key=int))
        self.assertEqual(self.ok("/rest/order/query", dict(q, PageNumber=10)), [])
        self.refused("/rest/order/query", dict(q, PageNumber=0), "PageNumber")
        self.refused("/rest/order/query", dict(q, PageNumber=1, PageSize=1000), "PageSize")
        future = "/Date(%d)/" % ((time.time() + 86400) * 1000)
        self.assertEqual(self.ok("/rest/order/query", dict(q, StartDate=future)), [])

    def test_order_5xx_after_create(self):
        before = self.stats()["orders_placed"]
        self.control("/_sim/scenario", {"order_5xx_after_create": {"count": 1}})
        body = self.order_body()
        body.pop("_key")
        status, _, _ = self.raw("/rest/order/neworder", dict(body, AuthRequest=AUTH))
        self.assertEqual(status, 500)
        stats = self.stats()
        self.assertEqual(stats["orders_placed"], before + 1)
        st = self.ok("/rest/order/status", {"CustomOrderID": body["CustomOrderID"]})
        self.assertEqual(st["CustomOrderID"], body["CustomOrderID"])
        # A blind retry with the same CustomOrderID is refused, not a second order.
        self.refused("/rest/order/neworder", body, "CustomOrderID")
        self.assertEqual(self.stats()["orders_placed"], before + 1)

    def test_lost_answer_placements_plan_days(self):
        # drop_after_process: the call is carried out, the answer is lost
        before = self.stats()["orders_placed"]
        self.control("/_sim/scenario", {"drop_after_process": {"count": 1, "endpoints": ["order/neworder"]},
                                        "plan_days": 10})
        body = self.order_body()
        body.pop("_key")
        with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
            self.raw("/rest/order/neworder", dict(body, AuthRequest=AUTH))
        self.control("/_sim/scenario", {"plan_days": None})
        stats = self.stats()
        self.assertEqual(stats["orders_placed"], before + 1)
        # every placement request is listed with its CustomOrderID
        self.assertEqual(stats["placements"][-1], {"path": "/rest/order/neworder",
                                                   "CustomOrderID": body["CustomOrderID"]})
        st = self.ok("/rest/order/status", {"CustomOrderID": body["CustomOrderID"]})
        end = sslstore_sim.parse_date(st["OrderExpiryDateInUTC"], "expiry")
        left = (end - sslstore_sim.utcnow()).total_seconds() / 86400
        self.assertTrue(9 < left <= 10, left)
        # a lookup by an unknown CustomOrderID is counted
        lookups = self.stats()["unknown_custom_lookups"]
        self.refused("/rest/order/status", {"CustomOrderID": "no-such-id"}, "CustomOrderID")
        self.assertEqual(self.stats()["unknown_custom_lookups"], lookups + 1)

    def test_http_faults(self):
        self.control("/_sim/scenario", {"http_429": {"count": 1, "retry_after": 7, "endpoints": ["order/status"]},
                                        "http_5xx": {"count": 2, "status": 503, "endpoints": ["/rest/product/query"]}})
        status, headers, _ = self.raw("/rest/order/status", {"AuthRequest": AUTH, "TheSSLStoreOrderID": "1"})
        self.assertEqual(status, 429)
        self.assertEqual(headers.get("Retry-After"), "7")
        status, _, _ = self.raw("/rest/order/status", {"AuthRequest": AUTH, "TheSSLStoreOrderID": "1"})
        self.assertEqual(status, 200)
        self.assertEqual([self.raw("/rest/product/query", {"AuthRequest": AUTH})[0] for _ in range(3)],
                         [503, 503, 200])
        self.control("/_sim/scenario", {"malformed_body": 1})
        status, _, data = self.raw("/rest/health/validate", {"PartnerCode": PARTNER, "AuthToken": TOKEN})
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(data)
        self.control("/_sim/scenario", {"drop_connection": 1})
        with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
            self.raw("/rest/health/validate", {"PartnerCode": PARTNER, "AuthToken": TOKEN})
        self.control("/_sim/scenario", {"oversized_body": {"bytes": 2 << 20}})
        status, _, data = self.raw("/rest/health/validate", {"PartnerCode": PARTNER, "AuthToken": TOKEN})
        self.assertGreaterEqual(len(data), 2 << 20)
        stats = self.stats()
        self.assertGreaterEqual(stats["calls"]["/rest/order/status"], 2)
        status, _, _ = self.raw("/_sim/scenario", {"no_such_knob": 1})
        self.assertEqual(status, 400)

    def test_wrong_key_and_vendor_reject(self):
        self.control("/_sim/scenario", {"wrong_key": True})
        obj, key = self.place(self.order_body())
        self.issue(obj["TheSSLStoreOrderID"])
        dl = self.ok("/rest/order/download", {"TheSSLStoreOrderID": obj["TheSSLStoreOrderID"]})
        certs = [x509.load_pem_x509_certificate(c["FileContent"].encode()) for c in dl["Certificates"]]
        self.assertFalse(any(spki(c.public_key()) == spki(key.public_key()) for c in certs))
        self.control("/_sim/scenario", {"wrong_key": None, "vendor_reject": {"after_polls": 1}})
        obj, _ = self.place(self.order_body())
        oid = obj["TheSSLStoreOrderID"]
        self.ok("/rest/order/status", {"TheSSLStoreOrderID": oid})
        st = self.ok("/rest/order/status", {"TheSSLStoreOrderID": oid})
        self.assertEqual((st["OrderStatus"]["MajorStatus"], st["OrderStatus"]["MinorStatus"]),
                         ("Pending", "REJECTED"))
        self.assertIn("ErrorCode:-9009|", st["OrderStatus"]["AuthenticationComments"])
        self.control("/_sim/scenario", {"vendor_reject": None, "reject": {"message": "Domain is blacklisted."}})
        body = self.order_body()
        body.pop("_key")
        self.refused("/rest/order/neworder", body, "blacklisted")
        self.ok("/rest/order/neworder", body)             # "next" neworder only


if __name__ == "__main__":
    unittest.main(verbosity=2)
