"""The safety gates every face shares: `evaluate(plan, facts)` is pure and says which gate passes;
`approve(plan, results, confirmation)` is the only way to an `ApprovedPlan`, and the runner accepts nothing else.

Gates: staging journeys need TARGET_ENV=staging; a host whose env_file says APP_ENV=prod is refused unless the
environment is the production one (the file read as Compose reads it; a configured env_file that is missing
is a ConfigError, never a pass); one run per environment (the lock). Then the confirmation: the runbook's
CONFIRM_*=YES headless (or the wizard's explicit confirm), and for a production environment its name, typed
in the wizard or given with --env.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drtui.core.clock import Clock
from drtui.core.config import Config, Environment
from drtui.core.errors import ConfigError, DrError, ErrorKind
from drtui.core.lock import EnvLock
from drtui.core.planning import DumpPlan, Plan, plan_from_json

STAGING_JOURNEYS = ("staging", "drill")
CONFIRM_VARIABLES = {"pitr": "CONFIRM_PITR_RESTORE", "staging": "CONFIRM_STAGING_RESTORE", "drill": "CONFIRM_DRILL"}


class GateRefused(DrError):
    """A safety gate said no; nothing was touched."""

    kind = ErrorKind.REFUSED


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Facts:
    """What the gates look at besides the plan, gathered once by the face."""

    target_env: str | None  # TARGET_ENV / --env as given (None: not given)
    app_env: str | None  # APP_ENV in the environment's env_file
    is_production: bool
    lock_holder: str | None = None  # a live run holding the environment, described
    env_file_error: tuple[str, str] | None = None  # the env file could not be read: (title, hint)


def gather_facts(config: Config, env: Environment, target_env: str | None) -> Facts:
    """Read the facts from the disk: the env file and the environment's lock."""
    holder = EnvLock(config.state_dir, env.name).holder()
    try:
        app_env, env_file_error = env.env_values().get("APP_ENV"), None
    except ConfigError as exc:
        app_env, env_file_error = None, (exc.title, exc.hint)
    return Facts(target_env=target_env, app_env=app_env, is_production=env.is_production,
                 lock_holder=holder.describe() if holder else None, env_file_error=env_file_error)


def evaluate(plan: Plan | DumpPlan, facts: Facts) -> list[GateResult]:
    """Every gate's verdict for this plan (pure)."""
    return evaluate_journey(plan.journey, plan.environment, facts)


def evaluate_journey(journey: str, environment: str, facts: Facts) -> list[GateResult]:
    """The same verdicts before a plan exists: a drill checks them before it writes its marker or takes a
    backup, and plans only later (pure)."""
    results = []
    if journey in STAGING_JOURNEYS:
        ok = facts.target_env == "staging" and environment == "staging"
        results.append(GateResult("target_env", ok, "TARGET_ENV=staging" if ok else
                                  f"a {journey} restore needs TARGET_ENV=staging "
                                  f"(got {facts.target_env or 'nothing'})",
                                  "" if ok else "set TARGET_ENV=staging (or --env staging)"))
    prod_host = (facts.app_env or "").strip().lower() in ("prod", "production")
    ok = not prod_host or facts.is_production
    if facts.env_file_error:
        results.append(GateResult("app_env", False, *facts.env_file_error))
    else:
        results.append(GateResult(
            "app_env", ok, _app_env_fact(facts.app_env, prod_host) if ok else
            f"the env file of {environment!r} says APP_ENV={facts.app_env}: this host is production",
            "" if ok else "check ENV_FILE / env_file: a non-production restore must not run against production"))
    ok = facts.lock_holder is None
    results.append(GateResult("lock", ok, "no other run on this environment" if ok else
                              f"{environment!r} is busy: {facts.lock_holder}",
                              "" if ok else "wait for it to finish, or follow it with `drtui attach`"))
    return results


def _app_env_fact(app_env: str | None, prod_host: bool) -> str:
    """The passing app_env gate, said as the fact it is (a production host is no warning when production is
    what is restored: it is why the environment's name must be typed)."""
    if prod_host:
        return f"env file says APP_ENV={app_env}: this is a production host (type its name to confirm)"
    if not app_env:
        return "env file sets no APP_ENV: not a production host"
    return f"env file says APP_ENV={app_env}: not a production host"


@dataclass(frozen=True)
class Confirmation:
    """The operator's yes: CONFIRM_*=YES or --yes headless, the confirm button in the wizard; and the
    environment's name (--env headless, typed in the wizard)."""

    confirmed: bool
    typed_name: str | None = None
    face: str = "headless"


_TOKEN = object()


@dataclass(frozen=True)
class ApprovedPlan:
    plan: Plan | DumpPlan
    results: tuple[GateResult, ...]
    confirmation: Confirmation
    approved_at: datetime
    _token: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise TypeError("an ApprovedPlan comes only from gates.approve()")

    def to_json(self) -> dict[str, Any]:
        return {"plan": self.plan.to_json(),
                "results": [vars(r) for r in self.results],
                "confirmation": vars(self.confirmation),
                "approved_at": self.approved_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprovedPlan:
        """Read back a plan file that `approve` produced (the detached run's input)."""
        return cls(plan_from_json(data["plan"]), tuple(GateResult(**r) for r in data["results"]),
                   Confirmation(**data["confirmation"]), datetime.fromisoformat(data["approved_at"]), _TOKEN)


def approve(plan: Plan | DumpPlan, results: list[GateResult], confirmation: Confirmation, clock: Clock) -> ApprovedPlan:
    """The plan, approved: every gate passed and the operator confirmed; GateRefused otherwise."""
    failed = [r for r in results if not r.passed]
    if failed:
        raise GateRefused("refused: " + "; ".join(r.message for r in failed),
                          "; ".join(r.hint for r in failed if r.hint))
    variable = CONFIRM_VARIABLES.get(plan.journey, "CONFIRM_PITR_RESTORE")
    if not confirmation.confirmed:
        raise GateRefused(f"refused: the {plan.journey} restore of {plan.environment!r} was not confirmed",
                          f"set {variable}=YES (the runbook's confirmation)" if confirmation.face == "headless"
                          else "confirm the plan to start")
    if plan.environment == "production" and confirmation.typed_name != plan.environment:
        raise GateRefused("refused: restoring over production needs the environment named",
                          "pass --env production (or TARGET_ENV=production)" if confirmation.face == "headless"
                          else "type the environment's name, production, to confirm")
    return ApprovedPlan(plan, tuple(results), confirmation, clock.now(), _TOKEN)


def confirmation_from_environ(journey: str, environ: Mapping[str, str], yes: bool, named: str | None) -> Confirmation:
    """The headless confirmation: the runbook's CONFIRM_* variable (or --yes), and the --env name."""
    variable = CONFIRM_VARIABLES.get(journey, "CONFIRM_PITR_RESTORE")
    return Confirmation(confirmed=yes or environ.get(variable) == "YES", typed_name=named, face="headless")
