-- Stages: the ordered steps of a run, each with its own state, retries and output.

CREATE TABLE stages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (name <> ''),
    -- Order of the stage within its run, from 0.
    position    smallint    NOT NULL CHECK (position >= 0),
    state       text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'awaiting_approval', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    started_at  timestamptz,
    finished_at timestamptz,
    -- Structured result of the stage (summary, exit code, links); large logs go to artifacts.
    output      jsonb,
    CONSTRAINT stages_run_id_name_key UNIQUE (run_id, name),
    CONSTRAINT stages_finished_after_started CHECK (finished_at >= started_at),
    CONSTRAINT stages_started_when_attempted CHECK (started_at IS NULL OR attempts > 0)
);

COMMENT ON TABLE stages IS
    'Stages of a run: name and position, state, attempts, start and finish times, and structured output.';
