"""The batch half: a JSONL file of long generations, every line a normal job. Shaped like the job half.

::

    submit.py       the one batch submit path: validate every line, store, StartExecution
    split.py        SplitBatch task: every line becomes a queued job (the Map starts them)
    finalize.py     WriteOutput task (and a cancel's end): status, output.jsonl, summary, event
    cancel.py       cancel: flag, cancel every running line, stop the workflow, write the output
    status.py       the batch's view (counts by status while it runs), the listing, the output
    lines.py        what the use cases do to every line (read, cancel, fail, count), in parallel
    drop_folder.py  batches/{name}.jsonl starts a batch
    request.py      the input format (OpenAI Batch lines or {"custom_id", "prompt"}); pure
    output.py       the output line format (OpenAI Batch output shape); pure
    models.py       a batch's status, manifest, items, counts, summary; pure data
    store.py        every batch-runs/{id}/ key (``Services.batches``)

Its errors are in ``errors.py`` (``BatchInvalid``, ``BatchNotFound``, ``BatchConflict``), answered
by the API's one table (``api/errors.py``). A line's job id is ``{batch_id}-{index:06d}``: GET
/generations/{id} shows one while it runs, DELETE cancels one line alone.
"""
