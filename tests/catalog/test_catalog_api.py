"""The catalog over HTTP: seeded presets, Perfect-style pages, admin edits, LoRA templates."""

from __future__ import annotations

from tests.live import LiveServer

AIART_PRESETS = {
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
}


def _admin(server: LiveServer) -> str:
    acc, _ = server.services.accounts.create_account(email="root@example.com", is_admin=True)
    return server.services.accounts.create_key(account_id=acc.id).plaintext


def test_seeded_presets_page_through(server: LiveServer) -> None:
    _, key = server.account()
    with server.client(key) as c:
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            params = {"page_size": 5, **({"starting_token": token} if token else {})}
            body = c.get("/v1/styles", params=params).json()
            seen += [s["name"] for s in body["data"]]
            pages += 1
            token = body["next_token"]
            if token is None:
                break
        assert set(seen) == AIART_PRESETS and len(seen) == len(AIART_PRESETS)
        assert pages == 4  # 17 presets, 5 a page
        groups = c.get("/v1/style-groups").json()["data"]
        assert {g["name"] for g in groups} == {"photo", "illustration", "3d"}
        illustration = next(g for g in groups if g["name"] == "illustration")
        only = c.get("/v1/styles", params={"style_group_id": illustration["id"]}).json()["data"]
        assert "anime" in {s["name"] for s in only} and "origami" not in {s["name"] for s in only}
        assert all("{prompt}" in s["prompt"] for s in only)
        bad = c.get("/v1/styles", params={"starting_token": "abc"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
        assert c.get("/v1/styles", params={"page_size": 0}).status_code == 400


def test_admin_edits_styles_and_loras(server: LiveServer) -> None:
    admin = _admin(server)
    _, user = server.account()
    style = {"name": "watercolor", "title": "Watercolor", "prompt": "watercolor of {prompt}"}
    with server.client(user) as u:
        assert u.put("/v1/admin/styles", json=style).status_code == 403
    with server.client(admin) as c:
        r = c.put("/v1/admin/styles", json=style)
        assert r.status_code == 200, r.text
        again = c.put("/v1/admin/styles", json={**style, "negative_prompt": "photo"})
        assert again.json()["id"] == r.json()["id"] and again.json()["negative_prompt"] == "photo"
        assert c.put("/v1/admin/styles", json={**style, "group_id": 99999}).status_code == 404
        assert c.put("/v1/admin/styles", json={**style, "name": "Bad Name"}).status_code == 400

        lora = {"id": "ink-v1", "name": "Ink", "type": "IMAGE", "source": "/loras/ink.safetensors"}
        assert c.put("/v1/admin/lora-templates", json=lora).status_code == 200
        video = {**lora, "id": "wobble", "type": "VIDEO"}
        assert c.put("/v1/admin/lora-templates", json=video).status_code == 200
        bad = c.put("/v1/admin/lora-templates", json={**lora, "type": "AUDIO"})
        assert bad.status_code == 400
    with server.client(user) as u:
        images = u.get("/v1/lora-templates", params={"type": "IMAGE"}).json()["data"]
        assert [x["id"] for x in images] == ["ink-v1"]
        assert len(u.get("/v1/lora-templates").json()["data"]) == 2
    # Pipelines see edits through the catalog view.
    assert server.services.catalog.style("watercolor") is not None
    styled, neg = server.services.catalog.style("watercolor").apply("a fox", "blurry")  # type: ignore[union-attr]
    assert styled == "watercolor of a fox" and neg == "blurry, photo"
    with server.client(admin) as c:
        assert c.delete(f"/v1/admin/styles/{r.json()['id']}").status_code == 204
        assert c.delete(f"/v1/admin/styles/{r.json()['id']}").status_code == 404
        assert c.delete("/v1/admin/lora-templates/wobble").status_code == 204
    assert server.services.catalog.style("watercolor") is None


def test_seeding_is_idempotent_and_keeps_edits(server: LiveServer) -> None:
    catalog = server.services.catalog
    catalog.put_style(task="text_to_image", name="anime", fields={"prompt": "my anime {prompt}"})
    assert catalog.seed() == 0
    assert catalog.style("anime").prompt == "my anime {prompt}"  # type: ignore[union-attr]
