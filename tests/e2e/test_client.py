"""The browser client end to end: real people in real Chromium tabs against a live server.

Each test drives the client in `static/` through the names `docs/client.md` promises (ids,
classes, data attributes), sets up what it is not about over the HTTP API, and asserts what a
person would see on screen, or what the server then holds. Live behaviour is held to the
contract's deadline of 1 s, counted from the action that causes it (REALTIME_TEST_TIME_FACTOR
stretches the tests' other waits, never that deadline).

A person's `http` (the `make_user` of `tests/e2e/conftest.py`) talks to the live server the
browsers are connected to, so that what it sends arrives in open tabs at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, FilePayload, Locator, Page, WebSocketRoute, expect

from tests.conftest import LoggedInUser, MakeUser
from tests.e2e.conftest import SCREENSHOTS, OpenPage
from tests.live_server import LiveServer
from tests.messages_support import box, send_ok, unread, wait_until_past
from tests.timing import TIME_FACTOR, eventually
from tests.vault_support import new_entry, new_folder, upload

# The contract's live deadline: what the server does shows in an open tab within 1 s.
LIVE_MS = 1000
# An expiring message is deleted within 1 s of its expiry; its row goes as soon as the tab hears.
EXPIRY_MS = 1500
UNREAD = re.compile(r"\bunread\b")  # the class that tints an unread inbox row
MAX_FILE = 26_214_400  # 25 MiB, the largest file the server takes

SecondTab = Callable[[Page], Awaitable[Page]]


@pytest.fixture
async def second_tab(
    open_page: OpenPage, live: LiveServer, request: pytest.FixtureRequest
) -> AsyncIterator[SecondTab]:
    """Open another tab of a logged-in page's browser: it shares the session cookie, so the
    client starts logged in, as a person's second tab does (no login form to fill). Its
    screenshot is saved beside those of `open_page`, as `<test>-tab<n>.png`."""
    tabs: list[Page] = []

    async def open_tab(page: Page) -> Page:
        tab = await page.context.new_page()
        tabs.append(tab)
        await tab.goto(live.url + "/")
        await expect(tab.locator("#whoami")).to_be_visible()
        return tab

    yield open_tab
    SCREENSHOTS.mkdir(exist_ok=True)
    for index, tab in enumerate(tabs, start=1):
        if not tab.is_closed():
            path = SCREENSHOTS / f"{request.node.name}-tab{index}.png"
            await tab.screenshot(path=str(path), full_page=True)


# Finding one's way around the client.


async def open_inbox(page: Page) -> Locator:
    """Go to the inbox; return its section."""
    await page.click("#nav-inbox")
    inbox = page.locator("section#inbox")
    await expect(inbox).to_be_visible()
    return inbox


def inbox_row(page: Page, message_id: str) -> Locator:
    return page.locator(f"section#inbox li.message-row[data-id='{message_id}']")


async def open_message(page: Page, message_id: str) -> Locator:
    """Open a message from the inbox; return the message view."""
    await open_inbox(page)
    await inbox_row(page, message_id).click()
    view = page.locator("section#message-view")
    await expect(view).to_be_visible()
    return view


async def open_composer(page: Page) -> None:
    await page.click("#nav-compose")
    await expect(page.locator("section#compose")).to_be_visible()


async def add_recipient(page: Page, person: LoggedInUser) -> None:
    """Type the person's name in To and pick them among the suggestions."""
    chips = page.locator("#to-chips .chip")
    before = await chips.count()
    await page.fill("#to-input", person.user.username)
    await page.click(f"#to-suggestions li[data-kind='user'][data-id='{person.id}']")
    await expect(chips).to_have_count(before + 1)


async def compose_to(page: Page, person: LoggedInUser, subject: str, body: str = "") -> None:
    """Open the composer and fill in a recipient, the subject and the body."""
    await open_composer(page)
    await add_recipient(page, person)
    await page.fill("#subject", subject)
    await page.fill("#body", body)


async def confirmed_sent(page: Page) -> None:
    """Wait for the composer to confirm the send (not merely say it is sending)."""
    await expect(page.locator("#compose-status")).to_contain_text(re.compile(r"\bsent\b", re.I))


async def open_more(page: Page, item: str) -> None:
    """Open the composer's More menu and choose one of its items."""
    await page.click("#more")
    await page.click(item)


async def only_message(person: LoggedInUser) -> dict[str, Any]:
    """The one message in a person's inbox, with its body."""
    [summary] = await box(person)
    answer = await person.http.get(f"/api/messages/{summary['id']}")
    assert answer.status_code == 200, answer.text
    message: dict[str, Any] = answer.json()
    return message


async def attachment(person: LoggedInUser, message_id: str, attachment_id: str) -> httpx.Response:
    answer = await person.http.get(f"/api/messages/{message_id}/attachments/{attachment_id}")
    assert answer.status_code == 200, answer.text
    return answer


async def vault_titles(person: LoggedInUser, folder_id: str | None = None) -> set[str]:
    """The titles of the entries directly in a folder of the person's vault (None: the root)."""
    vault = (await person.http.get("/api/vault")).json()
    return {e["title"] for e in vault["entries"] if e["folder_id"] == folder_id}


async def send_three_attachments(alice: LoggedInUser, bob: LoggedInUser) -> str:
    """Alice sends Bob a credential, a vault entry and a file over HTTP; return the id."""
    entry = await new_entry(alice, title="mail", username="alice", password="m4il")
    report = await upload(alice, b"quarterly figures\n", name="report.txt")
    return await send_ok(alice, bob, subject="keys for you", attachments=[
        {"kind": "credential", "title": "wifi", "username": "guest", "password": "w1f1"},
        {"kind": "entry", "entry_id": entry["id"]},
        {"kind": "file", "upload_id": report["upload_id"]},
    ])


# The high-priority popup and the unread dot.


async def test_a_high_priority_message_pops_up_in_the_recipients_open_tab_within_a_second(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """Alice sends Bob an urgent message from the composer; without a reload, Bob's popup shows
    its sender, subject and body within 1 s."""
    alice, bob = await make_user(display_name="Alice A."), await make_user()
    bob_page = await open_page(bob)
    alice_page = await open_page(alice)
    popup = bob_page.locator("dialog#popup")
    await expect(popup).to_be_hidden()

    await compose_to(alice_page, bob, "Server room on fire", "Leave by the east stairs.")
    await alice_page.check("#high-priority")
    await alice_page.click("#send")

    await expect(popup).to_be_visible(timeout=LIVE_MS)
    await expect(bob_page.locator("#popup-subject")).to_have_text("Server room on fire")
    await expect(bob_page.locator("#popup-body")).to_have_text("Leave by the east stairs.")
    await expect(bob_page.locator("#popup-sender")).to_contain_text("Alice A.")
    await confirmed_sent(alice_page)


async def test_an_unread_high_priority_message_pops_up_at_login_and_close_marks_it_read(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """A message sent before Bob logs in pops up when he does; Close hides it and marks it
    read, so it does not come back."""
    alice, bob = await make_user(), await make_user()
    await send_ok(alice, bob, subject="Board meeting moved", body="Now at 3 pm, room 2.",
                  high_priority=True)

    page = await open_page(bob)
    popup = page.locator("dialog#popup")
    await expect(popup).to_be_visible()
    await expect(page.locator("#popup-subject")).to_have_text("Board meeting moved")
    await expect(page.locator("#popup-body")).to_have_text("Now at 3 pm, room 2.")

    await page.click("#popup-close")
    await expect(popup).to_be_hidden()
    await eventually(lambda: _nothing_unread(bob), "the popup's Close marked the message read")
    await expect(page.locator("#unread-dot")).to_be_hidden(timeout=LIVE_MS)


async def _nothing_unread(person: LoggedInUser) -> bool:
    count: int = (await unread(person))["count"]
    return count == 0


async def test_the_unread_dot_and_row_appear_live_when_a_message_arrives(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """With nothing unread the dot is hidden; a message arriving lights it and adds a tinted
    row at the top of the open inbox within 1 s, without a reload."""
    alice, bob = await make_user(), await make_user()
    page = await open_page(bob)
    await open_inbox(page)
    dot = page.locator("#unread-dot")
    await expect(dot).to_be_hidden()

    message_id = await send_ok(alice, bob, subject="Lunch?")

    await expect(dot).to_be_visible(timeout=LIVE_MS)
    row = inbox_row(page, message_id)
    await expect(row).to_be_visible(timeout=LIVE_MS)
    await expect(row).to_have_class(UNREAD)
    await expect(row.locator(".subject")).to_have_text("Lunch?")
    first = page.locator("section#inbox li.message-row").first
    await expect(first).to_have_attribute("data-id", message_id)


async def test_closing_a_message_in_one_tab_clears_the_dot_in_the_other(
    make_user: MakeUser, open_page: OpenPage, second_tab: SecondTab
) -> None:
    """Bob has two tabs open; he reads a message and presses Close in one, and the unread dot
    goes out in the other within 1 s."""
    alice, bob = await make_user(), await make_user()
    message_id = await send_ok(alice, bob, subject="Quarterly report", body="Attached soon.")
    reading = await open_page(bob)
    other = await second_tab(reading)
    for tab in (reading, other):
        await expect(tab.locator("#unread-dot")).to_be_visible()

    await expect(inbox_row(other, message_id)).to_have_class(UNREAD)
    await open_message(reading, message_id)
    await expect(reading.locator("#message-subject")).to_have_text("Quarterly report")
    await expect(other.locator("#unread-dot")).to_be_visible()
    await reading.click("#close-message")

    await expect(other.locator("#unread-dot")).to_be_hidden(timeout=LIVE_MS)
    await expect(reading.locator("#unread-dot")).to_be_hidden(timeout=LIVE_MS)
    await expect(inbox_row(other, message_id)).not_to_have_class(UNREAD, timeout=LIVE_MS)
    assert (await unread(bob))["count"] == 0


# Composing with attachments.


async def test_composing_with_a_generated_credential_a_vault_entry_and_a_file(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """Alice attaches a credential whose password she picks from the generator, an entry of
    her vault and a file; Bob receives all three, the password being the one she picked."""
    alice, bob = await make_user(), await make_user()
    entry = await new_entry(alice, title="VPN", username="alice", password="vpn-s3cret")
    page = await open_page(alice)
    await compose_to(page, bob, "Access for your first day", "Welcome aboard.")

    await open_more(page, "#add-credentials")
    await expect(page.locator("form#credential-form")).to_be_visible()
    await page.fill("#cred-title", "Wi-Fi")
    await page.fill("#cred-username", "guest")
    await page.click("#cred-generate")
    await expect(page.locator("#generator")).to_be_visible()
    candidates = page.locator("#gen-candidates li button")
    await expect(candidates.first).to_be_visible()
    await page.locator("#gen-symbols").set_checked(False)
    await page.click("#gen-refresh")
    await eventually(lambda: _all_alphanumeric(candidates), "candidates without symbols")
    await settled(candidates)
    chosen = await candidates.last.element_handle()
    password = (await chosen.text_content() or "").strip()
    assert re.fullmatch(r"[A-Za-z0-9]{8,128}", password), password
    await chosen.click()
    await expect(page.locator("#cred-password")).to_have_value(password)
    await page.click("#cred-add")

    await open_more(page, "#add-entries")
    picker = page.locator("dialog#entry-picker")
    await expect(picker).to_be_visible()
    await picker.locator(
        f"li[data-kind='entry'][data-id='{entry['id']}'] input[type=checkbox]"
    ).check()
    await page.click("#entry-picker-add")
    await expect(picker).to_be_hidden()

    handbook = FilePayload(name="handbook.txt", mimeType="text/plain", buffer=b"Read me first.\n")
    await page.set_input_files("#file-input", files=[handbook])
    listed = page.locator("#compose-attachments li")
    await expect(listed).to_have_count(3)
    for name in ("Wi-Fi", "VPN", "handbook.txt"):
        await expect(listed.filter(has_text=name)).to_have_count(1)

    await page.click("#send")
    await confirmed_sent(page)
    await expect(page.locator("#compose-error")).to_be_hidden()

    message = await only_message(bob)
    assert message["subject"] == "Access for your first day"
    kinds = {a["kind"]: a for a in message["attachments"]}
    assert sorted(kinds) == ["credential", "entry", "file"]
    credential = (await attachment(bob, message["id"], kinds["credential"]["id"])).json()
    assert (credential["title"], credential["username"]) == ("Wi-Fi", "guest")
    assert credential["password"] == password
    copied = (await attachment(bob, message["id"], kinds["entry"]["id"])).json()["entry"]
    assert (copied["title"], copied["password"]) == ("VPN", "vpn-s3cret")
    file = await attachment(bob, message["id"], kinds["file"]["id"])
    assert kinds["file"]["name"] == "handbook.txt"
    assert file.content == b"Read me first.\n"


async def settled(items: Locator) -> None:
    """Wait until a list's texts stay the same for a moment: both the option's change and
    Refresh may fetch candidates, and the later answer may replace the earlier list."""
    before = await items.all_text_contents()
    for _ in range(20):
        await asyncio.sleep(0.3 * TIME_FACTOR)
        now = await items.all_text_contents()
        if now == before:
            return
        before = now
    raise AssertionError(f"the list keeps changing: {before}")


async def _all_alphanumeric(candidates: Locator) -> bool:
    texts = [text.strip() for text in await candidates.all_text_contents()]
    return bool(texts) and all(re.fullmatch(r"[A-Za-z0-9]+", text) for text in texts)


async def test_a_file_over_25_mib_is_refused_in_the_browser(
    make_user: MakeUser, open_page: OpenPage, raw_db: asyncpg.Connection
) -> None:
    """Choosing a file one byte over 25 MiB shows a message in the composer, attaches
    nothing and uploads nothing."""
    alice, bob = await make_user(), await make_user()
    page = await open_page(alice)
    uploads: list[str] = []
    page.on("request", lambda request: uploads.append(request.url)
            if "/api/uploads" in request.url else None)
    await compose_to(page, bob, "The big one")

    huge = FilePayload(name="huge.bin", mimeType="text/plain", buffer=bytes(MAX_FILE + 1))
    # 25 MiB travel to the browser first: that may take longer than a click.
    await page.set_input_files("#file-input", files=[huge], timeout=60_000 * TIME_FACTOR)

    error = page.locator("#compose-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text(re.compile(r"25|too (large|big)", re.IGNORECASE))
    await expect(page.locator("#compose-attachments li")).to_have_count(0)
    await page.wait_for_timeout(500 * TIME_FACTOR)
    assert uploads == []
    assert await raw_db.fetchval("select count(*) from files") == 0


async def test_send_copy_of_a_vault_folder(make_user: MakeUser, open_page: OpenPage) -> None:
    """Send copy on a folder of the vault opens the composer with the folder attached; Bob
    receives the folder with its entries."""
    alice, bob = await make_user(), await make_user()
    team = await new_folder(alice, "Team logins")
    await new_entry(alice, folder_id=team, title="router", username="admin", password="r0uter")
    await new_entry(alice, folder_id=team, title="printer", username="lab", password="t0ner")
    await new_entry(alice, title="not in the folder")
    page = await open_page(alice)

    await page.click("#nav-vault")
    await expect(page.locator("section#vault")).to_be_visible()
    folder_row = page.locator(f"#vault-tree li.folder[data-id='{team}']")
    await expect(folder_row).to_be_visible()
    await expect(folder_row).to_contain_text("Team logins")
    # The folder's own button: the one whose nearest list item is the folder's row.
    await folder_row.locator(
        f"xpath=.//button[contains(concat(' ', @class, ' '), ' send-copy ')]"
        f"[ancestor::li[1][@data-id='{team}']]"
    ).click()

    await expect(page.locator("section#compose")).to_be_visible()
    attached = page.locator("#compose-attachments li")
    await expect(attached).to_have_count(1)
    await expect(attached).to_contain_text("Team logins")
    await add_recipient(page, bob)
    await page.fill("#subject", "The team's logins")
    await page.click("#send")
    await confirmed_sent(page)

    message = await only_message(bob)
    [folder] = message["attachments"]
    assert (folder["kind"], folder["name"]) == ("folder", "Team logins")
    tree = (await attachment(bob, message["id"], folder["id"])).json()["folder"]
    assert tree["name"] == "Team logins"
    assert {(e["title"], e["password"]) for e in tree["entries"]} == {
        ("router", "r0uter"), ("printer", "t0ner"),
    }


# Reading, saving, expiry.


async def test_saving_a_messages_attachments_into_the_vault_and_into_a_folder(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """Save in vault copies every attachment to the vault's root and says so; Save as puts
    another copy into the folder chosen in its dialog."""
    alice, bob = await make_user(), await make_user()
    message_id = await send_three_attachments(alice, bob)
    keep = await new_folder(bob, "From Alice")
    page = await open_page(bob)
    await open_message(page, message_id)
    await expect(page.locator("ul#message-attachments li[data-id]")).to_have_count(3)

    await page.click("#save-vault")
    await expect(page.locator("#message-status")).to_contain_text("Saved")
    await eventually(lambda: _titles_are(bob, None, {"wifi", "mail", "report.txt"}),
                     "the three attachments saved at the vault's root")

    await page.click("#save-as")
    dialog = page.locator("dialog#save-as-dialog")
    await expect(dialog).to_be_visible()
    option = dialog.locator("#save-folder option").filter(has_text="From Alice")
    await dialog.locator("select#save-folder").select_option(
        value=await option.get_attribute("value")
    )
    await dialog.locator("#save-confirm").click()
    await expect(dialog).to_be_hidden()
    await eventually(lambda: _titles_are(bob, keep, {"wifi", "mail", "report.txt"}),
                     "the three attachments saved in the chosen folder")
    await expect(page.locator("#message-status")).to_contain_text("Saved")
    assert await vault_titles(bob) == {"wifi", "mail", "report.txt"}


async def _titles_are(person: LoggedInUser, folder_id: str | None, titles: set[str]) -> bool:
    return await vault_titles(person, folder_id) == titles


async def test_an_expiring_message_vanishes_from_an_open_inbox(
    make_user: MakeUser, open_page: OpenPage, raw_db: asyncpg.Connection
) -> None:
    """Bob's open inbox shows a message until it expires; its row then goes without a reload,
    within about a second."""
    alice, bob = await make_user(), await make_user()
    page = await open_page(bob)
    await open_inbox(page)
    expires_at = (datetime.now(UTC) + timedelta(seconds=3 * TIME_FACTOR)).isoformat()
    message_id = await send_ok(
        alice, bob, subject="Self-destructs", expires_at=expires_at
    )
    row = inbox_row(page, message_id)
    await expect(row).to_be_visible(timeout=LIVE_MS)
    await expect(row.locator(".expires-at")).not_to_be_empty()

    await wait_until_past(raw_db, expires_at)
    await expect(row).to_have_count(0, timeout=EXPIRY_MS)
    await expect(page.locator("#unread-dot")).to_be_hidden(timeout=LIVE_MS)


async def test_a_body_with_html_is_shown_as_text(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """A body and subject holding markup and script show literally: no element is made from
    them and no script runs."""
    alice, bob = await make_user(), await make_user()
    body = "<script>window.__pwned = 1</script><b>bold</b>"
    subject = '<img src=x onerror="window.__pwned = 2">hi'
    message_id = await send_ok(alice, bob, subject=subject, body=body)
    page = await open_page(bob)

    await open_inbox(page)
    await expect(inbox_row(page, message_id).locator(".subject")).to_have_text(subject)
    await expect(inbox_row(page, message_id).locator(".subject img")).to_have_count(0)
    await open_message(page, message_id)
    shown = page.locator("#message-body")
    await expect(shown).to_have_text(body)
    assert await shown.text_content() == body
    await expect(shown.locator("b")).to_have_count(0)
    await expect(shown.locator("script")).to_have_count(0)
    await expect(page.locator("#message-subject")).to_have_text(subject)
    assert await page.evaluate("typeof window.__pwned") == "undefined"


# Administration.


async def test_a_user_the_admin_stops_from_sending_is_told_why_their_send_failed(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """The admin sets Carol's sending to "not allowed"; Carol's next send is refused with a
    clear message in the composer, and nothing is delivered."""
    carol, bob = await make_user(), await make_user()
    carol_page = await open_page(carol)
    admin_page = await open_page(admin)

    await admin_page.click("#nav-admin")
    await expect(admin_page.locator("section#admin")).to_be_visible()
    setting = admin_page.locator(f"table#users tr[data-id='{carol.id}'] select.send-setting")
    await expect(setting).to_have_value("attach")
    await setting.select_option("none")
    await expect(admin_page.locator("#admin-status")).not_to_be_empty()
    await eventually(lambda: _can_send(admin, carol, False), "Carol's sending switched off")

    await compose_to(carol_page, bob, "Can I still write?", "Just checking.")
    await carol_page.click("#send")
    error = carol_page.locator("#compose-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("not allowed")
    await expect(carol_page.locator("#compose-status")).to_be_empty()
    assert await box(bob) == []


async def _can_send(admin: LoggedInUser, person: LoggedInUser, wanted: bool) -> bool:
    users = (await admin.http.get("/api/admin/users")).json()["users"]
    return bool(next(u for u in users if u["id"] == person.id)["can_send"] is wanted)


async def test_the_admin_link_is_shown_to_admins_only(
    make_user: MakeUser, admin: LoggedInUser, open_page: OpenPage
) -> None:
    """An admin sees Administration in the navigation; an ordinary user does not."""
    someone = await make_user()
    admin_page = await open_page(admin)
    user_page = await open_page(someone)
    await expect(admin_page.locator("#nav-admin")).to_be_visible()
    await expect(user_page.locator("#nav-admin")).to_be_hidden()
    await expect(user_page.locator("#whoami")).to_have_text(someone.user.display_name)


# The page itself.


async def test_the_page_is_served_with_a_strict_content_security_policy_it_keeps_to(
    make_user: MakeUser, open_page: OpenPage, live: LiveServer
) -> None:
    """The page forbids foreign and inline scripts and framing, and the client runs under
    that policy without a violation or an uncaught error."""
    page = await open_page(await make_user())
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    response = await page.goto(live.url + "/")
    assert response is not None and response.ok
    policy = await response.header_value("content-security-policy") or ""
    directives = {part.strip().split(" ", 1)[0]: part.strip() for part in policy.split(";")}
    assert "'self'" in directives["script-src"].split()
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    await expect(page.locator("#whoami")).to_be_visible()
    await open_inbox(page)
    await open_composer(page)
    await page.click("#nav-vault")
    await expect(page.locator("section#vault")).to_be_visible()
    assert problems == []


async def test_a_narrow_window_still_shows_the_navigation(
    make_user: MakeUser, open_page: OpenPage
) -> None:
    """On a phone-sized window (390 px) the navigation and the messages icon are on screen,
    and the page does not scroll sideways."""
    page = await open_page(await make_user(), width=390)
    for item in ("#messages-button", "#nav-inbox", "#nav-sent", "#nav-compose", "#nav-vault"):
        target = page.locator(item)
        await expect(target).to_be_visible()
        await expect(target).to_be_in_viewport()
        where = await target.bounding_box()
        assert where is not None and where["x"] >= 0 and where["x"] + where["width"] <= 390, item
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await open_composer(page)
    await expect(page.locator("#send")).to_be_visible()


# Live behaviour across a lost connection.


async def test_a_message_sent_while_the_tab_was_offline_appears_once_after_it_reconnects(
    make_user: MakeUser, open_page: OpenPage, browser: Browser, request: pytest.FixtureRequest
) -> None:
    """With Bob's socket cut and reconnections refused, a message sent to him meanwhile shows
    once his tab is back, by resuming, and exactly once even after another reconnection."""
    alice, bob = await make_user(), await make_user()
    context = await browser.new_context()
    connected: list[WebSocketRoute] = []
    refusing = False

    async def through(socket: WebSocketRoute) -> None:
        if refusing:
            await socket.close(code=1001, reason="offline")
            return
        socket.connect_to_server()
        connected.append(socket)

    await context.route_web_socket(re.compile(r"/ws$"), through)
    try:
        page = await open_page(bob, context=context)
        await open_inbox(page)
        await expect(page.locator("#live-status")).to_contain_text(re.compile("live", re.I))
        refusing = True
        await connected[-1].close(code=1001, reason="cut")

        message_id = await send_ok(alice, bob, subject="While you were away")
        await page.wait_for_timeout(1500 * TIME_FACTOR)
        await expect(inbox_row(page, message_id)).to_have_count(0)

        refusing = False
        await expect(inbox_row(page, message_id)).to_have_count(1, timeout=35_000 * TIME_FACTOR)
        await expect(page.locator("#unread-dot")).to_be_visible()

        reconnected = len(connected)
        await connected[-1].close(code=1001, reason="cut again")
        await eventually(lambda: len(connected) > reconnected, "the tab to reconnect",
                         within=35)
        await page.wait_for_timeout(500 * TIME_FACTOR)
        await expect(inbox_row(page, message_id)).to_have_count(1)
        SCREENSHOTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-0.png"))
    finally:
        await context.close()
