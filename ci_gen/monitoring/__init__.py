"""`monitor`: compare what the served model sees with the reference profile of its training run.

reference (the profile the evaluate stage wrote), live (the same statistics over a window, from
Prometheus or a direct scrape), drift (PSI per signal), report (markdown, JSON, plot), check
(the whole job: judge, then alert through `ci_gen.gitlab.issues` and retrain through
`ci_gen.gitlab.pipelines`).
"""
