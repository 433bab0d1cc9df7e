"""``convnet watch``: the page, the event stream that resumes where a browser left off, and a
server that serves only the run folder's own files, read-only, whatever a client sends."""

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from convnet import watch
from convnet.viz.snapshots import feature_maps_png, image_png, kernels_png
from convnet.run_folder import STEPS


@pytest.fixture
def server(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / STEPS).write_text("".join(json.dumps({"kind": "step", "step": 10 * k, "loss": 1.0 / k}) + "\n"
                                         for k in (1, 2)))
    (run_dir / "checkpoint.json").write_text(json.dumps({"config": {"model": "lenet5"}}))
    (run_dir / "checkpoint.safetensors").write_bytes(b"weights")
    (run_dir / "metrics.csv").write_text("epoch,test_accuracy\n1,0.5\n")
    (run_dir / "snapshots").mkdir()
    (run_dir / "snapshots" / "kernels-0000200.png").write_bytes(b"kernels")
    (tmp_path / "secret.txt").write_text("not yours")
    server = watch.make_server(run_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, run_dir
    server.shutdown()
    server.server_close()


def get(server, path, headers=None):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.read(), response.getheader("Content-Type")


def events(server, count, headers=None):
    """The first ``count`` events of /events as (id, data)."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request("GET", "/events", headers=headers or {})
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    found, event = [], {}
    while len(found) < count:
        line = response.fp.readline().decode().rstrip("\n")
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif not line and "data" in event:
            found.append((event["id"], event["data"]))
            event = {}
    connection.close()
    return found


def test_the_page_loads_nothing_from_the_network(server):
    status, body, content_type = get(server[0], "/")
    assert status == 200 and content_type.startswith("text/html")
    page = body.decode()
    assert 'new EventSource("/events")' in page
    assert not re.search(r"(src|href)=[\"']?(https?:|//)", page) and "url(" not in page and "@import" not in page


def test_events_replay_the_log_push_new_lines_and_resume_after_the_last_id(server):
    server, run_dir = server
    assert events(server, 2) == [(1, {"kind": "step", "step": 10, "loss": 1.0}), (2, {"kind": "step", "step": 20,
                                                                                       "loss": 0.5})]
    with open(run_dir / STEPS, "a") as log:
        log.write(json.dumps({"kind": "epoch", "step": 24, "test_accuracy": 0.5}) + "\n")
        log.write('{"kind": "step", "st')  # a line being written: not sent until whole
    assert events(server, 1, {"Last-Event-ID": "2"}) == [(3, {"kind": "epoch", "step": 24, "test_accuracy": 0.5})]


@pytest.mark.parametrize("path", ["/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/checkpoint.safetensors",
                                  "/files/checkpoint.json", "/files//etc/passwd", "/files/curves.png", "/../secret.txt",
                                  "/etc/passwd", "/files/snapshots/../checkpoint.json", "/files/snapshots/kernels-1.png.x",
                                  "/files/snapshots/kernels-0000200.png/..", "/files/snapshots/../../secret.txt"])
def test_only_the_run_folders_own_report_files_are_served(server, path):
    status, body, _ = get(server[0], path)
    assert status == 404 and b"not yours" not in body and b"weights" not in body and b"lenet5" not in body


def test_the_reports_and_the_snapshots_pictures_are_served(server):
    server, _ = server
    assert get(server, "/files/metrics.csv") == (200, b"epoch,test_accuracy\n1,0.5\n", "text/csv")
    assert get(server, "/files/snapshots/kernels-0000200.png") == (200, b"kernels", "image/png")


def test_a_link_out_of_the_folder_is_refused(server):
    server, run_dir = server
    (run_dir / "metrics.csv").unlink()
    (run_dir / "metrics.csv").symlink_to(run_dir.parent / "secret.txt")
    (run_dir / "snapshots" / "kernels-0000300.png").symlink_to(run_dir.parent / "secret.txt")
    assert get(server, "/files/metrics.csv")[0] == 404
    assert get(server, "/files/snapshots/kernels-0000300.png")[0] == 404
    assert get(server, "/files/snapshots/kernels-0000200.png")[0] == 200


def test_nothing_changes_anything_and_garbage_or_a_vanished_client_costs_one_connection(server):
    server, run_dir = server
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request("POST", "/files/metrics.csv", body=b"{}")
    assert connection.getresponse().status == 501  # only GET and HEAD
    for garbage in (b"\x00\xff garbage\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(server.server_address[:2], timeout=10) as raw:
            raw.sendall(garbage)
            raw.recv(1024)
    with socket.create_connection(server.server_address[:2], timeout=10) as raw:  # leaves mid-stream
        raw.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.recv(100)
    assert get(server, "/")[0] == 200
    assert (run_dir / "metrics.csv").read_text() == "epoch,test_accuracy\n1,0.5\n"


def test_clients_that_vanish_mid_answer_cost_no_traceback_and_the_server_answers_on(server, capfd):
    """A browser drops connections all the time (a closed tab, a reload, a picture no longer
    wanted); each used to print a BrokenPipeError or ConnectionResetError traceback."""
    server, run_dir = server
    (run_dir / "curves.png").write_bytes(bytes(8 << 20))  # far more than the sockets buffer
    for path in ("/files/curves.png", "/", "/events"):
        for _ in range(3):
            raw = socket.create_connection(server.server_address[:2], timeout=10)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            raw.recv(100)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            raw.close()
    time.sleep(watch.POLL_SECONDS + 0.5)  # the stream's next write finds its client gone
    assert get(server, "/")[0] == 200 and get(server, "/files/metrics.csv")[0] == 200
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "Error" not in err and len(err.splitlines()) <= 1, err[-2000:]


def test_the_server_binds_to_this_machine_only_by_default(tmp_path):
    server = watch.make_server(tmp_path)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        watch.make_server(tmp_path / "missing")



def test_convnet_watch_prints_its_address_and_serves_until_interrupted(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "convnet", "watch", str(tmp_path), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert line.startswith(f"watching {tmp_path} at ") and url, line
        connection = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=10)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(url, profile):
    """The page's DOM after its scripts ran (headless Chromium, a virtual 3 s)."""
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    return done.stdout


def served_and_rendered(run_dir, profile, **options):
    """The page of ``run_dir`` served by `watch.make_server` (``options``), as `rendered` sees it."""
    server = watch.make_server(run_dir, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return rendered("http://%s:%d/" % server.server_address[:2], profile)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.system
@pytest.mark.skipif(not chromium() and not os.environ.get("CI"),
                    reason="needs Debian's chromium (make test installs it)")
def test_headless_chromium_draws_the_run_as_it_grows_fetching_nothing_outside(server, tmp_path, monkeypatch):
    """Streams end at once here (each reconnect brings what is new), so the page settles within
    the browser's virtual time; the figures shown grow as the log does, a line cut short by a kill
    included."""
    monkeypatch.setattr(watch, "STREAM_SECONDS", 0)
    server, run_dir = server
    url = "http://%s:%d/" % server.server_address[:2]

    def log(**entry):
        with open(run_dir / STEPS, "a") as stream:
            stream.write(json.dumps(entry) + "\n")
    log(kind="run", step=0, config={"model": "lenet5", "epochs": 400, "batch_size": 16}, classes=["cat", "<dog>"],
        summary="0 (Conv2d)  (1, 6, 28, 28)  156")
    (run_dir / "snapshots" / "image.png").write_bytes(image_png(np.zeros((1, 28, 28))))
    for step in (0, 20):
        (run_dir / "snapshots" / f"kernels-{step:07d}.png").write_bytes(kernels_png(np.full((6, 5, 5), step + 1.0)))
        (run_dir / "snapshots" / f"feature_maps-{step:07d}.png").write_bytes(feature_maps_png(np.ones((6, 24, 24))))
        log(kind="snapshot", step=step, epochs_done=step / 16, image="snapshots/image.png",
            kernels=f"snapshots/kernels-{step:07d}.png", feature_maps=f"snapshots/feature_maps-{step:07d}.png")
    log(kind="step", step=30, epoch=2, batch=14, loss=0.3, accuracy=0.8, lr=0.001, images_per_second=3456.0)
    log(kind="epoch", step=32, epoch=2, test_loss=0.4, test_accuracy=0.875, per_class_accuracy=[0.9, 0.85], lr=0.001)
    page = rendered(url, tmp_path / "profile")
    assert '<b id="step">30</b>' in page and '<b id="speed">3456</b>' in page, page[-2000:]
    assert '<b id="left">29 s</b>' in page  # (400 x 16 - 32) steps x 16 images at 3456 images/s
    assert '<b id="test">0.8750</b>' in page and page.count("<polyline") >= 3
    assert "<td>model</td><td>lenet5</td>" in page and "0 (Conv2d)  (1, 6, 28, 28)  156</pre>" in page
    assert "<td>cat</td><td>0.900</td>" in page and "<td>&lt;dog&gt;</td><td>0.850</td>" in page
    # The caption is written once the latest kernels' picture has loaded with a width.
    assert 'src="/files/snapshots/kernels-0000020.png"' in page and "step 20 (epoch 1.25)</p>" in page
    assert 'src="/files/snapshots/feature_maps-0000020.png"' in page and 'src="/files/snapshots/image.png"' in page
    log(kind="step", step=40, epoch=3, batch=8, loss=0.2, accuracy=0.9, lr=0.0005, images_per_second=4000.0)
    log(kind="snapshot", step=40, epochs_done=2.5, image="snapshots/image.png", kernels="snapshots/kernels-0000040.png",
        feature_maps="snapshots/feature_maps-0000040.png")  # its pictures deleted since
    with open(run_dir / STEPS, "a") as stream:
        stream.write('{"kind": "step", "step": 5')  # the training was killed mid-line
    page = rendered(url, tmp_path / "profile")
    assert '<b id="step">40</b>' in page and '<b id="epoch">3</b>' in page
    assert "snapshots/kernels-0000040.png is missing from the run folder</p>" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from elsewhere


@pytest.mark.system
@pytest.mark.skipif(not chromium() and not os.environ.get("CI"),
                    reason="needs Debian's chromium (make test installs it)")
def test_the_page_speaks_korean_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "STREAM_SECONDS", 0)
    (tmp_path / STEPS).write_text(json.dumps({"kind": "step", "step": 10, "epoch": 1, "batch": 10, "loss": 1.0,
                                              "accuracy": 0.5, "lr": 0.1, "images_per_second": 100.0}) + "\n")
    page = served_and_rendered(tmp_path, tmp_path / "profile", language="ko")
    assert '<html lang="ko">' in page and "<h2>첫 번째 합성곱 층의 커널</h2>" in page and "<h2>손실</h2>" in page
    assert '<span id="status">실시간</span>' in page and ">학습</text>" in page  # the script's words too


@pytest.mark.slow
def test_train_watch_serves_the_run_it_trains(tiny_fashion, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "convnet", "train", "--model", "lenet5", "--data",
                                str(tiny_fashion), "--epochs", "1000", "--batch-size", "16", "--out", str(run_dir), "--no-progress",
                                "--watch", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        url = None
        for line in process.stdout:
            url = url or re.search(r"watch the run at http://127\.0\.0\.1:(\d+)/", line)
            if line.startswith("epoch 1/1000"):
                break
        assert url, "no address printed"
        server = type("Address", (), {"server_address": ("127.0.0.1", int(url.group(1)))})
        assert get(server, "/")[0] == 200
        (_, run), (_, snapshot), (_, step) = events(server, 3)
        assert run["kind"] == "run" and run["config"]["model"] == "lenet5" and "Conv2d" in run["summary"]
        assert (snapshot["kind"], snapshot["step"], step["kind"], step["step"]) == ("snapshot", 0, "step", 10)
        assert get(server, "/files/" + snapshot["kernels"])[0] == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 130


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    NUL-terminated JSON messages, read by the browser on file descriptor 3 and written on 4), so
    that a test reads a live page as it changes, in real time."""

    def __init__(self, profile):
        commands, self.commands = os.pipe()
        self.replies, replies = os.pipe()
        self.process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=lambda: (os.dup2(commands, 3), os.dup2(replies, 4)), close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands)
        os.close(replies)
        self.sent, self.received = 0, b""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method, session=None, **params):
        self.sent += 1
        message = {"id": self.sent, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.received:
                ready, _, _ = select.select([self.replies], [], [], 30)
                assert ready, f"Chromium did not answer {method} within 30 s"
                chunk = os.read(self.replies, 1 << 16)
                assert chunk, "Chromium closed its pipe"
                self.received += chunk
            line, self.received = self.received.split(b"\0", 1)
            reply = json.loads(line)
            if reply.get("id") == self.sent:
                assert "error" not in reply, reply["error"]
                return reply["result"]

    def open(self, url):
        self.call("Page.navigate", self.session, url=url)

    def evaluate(self, expression):
        reply = self.call("Runtime.evaluate", self.session, expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def wait_for(self, expression, seconds=60):
        """The value of ``expression`` once it is truthy."""
        ends = time.monotonic() + seconds
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < ends, f"still false after {seconds} s: {expression}"
            time.sleep(0.2)
        return value

    def close(self):
        self.process.kill()
        self.process.wait()
        os.close(self.commands)
        os.close(self.replies)


@pytest.mark.system
@pytest.mark.skipif(not chromium() and not os.environ.get("CI"),
                    reason="needs Debian's chromium (make test installs it)")
def test_a_browser_watches_a_live_run_grow_and_outlive_its_training(tiny_fashion, tmp_path):
    """A real training, `convnet watch` in its own process, and Chromium in real time: the step
    count and the curves grow, the kernels' pictures load, nothing is fetched from elsewhere, and
    the page stays up when the training is killed."""
    run_dir = tmp_path / "run"
    training = subprocess.Popen([sys.executable, "-m", "convnet", "train", "--model", "lenet5", "--data",
                                 str(tiny_fashion), "--epochs", "1000", "--batch-size", "16", "--snapshot-every", "20",
                                 "--out", str(run_dir), "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        if run_dir.is_dir() or training.poll() is not None:
            break
        time.sleep(0.1)
    watching = subprocess.Popen([sys.executable, "-m", "convnet", "watch", str(run_dir), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    browser = Browser(tmp_path / "profile")
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", watching.stdout.readline()).group(0)
        browser.open(url)
        step = int(browser.wait_for("Number(document.getElementById('step').textContent) > 0 && "
                                    "document.getElementById('step').textContent"))
        points = browser.evaluate("document.querySelector('#loss polyline').points.length")
        later = int(browser.wait_for(f"Number(document.getElementById('step').textContent) >= {step + 40} && "
                                     "document.getElementById('step').textContent"))
        assert later >= step + 40 and browser.evaluate("document.querySelector('#loss polyline').points.length") > points
        assert browser.wait_for("document.getElementById('kernels').complete && "
                                "document.getElementById('kernels').naturalWidth") > 0
        assert browser.evaluate("document.getElementById('maps').naturalWidth") > 0
        assert re.fullmatch(r"step \d+ \(epoch \d+\.\d\d\)", browser.evaluate(
            "document.getElementById('snapshot-step').textContent"))
        assert "Conv2d" in browser.evaluate("document.getElementById('summary').textContent")
        fetched = browser.evaluate("performance.getEntriesByType('resource').map(entry => entry.name)")
        assert fetched and all(name.startswith(url) for name in fetched), fetched
        training.kill()
        training.wait()
        time.sleep(2)  # beyond a stream's reconnection
        assert browser.evaluate("document.getElementById('status').textContent") == "live"
        last = int(browser.evaluate("document.getElementById('step').textContent"))
        browser.open(url)  # a browser arriving after the kill gets the whole run
        assert int(browser.wait_for("document.getElementById('step').textContent !== '-' && "
                                    "document.getElementById('step').textContent")) >= last
    finally:
        browser.close()
        training.kill()
        watching.send_signal(signal.SIGINT)
        watching.communicate(timeout=30)


@pytest.mark.slow
def test_the_step_log_says_when_a_run_finished_and_what_its_defaults_are(tiny_fashion, tmp_path):
    """The live page tells a finished run from a live one by the log's "finished" line, written
    when the run ends by itself (not when a signal stops it), and shows the value the run uses
    for every setting left to convnet (the log's "effective") instead of null."""
    from convnet.experiment import RunConfig, build_trainer, load_datasets, resume
    from convnet.run_folder import read_steps
    from convnet.train import LambdaCallback, TrainingInterrupted
    cfg = RunConfig(model="lenet5", data=str(tiny_fashion), epochs=1, batch_size=64)
    train, test = load_datasets(cfg)
    build_trainer(cfg, train, test, tmp_path / "done", progress=False, log=lambda line: None).fit(1)
    entries = read_steps(tmp_path / "done" / STEPS)
    assert entries[0]["config"]["lr"] is None and entries[0]["config"]["augment"] is None
    assert entries[0]["effective"] == {"lr": 0.002, "weight_decay": 0.05, "augment": "flip", "test_mirror": True}
    assert {key: entries[-1][key] for key in ("kind", "step", "epoch")} == {"kind": "finished", "step": 4, "epoch": 1}
    resume(tmp_path / "done", progress=False, log=lambda line: None).trainer.fit(1)  # finished already: said once
    assert [entry["kind"] for entry in read_steps(tmp_path / "done" / STEPS)].count("finished") == 1

    interrupted = build_trainer(cfg, train, test, tmp_path / "stopped", progress=False, log=lambda line: None)
    interrupted.callbacks.append(LambdaCallback(on_batch_end=lambda trainer, loss: trainer.interrupt()))  # Ctrl-C
    with pytest.raises(TrainingInterrupted):
        interrupted.fit(1)
    assert "finished" not in [entry["kind"] for entry in read_steps(tmp_path / "stopped" / STEPS)]
    stopping = build_trainer(cfg, train, test, tmp_path / "early", progress=False, log=lambda line: None)
    stopping.callbacks.append(LambdaCallback(on_batch_end=lambda trainer, loss: trainer.request_stop()))
    stopping.fit(1)  # a callback ends the run (as early stopping does): it finished
    assert read_steps(tmp_path / "early" / STEPS)[-1]["kind"] == "finished"


def svg_text_bottom_and_curves_top(page, svg_id):
    """(the lowest baseline of the legend's text + its descent, the highest point any curve or dot
    reaches) in the drawn <svg id=svg_id>, in its pixels (y grows downwards)."""
    svg = re.search(rf'<svg id="{svg_id}">(.*?)</svg>', page, re.S).group(1)
    legend = [float(y) + 4 for y in re.findall(r'<text class="legend"[^>]* y="([\d.]+)"', svg)]
    curves = [float(y) for points in re.findall(r'<polyline[^>]* points="([^"]+)"', svg)
              for y in re.findall(r",([-\d.]+)", points)]
    curves += [float(y) - float(r) for y, r in re.findall(r'<circle[^>]* cy="([-\d.]+)" r="([\d.]+)"', svg)]
    return max(legend), min(curves)


@pytest.mark.system
@pytest.mark.skipif(not chromium() and not os.environ.get("CI"),
                    reason="needs Debian's chromium (make test installs it)")
@pytest.mark.parametrize("logs_its_end", [True, False], ids=["finished-line", "older-log-without-it"])
def test_a_finished_run_shows_as_done_with_every_setting_and_a_legend_clear_of_its_curves(server, tmp_path,
                                                                                           monkeypatch, logs_its_end):
    monkeypatch.setattr(watch, "STREAM_SECONDS", 0)
    server, run_dir = server
    (run_dir / STEPS).write_text("")
    config = {"model": "lenet5", "epochs": 2, "batch_size": 16, "lr": None, "weight_decay": None, "augment": None,
              "test_mirror": None, "init_from": None, "label_smoothing": 0.1}
    effective = {"lr": 0.002, "weight_decay": 0.05, "augment": "flip", "test_mirror": True}
    entries = [dict(kind="run", step=0, config=config, effective=effective, classes=["cat", "dog"], summary="")]
    for step in range(10, 40, 10):  # the train accuracy climbs to the top of its chart, where a legend would be
        entries.append(dict(kind="step", step=step, epoch=step // 16 + 1, batch=step % 16, loss=1 / step,
                            accuracy=step / 30, lr=0.001, images_per_second=1000.0))
    for epoch in (1, 2):
        entries.append(dict(kind="epoch", step=16 * epoch, epoch=epoch, test_loss=0.5 / epoch,
                            test_accuracy=0.45 * epoch, per_class_accuracy=[0.9, 0.8], lr=0.001))
    if logs_its_end:
        entries.append(dict(kind="finished", step=32, epoch=2))
    (run_dir / STEPS).write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    page = rendered("http://%s:%d/" % server.server_address[:2], tmp_path / "profile")
    assert '<span id="status">done</span>' in page and '<b id="left">done</b>' in page, page[-3000:]
    assert "<td>lr</td><td>0.002</td>" in page and "<td>weight_decay</td><td>0.05</td>" in page
    assert "<td>augment</td><td>flip</td>" in page and "<td>test_mirror</td><td>true</td>" in page
    assert "<td>init_from</td><td>-</td>" in page and "null" not in re.search(
        r'<table id="settings">.*?</table>', page, re.S).group(0)
    for chart in ("accuracy", "loss", "lr"):
        legend_bottom, curves_top = svg_text_bottom_and_curves_top(page, chart)
        assert legend_bottom < curves_top, (chart, legend_bottom, curves_top)
