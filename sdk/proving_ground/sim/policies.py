"""Load the policy a trial names, and the policy-server protocol.

A policy version (docs/evaluation.md) tells the robot what to load (``trial["load"]``):

- ``server_url``: a policy server, queried once per chunk over HTTP (below);
- else ``checkpoint_uri`` ``pg-policy:<module>:<function>?<name>=<value>&...`` (or just
  ``<module>:<function>?...``): the runner imports ``module``, calls ``function`` with the
  parameters as keyword arguments (strings; the factory converts them), and uses the policy
  it returns. Example: ``pg-policy:proving_ground.sim.expert:expert_policy?noise=0.1``.

A policy is a callable ``policy(observation, step) -> actions`` (an array of one or more
``[x, y]`` targets), optionally with ``reset(seed=None)``, called before each rollout.

Policy-server protocol (``pg-policy-server/1``): for each chunk the runner POSTs JSON ::

    {"observation": {"agent_pos": [x, y], "block_pose": [x, y, a], "goal_pose": [x, y, a],
                     "pixels_jpeg": "<base64 JPEG>"},
     "step": 12, "episode": "<rollout id>"}

and the server answers ``{"actions": [[x, y], ...]}`` (one or more actions, executed in
order). ``step`` 0 starts a new rollout. `serve_policy` runs such a server for any policy.
"""

from __future__ import annotations

import base64
import importlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import requests

from proving_ground.episode.spec import encode_jpeg

URI_SCHEME = "pg-policy:"
PROTOCOL = "pg-policy-server/1"


class PolicyLoadError(ValueError):
    """The trial names a policy this runner cannot load."""


def load_callable(reference: str):
    """The policy named by ``module:function?k=v&...`` (``pg-policy:`` prefix optional)."""
    if reference.startswith(URI_SCHEME):
        reference = reference[len(URI_SCHEME) :]
    target, _, query = reference.partition("?")
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise PolicyLoadError(f"{reference!r} is not module:function")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise PolicyLoadError(f"cannot import {target}: {exc}") from exc
    return factory(**dict(parse_qsl(query)))


def load_policy(load: dict[str, Any]):
    """The policy for a trial's ``load`` (as `ProvingGroundClient.next_trial` gives it)."""
    if load.get("server_url"):
        return HttpPolicy(load["server_url"])
    uri = load.get("checkpoint_uri") or ""
    if ":" in uri.removeprefix(URI_SCHEME):
        return load_callable(uri)
    raise PolicyLoadError(
        f"nothing to load: checkpoint_uri {uri!r} is not pg-policy:module:function and there "
        "is no server_url"
    )


def observation_json(observation: dict[str, Any]) -> dict[str, Any]:
    """The observation as the policy-server protocol sends it."""
    out: dict[str, Any] = {}
    for key, value in observation.items():
        if key == "pixels":
            out["pixels_jpeg"] = base64.b64encode(encode_jpeg(np.asarray(value))).decode()
        else:
            out[key] = np.asarray(value, dtype=np.float64).tolist()
    return out


def observation_from_json(body: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `observation_json` (pixels decoded back to an array)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "pixels_jpeg":
            import io

            from PIL import Image

            image = Image.open(io.BytesIO(base64.b64decode(value)))
            out["pixels"] = np.asarray(image.convert("RGB"))
        else:
            out[key] = np.asarray(value, dtype=np.float64)
    return out


class HttpPolicy:
    """A policy behind a policy server (``pg-policy-server/1``)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0):
        self.url = url
        self.timeout_s = timeout_s
        self._http = requests.Session()
        self._episode = str(uuid.uuid4())

    def reset(self, seed: int | None = None) -> None:
        self._episode = str(uuid.uuid4())

    def __call__(self, observation: dict[str, Any], step: int) -> np.ndarray:
        body = {"observation": observation_json(observation), "step": step}
        body["episode"] = self._episode
        response = self._http.post(self.url, json=body, timeout=self.timeout_s)
        response.raise_for_status()
        return np.asarray(response.json()["actions"], dtype=np.float32).reshape(-1, 2)


def serve_policy(policy, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve ``policy`` over ``pg-policy-server/1`` in a background thread; returns the
    server (its URL is ``http://host:server.server_port/``; stop it with ``shutdown()``)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                observation = observation_from_json(body["observation"])
                step = int(body.get("step", 0))
                with lock:
                    if step == 0 and callable(getattr(policy, "reset", None)):
                        policy.reset()
                    actions = np.asarray(policy(observation, step), dtype=np.float64)
                answer, status = {"actions": actions.reshape(-1, 2).tolist()}, 200
            except (ValueError, KeyError, TypeError) as exc:
                answer, status = {"error": str(exc), "protocol": PROTOCOL}, 400
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
