"""The database: everything SQL, and nothing else.

    database.py     the connection, and the one way each kind of statement runs (below)
    dialects/       every difference between SQLite, PostgreSQL and MariaDB/MySQL: one
                    object per backend (base.py, sqlite.py, postgresql.py, mysql.py)
    schema.py       the tables (SQLAlchemy Core), types.py their exact column types
    migrate.py      create, upgrade, or refuse a newer schema (Alembic)
    writes.py       the poll's write path: one observation, one transaction
    history.py      questions: holdings at a moment, snapshots of periods, names
    export.py       long reads, streamed: every balance row, the change log
    status.py       the recording's health: last success, errors, gaps, size
    bulk.py, copy.py            many rows at once; `db copy` between databases
    retention.py, maintenance.py   thinning out old snapshots; ANALYZE and VACUUM
    locks.py        named locks held by a session of their own (servers only)

How statements run: every statement the recorder sends is plain SQL text with `?`
markers, in the module above that needs it, with values in storage form. Writes run in
`Database.transaction()`; questions on this thread's kept connection (`Database.rows`,
`Database.cursor`); long reads in batches from a streaming cursor (`Database.batches`); maintenance
outside a transaction (`Database.autocommit`). SQLAlchemy Core only declares the schema,
for Alembic and tests: its statement handling cost two thirds of a poll's write and ten
times a one-account question (docs/benchmarks.md). Every driver error leaves through
`Database.translated` as DatabaseUnavailableError (an outage) or WriteRejectedError.
"""
