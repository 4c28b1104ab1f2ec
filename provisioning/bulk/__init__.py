"""Bulk provisioning for IT admins (docs/architecture.md §7, ISSUE 5).

- `csvfile` — reading an upload (encodings, delimiters, columns, limits) into rows of text;
- `sources` — rows from a group's (transitive) members or a store's members instead;
- `preview` — row checks and the dry run: a draft BulkJob bound to what was shown by a hash;
- `jobs` — confirm, cancel, re-run failed rows, results CSV, badge sheet and PIN slips;
- `engine` — the rows' execution by Celery tasks with $batch, exactly once (read its docstring).
"""
