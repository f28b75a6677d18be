"""Integers past 64 bits answer 400 invalid_parameter, never a database error (a 500)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pixelforge.accounts.ledger import GRANT, MAX_GRANT, MAX_GRANTED_TOTAL
from pixelforge.api.routes.admin import MAX_OFFSET
from pixelforge.clock import now
from pixelforge.store.tables import LedgerEntry
from tests.conftest import make_settings
from tests.live import LiveServer

HUGE = (2**63, 2**64 + 1, 10**30)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def srv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    overrides: dict[str, object] = {"workers": 0}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("pg_url")
    with LiveServer(make_settings(tmp_path, **overrides)) as server:
        yield server


@pytest.fixture
def admin(srv: LiveServer) -> Iterator[httpx.Client]:
    email = f"root-{uuid.uuid4().hex[:8]}@example.com"  # PostgreSQL's database is per session
    _, key = srv.services.accounts.create_account(email=email, is_admin=True)
    with srv.client(key.plaintext) as c:
        yield c


def _invalid(r: httpx.Response, name: str) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter" and name in err["message"], err


def test_credit_grants_are_bounded(srv: LiveServer, admin: httpx.Client) -> None:
    acc, _ = srv.account(credits=0)
    url = f"/v1/admin/accounts/{acc}/credits"
    for amount in (*HUGE, 2**62, MAX_GRANT + 1):
        _invalid(admin.post(url, json={"amount": amount}), "amount")
        _invalid(
            admin.post("/v1/admin/accounts", json={"email": "x@example.com", "credits": amount}),
            "credits",
        )
    r = admin.post(url, json={"amount": MAX_GRANT})
    assert r.status_code == 200 and r.json()["credits_available"] == MAX_GRANT, r.text
    # Grants that would take the account's total past the bound are refused as a whole.
    with srv.services.db.write() as s:
        s.add(
            LedgerEntry(
                account_id=acc,
                job_id=None,
                kind=GRANT,
                amount=MAX_GRANTED_TOTAL - MAX_GRANT - 5,
                note="",
                created_at=now(),
            )
        )
    _invalid(admin.post(url, json={"amount": 6}), "amount")
    r = admin.post(url, json={"amount": 5})
    assert r.status_code == 200 and r.json()["credits_available"] == MAX_GRANTED_TOTAL, r.text
    assert admin.get(f"/v1/admin/accounts/{acc}").status_code == 200


def test_offsets_and_tokens_are_bounded(srv: LiveServer, admin: httpx.Client) -> None:
    for value in HUGE:
        _invalid(admin.get("/v1/admin/accounts", params={"offset": value}), "offset")
        for path in ("/v1/styles", "/v1/style-groups"):
            _invalid(admin.get(path, params={"starting_token": value}), "starting_token")
    # Unicode digits pass str.isdigit() but are no token.
    _invalid(admin.get("/v1/styles", params={"starting_token": "\u00b2"}), "starting_token")
    r = admin.get("/v1/admin/accounts", params={"offset": MAX_OFFSET})
    assert r.status_code == 200 and r.json() == [], r.text
    r = admin.get("/v1/styles", params={"starting_token": 2**31 - 1})
    assert r.status_code == 200 and r.json()["data"] == [], r.text


def test_catalog_numbers_are_bounded(srv: LiveServer, admin: httpx.Client) -> None:
    """Found by the Schemathesis run: sort keys (32-bit columns) and style ids past 64 bits."""
    group = {"name": "bounds", "title": "Bounds"}
    style = {"name": "bounds", "title": "Bounds", "prompt": "{prompt}"}
    filter_ = {"name": "Bounds", "pipeline": "image_to_image"}
    for sort in (2**31, -(2**31) - 1, *HUGE):
        _invalid(admin.put("/v1/admin/style-groups", json={**group, "sort": sort}), "sort")
        _invalid(admin.put("/v1/admin/styles", json={**style, "sort": sort}), "sort")
        _invalid(admin.post("/v1/admin/filters", json={**filter_, "sort": sort}), "sort")
    for value in HUGE:
        r = admin.put("/v1/admin/styles", json={**style, "group_id": value})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        r = admin.delete(f"/v1/admin/styles/{value}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        r = admin.get("/v1/styles", params={"style_group_id": value})
        assert r.status_code == 200 and r.json()["data"] == [], r.text
    r = admin.put("/v1/admin/style-groups", json={**group, "sort": 2**31 - 1})
    assert r.status_code == 200, r.text


def test_lora_tokens_are_checked_like_style_tokens(tmp_path: Path) -> None:
    with LiveServer(make_settings(tmp_path, workers=0)) as srv:
        _, key = srv.account()
        with srv.client(key) as c:
            for path in ("/v1/lora-templates", "/v1/styles"):
                for token in ("-5", "\xff", "a b", "x" * 101, "\u00b2"):
                    r = c.get(path, params={"starting_token": token})
                    _invalid(r, "starting_token")
                _invalid(c.get(f"{path}?starting_token=%ff"), "starting_token")
            r = c.get("/v1/lora-templates", params={"starting_token": "a"})
            assert r.status_code == 200, r.text
