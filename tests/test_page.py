"""The text-behind-image page in headless Chromium, on both servers: upload, composite, export.

Every request the page makes is routed through the test, which refuses (and fails on) anything
not addressed to 127.0.0.1. The exported PNG must have the input's size, the text's colour where
the subject's mask is background, and the input's own pixels where it is subject.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, sync_playwright

from loadtests.serverproc import ServerProcess
from tests.helpers import gradio_http
from tests.helpers.common import StartServer

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "loadtests" / "data" / "scene-256.jpg"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEXT_COLOUR = (255, 0, 255)  # a colour the scene does not contain


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def scene_png(tmp_path: Path) -> Path:
    # PNG, not JPEG: the browser and PIL decode it to the same pixels, so they can be compared
    path = tmp_path / "scene.png"
    Image.open(SCENE).save(path)
    return path


def server_alpha(server: ServerProcess, data: bytes) -> np.ndarray:
    """The subject's opacity per pixel, from the server's own REST answer for the same image."""
    encoded = base64.b64encode(data).decode()
    if server.kind == "gradio":
        result = gradio_http.call(server.url, "segment_b64", encoded)
        assert result.event == "complete", result.data
        assert isinstance(result.data, list)
        png = base64.b64decode(result.data[0])
    else:
        png = base64.b64decode(
            httpx.post(f"{server.url}/segment_b64", json={"image": encoded}).json()["image"]
        )
    result_image = Image.open(io.BytesIO(png))
    return np.asarray(result_image.getchannel("A") if result_image.mode == "RGBA" else result_image)


def set_control(page: Page, selector: str, value: str) -> None:
    page.eval_on_selector(
        selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", value
    )


def compose_in_browser(
    browser: Browser, server: ServerProcess, image: Path, out_dir: Path, name: str
) -> Path:
    """Drive the page as a person would; returns the exported PNG. Fails on console errors and on
    any request not addressed to 127.0.0.1."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    foreign: list[str] = []
    errors: list[str] = []

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(server.url + "/")
        page.wait_for_function(
            "kind => document.getElementById('server-label').textContent.startsWith(kind + ' server')",
            arg=server.kind,
        )
        set_control(page, "#color", "#ff00ff")
        set_control(page, "#size", "45")
        set_control(page, "#y", "55")
        page.set_input_files("#file", str(image))
        page.wait_for_function("document.body.dataset.composited", timeout=120_000)
        page.wait_for_selector("#timings table")
        timings = page.inner_text("#timings")
        assert "server span" in timings and document_request_id(page) in timings
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)
        with page.expect_download() as download:
            page.click("#export")
        exported = out_dir / f"exported-{name}.png"
        download.value.save_as(exported)
    finally:
        context.close()
    assert foreign == [], f"the page reached beyond 127.0.0.1: {foreign}"
    assert errors == [], errors
    return exported


def document_request_id(page: Page) -> str:
    return str(page.evaluate("document.body.dataset.composited"))


def assert_text_behind_subject(exported: Path, original: Path, alpha: np.ndarray) -> None:
    composite = np.asarray(Image.open(exported).convert("RGB"))
    source = np.asarray(Image.open(original).convert("RGB"))
    assert composite.shape == source.shape  # full resolution
    text = np.all(composite == TEXT_COLOUR, axis=-1)
    background, subject = alpha == 0, alpha == 255
    assert background.sum() > 500 and subject.sum() > 500, "the fixture needs both subject and background"
    assert text[background].sum() > 200, "no text where the mask is background"
    assert text[subject].sum() == 0, "text drawn over the subject"
    assert np.array_equal(composite[subject], source[subject]), "the subject is not on top, unchanged"


MODEL_ARGS = {"sim": ("--sim-ms", "20"), "u2netp": ("--torch-threads", "1")}


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("gradio", "sim"),
        ("fastapi", "sim"),
        pytest.param("gradio", "u2netp", marks=pytest.mark.slow),
        pytest.param("fastapi", "u2netp", marks=pytest.mark.slow),
    ],
)
def test_page_composites_text_behind_the_subject(
    browser: Browser, server_factory: StartServer, scene_png: Path, tmp_path: Path, kind: str, model: str
) -> None:
    server = server_factory(kind, "--model", model, *MODEL_ARGS[model])
    exported = compose_in_browser(browser, server, scene_png, tmp_path, f"{kind}-{model}")
    assert_text_behind_subject(exported, scene_png, server_alpha(server, scene_png.read_bytes()))


def test_page_builds_the_subject_from_a_mask(
    browser: Browser, server_factory: StartServer, scene_png: Path, tmp_path: Path
) -> None:
    server = server_factory("gradio", "--model", "sim", "--sim-ms", "20", "--output", "mask")
    exported = compose_in_browser(browser, server, scene_png, tmp_path, "gradio-sim-mask")
    assert_text_behind_subject(exported, scene_png, server_alpha(server, scene_png.read_bytes()))
