#!/usr/bin/env python3
"""schemathesis hooks for scripts/schemathesis.sh: the run's own admin (fuzz-admin) keeps its
role, password and token for the whole run. Deleting it is refused by devicehub itself (409:
not yourself); a generated change of it becomes a no-op (its role, admin, again)."""

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters or {}
    if params.get("username") == "fuzz-admin" and case.method.upper() == "PATCH":
        case.body = {"role": "admin"}
