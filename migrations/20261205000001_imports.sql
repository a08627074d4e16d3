-- Bulk customer imports (POST /v1/imports).
--
-- The uploaded CSV is kept on the import row (`source`): the API checks its
-- structure before answering 202, and the `import.process` job, enqueued in
-- the same transaction, validates and writes its rows in batches. Each batch
-- commits with its customers, its per-row errors, its counts and the
-- resume point (`rows_processed`), so a worker killed mid-import resumes at
-- the first batch that did not commit: nothing is written or counted twice.
CREATE TABLE imports (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    -- What a row whose phone matches an existing customer does.
    mode            text NOT NULL CHECK (mode IN ('skip', 'update')),
    -- The file as uploaded (UTF-8, checked by the API). bytea, not text:
    -- a NUL in a cell is a per-row error, and text cannot hold one.
    source          bytea NOT NULL,
    source_bytes    integer NOT NULL CHECK (source_bytes >= 0),
    rows_total      integer NOT NULL CHECK (rows_total >= 0),
    -- Data records handled by committed batches, in file order.
    rows_processed  integer NOT NULL DEFAULT 0 CHECK (rows_processed BETWEEN 0 AND rows_total),
    rows_created    integer NOT NULL DEFAULT 0,
    rows_updated    integer NOT NULL DEFAULT 0,
    rows_skipped    integer NOT NULL DEFAULT 0,
    rows_failed     integer NOT NULL DEFAULT 0,
    -- Why a failed import failed (never a database error's text).
    error           text,
    created_by      uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    UNIQUE (tenant_id, id)
);
CREATE INDEX imports_tenant_id_idx ON imports (tenant_id, id DESC);

-- Rows the import rejected: one per row, keyed by the line of the file
-- where the record starts (the header is line 1).
CREATE TABLE import_errors (
    import_id  uuid    NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_number integer NOT NULL CHECK (row_number >= 2),
    field      text    NOT NULL,
    reason     text    NOT NULL,
    PRIMARY KEY (import_id, row_number)
);
