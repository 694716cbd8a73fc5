"""Model loading, the chat format, the tiny toy-world VLM, generation and serving."""
