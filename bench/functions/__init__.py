"""Lambda function sources the benchmarks deploy on the embedded AWS (each file becomes a function's app.py)."""
