"""schemathesis hooks for scripts/schemathesis.sh: the run's own admin (fuzz-admin) is never the
user a generated request deletes or changes, so that its token keeps working for the whole run."""

import schemathesis


@schemathesis.hook
def before_call(context, case, *args, **kwargs):
    params = case.path_parameters or {}
    if params.get("username") == "fuzz-admin":
        params["username"] = "someone-else"
