"""The request store's tables for provider Batch API jobs (`--batch`), added by store schema
version 2 (`lemagen.engine.store`); read and written by `lemagen.engine.batchstore`."""

BATCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_jobs (
    job TEXT PRIMARY KEY,          -- our id: in the input file's name and the batch's metadata
    base_url TEXT NOT NULL,        -- where it was submitted (never a key)
    endpoint TEXT NOT NULL,        -- /v1/chat/completions or /v1/completions
    model TEXT NOT NULL,
    file_id TEXT,                  -- recorded right after the upload
    batch_id TEXT,                 -- recorded right after the create
    status TEXT NOT NULL,          -- prepared, uploading, uploaded, submitting, then the
                                   -- provider's status
    counts TEXT,                   -- the last request_counts seen, JSON
    created REAL NOT NULL,
    collected REAL                 -- when its results went into `samples`
);
CREATE TABLE IF NOT EXISTS batch_requests (
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,          -- its line number in the input file
    custom_id TEXT NOT NULL,
    keys BLOB NOT NULL,            -- the sample keys it asks for, 32 bytes each, in order
    line TEXT NOT NULL,            -- its line of the input file
    PRIMARY KEY (job, custom_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_keys (
    key BLOB NOT NULL,             -- a sample key ...
    job TEXT NOT NULL,             -- ... asked for by this job
    PRIMARY KEY (key, job)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_failures (
    key BLOB PRIMARY KEY,          -- a sample a batch was asked for and did not return ...
    attempts INTEGER NOT NULL,     -- ... this many times
    error TEXT NOT NULL            -- the last reason
) WITHOUT ROWID;
"""
