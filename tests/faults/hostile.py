"""Seeded generator of malformed or hostile requests, each with the status it must get.

Every case is a bad request: nothing it does may wake an agent or buffer an
update. ``expected`` is the one right answer (a few path-normalisation cases
accept either of two, noted where they are made).
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from urllib.parse import quote

from daemon.telegram import SECRET_HEADER

ROUTER = "router"
ADMIN = "admin"


@dataclass(frozen=True)
class Case:
    target: str  # ROUTER or ADMIN
    method: str
    path: str  # already percent-encoded, sent as is
    expected: frozenset[int]
    kind: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False

    def describe(self) -> str:
        size = f"{len(self.body)}B" + (" chunked" if self.chunked else "")
        return f"{self.kind}: {self.target} {self.method} {self.path[:80]} ({size})"


class HostileRequests:
    def __init__(
        self,
        seed: int,
        *,
        tenant_id: str,
        secret: str,
        admin_token: str,
        max_body_bytes: int,
    ) -> None:
        self.rng = random.Random(seed)
        self.tenant_id = tenant_id
        self.secret = secret
        self.admin_token = admin_token
        self.max_body = max_body_bytes

    # -- building blocks ------------------------------------------------------------------
    def invalid_id(self) -> str:
        """A path segment (percent-encoded) that is not a valid tenant id."""
        r = self.rng
        choices = [
            lambda: "".join(r.choices(string.ascii_uppercase, k=r.randint(1, 10))),
            lambda: "a_" + "".join(r.choices(string.ascii_lowercase, k=5)),
            lambda: "x" * r.randint(41, 300),
            lambda: "-" + "".join(r.choices(string.ascii_lowercase, k=4)),
            lambda: "".join(r.choices(string.ascii_lowercase, k=4)) + "-",
            lambda: "warm-" + "".join(r.choices(string.ascii_lowercase, k=5)),
            lambda: quote("..%2F..%2Fv1%2Ftenants", safe="%"),
            lambda: quote("../../etc/passwd", safe=""),
            lambda: quote(self.tenant_id + "/../" + self.tenant_id, safe=""),
            lambda: quote(r.choice(["тенант", "租户", "🤖bot", "café", "ǅemo"]), safe=""),
            lambda: quote(self.tenant_id + r.choice(["\x00", "\n", " ", "\t", ";", "'"]), safe=""),
            lambda: quote(self.tenant_id.upper(), safe=""),
            lambda: "%" + "".join(r.choices("0123456789abcdef", k=2)) + "zz",
            lambda: quote("".join(chr(r.randint(0x80, 0x2FFF)) for _ in range(4)), safe=""),
        ]
        return r.choice(choices)()

    def unknown_id(self) -> str:
        r = self.rng
        while True:
            head = r.choice(string.ascii_lowercase)
            tail = "".join(
                r.choices(string.ascii_lowercase + string.digits + "-", k=r.randint(0, 20))
            )
            candidate = (head + tail).rstrip("-")
            if candidate != self.tenant_id and not candidate.startswith("warm-"):
                return candidate

    def bad_secret_headers(self) -> dict[str, str]:
        r = self.rng
        options: list[dict[str, str]] = [
            {},
            {SECRET_HEADER: ""},
            {SECRET_HEADER: self.secret + "x"},
            {SECRET_HEADER: self.secret[:-1]},
            {SECRET_HEADER: self.secret.upper() if self.secret.upper() != self.secret else "X"},
            {SECRET_HEADER: "".join(r.choices(string.printable.strip(), k=r.randint(1, 200)))},
            {SECRET_HEADER.lower(): "wrong"},
            {"X-Telegram-Bot-Api-Secret": self.secret},  # a near-miss header name
        ]
        return dict(r.choice(options))

    def malformed_update(self) -> bytes:
        r = self.rng
        text = "".join(r.choices(string.printable, k=r.randint(0, 60)))
        options: list[bytes] = [
            b"",
            bytes(r.randbytes(r.randint(1, 500))),
            b"{" + text.encode(),
            json.dumps({"update_id": 5, "message": {"text": text}}).encode()[:-1],
            b"[1, 2, 3]",
            b'"update"',
            b"42",
            b"null",
            b"true",
            json.dumps({"message": {"text": text}}).encode(),
            json.dumps({"update_id": str(r.randint(1, 10**6))}).encode(),
            json.dumps({"update_id": r.random() * 1000 + 0.5}).encode(),
            json.dumps({"update_id": r.choice([True, False])}).encode(),
            json.dumps({"update_id": None}).encode(),
            json.dumps({"update_id": [1]}).encode(),
            json.dumps({"update_id": {"n": 1}}).encode(),
            b'{"update_id": 1e400}',
            b'{"update_id": NaN}',
            b"\xff\xfe" + json.dumps({"update_id": 1}).encode("utf-16-le"),
            b"[" * r.randint(5_000, 50_000) + b"]" * 3,  # deep nesting
            b'{"a":' * r.randint(5_000, 20_000) + b"1" + b"}" * 3,
            json.dumps({"update_id ": 7}).encode(),
        ]
        return r.choice(options)

    def oversized(self) -> bytes:
        return b"{" + b" " * (self.max_body + self.rng.randint(0, 4096)) + b"}"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def bad_auth(self) -> dict[str, str]:
        r = self.rng
        options: list[dict[str, str]] = [
            {},
            {"Authorization": ""},
            {"Authorization": self.admin_token},
            {"Authorization": f"Bearer {self.admin_token}x"},
            {"Authorization": f"bearer {self.admin_token}"},
            {"Authorization": f"Basic {self.admin_token}"},
            {"Authorization": "Bearer " + "".join(r.choices(string.ascii_letters, k=40))},
            {"Authorization": f"Bearer  {self.admin_token}"},
        ]
        return dict(r.choice(options))

    # -- cases ----------------------------------------------------------------------------
    def router_case(self) -> Case:
        r = self.rng
        kind = r.choices(
            ["invalid_id", "unknown", "secret", "too_large", "malformed", "method", "no_route"],
            weights=[14, 10, 14, 3, 30, 12, 8],
        )[0]
        good = {SECRET_HEADER: self.secret, "Content-Type": "application/json"}
        own = f"/tg/{self.tenant_id}"
        if kind == "invalid_id":
            return Case(ROUTER, "POST", f"/tg/{self.invalid_id()}", _one(400), kind, good,
                        self.malformed_update())  # fmt: skip
        if kind == "unknown":
            headers = r.choice([good, self.bad_secret_headers()])
            body = r.choice([self.malformed_update(), b'{"update_id": 1}'])
            return Case(ROUTER, "POST", f"/tg/{self.unknown_id()}", _one(404), kind, headers, body)
        if kind == "secret":
            body = r.choice([self.malformed_update(), b'{"update_id": 2}'])
            return Case(ROUTER, "POST", own, _one(401), kind, self.bad_secret_headers(), body)
        if kind == "too_large":
            return Case(ROUTER, "POST", own, _one(413), kind, good, self.oversized(),
                        chunked=r.random() < 0.5)  # fmt: skip
        if kind == "malformed":
            return Case(ROUTER, "POST", own, _one(400), kind, good, self.malformed_update())
        if kind == "method":
            method = r.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
            path = r.choice([own, f"/tg/{self.unknown_id()}"])
            return Case(ROUTER, method, path, _one(405), kind, good, b'{"update_id": 3}')
        path = r.choice(["/", "/tg", "/tg/", f"{own}/x", "/v1/tenants", "/metrics", "/admin",
                         f"/TG/{self.tenant_id}", f"{own}%2Fx"])  # fmt: skip
        # An encoded slash decodes into one segment: an invalid tenant id.
        expected = _one(400) if path.endswith("%2Fx") else _one(404)
        return Case(ROUTER, "POST", path, expected, kind, good, b'{"update_id": 4}')

    def admin_case(self) -> Case:
        r = self.rng
        kind = r.choices(
            ["no_auth", "invalid_id", "unknown", "bad_body", "too_large", "method", "no_route",
             "bad_query"],
            weights=[18, 16, 14, 20, 3, 12, 8, 9],
        )[0]  # fmt: skip
        own = f"/v1/tenants/{self.tenant_id}"
        if kind == "no_auth":
            method, path = r.choice(
                [("GET", "/v1/tenants"), ("POST", "/v1/tenants"), ("GET", own),
                 ("DELETE", own), ("POST", f"{own}/wake"), ("POST", f"{own}/suspend"),
                 ("PATCH", "/v1/config"), ("GET", "/v1/config"), ("GET", "/v1/status"),
                 ("GET", "/v1/nowhere"), ("POST", f"{own}/simulate")]
            )  # fmt: skip
            body = b'{"text": "hi"}' if method != "GET" else b""
            return Case(ADMIN, method, path, _one(401), kind, self.bad_auth(), body)
        if kind == "invalid_id":
            bad = f"/v1/tenants/{self.invalid_id()}"
            method, path = r.choice(
                [("GET", bad), ("DELETE", bad), ("PATCH", bad), ("POST", f"{bad}/wake"),
                 ("POST", f"{bad}/sleep"), ("POST", f"{bad}/suspend"), ("POST", f"{bad}/resume"),
                 ("GET", f"{bad}/events"), ("GET", f"{bad}/buffer"), ("GET", f"{bad}/logs"),
                 ("POST", f"{bad}/simulate")]
            )  # fmt: skip
            body = b'{"labels": {"a": "b"}}' if method in ("PATCH", "POST") else b""
            return Case(ADMIN, method, path, _one(400), kind, self.auth(), body)
        if kind == "unknown":
            other = f"/v1/tenants/{self.unknown_id()}"
            method, path = r.choice(
                [("GET", other), ("DELETE", other), ("POST", f"{other}/wake"),
                 ("POST", f"{other}/wake?wait=true"), ("POST", f"{other}/sleep"),
                 ("POST", f"{other}/suspend"), ("POST", f"{other}/resume"),
                 ("GET", f"{other}/events"), ("GET", f"{other}/buffer"),
                 ("GET", f"{other}/logs"), ("GET", f"{other}/dead-letters"),
                 ("POST", f"{other}/simulate")]
            )  # fmt: skip
            body = b'{"text": "hi"}' if method == "POST" else b""
            return Case(ADMIN, method, path, _one(404), kind, self.auth(), body)
        if kind == "bad_body":
            method, path = r.choice(
                [("POST", "/v1/tenants"), ("PATCH", own), ("PATCH", "/v1/config"),
                 ("PUT", "/v1/config"), ("POST", f"{own}/simulate")]
            )  # fmt: skip
            body = r.choice(
                [self.malformed_update(), b"[]", b'"x"', b"3",
                 json.dumps({"tenant_id": self.invalid_id()}).encode(),
                 json.dumps({"warm_pool_target": -r.randint(1, 100)}).encode(),
                 json.dumps({"max_wake_attempts": "many"}).encode(),
                 json.dumps({"no_such_setting": 1}).encode()]
            )  # fmt: skip
            if path.endswith("/simulate") and body.startswith(b'{"'):
                body = json.dumps({"update": "not an object", "text": 5}).encode()
            if body in (b"",) and path in ("/v1/config",):
                body = b"{}"  # an empty PATCH of the config: "no config keys given"
            if body == b"" and path in (own, f"{own}/simulate", "/v1/tenants"):
                body = b"[]"  # an empty body means {} there (valid or a different error)
            return Case(ADMIN, method, path, _one(400), kind,
                        {**self.auth(), "Content-Type": "application/json"}, body)  # fmt: skip
        if kind == "too_large":
            method, path = r.choice(
                [("POST", "/v1/tenants"), ("PATCH", own), ("PATCH", "/v1/config")]
            )
            return Case(ADMIN, method, path, _one(413), kind, self.auth(), self.oversized())
        if kind == "method":
            method, path = r.choice(
                [("PUT", "/v1/tenants"), ("DELETE", "/v1/tenants"), ("POST", own), ("PUT", own),
                 ("GET", f"{own}/suspend"), ("GET", f"{own}/wake"), ("DELETE", "/v1/config"),
                 ("POST", "/v1/config"), ("POST", "/livez"), ("DELETE", "/metrics"),
                 ("PUT", f"{own}/events")]
            )  # fmt: skip
            return Case(ADMIN, method, path, _one(405), kind, self.auth(), b"{}")
        if kind == "no_route":
            path = r.choice(
                ["/", "/v2/tenants", "/v1", f"{own}/nope", "/v1/tenants/a/b/c",
                 "/tg/" + self.tenant_id, "/v1/config/x", "/.env", "/admin"]
            )  # fmt: skip
            return Case(ADMIN, r.choice(["GET", "POST"]), path, _one(404), kind, self.auth(), b"")
        path = r.choice(
            ["/v1/tenants?status=bogus", "/v1/tenants?status=%00", "/v1/tenants?selector=%3D",
             "/v1/tenants?selector=!", f"{own}/logs?since_s=abc", f"{own}/logs?tail=-1",
             f"{own}/logs?since_s=-5", f"{own}/logs?tail=nan%20x"]
        )  # fmt: skip
        return Case(ADMIN, "GET", path, _one(400), kind, self.auth(), b"")

    def cases(self, count: int) -> list[Case]:
        return [
            self.router_case() if self.rng.random() < 0.55 else self.admin_case()
            for _ in range(count)
        ]


def _one(status: int) -> frozenset[int]:
    return frozenset({status})
