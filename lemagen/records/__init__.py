"""Records and their I/O: every record type (`schema`, `meta`, `training`, with what they
share in `common`), the JSON shapes of the flattened ones (`shapes`), JSONL in and out
(`jsonl`), input rows and rejects (`rows`), and problem reading from any dataset's shape
(`problems`). Everything outside this package imports record types from here."""

from lemagen.records.analysis import BY_ID, TAXONOMY, TAXONOMY_IDS, Analysis, ErrorType
from lemagen.records.art import AskerRecord, Prediction, TrusterRecord
from lemagen.records.common import (
    JSON,
    POT_VERDICTS,
    SCHEMA_VERSION,
    TASKS,
    VERDICTS,
    PotVerdict,
    Task,
    Verdict,
)
from lemagen.records.meta import InjectMeta, Meta, Provenance, RetryMeta
from lemagen.records.schema import (
    Correction,
    Evolved,
    FailedCall,
    Pot,
    Problem,
    Record,
    Reject,
    RetryText,
    Sample,
    kind_of,
    read_any,
    read_sample_or_correction,
)
from lemagen.records.training import (
    Alpaca,
    Conversation,
    Preference,
    PromptCompletion,
    ShepherdRow,
    StepLabels,
    Tagged,
    TrainingRow,
    read_training,
)

__all__ = [
    "BY_ID",
    "JSON",
    "POT_VERDICTS",
    "SCHEMA_VERSION",
    "TASKS",
    "TAXONOMY",
    "TAXONOMY_IDS",
    "VERDICTS",
    "Alpaca",
    "Analysis",
    "AskerRecord",
    "Conversation",
    "Correction",
    "ErrorType",
    "Evolved",
    "FailedCall",
    "InjectMeta",
    "Meta",
    "Pot",
    "PotVerdict",
    "Prediction",
    "Preference",
    "Problem",
    "PromptCompletion",
    "Provenance",
    "Record",
    "Reject",
    "RetryMeta",
    "RetryText",
    "Sample",
    "ShepherdRow",
    "StepLabels",
    "Tagged",
    "Task",
    "TrainingRow",
    "TrusterRecord",
    "Verdict",
    "kind_of",
    "read_any",
    "read_sample_or_correction",
    "read_training",
]
