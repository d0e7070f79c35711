"""select_trial: picks the hyper-parameter trial with the best validation metric (the search's fan-in)."""
