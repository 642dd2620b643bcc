-- Pipeline runs: one execution of a project's pipeline for one commit.

CREATE TABLE runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint      NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- The GitHub login (or App) that started the run.
    started_by  text        NOT NULL CHECK (started_by <> ''),
    git_ref     text        NOT NULL CHECK (git_ref <> ''),
    -- A full SHA-1 (40) or SHA-256 (64) object name, lower-case hex.
    commit_sha  text        NOT NULL CHECK (commit_sha ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'),
    state       text        NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    CONSTRAINT runs_started_after_created CHECK (started_at >= created_at),
    CONSTRAINT runs_finished_after_started CHECK (finished_at >= started_at),
    -- A run has a finish time exactly when it is in a final state.
    CONSTRAINT runs_finished_iff_final CHECK (
        (finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled'))
    )
);

COMMENT ON TABLE runs IS
    'Pipeline runs: who started which ref and commit of a project, the run''s state and its timings.';
