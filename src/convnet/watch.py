"""``convnet watch RUN_DIR``: a live page of a training run, from the standard library alone.

A read-only HTTP server (``http.server``) for one run folder:

- ``/`` the page: loss and accuracy curves (train every few steps, test every epoch) that
  extend as the run goes, test accuracy against wall-clock minutes (the epochs' ``seconds``
  summed; dashed lines at `ACCURACY_TARGETS`; beside it, in grey, the run that trained the shipped
  weights of the same model on the same dataset: `shipped_minutes`), the learning rate, images/s and the training time
  left, the first convolution layer's kernels and feature maps as they take shape (a slider goes
  back through the snapshots), the confusion matrix and accuracy per class, the run's settings (a
  default as the value it stands for) and its model's summary. Everything is inline; it loads
  nothing from the network.
- ``/events`` the run's step log (`convnet.run_folder.STEPS`, written by
  `convnet.reports.StepLog`) as Server-Sent Events, one per line, each with its line number as
  its id: a browser that reconnects sends ``Last-Event-ID`` and continues where it left off. New
  lines are pushed as the run writes them; a finished run is replayed, and the page says it is
  done once the log says the run finished. Each stream ends after `STREAM_SECONDS` and the browser
  reconnects from its last id, so no connection lives for ever.
- ``/files/NAME`` one of the run's reports or a snapshot's picture, if it is a file inside the
  folder (`convnet.run_folder.report_file`: a symbolic link out of it is refused like any other
  name).

It reads the run folder through `convnet.run_folder` alone. It binds to 127.0.0.1 unless told
otherwise, answers only GET (and HEAD), and a client that disconnects mid-answer or sends garbage
costs it nothing but that connection, and prints nothing.
"""

import html
import itertools
import json
import re
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import pretrained
from .errors import MissingFile
from .language import words
from .run_folder import CONFUSION, report_file, whole_step_lines

CONTENT_TYPES = {".png": "image/png", ".csv": "text/csv"}  # of the files `report_file` finds
POLL_SECONDS = 0.5  # how often a stream looks for new lines in the step log
# A stream ends after this long and the browser reconnects at once from its last id: no connection
# (and no server thread) lives for ever, and a page never waits on a request that never ends.
STREAM_SECONDS = 15
RECONNECT_MILLISECONDS = 100
# The test accuracies the minutes chart marks: issue 32's targets, as `convnet.viz.training`'s
# ACCURACY_TARGETS (which this module, below viz, cannot import; a test keeps them equal).
ACCURACY_TARGETS = (0.93, 0.94, 0.945, 0.95)


def make_server(run_dir, host="127.0.0.1", port=0, language="en"):
    """A `ThreadingHTTPServer` serving ``run_dir``, its page in ``language`` (not yet serving:
    call ``serve_forever``)."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise MissingFile(f"watch: {run_dir} is not a run folder")

    class Handler(_RunHandler):
        folder, page_bytes = run_dir, page(language).encode()

    return _Server((host, port), Handler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # open streams do not keep the process alive

    def handle_error(self, request, client_address):
        """A client that went away mid-answer (a closed tab, a reload, a picture the page no longer
        wants) costs its connection and nothing else: no traceback. Anything else is a bug, and is
        reported as one."""
        if not isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            super().handle_error(request, client_address)


class _RunHandler(BaseHTTPRequestHandler):
    folder: Path
    page_bytes: bytes
    server_version = "convnet-watch"

    def log_message(self, format, *args):  # noqa: A002  (http.server's name) - quiet: the terminal shows the URL
        pass

    def do_GET(self):  # noqa: N802  (http.server's names)
        path = unquote(urlsplit(self.path).path)
        if path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.page_bytes)
        elif path == "/events":
            self._stream()
        elif path.startswith("/files/"):
            self._file(path[len("/files/"):])
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _file(self, name):
        target = report_file(self.folder, name)
        if target is None:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
            return
        self._send(HTTPStatus.OK, CONTENT_TYPES[target.suffix], target.read_bytes())

    def _stream(self):
        try:
            sent = int(self.headers.get("Last-Event-ID", "0"))
        except ValueError:
            sent = 0
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        ends = time.monotonic() + STREAM_SECONDS
        self.wfile.write(f"retry: {RECONNECT_MILLISECONDS}\n\n".encode())
        while True:
            whole = whole_step_lines(self.folder)
            if len(whole) < sent:  # a resumed run cut its log back: start again from there
                sent = len(whole)
            for number in range(sent, len(whole)):
                if whole[number].strip():
                    self.wfile.write(f"id: {number + 1}\ndata: {whole[number]}\n\n".encode())
            sent = len(whole)
            # A comment: writing it finds a client that went away (`_Server.handle_error` ends it quietly).
            self.wfile.write(b": alive\n\n")
            self.wfile.flush()
            if time.monotonic() >= ends:
                return
            time.sleep(POLL_SECONDS)


def serve(run_dir, host="127.0.0.1", port=8008, on_ready=print, language="en"):
    """Serve ``run_dir`` until interrupted; ``on_ready`` gets the page's URL."""
    server = make_server(run_dir, host, port, language)
    address, bound = server.server_address[:2]
    on_ready(f"http://{address}:{bound}/")
    try:
        server.serve_forever()
    finally:
        server.server_close()


PAGE = """<!DOCTYPE html>
<html lang="[[language]]"><head><meta charset="utf-8"><title>convnet watch</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: .8em 1.5em; display: flex; gap: 2em; align-items: baseline; }
header h1 { font-size: 1.2em; margin: 0; } header span { color: #aab; font-size: .9em; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; padding: 1em; }
.card { background: #fff; border-radius: 8px; padding: 1em; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
.card h2 { font-size: 1em; margin: 0 0 .5em; color: #445; } .note { color: #778; font-size: .8em; margin: .2em 0 .6em; }
.stats { display: flex; flex-wrap: wrap; gap: 1.2em 2em; } .stat b { display: block; font-size: 1.6em; }
.stat span { color: #667; font-size: .8em; } svg { width: 100%; height: 220px; }
img { max-width: 100%; } img.pixels { image-rendering: pixelated; width: 100%; }
.maps { display: flex; gap: 1em; align-items: flex-start; } .maps img:first-child { width: 22%; }
.maps img:last-child { width: 74%; } input[type=range] { width: 100%; }
table { font-size: .85em; border-collapse: collapse; } td { padding: .15em .8em .15em 0; } td:first-child { color: #667; }
.bar { background: #3b6fd4; height: .8em; border-radius: 2px; display: inline-block; vertical-align: middle; }
pre { font-size: .8em; overflow-x: auto; margin: 0; }
</style></head>
<body>
<header><h1>convnet watch</h1><span id="status">[[watch.connecting]]</span></header>
<main>
<div class="card"><h2>[[watch.progress]]</h2><div class="stats">
<div class="stat"><b id="epoch">-</b><span>[[watch.epoch]]</span></div>
<div class="stat"><b id="step">-</b><span>[[watch.step]]</span></div>
<div class="stat"><b id="speed">-</b><span>[[watch.images_per_second]]</span></div>
<div class="stat"><b id="test">-</b><span>[[watch.test_accuracy]]</span></div>
<div class="stat"><b id="left">-</b><span>[[watch.time_left]]</span></div></div></div>
<div class="card"><h2>[[watch.loss]]</h2><svg id="loss"></svg></div>
<div class="card"><h2>[[watch.accuracy]]</h2><svg id="accuracy"></svg></div>
<div class="card"><h2>[[watch.accuracy_minutes]]</h2><p class="note" id="minutes-note">[[watch.accuracy_minutes_note]]</p>
<svg id="minutes"></svg><p class="note" id="minutes-shipped"></p></div>
<div class="card"><h2>[[watch.kernels]]</h2><p class="note">[[watch.kernels_note]]</p>
<img id="kernels" class="pixels" alt="[[watch.no_snapshot]]">
<input type="range" id="snapshot" min="0" max="0" value="0" title="[[watch.follow]]">
<p class="note" id="snapshot-step">[[watch.no_snapshot]]</p></div>
<div class="card"><h2>[[watch.feature_maps]]</h2><p class="note">[[watch.feature_maps_note]]</p>
<div class="maps"><img id="image" class="pixels" alt=""><img id="maps" class="pixels" alt="[[watch.no_snapshot]]"></div></div>
<div class="card"><h2>[[watch.learning_rate]]</h2><svg id="lr"></svg></div>
<div class="card"><h2>[[watch.confusion]]</h2><img id="confusion" alt="[[watch.no_epoch]]"></div>
<div class="card"><h2>[[watch.per_class]]</h2><table id="classes"></table></div>
<div class="card"><h2>[[watch.settings]]</h2><table id="settings"></table></div>
<div class="card"><h2>[[watch.model]]</h2><pre id="summary"></pre></div>
</main>
<script>
const TEXT = [[text]], TARGETS = [[targets]], SHIPPED = [[shipped]];
const steps = [], epochs = [], snapshots = [];
let run = {config: {}, classes: []}, following = true, finished = false;
const colours = {train: "#3b6fd4", test: "#e0682b"};
const escape = text => String(text).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
const element = id => document.getElementById(id);
// The curves fill the box between the legend's band at the top and the step axis at the bottom,
// so the legend never lies on a curve, wherever the curves go. The x axis is named xName and its
// ends written by xText; guides (y values) are drawn as dashed lines where they fall in the box.
function draw(id, series, {logScale = false, xName = TEXT["watch.step"], xText = x => x, guides = []} = {}) {
  const svg = element(id), w = svg.clientWidth || 400, h = 220, pad = 36, top = 26;
  const points = series.flatMap(s => s.points);
  if (!points.length) return;
  const f = logScale ? (v => Math.log10(Math.max(v, 1e-12))) : (v => v);
  const xs = points.map(p => p[0]), ys = points.map(p => f(p[1]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys), y1 = Math.max(...ys, y0 + 1e-9);
  const X = x => pad + (x - x0) / (x1 - x0) * (w - pad - 10), Y = y => h - pad + (y0 - f(y)) / (y1 - y0) * (h - pad - top);
  let out = `<line x1="${pad}" y1="${h - pad}" x2="${w - 10}" y2="${h - pad}" stroke="#ccd"/>`;
  out += `<text x="${pad}" y="${h - 12}" font-size="11" fill="#667">${xName} ${xText(x0)}</text>`;
  out += `<text x="${w - 10}" y="${h - 12}" font-size="11" fill="#667" text-anchor="end">${xText(x1)}</text>`;
  guides.filter(g => f(g) >= y0 && f(g) <= y1).forEach(g => {
    out += `<line class="guide" x1="${pad}" y1="${Y(g)}" x2="${w - 10}" y2="${Y(g)}" stroke="#99a" stroke-dasharray="4 3"/>`;
    out += `<text x="${pad + 2}" y="${Y(g) - 2}" font-size="10" fill="#889">${g}</text>`;
  });
  out += `<text x="4" y="${top + 4}" font-size="11" fill="#667">${(logScale ? 10 ** y1 : y1).toPrecision(3)}</text>`;
  out += `<text x="4" y="${h - pad}" font-size="11" fill="#667">${(logScale ? 10 ** y0 : y0).toPrecision(3)}</text>`;
  const shown = series.filter(s => s.points.length);
  shown.forEach(s => {
    out += `<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${s.points.map(p => X(p[0]) + "," + Y(p[1])).join(" ")}"/>`;
    if (s.dots) out += s.points.map(p => `<circle cx="${X(p[0])}" cy="${Y(p[1])}" r="3.5" fill="${s.colour}"/>`).join("");
  });
  out += shown.map(s => `<text class="legend" x="${w - 10}" y="14" font-size="12" fill="${s.colour}" ` +
                        `text-anchor="end">${s.name}</text>`).join("");
  svg.innerHTML = out;
  let right = w - 10;  // the names side by side, the last one at the right edge
  for (const name of [...svg.querySelectorAll("text.legend")].reverse()) {
    name.setAttribute("x", right);
    right -= name.getComputedTextLength() + 12;
  }
}
function redraw() {
  const train = TEXT["watch.train"], test = TEXT["watch.test"];
  draw("loss", [{name: train, colour: colours.train, points: steps.map(e => [e.step, e.loss])},
                {name: test, colour: colours.test, dots: true, points: epochs.map(e => [e.step, e.test_loss])}],
       {logScale: true});
  draw("accuracy", [{name: train, colour: colours.train, points: steps.map(e => [e.step, e.accuracy])},
                    {name: test, colour: colours.test, dots: true, points: epochs.map(e => [e.step, e.test_accuracy])}]);
  draw("lr", [{name: "lr", colour: "#5a5", points: steps.map(e => [e.step, e.lr])}]);
  const timed = minutes(), shipped = SHIPPED[run.config.model];
  const yardstick = shipped && shipped.dataset === run.config.dataset
    ? [{name: TEXT["watch.shipped"], colour: "#99a", points: shipped.points}] : [];
  element("minutes-shipped").textContent = yardstick.length
    ? `${TEXT["watch.shipped"]}: ${shipped.command} (${shipped.machine})` : "";
  draw("minutes", [...yardstick, {name: test, colour: colours.test, dots: true, points: timed}],
       {xName: TEXT["watch.minutes"], xText: x => x.toFixed(1), guides: TARGETS});
  if (timed.length < new Set(epochs.map(e => e.epoch)).size) element("minutes-note").textContent = TEXT["watch.untimed"];
}
// (minutes of training by the epoch's end, test accuracy) for epochs 1, 2, ... in turn, each one's
// "seconds" summed; it stops at the first epoch without them (logged before convnet timed its
// epochs), whose time, and every later epoch's, is unknown. A resumed run's epoch logged again counts once.
function minutes() {
  const byEpoch = new Map(epochs.map(e => [e.epoch, e])), points = [];
  let total = 0;
  for (let epoch = 1; typeof byEpoch.get(epoch)?.seconds === "number"; epoch++) {
    total += byEpoch.get(epoch).seconds / 60;
    points.push([total, byEpoch.get(epoch).test_accuracy]);
  }
  return points;
}
// Steps still to train at the latest speed (evaluation not counted); an epoch's length is known
// once one has ended, or once the second has begun.
function timeLeft() {
  const last = steps[steps.length - 1], ended = epochs[epochs.length - 1], config = run.config;
  const perEpoch = ended ? ended.step / ended.epoch
                         : (last && last.epoch > 1 ? (last.step - last.batch) / (last.epoch - 1) : null);
  if (finished) return TEXT["watch.done"];
  if (!last || !perEpoch || !config.epochs || !config.batch_size) return "-";
  const remaining = config.epochs * perEpoch - Math.max(last.step, ended ? ended.step : 0);
  if (remaining <= 0) return TEXT["watch.done"];
  const seconds = remaining * config.batch_size / last.images_per_second;
  return seconds >= 3600 ? `${(seconds / 3600).toFixed(1)} h` : seconds >= 60 ? `${Math.round(seconds / 60)} min`
                                                                 : `${Math.round(seconds)} s`;
}
// The caption says which step the kernels show once their picture has loaded, and says so if it cannot.
function showSnapshot(index) {
  const shot = snapshots[index], kernels = element("kernels"), caption = element("snapshot-step");
  const missing = () => { caption.textContent = TEXT["watch.missing"].replace("{name}", shot.kernels); };
  kernels.onload = () => kernels.naturalWidth > 0 ? caption.textContent = TEXT["watch.snapshot"]
    .replace("{step}", shot.step).replace("{epochs}", shot.epochs_done.toFixed(2)) : missing();
  kernels.onerror = missing;
  kernels.src = "/files/" + shot.kernels;
  element("maps").src = "/files/" + shot.feature_maps;
  element("image").src = "/files/" + shot.image;
}
function showClasses(accuracy) {
  element("classes").innerHTML = accuracy.map((value, k) =>
    `<tr><td>${escape(run.classes[k] ?? k)}</td><td>${value.toFixed(3)}</td>` +
    `<td><span class="bar" style="width: ${Math.round(160 * value)}px"></span></td></tr>`).join("");
}
function show(entry) {
  if (entry.kind === "run") {
    run = entry;
    // A setting left to convnet (null) shows the value the run uses (the log's "effective"); one
    // that means "none" (no --init-from, no --early-stop) shows "-".
    element("settings").innerHTML = Object.entries(entry.config).map(([k, v]) =>
      `<tr><td>${escape(k)}</td><td>${escape((entry.effective || {})[k] ?? v ?? "-")}</td></tr>`).join("");
    element("summary").textContent = entry.summary;
  } else if (entry.kind === "step") {
    steps.push(entry);
    element("epoch").textContent = entry.epoch;
    element("step").textContent = entry.step;
    element("speed").textContent = Math.round(entry.images_per_second);
  } else if (entry.kind === "epoch") {
    epochs.push(entry);
    element("test").textContent = entry.test_accuracy.toFixed(4);
    element("confusion").src = "/files/[[confusion]]?epoch=" + entry.epoch;
    showClasses(entry.per_class_accuracy);
    // Its planned epochs done, a run is finished, though a log written before "finished" lines does not say so.
    if (entry.epoch >= run.config.epochs) { finished = true; showStatus(); }
  } else if (entry.kind === "snapshot") {
    snapshots.push(entry);
    const slider = element("snapshot");
    slider.max = snapshots.length - 1;
    if (following) { slider.value = snapshots.length - 1; showSnapshot(snapshots.length - 1); }
  } else if (entry.kind === "finished") {
    finished = true;
    showStatus();
  }
  element("left").textContent = timeLeft();
}
element("snapshot").addEventListener("input", event => {
  const index = Number(event.target.value);
  following = index === snapshots.length - 1;
  if (snapshots.length) showSnapshot(index);
});
const source = new EventSource("/events");
let pending = false;
source.onmessage = event => {
  show(JSON.parse(event.data));
  if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; redraw(); }); }
};
// A run that ended by itself is done; until then the page is live. A stream that ends is reopened
// at once (CONNECTING): only a closed one means the server is gone.
function showStatus() {
  element("status").textContent = TEXT[source.readyState === EventSource.CLOSED ? "watch.disconnected"
                                       : finished ? "watch.done" : "watch.live"];
}
source.onopen = showStatus;
source.onerror = showStatus;
window.addEventListener("resize", redraw);
</script>
</body></html>
"""


def page(language="en"):
    """The page with ``language``'s words (`convnet.language`)."""
    table = words(language)
    text = json.dumps({key: value for key, value in table.items() if key.startswith("watch.")}).replace("</", "<\\/")
    filled = {"text": text, "language": language, "confusion": CONFUSION, "targets": json.dumps(ACCURACY_TARGETS),
              "shipped": json.dumps(shipped_minutes()).replace("</", "<\\/")}
    return re.sub(r"\[\[([\w.]+)\]\]", lambda match: filled.get(match[1]) or html.escape(table[match[1]]), PAGE)


def shipped_minutes():
    """{model: {"dataset", "command", "machine", "points": [[minutes, test accuracy], ...]}} for each
    shipped model (`convnet.pretrained`) whose card timed its epochs: the minutes chart's yardstick."""
    curves = {}
    for name in pretrained.available():
        card = pretrained.card(name)
        history = card.get("history") or []
        if history and all("seconds" in row for row in history):
            minutes = itertools.accumulate(row["seconds"] / 60 for row in history)
            curves[name] = {"dataset": card["dataset"], "command": card["command"], "machine": card["machine"],
                            "points": [[total, row["test_accuracy"]] for total, row in zip(minutes, history)]}
    return curves
