import os
import time

import pandas as pd

from agilab_panel.runtime import BaseWorker


class FaultyWorker(BaseWorker):
    def work_pool(self, payload: dict) -> pd.DataFrame:
        index = payload["index"]
        time.sleep(self.args["seconds"])
        if index == self.args["fail_on"]:
            raise ValueError(f"partition {index} was told to fail")
        if index == self.args["die_on"]:
            os._exit(17)
        return pd.DataFrame({"index": [index], "pid_free_value": [index * 10], "pid": [os.getpid()]})
