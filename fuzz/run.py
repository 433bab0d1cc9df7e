"""Fuzz convnet's readers of outside bytes with atheris (coverage-guided libFuzzer for Python).

    python fuzz/run.py                        every target, one after another, 120 s each
    python fuzz/run.py idx --seconds 300      one target for a budget
    python fuzz/run.py image --stop           stop at the first finding (libFuzzer's own crash-* file)
    python fuzz/run.py --minimize idx FILE    shrink a finding to the smallest input failing the same way
    python fuzz/run.py --list                 the targets and what they read

Needs ``pip install atheris`` (the ``fuzz`` extra). One process, one core. The committed corpus
(fuzz/corpus/<target>, less crash-oom-* files) seeds each run; what the fuzzer learns goes to fuzz/work/<target>
(ignored by git), and so do its findings: by default a finding is written to
fuzz/work/<target>/finding-<signature> and fuzzing goes on, one file per distinct (exception, place),
so one budget finds every bug it reaches instead of the first. A finding becomes a test by being
copied, minimised, to fuzz/corpus/<target>/crash-<what> (`tests/test_fuzz_corpus.py` replays all).
Hangs (-timeout) and memory blow-ups (-rss_limit_mb) are libFuzzer's: it stops and writes
timeout-* or oom-* there.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "fuzz" / "work"
DEFAULT_SECONDS = 120
# Inputs longer than this are not tried: the seeds are well under it, and each format's header
# and chunk structure fits many times over (an 8 KiB PNG still inflates to megapixels).
MAX_LEN = {  # one entry per target of fuzz.targets.TARGETS (tests/test_fuzz_corpus.py checks)
    "idx": 4096, "mnist": 4096, "image": 16384, "checkpoint": 8192, "run_meta": 8192, "download": 4096,
    "pth": 8192, "onnx": 8192}
# A reader may take this long on one input before libFuzzer calls it a hang; the documented limits
# (64 megapixels, 2 GiB of IDX data) stay far inside both this and the memory limit.
TIMEOUT_S = 20
RSS_LIMIT_MB = 3072


def signature(error):
    """Where and how a finding failed: the exception type and the innermost frame in convnet (or,
    failing that, the innermost frame): the same bug reached by two inputs is one finding."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/convnet/" in f.filename and "/fuzz/" not in f.filename] or frames
    frame = ours[-1]
    return f"{type(error).__name__}@{Path(frame.filename).name}:{frame.lineno}"


def _import_targets():
    import atheris
    # The libraries the readers stand on are loaded uninstrumented (they are not what is tested, and
    # instrumenting NumPy would cost most of the speed); convnet and Pillow's Python decoders are
    # instrumented, so the fuzzer is guided by which of their branches an input reaches.
    import numpy  # noqa: F401
    import safetensors.numpy  # noqa: F401
    with atheris.instrument_imports(include=["convnet", "PIL", "fuzz"]):
        from PIL import Image
        Image.init()  # import every format plugin now, inside the instrumented block
        from fuzz import targets
    return atheris, targets


def fuzz(name, seconds, stop, extra):
    # Pillow warns about each damaged TIFF tag and EXIF block it skips: thousands of lines a second
    # here, and no finding (the readers' errors are what is checked).
    warnings.simplefilter("ignore")
    work = WORK / name
    os.environ["CONVNET_FUZZ_FILES"] = str(work / "files")
    atheris, targets = _import_targets()
    function = targets.TARGETS[name].function
    (work / "queue").mkdir(parents=True, exist_ok=True)
    seen = set()

    def one_input(data):
        if stop:
            function(data)
            return
        try:
            function(data)
        except Exception as error:  # noqa: BLE001  (the targets let the documented errors through; this is the rest)
            key = signature(error)
            if key not in seen:
                seen.add(key)
                path = work / f"finding-{key.replace('@', '-').replace(':', '-')}"
                path.write_bytes(data)
                print(f"\n=== FINDING {key}: {path} ({len(data)} bytes)\n{traceback.format_exc()}", flush=True)

    # The committed corpus seeds the run, less the crash-oom-* files: each takes seconds to read (it
    # describes tens of megapixels), and mutated copies of it would slow the whole run down to its pace.
    seeds = work / "seeds"
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir()
    for _, path in targets.corpus_files(name):
        if not path.name.startswith("crash-oom-"):
            shutil.copy(path, seeds / path.name)
    argv = [sys.argv[0], str(work / "queue"), str(seeds), f"-max_total_time={seconds}",
            f"-max_len={MAX_LEN[name]}", f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-artifact_prefix={work}/", "-print_final_stats=1", *extra]
    print(f"fuzzing {name} ({targets.TARGETS[name].reader}) for {seconds} s: {' '.join(argv[1:])}", flush=True)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def minimize(name, path, seconds):
    """Shrink ``path`` to a smaller input that fails with the same signature (delta debugging:
    drop ever smaller chunks while the failure stays the same); write it beside, as .min."""
    sys.path.insert(0, str(ROOT))
    from fuzz import targets
    function = targets.TARGETS[name].function

    def failure(data):
        try:
            function(data)
        except Exception as error:  # noqa: BLE001
            return signature(error)
        return None

    data = Path(path).read_bytes()
    wanted = failure(data)
    if wanted is None:
        sys.exit(f"{path}: does not fail the {name} target")
    deadline = time.monotonic() + seconds
    chunk = len(data) // 2
    while chunk >= 1 and time.monotonic() < deadline:
        start, shrunk = 0, False
        while start < len(data) and time.monotonic() < deadline:
            candidate = data[:start] + data[start + chunk:]
            if candidate and failure(candidate) == wanted:
                data, shrunk = candidate, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    out = Path(f"{path}.min")
    out.write_bytes(data)
    print(f"{wanted}: {Path(path).stat().st_size} -> {len(data)} bytes: {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("target", nargs="?", help="one target (default: all, one after another)")
    parser.add_argument("file", nargs="?", help="with --minimize: the finding to shrink")
    parser.add_argument("--seconds", type=int, default=DEFAULT_SECONDS, help="the budget per target")
    parser.add_argument("--stop", action="store_true", help="stop at the first finding")
    parser.add_argument("--minimize", action="store_true", help="shrink FILE, a finding of TARGET")
    parser.add_argument("--list", action="store_true", help="list the targets")
    args, extra = parser.parse_known_args(argv)  # the rest goes to libFuzzer (e.g. -seed=1)
    # fuzz.targets (and so convnet) is imported only by `fuzz`, inside atheris's instrumentation:
    # a module imported before it would run uninstrumented, and the fuzzer would run blind.
    if args.list:
        from fuzz.targets import TARGETS
        for name, target in TARGETS.items():
            print(f"{name:12} {target.reader}")
        return
    if args.target is not None and args.target not in MAX_LEN:
        parser.error(f"unknown target {args.target!r}; expected one of {', '.join(MAX_LEN)}")
    if args.minimize:
        if args.target is None or args.file is None:
            parser.error("--minimize needs TARGET FILE")
        minimize(args.target, args.file, args.seconds)
        return
    if args.target is None:
        # Each target in its own process: atheris.Fuzz() ends its process when the budget is spent.
        failed = []
        for name in MAX_LEN:
            command = [sys.executable, __file__, name, "--seconds", str(args.seconds), *extra]
            if args.stop:
                command.append("--stop")
            if subprocess.run(command).returncode != 0:
                failed.append(name)
        print(f"done; {'stopped on a finding: ' + ', '.join(failed) if failed else 'no target stopped'}; "
              f"findings in {WORK}/*/finding-*")
        sys.exit(1 if failed else 0)
    fuzz(args.target, args.seconds, args.stop, extra)


if __name__ == "__main__":
    main()
