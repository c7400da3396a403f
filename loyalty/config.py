"""The earning configuration, cached per process and checked against ``ConfigVersion`` on every earn.

``config_snapshot(token)`` returns the cached snapshot when ``token`` (read by the caller inside its
account-lock query, so in the same transaction) matches, else reloads it. Anything that changes the
configuration bumps the token in its own transaction: model saves and deletes through the signals below,
and bulk writes by calling ``config_version_bump()``. See docs/decisions/0006-earn-hot-path.md.
"""

import threading
import uuid
from dataclasses import dataclass, field

from django.db.models.signals import post_delete, post_save

from loyalty.models import (
    Account,
    AccountKind,
    ConfigVersion,
    Modifier,
    ProgramSettings,
    RuleSet,
    RuleSetStatus,
    Tier,
    TierPolicy,
    Unit,
)
from loyalty.rules import CompiledRuleSet, rule_set_compile
from members.models import Store


@dataclass
class ConfigSnapshot:
    token: str | None
    program: ProgramSettings
    rule_sets: list[RuleSet]  # published, newest effective first
    tiers: list[Tier]
    policy: TierPolicy
    stores_by_code: dict[str, Store]
    stores_by_pk: dict[int, Store]
    system_accounts: dict[tuple[str, str], Account]
    _compiled: dict[int | None, CompiledRuleSet] = field(default_factory=dict)

    def rule_set_at(self, at) -> RuleSet | None:
        """The published rule set in force at ``at`` (as ``loyalty.rules.rule_set_in_force``)."""
        for rule_set in self.rule_sets:
            if rule_set.effective_from <= at:
                return rule_set
        return None

    def rules_for(self, rule_set: RuleSet | None) -> CompiledRuleSet:
        key = rule_set.pk if rule_set is not None else None
        if key not in self._compiled:
            modifiers = [m for m in rule_set.prefetched_modifiers] if rule_set is not None else None
            self._compiled[key] = rule_set_compile(rule_set, time_zone=self.program.time_zone, modifiers=modifiers)
        return self._compiled[key]

    def system_account(self, code: str, unit: str = Unit.POINTS) -> Account | None:
        return self.system_accounts.get((str(code), unit))


_lock = threading.Lock()
_cached: ConfigSnapshot | None = None


def config_snapshot_load(token: str | None) -> ConfigSnapshot:
    from loyalty.services.program import program_settings_get
    from loyalty.services.tiers import tier_policy_get, tiers_ordered

    rule_sets = list(
        RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).order_by("-effective_from", "-id")
    )
    modifiers: dict[int, list[Modifier]] = {rs.pk: [] for rs in rule_sets}
    for modifier in Modifier.objects.filter(rule_set__in=rule_sets, is_active=True).order_by("pk"):
        modifiers[modifier.rule_set_id].append(modifier)
    for rule_set in rule_sets:
        rule_set.prefetched_modifiers = modifiers[rule_set.pk]
    stores = list(Store.objects.filter(is_active=True))
    accounts = Account.objects.filter(kind=AccountKind.SYSTEM)
    return ConfigSnapshot(
        token=token, program=program_settings_get(), rule_sets=rule_sets, tiers=tiers_ordered(),
        policy=tier_policy_get(), stores_by_code={s.code: s for s in stores}, stores_by_pk={s.pk: s for s in stores},
        system_accounts={(a.system_code, a.unit): a for a in accounts},
    )


def config_snapshot(token: str | None) -> ConfigSnapshot:
    """The snapshot for ``token``; a missing token (no row) is never cached."""
    global _cached
    snapshot = _cached
    if token is not None and snapshot is not None and snapshot.token == token:
        return snapshot
    snapshot = config_snapshot_load(token)
    if token is not None:
        with _lock:
            _cached = snapshot
    return snapshot


def config_snapshot_last() -> ConfigSnapshot | None:
    """The last snapshot this process loaded (maybe stale): for cheap look-ups that are re-checked later."""
    return _cached


def config_token_current() -> str | None:
    return ConfigVersion.objects.filter(pk=1).values_list("token", flat=True).first()


def config_version_bump(**_kwargs) -> None:
    """Give the configuration a new token, in the caller's transaction."""
    token = uuid.uuid4().hex
    if not ConfigVersion.objects.filter(pk=1).update(token=token):
        ConfigVersion.objects.get_or_create(pk=1, defaults={"token": token})


def _system_account_saved(sender, instance: Account, created: bool, **kwargs) -> None:
    if created and instance.kind == AccountKind.SYSTEM:
        config_version_bump()


def config_signals_connect() -> None:
    for model in (ProgramSettings, RuleSet, Modifier, Tier, TierPolicy, Store):
        post_save.connect(config_version_bump, sender=model, dispatch_uid=f"config_version_{model.__name__}_save")
        post_delete.connect(config_version_bump, sender=model, dispatch_uid=f"config_version_{model.__name__}_delete")
    post_save.connect(_system_account_saved, sender=Account, dispatch_uid="config_version_system_account")
