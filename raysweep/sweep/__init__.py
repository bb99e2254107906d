"""The sweep file (fields, spec) and what it plans: the trial DAG with content-hash ids (plan),
and the simulator that answers trials from known laws (simulate)."""
