"""Performance history as a dashboard: a quick asv pass over the last N commits, the
published html, and a screenshot of it.

    python docs/benchmarks/asv_history.py                   # last 8 commits, default set
    python docs/benchmarks/asv_history.py --commits 20 --bench 'TrainStep|FirstCall'

Steps, each an ordinary asv command (README, "Benchmarks"):

1. ``asv run`` over ``HEAD~N..HEAD`` in the one environment ``asv.conf.json`` defines (a
   virtualenv of Python 3.11 with numpy, numba and numba-cuda, created once, each commit
   built and installed into it), one sample per benchmark (``-a repeat=1 ...``: asv's
   ``--quick`` would not save results, and a dashboard needs them). Commits that already
   have results are skipped, so a rerun only measures what is new.
2. ``asv publish`` writes the static dashboard to ``.asv/html``.
3. The dashboard's page loads jQuery, flot, Bootstrap and friends from CDNs, which a
   machine without internet cannot reach: the same releases come from the npm registry
   (``npm pack``, cached under ``.asv/vendor``) and the published page is pointed at
   those copies.
4. The dashboard is served on localhost and a headless Chromium (Debian's ``chromium``
   package) renders one benchmark's graph page to ``--out`` (default ``docs/asv-dashboard.png``),
   the picture the README shows.

A quick pass is one sample per commit, so it shows steps (a compile-time change, a new
algorithm), not a 5% drift; ``asv continuous`` is the tool for the latter. Results stay
under ``.asv/`` (git-ignored); only the screenshot is committed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# compile latency, throughput of four layer kinds, a training step of each model: the
# numbers a change is most likely to move, in about a minute per commit on 2 cores
DEFAULT_BENCH = r"FirstCall|ConvThroughput|TrainStep"
DEFAULT_PAGE = "bench_train.TrainStep.time_step"
ONE_SAMPLE = ["-a", "repeat=1", "-a", "rounds=1", "-a", "warmup_time=0",
              "-a", "processes=1"]


def run_asv(commits, bench):
    subprocess.run(["asv", "machine", "--yes"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["asv", "run", "--skip-existing-commits", "--show-stderr",
                    "--bench", bench, *ONE_SAMPLE, f"HEAD~{commits}..HEAD"],
                   cwd=ROOT, check=True)
    subprocess.run(["asv", "publish"], cwd=ROOT, check=True)


# CDN address (as asv 0.6's index.html has it) -> (npm package, file inside it)
VENDORED = {
    "code.jquery.com/jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    "flot/0.8.3/jquery.flot.min.js": ("flot@0.8.3", "jquery.flot.js"),
    "flot/0.8.3/jquery.flot.time.min.js": ("flot@0.8.3", "jquery.flot.time.js"),
    "flot/0.8.3/jquery.flot.selection.min.js": ("flot@0.8.3", "jquery.flot.selection.js"),
    "flot/0.8.3/jquery.flot.categories.min.js": ("flot@0.8.3", "jquery.flot.categories.js"),
    "flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    # 1.0.1 is not on npm; 1.1.3 is the same plugin with the same call
    "stupidtable/1.0.1/stupidtable.min.js": ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    "blueimp-md5/2.19.0/js/md5.min.js": ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "bootstrap@3.1.1/dist/js/bootstrap.min.js": ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "bootstrap@3.1.1/dist/css/bootstrap.min.css":
        ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
}


def _npm_file(package, inner, cache):
    """``inner`` of npm ``package`` (name@version), unpacked once into ``cache``."""
    folder = cache / package.replace("/", "_")
    if not folder.exists():
        tmp = Path(tempfile.mkdtemp(dir=cache))
        tarball = subprocess.run(["npm", "pack", "--silent", package], cwd=tmp, check=True,
                                 capture_output=True, text=True).stdout.split()[-1]
        shutil.unpack_archive(tmp / tarball, tmp)
        (tmp / "package").rename(folder)
        shutil.rmtree(tmp)
    return folder / inner


def vendor(html_dir):
    """Point the published pages' CDN scripts and styles at local copies from npm."""
    cache = ROOT / ".asv" / "vendor"
    cache.mkdir(parents=True, exist_ok=True)
    (html_dir / "vendor").mkdir(exist_ok=True)

    def local(match):
        url = match.group(2)
        for key, (package, inner) in VENDORED.items():
            if url.endswith(key):
                name = f"{package.split('@')[0]}-{Path(inner).name}"
                shutil.copy(_npm_file(package, inner, cache), html_dir / "vendor" / name)
                return f'{match.group(1)}="vendor/{name}"'
        return match.group(0)

    for page in html_dir.glob("*.html"):
        text = page.read_text()
        text = re.sub(r'(src|href)="(https://[^"]+)"', local, text)
        text = re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", text)
        page.write_text(text)


@contextlib.contextmanager
def serve(directory):
    """The published dashboard on a free localhost port, for as long as the block runs."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("asv_history: no headless browser found; on Debian: apt-get install chromium")


def screenshot(url, out, size=(1400, 900)):
    """Render ``url`` headless to ``out`` (PNG), letting the page's scripts run first."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                        "--virtual-time-budget=20000", f"--screenshot={out}", url],
                       check=True, capture_output=True, timeout=180)
    try:  # a 256-colour PNG: a third of the size, the same picture to the eye
        from PIL import Image
    except ImportError:
        return
    with Image.open(out) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(out, format="PNG", optimize=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=8, help="how many commits back")
    parser.add_argument("--bench", default=DEFAULT_BENCH, help="asv --bench regex")
    parser.add_argument("--page", default=DEFAULT_PAGE, help="benchmark whose graph to shoot")
    parser.add_argument("--out", default=str(ROOT / "docs" / "asv-dashboard.png"))
    parser.add_argument("--no-run", action="store_true",
                        help="only publish and shoot the results already under .asv/")
    args = parser.parse_args(argv)
    if args.no_run:
        subprocess.run(["asv", "publish"], cwd=ROOT, check=True)
    else:
        run_asv(args.commits, args.bench)
    vendor(ROOT / ".asv" / "html")
    with serve(ROOT / ".asv" / "html") as url:
        screenshot(f"{url}#{args.page}", os.path.abspath(args.out))
    print(f"dashboard: {ROOT / '.asv' / 'html'}; screenshot: {args.out}")


if __name__ == "__main__":
    main()
