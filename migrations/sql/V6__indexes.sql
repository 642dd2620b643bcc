-- Indexes for the platform's queries, built without blocking writes.
--
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction, so V6__indexes.sql.conf sets
-- executeInTransaction=false, and this file holds nothing else: Flyway refuses a script that
-- mixes such statements with transactional ones (a COMMENT ON INDEX here would be refused).
-- A failed concurrent build leaves an INVALID index behind that IF NOT EXISTS would then keep:
-- drop it before `migrate repair`.

-- A project's run history, newest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_project_id_created_at_idx
    ON runs (project_id, created_at DESC);

-- The scheduler's queue and dashboards: runs not yet finished, oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_unfinished_state_created_at_idx
    ON runs (state, created_at)
    WHERE state IN ('queued', 'running', 'awaiting_approval');

-- A run's stages in order (also serves the stages(run_id) foreign key).
CREATE INDEX CONCURRENTLY IF NOT EXISTS stages_run_id_position_idx
    ON stages (run_id, position);

-- A run's artifacts, and the foreign keys' cascades.
CREATE INDEX CONCURRENTLY IF NOT EXISTS artifacts_run_id_idx
    ON artifacts (run_id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS artifacts_stage_id_idx
    ON artifacts (stage_id)
    WHERE stage_id IS NOT NULL;

-- The expiry sweep: artifacts whose object the bucket has deleted.
CREATE INDEX CONCURRENTLY IF NOT EXISTS artifacts_expires_at_idx
    ON artifacts (expires_at);

-- A run's approval timeline.
CREATE INDEX CONCURRENTLY IF NOT EXISTS approvals_run_id_decided_at_idx
    ON approvals (run_id, decided_at);

-- The stages(id) foreign key's cascade.
CREATE INDEX CONCURRENTLY IF NOT EXISTS approvals_stage_id_idx
    ON approvals (stage_id)
    WHERE stage_id IS NOT NULL;
