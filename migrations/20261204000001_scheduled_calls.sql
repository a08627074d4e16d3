-- Scheduled calls: an outbound call placed by the worker at `run_at`,
-- retried per its policy when the carrier reports busy / no-answer /
-- failed. Each attempt is an ordinary row in `calls`.

CREATE TABLE scheduled_calls (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    to_number        text NOT NULL,
    -- NULL: the tenant's default number when the call is placed.
    from_number      text,
    customer_id      uuid REFERENCES customers (id) ON DELETE SET NULL,
    run_at           timestamptz NOT NULL,
    max_attempts     integer NOT NULL DEFAULT 1 CHECK (max_attempts BETWEEN 1 AND 10),
    backoff_seconds  integer NOT NULL DEFAULT 60 CHECK (backoff_seconds BETWEEN 1 AND 86400),
    retry_on         text[] NOT NULL DEFAULT '{busy,no-answer,failed}'
                     CHECK (retry_on <@ ARRAY['busy', 'no-answer', 'failed']),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN (
                         'pending', 'dialing', 'retrying', 'completed', 'exhausted', 'canceled')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the next attempt is due (run_at, a retry's backoff, or the start
    -- of the tenant's calling window); NULL while dialing and once final.
    next_attempt_at  timestamptz,
    -- Why it ended without a completed call, when something other than the
    -- carrier's outcome decided it (e.g. no number to call from).
    last_error       text,
    -- Gapless change counter (1 = created), carried in scheduled_call.updated.
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_by       uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX scheduled_calls_tenant_id_idx ON scheduled_calls (tenant_id, id DESC);
CREATE INDEX scheduled_calls_tenant_status_idx ON scheduled_calls (tenant_id, status, id DESC);
-- The concurrency cap counts these.
CREATE INDEX scheduled_calls_dialing_idx ON scheduled_calls (tenant_id) WHERE status = 'dialing';
-- The sweeper and the `due` gauge look at waiting ones by due time.
CREATE INDEX scheduled_calls_waiting_idx ON scheduled_calls (next_attempt_at)
    WHERE status IN ('pending', 'retrying');

-- One row per placed call; `call_id` is how a call's final status finds
-- the scheduled call it belongs to.
CREATE TABLE scheduled_call_attempts (
    call_id            uuid PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    scheduled_call_id  uuid NOT NULL REFERENCES scheduled_calls (id) ON DELETE CASCADE,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    attempt            integer NOT NULL CHECK (attempt >= 1),
    started_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scheduled_call_id, attempt)
);

-- Per-tenant scheduling policy: calling hours in the tenant's time zone and
-- the most scheduled calls in flight at once. No row: any time, no cap.
CREATE TABLE tenant_scheduling (
    tenant_id             uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    timezone              text NOT NULL DEFAULT 'UTC',
    window_start          time,
    window_end            time,
    max_concurrent_calls  integer CHECK (max_concurrent_calls IS NULL OR max_concurrent_calls >= 1),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((window_start IS NULL) = (window_end IS NULL)),
    CHECK (window_start IS NULL OR window_start <> window_end)
);

-- The first instant at or after `t` inside the daily window [ws, we) in
-- time zone `tz` (a window may run past midnight: ws > we). Without a
-- window, `t` itself. Local times that do not exist (a DST gap) resolve as
-- PostgreSQL's AT TIME ZONE resolves them.
CREATE FUNCTION calling_window_next(t timestamptz, tz text, ws time, we time)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN ws IS NULL OR we IS NULL THEN t
        WHEN ws < we AND l.lt >= ws AND l.lt < we THEN t
        WHEN ws > we AND (l.lt >= ws OR l.lt < we) THEN t
        WHEN l.lt < ws THEN (l.ld + ws) AT TIME ZONE tz
        ELSE ((l.ld + 1) + ws) AT TIME ZONE tz
    END
    FROM (SELECT (t AT TIME ZONE tz)::time AS lt, (t AT TIME ZONE tz)::date AS ld) AS l
$$;
