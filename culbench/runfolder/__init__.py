"""The run folder: everything culbench writes for one run, and the promises it keeps.

One run (method × sequence@version × profile × seed) is one directory (``layout``). Every file
is written atomically (``atomic``); a step directory is committed whole or not at all
(``records``); step weights are deltas from the base model (``weights``); the manifest and
derived files follow the committed steps under a lock (``manifest``); damaged steps are found,
set aside and redone (``health``); long steps keep mid-step snapshots (``snapshots``); artefacts a method
reuses across runs live in a shared store (``shared``); robustness probes keep their records (``probes``). Killed
at any point and rerun, a run resumes to the same result.
"""

from culbench.runfolder.atomic import read_json, sha256_file, write_bytes, write_json, write_text
from culbench.runfolder.health import (
                                       droppable,
                                       file_problems,
                                       first_damaged_step,
                                       records_only,
                                       set_aside,
                                       steps_ahead,
                                       to_redo,
)
from culbench.runfolder.layout import (
                                       DAMAGED,
                                       MANIFEST,
                                       MANIFEST_FIELDS,
                                       MATRIX,
                                       REFERENCE,
                                       SAMPLES,
                                       SCHEMA_VERSION,
                                       SNAPSHOTS,
                                       STATE,
                                       STEP_FIELDS,
                                       STEP_RECORD,
                                       SUMMARY,
                                       SUMMARY_FIELDS,
                                       TASK_VECTOR,
                                       WEIGHTS,
                                       run_dir_for,
                                       snapshot_path,
                                       step_dir,
                                       variant_label,
)
from culbench.runfolder.manifest import (
                                       Summariser,
                                       check_identity,
                                       locked,
                                       new_manifest,
                                       note_compute,
                                       read_manifest,
                                       sync,
                                       write_manifest,
)
from culbench.runfolder.probes import probe_path, probe_records, read_probe, write_probe
from culbench.runfolder.records import (
                                       EDITED,
                                       commit_step,
                                       committed_steps,
                                       computed,
                                       edited,
                                       load_matrix,
                                       matrix_csv,
                                       read_step,
                                       record_digest,
                                       samples_jsonl,
                                       seal,
)
from culbench.runfolder.shared import PUBLISHED, SharedStore
from culbench.runfolder.snapshots import StepSnapshots
from culbench.runfolder.weights import load_weights, weights_bytes

__all__ = [
    "DAMAGED", "EDITED", "MANIFEST", "MANIFEST_FIELDS", "MATRIX", "REFERENCE", "SAMPLES", "SCHEMA_VERSION",
    "SNAPSHOTS", "PUBLISHED", "STATE", "STEP_FIELDS", "STEP_RECORD", "SUMMARY", "SUMMARY_FIELDS", "TASK_VECTOR",
    "WEIGHTS", "SharedStore", "StepSnapshots", "Summariser", "check_identity", "commit_step", "committed_steps",
    "computed", "droppable", "edited", "file_problems", "first_damaged_step", "load_matrix", "load_weights",
    "locked", "matrix_csv", "new_manifest", "note_compute", "probe_path", "probe_records", "read_probe",
    "write_probe", "read_json", "read_manifest", "read_step", "record_digest", "records_only", "run_dir_for",
    "samples_jsonl", "seal", "set_aside", "sha256_file", "snapshot_path", "step_dir", "steps_ahead", "sync",
    "to_redo", "variant_label", "weights_bytes", "write_bytes", "write_json", "write_text", "write_manifest",
]
