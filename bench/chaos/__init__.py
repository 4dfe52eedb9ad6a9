"""The chaos rig: three replicas behind nginx under load, with faults on a timeline (`make chaos`).

One module per job: `services` starts and stops the stack on loopback, `load` is the load generator (its own
process), `faults` the timeline, `checks` what must hold afterwards, `report` the table, JSON and PNG, and
`__main__` ties them together: `python -m bench.chaos --seconds 60`.
"""
