"""In Chromium: every control has a name, switch labels toggle, pressed toggles look pressed, cards show
their chevron and keep their hint when opened, and the install status is a plain table of one row per host."""
from __future__ import annotations

import re

from .conftest import Served

ROLES = {"button", "checkbox", "switch", "textbox", "combobox", "spinbutton", "radio", "slider", "listbox",
         "searchbox", "tab", "link"}


def _open_every_card(page: object) -> None:
    """Click every collapsed card (sections are built when opened, and may hold collapsed cards).

    The collapsed headers are looked up again before each click: an opening section replaces its
    cards, so a header found earlier may be another card by then (and clicking it would close it).
    Done when no collapsed header has shown up for two seconds.
    """
    collapsed = page.locator(".card-header:has(svg.icon-tabler-chevron-right)").filter(visible=True)  # type: ignore[attr-defined]
    quiet = 0
    for _ in range(80):
        if collapsed.count():
            quiet = 0
            collapsed.first.click()
        else:
            quiet += 1
            if quiet >= 4:
                return
        page.wait_for_timeout(500)  # type: ignore[attr-defined]


def _unnamed_controls(page: object) -> list[str]:
    """Controls the accessibility tree exposes without a name (Chromium's own computation)."""
    cdp = page.context.new_cdp_session(page)  # type: ignore[attr-defined]
    found = []
    for node in cdp.send("Accessibility.getFullAXTree")["nodes"]:
        role = node.get("role", {}).get("value")
        if role not in ROLES or node.get("ignored") or (node.get("name", {}).get("value") or "").strip():
            continue
        element = cdp.send("DOM.resolveNode", {"backendNodeId": node["backendDOMNodeId"]})["object"]["objectId"]
        html = cdp.send("Runtime.callFunctionOn", {"objectId": element, "returnByValue": True,
                                                    "functionDeclaration": "function () { return this.outerHTML }"})
        found.append(f"{role}: {html['result']['value'][:160]}")
    cdp.detach()
    return found


def test_controls_are_named_and_look_like_what_they_do(page: object, served: Served) -> None:
    page.get_by_role("button", name=re.compile(r"^Distribute no work plan yet")).wait_for()  # type: ignore[attr-defined]
    chevrons = page.locator(".card-header .card-button svg path:not([stroke])")  # type: ignore[attr-defined]
    assert chevrons.count() >= 5
    assert {c.evaluate("e => getComputedStyle(e).stroke") for c in chevrons.all()} - {"none"}
    assert "none" not in {c.evaluate("e => getComputedStyle(e).stroke") for c in chevrons.all()}

    _open_every_card(page)
    page.get_by_role("button", name="Workplan", exact=True).wait_for()  # type: ignore[attr-defined]
    # the Service mode section is open too: its controls are checked below
    page.get_by_role("button", name="HEALTH gate", exact=True).wait_for()  # type: ignore[attr-defined]
    # the hint of a collapsed card stays in its header once the section is open
    assert page.get_by_role("button", name=re.compile(r"^Distribute no work plan yet")).is_visible()  # type: ignore[attr-defined]
    assert _unnamed_controls(page) == []
    # named and shown: a field hidden with its unnamed parts would also leave no unnamed control
    for label in ("Verbosity level", "Aircraft (files)", "Rows per file"):
        box = page.get_by_label(label, exact=True).first.bounding_box()  # type: ignore[attr-defined]
        assert box is not None and box["width"] > 40 and box["height"] > 10, label

    # a switch's label toggles it, as a checkbox label would
    switch = page.get_by_role("switch", name="Benchmark all modes")  # type: ignore[attr-defined]
    before = switch.get_attribute("aria-checked")
    page.locator(".bk-label", has_text="Benchmark all modes").click(force=True)  # type: ignore[attr-defined]
    page.wait_for_function("([el, was]) => el.getAttribute('aria-checked') !== was",  # type: ignore[attr-defined]
                           arg=[switch.element_handle(), before])
    page.locator(".bk-label", has_text="Benchmark all modes").click(force=True)  # type: ignore[attr-defined]
    page.wait_for_function("([el, was]) => el.getAttribute('aria-checked') === was",  # type: ignore[attr-defined]
                           arg=[switch.element_handle(), before])

    # the pressed button of a toggle group is filled with the accent; the file format says what it chooses
    pressed = page.get_by_role("button", name="Custom form (app_args_form.py)")  # type: ignore[attr-defined]
    other = page.get_by_role("button", name="Generated form")  # type: ignore[attr-defined]
    assert pressed.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(11, 110, 153)"
    assert other.evaluate("e => getComputedStyle(e).backgroundColor") != "rgb(11, 110, 153)"
    assert page.get_by_text("File format of the generated input files").is_visible()  # type: ignore[attr-defined]

    # the install table is a plain table of one row (this machine): no sort arrow to offer
    hosts = page.locator("table.host-status")  # type: ignore[attr-defined]
    assert hosts.locator("tbody tr").count() == 1 and hosts.locator("th").first.inner_text() == "host"


def test_a_snippet_copies_and_downloads_the_code_it_shows(page: object, served: Served) -> None:
    """Copy and Download work in the browser alone: the clipboard and the saved file hold the code shown."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.url.rstrip("/"))  # type: ignore[attr-defined]
    install = page.locator(".codehilite", has_text="AGI.install(").first  # type: ignore[attr-defined]
    install.wait_for()
    shown = install.inner_text().strip()
    assert shown.startswith(("import", "from", "#")) and "await AGI.install(" in shown
    copy = page.get_by_role("button", name="Copy").first.element_handle()  # type: ignore[attr-defined]
    copy.click()  # the same button below, whatever its label says meanwhile ("Copied")
    page.wait_for_function("() => navigator.clipboard.readText().then(t => t.includes('AGI.install('))")  # type: ignore[attr-defined]
    assert page.evaluate("navigator.clipboard.readText()").strip() == shown  # type: ignore[attr-defined]
    # where the page has no clipboard API (plain http to another host), Copy selects and copies the code
    page.evaluate("""async () => { await navigator.clipboard.writeText(''); window.clipboardApi = navigator.clipboard;
        Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true }) }""")  # type: ignore[attr-defined]
    copy.click()
    page.evaluate("Object.defineProperty(navigator, 'clipboard', { value: window.clipboardApi, configurable: true })")  # type: ignore[attr-defined]
    page.wait_for_function("() => navigator.clipboard.readText().then(t => t.includes('AGI.install('))")  # type: ignore[attr-defined]
    assert page.evaluate("navigator.clipboard.readText()").strip() == shown  # type: ignore[attr-defined]
    with page.expect_download() as download:  # type: ignore[attr-defined]
        page.get_by_role("button", name="Download snippet").first.click()  # type: ignore[attr-defined]
    saved = download.value
    assert saved.suggested_filename == "AGI_install_flight_telemetry.py"
    assert open(saved.path(), encoding="utf-8").read().strip() == shown
