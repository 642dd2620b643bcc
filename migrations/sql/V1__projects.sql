-- Project registrations: the GitHub repositories the platform runs pipelines for.

CREATE TABLE projects (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    github_owner    text        NOT NULL CHECK (github_owner <> ''),
    github_repo     text        NOT NULL CHECK (github_repo <> ''),
    -- The GitHub App installation that grants the platform access to the repository.
    installation_id bigint      NOT NULL CHECK (installation_id > 0),
    default_branch  text        NOT NULL DEFAULT 'main' CHECK (default_branch <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (updated_at >= created_at)
);

-- GitHub owner and repository names are case-insensitive: Octo/Repo and octo/repo are one project.
CREATE UNIQUE INDEX projects_github_owner_repo_key
    ON projects (lower(github_owner), lower(github_repo));

COMMENT ON TABLE projects IS
    'Project registrations: one GitHub repository (owner/repo) the platform builds, with the App installation that grants access.';
