"""The search job, one concern per module (imports flow downwards, no cycles):

- `options`: resolve the command's options against the stored study and open it (`prepare`);
- `prepared`: a study opened for work, with everything its trials need;
- `cached`: results computed once per study and kept in it (full-model reference, priors,
  zero-shot screen, test metrics of keep sets);
- `front`: which trial the selection rule picks, from the storage alone;
- `finalize`: the selection's (or any trial's) checkpoint, test metrics and held-out datasets;
- `run`: the job itself, options -> reference -> sampler -> backend -> finalize.
"""
