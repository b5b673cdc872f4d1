"""Set up PushT in simulation on a Proving Ground server, through the REST API only.

With ``make run`` serving in another terminal::

    .venv/bin/python examples/sim_setup.py --url http://127.0.0.1:8000

It signs in as a person (the demo admin ``admin`` / ``proving-ground`` by default: people
authenticate with the session cookie and the CSRF token, docs/api.md) and creates in the team
(``demo-lab``) what docs/simulation.md lists: the ``pusht`` embodiment with the spec derived
from the environment, the robot ``pusht-sim-1`` and an API key (printed once), the task
``push-t`` with the runner's criteria, the conditions ``block_start`` = left / center / right,
a collection protocol (2 episodes per condition), two policies (the scripted expert with
noise 0.1 and the random policy, named by ``pg-policy:`` URIs) and a started, blinded
campaign of both on the robot. It ends with the runner's commands.

Run it again and it reuses what exists (matched by name in the team); the robot's key is
issued only when the robot has no live key yet (``--new-key`` issues another). Operators
are not created through the API: it uses ``--operator`` if given, else ``OP-EXPERT`` or
the team's first active operator.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any

import requests

from proving_ground.sim.env import make_pusht_env
from proving_ground.sim.runner import PUSHT_CRITERIA
from proving_ground.sim.spec import derive_spec

EMBODIMENT = "pusht"
ROBOT = "pusht-sim-1"
TASK = "push-t"
FACTOR = "block_start"
LEVELS = {
    "left": "The T starts in the left third of the table.",
    "center": "The T starts in the middle of the table.",
    "right": "The T starts in the right third of the table.",
}
PROTOCOL = "push-t demos"
DEMOS_PER_CONDITION = 2
CAMPAIGN = "push-t in simulation"
POLICIES = {  # name -> (version label, checkpoint_uri)
    "pusht-expert": ("noise-0.1", "pg-policy:proving_ground.sim.expert:expert_policy?noise=0.1"),
    "pusht-random": ("v1", "pg-policy:proving_ground.sim.expert:random_policy"),
}


class SignedInApi:
    """The REST API as a signed-in person: the session cookie, and the CSRF token on
    writes."""

    def __init__(self, url: str, username: str, password: str, *, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = requests.Session()
        login = f"{self.url}/accounts/login/"
        self.http.get(login, timeout=timeout_s).raise_for_status()
        answer = self.http.post(
            login,
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", ""),
            },
            headers={"Referer": login},
            allow_redirects=False,
            timeout=timeout_s,
        )
        if answer.status_code != 302:
            raise SystemExit(f"signing in as {username!r} failed (HTTP {answer.status_code})")

    def _check(self, answer: requests.Response) -> Any:
        if not answer.ok:
            raise SystemExit(
                f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text}"
            )
        return answer.json()

    def get(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}"
        return self._check(self.http.get(url, params=params, timeout=self.timeout_s))

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self.http.post(
            f"{self.url}/api/v1/{path}",
            json=body or {},
            headers={"X-CSRFToken": self.http.cookies.get("csrftoken", "")},
            timeout=self.timeout_s,
        )
        return self._check(answer)

    def every(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """All rows of a list endpoint, following its pages."""
        page = self.get(path, limit=1000, **params)
        if isinstance(page, list):
            return page
        rows = list(page["results"])
        while page.get("next"):
            page = self._check(self.http.get(page["next"], timeout=self.timeout_s))
            rows += page["results"]
        return rows


def find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def ensure(api, path: str, body: dict[str, Any], *, team: str, **match: Any) -> dict[str, Any]:
    """The team's row of ``path`` matching ``match``, created from ``body`` if missing."""
    row = find(api.every(path), team=team, **match)
    label = " ".join(str(v) for v in match.values())
    if row is not None:
        print(f"  {path.rstrip('/')}: {label} (exists)")
        return row
    print(f"  {path.rstrip('/')}: {label} (created)")
    return api.post(path, {"team": team, **match, **body})


def scripted_digest(uri: str) -> str:
    """A fixed checkpoint digest for a scripted policy (it has no checkpoint file)."""
    return hashlib.sha256(uri.encode()).hexdigest()


def set_up(api: SignedInApi, *, team: str, operator: str | None, new_key: bool) -> dict:
    env = make_pusht_env()
    try:
        spec = derive_spec(env)
    finally:
        env.close()
    embodiment = ensure(
        api,
        "embodiments/",
        {"spec": spec, "description": "gym-pusht in simulation (docs/simulation.md)."},
        team=team,
        name=EMBODIMENT,
    )
    if embodiment["spec"] != spec:
        print(f"  warning: embodiment {EMBODIMENT} has another spec; the runner will refuse it")
    robot = ensure(api, "robots/", {"embodiment": EMBODIMENT}, team=team, name=ROBOT)
    live_keys = [k for k in api.get(f"robots/{robot['id']}/keys") if not k["revoked_at"]]
    key = None
    if new_key or not live_keys:
        key = api.post(f"robots/{robot['id']}/keys", {"name": "sim_setup"})["key"]

    task = ensure(
        api,
        "tasks/",
        {
            "name": "Push the T",
            "instruction": "Push the T onto its goal.",
            "time_limit_s": 30.0,
            "criteria": PUSHT_CRITERIA,
            "allowed_embodiments": [EMBODIMENT],
        },
        team=team,
        slug=TASK,
    )
    version = task["latest_version"]
    conditions = [
        ensure(
            api,
            "conditions/",
            {"description": description},
            team=team,
            factor=FACTOR,
            level=level,
        )
        for level, description in LEVELS.items()
    ]
    protocol = ensure(
        api,
        "protocols/",
        {
            "task_version": version["id"],
            "targets": [
                {"condition": c["id"], "target_count": DEMOS_PER_CONDITION} for c in conditions
            ],
        },
        team=team,
        name=PROTOCOL,
    )

    versions = []
    for name, (label, uri) in POLICIES.items():
        policy = ensure(api, "policies/", {}, team=team, name=name)
        found = find(policy.get("versions") or [], label=label)
        if found is None:
            body = {
                "label": label,
                "checkpoint_uri": uri,
                "checkpoint_sha256": scripted_digest(uri),
            }
            found = api.post(f"policies/{policy['id']}/versions", body)
        versions.append(found)
    campaign = ensure(
        api,
        "campaigns/",
        {
            "task_versions": [version["id"]],
            "conditions": [c["id"] for c in conditions],
            "trials_per_cell": 2,
            "policy_versions": [v["id"] for v in versions],
            "robots": [robot["id"]],
            "blinded": True,
            "seed": 15,
        },
        team=team,
        name=CAMPAIGN,
    )
    if campaign["status"] == "draft":
        campaign = api.post(f"campaigns/{campaign['id']}/start")

    operators = [o for o in api.every("operators/") if o["team"] == team and o["active"]]
    codes = [o["code"] for o in operators]
    if operator is None:
        operator = "OP-EXPERT" if "OP-EXPERT" in codes else (codes[0] if codes else None)
    elif operator not in codes:
        raise SystemExit(f"no active operator {operator!r} in {team} (create it in the pages)")
    if operator is None:
        raise SystemExit(f"{team} has no active operator: create one in the pages first")
    return {
        "key": key,
        "robot": robot["id"],
        "task_version": version["id"],
        "protocol": protocol["id"],
        "campaign": campaign["id"],
        "operator": operator,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="proving-ground")
    parser.add_argument("--team", default="demo-lab", help="the team's slug")
    parser.add_argument("--operator", help="the operator pseudonym the runner records as")
    parser.add_argument("--new-key", action="store_true", help="issue another robot key")
    args = parser.parse_args(argv)
    print(f"Setting up PushT in {args.team} on {args.url}:")
    api = SignedInApi(args.url, args.username, args.password)
    made = set_up(api, team=args.team, operator=args.operator, new_key=args.new_key)
    key = made["key"]
    if key:
        print(f"\nThe robot's API key (shown once, store it):\n\n  {key}\n")
    else:
        print(f"\n{ROBOT} already has a key (run with --new-key for another).\n")
    run = f".venv/bin/python -m proving_ground.sim pusht {{}} --url {args.url} --key {key or 'KEY'}"
    print("Record demonstrations, then run the campaign:\n")
    print(
        f"  {run.format('demos')} --operator {made['operator']} "
        f"--task-version {made['task_version']} --protocol {made['protocol']} --count 6"
    )
    print(f"  {run.format('campaign')} --operator {made['operator']} --campaign {made['campaign']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
