"""longform_core: the runtime package shared by every longform Lambda function.

One module per concept:

- ``request``       the public request format (pydantic) and its validation
- ``errors``        the error taxonomy; class names are the error names Step Functions matches
- ``sse``           Server-Sent Events parsing and chat-completion stream accumulation
- ``provider``      the OpenAI-compatible provider client (httpx, streaming, retries)
- ``retry``         backoff with jitter, honouring Retry-After
- ``reasoning``     separating reasoning (``<think>`` or ``reasoning_content``) from the answer
- ``continuation``  the continuation policy: prefill, context budget, deadline, stop conditions
- ``job_store``     the S3 layout: request, chunks, manifest, output, result
- ``submit``        the one submit path shared by every entry point
- ``drop_folder``   the S3 drop folder: requests/{name} -> a job, or results/{name}.error.json
- ``workflow``      the Step Functions task entry points: generate one chunk, finalize a job
- ``config``        settings from the environment
- ``runtime``       clients created once per Lambda container
"""

__version__ = "0.1.0"
