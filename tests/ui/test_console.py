"""The web console at /ui in a real headless Chromium against a live registry process."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, running_registry
from tests.support.ui_console import ADMIN_TOKEN, ARTIFACTS, REGISTRY_ENV, ConsolePage, Heartbeats

pytestmark = pytest.mark.integration


def row(page: Any, iid: str) -> Any:
    return page.locator(f'#instances-body tr[data-id="{iid}"]')


def open_console(cp: ConsolePage, registry: RegistryProcess) -> Any:
    page = cp.page
    page.goto(registry.url + "/ui/")
    page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    return page


def test_the_console_loads_without_console_errors_and_lists_the_registered_instances(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    heartbeats.register("auth-1", "Auth", version="1.2.0", metadata={"zone": "eu-1"})
    heartbeats.register("auth-2", "Auth", version="1.2.0", port=3002)
    heartbeats.register("user-1", "User", version="2.0.1", status="STARTING", host="10.0.1.7", port=4001)
    page = open_console(console_page, registry)

    wait_until(lambda: page.locator("#instances-body tr").count() == 3, timeout=5, message="three rows")
    first = row(page, "auth-1")
    assert first.locator(".col-address").inner_text() == "10.0.0.1:3001"
    assert first.locator(".col-version").inner_text() == "1.2.0"
    assert first.locator(".col-status").inner_text() == "UP"
    assert first.locator(".col-metadata").inner_text() == "zone=eu-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first.locator(".col-registered").inner_text())
    assert first.locator(".col-age").inner_text().endswith("ago")
    assert row(page, "user-1").locator(".col-status").inner_text() == "STARTING"
    services = page.locator("#services-body tr")
    assert services.count() == 2
    assert services.nth(0).inner_text().split() == ["Auth", "2", "2", "0", "0", "0"]
    assert services.nth(1).inner_text().split() == ["User", "1", "0", "0", "1", "0"]
    assert page.locator("h1").inner_text() == "Service registry"
    assert page.locator("main").count() == 1 and page.locator("header").count() == 1
    assert page.locator("#announcer[aria-live=polite]").count() == 1

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
    assert console_page.errors == []


def test_a_new_registration_and_an_expiry_show_within_2s_without_a_reload(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    heartbeats.register("cart-1", "Cart")
    page = open_console(console_page, registry)
    wait_until(lambda: row(page, "cart-1").count() == 1, timeout=5, message="cart-1 listed")
    page.evaluate("window.__sameDocument = true")

    heartbeats.register("cart-2", "Cart", version="9.9.9")
    wait_until(lambda: row(page, "cart-2").count() == 1, timeout=2, message="the new registration shown")
    wait_until(lambda: "cart-2 (Cart) registered" in page.locator("#announcer").inner_text(), timeout=3,
               message="the registration announced to screen readers")

    heartbeats.forget("cart-1")  # its lease runs out 1 s after the last heartbeat
    expired = wait_until(lambda: httpx.get(registry.url + "/instances/cart-1").status_code == 404, timeout=5,
                         message="cart-1 to expire in the registry")
    assert expired
    gone_at = time.monotonic()
    wait_until(lambda: row(page, "cart-1").count() == 0, timeout=2, message="the expiry shown")
    assert time.monotonic() - gone_at < 2
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert page.locator('#services-body tr:has-text("Cart")').inner_text().split()[:2] == ["Cart", "1"]
    assert console_page.errors == []


def test_filters_narrow_the_instances_by_name_and_status(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    heartbeats.register("web-1", "Web")
    heartbeats.register("web-2", "Web", status="DOWN")
    heartbeats.register("db-1", "Db")
    page = open_console(console_page, registry)
    wait_until(lambda: page.locator("#instances-body tr").count() == 3, timeout=5, message="three rows")

    page.get_by_label("Service or ID contains").fill("web")
    assert page.locator("#instances-body tr").count() == 2
    page.get_by_label("Status", exact=True).select_option("DOWN")
    ids = page.locator("#instances-body tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert ids == ["web-2"]
    assert page.locator("#shown-count").inner_text() == "Showing 1 of 3 instances."
    page.get_by_label("Service or ID contains").fill("nothing-like-it")
    assert page.locator("#instances-empty").inner_text() == "No instance matches the filters."
    assert console_page.errors == []


def test_without_the_admin_token_no_admin_action_is_offered(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    heartbeats.register("ro-1", "Ro")
    page = open_console(console_page, registry)
    wait_until(lambda: row(page, "ro-1").count() == 1, timeout=5, message="ro-1 listed")
    assert page.get_by_role("button", name="Deregister ro-1").count() == 0  # hidden: not in the a11y tree
    assert not page.locator('button[data-action="status"]').first.is_visible()
    assert not page.locator("thead .col-actions").is_visible()
    assert page.get_by_label("Admin token").is_visible()
    assert console_page.errors == []


def test_with_the_admin_token_an_operator_changes_a_status_and_deregisters(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    heartbeats.register("op-1", "Op")
    heartbeats.register("op-2", "Op")
    page = open_console(console_page, registry)
    wait_until(lambda: row(page, "op-2").count() == 1, timeout=5, message="op-2 listed")

    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_label("Admin token").press("Enter")  # keyboard: the form submits
    page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    assert page.evaluate("sessionStorage.getItem('registry.adminToken')") == ADMIN_TOKEN
    assert page.get_by_role("button", name="Deregister op-1").is_visible()

    page.get_by_label("New status for op-1").select_option("DOWN")
    page.get_by_role("button", name="Set status of op-1").click()
    wait_until(lambda: row(page, "op-1").locator(".col-status").inner_text() == "DOWN", timeout=2,
               message="op-1 shown DOWN")
    assert httpx.get(registry.url + "/instances/op-1").json()["status"] == "DOWN"

    page.get_by_role("button", name="Deregister op-2").click()  # confirm() is accepted by the fixture
    wait_until(lambda: row(page, "op-2").count() == 0, timeout=2, message="op-2 removed")
    assert httpx.get(registry.url + "/instances/op-2").status_code == 404
    heartbeats.forget("op-2")
    assert page.locator("#error").is_hidden()

    page.get_by_role("button", name="Forget the admin token").click()
    assert page.get_by_role("button", name="Deregister op-1").count() == 0
    assert console_page.errors == []


def test_a_wrong_admin_token_is_refused_with_a_clear_message(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    heartbeats.register("wr-1", "Wr")
    page = open_console(console_page, registry)
    page.get_by_label("Admin token").fill("not-the-admin-token")
    page.get_by_role("button", name="Use").click()
    page.get_by_role("button", name="Deregister wr-1").click()
    alert = page.get_by_role("alert")
    wait_until(lambda: alert.is_visible(), timeout=2, message="the error shown")
    assert "Is this the admin token" in alert.inner_text()
    assert "Could not deregister wr-1" in alert.inner_text()
    assert httpx.get(registry.url + "/instances/wr-1").status_code == 200


def test_when_the_change_stream_fails_the_page_falls_back_to_polling(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    page = console_page.page
    page.route("**/events*", lambda route: route.abort())  # as a proxy that drops event streams would
    heartbeats.register("poll-1", "Poll")
    page.goto(registry.url + "/ui/")
    page.wait_for_selector('#connection[data-state="polling"]', timeout=10_000)
    wait_until(lambda: row(page, "poll-1").count() == 1, timeout=5, message="poll-1 listed")
    heartbeats.register("poll-2", "Poll")
    wait_until(lambda: row(page, "poll-2").count() == 1, timeout=4, message="poll-2 shown by polling")
    heartbeats.forget("poll-1")
    wait_until(lambda: row(page, "poll-1").count() == 0, timeout=5, message="poll-1's expiry shown by polling")


def test_on_a_phone_the_page_fits_the_screen(browser: Any, registry: RegistryProcess,
                                             heartbeats: Heartbeats) -> None:
    heartbeats.register("phone-1", "Phone", metadata={"zone": "eu-1", "canary": "true"})
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(registry.url + "/ui/")
        wait_until(lambda: row(page, "phone-1").count() == 1, timeout=5, message="phone-1 listed")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-phone.png"), full_page=True)
    finally:
        page.close()


def test_when_reads_are_guarded_the_page_asks_for_a_token_and_then_follows_the_stream(
        console_page: ConsolePage, tmp_path: Path) -> None:
    env = {**REGISTRY_ENV, "REGISTRY_READ_TOKEN": "read-token-of-the-console-tests"}
    with running_registry(tmp_path, redis_url=None, ttl=30.0, sweep=0.1, extra_env=env) as guarded:
        guarded.wait_healthy()
        resp = httpx.post(guarded.url + "/instances", json={"id": "g-1", "name": "Guarded", "port": 1, "host": "h"})
        assert resp.status_code == 201
        page = console_page.page
        page.goto(guarded.url + "/ui/")
        page.wait_for_selector('#connection[data-state="unauthorized"]', timeout=10_000)
        page.get_by_label("Read token").fill("read-token-of-the-console-tests")
        page.get_by_label("Read token").press("Enter")
        page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
        wait_until(lambda: row(page, "g-1").count() == 1, timeout=2, message="g-1 listed")
        httpx.post(guarded.url + "/instances", json={"id": "g-2", "name": "Guarded", "port": 2, "host": "h"})
        wait_until(lambda: row(page, "g-2").count() == 1, timeout=2, message="g-2 shown live")
    # Only the first, token-less reads were refused.
    assert console_page.errors and all("401" in e for e in console_page.errors)


def test_the_sse_parser_handles_crlf_split_across_chunks(console_page: ConsolePage,
                                                         registry: RegistryProcess) -> None:
    page = console_page.page
    page.goto(registry.url + "/ui/")
    events = page.evaluate("""async () => {
        const { SseParser } = await import("./sse.js");
        const parser = new SseParser();
        const out = [];
        const chunks = ["id: 1-0\\r\\nevent: registered\\r", "\\ndata: {\\"a\\":",
                        "1}\\r\\n\\r\\n: ping\\r\\n\\r\\n", "data: x\\ndata: y\\n\\n"];
        for (const chunk of chunks) out.push(...parser.push(chunk));
        return out;
    }""")
    assert events == [{"event": "registered", "data": '{"a":1}', "id": "1-0"},
                      {"event": "message", "data": "x\ny", "id": None}]


def test_the_console_is_served_with_a_strict_content_security_policy(registry: RegistryProcess) -> None:
    resp = httpx.get(registry.url + "/ui", follow_redirects=True)
    assert resp.status_code == 200 and str(resp.url).endswith("/ui/")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(registry.url + "/ui/app.js").headers["content-type"].split(";")[0] in (
        "text/javascript", "application/javascript")


def test_while_the_first_answer_loads_the_page_says_loading_not_no_services(
        console_page: ConsolePage, registry: RegistryProcess, heartbeats: Heartbeats) -> None:
    heartbeats.register("load-1", "Loadcheck")
    page = console_page.page
    held: list[Any] = []
    page.route("**/instances", lambda route: held.append(route))  # held until the test lets it through
    page.goto(registry.url + "/ui/", wait_until="domcontentloaded")
    wait_until(lambda: page.evaluate("1") == 1 and bool(held), timeout=10, message="the snapshot request")
    assert page.locator("#services-empty").inner_text() == "Loading…"
    assert page.locator("#instances-empty").inner_text() == "Loading…"
    assert "No services registered" not in page.locator("main").inner_text()

    for route in held:
        route.continue_()
    page.unroute("**/instances")
    wait_until(lambda: row(page, "load-1").count() == 1, timeout=10, message="the instance listed")
    assert page.locator("#services-empty").is_hidden()
    assert console_page.errors == []


def test_the_root_leads_to_the_console(registry: RegistryProcess) -> None:
    resp = httpx.get(registry.url + "/")
    assert resp.status_code == 308 and resp.headers["location"] == "ui/"
    followed = httpx.get(registry.url + "/", follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url) == registry.url + "/ui/"
    assert "<h1>Service registry</h1>" in followed.text


def test_the_api_page_lists_every_operation_and_sends_one(console_page: ConsolePage, registry: RegistryProcess,
                                                         heartbeats: Heartbeats) -> None:
    heartbeats.register("docs-1", "Docscheck", version="3.1.0")
    resp = httpx.get(registry.url + "/docs")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert "https://" not in resp.text and "http://" not in resp.text  # nothing from the internet

    page = console_page.page
    page.goto(registry.url + "/docs")
    spec = httpx.get(registry.url + "/openapi.json").json()
    expected = [f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item]
    wait_until(lambda: page.locator("#operations details").count() == len(expected), timeout=10,
               message="every operation listed")
    assert sorted(page.locator("#operations details summary code").all_inner_texts()) == sorted(expected)

    operation = page.locator("details", has=page.locator("code", has_text="GET /services/{name}"))
    operation.locator("summary").click()
    operation.get_by_label("name (path, required)").fill("Docscheck")
    operation.get_by_role("button", name="Send").click()
    answer = operation.locator("pre.answer")
    wait_until(lambda: answer.inner_text().startswith("200"), timeout=10, message="the answer shown")
    assert '"id": "docs-1"' in answer.inner_text() and '"version": "3.1.0"' in answer.inner_text()
    assert console_page.errors == []
