"""The OpenAI API in longform's terms (pure translation, no I/O).

chat.py     a chat request as a GenerationRequest; a job as a chat.completion or its chunks
errors.py   any error answer in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``
batches.py  files and batches: OpenAI's file and batch objects over longform's batch workflow
"""
