"""membership changes: a feed of what may alter channel listings, written by triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 11:30:00

Publishers keep each channel's listing in memory and re-read only the artifacts named here
since their last look (services/publish.py). Triggers, not application code, write the feed:
a promotion, a status change, a package moved to another pipeline, a deleted artifact or a
new index entry is recorded whichever code path made it.

Note for later migrations: on SQLite, ``batch_alter_table`` recreates a table and drops its
triggers; a migration that batch-alters one of the four tables must create its triggers again
(``_sqlite_triggers`` below). tests/integration/test_channel_listing.py fails if one is missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (trigger name, table, event, artifact id expressions)
_SQLITE = [
    ("pky_mc_stage_ins", "stage_entries", "INSERT", ["NEW.artifact_id"]),
    ("pky_mc_stage_del", "stage_entries", "DELETE", ["OLD.artifact_id"]),
    ("pky_mc_stage_upd", "stage_entries", "UPDATE", ["OLD.artifact_id", "NEW.artifact_id"]),
    ("pky_mc_artifact_upd", "artifacts", "UPDATE", ["NEW.id"]),
    ("pky_mc_artifact_del", "artifacts", "DELETE", ["OLD.id"]),
    ("pky_mc_entry_ins", "index_entries", "INSERT", ["NEW.artifact_id"]),
    ("pky_mc_entry_del", "index_entries", "DELETE", ["OLD.artifact_id"]),
    ("pky_mc_entry_upd", "index_entries", "UPDATE", ["NEW.artifact_id"]),
]
_TABLES = ("stage_entries", "artifacts", "packages", "index_entries")

_PG_FUNCTION = """
CREATE FUNCTION pky_membership_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tx bigint := pg_current_xact_id()::text::bigint;
    at timestamp := now() AT TIME ZONE 'UTC';
BEGIN
    IF TG_TABLE_NAME = 'packages' THEN
        INSERT INTO membership_changes (artifact_id, txid, at)
            SELECT id, tx, at FROM artifacts WHERE package_id = NEW.id;
    ELSIF TG_TABLE_NAME = 'artifacts' THEN
        INSERT INTO membership_changes (artifact_id, txid, at)
            VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END, tx, at);
    ELSE
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO membership_changes (artifact_id, txid, at)
                VALUES (OLD.artifact_id, tx, at);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO membership_changes (artifact_id, txid, at)
                VALUES (NEW.artifact_id, tx, at);
        END IF;
    END IF;
    RETURN NULL;
END
$$
"""
_PG_EVENTS = {
    "stage_entries": "INSERT OR UPDATE OR DELETE",
    "artifacts": "UPDATE OR DELETE",
    "packages": "UPDATE",
    "index_entries": "INSERT OR UPDATE OR DELETE",
}


def _sqlite_triggers() -> list[str]:
    out = []
    for name, table, event, ids in _SQLITE:
        inserts = " ".join(
            f"INSERT INTO membership_changes (artifact_id, at) VALUES ({i}, CURRENT_TIMESTAMP);"  # noqa: S608 (constants)
            for i in ids
        )
        out.append(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {inserts} END")
    out.append(
        "CREATE TRIGGER pky_mc_package_upd AFTER UPDATE ON packages BEGIN "
        "INSERT INTO membership_changes (artifact_id, at) "
        "SELECT id, CURRENT_TIMESTAMP FROM artifacts WHERE package_id = NEW.id; END"
    )
    return out


def upgrade() -> None:
    op.create_table(
        "membership_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("membership_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_membership_changes_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_membership_changes_txid"), ["txid"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table, events in _PG_EVENTS.items():
            op.execute(
                f"CREATE TRIGGER pky_mc_{table} AFTER {events} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION pky_membership_change()"
            )
    else:
        for statement in _sqlite_triggers():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS pky_mc_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS pky_membership_change()")
    else:
        for name, *_rest in _SQLITE:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TRIGGER IF EXISTS pky_mc_package_upd")
    with op.batch_alter_table("membership_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_membership_changes_txid"))
        batch_op.drop_index(batch_op.f("ix_membership_changes_at"))
    op.drop_table("membership_changes")
