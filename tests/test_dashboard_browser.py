"""The dashboard in a real browser (Debian's Chromium, headless) against a real 3-node cluster.

CI installs ``chromium`` and sets ``RAFT3D_REQUIRE_BROWSER=1``, so there these tests run or
fail; on a machine without ``/usr/bin/chromium`` they are skipped and say why. The screenshot
goes to the test's temp dir, or to ``RAFT3D_SCREENSHOT`` when set (the README's image is made
that way).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raft3d.security.tokens import hash_token
from tests.support.procs import NodeProcess, ProcessCluster, http_json, wait_until
from tests.support.secure import TOKENS

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("RAFT3D_REQUIRE_BROWSER") != "1":
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

# No sandbox (CI runs as root in a container) and nothing the browser would fetch by itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
LIVE_MS = 15_000  # a change on any node must show within this (the cluster panel polls every ~1 s)
# Every expectation polls until it holds or this passes: generous for a loaded 2-core machine.
expect.set_options(timeout=LIVE_MS)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, 3) as c:
        c.start()
        yield c
        print(c.logs())  # shown only when the test failed


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def api(node: NodeProcess, method: str, path: str, body: object = None) -> Any:
    status, payload, _ = http_json(method, f"{node.url}/api/v1{path}", body)
    assert status in (200, 201), (status, payload)
    return payload


def test_dashboard_drives_the_farm_and_survives_its_node(
    cluster: ProcessCluster, page: Page, tmp_path: Path
) -> None:
    leader = cluster.wait_for_leader(timeout=20)
    others = [n for n in cluster.nodes.values() if n is not leader]
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(leader.url + "/")

    # The cluster panel: every member, one leader.
    rows = page.locator("#cluster-rows tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#cluster-rows .role.leader")).to_have_count(1)
    expect(page.locator(f'#cluster-rows tr[data-node="{leader.node_id}"] .role')).to_have_text(
        "leader"
    )
    expect(page.locator("#cluster-leader")).to_have_text(re.compile(rf"Leader: {leader.node_id} "))

    # Accessible markup: every field has a label, every action is a real button.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select")]
            .filter((e) => !e.id || !document.querySelector(`label[for="${e.id}"]`))
            .map((e) => e.name)"""
    )
    assert unlabelled == []
    assert (
        page.locator("[onclick], a:not([href]), div[role=button], span[role=button]").count() == 0
    )
    expect(page.get_by_role("button", name="Add printer")).to_be_visible()

    # A printer through the form.
    form = page.locator("#printer-form")
    form.get_by_label("Id").fill("p1")
    form.get_by_label("Company").fill("Creality")
    form.get_by_label("Model").fill("Ender 3")
    form.get_by_role("button", name="Add printer").click()
    expect(page.locator('[data-printer="p1"]')).to_contain_text("Creality Ender 3")
    assert api(others[0], "GET", "/printers/p1") == {
        "id": "p1",
        "company": "Creality",
        "model": "Ender 3",
    }

    # A bad form shows the API's message inline, next to the field it names.
    form.get_by_label("Id").fill("p2")
    form.get_by_label("Model").fill("MK4")
    form.get_by_role("button", name="Add printer").click()
    alert = form.get_by_role("alert")
    expect(alert).to_contain_text("the body is not valid")
    expect(alert).to_contain_text("Company: Missing data for required field.")
    expect(form.get_by_label("Company")).to_have_attribute("aria-invalid", "true")
    assert http_json("GET", f"{leader.url}/api/v1/printers/p2")[0] == 404  # changed nothing

    # A roll made through the API on another node appears without a reload.
    roll = {"id": "f1", "type": "PLA", "color": "red", "total_weight_in_grams": 1000}
    api(others[1], "POST", "/filaments", roll)
    expect(page.locator('[data-roll="f1"]')).to_contain_text("1000 g available")

    # Changes come from the node's event stream, not from polling the event log.
    assert any("/api/v1/events/stream?after=" in url for url in asked), asked
    assert not any("/api/v1/events?" in url for url in asked), asked

    # A job through the form reserves its weight; the roll's bar shows it.
    jobs = page.locator("#job-form")
    jobs.get_by_label("Id").fill("j1")
    expect(jobs.get_by_label("Printer")).to_contain_text("p1")
    jobs.get_by_label("Printer").select_option("p1")
    jobs.get_by_label("Roll").select_option("f1")
    jobs.get_by_label("File path").fill("prints/sword/hilt.gcode")
    jobs.get_by_label("Weight (g)").fill("300")
    jobs.get_by_role("button", name="Queue job").click()
    row = page.locator('#job-rows tr[data-job="j1"]')
    expect(row).to_contain_text("Queued")
    expect(page.locator('[data-roll="f1"]')).to_contain_text("700 g available")
    expect(page.locator('[data-roll="f1"]')).to_contain_text("300 g reserved")

    # More than the roll can give: refused, said inline, nothing queued.
    jobs.get_by_label("Id").fill("j-too-big")
    jobs.get_by_label("File path").fill("prints/armour.gcode")
    jobs.get_by_label("Weight (g)").fill("900")
    jobs.get_by_role("button", name="Queue job").click()
    expect(jobs.get_by_role("alert")).to_contain_text("has 700 g available, the job needs 900 g")
    expect(page.locator('#job-rows tr[data-job="j-too-big"]')).to_have_count(0)

    # Only the legal transitions are offered; clicking one changes the job everywhere.
    expect(row.get_by_role("button")).to_have_text(["Start", "Cancel"])
    row.get_by_role("button", name="Start job j1").click()
    expect(row).to_contain_text("Running")
    expect(row.get_by_role("button")).to_have_text(["Mark done", "Cancel"])
    expect(page.locator('[data-printer="p1"]')).to_contain_text("Printing prints/sword/hilt.gcode")
    assert api(others[0], "GET", "/print_jobs/j1")["status"] == "Running"

    # A change made on another node shows up live.
    api(others[0], "POST", "/print_jobs/j1/status?status=done")
    expect(row).to_contain_text("Done")
    expect(row.get_by_role("button")).to_have_count(0)
    expect(page.locator('[data-roll="f1"]')).to_contain_text("700 / 1000 g remaining")
    job2 = {
        "id": "j2",
        "printer_id": "p1",
        "filament_id": "f1",
        "filepath": "prints/shield.gcode",
        "print_weight_in_grams": 120,
    }
    api(others[1], "POST", "/print_jobs", job2)
    expect(page.locator('#job-rows tr[data-job="j2"]')).to_contain_text("Queued")
    expect(page.locator('[data-roll="f1"]')).to_contain_text("580 g available")
    api(others[0], "PUT", "/print_jobs/j2/status", {"status": "running"})
    expect(page.locator('[data-printer="p1"]')).to_contain_text("Printing prints/shield.gcode")
    expect(page.locator('#job-rows tr[data-job="j2"]').get_by_role("button")).to_have_text(
        ["Mark done", "Cancel"]
    )

    shot = Path(os.environ.get("RAFT3D_SCREENSHOT") or tmp_path / "dashboard.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # The node the page came from dies: the page moves to another member and stays live.
    leader.kill()
    down = page.locator("#cluster-rows tr.down")
    expect(down).to_have_count(1)
    expect(down).to_contain_text(re.compile(rf"^{leader.node_id}http://.*unreachable"))
    api_node = cluster.wait_for_leader(timeout=20)
    expect(page.locator("#cluster-leader")).to_have_text(
        re.compile(rf"Leader: {api_node.node_id} ")
    )
    api(api_node, "POST", "/printers", {"id": "p3", "company": "Bambu", "model": "X1"})
    expect(page.locator('[data-printer="p3"]')).to_contain_text("Bambu X1")
    expect(page.locator("#connection")).to_have_text(
        re.compile(r"Live: connected to node n\d at http://127\.0\.0\.1:\d+"), timeout=LIVE_MS
    )
    assert leader.url not in (page.locator("#connection").text_content() or "")
    # ...and its change feed resumed from another member's stream.
    assert any(
        "/api/v1/events/stream" in url and not url.startswith(leader.url) for url in asked
    ), asked

    # And writes from the page go to the new member.
    form.get_by_label("Id").fill("p4")
    form.get_by_label("Company").fill("Prusa")
    form.get_by_label("Model").fill("MK4")
    form.get_by_role("button", name="Add printer").click()
    expect(page.locator('[data-printer="p4"]')).to_contain_text("Prusa MK4")
    assert api(api_node, "GET", "/printers/p4")["model"] == "MK4"


def test_api_reference_page_renders_the_document(cluster: ProcessCluster, page: Page) -> None:
    node = cluster.wait_for_leader(timeout=20)
    page.goto(node.url + "/docs")
    expect(page.locator("#intro")).to_contain_text("OpenAPI 3.0")
    create = page.locator("section.op", has_text="POST/api/v1/print_jobs")
    expect(create.first).to_contain_text("PrintJobInput")
    expect(page.locator("#schema-FilamentView")).to_contain_text("available_weight_in_grams")
    expect(page.get_by_role("link", name="GET /api/v1/print_jobs/{id}")).to_be_visible()


def ready(url: str) -> bool:
    return http_json("GET", f"{url}/readyz")[0] == 200


def test_with_tokens_on_the_page_asks_for_one_and_shows_what_a_role_may_not(
    tmp_path: Path, page: Page
) -> None:
    tokens = "".join(
        f'\n[[auth.tokens]]\nname = "{role}-user"\nrole = "{role}"\n'
        f'sha256 = "{hash_token(TOKENS[role])}"\n'
        for role in ("viewer", "operator")
    )
    auth = f'\n[auth]\nenabled = true\nopen = ["/healthz", "/readyz"]\n{tokens}'
    with ProcessCluster(tmp_path, 3, extra_toml=auth) as cluster:
        cluster.start()
        for node in cluster.nodes.values():  # /cluster/status needs a token now; /readyz not
            wait_until(functools.partial(ready, node.url), 30, f"{node.node_id} ready")
        node = cluster.nodes["n2"]
        page.goto(node.url + "/")
        token_form = page.locator("#token-form")
        expect(token_form).to_be_visible()
        expect(page.locator("#connection")).to_contain_text("needs an access token")

        token_form.get_by_label("Access token").fill(TOKENS["viewer"])
        token_form.get_by_role("button", name="Use token").click()
        expect(token_form).to_be_hidden()
        expect(page.locator("#cluster-rows tr")).to_have_count(3)
        form = page.locator("#printer-form")
        form.get_by_label("Company").fill("Prusa")
        form.get_by_label("Model").fill("MK4")
        form.get_by_role("button", name="Add printer").click()
        expect(form.get_by_role("alert")).to_contain_text("has role viewer; this needs operator")

        page.reload()  # the token is kept for the tab
        expect(page.locator("#cluster-rows tr")).to_have_count(3)
        page.evaluate("window.sessionStorage.clear()")
        page.reload()
        expect(token_form).to_be_visible()
        token_form.get_by_label("Access token").fill(TOKENS["operator"])
        token_form.get_by_role("button", name="Use token").click()
        form.get_by_label("Id").fill("p1")
        form.get_by_label("Company").fill("Prusa")
        form.get_by_label("Model").fill("MK4")
        form.get_by_role("button", name="Add printer").click()
        expect(page.locator('[data-printer="p1"]')).to_contain_text("Prusa MK4")
        print(cluster.logs())  # shown only when the test failed
