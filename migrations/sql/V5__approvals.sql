-- Approvals: human decisions that let a run (or one of its stages) continue or stop it.

CREATE TABLE approvals (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     bigint      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- The gated stage; NULL for an approval of the whole run.
    stage_id   bigint      REFERENCES stages (id) ON DELETE CASCADE,
    -- GitHub login of the person who decided.
    approver   text        NOT NULL CHECK (approver <> ''),
    decision   text        NOT NULL CHECK (decision IN ('approved', 'rejected')),
    comment    text,
    decided_at timestamptz NOT NULL DEFAULT now(),
    -- One decision per person per gate; NULLS NOT DISTINCT makes this hold for run-level gates too.
    CONSTRAINT approvals_one_decision_per_approver UNIQUE NULLS NOT DISTINCT (run_id, stage_id, approver)
);

COMMENT ON TABLE approvals IS
    'Approval decisions on a run or stage: who decided, approved or rejected, why, and when.';
