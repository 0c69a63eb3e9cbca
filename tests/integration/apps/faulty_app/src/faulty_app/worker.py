import os
import signal
import time

import pandas as pd

from agilab_panel.runtime import BaseWorker

ALPHABETS = "aé中🙂Ωש\u202e\u00a0"  # Latin, CJK, emoji, Greek, Hebrew, a direction mark, a no-break space


def text_of(length: int) -> str:
    """``length`` characters from several scripts, each run of them numbered so a cut shows."""
    unit = "".join(f"{i}{ALPHABETS}" for i in range(length // 10 + 2))
    return unit[:length]


class FaultyWorker(BaseWorker):
    def work_pool(self, payload: dict) -> pd.DataFrame:
        index = payload["index"]
        if index == self.args["fail_on"]:  # at once, while the other partitions run
            chars = self.args.get("message_chars", 0)
            raise ValueError(text_of(chars) if chars else f"partition {index} was told to fail")
        time.sleep(self.args["seconds"])
        if self.args.get("print_chars"):
            print(text_of(self.args["print_chars"]), flush=True)
        if index == self.args["die_on"]:
            if self.args.get("die_signal"):
                os.kill(os.getpid(), self.args["die_signal"])
            os._exit(17)
        columns = {"index": [index], "pid_free_value": [index * 10], "pid": [os.getpid()]}
        columns.update({f"extra_column_{i:04d}": [i] for i in range(self.args.get("wide", 0))})
        return pd.DataFrame(columns)

    def work_done(self, results: list) -> pd.DataFrame:
        flag = self.args.get("die_in_reduce")
        if flag and not os.path.exists(flag):
            open(flag, "w").close()
            os._exit(19)
        return super().work_done(results)

    def stop(self) -> None:
        if self.args.get("stop_log"):
            with open(self.args["stop_log"], "a") as log:
                log.write(f"{self.worker_id}\n")
