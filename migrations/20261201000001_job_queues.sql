-- The job queues live in PostgreSQL (they were apalis-redis lists).
--
-- A job is inserted in the same transaction as the row it acts on, so a
-- committed write always has its job and a rolled-back one never does.
--
-- One column orders everything a worker may take: `available_at`. A job
-- waiting to run is available from its due time; a claimed job is available
-- again only when its lease runs out (its worker renews the lease while it
-- runs the job, so only a dead worker's claims come back). Claims are
-- `FOR UPDATE SKIP LOCKED` over (queue, available_at); acknowledged jobs
-- are deleted; jobs that failed for good move to `dead_jobs`.
CREATE TABLE jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue        text        NOT NULL,
    -- The record the job acts on (message, call, campaign, voicemail, ...):
    -- the sweeper re-drives only records no job or dead letter names.
    subject      uuid        NOT NULL,
    payload      jsonb       NOT NULL,
    -- Claims so far (a claim counts as an attempt, so a job that kills its
    -- worker every time still runs out of attempts).
    attempts     integer     NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT now(),
    -- The worker process holding the claim; NULL while waiting.
    locked_by    text,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_available_idx ON jobs (queue, available_at);
CREATE INDEX jobs_subject_idx ON jobs (subject);
CREATE INDEX jobs_locked_by_idx ON jobs (locked_by) WHERE locked_by IS NOT NULL;

-- Rows live for milliseconds to minutes: vacuum early so dead tuples from
-- claims and deletes do not pile up in front of the claim index.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

CREATE TABLE dead_jobs (
    id        uuid        PRIMARY KEY,
    queue     text        NOT NULL,
    subject   uuid        NOT NULL,
    payload   jsonb       NOT NULL,
    attempts  integer     NOT NULL,
    -- `transient` (out of attempts) or `permanent`.
    kind      text        NOT NULL CHECK (kind IN ('transient', 'permanent')),
    error     text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_jobs_queue_idx ON dead_jobs (queue, failed_at);
CREATE INDEX dead_jobs_subject_idx ON dead_jobs (subject);

-- Wakes idle workers: one notification per inserting statement and queue
-- (a row-level trigger would notify once per row). Payload: the queue name.
--
-- A transaction that notifies takes a database-wide lock at commit and
-- holds it through its WAL flush, so notifying transactions commit one at a
-- time. The worker's own connections set `switchboard.notify_jobs = off`:
-- the follow-on jobs they insert wake their own process's queues directly,
-- and only inserts from elsewhere (the API, the CLI) pay for a NOTIFY.
CREATE FUNCTION jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('switchboard.notify_jobs', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('switchboard_jobs', queue)
        FROM (SELECT DISTINCT queue FROM new_jobs WHERE available_at <= now()) due;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify
    AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify();
