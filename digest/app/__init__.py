"""The application layer: the only code that drives the stages and the store for an edition.

editions.py  which edition a date means, its stored draft and its state
drafts.py    editors' changes to a draft, and refreshing it from the sources
sending.py   sending a stored edition (to everyone, as a dry run, or as a [TEST] copy), preview files
runs.py      scheduled runs: what is due, the approval gate, missed runs, resuming
outcome.py   what a run means: exit code, log level and the sentence that ends it

The CLI, the scheduler and the web app are shells over these: they parse input, call one function, and present
the result.
"""
