"""Tabpilot on AWS: the API's Lambda entry point (`lambda_handler.py`).

The AWS backends themselves live with their kind (`storage/s3.py`, `metadata/dynamo*.py`,
`jobs/batch*.py`); this package only adapts the same app to Lambda's calling convention.
"""
