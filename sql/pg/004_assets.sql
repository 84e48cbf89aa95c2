-- 004_assets — indexes for the Assets and Backpack sections (API.md).
-- Portable SQL, idempotent (IF NOT EXISTS), nothing but indexes: this file is
-- the same as sql/004_assets.sql.
--
-- Conventions the rows follow (see src/assets.h):
--   assets.asset_id = assets.md5 = lowercase hex MD5 of the bytes, one row per
--   MD5; assets.sha256 names the blob; assets.file_path (NOT NULL upstream)
--   holds 'blob:<sha256>' for rows this server writes.
--   backpack_items.thumbnail = 'd41d8cd98f00b204e9800998ecf8427e' (the MD5 of
--   zero bytes, as the Python backend stored it) for an item sent without a
--   thumbnail; no asset row exists for it.

-- "My backpack, newest first" (GET /api/backpack).
CREATE INDEX IF NOT EXISTS ix_backpack_items_owner_updated ON backpack_items (owner_id, updated_at);

-- Blob references, for `s4s-admin check` and `gc` (is this blob an asset?).
CREATE INDEX IF NOT EXISTS ix_assets_sha256 ON assets (sha256);
