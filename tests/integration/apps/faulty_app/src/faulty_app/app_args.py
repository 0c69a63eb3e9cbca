import param


class FaultyArgs(param.Parameterized):
    partitions = param.Integer(6, bounds=(1, None))
    fail_on = param.Integer(-1, doc="Partition index that raises (-1: none).")
    die_on = param.Integer(-1, doc="Partition index that kills its worker process (-1: none).")
    seconds = param.Number(0.0, bounds=(0, None), doc="Time each partition takes.")
