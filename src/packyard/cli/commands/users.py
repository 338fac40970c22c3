"""users create|list|update, tokens create|list|revoke."""

from __future__ import annotations

import typer

from packyard.cli.commands._common import api
from packyard.cli.output import console, print_json, print_table

__all__ = ["register"]


def _stages(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="Users and roles (admin only).", no_args_is_help=True)
    tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")

    @users_app.command("create")
    def create(
        ctx: typer.Context,
        name: str = typer.Argument(...),
        role: str = typer.Option(..., "--role", help="admin, maintainer, uploader or viewer"),
        stages: str = typer.Option(
            None, "--stages", help="Comma-separated stages this user may promote into"
        ),
        token: bool = typer.Option(
            True, "--token/--no-token", help="Also create a first API token"
        ),
    ) -> None:
        """Create a user (and, by default, a first token shown once)."""
        with api(ctx) as client:
            user = client.post(
                "/api/v1/users", json={"name": name, "role": role, "stages": _stages(stages)}
            )
            console.print(
                f"Created user {user['name']} ({user['role']}"
                f"{', stages ' + ','.join(user['stages']) if user['stages'] else ''})."
            )
            if token:
                created = client.post(
                    "/api/v1/tokens", json={"name": f"{name} first token", "user": name}
                )
                console.print("API token (shown only now):")
                console.print(f"  [bold]{created['token']}[/]")

    @users_app.command("list")
    def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """List users."""
        with api(ctx) as client:
            users = client.get("/api/v1/users")
        if as_json:
            print_json(users)
            return
        print_table(
            ["name", "role", "stages", "disabled", "created"],
            [
                (
                    u["name"],
                    u["role"],
                    ",".join(u["stages"]) if u["stages"] is not None else "all",
                    "yes" if u["disabled"] else "",
                    u["created_at"][:10],
                )
                for u in users
            ],
        )

    @users_app.command("update")
    def update(
        ctx: typer.Context,
        name: str = typer.Argument(...),
        role: str = typer.Option(None, "--role"),
        stages: str = typer.Option(None, "--stages", help="Comma-separated stages"),
        all_stages: bool = typer.Option(
            False, "--all-stages", help="Allow every stage the role allows"
        ),
        disable: bool = typer.Option(None, "--disable/--enable"),
    ) -> None:
        """Change a user's role, stage permissions or disable them."""
        with api(ctx) as client:
            user = client.request(
                "PATCH",
                f"/api/v1/users/{name}",
                json={
                    "role": role,
                    "stages": _stages(stages),
                    "all_stages": all_stages,
                    "disabled": disable,
                },
            ).json()
        console.print(
            f"{user['name']}: role {user['role']}, stages "
            f"{','.join(user['stages']) if user['stages'] is not None else 'all'}"
            f"{', disabled' if user['disabled'] else ''}."
        )

    @tokens_app.command("create")
    def tcreate(
        ctx: typer.Context,
        name: str = typer.Option(..., "--name", help="What the token is for"),
        user: str = typer.Option(None, "--user", help="Owner (admins only) [default: you]"),
        expires_days: int = typer.Option(None, "--expires-days", help="Expire after N days"),
        quiet: bool = typer.Option(False, "--quiet", help="Print only the token"),
    ) -> None:
        """Create an API token; the secret is shown once."""
        with api(ctx) as client:
            created = client.post(
                "/api/v1/tokens", json={"name": name, "user": user, "expires_in_days": expires_days}
            )
        if quiet:
            print(created["token"])
            return
        console.print(
            f"Token {created['id']} for {created['user']}"
            f"{' (expires ' + created['expires_at'][:10] + ')' if created['expires_at'] else ''}; "
            "copy it now, it is not shown again:"
        )
        console.print(f"  [bold]{created['token']}[/]")

    @tokens_app.command("list")
    def tlist(
        ctx: typer.Context,
        all_users: bool = typer.Option(False, "--all", help="Every user's (admin)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List tokens (never their secrets)."""
        with api(ctx) as client:
            tokens = client.get("/api/v1/tokens", params={"all": all_users})
        if as_json:
            print_json(tokens)
            return
        print_table(
            ["id", "user", "name", "prefix", "created", "expires", "last used", "state"],
            [
                (
                    t["id"],
                    t["user"],
                    t["name"],
                    t["prefix"] + "…",
                    t["created_at"][:10],
                    (t["expires_at"] or "")[:10],
                    (t["last_used_at"] or "never")[:16].replace("T", " "),
                    "revoked" if t["revoked_at"] else "active",
                )
                for t in tokens
            ],
        )

    @tokens_app.command("revoke")
    def trevoke(ctx: typer.Context, token_id: int = typer.Argument(...)) -> None:
        """Revoke a token; it stops working at once."""
        with api(ctx) as client:
            token = client.request("DELETE", f"/api/v1/tokens/{token_id}").json()
        console.print(
            f"Revoked token {token['id']} ({token['name']}, {token['prefix']}…) of {token['user']}."
        )
