"""Running labs: orchestration, results (the report model), actions (the shell session, HTTP) and
diagnosis."""
