-- 001_upstream_schema — the Python (Flask/SQLAlchemy) backend's tables, exactly as
-- a database it made has them (see UPSTREAM-DATA.md), so that this migration
-- adopts an existing main.db unchanged: every statement is IF NOT EXISTS and
-- leaves tables that are already there alone.
--
-- The column types (DATETIME, JSON, BOOLEAN) are SQLAlchemy's spelling for
-- SQLite and are kept verbatim so `.schema` of a fresh database matches an
-- adopted one. A PostgreSQL variant of this file spells them in its dialect.
--
-- projects.version is NOT NULL without a default here, as newer Python
-- databases have it; older ones lack the column and 002 adds it (DEFAULT 1).
-- Code inserting a project therefore always supplies version explicitly.
-- Timestamps are text 'YYYY-MM-DD HH:MM:SS.ffffff', UTC, as upstream writes them.

CREATE TABLE IF NOT EXISTS users (
	id VARCHAR(128) NOT NULL,
	username VARCHAR(128) NOT NULL,
	email VARCHAR(128),
	role VARCHAR(50),
	created_at DATETIME,
	last_login DATETIME,
	user_data JSON,
	PRIMARY KEY (id)
);

CREATE TABLE IF NOT EXISTS groups (
	id INTEGER NOT NULL,
	name VARCHAR(128) NOT NULL,
	external_id VARCHAR(255) NOT NULL,
	description TEXT,
	created_at DATETIME,
	PRIMARY KEY (id),
	UNIQUE (external_id)
);

CREATE TABLE IF NOT EXISTS user_groups (
	user_id VARCHAR(128) NOT NULL,
	group_id INTEGER NOT NULL,
	joined_at DATETIME,
	PRIMARY KEY (user_id, group_id),
	FOREIGN KEY(user_id) REFERENCES users (id),
	FOREIGN KEY(group_id) REFERENCES groups (id)
);

CREATE TABLE IF NOT EXISTS oauth_sessions (
	id VARCHAR(36) NOT NULL,
	user_id VARCHAR(128) NOT NULL,
	access_token TEXT NOT NULL,
	refresh_token TEXT,
	expires_at DATETIME NOT NULL,
	created_at DATETIME,
	last_accessed DATETIME,
	PRIMARY KEY (id),
	FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE TABLE IF NOT EXISTS projects (
	id INTEGER NOT NULL,
	name VARCHAR(100) NOT NULL,
	description TEXT,
	sb3_file_path VARCHAR(255),
	thumbnail_path VARCHAR(255),
	version INTEGER NOT NULL,
	owner_id VARCHAR(128) NOT NULL,
	created_at DATETIME,
	updated_at DATETIME,
	is_published BOOLEAN,
	PRIMARY KEY (id),
	FOREIGN KEY(owner_id) REFERENCES users (id)
);

CREATE TABLE IF NOT EXISTS assets (
	id INTEGER NOT NULL,
	asset_id VARCHAR(128) NOT NULL,
	asset_type VARCHAR(50) NOT NULL,
	data_format VARCHAR(10) NOT NULL,
	size INTEGER NOT NULL,
	md5 VARCHAR(32) NOT NULL,
	owner_id VARCHAR(128) NOT NULL,
	file_path VARCHAR(255) NOT NULL,
	created_at DATETIME,
	PRIMARY KEY (id),
	CONSTRAINT _md5_type_uc UNIQUE (md5, asset_type),
	UNIQUE (asset_id),
	FOREIGN KEY(owner_id) REFERENCES users (id)
);

CREATE INDEX IF NOT EXISTS ix_assets_md5 ON assets (md5);

CREATE TABLE IF NOT EXISTS backpack_items (
	id VARCHAR(36) NOT NULL,
	type VARCHAR(20) NOT NULL,
	name VARCHAR(255) NOT NULL,
	mime VARCHAR(50) NOT NULL,
	body VARCHAR(128) NOT NULL,
	thumbnail VARCHAR(128) NOT NULL,
	owner_id VARCHAR(128) NOT NULL,
	created_at DATETIME,
	updated_at DATETIME,
	PRIMARY KEY (id),
	FOREIGN KEY(owner_id) REFERENCES users (id)
);

CREATE TABLE IF NOT EXISTS project_groups (
	project_id INTEGER NOT NULL,
	group_id INTEGER NOT NULL,
	published_at DATETIME,
	PRIMARY KEY (project_id, group_id),
	FOREIGN KEY(project_id) REFERENCES projects (id),
	FOREIGN KEY(group_id) REFERENCES groups (id)
);
