"""Repository signing keys: which keys sign now, rotation with a transition period, import,
and the exact client configuration lines users paste into apt, dnf and pacman.

During a rotation the new key is ``active`` and the previous one ``retiring``: both sign every
publication's indexes (apt InRelease/Release.gpg, repomd.xml.asc, JSON indexes) until
``retire_after``, so clients can move to the new key at their own pace. Formats that carry a
single signature (rpm packages, pacman packages and databases) are signed with the oldest key
still signing until the transition ends, because rpm and pacman reject a signature by a key
they do not know even when another signature is good.
The secret keys live in the signer's keyring; the database records their role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from packyard.domain.auth import Action, Principal
from packyard.domain.errors import ConfigError, NotAuthorized
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.storage.db.models import SigningKey as KeyRow

__all__ = [
    "ClientConfig",
    "client_config",
    "ensure_signing_key",
    "import_signing_key",
    "key_rows",
    "key_status",
    "rotate_signing_key",
    "signing_keys",
    "single_signature_key",
]


def key_rows(ctx: Context) -> list[KeyRow]:
    return list(ctx.repos.publishing.keys())


def signing_keys(ctx: Context) -> list[str]:
    """Fingerprints that sign publications now: active ones, then retiring ones still inside
    their transition period (each group newest first)."""
    now = ctx.now()
    newest_first = sorted(key_rows(ctx), key=lambda r: r.created_at, reverse=True)
    active = [r.fingerprint for r in newest_first if r.status == "active"]
    retiring = [
        r.fingerprint
        for r in newest_first
        if r.status == "retiring" and (r.retire_after is None or r.retire_after > now)
    ]
    return active + retiring


def key_status(row: KeyRow, now: datetime) -> str:
    """``active``, ``retiring`` (still signing until ``retire_after``) or ``retired`` (its
    transition is over: it signs nothing published from then on)."""
    if row.status == "retiring" and row.retire_after is not None and row.retire_after <= now:
        return "retired"
    return row.status


def single_signature_key(keys: list[str]) -> str:
    """The key for formats that carry one signature (rpm packages, pacman): the oldest key
    still signing, which every client — updated or not — trusts during a transition."""
    return keys[-1]


def _signer(ctx: Context):  # type: ignore[no-untyped-def]
    if ctx.signer is None:
        raise ConfigError("no signer is configured", hint="start the server with a data directory")
    return ctx.signer


def ensure_signing_key(ctx: Context) -> KeyRow:
    """On first start: create (or adopt) a key in the keyring and record it as active."""
    rows = key_rows(ctx)
    active = [r for r in rows if r.status == "active"]
    if active:
        return active[-1]
    key = _signer(ctx).ensure_key()
    row = KeyRow(
        fingerprint=key.fingerprint,
        uid=key.uid,
        created_at=ctx.now(),
        status="active",
        retire_after=None,
    )
    ctx.repos.publishing.add_key(row)
    record(
        ctx,
        actor="system",
        action="key.create",
        object_type="key",
        object_id=key.fingerprint,
        after={"uid": key.uid, "algorithm": key.algorithm},
    )
    return row


def _require(principal: Principal) -> None:
    if not principal.can(Action.MANAGE_USERS):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not manage signing keys", hint="ask an admin"
        )


def rotate_signing_key(ctx: Context, *, principal: Principal, transition_days: int = 30) -> KeyRow:
    """Generate a new active key; current active keys keep signing for ``transition_days``."""
    _require(principal)
    key = _signer(ctx).generate_key(name=f"Packyard repository signing key ({ctx.now():%Y-%m-%d})")
    return _activate(
        ctx,
        principal=principal,
        fingerprint=key.fingerprint,
        uid=key.uid,
        transition_days=transition_days,
        action="key.rotate",
    )


def import_signing_key(
    ctx: Context, *, principal: Principal, armored_secret: bytes, transition_days: int = 30
) -> KeyRow:
    """Import a secret key (e.g. from an offline master) and make it the active key."""
    _require(principal)
    key = _signer(ctx).import_key(armored_secret)
    return _activate(
        ctx,
        principal=principal,
        fingerprint=key.fingerprint,
        uid=key.uid,
        transition_days=transition_days,
        action="key.import",
    )


def _activate(
    ctx: Context,
    *,
    principal: Principal,
    fingerprint: str,
    uid: str,
    transition_days: int,
    action: str,
) -> KeyRow:
    now = ctx.now()
    previous = []
    for row in key_rows(ctx):
        if row.status == "active" and row.fingerprint != fingerprint:
            row.status = "retiring"
            row.retire_after = now + timedelta(days=transition_days)
            previous.append(row.fingerprint)
    existing = ctx.repos.publishing.key(fingerprint)
    if existing is not None:
        existing.status, existing.retire_after = "active", None
        row = existing
    else:
        row = KeyRow(
            fingerprint=fingerprint, uid=uid, created_at=now, status="active", retire_after=None
        )
        ctx.repos.publishing.add_key(row)
    record(
        ctx,
        actor=principal,
        action=action,
        object_type="key",
        object_id=fingerprint,
        before={"active": previous},
        after={"active": fingerprint, "transition_days": transition_days},
    )
    return row


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """What a user pastes to consume a stage: one block per client, plus the public key."""

    stage: str
    public_key: str
    apt_sources: str
    #: Where apt_sources goes (one file per stage: following two stages' lines keeps both).
    apt_sources_file: str
    apt_setup: str
    dnf_repo: str
    dnf_repo_file: str
    pacman_conf: str
    pacman_setup: str
    munki: str
    fingerprints: list[str]
    #: ``publish.public = false``: the lines carry a ``<TOKEN>`` placeholder for a reader's API
    #: token, and apt's credentials go to ``apt_auth_file``.
    private: bool = False
    apt_auth: str = ""
    apt_auth_file: str = ""


#: What the private repositories' lines hold in place of a token (a viewer's will do).
TOKEN_PLACEHOLDER = "<TOKEN>"  # noqa: S105 (a placeholder, not a secret)
_TOKEN_USER = "packyard"  # noqa: S105 (any user name: the token is the password)


def _with_credentials(url: str) -> str:
    """``url`` with the user and token placeholder in it (pacman's Server line)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{_TOKEN_USER}:{TOKEN_PLACEHOLDER}@{rest}"


def client_config(ctx: Context, *, stage: str, base_url: str | None = None) -> ClientConfig:
    """The configuration lines for ``stage`` (all keys that currently sign are trusted)."""
    settings = ctx.settings
    if stage not in settings.stage_names():
        raise ConfigError(
            f"unknown stage {stage!r}", hint=f"stages: {', '.join(settings.stage_names())}"
        )
    base = (base_url or settings.client_base_url()).rstrip("/")
    fingerprints = signing_keys(ctx)
    public = _signer(ctx).public_key(fingerprints).decode()
    distributions = settings.apt_distributions(stage)
    apt_lines: list[str] = []
    for d in distributions:
        if len(distributions) > 1:  # one distribution per pipeline: say whose is which
            apt_lines.append(f"# pipeline {', '.join(d.pipelines)}")
        apt_lines.append(
            f"deb [signed-by=/etc/apt/keyrings/packyard.asc] {base}/repos/apt "
            f"{d.suite} {d.component}"
        )
    keyring = "/etc/apt/keyrings/packyard.asc"
    repo = settings.publish.pacman.repo_template.replace("{stage}", stage)
    private = not settings.publish.public
    apt_auth_file = "/etc/apt/auth.conf.d/packyard.conf"
    # apt uses auth.conf entries without a scheme for https only (apt_auth.conf(5)).
    machine = base if base.startswith("http://") else base.removeprefix("https://")
    return ClientConfig(
        stage=stage,
        public_key=public,
        fingerprints=fingerprints,
        apt_setup=(
            "sudo install -d -m 0755 /etc/apt/keyrings\n"
            f"curl -fsSL {base}/repos/keys/packyard.asc | sudo tee {keyring} >/dev/null"
            + (
                f"\nsudo install -m 0600 /dev/null {apt_auth_file}  # then write the lines "
                "below into it"
                if private
                else ""
            )
        ),
        apt_sources="\n".join(apt_lines),
        apt_sources_file=f"/etc/apt/sources.list.d/packyard-{stage}.list",
        dnf_repo=(
            f"[packyard-{stage}]\n"
            f"name=Packyard {stage}\n"
            f"baseurl={base}/repos/dnf/{stage}/\n"
            "enabled=1\n"
            "gpgcheck=1\n"
            "repo_gpgcheck=1\n"
            f"gpgkey={base}/repos/keys/packyard.asc\n"
            + (f"username={_TOKEN_USER}\npassword={TOKEN_PLACEHOLDER}\n" if private else "")
        ),
        dnf_repo_file=f"/etc/yum.repos.d/packyard-{stage}.repo",
        private=private,
        apt_auth=(
            f"machine {machine}/repos/apt\nlogin {_TOKEN_USER}\npassword {TOKEN_PLACEHOLDER}\n"
            if private
            else ""
        ),
        apt_auth_file=apt_auth_file if private else "",
        pacman_setup=(
            f"curl -fsSL {base}/repos/keys/packyard.asc -o /tmp/packyard.asc\n"
            "sudo pacman-key --add /tmp/packyard.asc\n"
            + "".join(f"sudo pacman-key --lsign-key {fpr}\n" for fpr in fingerprints)
        ).rstrip("\n"),
        pacman_conf=(
            f"[{repo}]\n"
            "SigLevel = Required DatabaseRequired\n"
            f"Server = {_with_credentials(base) if private else base}/repos/pacman/{stage}/$arch\n"
        ),
        # Munki has no catalog preference: a client reads manifests/<ClientIdentifier>, and
        # the stage's manifest names the stage's catalog and offers every item in it.
        munki=(
            "sudo defaults write /Library/Preferences/ManagedInstalls SoftwareRepoURL "
            f'"{base}/repos/munki"\n'
            "sudo defaults write /Library/Preferences/ManagedInstalls ClientIdentifier "
            f'"{stage}"'
            + (
                "\nsudo defaults write /Library/Preferences/ManagedInstalls "
                'AdditionalHttpHeaders -array "Authorization: Basic '
                f"$(printf '%s' '{_TOKEN_USER}:{TOKEN_PLACEHOLDER}' | base64)\""
                if private
                else ""
            )
        ),
    )
