-- Artifacts: files a run produced, stored in the S3 test-bundle bucket (Garage in development).

CREATE TABLE artifacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- The stage that produced it, when one did.
    stage_id        bigint      REFERENCES stages (id) ON DELETE CASCADE,
    -- What the file is, e.g. test_bundle, log, report.
    kind            text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    storage_uri     text        NOT NULL UNIQUE CHECK (storage_uri ~ '^s3://[^/]+/.+'),
    size_bytes      bigint      NOT NULL CHECK (size_bytes >= 0),
    checksum_sha256 text        NOT NULL CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Matches the bucket's 7-day lifecycle rule: after this the object is gone.
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '7 days',
    CONSTRAINT artifacts_expire_after_creation CHECK (expires_at > created_at)
);

COMMENT ON TABLE artifacts IS
    'Artifacts of a run or stage: kind, S3 storage_uri of the object, size, SHA-256 and the 7-day expiry of the bucket''s lifecycle rule.';
