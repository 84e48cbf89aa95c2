-- 002_versions_and_blobs — sql/002_versions_and_blobs.sql in PostgreSQL's
-- dialect (the same statements; integers that count bytes or versions are
-- BIGINT). Kept line for line beside the SQLite file: change both together.
--
-- Columns added to upstream tables go through the runner's directive
--   --@ add-column <table> <column> <definition>
-- which runs ALTER TABLE … ADD COLUMN only when the column is missing, so this
-- file is idempotent. Timestamps are text
-- 'YYYY-MM-DD HH:MM:SS.ffffff' UTC, the upstream format.

-- The compare-and-swap counter (UPDATE … SET version = version + 1 WHERE id = ?
-- AND version = ?). Older Python databases lack it; their rows start at 1.
--@ add-column projects version BIGINT NOT NULL DEFAULT 1

-- Content lives in the blob store, addressed by SHA-256. The upstream path
-- columns (sb3_file_path, thumbnail_path, assets.file_path) stay for import.
--@ add-column projects sb3_sha256 TEXT
--@ add-column projects sb3_size BIGINT
--@ add-column projects thumbnail_sha256 TEXT
--@ add-column projects thumbnail_type TEXT
-- Soft delete: set instead of removing the row; gc purges past retention.
--@ add-column projects deleted_at TEXT
--@ add-column assets sha256 TEXT

-- "My projects, newest first" and "projects shared with my groups".
CREATE INDEX IF NOT EXISTS ix_projects_owner_updated ON projects (owner_id, updated_at);
CREATE INDEX IF NOT EXISTS ix_project_groups_group ON project_groups (group_id);
CREATE INDEX IF NOT EXISTS ix_user_groups_group ON user_groups (group_id);

-- oauth_sessions.id holds the lowercase hex SHA-256 of the session token,
-- never the token itself: a leaked database leaks no live session. Imported
-- upstream sessions (whose id was the bearer token) are hashed on import.
CREATE INDEX IF NOT EXISTS ix_oauth_sessions_user ON oauth_sessions (user_id);

-- Every stored .sb3 content of a project, the current one included. Blobs
-- are shared, so a version costs one row. Bounded by VERSION_RETENTION.
CREATE TABLE IF NOT EXISTS project_versions (
	project_id BIGINT NOT NULL REFERENCES projects (id),
	version BIGINT NOT NULL,
	sha256 TEXT NOT NULL,
	size BIGINT NOT NULL,
	created_by TEXT,
	created_at TEXT NOT NULL,
	PRIMARY KEY (project_id, version)
);

-- The version each session last read or wrote of a project: the expected
-- version of its next write when the client sends none. session_id is the
-- hashed id of oauth_sessions.
CREATE TABLE IF NOT EXISTS session_project_versions (
	session_id TEXT NOT NULL,
	project_id BIGINT NOT NULL,
	version BIGINT NOT NULL,
	PRIMARY KEY (session_id, project_id)
);

-- One conflict copy per session and original project, so autosave retries
-- after a 409 update the same copy instead of multiplying projects.
CREATE TABLE IF NOT EXISTS conflict_copies (
	session_id TEXT NOT NULL,
	project_id BIGINT NOT NULL,
	copy_id BIGINT NOT NULL,
	PRIMARY KEY (session_id, project_id)
);
