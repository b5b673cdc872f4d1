"""Blinding by construction: what the audit trail of a blinded campaign may hold.

Until a blinded campaign is done, its operators (an admin listed as one included) read the
team's audit trail (`core.access.in_managed_teams`), so the trail must not hold what the
aliases follow from: the seed (`scheduling.alias_map(ids, seed)`) or a trial's policy version
next to its alias. While the campaign is blinded, its events hold a commitment to the seed
(sha256 over a random salt and the seed: it pins the seed without revealing it, even a small
seed chosen by hand) and trial events the alias only. When the campaign is done, one audited
event reveals the seed, the salt and every alias with its policy version; anyone can then
check the commitment.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from core.services import audit
from evaluation.models import Campaign, Trial

COMMITMENT_SCHEME = "sha256(pg-seed/1:<salt>:<seed>)"
_SEED_FIELDS = ("seed", "seed_salt")


def new_seed_salt() -> str:
    return secrets.token_hex(16)


def seed_commitment(seed: int, salt: str) -> str:
    """The commitment to a campaign's seed that a blinded campaign's audit trail holds."""
    return hashlib.sha256(f"pg-seed/1:{salt}:{seed}".encode()).hexdigest()


def hides_mapping(campaign: Campaign) -> bool:
    """Whether the campaign's seed and alias mapping are still secret: blinded, not done."""
    return campaign.blinded and campaign.status != Campaign.Status.DONE


def seed_record(campaign: Campaign) -> dict[str, Any]:
    """What an audit event says about the seed: the commitment while blinded, else the seed."""
    if hides_mapping(campaign):
        return {
            "seed_commitment": seed_commitment(campaign.seed, campaign.seed_salt),
            "seed_commitment_scheme": COMMITMENT_SCHEME,
        }
    return {"seed": campaign.seed}


def campaign_snapshot(campaign: Campaign) -> dict[str, Any]:
    """`audit.snapshot` of a campaign, the seed replaced by `seed_record` (the salt is never
    in a snapshot: the unblinding event reveals it)."""
    data = audit.snapshot(campaign)
    for name in _SEED_FIELDS:
        data.pop(name, None)
    return data | seed_record(campaign)


def trial_snapshot(trial: Trial, campaign: Campaign) -> dict[str, Any]:
    """`audit.snapshot` of a trial: its alias only while the campaign hides the mapping."""
    data = audit.snapshot(trial)
    if hides_mapping(campaign):
        data.pop("policy_version", None)
    return data


def revelation(campaign: Campaign) -> dict[str, Any]:
    """What unblinding reveals: the seed, its salt and commitment, and every alias with its
    policy version (aliases of trials already drawn; none for a draft)."""
    versions = {
        str(pv): alias
        for pv, alias in Trial.objects.filter(campaign=campaign)
        .order_by()
        .values_list("policy_version_id", "alias")
        .distinct()
    }
    named = {str(v.pk): str(v) for v in campaign.policy_versions.select_related("policy")}
    aliases = {
        alias: {"policy_version": pv, "label": named.get(pv, "")}
        for pv, alias in sorted(versions.items(), key=lambda item: (len(item[1]), item[1]))
    }
    return {
        "unblinded": True,
        "seed": campaign.seed,
        "seed_salt": campaign.seed_salt,
        "seed_commitment": seed_commitment(campaign.seed, campaign.seed_salt),
        "seed_commitment_scheme": COMMITMENT_SCHEME,
        "aliases": aliases,
    }


def record_unblinding(*, actor, campaign: Campaign) -> None:
    """The audited reveal of a blinded campaign that is done: the seed, its salt, and every
    alias with its policy version. Call in the transaction that marks the campaign done."""
    if not campaign.blinded:
        return
    audit.record_audit(
        actor=actor,
        action="update",
        obj=campaign,
        before={"status": Campaign.Status.RUNNING, "blinded_view": True},
        after={"status": Campaign.Status.DONE} | revelation(campaign),
    )
