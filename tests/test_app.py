"""vdsr-app, the web page: its work (``Jobs``), its server through Gradio's own
client, its queue, and one run in a real browser (headless Chromium).

The server tests share one ``vdsr-app`` process (the command as a user
starts it, bundled weights, fp32). Every wait is bounded.
"""

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from vdsr_tf.app.jobs import Jobs, offered_precisions
from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io.images import sample_images_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUTTERFLY = os.path.join(sample_images_dir(), "LR_bicubic", "X3", "butterfly.png")
BIRD = os.path.join(sample_images_dir(), "LR_bicubic", "X2", "bird.png")
START_S = 240  # the server's start: imports, the model, Gradio
REQUEST_S = 180


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return dict(
        os.environ,
        PYTHONPATH=REPO,
        TF_CPP_MIN_LOG_LEVEL="3",
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
    )


def _corrupt(path):
    """A PNG signature and garbage: a corrupt upload."""
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    return str(path)


def _huge(path):
    """A PNG whose header says 12000 x 12000 (a few hundred bytes on disk)."""
    import zlib

    with Image.open(BIRD) as im:
        im.save(path)
    data = bytearray(open(path, "rb").read())
    data[16:24] = (12000).to_bytes(4, "big") * 2  # IHDR's width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # and its CRC
    open(path, "wb").write(bytes(data))
    return str(path)


def _photo(path):
    """A JPEG with EXIF (camera make) and an sRGB profile, 48 x 40."""
    from PIL import ImageCms

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "vdsr-test-camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im.save(path, "JPEG", quality=90, exif=exif, icc_profile=icc)
    return str(path)


# -- Jobs: the work, without the web framework ---------------------------------


def test_jobs_runs_the_command_line_path_and_cleans_up(tmp_path):
    upscaler = Upscaler("bicubic")
    jobs = Jobs("bicubic", upscalers={"auto": upscaler})
    folder = jobs.folder
    assert jobs.upscaler() is upscaler  # loaded once, shared
    result = jobs.run(_photo(tmp_path / "photo.jpg"), scale=2.5, fmt="png")
    assert os.path.basename(result.output) == "photo_x2.5.png"
    reference = tmp_path / "reference.png"
    upscaler.upscale_file(str(tmp_path / "photo.jpg"), str(reference), scale=2.5)
    assert open(result.output, "rb").read() == open(reference, "rb").read()
    with Image.open(result.output) as im:
        assert im.size == (120, 100)
        assert im.getexif()[0x010F] == "vdsr-test-camera"
        assert im.info.get("icc_profile")
    assert result.after == result.output  # a PNG is shown as it is
    with Image.open(result.before) as im:  # bicubic, for the comparison
        assert im.format == "PNG" and im.size == (120, 100)
    tif = jobs.run(str(tmp_path / "photo.jpg"), size=(60, 100), fmt="tif")
    assert tif.output.endswith("photo_100x60.tif") and tif.after.endswith(".png")
    with Image.open(tif.after) as im:
        assert im.size == (100, 60)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        jobs.run(_corrupt(tmp_path / "bad.png"), scale=2)
    assert len(os.listdir(jobs.results)) == 2  # the failed request left no folder
    with pytest.raises(ValueError, match="a video"):
        jobs.run(BIRD, name="clip.mp4", scale=2)
    with pytest.raises(ValueError, match="unknown format 'heic'"):
        jobs.run(BIRD, scale=2, fmt="heic")
    with pytest.raises(ValueError, match="not offered"):
        jobs.run(BIRD, scale=2, precision="int8")
    jobs.keep_s = 0
    time.sleep(0.05)
    jobs.sweep()
    assert os.listdir(jobs.results) == []
    jobs.close()
    assert not os.path.exists(folder)


def test_offered_precisions():
    offered = offered_precisions()
    assert offered[:2] == ["auto", "fp32"]
    assert set(offered) <= {"auto", "fp32", "int8", "bf16"}
    assert offered_precisions("bicubic") == ["auto"]


# -- the page in this process: the queue ----------------------------------------


class _Gate:
    """A predictor (zero residual) whose second and later calls block until
    released; it records how many calls ran at once."""

    context = 10

    def __init__(self):
        self.entered = threading.Event()  # a call is blocked
        self.release = threading.Event()
        self.calls = self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, x):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
            block = self.calls > 1
        try:
            if block:
                self.entered.set()
                assert self.release.wait(REQUEST_S)
            return np.zeros_like(x)
        finally:
            with self.lock:
                self.running -= 1


def _wait(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.slow(reason="imports Gradio and serves a page in this process")
def test_requests_queue_with_bounded_concurrency(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    from vdsr_tf.app.page import launch

    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # build() sets it; restored after the test
    gate = _Gate()
    jobs = Jobs(upscalers={"fp32": Upscaler(predictor=gate, tile=96)})  # 288 / 96: 9 tiles
    page = launch(
        jobs, port=_free_port(), examples=False, precision="fp32", concurrency=1, queue_size=1
    )
    try:
        client = Client(page.local_url, verbose=False, download_files=str(tmp_path))
        args = ([handle_file(BIRD)], "2", 2.5, None, None, "fp32", False, "input")
        first = client.submit(*args, api_name="/upscale")
        _wait(gate.entered.is_set, REQUEST_S, "the first request to run")

        def tile_done():  # the page's progress bar: tiles of the image
            progress = first.status().progress_data
            return progress and (progress[0].index, progress[0].length) == (1, 9)

        _wait(tile_done, REQUEST_S, "the progress of the first tile")
        assert first.status().progress_data[0].desc == "bird.png: tiles"
        second = client.submit(*args, api_name="/upscale")
        _wait(lambda: second.status().code == Status.IN_QUEUE, REQUEST_S, "the second to queue")
        third = client.submit(*args, api_name="/upscale")
        with pytest.raises(Exception, match="(?i)queue is full"):
            third.result(timeout=REQUEST_S)
        gate.release.set()
        for job in (first, second):
            _, _, downloads, _ = job.result(timeout=REQUEST_S)
            with Image.open(downloads[0]) as im:
                assert im.size == (2 * 144, 2 * 144)
        assert gate.most == 1
    finally:
        gate.release.set()
        with contextlib.redirect_stdout(io.StringIO()):
            page.close()
        jobs.close()


# -- the command's server, through gradio_client and a browser -------------------


class Server:
    """``vdsr-app`` in a subprocess; ``stop()`` sends SIGTERM."""

    def __init__(self, tmp):
        self.port = _free_port()
        self.log = tmp / "app.log"
        self._err = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vdsr_tf.cli.app",
                f"--port={self.port}",
                "--precision=fp32",
                "--max_file_size=1mb",
            ],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=self._err,
        )
        end = time.monotonic() + START_S
        while "serving http" not in self.text():
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise AssertionError(f"vdsr-app did not start:\n{self.text()}")
            time.sleep(0.5)
        self.url = f"http://127.0.0.1:{self.port}/"

    def text(self):
        return self.log.read_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("gradio")
    app = Server(tmp_path_factory.mktemp("app"))
    yield app
    app.stop()


@pytest.fixture
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(tmp_path))


def _upscale(client, paths, mode="2", factor=2.5, width=None, height=None, fmt="input"):
    from gradio_client import handle_file

    return client.predict(
        [handle_file(p) for p in paths],
        mode,
        factor,
        width,
        height,
        "fp32",
        False,
        fmt,
        api_name="/upscale",
    )


@pytest.mark.slow(reason="a vdsr-app server in a subprocess")
def test_served_result_equals_the_upscaler(server, client, tmp_path):
    (before, after), _, downloads, status = _upscale(client, [BUTTERFLY], "3")
    reference = tmp_path / "reference.png"
    Upscaler(precision="fp32").upscale_file(BUTTERFLY, str(reference), scale=3)
    assert open(downloads[0], "rb").read() == open(reference, "rb").read()
    assert os.path.basename(downloads[0]) == "butterfly_x3.png"
    bicubic = Upscaler("bicubic").upscale_array(np.asarray(Image.open(BUTTERFLY)), scale=3)
    with Image.open(before) as im:
        assert im.size == (255, 255)
        np.testing.assert_array_equal(np.asarray(im), bicubic)
    assert "85×85 → 255×255" in status
    assert f"network: {Upscaler(precision='fp32').describe()}" in status


@pytest.mark.slow(reason="a vdsr-app server in a subprocess")
def test_bad_uploads_get_one_line_and_the_app_goes_on(server, client, tmp_path):
    from gradio_client.exceptions import AppError

    cases = [
        (_corrupt(tmp_path / "bad.png"), "bad.png: corrupt or truncated image"),
        (
            _huge(tmp_path / "huge.png"),
            "huge.png: 12000x12000 exceeds the pixel limit of 100,000,000",
        ),
    ]
    for path, message in cases:
        with pytest.raises(AppError) as caught:
            _upscale(client, [path])
        assert message in str(caught.value) and "\n" not in str(caught.value)
    # An upload over --max_file_size is refused by the server before it is stored.
    boundary = "vdsr-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + bytes(2 << 20)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    upload = urllib.request.Request(
        server.url + "gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(upload, timeout=60)
    assert refused.value.code == 413
    with pytest.raises(AppError, match="the factor must be a number > 1"):
        _upscale(client, [BIRD], "factor", factor=1)
    with pytest.raises(AppError, match="width and height"):
        _upscale(client, [BIRD], "size", width=100)
    # Several files, one of them bad: the others are done, the bad one is listed.
    _, pick, downloads, status = _upscale(
        client,
        [BIRD, _corrupt(tmp_path / "worse.png"), _photo(tmp_path / "photo.jpg")],
        "size",
        width=300,
        height=200,
        fmt="jpg",
    )
    names = [os.path.basename(d) for d in downloads]
    assert names == ["bird_300x200.jpg", "photo_300x200.jpg"]
    assert pick["visible"] and pick["value"] == 0
    assert pick["choices"] == [["bird.png", 0], ["photo.jpg", 1]]
    assert "**failed**: worse.png: corrupt or truncated image" in status
    with Image.open(downloads[1]) as im:
        assert im.format == "JPEG" and im.size == (300, 200)
        assert im.getexif()[0x010F] == "vdsr-test-camera"
    assert server.proc.poll() is None


@pytest.mark.slow(reason="a vdsr-app server in a subprocess")
def test_command_line_errors_are_one_line(tmp_path):
    pytest.importorskip("gradio")
    env = _env()
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "vdsr_tf.cli.app", *a],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    proc = run("photo.png")
    assert proc.returncode == 2 and "vdsr-app: error: vdsr-app takes no arguments" in proc.stderr
    proc = run(f"--weights={tmp_path / 'missing.weights.h5'}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("vdsr-app: error:")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = run(f"--port={taken.getsockname()[1]}", "--weights=bicubic")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("vdsr-app: error:") and proc.stderr.count("\n") == 1


def _chromium(monkeypatch):
    """A WebDriver on Debian's chromium and chromedriver, or a skip that says why."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    paths = {name: shutil.which(name) for name in ("chromium", "chromedriver")}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        pytest.skip(f"no {' or '.join(missing)} on PATH (apt-get install chromium chromium-driver)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager downloads nothing
    options = webdriver.ChromeOptions()
    options.binary_location = paths["chromium"]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(paths["chromedriver"]), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


@pytest.mark.slow(reason="a vdsr-app server and a headless Chromium")
def test_in_a_real_browser(server, tmp_path, monkeypatch):
    """Loads the page, sends a corrupt file (one line in the page), then the
    bundled butterfly at x3: a 255 x 255 result, the bytes vdsr-upscale writes."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(monkeypatch)
    try:
        driver.get(server.url)
        wait = WebDriverWait(driver, 60)
        picker = "#vdsr-inputs input[type=file]"
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, picker))
        driver.find_element(By.CSS_SELECTOR, picker).send_keys(_corrupt(tmp_path / "bad.png"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#vdsr-inputs td.filename"))
        driver.find_element(By.ID, "vdsr-go").click()
        toast = "[data-testid=toast-body]"

        def toast_lines(d):  # the toast's visible lines, once it has any (it fades in)
            found = d.find_elements(By.CSS_SELECTOR, toast)
            return found and found[0].text.splitlines()

        stale = (StaleElementReferenceException,)
        message = WebDriverWait(driver, REQUEST_S, ignored_exceptions=stale).until(
            toast_lines, "no error toast with text"
        )
        assert message[-1].startswith("bad.png: corrupt or truncated image: "), message
        driver.find_element(By.CSS_SELECTOR, "[data-testid=toast-close]").click()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, toast))

        driver.find_element(By.CSS_SELECTOR, "#vdsr-inputs button[aria-label=Clear]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, picker))
        driver.find_element(By.CSS_SELECTOR, picker).send_keys(BUTTERFLY)
        wait.until(lambda d: "butterfly" in d.find_element(By.ID, "vdsr-inputs").text)
        driver.find_element(By.XPATH, "//*[@id='vdsr-scale']//input[@value='3']").click()
        driver.find_element(By.ID, "vdsr-go").click()

        def shown(d):  # the two images of the slider, loaded: [width, height, src]
            images = d.execute_script(
                "return Array.from(document.querySelectorAll('#vdsr-slider img'))"
                ".filter(i => i.complete && i.naturalWidth)"
                ".map(i => [i.naturalWidth, i.naturalHeight, i.src])"
            )
            return images if len(images) == 2 else None

        images = WebDriverWait(driver, REQUEST_S).until(shown)
        assert [im[:2] for im in images] == [[255, 255], [255, 255]]
        links = driver.find_elements(By.CSS_SELECTOR, "#vdsr-downloads a[href]")
        assert len(links) == 1
        with urllib.request.urlopen(links[0].get_attribute("href"), timeout=60) as r:
            served = r.read()
        shot = os.environ.get("VDSR_TF_SCREENSHOT") or str(tmp_path / "vdsr_app.png")
        driver.set_window_size(1400, 1000)
        assert driver.save_screenshot(shot)
    finally:
        driver.quit()
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "vdsr_tf.cli.upscale",
            BUTTERFLY,
            "--scale=3",
            "--precision=fp32",
            f"--output={tmp_path / 'cli.png'}",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=REQUEST_S,
    )
    assert cli.returncode == 0, cli.stderr
    assert served == (tmp_path / "cli.png").read_bytes()


@pytest.mark.slow(reason="a vdsr-app server in a subprocess")
def test_stopping_removes_the_uploads_and_results(tmp_path):
    pytest.importorskip("gradio")
    from gradio_client import Client

    server = Server(tmp_path)  # its own: this test stops it
    try:
        remote = Client(server.url, verbose=False, download_files=False)  # paths on the server
        _, _, downloads, _ = _upscale(remote, [BIRD])
        served = downloads[0]["path"]
        folder = served[: served.index("/results/")]
        assert os.path.isfile(served) and os.path.basename(folder).startswith("vdsr-app-")
        uploads = [p for p in os.listdir(folder) if p != "results"]
        assert uploads  # Gradio's upload folder is the app's
        assert server.stop() == 128 + signal.SIGTERM
        assert "vdsr-app: stopped: terminated (SIGTERM)" in server.text()
        assert not os.path.exists(folder)
    finally:
        server.stop()
