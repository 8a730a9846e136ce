"""The migrations on databases the release before them made, on SQLite and PostgreSQL.

``tests/fixtures/legacy/`` holds a database of schema version 2 (the last hand-written
one) as that release's own code created and filled it: cameras, alerts, outbox rows
delivered, pending and cancelled. ``open_database`` adopts it (stamps the baseline
0001) and upgrades it in place; the data is kept, the old pending deliveries still go
out, and a database from a newer Shaobing is refused without being touched.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

import accounts.store  # noqa: F401 - every table on Base.metadata
import alerts.adapters.sql  # noqa: F401
import camera_registry.areas  # noqa: F401
import camera_registry.store  # noqa: F401
import linkage.store  # noqa: F401
import tracks.store  # noqa: F401
from alerts.adapters.sql import AlertRecord, OutboxRecord, SqlUnitOfWork
from alerts.config import DispatchTarget
from alerts.dispatcher import Dispatcher, legacy_body
from alerts.domain.routing import Router, Target
from alerts.service import AlertService
from alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from analytics.config import CameraConfig
from camera_registry.store import list_cameras
from core.db import Base
from shaobing.db import SchemaError, head_revision, open_database
from tests.databases import pg_schema
from tests.factories import make_alert, store
from tests.peers.receiver import Receiver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
SECRET = "k-legacy-0123"

NEW_TABLES = {
    "alembic_version", "alert_history", "alert_departments", "feedback_messages",
    "routing_rules", "users", "api_keys", "auth_tokens", "audit_log", "camera_analytics",
    "tracks", "recording_segments", "recording_holds", "alert_occurrences",  # recording/ (issue 24)
    "linkage_rules",  # issue 27
    "login_failures",  # 0015: login throttling shared by the API processes
    "area_nodes",  # issue 23: the area tree edited in the console
    "patrol_sightings",  # 0017: what a patrol visit saw, for the next (issue 26)
}  # fmt: skip


def alert_id(n: int) -> str:
    return f"1e9ac0de-0000-4000-8000-{n:012d}"


@dataclass
class Database:
    url: str
    dialect: str  # sqlite | postgresql

    def sql(self, *statements: str) -> None:
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()

    def load_legacy(self) -> None:
        """Replay the dump of a schema-version-2 database made by the old release."""
        script = (FIXTURES / f"v2_{self.dialect}.sql").read_text(encoding="utf-8")
        if self.dialect == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            conn.executescript(script)
            conn.close()
            return
        engine = create_engine(self.url)
        raw = engine.raw_connection()
        try:
            raw.cursor().execute(script)
            raw.commit()
        finally:
            raw.close()
            engine.dispose()

    @contextmanager
    def opened(self) -> Iterator[sessionmaker[Session]]:
        engine, sessions = open_database(self.url)
        try:
            yield sessions
        finally:
            engine.dispose()

    @property
    def legacy_alerts(self) -> list[int]:
        """The alerts in the dump: no wandering alert (5) on PostgreSQL, where its unit did
        not fit the old VARCHAR(16)."""
        return [1, 2, 3, 4, 5] if self.dialect == "sqlite" else [1, 2, 3, 4]

    @property
    def legacy_outbox(self) -> int:
        """The outbox rows in the dump (ids 1 to this)."""
        return 7 if self.dialect == "sqlite" else 6


@contextmanager
def new_database(dialect: str, tmp_path: Path, name: str) -> Iterator[Database]:
    if dialect == "sqlite":
        yield Database(f"sqlite:///{tmp_path / name}.sqlite", "sqlite")
        return
    with pg_schema() as url:
        yield Database(url, "postgresql")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with new_database(request.param, tmp_path, "shaobing") as database:
        yield database


def contents(url: str, *, rows: bool = True) -> dict[str, Any]:
    """Every table: columns, indexes, foreign keys and (``rows``) its rows by primary key."""
    engine = create_engine(url)
    out: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            for name in sorted(insp.get_table_names()):
                columns = insp.get_columns(name)
                key = insp.get_pk_constraint(name)["constrained_columns"]
                out[name] = {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in columns
                    ],
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in insp.get_indexes(name)
                    ),
                    "foreign_keys": sorted(
                        (tuple(f["constrained_columns"]), f["referred_table"])
                        for f in insp.get_foreign_keys(name)
                    ),
                }
                if rows:
                    stmt = f"SELECT * FROM {name} ORDER BY {', '.join(key)}"
                    out[name]["rows"] = [dict(r) for r in conn.execute(text(stmt)).mappings()]
    finally:
        engine.dispose()
    return out


def column_names(table: dict[str, Any]) -> list[str]:
    return [c[0] for c in table["columns"]]


# -- adoption and upgrade --------------------------------------------------------------


def test_legacy_database_is_upgraded_with_its_data(db: Database) -> None:
    db.load_legacy()
    before = contents(db.url)
    assert "alembic_version" not in before and before["schema_version"]["rows"] == [
        {"id": 1, "version": 2, "component": "shaobing"}
    ]
    with db.opened() as sessions:
        after = contents(db.url)
        assert set(after) == set(before) | NEW_TABLES

        # Every old row is kept, every old column unchanged.
        for table in ("cameras", "alerts", "outbox"):
            old = column_names(before[table])
            assert set(old) <= set(column_names(after[table]))
            kept = [{k: row[k] for k in old} for row in after[table]["rows"]]
            assert kept == before[table]["rows"], table
        ids = db.legacy_alerts
        assert [r["id"] for r in after["alerts"]["rows"]] == [alert_id(n) for n in ids]
        states = {
            r["id"]: (r["alert_id"], r["target"], r["state"]) for r in after["outbox"]["rows"]
        }
        expected = {
            1: (alert_id(1), "centre", "delivered"), 2: (alert_id(1), "police", "delivered"),
            3: (alert_id(2), "centre", "delivered"), 4: (alert_id(2), "police", "pending"),
            5: (alert_id(3), "centre", "pending"), 6: (alert_id(4), "centre", "cancelled"),
            7: (alert_id(5), "centre", "pending"),
        }  # fmt: skip
        assert states == {k: v for k, v in expected.items() if k <= db.legacy_outbox}

        # What the lifecycle revision (0002) fills in for them.
        for row in after["outbox"]["rows"]:  # each row was the alert's one alert.created
            assert (row["event"], row["seq"], row["idempotency_key"], row["body"]) == (
                "alert.created", 1, None, None
            )  # fmt: skip
        for row in after["alerts"]["rows"]:
            assert (row["seq"], row["version"], row["tier"], row["escalation_level"]) == (
                1, 1, "county", 0
            )  # fmt: skip
            assert row["updated_at"] == row["created_at"] and row["due_at"] is None
        history = [
            (h["alert_id"], h["at"], h["actor"], h["action"], h["from_status"], h["to_status"],
             h["note"]) for h in after["alert_history"]["rows"]
        ]  # fmt: skip
        assert sorted(history) == sorted(
            (a["id"], a["created_at"], "system", "created", None, "new", a["explanation"])
            for a in before["alerts"]["rows"]
        )
        assert after["schema_version"]["rows"] == [{"id": 1, "version": 3, "component": "shaobing"}]
        assert after["alembic_version"]["rows"] == [{"version_num": head_revision()}]

        # 0009 (incidents): each old alert is its own incident of one, its only occurrence
        # itself, with its evidence.
        for row in after["alerts"]["rows"]:
            assert (row["alert_count"], row["last_at"], row["last_alert_id"]) == (
                1, row["created_at"], row["id"]
            )  # fmt: skip
            assert not row["suppressed"]
        occurrences = {o["alert_id"]: o for o in after["alert_occurrences"]["rows"]}
        assert set(occurrences) == {a["id"] for a in before["alerts"]["rows"]}
        for a in before["alerts"]["rows"]:
            o = occurrences[a["id"]]
            assert (o["incident_id"], o["at"], o["camera_id"], o["rule"]) == (
                a["id"], a["created_at"], a["camera_id"], a["rule"]
            )  # fmt: skip
            evidence = json.loads(o["evidence_json"]) if o["evidence_json"] else {}
            if a.get("snapshot_path"):
                assert evidence["snapshot"][:2] == [a["snapshot_path"], a["snapshot_sha256"]]
            else:
                assert "snapshot" not in evidence

        # The repository reads the old alerts as domain alerts.
        with SqlUnitOfWork(sessions) as uow:
            intrusion = uow.alerts.get(alert_id(1))
            fault = uow.alerts.get(alert_id(4))
            assert intrusion is not None and fault is not None
            assert intrusion.evidence["snapshot"].path.endswith(f"{alert_id(1)}.jpg")
            assert intrusion.box == [412.3, 220.8, 470.1, 388.4] and intrusion.track_ids == [7]
            assert intrusion.area.township == "城关镇" and intrusion.status == "new"
            assert fault.details == {"fault": "frozen"} and fault.box is None
            assert fault.evidence == {} and fault.seq == 1
            if db.dialect == "sqlite":
                wandering = uow.alerts.get(alert_id(5))
                assert wandering is not None and wandering.unit == "path/displacement"

        # The old cameras still load as this release's camera config, credentials kept.
        with sessions() as session:
            records = list_cameras(session)
            assert [r.id for r in records] == ["tw-0002", "v-0003", "xl-0001"]
            configs = {r.id: CameraConfig.model_validate(r.config_data()) for r in records}
        assert records[2].source_display == "rtsp://10.20.0.11:554/Streaming/Channels/101"
        assert configs["xl-0001"].source.password == "Xl-pw-0001"
        onvif = configs["tw-0002"].source.onvif
        assert onvif is not None and onvif.password == "Onvif-pw-2"
        assert [r.type for r in configs["xl-0001"].rules] == ["intrusion", "crowd", "wandering"]


def test_version_1_database_is_upgraded(db: Database) -> None:
    db.load_legacy()
    db.sql("ALTER TABLE alerts DROP COLUMN details_json", "UPDATE schema_version SET version = 1")
    before = contents(db.url)
    with db.opened() as sessions:
        after = contents(db.url)
        assert "details_json" in column_names(after["alerts"])
        for table in ("cameras", "alerts", "outbox"):
            old = column_names(before[table])
            kept = [{k: row[k] for k in old} for row in after[table]["rows"]]
            assert kept == before[table]["rows"], table
        assert all(r["details_json"] is None for r in after["alerts"]["rows"])
        assert after["schema_version"]["rows"][0]["version"] == 3
        assert after["alembic_version"]["rows"] == [{"version_num": head_revision()}]
        with SqlUnitOfWork(sessions) as uow:
            fault = uow.alerts.get(alert_id(4))
            assert fault is not None and fault.details == {}


def test_opening_again_changes_nothing(db: Database) -> None:
    db.load_legacy()
    with db.opened():
        pass
    upgraded = contents(db.url)
    with db.opened():
        assert contents(db.url) == upgraded


def test_upgraded_database_has_the_schema_of_a_new_one(db: Database, tmp_path: Path) -> None:
    db.load_legacy()
    with db.opened(), new_database(db.dialect, tmp_path, "fresh") as fresh, fresh.opened():
        upgraded, new = contents(db.url, rows=False), contents(fresh.url, rows=False)
        assert upgraded == new
    # ... which is the schema the models declare: only the table the releases before the
    # migrations read (schema_version) is not a model, and SQLite does not enforce (so
    # never altered) string lengths.
    expected = [("remove_table", "schema_version")]
    if db.dialect == "sqlite":
        expected += [("modify_type", "alerts", "object_class"), ("modify_type", "alerts", "unit")]
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            found = []
            for diff in compare_metadata(MigrationContext.configure(conn), Base.metadata):
                for d in diff if isinstance(diff, list) else [diff]:
                    found.append(("remove_table", d[1].name) if d[0] == "remove_table"
                                 else (d[0], d[2], d[3]))  # fmt: skip
    finally:
        engine.dispose()
    assert sorted(found) == sorted(expected)


def test_new_database_starts_at_the_newest_revision(db: Database) -> None:
    with db.opened():
        tables = contents(db.url)
    assert tables["alembic_version"]["rows"] == [{"version_num": head_revision()}]
    assert tables["schema_version"]["rows"] == [{"id": 1, "version": 3, "component": "shaobing"}]
    assert NEW_TABLES | {"cameras", "alerts", "outbox"} <= set(tables)


# -- the upgraded database at work -----------------------------------------------------


def test_upgraded_database_takes_alerts_the_old_schema_refused(db: Database) -> None:
    db.load_legacy()
    if db.dialect == "postgresql":  # the old column: 17 characters do not fit
        with pytest.raises(DBAPIError, match="too long"):
            db.sql(f"UPDATE alerts SET unit = 'path/displacement' WHERE id = '{alert_id(1)}'")
    with db.opened() as sessions:
        wandering = make_alert(
            10, type="wandering", unit="path/displacement", measured=4.2, threshold=3.0,
            object_class="c" * 64, rule="规" * 100, zone="区" * 100,
        )  # fmt: skip
        store(sessions, wandering, ["centre"])
        with SqlUnitOfWork(sessions) as uow:
            assert uow.alerts.get(wandering.id) == wandering
        with sessions() as session:
            row = session.scalars(
                select(OutboxRecord).where(OutboxRecord.alert_id == wandering.id)
            ).one()
            # The id sequence went on from the old rows.
            assert row.id == db.legacy_outbox + 1
            assert row.idempotency_key == f"{wandering.id}:alert.created:1"

        # An old alert goes through its lifecycle like a new one.
        router = Router(rules=[], departments={}, targets={"centre": Target("centre")})
        service = AlertService(lambda: SqlUnitOfWork(sessions), lambda: router)
        acknowledged = service.transition(alert_id(3), "acknowledge", actor="值班员")
        assert acknowledged.status == "acknowledged"
        with sessions() as session:
            record = session.get(AlertRecord, alert_id(3))
            assert record is not None and (record.status, record.version) == ("acknowledged", 2)


def test_pending_legacy_deliveries_still_go_out(db: Database, receiver: Receiver) -> None:
    db.load_legacy()
    with db.opened() as sessions:
        targets = [
            DispatchTarget(name=name, url=f"{receiver.url}/{name}", secret=SECRET)
            for name in ("centre", "police")
        ]
        dispatcher = Dispatcher(sessions, targets)
        try:
            dispatcher.dispatch_due()
        finally:
            dispatcher.client.close()
        pending = [(alert_id(2), "police"), (alert_id(3), "centre")]
        if db.dialect == "sqlite":
            pending.append((alert_id(5), "centre"))
        requests = receiver.wait_for(len(pending), timeout=5)
        assert len(requests) == len(pending)  # delivered and cancelled rows are not sent again
        with sessions() as session:
            bodies = {
                a: legacy_body(session.get(AlertRecord, a), None)  # type: ignore[arg-type]
                for a, _ in pending
            }
            states = dict(session.execute(select(OutboxRecord.id, OutboxRecord.state)).all())
        sent = sorted((path, headers[IDEMPOTENCY_HEADER]) for headers, _, path in requests)
        assert sent == sorted((f"/{t}", f"{a}:alert.created:1") for a, t in pending)
        for headers, body, _ in requests:
            alert = headers[IDEMPOTENCY_HEADER].split(":")[0]
            assert body == bodies[alert]  # built from the alert row: old rows have no body
            assert verify(body, SECRET, headers[SIGNATURE_HEADER])
            message = json.loads(body)
            assert (message["event"], message["sequence"]) == ("alert.created", 1)
            assert message["alert"]["id"] == alert and message["alert"]["trace"]["unit"]
        assert states[6] == "cancelled"
        assert {k: v for k, v in states.items() if k != 6} == {
            k: "delivered" for k in states if k != 6
        }


def test_updates_of_a_legacy_alert_reach_the_targets_that_had_it(db: Database) -> None:
    db.load_legacy()
    with db.opened() as sessions:
        router = Router(
            rules=[], departments={},
            targets={"centre": Target("centre"), "police": Target("police")},
        )  # fmt: skip
        service = AlertService(lambda: SqlUnitOfWork(sessions), lambda: router)
        service.transition(alert_id(1), "acknowledge", actor="值班员")
        with sessions() as session:
            rows = session.execute(
                select(OutboxRecord.target, OutboxRecord.idempotency_key)
                .where(OutboxRecord.alert_id == alert_id(1), OutboxRecord.event == "alert.updated")
                .order_by(OutboxRecord.target)
            ).all()
        key = f"{alert_id(1)}:alert.updated:2"
        assert [tuple(r) for r in rows] == [("centre", key), ("police", key)]


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (["UPDATE schema_version SET version = 99"], "schema version 99 is newer"),
        (["DROP TABLE schema_version"], "no schema version"),
        (["DELETE FROM schema_version"], "no version row"),
    ],
    ids=["schema-version-99", "no-schema-version", "empty-schema-version"],
)
def test_unknown_legacy_database_is_refused_untouched(
    db: Database, setup: list[str], message: str
) -> None:
    db.load_legacy()
    db.sql(*setup)
    before = contents(db.url)
    with pytest.raises(SchemaError, match=message):
        open_database(db.url)
    assert contents(db.url) == before


def test_database_at_an_unknown_revision_is_refused_untouched(db: Database) -> None:
    db.load_legacy()
    with db.opened():
        pass
    db.sql("UPDATE alembic_version SET version_num = '0099'")  # as a newer Shaobing leaves it
    before = contents(db.url)
    with pytest.raises(SchemaError, match="revision 0099.*newer"):
        open_database(db.url)
    assert contents(db.url) == before
