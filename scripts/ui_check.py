"""``make ui-check``: drive the real Airflow 3 UI with headless Chromium against the local emulator.

What it does, in a throwaway ``AIRFLOW_HOME`` (SQLite, simple auth with everyone admin):

1. starts the emulator (in this process) and ``airflow api-server`` on free loopback ports;
2. Admin -> Connections -> Add, type "Cloudflare AI Search": our labels, placeholders and extra
   fields show, schema and port are hidden; fills it in against the emulator and saves it;
3. presses the connection's Test button: success for the right token; then saves a second
   connection with a wrong token and checks the failure message (which must not contain the token);
4. runs ``airflow dags test example_aisearch_operators`` on the saved connection, opens the
   ``reindex`` task and checks the "Cloudflare AI Search" extra link and its URL;
5. writes screenshots (form, test results, task with its link) to ``docs/img/`` -- only when every
   check passed, so the docs always show a passing run.

Every process it starts runs in its own process group and is stopped by PID in ``finally``; the
Airflow home is deleted. A failed run leaves one screenshot of the page it failed on,
``.ui-check-failure.png`` (git-ignored; the next passing run removes it), and prints the page's text
and the api-server's log tail, with the tokens replaced by ``***``.

Needs Airflow 3, ``playwright`` (the ``ui`` extra) and ``/usr/bin/chromium`` (Debian's ``chromium``;
``make ui-check`` installs it). It never runs ``playwright install``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_aisearch import _ui_field_behaviour
from airflow_provider_aisearch.emulator import AISearchEmulator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploycheck import services
from deploycheck.services import DeployCheckFailed as CheckFailed
from deploycheck.services import Processes, alive, free_port, http_ok, signal_group, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
#: Without the background-networking flags Chromium dials out and the closed network refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
CONN_ID = "aisearch_default"  # what the example DAGs use
BAD_CONN_ID = "aisearch_wrong_token"
CONN_TYPE_LABEL = "Cloudflare AI Search"
DAG_ID = "example_aisearch_operators"
TASK_ID = "reindex"
INSTANCE_ID = "docs"
LINK_NAME = "Cloudflare AI Search"

# The form as a user must see it. Hard-coded on purpose: the check must fail when a field or a
# label disappears from get_provider_info(), so it cannot take its expectations from there.
STANDARD_LABELS = {
    "host": "API base URL",
    "login": "Account email (Global API Key only)",
    "password": "API token (or Global API Key)",
}
HIDDEN_FIELDS = ("schema", "port")
EXTRA_FIELDS = {  # name -> (label, words its help text must contain, initial value)
    "account_id": ("Account ID", "account id", ""),
    "namespace": ("Namespace", "namespace", "default"),
}
SCREENSHOTS = {
    "form": "connection-form.png",
    "form_extra": "connection-form-extra.png",
    "test_ok": "connection-test-success.png",
    "test_failed": "connection-test-failure.png",
    "task_link": "task-extra-link.png",
}

#: Airflow 3.3.2's Test button sends ``port: 0`` (``Number(null)``) for a connection without a port,
#: and the API answers 400 with this, before any hook runs. Fixed upstream by apache/airflow#73298.
PORT_BUG_DETAIL = "differs from the stored connection"
#: How long the Test button may take against the local emulator (it answers in milliseconds).
TEST_TIMEOUT_MS = 30_000


services.LOG_TAG = "ui-check"
log = services.log


class Redactor:
    """Replaces every secret with ``***`` in text that may be printed."""

    def __init__(self, *secrets_: str) -> None:
        self.secrets = tuple(s for s in secrets_ if s)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def tail(path: Path, redact: Redactor, lines: int = 40) -> str:
    return services.tail(path, lines, redact.secrets)


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    def answering() -> bool:
        alive(proc, f"the process serving {url}")
        return http_ok(url)

    wait_until(f"{url} answering", answering, timeout)


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# -- browser steps ---------------------------------------------------------------------------


def field_root(dialog: Locator, input_selector: str) -> Locator:
    """The form row (label, input, help text) holding one input."""
    return dialog.locator("[data-scope=field][data-part=root]").filter(has=dialog.page.locator(input_selector))


def open_add_form(page: Page, base: str, conn_id: str) -> Locator:
    page.goto(f"{base}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    combo = dialog.get_by_role("combobox")
    combo.fill(CONN_TYPE_LABEL)
    page.get_by_role("option", name=CONN_TYPE_LABEL, exact=True).click()
    dialog.locator("input[name=host]").wait_for(state="visible")
    return dialog


def open_section(dialog: Locator, title: str) -> None:
    """Expand one accordion section of the connection form (the others collapse)."""
    dialog.get_by_text(title, exact=True).click()
    dialog.page.wait_for_timeout(400)  # let the accordion finish collapsing the other sections


def screenshot(page: Page, path: Path) -> None:
    """A screenshot with CSS animations finished (toasts slid in, accordions settled)."""
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), animations="disabled")


def check_standard_fields(dialog: Locator) -> None:
    placeholders = _ui_field_behaviour()["placeholders"]
    for name, label in STANDARD_LABELS.items():
        box = dialog.locator(f"input[name={name}]")
        expect(box.count() == 1 and box.is_visible(), f"standard field {name!r} is not shown")
        label_text = field_root(dialog, f"input[name={name}]").locator("label").inner_text().strip()
        expect(label_text == label, f"field {name!r} is labelled {label_text!r}, expected {label!r}")
        shown = box.get_attribute("placeholder") or ""
        expect(shown and shown == placeholders.get(name), f"field {name!r} has placeholder {shown!r}")
    expect(dialog.locator("input[name=password]").get_attribute("type") == "password", "the token is not masked")
    for name in HIDDEN_FIELDS:
        box = dialog.locator(f"input[name={name}]")
        expect(box.count() == 0 or not box.is_visible(), f"standard field {name!r} should be hidden")
    labels = [t.strip().lower() for t in dialog.locator("label").all_inner_texts()]
    for hidden in ("schema", "port"):
        expect(hidden not in labels, f"a {hidden!r} label is shown")


def check_extra_fields(dialog: Locator) -> None:
    for name, (label, help_words, initial) in EXTRA_FIELDS.items():
        selector = f"#element_{name}"
        box = dialog.locator(selector)
        expect(box.count() == 1 and box.is_visible(), f"extra field {name!r} is not shown")
        row = field_root(dialog, selector)
        label_text = re.sub(r"\s*\*\s*$", "", row.locator("label").first.inner_text().strip())
        expect(label_text == label, f"extra field {name!r} is labelled {label_text!r}, expected {label!r}")
        help_text = row.inner_text().lower()
        expect(help_words in help_text, f"extra field {name!r} has no help text mentioning {help_words!r}")
        value = box.input_value()
        expect(value == initial, f"extra field {name!r} starts as {value!r}, expected {initial!r}")


def fill_and_save(page: Page, dialog: Locator, *, host: str, token: str, account_id: str) -> None:
    if not dialog.locator("input[name=host]").is_visible():
        open_section(dialog, "Standard Fields")
    dialog.locator("input[name=host]").fill(host)
    dialog.locator("input[name=password]").fill(token)
    open_section(dialog, "Extra Fields")
    dialog.locator("#element_account_id").fill(account_id)
    save = dialog.get_by_role("button", name="Save")
    expect(save.is_enabled(), "Save stays disabled with every required field filled in")
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST") as info:
        save.click()
    response = info.value
    expect(response.status == 201, f"saving the connection answered HTTP {response.status}")
    dialog.wait_for(state="hidden")


def press_test(page: Page, base: str, conn_id: str, *, work_around_port_bug: bool) -> tuple[int, str, str]:
    """Press the connection's Test button; return the HTTP status, the toast's text and the API's detail."""
    page.goto(f"{base}/connections")
    row = page.get_by_role("row").filter(has_text=conn_id)
    if work_around_port_bug:
        page.route("**/api/v2/connections/test", _send_port_as_null)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        try:
            with page.expect_response(
                lambda r: r.url.endswith("/api/v2/connections/test"), timeout=TEST_TIMEOUT_MS
            ) as info:
                row.get_by_role("button", name="Test Connection").click()
        except PlaywrightTimeout:
            raise CheckFailed(
                f"the Test button of {conn_id!r} got no answer in {TEST_TIMEOUT_MS // 1000} s (test_connection hangs?)"
            ) from None
        response = info.value
        try:
            detail = str(response.json().get("detail", ""))
        except Exception:
            detail = ""
        toast = page.locator("[data-scope=toast][data-part=root]").last
        toast.wait_for(state="visible", timeout=15_000)
        return response.status, toast.inner_text(), detail
    finally:
        if work_around_port_bug:
            page.unroute("**/api/v2/connections/test", _send_port_as_null)


def _send_port_as_null(route: Route) -> None:
    """What apache/airflow#73298 does on the server: port 0 from the Test button means "no port"."""
    body = json.loads(route.request.post_data or "{}")
    if body.get("port") == 0:
        body["port"] = None
    route.continue_(post_data=json.dumps(body))


def dismiss_toasts(page: Page) -> None:
    for close in page.locator("[data-scope=toast] [data-part=close-trigger]").all():
        try:
            close.click(timeout=2_000)
        except Exception:
            pass
    page.locator("[data-scope=toast][data-part=root]").first.wait_for(state="detached", timeout=10_000)


def no_secret_in_page(page: Page, redact: Redactor, where: str) -> None:
    html = page.content()
    for secret in redact.secrets:
        expect(secret not in html, f"a token is visible in the page ({where})")


@contextmanager
def browser_page() -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


# -- the run ---------------------------------------------------------------------------------


def airflow_env(home: Path, api_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{api_port}",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
    )
    return env


def run_cli(
    argv: list[str], env: dict[str, str], log_path: Path, redact: Redactor, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run an airflow command to completion in its own process group, its output to ``log_path``."""
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise CheckFailed(f"{' '.join(argv[1:3])} took over {timeout:.0f} s:\n{tail(log_path, redact)}") from None
    return subprocess.CompletedProcess(argv, proc.returncode, log_path.read_text(errors="replace"), "")


def saved_connection(airflow: str, env: dict[str, str], work: Path, redact: Redactor) -> dict[str, Any]:
    """The connection as stored in the metadata DB (what the UI saved)."""
    result = run_cli([airflow, "connections", "get", CONN_ID, "-o", "json"], env, work / "conn.json", redact, 120)
    (work / "conn.json").unlink()
    expect(result.returncode == 0, f"airflow connections get {CONN_ID} failed")
    start = result.stdout.find("[")
    rows = json.loads(result.stdout[start:])
    expect(len(rows) == 1, f"expected one stored connection {CONN_ID!r}, got {len(rows)}")
    return dict(rows[0])


def check(img_dir: Path, keep_home: bool) -> None:
    token = "ui-check-" + secrets.token_hex(12)
    wrong_token = "ui-check-wrong-" + secrets.token_hex(12)
    redact = Redactor(token, wrong_token)
    airflow = str(Path(sys.executable).with_name("airflow"))
    work = Path(tempfile.mkdtemp(prefix="aisearch-ui-check-"))
    home, shots = work / "airflow-home", work / "screenshots"
    home.mkdir()
    shots.mkdir()
    processes = Processes(run_id=secrets.token_hex(8), log_dir=work)
    emulator = AISearchEmulator(token=token, instances=[INSTANCE_ID], job_duration=3.0, cooldown=2.0)
    emulator.seed_jobs(INSTANCE_ID, 5)
    timings: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        timings[name] = time.monotonic() - started

    try:
        emulator.start()
        log(f"AI Search emulator on {emulator.url}")
        api_port = free_port()
        env = airflow_env(home, api_port)
        base = f"http://127.0.0.1:{api_port}"

        t = time.monotonic()
        migrate = run_cli([airflow, "db", "migrate"], env, work / "migrate.log", redact, 300)
        expect(migrate.returncode == 0, f"airflow db migrate failed:\n{tail(work / 'migrate.log', redact)}")
        timed("db migrate", t)

        t = time.monotonic()
        api = processes.start(
            "api", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port)], env, tier=0
        )
        try:
            wait_http_ok(f"{base}/api/v2/monitor/health", api, timeout=180)
        except CheckFailed as exc:
            raise CheckFailed(f"{exc}\n{tail(work / 'api.log', redact)}") from None
        timed("api-server start", t)
        log(f"api-server answers on {base}")

        with browser_page() as page:
            try:
                _browser_steps(page, base, emulator, token, wrong_token, redact, shots, airflow, env, work, timings)
            except Exception as exc:
                failure = REPO / ".ui-check-failure.png"
                try:
                    page.screenshot(path=str(failure))
                    log(f"failure screenshot: {failure.relative_to(REPO)}; page text:")
                    print(redact(page.inner_text("body"))[-3000:], flush=True)
                except Exception:
                    pass
                log("api-server log (tail):\n" + tail(work / "api.log", redact, 25))
                if isinstance(exc, CheckFailed):
                    raise
                # Playwright's call logs repeat what was typed (the token): never print them raw.
                raise CheckFailed(redact(f"{type(exc).__name__}: {exc}")) from None

        img_dir.mkdir(parents=True, exist_ok=True)
        for name in SCREENSHOTS.values():
            shutil.copyfile(shots / name, img_dir / name)
        log(f"screenshots written to {_display(img_dir)}: {', '.join(SCREENSHOTS.values())}")
        (REPO / ".ui-check-failure.png").unlink(missing_ok=True)
    finally:
        processes.stop_all()
        emulator.stop()
        if keep_home:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


def _browser_steps(
    page: Page,
    base: str,
    emulator: AISearchEmulator,
    token: str,
    wrong_token: str,
    redact: Redactor,
    shots: Path,
    airflow: str,
    env: dict[str, str],
    work: Path,
    timings: dict[str, float],
) -> None:
    t = time.monotonic()
    # 1. The form.
    dialog = open_add_form(page, base, CONN_ID)
    check_standard_fields(dialog)
    screenshot(page, shots / SCREENSHOTS["form"])
    open_section(dialog, "Extra Fields")
    check_extra_fields(dialog)
    screenshot(page, shots / SCREENSHOTS["form_extra"])
    log("form: labels, placeholders and extra fields shown; schema and port hidden")

    # 2. Save it, then Test: the right token, then a wrong one.
    open_section(dialog, "Standard Fields")
    fill_and_save(page, dialog, host=emulator.url, token=token, account_id=emulator.account_id)
    log(f"saved connection {CONN_ID!r}")

    verifies = len(emulator.requests_to("account_verify"))
    port_bug = False
    status, text, detail = press_test(page, base, CONN_ID, work_around_port_bug=False)
    if status == 400 and PORT_BUG_DETAIL in detail:
        log(
            "Airflow bug: the Test button sends port 0 for a connection without a port and the API "
            "refuses it (HTTP 400 'Bad Request'; fixed upstream by apache/airflow#73298). Pressing "
            "Test again with port 0 sent as null, which is what that fix does on the server."
        )
        dismiss_toasts(page)
        port_bug = True
        status, text, detail = press_test(page, base, CONN_ID, work_around_port_bug=True)
    expect(status == 200, f"Test answered HTTP {status}: {redact(text)!r} ({redact(detail)})")
    expect("Successful" in text and "API token is active" in text, f"Test did not succeed: {redact(text)!r}")
    expect(len(emulator.requests_to("account_verify")) > verifies, "Test succeeded without calling tokens/verify")
    no_secret_in_page(page, redact, "test success")
    screenshot(page, shots / SCREENSHOTS["test_ok"])
    log(f"Test (right token): {text.splitlines()[-1]!r}")
    dismiss_toasts(page)

    dialog = open_add_form(page, base, BAD_CONN_ID)
    fill_and_save(page, dialog, host=emulator.url, token=wrong_token, account_id=emulator.account_id)
    status, text, detail = press_test(page, base, BAD_CONN_ID, work_around_port_bug=port_bug)
    expect(status == 200, f"Test answered HTTP {status}: {redact(text)!r} ({redact(detail)})")
    expect("Failed" in text and "rejected" in text, f"Test with a wrong token did not fail clearly: {redact(text)!r}")
    expect(wrong_token not in text and token not in text, "the failure message contains the token")
    no_secret_in_page(page, redact, "test failure")
    screenshot(page, shots / SCREENSHOTS["test_failed"])
    log(f"Test (wrong token): {text.splitlines()[-1]!r}")
    timings["connection form and Test"] = time.monotonic() - t

    # 3. The saved connection runs the example DAG; its task shows the extra link.
    t = time.monotonic()
    stored = saved_connection(airflow, env, work, redact)
    extra = stored.get("extra_dejson") or {}
    expect(stored.get("conn_type") == "cloudflare_aisearch", f"saved conn_type is {stored.get('conn_type')!r}")
    expect(stored.get("host") == emulator.url, "the API base URL did not save")
    expect(stored.get("password") == token, "the API token did not save")
    expect(extra.get("account_id") == emulator.account_id, f"account_id did not save: {extra!r}")
    expect(extra.get("namespace") == "default", f"namespace did not save: {extra!r}")
    for hidden in HIDDEN_FIELDS:
        expect(stored.get(hidden) in (None, ""), f"hidden field {hidden!r} was saved as {stored.get(hidden)!r}")
    log("stored connection: host, token, account_id and namespace saved as entered")

    # `airflow dags test` runs triggers in-process with only the environment-variable secrets backend
    # (no metadata DB), so the deferrable task gets the stored connection through AIRFLOW_CONN_*.
    dag_env = dict(env)
    dag_env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": stored["conn_type"], "host": stored["host"], "password": stored["password"], "extra": extra}
    )
    creates = len(emulator.requests_to("jobs", "POST"))
    run = run_cli([airflow, "dags", "test", DAG_ID], dag_env, work / "dags-test.log", redact, 300)
    if run.returncode != 0:
        raise CheckFailed(f"airflow dags test {DAG_ID} failed:\n{tail(work / 'dags-test.log', redact)}")
    expect(len(emulator.requests_to("jobs", "POST")) > creates, "the DAG run never created an indexing job")
    match = re.search(r"DagRun Finished: dag_id=\S+, logical_date=.*?, run_id=(\S+?),", run.stdout)
    expect(match, "could not find the run id in the airflow dags test output")
    assert match is not None
    run_id = match.group(1)
    timings["dags test"] = time.monotonic() - t
    log(f"airflow dags test {DAG_ID}: success ({run_id})")

    t = time.monotonic()
    page.goto(f"{base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{TASK_ID}")
    page.get_by_role("link", name="Details", exact=True).click()
    link = page.get_by_role("link", name=LINK_NAME, exact=True)
    link.wait_for(state="visible")
    href = link.get_attribute("href")
    expected = f"https://dash.cloudflare.com/{emulator.account_id}/ai/ai-search/instance/{INSTANCE_ID}/jobs"
    expect(href == expected, f"extra link {LINK_NAME!r} points to {href!r}, expected {expected!r}")
    link.scroll_into_view_if_needed()
    link.hover()
    no_secret_in_page(page, redact, "task page")
    screenshot(page, shots / SCREENSHOTS["task_link"])
    timings["task page"] = time.monotonic() - t
    log(f"task {TASK_ID!r}: extra link {LINK_NAME!r} -> {href}")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def preflight() -> str | None:
    """Why the check cannot run here, or ``None``."""
    if int(version("apache-airflow").split(".")[0]) < 3:
        return f"the UI check needs Airflow 3 (this is {version('apache-airflow')})"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install -y chromium chromium-driver; `make ui-check` does it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[ui]')"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--img-dir", type=Path, default=REPO / "docs" / "img", help="where screenshots go")
    parser.add_argument("--keep-home", action="store_true", help="keep the Airflow home and logs (debugging)")
    args = parser.parse_args(argv)
    reason = preflight()
    if reason:
        log(f"cannot run: {reason}")
        return 2
    started = time.monotonic()
    try:
        check(args.img_dir.resolve(), args.keep_home)
    except CheckFailed as exc:
        log(f"FAILED after {time.monotonic() - started:.0f} s: {exc}")
        return 1
    log(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
