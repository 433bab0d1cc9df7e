"""``convnet watch``: the page, the event stream that resumes where a browser left off, and a
server that serves only the run folder's own files, read-only, whatever a client sends."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

from convnet import watch
from convnet.reports import STEPS


@pytest.fixture
def server(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / STEPS).write_text("".join(json.dumps({"kind": "step", "step": 10 * k, "loss": 1.0 / k}) + "\n"
                                         for k in (1, 2)))
    (run_dir / "checkpoint.json").write_text(json.dumps({"config": {"model": "lenet5"}}))
    (run_dir / "checkpoint.safetensors").write_bytes(b"weights")
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
                                  "/files//etc/passwd", "/files/metrics.csv", "/../secret.txt", "/etc/passwd"])
def test_only_the_run_folders_own_report_files_are_served(server, path):
    status, body, _ = get(server[0], path)
    assert status == 404 and b"not yours" not in body and b"weights" not in body


def test_a_link_out_of_the_folder_is_refused(server):
    server, run_dir = server
    (run_dir / "metrics.csv").symlink_to(run_dir.parent / "secret.txt")
    assert get(server, "/files/metrics.csv")[0] == 404
    assert get(server, "/files/checkpoint.json")[:2] == (200, b'{"config": {"model": "lenet5"}}')


def test_nothing_changes_anything_and_garbage_or_a_vanished_client_costs_one_connection(server):
    server, run_dir = server
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request("POST", "/files/checkpoint.json", body=b"{}")
    assert connection.getresponse().status == 501  # only GET and HEAD
    for garbage in (b"\x00\xff garbage\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(server.server_address[:2], timeout=10) as raw:
            raw.sendall(garbage)
            raw.recv(1024)
    with socket.create_connection(server.server_address[:2], timeout=10) as raw:  # leaves mid-stream
        raw.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.recv(100)
    assert get(server, "/")[0] == 200
    assert (run_dir / "checkpoint.json").read_text() == '{"config": {"model": "lenet5"}}'


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
    (run_dir / "checkpoint.json").write_text(json.dumps({"config": {"model": "lenet5", "epochs": 400,
                                                                     "batch_size": 16}}))
    log(kind="step", step=30, epoch=2, batch=14, loss=0.3, accuracy=0.8, lr=0.001, images_per_second=3456.0)
    log(kind="epoch", step=32, epoch=2, test_loss=0.4, test_accuracy=0.875, per_class_accuracy=[0.9] * 10, lr=0.001)
    page = rendered(url, tmp_path / "profile")
    assert '<b id="step">30</b>' in page and '<b id="speed">3456</b>' in page, page[-2000:]
    assert '<b id="left">29 s</b>' in page  # (400 x 16 - 32) steps x 16 images at 3456 images/s
    assert '<b id="test">0.8750</b>' in page and page.count("<polyline") >= 3
    assert "<td>model</td><td>lenet5</td>" in page  # the settings, from the run folder
    log(kind="step", step=40, epoch=3, batch=8, loss=0.2, accuracy=0.9, lr=0.0005, images_per_second=4000.0)
    with open(run_dir / STEPS, "a") as stream:
        stream.write('{"kind": "step", "step": 5')  # the training was killed mid-line
    page = rendered(url, tmp_path / "profile")
    assert '<b id="step">40</b>' in page and '<b id="epoch">3</b>' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from elsewhere


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
        first = events(server, 1)[0]
        assert first[0] == 1 and first[1]["kind"] == "step" and first[1]["step"] == 10
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert process.returncode == 130
