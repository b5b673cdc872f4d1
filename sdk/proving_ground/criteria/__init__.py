"""Task success criteria: a structured JSON spec (``"pg-criteria/1"``), validated, and evaluated
on an episode's arrays. Free of Django (it runs on robots): numpy, jsonschema and the standard
library only. User guide: ``docs/criteria.md``.

Modules (import each name from the module that defines it):

- `spec`: the validated spec as immutable dataclasses (`Criteria`), its problems and errors,
  canonical JSON for content hashing, and what a spec decides (`stage_score`,
  `success_from_checks`, `evaluate_checks`).
- `parsing`: `parse_criteria`, validating untrusted input in three layers against
  ``schemas/criteria-v1.schema.json``.
- `automatic_checks`: the fixed menu of automatic checks and their evaluation on
  `EpisodeSignals`.
"""
