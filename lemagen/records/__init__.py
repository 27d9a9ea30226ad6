"""Records and their I/O: every record type, each declared once as a `shape.Shape` (`schema`,
`meta`, `analysis`, `art`, `training`, with what they share in `common`), any record read by
its kind (`kinds`), samples and corrections read in one pass (`fast`), JSONL in and out
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
from lemagen.records.kinds import AnyRecord, kind_of, read_any, read_sample_or_correction
from lemagen.records.meta import Meta, Provenance, RetryMeta, made_mistake
from lemagen.records.schema import (
    Correction,
    Evolved,
    FailedCall,
    Original,
    Pot,
    Problem,
    ProblemFields,
    Record,
    Reject,
    RetryText,
    Sample,
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
    "AnyRecord",
    "AskerRecord",
    "Conversation",
    "Correction",
    "ErrorType",
    "Evolved",
    "FailedCall",
    "Meta",
    "Original",
    "Pot",
    "PotVerdict",
    "Prediction",
    "Preference",
    "Problem",
    "ProblemFields",
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
    "made_mistake",
    "read_any",
    "read_sample_or_correction",
    "read_training",
]
