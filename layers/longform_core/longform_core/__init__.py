"""longform_core: the runtime package shared by every longform Lambda function.

One module per concept; imports only go down this list's layers (docs/architecture.md draws it).
Handlers (``functions/*/app.py``) build nothing: ``runtime`` builds ``Services`` once per container.

Pure (no I/O):

- ``job_status``       the one definition of a job's statuses, their exit codes and batch codes
- ``models``           the domain: ``Manifest`` (every change of it is a method), ``JobResult``, ids
- ``chunk_record``     ``ChunkRecord``, the typed finish vocabulary, ``TextState``
- ``request``          the public request format (pydantic) and its validation
- ``errors``           the error taxonomy; class names are the error names Step Functions matches
- ``config``           ``Settings``, every field read from its environment variable
- ``env_settings``     reading a pydantic model's fields from the environment, defaults stated once
- ``sse``              Server-Sent Events parsing and chat-completion stream accumulation
- ``provider_errors``  a provider's error answers read: context 400s, retryable causes, wordings
- ``retry``            backoff with jitter, honouring Retry-After
- ``reasoning``        separating reasoning (``<think>`` or ``reasoning_content``) from the answer
- ``continuation``     the continuation policy: the next body, ``max_tokens``, shrink, deadline, stops
- ``prefill``          the prefill ladder (typed steps), ``starts_over``, the learned style
- ``style_probe``      a chat-prefill style probed before it is learned; a wrong one evicted
- ``chat_template``    a model's Jinja chat template rendered as Hugging Face renders it
- ``raw_completion``   the ``completion`` rung: the conversation rendered and continued raw
- ``provider_params``  a request's fields sent to the provider as they are (e.g. ``repeat_penalty``)
- ``preamble``         a continue-message reply cut short inside its preamble
- ``seam``             the seam of a continuation repaired; the loop's repeat checks
- ``echo``             prefill echoes: when a server sent the prefill back, and stripping it
- ``draft``            draft checkpoints of the chunk in flight and when they are due
- ``infra_cost``       a job's AWS bill beside its tokens
- ``batch/models``     a batch's status, manifest, items, counts and summary
- ``batch/request``    the batch input format (JSONL), every bad line named
- ``batch/output``     a batch's output line in the OpenAI Batch shape

Ports:

- ``services``         the ports the use cases talk through, and ``Services``

Adapters:

- ``objects``          the one S3 object layer under every store (conditional puts, capped reads)
- ``job_store``        a job's S3 layout: every key of ``jobs/{id}/`` and ``styles/``
- ``results``          ``results/``: the one owner of every ``results/{name}.*`` key
- ``batch/store``      a batch's S3 keys under ``batch-runs/{id}/``
- ``provider``         the OpenAI-compatible provider client (httpx, retries)
- ``provider_stream``  reading one streamed completion, its typed outcome kind
- ``billed``           every billed reply recorded as it arrives; a job's bill over all attempts
- ``executions``       Step Functions: start by name, stop, list
- ``notify``           the completion events on EventBridge

Use cases:

- ``submit``           the one submit path shared by every entry point
- ``chunk``            GenerateChunk: one continuation chunk, end to end
- ``chunk_job``        the job an attempt reads (frozen), its reply, the starts-over check
- ``chunk_ask``        the ask loop: context shrinking, the prefill ladder, starting over
- ``chunk_style``      the prefill style a chunk uses, learned or cached
- ``chunk_filing``     a reply filed into the answer: echo stripped, seam repaired, loop guards
- ``chunk_draft``      the chunk in flight's draft: resumed after a crash, cleaned up after a commit
- ``chunk_commit``     the chunk record built and the manifest committed (``If-Match``)
- ``reopen``           an ``incomplete`` job given new budgets, to be resumed
- ``finalize``         a job's end: ``output.md``, ``result.json``, the event
- ``cancel``           cancel a job, keeping what it generated
- ``status``           a job's view for the API
- ``output``           a job's text, committed and in flight
- ``sweep``            the sweeper: jobs whose execution ended without finalizing
- ``drop_folder``      the S3 drop folder: ``requests/{name}`` -> a job, or an error report
- ``batch/submit``     a batch submitted: parsed, stored, its execution started
- ``batch/split``      a batch split into the Distributed Map's items
- ``batch/lines``      a batch's lines: their jobs, statuses and tokens
- ``batch/finalize``   a batch's output written in input order
- ``batch/cancel``     a batch cancelled, keeping what each line generated
- ``batch/status``     a batch's view, its output's presigned URL
- ``batch/drop_folder`` the batch drop folder: ``batches/{name}.jsonl`` -> a batch
- ``api_key_authorizer`` the API's Lambda authorizer (``Authorization: Bearer``)
- ``api/resolver``     the HTTP API's resolver, ``handle()``, the OpenAPI document
- ``api/route_helpers`` what every router's routes share (services, caller, body, metrics)
- ``api/routes``       ``/generations``
- ``api/batch_routes`` ``/batches``
- ``api/openai_routes`` ``/v1/models``
- ``api/openai_batch_routes`` OpenAI's Files and Batch APIs
- ``api/schemas``      the API's request and response models
- ``api/errors``       one table from exception to status code (and OpenAI's error shape)
- ``openai/chat``      a chat request as a job; a job as a ``chat.completion``
- ``openai/batches``   OpenAI's batch object onto longform's batches
- ``openai/files``     OpenAI's files under ``openai-files/{owner}/``
- ``openai/errors``    longform's errors in OpenAI's shape
- ``openai/multipart`` form uploads
- ``runtime``          the composition root: clients created once per Lambda container
"""

__version__ = "0.1.0"
