"""The data contract's parts; import them from data_contract, the public module.

spec: columns, states, ranges, the step, quantiles, horizons, aggregation rules;
names: the server-name rule and hashing; checks: frame validation; record: one record.
"""
