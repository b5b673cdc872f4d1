"""Copy Rerun's web viewer out of the installed ``rerun-sdk`` into a directory of static files.

The episode page embeds the web viewer that ships inside the pinned ``rerun-sdk`` wheel: never
a CDN, and never a viewer of another version (a viewer reads only its own and the previous
minor version's ``.rrd`` files). The wheel keeps the viewer inside its native module and
serves it from memory with ``rr.serve_web_viewer``; there is no public call that writes the
files out. So this set-up step starts that server in a child process on a free loopback port,
fetches each file from ``http://127.0.0.1:<port>/`` (proxies bypassed), stops the child, and
writes:

    var/rerun_viewer/rerun-<version>/      (or --out DIR)
        index.html             cleaned: no outside references (below)
        re_viewer.js           wasm-bindgen glue
        re_viewer_bg.wasm      the viewer itself (one build serves both WebGL and WebGPU)
        sw.js                  Rerun's offline service worker (index.html does not register it)
        favicon.ico  apple-touch-icon.png   the icons index.html links to
        VERSION                JSON marker: versions, and each file's size and SHA-256

The stock ``index.html`` loads Google Fonts and, on app.rerun.io, an analytics script, and
links to GitHub. The cleaned copy drops every reference to another host, so the page loads
under ``default-src 'self'`` with ``connect-src 'self'`` and ``'wasm-unsafe-eval'`` and asks
for nothing outside the machine (text falls back to the system sans-serif). It also answers,
in the page, any request the viewer's own code makes to another origin (the wasm sends usage
analytics to tel.rerun.io and checks GitHub for updates) with a 403 that is never sent, so
the CSP never has to block one and the console stays free of violations and errors.

The viewer takes the recording from the query string: ``index.html?url=<absolute URL of the
.rrd>`` (repeatable; ``hide_welcome_screen``, ``renderer=webgl|webgpu``, ``theme`` and
``persist=0`` are read there too). The ``.rrd`` must come from the page's own origin: both
``connect-src 'self'`` and the guard refuse any other.

Idempotent: when ``VERSION`` matches the installed Rerun version and this script (by its
SHA-256, so any change to the cleaning reinstalls), and every file is present with its
recorded size, nothing is done. Otherwise the files are fetched into a temporary directory
beside the target and swapped in whole.

Usage: ``python scripts/install_rerun_viewer.py [--out DIR] [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARENT = REPO_ROOT / "var" / "rerun_viewer"

# What the viewer needs: the page, the wasm-bindgen glue and the wasm (index.html fetches
# "./re_viewer_bg.wasm"; its ${urlWebGl}/${urlWebGpu} are links to this same page with
# ?renderer=..., not other wasm files), the service worker Rerun serves beside them, and the
# icons index.html links to (missing ones would 404 in the console).
REQUIRED_FILES = ("index.html", "re_viewer.js", "re_viewer_bg.wasm", "sw.js")
ICON_FILES = ("favicon.ico", "apple-touch-icon.png")
VIEWER_FILES = REQUIRED_FILES + ICON_FILES
TEXT_FILES = ("index.html", "re_viewer.js", "sw.js")
MARKER = "VERSION"

SERVER_START_TIMEOUT_S = 30.0
FETCH_TIMEOUT_S = 60.0

# A reference to another host: a URL with a scheme, or a protocol-relative "//host.tld".
OUTSIDE_REFERENCE = re.compile(
    r"(?i)\b(?:https?|wss?|ftp)://[^\s\"'<>]*|(?<![\w:/])//[a-z0-9-]+(?:\.[a-z0-9-]+)+"
)

# Runs first in <head>. The viewer's wasm fetches https://tel.rerun.io/api/pog (usage
# analytics) and https://api.github.com/.../releases/latest (update check). Under the CSP each
# would be a logged violation plus a "Failed to fetch" console error; answered here with a 403
# that never leaves the page, the viewer treats them as refused (checked in Chromium: no
# violation, no console error, recording shown). The CSP still blocks anything this misses.
_SAME_ORIGIN_GUARD = """<script>
      // Proving Ground: requests to other origins are answered here and never sent, but to
      // the origins the page names in <meta name="pg-connect-origins"> (the object store that
      // presigned `.rrd` URLs point to).
      (function () {
        function allowed() {
          var meta = document.querySelector('meta[name="pg-connect-origins"]');
          var extra = meta && meta.content ? meta.content.split(" ").filter(Boolean) : [];
          return [window.location.origin].concat(extra);
        }
        function outside(url) {
          try {
            return allowed().indexOf(new URL(url, window.location.href).origin) < 0;
          } catch (e) {
            return true;
          }
        }
        function refuse(url) {
          console.debug("refused a request outside this origin: " + url);
        }
        var originalFetch = window.fetch.bind(window);
        window.fetch = function (input, init) {
          var url = input && input.url !== undefined ? input.url : String(input);
          if (outside(url)) {
            refuse(url);
            return Promise.resolve(new Response(null, { status: 403, statusText: "Forbidden" }));
          }
          return originalFetch(input, init);
        };
        var originalOpen = XMLHttpRequest.prototype.open;
        XMLHttpRequest.prototype.open = function (method, url) {
          if (outside(url)) {
            refuse(url);
            throw new TypeError("refused: outside this origin");
          }
          return originalOpen.apply(this, arguments);
        };
        if (navigator.sendBeacon) {
          var originalBeacon = navigator.sendBeacon.bind(navigator);
          navigator.sendBeacon = function (url, data) {
            if (outside(url)) {
              refuse(url);
              return false;
            }
            return originalBeacon(url, data);
          };
        }
      })();
    </script>"""


class InstallError(RuntimeError):
    """The viewer could not be fetched, or what was fetched does not look like the viewer."""


def rerun_version() -> str:
    """The installed rerun-sdk's version, without importing rerun into this process."""
    from importlib.metadata import version

    return version("rerun-sdk")


def default_out_dir(version: str | None = None) -> Path:
    return DEFAULT_PARENT / f"rerun-{version or rerun_version()}"


# --------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------


def outside_references(text: str) -> list[str]:
    """Every reference to another host in ``text`` (URLs with a scheme, ``//host.tld``)."""
    return [m.group(0) for m in OUTSIDE_REFERENCE.finditer(text)]


def clean_index_html(html: str, *, icons: Sequence[str] = ICON_FILES) -> str:
    """Rerun's index.html with every outside reference removed and the same-origin guard
    added. ``icons`` are the icon files present; links to absent ones are dropped too.
    Raises InstallError if an outside reference remains (a new one in a new Rerun version)."""
    # Google Fonts: preconnects and the stylesheet (the page falls back to sans-serif).
    html = re.sub(r"\s*<link\b[^>]*fonts\.(?:googleapis|gstatic)\.com[^>]*>", "", html)
    # The analytics script, injected only on app.rerun.io: remove the whole `if` block.
    html = re.sub(
        r"\n[ \t]*if \(window\.location\.hostname == \"app\.rerun\.io\"\) \{.*?\n[ \t]*\}\n",
        "\n",
        html,
        flags=re.DOTALL,
    )
    # Links in the crash and error messages: keep the words, drop the link.
    html = re.sub(r"<a href=https?://[^>]*>(.*?)<a>", r"\1", html)
    html = re.sub(r"<a href=\"https?://[^\"]*\"[^>]*>(.*?)</a>", r"\1", html)
    # The closing credit comment names a URL.
    html = re.sub(r"<!--[^>]*https?://.*?-->\s*", "", html, flags=re.DOTALL)
    for icon in ICON_FILES:
        if icon not in icons:
            html = re.sub(rf"\s*<link\b[^>]*href=\"{re.escape(icon)}\"[^>]*>", "", html)
    html = html.replace("<head>", "<head>\n    " + _SAME_ORIGIN_GUARD, 1)
    left = outside_references(html)
    if left:
        raise InstallError(f"index.html still references outside hosts: {left[:5]}")
    return html


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _open_loopback(port: int, name: str, timeout_s: float) -> bytes:
    url = f"http://127.0.0.1:{port}/{name}"
    # No proxy, whatever the environment says: the request must stay on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout_s) as response:
        return response.read()


def fetch_viewer_files(*, timeout_s: float = SERVER_START_TIMEOUT_S) -> dict[str, bytes]:
    """Serve the installed rerun-sdk's web viewer from a child process and fetch its files
    over loopback. Returns name -> bytes for every file that exists (the icons are optional).
    The child is stopped before returning. Raises InstallError if it does not come up."""
    port = _free_loopback_port()
    code = (
        "import sys, time, rerun\n"
        "rerun.serve_web_viewer(web_port=int(sys.argv[1]), open_browser=False)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    # Rerun's native analytics pipeline stays off when CI is set (re_analytics, native
    # pipeline): serving the wasm to ourselves is not usage to report.
    env = {**os.environ, "CI": os.environ.get("CI", "1")}
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(port), str(timeout_s + FETCH_TIMEOUT_S * 2)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if child.poll() is not None:
                err = child.stderr.read().decode(errors="replace") if child.stderr else ""
                raise InstallError(f"the Rerun web viewer server exited: {err.strip()[-500:]}")
            try:
                files = {"index.html": _open_loopback(port, "index.html", 5.0)}
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise InstallError(f"no web viewer on 127.0.0.1:{port}: {exc}") from exc
                time.sleep(0.1)
        for name in VIEWER_FILES[1:]:
            try:
                files[name] = _open_loopback(port, name, FETCH_TIMEOUT_S)
            except urllib.error.HTTPError as exc:
                if exc.code == 404 and name in ICON_FILES:
                    continue
                raise InstallError(f"GET /{name}: HTTP {exc.code}") from exc
        return files
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stderr:
            child.stderr.close()


def _check(files: dict[str, bytes]) -> None:
    for name in REQUIRED_FILES:
        if not files.get(name):
            raise InstallError(f"{name} is missing or empty")
    if not files["re_viewer_bg.wasm"].startswith(b"\0asm"):
        raise InstallError("re_viewer_bg.wasm is not WebAssembly")
    index = files["index.html"].decode("utf-8")
    for needed in ("re_viewer.js", "re_viewer_bg.wasm", "the_canvas_id"):
        if needed not in index:
            raise InstallError(f"index.html does not mention {needed}; a new layout?")


# --------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------


def _installer_fingerprint() -> str:
    """SHA-256 of this file: a copy cleaned by another revision of the script is redone."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _marker(version: str, files: dict[str, bytes]) -> dict:
    return {
        "rerun_version": version,
        "installer_sha256": _installer_fingerprint(),
        "files": {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        },
    }


def is_installed(out: Path, version: str) -> bool:
    """True if ``out`` holds this Rerun version's viewer, cleaned by this very script,
    with every file present at its recorded size."""
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("rerun_version") != version:
        return False
    if marker.get("installer_sha256") != _installer_fingerprint():
        return False
    recorded = marker.get("files") or {}
    if not set(REQUIRED_FILES) <= set(recorded):
        return False
    for name, info in recorded.items():
        try:
            size = (out / name).stat().st_size
        except OSError:
            return False
        if size == 0 or size != info.get("size"):
            return False
    return True


def install(out: Path | None = None, *, force: bool = False) -> tuple[Path, bool]:
    """Install the viewer into ``out`` (default ``var/rerun_viewer/rerun-<version>``).

    Returns ``(out, changed)``; ``changed`` is False when it was already installed. The
    directory is built beside ``out`` and swapped in whole, so a failed run leaves the
    previous copy (or nothing) in place. Raises InstallError on a failed fetch or check.
    """
    version = rerun_version()
    out = Path(out) if out is not None else default_out_dir(version)
    if not force and is_installed(out, version):
        return out, False
    files = fetch_viewer_files()
    _check(files)
    icons = [name for name in ICON_FILES if files.get(name)]
    files["index.html"] = clean_index_html(files["index.html"].decode("utf-8"), icons=icons).encode(
        "utf-8"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / MARKER).write_text(json.dumps(_marker(version, files), indent=2) + "\n")
        for path in staging.iterdir():
            path.chmod(0o644)
        staging.chmod(0o755)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Copy the installed rerun-sdk's web viewer into static files."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="target directory (default: var/rerun_viewer/rerun-<version>)",
    )
    parser.add_argument("--force", action="store_true", help="fetch again even if installed")
    args = parser.parse_args(argv)
    try:
        out, changed = install(args.out, force=args.force)
    except InstallError as exc:
        print(f"install_rerun_viewer: {exc}", file=sys.stderr)
        return 1
    names = sorted(p.name for p in out.iterdir())
    state = "installed" if changed else "already installed"
    print(f"Rerun web viewer {state} in {out}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
