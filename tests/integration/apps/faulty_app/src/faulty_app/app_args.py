import param


class FaultyArgs(param.Parameterized):
    partitions = param.Integer(6, bounds=(1, None))
    fail_on = param.Integer(-1, doc="Partition index that raises (-1: none).")
    die_on = param.Integer(-1, doc="Partition index that kills its worker process (-1: none).")
    die_signal = param.Integer(0, bounds=(0, None), doc="How die_on dies: 0 is os._exit(17), else this signal.")
    seconds = param.Number(0.0, bounds=(0, None), doc="Time each partition takes.")
    message_chars = param.Integer(0, bounds=(0, None), doc="Length of the fail_on error message (0: short).")
    print_chars = param.Integer(0, bounds=(0, None), doc="Each partition prints one line this long.")
    wide = param.Integer(0, bounds=(0, None), doc="Extra columns in each partition's output frame.")
    prepare_files = param.Integer(0, bounds=(0, None), doc="Input files prepare() writes, one at a time.")
    prepare_seconds = param.Number(0.0, bounds=(0, None), doc="Time prepare() takes per input file.")
    die_in_reduce = param.String("", doc="A file: a reduce that does not find it creates it, then kills its worker "
                                 "process (the next reduce goes on).")
    stop_log = param.String("", doc="A file each app worker's stop() appends its worker id to, a line each.")
