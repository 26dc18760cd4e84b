"""The dashboard's scenario pages in Chromium, on a live ``sz serve``.

The library lists the shipped scenarios; a run started from its configure
form shows its progress live, its faults as markers on the charts, and then
its final table; the runs page lists it; a scenario that does not load shows
the loader's line; Abort asks first and ends a run aborted. Each page's
screenshot goes to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from playwright.sync_api import expect

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Browser, Page

    from .conftest import Server

    Shot = Callable[[Page, str], Path]

SHIPPED = (
    "chaos_kill_actors",
    "governor_overload",
    "handler_failover",
    "schedule_storm",
    "soak",
    "worker_crash_loop",
    "zmq_partition",
)
#: chaos_kill_actors made small: 600 jobs at 200 a second (about 3 s) while
#: 5 random actors of the run's own scheduler are killed, 200 ms apart.
SMALL_CHAOS = {"jobs": "600", "rate": "200", "kills": "5", "pause": "200ms"}
#: The run must end within this, in ms.
RUN_TIMEOUT = 60_000
#: Between the parts of a metric's summary.
SEP = "  \N{MIDDLE DOT}  "
BAD_YAML = "test:\n  name: broken\n  steps:\n    - {type: teleport, duration: 1s}\n"


def open_scenarios(page: Page, server: Server, hash_: str = "scenarios") -> None:
    page.goto(f"{server.url}/#/{hash_}")
    expect(page.locator("#conn")).to_have_text("live")


def ended_run(server: Server, run_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = server.api("GET", f"/api/tests/results/{run_id}")
        return run if run["state"] != "running" else None

    found: dict[str, Any] = server.wait_for(ended, f"run {run_id} ended", timeout=60)
    return found


def test_the_library_lists_the_shipped_scenarios_each_opening_its_form(
    server: Server, page: Page, shot: Shot
) -> None:
    open_scenarios(page, server)
    expect(page.locator('#nav a[aria-current="page"]')).to_have_text("Scenarios")
    for name in SHIPPED:
        row = page.locator(f'tr[data-scenario="{name}"]')
        expect(row).to_contain_text("shipped")
    chaos = page.locator('tr[data-scenario="chaos_kill_actors"]')
    expect(chaos).to_contain_text("Kill random actors under /user")
    expect(chaos.locator('[data-param="kills"]')).to_have_text("kills = 50")
    expect(chaos.locator('[data-param="target"]')).to_have_text("target = /user/**")
    shot(page, "scenarios-library")

    chaos.locator("a[data-open]").click()
    expect(page).to_have_url(re.compile(r"#/scenario\?id=chaos_kill_actors$"))
    form = page.get_by_role("form", name="Run chaos_kill_actors")
    expect(form.locator('input[data-param="jobs"]')).to_have_value("2000")
    expect(form.locator('input[data-param="jobs"]')).to_have_attribute("type", "number")
    expect(form.locator('input[data-param="pause"]')).to_have_value("20ms")
    expect(form.locator('input[data-param="target"]')).to_have_value("/user/**")
    expect(form.get_by_role("button", name="Run")).to_be_enabled()
    # Still the Scenarios section of the nav.
    expect(page.locator('#nav a[aria-current="page"]')).to_have_text("Scenarios")
    shot(page, "scenario-configure")


def test_a_run_from_the_form_shows_progress_fault_markers_and_its_final_table(
    server: Server, page: Page, shot: Shot
) -> None:
    open_scenarios(page, server, "scenario?id=chaos_kill_actors")
    form = page.get_by_role("form", name="Run chaos_kill_actors")
    for name, value in SMALL_CHAOS.items():
        form.locator(f'input[data-param="{name}"]').fill(value)
    form.locator('[data-field="seed"]').fill("7")
    form.get_by_role("button", name="Run").click()

    expect(page).to_have_url(re.compile(r"#/run\?id=run-[0-9a-f]+$"))
    run_id = page.url.rsplit("=", 1)[1]
    # Live: the run is seen running, its step and progress shown.
    expect(page.locator('[data-field="state"]')).to_have_text("running")
    expect(page.locator('[data-field="index"]')).to_have_text(re.compile(r"^[0-9]/2$"))
    expect(page.locator('[data-field="step"]')).not_to_have_text("\N{EM DASH}")
    expect(page.locator('[data-chart="jobs_per_sec"] polyline')).to_be_attached()
    # Each kill is a marker on the chart, named on hover.
    marker = page.locator('[data-chart="jobs_per_sec"] g.fault-marker').first
    expect(marker).to_be_attached()
    expect(marker.locator("title")).to_contain_text("kill_actor")
    shot(page, "scenario-run-live")

    result = page.locator(".result")
    expect(result).to_have_attribute("data-outcome", "passed", timeout=RUN_TIMEOUT)
    expect(page.locator('[data-field="state"]')).to_have_text("passed")
    expect(page.locator('[data-field="index"]')).to_have_text("2/2")
    checks = result.locator('[data-table="checks"] tbody tr')
    expect(checks).to_have_count(3)
    expect(
        result.locator('[data-table="checks"] tr[data-passed="true"]')
    ).to_have_count(3)
    expect(result.locator('[data-table="checks"]')).to_contain_text("no_lost_jobs")
    assertions = result.locator('[data-table="assertions"] tbody tr')
    expect(assertions).to_have_count(3)
    expect(assertions.first).to_contain_text("lost_jobs == 0")
    expect(assertions.first).to_contain_text("true")
    expect(result.locator('[data-table="metrics"]')).to_contain_text("jobs_per_sec")
    expect(result.locator('[data-export="json"]')).to_have_attribute(
        "href", f"/api/tests/results/{run_id}"
    )
    expect(result.locator('[data-export="csv"]')).to_have_attribute(
        "href", f"/api/tests/results/{run_id}/csv"
    )
    expect(page.locator('[data-field="faults"]')).to_have_text("5")
    expect(page.locator('[data-chart="jobs_per_sec"] g.fault-marker')).to_have_count(5)
    expect(page.get_by_role("button", name="Abort")).to_be_disabled()
    shot(page, "scenario-run-result")
    stored = server.api("GET", f"/api/tests/results/{run_id}")
    assert stored["seed"] == 7
    assert stored["parameters"]["jobs"] == 600
    assert stored["parameters"]["pause"] == "200ms"

    # Opened after its end: the stored result, charts (from its CSV samples)
    # with the faults on them, the same final table.
    page.goto(f"{server.url}/#/run?id={run_id}")
    expect(page.locator(".result")).to_have_attribute("data-outcome", "passed")
    expect(page.locator('[data-chart="jobs_per_sec"] polyline')).to_be_attached()
    expect(page.locator('[data-chart="jobs_per_sec"] g.fault-marker')).to_have_count(5)
    expect(
        page.locator('.result [data-table="checks"] tr[data-passed="true"]')
    ).to_have_count(3)
    shot(page, "scenario-run-ended")


def test_the_runs_page_lists_a_run_with_its_outcome_and_trends(
    server: Server, page: Page, shot: Shot
) -> None:
    started = server.api(
        "POST",
        "/api/tests/run",
        {"id": "chaos_kill_actors", "params": {"jobs": 200, "rate": 400, "kills": 1}},
    )
    run_id = started["run_id"]
    run = ended_run(server, run_id)
    assert run["state"] == "passed", run

    open_scenarios(page, server, "runs")
    row = page.locator(f'tr[data-run="{run_id}"]')
    expect(row).to_contain_text("chaos_kill_actors")
    expect(row.locator(".badge")).to_have_text("passed")
    expect(row).to_contain_text(str(run["seed"]))
    trends = page.locator('[data-scenario="chaos_kill_actors"]')
    expect(trends).to_contain_text("Trends of chaos_kill_actors")
    summary = next(
        r for r in server.api("GET", "/api/tests/results") if r["run_id"] == run_id
    )
    if "metrics" in summary:
        # The server gives each run's metrics: a chart per metric, a green
        # point for this passed run.
        expect(trends.locator(".trend-point.pass").first).to_be_attached()
    else:
        # Not yet: the table alone, the trends a dash.
        expect(trends.locator('[data-trends="none"]')).to_contain_text("\N{EM DASH}")
    shot(page, "scenario-runs")

    # One scenario's runs, from the picker.
    page.get_by_label("Scenario", exact=True).select_option("chaos_kill_actors")
    expect(page).to_have_url(re.compile(r"#/runs\?scenario=chaos_kill_actors$"))
    expect(row).to_be_visible()
    row.locator(f'a[data-run="{run_id}"]').click()
    expect(page.locator(".result")).to_have_attribute("data-outcome", "passed")


def test_a_scenario_that_does_not_load_shows_the_loaders_line(
    server: Server, page: Page, shot: Shot
) -> None:
    open_scenarios(page, server)
    page.locator('[data-panel="load"] > summary').click()
    form = page.get_by_role("form", name="Load a scenario")
    form.get_by_label("Scenario YAML").fill(BAD_YAML)
    form.get_by_label("File name in errors").fill("broken.yaml")
    form.get_by_role("button", name="Load").click()
    expect(form.locator('[data-message="load"]')).to_have_text(
        re.compile(r"^broken\.yaml:4:\d+: unknown step type 'teleport'")
    )
    page.console_errors.clear()  # type: ignore[attr-defined]  # the 422 refusal
    page.evaluate("window.scrollTo(0, 0)")  # the fixed header back on top
    shot(page, "scenario-load-error")

    good = (
        "test:\n  name: tiny_nap\n  description: one short nap\n"
        "  parameters: {nap: 50ms}\n"
        '  steps:\n    - {name: nap, type: sleep, duration: "${nap}"}\n'
    )
    form.get_by_label("Scenario YAML").fill(good)
    form.get_by_label("File name in errors").fill("")
    form.get_by_role("button", name="Load").click()
    loaded = page.locator("tr.selected[data-scenario^='tiny_nap-']")
    expect(loaded).to_contain_text("loaded")
    expect(loaded.locator('[data-param="nap"]')).to_have_text("nap = 50ms")
    expect(form.locator('[data-message="load"]')).to_have_text("")


def test_abort_asks_first_and_ends_the_run_aborted(
    server: Server, page: Page, shot: Shot
) -> None:
    # About 50 s of jobs if left alone.
    started = server.api(
        "POST",
        "/api/tests/run",
        {"id": "chaos_kill_actors", "params": {"jobs": 10000, "rate": 200, "kills": 0}},
    )
    run_id = started["run_id"]
    open_scenarios(page, server, f"run?id={run_id}")
    expect(page.locator('[data-field="state"]')).to_have_text("running")
    abort = page.get_by_role("button", name="Abort")
    expect(abort).to_be_enabled()

    abort.click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator('[data-field="state"]')).to_have_text("running")

    abort.click()
    dialog.get_by_role("button", name="Abort").click()
    expect(page.locator(".result")).to_have_attribute("data-outcome", "aborted")
    expect(page.locator(".verdict")).to_contain_text("killed or stopped")
    shot(page, "scenario-run-aborted")
    assert ended_run(server, run_id)["state"] == "aborted"


def test_with_mutations_off_loading_and_running_are_turned_off_saying_why(
    read_only_server: Server, page: Page, shot: Shot
) -> None:
    open_scenarios(page, read_only_server)
    expect(page.locator('tr[data-scenario="soak"]')).to_contain_text("shipped")
    page.locator('[data-panel="load"] > summary').click()
    load = page.get_by_role("form", name="Load a scenario")
    expect(load.get_by_role("button", name="Load")).to_be_disabled()
    expect(load).to_contain_text("turned off on this server (web.mutations)")

    page.locator('tr[data-scenario="soak"] a[data-open]').click()
    form = page.get_by_role("form", name="Run soak")
    expect(form.locator('input[data-param="duration"]')).to_have_value("60s")
    expect(form.get_by_role("button", name="Run")).to_be_disabled()
    expect(form).to_contain_text("Runs are turned off on this server (web.mutations)")
    shot(page, "scenario-configure-read-only")


def test_metric_values_are_shown_in_their_units_and_csv_samples_read_back(
    server: Server, browser: Browser
) -> None:
    # Numbers are formatted for the reader's locale: this reader's is en-US.
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(f"{server.url}/#/scenarios")
    shown = page.evaluate(
        """async () => {
          const f = await import("/static/js/scenarios/format.js");
          const samples = f.parseSamples(
            "offset,metric,value\\n0.5,fds,30.0\\n0.25,fds,29.0\\n0.5,jobs_per_sec,nan\\n");
          return {
            latency: f.metricNumber("job_latency", 0.0123),
            latencySlow: f.metricNumber("job_latency", 2.5),
            latencyInUnit: f.metricNumber("scheduler_latency", 0.25, "ms"),
            memory: f.metricNumber("memory_usage", 62_700_000),
            memoryInUnit: f.metricNumber("memory_usage", 1_500_000_000, "GB"),
            rate: f.metricNumber("jobs_per_sec", 199.94),
            perUnit: f.metricNumber("creation_rate", 2500, "schedules/sec"),
            count: f.metricNumber("restarts", 5),
            absent: f.metricNumber("restarts", null),
            summary: f.metricValue("restarts", {p50: 5, p99: 5, max: 5, count: 17}),
            empty: f.metricValue("job_latency", {count: 0}),
            outcomeGiven: f.outcomeOf({state: "passed", outcome: "passed"}),
            outcomeFromState: f.outcomeOf({state: "failed"}),
            outcomeRunning: f.outcomeOf({state: "running"}),
            fds: samples.get("fds"),
            rateSamples: samples.get("jobs_per_sec"),
          };
        }"""
    )
    assert shown == {
        "latency": "12.3 ms",
        "latencySlow": "2.5 s",
        "latencyInUnit": "250 ms",
        "memory": "62.7 MB",
        "memoryInUnit": "1.5 GB",
        "rate": "199.9/s",
        "perUnit": "2,500 schedules/sec",
        "count": "5",
        "absent": "\N{EM DASH}",
        "summary": SEP.join(["p50 5", "p99 5", "max 5", "n=17"]),
        "empty": "no samples",
        "outcomeGiven": "passed",
        "outcomeFromState": "failed",
        "outcomeRunning": None,
        "fds": [{"x": 0.25, "v": 29}, {"x": 0.5, "v": 30}],
        "rateSamples": [{"x": 0.5, "v": None}],
    }
    context.close()


def test_with_a_token_a_run_is_followed_live_through_the_session(
    token_server: Server, page: Page
) -> None:
    assert token_server.token is not None
    page.goto(token_server.url + "/#/scenario?id=chaos_kill_actors")
    expect(page).to_have_url(re.compile(re.escape(token_server.url + "/login")))
    page.get_by_label("Token").fill(token_server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#conn")).to_have_text("live")

    page.goto(token_server.url + "/#/scenario?id=chaos_kill_actors")
    form = page.get_by_role("form", name="Run chaos_kill_actors")
    for name, value in SMALL_CHAOS.items():
        form.locator(f'input[data-param="{name}"]').fill(value)
    form.get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"#/run\?id=run-[0-9a-f]+$"))
    # The metrics stream and the CSV export answer the session's cookie.
    expect(
        page.locator('[data-chart="jobs_per_sec"] g.fault-marker').first
    ).to_be_attached()
    expect(page.locator(".result")).to_have_attribute(
        "data-outcome", "passed", timeout=RUN_TIMEOUT
    )
    expect(page.locator('[data-chart="jobs_per_sec"] polyline')).to_be_attached()


def test_a_run_that_is_not_kept_says_so(server: Server, page: Page) -> None:
    open_scenarios(page, server, "run?id=run-00000000")
    expect(page.locator(".run-page .error")).to_have_text(
        "no scenario run 'run-00000000' here (or no longer kept)"
    )
    page.console_errors.clear()  # type: ignore[attr-defined]  # the 404


def test_a_long_runs_chart_stays_light_with_its_faults_grouped(
    server: Server, page: Page
) -> None:
    page.goto(f"{server.url}/#/scenarios")
    drawn = page.evaluate(
        """async () => {
          const { runChart } = await import("/static/js/runchart.js");
          // An hour sampled four times a second; a kill every 3.6 s, and
          // one lone fault near the end.
          const points = Array.from(
            { length: 14400 }, (_, i) => ({ x: i / 4, v: i % 97 }));
          const markers = Array.from(
            { length: 1000 },
            (_, i) => ({ x: i * 3.6, name: "kill_actor", title: "a kill" }));
          markers.push({ x: 3599, name: "partition", title: "partition" });
          const svg = runChart({
            points, xMax: 3600, markers, format: String, label: "test" });
          const groups = [...svg.querySelectorAll("g.fault-marker")];
          const line = svg.querySelector("polyline").getAttribute("points");
          const ticks = [...svg.querySelectorAll("text.axis")];
          return {
            points: line.split(" ").length,
            markers: groups.length,
            counted: groups.reduce((n, g) => n + Number(g.dataset.count), 0),
            grouped: groups[0].querySelector("title").textContent,
            ticks: ticks.map((t) => t.textContent),
          };
        }"""
    )
    assert drawn["points"] <= 1200
    assert drawn["markers"] <= 200
    assert drawn["counted"] == 1001  # every fault is in one marker or another
    grouped = r"\d+ faults \(kill_actor\) from 0 s to [\d.]+ s"
    assert re.fullmatch(grouped, drawn["grouped"]), drawn["grouped"]
    assert drawn["ticks"][-1] == "60m"
