"""Admin endpoints: accounts, credit grants and keys over HTTP."""

from __future__ import annotations

import httpx

from tests.live import LiveServer


def test_admin_creates_account_grants_credits_and_keys(server: LiveServer) -> None:
    admin, _ = server.services.accounts.create_account(email="root@example.com", is_admin=True)
    admin_key = server.services.accounts.create_key(account_id=admin.id).plaintext
    with server.client(admin_key) as c:
        r = c.post("/v1/admin/accounts", json={"email": "New@Example.com", "credits": 3})
        assert r.status_code == 201, r.text
        acc = r.json()
        assert acc["email"] == "new@example.com" and acc["credits_available"] == 3
        user_key = acc["api_key"]

        r = c.post(f"/v1/admin/accounts/{acc['id']}/credits", json={"amount": 4, "note": "promo"})
        assert r.status_code == 200 and r.json()["credits_available"] == 7
        assert (
            c.post(f"/v1/admin/accounts/{acc['id']}/credits", json={"amount": 0}).status_code == 400
        )

        r = c.post(f"/v1/admin/accounts/{acc['id']}/keys", json={"name": "ci"})
        assert r.status_code == 201
        extra = r.json()
        assert extra["key"].startswith(f"pf_{extra['prefix']}_")

        dup = c.post("/v1/admin/accounts", json={"email": "new@example.com"})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
        assert c.get("/v1/admin/accounts/acc_nope").status_code == 404
        emails = {a["email"] for a in c.get("/v1/admin/accounts").json()}
        assert {"root@example.com", "new@example.com"} <= emails

    with server.client(user_key) as u:
        me = u.get("/v1/me").json()
        assert me["credits_available"] == 7 and me["is_admin"] is False
        keys = u.get("/v1/keys").json()
        assert {k["name"] for k in keys} == {"default", "ci"}
        assert all("key" not in k for k in keys)  # never shown again
        assert u.get("/v1/admin/accounts").status_code == 403

    with server.client(admin_key) as c:
        assert c.delete(f"/v1/admin/keys/{extra['id']}").status_code == 204
    with server.client(extra["key"]) as gone:
        assert gone.get("/v1/me").status_code == 401


def test_an_admin_keeps_one_active_key(server: LiveServer) -> None:
    """Revoking an admin account's last active key would lock it out of the API: 409."""
    accounts = server.services.accounts
    _, first = accounts.create_account(email="root@example.com", is_admin=True)
    other, other_key = accounts.create_account(email="ops@example.com", is_admin=True)
    user_id, user_key = server.account()
    user_key_id = next(k.id for k in accounts.list_keys(user_id))

    def refused(r: httpx.Response) -> None:
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "conflict" and "last active API key" in err["message"]

    with server.client(first.plaintext) as c, server.client(other_key.plaintext) as ops:
        refused(c.delete(f"/v1/keys/{first.id}"))
        refused(c.delete(f"/v1/admin/keys/{first.id}"))
        refused(ops.delete(f"/v1/admin/keys/{first.id}"))  # nor by another admin
        assert c.get("/v1/me").status_code == 200
        second = c.post("/v1/keys", json={"name": "spare"}).json()
        assert c.delete(f"/v1/keys/{first.id}").status_code == 204
        assert c.get("/v1/me").status_code == 401  # that key is gone, as asked
        with server.client(second["key"]) as c2:
            refused(c2.delete(f"/v1/keys/{second['id']}"))
            assert c2.delete(f"/v1/keys/{first.id}").status_code == 204  # already revoked
            # A user's last key is theirs to revoke, and an admin may revoke it too.
            assert c2.delete(f"/v1/admin/keys/{user_key_id}").status_code == 204
    with server.client(user_key) as u:
        assert u.get("/v1/me").status_code == 401
    assert [k.revoked_at is None for k in accounts.list_keys(other.id)] == [True]
