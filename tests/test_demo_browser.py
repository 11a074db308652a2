"""The demo page in a real browser: `wedepth demo` in its own process with a tiny random model, Debian's headless
Chromium driven by Selenium through the system chromedriver (Selenium Manager is never asked to download anything),
and no network beyond localhost. The test uploads a generated scene, waits for the depth, reads a depth under a click,
downloads the 16-bit PNG, and screenshots the page (to $WEDEPTH_DEMO_SCREENSHOT when set: docs/images/demo.png is made
that way; $WEDEPTH_DEMO_MODEL replaces the tiny model, e.g. with a trained one, for that picture)."""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_tiny_config
from PIL import Image

from wedepth_hf import WEDepthForDepthEstimation, WEDepthImageProcessor
from wedepth_hf.data.synthetic import render_synthetic_sample


pytest.importorskip("gradio", reason='the demo page needs Gradio: pip install "wedepth_hf[demo]"')
pytest.importorskip("selenium", reason='the browser test needs Selenium: pip install "wedepth_hf[dev]"')

from selenium import webdriver  # noqa: E402 - only once Selenium is known to be there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs the system Chromium and its driver: apt-get install -y chromium chromium-driver",
    ),
]
START_TIMEOUT = 120
"""Seconds for `wedepth demo` to import, load the model and serve (Python, torch, transformers and Gradio)."""
RESULT_TIMEOUT = 60
"""Seconds for the page to show a prediction."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scene_photo(path: Path) -> Path:
    """A rendered synthetic room (walls, floor, boxes and spheres) as a 8-bit PNG, 240x320."""
    image = render_synthetic_sample(7, 240, 320)["image"].permute(1, 2, 0).numpy()
    pixels = image if image.dtype == np.uint8 else np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def tmp_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def model_folder(tmp_folder: Path) -> Path:
    if os.environ.get("WEDEPTH_DEMO_MODEL"):
        return Path(os.environ["WEDEPTH_DEMO_MODEL"])
    torch.manual_seed(0)
    WEDepthForDepthEstimation(make_tiny_config()).save_pretrained(tmp_folder / "model")
    WEDepthImageProcessor().save_pretrained(tmp_folder / "model")
    return tmp_folder / "model"


def _default_sigint() -> None:
    """In the child before it runs: SIGINT back to its default, for which Python installs its KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def server(model_folder: Path, tmp_folder: Path, package_parent: str) -> Iterator[str]:
    """The URL of `wedepth demo` (this checkout's) serving `model_folder`; stopped with Ctrl-C (SIGINT), which must
    end it with 130."""
    port = free_port()
    command = [sys.executable, "-m", "wedepth_hf", "demo", "--model", str(model_folder), "--port", str(port)]
    python_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path, "HF_HUB_OFFLINE": "1"}
    environment["GRADIO_TEMP_DIR"] = str(tmp_folder / "gradio")
    log = (tmp_folder / "demo.log").open("w+")
    process = subprocess.Popen(
        [*command, "--device", "cpu", "--dtype", "float32"],
        cwd=tmp_folder,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Ctrl-C as a terminal delivers it: a suite started in the background (`cmd &` in a script) has SIGINT
        # ignored, which its children inherit, and Python then raises no KeyboardInterrupt.
        preexec_fn=_default_sigint,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert process.poll() is None, (tmp_folder / "demo.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "wedepth demo did not serve in time"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    yield url
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=60) == 130, (tmp_folder / "demo.log").read_text()[-3000:]
    finally:
        process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium through the system chromedriver, with every host name but localhost unresolvable."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, were it ever asked, may not download
        yield from _chromium()


def _chromium() -> Iterator[webdriver.Chrome]:
    """The browser of the `browser` fixture."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--enable-unsafe-swiftshader",  # WebGL in software, for the 3D view
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the page requested so far, from Chromium's network log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_demo_page_predicts_in_a_browser(server: str, browser: webdriver.Chrome, tmp_path: Path) -> None:
    photo = scene_photo(tmp_path / "scene.png")
    wait = WebDriverWait(browser, RESULT_TIMEOUT)
    browser.get(server)
    upload = wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, "#input-image input[type=file]"))
    upload.send_keys(str(photo))
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#input-image img"))
    browser.find_element(By.ID, "predict-image").click()
    depth_image = wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, "#depth img[src]"))
    links = wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#downloads a[href]"))

    # The 16-bit depth PNG the page offers: the photo's size, in millimetres, not uniform.
    png_url = next(link.get_attribute("href") for link in links if "_depth.png" in link.get_attribute("href"))
    with Image.open(io.BytesIO(fetch(png_url))) as png:
        millimetres = np.asarray(png)
    assert millimetres.dtype == np.uint16 and millimetres.shape == (240, 320)
    assert millimetres.std() > 0 and np.count_nonzero(millimetres) == millimetres.size

    # A click on the centre of the colour depth reads the depth there (the map is 320 of the 410 pixels' width).
    width, height = depth_image.size["width"], depth_image.size["height"]
    x_offset = round(width * (160 + 0.5) / 410 - width / 2)
    ActionChains(browser).move_to_element_with_offset(depth_image, x_offset, 0).click().perform()
    readout = browser.find_element(By.CSS_SELECTOR, "#depth-readout textarea")
    wait.until(lambda driver: "Depth at pixel" in readout.get_attribute("value"))
    text = readout.get_attribute("value")
    x, y = (int(value) for value in text.split("(")[1].split(")")[0].split(", "))
    assert abs(x - 160) <= 2 and abs(y - 120) <= 2, (text, width, height)
    assert float(text.split(": ")[1].removesuffix(" m")) == pytest.approx(millimetres[y, x] / 1000, abs=1e-3)

    # What the visitor sees: the colour map region of the depth picture varies.
    time.sleep(2)  # the 3D view draws its points
    shown = np.asarray(Image.open(io.BytesIO(depth_image.screenshot_as_png)).convert("RGB"), dtype=np.float64)
    colour_map = shown[:, : shown.shape[1] * 300 // 410]
    assert colour_map.std() > 5 and len(np.unique(colour_map.reshape(-1, 3), axis=0)) > 50
    screenshot = Path(os.environ.get("WEDEPTH_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    assert browser.save_screenshot(str(screenshot))

    # Nothing but the page's own server was asked for anything.
    urls = requested_urls(browser)
    assert any(url.startswith(server) for url in urls), urls[:5]  # the log does record the page's requests
    outside = [url for url in urls if not url.startswith((server, "data:", "blob:"))]
    assert not outside, outside


def test_video_tab_in_a_browser(server: str, browser: webdriver.Chrome, tmp_path: Path) -> None:
    """A 6-frame clip uploaded on the video tab comes back as a playable colour depth video of 6 frames."""
    av = pytest.importorskip("av", reason='the video tab needs PyAV: pip install "wedepth_hf[video]"')
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("mpeg4", rate=6)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for seed in range(6):
            frame = render_synthetic_sample(seed, 96, 128)["image"].permute(1, 2, 0).numpy()
            pixels = frame if frame.dtype == np.uint8 else np.clip(np.round(frame * 255), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    wait = WebDriverWait(browser, RESULT_TIMEOUT)
    browser.get(server)
    wait.until(lambda driver: driver.find_element(By.XPATH, "//button[@role='tab'][normalize-space()='Video']")).click()
    upload = wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, "#input-video input[type=file]"))
    upload.send_keys(str(clip))
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#input-video video[src]"))
    browser.find_element(By.ID, "predict-video").click()
    video = wait.until(lambda driver: driver.find_element(By.CSS_SELECTOR, "#depth-video video[src]"))
    wait.until(lambda driver: driver.execute_script("return arguments[0].readyState >= 1", video))
    assert browser.execute_script("return arguments[0].videoWidth", video) > 0  # the browser decodes it
    with av.open(io.BytesIO(fetch(video.get_attribute("src")))) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].std() > 0
