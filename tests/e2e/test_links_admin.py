"""Shareable links in the administration page: the admin decides who may create them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.conftest import LoggedInUser, MakeUser
from tests.e2e.conftest import OpenPage
from tests.timing import eventually


async def _may_share(admin: LoggedInUser, person: LoggedInUser, wanted: bool) -> bool:
    users = (await admin.http.get("/api/admin/users")).json()["users"]
    return bool(next(u for u in users if u["id"] == person.id)["can_share_links"] is wanted)


async def test_the_admin_stops_a_user_from_sharing_links_and_lets_them_again(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """Unticking Carol's "Share links" in the users table stops her creating links at once
    (403); ticking it again lets her."""
    carol = await make_user()
    page = await open_page(admin)
    await page.click("#nav-admin")
    box = page.locator(f"table#users tr[data-id='{carol.id}'] input.share-links")
    await expect(box).to_be_checked()
    await box.uncheck()
    await expect(page.locator("#admin-status")).to_contain_text("no longer create shareable")
    await eventually(lambda: _may_share(admin, carol, False), "Carol's sharing switched off")
    link = {"subject": "s", "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    assert (await carol.http.post("/api/links", json=link)).status_code == 403
    await box.check()
    await eventually(lambda: _may_share(admin, carol, True), "Carol's sharing switched on")
    assert (await carol.http.post("/api/links", json=link)).status_code == 201
