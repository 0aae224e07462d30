"""The Embeddings page on a cluster-backed layout store, in Chromium (issue #22).

The whole walkthrough beyond one machine: ``hearsight activations`` writes the tiny model's
FSDD test split (250 clips) as three parts; ``hearsight project --cluster local:2 --out FOLDER``
writes the aligned layouts as a partitioned layout store on the workers; ``hearsight serve
--projection FOLDER --cluster local:2`` draws every view of it on a 2-worker cluster.

Known answers: the page opens on the store without a Compute click and says it holds 250
points in 6 layers; the caption says the frame was drawn by the cluster's 2 workers; moving
the slider to its end names the last layer and changes the image; a box over the cloud lists
between 1 and 250 FSDD test-split clips (takes 0–4), and clicking one plays it.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.browser.test_embeddings_browser import (N_ITEMS, _box_select_everything,
                                                   _move_slider_to_end, play_first_row)
from tests.conftest import FSDD_DIR

pytest.importorskip("distributed")

REPO_CLI = [sys.executable, "-m", "cli.main"]


def _run(*args: str, env) -> None:
    done = subprocess.run([*REPO_CLI, *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def cluster_server(chromium_path, tiny_checkpoint, hearsight_home, tmp_path_factory):
    import os

    from tests.browser.conftest import REPO, serving, stop_server

    root = tmp_path_factory.mktemp("cluster-store")
    env = {**os.environ, "HEARSIGHT_HOME": str(hearsight_home),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    _run("activations", "--model", str(tiny_checkpoint), "--corpus", f"fsdd:{FSDD_DIR}",
         "--split", "test", "--out", str(root / "acts"), "--rows-per-part", "100", env=env)
    _run("project", "--activations", str(root / "acts"), "--out", str(root / "layouts"),
         "--pivots", "20", "--quality-n", "100", "--cluster", "local:2", env=env)
    srv = serving(tiny_checkpoint, hearsight_home, root / "serve.log", "--projection",
                  str(root / "layouts"), "--cluster", "local:2")
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.mark.browser
@pytest.mark.slow  # ~100 s: activations, a projection and a server on two 2-worker clusters
def test_a_cluster_draws_and_selects_a_partitioned_store(browser, cluster_server, ui,
                                                          tmp_path):
    from tests.browser.conftest import _opened

    opened = _opened(browser, cluster_server, tmp_path)
    page = next(opened)
    try:
        page.locator(".bk-tab", has_text="Embeddings").click()
        page.locator(".hs-emb-progress").filter(has_text="points ·").wait_for()
        progress = ui.text(page, "hs-emb-progress")
        assert progress.startswith(f"{N_ITEMS} points · 6 layers"), progress
        assert "partitioned store" in progress, progress
        page.locator(".hs-emb-position").filter(has_text="drawn on 2 workers").wait_for()
        page.wait_for_function(f"(a) => {{ const d = ({ui.FIGURE_COLUMNS_JS})(a); "
                               "return d !== null && d.image.length === 1; }",
                               arg=["Layer walkthrough", ["image"]])
        cloud = page.locator(".hs-emb-cloud")
        cloud.scroll_into_view_if_needed()
        before = cloud.screenshot()
        _move_slider_to_end(page)
        page.locator(".hs-emb-position").filter(has_text="(6 of 6)").wait_for()
        page.wait_for_timeout(1500)  # the redrawn image follows the caption
        cloud.scroll_into_view_if_needed()
        assert cloud.screenshot() != before, "the cloud image did not change with the slider"
        selected = _box_select_everything(page, ui)
        assert 1 <= selected <= N_ITEMS, selected
        page.locator(".hs-emb-position").filter(has_text="selected on 2 workers").wait_for()
        rows = page.locator(".hs-emb-table .tabulator-row")
        rows.first.wait_for()
        item_id = rows.first.locator("[tabulator-field=item_id]").inner_text().strip()
        assert re.fullmatch(r"fsdd/\d_[a-z]+_[0-4]", item_id), item_id
        play_first_row(page, rows, item_id)
        page.locator(".hs-emb-slider").scroll_into_view_if_needed()
        ui.shot(page, tmp_path, "embeddings-cluster")
    finally:
        next(opened, None)
