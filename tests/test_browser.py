"""report.html in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
installs) opens the file offline, with no console errors, and the front and the selection are
drawn on screen. A screenshot is kept under the test's temp dir for a person to look at."""

from __future__ import annotations

import shutil

import pytest

from autoprune.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs Debian's)")
def test_report_renders_in_chromium_without_errors(
    tiny_model_dir, tiny_csv, tiny_space, studies, tmp_path, capsys
):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs it")
    args = ["--model", str(tiny_model_dir), "--dataset", str(tiny_csv), "--space", str(tiny_space)]
    assert main(["search", *args, "--study", "b", "--trials", "4", "--device", "cpu"]) == 0
    out = tmp_path / "report"
    assert main(["report", "b", "--out", str(out)]) == 0
    capsys.readouterr()

    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "report.html").as_uri(), wait_until="load")
        page.wait_for_selector(".js-plotly-plot .scatterlayer", timeout=30_000)
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

        # every figure drew; the front and the selection are traces with points on screen
        assert page.locator(".js-plotly-plot").count() >= 3
        drawn = page.evaluate(
            """() => {
                const names = {};
                for (const plot of document.querySelectorAll('.js-plotly-plot')) {
                    plot.data.forEach((trace, i) => {
                        const g = plot.querySelectorAll('.scatterlayer .trace')[i];
                        const box = g ? g.getBoundingClientRect() : {width: 0, height: 0};
                        const points = g ? g.querySelectorAll('path.point').length : 0;
                        const seen = box.width > 0 || box.height > 0;
                        names[trace.name] = Math.max(names[trace.name] || 0, seen ? points : 0);
                    });
                }
                return names;
            }"""
        )
        selection = page.locator("#selection")
        assert selection.is_visible() and "within:mase<=0%" in selection.inner_text()
        browser.close()

    assert not problems, problems
    assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
    assert drawn.get("front", 0) >= 1, drawn
    selected = [n for n in drawn if n.startswith("selected")]
    assert selected and all(drawn[n] >= 1 for n in selected), drawn
    assert (tmp_path / "report.png").stat().st_size > 20_000
