"""Results store: migrations, SQLite pragmas, provenance round trip, SQL aggregates, concurrency."""
import math
import multiprocessing as mp
from contextlib import contextmanager

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

from db import analytics, migrate, repository
from db.repository import DatasetRef, ImageMetric, MetricValue, ModelRef, RunRecord
from db.session import StoreBusy, get_engine, session_scope, with_retry


def make_record(model="m1", status="pretrained", psnr=30.0, weights_hash="abc", dataset="ds") -> RunRecord:
    return RunRecord(
        model=ModelRef(model, "restoration", "classical", status, weights_hash, "file.safetensors", 123),
        dataset=DatasetRef(dataset, "builtin", "hash-" + dataset, 1, {"source": "camera"}),
        task="restoration", kind="playground", device="cpu", dtype="float32", batch_size=4, seed=7,
        params={"sigma": 25}, code_version="abc123", versions={"torch": "2.14.1", "timm": "1.0.31"},
        metrics=[MetricValue("psnr", psnr, "rgb,range=255,crop=0", True)],
        image_metrics=[ImageMetric("camera", "psnr", psnr, "rgb,range=255,crop=0")],
    )


@contextmanager
def empty_store(backend: str, tmp_path, request):
    """A database URL with nothing in it yet, on SQLite or on the test PostgreSQL cluster."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sub' / 'fresh.db'}"
        return
    from tests.pg_support import fresh_database

    with fresh_database(request.getfixturevalue("postgres_admin")) as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_fresh_database_url_is_migrated_to_head(backend, tmp_path, request):
    with empty_store(backend, tmp_path, request) as url:
        assert migrate.current_revision(url) is None
        migrate.upgrade(url)
        assert migrate.current_revision(url) == migrate.head_revision() is not None
        tables = set(inspect(get_engine(url)).get_table_names())
        assert {"models", "datasets", "runs", "run_metrics", "image_metrics", "jobs", "job_metrics",
                "alembic_version"} <= tables


def test_sqlite_pragmas_are_on(db_url):
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000


def test_foreign_keys_are_enforced(store_url):
    with pytest.raises(IntegrityError):
        with session_scope(store_url) as s:
            s.execute(text("INSERT INTO run_metrics (run_id, name, value, convention) VALUES (999, 'x', 1, '')"))


def test_run_round_trip_keeps_provenance_and_infinity(store_url):
    run_id = repository.record_run(store_url, make_record(psnr=math.inf))
    detail = repository.run_detail(store_url, run_id)
    assert detail.model == "m1" and detail.weights_hash == "abc" and detail.num_params == 123
    assert detail.dataset == "ds" and detail.dataset_hash == "hash-ds"
    assert detail.versions == {"torch": "2.14.1", "timm": "1.0.31"} and detail.code_version == "abc123"
    assert detail.seed == 7 and detail.batch_size == 4 and detail.params == {"sigma": 25}
    value = detail.metrics.set_index("metric").loc["psnr", "value"]
    assert math.isinf(value) and value > 0
    assert detail.metrics.set_index("metric").loc["psnr", "convention"] == "rgb,range=255,crop=0"
    assert math.isinf(detail.image_metrics["value"].iloc[0])


def test_run_artifacts_are_stored_as_bytes_and_go_with_their_run(store_url):
    import dataclasses

    blob = bytes(range(256)) * 4000  # ~1 MB, every byte value
    run_id = repository.record_run(store_url, dataclasses.replace(make_record(), artifacts={"detection_matches": blob}))
    other = repository.record_run(store_url, make_record())
    assert repository.run_artifact(store_url, run_id, "detection_matches") == blob
    assert repository.run_artifact(store_url, other, "detection_matches") is None
    assert repository.run_artifact(store_url, run_id, "other") is None
    repository.delete_runs(store_url, [run_id])
    assert repository.run_artifact(store_url, run_id, "detection_matches") is None


def test_run_detail_is_a_typed_record_and_none_for_an_unknown_id(store_url):
    import dataclasses

    run_id = repository.record_run(store_url, make_record(model="m2", dataset="ds2"))
    detail = repository.run_detail(store_url, run_id)
    assert isinstance(detail, repository.RunDetail)
    assert detail.run_id == run_id and detail.model == "m2" and detail.task == "restoration"
    assert detail.kind == "playground" and detail.weights_status == "pretrained" and detail.owner is None
    assert detail.dataset == "ds2" and detail.dataset_hash == "hash-ds2" and detail.dataset_title is None
    assert list(detail.metrics.columns) == ["metric", "value", "convention"]
    assert list(detail.image_metrics.columns) == ["image", "metric", "value", "convention"]
    assert detail.metrics["metric"].tolist() == ["psnr"] and detail.image_metrics["image"].tolist() == ["camera"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        detail.model = "other"  # type: ignore[misc]
    assert repository.run_detail(store_url, run_id + 1000) is None


def test_models_and_datasets_are_reused_across_runs(store_url):
    repository.record_run(store_url, make_record())
    repository.record_run(store_url, make_record())
    repository.record_run(store_url, make_record(status="random", weights_hash="random-init:seed0"))
    with session_scope(store_url) as s:
        assert s.execute(text("SELECT COUNT(*) FROM models")).scalar() == 2
        assert s.execute(text("SELECT COUNT(*) FROM datasets")).scalar() == 1
        assert s.execute(text("SELECT COUNT(*) FROM runs")).scalar() == 3


def test_metric_by_model_aggregates_in_sql_and_separates_untrained(store_url):
    for v in (30.0, 32.0, math.inf):
        repository.record_run(store_url, make_record("a", psnr=v))
    repository.record_run(store_url, make_record("a", status="random", weights_hash="random-init:seed0", psnr=10.0))
    repository.record_run(store_url, make_record("b", psnr=20.0))
    df = analytics.metric_by_model(store_url, "psnr").set_index(["model", "weights"])
    assert df.loc[("a", "pretrained"), "mean"] == pytest.approx(31.0)
    assert df.loc[("a", "pretrained"), "runs"] == 3 and df.loc[("a", "pretrained"), "infinite"] == 1
    assert df.loc[("a", "random"), "mean"] == pytest.approx(10.0)
    assert df.loc[("b", "pretrained"), "max"] == pytest.approx(20.0)
    trained_only = analytics.metric_by_model(store_url, "psnr", include_untrained=False)
    assert set(trained_only["weights"]) == {"pretrained"}


def test_list_runs_filters_and_pivots_metrics(store_url):
    repository.record_run(store_url, make_record("a", psnr=30.0))
    repository.record_run(store_url, make_record("b", status="random", weights_hash="r", psnr=12.0))
    runs = repository.list_runs(store_url)
    assert list(runs["model"]) == ["b", "a"]  # newest first
    assert list(runs["psnr"]) == [12.0, 30.0]
    assert list(repository.list_runs(store_url, include_untrained=False)["model"]) == ["a"]
    assert list(repository.list_runs(store_url, models=["b"])["model"]) == ["b"]
    assert repository.list_runs(store_url, task="classification").empty
    assert repository.metric_names(store_url) == ["psnr"]


def _writer(url: str, worker: int, n: int, start) -> None:
    start.wait(60)  # all at once
    for i in range(n):
        repository.record_run(url, make_record(f"w{worker}", psnr=float(i)))


def test_twenty_processes_writing_at_once_store_every_row(store_url):
    # 20 real processes, forked from a server process that imported this module once (not 20 fresh
    # interpreters each importing SQLAlchemy and pytest: that took 75 s of the 2-core CI), none with a connection
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    start = ctx.Barrier(20)
    procs = [ctx.Process(target=_writer, args=(store_url, w, 5, start)) for w in range(20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    with session_scope(store_url) as s:
        assert s.execute(text("SELECT COUNT(*) FROM runs")).scalar() == 100
        assert s.execute(text("SELECT COUNT(*) FROM run_metrics")).scalar() == 100
        assert s.execute(text("SELECT COUNT(*) FROM models")).scalar() == 20
        if store_url.startswith("sqlite"):
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_locked_database_is_retried_a_bounded_number_of_times():
    calls = []

    def always_locked():
        calls.append(1)
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    with pytest.raises(StoreBusy, match="busy"):
        with_retry(always_locked, attempts=3, base_delay=0.001)
    assert len(calls) == 3

    outcomes = iter([OperationalError("x", {}, Exception("database is locked")), None])

    def locked_once():
        exc = next(outcomes)
        if exc:
            raise exc
        return "ok"

    assert with_retry(locked_once, attempts=3, base_delay=0.001) == "ok"


def test_other_operational_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise OperationalError("x", {}, Exception("no such table: runs"))

    with pytest.raises(OperationalError):
        with_retry(broken, attempts=5, base_delay=0.001)
    assert len(calls) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_the_orm(backend, tmp_path, request):
    """Alembic's autogenerate finds nothing to add: the migrations build exactly the tables db/models.py declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from db.models import Base

    with empty_store(backend, tmp_path, request) as url:
        migrate.upgrade(url)
        with get_engine(url).connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"render_as_batch": True}), Base.metadata)
    assert diff == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_jobs_queued_before_the_handler_column_still_find_their_handler(backend, tmp_path, request):
    """Migration 0007 records which module registers each job's kind; rows queued by the version before get the
    module of their kind, so an upgrade does not fail the jobs that were waiting."""
    from alembic import command

    from core.jobs import handlers
    from db import jobs as job_rows

    with empty_store(backend, tmp_path, request) as url:
        command.upgrade(migrate.alembic_config(url), "0006")
        with get_engine(url).begin() as conn:
            for kind in ("benchmark", "train", "sleep"):
                conn.execute(text("INSERT INTO jobs (kind, status, params, progress, message, backend, title, device, "
                                  "result, created_at) VALUES (:k, 'queued', '{}', 0, 'queued', 'local', '', 'cpu', "
                                  "'{}', CURRENT_TIMESTAMP)"), {"k": kind})
        command.upgrade(migrate.alembic_config(url), "head")
        found = {j.kind: j.handler for j in job_rows.list_jobs(url, 10)}
        assert found == {"benchmark": "core.benchmark.run", "train": "core.training.run", "sleep": "core.jobs.handlers"}
    assert handlers.resolve("sleep", found["sleep"]).__name__ == "_sleep"
    with pytest.raises(Exception, match="No handler is registered"):
        handlers.resolve("paint", "os")  # a module outside the project is never imported for a job
