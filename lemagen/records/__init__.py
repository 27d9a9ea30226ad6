"""Records and their I/O: every record type (`schema`, `meta`, `training`), checked field
access (`fields`), JSONL in and out (`jsonl`), input rows and rejects (`rows`), and problem
reading from any dataset's shape (`problems`)."""

from lemagen.records.schema import (
    SCHEMA_VERSION,
    Alpaca,
    Conversation,
    Correction,
    FailedCall,
    InjectMeta,
    Preference,
    Problem,
    PromptCompletion,
    Provenance,
    Record,
    Reject,
    RetryMeta,
    RetryText,
    Sample,
    TrainingRow,
    kind_of,
    read_any,
)

__all__ = [
    "SCHEMA_VERSION",
    "Alpaca",
    "Conversation",
    "Correction",
    "FailedCall",
    "InjectMeta",
    "Preference",
    "Problem",
    "PromptCompletion",
    "Provenance",
    "Record",
    "Reject",
    "RetryMeta",
    "RetryText",
    "Sample",
    "TrainingRow",
    "kind_of",
    "read_any",
]
