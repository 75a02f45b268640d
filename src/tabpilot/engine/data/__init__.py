"""Reading and understanding data: CSV input, column profiles, problem type, feature choice.

Needs nothing but numpy, pandas and pyarrow, so the API can use it.
"""
