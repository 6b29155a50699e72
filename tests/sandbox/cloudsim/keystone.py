"""Keystone v3: versions, tokens (password and application credential), catalog.

A mixin of the Simulator (app.py): `self.cloud` is the model, `self.base()` the endpoint.
"""
import uuid

from .common import keystone_fault
from .model import iso, now


class KeystoneApi:
    def keystone_routes(self):
        """(method, path pattern, service, fault-injection op, handler)."""
        return [
            ("GET", r"/identity/?", "identity", None, self.identity_versions),
            ("GET", r"/identity/v3/?", "identity", None, self.identity_version),
            ("POST", r"/identity/v3/auth/tokens", "identity", "keystone.token", self.issue_token),
            ("GET", r"/identity/v3/auth/tokens", "identity", "keystone.validate", self.validate_token),
            ("GET", r"/identity/v3/auth/catalog", "identity", "keystone.catalog", self.get_catalog),
        ]

    def identity_version_doc(self):
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.base()}/identity/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    def identity_versions(self, req):
        return 300, {"versions": {"values": [self.identity_version_doc()]}}, {}

    def identity_version(self, req):
        return 200, {"version": self.identity_version_doc()}, {}

    def token_body(self, method, scoped, expires, issued):
        c = self.cloud
        user = {"id": c.user["id"], "name": c.user["name"], "domain": c.user["domain"],
                "password_expires_at": None}
        token = {"methods": [method], "user": user, "audit_ids": [uuid.uuid4().hex[:22]],
                 "expires_at": iso(expires, micro=True), "issued_at": iso(issued, micro=True)}
        if scoped:
            token.update({"project": {"id": c.project["id"], "name": c.project["name"],
                                      "domain": c.project["domain"]},
                          "is_domain": False,
                          "roles": [{"id": uuid.uuid5(uuid.NAMESPACE_DNS, "member").hex, "name": "member"},
                                    {"id": uuid.uuid5(uuid.NAMESPACE_DNS, "reader").hex, "name": "reader"}],
                          "catalog": self.catalog()})
        if method == "application_credential":
            token["application_credential"] = {"id": c.app_cred["id"], "name": c.app_cred["name"],
                                               "restricted": True}
        return {"token": token}

    def issue_token(self, req):
        unauthorized = keystone_fault(401, "Unauthorized", "The request you have made requires authentication.")
        body = req.json(fault=lambda s, m: keystone_fault(400, "Bad Request", m))
        try:
            identity = body["auth"]["identity"]
            methods = identity["methods"]
        except (KeyError, TypeError):
            raise keystone_fault(400, "Bad Request", "Invalid input for field 'identity': 'methods' is a required property")
        c = self.cloud
        if methods == ["password"]:
            user = (identity.get("password") or {}).get("user") or {}
            if "id" in user:
                known = user["id"] == c.user["id"]
            else:
                domain = user.get("domain") or {}
                if not domain:
                    raise keystone_fault(400, "Bad Request", "Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
                known = (user.get("name") == c.user["name"] and
                         (domain.get("name") == c.user["domain"]["name"] or domain.get("id") == c.user["domain"]["id"]))
            if not known or user.get("password") != c.user["password"]:
                raise unauthorized
            scope = body["auth"].get("scope")
            scoped = False
            if scope:
                project = scope.get("project")
                if project is not None:
                    if "id" in project:
                        ok = project["id"] == c.project["id"]
                    else:
                        pd = project.get("domain") or {}
                        ok = (project.get("name") == c.project["name"] and
                              (pd.get("name") == c.project["domain"]["name"] or pd.get("id") == c.project["domain"]["id"]))
                    if not ok:
                        raise unauthorized
                    scoped = True
                elif "domain" in scope or "system" in scope:
                    scoped = False  # domain tokens carry no project catalog here
                else:
                    raise keystone_fault(400, "Bad Request", "Invalid scope")
            method = "password"
        elif methods == ["application_credential"]:
            cred = identity.get("application_credential") or {}
            by_id = cred.get("id") == c.app_cred["id"]
            by_name = (cred.get("name") == c.app_cred["name"] and
                       ((cred.get("user") or {}).get("name") == c.user["name"] or
                        (cred.get("user") or {}).get("id") == c.user["id"]))
            if not (by_id or by_name) or cred.get("secret") != c.app_cred["secret"]:
                raise unauthorized
            if body["auth"].get("scope"):
                raise keystone_fault(401, "Unauthorized", "Application credentials cannot request a scope.")
            scoped = True
            method = "application_credential"
        else:
            raise keystone_fault(401, "Unauthorized", f"Unsupported authentication method: {methods}")
        value, expires = c.issue_token(scoped, method)
        return 201, self.token_body(method, scoped, expires, now()), {"X-Subject-Token": value}

    def validate_token(self, req):
        self.authenticate(req)
        subject = req.headers.get("X-Subject-Token")
        info = self.cloud.check_token(subject) if subject else None
        if info is None:
            raise keystone_fault(404, "Not Found", f"Could not find token: {str(subject)[:8]}...")
        return 200, self.token_body(info["method"], info["scoped"], info["expires"], now()), {"X-Subject-Token": subject}

    def get_catalog(self, req):
        self.authenticate(req)
        return 200, {"catalog": self.catalog(), "links": {"self": f"{self.base()}/identity/v3/auth/catalog"}}, {}
